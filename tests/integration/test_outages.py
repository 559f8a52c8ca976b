"""Outages of the servers the bot depends on: nothing said is lost, every reply is finished."""

from __future__ import annotations

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator
from tests.harness import BotUnderTest

BOT = "<@U0BOT>"
CHANNEL = "C0OUTAGE"


async def test_after_send_it_again_a_plain_reply_in_the_thread_is_answered(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    # The server is down when the thread starts: no conversation can be opened for it.
    openai_emu.fail_next("POST", "/v1/conversations", status=503, times=4)
    openai_emu.fail_next("POST", "/v1/threads", status=503, times=4)
    ts = await bot.say(CHANNEL, f"{BOT} hello during an outage")
    [notice] = await bot.replies(CHANNEL, ts, 1, timeout=30)
    assert "send it again" in notice["text"]
    await bot.say(CHANNEL, "hello again, no mention", thread_ts=ts)
    answer = (await bot.replies(CHANNEL, ts, 2))[1]
    assert "echo: Alice: hello again, no mention" in answer["text"]
