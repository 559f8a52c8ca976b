"""Small signals in a thread besides answers: private notes to one person, reactions."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.inbound import ThreadKey

log = logging.getLogger(__name__)


async def tell_privately(client: AsyncWebClient, key: ThreadKey, user: str, text: str) -> None:
    """An ephemeral message in the thread, seen by `user` only; failing to post is only logged."""
    try:
        await client.chat_postEphemeral(channel=key.channel_id, user=user, thread_ts=key.thread_ts, text=text)
    except SlackApiError as exc:
        log.info("could not post a private note in %s: %s", key, exc.response.get("error"))


async def react(client: AsyncWebClient, key: ThreadKey, ts: str, name: str) -> None:
    """An emoji reaction on one message of the thread; best effort, only logged when refused."""
    try:
        await client.reactions_add(channel=key.channel_id, timestamp=ts, name=name)
    except SlackApiError as exc:
        log.debug("could not react to %s in %s: %s", ts, key, exc.response.get("error"))
