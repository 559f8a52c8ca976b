"""Stopping a running answer: a stop asked in any process reaches the turn wherever it runs.

The edge that receives the click (Slack's own Stop, or our Stop button) publishes it on one
Redis pub/sub channel; every worker process holds one subscription and hands each request to
the turn of that thread it runs, if any. A thousand running turns cost one connection and
no polling. A stop published while a process is reconnecting to Redis is lost (the user can
press Stop again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.connections import separate_client
from bot.inbound import ThreadKey

log = logging.getLogger(__name__)

StopBy = Literal["asker", "anyone"]
Refused = Callable[[str], Awaitable[None]]
Progress = Callable[[], int]  # how much of the answer is written (grows while the turn runs)
MAX_BACKOFF_S = 5.0
# A cancellation can be lost in a library's race (asyncio.wait_for on Python 3.11 drops one
# that arrives as its inner call finishes). Lost, the answer goes on growing: then ask again.
# Not otherwise: a second cancellation would cut short the run's own clean-up (runs.cancel).
RECHECK_S = 0.25


class Stop:
    """One turn's watch: who may stop it, and who did (`by`, empty while it runs)."""

    def __init__(
        self, askers: frozenset[str] | None, on_refused: Refused | None, progress: Progress | None = None
    ) -> None:
        self.askers = askers  # None: anyone may stop it
        self.by = ""
        self._on_refused = on_refused
        self._progress = progress
        self._mark = 0
        self._task: asyncio.Task[Any] | None = None
        self._cancels = 0
        self._again: asyncio.TimerHandle | None = None

    def ask(self, user: str, *, force: bool, spawn: Callable[[Awaitable[None]], None]) -> None:
        """A stop request for this turn; honoured once, from someone allowed to make it."""
        if self.by or self._task is None:
            return
        if not force and self.askers is not None and user not in self.askers:
            if self._on_refused is not None:
                spawn(self._on_refused(user))
            return
        self.by = user or "someone"
        self._cancel()

    def _cancel(self) -> None:
        # Like asyncio.timeout: the turn's task is cancelled where it waits (mid-stream), and
        # the watch turns that cancellation back into a normal end when it exits.
        if self._task is None:
            return
        self._cancels += 1
        self._task.cancel()
        if self._progress is not None:
            self._mark = self._progress()
            self._recheck()

    def _recheck(self) -> None:
        self._again = asyncio.get_running_loop().call_later(RECHECK_S, self._check)

    def _check(self) -> None:
        if self._task is None or self._progress is None:
            return
        if self._progress() != self._mark:
            log.info("a stop was lost on its way into the turn; stopping it again")
            self._cancel()
        else:
            self._recheck()

    def _release(self) -> int:
        """Leave the watch: no more cancelling, ours taken back; returns those of others (shutdown)."""
        if self._again is not None:
            self._again.cancel()
            self._again = None
        task, self._task = self._task, None
        if task is None:
            return 0
        others = task.cancelling()
        for _ in range(self._cancels):
            others = task.uncancel()
        self._cancels = 0
        return others


class StopSignals:
    """Publishes stop requests and delivers them to the turns this process runs."""

    def __init__(self, redis: Redis, *, prefix: str, stop_by: StopBy = "asker") -> None:
        self._redis = redis
        self.channel = f"{prefix}stop"
        self._stop_by = stop_by
        self._turns: dict[str, Stop] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()

    async def request(self, key: ThreadKey, user: str, *, force: bool = False) -> int:
        """Ask whichever process runs `key`'s turn to stop it; returns how many processes heard it.

        `force`: Slack already stopped the answer's stream (its own Stop), so the answer cannot
        go on whoever pressed it.
        """
        message = json.dumps({"thread": str(key), "user": user, "force": force})
        return int(await self._redis.publish(self.channel, message))

    async def start(self) -> None:
        """Subscribe (once per process) before turns run, so no early stop is missed."""
        if self._task is None:
            self._task = asyncio.create_task(self._listen())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 5)

    @contextlib.asynccontextmanager
    async def watch(
        self,
        key: ThreadKey,
        askers: frozenset[str],
        *,
        on_refused: Refused | None = None,
        progress: Progress | None = None,
    ) -> AsyncIterator[Stop]:
        """While the block runs, a stop for `key` ends it early; `stop.by` then names who stopped it."""
        anyone = self._stop_by == "anyone" or key.is_dm
        stop = Stop(None if anyone else askers, on_refused, progress)
        stop._task = asyncio.current_task()
        name = str(key)
        self._turns[name] = stop
        try:
            yield stop
        except asyncio.CancelledError:
            if not stop.by or stop._release() > 0:
                raise  # not ours, or a shutdown came too
        finally:
            stop._release()
            if self._turns.get(name) is stop:
                del self._turns[name]

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            # Its own connection, outside the shared pool: a subscription holds one for good, and
            # a small pool (THREADBRIDGE_REDIS_POOL_SIZE) would be left one short for the turns.
            subscriber = separate_client(self._redis, max_connections=2)
            try:
                async with subscriber.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._subscribed.set()
                    backoff = 0.1
                    async for message in pubsub.listen():
                        self._deliver(message.get("data"))
            except (RedisError, OSError) as exc:
                self._subscribed.clear()
                log.warning("stop subscription lost (%s); retrying in %.1fs", type(exc).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await subscriber.aclose(close_connection_pool=True)

    def _deliver(self, data: Any) -> None:
        try:
            request = json.loads(data)
            stop = self._turns.get(str(request["thread"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed stop request")
            return
        if stop is not None:
            log.info("stop asked by %s", request.get("user"), extra={"thread_key": request["thread"]})
            stop.ask(str(request.get("user") or ""), force=bool(request.get("force")), spawn=self._spawn)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
