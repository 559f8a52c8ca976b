"""Edits in Slack: before the answer the model sees the new text; the latest message's answer is
redone in place; an older message's edit goes to the model as a correction with the next turn;
bots' edits (the bot's own streaming included) change nothing."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator
from tests.harness import BotUnderTest, conversation_ids, eventually, model_inputs, model_requests

BOT = "<@U0BOT>"
CHANNEL = "C0EDITS"


async def _deliver(bot: BotUnderTest, event: dict[str, Any]) -> None:
    status, body = await bot.events.send(event)
    assert status == 200, (status, body)


def _assistant_texts(openai_emu: OpenAIEmulator, conversation_id: str) -> list[str]:
    """The assistant messages the server-side conversation (or legacy thread) holds."""
    if conversation_id in openai_emu.threads:
        return [
            " | ".join(p["text"]["value"] for p in m["content"] if p.get("type") == "text")
            for m in openai_emu.threads[conversation_id].messages
            if m["role"] == "assistant"
        ]
    return [
        " ".join(p.get("text", "") for p in item.get("content") or [])
        for item in openai_emu.conversations[conversation_id].items
        if item.get("type") == "message" and item.get("role") == "assistant"
    ]


async def _inbox_holds(redis_client: Redis, name: str, n: int) -> bool:
    return int(await redis_client.llen(name)) == n  # type: ignore[misc]


async def test_edit_before_its_turn_starts_reaches_the_model_as_the_new_text(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator, redis_client: Redis, prefix: str
) -> None:
    root = await bot.say(CHANNEL, f"{BOT} #stall first")
    await openai_emu.wait_for(lambda: openai_emu.stalled == 1, what="turn 1 to be running")
    typo = await bot.say(CHANNEL, "what is the captial of Frnace", thread_ts=root)
    await _deliver(bot, slack.user_edits(CHANNEL, typo, "what is the capital of France"))
    inbox = f"{prefix}inbox:T0TEAM:{CHANNEL}:{root}"
    await eventually(lambda: _inbox_holds(redis_client, inbox, 3), "the reply and its edit to wait")
    openai_emu.release()

    replies = await bot.replies(CHANNEL, root, 2)
    assert "echo: Alice: what is the capital of France [user messages: 2]" in replies[1]["text"]
    assert not any("Frnace" in sent for sent in model_inputs(openai_emu))
    assert len(model_requests(openai_emu)) == 2


async def test_edit_after_the_answer_regenerates_it_in_place(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    root = await bot.say(CHANNEL, f"{BOT} how many legs has a spider")
    [old] = await bot.replies(CHANNEL, root, 1)
    [conversation] = conversation_ids(openai_emu)

    await _deliver(bot, slack.user_edits(CHANNEL, root, f"{BOT} how many legs has an ant"))

    def redone() -> list[dict[str, Any]] | None:
        msgs = [m for m in slack.bot_messages(CHANNEL, root) if not m.get("streaming")]
        return msgs if len(msgs) == 1 and msgs[0]["ts"] != old["ts"] else None

    [new] = await slack.wait_for(redone, what="the answer to be replaced")
    assert "Alice edited their message to: how many legs has an ant" in new["text"]
    assert slack.message(CHANNEL, old["ts"]) is None
    # The conversation holds the new answer only: the old one went with its Slack message.
    assert _assistant_texts(openai_emu, conversation) == [
        "echo: Alice edited their message to: how many legs has an ant [user messages: 2]"
    ]
    assert conversation_ids(openai_emu) == [conversation]


async def test_edit_during_the_answer_replaces_it_once_it_is_written(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator, redis_client: Redis, prefix: str
) -> None:
    root = await bot.say(CHANNEL, f"{BOT} #stall tell me about owls")
    await openai_emu.wait_for(lambda: openai_emu.stalled == 1, what="the answer to be under way")
    await _deliver(bot, slack.user_edits(CHANNEL, root, f"{BOT} tell me about cats"))
    inbox = f"{prefix}inbox:T0TEAM:{CHANNEL}:{root}"
    await eventually(lambda: _inbox_holds(redis_client, inbox, 2), "the edit to wait for the answer")
    openai_emu.release()

    def redone() -> dict[str, Any] | None:
        msgs = [m for m in slack.bot_messages(CHANNEL, root) if not m.get("streaming")]
        return msgs[0] if len(msgs) == 1 and "cats" in msgs[0]["text"] else None

    answer = await slack.wait_for(redone, what="the owl answer to be replaced by the cat answer")
    assert "Alice edited their message to: tell me about cats" in answer["text"]
    assert "owls" not in answer["text"]
    assert len(model_requests(openai_emu)) == 2


async def test_edit_of_an_older_message_reaches_the_model_as_a_correction_with_the_next_turn(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    root = await bot.say(CHANNEL, f"{BOT} my order number is 1234")
    await bot.replies(CHANNEL, root, 1)
    await bot.say(CHANNEL, "it has not arrived", thread_ts=root)
    before = [m["ts"] for m in await bot.replies(CHANNEL, root, 2)]
    [conversation] = conversation_ids(openai_emu)

    await _deliver(bot, slack.user_edits(CHANNEL, root, f"{BOT} my order number is 4321"))
    note = "Alice corrected an earlier message: my order number is 4321"
    await openai_emu.wait_for(
        lambda: note in openai_emu.user_texts(conversation), what="the correction to be stored"
    )
    # A correction alone is no question: nothing is answered, no answer is replaced.
    assert len(model_requests(openai_emu)) == 2

    await bot.say(CHANNEL, "any news?", thread_ts=root)
    replies = await bot.replies(CHANNEL, root, 3)
    assert [m["ts"] for m in replies[:2]] == before
    # The model has the correction (the legacy thread shows it as new since the last run).
    assert "Alice: any news? [user messages: 4]" in replies[2]["text"]
    assert len(model_requests(openai_emu)) == 3


async def test_edits_by_bots_and_the_bots_own_are_ignored(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    root = await bot.say(CHANNEL, f"{BOT} hello")
    [answer] = await bot.replies(CHANNEL, root, 1)
    await _deliver(bot, slack.user_edits(CHANNEL, answer["ts"], "the bot rewrote its answer"))
    other = slack.user_edits(CHANNEL, await bot.say(CHANNEL, "a note", thread_ts=root), "changed")
    other["message"]["bot_id"] = "B0OTHERBOT"
    await bot.replies(CHANNEL, root, 2)
    await _deliver(bot, other)

    # A later turn is the barrier: had either edit been taken, it would be answered or redone.
    await bot.say(CHANNEL, "still there?", thread_ts=root)
    replies = await bot.replies(CHANNEL, root, 3)
    assert replies[0]["ts"] == answer["ts"]
    assert "echo: Alice: still there? [user messages: 3]" in replies[2]["text"]
    assert len(model_requests(openai_emu)) == 3


async def test_edit_of_a_message_the_bot_never_took_is_ignored(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    root = slack.add_message(CHANNEL, user="U0BOB", text="lunch at noon?")
    await bot.say(CHANNEL, f"{BOT} what did Bob suggest?", thread_ts=root)
    await bot.replies(CHANNEL, root, 1)
    [conversation] = conversation_ids(openai_emu)

    # Bob's message was only context for the mention (seeded), never a message to the bot.
    await _deliver(bot, slack.user_edits(CHANNEL, root, "lunch at one?"))
    await bot.say(CHANNEL, "and then?", thread_ts=root)
    await bot.replies(CHANNEL, root, 2)
    assert not any("lunch at one" in text for text in openai_emu.user_texts(conversation))
    assert not any("lunch at one" in sent for sent in model_inputs(openai_emu))
