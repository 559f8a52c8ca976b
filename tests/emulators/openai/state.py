"""In-memory server state of the OpenAI emulator, exposed to tests for assertions."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .assistants import Run


def new_id(prefix: str, sep: str = "_") -> str:
    """An id shaped like the real ones (`conv_68c1…`, `file-…`), unique per emulator run."""
    return f"{prefix}{sep}{secrets.token_hex(16)}"


def now() -> int:
    return int(time.time())


@dataclass
class Recorded:
    """One HTTP request as it reached the emulator, recorded before it is answered.

    `json` is the decoded JSON body; for a multipart upload it is a summary of the form
    (`{"purpose": …, "file": {"filename": …, "bytes": …}}`) filled in once it is parsed.
    Header names are lower-case.
    """

    method: str
    path: str
    json: dict[str, Any] | None
    headers: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)
    at: float = 0.0  # time.monotonic() on arrival: lets tests measure retry back-off
    status: int | None = None  # filled in once answered (streams: the status line sent)


@dataclass
class Conversation:
    id: str
    metadata: dict[str, str]
    items: list[dict[str, Any]] = field(default_factory=list)
    created_at: int = field(default_factory=now)
    # The response currently generating on this conversation; a second one is refused.
    locked_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "conversation",
            "created_at": self.created_at,
            "metadata": self.metadata,
        }


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int = field(default_factory=now)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


@dataclass
class VectorStoreFileState:
    """Indexing bookkeeping for one file in one vector store."""

    created_at: int = field(default_factory=now)
    attributes: dict[str, Any] | None = None
    polls: int = 0  # GETs answered so far while "in_progress"
    outcome: str = "completed"  # what the status becomes once indexing is done
    last_error: dict[str, str] | None = None


@dataclass
class VectorStore:
    id: str
    name: str
    metadata: dict[str, str]
    expires_after: dict[str, Any] | None
    files: dict[str, str] = field(default_factory=dict)  # file_id -> status
    details: dict[str, VectorStoreFileState] = field(default_factory=dict)
    created_at: int = field(default_factory=now)

    def completed_file_ids(self) -> list[str]:
        return [fid for fid, status in self.files.items() if status == "completed"]

    def to_json(self) -> dict[str, Any]:
        counts = {s: 0 for s in ("in_progress", "completed", "failed", "cancelled")}
        for status in self.files.values():
            counts[status] += 1
        expires_at = None
        if self.expires_after and isinstance(self.expires_after.get("days"), int):
            expires_at = self.created_at + self.expires_after["days"] * 86400
        return {
            "id": self.id,
            "object": "vector_store",
            "created_at": self.created_at,
            "name": self.name,
            "metadata": self.metadata,
            "status": "in_progress" if counts["in_progress"] else "completed",
            "usage_bytes": 0,
            "last_active_at": self.created_at,
            "expires_after": self.expires_after,
            "expires_at": expires_at,
            "file_counts": {**counts, "total": len(self.files)},
        }

    def file_json(self, file_id: str, *, usage_bytes: int = 0) -> dict[str, Any]:
        detail = self.details[file_id]
        status = self.files[file_id]
        return {
            "id": file_id,
            "object": "vector_store.file",
            "created_at": detail.created_at,
            "vector_store_id": self.id,
            "status": status,
            "usage_bytes": usage_bytes if status == "completed" else 0,
            "last_error": detail.last_error if status == "failed" else None,
            "attributes": detail.attributes,
            "chunking_strategy": {
                "type": "static",
                "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
            },
        }


@dataclass
class ContainerFile:
    id: str
    container_id: str
    path: str
    content: bytes
    source: str  # "assistant" for generated files, "user" for files copied in
    created_at: int = field(default_factory=now)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "container.file",
            "bytes": len(self.content),
            "container_id": self.container_id,
            "created_at": self.created_at,
            "path": self.path,
            "source": self.source,
        }


@dataclass
class Container:
    id: str
    name: str
    files: dict[str, ContainerFile] = field(default_factory=dict)
    created_at: int = field(default_factory=now)

    def add(self, path: str, content: bytes, source: str) -> ContainerFile:
        cfile = ContainerFile(new_id("cfile"), self.id, path, content, source)
        self.files[cfile.id] = cfile
        return cfile

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "container",
            "created_at": self.created_at,
            "name": self.name,
            "status": "running",
            "expires_after": {"anchor": "last_active_at", "minutes": 20},
            "last_active_at": self.created_at,
        }


@dataclass
class Assistant:
    """An Assistants v2 assistant: the defaults (model, instructions, tools) a run starts from."""

    id: str
    model: str
    name: str | None = None
    description: str | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_resources: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    created_at: int = field(default_factory=now)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "assistant",
            "created_at": self.created_at,
            "name": self.name,
            "description": self.description,
            "model": self.model,
            "instructions": self.instructions,
            "tools": self.tools,
            "tool_resources": self.tool_resources,
            "metadata": self.metadata,
            "top_p": 1.0,
            "temperature": 1.0,
            "response_format": "auto",
        }


@dataclass
class Thread:
    """An Assistants v2 thread: its messages (oldest first), runs and tool resources."""

    id: str
    metadata: dict[str, str]
    messages: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[str, Run] = field(default_factory=dict)  # oldest first
    # The vector store that file_search attachments land in (created on first use).
    vector_store_ids: list[str] = field(default_factory=list)
    code_interpreter_file_ids: list[str] = field(default_factory=list)
    # Messages before this index were already in the context of an earlier run.
    cursor: int = 0
    created_at: int = field(default_factory=now)

    def active_run(self) -> Run | None:
        for run in self.runs.values():
            if run.active:
                return run
        return None

    def user_texts(self) -> list[str]:
        """One string per user message: its text parts joined with " | "."""
        return [
            " | ".join(part["text"]["value"] for part in message["content"] if part.get("type") == "text")
            for message in self.messages
            if message["role"] == "user"
        ]

    def to_json(self) -> dict[str, Any]:
        resources: dict[str, Any] = {}
        if self.code_interpreter_file_ids:
            resources["code_interpreter"] = {"file_ids": list(self.code_interpreter_file_ids)}
        if self.vector_store_ids:
            resources["file_search"] = {"vector_store_ids": list(self.vector_store_ids)}
        return {
            "id": self.id,
            "object": "thread",
            "created_at": self.created_at,
            "metadata": self.metadata,
            "tool_resources": resources,
        }


@dataclass
class Failure:
    """A queued injected error (see `OpenAIEmulator.fail_next`)."""

    method: str
    path_prefix: str
    status: int
    code: str | None
    message: str
    retry_after: float | None
    times: int


# Per-request storage set by the emulator's middleware.
RECORDED: web.RequestKey[Recorded] = web.RequestKey("recorded", Recorded)
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
