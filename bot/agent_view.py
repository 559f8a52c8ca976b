"""What Slack's agent view adds to DM threads: what the user is looking at, and thread titles.

`app_context_changed` says what a user has open beside the bot's DM; it is kept per DM in
Redis (every process shares it) and told, as one line, to that DM's next turn. The first
answer in a DM thread gives the thread a short title, once, whichever worker gives it.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from redis.asyncio import Redis
from redis.exceptions import RedisError
from slack_sdk.web.async_client import AsyncWebClient

from bot.inbound import Inbound, ThreadKey
from bot.slack.titles import ThreadTitles, title_from
from bot.slack.viewing import Viewing, describe

log = logging.getLogger(__name__)

# What someone looked at a day ago says nothing about what they ask now.
CONTEXT_TTL_S = 24 * 3600


class AgentView:
    """The DM's context (kept per DM) and its threads' titles (set once)."""

    def __init__(self, redis: Redis, slack: AsyncWebClient, *, prefix: str, thread_ttl_s: int) -> None:
        self._redis = redis
        self._slack = slack
        self._prefix = prefix
        self._thread_ttl_s = thread_ttl_s
        self._titles = ThreadTitles(slack)

    def context_key(self, team: str, dm: str) -> str:
        return f"{self._prefix}viewing:{team}:{dm}"

    def title_key(self, key: ThreadKey) -> str:
        return f"{self._prefix}titled:{key.team_id}:{key.channel_id}:{key.thread_ts}"

    async def remember(self, team: str, dm: str, viewing: Viewing | None) -> None:
        """The latest context of a DM (its channel id, or its user's id when Slack names no
        channel); an empty context forgets the last one."""
        if viewing is None:
            await self._redis.delete(self.context_key(team, dm))
        else:
            await self._redis.set(self.context_key(team, dm), viewing.to_json(), ex=CONTEXT_TTL_S)

    async def situate(self, key: ThreadKey, inputs: list[Inbound]) -> list[Inbound]:
        """The DM's next turn hears once, beside its last message, what its user has open."""
        if not key.is_dm or not inputs:
            return inputs
        last = inputs[-1]
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.getdel(self.context_key(key.team_id, key.channel_id))
                pipe.getdel(self.context_key(key.team_id, last.user))
                by_channel, by_user = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning(
                "could not read the DM's context: %s", type(exc).__name__, extra={"thread_key": str(key)}
            )
            return inputs
        raw = by_channel or by_user
        if not raw:
            return inputs
        seen = await describe(self._slack, Viewing.from_json(raw))
        who = last.speaker or "The user"
        line = f"[Slack context: {who} is looking at {seen}.]"
        return [*inputs[:-1], replace(last, text=f"{last.text}\n\n{line}" if last.text else line)]

    async def answered(self, key: ThreadKey, inputs: list[Inbound]) -> None:
        """After an answer in a DM thread: the first one titles the thread from its question."""
        if not key.is_dm or not inputs:
            return
        title = title_from(next((m.text for m in inputs if m.text), ""))
        if not title:
            return
        try:
            first = await self._redis.set(self.title_key(key), "1", nx=True, ex=self._thread_ttl_s)
        except (RedisError, OSError) as exc:
            # The answer is out; a missing title is not worth failing the turn.
            log.warning(
                "could not mark the thread titled: %s", type(exc).__name__, extra={"thread_key": str(key)}
            )
            return
        if first:
            await self._titles.set(key, title)
