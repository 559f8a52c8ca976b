"""Redis state: bindings, message progress (dedupe), per-thread locks and inboxes.

Every multi-key step is one Lua script, so it is atomic and one round trip. Under Redis
Cluster, give the prefix a hash tag (e.g. ``{tb}:``) so all keys share one slot.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from bot.assistant.base import Binding
from bot.inbound import Enqueued, Inbound, ThreadKey

MESSAGE_TTL_S = 24 * 3600
FLOOD_WINDOW_S = 60
GROUP = "workers"


# Edge: remember the message (Slack retries and the mention's twin `message` event share its
# ts) and queue it, in one step. A new message past the sender's flood limit is remembered as
# "flooded" instead, so its retries are dropped too. Returns 1 queued, 0 seen before, 2 flooded.
_ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local sent = redis.call('INCR', KEYS[3])
if sent == 1 then redis.call('EXPIRE', KEYS[3], ARGV[5]) end
if sent > tonumber(ARGV[4]) then
  redis.call('SET', KEYS[1], 'flooded', 'EX', ARGV[2])
  return 2
end
redis.call('SET', KEYS[1], 'queued', 'EX', ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'inbound', ARGV[1])
return 1
"""

# Worker: put the message in its thread's inbox (once) and try to become the thread's runner.
# A message that is already answered is only acknowledged. Returns {status, inbox, binding}:
# 1 = lock taken (inbox, binding and any reply a dead runner left half-written returned),
# 0 = parked for the current runner, -1 = done.
_CLAIM = """
local done = redis.call('GET', KEYS[3]) == 'done'
if not done and not redis.call('LPOS', KEYS[1], ARGV[1]) then
  redis.call('RPUSH', KEYS[1], ARGV[1])
end
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('XACK', KEYS[4], ARGV[4], ARGV[5])
  return {-1, {}, {}}
end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  local reply = redis.call('GET', KEYS[6]) or ''
  return {1, redis.call('LRANGE', KEYS[1], 0, -1), redis.call('HGETALL', KEYS[5]), reply}
end
redis.call('XACK', KEYS[4], ARGV[4], ARGV[5])
return {0, {}, {}}
"""

# Runner heartbeat, for every lease a process holds in one step: extend each lock still ours
# and reset its stream entry's idle time, so XAUTOCLAIM only ever takes the work of a worker
# that stopped beating. KEYS = stream, lock…; ARGV = lease_ms, group, consumer, (token, entry)….
# Returns 1/0 per lock (still held / lost).
_EXTEND = """
local held = {}
for i = 2, #KEYS do
  local token, entry = ARGV[2 * i], ARGV[2 * i + 1]
  if redis.call('GET', KEYS[i]) == token then
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
    redis.call('XCLAIM', KEYS[1], ARGV[2], ARGV[3], 0, entry, 'JUSTID')
    held[#held + 1] = 1
  else
    held[#held + 1] = 0
  end
end
return held
"""

# After a Turn: drop the messages it answered, mark them done, forget the reply in flight,
# refresh the binding, and release the lock only if nothing new arrived meanwhile.
# Returns {released, inbox}: inbox holds the next Turn's messages when not released.
_FINISH = """
local n = tonumber(ARGV[2])
if n > 0 then redis.call('LTRIM', KEYS[1], n, -1) end
for i = 6, #KEYS do redis.call('SET', KEYS[i], 'done', 'EX', ARGV[3]) end
redis.call('DEL', KEYS[3])
if redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('HSET', KEYS[5], 'last_active', ARGV[6])
  redis.call('EXPIRE', KEYS[5], ARGV[7])
end
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {-1, {}} end
if redis.call('LLEN', KEYS[1]) > 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[8])
  return {0, redis.call('LRANGE', KEYS[1], 0, -1)}
end
redis.call('DEL', KEYS[2])
redis.call('XACK', KEYS[4], ARGV[4], ARGV[5])
return {1, {}}
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Lease:
    """A thread lock this process holds while it runs the thread's turns."""

    key: ThreadKey
    token: str
    entry_id: str


@dataclass(frozen=True, slots=True)
class Claim:
    """What a worker got when it offered a queued message to its thread."""

    status: int  # 1 runner, 0 parked, -1 already answered
    inbox: list[Inbound]
    binding: Binding | None
    interrupted_reply: str = ""  # ts of an answer a dead worker left half-written


class Store:
    """All of the bot's Redis state behind named operations."""

    def __init__(self, redis: Redis, *, prefix: str = "tb:", thread_ttl_s: int = 90 * 86400) -> None:
        self.redis = redis
        self.prefix = prefix
        self.thread_ttl_s = thread_ttl_s
        self.stream = f"{prefix}turns"
        self._enqueue = redis.register_script(_ENQUEUE)
        self._claim = redis.register_script(_CLAIM)
        self._extend = redis.register_script(_EXTEND)
        self._finish = redis.register_script(_FINISH)
        self._release = redis.register_script(_RELEASE)

    # -- key names -------------------------------------------------------------------------
    def _thread(self, kind: str, key: ThreadKey) -> str:
        return f"{self.prefix}{kind}:{key.team_id}:{key.channel_id}:{key.thread_ts}"

    def message_key(self, team: str, channel: str, ts: str) -> str:
        return f"{self.prefix}msg:{team}:{channel}:{ts}"

    def binding_key(self, key: ThreadKey) -> str:
        return self._thread("bind", key)

    def lock_key(self, key: ThreadKey) -> str:
        return self._thread("lock", key)

    def inbox_key(self, key: ThreadKey) -> str:
        return self._thread("inbox", key)

    def reply_key(self, key: ThreadKey) -> str:
        return self._thread("reply", key)

    # -- edge ------------------------------------------------------------------------------
    async def enqueue(self, inbound: Inbound, *, maxlen: int, flood_limit: int) -> Enqueued:
        """Queue a message once: QUEUED, SEEN (a retry or twin event) or FLOODED."""
        msg = self.message_key(inbound.key.team_id, inbound.key.channel_id, inbound.ts)
        window = int(time.time() // FLOOD_WINDOW_S)
        flood = f"{self.prefix}flood:{inbound.user}:{window}"
        result = await self._enqueue(
            keys=[msg, self.stream, flood],
            args=[inbound.to_json(), MESSAGE_TTL_S, maxlen, flood_limit, FLOOD_WINDOW_S * 2],
        )
        return Enqueued(int(result))

    # -- bindings --------------------------------------------------------------------------
    async def binding(self, key: ThreadKey) -> Binding | None:
        raw = await self.redis.hgetall(self.binding_key(key))
        return _binding(raw)

    async def bind(self, key: ThreadKey, binding: Binding) -> None:
        name = self.binding_key(key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(name)
            pipe.hset(name, mapping=dict(binding.to_mapping()))  # type: ignore[arg-type]
            pipe.expire(name, self.thread_ttl_s)
            await pipe.execute()

    async def unbind(self, key: ThreadKey) -> Binding | None:
        """Forget a thread's binding; returns what it was."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self.binding_key(key))
            pipe.delete(self.binding_key(key))
            raw, _ = await pipe.execute()
        return _binding(raw)

    async def is_bound(self, key: ThreadKey) -> bool:
        return bool(await self.redis.exists(self.binding_key(key)))

    def spoken_key(self, key: ThreadKey) -> str:
        return self._thread("spoke", key)

    async def is_ours(self, key: ThreadKey) -> bool:
        """The bot answers plain replies here: the thread has a conversation or the bot spoke in it."""
        return bool(await self.redis.exists(self.binding_key(key), self.spoken_key(key)))

    async def mark_spoken(self, key: ThreadKey) -> None:
        """The bot posted in a thread it has no conversation for yet (e.g. "please send it again")."""
        await self.redis.set(self.spoken_key(key), "1", ex=self.thread_ttl_s)

    # -- turns -----------------------------------------------------------------------------
    async def claim(self, entry_id: str, payload: str, key: ThreadKey, token: str, lease_ms: int) -> Claim:
        inbound = Inbound.from_json(payload)
        msg = self.message_key(key.team_id, key.channel_id, inbound.ts)
        status, inbox, raw, *reply = await self._claim(
            keys=[
                self.inbox_key(key),
                self.lock_key(key),
                msg,
                self.stream,
                self.binding_key(key),
                self.reply_key(key),
            ],
            args=[payload, token, lease_ms, GROUP, entry_id],
        )
        interrupted = _text(reply[0]) if reply else ""
        return Claim(int(status), [Inbound.from_json(i) for i in inbox], _binding(_pairs(raw)), interrupted)

    async def extend(self, leases: Sequence[Lease], lease_ms: int, consumer: str) -> list[bool]:
        """Extend many held leases in one round trip; says which are still ours."""
        if not leases:
            return []
        args: list[str | int] = [lease_ms, GROUP, consumer]
        for lease in leases:
            args += [lease.token, lease.entry_id]
        held = await self._extend(keys=[self.stream, *(self.lock_key(x.key) for x in leases)], args=args)
        return [bool(h) for h in held]

    async def finish(
        self,
        key: ThreadKey,
        answered: Sequence[Inbound],
        token: str,
        entry_id: str,
        lease_ms: int,
    ) -> tuple[int, list[Inbound]]:
        """Close a Turn; returns (1 released | 0 more work | -1 lock lost, next inbox)."""
        msgs = [self.message_key(key.team_id, key.channel_id, m.ts) for m in answered]
        released, inbox = await self._finish(
            keys=[
                self.inbox_key(key),
                self.lock_key(key),
                self.reply_key(key),
                self.stream,
                self.binding_key(key),
                *msgs,
            ],
            args=[
                token,
                len(answered),
                MESSAGE_TTL_S,
                GROUP,
                entry_id,
                repr(time.time()),
                self.thread_ttl_s,
                lease_ms,
            ],
        )
        return int(released), [Inbound.from_json(i) for i in inbox]

    async def release(self, key: ThreadKey, token: str) -> None:
        await self._release(keys=[self.lock_key(key)], args=[token])

    async def set_reply_in_flight(self, key: ThreadKey, ts: str) -> None:
        await self.redis.set(self.reply_key(key), ts, ex=MESSAGE_TTL_S)

    # -- files (so a file deleted in Slack can be dropped from its thread's knowledge) -----
    def file_key(self, team: str, slack_file_id: str) -> str:
        return f"{self.prefix}file:{team}:{slack_file_id}"

    def thread_files_key(self, key: ThreadKey) -> str:
        return self._thread("files", key)

    async def remember_file(
        self, key: ThreadKey, slack_file_id: str, remote_id: str, filename: str = ""
    ) -> None:
        name = self.file_key(key.team_id, slack_file_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(name, mapping={"thread": str(key), "remote_id": remote_id})
            pipe.expire(name, self.thread_ttl_s)
            # The thread's own list, for `status` and `reset`.
            pipe.hset(self.thread_files_key(key), slack_file_id, filename or slack_file_id)
            pipe.expire(self.thread_files_key(key), self.thread_ttl_s)
            await pipe.execute()

    async def thread_files(self, key: ThreadKey) -> list[str]:
        """Names of the files in a thread's knowledge, in name order."""
        raw = await self.redis.hvals(self.thread_files_key(key))
        return sorted(_text(v) for v in raw)

    async def forget_thread_files(self, key: ThreadKey) -> None:
        """A thread's files leave its knowledge (its conversation was reset)."""
        ids = await self.redis.hkeys(self.thread_files_key(key))
        names = [self.file_key(key.team_id, _text(i)) for i in ids]
        await self.redis.delete(self.thread_files_key(key), *names)

    async def take_file(self, team: str, slack_file_id: str) -> tuple[ThreadKey, str] | None:
        """Forget a file's mapping, returning its thread and remote id (None if unknown)."""
        name = self.file_key(team, slack_file_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(name)
            pipe.delete(name)
            raw, _ = await pipe.execute()
        if not raw:
            return None
        fields = {_text(k): _text(v) for k, v in raw.items()}
        team_id, channel, thread_ts = fields["thread"].split(":", 2)
        key = ThreadKey(team_id, channel, thread_ts)
        await self.redis.hdel(self.thread_files_key(key), slack_file_id)
        return key, fields["remote_id"]

    async def ping(self) -> bool:
        return bool(await self.redis.ping())


def _pairs(raw: list[Any]) -> dict[str, str]:
    it = iter(_text(x) for x in raw)
    return dict(zip(it, it, strict=True))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _binding(raw: dict[Any, Any]) -> Binding | None:
    if not raw:
        return None
    return Binding.from_mapping({_text(k): _text(v) for k, v in raw.items()})
