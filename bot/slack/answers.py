"""Which messages a finished reply of the bot answers, written on the reply itself.

The last message of every finished reply carries Slack message metadata naming the messages
it answers. A worker that resumes a thread after its runner stopped (killed, SIGTERM, Redis
lost mid-turn) reads the thread for it: what a finished reply already answers is not
answered again, whatever Redis managed to record before the runner stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.inbound import ThreadKey

log = logging.getLogger(__name__)

ANSWER_EVENT = "threadbridge_answer"
MAX_PAGES = 5


def answer_metadata(answered: Sequence[str]) -> dict[str, Any]:
    """Metadata for a reply's last message: the ts of the messages it answers."""
    # A comma-joined string: Slack's payload values are scalars (arrays only of objects).
    return {"event_type": ANSWER_EVENT, "event_payload": {"answers": ",".join(answered)}}


async def answered_prefix(
    client: AsyncWebClient, key: ThreadKey, inbox_ts: Sequence[str], bot_user_id: str
) -> int:
    """How many of `inbox_ts`, from the first, a finished reply in the thread already answers.

    0 when none does, or when the thread cannot be read (the messages are then answered
    again, as before this check existed: better twice than never).
    """
    if not inbox_ts:
        return 0
    try:
        answered = await _answered(client, key, inbox_ts[0], bot_user_id)
    except SlackApiError as exc:
        log.warning("could not read %s to resume it: %s", key, exc.response.get("error"))
        return 0
    done = 0
    for ts in inbox_ts:
        if ts not in answered:
            break
        done += 1
    return done


async def _answered(client: AsyncWebClient, key: ThreadKey, oldest: str, bot_user_id: str) -> set[str]:
    answered: set[str] = set()
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        resp = await client.conversations_replies(
            channel=key.channel_id,
            ts=key.thread_ts,
            oldest=oldest,
            inclusive=True,
            include_all_metadata=True,
            cursor=cursor,
            limit=200,
        )
        for msg in resp.get("messages") or []:
            meta = msg.get("metadata") or {}
            if msg.get("user") == bot_user_id and meta.get("event_type") == ANSWER_EVENT:
                answers = str((meta.get("event_payload") or {}).get("answers") or "")
                answered.update(ts for ts in answers.split(",") if ts)
        cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
        if not resp.get("has_more") or not cursor:
            break
    return answered
