"""Slack's message_changed and message_deleted events, read for what they mean to a thread."""

from __future__ import annotations

from typing import Any

from bot.inbound import ThreadKey

# Inner message subtypes that are a person's words (an edited file share keeps its subtype).
PERSON_SUBTYPES = {None, "file_share", "thread_broadcast"}


def edited_message(
    event: dict[str, Any], team: str, bot_user_id: str
) -> tuple[ThreadKey, dict[str, Any]] | None:
    """A person's edit of their words: the thread, and the edit as a message-like event.

    The event's own `ts` (the edit's, unlike `message.ts`) becomes the edit's ts, so Slack's
    retries of it are told apart from the message and from later edits. Changes that are not
    the author's new words are None: bots' (this bot's streaming included), unfurls and reply
    counts (same text), tombstones.
    """
    message = event.get("message") or {}
    previous = event.get("previous_message") or {}
    user = message.get("user")
    if not user or user == bot_user_id or message.get("bot_id") or not message.get("ts"):
        return None
    if message.get("subtype") not in PERSON_SUBTYPES or message.get("hidden"):
        return None
    text = message.get("text") or ""
    if not text.strip() or text == (previous.get("text") or ""):
        return None
    key = ThreadKey(team, event["channel"], message.get("thread_ts") or message["ts"])
    as_event = {
        "ts": event.get("ts") or event.get("event_ts") or message["ts"],
        "edited_ts": message["ts"],
        "user": user,
        "text": text,
        "team": message.get("team") or event.get("team"),
        "user_team": message.get("user_team"),
    }
    return key, as_event


def reply_deleted(event: dict[str, Any], team: str) -> tuple[ThreadKey, str] | None:
    """A deleted reply in a thread (a person's or the bot's): its thread and ts.

    A deleted thread root is not a reply: it closes the whole conversation instead.
    """
    previous = event.get("previous_message") or {}
    deleted_ts = event.get("deleted_ts") or previous.get("ts")
    thread_ts = previous.get("thread_ts")
    if not deleted_ts or not thread_ts or thread_ts == deleted_ts:
        return None
    return ThreadKey(team, event["channel"], thread_ts), str(deleted_ts)
