"""Daily budgets: counted in Redis from each response's usage, refused politely at the limit."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from bot.budgets import Budgets, budget_day
from bot.config_file import Limits, Reset
from bot.inbound import ThreadKey
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator
from tests.harness import model_requests, start_in_process, stop

BOT = "<@U0BOT>"
CHANNEL = "C0SPEND"


def _reset_text() -> str:
    return budget_day(Reset(), time.time()).resets_at.strftime("%Y-%m-%d %H:%M %Z")


async def test_user_over_daily_tokens_is_refused_with_the_reset_time_even_after_a_restart(
    slack: SlackEmulator,
    openai_emu: OpenAIEmulator,
    redis_client: Redis,
    bot_env_vars: dict[str, str],
    prefix: str,
) -> None:
    env = {**bot_env_vars, "THREADBRIDGE_USER_DAILY_TOKENS": "5"}
    bot = await start_in_process(slack, env)
    try:
        ts = await bot.say(CHANNEL, f"{BOT} tell me something long enough to cost a few tokens")
        await bot.replies(CHANNEL, ts, 1)
        await bot.say(CHANNEL, "and more?", thread_ts=ts)
        await slack.wait_for(lambda: slack.ephemerals, what="the limit note")
    finally:
        await stop(bot)
    [note] = slack.ephemerals
    assert "reached today's limit of 5 tokens" in note["text"]
    assert _reset_text() in note["text"]
    assert len(model_requests(openai_emu)) == 1

    bot = await start_in_process(slack, env)
    try:
        other = await bot.say(CHANNEL, f"{BOT} a fresh thread after the restart")
        await slack.wait_for(lambda: len(slack.ephemerals) == 2, what="the limit note after a restart")
    finally:
        await stop(bot)
    assert slack.ephemerals[1]["thread_ts"] == other
    assert len(model_requests(openai_emu)) == 1
    assert not slack.bot_messages(CHANNEL, other)


async def test_workspace_turn_limit_refuses_everyone_once_reached(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, bot_env_vars: dict[str, str]
) -> None:
    bot = await start_in_process(slack, {**bot_env_vars, "THREADBRIDGE_TEAM_DAILY_TURNS": "1"})
    try:
        ts = await bot.say(CHANNEL, f"{BOT} first of the day")
        await bot.replies(CHANNEL, ts, 1)
        await bot.say(CHANNEL, f"{BOT} bob here", user="U0BOB")
        await slack.wait_for(lambda: slack.ephemerals, what="the limit note")
    finally:
        await stop(bot)
    assert slack.ephemerals[0]["user"] == "U0BOB"
    assert "This workspace has reached today's limit of 1 answers" in slack.ephemerals[0]["text"]
    assert len(model_requests(openai_emu)) == 1


async def test_exempt_user_is_answered_past_the_limit(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, bot_env_vars: dict[str, str]
) -> None:
    env = {
        **bot_env_vars,
        "THREADBRIDGE_USER_DAILY_TURNS": "1",
        "THREADBRIDGE_BUDGET_EXEMPT_USERS": "U0ALICE",
    }
    bot = await start_in_process(slack, env)
    try:
        ts = await bot.say(CHANNEL, f"{BOT} one")
        await bot.replies(CHANNEL, ts, 1)
        await bot.say(CHANNEL, "two", thread_ts=ts)
        await bot.replies(CHANNEL, ts, 2)
    finally:
        await stop(bot)
    assert not slack.ephemerals
    assert len(model_requests(openai_emu)) == 2


async def test_thread_usage_counts_turns_and_tokens_of_the_thread(
    slack: SlackEmulator, redis_client: Redis, bot_env_vars: dict[str, str], prefix: str
) -> None:
    bot = await start_in_process(slack, bot_env_vars)
    try:
        ts = await bot.say(CHANNEL, f"{BOT} count this thread")
        await bot.replies(CHANNEL, ts, 1)
        await bot.say(CHANNEL, "and again", thread_ts=ts)
        await bot.replies(CHANNEL, ts, 2)
    finally:
        await stop(bot)
    budgets = Budgets(redis_client, prefix=prefix, thread_ttl_s=3600)
    usage = await budgets.thread_usage(ThreadKey("T0TEAM", CHANNEL, ts))
    assert usage.turns == 2
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.tokens == usage.input_tokens + usage.output_tokens


async def test_counters_are_atomic_across_concurrent_admissions(redis_client: Redis, prefix: str) -> None:
    budgets = Budgets(redis_client, prefix=prefix, thread_ttl_s=3600)
    limits = Limits(user_turns=5)
    results = await asyncio.gather(
        *(budgets.admit(ThreadKey("T1", "C1", str(i)), "U1", limits, Reset()) for i in range(20))
    )
    assert sum(r is None for r in results) == 5
    assert {r.reason for r in results if r is not None} == {"budget_user_turns"}
