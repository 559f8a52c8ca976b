"""One Responses API event stream (plain dicts, see sse.py) → RunEvents and what the loop needs next."""

from __future__ import annotations

import logging
from typing import Any

from bot.assistant.base import (
    TASK_TITLES,
    TOOL_STATUS,
    ApprovalRequested,
    Citation,
    Failed,
    RunEvent,
    Status,
    TextDelta,
    ToolCall,
    Usage,
)
from bot.assistant.runner import FunctionCall

log = logging.getLogger(__name__)

COULD_NOT_FINISH = "The assistant could not finish its answer."
STREAM_ERROR = "The assistant service reported an error mid-answer."
# Output items of hosted tools the server runs itself; each is shown as a task.
HOSTED_ITEMS = {
    "file_search_call": "file_search",
    "code_interpreter_call": "code_interpreter",
    "web_search_call": "web_search",
    "mcp_call": "mcp_call",
    "mcp_list_tools": "mcp_list_tools",
}
FAILED_ITEM = frozenset({"failed", "incomplete"})


class ResponseOutcome:
    """Accumulates one response stream into RunEvents, text and pending function calls."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.text = ""
        self.calls: list[FunctionCall] = []
        self.approvals: list[ApprovalRequested] = []
        self.completed = False
        self.failed: Failed | None = None
        self.failed_raw = ""
        self.container_files: list[tuple[str, str, str]] = []
        self.mcp_errors: list[str] = []
        self.response_id = ""
        self.message_ids: list[str] = []  # the answer's message items, for deletes in Slack
        self._streamed = False
        self._cited: set[str] = set()

    def feed(self, event: dict[str, Any]) -> list[RunEvent]:
        kind = event.get("type", "")
        if kind == "response.output_text.delta":
            delta = event.get("delta") or ""
            self._streamed = True
            self.text += delta
            return [TextDelta(delta)] if delta else []
        if kind == "response.output_item.added":
            return self._item_started(event.get("item") or {})
        if kind == "response.output_item.done":
            return self._item_done(event.get("item") or {})
        if kind == "response.completed":
            self.completed = True
            response = event.get("response") or {}
            return _usage(response) + self._completed(response)
        if kind in ("response.failed", "response.incomplete"):
            response = event.get("response") or {}
            error = response.get("error") or {}
            detail = error.get("message") or str(response.get("incomplete_details") or "") or kind
            self._fail(COULD_NOT_FINISH, f"{error.get('code') or ''} {detail}")
            log.warning("response ended as %s: %s", kind, detail)
            return _usage(response)  # an unfinished answer still cost its tokens
        if kind == "error":
            # Documented flat ({type, code, message}); the live API nests it under "error".
            error = event.get("error") if isinstance(event.get("error"), dict) else event
            assert isinstance(error, dict)
            self._fail(STREAM_ERROR, f"{error.get('code') or ''} {error.get('message') or ''}")
            log.warning("stream error event: %s", self.failed_raw)
            return []
        return []

    def _fail(self, message: str, raw: str) -> None:
        # A failing stream sends `error` and then `response.failed`: the first one tells the user.
        self.failed = self.failed or Failed(message)
        self.failed_raw = f"{self.failed_raw} {raw}".strip()

    def _item_started(self, item: dict[str, Any]) -> list[RunEvent]:
        item_type = item.get("type", "")
        if item_type == "function_call":
            return [Status(f"calling {item.get('name', 'a tool')}…")]
        if item_type in HOSTED_ITEMS:
            status = TOOL_STATUS.get(HOSTED_ITEMS[item_type])
            return [Status(status), _task(item, "in_progress")] if status else [_task(item, "in_progress")]
        return []

    def _item_done(self, item: dict[str, Any]) -> list[RunEvent]:
        item_type = item.get("type", "")
        if item_type not in HOSTED_ITEMS:
            return []
        failed = item.get("status") in FAILED_ITEM or bool(item.get("error"))
        if failed and item_type.startswith("mcp_"):
            error = item.get("error")
            reason = error.get("message", "") if isinstance(error, dict) else str(error or "")
            self.mcp_errors.append(f"{item.get('server_label', '?')}: {reason or 'failed'}")
        return [_task(item, "error" if failed else "complete")]

    def _completed(self, response: dict[str, Any]) -> list[RunEvent]:
        events: list[RunEvent] = []
        final_text = ""
        self.response_id = str(response.get("id") or "")
        for item in response.get("output") or []:
            item_type = item.get("type", "")
            if item_type == "function_call":
                self.calls.append(
                    FunctionCall(item.get("call_id", ""), item.get("name", ""), item.get("arguments") or "{}")
                )
            elif item_type == "mcp_approval_request":
                request = ApprovalRequested(
                    item.get("id", ""),
                    item.get("server_label", ""),
                    item.get("name", ""),
                    item.get("arguments") or "{}",
                )
                self.approvals.append(request)
                events.append(request)
            elif item_type == "message":
                if item.get("id"):
                    self.message_ids.append(str(item["id"]))
                for part in item.get("content") or []:
                    final_text += part.get("text") or ""
                    events.extend(self._citations(part.get("annotations") or []))
        if not self._streamed and final_text:
            # Some compatible servers send no deltas; the completed response still has the text.
            self.text = final_text
            events.insert(0, TextDelta(final_text))
        return events

    def _citations(self, annotations: list[dict[str, Any]]) -> list[RunEvent]:
        events: list[RunEvent] = []
        for ann in annotations:
            kind = ann.get("type")
            if kind == "container_file_citation":
                ref = (ann.get("container_id", ""), ann.get("file_id", ""), ann.get("filename", ""))
                if ref not in self.container_files:
                    self.container_files.append(ref)
            elif kind == "file_citation":
                name = ann.get("filename") or ann.get("file_id") or ""
                if name and name not in self._cited:
                    self._cited.add(name)
                    events.append(Citation(name, ann.get("file_id", "")))
            elif kind == "url_citation":
                url = ann.get("url") or ""
                if url and url not in self._cited:
                    self._cited.add(url)
                    events.append(Citation(ann.get("title") or url, url=url))
        return events


def _task(item: dict[str, Any], status: str) -> ToolCall:
    kind = HOSTED_ITEMS[item.get("type", "")]
    name = item.get("name") or kind
    server = item.get("server_label") or ""
    title = TASK_TITLES[kind].format(name=name, server=server)
    return ToolCall(name, item.get("id", ""), status, title)


def _usage(response: dict[str, Any]) -> list[RunEvent]:
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return []
    details = usage.get("input_tokens_details") or {}
    return [
        Usage(
            model=str(response.get("model") or ""),
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            cached_tokens=int(details.get("cached_tokens") or 0),
        )
    ]
