"""Tools that fail in each way a plugin can, for the tool-loop tests."""

from __future__ import annotations

import asyncio
import threading

from bot.tools import ToolContext, tool

SECRET_ERROR = "the database is on fire"


@tool
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


@tool
async def explode() -> str:
    """Always raises."""
    raise RuntimeError(SECRET_ERROR)


@tool
async def hang() -> str:
    """Never answers (until cancelled)."""
    await asyncio.Event().wait()
    return "unreachable"


# Set by a test to let `block` return.
RELEASE = threading.Event()


@tool
def block() -> str:
    """Blocks its thread, as careless sync code does, until the test releases it."""
    RELEASE.wait(10)
    return "done"


@tool
def whoami(ctx: ToolContext) -> dict[str, str]:
    """Who asked, and where."""
    thread = ctx.thread.thread_ts
    return {"user": ctx.user_id, "name": ctx.user_name, "channel": ctx.channel_id, "thread": thread}


@tool(name="shout")
def make_loud(text: str) -> str:
    """Repeat the text in capitals, very long."""
    return text.upper() * 10_000
