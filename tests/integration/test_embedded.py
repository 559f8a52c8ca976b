"""No REDIS_URL: the bot runs on an in-process Redis and says loudly that state is lost."""

from __future__ import annotations

import logging

import pytest

from tests.emulators.slack import SlackEmulator
from tests.harness import start_in_process, stop


async def test_embedded_redis_answers_and_warns(
    slack: SlackEmulator, bot_env_vars: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    env = {k: v for k, v in bot_env_vars.items() if k != "REDIS_URL"}
    with caplog.at_level(logging.WARNING, logger="bot.app"):
        bot = await start_in_process(slack, env)
    try:
        warnings = [r.getMessage() for r in caplog.records]
        assert any("REDIS_URL is not set" in w and "LOST" in w for w in warnings)
        ts = await bot.say("C0EMBED", "<@U0BOT> hello embedded")
        [reply] = await bot.replies("C0EMBED", ts, 1)
        assert "echo: Alice: hello embedded [user messages: 1]" in reply["text"]
        await bot.say("C0EMBED", "again", thread_ts=ts)
        assert "[user messages: 2]" in (await bot.replies("C0EMBED", ts, 2))[1]["text"]
    finally:
        await stop(bot)
