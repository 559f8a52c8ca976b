"""The process's long-lived clients: a bounded Redis pool, one Slack HTTP session, OpenAI.

Every client here is built once per process and reused by every turn, so a burst costs
requests, not connections: no TLS handshake or Redis `HELLO`/`CLIENT SETINFO` per step.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import aiohttp
from openai import AsyncOpenAI, DefaultAioHttpClient

# The SDK's own aiohttp transport, given our session so that its calls share the pool.
from openai._vendor.httpx_aiohttp import AiohttpTransport
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.slack.outage import OutageRetryHandler

log = logging.getLogger(__name__)

# A wait this long for a pooled Redis connection is worth one line in the log.
SLOW_WAIT_S = 1.0
WARN_EVERY_S = 60.0


class WaitingPool(BlockingConnectionPool):
    """A Redis pool that waits for a free connection (bounded by a timeout) instead of
    failing, and says so once a minute when callers have to wait long."""

    _last_warning = 0.0

    async def get_connection(self, *args: Any, **options: Any) -> Any:
        started = time.monotonic()
        try:
            return await super().get_connection(*args, **options)
        finally:
            waited = time.monotonic() - started
            if waited >= SLOW_WAIT_S:
                self._warn(f"waited {waited:.1f}s for a Redis connection")

    def _warn(self, what: str) -> None:
        now = time.monotonic()
        if now - WaitingPool._last_warning >= WARN_EVERY_S:
            WaitingPool._last_warning = now
            log.warning(
                "%s: all %d pooled connections are busy (raise THREADBRIDGE_REDIS_POOL_SIZE)",
                what,
                self.max_connections,
            )


def make_redis(settings: Settings) -> Redis:
    if settings.redis_url:
        pool = WaitingPool.from_url(
            settings.redis_url,
            max_connections=settings.redis_pool_size,
            timeout=settings.redis_pool_timeout_seconds,
            health_check_interval=30,
        )
        return Redis(connection_pool=pool)
    import fakeredis

    log.warning(
        "REDIS_URL is not set: using an in-process Redis. All thread state is LOST when this "
        "process exits and cannot be shared with other processes. Set REDIS_URL in production."
    )
    return fakeredis.FakeAsyncRedis()


def separate_client(shared: Redis, *, max_connections: int) -> Redis:
    """A client on a small pool of its own, connecting as `shared` does: for work that must
    never queue behind the turns' steps in the shared pool."""
    pool = shared.connection_pool
    own = ConnectionPool(
        connection_class=pool.connection_class, max_connections=max_connections, **pool.connection_kwargs
    )
    return Redis(connection_pool=own)


def make_lease_redis(settings: Settings, shared: Redis) -> Redis:
    """The heartbeat's own connection: extending leases never queues behind turns' steps, so a
    pool busy under a burst cannot let every lease lapse at once."""
    if not settings.redis_url:
        return shared  # in-process Redis: nothing to wait for
    return separate_client(shared, max_connections=1)


def make_slack_session(settings: Settings) -> aiohttp.ClientSession:
    """One keep-alive session for every Web API call (the SDK opens one per call otherwise)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=settings.slack_max_connections))


def make_slack_client(settings: Settings, session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        session=session,
        # One handler for 5xx, 429 and lost connections, bounded by time rather than by a count
        # (the SDK's handlers give up within seconds: shorter than a Slack incident).
        retry_handlers=[OutageRetryHandler(settings.slack_retry_seconds)],
    )


def make_openai_session(settings: Settings) -> aiohttp.ClientSession:
    """The OpenAI client's one pool: the SDK's calls and the turns' event streams share it.
    Each streaming turn holds one connection for its whole answer."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=settings.max_turns + 16))


def make_openai(settings: Settings, session: aiohttp.ClientSession) -> AsyncOpenAI:
    return AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
        base_url=settings.openai_base_url,
        http_client=DefaultAioHttpClient(transport=AiohttpTransport(client=session)),
        max_retries=3,
    )
