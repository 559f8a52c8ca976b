"""The Redis Streams work queue: the edge's intake and the worker loop that drains it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from bot import metrics
from bot.inbound import Enqueued, Inbound, ThreadKey
from bot.store import Store

log = logging.getLogger(__name__)

Handler = Callable[[str, str], Awaitable[None]]
READ_BLOCK_MS = 1_000
MAX_BACKOFF_S = 5.0


class TurnQueue:
    """The edge's side: decide whether a thread is ours and queue messages exactly once."""

    def __init__(self, store: Store, *, maxlen: int, flood_limit: int) -> None:
        self._store = store
        self._maxlen = maxlen
        self._flood_limit = flood_limit

    async def is_active(self, key: ThreadKey) -> bool:
        return await self._store.is_ours(key)

    async def accept(self, inbound: Inbound) -> Enqueued:
        result = await self._store.enqueue(inbound, maxlen=self._maxlen, flood_limit=self._flood_limit)
        metrics.inc("messages_total", result=result.name.lower())
        return result


class Worker:
    """Reads queued messages (new and reclaimed from dead workers) and runs them concurrently."""

    def __init__(
        self, store: Store, handler: Handler, *, consumer: str, max_turns: int, lease_ms: int
    ) -> None:
        self._store = store
        self._handler = handler
        self._consumer = consumer
        self._max_turns = max_turns
        self._reclaim_idle_ms = lease_ms + 1_000
        self._reclaim_every_s = max(lease_ms / 2000, 0.5)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def ensure_group(self) -> None:
        await self._store.ensure_group()

    async def run(self) -> None:
        """Work until stop() is called; survives Redis outages by backing off and retrying."""
        backoff = 0.1
        next_reclaim = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                if not self.ready.is_set():
                    # After an outage Redis may have restarted empty (no persistence): recreate.
                    await self.ensure_group()
                    self.ready.set()
                slots = self._max_turns - len(self._tasks)
                if slots <= 0:
                    await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
                    continue
                if loop.time() >= next_reclaim:
                    next_reclaim = loop.time() + self._reclaim_every_s
                    if await self._reclaim(slots):
                        continue
                await self._read(slots)
                backoff = 0.1
            except (RedisError, OSError) as exc:
                self.ready.clear()
                log.warning("redis unavailable (%s); retrying in %.1fs", type(exc).__name__, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _read(self, slots: int) -> None:
        read = asyncio.ensure_future(self._store.read_new(self._consumer, slots, READ_BLOCK_MS))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({read, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not read.done():
            # Stopping: a blocked read is abandoned, not waited out (up to a second per process
            # shutdown). Anything it was about to deliver stays pending and is reclaimed.
            read.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await read
            return
        for entry_id, payload in read.result():
            self._start(entry_id, payload)

    async def _reclaim(self, slots: int) -> bool:
        """Take over entries whose worker stopped heartbeating (crashed or was killed)."""
        taken, entries = await self._store.reclaim(self._consumer, self._reclaim_idle_ms, slots)
        for entry_id, payload in entries:
            metrics.inc("turns_reclaimed_total")
            log.info("reclaimed queued message %s from a stopped worker", entry_id)
            self._start(entry_id, payload)
        return taken

    def _start(self, entry_id: str, payload: str) -> None:
        task = asyncio.create_task(self._safely(entry_id, payload))
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        metrics.gauge("turns_in_flight", len(self._tasks))

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        metrics.gauge("turns_in_flight", len(self._tasks))

    async def _safely(self, entry_id: str, payload: str) -> None:
        try:
            await self._handler(entry_id, payload)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("queued message %s failed; it stays pending for another worker", entry_id)

    async def stop(self, grace_s: float) -> None:
        """Stop reading, give in-flight turns `grace_s` to finish, then cancel the rest."""
        self._stopping.set()
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                log.warning(
                    "%d turn(s) did not finish in %ss; left for other workers",
                    len(pending),
                    grace_s,
                )
                await asyncio.wait(pending, timeout=5)
