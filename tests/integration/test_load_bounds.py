"""Under a burst the bot slows down, it does not fail: bounded pools wait, writes are paced."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator
from tests.harness import bot_env, start_in_process, stop

BOT = "<@U0BOT>"
CHANNEL = "C0LOAD"


async def test_many_turns_on_a_tiny_redis_pool_all_answer_without_pool_errors(
    slack: SlackEmulator,
    openai_emu: OpenAIEmulator,
    redis_url: str,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # redis-py's default pool raises "Too many connections" past its size; ours must wait.
    env = bot_env(slack, openai_emu, redis_url, prefix, THREADBRIDGE_REDIS_POOL_SIZE="2")
    bot = await start_in_process(slack, env)
    try:
        roots = []
        deliveries = []
        for i in range(30):
            user = ("U0ALICE", "U0BOB")[i % 2]  # under the flood limit of 20 a minute each
            ts, events = slack.user_says(CHANNEL, user=user, text=f"{BOT} question {i}")
            roots.append(ts)
            deliveries += [bot.events.send(e) for e in events]
        acks = await asyncio.gather(*deliveries)
        assert {status for status, _ in acks} == {200}
        for ts in roots:
            [reply] = await bot.replies(CHANNEL, ts, 1, timeout=60)
            assert reply["text"].startswith("echo: "), reply["text"]
            assert "question" in reply["text"]
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, [r.getMessage() for r in errors]
        assert "Too many connections" not in caplog.text
    finally:
        await stop(bot)


async def test_a_long_answer_streams_in_a_few_paced_writes(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, redis_url: str, prefix: str
) -> None:
    # 400 deltas 5 ms apart (about 2,000 characters over 2 s): one write per delta would be
    # 400 calls against a rate-limited method; one at the end would not read as streaming.
    bot = await start_in_process(slack, bot_env(slack, openai_emu, redis_url, prefix))
    try:
        ts = await bot.say(CHANNEL, f"{BOT} #pace:0:400:5")
        [reply] = await bot.replies(CHANNEL, ts, 1, timeout=30)
        assert reply["text"].strip() == "word " * 399 + "word."
        writes = [
            c
            for c in slack.calls
            if c.method in ("chat.startStream", "chat.appendStream", "chat.stopStream") and c.ok
        ]
        assert 3 <= len(writes) <= 6, [c.method for c in writes]
        assert writes[0].method == "chat.startStream" and writes[-1].method == "chat.stopStream"
        gaps = [b.at - a.at for a, b in itertools.pairwise(writes)]
        assert max(gaps) < 1.5, gaps
    finally:
        await stop(bot)


async def test_slack_calls_share_keep_alive_connections(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, redis_url: str, prefix: str
) -> None:
    bot = await start_in_process(slack, bot_env(slack, openai_emu, redis_url, prefix))
    try:
        for i in range(5):
            ts = await bot.say(CHANNEL, f"{BOT} hello {i}")
            await bot.replies(CHANNEL, ts, 1)
        api_calls = [c for c in slack.calls if c.method != "auth.test"]
        assert len(api_calls) >= 15
        # Without a shared session the SDK opens a new connection for every call.
        assert len({c.peer for c in api_calls}) <= 3, len({c.peer for c in api_calls})
    finally:
        await stop(bot)


async def test_a_step_that_waits_too_long_for_redis_is_retried_not_answered_with_an_error(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, redis_url: str, prefix: str
) -> None:
    # Two pooled connections and a 10 ms wait: under 20 concurrent turns some steps give up on
    # the pool. Those turns must stay queued and be answered later, with no error reply, and
    # the heartbeat (on its own connection) keeps every other lease alive meanwhile.
    env = bot_env(
        slack,
        openai_emu,
        redis_url,
        prefix,
        THREADBRIDGE_REDIS_POOL_SIZE="2",
        THREADBRIDGE_REDIS_POOL_TIMEOUT_SECONDS="0.01",
    )
    bot = await start_in_process(slack, env)
    try:
        roots, events = [], []
        for i in range(20):
            ts, said = slack.user_says(CHANNEL, user=("U0ALICE", "U0BOB")[i % 2], text=f"{BOT} q {i}")
            roots.append(ts)
            events += said
        acks = await asyncio.gather(*(bot.events.send(e) for e in events))
        for event, (status, _) in zip(events, acks, strict=True):
            # The edge may answer 500 when its own step gives up on the pool: Slack redelivers.
            for _retry in range(5):
                if status == 200:
                    break
                status, _ = await bot.events.send(event)
            assert status == 200
        for ts in roots:
            replies = await bot.replies(CHANNEL, ts, 1, timeout=60)
            assert [r["text"] for r in replies if "went wrong" in r["text"]] == []
            assert replies[-1]["text"].startswith("echo: "), replies[-1]["text"]
    finally:
        await stop(bot)
