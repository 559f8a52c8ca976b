"""End to end: `python -m bot run` as a process, driven by signed events over HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator
from tests.harness import (
    BotUnderTest,
    conversation_ids,
    fail_model_requests,
    model_inputs,
    model_requests,
    start_process,
    stop,
)

BOT = "<@U0BOT>"
CHANNEL = "C0E2E"


@pytest.fixture
async def bot_proc(
    slack: SlackEmulator, bot_env_vars: dict[str, str], tmp_path: Path, redis_client: object
) -> AsyncIterator[BotUnderTest]:
    running = await start_process(slack, bot_env_vars, tmp_path / "bot.log")
    try:
        yield running
    finally:
        await stop(running)


async def test_conversation_in_a_thread_end_to_end(
    bot_proc: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    ts = await bot_proc.say(CHANNEL, f"{BOT} hello from e2e")
    [first] = await bot_proc.replies(CHANNEL, ts, 1)
    assert "echo: Alice: hello from e2e [user messages: 1]" in first["text"]
    assert slack.calls_to("chat.startStream"), "answered by native streaming"

    await bot_proc.say(CHANNEL, "and a follow-up", user="U0BOB", thread_ts=ts)
    second = (await bot_proc.replies(CHANNEL, ts, 2))[1]
    assert "[user messages: 2]" in second["text"]
    assert len(conversation_ids(openai_emu)) == 1


async def test_retried_event_gives_one_reply_end_to_end(
    bot_proc: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    ts, events = slack.user_says(CHANNEL, user="U0ALICE", text=f"{BOT} retry me")
    envelope = bot_proc.events.envelope(events[0])
    for retry in (None, 1, 2, 3):
        assert (await bot_proc.events.post(envelope, retry_num=retry))[0] == 200
    for event in events[1:]:
        assert (await bot_proc.events.send(event))[0] == 200
    await bot_proc.replies(CHANNEL, ts, 1)
    marker = await bot_proc.say(CHANNEL, f"{BOT} after")
    await bot_proc.replies(CHANNEL, marker, 1)
    assert len(slack.bot_messages(CHANNEL, ts)) == 1
    assert len(model_requests(openai_emu)) == 2


async def test_unsigned_or_stale_requests_get_401_and_nothing_posted(
    bot_proc: BotUnderTest, slack: SlackEmulator
) -> None:
    _, events = slack.user_says(CHANNEL, user="U0ALICE", text=f"{BOT} sneaky")
    envelope = bot_proc.events.envelope(events[0])
    assert (await bot_proc.events.post(envelope, sign=False))[0] == 401
    assert (await bot_proc.events.post(envelope, timestamp=int(time.time()) - 600))[0] == 401
    ok = await bot_proc.say(CHANNEL, f"{BOT} legit")
    await bot_proc.replies(CHANNEL, ok, 1)
    assert [c["thread_ts"] for c in slack.calls_to("chat.startStream")] == [ok]


async def test_backend_500_gives_one_clear_error_end_to_end(
    bot_proc: BotUnderTest, openai_emu: OpenAIEmulator
) -> None:
    fail_model_requests(openai_emu, status=500, times=20)
    ts = await bot_proc.say(CHANNEL, f"{BOT} this will fail")
    [reply] = await bot_proc.replies(CHANNEL, ts, 1, timeout=30)
    assert reply["text"].count("⚠️") == 1 and "try again" in reply["text"]
    assert "sk-test-key" not in bot_proc.logs()


async def test_mid_thread_mention_reaches_model_with_history_end_to_end(
    bot_proc: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    root = slack.add_message(CHANNEL, user="U0BOB", text="which region is down?")
    slack.add_message(CHANNEL, user="U0ALICE", text="eu-west-1 since 9am", thread_ts=root)
    await bot_proc.say(CHANNEL, f"{BOT} summarise this", thread_ts=root)
    await bot_proc.replies(CHANNEL, root, 1)
    [sent] = model_inputs(openai_emu)
    assert "Alice: eu-west-1 since 9am" in sent
    assert "Bob: which region is down?" in sent
