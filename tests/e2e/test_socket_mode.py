"""End to end: `python -m bot run` in Socket Mode, events pushed over the emulator's WebSocket."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import EventSender, SlackEmulator
from tests.harness import ROOT, BotUnderTest, bot_env, model_requests, start_process, stop

BOT = "<@U0BOT>"
CHANNEL = "C0SOCKET"


def _socket_env(env: dict[str, str], app_token: str) -> dict[str, str]:
    """The bot's environment for Socket Mode: the app token, and no signing secret."""
    return {**{k: v for k, v in env.items() if k != "SLACK_SIGNING_SECRET"}, "SLACK_APP_TOKEN": app_token}


@pytest.fixture
async def socket_bot(
    slack: SlackEmulator, bot_env_vars: dict[str, str], tmp_path: Path, redis_client: object
) -> AsyncIterator[BotUnderTest]:
    # Socket Mode needs no signing secret: the process does not get one (start_process also
    # drops every SLACK_* variable of the test runner's own environment).
    running = await start_process(slack, _socket_env(bot_env_vars, slack.app_token), tmp_path / "bot.log")
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
    assert slack.open_sockets() == 1

    ts, events = slack.user_says(CHANNEL, user="U0ALICE", text=f"{BOT} hello over the socket")
    assert sorted(e["type"] for e in events) == ["app_mention", "message"]
    await _deliver(slack, events)
    [first] = await socket_bot.replies(CHANNEL, ts, 1)
    assert "echo: Alice: hello over the socket [user messages: 1]" in first["text"]

    _, reply_events = slack.user_says(CHANNEL, user="U0BOB", text="and a follow-up", thread_ts=ts)
    assert [e["type"] for e in reply_events] == ["message"]
    await _deliver(slack, reply_events)
    replies = await socket_bot.replies(CHANNEL, ts, 2)
    assert "echo: Bob: and a follow-up [user messages: 2]" in replies[1]["text"]

    # The mention and its message twin were one turn; the follow-up the second.
    assert len(model_requests(openai_emu)) == 2
    assert len(slack.bot_messages(CHANNEL, ts)) == 2


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


async def test_no_http_event_endpoint_in_socket_mode(socket_bot: BotUnderTest, slack: SlackEmulator) -> None:
    # Socket Mode turns Bolt's request verification off: an HTTP edge here would take unsigned
    # events from anyone who can reach the port.
    _, events = slack.user_says(CHANNEL, user="U0ALICE", text=f"{BOT} unsigned over http")
    for event in events:
        assert (await socket_bot.events.post(socket_bot.events.envelope(event), sign=False))[0] == 404
    async with aiohttp.ClientSession() as session, session.get(f"{socket_bot.url}/readyz") as resp:
        assert resp.status == 200
    # The socket still works, and the HTTP attempt left nothing behind in the thread.
    ts, events = slack.user_says(CHANNEL, user="U0ALICE", text=f"{BOT} over the socket")
    await _deliver(slack, events)
    [reply] = await socket_bot.replies(CHANNEL, ts, 1)
    assert "[user messages: 1]" in reply["text"]
    assert [m["thread_ts"] for m in slack.calls_to("chat.startStream")] == [ts]


async def test_shutdown_closes_the_socket_for_good(
    slack: SlackEmulator,
    openai_emu: OpenAIEmulator,
    redis_url: str,
    prefix: str,
    redis_client: object,
    tmp_path: Path,
) -> None:
    # One backend: this is about the Slack connection. The SDK's client, merely disconnected,
    # reconnects at its next ping (every 10 s); a grace period longer than that, held open by a
    # stalled turn, shows whether the bot comes back for more events while shutting down.
    env = bot_env(slack, openai_emu, redis_url, prefix, THREADBRIDGE_SHUTDOWN_GRACE_SECONDS="13")
    bot = await start_process(slack, _socket_env(env, slack.app_token), tmp_path / "bot.log")
    try:
        await slack.wait_for(slack.open_sockets, what="the bot's Socket Mode connection")
        _, events = slack.user_says(CHANNEL, user="U0ALICE", text=f"{BOT} a long one #stall")
        await _deliver(slack, events)
        await openai_emu.wait_for(lambda: openai_emu.stalled, what="the turn to be in flight")
        assert bot.process is not None
        bot.process.send_signal(signal.SIGTERM)
        await slack.wait_for(lambda: slack.open_sockets() == 0, what="the socket to close on SIGTERM")
        # The stalled turn keeps the process in its grace period until that runs out.
        code = await asyncio.to_thread(bot.process.wait, 40)
    finally:
        await stop(bot)
    assert code == 0, bot.logs()
    assert len(slack.calls_to("apps.connections.open")) == 1, bot.logs()
    assert "Reconnecting" not in bot.logs()
    assert "Unclosed client session" not in bot.logs()


async def test_a_refused_app_token_fails_start_up_without_printing_it(
    slack: SlackEmulator,
    openai_emu: OpenAIEmulator,
    redis_url: str,
    prefix: str,
    redis_client: object,
    tmp_path: Path,
) -> None:
    # The SDK retries a refused token forever inside connect(): unless the bot checks it, the
    # process looks healthy, never receives an event, and does not even stop on SIGTERM.
    revoked = "xapp-1-A0APP-0000000000000-revokedrevokedrevokedrevoked"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "THREADBRIDGE_"))},
        **_socket_env(bot_env(slack, openai_emu, redis_url, prefix), revoked),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.to_thread(proc.communicate, None, 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = await asyncio.to_thread(proc.communicate)
        raise AssertionError(
            f"still running 30 s after a refused app token:\n{out.decode()[-3000:]}"
        ) from None
    text = out.decode(errors="replace")
    assert proc.returncode not in (0, None), text
    assert "invalid_auth" in text and "apps.connections.open" in text
    assert revoked not in text
    assert [c.error for c in slack.calls if c.method == "apps.connections.open"] == ["invalid_auth"]
    assert slack.open_sockets() == 0
