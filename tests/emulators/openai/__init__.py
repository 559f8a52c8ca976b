"""OpenAI HTTP API emulator for integration tests (Responses, Conversations, Files, …)."""

from .emulator import OpenAIEmulator
from .responses import StoredResponse
from .state import (
    Container,
    ContainerFile,
    Conversation,
    Recorded,
    StoredFile,
    VectorStore,
    VectorStoreFileState,
)

__all__ = [
    "Container",
    "ContainerFile",
    "Conversation",
    "OpenAIEmulator",
    "Recorded",
    "StoredFile",
    "StoredResponse",
    "VectorStore",
    "VectorStoreFileState",
]
