"""ResponsesBackend against the emulator through the real SDK: errors, fallbacks, kept messages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from bot.assistant.base import (
    Approval,
    ApprovalRequested,
    BackendError,
    Binding,
    Completed,
    ConversationBusy,
    ConversationGone,
    Failed,
    RunEvent,
    RunRequest,
    TextDelta,
)
from bot.assistant.responses import ResponsesBackend
from bot.inbound import Inbound, ThreadKey
from bot.tools import ToolSet
from tests.emulators.openai import OpenAIEmulator
from tests.harness import ROOT

KEY = ThreadKey("T0TEAM", "C0CHAN", "1700000000.000100")
HTTP_400 = json.loads((ROOT / "tests/data/real-wire/responses_http_400_invalid_temperature.json").read_text())


@pytest.fixture
async def backend(client: openai.AsyncOpenAI) -> AsyncIterator[ResponsesBackend]:
    opened = ResponsesBackend(client, model="test-model", instructions="Be brief.")
    yield opened
    await opened.aclose()


@pytest.fixture
async def binding(backend: ResponsesBackend) -> Binding:
    return await backend.open(KEY, {"slack_thread_ts": KEY.thread_ts})


def request(text: str, tools: ToolSet | None = None) -> RunRequest:
    inbound = Inbound(KEY, "1700000001.000100", "U0ALICE", text, "thread_reply", speaker="Alice")
    return RunRequest(inputs=(inbound,), tools=tools or ToolSet())


async def collect(backend: ResponsesBackend, binding: Binding, req: RunRequest) -> list[RunEvent]:
    return [event async for event in backend.run(binding, req)]


def user_texts(emu: OpenAIEmulator, binding: Binding) -> list[str]:
    items = emu.conversations[binding.conversation_id].items
    return [p["text"] for i in items if i.get("role") == "user" for p in i["content"]]


def sent(emu: OpenAIEmulator) -> list[dict[str, Any]]:
    return [r.json for r in emu.requests_to("POST", "/v1/responses") if r.json is not None]


async def test_a_plain_http_400_to_a_streamed_request_fails_the_turn_and_keeps_the_message(
    emu: OpenAIEmulator, backend: ResponsesBackend, binding: Binding
) -> None:
    error = HTTP_400["error"]
    emu.fail_next("POST", "/v1/responses", status=400, code=error["code"], message=error["message"])
    with pytest.raises(BackendError) as failed:
        await collect(backend, binding, request("hello"))
    assert "400" in str(failed.value) and error["code"] in str(failed.value)
    assert failed.value.kept and not failed.value.retryable
    assert user_texts(emu, binding) == ["Alice: hello"]


@pytest.mark.parametrize("shape", ["flat", "nested", "both"])
async def test_a_stream_error_mid_answer_fails_and_keeps_the_message(
    emu: OpenAIEmulator, backend: ResponsesBackend, binding: Binding, shape: str
) -> None:
    emu.stream_error_shape = shape  # type: ignore[assignment]
    events = await collect(backend, binding, request("tell me #stream-error"))
    assert events[-1] == Failed("The assistant service reported an error mid-answer.", kept=True)
    assert any(isinstance(e, TextDelta) for e in events), "text streamed before the break"
    assert user_texts(emu, binding) == ["Alice: tell me #stream-error"]


async def test_truncation_refused_is_retried_once_without_and_remembered(
    emu: OpenAIEmulator, backend: ResponsesBackend, binding: Binding
) -> None:
    emu.unsupported.add("truncation")
    assert isinstance((await collect(backend, binding, request("one")))[-1], Completed)
    assert isinstance((await collect(backend, binding, request("two")))[-1], Completed)
    assert [b.get("truncation") for b in sent(emu)] == ["auto", None, None]
    assert any("truncation" in p for p in await backend.check())


async def test_a_refused_hosted_tool_is_dropped_and_check_names_it(
    emu: OpenAIEmulator, backend: ResponsesBackend, binding: Binding
) -> None:
    emu.unsupported.add("web_search")
    events = await collect(backend, binding, request("news #web", ToolSet(web_search=True)))
    assert isinstance(events[-1], Completed)
    assert [[t["type"] for t in b.get("tools") or []] for b in sent(emu)] == [["web_search"], []]
    assert "server lacks the web_search tool" in await backend.check()


async def test_a_conversation_gone_on_the_server_is_reported_as_gone(
    emu: OpenAIEmulator, backend: ResponsesBackend, binding: Binding
) -> None:
    emu.conversations.clear()
    with pytest.raises(ConversationGone):
        await collect(backend, binding, request("hello"))


async def test_a_locked_conversation_is_reported_as_busy(
    emu: OpenAIEmulator, backend: ResponsesBackend, binding: Binding
) -> None:
    first = asyncio.create_task(collect(backend, binding, request("slow one #stall")))
    await emu.wait_for(lambda: emu.stalled == 1, what="the first response to stall")
    with pytest.raises(ConversationBusy):
        await collect(backend, binding, request("second"))
    emu.release()
    assert isinstance((await first)[-1], Completed)


async def test_an_mcp_approval_request_ends_the_run_and_the_decision_continues_it(
    emu: OpenAIEmulator, backend: ResponsesBackend, binding: Binding
) -> None:
    server = {"type": "mcp", "server_label": "gh", "server_url": "https://mcp.example/gh"}
    tools = ToolSet(mcp_servers=(server,))
    events = await collect(backend, binding, request('#mcp:gh.get_issue {"n": 1}', tools))
    [asked] = [e for e in events if isinstance(e, ApprovalRequested)]
    assert (asked.server, asked.tool, asked.arguments) == ("gh", "get_issue", '{"n": 1}')
    assert isinstance(events[-1], Completed)

    decided = RunRequest(inputs=(), tools=tools, approvals=(Approval(asked.id, True),))
    more = await collect(backend, binding, decided)
    assert more[-1] == Completed('mcp get_issue said: get_issue ran with {"n": 1}')
    assert sent(emu)[-1]["input"] == [
        {"type": "mcp_approval_response", "approval_request_id": asked.id, "approve": True}
    ]
