"""Files shared in a thread become that thread's knowledge: search, vision, code, clear refusals."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator
from tests.harness import BotUnderTest, start_in_process, stop

BOT = "<@U0BOT>"
CHANNEL = "C0FILES"
HANDBOOK = b"Vacation policy: every employee gets 25 days per year.\nSick leave is unlimited.\n"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


def _handbook(slack: SlackEmulator, name: str = "handbook.md") -> dict:
    return slack.host_file(name, HANDBOOK, mimetype="text/markdown", filetype="markdown")


@pytest.fixture
async def ci_bot(slack: SlackEmulator, bot_env_vars: dict[str, str]) -> AsyncIterator[BotUnderTest]:
    running = await start_in_process(slack, {**bot_env_vars, "THREADBRIDGE_CODE_INTERPRETER": "true"})
    try:
        yield running
    finally:
        await stop(running)


async def test_shared_document_is_searchable_and_cited_by_name(
    bot: BotUnderTest, slack: SlackEmulator
) -> None:
    ts = await bot.say(CHANNEL, f"{BOT} here is our handbook", files=[_handbook(slack)])
    await bot.replies(CHANNEL, ts, 1)
    await slack.wait_for(lambda: slack.message(CHANNEL, ts).get("reactions"), what="a reaction on the file")
    await bot.say(CHANNEL, "how many vacation days do we get?", thread_ts=ts)
    answer = (await bot.replies(CHANNEL, ts, 2))[1]["text"]
    assert "From handbook.md: Vacation policy: every employee gets 25 days per year." in answer
    assert "[1] handbook.md" in answer
    assert "【" not in answer


async def test_file_without_a_question_is_confirmed_without_a_model_run(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    ts = await bot.say(CHANNEL, f"{BOT}", files=[_handbook(slack)])
    [note] = await bot.replies(CHANNEL, ts, 1)
    assert "Added handbook.md to this thread's knowledge" in note["text"]
    assert not openai_emu.requests_to("POST", "/v1/responses")
    assert not openai_emu.requests_to("POST", "/v1/threads/")


async def test_image_reaches_the_model_as_vision_input(bot: BotUnderTest, slack: SlackEmulator) -> None:
    image = slack.host_file("screenshot.png", PNG, mimetype="image/png", filetype="png")
    ts = await bot.say(CHANNEL, f"{BOT} what is in this picture?", files=[image])
    [reply] = await bot.replies(CHANNEL, ts, 1)
    assert "[images: 1]" in reply["text"]


async def test_csv_analysis_uploads_the_generated_chart(ci_bot: BotUnderTest, slack: SlackEmulator) -> None:
    data = slack.host_file("sales.csv", b"month,total\njan,10\nfeb,12\n", mimetype="text/csv", filetype="csv")
    ts = await ci_bot.say(CHANNEL, f"{BOT} chart the sales #chart", files=[data])
    await ci_bot.replies(CHANNEL, ts, 1)
    upload = await slack.wait_for(lambda: slack.uploads, what="the chart upload")
    assert upload[0]["filename"] == "chart.png" and upload[0]["thread_ts"] == ts
    assert upload[0]["content"].startswith(b"\x89PNG")
    statuses = [c["status"] for c in slack.calls_to("assistant.threads.setStatus")]
    assert "running code…" in statuses
    assert any("sales.csv" in s for s in statuses if s.startswith("reading"))


async def test_oversize_and_unsupported_files_get_a_clear_reply_and_the_text_is_answered(
    bot: BotUnderTest, slack: SlackEmulator
) -> None:
    big = slack.host_file(
        "huge.pdf", b"%PDF small", mimetype="application/pdf", filetype="pdf", declared_size=80 << 20
    )
    exe = slack.host_file("setup.exe", b"MZ", mimetype="application/octet-stream", filetype="binary")
    ts = await bot.say(CHANNEL, f"{BOT} can you read these?", files=[big, exe])
    replies = await bot.replies(CHANNEL, ts, 2)
    texts = [r["text"] for r in replies]
    notice = next(t for t in texts if "couldn't use" in t)
    assert "huge.pdf" in notice and "25 MB" in notice
    assert "setup.exe" in notice and "type" in notice
    assert any("echo: Alice: can you read these?" in t for t in texts)
    assert not any(d.get("file_id") == big["id"] for d in slack.downloads)


async def test_a_file_shared_in_one_thread_is_not_searchable_from_another(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    a = await bot.say(CHANNEL, f"{BOT} private notes", files=[_handbook(slack, "secret.md")])
    await bot.replies(CHANNEL, a, 1)
    b = await bot.say(CHANNEL, f"{BOT} what do the notes say? #cite")
    [reply] = await bot.replies(CHANNEL, b, 1)
    assert "secret.md" not in reply["text"] and "Vacation" not in reply["text"]
    last = json.dumps(openai_emu.requests[-1].json)
    assert "vs_" not in last or "secret" not in last


async def test_deleting_a_file_in_slack_removes_it_from_the_thread_knowledge(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    doc = _handbook(slack)
    ts = await bot.say(CHANNEL, f"{BOT} remember this", files=[doc])
    await bot.replies(CHANNEL, ts, 1)
    uploaded = [f for f in openai_emu.files.values() if f.filename == "handbook.md"]
    assert len(uploaded) == 1
    status, _ = await bot.events.send({"type": "file_deleted", "file_id": doc["id"], "event_ts": "1.0"})
    assert status == 200
    await openai_emu.wait_for(lambda: uploaded[0].id not in openai_emu.files, what="the file to be deleted")


async def test_failed_indexing_is_reported_by_file_name(
    bot: BotUnderTest, slack: SlackEmulator, backend_name: str
) -> None:
    if backend_name != "responses":
        pytest.skip(
            "the assistants API indexes attachments inside the run; there is no indexing step to fail"
        )
    empty = slack.host_file("empty.md", b"", mimetype="text/markdown", filetype="markdown")
    ts = await bot.say(CHANNEL, f"{BOT} read this", files=[empty])
    texts = [r["text"] for r in await bot.replies(CHANNEL, ts, 2)]
    notice = next(t for t in texts if "couldn't use" in t)
    assert "empty.md" in notice and "indexing failed" in notice


async def test_deleting_the_message_that_shared_a_file_removes_the_file(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    doc = _handbook(slack)
    ts = await bot.say(CHANNEL, f"{BOT} keep this for now", files=[doc])
    await bot.replies(CHANNEL, ts, 1)
    [uploaded] = [f for f in openai_emu.files.values() if f.filename == "handbook.md"]
    deleted = {
        "type": "message",
        "subtype": "message_deleted",
        "channel": CHANNEL,
        "hidden": True,
        "ts": "1800000000.000200",
        "deleted_ts": ts,
        "event_ts": "1800000000.000200",
        "channel_type": "channel",
        "previous_message": {
            "type": "message",
            "user": "U0ALICE",
            "text": "keep this",
            "ts": ts,
            "files": [doc],
        },
    }
    assert (await bot.events.send(deleted))[0] == 200
    await openai_emu.wait_for(lambda: uploaded.id not in openai_emu.files, what="the file to be deleted")
