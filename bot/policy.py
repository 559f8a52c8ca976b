"""The configuration in force: reloaded on SIGHUP or when its files change, read once per Turn.

A Turn takes the configuration when it starts, so a reload never changes a Turn half-way;
an invalid reload keeps the last good configuration and logs why.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable
from typing import Protocol

from bot.config import Settings
from bot.config_file import ChannelSettings, PolicyConfig, PolicyError, instruction_files, load
from bot.tools import ToolSet

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 2.0


class Directory(Protocol):
    """What the policy asks of Slack: a channel's name (for `#name` rules) and who is a guest."""

    async def channel_name(self, channel_id: str) -> str: ...

    async def is_guest(self, user_id: str) -> bool: ...


class Policy:
    """The configuration in force, reloaded on SIGHUP or when its files change."""

    def __init__(
        self, settings: Settings, *, tool_names: Iterable[str] = (), directory: Directory | None = None
    ) -> None:
        self._settings = settings
        self._tool_names = tuple(tool_names)
        self._directory = directory
        self._salt = settings.safety_salt_value()
        self.current = load(settings, self._tool_names)  # invalid at start: PolicyError
        self._stamp = self._stamps()

    def reload(self) -> bool:
        """Load the file again; an invalid one keeps the configuration in force (and says why)."""
        if self._settings.config_file is None:
            log.info("no configuration file to reload (THREADBRIDGE_CONFIG is not set)")
            return True
        self._stamp = self._stamps()
        try:
            self.current = load(self._settings, self._tool_names)
        except PolicyError as exc:
            for problem in exc.problems:
                log.error("configuration not reloaded, keeping the last good one: %s", problem)
            return False
        log.info("configuration reloaded from %s", self._settings.config_file)
        return True

    async def watch(self, interval: float = WATCH_INTERVAL_S) -> None:
        """Reload when the file (or an instructions file it names) changes on disk."""
        if self._settings.config_file is None:
            return
        while True:
            await asyncio.sleep(interval)
            stamp = await asyncio.to_thread(self._stamps)
            if stamp != self._stamp:
                self.reload()

    def _stamps(self) -> tuple[tuple[str, float, int], ...]:
        stamps = []
        for path in instruction_files(self._settings):
            try:
                st = path.stat()
                stamps.append((str(path), st.st_mtime, st.st_size))
            except OSError:
                stamps.append((str(path), 0.0, -1))
        return tuple(stamps)

    async def channel_name(self, channel_id: str) -> str:
        if self._directory is None or not self.current.uses_names or channel_id.startswith("D"):
            return ""
        return await self._directory.channel_name(channel_id)

    async def for_channel(self, channel_id: str) -> tuple[PolicyConfig, ChannelSettings]:
        """The configuration in force now and the channel's effective settings in it."""
        config = self.current
        return config, config.for_channel(channel_id, await self.channel_name(channel_id))

    async def is_guest(self, user_id: str) -> bool:
        return self._directory is not None and await self._directory.is_guest(user_id)

    def safety_identifier(self, user_id: str) -> str:
        """A salted hash of the Slack user: stable per user, never the id itself."""
        if not user_id:
            return ""
        return hashlib.sha256(f"{self._salt}:{user_id}".encode()).hexdigest()[:32]


def tool_names(tools: ToolSet) -> list[str]:
    """What a channel's `tools` may name: function tools, web search, MCP server labels."""
    labels = [str(m.get("server_label", "")) for m in tools.mcp_servers]
    return [*tools.functions, *(["web_search"] if tools.web_search else []), *labels]


def narrow_tools(tools: ToolSet, channel: ChannelSettings) -> ToolSet:
    """The tools a channel offers: its `tools` names pick among them, `code_interpreter` is its switch."""
    code = tools.code_interpreter if channel.code_interpreter is None else channel.code_interpreter
    if channel.tools is None:
        return tools if code == tools.code_interpreter else tools.with_hosted(code_interpreter=code)
    names = channel.tools
    narrowed = tools.with_hosted(
        code_interpreter=code,
        web_search=tools.web_search and "web_search" in names,
        mcp_servers=tuple(m for m in tools.mcp_servers if m.get("server_label") in names),
    )
    narrowed.functions = {name: fn for name, fn in narrowed.functions.items() if name in names}
    return narrowed
