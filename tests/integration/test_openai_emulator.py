"""The OpenAI emulator driven by the real SDK (`openai.AsyncOpenAI`), with strict parsing.

`_strict_response_validation=True` makes the SDK validate every JSON body and every
stream event against its pydantic types, so these tests prove the wire format too.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
import pytest
from openai.types.conversations import Conversation as SDKConversation
from openai.types.conversations import ConversationItemList
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tests.emulators.openai import OpenAIEmulator, script
from tests.emulators.openai.script import tiny_png

MODEL = "gpt-4.1-mini"
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def make_client(emu: OpenAIEmulator, **kwargs: Any) -> openai.AsyncOpenAI:
    options: dict[str, Any] = {"max_retries": 0, "_strict_response_validation": True, **kwargs}
    return openai.AsyncOpenAI(base_url=emu.base_url, api_key=emu.api_key, **options)


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


async def streamed_turn(
    client: openai.AsyncOpenAI, conversation: str | None, text: str | list[dict[str, Any]], **extra: Any
) -> list[Any]:
    stream = await client.responses.create(
        model=MODEL,
        input=[user(text)] if isinstance(text, str) else text,
        stream=True,
        **({"conversation": conversation} if conversation else {}),
        **extra,
    )
    return [event async for event in stream]


def final_text(events: list[Any]) -> str:
    completed = [e for e in events if e.type == "response.completed"]
    assert completed, [e.type for e in events]
    return completed[-1].response.output_text


# ----------------------------------------------------------------------------- conversations


async def test_two_streamed_turns_keep_context(emu: OpenAIEmulator, client: openai.AsyncOpenAI) -> None:
    conv = await client.conversations.create(metadata={"slack_thread": "C1:1700.1"})
    assert conv.id.startswith("conv_")
    assert emu.conversations[conv.id].metadata == {"slack_thread": "C1:1700.1"}

    first = await streamed_turn(client, conv.id, "hello")
    assert [e.type for e in first] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * sum(e.type == "response.output_text.delta" for e in first),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert sum(e.type == "response.output_text.delta" for e in first) >= 2
    assert [e.sequence_number for e in first] == list(range(len(first)))
    deltas = "".join(e.delta for e in first if e.type == "response.output_text.delta")
    assert deltas == final_text(first) == "echo: hello [user messages: 1]"
    completed = first[-1].response
    assert completed.status == "completed"
    assert completed.conversation is not None and completed.conversation.id == conv.id
    assert completed.usage is not None and completed.usage.total_tokens > 0

    second = await streamed_turn(client, conv.id, "again")
    assert final_text(second) == "echo: again [user messages: 2]"
    assert emu.user_texts(conv.id) == ["hello", "again"]

    items = [item async for item in client.conversations.items.list(conv.id, order="asc")]
    assert [(i.type, getattr(i, "role", None)) for i in items] == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
        ("message", "assistant"),
    ]
    assert all(i.id.startswith("msg_") and i.status == "completed" for i in items)


async def test_conversation_crud_and_items(emu: OpenAIEmulator, client: openai.AsyncOpenAI) -> None:
    conv = await client.conversations.create(items=[user("seed one"), user("seed two")])
    assert (await client.conversations.retrieve(conv.id)).metadata == {}

    updated = await client.conversations.update(conv.id, metadata={"k": "v"})
    assert updated.metadata == {"k": "v"}

    added = await client.conversations.items.create(conv.id, items=[user("kept"), user("kept too")])
    assert isinstance(added, ConversationItemList)
    assert added.first_id == added.data[0].id and added.last_id == added.data[-1].id
    assert emu.user_texts(conv.id) == ["seed one", "seed two", "kept", "kept too"]

    newest = await client.conversations.items.list(conv.id, limit=1)
    assert [i.content[0].text for i in newest.data] == ["kept too"]  # default order is desc
    assert newest.has_more is True
    older = await client.conversations.items.list(conv.id, limit=2, after=newest.data[0].id)
    assert [i.content[0].text for i in older.data] == ["kept", "seed two"]

    item = await client.conversations.items.retrieve(added.data[0].id, conversation_id=conv.id)
    assert item.type == "message" and item.content[0].text == "kept"
    after_delete = await client.conversations.items.delete(added.data[0].id, conversation_id=conv.id)
    assert isinstance(after_delete, SDKConversation)
    assert emu.user_texts(conv.id) == ["seed one", "seed two", "kept too"]

    # Context counts what the conversation holds.
    turn = await client.responses.create(model=MODEL, conversation={"id": conv.id}, input="next")
    assert turn.output_text == "echo: next [user messages: 4]"

    deleted = await client.conversations.delete(conv.id)
    assert deleted.deleted is True and deleted.object == "conversation.deleted"
    assert conv.id not in emu.conversations


async def test_unknown_conversation_is_404(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as retrieve_error:
        await client.conversations.retrieve("conv_missing")
    assert retrieve_error.value.message.endswith("Conversation with id 'conv_missing' not found.")
    assert retrieve_error.value.body == {
        "message": "Conversation with id 'conv_missing' not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    with pytest.raises(openai.NotFoundError) as create_error:
        await client.responses.create(model=MODEL, conversation="conv_missing", input="hi", stream=True)
    assert "conv_missing" in create_error.value.message
    assert create_error.value.param == "conversation"


# ----------------------------------------------------------------------------- responses


async def test_non_streamed_response_and_retrieve(emu: OpenAIEmulator, client: openai.AsyncOpenAI) -> None:
    response = await client.responses.create(model=MODEL, input="plain string", instructions="be brief")
    assert isinstance(response, Response)
    assert response.output_text == "echo: plain string [user messages: 1]"
    assert response.instructions == "be brief"
    assert emu.responses[-1]["input"] == "plain string"

    again = await client.responses.retrieve(response.id)
    assert again.output_text == response.output_text

    follow_up = await client.responses.create(model=MODEL, input="more", previous_response_id=response.id)
    assert follow_up.output_text == "echo: more [user messages: 2]"


async def test_stream_helper_accumulates_the_events(client: openai.AsyncOpenAI) -> None:
    """The SDK's own state machine (`responses.stream`) accepts the event sequence."""
    async with client.responses.stream(model=MODEL, input="via helper #markdown") as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_response()
    text = final.output_text
    for needle in (
        "**bold**",
        "_italic_",
        "[link](https://example.com)",
        "- first point",
        "# Summary",
        "```python",
    ):
        assert needle in text


async def test_raw_sse_framing(emu: OpenAIEmulator) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            emu.base_url + "/responses",
            json={"model": MODEL, "input": "raw", "stream": True},
            headers={"Authorization": f"Bearer {emu.api_key}"},
        ) as resp,
    ):
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        body = (await resp.read()).decode()
    frames = [frame for frame in body.split("\n\n") if frame]
    for expected_seq, frame in enumerate(frames):
        event_line, data_line = frame.split("\n")
        event = EVENTS.validate_json(data_line.removeprefix("data: "))
        assert event_line == f"event: {event.type}"
        assert event.sequence_number == expected_seq


async def test_protocol_errors_keep_the_error_shape(emu: OpenAIEmulator) -> None:
    auth = {"Authorization": f"Bearer {emu.api_key}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(emu.base_url + "/nowhere", headers=auth) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["message"] == "Invalid URL (GET /v1/nowhere)"
        json_headers = {**auth, "Content-Type": "application/json"}
        async with session.post(emu.base_url + "/responses", data=b"{not json", headers=json_headers) as resp:
            assert resp.status == 400
            assert set((await resp.json())["error"]) == {"message", "type", "param", "code"}
        async with session.get(emu.base_url + "/models") as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["type"] == "invalid_request_error"
    assert [r.status for r in emu.requests] == [404, 400, 401]


async def test_model_cues(client: openai.AsyncOpenAI) -> None:
    long = await client.responses.create(model=MODEL, input="please #long:3000")
    assert len(long.output_text) == 3000
    assert long.output_text.count("```") == 2 and "```python\n" in long.output_text
    first, _, rest = long.output_text.partition("```python")
    assert len(first) > 1000 and len(rest) > 1000  # the code block sits in the middle

    parts: list[dict[str, Any]] = [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
        {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"},
    ]
    images = await client.responses.create(model=MODEL, input=[{"role": "user", "content": parts}])
    assert images.output_text == "echo: look [user messages: 1] [images: 2]"

    many = await client.responses.create(model=MODEL, input=[user("a"), user("b")])
    assert many.output_text == "echo: a | b [user messages: 2]"


async def test_slow_stream_is_paced(emu: OpenAIEmulator, client: openai.AsyncOpenAI) -> None:
    stream = await client.responses.create(model=MODEL, input="take your time #slow", stream=True)
    seen: list[str] = []
    async for event in stream:
        seen.append(event.type)
        if event.type == "response.output_text.delta":
            break
    # The turn is observably unfinished while the client holds the first delta.
    assert "response.completed" not in seen
    rest = [event.type async for event in stream]
    assert rest[-1] == "response.completed"


# ----------------------------------------------------------------------------- failures


async def test_failed_response_reports_and_stores_nothing(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI
) -> None:
    conv = await client.conversations.create()
    events = await streamed_turn(client, conv.id, "boom #fail")
    assert [e.type for e in events] == ["response.created", "response.in_progress", "response.failed"]
    failed = events[-1].response
    assert failed.status == "failed"
    assert failed.error is not None
    assert (failed.error.code, failed.error.message) == ("server_error", "The model failed to respond.")
    assert emu.conversations[conv.id].items == []
    assert emu.conversations[conv.id].locked_by is None

    with pytest.raises(openai.InternalServerError) as non_streamed:
        await client.responses.create(model=MODEL, conversation=conv.id, input="boom #fail")
    assert non_streamed.value.status_code == 500
    assert emu.conversations[conv.id].items == []


async def test_stream_error_raises_in_the_sdk(emu: OpenAIEmulator, client: openai.AsyncOpenAI) -> None:
    conv = await client.conversations.create()
    stream = await client.responses.create(
        model=MODEL, conversation=conv.id, input=[user("hi #stream-error")], stream=True
    )
    seen: list[str] = []
    with pytest.raises(openai.APIError) as broken:
        async for event in stream:
            seen.append(event.type)
    # Live-API shape (error nested under "error"): the SDK raises mid-iteration.
    assert broken.value.message == "stream broke"
    assert broken.value.code == "server_error"
    assert seen.count("response.output_text.delta") == 2
    assert "response.completed" not in seen
    assert emu.conversations[conv.id].items == []
    assert emu.conversations[conv.id].locked_by is None


async def test_stream_error_flat_shape_is_an_event(emu: OpenAIEmulator, client: openai.AsyncOpenAI) -> None:
    emu.stream_error_shape = "flat"
    events = await streamed_turn(client, None, "hi #stream-error")
    error = events[-1]
    assert error.type == "error"
    assert (error.code, error.message, error.param) == ("server_error", "stream broke", None)
    assert error.sequence_number == len(events) - 1


async def test_conversation_locked_while_a_response_runs(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI
) -> None:
    conv = await client.conversations.create()
    stream = await client.responses.create(
        model=MODEL, conversation=conv.id, input="wait #stall", stream=True
    )
    created = await stream.__anext__()
    assert created.type == "response.created"
    await emu.wait_for(lambda: emu.stalled == 1, what="the stream to stall")

    with pytest.raises(openai.BadRequestError) as locked:
        await client.responses.create(model=MODEL, conversation=conv.id, input="me too", stream=True)
    assert locked.value.code == "conversation_locked"
    assert locked.value.body == {
        "message": "Another process is currently operating on this conversation. "
        "Please retry in a few seconds.",
        "type": "invalid_request_error",
        "param": None,
        "code": "conversation_locked",
    }

    emu.release()
    rest = [event async for event in stream]
    assert final_text(rest) == "echo: wait #stall [user messages: 1]"
    later = await client.responses.create(model=MODEL, conversation=conv.id, input="now")
    assert later.output_text == "echo: now [user messages: 2]"


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
async def test_client_disconnect_releases_the_lock(emu: OpenAIEmulator, transport: str) -> None:
    extra = {"http_client": openai.DefaultAioHttpClient()} if transport == "aiohttp" else {}
    async with make_client(emu, **extra) as sdk:
        conv = await sdk.conversations.create()
        stream = await sdk.responses.create(
            model=MODEL, conversation=conv.id, input="wait #stall", stream=True
        )
        await stream.__anext__()
        await emu.wait_for(lambda: emu.stalled == 1, what="the stream to stall")
        await stream.close()

        await emu.wait_for(
            lambda: emu.conversations[conv.id].locked_by is None, what="the lock to be released"
        )
        await emu.wait_for(lambda: emu.stalled == 0, what="the stalled handler to stop")
        assert emu.conversations[conv.id].items == []
        after = await sdk.responses.create(model=MODEL, conversation=conv.id, input="hello again")
    assert after.output_text == "echo: hello again [user messages: 1]"


async def test_rate_limit_is_retried_after_retry_after(emu: OpenAIEmulator) -> None:
    emu.fail_next("POST", "/responses", status=429, retry_after=0.6)
    async with make_client(emu, max_retries=2) as retrying:
        response = await retrying.responses.create(model=MODEL, input="eventually")
    assert response.output_text == "echo: eventually [user messages: 1]"
    first, second = emu.requests_to("POST", "/v1/responses")
    assert (first.status, second.status) == (429, 200)
    # The SDK's own back-off is at most 0.5 s here; a longer gap means it obeyed Retry-After.
    assert second.at - first.at >= 0.6
    assert second.headers["x-stainless-retry-count"] == "1"


async def test_injected_errors(emu: OpenAIEmulator, client: openai.AsyncOpenAI) -> None:
    emu.fail_next("POST", "/conversations", status=503, times=2)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as unavailable:
            await client.conversations.create()
        assert unavailable.value.status_code == 503
        assert unavailable.value.type == "server_error"
    assert (await client.conversations.create()).id.startswith("conv_")

    emu.fail_next("POST", "/v1/responses", status=429)
    with pytest.raises(openai.RateLimitError) as limited:
        await client.responses.create(model=MODEL, input="x")
    assert limited.value.code == "rate_limit_exceeded"
    assert limited.value.response.headers["retry-after"] == "0.05"


async def test_wrong_key_is_401_without_echoing_it(emu: OpenAIEmulator) -> None:
    async with openai.AsyncOpenAI(base_url=emu.base_url, api_key="sk-wrong-secret", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as denied:
            await bad.models.list()
    assert denied.value.code == "invalid_api_key"
    assert denied.value.type == "invalid_request_error"
    assert "sk-wrong-secret" not in denied.value.message
    assert denied.value.message.endswith("Incorrect API key provided: sk-****.")


async def test_unsupported_options_are_refused(emu: OpenAIEmulator, client: openai.AsyncOpenAI) -> None:
    emu.unsupported |= {"truncation", "code_interpreter"}
    with pytest.raises(openai.BadRequestError) as truncation:
        await client.responses.create(model=MODEL, input="x", truncation="auto", stream=True)
    assert truncation.value.param == "truncation"
    with pytest.raises(openai.BadRequestError) as tool:
        await client.responses.create(
            model=MODEL, input="x", tools=[{"type": "code_interpreter", "container": {"type": "auto"}}]
        )
    assert "code_interpreter" in tool.value.message
    ok = await client.responses.create(model=MODEL, input="x")
    assert ok.status == "completed"


async def test_models(emu: OpenAIEmulator, client: openai.AsyncOpenAI) -> None:
    ids = [m.id async for m in client.models.list()]
    assert MODEL in ids
    assert (await client.models.retrieve(MODEL)).id == MODEL
    with pytest.raises(openai.NotFoundError) as missing:
        await client.models.retrieve("gpt-nonexistent")
    assert missing.value.code == "model_not_found"


# ----------------------------------------------------------------------------- tools


WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


async def test_function_tool_round_trip(emu: OpenAIEmulator, client: openai.AsyncOpenAI) -> None:
    conv = await client.conversations.create()
    events = await streamed_turn(
        client, conv.id, 'weather? #tool:get_weather {"city": "Paris"}', tools=[WEATHER_TOOL]
    )
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds
    added = next(e for e in events if e.type == "response.output_item.added")
    assert added.item.type == "function_call" and added.item.name == "get_weather"
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert done.arguments == '{"city": "Paris"}'
    call = events[-1].response.output[0]
    assert call.type == "function_call"
    assert call.id.startswith("fc_") and call.call_id.startswith("call_")
    assert call.arguments == '{"city": "Paris"}'

    answer = await streamed_turn(
        client,
        conv.id,
        [{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"}],
        tools=[WEATHER_TOOL],
    )
    assert final_text(answer) == "tool get_weather said: sunny, 21C"
    kinds_stored = [i["type"] for i in emu.conversations[conv.id].items]
    assert kinds_stored == ["message", "function_call", "function_call_output", "message"]
    items = await client.conversations.items.list(conv.id, order="asc")
    assert [i.type for i in items.data] == kinds_stored

    # A tool the request does not offer is not called.
    plain = await client.responses.create(model=MODEL, input='#tool:other {"a": 1}', tools=[WEATHER_TOOL])
    assert plain.output[0].type == "message"


# ----------------------------------------------------------------------------- files


async def test_file_search_with_vector_store(emu: OpenAIEmulator, client: openai.AsyncOpenAI) -> None:
    notes = await client.files.create(
        file=("notes.txt", b"Launch is on Tuesday.\nSecond line.\n", "text/plain"), purpose="assistants"
    )
    assert notes.id.startswith("file-") and notes.bytes == 35 and notes.status == "processed"
    assert emu.files[notes.id].filename == "notes.txt"
    assert emu.requests_to("POST", "/files")[-1].json == {
        "purpose": "assistants",
        "file": {"filename": "notes.txt", "bytes": 35},
    }
    assert (await client.files.content(notes.id)).content == b"Launch is on Tuesday.\nSecond line.\n"

    store = await client.vector_stores.create(
        name="thread C1:1700.1", expires_after={"anchor": "last_active_at", "days": 7}, metadata={"k": "v"}
    )
    assert store.id.startswith("vs_") and store.expires_after is not None and store.expires_after.days == 7

    attached = await client.vector_stores.files.create_and_poll(file_id=notes.id, vector_store_id=store.id)
    assert attached.status == "completed" and attached.last_error is None
    polls = emu.requests_to("GET", f"/vector_stores/{store.id}/files/{notes.id}")
    assert len(polls) == 2  # one "in_progress" (indexing_polls=1), then "completed"
    assert emu.vector_stores[store.id].files == {notes.id: "completed"}

    blob = await client.files.create(
        file=("data.bin", b"\x00\x01", "application/octet-stream"), purpose="assistants"
    )
    rejected = await client.vector_stores.files.create_and_poll(file_id=blob.id, vector_store_id=store.id)
    assert rejected.status == "failed"
    assert rejected.last_error is not None and rejected.last_error.code == "unsupported_file"
    listed = await client.vector_stores.files.list(store.id, filter="completed")
    assert [f.id for f in listed.data] == [notes.id]
    counts = (await client.vector_stores.retrieve(store.id)).file_counts
    assert (counts.completed, counts.failed, counts.total) == (1, 1, 2)

    tools: list[Any] = [{"type": "file_search", "vector_store_ids": [store.id]}]
    events = await streamed_turn(client, None, "when is the launch?", tools=tools)
    response = events[-1].response
    assert [item.type for item in response.output] == ["file_search_call", "message"]
    assert response.output[0].status == "completed"
    assert response.output[0].queries == ["when is the launch?"]
    text_part = response.output[1].content[0]
    assert "From notes.txt: Launch is on Tuesday." in text_part.text
    (citation,) = text_part.annotations
    assert (citation.type, citation.file_id, citation.filename) == ("file_citation", notes.id, "notes.txt")
    assert text_part.text[: citation.index].endswith("Launch is on Tuesday.")
    assert any(e.type == "response.output_text.annotation.added" for e in events)

    no_question = await client.responses.create(model=MODEL, input="just chatting", tools=tools)
    assert [item.type for item in no_question.output] == ["message"]

    await client.vector_stores.files.delete(notes.id, vector_store_id=store.id)
    assert notes.id not in emu.vector_stores[store.id].files
    assert (await client.vector_stores.delete(store.id)).deleted is True
    assert (await client.files.delete(notes.id)).deleted is True
    assert [f.id async for f in client.files.list()] == [blob.id]


async def test_upload_and_poll_and_batches(emu: OpenAIEmulator, client: openai.AsyncOpenAI) -> None:
    emu.indexing_polls = 3
    store = await client.vector_stores.create(name="s")
    uploaded = await client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("a.md", b"# Title\nbody", "text/markdown")
    )
    assert uploaded.status == "completed"
    assert len(emu.requests_to("GET", f"/vector_stores/{store.id}/files/")) == 4

    other = await client.files.create(file=("b.txt", b"bee", "text/plain"), purpose="assistants")
    batch = await client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[other.id]
    )
    assert batch.status == "completed" and batch.file_counts.completed == 1
    assert emu.vector_stores[store.id].files[other.id] == "completed"


async def test_chart_from_code_interpreter(emu: OpenAIEmulator, client: openai.AsyncOpenAI) -> None:
    csv = await client.files.create(
        file=("sales.csv", b"month,total\njan,3\n", "text/csv"), purpose="user_data"
    )
    tools: list[Any] = [{"type": "code_interpreter", "container": {"type": "auto", "file_ids": [csv.id]}}]
    events = await streamed_turn(client, None, "plot it #chart", tools=tools)
    assert emu.code_interpreter_file_ids == [[csv.id]]
    response = events[-1].response
    call, message = response.output
    assert call.type == "code_interpreter_call" and call.status == "completed"
    assert call.id.startswith("ci_") and call.container_id.startswith("cntr_") and call.outputs is None
    assert "sales.csv" in (call.code or "")
    part = message.content[0]
    assert "sales.csv" in part.text
    (citation,) = part.annotations
    assert citation.type == "container_file_citation"
    assert (citation.container_id, citation.filename) == (call.container_id, "chart.png")
    assert citation.file_id.startswith("cfile_")
    assert part.text[citation.start_index : citation.end_index] == "[chart.png](sandbox:/mnt/data/chart.png)"

    content = await client.containers.files.content.retrieve(
        citation.file_id, container_id=citation.container_id
    )
    png = content.read()
    assert png == tiny_png() and png.startswith(b"\x89PNG\r\n\x1a\n")
    meta = await client.containers.files.retrieve(citation.file_id, container_id=citation.container_id)
    assert (meta.path, meta.bytes, meta.source) == ("/mnt/data/chart.png", len(png), "assistant")

    plain = await client.responses.create(model=MODEL, input="hi", tools=tools)
    assert plain.output_text == "echo: hi [user messages: 1] [csv: sales.csv]"


# ----------------------------------------------------------------------------- transports


async def test_aiohttp_transport(emu: OpenAIEmulator) -> None:
    async with make_client(emu, http_client=openai.DefaultAioHttpClient()) as sdk:
        conv = await sdk.conversations.create()
        first = await streamed_turn(sdk, conv.id, "over aiohttp")
        second = await streamed_turn(sdk, conv.id, "still aiohttp")
    assert final_text(first) == "echo: over aiohttp [user messages: 1]"
    assert final_text(second) == "echo: still aiohttp [user messages: 2]"


# ----------------------------------------------------------------------------- helpers


def test_plans_are_wire_neutral() -> None:
    """The scripted model is a pure function another front end (Assistants v2) can render."""
    transcript: list[script.Entry] = [
        script.Message("user", ("earlier",)),
        script.Message("assistant", ("echo: earlier [user messages: 1]",)),
        script.Message("user", ('call it #tool:lookup {"q": 1} #slow',), current=True),
    ]
    plan = script.plan_reply(transcript, script.Toolbox(functions=frozenset({"lookup"})))
    (call,) = plan.steps
    assert isinstance(call, script.CallFunction)
    assert (call.name, call.arguments, "".join(call.chunks)) == ("lookup", '{"q": 1}', '{"q": 1}')
    assert plan.pace_s > 0 and plan.failure is None and not plan.stall

    result = script.plan_reply(
        [*transcript[:2], script.ToolCall("c1", "lookup", "{}"), script.ToolResult("c1", "42", current=True)],
        script.Toolbox(),
    )
    assert result.text == "tool lookup said: 42"

    broken = script.plan_reply([script.Message("user", ("x #stream-error",), current=True)], script.Toolbox())
    assert broken.failure == script.Failure("stream_error", "server_error", "stream broke", after_chunks=2)
    assert broken.text == "echo: x #stream-error [user messages: 1]"


async def test_wait_for_names_what_it_waited_for(emu: OpenAIEmulator) -> None:
    with pytest.raises(TimeoutError, match="a conversation"):
        await emu.wait_for(lambda: emu.conversations, timeout=0.05, what="a conversation")


async def test_input_items_list_what_a_response_was_given_newest_first(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI
) -> None:
    conv = await client.conversations.create()
    await streamed_turn(client, conv.id, "first")
    events = await streamed_turn(client, conv.id, [user("second"), user("third")])
    response_id = next(e for e in events if e.type == "response.completed").response.id

    page = await client.responses.input_items.list(response_id, order="desc", limit=2)
    stored = {i["id"]: i for i in emu.conversations[conv.id].items}
    texts = [stored[item.id]["content"][0]["text"] for item in page.data]
    assert texts == ["third", "second"]  # the ids are the conversation's own
    everything = await client.responses.input_items.list(response_id, order="asc")
    assert [getattr(i, "role", "") for i in everything.data] == ["user", "assistant", "user", "user"]

    await client.conversations.items.delete(page.data[0].id, conversation_id=conv.id)
    assert emu.user_texts(conv.id) == ["first", "second"]
