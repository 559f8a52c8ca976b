"""Daily token and turn budgets: atomic Redis counters every process shares.

A turn is admitted (and counted) before anything reaches the model; its tokens are charged
from the response's `usage` once it is over. Token limits are checked at the start of a
turn, so one turn may take a budget past its limit; the next one is refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as dtime
from typing import Any

from redis.asyncio import Redis

from bot.config_file import Limits, Reset
from bot.inbound import ThreadKey

# After the day they count, counters linger a little for late charges and for the curious.
COUNTER_GRACE_S = 6 * 3600

# KEYS: the counters (hashes) of one turn's scopes, then the thread's usage hash.
# ARGV: counter TTL, thread TTL, then a token limit and a turn limit per counter (-1 = none).
# Refuses with the 1-based counter index and the exhausted field, or counts the turn everywhere.
_ADMIT = """
local n = #KEYS - 1
for i = 1, n do
  local tokens = tonumber(ARGV[1 + 2 * i])
  local turns = tonumber(ARGV[2 + 2 * i])
  if tokens >= 0 and tonumber(redis.call('HGET', KEYS[i], 'tokens') or '0') >= tokens then
    return {i, 'tokens'}
  end
  if turns >= 0 and tonumber(redis.call('HGET', KEYS[i], 'turns') or '0') >= turns then
    return {i, 'turns'}
  end
end
for i = 1, n do
  redis.call('HINCRBY', KEYS[i], 'turns', 1)
  redis.call('EXPIRE', KEYS[i], ARGV[1])
end
redis.call('HINCRBY', KEYS[#KEYS], 'turns', 1)
redis.call('EXPIRE', KEYS[#KEYS], ARGV[2])
return {0, ''}
"""

# KEYS: as for _ADMIT. ARGV: counter TTL, thread TTL, input, output, cached tokens.
# Returns each counter's new token total.
_CHARGE = """
local spent = tonumber(ARGV[3]) + tonumber(ARGV[4])
local totals = {}
for i = 1, #KEYS - 1 do
  totals[i] = redis.call('HINCRBY', KEYS[i], 'tokens', spent)
  redis.call('EXPIRE', KEYS[i], ARGV[1])
end
local t = KEYS[#KEYS]
redis.call('HINCRBY', t, 'input_tokens', ARGV[3])
redis.call('HINCRBY', t, 'output_tokens', ARGV[4])
redis.call('HINCRBY', t, 'cached_tokens', ARGV[5])
redis.call('EXPIRE', t, ARGV[2])
return totals
"""

SCOPES = ("user", "team", "channel_user", "channel")
WHOSE = {
    "user": "You have",
    "team": "This workspace has",
    "channel_user": "You have",
    "channel": "This channel has",
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """A turn the budget does not allow, and when it will."""

    scope: str  # user | team | channel_user | channel
    kind: str  # tokens | turns
    limit: int
    resets_at: datetime

    @property
    def reason(self) -> str:
        return f"budget_{self.scope}_{self.kind}"

    def message(self) -> str:
        """One friendly line, with the reset time in the reader's own time zone (Slack renders it)."""
        where = " in this channel" if self.scope.startswith("channel") else ""
        what = f"{self.limit:,} tokens" if self.kind == "tokens" else f"{self.limit:,} answers"
        epoch = int(self.resets_at.timestamp())
        fallback = self.resets_at.strftime("%Y-%m-%d %H:%M %Z")
        return (
            f"{WHOSE[self.scope]} reached today's limit of {what}{where}, so I won't answer this "
            f"one. The limit resets <!date^{epoch}^{{date_short_pretty}} at {{time}}|{fallback}>."
        )


@dataclass(frozen=True, slots=True)
class Spent:
    """Tokens summed over a turn's model calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0

    def plus(self, input_tokens: int, output_tokens: int, cached_tokens: int) -> Spent:
        return Spent(
            self.input_tokens + input_tokens,
            self.output_tokens + output_tokens,
            self.cached_tokens + cached_tokens,
        )

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class ThreadUsage:
    """What one thread has used so far (for `status`)."""

    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class Day:
    """The budget day a moment falls in."""

    label: str
    resets_at: datetime


def budget_day(reset: Reset, now: float) -> Day:
    """The day starts at the reset hour in the configured zone (DST shifts it with the clock)."""
    zone = reset.zone
    local = datetime.fromtimestamp(now, zone)
    day = local.date() if local.hour >= reset.hour else local.date() - timedelta(days=1)
    resets_at = datetime.combine(day + timedelta(days=1), dtime(reset.hour), tzinfo=zone)
    return Day(day.isoformat(), resets_at)


class Budgets:
    """The counters behind daily limits, and the per-thread usage record."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        thread_ttl_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._thread_ttl_s = thread_ttl_s
        self._clock = clock
        self._admit = redis.register_script(_ADMIT)
        self._charge = redis.register_script(_CHARGE)

    def _keys(self, key: ThreadKey, user: str, day: Day) -> list[str]:
        base = f"{self._prefix}budget:{day.label}:"
        return [
            f"{base}user:{key.team_id}:{user}",
            f"{base}team:{key.team_id}",
            f"{base}channel_user:{key.team_id}:{key.channel_id}:{user}",
            f"{base}channel:{key.team_id}:{key.channel_id}",
            self.thread_key(key),
        ]

    def thread_key(self, key: ThreadKey) -> str:
        return f"{self._prefix}usage:{key.team_id}:{key.channel_id}:{key.thread_ts}"

    def _ttl(self, day: Day) -> int:
        return max(int(day.resets_at.timestamp() - self._clock()), 1) + COUNTER_GRACE_S

    async def admit(
        self, key: ThreadKey, user: str, limits: Limits, reset: Reset, *, exempt: bool = False
    ) -> Refusal | None:
        """Count a turn, or say which limit it is over; an exempt user is counted, never refused."""
        day = budget_day(reset, self._clock())
        pairs = [
            (limits.user_tokens, limits.user_turns),
            (limits.team_tokens, limits.team_turns),
            (limits.channel_user_tokens, limits.channel_user_turns),
            (limits.channel_tokens, limits.channel_turns),
        ]
        args: list[Any] = [self._ttl(day), self._thread_ttl_s]
        for tokens, turns in pairs:
            args += [-1 if exempt or tokens is None else tokens, -1 if exempt or turns is None else turns]
        index, kind = await self._admit(keys=self._keys(key, user, day), args=args)
        if not int(index):
            return None
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        tokens, turns = pairs[int(index) - 1]
        limit = tokens if kind == "tokens" else turns
        return Refusal(SCOPES[int(index) - 1], kind, int(limit or 0), day.resets_at)

    async def charge(self, key: ThreadKey, user: str, spent: Spent, reset: Reset) -> dict[str, int]:
        """Add a finished turn's tokens to every counter it falls under; returns today's totals by scope."""
        day = budget_day(reset, self._clock())
        keys = self._keys(key, user, day)
        ttls = [self._ttl(day), self._thread_ttl_s]
        args = [*ttls, spent.input_tokens, spent.output_tokens, spent.cached_tokens]
        totals = await self._charge(keys=keys, args=args)
        return {scope: int(total) for scope, total in zip(SCOPES, totals, strict=True)}

    async def used(self, key: ThreadKey, user: str, reset: Reset, scope: str = "user") -> int:
        """Tokens used today in one scope (user, team, channel_user, channel)."""
        day = budget_day(reset, self._clock())
        raw = await self._redis.hget(self._keys(key, user, day)[SCOPES.index(scope)], "tokens")
        return int(raw or 0)

    async def thread_usage(self, key: ThreadKey) -> ThreadUsage:
        """Turns and tokens a thread has used since it started (kept as long as its binding)."""
        raw: dict[Any, Any] = await self._redis.hgetall(self.thread_key(key))
        values = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
        return ThreadUsage(
            turns=values.get("turns", 0),
            input_tokens=values.get("input_tokens", 0),
            output_tokens=values.get("output_tokens", 0),
            cached_tokens=values.get("cached_tokens", 0),
        )
