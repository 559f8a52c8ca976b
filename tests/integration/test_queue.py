"""Nothing lost, nothing twice: bursts, retry storms, backpressure, flood limit, Redis restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator
from tests.harness import (
    BotUnderTest,
    RedisServer,
    conversation_ids,
    eventually,
    free_port,
    model_requests,
    start_in_process,
    stop,
)

BOT = "<@U0BOT>"
CHANNEL = "C0QUEUE"


def _texts(msgs: list[dict]) -> list[str]:
    return [m.get("text") or "" for m in msgs]


async def _has(length: Awaitable[int], n: int) -> bool:
    return await length == n


async def test_burst_in_one_thread_reaches_the_model_in_order(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator, redis_client: Redis, prefix: str
) -> None:
    root = await bot.say(CHANNEL, f"{BOT} #stall first")
    await openai_emu.wait_for(lambda: openai_emu.stalled == 1, what="turn 1 to be running")
    await bot.say(CHANNEL, "second", thread_ts=root, user="U0BOB")
    await bot.say(CHANNEL, "third", thread_ts=root)
    inbox = f"{prefix}inbox:T0TEAM:{CHANNEL}:{root}"
    await eventually(lambda: _has(redis_client.llen(inbox), 3), "both replies to be parked in the inbox")
    openai_emu.release()
    replies = await bot.replies(CHANNEL, root, 2)
    assert len(model_requests(openai_emu)) == 2
    assert "echo: Bob: second | Alice: third [user messages: 3]" in replies[1]["text"]
    assert not any("⚠️" in t for t in _texts(replies))


async def test_retry_storm_gives_exactly_one_reply_per_message(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    roots = []
    for i in range(3):
        ts, events = slack.user_says(CHANNEL, user="U0ALICE", text=f"{BOT} storm {i}")
        roots.append(ts)
        for event in events:
            envelope = bot.events.envelope(event)
            for retry in (None, 1, 2, 3):
                assert (await bot.events.post(envelope, retry_num=retry))[0] == 200
    for ts in roots:
        await bot.replies(CHANNEL, ts, 1)
    marker = await bot.say(CHANNEL, f"{BOT} marker")
    await bot.replies(CHANNEL, marker, 1)
    assert [len(slack.bot_messages(CHANNEL, ts)) for ts in roots] == [1, 1, 1]
    assert len(model_requests(openai_emu)) == 4


async def test_flood_limit_answers_politely_instead_of_queueing(
    slack: SlackEmulator,
    openai_emu: OpenAIEmulator,
    bot_env_vars: dict[str, str],
    prefix: str,
    redis_client: Redis,
) -> None:
    env = {**bot_env_vars, "THREADBRIDGE_FLOOD_LIMIT": "2"}
    bot = await start_in_process(slack, env)
    try:
        for i in range(3):
            await bot.say("D0ALICE", f"dm {i}")
        notice = await slack.wait_for(lambda: slack.calls_to("chat.postEphemeral"), what="the flood notice")
        assert "faster than I can answer" in notice[0]["text"]
        assert await redis_client.xlen(f"{prefix}turns") == 2
    finally:
        await stop(bot)


async def test_concurrency_cap_keeps_extra_work_in_the_stream(
    slack: SlackEmulator,
    openai_emu: OpenAIEmulator,
    bot_env_vars: dict[str, str],
    prefix: str,
    redis_client: Redis,
) -> None:
    env = {**bot_env_vars, "THREADBRIDGE_MAX_TURNS": "1"}
    bot = await start_in_process(slack, env)
    try:
        a = await bot.say(CHANNEL, f"{BOT} #stall")
        await openai_emu.wait_for(lambda: openai_emu.stalled == 1, what="thread A to stall")
        b = await bot.say(CHANNEL, f"{BOT} thread b")
        groups = await redis_client.xinfo_groups(f"{prefix}turns")
        assert groups[0]["pending"] == 1  # only A was read; B waits in Redis, not in memory
        assert len(model_requests(openai_emu)) == 1
        openai_emu.release()
        await bot.replies(CHANNEL, a, 1)
        [reply_b] = await bot.replies(CHANNEL, b, 1)
        assert "thread b" in reply_b["text"]
    finally:
        await stop(bot)


async def _turn_closed(bot: BotUnderTest, lock_key: str) -> None:
    """The reply is posted just before the Turn is closed in Redis; wait for the close."""
    assert bot.runtime is not None
    redis = bot.runtime.redis
    await eventually(lambda: _has(redis.exists(lock_key), 0), "the turn to close")


@pytest.fixture
def own_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_bindings_survive_a_redis_restart_and_the_bot_recovers(
    slack: SlackEmulator,
    openai_emu: OpenAIEmulator,
    own_redis: RedisServer,
    bot_env_vars: dict[str, str],
    prefix: str,
) -> None:
    bot = await start_in_process(slack, {**bot_env_vars, "REDIS_URL": own_redis.url})
    try:
        ts = await bot.say(CHANNEL, f"{BOT} before the restart")
        await bot.replies(CHANNEL, ts, 1)
        await _turn_closed(bot, f"{prefix}lock:T0TEAM:{CHANNEL}:{ts}")
        own_redis.stop()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{bot.url}/readyz") as resp:
                assert resp.status == 503
            _, events = slack.user_says(CHANNEL, user="U0ALICE", text="during the outage", thread_ts=ts)
            status, _ = await bot.events.send(events[0])
            assert status >= 500  # Slack will retry; nothing was accepted and dropped
            own_redis.start()
            async with http.get(f"{bot.url}/readyz") as resp:
                assert resp.status == 200
        status, _ = await bot.events.send(events[0])  # Slack's retry
        assert status == 200
        reply = (await bot.replies(CHANNEL, ts, 2, timeout=30))[1]
        assert "during the outage [user messages: 2]" in reply["text"]
        assert len(conversation_ids(openai_emu)) == 1
    finally:
        await stop(bot)


async def test_metrics_count_turns(bot: BotUnderTest) -> None:
    ts = await bot.say(CHANNEL, f"{BOT} count me")
    await bot.replies(CHANNEL, ts, 1)
    async with aiohttp.ClientSession() as http, http.get(f"{bot.url}/metrics") as resp:
        body = await resp.text()
    families = {f.name: f for f in text_string_to_metric_families(body)}
    turns = families["threadbridge_turns"]
    assert any(
        s.name == "threadbridge_turns_total" and s.labels == {"team": "T0TEAM", "outcome": "completed"}
        for s in turns.samples
    )
