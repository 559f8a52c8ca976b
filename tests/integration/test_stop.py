"""Stopping an answer mid-stream: Slack's own Stop (agent sessions) and the bot's Stop button."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator, button_click
from tests.harness import BotUnderTest, start_in_process, stop

BOT = "<@U0BOT>"
CHANNEL = "C0GENERAL"
# 400 words, 50 ms apart: about 20 s of answer, so a stop always lands mid-stream.
LONG = "#pace:0:400:50"
STOP_ACTION = "threadbridge_stop"
STOPPED_BY = "_(stopped by <@{user}>)_"


@contextlib.asynccontextmanager
async def _bot(slack: SlackEmulator, env: dict[str, str], **overrides: str) -> AsyncIterator[BotUnderTest]:
    running = await start_in_process(slack, {**env, **overrides})
    try:
        yield running
    finally:
        await stop(running)


def _body(message: dict[str, Any]) -> str:
    """What the message shows: its markdown blocks (the fallback `text` escapes mentions)."""
    shown = [b["text"] for b in message.get("blocks") or [] if b.get("type") == "markdown"]
    return "".join(shown) if shown else message.get("text") or ""


def _writing(slack: SlackEmulator, channel: str, thread_ts: str) -> dict[str, Any] | None:
    """The bot's answer once some of its words are out (streamed or shown by an update)."""
    for message in slack.bot_messages(channel, thread_ts):
        if "word" in (message.get("text") or ""):
            return message
    return None


async def _stopped_reply(slack: SlackEmulator, channel: str, thread_ts: str, user: str) -> dict[str, Any]:
    mark = STOPPED_BY.format(user=user)

    def done() -> dict[str, Any] | None:
        for message in slack.bot_messages(channel, thread_ts):
            if mark in _body(message) and not message.get("streaming"):
                return message
        return None

    return await slack.wait_for(done, what="the answer finished with the stopped mark")


async def _answered(slack: SlackEmulator, channel: str, thread_ts: str, expected: str) -> None:
    """Some bot message in the thread says `expected` (updated placeholders get there last)."""
    await slack.wait_for(
        lambda: any(expected in _body(m) for m in slack.bot_messages(channel, thread_ts)), what=expected
    )


def _model_closed_at(openai_emu: OpenAIEmulator) -> float | None:
    """When the model run was ended: its stream hung up (responses) or the run cancelled (assistants)."""
    if openai_emu.hung_up:
        return min(openai_emu.hung_up.values())
    cancels = [r.at for r in openai_emu.requests if r.method == "POST" and r.path.endswith("/cancel")]
    return min(cancels) if cancels else None


def _assistant_texts(openai_emu: OpenAIEmulator) -> list[str]:
    texts = []
    for conversation in openai_emu.conversations.values():
        for item in conversation.items:
            if item.get("role") == "assistant":
                texts.append("".join(part.get("text", "") for part in item.get("content") or []))
    for thread in openai_emu.threads.values():
        for message in thread.messages:
            if message["role"] == "assistant":
                texts.append("".join(p["text"]["value"] for p in message["content"] if p["type"] == "text"))
    return texts


async def test_slack_stop_ends_the_run_and_keeps_the_partial_answer(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    slack.agent_sessions = True  # an agent app: Slack shows its own Stop while `processing`
    ts = await bot.say(CHANNEL, f"{BOT} tell me everything {LONG}")
    await slack.wait_for(lambda: _writing(slack, CHANNEL, ts), what="the answer to be under way")
    assert slack.session_status(CHANNEL, ts) == "processing"
    stopped_at = time.monotonic()
    assert (await bot.events.send(slack.user_stops(CHANNEL, ts, user="U0ALICE")))[0] == 200

    reply = await _stopped_reply(slack, CHANNEL, ts, "U0ALICE")
    text = _body(reply)
    assert text.startswith("word") and 0 < text.count("word") < 400, text
    closed = await openai_emu.wait_for(lambda: _model_closed_at(openai_emu), what="the model run to end")
    assert closed - stopped_at < 1.0
    assert all("⚠️" not in (m.get("text") or "") for m in slack.bot_messages(CHANNEL, ts)), "no error notice"
    await slack.wait_for(lambda: slack.session_status(CHANNEL, ts) == "active", what="the session active")
    # What the conversation keeps is the partial answer (never the unwritten rest).
    [kept] = _assistant_texts(openai_emu)
    assert kept.startswith("word") and kept.count("word") < 400

    await bot.say(CHANNEL, "and now?", thread_ts=ts)
    await _answered(slack, CHANNEL, ts, "echo: Alice: and now? [user messages: 2]")


async def test_stop_button_where_slack_shows_none_stops_the_answer_and_goes_away(
    bot_env_vars: dict[str, str], slack: SlackEmulator, openai_emu: OpenAIEmulator, redis_client: Redis
) -> None:
    slack.agent_sessions = False  # not an agent here: no session, no Stop from Slack
    async with _bot(slack, bot_env_vars, THREADBRIDGE_STOP_BUTTON="always") as bot:
        await _stop_by_button(bot, slack, openai_emu)


async def _stop_by_button(bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator) -> None:
    ts = await bot.say(CHANNEL, f"{BOT} tell me everything {LONG}")
    writing = await slack.wait_for(lambda: _writing(slack, CHANNEL, ts), what="the answer to be under way")
    assert any(b.get("type") == "actions" for b in writing.get("blocks") or []), "a Stop button while written"
    stopped_at = time.monotonic()
    status, _ = await bot.events.interact(button_click(writing, action_id=STOP_ACTION, user="U0ALICE"))
    assert status == 200

    reply = await _stopped_reply(slack, CHANNEL, ts, "U0ALICE")
    assert _body(reply).startswith("word") and _body(reply).count("word") < 400
    assert not any(b.get("type") == "actions" for b in reply.get("blocks") or []), "the button is gone"
    closed = await openai_emu.wait_for(lambda: _model_closed_at(openai_emu), what="the model run to end")
    assert closed - stopped_at < 1.0
    await bot.say(CHANNEL, "next", thread_ts=ts)
    await _answered(slack, CHANNEL, ts, "echo: Alice: next [user messages: 2]")


async def test_only_the_asker_may_stop_an_answer_in_a_channel(
    bot_env_vars: dict[str, str], slack: SlackEmulator, redis_client: Redis
) -> None:
    async with _bot(slack, bot_env_vars, THREADBRIDGE_STOP_BUTTON="always") as bot:
        await _refused_stop(bot, slack)


async def _refused_stop(bot: BotUnderTest, slack: SlackEmulator) -> None:
    ts = await bot.say(CHANNEL, f"{BOT} #pace:0:40:50")
    writing = await slack.wait_for(lambda: _writing(slack, CHANNEL, ts), what="the answer to be under way")
    assert (await bot.events.interact(button_click(writing, action_id=STOP_ACTION, user="U0BOB")))[0] == 200
    note = await slack.wait_for(lambda: slack.ephemerals, what="the private refusal")
    assert note[0]["user"] == "U0BOB" and "Only the person who asked" in note[0]["text"]
    await _answered(slack, CHANNEL, ts, "word.")
    [reply] = slack.bot_messages(CHANNEL, ts)
    assert _body(reply).count("word") == 40 and "stopped by" not in _body(reply)


async def test_anyone_may_stop_an_answer_in_a_dm_and_updated_answers_carry_the_button(
    bot_env_vars: dict[str, str], slack: SlackEmulator, redis_client: Redis
) -> None:
    # `auto`: no native streaming here, so the answer is written by updates and carries a Stop.
    async with _bot(slack, bot_env_vars, THREADBRIDGE_SLACK_STREAMING="false") as bot:
        await _stop_in_dm(bot, slack)


async def _stop_in_dm(bot: BotUnderTest, slack: SlackEmulator) -> None:
    ts = await bot.say("D0ALICE", f"go on {LONG}")
    writing = await slack.wait_for(lambda: _writing(slack, "D0ALICE", ts), what="the answer to be under way")
    assert (await bot.events.interact(button_click(writing, action_id=STOP_ACTION, user="U0BOB")))[0] == 200
    reply = await _stopped_reply(slack, "D0ALICE", ts, "U0BOB")
    assert _body(reply).count("word") < 400


async def test_agent_session_leaves_processing_after_an_error_too(
    bot: BotUnderTest, slack: SlackEmulator
) -> None:
    slack.agent_sessions = True
    ts = await bot.say(CHANNEL, f"{BOT} #fail")
    await _answered(slack, CHANNEL, ts, "⚠️")
    await slack.wait_for(lambda: slack.session_status(CHANNEL, ts) == "active", what="the session active")
    statuses = [c.args["status"] for c in slack.calls if c.method == "agents.sessions.setStatus"]
    assert statuses == ["processing", "active"]


async def test_a_workspace_without_sessions_is_asked_once_and_still_answered(
    bot: BotUnderTest, slack: SlackEmulator
) -> None:
    slack.agent_sessions = False
    for n in (1, 2):
        ts = await bot.say(CHANNEL, f"{BOT} question {n}")
        await _answered(slack, CHANNEL, ts, f"echo: Alice: question {n}")
    asked = [c for c in slack.calls if c.method == "agents.sessions.setStatus"]
    assert [c.error for c in asked] == ["not_authorized"]


async def test_a_failing_session_call_never_fails_the_turn(bot: BotUnderTest, slack: SlackEmulator) -> None:
    slack.agent_sessions = True
    slack.fail_next(
        "agents.sessions.setStatus", error="internal_error", status=200, retry_after=None, times=2
    )
    ts = await bot.say(CHANNEL, f"{BOT} still there?")
    await _answered(slack, CHANNEL, ts, "echo: Alice: still there?")
    assert all("⚠️" not in _body(m) for m in slack.bot_messages(CHANNEL, ts))
