"""Log records cannot be forged or flooded by text from outside."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from bot import logs

HOSTILE = "report.pdf\n2026-01-01 00:00:00,000 INFO bot.turns: forged\x00\x1b[2J\r\u2028\ud800"


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_file_name_cannot_forge_a_log_line_or_reach_the_terminal_raw(
    fmt: str, capsys: pytest.CaptureFixture[str], restore_root: None
) -> None:
    logs.configure(fmt, "INFO")
    logging.getLogger("bot.test").warning("could not use %s", HOSTILE, extra={"thread_key": "T:C\n:1"})
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    for raw in ("\x00", "\x1b", "\r", "\u2028"):
        assert raw not in err
    if fmt == "json":
        assert "forged" in json.loads(err)["message"]


def test_a_traceback_is_indented_so_no_line_of_it_passes_for_a_record(
    capsys: pytest.CaptureFixture[str], restore_root: None
) -> None:
    logs.configure("text", "INFO")
    try:
        raise ValueError("bad name\n2026-01-01 00:00:00,000 INFO bot.turns: forged")
    except ValueError:
        logging.getLogger("bot.test").exception("turn crashed")
    first, *rest = capsys.readouterr().err.rstrip("\n").split("\n")
    assert "turn crashed" in first
    assert rest and all(line.startswith("    ") for line in rest)


def test_a_huge_message_is_bounded(capsys: pytest.CaptureFixture[str], restore_root: None) -> None:
    logs.configure("text", "INFO")
    logging.getLogger("bot.test").info("body: %s", "A" * 1_000_000)
    err = capsys.readouterr().err
    assert len(err) < logs.MAX_MESSAGE_CHARS + 200
    assert "more" in err or "chars)" in err
