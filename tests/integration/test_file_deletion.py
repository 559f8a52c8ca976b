"""A file deleted in Slack (its message deleted, or the file itself) leaves the thread's knowledge.

Both backends keep a shared document as an OpenAI file indexed in the thread's vector store;
`forget_file` promises to take it out of every store of the thread and delete the file. What
must not happen: a deletion that carries no file of ours (a text message, an unknown file id)
touching any file, or a deleted reply ending the thread. (A deleted message's own words leave
the conversation: test_message_deletes.py.)
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator
from tests.harness import BotUnderTest, conversation_ids, message_mapped

BOT = "<@U0BOT>"
CHANNEL = "C0DELETE"
HANDBOOK = b"Vacation policy: every employee gets 25 days per year.\nSick leave is unlimited.\n"


def _handbook(slack: SlackEmulator) -> dict[str, Any]:
    return slack.host_file("handbook.md", HANDBOOK, mimetype="text/markdown", filetype="markdown")


def _uploaded(openai_emu: OpenAIEmulator, filename: str = "handbook.md") -> str:
    [file_id] = [f.id for f in openai_emu.files.values() if f.filename == filename]
    return file_id


def _indexed_in(openai_emu: OpenAIEmulator, file_id: str) -> list[str]:
    return [vs.id for vs in openai_emu.vector_stores.values() if file_id in vs.files]


def _deletes(openai_emu: OpenAIEmulator) -> list[str]:
    return [r.path for r in openai_emu.requests if r.method == "DELETE"]


async def _deliver(bot: BotUnderTest, event: dict[str, Any]) -> None:
    status, body = await bot.events.send(event)
    assert status == 200, (status, body)


async def test_deleting_a_reply_that_shared_a_file_removes_the_file_and_keeps_the_thread(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator, redis_client: Redis, prefix: str
) -> None:
    root = await bot.say(CHANNEL, f"{BOT} let's talk about leave")
    await bot.replies(CHANNEL, root, 1)
    shared = await bot.say(CHANNEL, "here is the handbook", thread_ts=root, files=[_handbook(slack)])
    await bot.replies(CHANNEL, root, 2)
    file_id = _uploaded(openai_emu)
    assert _indexed_in(openai_emu, file_id), "the document became thread knowledge"
    conversations = conversation_ids(openai_emu)

    await message_mapped(redis_client, prefix, shared)
    deleted = slack.user_deletes(CHANNEL, shared)
    assert deleted["previous_message"]["files"][0]["name"] == "handbook.md"
    await _deliver(bot, deleted)
    await openai_emu.wait_for(lambda: file_id not in openai_emu.files, what="the file to be deleted")
    assert _indexed_in(openai_emu, file_id) == []

    # Only the file went: the thread's conversation carries on, no longer knowing the file.
    await bot.say(CHANNEL, "how many vacation days do we get? #cite", thread_ts=root)
    answer = (await bot.replies(CHANNEL, root, 3))[2]["text"]
    assert "[user messages: 2]" in answer  # the deleted message's words went with it
    assert "handbook.md" not in answer and "25 days" not in answer
    assert conversation_ids(openai_emu) == conversations


async def test_deleting_the_root_that_shared_a_file_removes_the_file_and_closes_the_thread(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    root = await bot.say(CHANNEL, f"{BOT} keep this for now", files=[_handbook(slack)])
    await bot.replies(CHANNEL, root, 1)
    file_id = _uploaded(openai_emu)
    [conversation] = conversation_ids(openai_emu)

    await _deliver(bot, slack.user_deletes(CHANNEL, root))
    # The file is found through the thread's binding, which closing the thread drops: both
    # must still happen, whichever is quicker.
    await openai_emu.wait_for(lambda: file_id not in openai_emu.files, what="the file to be deleted")
    await openai_emu.wait_for(
        lambda: conversation not in conversation_ids(openai_emu), what="the conversation to be deleted"
    )


async def test_deleting_a_message_without_files_changes_nothing(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    root = await bot.say(CHANNEL, f"{BOT} read our handbook", files=[_handbook(slack)])
    await bot.replies(CHANNEL, root, 1)
    chatter = await bot.say(CHANNEL, "thanks!", thread_ts=root)
    await bot.replies(CHANNEL, root, 2)
    file_id = _uploaded(openai_emu)
    conversations = conversation_ids(openai_emu)

    deleted = slack.user_deletes(CHANNEL, chatter)
    assert "files" not in deleted["previous_message"]
    await _deliver(bot, deleted)

    # A later turn in the same thread is the barrier: it still finds the file.
    await bot.say(CHANNEL, "how many vacation days do we get? #cite", thread_ts=root)
    answer = (await bot.replies(CHANNEL, root, 3))[2]["text"]
    assert "From handbook.md: Vacation policy: every employee gets 25 days per year." in answer
    assert file_id in openai_emu.files and _indexed_in(openai_emu, file_id)
    assert conversation_ids(openai_emu) == conversations
    assert not [path for path in _deletes(openai_emu) if "/files" in path or "/vector_stores" in path]


async def test_file_deleted_for_an_unknown_file_deletes_nothing(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    root = await bot.say(CHANNEL, f"{BOT} read our handbook", files=[_handbook(slack)])
    await bot.replies(CHANNEL, root, 1)
    file_id = _uploaded(openai_emu)
    conversations = conversation_ids(openai_emu)

    await _deliver(bot, {"type": "file_deleted", "file_id": "F0NOTOURS99", "event_ts": "1800000000.000100"})

    # As above, a later turn is the barrier: the thread still knows its file.
    await bot.say(CHANNEL, "how many vacation days do we get? #cite", thread_ts=root)
    answer = (await bot.replies(CHANNEL, root, 2))[1]["text"]
    assert "From handbook.md: Vacation policy: every employee gets 25 days per year." in answer
    assert file_id in openai_emu.files and _indexed_in(openai_emu, file_id)
    assert conversation_ids(openai_emu) == conversations
    assert _deletes(openai_emu) == []
