"""DM threads in Slack's agent view: what the user is looking at reaches the next turn; titles."""

from __future__ import annotations

from typing import Any

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator, app_context_changed
from tests.harness import BotUnderTest, model_inputs

DM = "D0ALICE"
CHANNEL = "C0GENERAL"


def _channel(channel: str) -> dict[str, Any]:
    return {"type": "slack#/types/channel_id", "value": channel, "team_id": "T0TEAM"}


def _message(channel: str, ts: str) -> dict[str, Any]:
    return {"type": "slack#/types/message_context", "value": {"channel_id": channel, "message_ts": ts}}


async def _looks_at(
    bot: BotUnderTest, entities: list[dict[str, Any]], *, user: str = "U0ALICE", dm: str = DM
) -> None:
    status, _ = await bot.events.send(app_context_changed(user, dm, entities))
    assert status == 200


async def test_dm_context_reaches_the_next_dm_turn_once(
    bot: BotUnderTest, openai_emu: OpenAIEmulator
) -> None:
    await _looks_at(bot, [_channel(CHANNEL)])
    ts = await bot.say(DM, "what is this channel for?")
    await bot.replies(DM, ts, 1)
    assert "Alice is looking at #c0general" in model_inputs(openai_emu)[0]
    await bot.say(DM, "and again?", thread_ts=ts)
    await bot.replies(DM, ts, 2)
    assert "looking at" not in model_inputs(openai_emu)[1]


async def test_dm_context_quotes_the_message_the_user_is_looking_at(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    root = slack.add_message(CHANNEL, user="U0BOB", text="release train leaves at five")
    seen = slack.add_message(CHANNEL, user="U0BOB", text="the build is red again", thread_ts=root)
    await _looks_at(bot, [_channel(CHANNEL), _message(CHANNEL, seen)])
    ts = await bot.say(DM, "what does this mean?")
    await bot.replies(DM, ts, 1)
    sent = model_inputs(openai_emu)[0]
    assert "this message in #c0general" in sent and "the build is red again" in sent
    assert "release train" not in sent


async def test_dm_context_names_only_the_channel_of_a_message_the_bot_cannot_read(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    seen = slack.add_message(CHANNEL, user="U0BOB", text="secret plans")
    slack.fail_next("conversations.replies", error="not_in_channel", status=200, retry_after=None)
    await _looks_at(bot, [_message(CHANNEL, seen)])
    ts = await bot.say(DM, "summarise it")
    await bot.replies(DM, ts, 1)
    sent = model_inputs(openai_emu)[0]
    assert "looking at a message in #c0general" in sent and "secret plans" not in sent


async def test_an_empty_context_forgets_the_last_one(bot: BotUnderTest, openai_emu: OpenAIEmulator) -> None:
    await _looks_at(bot, [_channel(CHANNEL)])
    await _looks_at(bot, [])
    ts = await bot.say(DM, "hello")
    await bot.replies(DM, ts, 1)
    assert "looking at" not in model_inputs(openai_emu)[0]


async def test_one_dms_context_stays_out_of_channel_threads(
    bot: BotUnderTest, openai_emu: OpenAIEmulator
) -> None:
    await _looks_at(bot, [_channel(CHANNEL)])
    ts = await bot.say(CHANNEL, "<@U0BOT> hello")
    await bot.replies(CHANNEL, ts, 1)
    assert "looking at" not in model_inputs(openai_emu)[0]


async def test_first_answer_titles_the_dm_thread_once(bot: BotUnderTest, slack: SlackEmulator) -> None:
    ts = await bot.say(DM, "How do I rotate the *API keys* of <https://example.com|our service>?")
    await bot.replies(DM, ts, 1)
    await slack.wait_for(lambda: slack.calls_to("assistant.threads.setTitle"), what="the title")
    await bot.say(DM, "and the database password?", thread_ts=ts)
    # A command waits for the turn before it, title and all: after its note, all is said.
    await bot.say(DM, "status", thread_ts=ts)
    await bot.replies(DM, ts, 3)
    [call] = slack.calls_to("assistant.threads.setTitle")
    assert call == {
        "channel_id": DM,
        "thread_ts": ts,
        "title": "How do I rotate the API keys of our service?",
    }


async def test_title_renames_the_agent_session_where_sessions_exist(
    bot: BotUnderTest, slack: SlackEmulator
) -> None:
    slack.agent_sessions = True
    ts = await bot.say(DM, "plan my week " + "with many details " * 10)
    [call] = await slack.wait_for(lambda: slack.calls_to("agents.sessions.rename"), what="the rename")
    assert call["thread_ts"] == ts and call["title"].endswith("…") and len(call["title"]) <= 60
    assert slack.calls_to("assistant.threads.setTitle") == []


async def test_channel_threads_get_no_title(bot: BotUnderTest, slack: SlackEmulator) -> None:
    ts = await bot.say(CHANNEL, "<@U0BOT> hello")
    await bot.say(CHANNEL, "<@U0BOT> status", thread_ts=ts)
    await bot.replies(CHANNEL, ts, 2)
    assert slack.calls_to("assistant.threads.setTitle") == []
    assert slack.calls_to("agents.sessions.rename") == []
