"""What an edit means to a turn (bot/edits.fold) and which Slack events are edits or reply deletes."""

from __future__ import annotations

import json
from pathlib import Path

from bot.assistant.base import ItemsStored
from bot.edits import fold, item_map, last_answer
from bot.inbound import Inbound, InboundKind, ThreadKey
from bot.message_items import LastAnswer
from bot.slack.changes import edited_message, reply_deleted

KEY = ThreadKey("T1", "C1", "100.000001")
REAL_WIRE = Path(__file__).resolve().parents[1] / "data" / "real-wire" / "slack"


def _msg(ts: str, text: str, kind: InboundKind = "thread_reply") -> Inbound:
    return Inbound(KEY, ts, "U1", text, kind)


def _edit(ts: str, edited: str, text: str) -> Inbound:
    return Inbound(KEY, ts, "U1", text, "edit", edited_ts=edited)


def test_an_edit_of_a_waiting_message_replaces_its_text() -> None:
    inputs, redo = fold([_msg("101.0", "teh cat"), _edit("102.0", "101.0", "the cat")], None)
    assert [(m.ts, m.text, m.kind) for m in inputs] == [("101.0", "the cat", "thread_reply")]
    assert redo is None


def test_an_edit_of_the_latest_answered_message_redoes_its_answer() -> None:
    last = LastAnswer("101.0", ("101.5",))
    inputs, redo = fold([_edit("102.0", "101.0", "one"), _edit("103.0", "101.0", "two")], last)
    assert redo == last
    assert [m.attributed_text() for m in inputs] == ["U1 edited their message to: two"]


def test_an_edit_of_an_older_message_is_a_correction() -> None:
    inputs, redo = fold([_edit("102.0", "99.0", "fixed")], LastAnswer("101.0", ("101.5",)))
    assert redo is None
    assert [m.attributed_text() for m in inputs] == ["U1 corrected an earlier message: fixed"]
    assert inputs[0].message_ts == "99.0"


def test_a_newer_message_in_the_inbox_makes_an_edit_of_the_latest_a_correction() -> None:
    inbox = [_edit("102.0", "101.0", "fixed"), _msg("103.0", "and another thing")]
    inputs, redo = fold(inbox, LastAnswer("101.0", ("101.5",)))
    assert redo is None
    assert [m.kind for m in inputs] == ["correction", "thread_reply"]


def test_the_answer_is_mapped_under_every_message_it_posted() -> None:
    stored = [ItemsStored("101.0", ("msg_u",)), ItemsStored("", ("msg_a",))]
    assert item_map(stored, ["101.5", "101.6"]) == {
        "101.0": ["msg_u"],
        "101.5": ["msg_a"],
        "101.6": ["msg_a"],
    }
    inputs = [_msg("101.0", "q"), _msg("100.9", "p", "mention")]
    assert last_answer(inputs, ["101.5"]) == LastAnswer("101.0", ("101.5",))
    assert last_answer([Inbound(KEY, "1.0", "U1", "", "approval")], ["101.5"]) is None


def test_the_real_message_changed_payload_is_an_edit_of_its_message() -> None:
    body = json.loads((REAL_WIRE / "message_changed_channel.json").read_text())
    event = body["event"]
    found = edited_message(event, body["team_id"], "U01N9R657HB")
    assert found is not None
    key, as_event = found
    assert key == ThreadKey("T01ND2P8N91", "C01N9PM1D53", "1613632675.006300")
    assert as_event["ts"] == "1613632704.006400" and as_event["edited_ts"] == "1613632675.006300"
    assert as_event["text"] == "this is an edited message"


def test_changes_that_are_not_a_persons_new_words_are_not_edits() -> None:
    base = {
        "channel": "C1",
        "ts": "5.0",
        "message": {"user": "U1", "ts": "4.0", "text": "same"},
        "previous_message": {"user": "U1", "ts": "4.0", "text": "same"},
    }
    assert edited_message(base, "T1", "UBOT") is None  # an unfurl or a reply count
    own = {**base, "message": {"user": "UBOT", "ts": "4.0", "text": "streamed more"}}
    assert edited_message(own, "T1", "UBOT") is None
    other = {**base, "message": {"user": "U2", "bot_id": "B2", "ts": "4.0", "text": "new"}}
    assert edited_message(other, "T1", "UBOT") is None


def test_only_a_deleted_reply_is_a_reply_delete() -> None:
    reply = {"channel": "C1", "deleted_ts": "2.0", "previous_message": {"ts": "2.0", "thread_ts": "1.0"}}
    assert reply_deleted(reply, "T1") == (ThreadKey("T1", "C1", "1.0"), "2.0")
    root = {"channel": "C1", "deleted_ts": "1.0", "previous_message": {"ts": "1.0", "thread_ts": "1.0"}}
    assert reply_deleted(root, "T1") is None
    alone = {"channel": "C1", "deleted_ts": "3.0", "previous_message": {"ts": "3.0"}}
    assert reply_deleted(alone, "T1") is None
