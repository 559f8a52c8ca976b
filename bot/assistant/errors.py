"""Map OpenAI SDK exceptions to BackendError, keeping secrets and bodies out of messages."""

from __future__ import annotations

import openai

from bot.assistant.base import BackendError, ConversationBusy

RETRY_LATER = "The assistant service is busy or unavailable right now. Please try again in a minute."


def translate(exc: openai.OpenAIError) -> BackendError:
    """One BackendError per SDK failure; str() names the status and code, never the key."""
    if isinstance(exc, openai.APITimeoutError):
        return BackendError("OpenAI request timed out", retryable=True, user_message=RETRY_LATER)
    if isinstance(exc, openai.APIConnectionError):
        return BackendError("cannot connect to the OpenAI API", retryable=True, user_message=RETRY_LATER)
    if isinstance(exc, openai.AuthenticationError):
        return BackendError(
            "OpenAI rejected the API key (401)",
            user_message="The bot's assistant credentials were rejected. Please tell the app's admin.",
        )
    if isinstance(exc, openai.APIStatusError):
        code = getattr(exc, "code", None) or ""
        detail = f"OpenAI answered {exc.status_code}{f' ({code})' if code else ''}"
        if code == "conversation_locked":
            return ConversationBusy(detail, retryable=True, user_message=RETRY_LATER)
        retryable = (
            exc.status_code in (408, 409, 429) or exc.status_code >= 500 or code == "conversation_locked"
        )
        return BackendError(detail, retryable=retryable, user_message=RETRY_LATER if retryable else "")
    if isinstance(exc, openai.APIError):
        code = getattr(exc, "code", None) or ""
        return BackendError(f"OpenAI stream error {code}".strip(), retryable=True, user_message=RETRY_LATER)
    return BackendError(type(exc).__name__, user_message=RETRY_LATER)
