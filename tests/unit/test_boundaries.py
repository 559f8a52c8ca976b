"""The house rule, read from the source: which module may reach Slack, Redis and OpenAI how."""

from __future__ import annotations

import ast
from pathlib import Path

from bot.slack.render import FEEDBACK_VALUES, feedback_block, feedback_value

BOT = Path(__file__).resolve().parents[2] / "bot"


def _tree(relative: str) -> ast.Module:
    return ast.parse((BOT / relative).read_text(), relative)


def _imports(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_turns_calls_slack_only_through_slack_functions() -> None:
    direct = [
        f"line {node.lineno}: {ast.unparse(node.func)}"
        for node in ast.walk(_tree("turns.py"))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "_slack"
    ]
    assert direct == []


def test_queue_uses_store_operations_not_its_redis_client() -> None:
    raw = [
        f"line {node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(_tree("queue.py"))
        if isinstance(node, ast.Attribute) and node.attr == "redis"
    ]
    assert raw == []


def test_slack_rooms_import_no_openai_and_assistant_rooms_no_slack() -> None:
    for path in (BOT / "slack").glob("*.py"):
        assert "openai" not in _imports(_tree(f"slack/{path.name}")), path.name
    for path in (BOT / "assistant").glob("*.py"):
        imported = _imports(_tree(f"assistant/{path.name}"))
        assert not imported & {"slack_sdk", "slack_bolt"}, path.name


def test_feedback_values_are_the_buttons_values_and_nothing_else() -> None:
    [buttons] = feedback_block()["elements"]  # type: ignore[index]
    sent = (buttons["positive_button"]["value"], buttons["negative_button"]["value"])
    assert sent == FEEDBACK_VALUES
    assert [feedback_value(v) for v in sent] == list(sent)
    assert feedback_value("excellent") is None
    assert feedback_value(None) is None
