"""The default backend: Conversations (= thread) + Responses (= run) + vector stores."""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import openai
from openai import AsyncOpenAI

from bot.assistant.base import (
    NO_CODE_INTERPRETER,
    SEED_HEADER,
    TOOL_STATUS,
    Attached,
    BackendError,
    Binding,
    Citation,
    Completed,
    ConversationGone,
    Failed,
    OutputFile,
    RunEvent,
    RunRequest,
    Status,
    TextDelta,
    ToolCall,
    Usage,
)
from bot.assistant.capabilities import Capabilities
from bot.assistant.errors import translate
from bot.assistant.tools import MAX_TOOL_ROUNDS, ToolSet
from bot.attachments import FileKind, LocalFile
from bot.inbound import ThreadKey

log = logging.getLogger(__name__)


class ResponsesBackend:
    """Conversations + Responses: one conversation per Slack thread, one response per Turn."""

    name = "responses"

    def __init__(
        self,
        client: AsyncOpenAI,
        *,
        model: str,
        instructions: str,
        capabilities: Capabilities | None = None,
        code_interpreter: bool = False,
        store_days: int = 90,
        max_output_tokens: int | None = None,
    ) -> None:
        self._client = client
        self._max_output_tokens = max_output_tokens
        self._model = model
        self._instructions = instructions
        self._code_interpreter = code_interpreter
        self._store_days = store_days
        self.capabilities = capabilities or Capabilities()

    async def open(self, key: ThreadKey, metadata: dict[str, str]) -> Binding:
        try:
            conv = await self._client.conversations.create(metadata=metadata)
        except openai.OpenAIError as exc:
            raise translate(exc) from None
        now = time.time()
        return Binding(self.name, conv.id, created_at=now, last_active=now)

    async def attach(self, binding: Binding, files: list[LocalFile]) -> tuple[Binding, list[Attached]]:
        """Documents → the thread's vector store, images → vision inputs, data → code interpreter."""
        attached: list[Attached] = []
        for file in files:
            try:
                binding, item = await self._attach_one(binding, file)
            except openai.OpenAIError as exc:
                log.warning("could not upload %s: %s", file.name, translate(exc))
                item = Attached(file.name, "", "", error="the assistant service would not take it")
            attached.append(item)
        return binding, attached

    async def _attach_one(self, binding: Binding, file: LocalFile) -> tuple[Binding, Attached]:
        kind = file.kind
        if kind is FileKind.IMAGE:
            remote = await self._upload(file, "vision")
            return binding, Attached(file.name, remote, "vision")
        if kind is FileKind.DATA:
            if not self._code_interpreter or not self.capabilities.allows("code_interpreter"):
                return binding, Attached(file.name, "", "", error=NO_CODE_INTERPRETER)
            remote = await self._upload(file, "user_data")
            binding = replace(binding, data_file_ids=(*binding.data_file_ids, remote))
            return binding, Attached(file.name, remote, "code_interpreter")
        if not binding.vector_store_id:
            store = await self._client.vector_stores.create(
                name=f"slack-thread-{binding.conversation_id}"[:64],
                expires_after={"anchor": "last_active_at", "days": self._store_days},
                metadata={"conversation": binding.conversation_id},
            )
            binding = replace(binding, vector_store_id=store.id)
        remote = await self._upload(file, "user_data")
        indexed = await self._client.vector_stores.files.create_and_poll(
            remote, vector_store_id=binding.vector_store_id, poll_interval_ms=500
        )
        if indexed.status != "completed":
            reason = getattr(indexed.last_error, "message", "") or indexed.status
            log.warning("indexing %s failed: %s", file.name, reason)
            return binding, Attached(file.name, remote, "file_search", error=f"indexing failed ({reason})")
        return binding, Attached(file.name, remote, "file_search")

    async def _upload(self, file: LocalFile, purpose: str) -> str:
        uploaded = await self._client.files.create(
            file=(file.name, file.content, file.mimetype or "application/octet-stream"),
            purpose=purpose,  # type: ignore[arg-type]
        )
        return uploaded.id

    async def forget_file(self, binding: Binding, remote_id: str) -> None:
        """A file deleted in Slack stops being searchable in its thread."""
        try:
            if binding.vector_store_id:
                with contextlib.suppress(openai.NotFoundError):
                    await self._client.vector_stores.files.delete(
                        remote_id, vector_store_id=binding.vector_store_id
                    )
            with contextlib.suppress(openai.NotFoundError):
                await self._client.files.delete(remote_id)
        except openai.OpenAIError as exc:
            raise translate(exc) from None

    async def annotate(self, binding: Binding, metadata: dict[str, str]) -> None:
        try:
            await self._client.conversations.update(binding.conversation_id, metadata=metadata)
        except openai.OpenAIError as exc:
            raise translate(exc) from None

    async def close(self, binding: Binding) -> None:
        """Delete the conversation and the thread's vector store (gone already is fine)."""
        try:
            with contextlib.suppress(openai.NotFoundError):
                await self._client.conversations.delete(binding.conversation_id)
            if binding.vector_store_id:
                with contextlib.suppress(openai.NotFoundError):
                    await self._client.vector_stores.delete(binding.vector_store_id)
        except openai.OpenAIError as exc:
            raise translate(exc) from None

    async def check(self) -> list[str]:
        """Probe the server: returns human-readable problems (empty when all is well)."""
        problems: list[str] = []
        try:
            await self._client.models.retrieve(self._model)
        except openai.NotFoundError:
            problems.append(f"model {self._model!r} is not served")
        except openai.OpenAIError as exc:
            problems.append(f"cannot reach the OpenAI API: {translate(exc)}")
        problems.extend(self.capabilities.describe_missing())
        return problems

    async def aclose(self) -> None:
        await self._client.close()

    def run(self, binding: Binding, request: RunRequest) -> AsyncIterator[RunEvent]:
        return self._run(binding, request)

    async def _run(self, binding: Binding, request: RunRequest) -> AsyncIterator[RunEvent]:
        user_items = _user_items(request)
        pending: list[dict[str, Any]] = user_items
        delivered = False
        try:
            for _ in range(MAX_TOOL_ROUNDS):
                outcome = _Outcome()
                async for event in self._respond(binding, request, pending, outcome):
                    yield event
                if outcome.failed is not None:
                    for spent in outcome.usage:
                        yield spent
                    yield outcome.failed
                    return
                delivered = True
                async for produced in self._generated_files(outcome.container_files):
                    yield produced
                if not outcome.calls:
                    yield Completed(outcome.text)
                    return
                pending = []
                for call in outcome.calls:
                    yield ToolCall(call["name"])
                    output = await request.tools.call(call["name"], call["arguments"])
                    pending.append(
                        {
                            "type": "function_call_output",
                            "call_id": call["call_id"],
                            "output": output,
                        }
                    )
            yield Failed("The assistant kept calling tools without answering.", retryable=False)
        except ConversationGone:
            delivered = True  # nowhere to keep them: the caller re-opens and sends them again
            raise
        except BackendError as exc:
            if not delivered and user_items:
                exc.kept = await self._keep(binding, user_items)
                delivered = True
            raise
        finally:
            if not delivered and user_items:
                await self._keep(binding, user_items)

    async def _generated_files(self, cited: list[tuple[str, str, str]]) -> AsyncIterator[RunEvent]:
        """Download what the code interpreter wrote at once: containers expire when idle."""
        for container_id, file_id, filename in cited:
            try:
                content = await self._client.containers.files.content.retrieve(
                    file_id, container_id=container_id
                )
            except openai.OpenAIError as exc:
                log.warning("could not fetch generated file %s: %s", filename, translate(exc))
                continue
            mimetype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
            yield OutputFile(filename, content.content, mimetype)

    async def _keep(self, binding: Binding, items: list[dict[str, Any]]) -> bool:
        """A failed response adds nothing to the conversation; store what the users said."""
        try:
            await self._client.conversations.items.create(binding.conversation_id, items=items)  # type: ignore[arg-type]
            return True
        except openai.OpenAIError as exc:
            log.warning("could not keep user items in %s: %s", binding.conversation_id, translate(exc))
            return False

    async def _respond(
        self,
        binding: Binding,
        request: RunRequest,
        items: list[dict[str, Any]],
        outcome: _Outcome,
    ) -> AsyncIterator[RunEvent]:
        """One streamed `responses.create`, retried once without an option the server refused."""
        while True:
            params = self._params(binding, request.tools, items) | self._turn_params(binding, request)
            try:
                stream = await self._client.responses.create(**params)
            except openai.BadRequestError as exc:
                if self.capabilities.learn(exc, params):
                    continue
                raise _conversation_error(exc, binding) from None
            except openai.NotFoundError as exc:
                raise _conversation_error(exc, binding) from None
            except openai.OpenAIError as exc:
                raise translate(exc) from None
            try:
                async with stream:
                    async for event in stream:
                        for out in outcome.feed(event):
                            yield out
            except openai.APIError as exc:
                # The SDK raises nested stream errors mid-iteration.
                outcome.failed = Failed(translate(exc).user_message)
            if outcome.failed is not None and self.capabilities.learn_from_failure(
                outcome.failed_raw, params
            ):
                outcome.reset()
                continue
            return

    def _turn_params(self, binding: Binding, request: RunRequest) -> dict[str, Any]:
        """The channel's model and instructions, and what keeps cost and abuse per user in check."""
        params: dict[str, Any] = {"prompt_cache_key": binding.conversation_id}
        if request.model:
            params["model"] = request.model
        if request.instructions:
            params["instructions"] = request.instructions
        if request.safety_identifier:
            params["safety_identifier"] = request.safety_identifier
        if self._max_output_tokens:
            params["max_output_tokens"] = self._max_output_tokens
        return params

    def _params(self, binding: Binding, tools: ToolSet, items: list[dict[str, Any]]) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self._model,
            "conversation": binding.conversation_id,
            "input": items,
            "instructions": self._instructions,
            "stream": True,
        }
        if self.capabilities.truncation:
            params["truncation"] = "auto"
        schemas: list[dict[str, Any]] = tools.schemas()
        if tools.file_search and binding.vector_store_id and self.capabilities.allows("file_search"):
            schemas.append({"type": "file_search", "vector_store_ids": [binding.vector_store_id]})
        if tools.code_interpreter and self.capabilities.allows("code_interpreter"):
            container: dict[str, Any] = {"type": "auto"}
            if binding.data_file_ids:
                container["file_ids"] = list(binding.data_file_ids)
            schemas.append({"type": "code_interpreter", "container": container})
        if schemas:
            params["tools"] = schemas
        return params


class _Outcome:
    """Accumulates one response stream into RunEvents, text and pending function calls."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.text = ""
        self.calls: list[dict[str, str]] = []
        self.failed: Failed | None = None
        self.failed_raw: str = ""
        self.usage: list[RunEvent] = []  # what a failed response still cost
        self.container_files: list[tuple[str, str, str]] = []
        self._streamed = False
        self._cited: set[str] = set()

    def feed(self, event: Any) -> list[RunEvent]:
        kind = getattr(event, "type", "")
        if kind == "response.output_text.delta":
            self._streamed = True
            self.text += event.delta
            return [TextDelta(event.delta)]
        if kind == "response.output_item.added":
            item_type = getattr(event.item, "type", "")
            hosted = TOOL_STATUS.get(item_type.removesuffix("_call"), "")
            if item_type.endswith("_call") and hosted:
                return [Status(hosted)]
            if item_type == "function_call":
                return [Status(f"calling {event.item.name}…")]
            return []
        if kind == "response.completed":
            return _usage(event.response) + self._completed(event.response)
        if kind in ("response.failed", "response.incomplete"):
            self.usage = _usage(event.response)
            error = getattr(event.response, "error", None)
            detail = getattr(error, "message", "") or kind
            self.failed_raw = f"{getattr(error, 'code', '')} {detail}"
            self.failed = Failed("The assistant could not finish its answer.")
            log.warning("response ended as %s: %s", kind, detail)
            return []
        if kind == "error":
            self.failed_raw = f"{getattr(event, 'code', '')} {getattr(event, 'message', '')}"
            self.failed = Failed("The assistant service reported an error mid-answer.")
            log.warning("stream error event: %s", self.failed_raw)
            return []
        return []

    def _completed(self, response: Any) -> list[RunEvent]:
        events: list[RunEvent] = []
        final_text = ""
        for item in getattr(response, "output", None) or []:
            item_type = getattr(item, "type", "")
            if item_type == "function_call":
                self.calls.append(
                    {
                        "name": item.name,
                        "call_id": item.call_id,
                        "arguments": item.arguments or "{}",
                    }
                )
            elif item_type == "message":
                for part in getattr(item, "content", None) or []:
                    final_text += getattr(part, "text", "") or ""
                    events.extend(self._citations(getattr(part, "annotations", None) or []))
        if not self._streamed and final_text:
            # Some compatible servers send no deltas; the completed response still has the text.
            self.text = final_text
            events.insert(0, TextDelta(final_text))
        return events

    def _citations(self, annotations: list[Any]) -> list[RunEvent]:
        events: list[RunEvent] = []
        for ann in annotations:
            if getattr(ann, "type", "") == "container_file_citation":
                ref = (ann.container_id, ann.file_id, ann.filename)
                if ref not in self.container_files:
                    self.container_files.append(ref)
            if getattr(ann, "type", "") == "file_citation":
                name = getattr(ann, "filename", "") or getattr(ann, "file_id", "")
                if name not in self._cited:
                    self._cited.add(name)
                    events.append(Citation(name, getattr(ann, "file_id", "")))
        return events


def _usage(response: Any) -> list[RunEvent]:
    usage = getattr(response, "usage", None)
    if usage is None:
        return []
    details = getattr(usage, "input_tokens_details", None)
    return [
        Usage(
            model=str(getattr(response, "model", "") or ""),
            input_tokens=int(getattr(usage, "input_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "output_tokens", 0) or 0),
            cached_tokens=int(getattr(details, "cached_tokens", 0) or 0),
        )
    ]


def _user_items(request: RunRequest) -> list[dict[str, Any]]:
    """Only this turn's new items: the conversation already holds everything before them."""
    items: list[dict[str, Any]] = []
    if request.seed:
        context = SEED_HEADER + "\n".join(request.seed)
        items.append({"type": "message", "role": "developer", "content": context})
    images = [
        {"type": "input_image", "file_id": a.remote_id, "detail": "auto"}
        for a in request.attached
        if a.usage == "vision" and not a.error
    ]
    for i, inbound in enumerate(request.inputs):
        content: list[dict[str, Any]] = [{"type": "input_text", "text": inbound.attributed_text()}]
        if i == len(request.inputs) - 1:
            content += images
        items.append({"type": "message", "role": "user", "content": content})
    return items


def _conversation_error(exc: openai.APIStatusError, binding: Binding) -> BackendError:
    body = str(getattr(exc, "body", "") or exc.message).lower()
    if "conversation" in body and ("not found" in body or "not_found" in body or exc.status_code == 404):
        return ConversationGone(
            f"conversation {binding.conversation_id} is gone",
            user_message="This thread's earlier conversation is gone on the server; starting a new one.",
        )
    return translate(exc)
