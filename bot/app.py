"""Composition root: builds the clients, store, backend, Bolt app and web server of one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web
from redis.asyncio import Redis
from redis.exceptions import RedisError
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.access import Gate
from bot.agent_view import AgentView
from bot.approvals import ApprovalBook, decide, sweep
from bot.assistant.assistants import AssistantsBackend
from bot.assistant.base import Backend
from bot.assistant.responses import ResponsesBackend
from bot.attachments import parse_kinds
from bot.budgets import Budgets
from bot.commands import Commands, CommandSettings
from bot.config import ConfigError, Settings
from bot.connections import (
    make_lease_redis,
    make_openai,
    make_openai_session,
    make_redis,
    make_slack_client,
    make_slack_session,
)
from bot.leases import Heartbeat
from bot.message_items import MessageItems, forget_message
from bot.policy import Policy, tool_names
from bot.queue import TurnQueue, Worker
from bot.slack.directory import SlackDirectory
from bot.slack.files import SlackFiles
from bot.slack.guard import RequestGuard
from bot.slack.history import SlackHistory
from bot.slack.listeners import Listeners
from bot.stopping import StopSignals
from bot.store import GROUP, Store
from bot.supervisor import WorkerProcesses
from bot.tools import ToolError, ToolSet, load_tools
from bot.turns import TurnRunner, TurnSettings
from bot.upkeep import close_thread, forget_file, record_feedback
from bot.web import build_web_app

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 1.0


def make_backend(settings: Settings) -> Backend:
    session = make_openai_session(settings)
    client = make_openai(settings, session)
    if settings.backend == "assistants":
        assert settings.assistant_id, "Settings requires ASSISTANT_ID for the assistants backend"
        return AssistantsBackend(
            client,
            assistant_id=settings.assistant_id,
            instructions=settings.system_instructions(),
            code_interpreter=settings.code_interpreter,
            stale_run_s=settings.turn_timeout_seconds,
            inline_image_max_px=settings.inline_image_max_px,
        )
    return ResponsesBackend(
        client,
        session=session,
        model=settings.openai_model,
        instructions=settings.system_instructions(),
        code_interpreter=settings.code_interpreter,
        store_days=settings.thread_ttl_days,
        inline_image_max_px=settings.inline_image_max_px,
        max_output_tokens=settings.max_output_tokens,
    )


def hosted_tool_notes(settings: Settings) -> list[str]:
    """Hosted tools configured that the chosen backend cannot offer (for `check` and the log)."""
    if settings.backend == "responses":
        return []
    notes = []
    if settings.mcp_servers is not None:
        notes.append("no MCP on this backend: the servers of THREADBRIDGE_MCP_SERVERS are not offered")
    if settings.web_search:
        notes.append("no web search on this backend: THREADBRIDGE_WEB_SEARCH is ignored")
    return notes


def make_tools(settings: Settings) -> ToolSet:
    """The function tools (modules and installed plugins) and the hosted tools this bot offers."""
    try:
        tools = load_tools(settings.tool_modules)
    except ToolError as exc:
        raise ConfigError(f"THREADBRIDGE_TOOLS: {exc}") from None
    for note in hosted_tool_notes(settings):
        log.warning("%s backend: %s", settings.backend, note)
    mcp = settings.mcp_tools() if settings.backend == "responses" else ()
    if mcp:
        log.info("MCP servers: %s", ", ".join(m["server_label"] for m in mcp))
    return tools.with_hosted(
        file_search=True,
        code_interpreter=settings.code_interpreter,
        web_search=settings.web_search,
        web_search_domains=settings.web_search_domain_list,
        mcp_servers=mcp,
        timeout_s=settings.tool_timeout_seconds,
    )


@dataclass
class Runtime:
    """Everything one process runs; start() then stop() (graceful) or just stop()."""

    settings: Settings
    edge: bool = True
    workers: bool = True  # run turns in this process
    child_workers: int = 0  # worker processes to start and supervise beside the edge
    serve_http: bool = True  # /healthz, /readyz, /metrics (and /slack/events on an HTTP edge)
    redis: Redis = field(init=False)
    store: Store = field(init=False)
    slack: AsyncWebClient = field(init=False)
    slack_session: ClientSession = field(init=False)
    backend: Backend = field(init=False)
    files: SlackFiles = field(init=False)
    tools: ToolSet = field(init=False)
    policy: Policy = field(init=False)
    budgets: Budgets = field(init=False)
    agent_view: AgentView = field(init=False)
    bolt: AsyncApp | None = field(init=False, default=None)
    worker: Worker | None = field(init=False, default=None)
    heartbeat: Heartbeat | None = field(init=False, default=None)
    lease_redis: Redis | None = field(init=False, default=None)
    _site: web.AppRunner | None = field(init=False, default=None)
    _socket: AsyncSocketModeHandler | None = field(init=False, default=None)
    _worker_task: asyncio.Task[None] | None = field(init=False, default=None)
    _watch_task: asyncio.Task[None] | None = field(init=False, default=None)
    _metrics_dir: Path | None = field(init=False, default=None)
    _own_metrics_dir: bool = field(init=False, default=False)
    _children: WorkerProcesses | None = field(init=False, default=None)
    approvals: ApprovalBook = field(init=False)
    stops: StopSignals = field(init=False)
    _sweeper: asyncio.Task[None] | None = field(init=False, default=None)
    _stopping: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        s = self.settings
        self.redis = make_redis(s)
        self.store = Store(self.redis, prefix=s.redis_prefix, thread_ttl_s=s.thread_ttl_days * 86400)
        self.slack_session = make_slack_session(s)
        self.slack = make_slack_client(s, self.slack_session)
        self.tools = make_tools(s)
        self.policy = Policy(s, tool_names=tool_names(self.tools), directory=SlackDirectory(self.slack))
        self.budgets = Budgets(self.redis, prefix=s.redis_prefix, thread_ttl_s=s.thread_ttl_days * 86400)
        self.backend = make_backend(s)
        self.stops = StopSignals(self.redis, prefix=s.redis_prefix, stop_by=s.stop_by)
        self.agent_view = AgentView(
            self.redis, self.slack, prefix=s.redis_prefix, thread_ttl_s=s.thread_ttl_days * 86400
        )
        self.approvals = ApprovalBook(
            self.redis,
            prefix=s.redis_prefix,
            timeout_s=s.mcp_approval_timeout_seconds,
            approvers=s.approver_ids,
        )
        self.files = SlackFiles(
            self.slack,
            max_bytes=s.max_file_mb * 1024 * 1024,
            api_url=s.slack_api_url,
            kinds=parse_kinds(s.file_kinds),
        )

    async def start(self) -> None:
        s = self.settings
        auth = await self.slack.auth_test()
        bot_user_id = str(auth["user_id"])
        log.info("connected to Slack team %s as %s", auth.get("team_id"), bot_user_id)
        if self.edge:
            self.bolt = self._bolt(auth)
        if self.workers:
            consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
            self.lease_redis = make_lease_redis(s, self.redis)
            leases = Store(self.lease_redis, prefix=s.redis_prefix)
            self.heartbeat = Heartbeat(leases, lease_ms=s.lease_seconds * 1000, consumer=consumer)
            await self.stops.start()
            runner = TurnRunner(
                heartbeat=self.heartbeat,
                store=self.store,
                backend=self.backend,
                slack=self.slack,
                history=SlackHistory(self.slack),
                files=self.files,
                tools=self.tools,
                approvals=self.approvals,
                settings=TurnSettings(
                    bot_user_id=bot_user_id,
                    consumer=consumer,
                    lease_ms=s.lease_seconds * 1000,
                    timeout_s=s.turn_timeout_seconds,
                    native_streaming=s.slack_streaming,
                    allow_user_mentions=s.allow_user_mentions,
                    stop_button=s.stop_button,
                ),
                stops=self.stops,
                policy=self.policy,
                budgets=self.budgets,
                commands=self._commands(),
                agent_view=self.agent_view,
            )
            self.worker = Worker(
                self.store,
                runner.handle,
                consumer=consumer,
                max_turns=s.max_turns,
                lease_ms=s.lease_seconds * 1000,
            )
            await self.worker.ensure_group()
            self._worker_task = asyncio.create_task(self.worker.run())
            if self.tools.mcp_servers:
                self._sweeper = asyncio.create_task(sweep(self.approvals, self.slack, self._stopping))
        self._watch_task = asyncio.create_task(self.policy.watch())
        self._metrics_dir = s.prometheus_multiproc_dir
        if self.child_workers:
            if self._metrics_dir is None:
                # The turns run in the worker processes: without a shared directory their
                # metrics would never reach this process's /metrics.
                self._metrics_dir = Path(tempfile.mkdtemp(prefix="threadbridge-metrics-"))
                self._own_metrics_dir = True
            self._children = WorkerProcesses(
                self.child_workers,
                nice=s.worker_nice,
                env={"PROMETHEUS_MULTIPROC_DIR": str(self._metrics_dir)},
            )
            await self._children.start()
        if self.serve_http:
            http_edge = self.bolt if (self.bolt is not None and not s.socket_mode) else None
            secret = s.slack_signing_secret
            guard = RequestGuard(secret.get_secret_value()) if secret else None
            self._site = web.AppRunner(build_web_app(http_edge, self.ready, guard, self.scrape))
            await self._site.setup()
            await web.TCPSite(self._site, s.host, s.port).start()
            mode = "socket mode" if s.socket_mode else "http"
            log.info("listening on %s:%s (%s)", s.host, s.port, mode)
        if self.bolt is not None and s.socket_mode:
            assert s.slack_app_token is not None
            self._socket = AsyncSocketModeHandler(self.bolt, s.slack_app_token.get_secret_value())
            # connect() retries a refused app token forever, so a wrong or revoked SLACK_APP_TOKEN
            # would leave the process healthy, deaf and deaf to SIGTERM too. Asking for the first
            # socket URL here makes a refusal fail start-up; connect() then uses that URL.
            self._socket.client.wss_uri = await self._socket.client.issue_new_wss_url()
            await self._socket.connect_async()

    def _commands(self) -> Commands:
        s = self.settings
        model = s.openai_model if s.backend == "responses" else f"the model of assistant {s.assistant_id}"
        return Commands(
            store=self.store,
            backend=self.backend,
            slack=self.slack,
            tools=self.tools,
            settings=CommandSettings(reset_deletes=s.reset_deletes, default_model=model),
            policy=self.policy,
            budgets=self.budgets,
        )

    def _bolt(self, auth: Any) -> AsyncApp:
        s = self.settings
        identity = AuthorizeResult.from_auth_test_response(
            bot_token=self.slack.token, auth_test_response=auth
        )

        async def authorize() -> AuthorizeResult:
            # Who we are is known from start-up: Bolt would otherwise ask auth.test on its
            # first event, and a Slack outage then would lose that event.
            return identity

        app = AsyncApp(
            client=self.slack,
            authorize=authorize,
            signing_secret=s.slack_signing_secret.get_secret_value() if s.slack_signing_secret else None,
            process_before_response=True,
            request_verification_enabled=not s.socket_mode,
            # Bolt drops every event "from" the bot, which includes a person deleting the bot's
            # answer (message_deleted carries the bot's message); the listeners skip the bot's own.
            ignoring_self_events_enabled=False,
        )
        app.use(metrics.timed_ack)
        queue = TurnQueue(self.store, maxlen=s.stream_max_len, flood_limit=s.flood_limit)
        items = MessageItems(self.store)
        Listeners(
            queue,
            on_file_deleted=lambda team, file_id: forget_file(self.store, self.backend, team, file_id),
            on_feedback=lambda key, user, value: record_feedback(
                self.store, self.backend, self.slack, key, user, value
            ),
            on_thread_deleted=lambda key: close_thread(self.store, self.backend, key),
            on_message_deleted=lambda key, ts: forget_message(self.store, items, self.backend, key, ts),
            on_approval=lambda click: decide(self.approvals, self.slack, queue.accept, click),
            on_stop=lambda key, user, force: self.stops.request(key, user, force=force),
            on_context_changed=self.agent_view.remember,
            gate=Gate(self.policy, self.redis, prefix=s.redis_prefix),
        ).register(app)
        return app

    async def ready(self) -> bool:
        # Bounded: a Redis that hangs (paused, a half-open connection) must read as "not ready"
        # within a probe's usual timeout, not hang the probe.
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                return await self.store.ping()
        except (RedisError, OSError, TimeoutError):
            return False

    def reload(self) -> None:
        """SIGHUP: this process reloads its configuration file, and so do its worker processes."""
        self.policy.reload()
        if self._children is not None:
            self._children.signal(signal.SIGHUP)

    async def scrape(self) -> bytes:
        """/metrics: the queue's depth is read from Redis now, the rest is this process's (or all)."""
        try:
            groups: list[dict[Any, Any]] = await self.redis.xinfo_groups(self.store.stream)
            ours = next((g for g in groups if _text(g.get("name")) == GROUP), {})
            metrics.gauge("queue_depth", int(ours.get("lag") or 0))
            metrics.gauge("queue_pending", int(ours.get("pending") or 0))
        except (RedisError, OSError):
            log.warning("could not read the queue depth for /metrics")
        return metrics.render(self._metrics_dir)

    async def stop(self) -> None:
        """Stop taking work, let in-flight turns finish within the grace period, close clients."""
        if self._socket is not None:
            # close, not disconnect: a merely disconnected client reconnects at its next ping
            # (10 s), taking events again mid-shutdown, and leaves its HTTP session open.
            with contextlib.suppress(Exception):
                await self._socket.close_async()
        if self._children is not None:
            await self._children.stop(self.settings.shutdown_grace_seconds)
        if self.worker is not None:
            await self.worker.stop(self.settings.shutdown_grace_seconds)
        if self._worker_task is not None:
            await self._worker_task
        self._stopping.set()
        if self._sweeper is not None:
            await self._sweeper
        if self.heartbeat is not None:
            await self.heartbeat.aclose()
        await self.stops.aclose()
        if self._watch_task is not None:
            self._watch_task.cancel()
        if self._site is not None:
            await self._site.cleanup()
        metrics.process_exited(self.settings.prometheus_multiproc_dir)
        if self._own_metrics_dir and self._metrics_dir is not None:
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
        await self.files.aclose()
        await self.backend.aclose()
        await self.slack_session.close()
        if self.lease_redis is not None and self.lease_redis is not self.redis:
            await self.lease_redis.aclose()
        await self.redis.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
