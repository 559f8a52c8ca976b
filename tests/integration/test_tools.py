"""Function tools from plugin modules, through the one tool loop, on both backends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator
from tests.harness import BotUnderTest, model_inputs, start_in_process, stop
from tests.plugins.misbehaving import RELEASE, SECRET_ERROR

BOT = "<@U0BOT>"
CHANNEL = "C0GENERAL"
MODULES = "examples.tools,tests.plugins.misbehaving"


@pytest.fixture
async def tool_bot(slack: SlackEmulator, bot_env_vars: dict[str, str]) -> AsyncIterator[BotUnderTest]:
    env = {**bot_env_vars, "THREADBRIDGE_TOOLS": MODULES, "THREADBRIDGE_TOOL_TIMEOUT_SECONDS": "3"}
    running = await start_in_process(slack, env)
    try:
        yield running
    finally:
        await stop(running)


def offered(openai_emu: OpenAIEmulator) -> dict[str, dict[str, Any]]:
    """The function tools of the first model request, by name, in the Responses shape."""
    body = json.loads(model_inputs(openai_emu)[0])
    tools = body.get("tools") or body["run"]["tools"]
    flat = [t.get("function", t) for t in tools if t["type"] == "function"]
    return {t["name"]: t for t in flat}


def tool_said(reply: dict[str, Any], name: str) -> str:
    text = reply.get("text") or ""
    marker = f"tool {name} said: "
    assert marker in text, text
    return text.split(marker, 1)[1]


async def test_a_tool_is_offered_with_its_schema_and_called_with_validated_arguments(
    tool_bot: BotUnderTest, openai_emu: OpenAIEmulator
) -> None:
    ts = await tool_bot.say(CHANNEL, f'{BOT} add them #tool:add {{"a": 2, "b": "40"}}')
    [reply] = await tool_bot.replies(CHANNEL, ts, 1)
    assert tool_said(reply, "add").startswith("42")
    add = offered(openai_emu)["add"]
    assert add["description"] == "Add two whole numbers."
    assert add["parameters"]["properties"] == {
        "a": {"title": "A", "type": "integer"},
        "b": {"title": "B", "type": "integer"},
    }
    assert add["parameters"]["required"] == ["a", "b"]
    assert add["parameters"]["additionalProperties"] is False
    # The context parameter is the bot's to fill, never the model's.
    assert offered(openai_emu)["whoami"]["parameters"]["properties"] == {}
    assert offered(openai_emu)["shout"]["description"].startswith("Repeat the text")


async def test_bad_arguments_become_an_error_output_and_the_turn_completes(
    tool_bot: BotUnderTest,
) -> None:
    ts = await tool_bot.say(CHANNEL, f'{BOT} #tool:add {{"a": "two", "c": 1}}')
    [reply] = await tool_bot.replies(CHANNEL, ts, 1)
    said = tool_said(reply, "add")
    assert "invalid arguments" in said and "a:" in said and "b: Field required" in said
    assert "c: Extra inputs are not permitted" in said
    assert "⚠️" not in reply["text"]


async def test_a_raising_tool_gives_an_error_output_and_the_turn_completes(
    tool_bot: BotUnderTest,
) -> None:
    ts = await tool_bot.say(CHANNEL, f"{BOT} #tool:explode {{}}")
    [reply] = await tool_bot.replies(CHANNEL, ts, 1)
    said = tool_said(reply, "explode")
    assert "RuntimeError" in said and SECRET_ERROR in said
    assert "⚠️" not in reply["text"]


async def test_a_hanging_tool_times_out_into_an_error_output(tool_bot: BotUnderTest) -> None:
    ts = await tool_bot.say(CHANNEL, f"{BOT} #tool:hang {{}}")
    [reply] = await tool_bot.replies(CHANNEL, ts, 1)
    assert "did not answer within 3 seconds" in tool_said(reply, "hang")


async def test_a_blocking_sync_tool_runs_off_the_event_loop(
    tool_bot: BotUnderTest, slack: SlackEmulator
) -> None:
    RELEASE.clear()
    slow = await tool_bot.say(CHANNEL, f"{BOT} #tool:block {{}}")
    await slack.wait_for(lambda: slack.calls_to("chat.startStream"), what="the blocking tool to start")
    try:
        # Were the tool run on the event loop, nothing else could answer while it blocks.
        quick = await tool_bot.say(CHANNEL, f"{BOT} hello there")
        [quick_reply] = await tool_bot.replies(CHANNEL, quick, 1)
        assert "echo: Alice: hello there" in quick_reply["text"]
        assert tool_bot.slack.bot_messages(CHANNEL, slow)[0].get("streaming"), "the slow turn is still on"
    finally:
        RELEASE.set()
    [slow_reply] = await tool_bot.replies(CHANNEL, slow, 1)
    assert tool_said(slow_reply, "block").startswith("done")


async def test_a_tool_learns_who_asked_and_reads_the_thread(
    tool_bot: BotUnderTest, slack: SlackEmulator
) -> None:
    root = slack.add_message(CHANNEL, user="U0BOB", text="who is around?")
    await tool_bot.say(CHANNEL, f"{BOT} #tool:whoami {{}}", thread_ts=root)
    [reply] = await tool_bot.replies(CHANNEL, root, 1)
    said = tool_said(reply, "whoami")
    assert f'"thread": "{root}"' in said and '"user": "U0ALICE"' in said and '"name": "Alice"' in said
    await tool_bot.say(CHANNEL, "#tool:thread_participants {}", thread_ts=root)
    replies = await tool_bot.replies(CHANNEL, root, 2)
    assert tool_said(replies[1], "thread_participants").startswith('["Bob", "Alice"]')


async def test_a_huge_tool_output_is_cut_to_the_documented_size(
    tool_bot: BotUnderTest, openai_emu: OpenAIEmulator
) -> None:
    ts = await tool_bot.say(CHANNEL, f'{BOT} #tool:shout {{"text": "ab"}}')
    await tool_bot.replies(CHANNEL, ts, 1, timeout=30)
    bodies = [r.json for r in openai_emu.requests if r.method == "POST" and r.json]
    # Responses: function_call_output input items; Assistants: submit_tool_outputs.
    items = [i for b in bodies for i in [*_list(b.get("input")), *_list(b.get("tool_outputs"))]]
    outputs = [i["output"] for i in items if isinstance(i, dict) and "output" in i]
    [output] = outputs
    assert len(output) == 16_000 and output.endswith("more characters]")


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


async def test_tool_calls_show_as_tasks_that_end_complete_or_error(
    tool_bot: BotUnderTest, slack: SlackEmulator
) -> None:
    ok = await tool_bot.say(CHANNEL, f'{BOT} #tool:current_time {{"tz": "Europe/Berlin"}}')
    await tool_bot.replies(CHANNEL, ok, 1)
    bad = await tool_bot.say(CHANNEL, f'{BOT} #tool:current_time {{"tz": "Mars/Olympus"}}')
    [reply] = await tool_bot.replies(CHANNEL, bad, 1)
    assert "unknown time zone" in tool_said(reply, "current_time")
    starts = slack.calls_to("chat.startStream")
    assert all(s.get("task_display_mode") == "timeline" for s in starts)
    chunks = [
        c
        for call in [*starts, *slack.calls_to("chat.appendStream"), *slack.calls_to("chat.stopStream")]
        for c in call.get("chunks") or []
        if c["type"] == "task_update"
    ]
    by_task: dict[str, list[str]] = {}
    for chunk in chunks:
        assert chunk["title"] == "Using current_time"
        by_task.setdefault(chunk["id"], []).append(chunk["status"])
    assert sorted(by_task.values()) == [["in_progress", "complete"], ["in_progress", "error"]]


async def test_without_native_streaming_a_tool_shows_on_the_status_line(
    slack: SlackEmulator, bot_env_vars: dict[str, str]
) -> None:
    env = {**bot_env_vars, "THREADBRIDGE_TOOLS": MODULES, "THREADBRIDGE_SLACK_STREAMING": "false"}
    running = await start_in_process(slack, env)
    try:
        ts = await running.say(CHANNEL, f"{BOT} #tool:current_time {{}}")
        # The placeholder message is updated in place: wait for the finished answer.
        await slack.wait_for(
            lambda: [m for m in slack.bot_messages(CHANNEL, ts) if "current_time said: 20" in m["text"]],
            what="the tool's answer",
        )
    finally:
        await stop(running)
    assert "using current_time…" in [c["status"] for c in slack.calls_to("assistant.threads.setStatus")]
    assert not slack.calls_to("chat.startStream")


async def test_web_search_sources_are_numbered_links_limited_to_the_allowed_domains(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, bot_env_vars: dict[str, str], backend_name: str
) -> None:
    if backend_name != "responses":
        pytest.skip("web search is a hosted tool of the Responses API")
    env = {
        **bot_env_vars,
        "THREADBRIDGE_WEB_SEARCH": "true",
        "THREADBRIDGE_WEB_SEARCH_DOMAINS": "example.com",
    }
    running = await start_in_process(slack, env)
    try:
        ts = await running.say(CHANNEL, f"{BOT} what is new? #web")
        [reply] = await running.replies(CHANNEL, ts, 1)
    finally:
        await stop(running)
    [search] = [t for t in json.loads(model_inputs(openai_emu)[0])["tools"] if t["type"] == "web_search"]
    assert search == {"type": "web_search", "filters": {"allowed_domains": ["example.com"]}}
    assert "From the web: The Example Guide" in reply["text"]
    assert "[1] [The Example Guide](https://docs.example.com/guide)" in reply["text"]
    assert "news.example.org" not in reply["text"]
    tasks = [
        (c["title"], c["status"])
        for call in slack.calls_to("chat.appendStream") + slack.calls_to("chat.startStream")
        for c in call.get("chunks") or []
        if c["type"] == "task_update"
    ]
    assert ("Searching the web", "complete") in tasks
