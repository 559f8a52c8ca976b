"""The MCP server file (THREADBRIDGE_MCP_SERVERS): remote servers offered as the hosted `mcp` tool.

- label: github
  url: https://api.githubcopilot.com/mcp/
  description: Issues and pull requests of our repositories
  allowed_tools: [search_issues, get_issue]
  require_approval: always          # or never, or per tool: {get_issue: never}
  headers:
    Authorization: Bearer ${GITHUB_TOKEN}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_LABEL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
APPROVAL_MODES = ("always", "never")


class McpConfigError(ValueError):
    """The MCP server file is unreadable or wrong; the message never contains header values."""


def load_mcp_servers(path: Path, environ: Mapping[str, str]) -> tuple[dict[str, Any], ...]:
    """The file's servers as Responses API `mcp` tool definitions."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise McpConfigError(f"cannot read the MCP server file {path}: {type(exc).__name__}") from None
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise McpConfigError(f"{path}: the top level must be a list of servers")
    servers = [_server(entry, n, environ) for n, entry in enumerate(raw, start=1)]
    labels = [s["server_label"] for s in servers]
    if len(set(labels)) != len(labels):
        raise McpConfigError(f"{path}: server labels must be unique")
    return tuple(servers)


def _server(entry: Any, n: int, environ: Mapping[str, str]) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise McpConfigError(f"MCP server #{n} must be a mapping")
    label = entry.get("label")
    url = entry.get("url")
    if not isinstance(label, str) or not _LABEL.match(label):
        raise McpConfigError(f"MCP server #{n}: `label` must be letters, digits, - or _")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise McpConfigError(f"MCP server {label}: `url` must be an http(s) URL")
    tool: dict[str, Any] = {
        "type": "mcp",
        "server_label": label,
        "server_url": url,
        "require_approval": _approval(entry.get("require_approval", "always"), label),
    }
    allowed = entry.get("allowed_tools")
    if allowed is not None:
        if not isinstance(allowed, list) or not all(isinstance(t, str) for t in allowed):
            raise McpConfigError(f"MCP server {label}: `allowed_tools` must be a list of tool names")
        tool["allowed_tools"] = allowed
    description = entry.get("description")
    if description:
        tool["server_description"] = str(description)
    headers = entry.get("headers") or {}
    if not isinstance(headers, dict):
        raise McpConfigError(f"MCP server {label}: `headers` must be a mapping")
    if headers:
        tool["headers"] = {str(k): _expand(str(v), label, str(k), environ) for k, v in headers.items()}
    return tool


def _approval(value: Any, label: str) -> str | dict[str, Any]:
    """`always`, `never`, or {tool: always|never} in the API's {always|never: {tool_names}} shape."""
    if value in APPROVAL_MODES:
        return str(value)
    if isinstance(value, dict) and all(v in APPROVAL_MODES for v in value.values()):
        shaped: dict[str, Any] = {}
        for mode in APPROVAL_MODES:
            names = [str(name) for name, chosen in value.items() if chosen == mode]
            if names:
                shaped[mode] = {"tool_names": names}
        return shaped
    raise McpConfigError(
        f"MCP server {label}: `require_approval` must be always, never, or a mapping of tool → always|never"
    )


def _expand(value: str, label: str, header: str, environ: Mapping[str, str]) -> str:
    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise McpConfigError(f"MCP server {label}: header {header} names ${{{name}}}, which is not set")
        return environ[name]

    return _ENV.sub(lookup, value)
