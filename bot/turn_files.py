"""The files shared with a turn's messages: downloaded from Slack, handed to the thread's
conversation, remembered for deletion, and acknowledged in the thread."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bot.assistant.base import Attached, Backend, Binding
from bot.attachments import FileKind, Rejected
from bot.inbound import Inbound, ThreadKey
from bot.slack.files import SlackFiles
from bot.slack.markup import neutralize
from bot.slack.notices import react
from bot.slack.reply import ReplyStream, post_note
from bot.store import Store

FILE_REACTION = "white_check_mark"


class SharedFiles:
    """What a turn does with the files its messages carry, before the model is asked."""

    def __init__(self, store: Store, backend: Backend, slack: AsyncWebClient, files: SlackFiles) -> None:
        self._store = store
        self._backend = backend
        self._slack = slack
        self._files = files

    async def take(
        self,
        key: ThreadKey,
        binding: Binding,
        inputs: list[Inbound],
        reply: ReplyStream,
        kinds: frozenset[FileKind] | None = None,
    ) -> tuple[Binding, list[Attached]]:
        """Download the files shared with these messages and hand them to the backend."""
        refs = [f for m in inputs for f in m.files]
        if not refs:
            return binding, []
        await reply.status(f"reading {', '.join(r.name or 'a file' for r in refs)}…")
        local, problems = await self._files.fetch_all(refs, kinds)
        before = binding
        binding, attached = await self._backend.attach(binding, local)
        if binding != before:
            await self._store.bind(key, binding)
        for file, item in zip(local, attached, strict=True):
            if item.error:
                problems.append(Rejected(item.name, item.error))
            elif file.slack_file_id and item.remote_id:
                await self._store.remember_file(key, file.slack_file_id, item.remote_id, item.name)
        if problems:
            lines = "\n".join(f"• *{neutralize(p.name)}*: {neutralize(p.reason)}" for p in problems)
            which = "this file" if len(problems) == 1 else f"{len(problems)} files"
            await post_note(self._slack, key, f"⚠️ I couldn't use {which}:\n{lines}")
        await self._acknowledge(key, inputs, [a for a in attached if not a.error])
        return binding, [a for a in attached if not a.error]

    async def _acknowledge(self, key: ThreadKey, inputs: list[Inbound], accepted: list[Attached]) -> None:
        """A reaction on each message whose files the assistant now has."""
        names = {a.name for a in accepted}
        for message in inputs:
            if any(f.name in names for f in message.files):
                await react(self._slack, key, message.ts, FILE_REACTION)

    async def confirm_only(self, key: ThreadKey, attached: list[Attached]) -> None:
        """Files shared without a question need no model run, only a confirmation."""
        if attached:
            names = ", ".join(neutralize(a.name) for a in attached)
            await post_note(
                self._slack, key, f"📎 Added {names} to this thread's knowledge. Ask me about it."
            )
