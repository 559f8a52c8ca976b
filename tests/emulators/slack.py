"""An in-process Slack: Web API, file hosting, external uploads, Socket Mode, signed Events.

The bot under test talks to it through the real ``slack_sdk`` clients, so everything here is
shaped by what those clients put on the wire (JSON bodies, form bodies and query strings,
``Authorization: Bearer``, 429 + ``Retry-After``) and by what Slack answers. Error names come
from Slack's method reference pages; where a behaviour is only known from the live API (the
stream-mode lock, ``streaming_state_conflict``) the comment says so.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import hmac
import json
import mimetypes
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from aiohttp import ClientSession, ClientTimeout, WSCloseCode, WSMsgType, web

T = TypeVar("T")

# Slack's documented limits: message text, and markdown_text (per call, per chunk for streams).
MAX_TEXT_CHARS = 40_000
MAX_MARKDOWN_CHARS = 12_000
MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3_000
CHUNK_TYPES = frozenset({"markdown_text", "task_update", "plan_update", "blocks"})
# agents.sessions.setStatus's documented statuses (anything else: invalid_arguments).
SESSION_STATUSES = frozenset({"processing", "active", "suspended", "closed"})
# Arguments Slack takes as JSON even in a form body or query string, where the SDK sends them
# as JSON-encoded strings (files.completeUploadExternal's ``files`` always is).
JSON_STRING_ARGS = ("blocks", "attachments", "chunks", "files", "metadata", "prompts", "loading_messages")
# The legacy per-app verification token Slack still puts in every Events API payload.
VERIFICATION_TOKEN = "emulated-verification-token"
# Uploads and downloads carry whole files; aiohttp's 1 MiB default would refuse realistic ones.
MAX_BODY_BYTES = 256 * 1024 * 1024
# The first microsecond tick; every generated ts is later than any realistic seeded one.
FIRST_TS_MICROS = 1_700_000_000_000_000
TS_STEP_MICROS = 100

# What files.slack.com serves for url_private without a valid token: a 200 sign-in page, so a
# client that does not check Content-Type happily saves HTML as the user's file.
SIGN_IN_PAGE = (
    b'<!DOCTYPE html>\n<html lang="en-US"><head><meta charset="utf-8">'
    b'<title>Slack</title></head><body><div class="p-signin"><h1>Sign in to Slack</h1>'
    b"<p>We suggest using the email address you use at work.</p>"
    b'<form id="signin_form" action="/" method="post"><input type="email" name="email">'
    b'<button type="submit">Sign In With Email</button></form></div></body></html>\n'
)


@dataclass
class Call:
    """One Web API request as the emulator received it (token removed from ``args``)."""

    method: str
    args: dict[str, Any]
    status: int
    response: dict[str, Any] = field(default_factory=dict)
    # "json", "form", "multipart" or "query": lets tests pin how the SDK sent a method.
    encoding: str = "query"
    at: float = field(default_factory=time.time)  # when it arrived (the benchmark's clock)
    peer: str = ""  # the client's address: tells a reused connection from a new one

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        error = self.response.get("error")
        return error if isinstance(error, str) else None


@dataclass
class _Failure:
    error: str
    status: int
    retry_after: int | None
    remaining: int


@dataclass
class _Stream:
    # Slack locks a stream to the shape of the call that first carried content (measured on
    # the live API and documented as streaming_mode_mismatch): "markdown_text" or "chunks".
    mode: str | None
    state: str = "streaming"  # "streaming", "stopped", "stopped_by_user" or "expired"
    chunks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _PendingUpload:
    file_id: str
    filename: str
    length: int
    alt_txt: str | None
    snippet_type: str | None
    content: bytes | None = None


class _Refusal(Exception):
    """A Slack ``{"ok": false, "error": ...}`` answer raised from inside a method handler."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


def _fmt_ts(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _ts_micros(ts: str) -> int:
    match = re.fullmatch(r"(\d+)\.(\d{6})", ts)
    if match is None:
        raise ValueError(f"not a Slack ts: {ts!r}")
    return int(match.group(1)) * 1_000_000 + int(match.group(2))


def _ts_key(ts: str) -> tuple[int, str]:
    # Stored ts values are always well formed; the string tiebreak only keeps sorting total.
    try:
        return _ts_micros(ts), ts
    except ValueError:
        return 0, ts


def _channel_type(channel: str) -> str:
    if channel.startswith("D"):
        return "im"
    if channel.startswith("G"):
        return "group"
    return "channel"


def _is_channel_id(value: Any) -> bool:
    return isinstance(value, str) and len(value) > 1 and value[0] in "CDG"


def _flag(value: Any) -> bool:
    return value is True or value in ("1", "true", "True", 1)


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


def _random_id(prefix: str, length: int = 10) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    raw = uuid.uuid4().int
    chars = []
    for _ in range(length):
        raw, index = divmod(raw, len(alphabet))
        chars.append(alphabet[index])
    return prefix + "".join(chars)


def _rich_text(text: str, seed: str) -> list[dict[str, Any]]:
    """The rich_text block Slack's clients attach to a typed message, mentions included."""
    elements: list[dict[str, Any]] = []
    position = 0
    for match in re.finditer(r"<@([UWB][A-Z0-9]+)(?:\|[^>]*)?>", text):
        if match.start() > position:
            elements.append({"type": "text", "text": text[position : match.start()]})
        elements.append({"type": "user", "user_id": match.group(1)})
        position = match.end()
    if position < len(text):
        elements.append({"type": "text", "text": text[position:]})
    block_id = base64.b32encode(hashlib.sha1(seed.encode()).digest()).decode()[:5]
    return [
        {
            "type": "rich_text",
            "block_id": block_id,
            "elements": [{"type": "rich_text_section", "elements": elements}],
        }
    ]


def _check_blocks(blocks: Any) -> None:
    """The Block Kit limits a bot's generated answers can run into."""
    if not isinstance(blocks, list) or not all(isinstance(block, dict) for block in blocks):
        raise _Refusal("invalid_blocks_format")
    if len(blocks) > MAX_BLOCKS:
        raise _Refusal("invalid_blocks")
    markdown_chars = 0
    for block in blocks:
        if block.get("type") == "markdown":
            if not isinstance(block.get("text"), str):
                raise _Refusal("invalid_blocks")
            markdown_chars += len(block["text"])
        elif block.get("type") == "section":
            text = block.get("text")
            if isinstance(text, dict) and len(str(text.get("text", ""))) > MAX_SECTION_CHARS:
                raise _Refusal("invalid_blocks")
    # Documented for the markdown block: 12,000 characters across all of them in one payload,
    # so splitting a long answer into several markdown blocks does not get around it.
    if markdown_chars > MAX_MARKDOWN_CHARS:
        raise _Refusal("msg_blocks_too_long")


async def _read_args(request: web.Request) -> tuple[dict[str, Any], str]:
    args: dict[str, Any] = {key: request.query[key] for key in request.query}
    encoding = "query"
    if request.body_exists:
        content_type = request.content_type
        if content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _Refusal("invalid_json") from None
            if not isinstance(body, dict):
                raise _Refusal("invalid_json")
            args.update(body)
            encoding = "json"
        elif content_type == "application/x-www-form-urlencoded":
            form = await request.post()
            args.update({key: form[key] for key in form})
            encoding = "form"
        elif content_type.startswith("multipart/"):
            form = await request.post()
            # File parts belong to the legacy files.upload; only the plain fields are arguments.
            args.update({key: form[key] for key in form if isinstance(form[key], str)})
            encoding = "multipart"
    for key in JSON_STRING_ARGS:
        value = args.get(key)
        if isinstance(value, str) and value[:1] in ("[", "{"):
            with contextlib.suppress(ValueError):
                args[key] = json.loads(value)
    return args, encoding


class SlackEmulator:
    """A Slack workspace with one installed bot, served on 127.0.0.1.

    Point ``AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)`` at it. State is
    inspectable through ``calls``, ``thread()``, ``bot_messages()``, ``uploads`` and
    ``downloads``; ``wait_for`` blocks until a predicate over that state holds.
    """

    # chat.startStream's answer while streaming_enabled is False. Slack documents no
    # "streaming off" code; this is the documented startStream error a bot meets when a
    # conversation cannot take a stream, and tests may set another one.
    streaming_disabled_error: str = "channel_type_not_supported"

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test-token",
        signing_secret: str = "test-signing-secret",
        team_id: str = "T0TEAM",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        app_id: str = "A0APP",
        app_token: str = "xapp-test-token",
        team_domain: str = "emulated",
        bot_name: str = "threadbridge",
    ) -> None:
        self.bot_token = bot_token
        self.signing_secret = signing_secret
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.app_token = app_token
        self.team_domain = team_domain
        self.bot_name = bot_name

        self.api_url = ""
        self.base_url = ""
        self.port = 0
        self.streaming_enabled = True
        # Whether the app is declared as an agent: only agents get agents.sessions.* (others
        # are refused with not_authorized).
        self.agent_sessions = False
        # How long socket_send waits for a connection and then for the client's ack.
        self.socket_ack_timeout = 10.0

        self.calls: list[Call] = []
        self.uploads: list[dict[str, Any]] = []
        self.downloads: list[dict[str, Any]] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.socket_acks: list[dict[str, Any]] = []

        self._users: dict[str, dict[str, Any]] = {}
        self._channels: dict[str, dict[str, dict[str, Any]]] = {}
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._files: dict[str, dict[str, Any]] = {}
        self._file_content: dict[str, bytes] = {}
        self._event_files: dict[str, dict[str, Any]] = {}
        self._pending_uploads: dict[str, _PendingUpload] = {}
        self._upload_ids: dict[str, str] = {}
        self._statuses: dict[tuple[str, str], str] = {}
        self._sessions: dict[tuple[str, str], str] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self._down_until = 0.0  # time.monotonic() until which every method fails (outage())
        self._down = _Failure(error="internal_error", status=500, retry_after=None, remaining=0)
        self._clock = FIRST_TS_MICROS
        # Swapped for a fresh Event on every change, so a waiter that grabbed the old one
        # before evaluating its predicate can never miss a change (see wait_for).
        self._change = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}

        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "api.test": self._api_test,
            "auth.test": self._auth_test,
            "users.info": self._users_info,
            "conversations.info": self._conversations_info,
            "conversations.replies": self._conversations_replies,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.startStream": self._chat_start_stream,
            "chat.appendStream": self._chat_append_stream,
            "chat.stopStream": self._chat_stop_stream,
            "assistant.threads.setStatus": self._assistant_set_status,
            "agents.sessions.setStatus": self._agents_set_status,
            "assistant.threads.setSuggestedPrompts": self._assistant_set_suggested_prompts,
            "assistant.threads.setTitle": self._assistant_set_title,
            "agents.sessions.rename": self._agents_sessions_rename,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "files.info": self._files_info,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
            "apps.connections.open": self._apps_connections_open,
        }
        self.add_user(bot_user_id, name=bot_name, real_name=bot_name, is_bot=True)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/v1/{upload_id}", self._handle_upload)
        app.router.add_get("/files-pri/{team_file}/{tail:.*}", self._handle_download)
        app.router.add_get("/socket", self._handle_socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.base_url}/api/"

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"emulator stopping")
        for future in self._acks.values():
            future.cancel()
        self._acks.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ test-side API

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        return [call.args for call in self.calls if call.method == method and call.ok]

    def add_user(
        self,
        user_id: str,
        *,
        name: str,
        display_name: str = "",
        real_name: str = "",
        is_bot: bool = False,
        guest: bool = False,
    ) -> None:
        self._users[user_id] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": False,
            "real_name": real_name,
            "tz": "Europe/London",
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "is_bot": is_bot,
            "is_app_user": False,
            # A multi-channel guest is restricted; a single-channel guest ultra-restricted too.
            "is_restricted": guest,
            "is_ultra_restricted": False,
            "profile": {
                "display_name": display_name,
                "display_name_normalized": display_name,
                "real_name": real_name,
                "real_name_normalized": real_name,
                "team": self.team_id,
            },
        }
        self._changed()

    def add_message(
        self,
        channel: str,
        *,
        user: str,
        text: str,
        thread_ts: str | None = None,
        ts: str | None = None,
        files: list[dict[str, Any]] | None = None,
    ) -> str:
        if ts is None:
            ts = self._new_ts()
        else:
            micros = _ts_micros(ts)
            if ts in self._channels.get(channel, {}):
                raise ValueError(f"{channel} already has a message at {ts}")
            self._clock = max(self._clock, micros)
        if user == self.bot_user_id:
            message = self._bot_message(ts, text=text)
        else:
            message = self._user_message(ts, user=user, text=text)
        if files:
            message["files"] = copy.deepcopy(files)
            message["upload"] = False
        root = self._thread_root(channel, thread_ts)
        if root is not None:
            message["thread_ts"] = root
        self._store(channel, message)
        return ts

    def user_says(
        self,
        channel: str,
        *,
        user: str,
        text: str,
        thread_ts: str | None = None,
        files: list[dict[str, Any]] | None = None,
        channel_type: str | None = None,
    ) -> tuple[str, list[dict[str, Any]]]:
        ts = self.add_message(channel, user=user, text=text, thread_ts=thread_ts, files=files)
        stored = self._channels[channel][ts]
        common: dict[str, Any] = {
            "user": user,
            "text": text,
            "ts": ts,
            "team": self.team_id,
            "client_msg_id": stored.get("client_msg_id", str(uuid.uuid4())),
            "blocks": copy.deepcopy(stored.get("blocks", [])),
            "channel": channel,
            "event_ts": ts,
        }
        if "thread_ts" in stored:
            common["thread_ts"] = stored["thread_ts"]
            if "parent_user_id" in stored:
                common["parent_user_id"] = stored["parent_user_id"]
        conversation_type = channel_type or _channel_type(channel)
        message_event: dict[str, Any] = {"type": "message", **common, "channel_type": conversation_type}
        if files:
            # A message carrying files arrives as the file_share subtype, which Bolt's
            # app.message() still matches.
            message_event.update(
                subtype="file_share",
                files=copy.deepcopy(files),
                upload=False,
                display_as_bot=False,
            )
        events = [message_event]
        if f"<@{self.bot_user_id}>" in text and conversation_type != "im":
            mention: dict[str, Any] = {"type": "app_mention", **copy.deepcopy(common)}
            if files:
                mention["files"] = copy.deepcopy(files)
            events.append(mention)
        return ts, events

    def user_deletes(self, channel: str, ts: str) -> dict[str, Any]:
        """A person deletes their message: remove it and return the message_deleted event.

        Slack's event carries the message as it was (files included) in ``previous_message``;
        a thread parent with replies stays behind as a tombstone, as with chat.delete.
        """
        stored = self._message(channel, ts)
        previous = copy.deepcopy(stored)
        self._remove(channel, stored)
        event_ts = self._new_ts()
        return {
            "type": "message",
            "subtype": "message_deleted",
            "hidden": True,
            "channel": channel,
            "ts": event_ts,
            "deleted_ts": ts,
            "event_ts": event_ts,
            "channel_type": _channel_type(channel),
            "previous_message": previous,
        }

    def user_edits(self, channel: str, ts: str, text: str) -> dict[str, Any]:
        """A person edits their message: change it and return the message_changed event.

        Shaped like the real one (real-wire/slack/message_changed_channel.json): hidden, the
        new `message` (with `edited`) and the `previous_message`, and an event `ts` of its own.
        """
        stored = self._message(channel, ts)
        previous = self._view(channel, stored)
        event_ts = self._new_ts()
        stored["text"] = text
        stored["blocks"] = _rich_text(text, event_ts)
        stored["edited"] = {"user": stored.get("user", ""), "ts": event_ts}
        self._changed()
        message = {**self._view(channel, stored), "source_team": self.team_id, "user_team": self.team_id}
        for shown in (message, previous):
            shown.pop("channel", None)  # the event names the channel once, outside
        return {
            "type": "message",
            "subtype": "message_changed",
            "hidden": True,
            "message": message,
            "channel": channel,
            "previous_message": previous,
            "event_ts": event_ts,
            "ts": event_ts,
            "channel_type": _channel_type(channel),
        }

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        return [self._view(channel, message) for message in self._thread_messages(channel, thread_ts)]

    def answered_threads(self, channel: str) -> set[str]:
        """Threads with a finished (not streaming) bot message: one pass, no copies, for
        waiting on a thousand threads without scanning the channel once per thread."""
        answered: set[str] = set()
        for stored in self._channels.get(channel, {}).values():
            if stored.get("bot_id") != self.bot_id and stored.get("user") != self.bot_user_id:
                continue
            stream = self._streams.get((channel, stored["ts"]))
            if stream is None or stream.state != "streaming":
                answered.add(stored.get("thread_ts") or stored["ts"])
        return answered

    def bot_messages(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        return [
            message
            for message in self.thread(channel, thread_ts)
            if message.get("bot_id") == self.bot_id or message.get("user") == self.bot_user_id
        ]

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        stored = self._channels.get(channel, {}).get(ts)
        return None if stored is None else self._view(channel, stored)

    def status(self, channel: str, thread_ts: str) -> str:
        """The assistant status line currently shown in a thread ("" when none)."""
        return self._statuses.get((channel, thread_ts), "")

    def session_status(self, channel: str, thread_ts: str) -> str:
        """The thread's agent-session status ("" when it has no session)."""
        return self._sessions.get((channel, thread_ts), "")

    def user_stops(self, channel: str, thread_ts: str, *, user: str = "U0ALICE") -> dict[str, Any]:
        """A person clicks Slack's own Stop on the thread's session: Slack ends the app's streams
        there itself and sends `agent_session_stopped`; the session stays `processing`."""
        stopped = []
        for (stream_channel, ts), stream in self._streams.items():
            message = self._channels.get(channel, {}).get(ts) or {}
            if (
                stream_channel == channel
                and stream.state == "streaming"
                and message.get("thread_ts") == thread_ts
            ):
                stream.state = "stopped_by_user"
                stopped.append(ts)
        self._changed()
        return {
            "type": "agent_session_stopped",
            "channel": channel,
            "thread_ts": thread_ts,
            "user": user,
            "streaming_message_ts": stopped,
            "event_ts": self._new_ts(),
        }

    def end_stream(self, channel: str, ts: str, *, by_user: bool = False) -> None:
        """Close a stream from Slack's side: its lifetime ran out, or the reader pressed stop."""
        stream = self._streams.get((channel, ts))
        if stream is None:
            raise KeyError(f"no stream at {channel}/{ts}")
        stream.state = "stopped_by_user" if by_user else "expired"
        self._changed()

    def host_file(
        self,
        name: str,
        content: bytes,
        *,
        mimetype: str,
        filetype: str,
        user: str = "U0ALICE",
        declared_size: int | None = None,
        file_access: str | None = None,
    ) -> dict[str, Any]:
        file_id = _random_id("F")
        size = len(content) if declared_size is None else declared_size
        full = self._file_object(
            file_id, name=name, title=name, mimetype=mimetype, filetype=filetype, size=size, user=user
        )
        self._files[file_id] = full
        self._file_content[file_id] = content
        if file_access == "check_file_info":
            # Slack Connect and some shared files: the event carries only a stub and the
            # receiver has to ask files.info for the rest.
            event_form: dict[str, Any] = {"id": file_id, "file_access": "check_file_info"}
        else:
            event_form = copy.deepcopy(full)
            if file_access is not None:
                event_form["file_access"] = file_access
        self._event_files[file_id] = event_form
        self._changed()
        return copy.deepcopy(event_form)

    def fail_next(
        self,
        method: str,
        *,
        error: str = "ratelimited",
        status: int = 429,
        retry_after: int | None = 1,
        times: int = 1,
    ) -> None:
        self._failures.setdefault(method, []).append(
            _Failure(error=error, status=status, retry_after=retry_after, remaining=times)
        )

    def outage(self, seconds: float, *, status: int = 500, error: str = "internal_error") -> None:
        """Slack is down: every Web API method answers `status` for the next `seconds`.

        Unlike fail_next, the end is a moment, not a count: however often a client retries, it
        gets through only once the outage is over (as in a real incident).
        """
        self._down_until = time.monotonic() + seconds
        self._down = _Failure(error=error, status=status, retry_after=None, remaining=0)

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0, what: str = "") -> T:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    change = self._change
                    result = predicate()
                    if result:
                        return result
                    await change.wait()
        except TimeoutError:
            raise AssertionError(
                f"timed out waiting for {what or 'condition'}; last calls: {self._describe_calls()}"
            ) from None

    def open_sockets(self) -> int:
        """How many Socket Mode connections are live right now."""
        return sum(1 for ws in self._sockets if not ws.closed)

    async def socket_send(self, payload: dict[str, Any], *, envelope_id: str | None = None) -> dict[str, Any]:
        """Push an events_api envelope over Socket Mode and return the client's ack."""
        timeout = self.socket_ack_timeout
        ws = await self.wait_for(self._open_socket, timeout, "a Socket Mode connection")
        if ws is None:  # unreachable: wait_for only returns truthy values; narrows the type
            raise AssertionError("no Socket Mode connection")
        envelope_id = envelope_id or str(uuid.uuid4())
        ack: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = ack
        try:
            await ws.send_json(
                {
                    "envelope_id": envelope_id,
                    "type": "events_api",
                    "accepts_response_payload": False,
                    "retry_attempt": 0,
                    "retry_reason": "",
                    "payload": payload,
                }
            )
            async with asyncio.timeout(timeout):
                return await ack
        except TimeoutError:
            raise AssertionError(f"no ack for Socket Mode envelope {envelope_id}") from None
        finally:
            self._acks.pop(envelope_id, None)

    # ------------------------------------------------------------------ HTTP handlers

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        arrived = time.time()
        status = 200
        headers: dict[str, str] = {}
        args: dict[str, Any] = {}
        encoding = "query"
        try:
            args, encoding = await _read_args(request)
            token = _bearer(request.headers.get("Authorization")) or args.get("token")
            args.pop("token", None)
            handler = self._methods.get(method)
            if handler is None:
                raise _Refusal("unknown_method", req_method=method)
            auth_error = self._auth_error(method, token)
            if auth_error is not None:
                raise _Refusal(auth_error)
            failure = self._down if self.down else self._take_failure(method)
            if failure is not None:
                status = failure.status
                if failure.retry_after is not None:
                    headers["Retry-After"] = str(failure.retry_after)
                raise _Refusal(failure.error)
            body = {"ok": True, **handler(args)}
        except _Refusal as refusal:
            body = {"ok": False, "error": refusal.error, **refusal.extra}
        peer = str(request.transport.get_extra_info("peername") if request.transport else "")
        self.calls.append(Call(method, args, status, body, encoding, at=arrived, peer=peer))
        self._changed()
        return web.json_response(body, status=status, headers=headers)

    async def _handle_upload(self, request: web.Request) -> web.Response:
        file_id = self._upload_ids.get(request.match_info["upload_id"])
        pending = self._pending_uploads.get(file_id) if file_id else None
        if pending is None:
            return web.Response(status=404, text="upload ticket not found", content_type="text/plain")
        if request.content_type.startswith("multipart/"):
            content = b""
            reader = await request.multipart()
            async for part in reader:
                if getattr(part, "filename", None) is not None:
                    content = await part.read()  # type: ignore[union-attr]
                    break
        else:
            content = await request.read()
        pending.content = content
        self._changed()
        # text/plain matters: the SDK reads this body as text and only checks the status.
        return web.Response(text=f"OK - {len(content)}", content_type="text/plain")

    async def _handle_download(self, request: web.Request) -> web.Response:
        team_file = request.match_info["team_file"]
        file_id = team_file.split("-", 1)[1] if "-" in team_file else ""
        full = self._files.get(file_id)
        if full is None:
            return web.Response(status=404, body=SIGN_IN_PAGE, content_type="text/html", charset="utf-8")
        authorized = _bearer(request.headers.get("Authorization")) == self.bot_token
        self.downloads.append({"file_id": file_id, "authorized": authorized, "path": request.path})
        self._changed()
        if not authorized:
            return web.Response(body=SIGN_IN_PAGE, content_type="text/html", charset="utf-8")
        return web.Response(body=self._file_content[file_id], content_type=full["mimetype"])

    async def _handle_socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        self._changed()
        try:
            await ws.send_json(
                {
                    "type": "hello",
                    "num_connections": len(self._sockets),
                    "debug_info": {"host": "emulator", "approximate_connection_time": 18060},
                    "connection_info": {"app_id": self.app_id},
                }
            )
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                try:
                    message = json.loads(frame.data)
                except ValueError:
                    continue
                if not isinstance(message, dict):
                    continue
                self.socket_acks.append(message)
                pending = self._acks.get(str(message.get("envelope_id")))
                if pending is not None and not pending.done():
                    pending.set_result(message)
                self._changed()
        finally:
            self._sockets.remove(ws)
            self._changed()
        return ws

    # ------------------------------------------------------------------ plumbing

    def _open_socket(self) -> web.WebSocketResponse | None:
        return next((ws for ws in self._sockets if not ws.closed), None)

    def _changed(self) -> None:
        change, self._change = self._change, asyncio.Event()
        change.set()

    def _describe_calls(self, last: int = 15) -> str:
        if not self.calls:
            return "(none)"
        parts = []
        for call in self.calls[-last:]:
            outcome = "ok" if call.ok else call.error
            parts.append(f"{call.method} -> {call.status} {outcome}")
        return "; ".join(parts)

    def _auth_error(self, method: str, token: Any) -> str | None:
        if not token:
            return "not_authed"
        if method == "apps.connections.open":
            if token == self.app_token:
                return None
            return "not_allowed_token_type" if token == self.bot_token else "invalid_auth"
        if token == self.bot_token:
            return None
        return "not_allowed_token_type" if token == self.app_token else "invalid_auth"

    def _take_failure(self, method: str) -> _Failure | None:
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue[0]
        failure.remaining -= 1
        if failure.remaining <= 0:
            queue.pop(0)
        return failure

    def _new_ts(self) -> str:
        self._clock += TS_STEP_MICROS
        return _fmt_ts(self._clock)

    def _user_message(self, ts: str, *, user: str, text: str) -> dict[str, Any]:
        return {
            "type": "message",
            "user": user,
            "text": text,
            "ts": ts,
            "team": self.team_id,
            "client_msg_id": str(uuid.uuid4()),
            "blocks": _rich_text(text, ts),
        }

    def _bot_message(self, ts: str, *, text: str) -> dict[str, Any]:
        return {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "text": text,
            "ts": ts,
            "team": self.team_id,
            "bot_profile": {
                "id": self.bot_id,
                "app_id": self.app_id,
                "name": self.bot_name,
                "deleted": False,
                "team_id": self.team_id,
            },
        }

    def _file_object(
        self,
        file_id: str,
        *,
        name: str,
        title: str,
        mimetype: str,
        filetype: str,
        size: int,
        user: str,
    ) -> dict[str, Any]:
        if not self.base_url:
            raise RuntimeError("start() the emulator before hosting files: their URLs point at it")
        now = int(time.time())
        prefix = f"{self.base_url}/files-pri/{self.team_id}-{file_id}"
        quoted = quote(name)
        return {
            "id": file_id,
            "created": now,
            "timestamp": now,
            "name": name,
            "title": title,
            "mimetype": mimetype,
            "filetype": filetype,
            "pretty_type": filetype.upper(),
            "user": user,
            "user_team": self.team_id,
            "editable": False,
            "size": size,
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": False,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"{prefix}/{quoted}",
            "url_private_download": f"{prefix}/download/{quoted}",
            "permalink": f"https://{self.team_domain}.slack.com/files/{user}/{file_id}/{quoted}",
            "has_rich_preview": False,
            "file_access": "visible",
        }

    def _thread_root(self, channel: str, thread_ts: Any) -> str | None:
        """Slack files a reply to a reply under the thread's parent."""
        if not thread_ts:
            return None
        given = str(thread_ts)
        parent = self._channels.get(channel, {}).get(given)
        if parent is not None and parent.get("thread_ts") not in (None, given):
            return str(parent["thread_ts"])
        return given

    def _store(self, channel: str, message: dict[str, Any]) -> None:
        self._channels.setdefault(channel, {})[message["ts"]] = message
        root_ts = message.get("thread_ts")
        if root_ts:
            root = self._channels[channel].get(root_ts)
            if root is not None and "parent_user_id" not in message and root["ts"] != message["ts"]:
                message["parent_user_id"] = root.get("user")
            self._recount(channel, root_ts)
        self._changed()

    def _recount(self, channel: str, root_ts: str) -> None:
        """Keep the parent's reply summary as conversations.replies shows it."""
        root = self._channels.get(channel, {}).get(root_ts)
        if root is None:
            return
        replies = [m for m in self._thread_messages(channel, root_ts) if m["ts"] != root_ts]
        if not replies:
            for key in ("reply_count", "reply_users", "reply_users_count", "latest_reply"):
                root.pop(key, None)
            return
        users = list(dict.fromkeys(str(m.get("user")) for m in replies))
        root.update(
            thread_ts=root_ts,
            reply_count=len(replies),
            reply_users=users,
            reply_users_count=len(users),
            latest_reply=replies[-1]["ts"],
        )

    def _thread_messages(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        messages = [
            message
            for message in self._channels.get(channel, {}).values()
            if message["ts"] == thread_ts or message.get("thread_ts") == thread_ts
        ]
        return sorted(messages, key=lambda message: _ts_key(message["ts"]))

    def _view(self, channel: str, stored: dict[str, Any]) -> dict[str, Any]:
        view = copy.deepcopy(stored)
        view["channel"] = channel
        stream = self._streams.get((channel, stored["ts"]))
        if stream is not None:
            view["streaming"] = stream.state == "streaming"
            view["stream_state"] = stream.state
            view["chunks"] = copy.deepcopy(stream.chunks)
        return view

    def _message(self, channel: str, ts: Any) -> dict[str, Any]:
        message = self._channels.get(channel, {}).get(str(ts)) if ts else None
        if message is None:
            raise _Refusal("message_not_found")
        return message

    def _clear_status(self, channel: str, thread_ts: str | None) -> None:
        # Slack drops the "is thinking..." line as soon as the app replies in the thread.
        if thread_ts:
            self._statuses.pop((channel, thread_ts), None)

    @staticmethod
    def _require_channel(args: dict[str, Any], key: str = "channel") -> str:
        channel = args.get(key)
        if not _is_channel_id(channel):
            raise _Refusal("channel_not_found")
        return str(channel)

    @staticmethod
    def _check_message_content(args: dict[str, Any]) -> None:
        text = args.get("text")
        blocks = args.get("blocks")
        markdown_text = args.get("markdown_text")
        if markdown_text is not None and (text or blocks):
            raise _Refusal("markdown_text_conflict")
        if blocks is not None:
            _check_blocks(blocks)
        if not (text or blocks or markdown_text or args.get("attachments")):
            raise _Refusal("no_text")
        if isinstance(text, str) and len(text) > MAX_TEXT_CHARS:
            raise _Refusal("msg_too_long")
        if isinstance(markdown_text, str) and len(markdown_text) > MAX_MARKDOWN_CHARS:
            raise _Refusal("msg_too_long")

    # ------------------------------------------------------------------ Web API methods

    def _api_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"args": args}

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": "Emulated Team",
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self._users.get(str(args.get("user")))
        if user is None:
            raise _Refusal("user_not_found")
        return {"user": copy.deepcopy(user)}

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._require_channel(args)
        kind = _channel_type(channel)
        info: dict[str, Any] = {
            "id": channel,
            "created": 1_690_000_000,
            "is_channel": kind == "channel",
            "is_group": kind == "group",
            "is_im": kind == "im",
            "is_mpim": False,
            "is_private": kind != "channel",
            "is_archived": False,
            "is_member": True,
            "context_team_id": self.team_id,
        }
        if kind != "im":
            info["name"] = channel.lower()
        return {"channel": info}

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._require_channel(args)
        ts = args.get("ts")
        anchor = self._channels.get(channel, {}).get(str(ts)) if ts else None
        if anchor is None:
            raise _Refusal("thread_not_found")
        # A reply's ts addresses the whole thread it belongs to.
        root_ts = str(anchor.get("thread_ts") or anchor["ts"])
        messages = self._thread_messages(channel, root_ts)
        try:
            limit = int(args.get("limit") or 1000)
        except (TypeError, ValueError):
            raise _Refusal("invalid_limit") from None
        limit = max(1, min(limit, 1000))
        start = 0
        cursor = args.get("cursor")
        if cursor:
            try:
                decoded = base64.b64decode(str(cursor), validate=True).decode()
            except ValueError:
                raise _Refusal("invalid_cursor") from None
            if not decoded.startswith("next_ts:"):
                raise _Refusal("invalid_cursor")
            next_ts = decoded.removeprefix("next_ts:")
            positions = [i for i, m in enumerate(messages) if m["ts"] == next_ts]
            if not positions:
                raise _Refusal("invalid_cursor")
            start = positions[0]
        page = messages[start : start + limit]
        has_more = start + limit < len(messages)
        next_cursor = ""
        if has_more:
            next_cursor = base64.b64encode(f"next_ts:{messages[start + limit]['ts']}".encode()).decode()
        page = copy.deepcopy(page)
        if not _flag(args.get("include_all_metadata")):
            # Documented: message metadata comes back only when asked for.
            for message in page:
                message.pop("metadata", None)
        return {
            "messages": page,
            "has_more": has_more,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._require_channel(args)
        self._check_message_content(args)
        ts = self._new_ts()
        text = args.get("markdown_text") if args.get("markdown_text") is not None else args.get("text")
        message = self._bot_message(ts, text=str(text or ""))
        if args.get("blocks"):
            message["blocks"] = args["blocks"]
        if args.get("attachments"):
            message["attachments"] = args["attachments"]
        if args.get("metadata"):
            message["metadata"] = args["metadata"]
        root = self._thread_root(channel, args.get("thread_ts"))
        if root is not None:
            message["thread_ts"] = root
        self._store(channel, message)
        self._clear_status(channel, root)
        return {"channel": channel, "ts": ts, "message": copy.deepcopy(message)}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._require_channel(args)
        message = self._message(channel, args.get("ts"))
        stream = self._streams.get((channel, message["ts"]))
        if stream is not None and stream.state == "streaming":
            # Measured on the live API: a message still streaming refuses edits.
            raise _Refusal("streaming_state_conflict")
        if message.get("user") != self.bot_user_id:
            raise _Refusal("cant_update_message")
        self._check_message_content(args)
        text, blocks, markdown_text = args.get("text"), args.get("blocks"), args.get("markdown_text")
        if markdown_text is not None:
            message["text"] = markdown_text
            message.pop("blocks", None)
        if text is not None:
            message["text"] = text
            # Documented: text without blocks removes the old blocks.
            if blocks is None:
                message.pop("blocks", None)
        if blocks is not None:
            if blocks:
                message["blocks"] = blocks
            else:
                message.pop("blocks", None)
        if args.get("attachments") is not None:
            message["attachments"] = args["attachments"]
        if args.get("metadata") is not None:
            message["metadata"] = args["metadata"]
        if blocks is None:
            message["edited"] = {"user": self.bot_user_id, "ts": _fmt_ts(int(time.time() * 1_000_000))}
        self._changed()
        return {
            "channel": channel,
            "ts": message["ts"],
            "text": message.get("text", ""),
            "message": copy.deepcopy(message),
        }

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._require_channel(args)
        message = self._message(channel, args.get("ts"))
        if message.get("user") != self.bot_user_id:
            raise _Refusal("cant_delete_message")
        self._remove(channel, message)
        return {"channel": channel, "ts": message["ts"]}

    def _remove(self, channel: str, message: dict[str, Any]) -> None:
        ts = message["ts"]
        root_ts = message.get("thread_ts")
        if root_ts == ts and message.get("reply_count"):
            # A parent with replies stays behind as a tombstone so the thread survives.
            tombstone = {
                "type": "message",
                "subtype": "tombstone",
                "text": "This message was deleted.",
                "user": "USLACKBOT",
                "ts": ts,
                "thread_ts": ts,
                "hidden": True,
            }
            self._channels[channel][ts] = tombstone
            self._recount(channel, ts)
        else:
            del self._channels[channel][ts]
            if root_ts and root_ts != ts:
                self._recount(channel, root_ts)
        self._streams.pop((channel, ts), None)
        self._changed()

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._require_channel(args)
        if not args.get("user"):
            raise _Refusal("user_not_in_channel")
        self._check_message_content(args)
        message_ts = self._new_ts()
        self.ephemerals.append({**copy.deepcopy(args), "channel": channel, "message_ts": message_ts})
        return {"message_ts": message_ts}

    def _stream_content(
        self, args: dict[str, Any], *, required: bool
    ) -> tuple[str | None, list[dict[str, Any]] | None]:
        markdown_text = args.get("markdown_text")
        chunks = args.get("chunks")
        if markdown_text is not None and chunks is not None:
            raise _Refusal("cannot_provide_both_markdown_text_and_chunks")
        if chunks is not None:
            if not isinstance(chunks, list):
                raise _Refusal("invalid_chunks")
            for chunk in chunks:
                if not isinstance(chunk, dict) or chunk.get("type") not in CHUNK_TYPES:
                    raise _Refusal("invalid_chunks")
                if chunk["type"] == "markdown_text":
                    if not isinstance(chunk.get("text"), str):
                        raise _Refusal("invalid_chunks")
                    # Measured: the limit holds per chunk, not for the accumulated message.
                    if len(chunk["text"]) > MAX_MARKDOWN_CHARS:
                        raise _Refusal("msg_too_long")
        if markdown_text is not None:
            if not isinstance(markdown_text, str):
                raise _Refusal("invalid_arguments")
            if len(markdown_text) > MAX_MARKDOWN_CHARS:
                raise _Refusal("msg_too_long")
        if required and not markdown_text and not chunks:
            raise _Refusal("markdown_text_or_chunks_required")
        return markdown_text, chunks

    @staticmethod
    def _stream_mode(markdown_text: str | None, chunks: list[dict[str, Any]] | None) -> str | None:
        if markdown_text is not None:
            return "markdown_text"
        if chunks:
            return "chunks"
        return None

    @staticmethod
    def _stream_text(markdown_text: str | None, chunks: list[dict[str, Any]] | None) -> str:
        if markdown_text is not None:
            return markdown_text
        return "".join(c["text"] for c in chunks or [] if c["type"] == "markdown_text")

    def _open_stream(self, channel: str, ts: str, *, stopping: bool) -> tuple[dict[str, Any], _Stream]:
        message = self._message(channel, ts)
        stream = self._streams.get((channel, message["ts"]))
        if stream is None:
            raise _Refusal("message_not_in_streaming_state")
        if message.get("user") != self.bot_user_id:
            raise _Refusal("message_not_owned_by_app")
        if stream.state == "stopped_by_user" and not stopping:
            raise _Refusal("stopped_by_user")
        if stream.state != "streaming":
            raise _Refusal("message_not_in_streaming_state")
        return message, stream

    def _feed_stream(
        self,
        message: dict[str, Any],
        stream: _Stream,
        markdown_text: str | None,
        chunks: list[dict[str, Any]] | None,
    ) -> None:
        mode = self._stream_mode(markdown_text, chunks)
        if mode is not None and stream.mode is not None and mode != stream.mode:
            raise _Refusal("streaming_mode_mismatch")
        stream.mode = stream.mode or mode
        if chunks:
            stream.chunks.extend(copy.deepcopy(chunks))
        elif markdown_text:
            stream.chunks.append({"type": "markdown_text", "text": markdown_text})
        message["text"] = message.get("text", "") + self._stream_text(markdown_text, chunks)

    def _chat_start_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._require_channel(args)
        if not self.streaming_enabled:
            raise _Refusal(self.streaming_disabled_error)
        if _channel_type(channel) != "im":
            # Documented as "required when streaming to channels".
            if not args.get("recipient_team_id"):
                raise _Refusal("missing_recipient_team_id")
            if not args.get("recipient_user_id"):
                raise _Refusal("missing_recipient_user_id")
        markdown_text, chunks = self._stream_content(args, required=False)
        ts = self._new_ts()
        message = self._bot_message(ts, text="")
        root = self._thread_root(channel, args.get("thread_ts"))
        if root is not None:
            message["thread_ts"] = root
        stream = _Stream(mode=None)
        self._feed_stream(message, stream, markdown_text, chunks)
        self._streams[(channel, ts)] = stream
        self._store(channel, message)
        self._clear_status(channel, root)
        return {"channel": channel, "ts": ts}

    def _chat_append_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._require_channel(args)
        message, stream = self._open_stream(channel, args.get("ts") or "", stopping=False)
        markdown_text, chunks = self._stream_content(args, required=True)
        self._feed_stream(message, stream, markdown_text, chunks)
        self._changed()
        return {"channel": channel, "ts": message["ts"]}

    def _chat_stop_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._require_channel(args)
        message, stream = self._open_stream(channel, args.get("ts") or "", stopping=True)
        markdown_text, chunks = self._stream_content(args, required=False)
        blocks = args.get("blocks")
        if blocks is not None:
            _check_blocks(blocks)
        self._feed_stream(message, stream, markdown_text, chunks)
        if blocks:
            message["blocks"] = blocks
        if args.get("metadata"):
            message["metadata"] = args["metadata"]
        session_status = args.get("session_status")
        if session_status is not None:
            if session_status not in SESSION_STATUSES:
                raise _Refusal("invalid_arguments")
            self._sessions[(channel, str(message.get("thread_ts") or message["ts"]))] = session_status
        stream.state = "stopped"
        self._changed()
        return {"channel": channel, "ts": message["ts"], "message": copy.deepcopy(message)}

    def _assistant_thread(self, args: dict[str, Any]) -> tuple[str, str]:
        channel = self._require_channel(args, "channel_id")
        thread_ts = args.get("thread_ts")
        if not thread_ts:
            raise _Refusal("invalid_thread_ts")
        return channel, str(thread_ts)

    def _assistant_set_status(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, thread_ts = self._assistant_thread(args)
        status = args.get("status")
        if not isinstance(status, str):
            raise _Refusal("invalid_arguments")
        loading = args.get("loading_messages")
        if loading is not None and (not isinstance(loading, list) or len(loading) > 10):
            raise _Refusal("invalid_arguments")
        if status:
            self._statuses[(channel, thread_ts)] = status
        else:
            self._statuses.pop((channel, thread_ts), None)
        return {}

    def _agents_session(self, args: dict[str, Any]) -> tuple[str, str]:
        if not self.agent_sessions:
            raise _Refusal("not_authorized")
        channel, thread_ts = self._assistant_thread(args)
        return channel, thread_ts

    def _agents_set_status(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, thread_ts = self._agents_session(args)
        status = args.get("status")
        if status not in SESSION_STATUSES:
            raise _Refusal("invalid_arguments")
        self._sessions[(channel, thread_ts)] = str(status)
        return {}

    def _assistant_set_suggested_prompts(self, args: dict[str, Any]) -> dict[str, Any]:
        self._require_channel(args, "channel_id")
        prompts = args.get("prompts")
        if not isinstance(prompts, list) or not prompts:
            raise _Refusal("invalid_arguments")
        for prompt in prompts:
            if not isinstance(prompt, dict) or not prompt.get("title") or not prompt.get("message"):
                raise _Refusal("invalid_arguments")
        return {}

    def _assistant_set_title(self, args: dict[str, Any]) -> dict[str, Any]:
        self._assistant_thread(args)
        if not isinstance(args.get("title"), str):
            raise _Refusal("invalid_arguments")
        return {}

    def _agents_sessions_rename(self, args: dict[str, Any]) -> dict[str, Any]:
        if not self.agent_sessions:
            raise _Refusal("not_authorized")
        channel = self._require_channel(args, "channel_id")
        title = args.get("title")
        if not isinstance(title, str) or not 1 <= len(title) <= 200:
            raise _Refusal("invalid_arguments")
        # Sessions in DMs and regular channels are thread-based: they need the thread's ts.
        if channel[:1] in ("C", "D", "G") and not args.get("thread_ts"):
            raise _Refusal("invalid_arguments")
        return {}

    def _reaction_target(self, args: dict[str, Any]) -> tuple[dict[str, Any], str]:
        channel = self._require_channel(args)
        name = str(args.get("name") or "").strip(":")
        if not name:
            raise _Refusal("invalid_name")
        return self._message(channel, args.get("timestamp")), name

    def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        message, name = self._reaction_target(args)
        reactions: list[dict[str, Any]] = message.setdefault("reactions", [])
        reaction = next((r for r in reactions if r["name"] == name), None)
        if reaction is None:
            reaction = {"name": name, "users": [], "count": 0}
            reactions.append(reaction)
        if self.bot_user_id in reaction["users"]:
            raise _Refusal("already_reacted")
        reaction["users"].append(self.bot_user_id)
        reaction["count"] = len(reaction["users"])
        return {}

    def _reactions_remove(self, args: dict[str, Any]) -> dict[str, Any]:
        message, name = self._reaction_target(args)
        reactions: list[dict[str, Any]] = message.get("reactions", [])
        reaction = next((r for r in reactions if r["name"] == name), None)
        if reaction is None or self.bot_user_id not in reaction["users"]:
            raise _Refusal("no_reaction")
        reaction["users"].remove(self.bot_user_id)
        reaction["count"] = len(reaction["users"])
        if not reaction["users"]:
            reactions.remove(reaction)
        if not reactions:
            message.pop("reactions", None)
        return {}

    def _files_info(self, args: dict[str, Any]) -> dict[str, Any]:
        full = self._files.get(str(args.get("file")))
        if full is None:
            raise _Refusal("file_not_found")
        return {
            "file": copy.deepcopy(full),
            "comments": [],
            "response_metadata": {"next_cursor": ""},
        }

    def _files_get_upload_url_external(self, args: dict[str, Any]) -> dict[str, Any]:
        filename = args.get("filename")
        if not filename:
            raise _Refusal("invalid_arguments")
        try:
            length = int(args.get("length") or 0)
        except (TypeError, ValueError):
            raise _Refusal("invalid_arguments") from None
        if length <= 0:
            # Documented: "Typically only occurs when the length provided is 0."
            raise _Refusal("missing_argument")
        file_id = _random_id("F")
        upload_id = uuid.uuid4().hex
        self._pending_uploads[file_id] = _PendingUpload(
            file_id=file_id,
            filename=str(filename),
            length=length,
            alt_txt=args.get("alt_txt"),
            snippet_type=args.get("snippet_type"),
        )
        self._upload_ids[upload_id] = file_id
        return {"upload_url": f"{self.base_url}/upload/v1/{upload_id}", "file_id": file_id}

    def _files_complete_upload_external(self, args: dict[str, Any]) -> dict[str, Any]:
        files = args.get("files")
        if not isinstance(files, list) or not files:
            raise _Refusal("invalid_arguments")
        pending_list: list[tuple[_PendingUpload, str]] = []
        for entry in files:
            if not isinstance(entry, dict):
                raise _Refusal("invalid_arguments")
            pending = self._pending_uploads.get(str(entry.get("id")))
            if pending is None or pending.content is None:
                raise _Refusal("file_not_found")
            pending_list.append((pending, str(entry.get("title") or pending.filename)))
        channels: list[str] = []
        if args.get("channel_id"):
            channels.append(self._require_channel(args, "channel_id"))
        for channel in str(args.get("channels") or "").split(","):
            if channel and channel not in channels:
                if not _is_channel_id(channel):
                    raise _Refusal("channel_not_found")
                channels.append(channel)
        full_objects = []
        for pending, title in pending_list:
            mimetype = mimetypes.guess_type(pending.filename)[0] or "application/octet-stream"
            extension = pending.filename.rsplit(".", 1)[-1].lower() if "." in pending.filename else "binary"
            content = pending.content or b""
            full = self._file_object(
                pending.file_id,
                name=pending.filename,
                title=title,
                mimetype=mimetype,
                filetype=extension,
                size=len(content),
                user=self.bot_user_id,
            )
            self._files[pending.file_id] = full
            self._file_content[pending.file_id] = content
            del self._pending_uploads[pending.file_id]
            full_objects.append(full)
        initial_comment = args.get("initial_comment")
        thread_ts: str | None = None
        for channel in channels:
            thread_ts = self._thread_root(channel, args.get("thread_ts"))
            message = self._bot_message(self._new_ts(), text=str(initial_comment or ""))
            message.update(files=copy.deepcopy(full_objects), upload=True, display_as_bot=False)
            if thread_ts is not None:
                message["thread_ts"] = thread_ts
            self._store(channel, message)
            self._clear_status(channel, thread_ts)
        for (pending, title), full in zip(pending_list, full_objects, strict=True):
            self.uploads.append(
                {
                    "file_id": full["id"],
                    "filename": pending.filename,
                    "title": title,
                    "content": self._file_content[full["id"]],
                    "declared_length": pending.length,
                    "channel": channels[0] if channels else None,
                    "thread_ts": thread_ts,
                    "initial_comment": initial_comment,
                }
            )
        return {"files": [{"id": full["id"], "title": full["title"]} for full in full_objects]}

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        ticket = uuid.uuid4().hex
        return {"url": f"ws://127.0.0.1:{self.port}/socket?ticket={ticket}&app_id={self.app_id}"}


# ---------------------------------------------------------------------- Events API side


def _event_id() -> str:
    return _random_id("Ev", 10)


def _event_context(team_id: str, app_id: str, event: dict[str, Any]) -> str:
    # Slack's opaque event_context is "4-" + unpadded base64 of a small JSON document.
    document = {"et": event.get("type"), "tid": team_id, "aid": app_id, "cid": event.get("channel")}
    encoded = base64.urlsafe_b64encode(json.dumps(document, separators=(",", ":")).encode())
    return "4-" + encoded.decode().rstrip("=")


def app_home_opened(user: str, channel: str, tab: str = "messages") -> dict[str, Any]:
    return {
        "type": "app_home_opened",
        "user": user,
        "channel": channel,
        "tab": tab,
        "event_ts": f"{time.time():.6f}",
    }


def assistant_thread_started(
    user: str, channel: str, thread_ts: str, *, team_id: str = "T0TEAM", context_channel: str | None = None
) -> dict[str, Any]:
    context: dict[str, Any] = {"team_id": team_id, "enterprise_id": None}
    if context_channel is not None:
        context["channel_id"] = context_channel
    return {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": user,
            "context": context,
            "channel_id": channel,
            "thread_ts": thread_ts,
        },
        "event_ts": f"{time.time():.6f}",
    }


def app_context_changed(user: str, channel: str, entities: list[dict[str, Any]]) -> dict[str, Any]:
    """What a user has open beside the app's DM (agent_view); no entities → an empty context."""
    return {
        "type": "app_context_changed",
        "user": user,
        "channel": channel,
        "context": {"entities": entities} if entities else {},
        "event_ts": f"{time.time():.6f}",
    }


def message_action(
    callback_id: str,
    *,
    user: str,
    channel: str,
    message: dict[str, Any],
    team_id: str = "T0TEAM",
    team_domain: str = "emulated",
) -> dict[str, Any]:
    """A message shortcut chosen on `message` (the body's `payload`, type message_action)."""
    return {
        "type": "message_action",
        "token": VERIFICATION_TOKEN,
        "action_ts": f"{time.time():.6f}",
        "team": {"id": team_id, "domain": team_domain},
        "user": {"id": user, "name": user.lower(), "username": user.lower(), "team_id": team_id},
        "channel": {"id": channel, "name": channel.lower()},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": f"{int(time.time())}.{_random_id('', 12)}",
        "response_url": f"https://hooks.slack.com/app/{team_id}/{_random_id('', 12)}",
        "message_ts": message["ts"],
        "message": copy.deepcopy(message),
    }


def url_verification(challenge: str) -> dict[str, Any]:
    return {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}


class EventSender:
    """Delivers Events API payloads to the bot's HTTP endpoint the way Slack does: signed."""

    def __init__(
        self,
        url: str,
        signing_secret: str,
        *,
        team_id: str = "T0TEAM",
        api_app_id: str = "A0APP",
        bot_user_id: str = "U0BOT",
        timeout: float = 30.0,
    ) -> None:
        self.url = url
        self.signing_secret = signing_secret
        self.team_id = team_id
        self.api_app_id = api_app_id
        self.bot_user_id = bot_user_id
        self.timeout = timeout
        self._session: ClientSession | None = None

    def envelope(self, event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
        return {
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or _event_id(),
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": _event_context(self.team_id, self.api_app_id, event),
        }

    def signed_headers(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        stamp = int(time.time()) if timestamp is None else timestamp
        base = f"v0:{stamp}:".encode() + body
        digest = hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": str(stamp),
            "X-Slack-Signature": f"v0={digest}",
        }

    async def post(
        self,
        payload: dict[str, Any],
        *,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        timestamp: int | None = None,
        sign: bool = True,
        signature: str | None = None,
    ) -> tuple[int, str]:
        body = json.dumps(payload).encode()
        if sign:
            headers = self.signed_headers(body, timestamp=timestamp)
        else:
            headers = {"Content-Type": "application/json"}
            if timestamp is not None:
                headers["X-Slack-Request-Timestamp"] = str(timestamp)
        if signature is not None:
            headers["X-Slack-Signature"] = signature
            headers.setdefault("X-Slack-Request-Timestamp", str(int(time.time())))
        headers["User-Agent"] = "Slackbot 1.0 (+https://api.slack.com/robots)"
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        if self._session is None or self._session.closed:
            self._session = ClientSession(timeout=ClientTimeout(total=self.timeout))
        async with self._session.post(self.url, data=body, headers=headers) as response:
            return response.status, await response.text()

    async def send(self, event: dict[str, Any], *, event_id: str | None = None, **kw: Any) -> tuple[int, str]:
        return await self.post(self.envelope(event, event_id=event_id), **kw)

    async def interact(self, payload: dict[str, Any]) -> tuple[int, str]:
        """An interactive request (shortcut, button) as Slack sends it: a signed form, `payload=<json>`."""
        body = urlencode({"payload": json.dumps(payload)}).encode()
        headers = {**self.signed_headers(body), "Content-Type": "application/x-www-form-urlencoded"}
        if self._session is None or self._session.closed:
            self._session = ClientSession(timeout=ClientTimeout(total=self.timeout))
        async with self._session.post(self.url, data=body, headers=headers) as response:
            return response.status, await response.text()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def button_click(
    message: dict[str, Any], *, action_id: str, user: str, value: str = "", team_id: str = "T0TEAM"
) -> dict[str, Any]:
    """The block_actions payload of a button on a bot message (shape of a recorded one)."""
    channel = message["channel"]
    return {
        "type": "block_actions",
        "team": {"id": team_id, "domain": "emulated"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team_id},
        "api_app_id": "A0APP",
        "token": VERIFICATION_TOKEN,
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**12}",
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel},
        "channel": {"id": channel, "name": channel.lower()},
        "message": {k: v for k, v in message.items() if k in ("ts", "thread_ts", "text", "blocks", "user")},
        "response_url": "https://hooks.slack.com/actions/T0TEAM/1/x",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": action_id,
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
