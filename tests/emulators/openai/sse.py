"""Server-sent events framing, shared by every streaming endpoint of the emulator."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def encode(event: str, data: dict[str, Any] | str) -> bytes:
    """One SSE frame. JSON never contains a raw newline, so one `data:` line is enough."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"event: {event}\ndata: {payload}\n\n".encode()


class EventStream:
    """An open `text/event-stream` response that numbers the events it sends.

    Every Responses event carries a `sequence_number` that increases by one per event,
    starting at 0; this class owns that counter so renderers cannot get it wrong.
    """

    def __init__(self, response: web.StreamResponse) -> None:
        self._response = response
        self.sequence = 0

    @classmethod
    async def open(cls, request: web.Request, headers: dict[str, str] | None = None) -> EventStream:
        response = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                **(headers or {}),
            },
        )
        await response.prepare(request)
        return cls(response)

    @property
    def response(self) -> web.StreamResponse:
        return self._response

    async def send(self, data: dict[str, Any]) -> dict[str, Any]:
        """Send `data` (which must have a `type`) as `event: <type>`, numbering it first."""
        data["sequence_number"] = self.sequence
        self.sequence += 1
        await self._response.write(encode(data["type"], data))
        return data

    async def close(self) -> None:
        await self._response.write_eof()
