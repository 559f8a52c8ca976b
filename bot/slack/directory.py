"""Facts about Slack channels and users the policy needs, cached per process."""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import outage

log = logging.getLogger(__name__)

CACHE_TTL_S = 600.0
CACHE_SIZE = 10_000


class SlackDirectory:
    """Channel names (for `#name` rules) and guest status, each looked up once per 10 minutes."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}

    async def channel_name(self, channel_id: str) -> str:
        cached = self._get("channel", channel_id)
        if cached is not None:
            return str(cached)
        try:
            with outage.brief():  # asked before the ack: no waiting out a Slack outage here
                resp = await self._client.conversations_info(channel=channel_id)
            name = str((resp.get("channel") or {}).get("name") or "")
        except SlackApiError as exc:
            log.info("conversations.info failed for %s: %s", channel_id, exc.response.get("error"))
            return ""
        return str(self._put("channel", channel_id, name))

    async def is_guest(self, user_id: str) -> bool:
        cached = self._get("guest", user_id)
        if cached is not None:
            return bool(cached)
        try:
            with outage.brief():
                resp = await self._client.users_info(user=user_id)
        except SlackApiError as exc:
            # Unknown is not a guest: access rules decide on ids, this only narrows them.
            log.info("users.info failed for %s: %s", user_id, exc.response.get("error"))
            return False
        user: dict[str, Any] = resp.get("user") or {}
        guest = bool(user.get("is_restricted") or user.get("is_ultra_restricted"))
        return bool(self._put("guest", user_id, guest))

    def _get(self, kind: str, key: str) -> Any:
        hit = self._cache.get((kind, key))
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def _put(self, kind: str, key: str, value: Any) -> Any:
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[(kind, key)] = (time.monotonic() + CACHE_TTL_S, value)
        return value
