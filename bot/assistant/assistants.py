"""The legacy backend: Assistants v2 threads (= conversation) and streamed runs (= one Turn)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import re
import time
import warnings
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, TypeVar, cast

import openai
from openai import AsyncOpenAI, AsyncStream
from openai.types.beta import AssistantStreamEvent, AssistantToolParam
from openai.types.beta.threads import Run

from bot.assistant import items, runner
from bot.assistant.base import (
    NO_CODE_INTERPRETER,
    SEED_HEADER,
    TOOL_STATUS,
    Attached,
    BackendError,
    Binding,
    Citation,
    Completed,
    ConversationBusy,
    ConversationGone,
    Failed,
    ItemsStored,
    OutputFile,
    RunEvent,
    RunRequest,
    Status,
    TextDelta,
    Usage,
)
from bot.assistant.capabilities import Capabilities
from bot.assistant.errors import RETRY_LATER, translate
from bot.assistant.runner import CallsPending, FunctionCall, Step, ToolOutput
from bot.assistant.uploads import NOT_TAKEN, UNREADABLE_IMAGE, UnreadableImage, Uploads
from bot.attachments import FileKind, LocalFile
from bot.inbound import Inbound, ThreadKey

log = logging.getLogger(__name__)

T = TypeVar("T")

ACTIVE = frozenset({"queued", "in_progress", "requires_action", "cancelling"})
RUN_ENDINGS = {
    "thread.run.failed": "The assistant could not finish its answer.",
    "thread.run.incomplete": "The assistant could not finish its answer.",
    "thread.run.expired": "The assistant took too long and its run expired.",
    "thread.run.cancelled": "The assistant's run was cancelled before it answered.",
}
BUSY = "The assistant is still busy with an earlier message in this thread. Please try again in a minute."
MISSING_ASSISTANT = "The bot's assistant no longer exists on the server. Please tell the app's admin."
# 【4:0†handbook.md】: file_search source markers inside the answer text.
MARKER = re.compile(r"【[^】]*】")
MAX_MARKER_CHARS = 200
# Retries of a call an active run blocked; each waits for that run to end first.
BUSY_ATTEMPTS = 3
POLL_FIRST_S = 0.25
POLL_MAX_S = 2.0
POSTED_MEMORY = 10_000


@contextlib.contextmanager
def _legacy() -> Iterator[None]:
    """Silence the SDK's DeprecationWarning for Assistants calls, here only.

    The warning fires when the method is called, not when its coroutine is awaited, so the
    block must contain the call and no await: catch_warnings changes process-wide state that
    other tasks would otherwise see while this one is suspended.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


class AssistantsBackend:
    """Assistants v2: one thread per Slack thread, one streamed run per Turn."""

    name = "assistants"

    def __init__(
        self,
        client: AsyncOpenAI,
        *,
        assistant_id: str,
        instructions: str = "",
        code_interpreter: bool = False,
        stale_run_s: float = 300.0,
        busy_wait_s: float = 20.0,
        inline_image_max_px: int = 2048,
    ) -> None:
        self._client = client
        self.capabilities = Capabilities()
        self._uploads = Uploads(client, self.capabilities, inline_max_px=inline_image_max_px)
        self._assistant_id = assistant_id
        self._instructions = instructions
        self._code_interpreter = code_interpreter
        # A run older than a Turn may last was left by a worker that died: nobody will finish it.
        self._stale_run_s = stale_run_s
        self._busy_wait_s = busy_wait_s
        self._extra_instructions: str | None = None  # decided once, on the first run
        self._filenames: dict[str, str] = {}
        # Messages already added (key → message id), so a Turn retried after ConversationBusy
        # does not repeat them.
        self._posted: OrderedDict[tuple[str, str], str] = OrderedDict()

    # ------------------------------------------------------------------ threads and files

    async def open(self, key: ThreadKey, metadata: dict[str, str]) -> Binding:
        with _legacy():
            pending = self._client.beta.threads.create(metadata=metadata)
        try:
            thread = await pending
        except openai.OpenAIError as exc:
            raise translate(exc) from None
        now = time.time()
        return Binding(self.name, thread.id, created_at=now, last_active=now)

    async def attach(self, binding: Binding, files: list[LocalFile]) -> tuple[Binding, list[Attached]]:
        """Upload only: the files ride on this Turn's last message as attachments or image parts."""
        attached: list[Attached] = []
        for file in files:
            try:
                attached.append(await self._attach_one(file))
            except openai.OpenAIError as exc:
                log.warning("could not upload %s: %s", file.name, translate(exc))
                attached.append(Attached(file.name, "", "none", error=NOT_TAKEN))
            except UnreadableImage:
                attached.append(Attached(file.name, "", "none", error=UNREADABLE_IMAGE))
        return binding, attached

    async def _attach_one(self, file: LocalFile) -> Attached:
        kind = file.kind
        if kind is FileKind.IMAGE:
            image = await self._uploads.image(file)
            return Attached(file.name, image.file_id, "vision", data_url=image.data_url)
        if kind is FileKind.DATA:
            if not self._code_interpreter:
                return Attached(file.name, "", "none", error=NO_CODE_INTERPRETER)
            return Attached(file.name, await self._upload(file), "code_interpreter")
        return Attached(file.name, await self._upload(file), "file_search")

    async def _upload(self, file: LocalFile) -> str:
        file_id = await self._uploads.document(file)
        self._filenames[file_id] = file.name
        return file_id

    async def forget_file(self, binding: Binding, remote_id: str) -> None:
        """A file deleted in Slack leaves the thread's vector store and the server."""
        try:
            with _legacy():
                pending = self._client.beta.threads.retrieve(binding.conversation_id)
            try:
                thread = await pending
            except openai.NotFoundError:
                thread = None
            resources = thread.tool_resources if thread is not None else None
            search = resources.file_search if resources is not None else None
            for store in (search.vector_store_ids or []) if search is not None else []:
                with contextlib.suppress(openai.NotFoundError):
                    await self._client.vector_stores.files.delete(remote_id, vector_store_id=store)
            with contextlib.suppress(openai.NotFoundError):
                await self._client.files.delete(remote_id)
        except openai.OpenAIError as exc:
            raise translate(exc) from None

    async def keep_answer(self, binding: Binding, text: str) -> None:
        """Nothing to add: a cancelled run leaves its message in the thread, marked incomplete."""
        return None

    async def add(self, binding: Binding, inputs: Sequence[Inbound]) -> list[ItemsStored]:
        """Store messages in the thread without a run (the next run sees them)."""
        stored: list[ItemsStored] = []
        for inbound in inputs:
            params = {
                "role": "user",
                "content": inbound.attributed_text(),
                "metadata": {"slack_ts": inbound.message_ts, "slack_user": inbound.user},
            }
            try:
                message_id = await self._add_message(binding.conversation_id, f"message:{inbound.ts}", params)
            except openai.OpenAIError as exc:
                raise translate(exc) from None
            stored.append(ItemsStored(inbound.message_ts, (message_id,)))
        return stored

    async def forget_items(self, binding: Binding, item_ids: Sequence[str]) -> None:
        await items.delete_thread_messages(self._client, binding.conversation_id, item_ids)

    async def annotate(self, binding: Binding, metadata: dict[str, str]) -> None:
        with _legacy():
            pending = self._client.beta.threads.update(binding.conversation_id, metadata=metadata)
        try:
            await pending
        except openai.OpenAIError as exc:
            raise translate(exc) from None

    async def close(self, binding: Binding) -> None:
        with _legacy():
            pending = self._client.beta.threads.delete(binding.conversation_id)
        try:
            await pending
        except openai.NotFoundError:
            return
        except openai.OpenAIError as exc:
            raise translate(exc) from None

    async def check(self) -> list[str]:
        """Probe the server: returns human-readable problems (empty when all is well)."""
        with _legacy():
            pending = self._client.beta.assistants.retrieve(self._assistant_id)
        try:
            assistant = await pending
        except openai.NotFoundError:
            return [
                f"assistant {self._assistant_id!r} does not exist "
                "(create one with `threadbridge assistant create` and set ASSISTANT_ID)"
            ]
        except openai.OpenAIError as exc:
            return [f"cannot reach the OpenAI API: {translate(exc)}"]
        try:
            await self._client.models.retrieve(assistant.model)
        except openai.NotFoundError:
            return [f"model {assistant.model!r} of assistant {self._assistant_id!r} is not served"]
        except openai.OpenAIError as exc:
            return [f"cannot reach the OpenAI API: {translate(exc)}"]
        try:
            await self._uploads.probe()
        except openai.OpenAIError as exc:
            log.info("could not probe image uploads: %s", translate(exc))
        return []

    def notes(self) -> list[str]:
        return self.capabilities.notes()

    async def aclose(self) -> None:
        await self._client.close()

    # ------------------------------------------------------------------ runs

    def run(self, binding: Binding, request: RunRequest) -> AsyncGenerator[RunEvent, None]:
        model = _AssistantsRun(self, binding.conversation_id, request)
        return runner.run(model, request.tools, request.context, request.on_kept or runner.nothing)

    async def add_messages(self, thread_id: str, request: RunRequest) -> list[ItemsStored]:
        """Add this Turn's messages; returns the id each Slack message got."""
        stored: list[ItemsStored] = []
        for key, params in _messages(request):
            message_id = await self._add_message(thread_id, key, params)
            slack_ts = params.get("metadata", {}).get("slack_ts", "")
            if slack_ts and message_id:
                stored.append(ItemsStored(slack_ts, (message_id,)))
        return stored

    async def start_run(self, thread_id: str, request: RunRequest) -> AsyncStream[AssistantStreamEvent]:
        extra = await self._additional_instructions()
        return await self._unblocked(thread_id, lambda: self._start(thread_id, request, extra))

    async def _add_message(self, thread_id: str, key: str, params: dict[str, Any]) -> str:
        if (thread_id, key) in self._posted:
            return self._posted[(thread_id, key)]

        def create() -> Awaitable[Any]:
            with _legacy():
                return self._client.beta.threads.messages.create(thread_id, **params)

        message = await self._unblocked(thread_id, create)
        message_id = str(getattr(message, "id", "") or "")
        self._posted[(thread_id, key)] = message_id
        while len(self._posted) > POSTED_MEMORY:
            self._posted.popitem(last=False)
        return message_id

    def _start(
        self, thread_id: str, request: RunRequest, extra: str | None
    ) -> Awaitable[AsyncStream[AssistantStreamEvent]]:
        tools = request.tools
        schemas: list[dict[str, Any]] = tools.assistant_schemas()
        if tools.file_search:
            schemas.append({"type": "file_search"})
        if tools.code_interpreter:
            schemas.append({"type": "code_interpreter"})
        with _legacy():
            # tools= is always sent: it replaces the assistant's own, which may include
            # functions this bot cannot run.
            return self._client.beta.threads.runs.create(
                thread_id,
                assistant_id=self._assistant_id,
                # A channel's own instructions replace the assistant's; the bot's are added to them.
                instructions=request.instructions or openai.omit,
                additional_instructions=extra if extra and not request.instructions else openai.omit,
                model=request.model or openai.omit,
                tools=cast("list[AssistantToolParam]", schemas),
                stream=True,
            )

    async def submit(
        self, thread_id: str, run_id: str, outputs: list[dict[str, str]]
    ) -> AsyncStream[AssistantStreamEvent]:
        with _legacy():
            pending = self._client.beta.threads.runs.submit_tool_outputs(
                run_id,
                thread_id=thread_id,
                tool_outputs=cast("list[Any]", outputs),
                stream=True,
            )
        try:
            return await pending
        except openai.NotFoundError as exc:
            raise _not_found(exc, thread_id) from None
        except openai.OpenAIError as exc:
            raise translate(exc) from None

    async def consume(
        self, stream: AsyncStream[AssistantStreamEvent], outcome: _Outcome
    ) -> AsyncGenerator[RunEvent, None]:
        try:
            async with stream:
                async for event in stream:
                    for item in outcome.feed(event):
                        if isinstance(item, _Cite):
                            if item.file_id not in outcome.cited:
                                outcome.cited.add(item.file_id)
                                yield Citation(await self._filename(item.file_id, item.hint), item.file_id)
                        else:
                            yield item
        except openai.APIError as exc:
            # The SDK raises nested stream errors (and broken connections) mid-iteration.
            log.warning("run stream broke: %s", translate(exc))
            outcome.failed = Failed(translate(exc).user_message)
            return
        outcome.close()

    async def generated_files(self, files: dict[str, _Output]) -> AsyncIterator[RunEvent]:
        """Download what the code interpreter made (charts, CSVs) so it can be posted to Slack."""
        for file_id, output in files.items():
            try:
                content = await self._client.files.content(file_id)
                name = PurePosixPath(output.name or await self._filename(file_id, "")).name or file_id
            except openai.OpenAIError as exc:
                log.warning("could not fetch generated file %s: %s", file_id, translate(exc))
                continue
            if output.image:
                if not PurePosixPath(name).suffix:
                    name += ".png"
                mimetype = "image/png"
            else:
                mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            yield OutputFile(name, content.content, mimetype)

    async def _filename(self, file_id: str, hint: str) -> str:
        """A cited or generated file's name; the marker's or the id when the file is gone."""
        if file_id not in self._filenames:
            try:
                self._filenames[file_id] = (await self._client.files.retrieve(file_id)).filename
            except openai.OpenAIError as exc:
                log.info("could not name file %s: %s", file_id, translate(exc))
                return hint or file_id
        return self._filenames[file_id]

    async def _additional_instructions(self) -> str | None:
        """The bot's instructions, unless the assistant already has exactly these."""
        if self._extra_instructions is None:
            if not self._instructions:
                self._extra_instructions = ""
                return None
            with _legacy():
                pending = self._client.beta.assistants.retrieve(self._assistant_id)
            try:
                assistant = await pending
            except openai.NotFoundError:
                raise BackendError(
                    f"assistant {self._assistant_id} not found", user_message=MISSING_ASSISTANT
                ) from None
            except openai.OpenAIError as exc:
                # Sending them twice beats dropping them; decide again on the next run.
                log.warning("could not read assistant %s: %s", self._assistant_id, translate(exc))
                return self._instructions
            same = (assistant.instructions or "").strip() == self._instructions.strip()
            self._extra_instructions = "" if same else self._instructions
        return self._extra_instructions or None

    # ------------------------------------------------------------------ a thread busy with a run

    async def _unblocked(self, thread_id: str, call: Callable[[], Awaitable[T]]) -> T:
        """`call()`, waiting out (or cancelling) a run that keeps the thread from taking it.

        The API refuses new messages and runs while a run is active ("Can't add messages to
        thread_… while a run run_… is active."); that run may belong to a worker that died.
        """
        for _ in range(BUSY_ATTEMPTS):
            try:
                return await call()
            except openai.NotFoundError as exc:
                raise _not_found(exc, thread_id) from None
            except openai.BadRequestError as exc:
                if not _blocked_by_run(exc):
                    raise translate(exc) from None
                log.info("thread %s has an active run; waiting for it to end", thread_id)
            except openai.OpenAIError as exc:
                raise translate(exc) from None
            await self._wait_idle(thread_id)
        raise ConversationBusy(f"thread {thread_id} stays busy", retryable=True, user_message=BUSY)

    async def _wait_idle(self, thread_id: str) -> None:
        """Poll the thread's latest run until it ends; cancel it when nobody will finish it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._busy_wait_s
        delay = POLL_FIRST_S
        try:
            with _legacy():
                listing = self._client.beta.threads.runs.list(thread_id, limit=1)
            page = await listing
            if not page.data:
                return
            run = page.data[0]
            cancelled = False
            while run.status in ACTIVE:
                if not cancelled and self._orphaned(run):
                    log.warning("cancelling run %s left %s on thread %s", run.id, run.status, thread_id)
                    cancelled = await self._cancel_quietly(thread_id, run.id)
                if loop.time() >= deadline:
                    raise ConversationBusy(
                        f"run {run.id} on thread {thread_id} is still {run.status}",
                        retryable=True,
                        user_message=BUSY,
                    )
                await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
                delay = min(delay * 2, POLL_MAX_S)
                with _legacy():
                    pending = self._client.beta.threads.runs.retrieve(run.id, thread_id=thread_id)
                run = await pending
        except openai.NotFoundError as exc:
            raise _not_found(exc, thread_id) from None
        except openai.OpenAIError as exc:
            raise translate(exc) from None

    def _orphaned(self, run: Run) -> bool:
        # We hold the Slack thread's lock, so nobody else will submit this run's tool outputs;
        # and no live Turn lasts longer than the turn timeout.
        if run.status == "cancelling":
            return False  # already on its way out
        return run.status == "requires_action" or time.time() - run.created_at > self._stale_run_s

    async def abandon(self, thread_id: str, run_id: str) -> None:
        if not run_id:
            # Cut off before the stream named the run: it is the thread's latest, if still active.
            with _legacy():
                listing = self._client.beta.threads.runs.list(thread_id, limit=1)
            try:
                page = await listing
            except openai.OpenAIError as exc:
                log.info("could not look up the run on %s: %s", thread_id, translate(exc))
                return
            if not page.data or page.data[0].status not in ACTIVE:
                return
            run_id = page.data[0].id
        await self._cancel_quietly(thread_id, run_id)

    async def _cancel_quietly(self, thread_id: str, run_id: str) -> bool:
        with _legacy():
            pending = self._client.beta.threads.runs.cancel(run_id, thread_id=thread_id)
        try:
            await pending
            return True
        except openai.OpenAIError as exc:
            # Typically 400: it ended on its own meanwhile.
            log.info("could not cancel run %s: %s", run_id, translate(exc))
            return False


class _AssistantsRun:
    """The model calls of one turn: add the messages and start a run, then submit outputs."""

    def __init__(self, backend: AssistantsBackend, thread_id: str, request: RunRequest) -> None:
        self._backend = backend
        self._thread_id = thread_id
        self._request = request
        self._added = False  # this turn's messages are in the thread
        self._started = False
        self._ended = False  # the run reached a terminal state: nothing left to cancel
        self._run_id = ""
        self._files: dict[str, _Output] = {}  # what the code interpreter made, over all rounds
        self._outcome = _Outcome(set())  # cited files carry over: one footnote per file

    async def call(self, outputs: Sequence[ToolOutput]) -> AsyncGenerator[Step, None]:
        backend, thread_id = self._backend, self._thread_id
        stored: list[ItemsStored] = []
        if not self._started:
            stored = await backend.add_messages(thread_id, self._request)
            self._added = True
            stream = await backend.start_run(thread_id, self._request)
            self._started = True
        else:
            submitted = [{"tool_call_id": o.call_id, "output": o.output} for o in outputs]
            stream = await backend.submit(thread_id, self._run_id, submitted)
        outcome = self._outcome = _Outcome(self._outcome.cited)
        # Closed with the call, so the HTTP stream is too (not later, by the event loop).
        async with contextlib.aclosing(backend.consume(stream, outcome)) as events:
            async for event in events:
                yield event
        self._run_id = outcome.run_id or self._run_id
        self._files.update((k, v) for k, v in outcome.files.items() if k not in self._files)
        for item in stored:
            yield item  # in the thread whatever the run does, so deleting them in Slack works too
        if outcome.failed is not None:
            self._ended = outcome.ended
            yield outcome.failed
            return
        if outcome.message_ids:
            yield ItemsStored("", tuple(outcome.message_ids))
        if outcome.calls:
            yield CallsPending(tuple(FunctionCall(c.id, c.name, c.arguments) for c in outcome.calls))
            return
        self._ended = True
        async for produced in backend.generated_files(self._files):
            yield produced
        yield Completed()

    async def keep(self) -> bool:
        return self._added

    async def aclose(self) -> None:
        if self._started and not self._ended:
            # A run left waiting for tool outputs, or abandoned mid-stream (the Turn timed
            # out), would block the thread until it expires; free it for the next Turn.
            await self._backend.abandon(self._thread_id, self._run_id or self._outcome.run_id)


# --------------------------------------------------------------------------- stream → RunEvents


@dataclass(frozen=True, slots=True)
class _Cite:
    """A file_search citation whose filename is still to be looked up."""

    file_id: str
    hint: str


@dataclass(frozen=True, slots=True)
class _Call:
    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class _Output:
    name: str  # from a sandbox:/mnt/data/… link, else "" (ask the Files API)
    image: bool


class _Markers:
    """Drops 【…】 source markers from streamed text, also when one is split across deltas."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, text: str) -> str:
        text = MARKER.sub("", self._held + text)
        self._held = ""
        start = text.rfind("【")
        if start >= 0 and len(text) - start <= MAX_MARKER_CHARS:
            self._held, text = text[start:], text[:start]
        return text

    def flush(self) -> str:
        # An unclosed "【" was not a marker after all.
        held, self._held = self._held, ""
        return held


class _Outcome:
    """Accumulates one run stream (up to requires_action or the end) into RunEvents."""

    def __init__(self, cited: set[str]) -> None:
        self.run_id = ""
        self.text = ""
        self.calls: list[_Call] = []
        self.files: dict[str, _Output] = {}
        self.cited = cited
        self.failed: Failed | None = None
        self.ended = False
        self.message_ids: list[str] = []  # the answer's messages, for deletes in Slack
        self._waiting = False
        self._announced: set[tuple[str, int]] = set()
        self._markers: dict[str, _Markers] = {}
        self._streamed: set[str] = set()

    def feed(self, event: Any) -> list[RunEvent | _Cite]:
        kind = getattr(event, "event", "")
        data: Any = getattr(event, "data", None)
        if kind.startswith("thread.run.") and not kind.startswith("thread.run.step."):
            self.run_id = getattr(data, "id", "") or self.run_id
        if kind == "thread.message.delta":
            return self._delta(data)
        if kind == "thread.message.completed":
            return self._message(data)
        if kind == "thread.run.step.created":
            return self._tool_calls(data.id, getattr(data, "step_details", None))
        if kind == "thread.run.step.delta":
            return self._tool_calls(data.id, getattr(data.delta, "step_details", None))
        if kind == "thread.run.requires_action":
            self._waiting = True
            required = data.required_action
            for call in required.submit_tool_outputs.tool_calls if required is not None else []:
                self.calls.append(_Call(call.id, call.function.name, call.function.arguments or "{}"))
            return []
        if kind == "thread.run.completed":
            self.ended = True
            return [*_usage(data)]
        if kind in RUN_ENDINGS:
            self.ended = True
            error = getattr(data, "last_error", None)
            detail = getattr(error, "message", "") or getattr(data, "incomplete_details", None) or kind
            log.warning("run %s ended as %s: %s", self.run_id, kind, detail)
            rate_limited = getattr(error, "code", "") == "rate_limit_exceeded"
            self.failed = Failed(RETRY_LATER if rate_limited else RUN_ENDINGS[kind])
            return [*_usage(data)]  # an unfinished run still cost its tokens
        if kind == "error":
            log.warning("stream error event: %s %s", getattr(data, "code", ""), getattr(data, "message", ""))
            self.failed = Failed("The assistant service reported an error mid-answer.")
            return []
        return []

    def close(self) -> None:
        """The stream is over: it must have ended the run or asked for tool outputs."""
        if self.failed is None and not self.ended and not self._waiting:
            log.warning("run %s stream ended without a final state", self.run_id)
            self.failed = Failed("The assistant service stopped streaming mid-answer.")

    def _tool_calls(self, step_id: str, details: Any) -> list[RunEvent | _Cite]:
        if getattr(details, "type", "") != "tool_calls":
            return []
        events: list[RunEvent | _Cite] = []
        for position, call in enumerate(getattr(details, "tool_calls", None) or []):
            index = getattr(call, "index", position)
            kind = getattr(call, "type", "")
            text = TOOL_STATUS.get(kind, "")
            if kind == "function":
                name = getattr(getattr(call, "function", None), "name", None)
                text = f"calling {name}…" if name else ""
            if text and (step_id, index) not in self._announced:
                self._announced.add((step_id, index))
                events.append(Status(text))
        return events

    def _delta(self, data: Any) -> list[RunEvent | _Cite]:
        events: list[RunEvent | _Cite] = []
        message_id = getattr(data, "id", "")
        for part in getattr(data.delta, "content", None) or []:
            if part.type == "image_file" and part.image_file is not None and part.image_file.file_id:
                self._output(part.image_file.file_id, "", image=True)
            elif part.type == "text" and part.text is not None:
                self._streamed.add(message_id)
                events.extend(self._annotations(part.text.annotations or []))
                events.extend(
                    self._say(self._markers.setdefault(message_id, _Markers()).feed(part.text.value or ""))
                )
            elif part.type == "refusal" and part.refusal:
                # A refusal is the answer the user gets; it must not vanish silently.
                self._streamed.add(message_id)
                events.extend(self._say(part.refusal))
        return events

    def _message(self, message: Any) -> list[RunEvent | _Cite]:
        events: list[RunEvent | _Cite] = []
        if message.id:
            self.message_ids.append(str(message.id))
        markers = self._markers.pop(message.id, None)
        if markers is not None:
            events.extend(self._say(markers.flush()))
        full = ""
        for part in getattr(message, "content", None) or []:
            if part.type == "image_file":
                self._output(part.image_file.file_id, "", image=True)
            elif part.type == "text":
                full += part.text.value
                events.extend(self._annotations(part.text.annotations))
            elif part.type == "refusal":
                full += part.refusal
        if message.id not in self._streamed:
            # Some compatible servers send no deltas; the completed message still has the text.
            events.extend(self._say(MARKER.sub("", full)))
        return events

    def _say(self, text: str) -> list[RunEvent | _Cite]:
        if not text:
            return []
        self.text += text
        return [TextDelta(text)]

    def _annotations(self, annotations: list[Any]) -> list[RunEvent | _Cite]:
        events: list[RunEvent | _Cite] = []
        for ann in annotations:
            if ann.type == "file_citation" and ann.file_citation is not None and ann.file_citation.file_id:
                hint = (ann.text or "").rstrip("】").rpartition("†")[2]
                events.append(_Cite(ann.file_citation.file_id, hint))
            elif ann.type == "file_path" and ann.file_path is not None and ann.file_path.file_id:
                self._output(ann.file_path.file_id, PurePosixPath(ann.text or "").name, image=False)
        return events

    def _output(self, file_id: str, name: str, *, image: bool) -> None:
        found = self.files.setdefault(file_id, _Output(name, image))
        found.image = found.image or image
        found.name = found.name or name


def _usage(run: Any) -> list[RunEvent]:
    usage = getattr(run, "usage", None)
    if usage is None:
        return []
    details = getattr(usage, "prompt_token_details", None)
    return [
        Usage(
            model=str(getattr(run, "model", "") or ""),
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            cached_tokens=int(getattr(details, "cached_tokens", 0) or 0),
        )
    ]


def _messages(request: RunRequest) -> list[tuple[str, dict[str, Any]]]:
    """The messages this Turn adds to the thread, each with a key that makes adding it idempotent."""
    messages: list[tuple[str, dict[str, Any]]] = []
    first = request.inputs[0].ts if request.inputs else ""
    if request.seed and first not in request.kept:
        # Context, not a turn: Assistants messages have no developer role, and as a user
        # message it would read as something the user asked.
        context = SEED_HEADER + "\n".join(request.seed)
        messages.append((f"seed:{first}", {"role": "assistant", "content": context}))
    accepted = [a for a in request.attached if not a.error and (a.remote_id or a.data_url)]
    images = [
        {"type": "image_url", "image_url": {"url": a.data_url}}
        if a.data_url
        else {"type": "image_file", "image_file": {"file_id": a.remote_id}}
        for a in accepted
        if a.usage == "vision"
    ]
    attachments = [
        {"file_id": a.remote_id, "tools": [{"type": a.usage}]}
        for a in accepted
        if a.usage in ("file_search", "code_interpreter")
    ]
    for i, inbound in enumerate(request.inputs):
        if inbound.ts in request.kept:
            continue  # the thread holds it already (a resumed Turn)
        last = i == len(request.inputs) - 1
        content: list[dict[str, Any]] = [{"type": "text", "text": inbound.attributed_text()}]
        params: dict[str, Any] = {
            "role": "user",
            "content": content + images if last else content,
            "metadata": {"slack_ts": inbound.message_ts, "slack_user": inbound.user},
        }
        if last and attachments:
            params["attachments"] = attachments
        messages.append((f"message:{inbound.ts}", params))
    return messages


def _blocked_by_run(exc: openai.BadRequestError) -> bool:
    message = str(exc.message).lower()
    return "while a run" in message or "already has an active run" in message


def _not_found(exc: openai.NotFoundError, thread_id: str) -> BackendError:
    message = str(exc.message).lower()
    if "assistant" in message:
        return BackendError(f"assistant not found ({exc.status_code})", user_message=MISSING_ASSISTANT)
    if "thread" in message:
        return ConversationGone(
            f"thread {thread_id} is gone",
            user_message="This thread's earlier conversation is gone on the server; starting a new one.",
        )
    return translate(exc)


async def create_assistant(
    client: AsyncOpenAI, *, model: str, instructions: str, code_interpreter: bool
) -> str:
    """Create the assistant the `assistants` backend runs (for ASSISTANT_ID); returns its id."""
    tools: list[dict[str, Any]] = [{"type": "file_search"}]
    if code_interpreter:
        tools.append({"type": "code_interpreter"})
    with _legacy():
        pending = client.beta.assistants.create(
            model=model,
            name="Threadbridge",
            instructions=instructions,
            tools=cast("list[AssistantToolParam]", tools),
            metadata={"created_by": "threadbridge"},
        )
    try:
        assistant = await pending
    except openai.OpenAIError as exc:
        raise translate(exc) from None
    return assistant.id
