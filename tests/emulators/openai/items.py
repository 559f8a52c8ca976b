"""Conversation items: what the server stores for request input, and the model's view of them."""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError
from .script import ApprovalRequest, ApprovalResponse, Entry, Message, ToolCall, ToolResult
from .state import new_id

ID_PREFIX = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "file_search_call": "fs",
    "code_interpreter_call": "ci",
    "web_search_call": "ws",
    "mcp_list_tools": "mcpl",
    "mcp_call": "mcp",
    "mcp_approval_request": "mcpr",
    "mcp_approval_response": "mcpa",
    "reasoning": "rs",
}


def normalize_input(raw: Any, *, param: str = "input") -> list[dict[str, Any]]:
    """Request `input` (a string or a list of items) in the canonical item form the API stores."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}]
    if not isinstance(raw, list):
        raise ApiError(
            400, f"Invalid type for '{param}': expected a string or an array of items.", param=param
        )
    items: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        where = f"{param}[{index}]"
        if not isinstance(item, dict):
            raise ApiError(400, f"Invalid type for '{where}': expected an object.", param=where)
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "item_reference":
            continue  # refers to an item the server already holds; nothing new to store
        if kind is None:
            raise ApiError(400, f"Missing required parameter: '{where}.type'.", param=f"{where}.type")
        items.append(_normalize_item({**copy.deepcopy(item), "type": kind}, where))
    return items


def _normalize_item(item: dict[str, Any], where: str) -> dict[str, Any]:
    if item["type"] == "message":
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise ApiError(
                400,
                f"Invalid value: '{role}'. Supported values are: "
                "'assistant', 'system', 'developer', and 'user'.",
                param=f"{where}.role",
                code="invalid_value",
            )
        content = item.get("content")
        if isinstance(content, str):
            part_type = "output_text" if role == "assistant" else "input_text"
            content = [{"type": part_type, "text": content}]
        if not isinstance(content, list):
            raise ApiError(400, f"Missing required parameter: '{where}.content'.", param=f"{where}.content")
        item["content"] = [_normalize_part(part) for part in content]
    elif item["type"] == "mcp_approval_response" and (
        not isinstance(item.get("approval_request_id"), str) or not isinstance(item.get("approve"), bool)
    ):
        raise ApiError(
            400,
            f"Missing required parameter: '{where}.approval_request_id' or '{where}.approve'.",
            param=where,
        )
    elif item["type"] == "function_call_output" and "call_id" not in item:
        raise ApiError(400, f"Missing required parameter: '{where}.call_id'.", param=f"{where}.call_id")
    return item


def _normalize_part(part: Any) -> Any:
    if not isinstance(part, dict):
        return part
    if part.get("type") == "input_image":
        return {"detail": "auto", **part}
    if part.get("type") == "output_text":
        return {"annotations": [], **part}
    return part


def stored(item: dict[str, Any]) -> dict[str, Any]:
    """`item` as returned by the conversation items API: with an id and a status."""
    prefix = ID_PREFIX.get(item.get("type", ""), "item")
    return {"id": item.get("id") or new_id(prefix), **item, "status": item.get("status") or "completed"}


def to_entries(items: list[dict[str, Any]], *, current: bool) -> list[Entry]:
    """The scripted model's view of stored or incoming items."""
    entries: list[Entry] = []
    for item in items:
        kind = item.get("type")
        if kind == "message":
            texts: list[str] = []
            images = 0
            files: list[str] = []
            for part in item.get("content") or []:
                if not isinstance(part, dict):
                    continue
                ptype = part.get("type")
                if ptype in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif ptype == "input_image":
                    images += 1
                elif ptype == "input_file":
                    files.append(
                        str(part.get("file_id") or part.get("filename") or part.get("file_url") or "")
                    )
            entries.append(Message(item.get("role", "user"), tuple(texts), images, tuple(files), current))
        elif kind == "function_call":
            entries.append(
                ToolCall(
                    str(item.get("call_id")), str(item.get("name")), str(item.get("arguments", "")), current
                )
            )
        elif kind == "function_call_output":
            entries.append(ToolResult(str(item.get("call_id")), output_text(item.get("output")), current))
        elif kind == "mcp_approval_request":
            entries.append(
                ApprovalRequest(
                    str(item.get("id")),
                    str(item.get("server_label")),
                    str(item.get("name")),
                    str(item.get("arguments", "")),
                    current,
                )
            )
        elif kind == "mcp_approval_response":
            request_id = str(item.get("approval_request_id"))
            entries.append(ApprovalResponse(request_id, item.get("approve") is True, current))
    return entries


def output_text(output: Any) -> str:
    """A function_call_output's output: a string, or a list of content parts."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return " ".join(str(p.get("text", "")) for p in output if isinstance(p, dict))
    return "" if output is None else str(output)


def user_texts(items: list[dict[str, Any]]) -> list[str]:
    """One string per user message item: its text parts joined with " | "."""
    return [
        entry.text
        for entry in to_entries(items, current=False)
        if isinstance(entry, Message) and entry.role == "user"
    ]
