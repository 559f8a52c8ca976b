"""End to end: `python -m bot run` in Socket Mode, events pushed over the emulator's WebSocket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import EventSender, SlackEmulator
from tests.harness import BotUnderTest, model_requests, start_process, stop

BOT = "<@U0BOT>"
CHANNEL = "C0SOCKET"


@pytest.fixture
async def socket_bot(
    slack: SlackEmulator, bot_env_vars: dict[str, str], tmp_path: Path, redis_client: object
) -> AsyncIterator[BotUnderTest]:
    # Socket Mode needs no signing secret: the process does not get one (start_process also
    # drops every SLACK_* variable of the test runner's own environment).
    env = {k: v for k, v in bot_env_vars.items() if k != "SLACK_SIGNING_SECRET"}
    env["SLACK_APP_TOKEN"] = slack.app_token
    running = await start_process(slack, env, tmp_path / "bot.log")
    try:
        await slack.wait_for(slack.open_sockets, what="the bot's Socket Mode connection")
        yield running
    finally:
        await stop(running)


async def _deliver(slack: SlackEmulator, events: list[dict[str, Any]]) -> None:
    """Push each event as its own events_api envelope, as Slack does, and check every ack."""
    sender = EventSender("unused://socket-mode", slack.signing_secret)
    for event in events:
        envelope_id = f"env-{event['type']}-{event['ts']}"
        ack = await slack.socket_send(sender.envelope(event), envelope_id=envelope_id)
        assert ack["envelope_id"] == envelope_id, ack


async def test_mention_and_thread_reply_over_the_socket(
    socket_bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    opened = slack.calls_to("apps.connections.open")
    assert len(opened) == 1, "connected once, with the app-level token (the emulator refuses others)"
    assert "signing secret" not in socket_bot.logs().lower()

    ts, events = slack.user_says(CHANNEL, user="U0ALICE", text=f"{BOT} hello over the socket")
    assert sorted(e["type"] for e in events) == ["app_mention", "message"]
    await _deliver(slack, events)
    [first] = await socket_bot.replies(CHANNEL, ts, 1)
    assert "echo: Alice: hello over the socket [user messages: 1]" in first["text"]

    reply_ts, reply_events = slack.user_says(CHANNEL, user="U0BOB", text="and a follow-up", thread_ts=ts)
    assert [e["type"] for e in reply_events] == ["message"]
    await _deliver(slack, reply_events)
    replies = await socket_bot.replies(CHANNEL, ts, 2)
    assert "echo: Bob: and a follow-up [user messages: 2]" in replies[1]["text"]

    # The mention and its message twin were one turn; the follow-up the second.
    assert len(model_requests(openai_emu)) == 2
    assert len(slack.bot_messages(CHANNEL, ts)) == 2
    assert reply_ts != ts


async def test_unhandled_event_type_is_still_acked(socket_bot: BotUnderTest, slack: SlackEmulator) -> None:
    # Bolt sends no ack for an event no listener matches, and Slack then redelivers it.
    reaction = {
        "type": "reaction_added",
        "user": "U0ALICE",
        "reaction": "eyes",
        "item": {"type": "message", "channel": CHANNEL, "ts": "1700000000.000100"},
        "item_user": "U0BOB",
        "event_ts": "1700000001.000100",
        "ts": "1700000001.000100",
    }
    await _deliver(slack, [reaction])
    # The connection is still serving: a mention after it is answered.
    ts, events = slack.user_says(CHANNEL, user="U0ALICE", text=f"{BOT} still there?")
    await _deliver(slack, events)
    [reply] = await socket_bot.replies(CHANNEL, ts, 1)
    assert "echo: Alice: still there? [user messages: 1]" in reply["text"]
