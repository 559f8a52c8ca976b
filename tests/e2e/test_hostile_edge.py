"""The HTTP edge as a process under hostile input: raw bodies, unsigned and signed."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator
from tests.harness import BotUnderTest, bot_env, model_requests, start_process, stop

BOT = "<@U0BOT>"
CHANNEL = "C0EDGE"
MALFORMED_BODIES = [
    (b'{"type": "event_callback", "event": ', "application/json"),
    (b"[1, 2, 3]", "application/json"),
    (b'"just a string"', "application/json"),
    (b"null", "application/json"),
    (b"payload=%7Bnot-json", "application/x-www-form-urlencoded"),
    (b"payload=%5B1%5D", "application/x-www-form-urlencoded"),
    (b"\xff\xfe{}", "application/json"),
]


@pytest.fixture
async def edge(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, redis_url: str, prefix: str, tmp_path: Path
) -> AsyncIterator[BotUnderTest]:
    env = bot_env(slack, openai_emu, redis_url, prefix)
    running = await start_process(slack, env, tmp_path / "bot.log")
    try:
        yield running
    finally:
        await stop(running)


async def _post(bot: BotUnderTest, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{bot.url}/slack/events", data=body, headers=headers) as resp,
    ):
        return resp.status, await resp.text()


def _signed(bot: BotUnderTest, body: bytes, content_type: str, **kw: int) -> dict[str, str]:
    return {**bot.events.signed_headers(body, **kw), "Content-Type": content_type}


async def _still_answers(bot: BotUnderTest) -> None:
    ts = await bot.say(CHANNEL, f"{BOT} still there?")
    await bot.replies(CHANNEL, ts, 1)


@pytest.mark.parametrize(("body", "content_type"), MALFORMED_BODIES)
async def test_unsigned_malformed_body_is_401_without_parsing_or_logging_it(
    edge: BotUnderTest, body: bytes, content_type: str
) -> None:
    status, text = await _post(edge, body, {"Content-Type": content_type})
    assert status == 401, text
    await _still_answers(edge)
    logs = edge.logs()
    assert "Traceback" not in logs and "JSONDecodeError" not in logs
    assert "not-json" not in logs and "just a string" not in logs


async def test_signed_malformed_bodies_get_400_not_a_traceback(edge: BotUnderTest) -> None:
    for body, content_type in MALFORMED_BODIES:
        status, text = await _post(edge, body, _signed(edge, body, content_type))
        assert status == 400, (body, status, text)
    await _still_answers(edge)
    logs = edge.logs()
    assert "Traceback" not in logs and " 500 " not in logs
    assert "not-json" not in logs and "just a string" not in logs


async def test_non_numeric_timestamp_is_401(edge: BotUnderTest) -> None:
    body = json.dumps(edge.events.envelope({"type": "app_mention"})).encode()
    headers = _signed(edge, body, "application/json")
    for stamp in ("soon", "1e9", "-5", "١٢٣", ""):
        headers["X-Slack-Request-Timestamp"] = stamp
        status, _ = await _post(edge, body, headers)
        assert status == 401, stamp
    assert "Traceback" not in edge.logs()


async def test_unsigned_megabyte_bodies_do_not_grow_the_log(edge: BotUnderTest) -> None:
    before = len(edge.logs())
    filler = "A" * 1_000_000
    body = json.dumps({"type": "event_callback", "filler": filler}).encode()[:1_000_000]
    for _ in range(5):
        headers = {"Content-Type": "application/json", "X-Slack-Signature": "v0=00"}
        status, _ = await _post(edge, body, headers)
        assert status == 401
    await _still_answers(edge)
    assert len(edge.logs()) - before < 5_000
    assert "AAAAAAAAAA" not in edge.logs()


async def test_signed_incomplete_events_are_acked_logged_once_and_dropped(
    edge: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    stamp = f"{time.time():.6f}"
    incomplete = [
        {"type": "app_mention", "user": "U0ALICE", "text": f"{BOT} no channel", "ts": stamp},
        {"type": "app_mention", "user": "U0ALICE", "text": f"{BOT} no ts", "channel": CHANNEL},
        {"type": "message", "user": "U0ALICE", "text": "no ts", "channel": "D0DM", "channel_type": "im"},
        {"type": "message", "user": "U0ALICE", "text": "ts is a number", "channel": "D0DM", "ts": 12.5},
    ]
    for event in incomplete:
        status, text = await edge.events.send(event)
        assert status == 200, text
    envelope = edge.events.envelope({})
    del envelope["event"]
    assert (await edge.events.post(envelope))[0] == 200
    await _still_answers(edge)
    logs = edge.logs()
    assert "Traceback" not in logs
    assert logs.count("dropped an incomplete event") == len(incomplete) + 1
    assert len(model_requests(openai_emu)) == 1
