"""AssistantsBackend against the emulator's Assistants v2 API, through the real SDK."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import openai
import pytest

from bot.assistant import assistants as assistants_module
from bot.assistant import runner as runner_module
from bot.assistant.assistants import AssistantsBackend, create_assistant
from bot.assistant.base import (
    Attached,
    BackendError,
    Binding,
    Citation,
    Completed,
    ConversationBusy,
    ConversationGone,
    Failed,
    OutputFile,
    RunEvent,
    RunRequest,
    Status,
    TextDelta,
    ToolCall,
)
from bot.assistant.errors import RETRY_LATER
from bot.attachments import LocalFile
from bot.inbound import Inbound, ThreadKey
from bot.tools import FunctionTool, ToolSet
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.openai.script import tiny_png
from tests.harness import ROOT

# The tests drive the deprecated Assistants API directly to set up server-side situations.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MODEL = "gpt-4.1-mini"
INSTRUCTIONS = "Be brief."
KEY = ThreadKey("T0TEAM", "C0CHAN", "1700000000.000100")
HANDBOOK = b"Vacation policy: every employee gets 25 days per year.\nSick leave is unlimited.\n"


@pytest.fixture
async def assistant_id(client: openai.AsyncOpenAI) -> str:
    return await create_assistant(client, model=MODEL, instructions=INSTRUCTIONS, code_interpreter=True)


@pytest.fixture
def backend(client: openai.AsyncOpenAI, assistant_id: str) -> AssistantsBackend:
    return AssistantsBackend(
        client, assistant_id=assistant_id, instructions=INSTRUCTIONS, code_interpreter=True, busy_wait_s=10
    )


@pytest.fixture
async def binding(backend: AssistantsBackend) -> Binding:
    return await backend.open(KEY, {"slack_thread_ts": KEY.thread_ts})


def message(
    text: str, ts: str = "1700000001.000100", user: str = "U0ALICE", speaker: str = "Alice"
) -> Inbound:
    return Inbound(KEY, ts, user, text, "thread_reply", speaker=speaker)


def request(*inputs: Inbound | str, tools: ToolSet | None = None, **extra: Any) -> RunRequest:
    messages = tuple(m if isinstance(m, Inbound) else message(m) for m in inputs)
    return RunRequest(inputs=messages, tools=tools or ToolSet(file_search=True), **extra)


async def collect(backend: AssistantsBackend, binding: Binding, req: RunRequest) -> list[RunEvent]:
    return [event async for event in backend.run(binding, req)]


def streamed(events: list[RunEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def final(events: list[RunEvent]) -> RunEvent:
    assert events, "no events"
    return events[-1]


def runs_of(emu: OpenAIEmulator, binding: Binding) -> list[Any]:
    return list(emu.threads[binding.conversation_id].runs.values())


async def stalled_run(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI, thread_id: str, assistant_id: str
) -> str:
    """A run left active on the thread, as a worker that died mid-turn would leave it."""
    await client.beta.threads.messages.create(thread_id, role="user", content="Zed: long job #stall")
    run = await client.beta.threads.runs.create(thread_id, assistant_id=assistant_id)
    await emu.wait_for(lambda: emu.stalled == 1, what="the orphaned run to stall")
    return run.id


# ----------------------------------------------------------------------------- conversations


async def test_open_binds_a_thread_and_context_is_kept_across_runs(
    emu: OpenAIEmulator, backend: AssistantsBackend, binding: Binding
) -> None:
    assert binding.backend == "assistants" and binding.conversation_id.startswith("thread_")
    assert emu.threads[binding.conversation_id].metadata == {"slack_thread_ts": KEY.thread_ts}

    first = await collect(backend, binding, request("hello"))
    assert final(first) == Completed("echo: Alice: hello [user messages: 1]")
    assert streamed(first) == "echo: Alice: hello [user messages: 1]"

    second = await collect(backend, binding, request(message("again", ts="2.0", user="U0BOB", speaker="Bob")))
    assert final(second) == Completed("echo: Bob: again [user messages: 2]")
    user_messages = [m for m in emu.threads[binding.conversation_id].messages if m["role"] == "user"]
    assert [m["metadata"] for m in user_messages] == [
        {"slack_ts": "1700000001.000100", "slack_user": "U0ALICE"},
        {"slack_ts": "2.0", "slack_user": "U0BOB"},
    ]


async def test_each_pending_message_is_its_own_message(
    emu: OpenAIEmulator, backend: AssistantsBackend, binding: Binding
) -> None:
    req = request(message("a", ts="1.0"), message("b", ts="2.0", user="U0BOB", speaker="Bob"))
    events = await collect(backend, binding, req)
    assert final(events) == Completed("echo: Alice: a | Bob: b [user messages: 2]")
    assert emu.user_texts(binding.conversation_id) == ["Alice: a", "Bob: b"]
    [run] = emu.requests_to("POST", "/v1/threads/*/runs")
    assert run.json is not None and run.json["stream"] is True


async def test_seed_is_one_context_message_before_the_users(
    emu: OpenAIEmulator, backend: AssistantsBackend, binding: Binding
) -> None:
    seed = ("Bob: the deploy failed with exit 137", "Alice: probably OOM again")
    events = await collect(backend, binding, request("summarise this", seed=seed))
    assert final(events) == Completed("echo: Alice: summarise this [user messages: 1]")
    context, question = emu.threads[binding.conversation_id].messages[:2]
    assert context["role"] == "assistant"
    assert context["content"][0]["text"]["value"] == (
        "Earlier messages in this Slack thread, before you were added:\n"
        "Bob: the deploy failed with exit 137\nAlice: probably OOM again"
    )
    assert question["role"] == "user"


async def test_instructions_are_added_only_when_the_assistant_lacks_them(
    emu: OpenAIEmulator,
    client: openai.AsyncOpenAI,
    backend: AssistantsBackend,
    binding: Binding,
    assistant_id: str,
) -> None:
    await collect(backend, binding, request("same"))
    other = AssistantsBackend(client, assistant_id=assistant_id, instructions="Speakers are named.")
    await collect(other, binding, request(message("different", ts="3.0")))
    first, second = (r.json or {} for r in emu.requests_to("POST", "/v1/threads/*/runs"))
    assert "additional_instructions" not in first
    assert second["additional_instructions"] == "Speakers are named."
    assert first["assistant_id"] == assistant_id
    assert [t["type"] for t in first["tools"]] == ["file_search"]


async def test_a_retried_turn_does_not_repeat_its_messages(
    emu: OpenAIEmulator, backend: AssistantsBackend, binding: Binding
) -> None:
    emu.fail_next("POST", "/v1/threads/*/runs", status=500)
    with pytest.raises(BackendError) as err:
        await collect(backend, binding, request("once"))
    assert err.value.retryable
    # The message stays in the thread even though no run answered it.
    assert emu.user_texts(binding.conversation_id) == ["Alice: once"]
    events = await collect(backend, binding, request("once"))
    assert final(events) == Completed("echo: Alice: once [user messages: 1]")
    assert emu.user_texts(binding.conversation_id) == ["Alice: once"]


# ----------------------------------------------------------------------------- tools


def recording_tool(calls: list[dict[str, Any]]) -> ToolSet:
    async def lookup(**args: Any) -> str:
        calls.append(args)
        return json.dumps({"found": args.get("q")})

    tools = ToolSet()
    tools.add(FunctionTool("lookup", "Look something up.", {"type": "object", "properties": {}}, lookup))
    return tools


async def test_function_calls_are_run_and_answered(
    emu: OpenAIEmulator, backend: AssistantsBackend, binding: Binding
) -> None:
    calls: list[dict[str, Any]] = []
    events = await collect(
        backend, binding, request('look it up #tool:lookup {"q": 7}', tools=recording_tool(calls))
    )
    assert calls == [{"q": 7}]
    assert Status("calling lookup…") in events
    assert [(e.name, e.status) for e in events if isinstance(e, ToolCall)] == [
        ("lookup", "in_progress"),
        ("lookup", "complete"),
    ]
    assert final(events) == Completed('tool lookup said: {"found": 7}')
    [submit] = emu.requests_to("POST", "/v1/threads/*/runs/*/submit_tool_outputs")
    assert submit.json is not None and submit.json["stream"] is True
    [sent] = [r for r in emu.requests_to("POST", "/v1/threads/*/runs") if r.path.endswith("/runs")]
    assert sent.json is not None
    assert sent.json["tools"][0] == {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look something up.",
            "parameters": {"type": "object", "properties": {}},
        },
    }
    assert [r.status for r in runs_of(emu, binding)] == ["completed"]


async def test_tool_rounds_are_bounded_and_the_run_is_cancelled(
    emu: OpenAIEmulator, backend: AssistantsBackend, binding: Binding, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "MAX_TOOL_ROUNDS", 1)
    events = await collect(backend, binding, request("#tool:lookup {}", tools=recording_tool([])))
    assert final(events) == Failed(
        "The assistant kept calling tools without answering.", retryable=False, kept=True
    )
    assert [r.status for r in runs_of(emu, binding)] == ["cancelled"]
    # Nothing is left blocking the thread.
    monkeypatch.setattr(runner_module, "MAX_TOOL_ROUNDS", 8)
    assert isinstance(final(await collect(backend, binding, request(message("next", ts="5.0")))), Completed)


# ----------------------------------------------------------------------------- files


def local(name: str, content: bytes, mimetype: str) -> LocalFile:
    return LocalFile(name, mimetype, content, slack_file_id=f"F_{name}")


async def test_documents_are_searchable_and_cited_without_markers(
    emu: OpenAIEmulator, backend: AssistantsBackend, binding: Binding
) -> None:
    same, [doc] = await backend.attach(binding, [local("handbook.md", HANDBOOK, "text/markdown")])
    assert same == binding
    assert doc.usage == "file_search" and doc.error == "" and emu.files[doc.remote_id].purpose == "assistants"
    await collect(backend, binding, request("here is our handbook", attached=(doc,)))
    events = await collect(backend, binding, request(message("how many vacation days?", ts="2.0")))
    assert Status("searching files…") in events
    assert [e for e in events if isinstance(e, Citation)] == [Citation("handbook.md", doc.remote_id)]
    text = streamed(events)
    assert "From handbook.md: Vacation policy: every employee gets 25 days per year." in text
    assert "【" not in text and "】" not in text
    assert final(events) == Completed(text)


async def test_a_marker_split_across_deltas_is_still_dropped() -> None:
    markers = assistants_module._Markers()
    pieces = ["See this", " 【4:0", "†hand", "book.md】 and 【 that", ""]
    out = "".join(markers.feed(p) for p in pieces) + markers.flush()
    assert out == "See this  and 【 that"


async def test_code_interpreter_chart_becomes_one_output_image(
    emu: OpenAIEmulator, backend: AssistantsBackend, binding: Binding
) -> None:
    _, [data] = await backend.attach(binding, [local("sales.csv", b"month,total\njan,10\n", "text/csv")])
    assert data.usage == "code_interpreter"
    tools = ToolSet(file_search=True, code_interpreter=True)
    events = await collect(backend, binding, request("chart the sales #chart", attached=(data,), tools=tools))
    assert Status("running code…") in events
    outputs = [e for e in events if isinstance(e, OutputFile)]
    assert outputs == [OutputFile("chart.png", tiny_png(), "image/png")]
    assert "Here is the chart from sales.csv" in streamed(events)
    assert isinstance(final(events), Completed)
    [sent] = [r.json for r in emu.requests_to("POST", "/v1/threads/*/messages")]
    assert sent is not None and sent["attachments"] == [
        {"file_id": data.remote_id, "tools": [{"type": "code_interpreter"}]}
    ]


async def test_images_are_vision_inputs_on_the_last_message(
    emu: OpenAIEmulator, backend: AssistantsBackend, binding: Binding
) -> None:
    _, [image] = await backend.attach(binding, [local("shot.png", tiny_png(), "image/png")])
    assert image.usage == "vision" and emu.files[image.remote_id].purpose == "vision"
    events = await collect(
        backend, binding, request(message("a", ts="1.0"), message("what is it?", ts="2.0"), attached=(image,))
    )
    assert final(events) == Completed("echo: Alice: a | Alice: what is it? [user messages: 2] [images: 1]")


async def test_data_files_are_refused_without_the_code_interpreter(
    client: openai.AsyncOpenAI, assistant_id: str, binding: Binding
) -> None:
    plain = AssistantsBackend(client, assistant_id=assistant_id)
    _, [refused] = await plain.attach(binding, [local("sales.csv", b"a,b\n", "text/csv")])
    assert refused == Attached("sales.csv", "", "none", error=assistants_module.NO_CODE_INTERPRETER)


async def test_upload_failure_is_reported_per_file(
    emu: OpenAIEmulator, backend: AssistantsBackend, binding: Binding
) -> None:
    emu.fail_next("POST", "/v1/files", status=400, message="bad file")
    _, attached = await backend.attach(
        binding, [local("a.md", b"x", "text/markdown"), local("b.md", b"y", "text/markdown")]
    )
    assert [a.error != "" for a in attached] == [True, False]


async def test_forget_file_removes_it_and_ignores_a_missing_one(
    emu: OpenAIEmulator, backend: AssistantsBackend, binding: Binding
) -> None:
    _, [doc] = await backend.attach(binding, [local("handbook.md", HANDBOOK, "text/markdown")])
    await collect(backend, binding, request("keep this", attached=(doc,)))
    [store] = emu.threads[binding.conversation_id].vector_store_ids
    assert doc.remote_id in emu.vector_stores[store].files
    await backend.forget_file(binding, doc.remote_id)
    assert doc.remote_id not in emu.files and doc.remote_id not in emu.vector_stores[store].files
    await backend.forget_file(binding, doc.remote_id)


# ----------------------------------------------------------------------------- failures


async def test_model_failure_is_a_failed_event_and_the_message_is_kept(
    emu: OpenAIEmulator, backend: AssistantsBackend, binding: Binding
) -> None:
    events = await collect(backend, binding, request("please #fail"))
    assert final(events) == Failed("The assistant could not finish its answer.", kept=True)
    after = await collect(backend, binding, request(message("again", ts="2.0")))
    assert final(after) == Completed("echo: Alice: again [user messages: 2]")


@pytest.mark.parametrize(
    ("shape", "expected"),
    [("flat", "The assistant service reported an error mid-answer."), ("nested", RETRY_LATER)],
)
async def test_stream_errors_are_failed_events(
    emu: OpenAIEmulator, backend: AssistantsBackend, binding: Binding, shape: str, expected: str
) -> None:
    emu.stream_error_shape = shape  # type: ignore[assignment]
    events = await collect(backend, binding, request("go on #stream-error"))
    assert streamed(events), "the deltas before the break were passed on"
    assert final(events) == Failed(expected, kept=True)
    assert isinstance(final(await collect(backend, binding, request(message("next", ts="2.0")))), Completed)


@pytest.mark.parametrize(
    ("ending", "expected"),
    [
        ("expired", "The assistant took too long and its run expired."),
        ("cancelled", "The assistant's run was cancelled before it answered."),
    ],
)
async def test_expired_and_cancelled_runs_are_failed_events(
    emu: OpenAIEmulator,
    client: openai.AsyncOpenAI,
    backend: AssistantsBackend,
    binding: Binding,
    ending: str,
    expected: str,
) -> None:
    running = asyncio.create_task(collect(backend, binding, request("wait #stall")))
    await emu.wait_for(lambda: emu.stalled == 1, what="the run to stall")
    [run] = runs_of(emu, binding)
    if ending == "expired":
        run.expire()
    else:
        await client.beta.threads.runs.cancel(run.id, thread_id=binding.conversation_id)
    assert final(await running) == Failed(expected, kept=True)


async def test_an_abandoned_turn_cancels_its_run(
    emu: OpenAIEmulator, backend: AssistantsBackend, binding: Binding
) -> None:
    running = asyncio.create_task(collect(backend, binding, request("wait #stall")))
    await emu.wait_for(lambda: emu.stalled == 1, what="the run to stall")
    running.cancel()  # what the Turn's timeout does
    with pytest.raises(asyncio.CancelledError):
        await running
    [run] = runs_of(emu, binding)
    assert run.status == "cancelled" and emu.stalled == 0


async def test_missing_thread_is_conversation_gone(
    emu: OpenAIEmulator, backend: AssistantsBackend, binding: Binding
) -> None:
    emu.threads.clear()
    with pytest.raises(ConversationGone):
        await collect(backend, binding, request("anyone?"))


async def test_missing_assistant_is_a_clear_error(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI, binding: Binding
) -> None:
    ghost = AssistantsBackend(client, assistant_id="asst_gone")
    with pytest.raises(BackendError) as err:
        await collect(ghost, binding, request("hi"))
    assert not isinstance(err.value, ConversationGone)
    assert err.value.user_message == assistants_module.MISSING_ASSISTANT


# ----------------------------------------------------------------------------- a thread busy with a run


async def test_an_active_run_is_waited_out_and_the_message_retried(
    emu: OpenAIEmulator,
    client: openai.AsyncOpenAI,
    backend: AssistantsBackend,
    binding: Binding,
    assistant_id: str,
) -> None:
    thread_id = binding.conversation_id
    orphan = await stalled_run(emu, client, thread_id, assistant_id)
    running = asyncio.create_task(collect(backend, binding, request("next")))
    await emu.wait_for(
        lambda: emu.requests_to("GET", f"/v1/threads/{thread_id}/runs/{orphan}"), what="the backend to poll"
    )
    assert [r.status for r in emu.requests_to("POST", f"/v1/threads/{thread_id}/messages")][-1] == 400
    assert not running.done()
    emu.release()
    events = await running
    assert final(events) == Completed("echo: Alice: next [user messages: 2]")
    assert emu.threads[thread_id].runs[orphan].status == "completed"
    [listed] = [
        r for r in emu.requests_to("GET", f"/v1/threads/{thread_id}/runs") if r.path.endswith("/runs")
    ]
    assert listed.query == {"limit": "1"}


async def test_a_stale_run_is_cancelled(
    emu: OpenAIEmulator,
    client: openai.AsyncOpenAI,
    backend: AssistantsBackend,
    binding: Binding,
    assistant_id: str,
) -> None:
    thread_id = binding.conversation_id
    orphan = await stalled_run(emu, client, thread_id, assistant_id)
    emu.threads[thread_id].runs[orphan].created_at -= 3600  # older than any Turn may last
    events = await collect(backend, binding, request("next"))
    assert final(events) == Completed("echo: Alice: next [user messages: 2]")
    assert emu.threads[thread_id].runs[orphan].status == "cancelled"


async def test_a_run_waiting_for_tool_outputs_nobody_will_send_is_cancelled(
    emu: OpenAIEmulator,
    client: openai.AsyncOpenAI,
    backend: AssistantsBackend,
    binding: Binding,
    assistant_id: str,
) -> None:
    thread_id = binding.conversation_id
    await client.beta.threads.messages.create(thread_id, role="user", content="#tool:lookup {}")
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    orphan = await client.beta.threads.runs.create(thread_id, assistant_id=assistant_id, tools=[tool])  # type: ignore[list-item]
    await emu.wait_for(lambda: emu.threads[thread_id].runs[orphan.id].status == "requires_action")
    events = await collect(backend, binding, request("next"))
    assert isinstance(final(events), Completed)
    assert emu.threads[thread_id].runs[orphan.id].status == "cancelled"


async def test_a_thread_that_stays_busy_is_conversation_busy(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI, binding: Binding, assistant_id: str
) -> None:
    impatient = AssistantsBackend(client, assistant_id=assistant_id, busy_wait_s=0.3)
    await stalled_run(emu, client, binding.conversation_id, assistant_id)
    with pytest.raises(ConversationBusy) as err:
        await collect(impatient, binding, request("next"))
    assert err.value.retryable and "busy" in err.value.user_message
    assert emu.user_texts(binding.conversation_id) == ["Zed: long job #stall"]


# ------------------------------------------------------------------ thread lifecycle, check, create


async def test_annotate_and_close(emu: OpenAIEmulator, backend: AssistantsBackend, binding: Binding) -> None:
    await backend.annotate(binding, {"topic": "deploys"})
    assert emu.threads[binding.conversation_id].metadata == {"topic": "deploys"}
    await backend.close(binding)
    assert binding.conversation_id not in emu.threads
    await backend.close(binding)  # already gone: nothing to do


async def test_check_reports_a_missing_assistant_and_an_unserved_model(
    emu: OpenAIEmulator, client: openai.AsyncOpenAI, backend: AssistantsBackend
) -> None:
    assert await backend.check() == []
    emu.models.remove(MODEL)
    [problem] = await backend.check()
    assert MODEL in problem and "not served" in problem
    [missing] = await AssistantsBackend(client, assistant_id="asst_nope").check()
    assert "asst_nope" in missing and "threadbridge assistant create" in missing


async def test_create_assistant(emu: OpenAIEmulator, client: openai.AsyncOpenAI) -> None:
    plain = await create_assistant(client, model=MODEL, instructions="Hi.", code_interpreter=False)
    assert emu.assistants[plain].instructions == "Hi."
    assert [t["type"] for t in emu.assistants[plain].tools] == ["file_search"]
    with pytest.raises(BackendError, match="400"):
        await create_assistant(client, model="no-such-model", instructions="", code_interpreter=False)


async def test_cli_creates_an_assistant_without_slack_settings(emu: OpenAIEmulator, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "THREADBRIDGE_"))}
    env.update(
        OPENAI_API_KEY=emu.api_key,
        OPENAI_BASE_URL=emu.base_url,
        OPENAI_MODEL=MODEL,
        THREADBRIDGE_INSTRUCTIONS="Answer in haiku.",
        THREADBRIDGE_CODE_INTERPRETER="true",
        PYTHONPATH=str(ROOT),
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "assistant",
        "create",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    [created] = emu.assistants.values()
    assert out.decode().strip() == created.id
    assert created.instructions == "Answer in haiku." and created.model == MODEL
    assert [t["type"] for t in created.tools] == ["file_search", "code_interpreter"]
