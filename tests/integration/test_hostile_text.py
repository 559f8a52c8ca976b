"""Untrusted text on its way through the bot: broken Unicode, Slack pings, link markup."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from tests.emulators.slack import SlackEmulator
from tests.harness import BotUnderTest, start_in_process, stop

BOT = "<@U0BOT>"
CHANNEL = "C0HOSTILE"
PINGS = "<!channel> <!here> <!everyone> <!subteam^S0OPS|@ops> <@U0BOB> <https://evil.example|me>"
RAW = ("<!channel", "<!here", "<!everyone", "<!subteam", "<@U0BOB", "<https://evil")


def _written(slack: SlackEmulator) -> str:
    """Everything the bot sent Slack to show (messages, stream chunks, statuses), as JSON."""
    methods = {"chat.postMessage", "chat.update", "chat.startStream", "chat.appendStream", "chat.stopStream"}
    methods |= {"assistant.threads.setStatus", "chat.postEphemeral"}
    return json.dumps([c.args for c in slack.calls if c.method in methods], ensure_ascii=False)


async def test_lone_surrogate_in_a_message_is_cleaned_at_the_edge(bot: BotUnderTest) -> None:
    ts = await bot.say(CHANNEL, f"{BOT} broken \ud83d text")
    [reply] = await bot.replies(CHANNEL, ts, 1)
    assert "echo: Alice: broken \ufffd text" in reply["text"]
    assert "⚠️" not in reply["text"]


async def test_model_output_cannot_ping_or_hide_links(bot: BotUnderTest, slack: SlackEmulator) -> None:
    ts = await bot.say(CHANNEL, f"{BOT} repeat {PINGS}")
    [reply] = await bot.replies(CHANNEL, ts, 1)
    assert "echo: Alice: repeat" in reply["text"]
    written = _written(slack)
    for raw in RAW:
        assert raw not in written, raw
    assert "me (https://evil.example)" in written


async def test_echoed_file_names_cannot_ping_or_hide_links(bot: BotUnderTest, slack: SlackEmulator) -> None:
    name = "<!here> click <https://evil.example|me>.exe"
    hosted = slack.host_file(name, b"MZ", mimetype="application/octet-stream", filetype="binary")
    ts = await bot.say(CHANNEL, f"{BOT} look at this", files=[hosted])
    await bot.replies(CHANNEL, ts, 2)
    written = _written(slack)
    assert "click me (https://evil.example).exe" in written
    for raw in ("<!here", "<https://evil"):
        assert raw not in written, raw


@pytest.fixture
async def mentions_bot(slack: SlackEmulator, bot_env_vars: dict[str, str]) -> AsyncIterator[BotUnderTest]:
    running = await start_in_process(slack, {**bot_env_vars, "THREADBRIDGE_ALLOW_USER_MENTIONS": "true"})
    try:
        yield running
    finally:
        await stop(running)


async def test_user_mentions_the_model_was_given_may_be_allowed(
    mentions_bot: BotUnderTest, slack: SlackEmulator
) -> None:
    ts = await mentions_bot.say(CHANNEL, f"{BOT} ask <@U0BOB> about <!here>")
    await mentions_bot.replies(CHANNEL, ts, 1)
    assert "<@U0BOB>" in _written(slack)
    assert "<!here" not in _written(slack)
