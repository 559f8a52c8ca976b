"""Slack message ↔ server-side items, per thread, so deletes and edits in Slack reach the conversation.

One Redis hash per thread, beside its binding and with the binding's TTL:
`{prefix}items:{team}:{channel}:{thread_ts}` holds
  c         the conversation (or legacy thread) id the items belong to
  m:{ts}    the item ids stored for that Slack message (a person's message, or one message of an answer)
  last      the thread's latest answered person message and the answer's messages (JSON)
A thread re-bound to a new conversation starts the hash afresh: old ids mean nothing there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.assistant.base import Backend, BackendError
from bot.inbound import ThreadKey
from bot.store import Store

log = logging.getLogger(__name__)

# KEYS[1] = hash; ARGV = conversation id, ttl, last ("" keeps it), then (field, ids) pairs.
_RECORD = """
if redis.call('HGET', KEYS[1], 'c') ~= ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'c', ARGV[1])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'last', ARGV[3]) end
for i = 4, #ARGV, 2 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  redis.call('HSET', KEYS[1], ARGV[i], old and (old .. ' ' .. ARGV[i + 1]) or ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS[1] = hash; ARGV = ts…. Returns {conversation id, ids of each ts…} and forgets them.
_TAKE = """
local found = {redis.call('HGET', KEYS[1], 'c') or ''}
for i = 1, #ARGV do
  found[#found + 1] = redis.call('HGET', KEYS[1], 'm:' .. ARGV[i]) or ''
  redis.call('HDEL', KEYS[1], 'm:' .. ARGV[i])
end
return found
"""


@dataclass(frozen=True, slots=True)
class LastAnswer:
    """The thread's latest answered person message and the Slack messages of its answer."""

    ts: str
    reply: tuple[str, ...]


class MessageItems:
    """The ts → item ids map of every thread, in Redis."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._record = store.redis.register_script(_RECORD)
        self._take = store.redis.register_script(_TAKE)

    def key(self, key: ThreadKey) -> str:
        return f"{self._store.prefix}items:{key.team_id}:{key.channel_id}:{key.thread_ts}"

    async def record(
        self,
        key: ThreadKey,
        conversation_id: str,
        items: Mapping[str, Sequence[str]],
        last: LastAnswer | None = None,
    ) -> None:
        """Remember what a turn stored (one round trip); `last` when it answered a person."""
        if not items and last is None:
            return
        args: list[str | int] = [conversation_id, self._store.thread_ttl_s]
        args.append(json.dumps({"ts": last.ts, "reply": list(last.reply)}) if last else "")
        for ts, ids in items.items():
            if ids:
                args += [f"m:{ts}", " ".join(ids)]
        await self._record(keys=[self.key(key)], args=args)

    async def take(self, key: ThreadKey, ts: Sequence[str]) -> tuple[str, list[str]]:
        """Forget the items of these Slack messages; returns (conversation id, their item ids)."""
        if not ts:
            return "", []
        conversation, *found = await self._take(keys=[self.key(key)], args=list(ts))
        ids = [i for raw in found for i in _text(raw).split()]
        return _text(conversation), ids

    async def lookup(self, key: ThreadKey, ts: Sequence[str]) -> tuple[LastAnswer | None, set[str]]:
        """The thread's last answer, and which of these messages the bot took (one round trip)."""
        async with self._store.redis.pipeline(transaction=False) as pipe:
            pipe.hget(self.key(key), "last")
            for one in ts:
                pipe.hexists(self.key(key), f"m:{one}")
                pipe.exists(self._store.message_key(key.team_id, key.channel_id, one))
            raw, *found = await pipe.execute()
        known = {one for i, one in enumerate(ts) if found[2 * i] or found[2 * i + 1]}
        if not raw:
            return None, known
        data = json.loads(_text(raw))
        return LastAnswer(str(data["ts"]), tuple(str(t) for t in data["reply"])), known

    async def forget_thread(self, key: ThreadKey) -> None:
        await self._store.redis.delete(self.key(key))


async def forget_message(
    store: Store, items: MessageItems, backend: Backend, key: ThreadKey, ts: str
) -> None:
    """A message deleted in Slack leaves the server-side conversation too."""
    await delete_items(store, items, backend, key, [ts])


async def delete_items(
    store: Store, items: MessageItems, backend: Backend, key: ThreadKey, ts: Sequence[str]
) -> None:
    """Delete the items of these Slack messages from the thread's conversation (best effort)."""
    conversation, ids = await items.take(key, ts)
    if not ids:
        return
    binding = await store.binding(key)
    if binding is None or binding.backend != backend.name or binding.conversation_id != conversation:
        return  # the conversation they lived in is gone or was replaced
    try:
        await backend.forget_items(binding, ids)
        log.info("deleted %d item(s) of %s", len(ids), ",".join(ts), extra={"thread_key": str(key)})
    except BackendError as exc:
        log.warning("could not delete the items of %s: %s", ",".join(ts), exc, extra={"thread_key": str(key)})


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
