"""manifest.yml is valid for Slack and matches the code; the README documents every setting."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from bot.config import Settings
from bot.slack.listeners import REQUIRED_SCOPES, SUBSCRIBED_EVENTS
from bot.slack.shortcuts import ASK_SHORTCUT, ASK_SHORTCUT_NAME

ROOT = Path(__file__).resolve().parents[2]


def _manifest() -> dict:
    return yaml.safe_load((ROOT / "manifest.yml").read_text())


def test_manifest_is_valid_for_slacks_schema() -> None:
    schema = json.loads((ROOT / "tests/data/slack-manifest.schema.json").read_text())
    jsonschema.Draft7Validator(schema).validate(_manifest())


def test_manifest_uses_agent_view_and_socket_mode() -> None:
    manifest = _manifest()
    assert "agent_view" in manifest["features"]
    assert "assistant_view" not in manifest["features"]
    assert manifest["settings"]["socket_mode_enabled"] is True


def test_manifest_events_match_the_listeners() -> None:
    assert sorted(_manifest()["settings"]["event_subscriptions"]["bot_events"]) == sorted(SUBSCRIBED_EVENTS)


def test_manifest_scopes_match_what_the_code_calls() -> None:
    assert sorted(_manifest()["oauth_config"]["scopes"]["bot"]) == sorted(REQUIRED_SCOPES)


def test_manifest_declares_the_message_shortcut_the_listeners_handle() -> None:
    manifest = _manifest()
    [shortcut] = manifest["features"]["shortcuts"]
    assert shortcut["type"] == "message"
    assert shortcut["callback_id"] == ASK_SHORTCUT and shortcut["name"] == ASK_SHORTCUT_NAME
    # Slack delivers shortcuts only to apps with interactivity on.
    assert manifest["settings"]["interactivity"]["is_enabled"] is True


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    for field in Settings.model_fields.values():
        assert f"`{field.alias}`" in readme, field.alias
