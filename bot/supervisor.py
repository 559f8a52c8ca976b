"""The worker processes `threadbridge run` starts beside its Slack edge, and keeps running.

Turns cost CPU (parsing model streams, rendering, Slack and OpenAI calls); acks must not
wait behind that work. So by default the process that answers Slack only queues, and the
turns run in child `threadbridge worker` processes that share its environment and Redis,
one event loop each, on their own cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
PR_SET_PDEATHSIG = 1


def _child_setup(nice: int) -> Callable[[], None]:
    def setup() -> None:
        # A worker whose `run` was killed outright (SIGKILL, OOM) must not live on unsupervised.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        # Acks have a 3 s deadline and cost little; turns are throughput work. When the cores
        # are busy, the scheduler should run the edge first.
        with contextlib.suppress(OSError):
            os.nice(nice)

    return setup


class WorkerProcesses:
    """Starts `count` worker processes and restarts any that exits until stop()."""

    def __init__(self, count: int, *, nice: int = 0, env: dict[str, str] | None = None) -> None:
        self._count = count
        self._nice = nice
        self._env = env  # added to this process's environment
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs.values()]

    async def start(self) -> None:
        for slot in range(self._count):
            await self._spawn(slot)
            self._tasks.append(asyncio.create_task(self._watch(slot)))
        log.info("started %d worker process(es): %s", self._count, self.pids)

    async def _spawn(self, slot: int) -> None:
        self._procs[slot] = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "worker",
            "--no-http",
            preexec_fn=_child_setup(self._nice),
            env={**os.environ, **self._env} if self._env else None,
        )

    async def _watch(self, slot: int) -> None:
        failures = 0
        while True:
            code = await self._procs[slot].wait()
            if self._stopping:
                return
            delay = RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)]
            log.warning("worker process %d exited with %s; restarting in %.0fs", slot, code, delay)
            failures += 1
            await asyncio.sleep(delay)
            if self._stopping:
                return
            await self._spawn(slot)

    def signal(self, sig: int) -> None:
        """Pass a signal on (SIGHUP: reload the configuration file)."""
        for proc in self._procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)

    async def stop(self, grace_s: float) -> None:
        """SIGTERM every worker (each finishes its turns within the grace), then wait."""
        self._stopping = True
        for proc in self._procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in self._procs.values():
            try:
                await asyncio.wait_for(proc.wait(), grace_s + 10)
            except TimeoutError:
                log.warning("worker process %s did not stop in time; killing it", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for task in self._tasks:
            task.cancel()
