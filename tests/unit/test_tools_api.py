"""The plugin API: schemas from type hints, loading modules and entry points, the MCP file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import Field

from bot.config import ConfigError
from bot.inbound import ThreadKey
from bot.mcp import McpConfigError, load_mcp_servers
from bot.tools import ToolContext, ToolError, ToolSet, function_tool, load_tools
from tests.harness import settings_from


def test_the_schema_comes_from_type_hints_and_the_docstring() -> None:
    def search(query: Annotated[str, Field(description="what to look for")], limit: int = 5) -> str:
        """Search the handbook."""
        return query

    made = function_tool(search)
    assert made.description == "Search the handbook."
    assert made.parameters["properties"]["query"]["description"] == "what to look for"
    assert made.parameters["properties"]["limit"]["default"] == 5
    assert made.parameters["required"] == ["query"]


def test_a_decorated_function_stays_callable_and_keeps_the_name_it_is_given() -> None:
    from tests.plugins.misbehaving import add, make_loud

    assert add(2, 3) == 5 and make_loud("a") == "A" * 10_000
    shout = load_tools(["tests.plugins.misbehaving"]).functions["shout"]
    assert shout.fn is make_loud and shout.description.startswith("Repeat the text")


def test_modules_are_loaded_and_a_missing_module_is_a_config_error() -> None:
    tools = load_tools(["examples.tools", "tests.plugins.misbehaving"])
    assert {"current_time", "thread_participants", "add", "shout"} <= set(tools.functions)
    with pytest.raises(ToolError, match="no_such_module"):
        load_tools(["no_such_module"])
    with pytest.raises(ToolError, match="two tools"):
        load_tools(["examples.tools", "examples.tools"])


def test_installed_plugins_register_through_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "tb_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tb-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[threadbridge.tools]\nclock = examples.tools:current_time\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert list(load_tools([]).functions) == ["current_time"]


async def test_calls_validate_arguments_and_pass_the_context() -> None:
    tools = load_tools(["tests.plugins.misbehaving"])
    key = ThreadKey("T", "C1", "1.0")

    class Reader:
        async def messages(self) -> list:  # type: ignore[type-arg]
            return []

        async def user_name(self, user_id: str) -> str:
            return user_id

    ctx = ToolContext(key, "U1", "Uma", "C1", Reader())
    assert (await tools.call("add", '{"a": 1, "b": 2}')).output == "3"
    bad = await tools.call("add", "[1, 2]")
    assert not bad.ok and "JSON object" in json.loads(bad.output)["error"]
    unknown = await tools.call("nope", "{}")
    assert not unknown.ok and "no tool named" in unknown.output
    who = json.loads((await tools.call("whoami", "{}", ctx)).output)
    assert who == {"user": "U1", "name": "Uma", "channel": "C1", "thread": "1.0"}


def test_the_mcp_file_becomes_hosted_tool_definitions(tmp_path: Path) -> None:
    path = tmp_path / "mcp.yml"
    path.write_text(
        "- label: gh\n  url: https://x.example/mcp\n  require_approval: {get: never, put: always}\n"
        "  headers: {Authorization: 'Bearer ${TOKEN}', X-Team: ops}\n"
    )
    [server] = load_mcp_servers(path, {"TOKEN": "s3cret"})
    assert server == {
        "type": "mcp",
        "server_label": "gh",
        "server_url": "https://x.example/mcp",
        "require_approval": {"never": {"tool_names": ["get"]}, "always": {"tool_names": ["put"]}},
        "headers": {"Authorization": "Bearer s3cret", "X-Team": "ops"},
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("label: x", "list of servers"),
        ("- {label: 'bad label', url: 'https://x'}", "label"),
        ("- {label: a, url: 'ftp://x'}", "url"),
        ("- {label: a, url: 'https://x', require_approval: sometimes}", "require_approval"),
        ("- {label: a, url: 'https://x', headers: {A: '${MISSING}'}}", "${MISSING}"),
        ("- {label: a, url: 'https://x'}\n- {label: a, url: 'https://y'}", "unique"),
    ],
)
def test_a_wrong_mcp_file_is_refused_without_showing_secrets(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "mcp.yml"
    path.write_text(text)
    with pytest.raises(McpConfigError) as refused:
        load_mcp_servers(path, {"TOKEN": "s3cret"})
    assert problem in str(refused.value) and "s3cret" not in str(refused.value)


def test_settings_name_the_mcp_variable_in_their_error(tmp_path: Path) -> None:
    settings = settings_from(
        {
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_SIGNING_SECRET": "s",
            "THREADBRIDGE_MCP_SERVERS": str(tmp_path / "absent.yml"),
        }
    )
    with pytest.raises(ConfigError, match="THREADBRIDGE_MCP_SERVERS"):
        settings.mcp_tools()


def test_the_assistants_backend_says_it_has_no_mcp(tmp_path: Path) -> None:
    from bot.app import hosted_tool_notes, make_tools

    path = tmp_path / "mcp.yml"
    path.write_text("- {label: a, url: 'https://x'}\n")
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "THREADBRIDGE_MCP_SERVERS": str(path)}
    legacy = settings_from({**env, "THREADBRIDGE_BACKEND": "assistants", "ASSISTANT_ID": "asst_1"})
    assert any("no MCP" in note for note in hosted_tool_notes(legacy))
    assert make_tools(legacy).mcp_servers == ()
    assert len(make_tools(settings_from(env)).mcp_servers) == 1
    assert isinstance(make_tools(settings_from(env)), ToolSet)
