"""Real recorded Responses streams, read as raw SSE dicts, become the right RunEvents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.assistant.base import Citation, RunEvent, Status, TextDelta, ToolCall, Usage
from bot.assistant.responses_stream import COULD_NOT_FINISH, STREAM_ERROR, ResponseOutcome
from bot.assistant.runner import FunctionCall
from bot.assistant.sse import sse_events

WIRE = Path(__file__).resolve().parents[1] / "data" / "real-wire"


async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    # Awkward chunk boundaries: lines and UTF-8 sequences split across reads, as TCP does.
    for i in range(0, len(body), size):
        yield body[i : i + size]


async def replay(body: bytes, size: int = 7) -> tuple[ResponseOutcome, list[RunEvent]]:
    outcome = ResponseOutcome()
    events: list[RunEvent] = []
    async for event in sse_events(_chunks(body, size)):
        events.extend(outcome.feed(event))
    return outcome, events


def text_of(events: list[RunEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


@pytest.mark.parametrize("size", [1, 7, 4096])
async def test_a_recorded_gpt52_text_stream_yields_its_deltas(size: int) -> None:
    outcome, events = await replay((WIRE / "responses_stream_text_gpt-5.2_2026-01.sse").read_bytes(), size)
    assert text_of(events) == "2+2 = 4"
    assert outcome.completed and outcome.failed is None and outcome.calls == []


async def test_a_recorded_function_call_stream_without_sequence_numbers_asks_for_the_call() -> None:
    outcome, events = await replay((WIRE / "responses_stream_function_call_gpt-4o_2025-03.sse").read_bytes())
    assert events == [
        Status("calling get_capital…"),
        # What the response cost, from its `usage`, for budgets and metrics.
        Usage(model="gpt-4o-2024-08-06", input_tokens=255, output_tokens=16, cached_tokens=0),
    ]
    call = FunctionCall("call_kL0PCQV7M2WMoVX8V8OtYSAL", "get_capital", '{"country":"France"}')
    assert outcome.calls == [call]


async def test_a_recorded_file_search_stream_cites_the_file_once() -> None:
    body = (WIRE / "responses_stream_file_search_file_citation.sse").read_bytes()
    outcome, events = await replay(body)
    assert outcome.completed
    assert text_of(events) == "The capital of France is Paris."
    assert [e for e in events if isinstance(e, Citation)] == [
        Citation("tmp8l5_2pzy.txt", "file-9RhPAs9YqVajpGXRfcgavJ")
    ]
    tasks = [(e.status, e.title) for e in events if isinstance(e, ToolCall)]
    assert tasks == [("in_progress", "Searching files"), ("complete", "Searching files")]
    assert Status("searching files…") in events


def _sse(*payloads: bytes) -> bytes:
    return b"".join(b"event: x\ndata: " + p + b"\n\n" for p in payloads)


@pytest.mark.parametrize(
    "error",
    [
        b'{"type":"error","code":"server_error","message":"boom","param":null}',
        b'{"type":"error","error":{"type":"server_error","code":"server_error","message":"boom"}}',
    ],
    ids=["flat", "nested"],
)
async def test_a_stream_error_flat_or_nested_then_response_failed_fails_once(error: bytes) -> None:
    failed = b'{"type":"response.failed","response":{"error":{"code":"server_error","message":"later"}}}'
    outcome, _ = await replay(_sse(b'{"type":"response.output_text.delta","delta":"par"}', error, failed))
    assert outcome.failed is not None and outcome.failed.message == STREAM_ERROR
    assert "boom" in outcome.failed_raw and "later" in outcome.failed_raw


async def test_a_failed_response_names_its_error_for_the_capability_check() -> None:
    error = b'{"code":"x","message":"web_search is not supported"}'
    failed = b'{"type":"response.failed","response":{"error":' + error + b"}}"
    outcome, _ = await replay(_sse(failed))
    assert outcome.failed is not None and outcome.failed.message == COULD_NOT_FINISH
    assert "web_search is not supported" in outcome.failed_raw


async def test_done_sentinels_comments_and_crlf_lines_are_read_correctly() -> None:
    body = (
        b": keep-alive\r\n\r\n"
        b'data: {"type":"response.output_text.delta","delta":"hi \xc3\xa9"}\r\n\r\n'
        b"data: [DONE]\r\n\r\n"
    )
    _, events = await replay(body, size=3)
    assert events == [TextDelta("hi é")]


async def test_web_search_citations_become_linked_sources() -> None:
    done = (
        b'{"type":"response.completed","response":{"output":['
        b'{"type":"web_search_call","id":"ws_1","status":"completed","action":{"type":"search","query":"q"}},'
        b'{"type":"message","content":[{"type":"output_text","text":"See [1].","annotations":['
        b'{"type":"url_citation","url":"https://example.com/a","title":"A","start_index":4,"end_index":7},'
        b'{"type":"url_citation","url":"https://example.com/a","title":"A","start_index":4,"end_index":7}'
        b"]}]}]}}"
    )
    _, events = await replay(_sse(done))
    assert [e for e in events if isinstance(e, Citation)] == [Citation("A", url="https://example.com/a")]
