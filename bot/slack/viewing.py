"""What a user is looking at beside the bot's DM (`app_context_changed`), told in one short line."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any, Literal

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

MAX_QUOTE_CHARS = 300
ViewKind = Literal["channel", "message", "canvas", "list"]
_SIMPLE: dict[str, ViewKind] = {
    "slack#/types/channel_id": "channel",
    "slack#/types/canvas_id": "canvas",
    "slack#/types/list_id": "list",
}


@dataclass(frozen=True, slots=True)
class Viewing:
    """One thing in Slack a user has open: a channel, a message in one, a canvas or a list."""

    kind: ViewKind
    channel_id: str = ""
    message_ts: str = ""
    item_id: str = ""  # the canvas's or list's id

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Viewing:
        return cls(**json.loads(raw))


def viewing_from(event: dict[str, Any]) -> Viewing | None:
    """The event's most telling entity (a message beats its channel); None for an empty context."""
    entities = [e for e in (event.get("context") or {}).get("entities") or () if isinstance(e, dict)]
    channels = [
        str(e["value"]) for e in entities if e.get("type") == "slack#/types/channel_id" and e.get("value")
    ]
    for entity in entities:
        value = entity.get("value")
        if entity.get("type") == "slack#/types/message_context" and isinstance(value, dict):
            channel = str(value.get("channel_id") or (channels[0] if channels else ""))
            if channel and value.get("message_ts"):
                return Viewing("message", channel_id=channel, message_ts=str(value["message_ts"]))
    for entity in entities:
        kind = _SIMPLE.get(str(entity.get("type")))
        value = entity.get("value")
        if kind is None or not isinstance(value, str) or not value:
            continue
        if kind == "channel":
            return Viewing("channel", channel_id=value)
        return Viewing(kind, item_id=value)
    return None


async def describe(client: AsyncWebClient, viewing: Viewing) -> str:
    """ "#name", plus the message's words where the bot may read them, as one line for the model."""
    if viewing.kind == "list":
        return "a Slack list"
    if viewing.kind == "canvas":
        title = await _canvas_title(client, viewing.item_id)
        return f'the canvas "{title}"' if title else "a canvas"
    where = await _channel(client, viewing.channel_id)
    if viewing.kind == "channel":
        return where
    text = await _message_text(client, viewing.channel_id, viewing.message_ts)
    if not text:
        return f"a message in {where}"
    return f"this message in {where}: “{text}”"


async def _channel(client: AsyncWebClient, channel_id: str) -> str:
    if channel_id.startswith("D"):
        return "a direct message"
    try:
        resp = await client.conversations_info(channel=channel_id)
    except SlackApiError as exc:
        log.info("conversations.info failed for %s: %s", channel_id, exc.response.get("error"))
        return "a channel the bot cannot see"
    name = (resp.get("channel") or {}).get("name")
    return f"#{name}" if name else "a conversation"


async def _message_text(client: AsyncWebClient, channel_id: str, ts: str) -> str:
    """The message's text, one line and short; "" where the bot may not read it."""
    try:
        # A reply's ts addresses its whole thread; pick the message itself out of the page.
        resp = await client.conversations_replies(channel=channel_id, ts=ts, limit=200)
    except SlackApiError as exc:
        log.info("could not read the message the user is looking at: %s", exc.response.get("error"))
        return ""
    found = next((m for m in resp.get("messages") or () if m.get("ts") == ts), None)
    text = " ".join(str((found or {}).get("text") or "").split())
    if len(text) > MAX_QUOTE_CHARS:
        text = text[: MAX_QUOTE_CHARS - 1].rstrip() + "…"
    return text


async def _canvas_title(client: AsyncWebClient, canvas_id: str) -> str:
    try:
        resp = await client.files_info(file=canvas_id)
    except SlackApiError as exc:
        log.info("files.info failed for canvas %s: %s", canvas_id, exc.response.get("error"))
        return ""
    file: dict[str, Any] = resp.get("file") or {}
    return str(file.get("title") or file.get("name") or "")
