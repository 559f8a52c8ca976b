"""Server-sent events → plain dicts, without a pydantic model per event.

Building the SDK's typed event for every delta is the largest CPU cost of a long answer
under load; the stream code only needs a few fields of each event, so it reads dicts.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import orjson

log = logging.getLogger(__name__)


async def sse_batches(chunks: AsyncIterable[bytes]) -> AsyncIterator[list[dict[str, Any]]]:
    """The events each network read completes, together: a reader that fell behind takes a
    burst of deltas as one step instead of one trip through the turn per delta."""
    pending = b""
    data: list[bytes] = []
    async for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        batch = [e for e in (_line(line.rstrip(b"\r"), data) for line in lines) if e is not None]
        if batch:
            yield batch
    tail = [pending.rstrip(b"\r"), b""] if pending else [b""]
    batch = [e for e in (_line(line, data) for line in tail) if e is not None]
    if batch:
        yield batch


async def sse_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[dict[str, Any]]:
    """The JSON object of each event's `data:` lines; `[DONE]` and non-objects are skipped."""
    async for batch in sse_batches(chunks):
        for event in batch:
            yield event


def _line(line: bytes, data: list[bytes]) -> dict[str, Any] | None:
    """Feed one line; returns the event a blank line completes."""
    if line:
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        # `event:` repeats the payload's own `type`; ids, retries and comments are not used.
        return None
    if not data:
        return None
    payload = b"\n".join(data)
    data.clear()
    if payload == b"[DONE]":
        return None
    try:
        parsed = orjson.loads(payload)
    except orjson.JSONDecodeError:
        log.warning("skipped a stream event that is not JSON (%d bytes)", len(payload))
        return None
    return parsed if isinstance(parsed, dict) else None
