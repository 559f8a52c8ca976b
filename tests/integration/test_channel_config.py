"""Per-channel settings from the configuration file reach the model; reloads change the next turn."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import pytest

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator
from tests.harness import bot_env, eventually, model_requests, start_in_process, stop

BOT = "<@U0BOT>"
SUPPORT = "C0SUPPORT"
OTHER = "C0OTHER"

CONFIG = f"""
default:
  instructions: You answer everyone briefly.
channels:
  {SUPPORT}:
    instructions_file: support.md
    model: gpt-4.1-mini
"""


def _sent(openai_emu: OpenAIEmulator) -> list[dict]:
    """The body of each model turn: a response, or a run (model and instructions live there)."""
    return [r.json for r in model_requests(openai_emu)]


async def test_channel_model_and_instructions_reach_the_model(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, bot_env_vars: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "support.md").write_text("You are the support desk of Example Corp.\n")
    config = tmp_path / "threadbridge.yml"
    config.write_text(CONFIG)
    bot = await start_in_process(slack, {**bot_env_vars, "THREADBRIDGE_CONFIG": str(config)})
    try:
        ts = await bot.say(SUPPORT, f"{BOT} my printer is on fire")
        await bot.replies(SUPPORT, ts, 1)
        other = await bot.say(OTHER, f"{BOT} what's for lunch")
        await bot.replies(OTHER, other, 1)
    finally:
        await stop(bot)
    support, elsewhere = _sent(openai_emu)
    assert support["model"] == "gpt-4.1-mini"
    assert support["instructions"] == "You are the support desk of Example Corp."
    assert elsewhere["instructions"] == "You answer everyone briefly."
    assert elsewhere.get("model") != "gpt-4.1-mini"


async def test_file_change_is_picked_up_by_the_next_turn_and_a_broken_one_is_ignored(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, bot_env_vars: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "threadbridge.yml"
    config.write_text("default:\n  instructions: First persona.\n")
    bot = await start_in_process(slack, {**bot_env_vars, "THREADBRIDGE_CONFIG": str(config)})
    assert bot.runtime is not None
    try:
        ts = await bot.say(OTHER, f"{BOT} one")
        await bot.replies(OTHER, ts, 1)
        config.write_text("default:\n  instructions: Second persona.\n")
        assert bot.runtime.policy.reload()
        await bot.say(OTHER, "two", thread_ts=ts)
        await bot.replies(OTHER, ts, 2)
        config.write_text("default:\n  instructions: [not, a, string\n")
        assert not bot.runtime.policy.reload()
        await bot.say(OTHER, "three", thread_ts=ts)
        await bot.replies(OTHER, ts, 3)
    finally:
        await stop(bot)
    assert [body["instructions"] for body in _sent(openai_emu)] == [
        "First persona.",
        "Second persona.",
        "Second persona.",
    ]


async def test_prompt_cache_key_and_hashed_safety_identifier_are_sent_and_usage_logged(
    slack: SlackEmulator,
    openai_emu: OpenAIEmulator,
    redis_url: str,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.accounting")
    env = bot_env(
        slack,
        openai_emu,
        redis_url,
        prefix,
        THREADBRIDGE_SAFETY_SALT="pepper",
        THREADBRIDGE_MAX_OUTPUT_TOKENS="900",
    )
    bot = await start_in_process(slack, env)
    try:
        ts = await bot.say(OTHER, f"{BOT} hello secret plans")
        await bot.replies(OTHER, ts, 1)
    finally:
        await stop(bot)
    [body] = _sent(openai_emu)
    [usage] = [r.getMessage() for r in caplog.records if r.name == "bot.accounting"]
    assert re.fullmatch(r"turn used \d+ input, \d+ output, 0 cached tokens \(test-model\)", usage), usage
    assert "secret plans" not in caplog.text
    assert body["prompt_cache_key"] == body["conversation"]
    assert body["max_output_tokens"] == 900
    safety = body["safety_identifier"]
    assert "U0ALICE" not in safety
    assert safety == hashlib.sha256(b"pepper:U0ALICE").hexdigest()[:32]


async def test_channel_tools_and_file_kinds_narrow_what_the_turn_offers(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, bot_env_vars: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "threadbridge.yml"
    config.write_text(f"channels:\n  {SUPPORT}:\n    tools: [thread_participants]\n    file_kinds: [image]\n")
    env = {**bot_env_vars, "THREADBRIDGE_CONFIG": str(config), "THREADBRIDGE_TOOLS": "examples.tools"}
    bot = await start_in_process(slack, env)
    try:
        notes = slack.host_file("notes.txt", b"some notes\n", mimetype="text/plain", filetype="text")
        ts = await bot.say(SUPPORT, f"{BOT} read this", files=[notes])
        await bot.replies(SUPPORT, ts, 2)  # the file's refusal, then the answer
        other = await bot.say(OTHER, f"{BOT} what time is it")
        await bot.replies(OTHER, other, 1)
    finally:
        await stop(bot)
    assert not slack.downloads
    assert "set up not to take document files" in slack.bot_messages(SUPPORT, ts)[0]["text"]
    support, elsewhere = _sent(openai_emu)
    assert "current_time" not in str(support.get("tools"))
    assert "thread_participants" in str(support.get("tools"))
    assert "current_time" in str(elsewhere.get("tools"))


async def test_an_edited_file_is_reloaded_without_a_signal(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    config = tmp_path / "threadbridge.yml"
    config.write_text("default:\n  instructions: Before the edit.\n")
    env = bot_env(slack, openai_emu, redis_url, prefix, THREADBRIDGE_CONFIG=str(config))
    bot = await start_in_process(slack, env)
    assert bot.runtime is not None
    policy = bot.runtime.policy
    try:
        config.write_text("default:\n  instructions: After the edit, noticed on disk.\n")

        async def noticed() -> bool:
            return policy.current.default.instructions == "After the edit, noticed on disk."

        await eventually(noticed, "the watcher to reload the edited file")
        ts = await bot.say(OTHER, f"{BOT} who are you now?")
        await bot.replies(OTHER, ts, 1)
    finally:
        await stop(bot)
    assert [body["instructions"] for body in _sent(openai_emu)] == ["After the edit, noticed on disk."]
