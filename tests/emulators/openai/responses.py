"""/v1/responses: turns a scripted `Plan` into Responses API objects and stream events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import script
from .errors import ApiError, api_error
from .items import normalize_input, stored, to_entries
from .pages import list_page
from .sse import EventStream
from .state import REQUEST_ID, Container, ContainerFile, Conversation, new_id

if TYPE_CHECKING:
    from .emulator import OpenAIEmulator

HOSTED_TOOLS = ("code_interpreter", "file_search", "web_search")
LOCKED_MESSAGE = "Another process is currently operating on this conversation. Please retry in a few seconds."


@dataclass
class StoredResponse:
    """A finished response: its JSON (for GET) and the context a follow-up would see."""

    json: dict[str, Any]
    context: list[dict[str, Any]]


def routes(emu: OpenAIEmulator) -> list[web.RouteDef]:
    async def create(request: web.Request) -> web.StreamResponse:
        body = emu.body(request)
        emu.responses.append(body)
        turn = _prepare(emu, body)
        if body.get("stream"):
            return await turn.stream(request)
        return await turn.complete()

    async def retrieve(request: web.Request) -> web.Response:
        rid = request.match_info["response_id"]
        found = emu.stored_responses.get(rid)
        if found is None:
            raise ApiError(404, f"Response with id '{rid}' not found.", param="response_id")
        return web.json_response(found.json)

    async def input_items(request: web.Request) -> web.Response:
        rid = request.match_info["response_id"]
        found = emu.stored_responses.get(rid)
        if found is None:
            raise ApiError(404, f"Response with id '{rid}' not found.", param="response_id")
        # Like a previous_response_id chain, the conversation's earlier items are listed too:
        # everything the model saw except what this response wrote.
        written = len(found.json.get("output") or [])
        seen = found.context[: len(found.context) - written]
        return web.json_response(list_page(seen, request.query, default_order="desc"))

    async def delete(request: web.Request) -> web.Response:
        rid = request.match_info["response_id"]
        if emu.stored_responses.pop(rid, None) is None:
            raise ApiError(404, f"Response with id '{rid}' not found.", param="response_id")
        return web.json_response({"id": rid, "object": "response.deleted", "deleted": True})

    return [
        web.post("/v1/responses", create),
        web.get("/v1/responses/{response_id}", retrieve),
        web.get("/v1/responses/{response_id}/input_items", input_items),
        web.delete("/v1/responses/{response_id}", delete),
    ]


def _prepare(emu: OpenAIEmulator, body: dict[str, Any]) -> Turn:
    """Validate the request the way the API does before anything is generated."""
    if not body.get("model"):
        raise ApiError(
            400, "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
        )
    if "truncation" in emu.unsupported and body.get("truncation") is not None:
        raise ApiError(
            400,
            "Unsupported parameter: 'truncation' is not supported with this model.",
            param="truncation",
            code="unsupported_parameter",
        )
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise ApiError(400, "Invalid type for 'tools': expected an array.", param="tools")
    for index, tool in enumerate(tools):
        kind = str(tool.get("type", "")) if isinstance(tool, dict) else ""
        for hosted in HOSTED_TOOLS:
            if kind.startswith(hosted) and hosted in emu.unsupported:
                raise ApiError(
                    400,
                    f"Hosted tool '{kind}' is not supported with this model.",
                    param=f"tools[{index}].type",
                    code="unsupported_value",
                )

    conversation: Conversation | None = None
    ref = body.get("conversation")
    if ref is not None:
        cid = ref.get("id") if isinstance(ref, dict) else ref
        if not isinstance(cid, str):
            raise ApiError(400, "Invalid type for 'conversation'.", param="conversation")
        if body.get("previous_response_id"):
            raise ApiError(
                400,
                "Mutually exclusive parameters: Ensure you are only providing one of: "
                "'previous_response_id' or 'conversation'.",
                param="conversation",
                code="mutually_exclusive_parameters",
            )
        conversation = emu.conversations.get(cid)
        if conversation is None:
            raise ApiError(404, f"Conversation with id '{cid}' not found.", param="conversation")

    prior: list[dict[str, Any]] = []
    previous_id = body.get("previous_response_id")
    if previous_id:
        previous = emu.stored_responses.get(previous_id)
        if previous is None:
            raise ApiError(
                404, f"Previous response with id '{previous_id}' not found.", param="previous_response_id"
            )
        prior = list(previous.context)
    elif conversation is not None:
        prior = list(conversation.items)

    inputs = normalize_input(body.get("input"))
    toolbox = _toolbox(emu, tools)
    transcript = to_entries(prior, current=False) + to_entries(inputs, current=True)
    asked = {e.id for e in transcript if isinstance(e, script.ApprovalRequest)}
    for entry in transcript:
        if isinstance(entry, script.ApprovalResponse) and entry.current and entry.request_id not in asked:
            raise ApiError(
                400,
                f"No tool call found for approval request with id '{entry.request_id}'.",
                param="input",
            )
    plan = script.plan_reply(transcript, toolbox)

    # Checked last so that a request rejected for another reason never holds the lock.
    if conversation is not None and conversation.locked_by is not None:
        raise ApiError(400, LOCKED_MESSAGE, param=None, code="conversation_locked")
    turn = Turn(emu, body, plan, conversation, prior, inputs, transcript)
    if conversation is not None:
        conversation.locked_by = turn.id
        emu.notify()
    return turn


def _toolbox(emu: OpenAIEmulator, tools: list[Any]) -> script.Toolbox:
    functions: set[str] = set()
    searchable: list[script.SearchableFile] = []
    file_search = code_interpreter = web_search = False
    web_domains: tuple[str, ...] = ()
    mcp: list[script.McpServer] = []
    mounted: list[script.MountedFile] = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            continue
        kind = tool.get("type")
        if kind == "function" and isinstance(tool.get("name"), str):
            functions.add(tool["name"])
        elif kind == "file_search":
            file_search = True
            ids = tool.get("vector_store_ids") or []
            searchable += emu.searchable_files(ids, param=f"tools[{index}].vector_store_ids")
        elif kind == "mcp":
            label, url = tool.get("server_label"), tool.get("server_url")
            if not isinstance(label, str) or not isinstance(url, str):
                raise ApiError(
                    400, f"Missing required parameter: 'tools[{index}].server_url'.", param=f"tools[{index}]"
                )
            allowed = tool.get("allowed_tools")
            approval = tool.get("require_approval", "always")
            listed = tuple(allowed) if isinstance(allowed, list) else None
            mcp.append(script.McpServer(label, url, listed, approval))
            emu.mcp_headers.append(dict(tool.get("headers") or {}))
        elif kind in ("web_search", "web_search_2025_08_26"):
            web_search = True
            filters = tool.get("filters") or {}
            web_domains = tuple(filters.get("allowed_domains") or ()) if isinstance(filters, dict) else ()
        elif kind == "code_interpreter":
            code_interpreter = True
            container = tool.get("container")
            file_ids = list(container.get("file_ids") or []) if isinstance(container, dict) else []
            emu.code_interpreter_file_ids.append(file_ids)
            mounted += emu.mounted_files(file_ids, param=f"tools[{index}].container")
    return script.Toolbox(
        frozenset(functions),
        file_search,
        tuple(searchable),
        code_interpreter,
        tuple(mounted),
        web_search,
        web_domains,
        tuple(mcp),
    )


class _Cancelled(Exception):
    """The client went away mid-stream."""


class Turn:
    """One response being generated: renders the plan into events and commits the result."""

    def __init__(
        self,
        emu: OpenAIEmulator,
        body: dict[str, Any],
        plan: script.Plan,
        conversation: Conversation | None,
        prior: list[dict[str, Any]],
        inputs: list[dict[str, Any]],
        transcript: list[script.Entry],
    ) -> None:
        self.emu = emu
        self.body = body
        self.plan = plan
        self.conversation = conversation
        self.prior = prior
        self.inputs = inputs
        self.transcript = transcript
        self.id = new_id("resp")
        self.created_at = int(time.time())
        self.output: list[dict[str, Any]] = []
        self.generated: dict[str, ContainerFile] = {}  # filename -> file written by RunCode
        # Captured on arrival so a release() issued before the stall point still counts.
        self.release_generation = emu.release_generation

    # -------------------------------------------------------------- HTTP front ends

    async def stream(self, request: web.Request) -> web.StreamResponse:
        try:
            sse = await EventStream.open(request, {"x-request-id": request[REQUEST_ID]})
            try:
                async for event in self.events():
                    await sse.send(event)
                    self.emu.notify()
                await sse.close()
            except ConnectionResetError:
                # The client hung up mid-write; the finally below frees the conversation.
                # (A hang-up while idle cancels this handler, which the finally covers too.)
                self.emu.hung_up[self.id] = time.monotonic()
            return sse.response
        except asyncio.CancelledError:
            self.emu.hung_up[self.id] = time.monotonic()
            raise
        finally:
            self.unlock()

    async def complete(self) -> web.Response:
        try:
            final: dict[str, Any] | None = None
            async for event in self.events():
                if event["type"] in ("response.completed", "response.failed", "error"):
                    final = event
            assert final is not None
            if final["type"] == "response.completed":
                return web.json_response(final["response"])
            message = (
                final["response"]["error"]["message"]
                if final["type"] == "response.failed"
                else final["message"]
            )
            return api_error(500, message, code="server_error")
        finally:
            self.unlock()

    def unlock(self) -> None:
        if self.conversation is not None and self.conversation.locked_by == self.id:
            self.conversation.locked_by = None
            self.emu.notify()

    # -------------------------------------------------------------- events

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The full event sequence, paced and stalled as the plan says."""
        yield {"type": "response.created", "response": self.snapshot("in_progress")}
        if self.plan.stall:
            await self.emu.wait_released(self.release_generation)
        yield {"type": "response.in_progress", "response": self.snapshot("in_progress")}

        failure = self.plan.failure
        if failure is not None and failure.kind == "model_error":
            error = {"code": failure.code, "message": failure.message}
            self.store(self.snapshot("failed", error=error))
            yield {"type": "response.failed", "response": self.snapshot("failed", error=error)}
            return

        if self.plan.first_delay_s:
            await asyncio.sleep(self.plan.first_delay_s)
        deltas = 0
        for step in self.plan.steps:
            for event, is_delta in self.render(step):
                if is_delta:
                    if (
                        failure is not None
                        and failure.kind == "stream_error"
                        and deltas >= failure.after_chunks
                    ):
                        yield self.error_event(failure)
                        return
                    if deltas and self.plan.pace_s:
                        await asyncio.sleep(self.plan.pace_s)
                    deltas += 1
                yield event
        if failure is not None and failure.kind == "stream_error":
            # Fewer deltas than the break point: the stream still breaks before completing.
            yield self.error_event(failure)
            return

        final = self.snapshot("completed")
        self.commit(final)
        if self.conversation is not None:
            self.emu.model_done[self.conversation.id] = time.time()
        yield {"type": "response.completed", "response": final}

    def error_event(self, failure: script.Failure) -> dict[str, Any]:
        # The live API nests the error (which makes the SDK raise APIError) while the
        # reference documents flat fields; "both" satisfies either kind of client.
        nested = {"type": "server_error", "code": failure.code, "message": failure.message, "param": None}
        flat = {"code": failure.code, "message": failure.message, "param": None}
        shape = self.emu.stream_error_shape
        event: dict[str, Any] = {"type": "error"}
        if shape in ("flat", "both"):
            event.update(flat)
        if shape in ("nested", "both"):
            event["error"] = nested
        return event

    def render(self, step: script.Step) -> Iterator[tuple[dict[str, Any], bool]]:
        """Events for one output item; the flag marks deltas (paced, counted for breaks)."""
        index = len(self.output)
        if isinstance(step, script.Say):
            yield from self._say(step, index)
        elif isinstance(step, script.CallFunction):
            yield from self._call(step, index)
        elif isinstance(step, script.SearchFiles):
            yield from self._search(step, index)
        elif isinstance(step, script.SearchWeb):
            yield from self._search_web(step, index)
        elif isinstance(step, script.ListMcpTools):
            yield from self._list_mcp_tools(step, index)
        elif isinstance(step, script.CallMcp):
            yield from self._call_mcp(step, index)
        elif isinstance(step, script.AskApproval):
            yield from self._ask_approval(step, index)
        else:
            yield from self._run_code(step, index)

    def _say(self, step: script.Say, index: int) -> Iterator[tuple[dict[str, Any], bool]]:
        item_id = new_id("msg")
        annotations = [self._annotation(c) for c in step.citations]
        text = step.text
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        item: dict[str, Any] = {
            "id": item_id,
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        self.output.append(item)
        yield {"type": "response.output_item.added", "output_index": index, "item": dict(item)}, False
        empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        yield {"type": "response.content_part.added", **where, "part": empty}, False
        for chunk in step.chunks:
            yield {"type": "response.output_text.delta", **where, "delta": chunk, "logprobs": []}, True
        for n, annotation in enumerate(annotations):
            yield (
                {
                    "type": "response.output_text.annotation.added",
                    **where,
                    "annotation_index": n,
                    "annotation": annotation,
                },
                False,
            )
        yield {"type": "response.output_text.done", **where, "text": text, "logprobs": []}, False
        part: dict[str, Any] = {
            "type": "output_text",
            "text": text,
            "annotations": annotations,
            "logprobs": [],
        }
        yield {"type": "response.content_part.done", **where, "part": part}, False
        item.update(status="completed", content=[part])
        yield {"type": "response.output_item.done", "output_index": index, "item": dict(item)}, False

    def _call(self, step: script.CallFunction, index: int) -> Iterator[tuple[dict[str, Any], bool]]:
        item_id = new_id("fc")
        item: dict[str, Any] = {
            "id": item_id,
            "type": "function_call",
            "status": "in_progress",
            "call_id": new_id("call"),
            "name": step.name,
            "arguments": "",
        }
        self.output.append(item)
        yield {"type": "response.output_item.added", "output_index": index, "item": dict(item)}, False
        where = {"item_id": item_id, "output_index": index}
        for chunk in step.chunks:
            yield {"type": "response.function_call_arguments.delta", **where, "delta": chunk}, True
        yield {"type": "response.function_call_arguments.done", **where, "arguments": step.arguments}, False
        item.update(status="completed", arguments=step.arguments)
        yield {"type": "response.output_item.done", "output_index": index, "item": dict(item)}, False

    def _search(self, step: script.SearchFiles, index: int) -> Iterator[tuple[dict[str, Any], bool]]:
        item_id = new_id("fs")
        item: dict[str, Any] = {
            "id": item_id,
            "type": "file_search_call",
            "status": "in_progress",
            "queries": [],
            "results": None,
        }
        self.output.append(item)
        where = {"item_id": item_id, "output_index": index}
        yield {"type": "response.output_item.added", "output_index": index, "item": dict(item)}, False
        yield {"type": "response.file_search_call.in_progress", **where}, False
        yield {"type": "response.file_search_call.searching", **where}, False
        yield {"type": "response.file_search_call.completed", **where}, False
        item.update(status="completed", queries=list(step.queries))
        yield {"type": "response.output_item.done", "output_index": index, "item": dict(item)}, False

    def _search_web(self, step: script.SearchWeb, index: int) -> Iterator[tuple[dict[str, Any], bool]]:
        # Shapes of ResponseFunctionWebSearch and the response.web_search_call.* events.
        item_id = new_id("ws")
        item: dict[str, Any] = {
            "id": item_id,
            "type": "web_search_call",
            "status": "in_progress",
            "action": {"type": "search", "query": step.query},
        }
        self.output.append(item)
        where = {"item_id": item_id, "output_index": index}
        yield {"type": "response.output_item.added", "output_index": index, "item": dict(item)}, False
        yield {"type": "response.web_search_call.in_progress", **where}, False
        yield {"type": "response.web_search_call.searching", **where}, False
        yield {"type": "response.web_search_call.completed", **where}, False
        sources = [{"type": "url", "url": p.url} for p in step.pages]
        item.update(status="completed", action={"type": "search", "query": step.query, "sources": sources})
        yield {"type": "response.output_item.done", "output_index": index, "item": dict(item)}, False

    # MCP items and events in the shapes of the SDK's McpListTools / McpCall / McpApprovalRequest
    # and response.mcp_list_tools.* / response.mcp_call.* / response.mcp_call_arguments.*.

    def _list_mcp_tools(self, step: script.ListMcpTools, index: int) -> Iterator[tuple[dict[str, Any], bool]]:
        item: dict[str, Any] = {"id": new_id("mcpl"), "type": "mcp_list_tools", "server_label": step.server}
        item["tools"] = []
        self.output.append(item)
        where = {"item_id": item["id"], "output_index": index}
        yield {"type": "response.output_item.added", "output_index": index, "item": dict(item)}, False
        yield {"type": "response.mcp_list_tools.in_progress", **where}, False
        if step.error:
            item["error"] = step.error
            yield {"type": "response.mcp_list_tools.failed", **where}, False
        else:
            item["tools"] = [
                {"name": name, "input_schema": {"type": "object"}, "description": None, "annotations": None}
                for name in step.tools
            ]
            yield {"type": "response.mcp_list_tools.completed", **where}, False
        yield {"type": "response.output_item.done", "output_index": index, "item": dict(item)}, False

    def _call_mcp(self, step: script.CallMcp, index: int) -> Iterator[tuple[dict[str, Any], bool]]:
        item: dict[str, Any] = {
            "id": new_id("mcp"),
            "type": "mcp_call",
            "status": "in_progress",
            "server_label": step.server,
            "name": step.name,
            "arguments": "",
            "output": None,
            "error": None,
            # The live API leaves approval_request_id out of mcp_call items.
        }
        self.output.append(item)
        where = {"item_id": item["id"], "output_index": index}
        yield {"type": "response.output_item.added", "output_index": index, "item": dict(item)}, False
        yield {"type": "response.mcp_call.in_progress", **where}, False
        for chunk in script.split_chunks(step.arguments, pieces=2):
            yield {"type": "response.mcp_call_arguments.delta", **where, "delta": chunk}, True
        yield {"type": "response.mcp_call_arguments.done", **where, "arguments": step.arguments}, False
        yield {"type": "response.mcp_call.completed", **where}, False
        item.update(status="completed", arguments=step.arguments, output=step.output)
        yield {"type": "response.output_item.done", "output_index": index, "item": dict(item)}, False

    def _ask_approval(self, step: script.AskApproval, index: int) -> Iterator[tuple[dict[str, Any], bool]]:
        item: dict[str, Any] = {
            "id": new_id("mcpr"),
            "type": "mcp_approval_request",
            "server_label": step.server,
            "name": step.name,
            "arguments": step.arguments,
        }
        self.output.append(item)
        yield {"type": "response.output_item.added", "output_index": index, "item": dict(item)}, False
        yield {"type": "response.output_item.done", "output_index": index, "item": dict(item)}, False

    def _run_code(self, step: script.RunCode, index: int) -> Iterator[tuple[dict[str, Any], bool]]:
        container = self._container()
        for mounted in step.inputs:
            file = self.emu.files.get(mounted.file_id)
            if file is not None:
                container.add(f"/mnt/data/{file.filename}", file.content, "user")
        self.generated = {
            out.filename: container.add(f"/mnt/data/{out.filename}", out.content, "assistant")
            for out in step.outputs
        }
        item_id = new_id("ci")
        item: dict[str, Any] = {
            "id": item_id,
            "type": "code_interpreter_call",
            "status": "in_progress",
            "container_id": container.id,
            "code": "",
            "outputs": None,
        }
        self.output.append(item)
        where = {"item_id": item_id, "output_index": index}
        yield {"type": "response.output_item.added", "output_index": index, "item": dict(item)}, False
        yield {"type": "response.code_interpreter_call.in_progress", **where}, False
        for chunk in step.chunks:
            yield {"type": "response.code_interpreter_call_code.delta", **where, "delta": chunk}, True
        yield {"type": "response.code_interpreter_call_code.done", **where, "code": step.code}, False
        yield {"type": "response.code_interpreter_call.interpreting", **where}, False
        yield {"type": "response.code_interpreter_call.completed", **where}, False
        item.update(status="completed", code=step.code)
        yield {"type": "response.output_item.done", "output_index": index, "item": dict(item)}, False

    def _container(self) -> Container:
        for tool in self.body.get("tools") or []:
            if isinstance(tool, dict) and tool.get("type") == "code_interpreter":
                ref = tool.get("container")
                if isinstance(ref, str) and ref in self.emu.containers:
                    return self.emu.containers[ref]
        container = Container(new_id("cntr"), name=f"container for {self.id}")
        self.emu.containers[container.id] = container
        return container

    def _annotation(self, citation: script.Citation) -> dict[str, Any]:
        if isinstance(citation, script.UrlCitation):
            return {
                "type": "url_citation",
                "url": citation.url,
                "title": citation.title,
                "start_index": citation.start,
                "end_index": citation.end,
            }
        if isinstance(citation, script.FileCitation):
            return {
                "type": "file_citation",
                "file_id": citation.file_id,
                "filename": citation.filename,
                "index": citation.index,
            }
        cfile = self.generated[citation.filename]
        return {
            "type": "container_file_citation",
            "container_id": cfile.container_id,
            "file_id": cfile.id,
            "filename": citation.filename,
            "start_index": citation.start,
            "end_index": citation.end,
        }

    # -------------------------------------------------------------- objects and state

    def snapshot(self, status: str, *, error: dict[str, Any] | None = None) -> dict[str, Any]:
        body = self.body
        done = status == "completed"
        conversation = self.conversation.id if self.conversation is not None else None
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "completed_at": int(time.time()) if done else None,
            "conversation": {"id": conversation} if conversation else None,
            "error": error,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"),
            "metadata": body.get("metadata") or {},
            "model": body["model"],
            "output": [dict(item) for item in self.output] if done else [],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "prompt_cache_key": body.get("prompt_cache_key"),
            "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
            "safety_identifier": body.get("safety_identifier"),
            "service_tier": "default",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": [_echo_tool(t) for t in body.get("tools") or []],
            "top_logprobs": body.get("top_logprobs", 0),
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation") or "disabled",
            "usage": self.usage() if done else None,
            "user": body.get("user"),
        }

    def usage(self) -> dict[str, Any]:
        seen = sum(len(text) for e in self.transcript if isinstance(e, script.Message) for text in e.texts)
        written = sum(len(str(item.get("arguments", ""))) for item in self.output) + len(self.plan.text)
        input_tokens, output_tokens = max(1, seen // 4), max(1, written // 4)
        return {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        }

    def commit(self, final: dict[str, Any]) -> None:
        """What `conversation=` does server-side on success: input items, then output items."""
        added = [stored(item) for item in self.inputs] + [dict(item) for item in self.output]
        if self.conversation is not None and self.conversation.id in self.emu.conversations:
            self.conversation.items.extend(added)
        self.store(final, context=self.prior + added)
        # Release before the client can see response.completed, so it can start the next turn.
        self.unlock()

    def store(self, response: dict[str, Any], context: list[dict[str, Any]] | None = None) -> None:
        if self.body.get("store", True) is not False:
            self.emu.stored_responses[self.id] = StoredResponse(response, context or [])
        self.emu.notify()


def _echo_tool(tool: Any) -> Any:
    """Tools as the API echoes them back, with the defaults it fills in."""
    if not isinstance(tool, dict):
        return tool
    if tool.get("type") == "function":
        return {"description": None, "parameters": None, "strict": True, **tool}
    if tool.get("type") == "file_search":
        return {"filters": None, "max_num_results": 20, **tool}
    return tool
