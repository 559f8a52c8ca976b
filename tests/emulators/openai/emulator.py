"""`OpenAIEmulator`: an in-process aiohttp server speaking enough of the OpenAI HTTP API.

Start it in the test's event loop, point `AsyncOpenAI(base_url=emu.base_url,
api_key=emu.api_key)` at it, then assert on what it recorded (`requests`, `responses`,
`conversations`, `files`, `vector_stores`, `containers`). The model is scripted by cues in
the user's text; see `script.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from aiohttp import web

from . import assistants, conversations, files, responses, script
from .errors import ApiError, api_error, error_type_for
from .items import user_texts
from .responses import StoredResponse
from .state import (
    RECORDED,
    REQUEST_ID,
    Assistant,
    Container,
    Conversation,
    Failure,
    Recorded,
    StoredFile,
    Thread,
    VectorStore,
    new_id,
)

T = TypeVar("T")

DEFAULT_FAILURE_MESSAGE = "The server had an error while processing your request."
DEFAULT_MODELS = (
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "o4-mini",
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class OpenAIEmulator:
    """A scripted stand-in for api.openai.com on 127.0.0.1 (random free port).

    Recorded for assertions:
      `requests` (every request, in arrival order), `responses` (JSON bodies of the
      POST /v1/responses that got past auth and `fail_next`), `code_interpreter_file_ids`
      (the `container.file_ids` of each request offering code_interpreter),
      `conversations`, `files`, `vector_stores` (`.files`: file_id -> status),
      `containers`, `stored_responses`, `stalled` (streams paused by ``#stall`` now),
      `hung_up` (response id -> monotonic time the client closed its unfinished stream),
      `assistants` and `threads` (Assistants v2: `thread.messages`, `thread.runs`).
    Path prefixes given to `fail_next` and `requests_to` may use `*` for one path
    segment, e.g. "/v1/threads/*/runs".
    Knobs:
      `unsupported` ("truncation", "code_interpreter", "web_search", "file_search" -> 400),
      `indexing_polls` (status GETs answered "in_progress" before a vector-store file is
      done), `poll_after_ms` (the `openai-poll-after-ms` hint), `models`,
      `stream_error_shape` ("both" | "flat" | "nested": how ``#stream-error`` is framed),
      `file_purposes` (what files.create accepts; `files.COMPATIBLE_PURPOSES` plays a
      self-hosted compatible server that refuses `user_data` and `vision`).
    """

    def __init__(self, *, api_key: str = "sk-test-key") -> None:
        self.api_key = api_key
        self.base_url = ""
        self.port = 0

        # What clients sent, in arrival order (recorded before the answer is computed).
        self.requests: list[Recorded] = []
        self.responses: list[dict[str, Any]] = []
        self.code_interpreter_file_ids: list[list[str]] = []  # per request offering the tool
        self.model_done: dict[str, float] = {}  # conversation id -> wall time of response.completed
        # response id -> time.monotonic() when the client closed its stream before the end
        self.hung_up: dict[str, float] = {}

        # Server-side state.
        self.conversations: dict[str, Conversation] = {}
        self.files: dict[str, StoredFile] = {}
        self.vector_stores: dict[str, VectorStore] = {}
        self.file_batches: dict[str, tuple[str, list[str], int]] = {}
        self.containers: dict[str, Container] = {}
        self.stored_responses: dict[str, StoredResponse] = {}
        self.models: list[str] = list(DEFAULT_MODELS)
        self.assistants: dict[str, Assistant] = {}
        self.threads: dict[str, Thread] = {}

        # Knobs.
        self.unsupported: set[str] = set()
        self.file_purposes: tuple[str, ...] = files.PURPOSES
        self.indexing_polls = 1
        self.poll_after_ms = 10
        self.stream_error_shape: Literal["both", "flat", "nested"] = "both"
        self.mcp_headers: list[dict[str, str]] = []  # headers of each `mcp` tool offered, in order

        self.stalled = 0  # streams currently paused by #stall
        self.release_generation = 0
        self._failures: list[Failure] = []
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=512 * 1024 * 1024)
        app.add_routes(
            [
                web.get("/v1/models", self._list_models),
                web.get("/v1/models/{model}", self._retrieve_model),
                *conversations.routes(self),
                *responses.routes(self),
                *files.routes(self),
                *assistants.routes(self),
            ]
        )
        # handler_cancellation: a client hanging up on a stalled stream cancels its handler,
        # which is how the conversation lock gets released.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    async def stop(self) -> None:
        self.release()
        assistants.shutdown(self)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> OpenAIEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ test helpers

    def requests_to(self, method: str, path_prefix: str) -> list[Recorded]:
        prefix = _full_path(path_prefix)
        return [r for r in self.requests if r.method == method.upper() and _matches(r.path, prefix)]

    def user_texts(self, conversation_id: str) -> list[str]:
        """One string per user message stored in the conversation or thread (text parts joined by " | ")."""
        if conversation_id in self.threads:
            return self.threads[conversation_id].user_texts()
        return user_texts(self.conversations[conversation_id].items)

    def fail_next(
        self,
        method: str,
        path_prefix: str,
        *,
        status: int = 500,
        code: str | None = None,
        message: str = DEFAULT_FAILURE_MESSAGE,
        retry_after: float | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` matching requests with an error instead of handling them.

        `times=0` cancels what is still queued for that method and path prefix.
        """
        path_prefix = _full_path(path_prefix)
        if times <= 0:
            self._failures = [
                f for f in self._failures if (f.method, f.path_prefix) != (method.upper(), path_prefix)
            ]
            return
        if status == 429:
            code = code or "rate_limit_exceeded"
            if message == DEFAULT_FAILURE_MESSAGE:
                message = "Rate limit reached for requests. Please try again shortly."
            # Short by default: the SDK honours it, and tests should stay fast.
            retry_after = 0.05 if retry_after is None else retry_after
        self._failures.append(Failure(method.upper(), path_prefix, status, code, message, retry_after, times))

    def release(self) -> None:
        """Un-stall every stream paused by #stall (including ones that have not paused yet)."""
        self.release_generation += 1
        self.notify()

    async def wait_released(self, generation: int) -> None:
        self.stalled += 1
        self.notify()
        try:
            await self.wait_for(lambda: self.release_generation > generation, timeout=None, what="release()")
        finally:
            self.stalled -= 1
            self.notify()

    async def wait_for(
        self,
        predicate: Callable[[], T],
        timeout: float | None = 10.0,
        what: str = "",
    ) -> T:
        """Wait until `predicate()` is truthy and return its value.

        Re-checked on every request and state change; raises TimeoutError naming `what`.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not (result := predicate()):
            # The 0.25 s cap is a fallback re-check for state changed directly by the test.
            remaining = 0.25 if deadline is None else min(0.25, deadline - loop.time())
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)
        return result

    def notify(self) -> None:
        """Wake every `wait_for`; each swaps in a fresh Event so none misses a change."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # ------------------------------------------------------------------ for API front ends

    def searchable_files(self, vector_store_ids: list[str], *, param: str) -> list[script.SearchableFile]:
        """What file_search over these stores can find: their completed files, with text."""
        found: list[script.SearchableFile] = []
        for vid in vector_store_ids:
            vs = self.vector_stores.get(vid)
            if vs is None:
                raise ApiError(404, f"Vector store with id '{vid}' not found.", param=param)
            for file_id in vs.completed_file_ids():
                file = self.files.get(file_id)
                if file is not None:
                    found.append(script.SearchableFile(file_id, file.filename, file.text))
        return found

    def mounted_files(self, file_ids: list[str], *, param: str) -> list[script.MountedFile]:
        """Files a code interpreter container is given; unknown ids are refused like the API does."""
        mounted: list[script.MountedFile] = []
        for file_id in file_ids:
            file = self.files.get(file_id)
            if file is None:
                raise ApiError(404, f"File with id '{file_id}' not found.", param=param)
            mounted.append(script.MountedFile(file_id, file.filename))
        return mounted

    def body(self, request: web.Request) -> dict[str, Any]:
        """The request's JSON object body (already parsed and recorded by the middleware)."""
        data = request[RECORDED].json
        return data if isinstance(data, dict) else {}

    # ------------------------------------------------------------------ plumbing

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        recorded = Recorded(
            method=request.method,
            path=request.path,
            json=None,
            headers={k.lower(): v for k, v in request.headers.items()},
            query=dict(request.query),
            at=time.monotonic(),
        )
        request[RECORDED] = recorded
        request[REQUEST_ID] = new_id("req")
        bad_json = False
        if request.content_type == "application/json" and request.can_read_body:
            try:
                parsed = json.loads(await request.read() or b"null")
            except ValueError:
                parsed = None
            # Every endpoint here takes a JSON object; anything else is unparseable to it.
            bad_json = not isinstance(parsed, dict)
            recorded.json = parsed if isinstance(parsed, dict) else None
        self.requests.append(recorded)
        self.notify()
        try:
            response = await self._answer(request, handler, bad_json)
        finally:
            self.notify()
        recorded.status = response.status
        if not response.prepared:
            response.headers.setdefault("x-request-id", request[REQUEST_ID])
        return response

    async def _answer(self, request: web.Request, handler: Handler, bad_json: bool) -> web.StreamResponse:
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        injected = self._take_failure(request)
        if injected is not None:
            return injected
        if bad_json:
            return api_error(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
                "your HTTP library correctly. The OpenAI API expects a JSON payload.)",
            )
        try:
            return await handler(request)
        except ApiError as exc:
            return exc.response()
        except web.HTTPNotFound:
            return api_error(404, f"Invalid URL ({request.method} {request.path})")
        except web.HTTPMethodNotAllowed:
            return api_error(405, f"Invalid method for URL ({request.method} {request.path})")

    def _check_auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header:
            return api_error(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or key.strip() != self.api_key:
            # Never echo a credential back, even a wrong one.
            key = key.strip()
            masked = key[:3] + "****" if len(key) > 6 else "****"
            return api_error(401, f"Incorrect API key provided: {masked}.", code="invalid_api_key")
        return None

    def _take_failure(self, request: web.Request) -> web.Response | None:
        for failure in self._failures:
            if failure.method == request.method and _matches(request.path, failure.path_prefix):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                headers = {}
                if failure.retry_after is not None:
                    headers["Retry-After"] = f"{failure.retry_after:g}"
                return api_error(
                    failure.status,
                    failure.message,
                    code=failure.code,
                    type=error_type_for(failure.status),
                    headers=headers,
                )
        return None

    async def _list_models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [_model(m) for m in self.models]})

    async def _retrieve_model(self, request: web.Request) -> web.Response:
        model = request.match_info["model"]
        if model not in self.models:
            raise ApiError(
                404,
                f"The model '{model}' does not exist or you do not have access to it.",
                code="model_not_found",
            )
        return web.json_response(_model(model))


def _model(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1700000000, "owned_by": "system"}


def _matches(path: str, prefix: str) -> bool:
    """`path` starts with `prefix`, where a `*` in the prefix stands for one path segment."""
    if "*" not in prefix:
        return path.startswith(prefix)
    pattern = "[^/]+".join(re.escape(part) for part in prefix.split("*"))
    return re.match(pattern, path) is not None


def _full_path(prefix: str) -> str:
    """Accept "/responses" as well as "/v1/responses"."""
    prefix = "/" + prefix.lstrip("/")
    return prefix if prefix.startswith("/v1/") or prefix == "/v1" else "/v1" + prefix
