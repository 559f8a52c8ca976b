"""Store semantics against a real Redis: dedupe, per-thread lock + inbox, crash-safe finish."""

from __future__ import annotations

from dataclasses import replace

from redis.asyncio import Redis

from bot.assistant.base import Binding
from bot.inbound import Enqueued, Inbound, ThreadKey
from bot.store import GROUP, ClaimStatus, FinishStatus, Lease, Store

KEY = ThreadKey("T1", "C1", "100.000001")


def _msg(ts: str, text: str = "hi") -> Inbound:
    return Inbound(KEY, ts, "U1", text, "thread_reply", event_id=f"Ev{ts}")


async def _queued(store: Store) -> list[tuple[str, str]]:
    await store.redis.xgroup_create(store.stream, GROUP, id="0", mkstream=True)
    resp = await store.redis.xreadgroup(GROUP, "c1", {store.stream: ">"}, count=100)
    return [(i.decode(), f[b"inbound"].decode()) for _, entries in resp for i, f in entries]


async def test_enqueue_is_once_per_message(redis_client: Redis, prefix: str) -> None:
    store = Store(redis_client, prefix=prefix)
    assert await store.enqueue(_msg("100.000002"), maxlen=1000, flood_limit=100) is Enqueued.QUEUED
    assert await store.enqueue(_msg("100.000002"), maxlen=1000, flood_limit=100) is Enqueued.SEEN
    assert await store.enqueue(_msg("100.000003"), maxlen=1000, flood_limit=100) is Enqueued.QUEUED
    assert await redis_client.xlen(store.stream) == 2


async def test_flood_limit_counts_new_messages_only(redis_client: Redis, prefix: str) -> None:
    store = Store(redis_client, prefix=prefix)
    results = [
        await store.enqueue(_msg(f"100.00000{i}"), maxlen=1000, flood_limit=2) for i in (2, 2, 3, 4, 4)
    ]
    assert results == [Enqueued.QUEUED, Enqueued.SEEN, Enqueued.QUEUED, Enqueued.FLOODED, Enqueued.SEEN]
    assert await redis_client.xlen(store.stream) == 2


async def test_second_message_parks_in_inbox_while_thread_is_locked(redis_client: Redis, prefix: str) -> None:
    store = Store(redis_client, prefix=prefix)
    await store.bind(KEY, Binding("responses", "conv_1", created_at=1.0))
    for ts in ("100.000002", "100.000003"):
        await store.enqueue(_msg(ts), maxlen=1000, flood_limit=100)
    (e1, p1), (e2, p2) = await _queued(store)

    first = await store.claim(e1, p1, KEY, "tok1", 10_000)
    assert first.status == 1
    assert [m.ts for m in first.inbox] == ["100.000002"]
    assert first.binding is not None and first.binding.conversation_id == "conv_1"

    second = await store.claim(e2, p2, KEY, "tok2", 10_000)
    assert second.status == 0  # parked for the runner, entry acknowledged

    released, nxt = await store.finish(KEY, first.inbox, "tok1", e1, 10_000)
    assert released == 0
    assert [m.ts for m in nxt] == ["100.000003"]
    released, nxt = await store.finish(KEY, nxt, "tok1", e1, 10_000)
    assert (released, nxt) == (1, [])
    assert await redis_client.exists(store.lock_key(KEY)) == 0
    pending = await redis_client.xpending(store.stream, GROUP)
    assert pending["pending"] == 0


async def test_redelivered_answered_message_is_only_acknowledged(redis_client: Redis, prefix: str) -> None:
    store = Store(redis_client, prefix=prefix)
    await store.enqueue(_msg("100.000002"), maxlen=1000, flood_limit=100)
    [(e1, p1)] = await _queued(store)
    claim = await store.claim(e1, p1, KEY, "tok1", 10_000)
    await store.finish(KEY, claim.inbox, "tok1", e1, 10_000)
    again = await store.claim(e1, p1, KEY, "tok2", 10_000)
    assert again.status == -1
    assert await redis_client.llen(store.inbox_key(KEY)) == 0


async def test_reclaimed_message_is_not_duplicated_in_inbox(redis_client: Redis, prefix: str) -> None:
    store = Store(redis_client, prefix=prefix)
    await store.enqueue(_msg("100.000002"), maxlen=1000, flood_limit=100)
    [(e1, p1)] = await _queued(store)
    assert (await store.claim(e1, p1, KEY, "dead-worker", 50)).status == 1
    await redis_client.delete(store.lock_key(KEY))  # the dead worker's lease lapsed
    claim = await store.claim(e1, p1, KEY, "tok2", 10_000)
    assert claim.status == 1
    assert [m.ts for m in claim.inbox] == ["100.000002"]


async def test_extend_only_by_the_holder(redis_client: Redis, prefix: str) -> None:
    store = Store(redis_client, prefix=prefix)
    await store.enqueue(_msg("100.000002"), maxlen=1000, flood_limit=100)
    [(e1, p1)] = await _queued(store)
    await store.claim(e1, p1, KEY, "tok1", 1_000)
    assert await store.extend([Lease(KEY, "tok1", e1)], 60_000, "c1") == [True]
    assert await redis_client.pttl(store.lock_key(KEY)) > 30_000
    assert await store.extend([Lease(KEY, "intruder", e1)], 60_000, "c1") == [False]


async def test_extend_many_leases_in_one_step_says_which_are_lost(redis_client: Redis, prefix: str) -> None:
    store = Store(redis_client, prefix=prefix)
    other = ThreadKey(KEY.team_id, KEY.channel_id, "200.000001")
    await store.enqueue(_msg("100.000002"), maxlen=1000, flood_limit=100)
    await store.enqueue(replace(_msg("200.000001"), key=other), maxlen=1000, flood_limit=100)
    [(e1, p1), (e2, p2)] = await _queued(store)
    await store.claim(e1, p1, KEY, "tok1", 1_000)
    await store.claim(e2, p2, other, "tok2", 1_000)
    await redis_client.delete(store.lock_key(other))  # that lease lapsed meanwhile
    held = await store.extend([Lease(KEY, "tok1", e1), Lease(other, "tok2", e2)], 60_000, "c1")
    assert held == [True, False]
    assert await redis_client.pttl(store.lock_key(KEY)) > 30_000


async def test_finish_refreshes_binding_ttl(redis_client: Redis, prefix: str) -> None:
    store = Store(redis_client, prefix=prefix, thread_ttl_s=1000)
    await store.bind(KEY, Binding("responses", "conv_1", created_at=1.0, last_active=1.0))
    await redis_client.expire(store.binding_key(KEY), 5)
    await store.enqueue(_msg("100.000002"), maxlen=1000, flood_limit=100)
    [(e1, p1)] = await _queued(store)
    claim = await store.claim(e1, p1, KEY, "tok1", 10_000)
    await store.finish(KEY, claim.inbox, "tok1", e1, 10_000)
    assert await redis_client.ttl(store.binding_key(KEY)) > 900
    binding = await store.binding(KEY)
    assert binding is not None and binding.last_active > 1.0


async def test_a_resumed_claim_says_so_and_names_the_messages_the_conversation_holds(
    redis_client: Redis, prefix: str
) -> None:
    store = Store(redis_client, prefix=prefix)
    await store.enqueue(_msg("100.000002"), maxlen=1000, flood_limit=100)
    [(e1, p1)] = await _queued(store)
    fresh = await store.claim(e1, p1, KEY, "dead-worker", 10_000)
    assert fresh.status is ClaimStatus.RUNNER and not fresh.resumed and fresh.kept == frozenset()
    await store.mark_kept(KEY, ["100.000002"])
    await store.release(KEY, "dead-worker")  # stopped mid-turn (SIGTERM): the entry stays pending

    resumed = await store.claim(e1, p1, KEY, "tok2", 10_000)
    assert resumed.status is ClaimStatus.RUNNER
    assert resumed.resumed and resumed.kept == frozenset({"100.000002"})
    released, _ = await store.finish(KEY, resumed.inbox, "tok2", e1, 10_000)
    assert released is FinishStatus.RELEASED
    assert await redis_client.exists(store.kept_key(KEY)) == 0
    assert (await store.claim(e1, p1, KEY, "tok3", 10_000)).status is ClaimStatus.DONE


async def test_the_queue_reads_and_reclaims_through_store_operations(
    redis_client: Redis, prefix: str
) -> None:
    store = Store(redis_client, prefix=prefix)
    await store.ensure_group()
    await store.ensure_group()  # again, as after every Redis outage: no BUSYGROUP error
    await store.enqueue(_msg("100.000002"), maxlen=1000, flood_limit=100)
    [(entry, payload)] = await store.read_new("c1", 10, 10)
    assert Inbound.from_json(payload).ts == "100.000002"
    assert await store.read_new("c1", 10, 10) == []
    taken, entries = await store.reclaim("c2", 0, 10)
    assert taken and entries == [(entry, payload)]
