"""The edge's first look at a request: nothing reads a body Slack did not sign.

Bolt parses a request's body before it checks the signature, so a malformed or hostile
body used to end in a 500 with a traceback (and Bolt logs whole badly signed bodies at
INFO). `RequestGuard.screen` runs first on HTTP requests: a bad or missing signature or
timestamp is a 401, a signed body that is not one JSON object (or a form whose `payload` is
not) is a 400; neither body is parsed further or logged. `edge_middleware` runs inside Bolt
for both transports: it cleans text Slack relayed (lone UTF-16 surrogates) and acks and
drops signed events that lack what every listener needs.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body
from slack_bolt.response import BoltResponse

log = logging.getLogger(__name__)

MAX_AGE_S = 5 * 60  # Slack's replay window for signed requests
# Refused requests are counted, and reported at most this often: they cannot flood the log.
REPORT_EVERY_S = 60.0
# Events whose listeners key a thread on the event's channel and ts.
THREAD_EVENTS = frozenset({"app_mention", "message"})
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer the edge gives a request it does not hand on to Bolt."""

    status: int
    text: str


UNSIGNED = Verdict(401, "invalid request")
MALFORMED = Verdict(400, "malformed request")


class _Throttle:
    """One warning per window, with the number of refusals it stands for."""

    def __init__(self, what: str, every_s: float = REPORT_EVERY_S) -> None:
        self._what = what
        self._every_s = every_s
        self._next = 0.0
        self._count = 0

    def note(self, reason: str) -> None:
        self._count += 1
        now = time.monotonic()
        if now < self._next:
            return
        log.warning("refused %d %s request(s) (last: %s)", self._count, self._what, reason)
        self._count = 0
        self._next = now + self._every_s


class RequestGuard:
    """Screens HTTP requests before Bolt sees them."""

    def __init__(self, signing_secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self._secret = signing_secret.encode()
        self._clock = clock
        self._unsigned = _Throttle("unsigned")
        self._malformed = _Throttle("malformed signed")

    def screen(self, body: bytes, headers: Mapping[str, str]) -> Verdict | None:
        """None when the request is Slack's and well-formed; else the answer to give instead."""
        problem = self._signature_problem(body, headers)
        if problem:
            self._unsigned.note(problem)
            return UNSIGNED
        problem = _shape_problem(body, headers.get("Content-Type", ""))
        if problem:
            self._malformed.note(problem)
            return MALFORMED
        return None

    def _signature_problem(self, body: bytes, headers: Mapping[str, str]) -> str:
        stamp = headers.get("X-Slack-Request-Timestamp", "")
        signature = headers.get("X-Slack-Signature", "")
        if not stamp or not signature:
            return "no signature"
        if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
            return "timestamp is not a number"
        if abs(self._clock() - int(stamp)) > MAX_AGE_S:
            return "stale timestamp"
        base = b"v0:" + stamp.encode() + b":" + body
        expected = "v0=" + hmac.new(self._secret, base, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            return "bad signature"
        return ""


def _shape_problem(body: bytes, content_type: str) -> str:
    """What Bolt would choke on in a signed body: not UTF-8, not JSON, not one object."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not UTF-8"
    media = content_type.split(";", 1)[0].strip().lower()
    try:
        parsed = parse_body(text, media or None)
    except ValueError:  # json.JSONDecodeError included
        return "body is not valid JSON"
    if not isinstance(parsed, dict):
        return "body is not a JSON object"
    return ""


def clean_text(value: str) -> str:
    """A lone UTF-16 surrogate (valid JSON, invalid Unicode) becomes U+FFFD: the SDKs cannot send it."""
    return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        for k, v in value.items():
            value[k] = _clean(v)
    elif isinstance(value, list):
        value[:] = [_clean(v) for v in value]
    return value


def incomplete_event(body: Mapping[str, Any]) -> str:
    """Why a signed event cannot be handled ("" when it can)."""
    if body.get("type") != "event_callback":
        return ""
    event = body.get("event")
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return "no event"
    if event["type"] in THREAD_EVENTS:
        for name in ("channel", "ts"):
            if not isinstance(event.get(name), str) or not event[name]:
                return f"{event['type']} event without {name}"
    return ""


async def edge_middleware(
    req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]]
) -> BoltResponse:
    """Bolt global middleware: clean relayed text; ack and drop events no listener can handle."""
    _clean(req.body)
    problem = incomplete_event(req.body)
    if problem:
        log.warning("dropped an incomplete event %s: %s", str(req.body.get("event_id", ""))[:40], problem)
        return BoltResponse(status=200, body="")
    return await next()
