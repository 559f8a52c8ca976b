"""Pure parts of commands, shortcuts, DM context and titles."""

from __future__ import annotations

from bot.commands import command_of, next_batch
from bot.inbound import FileRef, Inbound, InboundKind, ThreadKey
from bot.slack.shortcuts import ASK_PROMPT, shortcut_external, shortcut_inbound
from bot.slack.titles import title_from
from bot.slack.viewing import Viewing, viewing_from

KEY = ThreadKey("T0TEAM", "C0GENERAL", "1.000100")


def _msg(text: str, kind: InboundKind = "mention", ts: str = "1.000200", **kw: object) -> Inbound:
    return Inbound(KEY, ts, "U0ALICE", text, kind, **kw)  # type: ignore[arg-type]


def test_a_command_is_one_word_said_to_the_bot() -> None:
    assert command_of(_msg("reset")) == "reset"
    assert command_of(_msg(" Status. ", kind="dm")) == "status"
    assert command_of(_msg("HELP!")) == "help"
    assert command_of(_msg("help me")) is None
    assert command_of(_msg("reset", kind="thread_reply")) is None, "a plain reply is for the model"
    assert command_of(_msg("reset", files=(FileRef("F1"),))) is None


def test_the_inbox_splits_into_turns_around_commands() -> None:
    a, b, cmd, c = _msg("a", ts="2"), _msg("b", ts="3"), _msg("reset", ts="4"), _msg("c", ts="5")
    assert next_batch([a, b, cmd, c]) == ([a, b], None)
    assert next_batch([cmd, c]) == ([cmd], "reset")
    assert next_batch([c]) == ([c], None)


def test_titles_are_short_plain_first_lines() -> None:
    assert title_from("  \n*Deploy* failed for <@U0BOB>\nmore") == "Deploy failed for"
    assert (
        title_from("see <https://x.example/a|the runbook> and <#C0GEN|general>")
        == "see the runbook and general"
    )
    long = title_from("word " * 40)
    assert long.endswith("…") and len(long) <= 60 and "  " not in long


def test_context_prefers_the_message_over_its_channel() -> None:
    event = {
        "context": {
            "entities": [
                {"type": "slack#/types/channel_id", "value": "C1"},
                {"type": "slack#/types/message_context", "value": {"message_ts": "5.5"}},
            ]
        }
    }
    assert viewing_from(event) == Viewing("message", channel_id="C1", message_ts="5.5")
    assert viewing_from({"context": {}}) is None
    canvas = {"context": {"entities": [{"type": "slack#/types/canvas_id", "value": "F9"}]}}
    assert viewing_from(canvas) == Viewing("canvas", item_id="F9")
    assert Viewing.from_json(Viewing("channel", channel_id="C1").to_json()) == Viewing(
        "channel", channel_id="C1"
    )


def test_shortcut_on_a_reply_addresses_its_thread() -> None:
    body = {
        "type": "message_action",
        "action_ts": "9.000001",
        "team": {"id": "T0TEAM"},
        "user": {"id": "U0ALICE", "team_id": "T0TEAM"},
        "channel": {"id": "C0GENERAL"},
        "message": {"ts": "3.000000", "thread_ts": "1.000100", "text": "hi"},
        "trigger_id": "trig",
    }
    inbound = shortcut_inbound(body)
    assert inbound is not None
    assert inbound.key == KEY and inbound.ts == "9.000001" and inbound.kind == "mention"
    assert inbound.text == ASK_PROMPT
    assert not shortcut_external(body)
    assert shortcut_external({**body, "user": {"id": "U0X", "team_id": "T0OTHER"}})
    assert shortcut_inbound({**body, "message": {}}) is None
