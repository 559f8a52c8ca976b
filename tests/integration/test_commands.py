"""One-word commands (reset, status, help) and the message shortcut, end to end."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bot.slack.shortcuts import ASK_SHORTCUT
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator, message_action
from tests.harness import (
    BotUnderTest,
    conversation_ids,
    eventually,
    model_inputs,
    model_requests,
    start_in_process,
    stop,
)

BOT = "<@U0BOT>"
CHANNEL = "C0GENERAL"
NOTES = "handbook: the office opens at nine.\n"


def _text(msg: dict) -> str:
    return msg.get("text") or ""


@pytest.fixture
async def tools_bot(slack: SlackEmulator, bot_env_vars: dict[str, str]) -> AsyncIterator[BotUnderTest]:
    running = await start_in_process(slack, {**bot_env_vars, "THREADBRIDGE_TOOLS": "examples.tools"})
    try:
        yield running
    finally:
        await stop(running)


async def test_reset_gives_the_next_turn_a_new_conversation(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    ts = await bot.say(CHANNEL, f"{BOT} remember 42")
    await bot.replies(CHANNEL, ts, 1)
    [old] = conversation_ids(openai_emu)
    await bot.say(CHANNEL, f"{BOT} reset", thread_ts=ts)
    note = (await bot.replies(CHANNEL, ts, 2))[1]
    assert "fresh conversation" in _text(note) and "deleted" in _text(note)
    await bot.say(CHANNEL, "what was the number?", thread_ts=ts)
    answer = (await bot.replies(CHANNEL, ts, 3))[2]
    # The old conversation is gone on the server; the next turn ran on the new one, unseeded.
    [new] = conversation_ids(openai_emu)
    assert new != old
    assert "[user messages: 1]" in _text(answer)
    assert "remember 42" not in model_inputs(openai_emu)[-1]
    assert len(model_requests(openai_emu)) == 2, "reset itself asks nothing of the model"


async def test_reset_keeps_the_old_conversation_when_configured(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, bot_env_vars: dict[str, str], redis_client: Redis
) -> None:
    bot = await start_in_process(slack, {**bot_env_vars, "THREADBRIDGE_RESET_DELETES": "false"})
    try:
        ts = await bot.say("D0ALICE", "remember 42")
        await bot.replies("D0ALICE", ts, 1)
        [old] = conversation_ids(openai_emu)
        await bot.say("D0ALICE", "Reset!", thread_ts=ts)
        note = (await bot.replies("D0ALICE", ts, 2))[1]
        assert "kept on the server" in _text(note)
        await bot.say("D0ALICE", "and now?", thread_ts=ts)
        answer = (await bot.replies("D0ALICE", ts, 3))[2]
        assert "[user messages: 1]" in _text(answer)
        assert old in conversation_ids(openai_emu) and len(conversation_ids(openai_emu)) == 2
    finally:
        await stop(bot)


async def test_reset_waits_for_the_answer_in_progress(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator, redis_client: Redis, prefix: str
) -> None:
    ts = await bot.say(CHANNEL, f"{BOT} a long job #stall")
    await openai_emu.wait_for(lambda: openai_emu.stalled == 1, what="the stalled answer")
    [old] = conversation_ids(openai_emu)
    await bot.say(CHANNEL, f"{BOT} reset", thread_ts=ts)
    inbox = f"{prefix}inbox:T0TEAM:{CHANNEL}:{ts}"
    await eventually(lambda: _length(redis_client, inbox, 2), "the reset parked behind the turn")
    assert conversation_ids(openai_emu) == [old], "nothing reset while the turn runs"
    openai_emu.release()
    answer, note = await bot.replies(CHANNEL, ts, 2)
    assert "echo:" in _text(answer) and "fresh conversation" in _text(note)
    assert float(answer["ts"]) < float(note["ts"])
    [new] = conversation_ids(openai_emu)
    assert new != old


async def _length(redis: Redis, key: str, n: int) -> bool:
    return bool(await redis.llen(key) == n)  # type: ignore[misc]


async def test_status_names_backend_model_conversation_files_and_usage(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator, backend_name: str
) -> None:
    notes = slack.host_file("handbook.md", NOTES.encode(), mimetype="text/markdown", filetype="markdown")
    ts = await bot.say(CHANNEL, f"{BOT} when does the office open?", files=[notes])
    await bot.replies(CHANNEL, ts, 1)
    await bot.say(CHANNEL, f"{BOT} status", thread_ts=ts)
    status = _text((await bot.replies(CHANNEL, ts, 2))[1])
    [conversation] = conversation_ids(openai_emu)
    assert f"`{backend_name}`" in status
    assert ("test-model" if backend_name == "responses" else "assistant") in status
    assert conversation in status
    assert "handbook.md" in status
    assert "1 turn," in status
    assert re.search(r"\b[1-9][\d,]* tokens", status), status
    assert len(model_requests(openai_emu)) == 1, "status asks nothing of the model"


async def test_status_in_a_new_dm_says_there_is_no_conversation_yet(
    bot: BotUnderTest, openai_emu: OpenAIEmulator
) -> None:
    ts = await bot.say("D0ALICE", "status")
    [status] = await bot.replies("D0ALICE", ts, 1)
    assert "none yet" in _text(status) and "0 turns" in _text(status)
    assert conversation_ids(openai_emu) == []


async def test_help_says_what_the_bot_does_and_its_tools(tools_bot: BotUnderTest, backend_name: str) -> None:
    ts = await tools_bot.say(CHANNEL, f"{BOT} help")
    [reply] = await tools_bot.replies(CHANNEL, ts, 1)
    text = _text(reply)
    for word in ("reset", "status", "help", "file search", "current_time", "thread_participants"):
        assert word in text, word
    assert "Ask about this thread" in text


async def test_a_command_word_in_a_longer_message_goes_to_the_model(
    bot: BotUnderTest, openai_emu: OpenAIEmulator
) -> None:
    ts = await bot.say(CHANNEL, f"{BOT} help me with this")
    [reply] = await bot.replies(CHANNEL, ts, 1)
    assert "echo: Alice: help me with this" in _text(reply)


async def test_shortcut_opens_the_conversation_mid_thread(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    root = slack.add_message(CHANNEL, user="U0BOB", text="the deploy failed with exit 137")
    reply_ts = slack.add_message(CHANNEL, user="U0ALICE", text="probably OOM again", thread_ts=root)
    clicked = slack.message(CHANNEL, reply_ts)
    assert clicked is not None
    payload = message_action(ASK_SHORTCUT, user="U0ALICE", channel=CHANNEL, message=clicked)
    assert (await bot.events.interact(payload))[0] == 200
    [answer] = await bot.replies(CHANNEL, root, 1)
    assert answer["thread_ts"] == root
    sent = model_inputs(openai_emu)[0]
    assert "Bob: the deploy failed with exit 137" in sent and "Alice: probably OOM again" in sent
    # The thread is the bot's now: a plain reply continues the conversation.
    await bot.say(CHANNEL, "so what now?", user="U0BOB", thread_ts=root)
    later = (await bot.replies(CHANNEL, root, 2))[1]
    assert "echo: Bob: so what now? [user messages: 2]" in _text(later)
    assert len(conversation_ids(openai_emu)) == 1
