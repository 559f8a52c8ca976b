"""classify(): which route a shared file takes, from its name and (for nameless pastes) mimetype."""

from __future__ import annotations

import pytest

from bot.attachments import FileKind, LocalFile, classify, supported_list


@pytest.mark.parametrize(
    ("name", "mimetype", "kind"),
    [
        ("report.pdf", "application/pdf", FileKind.DOCUMENT),
        ("README.md", "text/markdown", FileKind.DOCUMENT),
        ("main.py", "text/x-python", FileKind.DOCUMENT),
        ("REPORT.PDF", "", FileKind.DOCUMENT),
        ("notes", "text/plain", FileKind.DOCUMENT),
        ("chart.png", "image/png", FileKind.IMAGE),
        ("photo.JPG", "", FileKind.IMAGE),
        ("image", "image/png", FileKind.IMAGE),
        ("pasted", "image/webp", FileKind.IMAGE),
        ("table.csv", "text/csv", FileKind.DATA),
        ("budget.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", FileKind.DATA),
        ("setup.exe", "application/x-msdownload", FileKind.UNSUPPORTED),
        ("bundle.zip", "application/zip", FileKind.UNSUPPORTED),
        ("blob", "application/octet-stream", FileKind.UNSUPPORTED),
        ("blob", "", FileKind.UNSUPPORTED),
    ],
)
def test_classify(name: str, mimetype: str, kind: FileKind) -> None:
    assert classify(name, mimetype) is kind


def test_extension_wins_over_a_text_mimetype() -> None:
    # A .zip labelled text/plain is still a zip: only extension-less names fall back to the mimetype.
    assert classify("bundle.zip", "text/plain") is FileKind.UNSUPPORTED


def test_local_file_kind_follows_classify() -> None:
    assert LocalFile("a.csv", "text/csv", b"a,b\n").kind is FileKind.DATA


def test_supported_list_names_every_route_without_dots() -> None:
    listed = supported_list().split(", ")
    assert {"pdf", "md", "py", "png", "csv", "xlsx"} <= set(listed)
    assert "exe" not in listed and "zip" not in listed
    assert listed == sorted(listed)
