"""The identity of a Slack thread and the user messages the bot accepted in it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Literal

# "edit": a person edited a message the bot took (see bot/edits.py); "correction": how an edit
# reaches the model once the turn has decided what it means.
InboundKind = Literal["mention", "thread_reply", "dm", "approval", "edit", "correction"]


class Enqueued(IntEnum):
    """What became of a message offered to the queue."""

    SEEN = 0  # delivered before (a Slack retry, or the twin event of a mention)
    QUEUED = 1
    FLOODED = 2  # over its sender's flood limit


@dataclass(frozen=True, slots=True)
class ThreadKey:
    """One Slack thread: a top-level mention starts a thread whose thread_ts is its ts."""

    team_id: str
    channel_id: str
    thread_ts: str

    def __str__(self) -> str:
        return f"{self.team_id}:{self.channel_id}:{self.thread_ts}"

    @property
    def is_dm(self) -> bool:
        return self.channel_id.startswith("D")


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file shared with a message, as Slack described it (nothing downloaded yet)."""

    id: str
    name: str = ""
    mimetype: str = ""
    filetype: str = ""
    size: int = 0
    url: str = ""
    needs_info: bool = False


@dataclass(frozen=True, slots=True)
class Inbound:
    """One user message as the bot accepted it."""

    key: ThreadKey
    ts: str
    user: str
    text: str
    kind: InboundKind
    event_id: str = ""
    files: tuple[FileRef, ...] = field(default=())
    speaker: str = ""
    # kind "approval": a person's decision on an MCP approval request, continuing the run.
    approval_id: str = ""
    approve: bool = False
    # kind "edit"/"correction": the ts of the message that was edited (`ts` is the edit's own).
    edited_ts: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Inbound:
        data = json.loads(raw)
        data["key"] = ThreadKey(**data["key"])
        data["files"] = tuple(FileRef(**f) for f in data.get("files", ()))
        return cls(**data)

    def attributed_text(self) -> str:
        """The text as the model sees it: prefixed with who said it."""
        who = self.speaker or self.user
        if self.kind == "correction":
            # Already phrased by bot/edits.py ("corrected an earlier message: …"): a note, not words said.
            return f"{who} {self.text}" if who else self.text
        return f"{who}: {self.text}" if who else self.text

    @property
    def message_ts(self) -> str:
        """The Slack message this input speaks for: the edited one for an edit or correction."""
        return self.edited_ts or self.ts


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether the edge takes a message; a refusal's `note` is told privately to its sender."""

    ok: bool
    note: str = ""


ADMITTED = Admission(True)
