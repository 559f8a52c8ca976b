"""The public plugin API: `@tool` functions the assistant may call, and the set a turn offers.

    from bot.tools import tool, ToolContext

    @tool
    def current_time(tz: str = "UTC") -> str:
        "The current date and time in an IANA time zone."
        ...

The name comes from the function, the description from its docstring and the JSON schema
from its type hints (pydantic); arguments are validated before the call. A parameter
annotated `ToolContext` is filled by the bot and never shown to the model.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol, TypeVar, get_type_hints, overload

import pydantic

from bot.inbound import ThreadKey

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "threadbridge.tools"
# What one tool may hand back to the model; longer outputs are cut (and say so).
MAX_OUTPUT_CHARS = 16_000
DEFAULT_TIMEOUT_S = 30.0
_MARK = "__threadbridge_tool__"

F = TypeVar("F", bound=Callable[..., Any])


class ToolError(Exception):
    """A tool module cannot be loaded or declares something the bot cannot offer."""


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """One message of the Slack thread, as a tool sees it."""

    ts: str
    user: str
    text: str
    bot: bool = False


class ThreadReader(Protocol):
    """Read-only access to the asking thread (the bot implements it over the Slack API)."""

    async def messages(self) -> list[ThreadMessage]: ...

    async def user_name(self, user_id: str) -> str: ...


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Who asked and where: filled in by the bot for a parameter annotated `ToolContext`."""

    thread: ThreadKey
    user_id: str
    user_name: str
    channel_id: str
    slack: ThreadReader


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool's answer for the model; `ok` is False when it is an error text."""

    output: str
    ok: bool = True


@dataclass(frozen=True, slots=True)
class FunctionTool:
    """A function the model may call, with its JSON schema and argument validator."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    model: type[pydantic.BaseModel] | None = None  # validates the model's arguments
    context_param: str = ""  # the parameter that receives the ToolContext

    async def invoke(self, arguments: dict[str, Any], ctx: ToolContext | None) -> Any:
        kwargs = self._validated(arguments)
        if self.context_param:
            kwargs[self.context_param] = ctx
        if inspect.iscoroutinefunction(self.fn):
            return await self.fn(**kwargs)
        # A plugin's blocking code must never stall every other thread's turn.
        return await asyncio.to_thread(functools.partial(self.fn, **kwargs))

    def _validated(self, arguments: dict[str, Any]) -> dict[str, Any]:
        if self.model is None:
            return dict(arguments)
        parsed = self.model.model_validate(arguments)
        return {name: getattr(parsed, name) for name in type(parsed).model_fields}


@overload
def tool(fn: F, /) -> F: ...


@overload
def tool(*, name: str | None = None, description: str | None = None) -> Callable[[F], F]: ...


def tool(
    fn: F | None = None, /, *, name: str | None = None, description: str | None = None
) -> F | Callable[[F], F]:
    """Mark a function as a tool the assistant may call; the function itself is unchanged."""

    def mark(target: F) -> F:
        setattr(target, _MARK, function_tool(target, name=name, description=description))
        return target

    return mark(fn) if fn is not None else mark


def function_tool(
    fn: Callable[..., Any], *, name: str | None = None, description: str | None = None
) -> FunctionTool:
    """The FunctionTool for a plain function: schema from its type hints, text from its docstring."""
    hints = get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    context_param = ""
    for param in inspect.signature(fn).parameters.values():
        annotation = hints.get(param.name, Any)
        if annotation is ToolContext:
            context_param = param.name
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolError(f"tool {fn.__name__}: *args/**kwargs cannot be described to the model")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (annotation, default)
    model = pydantic.create_model(
        f"{fn.__name__}_arguments",
        __config__=pydantic.ConfigDict(extra="forbid"),
        **fields,
    )
    schema = model.model_json_schema()
    schema.pop("title", None)
    schema.setdefault("properties", {})
    return FunctionTool(
        name=name or fn.__name__,
        description=description or inspect.getdoc(fn) or "",
        parameters=schema,
        fn=fn,
        model=model,
        context_param=context_param,
    )


@dataclass(slots=True)
class ToolSet:
    """The function tools offered for a turn, plus which hosted tools are on."""

    functions: dict[str, FunctionTool] = field(default_factory=dict)
    file_search: bool = False
    code_interpreter: bool = False
    web_search: bool = False
    web_search_domains: tuple[str, ...] = ()
    mcp_servers: tuple[dict[str, Any], ...] = ()  # hosted `mcp` tool definitions (responses only)
    timeout_s: float = DEFAULT_TIMEOUT_S

    def add(self, fn: FunctionTool) -> None:
        if fn.name in self.functions:
            raise ToolError(f"two tools are named {fn.name!r}")
        self.functions[fn.name] = fn

    def schemas(self) -> list[dict[str, Any]]:
        """Function tool definitions in the flat Responses API shape."""
        return [
            {"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters}
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

    async def call(self, name: str, arguments: str, ctx: ToolContext | None = None) -> ToolResult:
        """Run one call; every failure becomes a short error text the model can act on."""
        found = self.functions.get(name)
        where = str(ctx.thread) if ctx is not None else ""
        if found is None:
            return _failure(name, where, f"there is no tool named {name!r}")
        try:
            args = json.loads(arguments or "{}")
            if not isinstance(args, dict):
                raise ValueError("arguments must be a JSON object")
        except ValueError as exc:
            return _failure(name, where, f"the arguments are not a JSON object ({exc})")
        try:
            async with asyncio.timeout(self.timeout_s):
                value = await found.invoke(args, ctx)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
            )
            return _failure(name, where, f"invalid arguments: {problems}")
        except TimeoutError:
            return _failure(name, where, f"the tool did not answer within {self.timeout_s:g} seconds")
        except Exception as exc:
            return _failure(name, where, f"the tool failed: {type(exc).__name__}: {exc}")
        return ToolResult(_capped(_as_text(value)))

    def with_hosted(self, **hosted: Any) -> ToolSet:
        """A copy with hosted-tool settings changed (same function tools)."""
        copy = ToolSet(
            dict(self.functions),
            file_search=self.file_search,
            code_interpreter=self.code_interpreter,
            web_search=self.web_search,
            web_search_domains=self.web_search_domains,
            mcp_servers=self.mcp_servers,
            timeout_s=self.timeout_s,
        )
        for key, value in hosted.items():
            setattr(copy, key, value)
        return copy


def _failure(name: str, where: str, reason: str) -> ToolResult:
    log.warning("tool %s: %s", name, reason, extra={"thread_key": where} if where else None)
    return ToolResult(json.dumps({"error": _capped(reason, 1_000)}), ok=False)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump_json()
    return json.dumps(value, default=str, ensure_ascii=False)


def _capped(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    if len(text) <= limit:
        return text
    note = f"… [cut: {len(text) - limit} more characters]"
    return text[: limit - len(note)] + note


# --------------------------------------------------------------------------- loading plugins


def tools_in(module: object) -> list[FunctionTool]:
    """The `@tool` functions a module defines, in definition order."""
    found = [getattr(v, _MARK) for v in vars(module).values() if callable(v) and hasattr(v, _MARK)]
    return [t for t in found if isinstance(t, FunctionTool)]


def load_tools(modules: Iterable[str], *, entry_point_group: str = ENTRY_POINT_GROUP) -> ToolSet:
    """Every `@tool` of the named modules and of installed plugins (entry points)."""
    tools = ToolSet()
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ToolError(f"cannot import tool module {name!r}: {exc}") from None
        for found in tools_in(module):
            tools.add(found)
    for point in entry_points(group=entry_point_group):
        try:
            loaded = point.load()
        except Exception as exc:
            raise ToolError(f"cannot load tool plugin {point.name!r}: {exc}") from None
        marked = getattr(loaded, _MARK, None)
        for found in [marked] if isinstance(marked, FunctionTool) else tools_in(loaded):
            tools.add(found)
    if tools.functions:
        log.info("function tools: %s", ", ".join(sorted(tools.functions)))
    return tools
