"""Crash recovery, graceful stop and scale-out with real processes on one Redis."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from redis.asyncio import Redis

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator
from tests.harness import bot_env, eventually, start_process, stop

BOT = "<@U0BOT>"
CHANNEL = "C0SCALE"


async def _runner_pid(redis_client: Redis, prefix: str) -> int:
    """The pid of the worker process holding the only pending queue entry (consumer host-pid-x)."""
    while True:
        pending = await redis_client.xpending_range(f"{prefix}turns", "workers", min="-", max="+", count=10)
        if pending:
            return int(pending[0]["consumer"].decode().split("-")[-2])
        await asyncio.sleep(0.05)  # polling Redis state another process writes


async def test_killed_worker_turn_is_finished_by_another_with_one_answer(
    slack: SlackEmulator,
    openai_emu: OpenAIEmulator,
    redis_url: str,
    prefix: str,
    redis_client: Redis,
    tmp_path: Path,
) -> None:
    edge = await start_process(
        slack,
        bot_env(slack, openai_emu, redis_url, prefix, THREADBRIDGE_WORKERS="false"),
        tmp_path / "edge.log",
    )
    workers = [
        await start_process(
            slack, bot_env(slack, openai_emu, redis_url, prefix), tmp_path / f"w{i}.log", "worker"
        )
        for i in range(2)
    ]
    try:
        ts = await edge.say(CHANNEL, f"{BOT} #slow #long:2500")
        await slack.wait_for(lambda: slack.calls_to("chat.startStream"), what="the answer to start streaming")
        # The runner records the streaming message's ts right after Slack returns it; a kill
        # before that instant leaves a message nobody knows about (see the README's notes).
        reply_key = f"{prefix}reply:T0TEAM:{CHANNEL}:{ts}"
        await eventually(lambda: redis_client.exists(reply_key), "the reply in flight to be recorded")
        victim_pid = await asyncio.wait_for(_runner_pid(redis_client, prefix), 10)
        victim = next(w for w in workers if w.process and w.process.pid == victim_pid)
        os.kill(victim_pid, signal.SIGKILL)
        survivor = next(w for w in workers if w is not victim)

        def finished() -> list[dict] | None:
            msgs = slack.bot_messages(CHANNEL, ts)
            done = [m for m in msgs if not m.get("streaming") and len(m.get("text") or "") >= 2400]
            return msgs if done else None

        msgs = await slack.wait_for(finished, timeout=30, what="the survivor to answer")
        assert len(msgs) == 1, [m.get("text", "")[:80] for m in msgs]
        assert not msgs[0].get("streaming")
        assert "reclaimed" in survivor.logs()
        assert slack.calls_to("chat.delete"), "the half-written answer was removed"
    finally:
        for proc in [edge, *workers]:
            await stop(proc)


async def test_sigterm_finishes_the_turn_in_flight_then_exits_cleanly(
    slack: SlackEmulator,
    openai_emu: OpenAIEmulator,
    redis_url: str,
    prefix: str,
    redis_client: Redis,
    tmp_path: Path,
) -> None:
    bot = await start_process(slack, bot_env(slack, openai_emu, redis_url, prefix), tmp_path / "bot.log")
    try:
        ts = await bot.say(CHANNEL, f"{BOT} #slow #long:1200")
        await slack.wait_for(lambda: slack.calls_to("chat.startStream"), what="streaming to start")
        assert bot.process is not None
        bot.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(bot.process.wait, 30)
        assert code == 0, bot.logs()
        [reply] = slack.bot_messages(CHANNEL, ts)
        assert not reply.get("streaming") and len(reply["text"]) >= 1150
        assert await redis_client.xpending(f"{prefix}turns", "workers") == {
            "pending": 0,
            "min": None,
            "max": None,
            "consumers": [],
        }
    finally:
        await stop(bot)


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


async def test_run_supervises_its_worker_process_and_restarts_it_when_it_dies(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    bot = await start_process(slack, bot_env(slack, openai_emu, redis_url, prefix), tmp_path / "bot.log")
    try:
        assert bot.process is not None
        [worker] = _children(bot.process.pid)
        ts = await bot.say(CHANNEL, f"{BOT} before")
        await bot.replies(CHANNEL, ts, 1)
        os.kill(worker, signal.SIGKILL)

        async def replaced() -> bool:
            assert bot.process is not None
            return bool(_children(bot.process.pid)) and _children(bot.process.pid) != [worker]

        await eventually(replaced, "a new worker process", timeout=15)
        ts = await bot.say(CHANNEL, f"{BOT} after")
        [reply] = await bot.replies(CHANNEL, ts, 1, timeout=30)
        assert "echo: Alice: after" in reply["text"]
        assert "restarting" in bot.logs()
        bot.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(bot.process.wait, 30) == 0
        assert not os.path.exists(f"/proc/{worker}")  # noqa: ASYNC240
    finally:
        await stop(bot)
