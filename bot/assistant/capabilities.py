"""What a (possibly OpenAI-compatible) server refused, learned once per process."""

from __future__ import annotations

import logging
from typing import Any

import openai

log = logging.getLogger(__name__)

HOSTED_TOOLS = ("code_interpreter", "file_search", "web_search", "mcp")


class Capabilities:
    """Options the server turned down; each is dropped for the rest of the process."""

    def __init__(self) -> None:
        self.truncation = True
        self.missing_tools: set[str] = set()
        self.vision_uploads = True  # files.create(purpose="vision"); else images go inline

    def learn_purpose(self, exc: openai.BadRequestError, purpose: str) -> bool:
        """True when a 400 refused an upload's purpose (one we can do without: `vision`)."""
        text = f"{getattr(exc, 'param', '') or ''} {exc.message}".lower()
        if purpose != "vision" or "purpose" not in text or not self.vision_uploads:
            return False
        self.vision_uploads = False
        log.warning("server refuses purpose='vision' uploads; sending images inline as data URLs")
        return True

    def allows(self, tool: str) -> bool:
        return tool not in self.missing_tools

    def learn(self, exc: openai.BadRequestError, params: dict[str, Any]) -> bool:
        """True when the 400 named an option we sent and can live without."""
        text = f"{getattr(exc, 'param', '') or ''} {exc.message}"
        return self._learn_text(text, params)

    def learn_from_failure(self, detail: str, params: dict[str, Any]) -> bool:
        """Same, for a `response.failed` whose error names an unsupported option."""
        lowered = detail.lower()
        if "unsupported" not in lowered and "not supported" not in lowered:
            return False
        return self._learn_text(detail, params)

    def _learn_text(self, text: str, params: dict[str, Any]) -> bool:
        lowered = text.lower()
        if "truncation" in lowered and "truncation" in params and self.truncation:
            self.truncation = False
            log.warning("server does not accept truncation='auto'; continuing without it")
            return True
        offered = {t.get("type") for t in params.get("tools", [])}
        for tool in HOSTED_TOOLS:
            if tool in lowered and tool in offered and tool not in self.missing_tools:
                self.missing_tools.add(tool)
                log.warning("server does not support the %s tool; continuing without it", tool)
                return True
        return False

    def notes(self) -> list[str]:
        """What the bot does differently on this server, though nothing is lost (for `check`)."""
        notes = ["file purposes: documents and data files upload with purpose 'assistants'"]
        if self.vision_uploads:
            notes.append("images: uploaded with purpose 'vision' and sent by file id")
        else:
            notes.append("images: server refuses purpose 'vision'; sent inline as base64 data URLs")
        return notes

    def describe_missing(self) -> list[str]:
        notes = [f"server lacks the {tool} tool" for tool in sorted(self.missing_tools)]
        if not self.truncation:
            notes.append("server rejects truncation='auto' (long threads may hit context limits)")
        return notes
