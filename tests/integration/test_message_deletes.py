"""A message deleted in Slack leaves the server-side conversation: a person's reply takes its
items with it, a deleted answer of the bot its answer items; the thread carries on. (Deleting
the thread's root closes the whole conversation: test_threads.py.)"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator
from tests.harness import BotUnderTest, conversation_ids, message_mapped
from tests.integration.test_edits import _assistant_texts

BOT = "<@U0BOT>"
CHANNEL = "C0DELMSG"


async def _deliver(bot: BotUnderTest, event: dict[str, Any]) -> None:
    status, body = await bot.events.send(event)
    assert status == 200, (status, body)


def _item_deletes(openai_emu: OpenAIEmulator) -> list[str]:
    return [
        r.path
        for r in openai_emu.requests
        if r.method == "DELETE" and ("/items/" in r.path or "/messages/" in r.path)
    ]


async def test_deleting_a_persons_reply_removes_its_items_from_the_conversation(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator, redis_client: Redis, prefix: str
) -> None:
    root = await bot.say(CHANNEL, f"{BOT} remember the code word")
    await bot.replies(CHANNEL, root, 1)
    secret = await bot.say(CHANNEL, "it is swordfish", thread_ts=root)
    await bot.replies(CHANNEL, root, 2)
    [conversation] = conversation_ids(openai_emu)
    assert "Alice: it is swordfish" in openai_emu.user_texts(conversation)

    await message_mapped(redis_client, prefix, secret)
    await _deliver(bot, slack.user_deletes(CHANNEL, secret))
    await openai_emu.wait_for(
        lambda: "Alice: it is swordfish" not in openai_emu.user_texts(conversation),
        what="the deleted reply to leave the conversation",
    )
    assert len(_item_deletes(openai_emu)) == 1

    # The thread carries on in the same conversation, which no longer has the deleted words.
    await bot.say(CHANNEL, "what was it?", thread_ts=root)
    answer = (await bot.replies(CHANNEL, root, 3))[2]["text"]
    assert "[user messages: 2]" in answer
    assert openai_emu.user_texts(conversation) == ["Alice: remember the code word", "Alice: what was it?"]
    assert conversation_ids(openai_emu) == [conversation]


async def test_deleting_the_bots_answer_removes_the_answer_from_the_conversation(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    root = await bot.say(CHANNEL, f"{BOT} first question")
    await bot.replies(CHANNEL, root, 1)
    await bot.say(CHANNEL, "second question", thread_ts=root)
    first, second = await bot.replies(CHANNEL, root, 2)
    [conversation] = conversation_ids(openai_emu)
    assert len(_assistant_texts(openai_emu, conversation)) == 2

    # A workspace admin deletes the bot's first answer (Slack reports it as the bot's message).
    await _deliver(bot, slack.user_deletes(CHANNEL, first["ts"]))
    await openai_emu.wait_for(
        lambda: _assistant_texts(openai_emu, conversation) == [second["text"]],
        what="the deleted answer to leave the conversation",
    )
    assert openai_emu.user_texts(conversation) == ["Alice: first question", "Alice: second question"]
    assert conversation_ids(openai_emu) == [conversation]


async def test_deleting_a_message_the_bot_never_took_deletes_nothing(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    root = await bot.say(CHANNEL, f"{BOT} hello")
    await bot.replies(CHANNEL, root, 1)
    elsewhere = slack.add_message(
        CHANNEL,
        user="U0BOB",
        text="unrelated",
        thread_ts=slack.add_message(CHANNEL, user="U0BOB", text="another thread"),
    )
    await _deliver(bot, slack.user_deletes(CHANNEL, elsewhere))

    # A later turn is the barrier: the background delete has run by then.
    await bot.say(CHANNEL, "still here", thread_ts=root)
    await bot.replies(CHANNEL, root, 2)
    assert _item_deletes(openai_emu) == []
