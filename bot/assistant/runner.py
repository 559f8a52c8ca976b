"""The one tool loop both backends share: model call → tools → outputs → next model call.

A backend turns one model call into RunEvents (a `ModelRun`); this module decides what
happens between calls, how many there may be, what is kept when a call fails and what the
user is told.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from bot.assistant.base import (
    TASK_TITLES,
    BackendError,
    Completed,
    ConversationGone,
    Failed,
    RunEvent,
    TextDelta,
    ToolCall,
)
from bot.tools import ToolContext, ToolSet

log = logging.getLogger(__name__)

# A model that keeps calling tools would otherwise hold the thread's lock forever.
MAX_TOOL_ROUNDS = 8
TOO_MANY_ROUNDS = "The assistant kept calling tools without answering."
STOPPED = "The assistant service stopped streaming mid-answer."


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """The model asks the bot to run one of its function tools."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolOutput:
    call_id: str
    output: str


@dataclass(frozen=True, slots=True)
class CallsPending:
    """A model call ended waiting for the outputs of these function calls."""

    calls: tuple[FunctionCall, ...]


Step = RunEvent | CallsPending
# Told once the turn's user messages are in the server-side conversation for good, so a Turn
# resumed after this one is cut short (shutdown, crash) does not send them a second time.
OnKept = Callable[[], Awaitable[None]]


async def nothing() -> None:
    return None


class ModelRun(Protocol):
    """One backend run as the loop drives it."""

    def call(self, outputs: Sequence[ToolOutput]) -> AsyncGenerator[Step, None]:
        """One model call: the turn's input first, then the outputs of the previous call's tools.

        Ends with exactly one Completed, Failed or CallsPending (or raises BackendError).
        """
        ...

    async def keep(self) -> bool:
        """Store the user's messages when no call got them into the conversation; True if safe."""
        ...

    async def aclose(self) -> None:
        """Release what the run holds on the server (e.g. a run left waiting for outputs)."""
        ...


async def run(
    model: ModelRun, tools: ToolSet, context: ToolContext | None, on_kept: OnKept = nothing
) -> AsyncGenerator[RunEvent, None]:
    """Drive `model` to an answer, running the function calls it asks for in between."""
    delivered = False  # a model call took the user's messages into the conversation

    async def keep() -> bool:
        kept = await model.keep()
        if kept:
            await on_kept()
        return kept

    text = ""
    outputs: list[ToolOutput] = []
    try:
        for round_no in range(1, MAX_TOOL_ROUNDS + 1):
            ending: Completed | Failed | CallsPending | None = None
            async with contextlib.aclosing(model.call(outputs)) as steps:
                async for step in steps:
                    if isinstance(step, Completed | Failed | CallsPending):
                        ending = step
                        continue
                    if isinstance(step, TextDelta):
                        text += step.text
                    yield step
            if ending is None:
                ending = Failed(STOPPED)
            if isinstance(ending, Failed):
                # Kept before the failure is told, so the Turn can say whether it was.
                kept = delivered or await keep()
                delivered = True
                yield replace(ending, kept=kept)
                return
            if isinstance(ending, Completed):
                delivered = True
                yield Completed(text)
                return
            if not delivered:
                delivered = True
                # The tool rounds that follow can outlast a shutdown's grace.
                await on_kept()
            if round_no == MAX_TOOL_ROUNDS:
                break
            outputs = []
            for call in ending.calls:
                title = TASK_TITLES["function"].format(name=call.name)
                yield ToolCall(call.name, call.call_id, "in_progress", title)
                result = await tools.call(call.name, call.arguments, context)
                yield ToolCall(call.name, call.call_id, "complete" if result.ok else "error", title)
                outputs.append(ToolOutput(call.call_id, result.output))
        yield Failed(TOO_MANY_ROUNDS, retryable=False, kept=True)
    except ConversationGone:
        delivered = True  # nowhere to keep them: the caller re-opens and sends them again
        raise
    except BackendError as exc:
        if not delivered:
            exc.kept = await keep()
            delivered = True
        raise
    finally:
        try:
            if not delivered:
                await keep()
        finally:
            await model.aclose()
