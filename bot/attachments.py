"""Files shared in a thread: what kind each is and where the assistant can use it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath


class FileKind(StrEnum):
    DOCUMENT = "document"  # text, docs, code → file search
    IMAGE = "image"  # vision input
    DATA = "data"  # tables → code interpreter
    UNSUPPORTED = "unsupported"


# What OpenAI file search indexes (CSV/XLSX are not among them: they go to the code interpreter).
DOCUMENT_EXTENSIONS = frozenset(
    [
        ".c",
        ".cpp",
        ".cs",
        ".css",
        ".doc",
        ".docx",
        ".go",
        ".html",
        ".java",
        ".js",
        ".json",
        ".md",
        ".pdf",
        ".php",
        ".pptx",
        ".py",
        ".rb",
        ".sh",
        ".tex",
        ".ts",
        ".txt",
    ]
)
IMAGE_EXTENSIONS = frozenset([".png", ".jpg", ".jpeg", ".gif", ".webp"])
DATA_EXTENSIONS = frozenset([".csv", ".tsv", ".xlsx", ".xls"])
IMAGE_MIMETYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


def classify(name: str, mimetype: str = "") -> FileKind:
    """The kind of a file from its name (and mimetype, for images pasted without a name)."""
    ext = PurePosixPath(name.lower()).suffix
    if ext in IMAGE_EXTENSIONS or mimetype in IMAGE_MIMETYPES:
        return FileKind.IMAGE
    if ext in DATA_EXTENSIONS:
        return FileKind.DATA
    if ext in DOCUMENT_EXTENSIONS or (not ext and mimetype.startswith("text/")):
        return FileKind.DOCUMENT
    return FileKind.UNSUPPORTED


def parse_kinds(text: str) -> frozenset[FileKind]:
    """`document,image,data` → the kinds; an unknown name is a configuration error."""
    names = {part.strip().lower() for part in text.split(",") if part.strip()}
    allowed = {k.value for k in FileKind} - {FileKind.UNSUPPORTED.value}
    unknown = names - allowed
    if unknown:
        raise ValueError(f"unknown file kind(s) {sorted(unknown)}; use any of {sorted(allowed)}")
    return frozenset(FileKind(n) for n in names)


def supported_list() -> str:
    """For user-facing messages: the extensions the bot accepts."""
    exts = sorted(DOCUMENT_EXTENSIONS | IMAGE_EXTENSIONS | DATA_EXTENSIONS)
    return ", ".join(e.lstrip(".") for e in exts)


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A file downloaded from Slack, ready to hand to a backend."""

    name: str
    mimetype: str
    content: bytes
    slack_file_id: str = ""

    @property
    def kind(self) -> FileKind:
        return classify(self.name, self.mimetype)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A shared file the bot could not take, with a reason fit to show the user."""

    name: str
    reason: str
