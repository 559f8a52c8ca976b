"""OpenAI HTTP API emulator for integration tests (Responses, Conversations, Files, Assistants, …)."""

from .emulator import OpenAIEmulator
from .responses import StoredResponse
from .state import (
    Assistant,
    Container,
    ContainerFile,
    Conversation,
    Recorded,
    StoredFile,
    Thread,
    VectorStore,
    VectorStoreFileState,
)

__all__ = [
    "Assistant",
    "Container",
    "ContainerFile",
    "Conversation",
    "OpenAIEmulator",
    "Recorded",
    "StoredFile",
    "StoredResponse",
    "Thread",
    "VectorStore",
    "VectorStoreFileState",
]
