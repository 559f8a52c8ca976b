"""Slack outages: ride out transient Web API failures, and tell them from real refusals.

A 5xx, a 429 or a dropped connection says nothing about the request itself: the same call
succeeds once Slack recovers. The SDK's own handlers retry such failures two or three times
within a second or two, which a Slack incident easily outlasts; then a turn's writes failed and
its message was marked done, never answered. Here every call keeps trying, with backoff (and
Retry-After honoured), until a deadline; what still fails after it is `unavailable()`, which
the turn treats as "try again later", not as a broken message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterator
from contextvars import ContextVar

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

log = logging.getLogger(__name__)

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 4.0
# The SDK stops looping after 100 attempts whatever the handlers say (and then raises None).
MAX_ATTEMPTS = 90
# Best-effort calls (a status line, an intermediate edit) are not worth holding a turn up for.
BRIEF_S = 2.0

_patience: ContextVar[float | None] = ContextVar("slack_patience", default=None)


class SlackUnavailable(Exception):
    """Slack kept failing (5xx, 429, no connection) for the whole retry deadline."""


def unavailable(exc: BaseException) -> bool:
    """True when `exc` is Slack being down or throttling us, not a refusal of the request."""
    if isinstance(exc, SlackUnavailable):
        return True
    if isinstance(exc, SlackApiError):
        status = getattr(exc.response, "status_code", 200)
        return status == 429 or status >= 500
    return isinstance(exc, aiohttp.ClientConnectionError)


@contextlib.contextmanager
def patience(seconds: float) -> Iterator[None]:
    """Slack calls made in this block give up after `seconds` (if sooner than the deadline)."""
    token = _patience.set(seconds)
    try:
        yield
    finally:
        _patience.reset(token)


def brief() -> contextlib.AbstractContextManager[None]:
    """For calls whose failure costs nothing: retry only briefly."""
    return patience(BRIEF_S)


class OutageRetryHandler(AsyncRetryHandler):
    """Retries 5xx, 429 (after Retry-After) and connection errors until `deadline_s` has passed."""

    def __init__(self, deadline_s: float) -> None:
        super().__init__(max_retry_count=MAX_ATTEMPTS)
        self.deadline_s = deadline_s

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if not _transient(response, error):
            return False
        values = state.custom_values if state.custom_values is not None else {}
        state.custom_values = values
        started = values.setdefault("started", time.monotonic())
        remaining = self._deadline() - (time.monotonic() - started)
        delay = self._delay(state.current_attempt, response)
        what = _describe(request, response, error)
        if remaining <= 0 or (response is not None and response.status_code == 429 and delay > remaining):
            log.warning("Slack still unavailable (%s) after %.0fs; giving up", what, self._deadline())
            return False
        values["delay"] = min(delay, remaining)
        if state.current_attempt == 0:
            log.warning("Slack unavailable (%s); retrying for up to %.0fs", what, remaining)
        return True

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        state.next_attempt_requested = True
        await asyncio.sleep((state.custom_values or {}).get("delay", FIRST_DELAY_S))
        state.increment_current_attempt()

    def _deadline(self) -> float:
        brief_s = _patience.get()
        return self.deadline_s if brief_s is None else min(brief_s, self.deadline_s)

    @staticmethod
    def _delay(attempt: int, response: HttpResponse | None) -> float:
        if response is not None and response.status_code == 429:
            retry_after = _retry_after(response)
            if retry_after is not None:
                # Slack says when it will take the call again; sooner only burns the next slot.
                return max(retry_after, FIRST_DELAY_S) + random.uniform(0, 0.25)
        backoff = min(FIRST_DELAY_S * 2**attempt, MAX_DELAY_S)
        return backoff * random.uniform(0.75, 1.0)


def _transient(response: HttpResponse | None, error: Exception | None) -> bool:
    if response is not None:
        return response.status_code == 429 or response.status_code >= 500
    return isinstance(error, aiohttp.ClientConnectionError)


def _retry_after(response: HttpResponse) -> float | None:
    for name, values in response.headers.items():
        if name.lower() == "retry-after" and values:
            with contextlib.suppress(ValueError):
                return float(values[0])
    return None


def _describe(request: HttpRequest, response: HttpResponse | None, error: Exception | None) -> str:
    method = request.url.rstrip("/").rsplit("/", 1)[-1]
    if response is not None:
        return f"{method}: HTTP {response.status_code}"
    return f"{method}: {type(error).__name__}"
