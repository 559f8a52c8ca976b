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


async def sse_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[dict[str, Any]]:
    """The JSON object of each event's `data:` lines; `[DONE]` and non-objects are skipped."""
    pending = b""
    data: list[bytes] = []
    async for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            event = _line(line.rstrip(b"\r"), data)
            if event is not None:
                yield event
    for line in [pending.rstrip(b"\r"), b""] if pending else [b""]:
        event = _line(line, data)
        if event is not None:
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
