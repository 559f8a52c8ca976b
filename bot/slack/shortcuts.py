"""The message shortcut "Ask Threadbridge about this thread": a `message_action` → an Inbound."""

from __future__ import annotations

import time
from typing import Any

from bot.inbound import Inbound, ThreadKey

# manifest.yml's `features.shortcuts[]` entry (a name has at most 24 characters); a test
# keeps the two in sync.
ASK_SHORTCUT = "threadbridge_ask_thread"
ASK_SHORTCUT_NAME = "Ask about this thread"
# What the person asks by choosing the shortcut: the shortcut carries no words of its own.
ASK_PROMPT = (
    "Catch me up on this thread: what is it about and where does it stand? Then ask how you can help."
)


def shortcut_inbound(body: dict[str, Any]) -> Inbound | None:
    """The shortcut chosen on a message, as a mention in that message's thread (None if malformed).

    Its ts is the action's, later than every message in the thread, so a thread the bot
    was not part of is seeded with all of them, like a mention posted there now.
    """
    message = body.get("message") or {}
    channel = str((body.get("channel") or {}).get("id") or "")
    user = body.get("user") or {}
    team = str((body.get("team") or {}).get("id") or user.get("team_id") or "")
    ts = str(message.get("ts") or body.get("message_ts") or "")
    if not (channel and user.get("id") and ts):
        return None
    action_ts = str(body.get("action_ts") or f"{time.time():.6f}")
    return Inbound(
        key=ThreadKey(team, channel, str(message.get("thread_ts") or ts)),
        ts=action_ts,
        user=str(user["id"]),
        text=ASK_PROMPT,
        kind="mention",
        event_id=f"shortcut:{body.get('trigger_id') or action_ts}",
    )


def shortcut_external(body: dict[str, Any]) -> bool:
    """Chosen by someone from another organisation (a Slack Connect channel)."""
    theirs = str((body.get("user") or {}).get("team_id") or "")
    home = str((body.get("team") or {}).get("id") or "")
    # In an Enterprise Grid install people of the same organisation belong to different teams.
    grid = bool(body.get("enterprise") or body.get("is_enterprise_install"))
    return bool(theirs and home and theirs != home and not grid)
