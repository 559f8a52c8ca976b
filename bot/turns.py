"""Turn orchestration: the one place that sees Slack, Redis and the assistant together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, replace

from redis.exceptions import RedisError
from slack_sdk.web.async_client import AsyncWebClient

from bot import approvals, turn_stop
from bot.accounting import TurnMeter
from bot.agent_view import AgentView
from bot.approvals import ApprovalBook
from bot.assistant.base import (
    Approval,
    ApprovalRequested,
    Backend,
    BackendError,
    Binding,
    Citation,
    Completed,
    ConversationBusy,
    ConversationGone,
    Failed,
    ItemsStored,
    Notice,
    OutputFile,
    RunRequest,
    Status,
    TextDelta,
    ToolCall,
    Usage,
)
from bot.budgets import Budgets
from bot.commands import Commands, next_batch
from bot.config_file import ChannelSettings, PolicyConfig
from bot.edits import Edits
from bot.inbound import Inbound, ThreadKey
from bot.leases import Heartbeat
from bot.message_items import MessageItems
from bot.policy import Policy, narrow_tools
from bot.progress import TurnProgress, skip_answered
from bot.slack.files import SlackFiles
from bot.slack.history import SlackHistory, ThreadView
from bot.slack.markup import mentioned_users
from bot.slack.notices import tell_privately
from bot.slack.outage import SlackUnavailable, unavailable
from bot.slack.render import source_line
from bot.slack.reply import ReplyStream, discard_interrupted, post_note
from bot.slack.sessions import AgentSessions
from bot.stopping import StopSignals
from bot.store import Claim, ClaimStatus, FinishStatus, Lease, Store
from bot.tools import ToolContext, ToolSet
from bot.turn_files import SharedFiles

log = logging.getLogger(__name__)


KEPT = "Your message is saved in this thread's conversation; reply here to try again."
NOT_KEPT = "I could not save your message, so please send it again in a minute."
WAITING_FOR_APPROVAL = "Waiting for approval to use a tool (see below)."
RETRY = "Reply here to try again."
LOCKED_RETRIES = 3


@dataclass(frozen=True, slots=True)
class TurnSettings:
    bot_user_id: str
    consumer: str
    lease_ms: int
    timeout_s: float
    native_streaming: bool = True
    allow_user_mentions: bool = False
    stop_button: str = "auto"  # THREADBRIDGE_STOP_BUTTON: where Slack shows no Stop of its own


class TurnRunner:
    """Runs the Turns of the thread a queued message belongs to, while holding its lock."""

    def __init__(
        self,
        *,
        store: Store,
        backend: Backend,
        slack: AsyncWebClient,
        history: SlackHistory,
        files: SlackFiles,
        tools: ToolSet,
        settings: TurnSettings,
        heartbeat: Heartbeat,
        approvals: ApprovalBook | None = None,
        policy: Policy | None = None,
        budgets: Budgets | None = None,
        stops: StopSignals | None = None,
        commands: Commands | None = None,
        agent_view: AgentView | None = None,
    ) -> None:
        self._stops = stops
        self._sessions = AgentSessions(slack)
        self._commands = commands
        self._agent_view = agent_view
        self._heartbeat = heartbeat
        self._approvals = approvals
        self._store = store
        self._backend = backend
        self._slack = slack
        self._history = history
        self._files = files
        self._tools = tools
        self._settings = settings
        self._policy = policy
        self._budgets = budgets
        self._shared = SharedFiles(store, backend, slack, files)
        self._edits = Edits(store, MessageItems(store), backend, slack, history)

    async def handle(self, entry_id: str, payload: str) -> None:
        """Offer one queued message to its thread; if we get the lock, run Turns until its inbox is empty."""
        key = Inbound.from_json(payload).key
        token = uuid.uuid4().hex
        claim = await self._store.claim(entry_id, payload, key, token, self._settings.lease_ms)
        if claim.status is not ClaimStatus.RUNNER:
            return
        lease = Lease(key, token, entry_id)
        try:
            async with self._heartbeat.hold(lease):
                s = self._settings
                claim = await skip_answered(self._store, self._slack, claim, lease, s.lease_ms, s.bot_user_id)
                resumed: Claim | None = claim
                inbox, binding = claim.inbox, claim.binding
                while inbox:
                    batch, command = next_batch(inbox) if self._commands else (inbox, None)
                    if command is not None and self._commands is not None:
                        binding = await self._commands.run(command, batch[0], binding)
                    else:
                        binding = await self.turn(key, batch, binding, resumed)
                        resumed = None
                    released, inbox = await self._store.finish(
                        key, batch, token, entry_id, self._settings.lease_ms
                    )
                    if released is FinishStatus.LOST:
                        log.warning("lost the lock of %s mid-turn", key, extra={"thread_key": str(key)})
        except BaseException:
            # Shutdown or a Redis failure: leave the entry pending so another worker resumes it.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._store.release(key, token))
            raise

    async def turn(
        self, key: ThreadKey, inbox: list[Inbound], binding: Binding | None, claim: Claim | None = None
    ) -> Binding | None:
        """One Turn: the pending messages of a thread → one backend run → one reply."""
        # What a runner that stopped mid-turn left: a half-written reply, messages kept.
        interrupted, kept = (claim.interrupted_reply, claim.kept) if claim else ("", frozenset[str]())
        extra = {"thread_key": str(key), "event_id": ",".join(m.event_id for m in inbox if m.event_id)}
        if interrupted:
            log.info("replacing an interrupted reply %s", interrupted, extra=extra)
            await discard_interrupted(self._slack, key, interrupted)
        folded = await self._edits.fold(key, inbox, binding)
        if folded.settled:
            return binding  # only corrections: stored in the conversation for the next turn
        inbox = folded.inputs
        # The configuration in force now holds for the whole turn, whatever reloads meanwhile.
        config, channel = await self._channel(key)
        meter = TurnMeter(key, inbox[-1].user, config, channel, self._budgets)
        # A resumed inbox was admitted by the runner that left it (outage, crash, shutdown):
        # counting it again would spend a person's daily turns on one message.
        refusal = None if claim is not None and claim.resumed else await meter.admit()
        if refusal is not None:
            # Before any download or model call: over budget costs nothing.
            await tell_privately(self._slack, key, meter.user, refusal.message())
            await self._settle(meter)
            return binding
        if folded.replace is not None:
            await self._edits.replace_answer(key, folded.replace)
        if binding is None:
            # The bot answers here now, even if only to say "send it again" when no conversation
            # can be opened: the thread is the bot's, so a plain reply there is answered. Marked
            # before anything is posted, or that reply could arrive first and be ignored.
            await self._store.mark_spoken(key)
        inputs = [replace(m, speaker=await self._history.display_name(m.user)) for m in inbox]
        if self._agent_view is not None:
            inputs = await self._agent_view.situate(key, inputs)
        # Slack shows its own Stop on a session in `processing`; elsewhere the answer carries ours,
        # on a message written by updates (a streamed message cannot drop a button it carried).
        session = await self._sessions.processing(key)
        button = self._stops is not None and self._settings.stop_button != "never" and not session
        answering = [m.ts for m in inbox]
        progress = TurnProgress(self._store, key, answering)
        reply = ReplyStream(
            self._slack,
            key,
            recipient_user_id=inputs[-1].user,
            native=self._settings.native_streaming
            and not (button and self._settings.stop_button == "always"),
            on_started=progress.reply_started,
            allowed_users=self._allowed_mentions(inputs),
            answers=answering,
            stop_button=button,
        )
        await reply.begin("is thinking…")
        try:
            binding, seed = await self._binding(key, binding, inputs)
            binding, attached = await self._shared.take(key, binding, inputs, reply, channel.file_kinds)
            if not any(m.text for m in inputs) and any(m.files for m in inputs):
                meter.outcome = "files_only"
                await self._shared.confirm_only(key, attached)
                return binding
            request = RunRequest(
                inputs=tuple(m for m in inputs if m.kind != "approval"),
                approvals=tuple(Approval(m.approval_id, m.approve) for m in inputs if m.kind == "approval"),
                tools=narrow_tools(self._tools, channel),
                attached=tuple(attached),
                seed=tuple(seed),
                context=self._tool_context(key, inputs[-1]),
                model=channel.model,
                instructions=channel.instructions,
                safety_identifier=self._policy.safety_identifier(meter.user) if self._policy else "",
                kept=kept,
                on_kept=progress.kept,
            )
            async with (
                asyncio.timeout(self._settings.timeout_s),
                turn_stop.watch(self._stops, self._slack, key, inbox, reply) as stop,
            ):
                binding = await self._run(key, binding, request, reply, meter)
            if stop.by:
                await turn_stop.finish(self._backend, binding, reply, meter, stop.by)
            if self._agent_view is not None and meter.outcome == "completed":
                await self._agent_view.answered(key, inbox)
        except (asyncio.CancelledError, RedisError):
            # Shutting down, or Redis unreachable (down, or its pool busy past the wait): the
            # entry stays pending and the messages are answered when a worker takes them over.
            meter.outcome = "interrupted"
            raise
        except TimeoutError:
            meter.outcome = "timeout"
            log.warning("turn timed out after %ss", self._settings.timeout_s, extra=extra)
            await reply.fail(f"The assistant took too long to answer. {RETRY}")
        except BackendError as exc:
            meter.outcome = "failed"
            log.warning("turn failed: %s", exc, extra=extra)
            await reply.fail(f"{exc.user_message} {saved(exc.kept)}")
        except Exception as exc:
            if unavailable(exc) and not reply.finished:
                meter.outcome = "slack_unavailable"  # not the message's fault: answered once Slack is back
                raise SlackUnavailable(f"Slack unavailable; {key} stays queued") from exc
            # Not retried: a message that breaks the bot must not loop through the queue forever.
            meter.outcome = "crashed"
            log.exception("turn crashed", extra=extra)
            with contextlib.suppress(Exception):
                await reply.fail(f"Something went wrong on my side. {RETRY}")
        finally:
            if session:
                await self._sessions.active(key)
            await self._settle(meter)
        return binding

    def _allowed_mentions(self, inputs: list[Inbound]) -> frozenset[str]:
        """Users the answer may mention: those the model was given, when the operator allows it."""
        if not self._settings.allow_user_mentions:
            return frozenset()
        return mentioned_users(m.text for m in inputs)

    async def _channel(self, key: ThreadKey) -> tuple[PolicyConfig, ChannelSettings]:
        if self._policy is None:
            return PolicyConfig(), ChannelSettings()
        return await self._policy.for_channel(key.channel_id)

    async def _settle(self, meter: TurnMeter) -> None:
        try:
            await meter.close()
        except (RedisError, OSError) as exc:
            # The answer is out; failing the turn now would only answer it twice.
            log.warning(
                "could not charge the turn's tokens: %s",
                type(exc).__name__,
                extra={"thread_key": str(meter.key)},
            )

    def _tool_context(self, key: ThreadKey, asker: Inbound) -> ToolContext:
        view = ThreadView(self._slack, self._history, key)
        return ToolContext(key, asker.user, asker.speaker, key.channel_id, view)

    async def _binding(
        self, key: ThreadKey, binding: Binding | None, inputs: list[Inbound]
    ) -> tuple[Binding, list[str]]:
        """The thread's conversation, opened (and seeded from the thread) on first use."""
        if binding is not None and binding.backend == self._backend.name:
            return binding, []
        if binding is not None:
            log.info(
                "thread bound to backend %s; opening a %s conversation",
                binding.backend,
                self._backend.name,
            )
        return await self._open(key, inputs), await self._seed(key, inputs)

    async def _open(self, key: ThreadKey, inputs: list[Inbound]) -> Binding:
        metadata = {
            "slack_team": key.team_id,
            "slack_channel": key.channel_id,
            "slack_thread_ts": key.thread_ts,
            "slack_user": inputs[0].user if inputs else "",
        }
        binding = await self._backend.open(key, metadata)
        await self._store.bind(key, binding)
        return binding

    async def _seed(self, key: ThreadKey, inputs: list[Inbound]) -> list[str]:
        first = inputs[0]
        if first.kind != "mention" or first.ts == key.thread_ts:
            return []
        return await self._history.earlier_messages(key, first.ts, self._settings.bot_user_id)

    async def _run(
        self, key: ThreadKey, binding: Binding, request: RunRequest, reply: ReplyStream, meter: TurnMeter
    ) -> Binding:
        for attempt in range(LOCKED_RETRIES + 1):
            try:
                await self._stream(key, binding, request, reply, meter)
                return binding
            except ConversationGone:
                if reply.started:
                    raise
                log.warning("conversation %s is gone; re-binding %s", binding.conversation_id, key)
                binding = await self._open(key, list(request.inputs))
                request = replace(request, kept=frozenset())  # a new conversation holds nothing
                await reply.append(
                    "_The earlier conversation for this thread was lost on the server; starting afresh._\n\n"
                )
            except ConversationBusy:
                # The SDK already retried 429/5xx; a locked conversation frees itself shortly.
                if reply.started or attempt == LOCKED_RETRIES:
                    raise
                await asyncio.sleep(2**attempt)
        return binding

    async def _stream(
        self, key: ThreadKey, binding: Binding, request: RunRequest, reply: ReplyStream, meter: TurnMeter
    ) -> None:
        sources: list[str] = []
        end: Completed | Failed | None = None
        asked: list[ApprovalRequested] = []
        notices: list[str] = []
        stored: list[ItemsStored] = []
        # Closed here, not by the event loop later: the backend's clean-up (keeping the user's
        # items, cancelling a run) runs under the thread's lock, before the reply is finished.
        async with contextlib.aclosing(self._backend.run(binding, request)) as events:
            async for event in events:
                match event:
                    case TextDelta(text=text):
                        meter.text()
                        await reply.append(text)
                    case Usage():
                        meter.used(event)
                    case Status(text=text):
                        await reply.status(text)
                    case ToolCall(name=name, id=task_id, status=status, title=title):
                        await reply.task(task_id or name, title or f"Using {name}", status)
                    case Citation(filename=name, url=url):
                        sources.append(source_line(name, url))
                    case OutputFile(name=name, content=content):
                        await reply.status(f"uploading {name}…")
                        await self._files.upload(key, name=name, content=content)
                    case ApprovalRequested() as approval:
                        asked.append(approval)
                    case Notice(text=text):
                        notices.append(text)
                    case ItemsStored():
                        stored.append(event)
                    case Completed() | Failed():
                        end = event
                        break
        match end:
            case Completed():
                if asked:
                    await reply.append(f"\n\n_{WAITING_FOR_APPROVAL}_")
                posted = await reply.finish(sources)
                await self._edits.remember(key, binding, request.inputs, stored, posted, answered=True)
                await self._after_answer(key, request, asked, notices)
            case Failed(message=message, kept=kept):
                meter.outcome = "failed"
                await reply.fail(f"{message} {saved(kept)}")
                await self._edits.remember(key, binding, request.inputs, stored, (), answered=False)
            case None:
                meter.outcome = "failed"
                await reply.fail(f"The assistant stopped without finishing. {RETRY}")

    async def _after_answer(
        self, key: ThreadKey, request: RunRequest, asked: list[ApprovalRequested], notices: list[str]
    ) -> None:
        """What comes after the answer: problems worth a note, and approval requests to click."""
        if notices:
            await post_note(self._slack, key, "\n".join(notices))
        asker = request.context.user_id if request.context is not None else ""
        await approvals.ask_all(self._approvals, self._slack, key, asker, asked)


def saved(kept: bool | None) -> str:
    """What the user is told about their message after a failure: only what is known."""
    if kept is None:
        return RETRY
    return KEPT if kept else NOT_KEPT
