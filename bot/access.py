"""Who may use the bot where: decided at the edge, before anything is queued or downloaded."""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from bot import metrics
from bot.config_file import Access
from bot.inbound import ADMITTED, Admission, Inbound
from bot.policy import Policy

log = logging.getLogger(__name__)

# One note per person and thread a day is enough; the rest are refused silently.
NOTE_TTL_S = 24 * 3600

NOT_FOR_YOU = "Sorry, I'm not available to you here. Ask your workspace admins if you think you should be."
SWITCHED_OFF = "I'm switched off in this channel."
NOTES = {
    "team": NOT_FOR_YOU,
    "channel": "Sorry, I'm not available in this conversation.",
    "user": NOT_FOR_YOU,
    "external": "Sorry, I only answer members of this workspace's organisation.",
    "guest": "Sorry, I don't answer guest accounts here.",
    "disabled": SWITCHED_OFF,
}


class Gate:
    """Applies the access rules and the channel's `enabled` / `respond_to` to a message."""

    def __init__(self, policy: Policy, redis: Redis, *, prefix: str) -> None:
        self._policy = policy
        self._redis = redis
        self._prefix = prefix

    async def admit(self, inbound: Inbound, *, external: bool = False) -> Admission:
        config, channel = await self._policy.for_channel(inbound.key.channel_id)
        if inbound.kind == "thread_reply" and channel.respond_to == "mentions":
            return Admission(False)  # not addressed to the bot here: nothing to refuse
        reason = await self._refusal(config.access, inbound, external)
        if reason is None and not channel.enabled:
            reason = "disabled"
        if reason is None:
            return ADMITTED
        metrics.inc("refusals_total", reason=reason)
        log.info(
            "refused a message from %s in %s: %s",
            inbound.user,
            inbound.key,
            reason,
            extra={"thread_key": str(inbound.key), "event_id": inbound.event_id},
        )
        return Admission(False, NOTES[reason] if await self._first_note(inbound) else "")

    async def _refusal(self, access: Access, inbound: Inbound, external: bool) -> str | None:
        key = inbound.key
        if not access.teams.permits(key.team_id):
            return "team"
        if key.is_dm:
            if not access.direct_messages:
                return "channel"
        else:
            name = await self._policy.channel_name(key.channel_id)
            if not access.channels.permits(key.channel_id, f"#{name}" if name else ""):
                return "channel"
        if not access.users.permits(inbound.user):
            return "user"
        named = inbound.user in access.users.allow  # an explicit allow beats the blanket rules
        if external and not access.external_users and not named:
            return "external"
        guest_rule = not access.guests and not named
        if guest_rule and await self._policy.is_guest(inbound.user):
            return "guest"
        return None

    async def _first_note(self, inbound: Inbound) -> bool:
        """Whether this person has not been told in this thread today (the mention's twin event too)."""
        key = inbound.key
        marker = f"{self._prefix}refused:{key.team_id}:{key.channel_id}:{key.thread_ts}:{inbound.user}"
        return bool(await self._redis.set(marker, "1", nx=True, ex=NOTE_TTL_S))
