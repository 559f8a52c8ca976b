"""Files on OpenAI and on compatible servers: the purposes they accept, images inline where needed."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.openai.files import COMPATIBLE_PURPOSES
from tests.emulators.slack import SlackEmulator
from tests.harness import BotUnderTest, model_inputs, start_in_process, stop

BOT = "<@U0BOT>"
CHANNEL = "C0PURPOSE"
HANDBOOK = b"Vacation policy: every employee gets 25 days per year.\n"
DATA_URL = re.compile(r"data:image/(png|jpeg);base64,([A-Za-z0-9+/=]+)")


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def _uploads(openai_emu: OpenAIEmulator) -> list[tuple[str, str, int | None]]:
    """(filename, purpose, status) of every files.create the bot made."""
    return [
        (r.json["file"]["filename"], r.json["purpose"], r.status)
        for r in openai_emu.requests_to("POST", "/v1/files")
        if r.json and r.json.get("file")
    ]


@pytest.fixture
def compatible(openai_emu: OpenAIEmulator) -> OpenAIEmulator:
    openai_emu.file_purposes = COMPATIBLE_PURPOSES
    return openai_emu


@pytest.fixture
async def ci_bot(slack: SlackEmulator, bot_env_vars: dict[str, str]) -> AsyncIterator[BotUnderTest]:
    env = {**bot_env_vars, "THREADBRIDGE_CODE_INTERPRETER": "true", "THREADBRIDGE_INLINE_IMAGE_MAX_PX": "64"}
    running = await start_in_process(slack, env)
    try:
        yield running
    finally:
        await stop(running)


async def test_documents_and_data_upload_with_purpose_assistants_on_a_compatible_server(
    compatible: OpenAIEmulator, ci_bot: BotUnderTest, slack: SlackEmulator
) -> None:
    doc = slack.host_file("handbook.md", HANDBOOK, mimetype="text/markdown", filetype="markdown")
    data = slack.host_file("sales.csv", b"month,total\njan,10\n", mimetype="text/csv", filetype="csv")
    ts = await ci_bot.say(CHANNEL, f"{BOT} here are our files", files=[doc, data])
    await ci_bot.replies(CHANNEL, ts, 1)
    await ci_bot.say(CHANNEL, "how many vacation days do we get?", thread_ts=ts)
    answer = (await ci_bot.replies(CHANNEL, ts, 2))[1]["text"]
    assert "25 days" in answer and "couldn't use" not in answer
    expected = [("handbook.md", "assistants", 200), ("sales.csv", "assistants", 200)]
    assert sorted(_uploads(compatible)) == expected


async def test_images_go_inline_where_vision_uploads_are_refused_learned_once(
    compatible: OpenAIEmulator, ci_bot: BotUnderTest, slack: SlackEmulator
) -> None:
    for question in ("what is this?", "and this one?"):
        image = slack.host_file("shot.png", _png(300, 200), mimetype="image/png", filetype="png")
        ts = await ci_bot.say(CHANNEL, f"{BOT} {question}", files=[image])
        [reply] = await ci_bot.replies(CHANNEL, ts, 1)
        assert "[images: 1]" in reply["text"] and "couldn't use" not in reply["text"]
    # One refused `vision` upload taught the process; the second image went straight inline.
    assert _uploads(compatible) == [("shot.png", "vision", 400)]
    sent = [DATA_URL.search(body) for body in model_inputs(compatible)]
    assert all(sent), "both images reached the model as data URLs"
    for found in sent:
        assert found is not None
        image = Image.open(io.BytesIO(base64.b64decode(found.group(2))))
        assert max(image.size) == 64, "downscaled above THREADBRIDGE_INLINE_IMAGE_MAX_PX"


async def test_images_are_sent_by_file_id_where_vision_uploads_work(
    bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    image = slack.host_file("shot.png", _png(40, 30), mimetype="image/png", filetype="png")
    ts = await bot.say(CHANNEL, f"{BOT} what is this?", files=[image])
    [reply] = await bot.replies(CHANNEL, ts, 1)
    assert "[images: 1]" in reply["text"]
    assert _uploads(openai_emu) == [("shot.png", "vision", 200)]
    [sent] = model_inputs(openai_emu)
    assert "data:image" not in sent
    file_id = next(iter(openai_emu.files))
    assert file_id in json.dumps(sent)
