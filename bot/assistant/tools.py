"""Function tools the assistant may call, and the bounded loop that answers its calls."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

ToolFn = Callable[[dict[str, Any]], Awaitable[str]]

# A model that keeps calling tools would otherwise hold the thread's lock forever.
MAX_TOOL_ROUNDS = 8


@dataclass(frozen=True, slots=True)
class FunctionTool:
    name: str
    description: str
    parameters: dict[str, Any]
    fn: ToolFn


@dataclass(slots=True)
class ToolSet:
    """The function tools offered for a turn, plus which hosted tools are on."""

    functions: dict[str, FunctionTool] = field(default_factory=dict)
    file_search: bool = False
    code_interpreter: bool = False

    def add(self, tool: FunctionTool) -> None:
        self.functions[tool.name] = tool

    def schemas(self) -> list[dict[str, Any]]:
        """Function tool definitions in the flat Responses API shape."""
        return [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters,
            }
            for t in self.functions.values()
        ]

    def assistant_schemas(self) -> list[dict[str, Any]]:
        """Function tool definitions in the nested Assistants API shape."""
        return [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
            }
            for t in self.functions.values()
        ]

    async def call(self, name: str, arguments: str) -> str:
        """Run one tool call; failures become text the model can read, never exceptions."""
        tool = self.functions.get(name)
        if tool is None:
            return json.dumps({"error": f"unknown tool {name!r}"})
        try:
            args = json.loads(arguments or "{}")
            if not isinstance(args, dict):
                raise ValueError("arguments must be a JSON object")
            return await tool.fn(args)
        except Exception as exc:
            log.warning("tool %s failed: %s", name, type(exc).__name__)
            return json.dumps({"error": f"{type(exc).__name__}: {exc}"})

    def with_hosted(self, *, file_search: bool, code_interpreter: bool) -> ToolSet:
        return ToolSet(dict(self.functions), file_search=file_search, code_interpreter=code_interpreter)


async def _current_time(args: dict[str, Any]) -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def default_tools() -> ToolSet:
    """The function tools every thread gets."""
    tools = ToolSet()
    tools.add(
        FunctionTool(
            name="current_time",
            description="The current date and time in UTC (ISO 8601).",
            parameters={"type": "object", "properties": {}, "additionalProperties": False},
            fn=_current_time,
        )
    )
    return tools
