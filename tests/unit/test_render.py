from bot.slack.render import MessageSplitter, footnotes, markdown_blocks, to_mrkdwn


def _messages(splitter: MessageSplitter, chunks: list[str]) -> list[str]:
    messages = [""]
    for chunk in chunks:
        for piece in splitter.feed(chunk):
            if piece.new_message:
                messages.append("")
            messages[-1] += piece.text
    return messages


def test_short_answer_stays_one_message() -> None:
    assert _messages(MessageSplitter(), ["Hello ", "world"]) == ["Hello world"]


def test_long_answer_splits_at_paragraph_breaks_under_the_hard_limit() -> None:
    text = "".join(f"Paragraph {i} " + "x" * 80 + "\n\n" for i in range(60))
    messages = _messages(
        MessageSplitter(soft=1000, hard=1500), [text[i : i + 37] for i in range(0, len(text), 37)]
    )
    assert len(messages) > 3
    assert "".join(messages) == text
    assert all(len(m) <= 1500 for m in messages)
    assert all(m.endswith("\n\n") for m in messages[:-1])


def test_split_inside_code_block_closes_and_reopens_the_fence() -> None:
    code = "```python\n" + "".join(f"print({i})\n" for i in range(400)) + "```\n"
    messages = _messages(MessageSplitter(soft=500, hard=800), [code])
    assert len(messages) >= 2
    for m in messages:
        assert m.count("```") % 2 == 0, m[:60]
    assert messages[1].startswith("```python\n")


def test_raw_assistant_markers_never_reach_slack() -> None:
    assert _messages(MessageSplitter(), ["See the policy【4:0†handbook.pdf】."]) == ["See the policy."]
    assert "【" not in to_mrkdwn("x【1:2†a.pdf】y")


def test_markers_split_across_deltas_are_still_removed() -> None:
    chunks = ["See 【4:", "0†hand", "book.pdf】 and [chart.png](sand", "box:/mnt/data/chart.png) done"]
    assert _messages(MessageSplitter(), chunks) == ["See  and [chart.png] done"]


def test_held_back_text_is_flushed_at_the_end() -> None:
    splitter = MessageSplitter()
    assert "".join(p.text for p in splitter.feed("odd 【 bracket")) == "odd "
    assert "".join(p.text for p in splitter.feed("", final=True)) == "【 bracket"


def test_footnotes_number_sources() -> None:
    assert footnotes(["handbook.pdf", "faq.md"]) == "\n\n**Sources**\n[1] handbook.pdf\n[2] faq.md"
    assert footnotes([]) == ""


def test_mrkdwn_converts_bold_links_headings_and_escapes() -> None:
    out = to_mrkdwn("# Title\n**bold** and [docs](https://example.com) a<b")
    assert out == "*Title*\n*bold* and <https://example.com|docs> a&lt;b"


def test_markdown_block_respects_the_per_message_limit() -> None:
    [block] = markdown_blocks("y" * 25_000)
    assert block["type"] == "markdown" and len(block["text"]) == 12_000
