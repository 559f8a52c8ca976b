"""Slack outages: a message is answered once Slack is back, and every reply ends finished."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.outage import OutageRetryHandler, unavailable
from bot.slack.render import FEEDBACK_ACTION
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.openai.script import long_text
from tests.emulators.slack import SlackEmulator
from tests.harness import BotUnderTest, model_requests, start_in_process, stop

BOT = "<@U0BOT>"
CHANNEL = "C0SLACKDOWN"
# The answer of the issue: 1,508 characters, of which Slack had shown 1,400 when it broke.
LONG = 1508

Start = Callable[..., Awaitable[BotUnderTest]]


@pytest.fixture
async def start_bot(
    slack: SlackEmulator, bot_env_vars: dict[str, str], redis_client: Redis
) -> AsyncIterator[Start]:
    """Starts the bot with extra settings (the retry deadline, streaming off)."""
    running: list[BotUnderTest] = []

    async def start(**overrides: str) -> BotUnderTest:
        bot = await start_in_process(slack, {**bot_env_vars, **overrides})
        running.append(bot)
        return bot

    yield start
    for bot in running:
        await stop(bot)


def _markdown(message: dict[str, Any]) -> str:
    """What the message says: its markdown blocks, or a stream's text."""
    blocks = [b["text"] for b in message.get("blocks") or [] if b.get("type") == "markdown"]
    return "".join(blocks) if blocks else str(message.get("text", ""))


def _finished(message: dict[str, Any]) -> bool:
    """Closed: not streaming any more, with the feedback buttons every finished answer gets."""
    return not message.get("streaming") and FEEDBACK_ACTION in str(message.get("blocks"))


async def _final_answer(slack: SlackEmulator, thread_ts: str, timeout: float = 30.0) -> dict[str, Any]:
    """Waits until the thread holds exactly one bot reply, finished; returns it."""

    def done() -> dict[str, Any] | None:
        replies = slack.bot_messages(CHANNEL, thread_ts)
        return replies[0] if len(replies) == 1 and _finished(replies[0]) else None

    return await slack.wait_for(done, timeout=timeout, what="one finished reply")


async def test_an_answer_rides_out_a_slack_outage_shorter_than_the_retry_deadline(
    start_bot: Start, slack: SlackEmulator
) -> None:
    bot = await start_bot()
    ts = await bot.say(CHANNEL, f"{BOT} hello while Slack is down")
    # Accepted (acked) just before Slack goes down: the turn writes its answer into the outage.
    slack.outage(10)
    answer = await _final_answer(slack, ts)
    assert "echo: Alice: hello while Slack is down" in _markdown(answer)
    assert "⚠️" not in _markdown(answer)


async def test_a_message_is_answered_once_slack_is_back_after_outlasting_the_retry_deadline(
    start_bot: Start, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    bot = await start_bot(THREADBRIDGE_SLACK_RETRY_SECONDS="1")
    slack.outage(5)
    ts = await bot.say(CHANNEL, f"{BOT} are you there?")
    answer = await _final_answer(slack, ts)
    assert not slack.down
    assert "echo: Alice: are you there?" in _markdown(answer)
    # While Slack was down the turn stopped before the model: it was asked once, not per try.
    assert len(model_requests(openai_emu)) == 1


async def test_a_message_retried_through_an_outage_counts_once_against_the_daily_turns(
    start_bot: Start, slack: SlackEmulator
) -> None:
    # One answer a day: the tries made while Slack was down must not use it up.
    bot = await start_bot(THREADBRIDGE_SLACK_RETRY_SECONDS="1", THREADBRIDGE_USER_DAILY_TURNS="1")
    slack.outage(5)
    ts = await bot.say(CHANNEL, f"{BOT} are you there?")
    answer = await _final_answer(slack, ts)
    assert "echo: Alice: are you there?" in _markdown(answer)
    assert not [c for c in slack.calls if c.method == "chat.postEphemeral"]


async def test_an_answer_is_posted_after_many_rate_limits_honouring_retry_after(
    start_bot: Start, slack: SlackEmulator
) -> None:
    bot = await start_bot(THREADBRIDGE_SLACK_STREAMING="false")
    # More than the SDK's own handler takes (three), fewer than the deadline allows.
    slack.fail_next("chat.postMessage", status=429, retry_after=1, times=5)
    ts = await bot.say(CHANNEL, f"{BOT} busy day")
    answer = await _final_answer(slack, ts)
    assert "echo: Alice: busy day" in _markdown(answer)
    posts = [c for c in slack.calls if c.method == "chat.postMessage"]
    assert [c.status for c in posts[:6]] == [429] * 5 + [200]
    # Each try waited for the Retry-After Slack sent.
    assert all(later.at - earlier.at >= 1.0 for earlier, later in itertools.pairwise(posts[:6]))


async def test_a_stream_stop_that_fails_for_a_while_is_retried_and_finished_in_place(
    start_bot: Start, slack: SlackEmulator
) -> None:
    bot = await start_bot()
    slack.fail_next("chat.stopStream", status=500, error="internal_error", retry_after=None, times=3)
    ts = await bot.say(CHANNEL, f"{BOT} write a lot #long:{LONG}")
    answer = await _final_answer(slack, ts)
    assert answer["stream_state"] == "stopped"
    assert _markdown(answer) == long_text(LONG)


async def test_a_stream_slack_will_not_stop_is_replaced_by_the_complete_answer(
    start_bot: Start, slack: SlackEmulator
) -> None:
    bot = await start_bot(THREADBRIDGE_SLACK_RETRY_SECONDS="1")
    slack.fail_next("chat.stopStream", status=500, error="internal_error", retry_after=None, times=1000)
    ts = await bot.say(CHANNEL, f"{BOT} write a lot #long:{LONG}")
    answer = await _final_answer(slack, ts)
    # A new message with the whole answer; the stream left open was deleted.
    assert "stream_state" not in answer
    assert _markdown(answer) == long_text(LONG)
    [streamed] = [c.response["ts"] for c in slack.calls if c.method == "chat.startStream" and c.ok]
    assert streamed != answer["ts"]
    assert slack.message(CHANNEL, streamed) is None


async def test_a_stream_that_breaks_mid_answer_is_replaced_by_the_complete_answer(
    start_bot: Start, slack: SlackEmulator
) -> None:
    bot = await start_bot(THREADBRIDGE_SLACK_RETRY_SECONDS="1")
    slack.fail_next("chat.appendStream", status=503, error="service_unavailable", retry_after=None, times=99)
    # Long and slow enough that the answer goes out in more than one stream call.
    ts = await bot.say(CHANNEL, f"{BOT} write more #long:6000 #slow")
    answer = await _final_answer(slack, ts)
    assert any(c.method == "chat.appendStream" and c.status == 503 for c in slack.calls)
    assert "stream_state" not in answer
    assert _markdown(answer) == long_text(6000)


async def test_a_placeholder_slack_will_not_update_is_replaced_by_the_complete_answer(
    start_bot: Start, slack: SlackEmulator
) -> None:
    bot = await start_bot(THREADBRIDGE_SLACK_STREAMING="false", THREADBRIDGE_SLACK_RETRY_SECONDS="1")
    # Retry-After beyond the deadline: waiting would not help, so the bot does not wait.
    slack.fail_next("chat.update", status=429, retry_after=5, times=1000)
    ts = await bot.say(CHANNEL, f"{BOT} write a lot #long:{LONG} #slow")
    answer = await _final_answer(slack, ts)
    assert _markdown(answer) == long_text(LONG)
    placeholder = next(c for c in slack.calls if c.method == "chat.postMessage" and c.ok)
    assert placeholder.response["ts"] != answer["ts"]
    assert slack.message(CHANNEL, placeholder.response["ts"]) is None


async def test_a_retry_after_beyond_the_deadline_is_not_waited_for(slack: SlackEmulator) -> None:
    client = AsyncWebClient(
        token=slack.bot_token, base_url=slack.api_url, retry_handlers=[OutageRetryHandler(deadline_s=2)]
    )
    slack.fail_next("chat.postMessage", status=429, retry_after=30, times=2)
    with pytest.raises(SlackApiError) as failed:
        await client.chat_postMessage(channel=CHANNEL, text="now or never")
    assert unavailable(failed.value)
    assert [c.status for c in slack.calls] == [429]


async def test_a_refusal_is_not_retried(slack: SlackEmulator) -> None:
    client = AsyncWebClient(
        token=slack.bot_token, base_url=slack.api_url, retry_handlers=[OutageRetryHandler(deadline_s=30)]
    )
    with pytest.raises(SlackApiError) as failed:
        await client.chat_update(channel=CHANNEL, ts="1.000001", text="x")
    assert not unavailable(failed.value)
    assert [c.error for c in slack.calls] == ["message_not_found"]
