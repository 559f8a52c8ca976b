"""Which server-side items a run stored for which Slack message, and deleting them again.

A Slack message deleted in the thread must leave the conversation too; for that the Turn
keeps, per Slack ts, the ids of the items the run stored (see bot/message_items.py).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Sequence
from typing import Any

import openai
from openai import AsyncOpenAI

from bot.assistant.base import ItemsStored
from bot.assistant.errors import translate
from bot.inbound import Inbound

log = logging.getLogger(__name__)

# input_items answers at most 100 items per page.
MAX_PAGE = 100


# A user item whose id the server tells only when asked (responses.input_items): recorded as a
# reference and resolved only if its Slack message is deleted, not with one more call per turn.
REF = "@"


def user_item_refs(
    response_id: str, inputs: Sequence[Inbound], sent: Sequence[dict[str, Any]]
) -> list[ItemsStored]:
    """References to the user items one response call stored, one per Slack message sent."""
    users = [i for i in sent if i.get("type") == "message" and i.get("role") == "user"]
    if not response_id or not users or len(sent) > MAX_PAGE or len(users) != len(inputs):
        return []
    return [
        ItemsStored(m.message_ts, (f"{REF}{response_id}/{len(sent)}/{len(users)}/{n}",))
        for n, m in enumerate(inputs)
    ]


async def resolve_refs(client: AsyncOpenAI, item_ids: Sequence[str]) -> list[str]:
    """Item ids with every reference replaced by the id the server gave that user item.

    Listed newest first and no more than the call sent, so it is the same whether the server
    lists only the request's input or the whole conversation before it (servers differ).
    """
    plain = [i for i in item_ids if not i.startswith(REF)]
    wanted: dict[tuple[str, int, int], list[int]] = {}
    for ref in item_ids:
        if ref.startswith(REF):
            rid, sent, users, position = ref[len(REF) :].split("/")
            wanted.setdefault((rid, int(sent), int(users)), []).append(int(position))
    for (response_id, limit, count), positions in wanted.items():
        try:
            page = await client.responses.input_items.list(response_id, order="desc", limit=limit)
        except openai.OpenAIError as exc:
            log.info("could not list the items of %s: %s", response_id, translate(exc))
            continue
        ids = [
            str(item.id)
            for item in reversed(page.data)
            if getattr(item, "type", "") == "message" and getattr(item, "role", "") == "user" and item.id
        ]
        if len(ids) != count:
            log.info("response %s lists %d user items, not %d", response_id, len(ids), count)
            continue
        plain += [ids[p] for p in positions]
    return plain


async def add_conversation_messages(
    client: AsyncOpenAI, conversation_id: str, inputs: Sequence[Inbound]
) -> list[ItemsStored]:
    """Conversations API: `items.create` the messages as user items; their ids come back at once."""
    items: list[Any] = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": m.attributed_text()}]}
        for m in inputs
    ]
    try:
        created = await client.conversations.items.create(conversation_id, items=items)
    except openai.OpenAIError as exc:
        raise translate(exc) from None
    ids = [str(getattr(item, "id", "") or "") for item in created.data]
    return [ItemsStored(m.message_ts, (i,)) for m, i in zip(inputs, ids, strict=False) if i]


async def delete_conversation_items(
    client: AsyncOpenAI, conversation_id: str, item_ids: Sequence[str]
) -> None:
    """Conversations API: `items.delete` each one (already gone is fine)."""
    try:
        for item_id in item_ids:
            with contextlib.suppress(openai.NotFoundError):
                await client.conversations.items.delete(item_id, conversation_id=conversation_id)
    except openai.OpenAIError as exc:
        raise translate(exc) from None


async def delete_thread_messages(client: AsyncOpenAI, thread_id: str, message_ids: Sequence[str]) -> None:
    """Assistants API: `messages.delete` each one (already gone is fine)."""
    try:
        for message_id in message_ids:
            with warnings.catch_warnings():
                # The legacy methods warn when called (not when awaited): call inside, await outside.
                warnings.simplefilter("ignore", DeprecationWarning)
                pending = client.beta.threads.messages.delete(message_id, thread_id=thread_id)
            with contextlib.suppress(openai.NotFoundError):
                await pending
    except openai.OpenAIError as exc:
        raise translate(exc) from None
