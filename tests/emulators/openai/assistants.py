"""/v1/assistants and /v1/threads (messages, runs): Assistants v2 over the scripted model.

A run renders the same `script.plan_reply` plans as `/v1/responses`, as Assistants stream
events (`thread.run.*`, `thread.run.step.*`, `thread.message.*`, `error`, then `done`).
As on the real API, a run lives on the server, not in the HTTP request that started it:
its events are produced by a task of its own, so a client that hangs up mid-stream leaves
the run active (a stalled one until `release()`), and the thread refuses new messages and
runs until it ends, is cancelled (POST …/cancel) or expires (`Run.expire()`, or once
`expires_at` has passed).
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import script
from .conversations import _metadata
from .errors import ApiError
from .pages import list_page
from .sse import EventStream, encode
from .state import REQUEST_ID, Assistant, StoredFile, Thread, VectorStore, VectorStoreFileState, new_id, now

if TYPE_CHECKING:
    from .emulator import OpenAIEmulator

ACTIVE = frozenset({"queued", "in_progress", "requires_action", "cancelling"})
RUN_TTL_S = 600  # a run not finished within 10 minutes expires
BETA_MESSAGE = (
    "You must provide the 'OpenAI-Beta' header to access the Assistants API. Please try again by "
    "setting the header 'OpenAI-Beta: assistants=v2'."
)
TOOL_TYPES = ("function", "file_search", "code_interpreter")

Event = tuple[str, dict[str, Any] | str]


def routes(emu: OpenAIEmulator) -> list[web.RouteDef]:
    def v2(handler: Any) -> Any:
        async def checked(request: web.Request) -> web.StreamResponse:
            if "assistants=v2" not in request.headers.get("OpenAI-Beta", ""):
                raise ApiError(400, BETA_MESSAGE, code="invalid_beta")
            return await handler(request)

        return checked

    # ------------------------------------------------------------------ lookups

    def assistant(aid: str, param: str | None = None) -> Assistant:
        found = emu.assistants.get(aid)
        if found is None:
            raise ApiError(404, f"No assistant found with id '{aid}'.", param=param)
        return found

    def thread(request: web.Request) -> Thread:
        tid = request.match_info["thread_id"]
        found = emu.threads.get(tid)
        if found is None:
            raise ApiError(404, f"No thread found with id '{tid}'.")
        return found

    def run_of(request: web.Request) -> tuple[Thread, Run]:
        th = thread(request)
        rid = request.match_info["run_id"]
        found = th.runs.get(rid)
        if found is None:
            raise ApiError(404, f"No run found with id '{rid}'.")
        return th, found

    def model_of(raw: Any, param: str) -> str:
        if not isinstance(raw, str) or not raw:
            raise ApiError(
                400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
            )
        if raw not in emu.models:
            raise ApiError(
                400, f"The requested model '{raw}' does not exist.", param=param, code="model_not_found"
            )
        return raw

    # ------------------------------------------------------------------ assistants

    async def create_assistant(request: web.Request) -> web.Response:
        body = emu.body(request)
        created = Assistant(
            new_id("asst"),
            model=model_of(body.get("model"), "model"),
            name=body.get("name"),
            description=body.get("description"),
            instructions=body.get("instructions"),
            tools=normalize_tools(body.get("tools"), "tools"),
            tool_resources=dict(body.get("tool_resources") or {}),
            metadata=_metadata(body.get("metadata")),
        )
        emu.assistants[created.id] = created
        return web.json_response(created.to_json())

    async def list_assistants(request: web.Request) -> web.Response:
        return web.json_response(list_page([a.to_json() for a in emu.assistants.values()], request.query))

    async def retrieve_assistant(request: web.Request) -> web.Response:
        return web.json_response(assistant(request.match_info["assistant_id"]).to_json())

    async def update_assistant(request: web.Request) -> web.Response:
        found = assistant(request.match_info["assistant_id"])
        body = emu.body(request)
        if "model" in body:
            found.model = model_of(body["model"], "model")
        for name in ("name", "description", "instructions"):
            if name in body:
                setattr(found, name, body[name])
        if "tools" in body:
            found.tools = normalize_tools(body["tools"], "tools")
        if "metadata" in body:
            found.metadata = _metadata(body["metadata"])
        return web.json_response(found.to_json())

    async def delete_assistant(request: web.Request) -> web.Response:
        found = assistant(request.match_info["assistant_id"])
        del emu.assistants[found.id]
        return web.json_response({"id": found.id, "object": "assistant.deleted", "deleted": True})

    # ------------------------------------------------------------------ threads

    async def create_thread(request: web.Request) -> web.Response:
        body = emu.body(request)
        created = Thread(new_id("thread"), _metadata(body.get("metadata")))
        resources = body.get("tool_resources") or {}
        if isinstance(resources, dict):
            ci = resources.get("code_interpreter") or {}
            fs = resources.get("file_search") or {}
            created.code_interpreter_file_ids = list(ci.get("file_ids") or [])
            created.vector_store_ids = list(fs.get("vector_store_ids") or [])
        raw_messages = body.get("messages") or []
        if not isinstance(raw_messages, list):
            raise ApiError(400, "Invalid type for 'messages': expected an array.", param="messages")
        for index, raw in enumerate(raw_messages):
            add_message(emu, created, raw, f"messages[{index}]")
        emu.threads[created.id] = created
        return web.json_response(created.to_json())

    async def retrieve_thread(request: web.Request) -> web.Response:
        return web.json_response(thread(request).to_json())

    async def update_thread(request: web.Request) -> web.Response:
        found = thread(request)
        body = emu.body(request)
        if "metadata" in body:
            found.metadata = _metadata(body["metadata"])
        return web.json_response(found.to_json())

    async def delete_thread(request: web.Request) -> web.Response:
        found = thread(request)
        for run in found.runs.values():
            run.stop()
        del emu.threads[found.id]
        return web.json_response({"id": found.id, "object": "thread.deleted", "deleted": True})

    # ------------------------------------------------------------------ messages

    async def create_message(request: web.Request) -> web.Response:
        found = thread(request)
        active = found.active_run()
        if active is not None:
            raise ApiError(400, f"Can't add messages to {found.id} while a run {active.id} is active.")
        message = add_message(emu, found, emu.body(request), None)
        return web.json_response(message)

    async def list_messages(request: web.Request) -> web.Response:
        found = thread(request)
        messages = found.messages
        run_id = request.query.get("run_id")
        if run_id:
            messages = [m for m in messages if m.get("run_id") == run_id]
        return web.json_response(list_page(messages, request.query))

    async def retrieve_message(request: web.Request) -> web.Response:
        found = thread(request)
        mid = request.match_info["message_id"]
        for message in found.messages:
            if message["id"] == mid:
                return web.json_response(message)
        raise ApiError(404, f"No message found with id '{mid}'.")

    async def delete_message(request: web.Request) -> web.Response:
        found = thread(request)
        mid = request.match_info["message_id"]
        for index, message in enumerate(found.messages):
            if message["id"] == mid:
                del found.messages[index]
                if index < found.cursor:
                    found.cursor -= 1  # one fewer message already seen by a run
                return web.json_response({"id": mid, "object": "thread.message.deleted", "deleted": True})
        raise ApiError(404, f"No message found with id '{mid}'.")

    # ------------------------------------------------------------------ runs

    async def create_run(request: web.Request) -> web.StreamResponse:
        found = thread(request)
        body = emu.body(request)
        aid = body.get("assistant_id")
        if not isinstance(aid, str) or not aid:
            raise ApiError(
                400,
                "Missing required parameter: 'assistant_id'.",
                param="assistant_id",
                code="missing_required_parameter",
            )
        owner = assistant(aid, param="assistant_id")
        model = model_of(body["model"], "model") if body.get("model") else owner.model
        tools = normalize_tools(body["tools"], "tools") if body.get("tools") is not None else owner.tools
        active = found.active_run()
        if active is not None:
            raise ApiError(400, f"Thread {found.id} already has an active run {active.id}.")
        extra = body.get("additional_messages") or []
        if not isinstance(extra, list):
            raise ApiError(400, "Invalid type for 'additional_messages'.", param="additional_messages")
        for index, raw in enumerate(extra):
            add_message(emu, found, raw, f"additional_messages[{index}]")
        run = Run(emu, found, owner, body, model=model, tools=tools)
        found.runs[run.id] = run
        queue = run.start(results=[])
        emu.notify()
        if body.get("stream"):
            return await stream(request, queue)
        return web.json_response(run.to_json())

    async def list_runs(request: web.Request) -> web.Response:
        found = thread(request)
        return web.json_response(list_page([r.to_json() for r in found.runs.values()], request.query))

    async def retrieve_run(request: web.Request) -> web.Response:
        _, run = run_of(request)
        return web.json_response(run.to_json())

    async def cancel_run(request: web.Request) -> web.Response:
        _, run = run_of(request)
        if not run.active or run.status == "cancelling":
            raise ApiError(400, f"Cannot cancel run with status '{run.status}'.")
        answer = {**run.to_json(), "status": "cancelling"}
        run.finish("cancelled")
        return web.json_response(answer)

    async def submit_tool_outputs(request: web.Request) -> web.StreamResponse:
        _, run = run_of(request)
        body = emu.body(request)
        if run.status != "requires_action":
            raise ApiError(400, f'Runs in status "{run.status}" do not accept tool outputs.')
        outputs = body.get("tool_outputs")
        if not isinstance(outputs, list):
            raise ApiError(
                400,
                "Missing required parameter: 'tool_outputs'.",
                param="tool_outputs",
                code="missing_required_parameter",
            )
        given = {
            str(o.get("tool_call_id")): str(o.get("output") or "") for o in outputs if isinstance(o, dict)
        }
        expected = [call["id"] for call in run.pending_calls]
        if sorted(given) != sorted(expected):
            raise ApiError(400, f"Expected tool outputs for call_ids {expected}, got {sorted(given)}.")
        results = [script.ToolResult(call_id, given[call_id], current=True) for call_id in expected]
        queue = run.start(results=results)
        emu.notify()
        if body.get("stream"):
            return await stream(request, queue)
        return web.json_response(run.to_json())

    async def list_steps(request: web.Request) -> web.Response:
        _, run = run_of(request)
        return web.json_response(list_page(list(run.steps.values()), request.query))

    base = "/v1/threads/{thread_id}"
    runs = base + "/runs/{run_id}"
    return [
        web.post("/v1/assistants", v2(create_assistant)),
        web.get("/v1/assistants", v2(list_assistants)),
        web.get("/v1/assistants/{assistant_id}", v2(retrieve_assistant)),
        web.post("/v1/assistants/{assistant_id}", v2(update_assistant)),
        web.delete("/v1/assistants/{assistant_id}", v2(delete_assistant)),
        web.post("/v1/threads", v2(create_thread)),
        web.get(base, v2(retrieve_thread)),
        web.post(base, v2(update_thread)),
        web.delete(base, v2(delete_thread)),
        web.post(base + "/messages", v2(create_message)),
        web.get(base + "/messages", v2(list_messages)),
        web.get(base + "/messages/{message_id}", v2(retrieve_message)),
        web.delete(base + "/messages/{message_id}", v2(delete_message)),
        web.post(base + "/runs", v2(create_run)),
        web.get(base + "/runs", v2(list_runs)),
        web.get(runs, v2(retrieve_run)),
        web.post(runs + "/cancel", v2(cancel_run)),
        web.post(runs + "/submit_tool_outputs", v2(submit_tool_outputs)),
        web.get(runs + "/steps", v2(list_steps)),
    ]


async def stream(request: web.Request, queue: asyncio.Queue[Event | None]) -> web.StreamResponse:
    """Forward a run's events as SSE until its segment ends (the run itself goes on regardless)."""
    sse = await EventStream.open(request, {"x-request-id": request[REQUEST_ID]})
    try:
        while (item := await queue.get()) is not None:
            await sse.response.write(encode(*item))
        await sse.close()
    except ConnectionResetError:
        pass  # the client hung up; as on the real API the run does not notice
    return sse.response


def shutdown(emu: OpenAIEmulator) -> None:
    """Stop every run still producing events (the emulator is going away)."""
    for found in emu.threads.values():
        for run in found.runs.values():
            run.stop()


# --------------------------------------------------------------------------- requests


def normalize_tools(raw: Any, param: str) -> list[dict[str, Any]]:
    """Tools as the API stores and echoes them; the flat Responses function shape is refused."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ApiError(400, f"Invalid type for '{param}': expected an array.", param=param)
    tools: list[dict[str, Any]] = []
    for index, tool in enumerate(raw):
        where = f"{param}[{index}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind not in TOOL_TYPES:
            raise ApiError(
                400,
                f"Invalid value: '{kind}'. Supported values are: 'code_interpreter', 'function', and "
                "'file_search'.",
                param=f"{where}.type",
                code="invalid_value",
            )
        assert isinstance(tool, dict)
        if kind == "function":
            function = tool.get("function")
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise ApiError(
                    400,
                    f"Missing required parameter: '{where}.function'.",
                    param=f"{where}.function",
                    code="missing_required_parameter",
                )
            tools.append(
                {
                    "type": "function",
                    "function": {
                        "name": function["name"],
                        "description": function.get("description"),
                        "parameters": function.get("parameters") or {"type": "object", "properties": {}},
                        "strict": bool(function.get("strict", False)),
                    },
                }
            )
        elif kind == "file_search":
            options = tool.get("file_search") or {}
            tools.append(
                {
                    "type": "file_search",
                    "file_search": {
                        "max_num_results": options.get("max_num_results", 20),
                        "ranking_options": options.get("ranking_options")
                        or {"ranker": "default_2024_08_21", "score_threshold": 0.0},
                    },
                }
            )
        else:
            tools.append({"type": "code_interpreter"})
    return tools


def add_message(emu: OpenAIEmulator, thread: Thread, raw: Any, where: str | None) -> dict[str, Any]:
    """Validate a message the client sends, store it (with its attachments) and return it."""

    def param(name: str) -> str:
        return f"{where}.{name}" if where else name

    if not isinstance(raw, dict):
        raise ApiError(400, f"Invalid type for '{where}': expected an object.", param=where)
    role = raw.get("role")
    if role not in ("user", "assistant"):
        raise ApiError(
            400,
            f"Invalid value: '{role}'. Supported values are: 'user' and 'assistant'.",
            param=param("role"),
            code="invalid_value",
        )
    content = _content(emu, raw.get("content"), param("content"))
    attachments = _attachments(emu, raw.get("attachments"), param("attachments"))
    for attachment in attachments:
        for tool in attachment["tools"]:
            if tool["type"] == "file_search":
                _index(emu, thread, attachment["file_id"])
            elif attachment["file_id"] not in thread.code_interpreter_file_ids:
                thread.code_interpreter_file_ids.append(attachment["file_id"])
    message = {
        "id": new_id("msg"),
        "object": "thread.message",
        "created_at": now(),
        "assistant_id": None,
        "thread_id": thread.id,
        "run_id": None,
        "role": role,
        "content": content,
        "attachments": attachments,
        "metadata": _metadata(raw.get("metadata")),
        "status": "completed",
        "completed_at": None,
        "incomplete_at": None,
        "incomplete_details": None,
    }
    thread.messages.append(message)
    emu.notify()
    return message


def _content(emu: OpenAIEmulator, raw: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(raw, str):
        return [{"type": "text", "text": {"value": raw, "annotations": []}}]
    if not isinstance(raw, list) or not raw:
        raise ApiError(
            400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
        )
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(raw):
        where = f"{param}[{index}]"
        if not isinstance(part, dict):
            raise ApiError(400, f"Invalid type for '{where}': expected an object.", param=where)
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": {"value": part["text"], "annotations": []}})
        elif kind == "image_file" and isinstance(part.get("image_file"), dict):
            file_id = part["image_file"].get("file_id")
            if file_id not in emu.files:
                raise ApiError(400, f"Invalid '{where}.image_file.file_id': no file with id '{file_id}'.")
            image = {"file_id": file_id, "detail": part["image_file"].get("detail", "auto")}
            parts.append({"type": "image_file", "image_file": image})
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            url = {"url": part["image_url"].get("url"), "detail": part["image_url"].get("detail", "auto")}
            parts.append({"type": "image_url", "image_url": url})
        else:
            raise ApiError(
                400,
                f"Invalid value: '{kind}'. Supported values are: 'text', 'image_file', and 'image_url'.",
                param=f"{where}.type",
                code="invalid_value",
            )
    return parts


def _attachments(emu: OpenAIEmulator, raw: Any, param: str) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ApiError(400, f"Invalid type for '{param}': expected an array.", param=param)
    attachments: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        where = f"{param}[{index}]"
        file_id = item.get("file_id") if isinstance(item, dict) else None
        if not isinstance(file_id, str) or file_id not in emu.files:
            raise ApiError(400, f"Invalid '{where}.file_id': no file with id '{file_id}'.", param=where)
        assert isinstance(item, dict)
        tools = item.get("tools") or []
        kinds = [t.get("type") if isinstance(t, dict) else None for t in tools]
        if not kinds or any(k not in ("file_search", "code_interpreter") for k in kinds):
            raise ApiError(
                400,
                f"Invalid '{where}.tools': each tool must be 'file_search' or 'code_interpreter'.",
                param=f"{where}.tools",
            )
        attachments.append({"file_id": file_id, "tools": [{"type": k} for k in kinds]})
    return attachments


def _index(emu: OpenAIEmulator, thread: Thread, file_id: str) -> None:
    """file_search attachments go to the thread's own vector store, indexed at once."""
    if not thread.vector_store_ids:
        store = VectorStore(
            new_id("vs"),
            name=f"vector store for {thread.id}",
            metadata={},
            expires_after={"anchor": "last_active_at", "days": 7},
        )
        emu.vector_stores[store.id] = store
        thread.vector_store_ids.append(store.id)
    store = emu.vector_stores.get(thread.vector_store_ids[0])
    if store is None or file_id in store.files:
        return
    file = emu.files[file_id]
    detail = VectorStoreFileState()
    if not file.content or file.filename.lower().endswith((".bin", ".png", ".jpg", ".jpeg", ".gif")):
        detail.outcome = "failed"
        detail.last_error = {
            "code": "unsupported_file",
            "message": f"The file type of {file.filename} is not supported for retrieval.",
        }
    store.details[file_id] = detail
    store.files[file_id] = detail.outcome


# --------------------------------------------------------------------------- runs


class Run:
    """One run of an assistant on a thread; renders plans in segments split by requires_action."""

    def __init__(
        self,
        emu: OpenAIEmulator,
        thread: Thread,
        assistant: Assistant,
        body: dict[str, Any],
        *,
        model: str,
        tools: list[dict[str, Any]],
    ) -> None:
        self.emu = emu
        self.thread = thread
        self.assistant = assistant
        self.body = body
        self.model = model
        self.tools = tools
        self.id = new_id("run")
        self.created_at = now()
        self.expires_at: int | None = self.created_at + RUN_TTL_S
        self.started_at: int | None = None
        self.completed_at: int | None = None
        self.cancelled_at: int | None = None
        self.failed_at: int | None = None
        self.status = "queued"
        self.last_error: dict[str, str] | None = None
        self.pending_calls: list[dict[str, Any]] = []
        self.steps: dict[str, dict[str, Any]] = {}
        self.message: dict[str, Any] | None = None  # the assistant message being written
        self.history: list[script.Entry] = []  # tool calls and results of earlier segments
        # The user messages added since the previous run are this run's "current" input.
        self.current = range(thread.cursor, len(thread.messages))
        thread.cursor = len(thread.messages)
        self.release_generation = emu.release_generation
        self.task: asyncio.Task[None] | None = None

    # -------------------------------------------------------------- lifecycle

    @property
    def active(self) -> bool:
        if self.status in ACTIVE and self.expires_at is not None and time.time() >= self.expires_at:
            self.finish("expired")
        return self.status in ACTIVE

    def start(self, results: list[script.ToolResult]) -> asyncio.Queue[Event | None]:
        """Produce the next segment of events in a task of its own; returns where they go."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._produce(queue, results))
        return queue

    def finish(self, status: str) -> None:
        """End the run from outside its events (cancel, expiry); its stream closes at the next pause."""
        self.status = status
        stamp = now()
        if status == "cancelled":
            self.cancelled_at = stamp
        self.expires_at = None
        for step in self.steps.values():
            if step["status"] == "in_progress":
                step["status"] = status
                step["cancelled_at" if status == "cancelled" else "expired_at"] = stamp
        if self.message is not None and self.message["status"] == "in_progress":
            reason = "run_cancelled" if status == "cancelled" else "run_expired"
            self.message.update(
                status="incomplete", incomplete_at=stamp, incomplete_details={"reason": reason}
            )
        # The producing task notices at its next pause (stall or pacing) and ends the stream;
        # cancelling it instead could be swallowed by asyncio.wait_for on Python 3.11.
        self.emu.notify()

    def stop(self) -> None:
        """Drop the producing task (thread deleted, emulator stopping); no events follow."""
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def expire(self) -> None:
        """Test helper: let the run expire now, as it would 10 minutes after it was created."""
        if self.status in ACTIVE:
            self.finish("expired")

    async def _produce(self, queue: asyncio.Queue[Event | None], results: list[script.ToolResult]) -> None:
        try:
            async for event in self._events(results):
                queue.put_nowait(event)
                self.emu.notify()
        finally:
            queue.put_nowait(None)
            self.emu.notify()

    async def _stall(self) -> None:
        """Pause until the test calls release(), or until the run is cancelled or expires."""
        emu = self.emu
        emu.stalled += 1
        emu.notify()
        try:
            await emu.wait_for(
                lambda: emu.release_generation > self.release_generation or not self.active,
                timeout=None,
                what="release()",
            )
        finally:
            emu.stalled -= 1
            emu.notify()

    def _ended(self) -> list[Event]:
        """The closing events when cancel or expiry ended the run during a pause."""
        if self.active:
            return []
        return [(f"thread.run.{self.status}", self.to_json()), ("done", "[DONE]")]

    # -------------------------------------------------------------- events

    async def _events(self, results: list[script.ToolResult]) -> AsyncIterator[Event]:
        if not results:
            yield "thread.run.created", self.to_json()
            yield "thread.run.queued", self.to_json()
            self.status = "in_progress"
            self.started_at = now()
            yield "thread.run.in_progress", self.to_json()
        else:
            for step in self.steps.values():
                if step["status"] == "in_progress":
                    for call in step["step_details"]["tool_calls"]:
                        call["function"]["output"] = next(
                            (r.output for r in results if r.call_id == call["id"]), None
                        )
                    step.update(status="completed", completed_at=now())
                    yield "thread.run.step.completed", _copy(step)
            self.pending_calls = []
            self.status = "queued"
            yield "thread.run.queued", self.to_json()
            self.status = "in_progress"
            yield "thread.run.in_progress", self.to_json()

        plan = script.plan_reply(self.transcript(results), self.toolbox())
        self.history.extend(script.ToolResult(r.call_id, r.output) for r in results)
        if plan.stall and not results:
            await self._stall()
            for event in self._ended():
                yield event
            if not self.active:
                return

        failure = plan.failure
        if failure is not None and failure.kind == "model_error":
            self.status = "failed"
            self.failed_at = now()
            self.expires_at = None
            self.last_error = {"code": "server_error", "message": failure.message}
            yield "thread.run.failed", self.to_json()
            yield "done", "[DONE]"
            return

        deltas = 0
        generated: dict[str, str] = {}  # filename -> file id, written by RunCode
        calls: list[script.CallFunction] = []
        for plan_step in plan.steps:
            if isinstance(plan_step, script.CallFunction):
                calls.append(plan_step)
            for event, is_delta in self._render(plan_step, generated):
                if is_delta:
                    if failure is not None and deltas >= failure.after_chunks:
                        yield self._break(failure)
                        return
                    if deltas and plan.pace_s:
                        await asyncio.sleep(plan.pace_s)
                        ended = self._ended()
                        if ended:
                            for closing in ended:
                                yield closing
                            return
                    deltas += 1
                yield event
        if failure is not None:
            # Fewer deltas than the break point: the stream still breaks before the run ends.
            yield self._break(failure)
            return
        if calls:
            self.status = "requires_action"
            yield "thread.run.requires_action", self.to_json()
            yield "done", "[DONE]"
            return
        self.status = "completed"
        self.completed_at = now()
        self.expires_at = None
        yield "thread.run.completed", self.to_json()
        yield "done", "[DONE]"

    def _break(self, failure: script.Failure) -> Event:
        """The transport-level error event; the run is failed server-side and nothing is kept."""
        self.status = "failed"
        self.failed_at = now()
        self.expires_at = None
        self.last_error = {"code": "server_error", "message": failure.message}
        if self.message is not None and self.message["status"] == "in_progress":
            self.message.update(
                status="incomplete", incomplete_at=now(), incomplete_details={"reason": "run_failed"}
            )
        for step in self.steps.values():
            if step["status"] == "in_progress":
                step.update(status="failed", failed_at=now(), last_error=self.last_error)
        flat = {"code": failure.code, "message": failure.message, "param": None, "type": "server_error"}
        shape = self.emu.stream_error_shape
        data: dict[str, Any] = dict(flat) if shape in ("flat", "both") else {}
        if shape in ("nested", "both"):
            data["error"] = flat
        return "error", data

    def _render(self, step: script.Step, generated: dict[str, str]) -> Iterator[tuple[Event, bool]]:
        if isinstance(step, script.Say):
            yield from self._say(step, generated)
        elif isinstance(step, script.CallFunction):
            yield from self._call(step)
        elif isinstance(step, script.SearchFiles):
            yield from self._search(step)
        else:
            yield from self._run_code(step, generated)

    def _new_step(self, details: dict[str, Any]) -> dict[str, Any]:
        step = {
            "id": new_id("step"),
            "object": "thread.run.step",
            "created_at": now(),
            "assistant_id": self.assistant.id,
            "thread_id": self.thread.id,
            "run_id": self.id,
            "type": details["type"],
            "status": "in_progress",
            "step_details": details,
            "last_error": None,
            "expired_at": None,
            "cancelled_at": None,
            "failed_at": None,
            "completed_at": None,
            "metadata": None,
            "usage": None,
        }
        self.steps[step["id"]] = step
        return step

    def _step_delta(self, step: dict[str, Any], call: dict[str, Any]) -> Event:
        delta = {"step_details": {"type": "tool_calls", "tool_calls": [{"index": 0, **call}]}}
        return "thread.run.step.delta", {"id": step["id"], "object": "thread.run.step.delta", "delta": delta}

    def _done(self, step: dict[str, Any]) -> Event:
        step.update(status="completed", completed_at=now(), usage=_usage(1, 1))
        return "thread.run.step.completed", _copy(step)

    def _search(self, step: script.SearchFiles) -> Iterator[tuple[Event, bool]]:
        call = {
            "id": new_id("call"),
            "type": "file_search",
            "file_search": {
                "ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0.0},
                "results": [],
            },
        }
        run_step = self._new_step({"type": "tool_calls", "tool_calls": [call]})
        yield ("thread.run.step.created", _copy(run_step)), False
        yield ("thread.run.step.in_progress", _copy(run_step)), False
        yield self._done(run_step), False

    def _run_code(self, step: script.RunCode, generated: dict[str, str]) -> Iterator[tuple[Event, bool]]:
        for out in step.outputs:
            # Generated files are ordinary Files (purpose assistants_output), downloadable by id.
            stored = StoredFile(new_id("file", sep="-"), out.filename, "assistants_output", out.content)
            self.emu.files[stored.id] = stored
            generated[out.filename] = stored.id
        call_id = new_id("call")
        call: dict[str, Any] = {
            "id": call_id,
            "type": "code_interpreter",
            "code_interpreter": {"input": "", "outputs": []},
        }
        run_step = self._new_step({"type": "tool_calls", "tool_calls": [call]})
        yield ("thread.run.step.created", _copy(run_step)), False
        yield ("thread.run.step.in_progress", _copy(run_step)), False
        for n, chunk in enumerate(step.chunks):
            piece: dict[str, Any] = {"type": "code_interpreter", "code_interpreter": {"input": chunk}}
            if n == 0:
                piece["id"] = call_id
            yield self._step_delta(run_step, piece), True
        images = [
            {"index": i, "type": "image", "image": {"file_id": generated[out.filename]}}
            for i, out in enumerate(step.outputs)
            if out.mime_type.startswith("image/")
        ]
        if images:
            piece = {"type": "code_interpreter", "code_interpreter": {"outputs": images}}
            yield self._step_delta(run_step, piece), False
        call["code_interpreter"] = {
            "input": step.code,
            "outputs": [{"type": "image", "image": image["image"]} for image in images],
        }
        yield self._done(run_step), False

    def _call(self, step: script.CallFunction) -> Iterator[tuple[Event, bool]]:
        call_id = new_id("call")
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": step.name, "arguments": "", "output": None},
        }
        run_step = self._new_step({"type": "tool_calls", "tool_calls": [call]})
        yield ("thread.run.step.created", _copy(run_step)), False
        yield ("thread.run.step.in_progress", _copy(run_step)), False
        for n, chunk in enumerate(step.chunks):
            function: dict[str, Any] = {"arguments": chunk}
            piece: dict[str, Any] = {"type": "function", "function": function}
            if n == 0:
                piece["id"] = call_id
                function["name"] = step.name
            yield self._step_delta(run_step, piece), True
        call["function"]["arguments"] = step.arguments
        self.pending_calls.append(
            {"id": call_id, "type": "function", "function": {"name": step.name, "arguments": step.arguments}}
        )
        self.history.append(script.ToolCall(call_id, step.name, step.arguments))

    def _say(self, step: script.Say, generated: dict[str, str]) -> Iterator[tuple[Event, bool]]:
        message: dict[str, Any] = {
            "id": new_id("msg"),
            "object": "thread.message",
            "created_at": now(),
            "assistant_id": self.assistant.id,
            "thread_id": self.thread.id,
            "run_id": self.id,
            "role": "assistant",
            "content": [],
            "attachments": [],
            "metadata": {},
            "status": "in_progress",
            "completed_at": None,
            "incomplete_at": None,
            "incomplete_details": None,
        }
        self.message = message
        self.thread.messages.append(message)
        run_step = self._new_step(
            {"type": "message_creation", "message_creation": {"message_id": message["id"]}}
        )
        yield ("thread.run.step.created", _copy(run_step)), False
        yield ("thread.run.step.in_progress", _copy(run_step)), False
        yield ("thread.message.created", _copy(message)), False
        yield ("thread.message.in_progress", _copy(message)), False

        images = [
            generated[c.filename]
            for c in step.citations
            if isinstance(c, script.GeneratedFileCitation)
            and c.filename in generated
            and c.filename.lower().endswith((".png", ".jpg", ".jpeg", ".gif"))
        ]
        for index, file_id in enumerate(images):
            block = {"type": "image_file", "image_file": {"file_id": file_id, "detail": None}}
            message["content"].append(_copy(block))
            delta = {"content": [{"index": index, **block}]}
            yield self._message_delta(message, delta), False

        text_index = len(images)
        pieces, value, annotations = _text_pieces(step, generated, marker_no=len(self.steps))
        text_block: dict[str, Any] = {"type": "text", "text": {"value": "", "annotations": []}}
        message["content"].append(text_block)
        for piece, piece_annotations in pieces:
            text_block["text"]["value"] += piece
            text_block["text"]["annotations"].extend(
                {k: v for k, v in a.items() if k != "index"} for a in piece_annotations
            )
            delta = {
                "content": [
                    {
                        "index": text_index,
                        "type": "text",
                        "text": {"value": piece, "annotations": piece_annotations},
                    }
                ]
            }
            yield self._message_delta(message, delta), True
        assert text_block["text"]["value"] == value and len(text_block["text"]["annotations"]) == len(
            annotations
        )
        message.update(status="completed", completed_at=now())
        yield ("thread.message.completed", _copy(message)), False
        yield self._done(run_step), False

    def _message_delta(self, message: dict[str, Any], delta: dict[str, Any]) -> Event:
        return "thread.message.delta", {"id": message["id"], "object": "thread.message.delta", "delta": delta}

    # -------------------------------------------------------------- the model's view

    def transcript(self, results: list[script.ToolResult]) -> list[script.Entry]:
        entries: list[script.Entry] = []
        for index, message in enumerate(self.thread.messages):
            if message.get("run_id") == self.id:
                continue  # this run's own output so far
            texts = tuple(p["text"]["value"] for p in message["content"] if p["type"] == "text")
            images = sum(1 for p in message["content"] if p["type"] in ("image_file", "image_url"))
            files = tuple(a["file_id"] for a in message.get("attachments") or [])
            entries.append(
                script.Message(message["role"], texts, images, files, current=index in self.current)
            )
        return entries + self.history + list(results)

    def toolbox(self) -> script.Toolbox:
        kinds = {t["type"] for t in self.tools}
        functions = frozenset(t["function"]["name"] for t in self.tools if t["type"] == "function")
        searchable: tuple[script.SearchableFile, ...] = ()
        if "file_search" in kinds:
            stores = list(self.thread.vector_store_ids)
            fs = self.assistant.tool_resources.get("file_search") or {}
            stores += [v for v in fs.get("vector_store_ids") or [] if v in self.emu.vector_stores]
            stores = [v for v in stores if v in self.emu.vector_stores]
            searchable = tuple(self.emu.searchable_files(stores, param="tool_resources.file_search"))
        mounted: list[script.MountedFile] = []
        if "code_interpreter" in kinds:
            ci = self.assistant.tool_resources.get("code_interpreter") or {}
            for file_id in [*(ci.get("file_ids") or []), *self.thread.code_interpreter_file_ids]:
                file = self.emu.files.get(file_id)
                if file is not None:
                    mounted.append(script.MountedFile(file_id, file.filename))
        return script.Toolbox(
            functions, "file_search" in kinds, searchable, "code_interpreter" in kinds, tuple(mounted)
        )

    # -------------------------------------------------------------- JSON

    def to_json(self) -> dict[str, Any]:
        instructions = self.body.get("instructions")
        if instructions is None:
            instructions = self.assistant.instructions or ""
        if self.body.get("additional_instructions"):
            instructions = f"{instructions}\n\n{self.body['additional_instructions']}".strip()
        required = None
        if self.status == "requires_action":
            required = {
                "type": "submit_tool_outputs",
                "submit_tool_outputs": {"tool_calls": [_copy(c) for c in self.pending_calls]},
            }
        done = self.status == "completed"
        return {
            "id": self.id,
            "object": "thread.run",
            "created_at": self.created_at,
            "assistant_id": self.assistant.id,
            "thread_id": self.thread.id,
            "status": self.status,
            "started_at": self.started_at,
            "expires_at": self.expires_at if self.status in ACTIVE else None,
            "cancelled_at": self.cancelled_at,
            "failed_at": self.failed_at,
            "completed_at": self.completed_at,
            "required_action": required,
            "last_error": self.last_error,
            "model": self.model,
            "instructions": instructions,
            "tools": self.tools,
            "metadata": self.body.get("metadata") or {},
            "incomplete_details": None,
            "usage": _usage(10, 10) if done else None,
            "temperature": self.body.get("temperature", 1.0),
            "top_p": self.body.get("top_p", 1.0),
            "max_prompt_tokens": self.body.get("max_prompt_tokens"),
            "max_completion_tokens": self.body.get("max_completion_tokens"),
            "truncation_strategy": self.body.get("truncation_strategy")
            or {"type": "auto", "last_messages": None},
            "response_format": self.body.get("response_format") or "auto",
            "tool_choice": self.body.get("tool_choice") or "auto",
            "parallel_tool_calls": self.body.get("parallel_tool_calls", True),
        }


def _text_pieces(
    step: script.Say, generated: dict[str, str], *, marker_no: int
) -> tuple[list[tuple[str, list[dict[str, Any]]]], str, list[dict[str, Any]]]:
    """The streamed text deltas with their annotations, the final value and all its annotations.

    A file_search citation becomes a `【n:i†filename】` marker inserted at its index, sent as
    a delta of its own that carries the `file_citation` annotation (as the real API does);
    a generated file's `sandbox:` link gets a `file_path` annotation.
    """
    cites = sorted((c for c in step.citations if isinstance(c, script.FileCitation)), key=lambda c: c.index)
    pieces: list[tuple[str, list[dict[str, Any]]]] = []
    out = ""
    annotations: list[dict[str, Any]] = []
    offset = 0
    for chunk in step.chunks:
        pos = 0
        end = offset + len(chunk)
        while cites and offset <= cites[0].index <= end:
            cite = cites.pop(0)
            split = cite.index - offset
            if split > pos:
                pieces.append((chunk[pos:split], []))
                out += chunk[pos:split]
            marker = f"【{marker_no}:{len(annotations)}†{cite.filename}】"
            annotation = {
                "index": len(annotations),
                "type": "file_citation",
                "text": marker,
                "start_index": len(out),
                "end_index": len(out) + len(marker),
                "file_citation": {"file_id": cite.file_id},
            }
            annotations.append(annotation)
            pieces.append((marker, [annotation]))
            out += marker
            pos = split
        if pos < len(chunk):
            pieces.append((chunk[pos:], []))
            out += chunk[pos:]
        offset = end
    for cite in step.citations:
        if isinstance(cite, script.GeneratedFileCitation) and cite.filename in generated:
            link = f"sandbox:/mnt/data/{cite.filename}"
            at = out.find(link)
            if at >= 0:
                annotation = {
                    "index": len(annotations),
                    "type": "file_path",
                    "text": link,
                    "start_index": at,
                    "end_index": at + len(link),
                    "file_path": {"file_id": generated[cite.filename]},
                }
                annotations.append(annotation)
                last, last_annotations = pieces[-1]
                pieces[-1] = (last, [*last_annotations, annotation])
    return pieces, out, [{k: v for k, v in a.items() if k != "index"} for a in annotations]


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _copy(data: dict[str, Any]) -> dict[str, Any]:
    """A deep copy, so later changes to the live object never alter an event already queued."""
    return copy.deepcopy(data)
