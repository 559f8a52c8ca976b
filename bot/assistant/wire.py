"""The turn's hot-path OpenAI calls on the client's own aiohttp pool: the streamed
`POST /responses` (read as SSE dicts) and `POST /conversations`.

Under load the SDK's request path (parameter transform, httpx2 request and response, the
aiohttp bridge under them, a pydantic model per answer) cost more CPU than everything the
turn does with the events, and an open httpx2 stream holds several objects per turn. These
calls need none of it: the bodies are plain JSON and the answers are read as dicts
(sse.py for the events). Everything else the SDK gives a request is kept: its headers and
credentials, base URL, default query, timeout, the same retries (408/409/429/5xx and lost
connections, Retry-After honoured, `x-should-retry` obeyed) and the SDK's own exception
classes, so errors read the same on either path.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import httpx2
import openai
import orjson
from openai import AsyncOpenAI

from bot.assistant.sse import sse_batches

log = logging.getLogger(__name__)

INITIAL_RETRY_DELAY_S = 0.5  # the SDK's backoff: 0.5 s doubling to 8 s, less up to 25 % jitter
MAX_RETRY_DELAY_S = 8.0
MAX_RETRY_AFTER_S = 120.0  # a server asking for longer is not retried (as the SDK does)
STATUS_ERRORS: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    403: openai.PermissionDeniedError,
    404: openai.NotFoundError,
    409: openai.ConflictError,
    422: openai.UnprocessableEntityError,
    429: openai.RateLimitError,
}


class StreamBroken(Exception):
    """The connection failed after the response had begun: the answer so far is all there is."""


class Wire:
    """POSTs with the SDK client's settings on one bounded pool; everything else stays the SDK's."""

    def __init__(self, client: AsyncOpenAI, session: aiohttp.ClientSession | None = None) -> None:
        self._client = client
        self._session = session
        self._own_session = session is None

    @contextlib.asynccontextmanager
    async def stream(
        self, path: str, body: Mapping[str, Any]
    ) -> AsyncIterator[AsyncIterator[list[dict[str, Any]]]]:
        """The events of one streamed answer, a network read's worth at a time.

        Raises the SDK's APIStatusError subclass for an error answer, APIConnectionError
        (or APITimeoutError) when no answer came, each after the client's retries; the
        iterator raises StreamBroken when the connection fails mid-stream.
        """
        response = await self._send(path, orjson.dumps(body), "text/event-stream")
        try:
            yield _events(response)
        finally:
            # Read to the end, the connection goes back to the pool; cut off, it is closed.
            if response.content.at_eof():
                response.release()
            else:
                response.close()

    async def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON object one call answers; errors as for stream()."""
        response = await self._send(path, orjson.dumps(body), "application/json")
        try:
            data = await response.read()
        except (aiohttp.ClientError, TimeoutError):
            raise openai.APIConnectionError(request=self._request(path)) from None
        finally:
            response.release()
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            answer = httpx2.Response(response.status, content=data, request=self._request(path))
            raise openai.APIResponseValidationError(answer, parsed)
        return parsed

    async def aclose(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()

    def _url(self, path: str) -> str:
        return str(self._client.base_url.join(path))

    def _request(self, path: str) -> httpx2.Request:
        """What the SDK's exceptions carry; built only when one is raised."""
        return httpx2.Request("POST", self._url(path))

    async def _send(self, path: str, data: bytes, accept: str) -> aiohttp.ClientResponse:
        client = self._client
        url = self._url(path)
        retries = client.max_retries
        for attempt in range(retries + 1):
            left = retries - attempt
            try:
                response = await self._http().post(
                    url,
                    data=data,
                    headers=self._headers(attempt, accept),
                    params=_query(client.default_query),
                    timeout=_timeout(client.timeout),
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                if left:
                    log.info("retrying POST /%s after %s", path, type(exc).__name__)
                    await asyncio.sleep(_backoff(attempt, None))
                    continue
                if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
                    raise openai.APITimeoutError(request=self._request(path)) from None
                raise openai.APIConnectionError(request=self._request(path)) from None
            if response.status < 400:
                return response
            body = await response.read()
            headers = httpx2.Headers(list(response.headers.items()))
            response.release()
            if left and _should_retry(response.status, headers):
                log.info("retrying POST /%s after HTTP %d", path, response.status)
                await asyncio.sleep(_backoff(attempt, headers))
                continue
            raise _status_error(response.status, headers, body, self._request(path))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _headers(self, retries_taken: int, accept: str) -> dict[str, str]:
        headers = {
            name: value
            for name, value in {**self._client.default_headers, **self._client.auth_headers}.items()
            if isinstance(value, str)  # Omit() marks a header the SDK leaves out
        }
        headers["Accept"] = accept
        headers["x-stainless-retry-count"] = str(retries_taken)
        return headers

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session


async def _events(response: aiohttp.ClientResponse) -> AsyncIterator[list[dict[str, Any]]]:
    try:
        async for batch in sse_batches(response.content.iter_any()):
            yield batch
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise StreamBroken(type(exc).__name__) from None


def _status_error(
    status: int, headers: httpx2.Headers, body: bytes, request: httpx2.Request
) -> openai.APIStatusError:
    """The exception the SDK raises for this answer (same class, message and body)."""
    response = httpx2.Response(status, headers=headers, content=body, request=request)
    message = f"Error code: {status}"
    data: object = body.decode("utf-8", "replace").strip()
    with contextlib.suppress(orjson.JSONDecodeError):
        data = orjson.loads(body)
    if isinstance(data, dict):
        data = data.get("error", data)
        if isinstance(data, dict) and isinstance(data.get("message"), str) and data["message"]:
            message += f" - {data['message']}"
    kind = STATUS_ERRORS.get(status, openai.InternalServerError if status >= 500 else openai.APIStatusError)
    return kind(message, response=response, body=data)


def _should_retry(status: int, headers: httpx2.Headers) -> bool:
    after = _retry_after(headers)
    if after is not None and after > MAX_RETRY_AFTER_S:
        return False
    explicit = headers.get("x-should-retry")
    if explicit in ("true", "false"):
        return explicit == "true"
    return status in (408, 409, 429) or status >= 500


def _backoff(attempt: int, headers: httpx2.Headers | None) -> float:
    after = _retry_after(headers) if headers is not None else None
    if after is not None and 0 < after <= MAX_RETRY_AFTER_S:
        return after
    return min(INITIAL_RETRY_DELAY_S * 2.0**attempt, MAX_RETRY_DELAY_S) * (1 - 0.25 * random.random())


def _retry_after(headers: httpx2.Headers) -> float | None:
    """Seconds the server asked to wait: `retry-after-ms`, then `retry-after` (seconds or a date)."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            delay = float(value)
        except ValueError:
            continue
        return delay / divisor if math.isfinite(delay) else MAX_RETRY_AFTER_S + 1
    date = email.utils.parsedate_tz(headers.get("retry-after") or "")
    return None if date is None else float(email.utils.mktime_tz(date) - time.time())


def _query(query: Mapping[str, object]) -> dict[str, str]:
    return {name: str(value) for name, value in query.items()}


def _timeout(timeout: float | httpx2.Timeout | None) -> aiohttp.ClientTimeout:
    """The client's timeout for a stream: connect and per-read limits, none on the whole answer."""
    if isinstance(timeout, httpx2.Timeout):
        return aiohttp.ClientTimeout(total=None, sock_connect=timeout.connect, sock_read=timeout.read)
    return aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
