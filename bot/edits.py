"""A person edited a message the bot took: what the model is told, and when the answer is redone.

Edits travel through the thread's queue like messages (Inbound kind "edit"), so they are
decided under the thread's lock, after any turn still answering:
- the edited message is still waiting in the same inbox → the model only ever sees the new text;
- it is the thread's latest answered person message → its answer is replaced: the old answer
  leaves Slack and the conversation, and the model is told "<name> edited their message to: …";
- anything older → "<name> corrected an earlier message: …" goes with the next turn (with
  messages waiting in the same inbox, or stored in the conversation for the next turn when
  there are none: a correction alone is no question).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from slack_sdk.web.async_client import AsyncWebClient

from bot.assistant.base import Backend, BackendError, Binding, ItemsStored
from bot.inbound import Inbound, ThreadKey
from bot.message_items import LastAnswer, MessageItems, delete_items
from bot.slack.history import SlackHistory
from bot.slack.reply import discard_interrupted
from bot.store import Store

log = logging.getLogger(__name__)

CORRECTED = "corrected an earlier message: "
EDITED = "edited their message to: "
PERSON_KINDS = frozenset({"mention", "thread_reply", "dm"})


@dataclass(frozen=True, slots=True)
class Folded:
    """A turn's inbox with its edits applied."""

    inputs: list[Inbound]
    replace: LastAnswer | None = None  # the answer to redo, when the latest message was edited
    settled: bool = False  # nothing left to answer (corrections only, stored for the next turn)


def fold(inbox: Sequence[Inbound], last: LastAnswer | None) -> tuple[list[Inbound], LastAnswer | None]:
    """Apply the inbox's edits: to its own waiting messages, or as corrections; says what to redo."""
    out: list[Inbound] = []
    waiting: dict[str, int] = {}  # ts of a person message in this inbox → its place in `out`
    redo: LastAnswer | None = None
    redo_at = -1
    newer = any(m.kind in PERSON_KINDS for m in inbox)
    for message in inbox:
        if message.kind != "edit":
            if message.kind in PERSON_KINDS:
                waiting[message.ts] = len(out)
            out.append(message)
        elif message.edited_ts in waiting:
            at = waiting[message.edited_ts]
            out[at] = replace(out[at], text=message.text)
        elif last is not None and message.edited_ts == last.ts and not newer:
            note = replace(message, kind="correction", text=EDITED + message.text)
            if redo_at >= 0:
                out[redo_at] = note  # edited twice before the redo: the last text wins
            else:
                redo, redo_at = last, len(out)
                out.append(note)
        else:
            out.append(replace(message, kind="correction", text=CORRECTED + message.text))
    return out, redo


def last_answer(inputs: Sequence[Inbound], posted: Sequence[str]) -> LastAnswer | None:
    """What an answer to these inputs becomes: the latest person message it answered, and its messages."""
    spoken = [m.message_ts for m in inputs if m.kind in PERSON_KINDS or m.kind == "correction"]
    if not spoken or not posted:
        return None
    return LastAnswer(max(spoken, key=_ts_order), tuple(posted))


def item_map(stored: Sequence[ItemsStored], posted: Sequence[str]) -> dict[str, list[str]]:
    """ts → item ids: a person's message's own, and the answer's under every message it posted."""
    items: dict[str, list[str]] = {}
    answer = [i for s in stored if not s.ts for i in s.item_ids]
    for s in stored:
        if s.ts:
            items.setdefault(s.ts, []).extend(s.item_ids)
    for ts in posted if answer else ():
        items.setdefault(ts, []).extend(answer)
    return items


class Edits:
    """Edits in a turn: folding them into its inputs, replacing an answer, recording items."""

    def __init__(
        self,
        store: Store,
        items: MessageItems,
        backend: Backend,
        slack: AsyncWebClient,
        history: SlackHistory,
    ) -> None:
        self._store = store
        self._items = items
        self._backend = backend
        self._slack = slack
        self._history = history

    async def fold(self, key: ThreadKey, inbox: list[Inbound], binding: Binding | None) -> Folded:
        """The inputs of a turn; Redis is read only when the inbox holds an edit."""
        edited = [m.edited_ts for m in inbox if m.kind == "edit"]
        if not edited:
            return Folded(inbox)
        last, known = await self._items.lookup(key, edited)
        # A message the bot never took (before it joined, or not addressed to it) stays unknown to
        # the model, edited or not.
        inbox = [m for m in inbox if m.kind != "edit" or m.edited_ts in known]
        inputs, redo = fold(inbox, last)
        if not inputs:
            return Folded(inputs, settled=True)
        if redo is not None or any(m.kind != "correction" for m in inputs):
            return Folded(inputs, redo)
        await self._store_corrections(key, binding, inputs)
        return Folded(inputs, settled=True)

    async def replace_answer(self, key: ThreadKey, answer: LastAnswer) -> None:
        """The old answer leaves Slack and the conversation before the new one is written."""
        for ts in answer.reply:
            await discard_interrupted(self._slack, key, ts)
        await delete_items(self._store, self._items, self._backend, key, answer.reply)

    async def remember(
        self,
        key: ThreadKey,
        binding: Binding,
        inputs: Sequence[Inbound],
        stored: Sequence[ItemsStored],
        posted: Sequence[str],
        *,
        answered: bool,
    ) -> None:
        """Keep what the turn stored per Slack message, and which answer a later edit redoes."""
        last = last_answer(inputs, posted) if answered else None
        await self._items.record(key, binding.conversation_id, item_map(stored, posted), last)

    async def _store_corrections(
        self, key: ThreadKey, binding: Binding | None, inputs: list[Inbound]
    ) -> None:
        if binding is None or binding.backend != self._backend.name:
            return
        named = [replace(m, speaker=await self._history.display_name(m.user)) for m in inputs]
        try:
            stored = await self._backend.add(binding, named)
        except BackendError as exc:
            log.warning("could not store a correction: %s", exc, extra={"thread_key": str(key)})
            return
        await self._items.record(key, binding.conversation_id, item_map(stored, ()))
        log.info("stored %d correction(s) for the next turn", len(named), extra={"thread_key": str(key)})


def _ts_order(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds or 0), int(micros or 0)
