"""Logging set-up: text or JSON records, ThreadKey/event_id fields, secrets scrubbed.

Log records carry text from outside (file names, Slack payloads, server errors), so every
message is bounded and its control characters escaped: a newline in a file name cannot
start a forged line, NUL/ESC never reach a terminal raw, and a megabyte body is a short line.
"""

from __future__ import annotations

import json
import logging
import re
import sys

# A safety net under the rule "never log a secret": anything shaped like a token is masked.
SECRET = re.compile(r"(xox[abpors]-|xapp-|sk-)[A-Za-z0-9._-]{4,}")
FIELDS = ("thread_key", "event_id")
MAX_MESSAGE_CHARS = 2_000
MAX_FIELD_CHARS = 200
# C0 and C1 controls (tab aside), the Unicode line separators some viewers break lines at,
# and lone surrogates (which the UTF-8 stream handler cannot even write).
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def scrub(text: str) -> str:
    return SECRET.sub(lambda m: m.group(1) + "***", text)


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    return _NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def bound(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """One safe line: control characters escaped, at most `limit` characters (and a count)."""
    if len(text) > limit:
        text = f"{text[:limit]}… (+{len(text) - limit} chars)"
    return _CONTROL.sub(_escape, text)


class _Scrubber(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = f"{record.msg!s} (unformattable arguments)"
        record.msg = bound(scrub(message))
        record.args = None
        for name in FIELDS:
            value = getattr(record, name, None)
            if isinstance(value, str):
                setattr(record, name, bound(value, MAX_FIELD_CHARS))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            if hasattr(record, name):
                data[name] = getattr(record, name)
        if record.exc_info:
            data["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(data)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = scrub(super().format(record))
        extras = " ".join(f"{n}={getattr(record, n)}" for n in FIELDS if getattr(record, n, ""))
        if extras:
            first, sep, rest = line.partition("\n")
            line = f"{first} [{extras}]{sep}{rest}"
        # A traceback is the only multi-line part; indented, no line of it can pass for a record.
        return line.replace("\n", "\n    ")


def configure(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_Scrubber())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The HTTP clients log every request at INFO; one line per model call drowns the useful ones.
    for noisy in ("httpx", "httpx2", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
