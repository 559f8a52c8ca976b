"""Titles of DM threads in Slack's agent view: a short one from the question that began them."""

from __future__ import annotations

import logging
import re

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.inbound import ThreadKey

log = logging.getLogger(__name__)

MAX_TITLE_CHARS = 60
# Answers to agents.sessions.* meaning "this app has no agent sessions here": use the
# assistant-thread method instead (and stop asking).
NO_SESSIONS = frozenset({"not_authorized", "unknown_method", "not_allowed_token_type", "missing_scope"})

_USER = re.compile(r"<@[UW][A-Z0-9]+(?:\|([^<>]*))?>")
_LINK = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")


def title_from(text: str) -> str:
    """The first line of a message, Slack markup made plain, cut at a word near 60 characters."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    line = _USER.sub(lambda m: m.group(1) or "", line)
    line = _LINK.sub(lambda m: m.group(2) or m.group(1).lstrip("!#"), line)
    line = " ".join(line.replace("*", "").replace("`", "").split())
    if len(line) <= MAX_TITLE_CHARS:
        return line
    cut = line[: MAX_TITLE_CHARS - 1]
    if " " in cut[MAX_TITLE_CHARS // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,.;:-") + "…"


class ThreadTitles:
    """Sets a DM thread's title: `agents.sessions.rename` where the app has agent sessions,
    `assistant.threads.setTitle` otherwise (decided once per process)."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._sessions = True

    async def set(self, key: ThreadKey, title: str) -> bool:
        """Title the thread; False when Slack refused both ways (only logged)."""
        if self._sessions:
            try:
                await self._client.agents_sessions_rename(
                    channel_id=key.channel_id, thread_ts=key.thread_ts, title=title
                )
                return True
            except SlackApiError as exc:
                error = str(exc.response.get("error"))
                if error not in NO_SESSIONS:
                    log.info("could not rename the agent session in %s: %s", key, error)
                    return False
                log.info("no agent sessions (%s); titling threads with assistant.threads.setTitle", error)
                self._sessions = False
        try:
            await self._client.assistant_threads_setTitle(
                channel_id=key.channel_id, thread_ts=key.thread_ts, title=title
            )
            return True
        except SlackApiError as exc:
            log.info("could not set the title of %s: %s", key, exc.response.get("error"))
            return False
