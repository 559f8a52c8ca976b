"""Remote MCP servers with approval in Slack (responses backend), through the emulators and Redis."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator
from tests.harness import BotUnderTest, model_inputs, start_in_process, stop

BOT = "<@U0BOT>"
CHANNEL = "C0GENERAL"
ASK = f'{BOT} look at issue 7 #mcp:github.get_issue {{"n": 7}}'
SERVERS = """
- label: github
  url: https://mcp.example.com/github
  description: Our issues
  allowed_tools: [get_issue]
  require_approval: always
  headers:
    Authorization: Bearer ${TB_TEST_GITHUB_TOKEN}
- label: wiki
  url: https://broken.example.com/wiki
  require_approval: never
"""


@pytest.fixture
def mcp_env(
    tmp_path: Path, bot_env_vars: dict[str, str], backend_name: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    if backend_name != "responses":
        pytest.skip("remote MCP is a hosted tool of the Responses API")
    path = tmp_path / "mcp.yml"
    path.write_text(SERVERS)
    monkeypatch.setenv("TB_TEST_GITHUB_TOKEN", "ghp-secret")
    return {**bot_env_vars, "THREADBRIDGE_MCP_SERVERS": str(path)}


@pytest.fixture
async def mcp_bot(slack: SlackEmulator, mcp_env: dict[str, str]) -> AsyncIterator[BotUnderTest]:
    running = await start_in_process(slack, mcp_env)
    try:
        yield running
    finally:
        await stop(running)


def _approval_message(slack: SlackEmulator, ts: str) -> dict[str, Any]:
    for message in slack.bot_messages(CHANNEL, ts):
        if any(
            b.get("type") == "actions" and b.get("block_id") == "mcp" for b in message.get("blocks") or []
        ):
            return message
    raise AssertionError("no approval message")


async def _asked(bot: BotUnderTest, slack: SlackEmulator) -> tuple[str, dict[str, Any]]:
    ts = await bot.say(CHANNEL, ASK)
    await bot.replies(CHANNEL, ts, 2)
    return ts, _approval_message(slack, ts)


async def click(bot: BotUnderTest, message: dict[str, Any], *, approve: bool, user: str = "U0ALICE") -> None:
    """Slack posts the button press as a signed block_actions form body."""
    [buttons] = [b for b in message["blocks"] if b.get("type") == "actions"]
    action_id = "threadbridge_mcp_approve" if approve else "threadbridge_mcp_deny"
    [button] = [e for e in buttons["elements"] if e["action_id"] == action_id]
    payload = {
        "type": "block_actions",
        "team": {"id": "T0TEAM", "domain": "emulated"},
        "user": {"id": user, "team_id": "T0TEAM"},
        "api_app_id": "A0APP",
        "channel": {"id": CHANNEL},
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": CHANNEL},
        "message": {"ts": message["ts"], "thread_ts": message["thread_ts"], "text": message.get("text", "")},
        "actions": [{**button, "block_id": "mcp", "action_ts": "1700000099.000001"}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    headers = {**bot.events.signed_headers(body), "Content-Type": "application/x-www-form-urlencoded"}
    async with aiohttp.ClientSession() as http, http.post(bot.events.url, data=body, headers=headers) as resp:
        assert resp.status == 200


def _updated_text(slack: SlackEmulator, ts: str) -> str:
    return " ".join(json.dumps(c.get("blocks")) for c in slack.calls_to("chat.update") if c["ts"] == ts)


async def test_an_mcp_tool_needing_approval_runs_once_the_asker_approves(
    mcp_bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    ts, asked = await _asked(mcp_bot, slack)
    offered = json.loads(model_inputs(openai_emu)[0])["tools"]
    github = next(t for t in offered if t.get("server_label") == "github")
    assert github == {
        "type": "mcp",
        "server_label": "github",
        "server_url": "https://mcp.example.com/github",
        "require_approval": "always",
        "allowed_tools": ["get_issue"],
        "server_description": "Our issues",
        "headers": {"Authorization": "Bearer ghp-secret"},
    }
    assert "get_issue" in asked["text"] and "github" in asked["text"]
    assert '\\"n\\": 7' in json.dumps(asked["blocks"])
    [answer] = [m for m in slack.bot_messages(CHANNEL, ts) if m["ts"] != asked["ts"]]
    assert "Waiting for approval" in answer["text"]

    await click(mcp_bot, asked, approve=True)
    replies = await mcp_bot.replies(CHANNEL, ts, 3)
    assert 'mcp get_issue said: get_issue ran with {"n": 7}' in replies[-1]["text"]
    sent = json.loads(model_inputs(openai_emu)[-1])["input"]
    assert sent == [
        {
            "type": "mcp_approval_response",
            "approval_request_id": sent[0]["approval_request_id"],
            "approve": True,
        }
    ]
    decided = _updated_text(slack, asked["ts"])
    assert "Approved by <@U0ALICE>" in decided and "threadbridge_mcp_approve" not in decided
    tasks = [
        (c["title"], c["status"])
        for call in slack.calls_to("chat.appendStream") + slack.calls_to("chat.startStream")
        for c in call.get("chunks") or []
        if c["type"] == "task_update"
    ]
    assert ("Calling get_issue on github", "complete") in tasks
    assert ("Listing the tools of github", "complete") in tasks


async def test_a_denied_mcp_tool_is_not_run(
    mcp_bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    ts, asked = await _asked(mcp_bot, slack)
    await click(mcp_bot, asked, approve=False)
    replies = await mcp_bot.replies(CHANNEL, ts, 3)
    assert "not approved" in replies[-1]["text"]
    assert json.loads(model_inputs(openai_emu)[-1])["input"][0]["approve"] is False
    assert "Denied by <@U0ALICE>" in _updated_text(slack, asked["ts"])


async def test_only_the_asker_can_approve(
    mcp_bot: BotUnderTest, slack: SlackEmulator, openai_emu: OpenAIEmulator
) -> None:
    ts, asked = await _asked(mcp_bot, slack)
    await click(mcp_bot, asked, approve=True, user="U0BOB")
    [told] = await slack.wait_for(lambda: slack.calls_to("chat.postEphemeral"), what="the refusal")
    assert told["user"] == "U0BOB" and "Only <@U0ALICE>" in told["text"]
    assert len(model_inputs(openai_emu)) == 1 and _updated_text(slack, asked["ts"]) == ""
    # The asker still can.
    await click(mcp_bot, asked, approve=True)
    replies = await mcp_bot.replies(CHANNEL, ts, 3)
    assert "mcp get_issue said" in replies[-1]["text"]
    # A second click on a decided request changes nothing.
    await click(mcp_bot, asked, approve=False)
    await slack.wait_for(lambda: len(slack.calls_to("chat.postEphemeral")) == 2, what="the late-click note")
    assert len(model_inputs(openai_emu)) == 2


async def test_an_approval_survives_a_bot_restart_between_request_and_click(
    slack: SlackEmulator, mcp_env: dict[str, str]
) -> None:
    first = await start_in_process(slack, mcp_env)
    try:
        ts, asked = await _asked(first, slack)
    finally:
        await stop(first)
    second = await start_in_process(slack, mcp_env)
    try:
        await click(second, asked, approve=True)
        replies = await second.replies(CHANNEL, ts, 3)
    finally:
        await stop(second)
    assert "mcp get_issue said" in replies[-1]["text"]


async def test_an_unanswered_approval_expires_with_a_note(
    slack: SlackEmulator, mcp_env: dict[str, str], openai_emu: OpenAIEmulator
) -> None:
    running = await start_in_process(slack, {**mcp_env, "THREADBRIDGE_MCP_APPROVAL_TIMEOUT_SECONDS": "1"})
    try:
        ts, asked = await _asked(running, slack)
        replies = await running.replies(CHANNEL, ts, 3)
        assert "expired unanswered" in replies[-1]["text"]
        assert "Expired" in _updated_text(slack, asked["ts"])
        await click(running, asked, approve=True)
        await slack.wait_for(lambda: slack.calls_to("chat.postEphemeral"), what="the too-late note")
    finally:
        await stop(running)
    assert len(model_inputs(openai_emu)) == 1


async def test_a_failing_mcp_server_is_explained_in_the_thread(mcp_bot: BotUnderTest) -> None:
    ts = await mcp_bot.say(CHANNEL, f"{BOT} search the wiki #mcp:wiki.search {{}}")
    replies = await mcp_bot.replies(CHANNEL, ts, 2)
    assert "I could not reach wiki" in replies[0]["text"]
    assert "A tool server failed" in replies[1]["text"] and "wiki" in replies[1]["text"]


async def test_a_configured_approver_may_decide_for_the_asker(
    slack: SlackEmulator, mcp_env: dict[str, str]
) -> None:
    running = await start_in_process(slack, {**mcp_env, "THREADBRIDGE_MCP_APPROVERS": "U0CAROL,U0BOB"})
    try:
        ts, asked = await _asked(running, slack)
        await click(running, asked, approve=True, user="U0BOB")
        replies = await running.replies(CHANNEL, ts, 3)
    finally:
        await stop(running)
    assert "mcp get_issue said" in replies[-1]["text"]
    assert "Approved by <@U0BOB>" in _updated_text(slack, asked["ts"])
