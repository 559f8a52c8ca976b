"""The Slack side of MCP approvals: the request message with its buttons, and its outcome."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.inbound import ThreadKey

APPROVE_ACTION = "threadbridge_mcp_approve"
DENY_ACTION = "threadbridge_mcp_deny"
MAX_ARGUMENT_CHARS = 1_500


@dataclass(frozen=True, slots=True)
class ApprovalClick:
    """Someone pressed Approve or Deny on an approval request."""

    approval_id: str
    user: str
    approve: bool
    channel_id: str


def click_from(body: dict[str, Any]) -> ApprovalClick | None:
    """The click in a block_actions payload, or None when it is not one of ours."""
    action: dict[str, Any] = next(iter(body.get("actions") or ()), {})
    approval_id = action.get("value") or ""
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    user = (body.get("user") or {}).get("id") or ""
    if not approval_id or not channel or not user:
        return None
    return ApprovalClick(approval_id, user, action.get("action_id") == APPROVE_ACTION, channel)


def _arguments(arguments: str) -> str:
    try:
        text = json.dumps(json.loads(arguments or "{}"), indent=2, ensure_ascii=False)
    except ValueError:
        text = arguments
    if len(text) > MAX_ARGUMENT_CHARS:
        text = text[:MAX_ARGUMENT_CHARS] + "\n…"
    return text.replace("```", "'''")


def _summary(server: str, tool: str, arguments: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"The assistant wants to run *{tool}* on *{server}*:"},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": f"```{_arguments(arguments)}```"}},
    ]


def request_blocks(
    approval_id: str, asker: str, server: str, tool: str, arguments: str
) -> list[dict[str, Any]]:
    buttons = [
        {
            "type": "button",
            "action_id": APPROVE_ACTION,
            "text": {"type": "plain_text", "text": "Approve"},
            "style": "primary",
            "value": approval_id,
        },
        {
            "type": "button",
            "action_id": DENY_ACTION,
            "text": {"type": "plain_text", "text": "Deny"},
            "style": "danger",
            "value": approval_id,
        },
    ]
    who = {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<@{asker}> decides."}]}
    return [
        *_summary(server, tool, arguments),
        who,
        {"type": "actions", "block_id": "mcp", "elements": buttons},
    ]


def outcome_blocks(server: str, tool: str, arguments: str, line: str) -> list[dict[str, Any]]:
    return [
        *_summary(server, tool, arguments),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": line}]},
    ]


def decision_line(user: str, approve: bool, at: float | None = None) -> str:
    when = int(at if at is not None else time.time())
    verb = "✅ Approved" if approve else "🚫 Denied"
    fallback = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(when))
    return f"{verb} by <@{user}> <!date^{when}^{{date_short_pretty}} at {{time}}|{fallback}>"


async def post_request(
    client: AsyncWebClient,
    key: ThreadKey,
    approval_id: str,
    asker: str,
    server: str,
    tool: str,
    arguments: str,
) -> str:
    resp = await client.chat_postMessage(
        channel=key.channel_id,
        thread_ts=key.thread_ts,
        text=f"The assistant wants to run {tool} on {server}. Approve or deny?",
        blocks=request_blocks(approval_id, asker, server, tool, arguments),
    )
    return str(resp["ts"])


async def show_outcome(
    client: AsyncWebClient, key: ThreadKey, ts: str, server: str, tool: str, arguments: str, line: str
) -> None:
    """Replace the buttons by what became of the request (decided, expired)."""
    await client.chat_update(
        channel=key.channel_id,
        ts=ts,
        text=f"{tool} on {server}: {line}",
        blocks=outcome_blocks(server, tool, arguments, line),
    )
