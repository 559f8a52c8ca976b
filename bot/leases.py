"""One heartbeat per process keeps every thread lock it holds alive, in one Redis step."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from bot.store import Lease, Store

log = logging.getLogger(__name__)


class Heartbeat:
    """Extends the leases of all turns running in this process every third of a lease.

    One task and one script call per beat, however many turns run: a thousand concurrent
    turns cost one round trip every few seconds instead of a task and a call each.
    """

    def __init__(self, store: Store, *, lease_ms: int, consumer: str) -> None:
        self._store = store
        self._lease_ms = lease_ms
        self._consumer = consumer
        self._held: dict[str, Lease] = {}
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def hold(self, lease: Lease) -> AsyncIterator[None]:
        """Keep `lease` alive for the duration of the block."""
        self._held[lease.token] = lease
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._beat())
        try:
            yield
        finally:
            self._held.pop(lease.token, None)

    async def _beat(self) -> None:
        interval = self._lease_ms / 3000
        while self._held:
            await asyncio.sleep(interval)
            leases = list(self._held.values())
            try:
                held = await self._store.extend(leases, self._lease_ms, self._consumer)
            except Exception as exc:
                log.warning("lease extension failed for %d turn(s): %s", len(leases), type(exc).__name__)
                continue
            for lease, ok in zip(leases, held, strict=True):
                if not ok and self._held.pop(lease.token, None) is not None:
                    log.warning("lease of %s lapsed", lease.key, extra={"thread_key": str(lease.key)})

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
