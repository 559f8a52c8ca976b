"""Slack pings and link markup in untrusted text are rewritten harmlessly."""

from __future__ import annotations

from bot.slack.markup import JOINER, mentioned_users, neutralize
from bot.slack.render import MessageSplitter, footnotes

HOSTILE = "<!channel> <!here|here> <!everyone> <!subteam^S0OPS|@ops> <@U0BOB> see <https://evil.example|me>"


def _no_markup(text: str) -> None:
    for raw in ("<!", "<@", "<http", "@here", "@channel", "@everyone"):
        assert raw not in text, (raw, text)


def test_special_mentions_user_mentions_and_links_are_neutralised() -> None:
    out = neutralize(HOSTILE)
    _no_markup(out)
    assert f"@{JOINER}here" in out and f"@{JOINER}ops" in out and f"@{JOINER}U0BOB" in out
    assert "me (https://evil.example)" in out


def test_bare_here_and_channel_words_are_neutralised_but_emails_are_not() -> None:
    out = neutralize("ping @here and @Channel, mail bob@everyone.example")
    _no_markup(out.replace("bob@everyone.example", ""))
    assert "bob@everyone.example" in out


def test_allowed_user_mentions_are_kept() -> None:
    assert neutralize("thanks <@U0BOB>!", frozenset({"U0BOB"})) == "thanks <@U0BOB>!"
    assert mentioned_users(["ask <@U0BOB> and <@W0CAROL|carol>"]) == {"U0BOB", "W0CAROL"}


def test_plain_angle_brackets_and_markdown_links_stay() -> None:
    text = "if a < b and b > c, see [docs](https://example.com) or <#C0GEN|general>"
    assert neutralize(text) == text


def test_markup_split_across_stream_deltas_is_still_neutralised() -> None:
    splitter = MessageSplitter()
    chunks = ["hey <", "!he", "re> and <https://evil", ".example|cl", "ick> and @ch", "annel", " done"]
    out = "".join(p.text for c in chunks for p in splitter.feed(c))
    out += "".join(p.text for p in splitter.feed("", final=True))
    _no_markup(out)
    assert out.endswith(" done")


def test_a_lone_angle_bracket_does_not_hold_back_the_stream() -> None:
    splitter = MessageSplitter()
    assert "".join(p.text for p in splitter.feed("a < b is true")) == "a < b is true"


def test_cited_file_names_are_neutralised_in_footnotes() -> None:
    _no_markup(footnotes(["<!here>.pdf"]))
