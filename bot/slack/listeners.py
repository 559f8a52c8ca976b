"""Bolt listeners: Slack events → Inbound → queue, then ack. Nothing slow before the ack."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.inbound import ADMITTED, Admission, Enqueued, Inbound, InboundKind, ThreadKey
from bot.slack.approvals import APPROVE_ACTION, DENY_ACTION, ApprovalClick, click_from
from bot.slack.changes import edited_message, reply_deleted
from bot.slack.files import file_ref
from bot.slack.guard import edge_middleware
from bot.slack.notices import tell_privately
from bot.slack.render import FEEDBACK_ACTION, STOP_ACTION, FeedbackValue, feedback_value
from bot.slack.shortcuts import ASK_SHORTCUT, shortcut_external, shortcut_inbound
from bot.slack.viewing import Viewing, viewing_from

log = logging.getLogger(__name__)

# Message subtypes that carry a person's words; edits, joins, deletions and bot posts do not.
USER_SUBTYPES = {None, "file_share", "thread_broadcast"}

SLOW_DOWN = "You're sending messages faster than I can answer. Give me a minute, then try again."

SUGGESTED_PROMPTS = [
    {"title": "Summarise a thread", "message": "Summarise the key points of this discussion."},
    {"title": "Explain a file", "message": "I'll share a file: tell me what it says."},
    {"title": "Draft a reply", "message": "Help me draft a reply to a colleague."},
]

# What manifest.yml must grant and subscribe to; a test keeps the two in sync.
SUBSCRIBED_EVENTS = (
    "agent_session_stopped",
    "app_context_changed",
    "app_home_opened",
    "app_mention",
    "file_deleted",
    "message.channels",
    "message.groups",
    "message.im",
    "message.mpim",
)
REQUIRED_SCOPES = (
    "app_mentions:read",  # app_mention
    "assistant:write",  # assistant.threads.setStatus / setSuggestedPrompts
    "channels:history",  # message.channels, conversations.replies
    "channels:read",  # conversations.info: channel names for `#name` rules
    "chat:write",  # replies, streaming
    "files:read",  # downloading shared files, file_deleted
    "files:write",  # uploading generated files
    "groups:history",  # message.groups
    "groups:read",  # conversations.info in private channels
    "im:history",  # message.im
    "mpim:history",  # message.mpim
    "reactions:write",  # acknowledging files
    "users:read",  # display names, guest status
)


class Intake(Protocol):
    """What the edge needs from the queue: is a thread ours, and take a message."""

    async def is_active(self, key: ThreadKey) -> bool: ...

    async def accept(self, inbound: Inbound) -> Enqueued: ...


class Gate(Protocol):
    """Who may use the bot where: asked before a message is queued (or a file downloaded)."""

    async def admit(self, inbound: Inbound, *, external: bool = False) -> Admission: ...


class _Open:
    async def admit(self, inbound: Inbound, *, external: bool = False) -> Admission:
        return ADMITTED


FileDeleted = Callable[[str, str], Awaitable[None]]
Feedback = Callable[[ThreadKey, str, FeedbackValue], Awaitable[None]]
ThreadDeleted = Callable[[ThreadKey], Awaitable[None]]
MessageDeleted = Callable[[ThreadKey, str], Awaitable[None]]
ApprovalDecided = Callable[[ApprovalClick], Awaitable[None]]
StopAsked = Callable[[ThreadKey, str, bool], Awaitable[object]]  # thread, user, Slack stopped it
ContextChanged = Callable[[str, str, Viewing | None], Awaitable[None]]  # team, DM (or user), what


class Listeners:
    """Turns Slack events into Inbounds for the queue."""

    def __init__(
        self,
        intake: Intake,
        *,
        on_file_deleted: FileDeleted,
        on_feedback: Feedback,
        on_thread_deleted: ThreadDeleted,
        gate: Gate | None = None,
        on_approval: ApprovalDecided | None = None,
        on_stop: StopAsked | None = None,
        on_message_deleted: MessageDeleted | None = None,
        on_context_changed: ContextChanged | None = None,
    ) -> None:
        self._on_stop = on_stop
        self._on_message_deleted = on_message_deleted
        self._on_context_changed = on_context_changed
        self._intake = intake
        self._gate = gate or _Open()
        self._on_approval = on_approval
        self._on_thread_deleted = on_thread_deleted
        self._on_file_deleted = on_file_deleted
        self._on_feedback = on_feedback
        self._background: set[asyncio.Task[Any]] = set()

    def register(self, app: AsyncApp) -> None:
        app.use(edge_middleware)
        app.event("app_mention")(self.on_mention)
        app.event("message")(self.on_message)
        app.event("app_home_opened")(self.on_home_opened)
        app.event("file_deleted")(self.on_file_deleted)
        app.event("app_context_changed")(self.on_context_changed)
        app.shortcut(ASK_SHORTCUT)(self.on_shortcut)
        app.action(FEEDBACK_ACTION)(self.on_feedback)
        app.action(re.compile(f"^({APPROVE_ACTION}|{DENY_ACTION})$"))(self.on_approval_click)
        app.event("agent_session_stopped")(self.on_session_stopped)
        app.action(STOP_ACTION)(self.on_stop_click)
        # Bolt answers unmatched events with 404 and Slack redelivers them: ack all we get.
        app.event(re.compile(".*"))(self.on_other)

    async def on_mention(self, event: dict[str, Any], body: dict[str, Any], context: dict[str, Any]) -> None:
        team = _team(event, context)
        key = ThreadKey(team, event["channel"], event.get("thread_ts") or event["ts"])
        await self._take(event, body, context, key, "mention")

    async def on_message(self, event: dict[str, Any], body: dict[str, Any], context: dict[str, Any]) -> None:
        if event.get("subtype") == "message_deleted":
            await self._deleted(event, context)
            return
        if event.get("subtype") == "message_changed":
            await self._edited(event, body, context)
            return
        if event.get("subtype") not in USER_SUBTYPES or event.get("bot_id") or not event.get("user"):
            return
        if event.get("user") == context.get("bot_user_id"):
            return
        team = _team(event, context)
        if event.get("channel_type") == "im" or str(event.get("channel", "")).startswith("D"):
            key = ThreadKey(team, event["channel"], event.get("thread_ts") or event["ts"])
            await self._take(event, body, context, key, "dm")
            return
        bot = context.get("bot_user_id") or ""
        if bot and f"<@{bot}>" in (event.get("text") or ""):
            # The twin of an app_mention; the message key makes sure it is answered once.
            key = ThreadKey(team, event["channel"], event.get("thread_ts") or event["ts"])
            await self._take(event, body, context, key, "mention")
            return
        thread_ts = event.get("thread_ts")
        if not thread_ts:
            return
        key = ThreadKey(team, event["channel"], thread_ts)
        if await self._intake.is_active(key):
            await self._take(event, body, context, key, "thread_reply")

    async def on_home_opened(self, event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab") != "messages" or not event.get("channel"):
            return
        self._spawn(_suggest_prompts(client, event["channel"]))

    async def on_context_changed(self, event: dict[str, Any], context: dict[str, Any]) -> None:
        # Stored before the ack (one Redis write), so two quick changes keep their order.
        dm = str(event.get("channel") or event.get("user") or "")
        if dm and self._on_context_changed is not None:
            await self._on_context_changed(_team(event, context), dm, viewing_from(event))

    async def on_shortcut(self, ack: AsyncAck, body: dict[str, Any], context: dict[str, Any]) -> None:
        await ack()
        inbound = shortcut_inbound(body)
        if inbound is not None:
            await self._offer(inbound, context, external=shortcut_external(body))

    async def on_feedback(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        message = body.get("message") or {}
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        team = (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id") or ""
        value = feedback_value(
            next((a.get("value") for a in body.get("actions") or () if a.get("value")), "")
        )
        thread_ts = message.get("thread_ts") or message.get("ts")
        if channel and thread_ts and value is not None:
            key = ThreadKey(team, channel, thread_ts)
            self._spawn(self._on_feedback(key, (body.get("user") or {}).get("id", ""), value))

    async def on_approval_click(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        click = click_from(body)
        if click is not None and self._on_approval is not None:
            self._spawn(self._on_approval(click))

    async def on_session_stopped(self, event: dict[str, Any], context: dict[str, Any]) -> None:
        """Slack's own Stop: it already ended the listed streams; the turn must stop too."""
        if self._on_stop is not None and event.get("channel") and event.get("thread_ts"):
            key = ThreadKey(_team(event, context), event["channel"], event["thread_ts"])
            await self._on_stop(key, str(event.get("user") or ""), bool(event.get("streaming_message_ts")))

    async def on_stop_click(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        message = body.get("message") or {}
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        team = (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id") or ""
        thread_ts = message.get("thread_ts") or message.get("ts")
        if self._on_stop is not None and channel and thread_ts:
            user = (body.get("user") or {}).get("id", "")
            await self._on_stop(ThreadKey(team, channel, thread_ts), user, False)

    async def _deleted(self, event: dict[str, Any], context: dict[str, Any]) -> None:
        """A deleted message's files leave the thread's knowledge; a deleted thread root ends
        the thread's conversation on the server too."""
        team = _team(event, context)
        previous = event.get("previous_message") or {}
        file_ids = [f.get("id", "") for f in previous.get("files") or () if f.get("id")]
        deleted_ts = event.get("deleted_ts") or previous.get("ts")
        thread: ThreadKey | None = None
        if deleted_ts and previous.get("thread_ts", deleted_ts) == deleted_ts:
            key = ThreadKey(team, event["channel"], deleted_ts)
            thread = key if await self._intake.is_active(key) else None
        if file_ids or thread:
            self._spawn(self._clean_up(team, file_ids, thread))
        reply = reply_deleted(event, team)
        if reply is not None and self._on_message_deleted is not None:
            self._spawn(self._on_message_deleted(*reply))

    async def _edited(self, event: dict[str, Any], body: dict[str, Any], context: dict[str, Any]) -> None:
        """A person changed the words of a message in one of our threads: queued as an edit."""
        found = edited_message(event, _team(event, context), context.get("bot_user_id") or "")
        if found is None:
            return
        key, as_event = found
        if await self._intake.is_active(key):
            await self._take(as_event, body, context, key, "edit")

    async def _clean_up(self, team: str, file_ids: list[str], thread: ThreadKey | None) -> None:
        # Files first: closing the thread forgets the binding they are found through.
        for file_id in file_ids:
            await self._on_file_deleted(team, file_id)
        if thread is not None:
            await self._on_thread_deleted(thread)

    async def on_file_deleted(self, event: dict[str, Any], context: dict[str, Any]) -> None:
        self._forget(_team(event, context), event.get("file_id", ""))

    def _forget(self, team: str, file_id: str) -> None:
        # Removing it from the assistant's store is slow: after the ack, in the background.
        if file_id:
            self._spawn(self._on_file_deleted(team, file_id))

    async def on_other(self) -> None:
        return None

    async def _take(
        self,
        event: dict[str, Any],
        body: dict[str, Any],
        context: dict[str, Any],
        key: ThreadKey,
        kind: InboundKind,
    ) -> None:
        inbound = Inbound(
            key=key,
            ts=event["ts"],
            user=event.get("user", ""),
            text=_strip_mention(event.get("text") or "", context.get("bot_user_id") or ""),
            kind=kind,
            event_id=str(body.get("event_id") or ""),
            files=tuple(file_ref(f) for f in event.get("files") or ()),
            edited_ts=str(event.get("edited_ts") or ""),
        )
        await self._offer(inbound, context, external=_external(event, body))

    async def _offer(self, inbound: Inbound, context: dict[str, Any], *, external: bool) -> None:
        """Past the gate into the queue, or a private note why not."""
        key = inbound.key
        admission = await self._gate.admit(inbound, external=external)
        if not admission.ok:
            if admission.note:
                self._spawn(tell_privately(context["client"], key, inbound.user, admission.note))
            return
        result = await self._intake.accept(inbound)
        if result is Enqueued.FLOODED:
            self._spawn(tell_privately(context["client"], key, inbound.user, SLOW_DOWN))
        log.info(
            "message %s in %s: %s",
            inbound.ts,
            key,
            result.name.lower(),
            extra={"thread_key": str(key), "event_id": inbound.event_id},
        )

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _team(event: dict[str, Any], context: dict[str, Any]) -> str:
    return str(event.get("team") or context.get("team_id") or "")


def _external(event: dict[str, Any], body: dict[str, Any]) -> bool:
    """A person from another organisation, writing in a Slack Connect channel."""
    if not body.get("is_ext_shared_channel"):
        return False
    home = str(body.get("team_id") or "")
    theirs = str(event.get("user_team") or event.get("team") or "")
    return bool(home and theirs and theirs != home)


def _strip_mention(text: str, bot_user_id: str) -> str:
    if bot_user_id:
        text = text.replace(f"<@{bot_user_id}>", "")
    return re.sub(r"[ \t]{2,}", " ", text).strip()


async def _suggest_prompts(client: AsyncWebClient, channel: str) -> None:
    try:
        await client.assistant_threads_setSuggestedPrompts(
            channel_id=channel, title="Try asking", prompts=SUGGESTED_PROMPTS
        )
    except SlackApiError as exc:
        log.info("could not set suggested prompts: %s", exc.response.get("error"))
