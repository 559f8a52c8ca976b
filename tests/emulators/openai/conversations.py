"""/v1/conversations and /v1/conversations/{id}/items."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .errors import ApiError, not_found
from .items import normalize_input, stored
from .pages import list_page
from .state import Conversation, new_id

if TYPE_CHECKING:
    from .emulator import OpenAIEmulator

MAX_ITEMS_PER_CALL = 20


def routes(emu: OpenAIEmulator) -> list[web.RouteDef]:
    def conversation(request: web.Request) -> Conversation:
        cid = request.match_info["conversation_id"]
        conv = emu.conversations.get(cid)
        if conv is None:
            raise not_found("Conversation", cid)
        return conv

    def new_items(raw: Any, param: str) -> list[dict[str, Any]]:
        items = normalize_input(raw, param=param)
        if len(items) > MAX_ITEMS_PER_CALL:
            raise ApiError(
                400,
                f"Invalid '{param}': array too long. Expected an array with maximum length "
                f"{MAX_ITEMS_PER_CALL}, but got an array with length {len(items)} instead.",
                param=param,
                code="array_above_max_length",
            )
        return [stored(item) for item in items]

    async def create(request: web.Request) -> web.Response:
        body = emu.body(request)
        metadata = _metadata(body.get("metadata"))
        items = new_items(body.get("items"), "items")
        conv = Conversation(new_id("conv"), metadata, items)
        emu.conversations[conv.id] = conv
        return web.json_response(conv.to_json())

    async def retrieve(request: web.Request) -> web.Response:
        return web.json_response(conversation(request).to_json())

    async def update(request: web.Request) -> web.Response:
        conv = conversation(request)
        body = emu.body(request)
        if "metadata" not in body:
            raise ApiError(400, "Missing required parameter: 'metadata'.", param="metadata")
        conv.metadata = _metadata(body["metadata"])
        return web.json_response(conv.to_json())

    async def delete(request: web.Request) -> web.Response:
        conv = conversation(request)
        del emu.conversations[conv.id]
        return web.json_response({"id": conv.id, "object": "conversation.deleted", "deleted": True})

    async def add_items(request: web.Request) -> web.Response:
        conv = conversation(request)
        body = emu.body(request)
        if not body.get("items"):
            raise ApiError(400, "Missing required parameter: 'items'.", param="items")
        items = new_items(body["items"], "items")
        conv.items.extend(items)
        return web.json_response(
            {
                "object": "list",
                "data": items,
                "first_id": items[0]["id"],
                "last_id": items[-1]["id"],
                "has_more": False,
            }
        )

    async def list_items(request: web.Request) -> web.Response:
        conv = conversation(request)
        return web.json_response(list_page(conv.items, request.query, default_order="desc"))

    def item(conv: Conversation, request: web.Request) -> dict[str, Any]:
        item_id = request.match_info["item_id"]
        for candidate in conv.items:
            if candidate.get("id") == item_id:
                return candidate
        raise not_found("Item", item_id)

    async def retrieve_item(request: web.Request) -> web.Response:
        conv = conversation(request)
        return web.json_response(item(conv, request))

    async def delete_item(request: web.Request) -> web.Response:
        conv = conversation(request)
        conv.items.remove(item(conv, request))
        # The real endpoint answers with the conversation, not a deletion marker.
        return web.json_response(conv.to_json())

    base = "/v1/conversations"
    return [
        web.post(base, create),
        web.get(base + "/{conversation_id}", retrieve),
        web.post(base + "/{conversation_id}", update),
        web.delete(base + "/{conversation_id}", delete),
        web.post(base + "/{conversation_id}/items", add_items),
        web.get(base + "/{conversation_id}/items", list_items),
        web.get(base + "/{conversation_id}/items/{item_id}", retrieve_item),
        web.delete(base + "/{conversation_id}/items/{item_id}", delete_item),
    ]


def _metadata(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ApiError(400, "Invalid type for 'metadata': expected an object.", param="metadata")
    if len(raw) > 16:
        raise ApiError(400, "Invalid 'metadata': too many properties (maximum 16).", param="metadata")
    for key, value in raw.items():
        if not isinstance(value, str):
            raise ApiError(
                400, f"Invalid type for 'metadata.{key}': expected a string.", param=f"metadata.{key}"
            )
        if len(key) > 64 or len(value) > 512:
            raise ApiError(
                400,
                f"Invalid 'metadata.{key}': string too long.",
                param=f"metadata.{key}",
                code="string_above_max_length",
            )
    return dict(raw)
