"""The turns' hot-path OpenAI calls (wire.py) against the emulator: what the SDK would have
sent and raised, its retries, the stream's events and a conversation's creation."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.assistant.sse import sse_events
from bot.assistant.wire import Wire
from bot.connections import make_openai
from tests.emulators.openai import OpenAIEmulator
from tests.harness import ROOT, free_port

MODEL = "test-model"
REAL_WIRE = ROOT / "tests/data/real-wire"


def body(text: str) -> dict[str, Any]:
    return {"model": MODEL, "input": text, "stream": True}


@pytest.fixture
async def sdk(emu: OpenAIEmulator) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=emu.base_url, api_key=emu.api_key, max_retries=2) as client:
        yield client


@pytest.fixture
async def wire(sdk: openai.AsyncOpenAI) -> AsyncIterator[Wire]:
    opened = Wire(sdk)
    yield opened
    await opened.aclose()


async def events(wire: Wire, text: str) -> list[dict[str, Any]]:
    async with wire.stream("responses", body(text)) as batches:
        return [event async for batch in batches for event in batch]


async def test_a_stream_is_read_as_event_dicts_with_the_sdks_headers(emu: OpenAIEmulator, wire: Wire) -> None:
    got = await events(wire, "hello")
    kinds = [e["type"] for e in got]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    text = "".join(e["delta"] for e in got if e["type"] == "response.output_text.delta")
    assert text == got[-1]["response"]["output"][0]["content"][0]["text"] == "echo: hello [user messages: 1]"
    (sent,) = emu.requests_to("POST", "/v1/responses")
    assert sent.json == body("hello")
    assert sent.headers["user-agent"].startswith("AsyncOpenAI/Python")
    assert sent.headers["x-stainless-retry-count"] == "0"
    assert sent.headers["accept"] == "text/event-stream"


async def test_a_rate_limit_is_retried_after_its_retry_after(emu: OpenAIEmulator, wire: Wire) -> None:
    emu.fail_next("POST", "/v1/responses", status=429, retry_after=0.6)
    started = time.monotonic()
    got = await events(wire, "eventually")
    assert got[-1]["type"] == "response.completed"
    first, second = emu.requests_to("POST", "/v1/responses")
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.6 and time.monotonic() - started >= 0.6  # not the 0.5 s backoff
    assert second.headers["x-stainless-retry-count"] == "1"


async def test_an_error_answer_raises_what_the_sdk_raises(
    emu: OpenAIEmulator, sdk: openai.AsyncOpenAI, wire: Wire
) -> None:
    failures: list[openai.APIStatusError] = []
    for attempt in ("sdk", "wire"):
        emu.fail_next("POST", "/v1/responses", status=400, code="invalid_value", message="Bad temperature.")
        with pytest.raises(openai.BadRequestError) as refused:
            if attempt == "sdk":
                await sdk.responses.create(model=MODEL, input="x", stream=True)
            else:
                await events(wire, "x")
        failures.append(refused.value)
    expected, got = failures
    assert (got.message, got.code, got.body, got.status_code) == (
        expected.message,
        expected.code,
        expected.body,
        expected.status_code,
    )


async def test_server_errors_are_retried_then_raised_once_retries_run_out(
    emu: OpenAIEmulator, wire: Wire
) -> None:
    emu.fail_next("POST", "/v1/responses", status=503, times=3, retry_after=0.01)
    with pytest.raises(openai.InternalServerError) as unavailable:
        await events(wire, "x")
    assert unavailable.value.status_code == 503
    assert len(emu.requests_to("POST", "/v1/responses")) == 3  # the first try and max_retries=2


async def test_no_server_raises_a_connection_error_without_the_key() -> None:
    key = "sk-secret-value-123"
    url = f"http://127.0.0.1:{free_port()}/v1"
    async with openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0) as client:
        wire = Wire(client)
        with pytest.raises(openai.APIConnectionError) as failed:
            await events(wire, "x")
        await wire.aclose()
    assert key not in str(failed.value) and key not in repr(failed.value.__cause__)


async def test_a_conversation_is_created_with_one_post_and_read_as_a_dict(
    emu: OpenAIEmulator, wire: Wire
) -> None:
    emu.fail_next("POST", "/v1/conversations", status=503, retry_after=0.01)
    conv = await wire.post("conversations", {"metadata": {"slack_thread_ts": "1.2"}})
    assert conv["object"] == "conversation" and conv["id"] in emu.conversations
    assert emu.conversations[conv["id"]].metadata == {"slack_thread_ts": "1.2"}
    assert [r.status for r in emu.requests_to("POST", "/v1/conversations")] == [503, 200]


async def test_the_sdk_and_the_turns_calls_share_the_one_openai_session(emu: OpenAIEmulator) -> None:
    """What `threadbridge` builds: one aiohttp session under the SDK client and the wire."""
    seen: list[str] = []

    async def on_request_start(_: object, __: object, params: aiohttp.TraceRequestStartParams) -> None:
        seen.append(f"{params.method} {params.url.path}")

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    settings = SimpleNamespace(
        openai_api_key=SecretStr(emu.api_key), openai_base_url=emu.base_url, max_turns=4
    )
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        client = make_openai(settings, session)  # type: ignore[arg-type]
        shared = Wire(client, session)
        await client.models.list()
        await events(shared, "hello")
        await shared.aclose()  # the session is the caller's: still open
        assert not session.closed
        await client.close()
    assert seen == ["GET /v1/models", "POST /v1/responses"]


@pytest.mark.parametrize(
    "recording",
    ["responses_stream_text_gpt-5.2_2026-01.sse", "responses_stream_function_call_gpt-4o_2025-03.sse"],
)
async def test_a_recorded_live_stream_served_in_small_reads_gives_its_events(recording: str) -> None:
    """Real OpenAI bytes (not the emulator's), split across reads as TCP splits them."""
    recorded = (REAL_WIRE / recording).read_bytes()

    async def replay(request: web.Request) -> web.StreamResponse:
        answer = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await answer.prepare(request)
        for i in range(0, len(recorded), 13):
            await answer.write(recorded[i : i + 13])
        await answer.write_eof()
        return answer

    app = web.Application()
    app.router.add_post("/v1/responses", replay)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-x") as client:
            wire = Wire(client)
            got = await events(wire, "x")
            await wire.aclose()
    finally:
        await runner.cleanup()

    async def whole() -> AsyncIterator[bytes]:
        yield recorded

    assert got == [event async for event in sse_events(whole())]
    assert got[0]["type"] == "response.created" and got[-1]["type"] == "response.completed"
