"""Crashes mid-turn, as processes: a Redis killed and restarted from its AOF, a SIGTERM with a
short grace, a Redis that hangs. Each message is answered once and stored once."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator
from tests.harness import (
    RedisServer,
    conversation_ids,
    eventually,
    free_port,
    model_requests,
    start_process,
    stop,
)

BOT = "<@U0BOT>"
CHANNEL = "C0DURABLE"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server only this test uses, so it can be killed, restarted and paused."""
    server = RedisServer(free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            server.resume()
        server.stop()


async def _nothing_pending(redis_url: str, prefix: str) -> bool:
    client = Redis.from_url(redis_url)
    try:
        info = await client.xpending(f"{prefix}turns", "workers")
        return bool(info["pending"] == 0)
    finally:
        await client.aclose()


def _finished(slack: SlackEmulator, ts: str) -> list[dict] | None:
    msgs = slack.bot_messages(CHANNEL, ts)
    return msgs if msgs and not any(m.get("streaming") for m in msgs) else None


async def test_redis_killed_mid_turn_and_restarted_gives_one_answer(
    slack: SlackEmulator,
    openai_emu: OpenAIEmulator,
    own_redis: RedisServer,
    bot_env_vars: dict[str, str],
    prefix: str,
    tmp_path: Path,
) -> None:
    env = {**bot_env_vars, "REDIS_URL": own_redis.url}
    bot = await start_process(slack, env, tmp_path / "bot.log")
    try:
        ts = await bot.say(CHANNEL, f"{BOT} #stall what happened?")
        await openai_emu.wait_for(lambda: openai_emu.stalled == 1, what="the model call to start")
        own_redis.kill()
        # The answer is written while Redis is down: nothing about it can be recorded there.
        openai_emu.release()
        [answer] = await slack.wait_for(lambda: _finished(slack, ts), timeout=20, what="the answer")
        own_redis.start()

        async def settled() -> bool:
            # Either the queued message is closed, or it is being answered a second time.
            return len(model_requests(openai_emu)) > 1 or await _nothing_pending(own_redis.url, prefix)

        await eventually(settled, "the queued message to close", timeout=30)
        assert len(model_requests(openai_emu)) == 1, "answered again after the restart"
        msgs = slack.bot_messages(CHANNEL, ts)
        assert len(msgs) == 1, [m.get("text", "")[:80] for m in msgs]
        assert "echo: Alice: #stall what happened?" in answer["text"]
        assert "⚠️" not in answer["text"], "the answer was fine; only Redis was down"
        assert not slack.calls_to("chat.delete")
    finally:
        await stop(bot)


async def test_sigterm_mid_answer_resumes_each_turn_storing_the_question_once(
    slack: SlackEmulator,
    openai_emu: OpenAIEmulator,
    bot_env_vars: dict[str, str],
    redis_url: str,
    prefix: str,
    redis_client: Redis,
    tmp_path: Path,
) -> None:
    env = {**bot_env_vars, "THREADBRIDGE_SHUTDOWN_GRACE_SECONDS": "2"}
    first = await start_process(slack, env, tmp_path / "first.log")
    roots = []
    try:
        # About 6 s each: far longer than the grace.
        for i in range(3):
            roots.append(await first.say(CHANNEL, f"{BOT} question {i} #pace:0:120:50"))
        await slack.wait_for(
            lambda: len(slack.calls_to("chat.startStream")) == 3, timeout=15, what="3 answers streaming"
        )
        assert first.process is not None
        first.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(first.process.wait, 30) == 0, first.logs()
    finally:
        await stop(first)
    second = await start_process(slack, env, tmp_path / "second.log")
    try:
        await eventually(
            lambda: _nothing_pending(redis_url, prefix), "the resumed turns to close", timeout=30
        )
        assert [len(slack.bot_messages(CHANNEL, ts)) for ts in roots] == [1, 1, 1]
        assert second.logs().count("reclaimed queued message") == 3, "each turn was resumed"
        cids = conversation_ids(openai_emu)
        assert len(cids) == 3
        for cid in cids:
            [question] = openai_emu.user_texts(cid)
            assert question.startswith("Alice: question ")
    finally:
        await stop(second)


async def test_readyz_answers_503_within_a_second_while_redis_hangs(
    slack: SlackEmulator,
    openai_emu: OpenAIEmulator,
    own_redis: RedisServer,
    bot_env_vars: dict[str, str],
    tmp_path: Path,
) -> None:
    env = {**bot_env_vars, "REDIS_URL": own_redis.url}
    bot = await start_process(slack, env, tmp_path / "bot.log")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async with http.get(f"{bot.url}/readyz") as resp:
                assert resp.status == 200
            own_redis.pause()
            started = time.monotonic()
            async with http.get(f"{bot.url}/readyz") as resp:
                assert resp.status == 503
            assert time.monotonic() - started < 1.8
            own_redis.resume()
            async with http.get(f"{bot.url}/readyz") as resp:
                assert resp.status == 200
    finally:
        await stop(bot)
