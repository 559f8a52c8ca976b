"""The emulator's Assistants v2 API driven by the real SDK, with strict parsing of every body and event."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import openai
import pytest
from openai.types.beta import Assistant, AssistantStreamEvent, Thread
from openai.types.beta.threads import Message, Run
from pydantic import TypeAdapter

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.openai.script import tiny_png

# The Assistants API is deprecated in the SDK; these tests exercise it on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MODEL = "gpt-4.1-mini"
EVENTS: TypeAdapter[Any] = TypeAdapter(AssistantStreamEvent)
CLOCK_TOOL = {
    "type": "function",
    "function": {
        "name": "current_time",
        "description": "The time.",
        "parameters": {"type": "object", "properties": {}},
    },
}


@pytest.fixture
async def assistant(client: openai.AsyncOpenAI) -> Assistant:
    return await client.beta.assistants.create(
        model=MODEL,
        instructions="Be helpful.",
        tools=[{"type": "file_search"}, {"type": "code_interpreter"}, CLOCK_TOOL],  # type: ignore[list-item]
    )


async def run_events(
    client: openai.AsyncOpenAI, thread_id: str, assistant_id: str, **extra: Any
) -> list[Any]:
    stream = await client.beta.threads.runs.create(thread_id, assistant_id=assistant_id, stream=True, **extra)
    return [event async for event in stream]


def text_of(events: list[Any]) -> str:
    return "".join(
        part.text.value or ""
        for e in events
        if e.event == "thread.message.delta"
        for part in e.data.delta.content or []
        if part.type == "text" and part.text is not None
    )


async def say(client: openai.AsyncOpenAI, thread_id: str, text: str, **extra: Any) -> Message:
    return await client.beta.threads.messages.create(thread_id, role="user", content=text, **extra)


# ----------------------------------------------------------------------------- assistants and threads


async def test_assistant_lifecycle(emu: OpenAIEmulator, client: openai.AsyncOpenAI) -> None:
    created = await client.beta.assistants.create(model=MODEL, name="bot", instructions="Hi.")
    assert created.id.startswith("asst_") and created.model == MODEL
    assert (await client.beta.assistants.retrieve(created.id)).instructions == "Hi."
    assert emu.assistants[created.id].name == "bot"
    deleted = await client.beta.assistants.delete(created.id)
    assert deleted.deleted is True
    with pytest.raises(openai.NotFoundError, match="No assistant found"):
        await client.beta.assistants.retrieve(created.id)
    with pytest.raises(openai.BadRequestError, match="does not exist") as err:
        await client.beta.assistants.create(model="no-such-model")
    assert err.value.code == "model_not_found"


async def test_the_beta_header_is_required(emu: OpenAIEmulator) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{emu.base_url}/threads", json={}, headers={"Authorization": f"Bearer {emu.api_key}"}
        ) as resp,
    ):
        body = await resp.json()
    assert resp.status == 400 and "OpenAI-Beta" in body["error"]["message"]


async def test_thread_lifecycle_and_unknown_threads(emu: OpenAIEmulator, client: openai.AsyncOpenAI) -> None:
    thread = await client.beta.threads.create(
        metadata={"slack_thread_ts": "1700.1"}, messages=[{"role": "user", "content": "first"}]
    )
    assert isinstance(thread, Thread) and thread.id.startswith("thread_")
    assert emu.user_texts(thread.id) == ["first"]
    updated = await client.beta.threads.update(thread.id, metadata={"topic": "x"})
    assert updated.metadata == {"topic": "x"}
    assert (await client.beta.threads.retrieve(thread.id)).metadata == {"topic": "x"}
    assert (await client.beta.threads.delete(thread.id)).deleted is True
    with pytest.raises(openai.NotFoundError, match="No thread found"):
        await client.beta.threads.retrieve(thread.id)
    with pytest.raises(openai.NotFoundError):
        await say(client, thread.id, "hello?")
    with pytest.raises(openai.NotFoundError):
        await client.beta.threads.update(thread.id, metadata={})


async def test_messages_are_listed_with_their_parts_and_attachments(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI
) -> None:
    thread = await client.beta.threads.create()
    doc = await client.files.create(file=("notes.md", b"# Notes\nhello\n"), purpose="assistants")
    image = await client.files.create(file=("shot.png", tiny_png()), purpose="vision")
    await client.beta.threads.messages.create(
        thread.id,
        role="user",
        content=[
            {"type": "text", "text": "look"},
            {"type": "image_file", "image_file": {"file_id": image.id}},
        ],
        attachments=[{"file_id": doc.id, "tools": [{"type": "file_search"}]}],
        metadata={"slack_ts": "1.2"},
    )
    page = await client.beta.threads.messages.list(thread.id, order="asc")
    [message] = page.data
    assert [c.type for c in message.content] == ["text", "image_file"]
    assert message.attachments and message.attachments[0].file_id == doc.id
    assert message.metadata == {"slack_ts": "1.2"}
    [vs_id] = emu.threads[thread.id].vector_store_ids
    assert emu.vector_stores[vs_id].files == {doc.id: "completed"}
    with pytest.raises(openai.BadRequestError):
        await client.beta.threads.messages.create(
            thread.id, role="user", content="x", attachments=[{"file_id": "file-nope", "tools": []}]
        )


# ----------------------------------------------------------------------------- runs


async def test_streamed_run_has_the_real_event_sequence_and_keeps_context(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI, assistant: Assistant
) -> None:
    thread = await client.beta.threads.create()
    await say(client, thread.id, "hello")
    events = await run_events(client, thread.id, assistant.id)
    names = [e.event for e in events]
    assert names[:3] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
    assert names[3:9] == [
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        "thread.message.delta",
        "thread.message.delta",
    ]
    assert names[-3:] == ["thread.message.completed", "thread.run.step.completed", "thread.run.completed"]
    for event in events:
        EVENTS.validate_python(event.model_dump())
    assert text_of(events) == "echo: hello [user messages: 1]"
    completed = events[-1].data
    assert isinstance(completed, Run) and completed.status == "completed" and completed.usage is not None

    await say(client, thread.id, "again")
    second = await run_events(client, thread.id, assistant.id)
    assert text_of(second) == "echo: again [user messages: 2]"
    listed = await client.beta.threads.messages.list(thread.id, order="asc")
    assert [m.role for m in listed.data] == ["user", "assistant", "user", "assistant"]
    assert listed.data[1].content[0].type == "text"
    runs = await client.beta.threads.runs.list(thread.id, limit=1)
    assert runs.data[0].id == second[0].data.id


async def test_the_wire_ends_with_a_done_event(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI, assistant: Assistant
) -> None:
    thread = await client.beta.threads.create()
    await say(client, thread.id, "hi")
    headers = {"Authorization": f"Bearer {emu.api_key}", "OpenAI-Beta": "assistants=v2"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{emu.base_url}/threads/{thread.id}/runs",
            json={"assistant_id": assistant.id, "stream": True},
            headers=headers,
        ) as resp,
    ):
        raw = await resp.text()
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    frames = raw.split("\n\n")
    assert frames[0].startswith("event: thread.run.created\ndata: {")
    assert frames[-3].startswith("event: thread.run.completed\ndata: {")
    assert frames[-2:] == ["event: done\ndata: [DONE]", ""]
    assert raw.endswith("event: done\ndata: [DONE]\n\n")


async def test_instructions_and_tools_of_a_run(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI, assistant: Assistant
) -> None:
    thread = await client.beta.threads.create()
    await say(client, thread.id, "#tool:current_time {}")
    events = await run_events(
        client, thread.id, assistant.id, additional_instructions="Speakers are named.", tools=[]
    )
    run = events[-1].data
    # tools=[] overrides the assistant's tools: no function to call, so the model just answers.
    assert run.status == "completed" and run.tools == []
    assert run.instructions == "Be helpful.\n\nSpeakers are named."
    with pytest.raises(openai.BadRequestError, match="function"):
        await run_events(client, thread.id, assistant.id, tools=[{"type": "function", "name": "flat"}])


async def test_requires_action_round_trip(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI, assistant: Assistant
) -> None:
    thread = await client.beta.threads.create()
    await say(client, thread.id, 'what time is it? #tool:current_time {"tz": "UTC"}')
    events = await run_events(client, thread.id, assistant.id)
    last = events[-1]
    assert last.event == "thread.run.requires_action"
    assert last.data.required_action is not None
    [call] = last.data.required_action.submit_tool_outputs.tool_calls
    assert call.function.name == "current_time" and call.function.arguments == '{"tz": "UTC"}'
    step_deltas = [e for e in events if e.event == "thread.run.step.delta"]
    assert "".join(e.data.delta.step_details.tool_calls[0].function.arguments for e in step_deltas) == (
        '{"tz": "UTC"}'
    )
    run = await client.beta.threads.runs.retrieve(last.data.id, thread_id=thread.id)
    assert run.status == "requires_action"
    with pytest.raises(openai.BadRequestError, match="while a run"):
        await say(client, thread.id, "too early")
    with pytest.raises(openai.BadRequestError, match="tool outputs"):
        await client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_other", "output": "x"}]
        )

    stream = await client.beta.threads.runs.submit_tool_outputs(
        run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": "12:00"}], stream=True
    )
    more = [event async for event in stream]
    assert more[0].event == "thread.run.step.completed"
    assert more[0].data.step_details.tool_calls[0].function.output == "12:00"
    assert text_of(more) == "tool current_time said: 12:00"
    assert more[-1].event == "thread.run.completed"
    with pytest.raises(openai.BadRequestError, match="do not accept tool outputs"):
        await client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": "x"}]
        )


async def test_an_active_run_blocks_the_thread_until_it_ends(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI, assistant: Assistant
) -> None:
    thread = await client.beta.threads.create()
    await say(client, thread.id, "slow one #stall")
    stream = await client.beta.threads.runs.create(thread.id, assistant_id=assistant.id, stream=True)
    first = await stream.__anext__()
    run_id = first.data.id
    await emu.wait_for(lambda: emu.stalled == 1, what="the run to stall")
    # The client hangs up: the run goes on server-side, exactly like the real API.
    await stream.close()

    with pytest.raises(openai.BadRequestError) as err:
        await say(client, thread.id, "are you there?")
    assert err.value.message.endswith(f"Can't add messages to {thread.id} while a run {run_id} is active.")
    with pytest.raises(openai.BadRequestError, match="already has an active run"):
        await client.beta.threads.runs.create(thread.id, assistant_id=assistant.id)
    assert (await client.beta.threads.runs.retrieve(run_id, thread_id=thread.id)).status == "in_progress"

    emu.release()
    await emu.wait_for(lambda: not emu.threads[thread.id].runs[run_id].active, what="the run to finish")
    done = await client.beta.threads.runs.retrieve(run_id, thread_id=thread.id)
    assert done.status == "completed" and done.expires_at is None
    await say(client, thread.id, "are you there?")


async def test_cancel_ends_an_active_run_and_its_stream(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI, assistant: Assistant
) -> None:
    thread = await client.beta.threads.create()
    await say(client, thread.id, "#stall")
    stream = await client.beta.threads.runs.create(thread.id, assistant_id=assistant.id, stream=True)
    collected = asyncio.create_task(_collect(stream))
    await emu.wait_for(lambda: emu.stalled == 1, what="the run to stall")
    run_id = next(iter(emu.threads[thread.id].runs))
    cancelling = await client.beta.threads.runs.cancel(run_id, thread_id=thread.id)
    assert cancelling.status == "cancelling"
    events = await collected
    assert events[-1].event == "thread.run.cancelled"
    assert (await client.beta.threads.runs.retrieve(run_id, thread_id=thread.id)).status == "cancelled"
    assert emu.stalled == 0
    with pytest.raises(openai.BadRequestError, match="Cannot cancel"):
        await client.beta.threads.runs.cancel(run_id, thread_id=thread.id)
    await say(client, thread.id, "free again")


async def test_an_expired_run_frees_the_thread(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI, assistant: Assistant
) -> None:
    thread = await client.beta.threads.create()
    await say(client, thread.id, "#stall")
    stream = await client.beta.threads.runs.create(thread.id, assistant_id=assistant.id, stream=True)
    collected = asyncio.create_task(_collect(stream))
    await emu.wait_for(lambda: emu.stalled == 1, what="the run to stall")
    [run] = emu.threads[thread.id].runs.values()
    run.expire()
    events = await collected
    assert events[-1].event == "thread.run.expired"
    assert events[-1].data.status == "expired"
    await say(client, thread.id, "free again")


async def test_failed_run_reports_last_error(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI, assistant: Assistant
) -> None:
    thread = await client.beta.threads.create()
    await say(client, thread.id, "please #fail")
    events = await run_events(client, thread.id, assistant.id)
    assert [e.event for e in events][-1] == "thread.run.failed"
    failed = events[-1].data
    assert failed.status == "failed" and failed.last_error is not None
    assert failed.last_error.code == "server_error"
    await say(client, thread.id, "the thread is not locked by a failed run")


@pytest.mark.parametrize("shape", ["flat", "nested"])
async def test_stream_error_event(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI, assistant: Assistant, shape: str
) -> None:
    emu.stream_error_shape = shape  # type: ignore[assignment]
    thread = await client.beta.threads.create()
    await say(client, thread.id, "tell me more #stream-error")
    stream = await client.beta.threads.runs.create(thread.id, assistant_id=assistant.id, stream=True)
    events: list[Any] = []
    if shape == "flat":
        events = [event async for event in stream]
        assert events[-1].event == "error"
        assert events[-1].data.message == "stream broke"
    else:
        with pytest.raises(openai.APIError, match="stream broke"):
            async for event in stream:
                events.append(event)
    assert len([e for e in events if e.event == "thread.message.delta"]) == 2
    [run] = emu.threads[thread.id].runs.values()
    assert run.status == "failed"


async def test_run_on_an_unknown_assistant_or_thread(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI, assistant: Assistant
) -> None:
    thread = await client.beta.threads.create()
    with pytest.raises(openai.NotFoundError, match="No assistant found"):
        await client.beta.threads.runs.create(thread.id, assistant_id="asst_missing")
    with pytest.raises(openai.NotFoundError, match="No thread found"):
        await client.beta.threads.runs.create("thread_missing", assistant_id=assistant.id)


# ----------------------------------------------------------------------------- files


async def test_file_search_attachment_gives_file_citations(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI, assistant: Assistant
) -> None:
    doc = await client.files.create(
        file=("handbook.md", b"Vacation: 25 days.\nMore text.\n"), purpose="assistants"
    )
    thread = await client.beta.threads.create()
    await say(
        client, thread.id, "here it is", attachments=[{"file_id": doc.id, "tools": [{"type": "file_search"}]}]
    )
    first = await run_events(client, thread.id, assistant.id)
    assert text_of(first) == "echo: here it is [user messages: 1] [files: 1]"

    await say(client, thread.id, "how many days?")
    events = await run_events(client, thread.id, assistant.id)
    steps = [e.data for e in events if e.event == "thread.run.step.created" and e.data.type == "tool_calls"]
    assert steps[0].step_details.tool_calls[0].type == "file_search"
    cited = [
        annotation
        for e in events
        if e.event == "thread.message.delta"
        for part in e.data.delta.content or []
        if part.type == "text" and part.text is not None
        for annotation in part.text.annotations or []
    ]
    assert [a.type for a in cited] == ["file_citation"]
    assert cited[0].file_citation.file_id == doc.id
    message = next(e.data for e in events if e.event == "thread.message.completed")
    text = message.content[0].text
    [annotation] = text.annotations
    assert annotation.type == "file_citation" and annotation.file_citation.file_id == doc.id
    assert text.value[annotation.start_index : annotation.end_index] == annotation.text
    assert annotation.text.startswith("【") and annotation.text.endswith("†handbook.md】")
    assert "From handbook.md: Vacation: 25 days." in text.value
    assert text_of(events) == text.value


async def test_code_interpreter_chart_is_an_image_file(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI, assistant: Assistant
) -> None:
    data = await client.files.create(file=("sales.csv", b"month,total\njan,1\n"), purpose="assistants")
    thread = await client.beta.threads.create()
    await say(
        client,
        thread.id,
        "chart it #chart",
        attachments=[{"file_id": data.id, "tools": [{"type": "code_interpreter"}]}],
    )
    events = await run_events(client, thread.id, assistant.id)
    [code_step] = [
        e.data for e in events if e.event == "thread.run.step.completed" and e.data.type == "tool_calls"
    ]
    call = code_step.step_details.tool_calls[0]
    assert call.type == "code_interpreter" and "sales.csv" in call.code_interpreter.input
    message = next(e.data for e in events if e.event == "thread.message.completed")
    assert [c.type for c in message.content] == ["image_file", "text"]
    file_id = message.content[0].image_file.file_id
    assert "Here is the chart from sales.csv" in message.content[1].text.value
    [path] = message.content[1].text.annotations
    assert path.type == "file_path" and path.file_path.file_id == file_id
    content = await client.files.content(file_id)
    assert content.content == tiny_png()
    assert (await client.files.retrieve(file_id)).purpose == "assistants_output"


async def test_image_file_content_reaches_the_model(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI, assistant: Assistant
) -> None:
    image = await client.files.create(file=("shot.png", tiny_png()), purpose="vision")
    thread = await client.beta.threads.create()
    await client.beta.threads.messages.create(
        thread.id,
        role="user",
        content=[
            {"type": "text", "text": "what is this"},
            {"type": "image_file", "image_file": {"file_id": image.id}},
        ],
    )
    events = await run_events(client, thread.id, assistant.id)
    assert text_of(events) == "echo: what is this [user messages: 1] [images: 1]"


async def _collect(stream: Any) -> list[Any]:
    return [event async for event in stream]


async def test_a_deleted_message_leaves_the_thread(emu: OpenAIEmulator, client: openai.AsyncOpenAI) -> None:
    thread = await client.beta.threads.create()
    first = await say(client, thread.id, "keep me")
    second = await say(client, thread.id, "delete me")

    deleted = await client.beta.threads.messages.delete(second.id, thread_id=thread.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (second.id, "thread.message.deleted", True)
    assert emu.user_texts(thread.id) == ["keep me"]
    with pytest.raises(openai.NotFoundError):
        await client.beta.threads.messages.delete(second.id, thread_id=thread.id)
    assert [m.id for m in (await client.beta.threads.messages.list(thread.id)).data] == [first.id]
