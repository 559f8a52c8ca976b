"""The default backend: Conversations (= thread) + Responses (= run) + vector stores."""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import aiohttp
import openai
from openai import AsyncOpenAI

from bot.assistant import items, runner
from bot.assistant.base import (
    NO_CODE_INTERPRETER,
    SEED_HEADER,
    Attached,
    BackendError,
    Binding,
    Completed,
    ConversationGone,
    Failed,
    ItemsStored,
    Notice,
    OutputFile,
    RunEvent,
    RunRequest,
    TextDelta,
)
from bot.assistant.capabilities import Capabilities
from bot.assistant.errors import RETRY_LATER, translate
from bot.assistant.responses_stream import ResponseOutcome
from bot.assistant.runner import STOPPED, CallsPending, Step, ToolOutput
from bot.assistant.uploads import NOT_TAKEN, UNREADABLE_IMAGE, UnreadableImage, Uploads
from bot.assistant.wire import StreamBroken, Wire
from bot.attachments import FileKind, LocalFile
from bot.inbound import Inbound, ThreadKey
from bot.tools import ToolSet

log = logging.getLogger(__name__)


class ResponsesBackend:
    """Conversations + Responses: one conversation per Slack thread, one response per Turn."""

    name = "responses"

    def __init__(
        self,
        client: AsyncOpenAI,
        *,
        session: aiohttp.ClientSession | None = None,
        model: str,
        instructions: str,
        capabilities: Capabilities | None = None,
        code_interpreter: bool = False,
        store_days: int = 90,
        inline_image_max_px: int = 2048,
        max_output_tokens: int | None = None,
    ) -> None:
        self._client = client
        # The client's own pool when given, so the turns' calls and the SDK's share it.
        self._wire = Wire(client, session)
        self._max_output_tokens = max_output_tokens
        self._model = model
        self._instructions = instructions
        self._code_interpreter = code_interpreter
        self._store_days = store_days
        self.capabilities = capabilities or Capabilities()
        self._uploads = Uploads(client, self.capabilities, inline_max_px=inline_image_max_px)

    async def open(self, key: ThreadKey, metadata: dict[str, str]) -> Binding:
        try:
            conv = await self._wire.post("conversations", {"metadata": metadata})
        except openai.OpenAIError as exc:
            raise translate(exc) from None
        if not isinstance(conv.get("id"), str) or not conv["id"]:
            raise BackendError("OpenAI answered a new conversation without its id", user_message=RETRY_LATER)
        now = time.time()
        return Binding(self.name, conv["id"], created_at=now, last_active=now)

    async def attach(self, binding: Binding, files: list[LocalFile]) -> tuple[Binding, list[Attached]]:
        """Documents → the thread's vector store, images → vision inputs, data → code interpreter."""
        attached: list[Attached] = []
        for file in files:
            try:
                binding, item = await self._attach_one(binding, file)
            except openai.OpenAIError as exc:
                log.warning("could not upload %s: %s", file.name, translate(exc))
                item = Attached(file.name, "", "none", error=NOT_TAKEN)
            except UnreadableImage:
                item = Attached(file.name, "", "none", error=UNREADABLE_IMAGE)
            attached.append(item)
        return binding, attached

    async def _attach_one(self, binding: Binding, file: LocalFile) -> tuple[Binding, Attached]:
        kind = file.kind
        if kind is FileKind.IMAGE:
            image = await self._uploads.image(file)
            return binding, Attached(file.name, image.file_id, "vision", data_url=image.data_url)
        if kind is FileKind.DATA:
            if not self._code_interpreter or not self.capabilities.allows("code_interpreter"):
                return binding, Attached(file.name, "", "none", error=NO_CODE_INTERPRETER)
            remote = await self._uploads.document(file)
            binding = replace(binding, data_file_ids=(*binding.data_file_ids, remote))
            return binding, Attached(file.name, remote, "code_interpreter")
        if not binding.vector_store_id:
            store = await self._client.vector_stores.create(
                name=f"slack-thread-{binding.conversation_id}"[:64],
                expires_after={"anchor": "last_active_at", "days": self._store_days},
                metadata={"conversation": binding.conversation_id},
            )
            binding = replace(binding, vector_store_id=store.id)
        remote = await self._uploads.document(file)
        indexed = await self._client.vector_stores.files.create_and_poll(
            remote, vector_store_id=binding.vector_store_id, poll_interval_ms=500
        )
        if indexed.status != "completed":
            reason = getattr(indexed.last_error, "message", "") or indexed.status
            log.warning("indexing %s failed: %s", file.name, reason)
            return binding, Attached(file.name, remote, "file_search", error=f"indexing failed ({reason})")
        return binding, Attached(file.name, remote, "file_search")

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

    async def keep_answer(self, binding: Binding, text: str) -> None:
        """A response cut off by closing its stream adds nothing to the conversation: add what was said."""
        item = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}
        try:
            await self._client.conversations.items.create(binding.conversation_id, items=[item])  # type: ignore[list-item]
        except openai.OpenAIError as exc:
            raise translate(exc) from None

    async def add(self, binding: Binding, inputs: Sequence[Inbound]) -> list[ItemsStored]:
        return await items.add_conversation_messages(self._client, binding.conversation_id, inputs)

    async def forget_items(self, binding: Binding, item_ids: Sequence[str]) -> None:
        ids = await items.resolve_refs(self._client, item_ids)
        await items.delete_conversation_items(self._client, binding.conversation_id, ids)

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
        if not problems:
            await self._probe_uploads()
        return problems

    async def _probe_uploads(self) -> None:
        try:
            await self._uploads.probe()
        except openai.OpenAIError as exc:
            log.info("could not probe image uploads: %s", translate(exc))

    def notes(self) -> list[str]:
        return self.capabilities.notes()

    async def aclose(self) -> None:
        await self._wire.aclose()
        await self._client.close()

    @property
    def client(self) -> AsyncOpenAI:
        return self._client

    def run(self, binding: Binding, request: RunRequest) -> AsyncGenerator[RunEvent, None]:
        model = _ResponsesRun(self, binding, request)
        return runner.run(model, request.tools, request.context, request.on_kept or runner.nothing)

    async def generated_files(self, cited: list[tuple[str, str, str]]) -> AsyncIterator[RunEvent]:
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

    async def keep(self, binding: Binding, items: list[dict[str, Any]]) -> bool:
        """A failed response adds nothing to the conversation; store what the users said."""
        try:
            await self._client.conversations.items.create(binding.conversation_id, items=items)  # type: ignore[arg-type]
            return True
        except openai.OpenAIError as exc:
            log.warning("could not keep user items in %s: %s", binding.conversation_id, translate(exc))
            return False

    async def respond(
        self, binding: Binding, request: RunRequest, items: list[dict[str, Any]], outcome: ResponseOutcome
    ) -> AsyncGenerator[RunEvent, None]:
        """One streamed `responses.create`, retried once without an option the server refused."""
        while True:
            params = self._params(binding, request.tools, items) | self._turn_params(binding, request)
            try:
                async with self._wire.stream("responses", params) as batches:
                    try:
                        async for batch in batches:
                            for out in _joined(e for event in batch for e in outcome.feed(event)):
                                yield out
                    except StreamBroken as exc:
                        log.warning("response stream broke: %s", exc)
                        outcome.failed = outcome.failed or Failed(STOPPED)
            except openai.BadRequestError as exc:
                if self.capabilities.learn(exc, params):
                    continue
                raise _conversation_error(exc, binding) from None
            except openai.NotFoundError as exc:
                raise _conversation_error(exc, binding) from None
            except openai.OpenAIError as exc:
                raise translate(exc) from None
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
            "instructions": self._instructions,
            "stream": True,
        }
        if items:
            # Omitted when the conversation already holds everything (a resumed Turn).
            params["input"] = items
        if self.capabilities.truncation:
            params["truncation"] = "auto"
        schemas = self._tools(binding, tools)
        if schemas:
            params["tools"] = schemas
        return params

    def _tools(self, binding: Binding, tools: ToolSet) -> list[dict[str, Any]]:
        schemas: list[dict[str, Any]] = tools.schemas()
        if tools.file_search and binding.vector_store_id and self.capabilities.allows("file_search"):
            schemas.append({"type": "file_search", "vector_store_ids": [binding.vector_store_id]})
        if tools.code_interpreter and self.capabilities.allows("code_interpreter"):
            container: dict[str, Any] = {"type": "auto"}
            if binding.data_file_ids:
                container["file_ids"] = list(binding.data_file_ids)
            schemas.append({"type": "code_interpreter", "container": container})
        if tools.web_search and self.capabilities.allows("web_search"):
            search: dict[str, Any] = {"type": "web_search"}
            if tools.web_search_domains:
                search["filters"] = {"allowed_domains": list(tools.web_search_domains)}
            schemas.append(search)
        if self.capabilities.allows("mcp"):
            schemas.extend(dict(server) for server in tools.mcp_servers)
        return schemas


class _ResponsesRun:
    """The model calls of one turn: the user's items first, then function outputs."""

    def __init__(self, backend: ResponsesBackend, binding: Binding, request: RunRequest) -> None:
        self._backend = backend
        self._binding = binding
        self._request = request
        self._user_items = _user_items(request)
        self._first = True

    async def call(self, outputs: Sequence[ToolOutput]) -> AsyncGenerator[Step, None]:
        first = self._first
        if self._first:
            self._first = False
            sent = [*self._user_items, *_approval_items(self._request)]
        else:
            sent = [
                {"type": "function_call_output", "call_id": o.call_id, "output": o.output} for o in outputs
            ]
        outcome = ResponseOutcome()
        # Closed with the call, so the HTTP stream is too (not later, by the event loop).
        async with contextlib.aclosing(
            self._backend.respond(self._binding, self._request, sent, outcome)
        ) as events:
            async for event in events:
                yield event
        if outcome.failed is not None:
            yield outcome.failed
            return
        if first:
            kept = self._request.kept
            sent_now = [m for m in self._request.inputs if m.ts not in kept]
            for stored in items.user_item_refs(outcome.response_id, sent_now, sent):
                yield stored
        if outcome.message_ids:
            yield ItemsStored("", tuple(outcome.message_ids))
        for problem in dict.fromkeys(outcome.mcp_errors):
            log.warning("MCP server failed: %s", problem)
            yield Notice(f"⚠️ A tool server failed, so I answered without it ({problem}).")
        async for produced in self._backend.generated_files(outcome.container_files):
            yield produced
        if outcome.calls:
            yield CallsPending(tuple(outcome.calls))
            return
        yield Completed(outcome.text)

    async def keep(self) -> bool:
        if not self._user_items:
            return True
        return await self._backend.keep(self._binding, self._user_items)

    async def aclose(self) -> None:
        return None


def _approval_items(request: RunRequest) -> list[dict[str, Any]]:
    return [
        {"type": "mcp_approval_response", "approval_request_id": a.request_id, "approve": a.approve}
        for a in request.approvals
    ]


def _user_items(request: RunRequest) -> list[dict[str, Any]]:
    """Only this turn's new items: the conversation already holds everything before them."""
    items: list[dict[str, Any]] = []
    last = len(request.inputs) - 1
    if request.seed and not (request.inputs and request.inputs[0].ts in request.kept):
        context = SEED_HEADER + "\n".join(request.seed)
        items.append({"type": "message", "role": "developer", "content": context})
    images = [
        {"type": "input_image", "image_url": a.data_url, "detail": "auto"}
        if a.data_url
        else {"type": "input_image", "file_id": a.remote_id, "detail": "auto"}
        for a in request.attached
        if a.usage == "vision" and not a.error
    ]
    for i, inbound in enumerate(request.inputs):
        if inbound.ts in request.kept:
            continue
        content: list[dict[str, Any]] = [{"type": "input_text", "text": inbound.attributed_text()}]
        if i == last:
            content += images
        items.append({"type": "message", "role": "user", "content": content})
    return items


def _joined(events: Iterable[RunEvent]) -> Iterator[RunEvent]:
    """Adjacent text deltas as one: the reply batches its writes anyway."""
    text: list[str] = []
    for event in events:
        if isinstance(event, TextDelta):
            text.append(event.text)
            continue
        if text:
            yield TextDelta("".join(text))
            text = []
        yield event
    if text:
        yield TextDelta("".join(text))


def _conversation_error(exc: openai.APIStatusError, binding: Binding) -> BackendError:
    body = str(getattr(exc, "body", "") or exc.message).lower()
    if "conversation" in body and ("not found" in body or "not_found" in body or exc.status_code == 404):
        return ConversationGone(
            f"conversation {binding.conversation_id} is gone",
            user_message="This thread's earlier conversation is gone on the server; starting a new one.",
        )
    return translate(exc)
