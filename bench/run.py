"""Threadbridge benchmark: the bot as a process against the emulators and a private Redis.

Measures, in one run:
- ack latency of signed mention events (Slack retries after 3 s),
- turn throughput (mentions in distinct threads until every answer is final),
- Redis commands per Turn (edge + worker, idle polling excluded),
- resident memory growth per thread.

Usage: .venv/bin/python -m bench.run [--threads 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator
from tests.harness import RedisServer, bot_env, free_port, start_process, stop

SLACK_ACK_DEADLINE_MS = 3000
POLLING = {"xreadgroup", "xautoclaim", "ping", "info", "client", "hello", "monitor"}


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class RoundTrips:
    """Counts client round trips to Redis with MONITOR: a script or a MULTI…EXEC block is one."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.count = 0
        self.by_command: dict[str, int] = {}
        self._in_multi: set[str] = set()

    async def run(self) -> None:
        async with self.client.monitor() as monitor:
            async for info in monitor.listen():
                self._see(info["client_type"], info["client_port"], info["command"].split(" ")[0].lower())

    def _see(self, client_type: str, port: str, cmd: str) -> None:
        if client_type == "lua" or cmd in POLLING:
            return
        if cmd == "multi":
            self._in_multi.add(port)
        elif cmd == "exec":
            self._in_multi.discard(port)
            return
        if port in self._in_multi and cmd != "multi":
            return
        self.count += 1
        self.by_command[cmd] = self.by_command.get(cmd, 0) + 1


async def main(threads: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(free_port(), Path(tmp))
        server.start()
        slack, openai_emu = SlackEmulator(), OpenAIEmulator()
        await slack.start()
        await openai_emu.start()
        slack.add_user("U0ALICE", name="alice", display_name="Alice")
        env = bot_env(
            slack,
            openai_emu,
            server.url,
            "bench:",
            THREADBRIDGE_LOG_LEVEL="WARNING",
            THREADBRIDGE_FLOOD_LIMIT="1000000",
        )
        bot = await start_process(slack, env, Path(tmp) / "bot.log")
        client = aioredis.Redis.from_url(server.url)
        try:
            assert bot.process is not None
            await warm_up(bot)
            rss_before = rss_kb(bot.process.pid)
            trips = RoundTrips(client)
            monitor = asyncio.create_task(trips.run())
            latencies: list[float] = []
            roots: list[str] = []
            started = time.perf_counter()
            for i in range(threads):
                ts, events = slack.user_says("C0BENCH", user="U0ALICE", text=f"<@U0BOT> question {i}")
                roots.append(ts)
                for event in events:
                    t0 = time.perf_counter()
                    status, _ = await bot.events.send(event)
                    latencies.append((time.perf_counter() - t0) * 1000)
                    assert status == 200
            await slack.wait_for(
                lambda: all(
                    any(not m.get("streaming") for m in slack.bot_messages("C0BENCH", ts)) for ts in roots
                ),
                timeout=300,
                what="every answer",
            )
            elapsed = time.perf_counter() - started
            monitor.cancel()
            rss_after = rss_kb(bot.process.pid)
        finally:
            await client.aclose()
            await stop(bot)
            await slack.stop()
            await openai_emu.stop()
            server.stop()
    report(threads, latencies, elapsed, trips, rss_before, rss_after)


async def warm_up(bot) -> None:  # type: ignore[no-untyped-def]
    ts = await bot.say("C0WARM", "<@U0BOT> warm up")
    await bot.replies("C0WARM", ts, 1)


def report(
    threads: int, latencies: list[float], elapsed: float, trips: RoundTrips, before: int, after: int
) -> None:
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(f"threads: {threads} (each a mention delivered as app_mention + message events)")
    print(
        f"ack latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms = {p99 / SLACK_ACK_DEADLINE_MS:.3f} of Slack's 3 s"
    )
    print(f"throughput: {threads / elapsed:.1f} turns/s ({elapsed:.1f} s for all answers)")
    per_turn = {k: round(v / threads, 2) for k, v in sorted(trips.by_command.items())}
    print(
        f"redis round trips per turn (edge + worker, idle polling excluded): {trips.count / threads:.2f}",
        per_turn,
    )
    print(
        f"rss: {before} kB → {after} kB = x{after / before:.2f}",
        f"({(after - before) / threads:.1f} kB per thread)",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=200)
    asyncio.run(main(parser.parse_args().threads))
