"""Reading Slack for a Turn: who said what (display names) and what the thread said before."""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.inbound import ThreadKey
from bot.tools import ThreadMessage

log = logging.getLogger(__name__)

MAX_SEED_MESSAGES = 200
NAME_CACHE_SIZE = 5_000


class SlackHistory:
    """Display names (cached per process) and earlier thread messages."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._names: OrderedDict[str, str] = OrderedDict()

    async def display_name(self, user_id: str) -> str:
        if not user_id:
            return ""
        if user_id in self._names:
            self._names.move_to_end(user_id)
            return self._names[user_id]
        try:
            resp = await self._client.users_info(user=user_id)
            user: dict[str, Any] = resp.get("user") or {}
            profile = user.get("profile") or {}
            name = (
                profile.get("display_name")
                or profile.get("real_name")
                or user.get("real_name")
                or user.get("name")
                or user_id
            )
        except SlackApiError as exc:
            log.info("users.info failed for %s: %s", user_id, exc.response.get("error"))
            return user_id
        self._names[user_id] = name
        if len(self._names) > NAME_CACHE_SIZE:
            self._names.popitem(last=False)
        return str(name)

    async def earlier_messages(self, key: ThreadKey, before_ts: str, bot_user_id: str) -> list[str]:
        """Attributed lines of the thread before `before_ts` (the bot's own posts included)."""
        lines: list[str] = []
        cursor: str | None = None
        while len(lines) < MAX_SEED_MESSAGES:
            try:
                resp = await self._client.conversations_replies(
                    channel=key.channel_id, ts=key.thread_ts, cursor=cursor, limit=100
                )
            except SlackApiError as exc:
                log.warning("conversations.replies failed in %s: %s", key, exc.response.get("error"))
                break
            for msg in resp.get("messages") or []:
                if float(msg.get("ts", "0")) >= float(before_ts):
                    return lines
                lines.append(await self._line(msg, bot_user_id))
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not resp.get("has_more") or not cursor:
                break
        return lines[:MAX_SEED_MESSAGES]

    async def _line(self, msg: dict[str, Any], bot_user_id: str) -> str:
        text = msg.get("text") or ""
        names = ", ".join(f.get("name", "file") for f in msg.get("files") or [])
        if names:
            text = f"{text} [shared files: {names}]".strip()
        if msg.get("bot_id") or msg.get("user") == bot_user_id:
            return f"(assistant): {text}"
        return f"{await self.display_name(msg.get('user', ''))}: {text}"


class ThreadView:
    """One thread, read-only, as function tools see it (`ToolContext.slack`)."""

    def __init__(self, client: AsyncWebClient, history: SlackHistory, key: ThreadKey) -> None:
        self._client = client
        self._history = history
        self._key = key

    async def messages(self) -> list[ThreadMessage]:
        found: list[ThreadMessage] = []
        cursor: str | None = None
        while len(found) < MAX_SEED_MESSAGES:
            resp = await self._client.conversations_replies(
                channel=self._key.channel_id, ts=self._key.thread_ts, cursor=cursor, limit=100
            )
            for msg in resp.get("messages") or []:
                found.append(
                    ThreadMessage(
                        ts=str(msg.get("ts", "")),
                        user=str(msg.get("user", "")),
                        text=str(msg.get("text") or ""),
                        bot=bool(msg.get("bot_id")),
                    )
                )
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not resp.get("has_more") or not cursor:
                break
        return found[:MAX_SEED_MESSAGES]

    async def user_name(self, user_id: str) -> str:
        return await self._history.display_name(user_id)
