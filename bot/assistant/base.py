"""The backend protocol: what a Turn asks of an assistant server, and what comes back."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from bot.attachments import LocalFile
from bot.inbound import Inbound, ThreadKey
from bot.tools import ToolContext, ToolSet

# Words both backends show users or the model, kept in one place so they stay alike.
NO_CODE_INTERPRETER = "data files need the code interpreter, which is turned off for this bot"
SEED_HEADER = "Earlier messages in this Slack thread, before you were added:\n"
TOOL_STATUS = {
    "file_search": "searching files…",
    "code_interpreter": "running code…",
    "web_search": "searching the web…",
}
# Task titles while a tool is at work (the task list of a streaming reply, or the status line).
TASK_TITLES = {
    "file_search": "Searching files",
    "code_interpreter": "Running code",
    "web_search": "Searching the web",
    "function": "Using {name}",
    "mcp_call": "Calling {name} on {server}",
    "mcp_list_tools": "Listing the tools of {server}",
}


@dataclass(frozen=True, slots=True)
class Binding:
    """What Redis remembers for a ThreadKey."""

    backend: str
    conversation_id: str
    vector_store_id: str = ""
    created_at: float = 0.0
    last_active: float = 0.0
    data_file_ids: tuple[str, ...] = ()  # files the code interpreter mounts in every turn

    def to_mapping(self) -> dict[str, str]:
        return {
            "backend": self.backend,
            "conversation_id": self.conversation_id,
            "vector_store_id": self.vector_store_id,
            "created_at": repr(self.created_at),
            "last_active": repr(self.last_active),
            "data_file_ids": ",".join(self.data_file_ids),
        }

    @classmethod
    def from_mapping(cls, raw: dict[str, str]) -> Binding:
        return cls(
            backend=raw["backend"],
            conversation_id=raw["conversation_id"],
            vector_store_id=raw.get("vector_store_id", ""),
            created_at=float(raw.get("created_at") or 0),
            last_active=float(raw.get("last_active") or 0),
            data_file_ids=tuple(x for x in raw.get("data_file_ids", "").split(",") if x),
        )


# How the model uses an attached file; "none" for one it could not take.
FileUse = Literal["file_search", "vision", "code_interpreter", "none"]


@dataclass(frozen=True, slots=True)
class Attached:
    """A file the backend accepted, and how the model will use it."""

    name: str
    remote_id: str
    usage: FileUse
    error: str = ""  # set when the server refused or failed to index it (safe to show)
    data_url: str = ""  # an image sent inline, for servers that refuse vision uploads


@dataclass(frozen=True, slots=True)
class Status:
    """The assistant is doing something worth telling the user about."""

    text: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Citation:
    """A source the answer relies on; rendered as a numbered footnote (a link when it has a url)."""

    filename: str
    file_id: str = ""
    url: str = ""


@dataclass(frozen=True, slots=True)
class OutputFile:
    """A file the assistant produced (a chart, a CSV) to post back to Slack."""

    name: str
    content: bytes
    mimetype: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool at work (function, hosted search, MCP call), shown as a task of the reply.

    The same `id` comes again when the call ends: `status` goes from "in_progress" to
    "complete" or "error".
    """

    name: str
    id: str = ""
    status: str = "in_progress"
    title: str = ""


@dataclass(frozen=True, slots=True)
class ApprovalRequested:
    """An MCP server wants to run a tool that needs a person's yes; the run waits for it."""

    id: str  # the approval request's id on the server
    server: str
    tool: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the thread should hear once, beside the answer (e.g. a tool server failed)."""

    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one model call used (a turn with tool rounds reports one per call)."""

    model: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ItemsStored:
    """Server-side items this run stored for one Slack message (`ts`), or for the answer (`ts` "").

    The Turn keeps the mapping, so deleting the message in Slack deletes these items too.
    """

    ts: str
    item_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Completed:
    text: str = ""


@dataclass(frozen=True, slots=True)
class Failed:
    """The run ended without an answer; `message` is safe to show to users."""

    message: str
    retryable: bool = True
    # Whether this turn's user messages are in the server-side conversation (None: unknown).
    kept: bool | None = None


RunEvent = (
    Status
    | TextDelta
    | Citation
    | OutputFile
    | ToolCall
    | ApprovalRequested
    | Notice
    | Usage
    | ItemsStored
    | Completed
    | Failed
)


class BackendError(Exception):
    """A backend call failed; `user_message` is safe to show, the str() is for the logs."""

    def __init__(self, message: str, *, retryable: bool = False, user_message: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.user_message = user_message or "The assistant service is unavailable right now."
        # Whether this turn's user messages made it into the server-side conversation anyway.
        self.kept = False


class ConversationGone(BackendError):
    """The server no longer knows the conversation bound to this thread."""


class ConversationBusy(BackendError):
    """Another run is still active on the conversation (e.g. one a dead worker started)."""


@dataclass(frozen=True, slots=True)
class RunRequest:
    """Everything one backend run needs besides the binding."""

    inputs: tuple[Inbound, ...]
    tools: ToolSet
    attached: tuple[Attached, ...] = ()
    seed: tuple[str, ...] = field(default=())
    context: ToolContext | None = None  # what function tools learn about the asker
    approvals: tuple[Approval, ...] = ()  # MCP approval decisions this run continues with
    # The channel's configuration; empty means the backend's own default.
    model: str = ""
    instructions: str = ""
    # A salted hash of the Slack user, never the raw id (OpenAI's abuse detection per end user).
    safety_identifier: str = ""
    # Slack ts of inputs the conversation already holds (a Turn resumed after a shutdown or
    # crash): they are not sent again. `on_kept` is told when this run's inputs are held.
    kept: frozenset[str] = frozenset()
    on_kept: Callable[[], Awaitable[None]] | None = None


@dataclass(frozen=True, slots=True)
class Approval:
    """A person's decision on an MCP approval request."""

    request_id: str
    approve: bool


class Backend(Protocol):
    """One assistant server dialect (responses or legacy assistants)."""

    name: str

    async def open(self, key: ThreadKey, metadata: dict[str, str]) -> Binding: ...

    async def attach(self, binding: Binding, files: list[LocalFile]) -> tuple[Binding, list[Attached]]: ...

    def run(self, binding: Binding, request: RunRequest) -> AsyncGenerator[RunEvent, None]:
        """The run's events; close it (contextlib.aclosing) so its clean-up runs in the Turn."""
        ...

    async def forget_file(self, binding: Binding, remote_id: str) -> None: ...

    async def keep_answer(self, binding: Binding, text: str) -> None:
        """A stopped answer's text, as far as it got, becomes the assistant's turn in the conversation."""
        ...

    async def add(self, binding: Binding, inputs: Sequence[Inbound]) -> list[ItemsStored]:
        """Store messages in the conversation without a model run (the next turn sees them)."""
        ...

    async def forget_items(self, binding: Binding, item_ids: Sequence[str]) -> None:
        """Delete these items (messages) from the server-side conversation; gone already is fine."""
        ...

    async def close(self, binding: Binding) -> None: ...

    async def annotate(self, binding: Binding, metadata: dict[str, str]) -> None: ...

    async def check(self) -> list[str]: ...

    def notes(self) -> list[str]:
        """How the bot adapts to this server (file purposes, images), for `threadbridge check`."""
        ...

    async def aclose(self) -> None: ...
