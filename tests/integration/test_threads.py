"""A Slack thread ⇄ one assistant conversation, through the real SDKs, emulators and Redis."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import aiohttp
from redis.asyncio import Redis

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator, app_home_opened
from tests.harness import (
    BotUnderTest,
    conversation_ids,
    conversation_metadata,
    fail_model_requests,
    forget_conversations,
    model_inputs,
    model_requests,
)

BOT = "<@U0BOT>"
CHANNEL = "C0GENERAL"


def _text(msg: dict) -> str:
    return msg.get("text") or ""


async def test_mention_streams_reply_into_its_thread(bot: BotUnderTest, slack: SlackEmulator) -> None:
    ts = await bot.say(CHANNEL, f"{BOT} what does this log mean?")
    [reply] = await bot.replies(CHANNEL, ts, 1)
    assert "echo: Alice: what does this log mean? [user messages: 1]" in _text(reply)
    assert reply["thread_ts"] == ts
    [start] = slack.calls_to("chat.startStream")
    assert start["recipient_team_id"] == "T0TEAM" and start["recipient_user_id"] == "U0ALICE"
    assert slack.calls_to("assistant.threads.setStatus"), "a status line was shown while working"


async def test_reply_in_thread_continues_same_conversation(
    bot: BotUnderTest, openai_emu: OpenAIEmulator
) -> None:
    ts = await bot.say(CHANNEL, f"{BOT} remember the number 42")
    await bot.replies(CHANNEL, ts, 1)
    await bot.say(CHANNEL, "what was the number?", user="U0BOB", thread_ts=ts)
    replies = await bot.replies(CHANNEL, ts, 2)
    assert "echo: Bob: what was the number? [user messages: 2]" in _text(replies[1])
    assert len(conversation_ids(openai_emu)) == 1


async def test_different_threads_get_different_conversations(
    bot: BotUnderTest, openai_emu: OpenAIEmulator
) -> None:
    a = await bot.say(CHANNEL, f"{BOT} first")
    b = await bot.say(CHANNEL, f"{BOT} second")
    await bot.replies(CHANNEL, a, 1)
    [reply_b] = await bot.replies(CHANNEL, b, 1)
    assert "[user messages: 1]" in _text(reply_b)
    assert len(conversation_ids(openai_emu)) == 2
    metas = sorted(m["slack_thread_ts"] for m in conversation_metadata(openai_emu))
    assert metas == sorted([a, b])


async def test_reply_in_a_thread_the_bot_never_joined_is_ignored(
    bot: BotUnderTest, slack: SlackEmulator, redis_client: Redis, prefix: str
) -> None:
    root = slack.add_message(CHANNEL, user="U0BOB", text="lunch?")
    await bot.say(CHANNEL, "sure", thread_ts=root)
    # The edge decides before it acks: nothing was queued for this thread.
    assert await redis_client.xlen(f"{prefix}turns") == 0
    assert slack.bot_messages(CHANNEL, root) == []


async def test_mid_thread_mention_seeds_earlier_messages(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    root = slack.add_message(CHANNEL, user="U0BOB", text="the deploy failed with exit 137")
    slack.add_message(CHANNEL, user="U0ALICE", text="probably OOM again", thread_ts=root)
    await bot.say(CHANNEL, f"{BOT} summarise this", thread_ts=root)
    [reply] = await bot.replies(CHANNEL, root, 1)
    assert "summarise this [user messages: 1]" in _text(reply)
    sent = model_inputs(openai_emu)[0]
    assert "Bob: the deploy failed with exit 137" in sent
    assert "Alice: probably OOM again" in sent


async def test_dm_top_level_messages_are_separate_threads(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    first = await bot.say("D0ALICE", "hello there")
    [r1] = await bot.replies("D0ALICE", first, 1)
    assert r1["thread_ts"] == first
    await bot.say("D0ALICE", "and again", thread_ts=first)
    r2 = (await bot.replies("D0ALICE", first, 2))[1]
    assert "[user messages: 2]" in _text(r2)
    other = await bot.say("D0ALICE", "new topic")
    [r3] = await bot.replies("D0ALICE", other, 1)
    assert "[user messages: 1]" in _text(r3)
    assert len(conversation_ids(openai_emu)) == 2


async def test_slack_retries_of_one_event_give_one_reply(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    ts, events = slack.user_says(CHANNEL, user="U0ALICE", text=f"{BOT} once please")
    mention = next(e for e in events if e["type"] == "app_mention")
    envelope = bot.events.envelope(mention)
    for retry in (None, 1, 2, 3):
        status, _ = await bot.events.post(
            envelope, retry_num=retry, retry_reason="http_timeout" if retry else None
        )
        assert status == 200
    # The twin `message` event of the same mention must not add a second answer either.
    twin = next(e for e in events if e["type"] == "message")
    assert (await bot.events.send(twin))[0] == 200
    await bot.replies(CHANNEL, ts, 1)
    follow = await bot.say(CHANNEL, f"{BOT} a later question")
    await bot.replies(CHANNEL, follow, 1)
    assert len(slack.bot_messages(CHANNEL, ts)) == 1
    assert len(model_requests(openai_emu)) == 2


async def test_unsigned_and_stale_requests_are_rejected(bot: BotUnderTest, slack: SlackEmulator) -> None:
    _, events = slack.user_says(CHANNEL, user="U0ALICE", text=f"{BOT} hi")
    envelope = bot.events.envelope(events[0])
    assert (await bot.events.post(envelope, sign=False))[0] == 401
    assert (await bot.events.post(envelope, timestamp=int(time.time()) - 3600))[0] == 401
    assert (await bot.events.post(envelope, signature="v0=" + "0" * 64))[0] == 401
    assert slack.calls_to("chat.startStream") == [] and slack.calls_to("chat.postMessage") == []


async def test_unhandled_event_types_are_acknowledged(bot: BotUnderTest) -> None:
    event = {"type": "reaction_added", "user": "U0ALICE", "reaction": "eyes", "item": {}, "event_ts": "1.0"}
    assert (await bot.events.send(event))[0] == 200
    assert (await bot.events.send(app_home_opened("U0ALICE", "D0ALICE")))[0] == 200


async def test_app_home_opened_sets_suggested_prompts(bot: BotUnderTest, slack: SlackEmulator) -> None:
    await bot.events.send(app_home_opened("U0ALICE", "D0ALICE"))
    [call] = await slack.wait_for(
        lambda: slack.calls_to("assistant.threads.setSuggestedPrompts"), what="suggested prompts"
    )
    assert call["channel_id"] == "D0ALICE" and len(call["prompts"]) == 3


async def test_backend_failure_posts_one_clear_message_and_keeps_the_text(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    fail_model_requests(openai_emu, status=500, times=20)
    ts = await bot.say(CHANNEL, f"{BOT} the secret word is banana")
    [reply] = await bot.replies(CHANNEL, ts, 1)
    assert "⚠️" in _text(reply) and "try again" in _text(reply)
    fail_model_requests(openai_emu, times=0)
    await bot.say(CHANNEL, "did you keep it?", thread_ts=ts)
    later = (await bot.replies(CHANNEL, ts, 2))[1]
    assert "[user messages: 2]" in _text(later)
    [conv_id] = conversation_ids(openai_emu)
    assert any("banana" in t for t in openai_emu.user_texts(conv_id))


async def test_model_failure_mid_stream_is_reported_once(bot: BotUnderTest, slack: SlackEmulator) -> None:
    ts = await bot.say(CHANNEL, f"{BOT} please #fail")
    [reply] = await bot.replies(CHANNEL, ts, 1)
    assert _text(reply).count("⚠️") == 1


async def test_fallback_to_message_updates_when_streaming_is_refused(
    bot: BotUnderTest, slack: SlackEmulator
) -> None:
    slack.streaming_enabled = False
    ts = await bot.say(CHANNEL, f"{BOT} no streams here")
    # The placeholder is posted with the first words and then updated to the whole answer.
    await slack.wait_for(lambda: slack.calls_to("chat.update"), what="the placeholder's final update")
    [reply] = await bot.replies(CHANNEL, ts, 1)
    assert "echo: Alice: no streams here" in _text(reply)
    assert slack.calls_to("chat.postMessage")


async def test_long_answer_is_split_without_breaking_code_blocks(
    bot: BotUnderTest, slack: SlackEmulator
) -> None:
    ts = await bot.say(CHANNEL, f"{BOT} #long:30000")
    await slack.wait_for(
        lambda: slack.calls_to("chat.stopStream") and len(slack.calls_to("chat.stopStream")) >= 3
    )
    replies = await bot.replies(CHANNEL, ts, 3)
    assert len(replies) >= 3
    for msg in replies:
        assert _text(msg).count("```") % 2 == 0
        assert len(_text(msg)) <= 12_000
    assert sum(len(_text(m)) for m in replies) >= 25_000


async def test_slack_rate_limit_is_retried(bot: BotUnderTest, slack: SlackEmulator) -> None:
    slack.fail_next("chat.stopStream", status=429, error="ratelimited", retry_after=1)
    ts = await bot.say(CHANNEL, f"{BOT} rate limited")
    [reply] = await bot.replies(CHANNEL, ts, 1)
    assert "echo: Alice: rate limited" in _text(reply)
    assert [c.status for c in slack.calls if c.method == "chat.stopStream"] == [429, 200]


async def test_lost_conversation_is_recreated_and_user_told(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    ts = await bot.say(CHANNEL, f"{BOT} one")
    await bot.replies(CHANNEL, ts, 1)
    forget_conversations(openai_emu)
    await bot.say(CHANNEL, "two", thread_ts=ts)
    reply = (await bot.replies(CHANNEL, ts, 2))[1]
    assert "lost" in _text(reply) and "[user messages: 1]" in _text(reply)


async def test_a_message_the_server_could_not_store_is_not_claimed_saved(
    bot: BotUnderTest, openai_emu: OpenAIEmulator
) -> None:
    # Everything that could store the message fails: the user must be told to send it again.
    fail_model_requests(openai_emu, status=500, times=20)
    openai_emu.fail_next("POST", "/v1/conversations/*/items", status=500, times=20)
    openai_emu.fail_next("POST", "/v1/threads/*/messages", status=500, times=20)
    ts = await bot.say(CHANNEL, f"{BOT} remember pineapple")
    [reply] = await bot.replies(CHANNEL, ts, 1, timeout=60)
    assert "send it again" in _text(reply)
    assert "is saved" not in _text(reply)


async def _click_feedback(bot: BotUnderTest, channel: str, reply: dict, value: str) -> int:
    """Slack posts block_actions as a signed form body with one `payload` field."""
    payload = {
        "type": "block_actions",
        "team": {"id": "T0TEAM", "domain": "emulated"},
        "user": {"id": "U0BOB", "team_id": "T0TEAM"},
        "api_app_id": "A0APP",
        "channel": {"id": channel},
        "container": {"type": "message", "message_ts": reply["ts"], "channel_id": channel},
        "message": {"ts": reply["ts"], "thread_ts": reply["thread_ts"], "text": reply.get("text", "")},
        "actions": [
            {
                "type": "feedback_buttons",
                "action_id": "threadbridge_feedback",
                "block_id": "fb",
                "value": value,
            }
        ],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    headers = {**bot.events.signed_headers(body), "Content-Type": "application/x-www-form-urlencoded"}
    async with aiohttp.ClientSession() as http, http.post(bot.events.url, data=body, headers=headers) as resp:
        return resp.status


async def test_feedback_buttons_are_recorded_on_the_conversation(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    ts = await bot.say(CHANNEL, f"{BOT} rate me")
    [reply] = await bot.replies(CHANNEL, ts, 1)
    kinds = [b.get("type") for b in reply.get("blocks") or []]
    assert "context_actions" in kinds
    assert await _click_feedback(bot, CHANNEL, reply, "bad") == 200
    thanks = await slack.wait_for(lambda: slack.calls_to("chat.postEphemeral"), what="the thank-you")
    assert thanks[0]["user"] == "U0BOB"
    [meta] = conversation_metadata(openai_emu)
    assert meta["feedback"] == "bad" and meta["feedback_user"] == "U0BOB"


async def test_deleting_the_thread_root_deletes_its_conversation(
    bot: BotUnderTest, openai_emu: OpenAIEmulator, redis_client: Redis, prefix: str
) -> None:
    ts = await bot.say(CHANNEL, f"{BOT} forget me later")
    await bot.replies(CHANNEL, ts, 1)
    assert len(conversation_ids(openai_emu)) == 1
    deleted = {
        "type": "message",
        "subtype": "message_deleted",
        "channel": CHANNEL,
        "hidden": True,
        "ts": "1800000000.000100",
        "deleted_ts": ts,
        "event_ts": "1800000000.000100",
        "channel_type": "channel",
        "previous_message": {
            "type": "message",
            "user": "U0ALICE",
            "text": "forget me later",
            "ts": ts,
            "thread_ts": ts,
        },
    }
    assert (await bot.events.send(deleted))[0] == 200
    await openai_emu.wait_for(lambda: not conversation_ids(openai_emu), what="the conversation to be deleted")
    assert not await redis_client.exists(f"{prefix}bind:T0TEAM:{CHANNEL}:{ts}")
