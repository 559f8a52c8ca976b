"""A turn tells the truth: the backend's clean-up runs inside it, and notices say only what happened."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

import pytest

from tests.emulators.openai import OpenAIEmulator, Recorded
from tests.emulators.slack import Call, SlackEmulator
from tests.harness import BotUnderTest, bot_env, start_in_process, stop

BOT = "<@U0BOT>"
CHANNEL = "C0TRUTH"
SAVED = "Your message is saved"
# What stores a user's words on the server (responses: items, assistants: messages) or frees
# the thread after an abandoned run (assistants: cancel).
CLEAN_UP = re.compile(r"/v1/conversations/[^/]+/items|/v1/threads/[^/]+/(messages|runs/[^/]+/cancel)")


def _notice(slack: SlackEmulator) -> Call:
    """The first Slack write that carried the failure notice (a new message or a stream's end)."""
    return next(c for c in slack.calls if c.method.startswith("chat.") and "⚠️" in str(c.args))


def _clean_ups(openai_emu: OpenAIEmulator) -> list[Recorded]:
    return [r for r in openai_emu.requests if r.method == "POST" and CLEAN_UP.fullmatch(r.path)]


def _last_clean_up(openai_emu: OpenAIEmulator) -> float:
    """When the last clean-up request arrived, on the Slack emulator's (wall) clock."""
    return max(r.at for r in _clean_ups(openai_emu)) + time.time() - time.monotonic()


async def test_failed_answer_says_saved_only_once_the_message_is_saved(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    ts = await bot.say(CHANNEL, f"{BOT} this one breaks #fail")
    [reply] = await bot.replies(CHANNEL, ts, 1)
    assert SAVED in reply["text"]
    assert _last_clean_up(openai_emu) < _notice(slack).at


async def test_broken_stream_is_cleaned_up_inside_the_turn_before_the_notice(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    ts = await bot.say(CHANNEL, f"{BOT} break the stream #stream-error")
    await bot.replies(CHANNEL, ts, 1, timeout=20)
    # The last clean-up request (keeping the items / cancelling the run) came before the notice.
    assert _last_clean_up(openai_emu) < _notice(slack).at


@pytest.fixture
async def responses_bot(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, redis_url: str, prefix: str, redis_client: object
) -> AsyncIterator[BotUnderTest]:
    running = await start_in_process(slack, bot_env(slack, openai_emu, redis_url, prefix))
    try:
        yield running
    finally:
        await stop(running)


async def test_failed_answer_whose_message_could_not_be_kept_asks_to_send_it_again(
    responses_bot: BotUnderTest, openai_emu: OpenAIEmulator
) -> None:
    openai_emu.fail_next("POST", "/v1/conversations/*/items", status=500, times=10)
    ts = await responses_bot.say(CHANNEL, f"{BOT} this one breaks too #fail")
    [reply] = await responses_bot.replies(CHANNEL, ts, 1, timeout=20)
    assert SAVED not in reply["text"]
    assert "send it again" in reply["text"]
