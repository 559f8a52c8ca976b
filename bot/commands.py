"""One-word commands (`reset`, `status`, `help`): run by the worker under the thread's lock.

A command is a message like any other until a worker holds its thread: it goes through the
queue and the lock, so `reset` can never race a turn that is still answering. A thread's
inbox is taken in order: the messages before a command are one Turn, the command runs
alone, and what follows it makes the next Turn.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.assistant.base import Backend, BackendError, Binding
from bot.budgets import Budgets, ThreadUsage
from bot.config_file import ChannelSettings
from bot.inbound import Inbound, ThreadKey
from bot.policy import Policy, narrow_tools
from bot.slack.markup import neutralize
from bot.slack.reply import post_note
from bot.slack.shortcuts import ASK_SHORTCUT_NAME
from bot.store import Store
from bot.tools import ToolSet

log = logging.getLogger(__name__)

Command = Literal["reset", "status", "help"]
COMMANDS: tuple[Command, ...] = ("reset", "status", "help")


def command_of(inbound: Inbound) -> Command | None:
    """The command a message gives: one of the words, alone, said to the bot (a mention or a DM)."""
    if inbound.kind not in ("mention", "dm") or inbound.files:
        return None
    word = inbound.text.strip().strip(".!?").strip().lower()
    return next((c for c in COMMANDS if c == word), None)


def next_batch(inbox: Sequence[Inbound]) -> tuple[list[Inbound], Command | None]:
    """The inbox's leading command alone, or its messages up to the first command (one Turn)."""
    first = command_of(inbox[0])
    if first is not None:
        return [inbox[0]], first
    end = next((i for i, m in enumerate(inbox) if command_of(m) is not None), len(inbox))
    return list(inbox[:end]), None


@dataclass(frozen=True, slots=True)
class CommandSettings:
    reset_deletes: bool = True
    default_model: str = ""  # what `status` names when a channel sets no model of its own


class Commands:
    """Runs `reset`, `status` and `help` for a thread whose lock the caller holds."""

    def __init__(
        self,
        *,
        store: Store,
        backend: Backend,
        slack: AsyncWebClient,
        tools: ToolSet,
        settings: CommandSettings,
        policy: Policy | None = None,
        budgets: Budgets | None = None,
    ) -> None:
        self._store = store
        self._backend = backend
        self._slack = slack
        self._tools = tools
        self._settings = settings
        self._policy = policy
        self._budgets = budgets

    async def run(self, command: Command, inbound: Inbound, binding: Binding | None) -> Binding | None:
        """Run one command; returns the thread's binding afterwards. Failing to answer is only logged."""
        key = inbound.key
        log.info("command %s from %s", command, inbound.user, extra={"thread_key": str(key)})
        # The bot answers in this thread now: plain replies after it are for the bot too.
        await self._store.mark_spoken(key)
        if command == "reset":
            binding, text = await self._reset(key, inbound, binding)
        elif command == "status":
            text = await self._status(key, binding)
        else:
            text = await self._help(key)
        try:
            await post_note(self._slack, key, text)
        except SlackApiError as exc:
            log.warning(
                "could not answer %s: %s", command, exc.response.get("error"), extra={"thread_key": str(key)}
            )
        return binding

    async def _channel(self, key: ThreadKey) -> ChannelSettings:
        if self._policy is None:
            return ChannelSettings()
        _config, channel = await self._policy.for_channel(key.channel_id)
        return channel

    async def _reset(
        self, key: ThreadKey, inbound: Inbound, binding: Binding | None
    ) -> tuple[Binding | None, str]:
        """A new conversation for the thread; the old one (and its files) deleted or kept."""
        old = await self._store.unbind(key) or binding
        await self._store.forget_thread_files(key)
        fate = "There was no conversation to clear."
        if old is not None:
            fate = "The earlier conversation is kept on the server."
            if self._settings.reset_deletes and old.backend == self._backend.name:
                try:
                    await self._backend.close(old)
                    fate = "The earlier conversation and its files were deleted."
                except BackendError as exc:
                    log.warning(
                        "could not delete the old conversation: %s", exc, extra={"thread_key": str(key)}
                    )
                    fate = "The earlier conversation could not be deleted on the server."
        metadata = {
            "slack_team": key.team_id,
            "slack_channel": key.channel_id,
            "slack_thread_ts": key.thread_ts,
            "slack_user": inbound.user,
        }
        # Opened now, not with the next message: that one must not be seeded with the thread
        # the user just asked to forget.
        try:
            new = await self._backend.open(key, metadata)
        except BackendError as exc:
            log.warning("could not open a fresh conversation: %s", exc, extra={"thread_key": str(key)})
            return None, f"🔄 I've forgotten this thread's conversation. {fate} {exc.user_message}"
        await self._store.bind(key, new)
        log.info(
            "reset: %s → %s", old and old.conversation_id, new.conversation_id, extra={"thread_key": str(key)}
        )
        return new, f"🔄 Started a fresh conversation for this thread. {fate}"

    async def _status(self, key: ThreadKey, binding: Binding | None) -> str:
        channel = await self._channel(key)
        model = channel.model or self._settings.default_model or "the server's default"
        lines = [
            "**Status of this thread**",
            f"• Backend: `{self._backend.name}`, model: `{neutralize(model)}`",
        ]
        if binding is None or binding.backend != self._backend.name:
            lines.append("• Conversation: none yet (your next message here starts one)")
        else:
            since = int(binding.created_at)
            started = f", started <!date^{since}^{{date_short_pretty}} at {{time}}|{since}>" if since else ""
            lines.append(f"• Conversation: `{binding.conversation_id}`{started}")
        names = await self._store.thread_files(key)
        files = ", ".join(neutralize(n) for n in names) if names else "none"
        lines.append(f"• Files in this thread's knowledge: {files}")
        usage = await self._budgets.thread_usage(key) if self._budgets is not None else ThreadUsage()
        lines.append(
            f"• Used in this thread: {usage.turns:,} turn{'s' if usage.turns != 1 else ''}, "
            f"{usage.tokens:,} tokens ({usage.input_tokens:,} in, {usage.output_tokens:,} out)"
        )
        return "\n".join(lines)

    async def _help(self, key: ThreadKey) -> str:
        tools = narrow_tools(self._tools, await self._channel(key))
        where = (
            "Write to me here: every top-level message starts its own thread and conversation."
            if key.is_dm
            else "Mention me and I answer in the thread; after that, anyone's reply there continues "
            "the conversation without a mention. Mentioned in the middle of a thread, I read it first."
        )
        lines = [
            "**What I can do here**",
            f"• {where}",
            "• Share files in the thread: documents, code and text become searchable (with sources), "
            "and I can look at images."
            + (
                " Data files (CSV, spreadsheets) go to the code interpreter."
                if tools.code_interpreter
                else ""
            ),
            f"• Tools I can use here: {', '.join(_tool_lines(tools)) or 'none'}",
            "• Commands (mention me with just the word; in a DM, send the word): "
            "`reset` starts a fresh conversation for this thread, "
            "`status` shows the model, the conversation, its files and what it used, "
            "`help` shows this.",
            f"• On any message, the shortcut *{ASK_SHORTCUT_NAME}* (⋮ → More message shortcuts) "
            "brings me into its thread, caught up on what was said.",
        ]
        return "\n".join(lines)


def _tool_lines(tools: ToolSet) -> list[str]:
    found = []
    if tools.file_search:
        found.append("file search")
    if tools.code_interpreter:
        found.append("code interpreter")
    if tools.web_search:
        found.append(
            "web search" + (f" ({', '.join(tools.web_search_domains)})" if tools.web_search_domains else "")
        )
    for fn in tools.functions.values():
        summary = (fn.description or "").strip().splitlines()[0] if fn.description else ""
        found.append(f"`{fn.name}`" + (f" ({neutralize(summary)})" if summary else ""))
    for server in tools.mcp_servers:
        found.append(f"`{neutralize(str(server.get('server_label', 'mcp')))}` (MCP server)")
    return found
