"""Model Markdown → what Slack shows: message splitting, footnotes, mrkdwn fallback text."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from bot.slack.markup import neutralize, partial_markup_at

# Slack: 12,000 chars per markdown block / stream call, 40,000 per message. Staying well under
# the block limit keeps every message renderable in both the stream and the fallback path.
SOFT_LIMIT = 9_000
HARD_LIMIT = 11_000
MARKDOWN_LIMIT = 12_000
FENCE = re.compile(r"^\s*(```|~~~)(.*)$")
# Assistants-style inline markers such as 【4:0†handbook.pdf】 and code-interpreter links to
# its sandbox (the file itself is uploaded to the thread) must never reach Slack raw.
RAW_MARKER = re.compile(r"【[^】]*】|\(sandbox:[^)\s]*\)")
# Text from an opening mark that is not closed yet is held back until it is: a marker may
# arrive split across stream deltas.
OPENERS = (("【", "】"), ("(sandbox:", ")"))


@dataclass(frozen=True, slots=True)
class Piece:
    """A span of text for the current message; `new_message` starts the next one first."""

    text: str
    new_message: bool = False


class MessageSplitter:
    """Cuts a growing Markdown answer into Slack-sized messages without breaking code blocks.

    Text already streamed cannot be taken back, so cuts are decided as text arrives: after
    SOFT_LIMIT at the next paragraph break outside a code block, and at HARD_LIMIT anywhere
    (closing an open code fence and reopening it in the next message).
    """

    def __init__(
        self, soft: int = SOFT_LIMIT, hard: int = HARD_LIMIT, *, allowed_users: frozenset[str] = frozenset()
    ) -> None:
        self.soft = soft
        self.hard = hard
        self._allowed_users = allowed_users
        self._size = 0
        self._line = ""
        self._fence: str | None = None  # the opening fence line while inside a code block
        self._held = ""

    def feed(self, text: str, *, final: bool = False) -> list[Piece]:
        """Pieces for `text`; `final=True` flushes anything held back."""
        text = RAW_MARKER.sub("", self._held + text)
        self._held = ""
        if not final:
            cut = min(_unclosed(text), partial_markup_at(text))
            text, self._held = text[:cut], text[cut:]
        # Model output is untrusted: no pings, no links with hidden targets.
        text = neutralize(text, self._allowed_users)
        pieces: list[Piece] = []
        out = ""
        new_message = False
        pos = 0
        # A line at a time: only a line that crosses the hard limit is cut character by character.
        while pos < len(text):
            newline = text.find("\n", pos)
            end = len(text) if newline == -1 else newline
            segment = text[pos:end]
            if self._size + len(segment) <= self.hard:
                out += segment
                self._size += len(segment)
                self._line += segment
            else:
                for ch in segment:
                    if self._size >= self.hard:
                        closing = "\n```" if self._fence else ""
                        pieces.append(Piece(out + closing, new_message))
                        out = (self._fence + "\n") if self._fence else ""
                        self._size = len(out)
                        new_message = True
                    out += ch
                    self._size += 1
                    self._line += ch
            if newline == -1:
                break
            out += "\n"
            self._size += 1
            self._track_fence(self._line)
            self._line = ""
            if self._size >= self.soft and self._fence is None and out.endswith("\n\n"):
                pieces.append(Piece(out, new_message))
                out = ""
                self._size = 0
                new_message = True
            pos = newline + 1
        if out or new_message:
            pieces.append(Piece(out, new_message))
        return pieces

    def _track_fence(self, line: str) -> None:
        match = FENCE.match(line)
        if not match:
            return
        if self._fence is None:
            self._fence = line.strip()
        elif not match.group(2).strip():
            self._fence = None


def _unclosed(text: str) -> int:
    """Where a marker that has opened but not closed starts (len(text) when there is none)."""
    cut = len(text)
    for opener, closer in OPENERS:
        start = text.rfind(opener)
        if start != -1 and closer not in text[start:]:
            cut = min(cut, start)
    for opener, _ in OPENERS:
        # The text may end with the first characters of an opener.
        for n in range(len(opener) - 1, 0, -1):
            if text.endswith(opener[:n]):
                cut = min(cut, len(text) - n)
                break
    return cut


def source_line(name: str, url: str = "") -> str:
    """One footnote: a web source links to its page, a file is named."""
    if not url.startswith(("https://", "http://")):
        return name
    title = name.replace("[", "(").replace("]", ")") or url
    return f"[{title}]({url})"


def footnotes(names: Sequence[str]) -> str:
    """Numbered source list appended to an answer that cited files."""
    if not names:
        return ""
    lines = [f"[{i}] {neutralize(name)}" for i, name in enumerate(names, start=1)]
    return "\n\n**Sources**\n" + "\n".join(lines)


_BOLD = re.compile(r"\*\*(.+?)\*\*")
_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+)$", re.MULTILINE)
_STRIKE = re.compile(r"~~(.+?)~~")


def to_mrkdwn(markdown: str) -> str:
    """Markdown → Slack mrkdwn, for the plain `text` that notifications and old clients show."""
    text = RAW_MARKER.sub("", markdown)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1)}>", text)
    text = _HEADING.sub(lambda m: f"*{m.group(1).strip()}*", text)
    text = _BOLD.sub(lambda m: f"*{m.group(1)}*", text)
    return _STRIKE.sub(lambda m: f"~{m.group(1)}~", text)


def markdown_blocks(markdown: str) -> list[dict[str, str]]:
    """A message body as one Slack `markdown` block (Slack allows 12,000 chars across them)."""
    body = RAW_MARKER.sub("", markdown) or " "
    return [{"type": "markdown", "text": body[:MARKDOWN_LIMIT]}]


FEEDBACK_ACTION = "threadbridge_feedback"
# The values of the two feedback buttons, as Slack sends them back in the click.
FeedbackValue = Literal["good", "bad"]
FEEDBACK_VALUES: tuple[FeedbackValue, ...] = get_args(FeedbackValue)


def feedback_value(raw: object) -> FeedbackValue | None:
    """The button a click names, or None for anything else (a forged or foreign value)."""
    return next((v for v in FEEDBACK_VALUES if v == raw), None)


def feedback_block() -> dict[str, object]:
    """👍/👎 under a finished answer (Block Kit context_actions + feedback_buttons)."""
    return {
        "type": "context_actions",
        "elements": [
            {
                "type": "feedback_buttons",
                "action_id": FEEDBACK_ACTION,
                "positive_button": {"text": {"type": "plain_text", "text": "Good answer"}, "value": "good"},
                "negative_button": {"text": {"type": "plain_text", "text": "Bad answer"}, "value": "bad"},
            }
        ],
    }


STOP_ACTION = "threadbridge_stop"


def stop_block() -> dict[str, object]:
    """A Stop button on an answer being written, where Slack shows no Stop of its own."""
    return {
        "type": "actions",
        "block_id": "threadbridge_stop",
        "elements": [
            {
                "type": "button",
                "action_id": STOP_ACTION,
                "text": {"type": "plain_text", "text": "Stop"},
                "value": "stop",
            }
        ],
    }
