"""Slack markup in untrusted text (model output, file names) made harmless before it is posted.

Slack turns `<!here>`, `<!channel>`, `<!everyone>`, `<!subteam^…>` and `<@U…>` into pings and
`<https://…|label>` into a link whose target the reader cannot see; the model (or a user who
names a file) can write any of them. `neutralize` rewrites them as plain text that reads the
same but pings nobody: `@here` with a word joiner after the `@`, and `label (https://…)`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

JOINER = "\u2060"  # word joiner: invisible, and breaks Slack's `@here` / `<!here>` parsing
# One piece of Slack markup: <!special…>, <@user…>, or <scheme:target|label>.
_MARKUP = re.compile(r"<([!@][^<>\n]*|[A-Za-z][A-Za-z0-9+.\-]*:[^<>\s|]*(?:\|[^<>\n]*)?)>")
_BARE = re.compile(r"(?<![\w@])@(here|channel|everyone)\b", re.IGNORECASE)
# What an unfinished piece of markup at the end of streamed text may look like so far.
_PARTIAL = re.compile(
    r"<(?:[!@][^<>\n]{0,120}|[A-Za-z][A-Za-z0-9+.\-]{0,30}(?::[^<>\s|]{0,2000}(?:\|[^<>\n]{0,200})?)?)?$"
    r"|(?<![\w@])@[A-Za-z]{0,8}$"
)
_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^<>]*)?>")
_BARE_WORDS = ("here", "channel", "everyone")


def neutralize(text: str, allowed_users: frozenset[str] = frozenset()) -> str:
    """Text with Slack's pings and link markup rewritten harmlessly (mentions in `allowed_users` kept)."""
    if "<" not in text and "@" not in text:
        return text
    text = _MARKUP.sub(lambda m: _rewrite(m, allowed_users), text)
    return _BARE.sub(lambda m: f"@{JOINER}{m.group(1)}", text)


def _rewrite(match: re.Match[str], allowed_users: frozenset[str]) -> str:
    inner = match.group(1)
    target, _, label = inner.partition("|")
    if inner.startswith("@"):
        user = target[1:]
        if user in allowed_users:
            return match.group(0)
        return f"@{JOINER}{label.lstrip('@') or user}"
    if inner.startswith("!"):
        name = target[1:]
        if name.startswith("date^"):
            return label or "a date"
        shown = label.lstrip("@") or name.split("^")[-1]
        return f"@{JOINER}{shown}"
    return f"{label} ({target})" if label and label != target else target


def partial_markup_at(text: str) -> int:
    """Where trailing text that may still become markup starts (len(text) when none does)."""
    match = _PARTIAL.search(text)
    if match is None:
        return len(text)
    tail = match.group(0)
    if tail.startswith("@") and not any(w.startswith(tail[1:].lower()) for w in _BARE_WORDS):
        return len(text)
    return match.start()


def mentioned_users(texts: Iterable[str]) -> frozenset[str]:
    """The user ids mentioned (`<@U…>`) in the given texts."""
    return frozenset(m.group(1) for text in texts for m in _USER_MENTION.finditer(text))
