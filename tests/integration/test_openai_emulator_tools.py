"""The emulator's hosted tools (web search, remote MCP) through the strict SDK: real shapes."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.emulators.openai import OpenAIEmulator
from tests.integration.test_openai_emulator import final_text, streamed_turn

GITHUB: dict[str, Any] = {
    "type": "mcp",
    "server_label": "github",
    "server_url": "https://mcp.example.com/github",
    "allowed_tools": ["get_issue"],
    "require_approval": "always",
    "headers": {"Authorization": "Bearer t0ken"},
}


async def test_web_search_streams_its_call_and_cites_urls(client: openai.AsyncOpenAI) -> None:
    events = await streamed_turn(client, None, "news? #web", tools=[{"type": "web_search"}])
    kinds = [e.type for e in events]
    assert kinds.index("response.web_search_call.in_progress") < kinds.index(
        "response.web_search_call.completed"
    )
    output = events[-1].response.output
    assert output[0].type == "web_search_call" and output[0].status == "completed"
    cites = output[1].content[0].annotations
    assert {c.type for c in cites} == {"url_citation"}
    assert cites[0].url == "https://docs.example.com/guide" and cites[0].title == "The Example Guide"
    text = output[1].content[0].text
    assert text[cites[0].start_index : cites[0].end_index] == "The Example Guide"


async def test_an_mcp_call_needing_approval_ends_the_response_then_runs_when_approved(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI
) -> None:
    conv = await client.conversations.create()
    asked = await streamed_turn(client, conv.id, '#mcp:github.get_issue {"n": 7}', tools=[GITHUB])
    listing, request = asked[-1].response.output
    assert listing.type == "mcp_list_tools" and [t.name for t in listing.tools] == ["get_issue"]
    assert request.type == "mcp_approval_request" and request.arguments == '{"n": 7}'
    assert "response.mcp_list_tools.completed" in [e.type for e in asked]
    assert emu.mcp_headers[0] == {"Authorization": "Bearer t0ken"}

    answer = {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
    done = await streamed_turn(client, conv.id, [answer], tools=[GITHUB])
    call = done[-1].response.output[0]
    assert call.type == "mcp_call" and call.approval_request_id is None  # as the live API sends it
    assert call.output == 'get_issue ran with {"n": 7}'
    assert final_text(done) == 'mcp get_issue said: get_issue ran with {"n": 7}'
    kinds = [e.type for e in done]
    assert kinds.index("response.mcp_call.in_progress") < kinds.index("response.mcp_call.completed")

    with pytest.raises(openai.BadRequestError, match="approval request"):
        await streamed_turn(client, conv.id, [{**answer, "approval_request_id": "mcpr_nope"}], tools=[GITHUB])


async def test_a_denied_mcp_call_is_not_run(client: openai.AsyncOpenAI) -> None:
    conv = await client.conversations.create()
    asked = await streamed_turn(client, conv.id, "#mcp:github.get_issue {}", tools=[GITHUB])
    request = asked[-1].response.output[1]
    answer = {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": False}
    done = await streamed_turn(client, conv.id, [answer], tools=[GITHUB])
    assert [i.type for i in done[-1].response.output] == ["message"]
    assert "not approved" in final_text(done)


async def test_a_broken_mcp_server_fails_its_tool_listing(client: openai.AsyncOpenAI) -> None:
    broken = {**GITHUB, "server_url": "https://broken.example.com/mcp", "require_approval": "never"}
    events = await streamed_turn(client, None, "#mcp:github.get_issue {}", tools=[broken])
    assert "response.mcp_list_tools.failed" in [e.type for e in events]
    listing = events[-1].response.output[0]
    assert listing.type == "mcp_list_tools" and "424" in (listing.error or "")
