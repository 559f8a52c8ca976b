"""What a Turn records in Redis as it goes, so a Turn resumed after it stopped neither deletes
nor repeats what this one did. A Redis outage costs only the record, never the Turn."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from redis.exceptions import RedisError
from slack_sdk.web.async_client import AsyncWebClient

from bot.inbound import ThreadKey
from bot.slack.answers import answered_prefix
from bot.store import Claim, Lease, Store

log = logging.getLogger(__name__)


class TurnProgress:
    """The reply a Turn is writing and whether the conversation holds its messages."""

    def __init__(self, store: Store, key: ThreadKey, answering: Sequence[str]) -> None:
        self._store = store
        self._key = key
        self._answering = list(answering)

    async def reply_started(self, ts: str) -> None:
        """A reply message exists: a worker resuming this Turn deletes it if it stays unfinished."""
        try:
            await self._store.set_reply_in_flight(self._key, ts)
        except (RedisError, OSError) as exc:
            # The answer goes on: once finished, it names what it answers in Slack itself
            # (slack/answers.py), which is what a resuming worker checks first.
            self._warn("the reply in flight", exc)

    async def kept(self) -> None:
        """The conversation holds this Turn's messages: a resumed Turn must not send them again."""
        try:
            await self._store.mark_kept(self._key, self._answering)
        except (RedisError, OSError) as exc:
            self._warn("that the conversation holds the messages", exc)

    def _warn(self, what: str, exc: Exception) -> None:
        log.warning("could not record %s: %s", what, type(exc).__name__, extra={"thread_key": str(self._key)})


async def skip_answered(
    store: Store, slack: AsyncWebClient, claim: Claim, lease: Lease, lease_ms: int, bot_user_id: str
) -> Claim:
    """A thread whose runner stopped mid-turn: what its finished reply answers is only closed.

    Returns the claim with the messages still to answer (all of them when none was).
    """
    if not claim.resumed:
        return claim
    key = lease.key
    done = await answered_prefix(slack, key, [m.ts for m in claim.inbox], bot_user_id)
    if not done:
        return claim
    log.info(
        "%d message(s) answered before the runner stopped; not again", done, extra={"thread_key": str(key)}
    )
    _, rest = await store.finish(key, claim.inbox[:done], lease.token, lease.entry_id, lease_ms)
    # The reply in flight was that finished answer: nothing to delete, nothing kept to skip.
    return replace(claim, inbox=rest, interrupted_reply="", kept=frozenset())
