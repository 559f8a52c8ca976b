"""MCP approval requests waiting for a person: kept in Redis, so any process takes the click.

    tb:approval:{id}   hash  the pending request (thread, asker, server, tool, arguments, message)
    tb:approvals:due   zset  request ids by expiry time, for the sweeper

The turn that met the request posts it and ends; a click (in any process, also after a
restart) queues a turn of kind "approval" that continues the conversation with the decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.assistant.base import ApprovalRequested
from bot.inbound import Enqueued, Inbound, ThreadKey
from bot.slack import approvals as slack_approvals
from bot.slack.approvals import ApprovalClick
from bot.slack.reply import post_note

log = logging.getLogger(__name__)

# A decided or expired request is kept a little longer, so a late click is answered politely.
KEEP_AFTER_S = 3600
NOT_PENDING = "This request was already decided or has expired."

Accept = Callable[[Inbound], Awaitable[Enqueued]]


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """One MCP tool call waiting for a yes or no."""

    id: str  # the server's approval request id
    key: ThreadKey
    asker: str
    server: str
    tool: str
    arguments: str
    message_ts: str = ""
    expires_at: float = 0.0

    def to_mapping(self) -> dict[str, str]:
        return {
            "team": self.key.team_id,
            "channel": self.key.channel_id,
            "thread_ts": self.key.thread_ts,
            "asker": self.asker,
            "server": self.server,
            "tool": self.tool,
            "arguments": self.arguments,
            "message_ts": self.message_ts,
            "expires_at": repr(self.expires_at),
        }

    @classmethod
    def from_mapping(cls, approval_id: str, raw: dict[bytes | str, bytes | str]) -> PendingApproval:
        get = {_text(k): _text(v) for k, v in raw.items()}
        return cls(
            id=approval_id,
            key=ThreadKey(get["team"], get["channel"], get["thread_ts"]),
            asker=get["asker"],
            server=get["server"],
            tool=get["tool"],
            arguments=get["arguments"],
            message_ts=get.get("message_ts", ""),
            expires_at=float(get.get("expires_at") or 0),
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ApprovalBook:
    """Pending approvals in Redis; `take` lets exactly one click (or the sweeper) win."""

    def __init__(
        self, redis: Redis, *, prefix: str, timeout_s: float, approvers: frozenset[str] = frozenset()
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self.timeout_s = timeout_s
        self.approvers = approvers
        self._due = f"{prefix}approvals:due"

    def _key(self, approval_id: str) -> str:
        return f"{self._prefix}approval:{approval_id}"

    async def add(self, pending: PendingApproval) -> None:
        name = self._key(pending.id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(name, mapping=dict(pending.to_mapping()))  # type: ignore[arg-type]
            pipe.expire(name, int(self.timeout_s + KEEP_AFTER_S))
            pipe.zadd(self._due, {pending.id: pending.expires_at})
            await pipe.execute()

    async def get(self, approval_id: str) -> PendingApproval | None:
        raw = await self._redis.hgetall(self._key(approval_id))
        if not raw:
            return None
        pending = PendingApproval.from_mapping(approval_id, raw)
        return pending if await self._redis.zscore(self._due, approval_id) is not None else None

    async def take(self, approval_id: str) -> bool:
        """True for the one caller that moves the request out of pending."""
        return bool(await self._redis.zrem(self._due, approval_id))

    async def due(self, now: float) -> list[str]:
        found = await self._redis.zrangebyscore(self._due, "-inf", now, start=0, num=100)
        return [_text(v) for v in found if isinstance(v, bytes | str)]

    def may_decide(self, pending: PendingApproval, user: str) -> bool:
        return user == pending.asker or user in self.approvers


async def ask(
    book: ApprovalBook,
    slack: AsyncWebClient,
    key: ThreadKey,
    asker: str,
    approval_id: str,
    server: str,
    tool: str,
    arguments: str,
) -> None:
    """Post the approval request in the thread and remember it until someone decides."""
    ts = await slack_approvals.post_request(slack, key, approval_id, asker, server, tool, arguments)
    expires = time.time() + book.timeout_s
    await book.add(PendingApproval(approval_id, key, asker, server, tool, arguments, ts, expires))
    log.info("MCP approval %s for %s on %s asked", approval_id, tool, server, extra={"thread_key": str(key)})


async def ask_all(
    book: ApprovalBook | None,
    slack: AsyncWebClient,
    key: ThreadKey,
    asker: str,
    asked: Sequence[ApprovalRequested],
) -> None:
    """Every approval a run asked for, posted in its thread (none when approvals are off)."""
    for approval in asked:
        if book is None:
            log.warning("MCP approval requested but approvals are off", extra={"thread_key": str(key)})
            continue
        await ask(book, slack, key, asker, approval.id, approval.server, approval.tool, approval.arguments)


async def decide(book: ApprovalBook, slack: AsyncWebClient, accept: Accept, click: ApprovalClick) -> None:
    """Record the decision (only the asker or an approver), show it, and continue the turn."""
    pending = await book.get(click.approval_id)
    if pending is None:
        await _tell(slack, click, NOT_PENDING, thread_ts=None)
        return
    extra = {"thread_key": str(pending.key)}
    if not book.may_decide(pending, click.user):
        log.info("%s may not decide approval %s", click.user, pending.id, extra=extra)
        await _tell(slack, click, f"Only <@{pending.asker}> can approve or deny this.", pending.key.thread_ts)
        return
    if not await book.take(pending.id):
        await _tell(slack, click, NOT_PENDING, pending.key.thread_ts)
        return
    line = slack_approvals.decision_line(click.user, click.approve)
    with contextlib.suppress(SlackApiError):
        await slack_approvals.show_outcome(
            slack, pending.key, pending.message_ts, pending.server, pending.tool, pending.arguments, line
        )
    await accept(
        Inbound(
            pending.key,
            f"approval-{pending.id}",
            click.user,
            "",
            "approval",
            approval_id=pending.id,
            approve=click.approve,
        )
    )
    verdict = "approved" if click.approve else "denied"
    log.info("MCP approval %s %s by %s", pending.id, verdict, click.user, extra=extra)


async def _tell(slack: AsyncWebClient, click: ApprovalClick, text: str, thread_ts: str | None) -> None:
    with contextlib.suppress(SlackApiError):
        await slack.chat_postEphemeral(
            channel=click.channel_id, user=click.user, text=text, thread_ts=thread_ts
        )


async def expire_due(book: ApprovalBook, slack: AsyncWebClient) -> int:
    """Close every request whose time ran out: buttons gone, a note in the thread."""
    expired = 0
    for approval_id in await book.due(time.time()):
        pending = await book.get(approval_id)
        if pending is None or not await book.take(approval_id):
            continue
        expired += 1
        minutes = max(1, round(book.timeout_s / 60))
        line = f"⌛ Expired: nobody decided within {minutes} minute{'s' if minutes != 1 else ''}."
        try:
            await slack_approvals.show_outcome(
                slack, pending.key, pending.message_ts, pending.server, pending.tool, pending.arguments, line
            )
            await post_note(
                slack,
                pending.key,
                f"_The request to run *{pending.tool}* on *{pending.server}* expired unanswered, "
                "so it did not run. Ask again if you still need it._",
            )
        except SlackApiError as exc:
            log.warning("could not show the expiry of %s: %s", approval_id, exc.response.get("error"))
        log.info("MCP approval %s expired", approval_id, extra={"thread_key": str(pending.key)})
    return expired


async def sweep(book: ApprovalBook, slack: AsyncWebClient, stop: asyncio.Event) -> None:
    """Expire requests until `stop` is set; every process may sweep, `take` keeps it single."""
    interval = min(5.0, max(0.2, book.timeout_s / 5))
    while not stop.is_set():
        try:
            await expire_due(book, slack)
        except (RedisError, OSError) as exc:
            log.warning("approval sweep failed: %s", type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
