"""Two example tools: load them with THREADBRIDGE_TOOLS=examples.tools (see the README's "Tools")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field

from bot.tools import ToolContext, tool


@tool
def current_time(tz: Annotated[str, Field(description="IANA time zone, e.g. Europe/Berlin")] = "UTC") -> str:
    """The current date and time (ISO 8601) in a time zone."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}; use an IANA name such as Europe/Berlin") from None
    return datetime.now(zone).isoformat(timespec="seconds")


@tool
async def thread_participants(ctx: ToolContext) -> list[str]:
    """The people who have written in this Slack thread, by display name."""
    seen: dict[str, str] = {}
    for message in await ctx.slack.messages():
        if not message.bot and message.user and message.user not in seen:
            seen[message.user] = await ctx.slack.user_name(message.user)
    return list(seen.values())
