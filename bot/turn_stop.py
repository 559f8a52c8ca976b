"""A turn a person stops: watch for the stop, then end the answer with what was written so far.

Sits beside turns.py (it sees Slack and the backend): stopping.py carries the signal,
this decides what a stopped turn leaves behind. No error notice, no retry: the partial
answer is the answer, in Slack and in the assistant's conversation.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Sequence

from slack_sdk.web.async_client import AsyncWebClient

from bot.accounting import TurnMeter
from bot.assistant.base import Backend, BackendError, Binding
from bot.inbound import Inbound, ThreadKey
from bot.slack.notices import tell_privately
from bot.slack.reply import ReplyStream
from bot.stopping import Stop, StopSignals

log = logging.getLogger(__name__)

ONLY_ASKER = "Only the person who asked can stop this answer."
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


@contextlib.asynccontextmanager
async def watch(
    stops: StopSignals | None,
    slack: AsyncWebClient,
    key: ThreadKey,
    inbox: Sequence[Inbound],
    reply: ReplyStream,
) -> AsyncIterator[Stop]:
    """While the block runs, a permitted stop for `key` ends it early (then `stop.by` is set)."""
    if stops is None:
        yield Stop(None, None)
        return

    async def refuse(user: str) -> None:
        await tell_privately(slack, key, user, ONLY_ASKER)

    askers = frozenset(m.user for m in inbox if m.user)

    def progress() -> int:
        return len(reply.written)

    async with stops.watch(key, askers, on_refused=refuse, progress=progress) as stop:
        yield stop


async def finish(
    backend: Backend, binding: Binding | None, reply: ReplyStream, meter: TurnMeter, user: str
) -> None:
    """The stopped answer: kept in the conversation as written, and marked in Slack."""
    if reply.finished:
        return  # the stop came as the answer ended: it got out whole, nothing to mark
    meter.outcome = "stopped"
    log.info("turn stopped by %s", user, extra={"thread_key": str(meter.key)})
    if binding is not None and reply.written:
        try:
            await backend.keep_answer(binding, reply.written)
        except BackendError as exc:
            # The Slack side still shows it; the conversation only misses the partial text.
            log.warning("could not keep the stopped answer: %s", exc, extra={"thread_key": str(meter.key)})
    who = f"<@{user}>" if USER_ID.match(user) else "someone"
    await reply.stopped(f"_(stopped by {who})_")
