"""A stop that reaches one replica ends the turn another process runs (real processes, one Redis)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import EventSender, SlackEmulator, button_click
from tests.harness import bot_env, start_process, stop

BOT = "<@U0BOT>"
CHANNEL = "C0STOP"


def _body(message: dict[str, Any]) -> str:
    shown = [b["text"] for b in message.get("blocks") or [] if b.get("type") == "markdown"]
    return "".join(shown) if shown else message.get("text") or ""


def _under_way(slack: SlackEmulator, thread_ts: str) -> dict[str, Any] | None:
    return next((m for m in slack.bot_messages(CHANNEL, thread_ts) if "word" in _body(m)), None)


async def test_stop_sent_to_another_replica_stops_the_turn_running_in_the_first(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    # `runner` takes the message and runs its turn (in its worker process); `edge` runs no
    # turns at all, so the stop it receives can only work through Redis.
    runner = await start_process(
        slack,
        bot_env(slack, openai_emu, redis_url, prefix, THREADBRIDGE_STOP_BUTTON="always"),
        tmp_path / "runner.log",
    )
    edge = await start_process(
        slack,
        bot_env(slack, openai_emu, redis_url, prefix, THREADBRIDGE_WORKERS="false"),
        tmp_path / "edge.log",
    )
    try:
        slack.agent_sessions = False  # the bot's own Stop button, clicked through the other replica
        ts = await runner.say(CHANNEL, f"{BOT} go on #pace:0:400:50")
        writing = await slack.wait_for(lambda: _under_way(slack, ts), timeout=20, what="the answer under way")
        stopped_at = time.monotonic()
        status, _ = await edge.events.interact(
            button_click(writing, action_id="threadbridge_stop", user="U0ALICE")
        )
        assert status == 200

        def stopped() -> dict[str, Any] | None:
            found = [m for m in slack.bot_messages(CHANNEL, ts) if "_(stopped by <@U0ALICE>)_" in _body(m)]
            return found[0] if found else None

        reply = await slack.wait_for(stopped, what="the answer marked stopped", timeout=10)
        assert _body(reply).count("word") < 400
        closed = await openai_emu.wait_for(
            lambda: min(openai_emu.hung_up.values(), default=0.0), what="hang-up"
        )
        assert closed - stopped_at < 1.0, runner.logs()
        assert "⚠️" not in _body(reply)
    finally:
        for proc in (edge, runner):
            await stop(proc)


async def test_slack_stop_over_socket_mode_stops_the_turn_an_http_replica_runs(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    runner = await start_process(
        slack, bot_env(slack, openai_emu, redis_url, prefix), tmp_path / "runner.log"
    )
    socket_env = bot_env(
        slack, openai_emu, redis_url, prefix, THREADBRIDGE_WORKERS="false", SLACK_APP_TOKEN=slack.app_token
    )
    socket_env.pop("SLACK_SIGNING_SECRET")
    edge = await start_process(slack, socket_env, tmp_path / "socket.log")
    try:
        slack.agent_sessions = True  # an agent app: Slack's own Stop
        await slack.wait_for(slack.open_sockets, what="the Socket Mode connection")
        ts = await runner.say(CHANNEL, f"{BOT} go on #pace:0:400:50")
        await slack.wait_for(lambda: _under_way(slack, ts), timeout=20, what="the answer under way")
        stopped_at = time.monotonic()
        stopping = slack.user_stops(CHANNEL, ts, user="U0ALICE")
        ack = await slack.socket_send(
            EventSender("unused://socket-mode", slack.signing_secret).envelope(stopping)
        )
        assert ack.get("envelope_id")

        def stopped() -> dict[str, Any] | None:
            found = [m for m in slack.bot_messages(CHANNEL, ts) if "_(stopped by <@U0ALICE>)_" in _body(m)]
            return found[0] if found else None

        reply = await slack.wait_for(stopped, what="the answer marked stopped", timeout=10)
        assert _body(reply).count("word") < 400
        closed = await openai_emu.wait_for(
            lambda: min(openai_emu.hung_up.values(), default=0.0), what="hang-up"
        )
        assert closed - stopped_at < 1.0, runner.logs()
        await slack.wait_for(lambda: slack.session_status(CHANNEL, ts) == "active", what="the session active")
    finally:
        for proc in (edge, runner):
            await stop(proc)
