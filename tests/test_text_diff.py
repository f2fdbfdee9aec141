"""Version diffs (issue 20): exact re-assembly, tidy changes, plain and HTML renderings."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.text.diff import (
    Op,
    paragraphs,
    render_html,
    render_plain,
    summary,
    tokens,
    word_diff,
)
from tests.conftest import expected_text

IRNA = "001_89df22862bce6eb6.txt"


def old_of(ops: list[Op]) -> str:
    return "".join(op.text for op in ops if op.tag != "insert")


def new_of(ops: list[Op]) -> str:
    return "".join(op.text for op in ops if op.tag != "delete")


def assert_well_formed(ops: list[Op]) -> None:
    assert all(op.text for op in ops), "no empty piece"
    for first, second in itertools.pairwise(ops):
        assert first.tag != second.tag, "neighbours of one tag are merged"
        assert (first.tag, second.tag) != ("insert", "delete"), "a change deletes first"


# ---------------------------------------------------------------- exact re-assembly

TRICKY = [
    ("", ""),
    ("", "added"),
    ("removed", ""),
    ("same", "same"),
    ("a b c", "a b c\n"),
    ("line one\r\nline two\r\n", "line one\nline two\n"),
    ("  leading and trailing  ", "leading and trailing"),
    ("one\n\ntwo", "one two"),
    ("one two", "one\n\ntwo"),
    ("one\n\n\n\n  two", "one\n\ntwo"),
    ("\n\n\n", "\n"),
    ("tab\tseparated", "tab separated"),
    ("no-break\u00a0space and narrow\u202fone", "no-break space and narrow one"),
    ("café", "cafe\u0301"),  # composed and decomposed: different code points, shown as changed
    ("می\u200cخواهم سلام", "می\u200cخواهیم سلام"),
    ("emoji 🇮🇷 flag", "emoji 🇵🇸 flag"),
    ("“Quoted,” he said—then left…", '"Quoted," he said - then left...'),
    ("[-not a mark-] {+nor this+}", "[-still-] {+text+}"),
    ("a\u2028b\u2029c\x0cd\x0be\x1cf", "a b c d e f"),
]


@pytest.mark.parametrize(("old", "new"), TRICKY)
def test_pieces_reassemble_both_texts(old: str, new: str) -> None:
    ops = word_diff(old, new)
    assert old_of(ops) == old
    assert new_of(ops) == new
    assert_well_formed(ops)


_PIECES = st.sampled_from(
    [
        *("the", "a", "Gaza", "Iran’s", "2,000", " ", "  ", "\n", "\n\n", "\n \n\t", "\r\n"),
        *(".", ",", "“", "”", "—", "¶", "[-", "+}", "<b>", "&amp;", "\u200c", "\u0301", "\u00a0"),
        "سلام",
    ]
)
_SOUP = st.lists(_PIECES, max_size=60).map("".join)


@settings(max_examples=400, database=None, deadline=None)
@given(old=_SOUP, new=_SOUP)
def test_reassembly_property_word_soup(old: str, new: str) -> None:
    ops = word_diff(old, new)
    assert old_of(ops) == old
    assert new_of(ops) == new
    assert_well_formed(ops)
    # The renderings cope with anything.
    render_plain(ops)
    render_plain(ops, color=True, context=None)
    render_html(ops, context=0)
    summary(ops)


@settings(max_examples=300, database=None, deadline=None)
@given(old=st.text(max_size=200), new=st.text(max_size=200))
def test_reassembly_property_any_text(old: str, new: str) -> None:
    ops = word_diff(old, new)
    assert old_of(ops) == old
    assert new_of(ops) == new
    assert_well_formed(ops)


@settings(max_examples=200, database=None, deadline=None)
@given(data=st.data())
def test_reassembly_property_edits_of_a_real_text(data: st.DataObject) -> None:
    old = expected_text(IRNA).decode("utf-8")
    words = tokens(old)
    for _ in range(data.draw(st.integers(0, 8))):
        i = data.draw(st.integers(0, len(words) - 1))
        words[i : i + data.draw(st.integers(0, 3))] = data.draw(st.lists(_PIECES, max_size=4))
    new = "".join(words)
    ops = word_diff(old, new)
    assert old_of(ops) == old
    assert new_of(ops) == new
    assert_well_formed(ops)


@settings(max_examples=200, database=None, deadline=None)
@given(text=st.text(max_size=300))
def test_tokens_join_to_the_text(text: str) -> None:
    assert "".join(tokens(text)) == text


def test_tokens_keep_words_whole() -> None:
    assert tokens("Iran’s cafe\u0301 می\u200cخواهم, 2,000") == [
        "Iran",
        "’",
        "s",
        " ",
        "cafe\u0301",
        " ",
        "می\u200cخواهم",
        ",",
        " ",
        "2",
        ",",
        "000",
    ]


# ------------------------------------------------------------------------ the diff


def test_identical_texts() -> None:
    text = expected_text(IRNA).decode("utf-8")
    ops = word_diff(text, text)
    assert ops == [Op("equal", text)]
    assert summary(ops) == "no changes"
    assert render_plain(ops) == ""
    assert render_html(ops, context=1) == ""
    assert word_diff("", "") == []
    assert summary([]) == "no changes"


def test_word_changes() -> None:
    ops = word_diff("The quick brown fox jumps.", "The quick red fox leaps!")
    assert ops == [
        Op("equal", "The quick "),
        Op("delete", "brown"),
        Op("insert", "red"),
        Op("equal", " fox "),
        Op("delete", "jumps."),
        Op("insert", "leaps!"),
    ]
    assert summary(ops) == "2 words removed, 2 added in 2 places"


def test_spacing_between_two_replacements_joins_them() -> None:
    ops = word_diff("Fifth: a b c end.", "Fifth: x y z end.")
    assert ops == [
        Op("equal", "Fifth: "),
        Op("delete", "a b c"),
        Op("insert", "x y z"),
        Op("equal", " end."),
    ]
    # Not around an insertion only: the space is in both texts and stays out of the marks.
    assert word_diff("a b", "a x b y") == [
        Op("equal", "a "),
        Op("insert", "x "),
        Op("equal", "b"),
        Op("insert", " y"),
    ]


def test_a_deleted_paragraph_is_one_change() -> None:
    old = "One.\n\nTwo goes.\n\nThree."
    ops = word_diff(old, "One.\n\nThree.")
    assert [op.tag for op in ops] == ["equal", "delete", "equal"]
    assert summary(ops) == "2 words removed in 1 place"
    assert render_plain(ops, context=None) == "One.\n\n[-Two goes.-]\n\nThree.\n"
    assert summary(word_diff("One.", "One.\n\nAnd a new paragraph.")) == "4 words added in 1 place"


def test_paragraphs_joined_or_split() -> None:
    joined = word_diff("one\n\ntwo", "one two")
    assert render_plain(joined) == "one[-¶-]{+ +}two\n"
    assert summary(joined) == "punctuation or spacing changed in 1 place"
    split = word_diff("one two", "one\n\ntwo")
    assert render_plain(split) == "one[- -]{+¶+}two\n"
    assert paragraphs(split) == [
        [("equal", "one"), ("delete", " "), ("insert", "¶"), ("equal", "two")]
    ]


def test_summary_singular_and_plural() -> None:
    assert summary(word_diff("a b", "a c")) == "1 word removed, 1 added in 1 place"
    assert summary(word_diff("a b c", "a")) == "2 words removed in 1 place"
    assert summary(word_diff("a", "a b")) == "1 word added in 1 place"
    assert summary(word_diff("a, b.", "a; b!")) == "punctuation or spacing changed in 2 places"


# ---------------------------------------------------------------- a real revision


def revised_irna() -> tuple[str, str]:
    old = expected_text(IRNA).decode("utf-8")
    paragraphs_ = old.split("\n\n")
    new_paragraphs = list(paragraphs_)
    # A corrected title, a dropped paragraph, a word changed near the end, a closing line.
    new_paragraphs[0] = "Pezeshkian urges Islamic unity to support Palestinians"
    del new_paragraphs[4]
    new_paragraphs[-1] = new_paragraphs[-1].replace("massacre", "killing")
    new_paragraphs.append("The meeting was held in Tehran.\n")
    return old, "\n\n".join(new_paragraphs)


def test_a_revision_of_a_real_article() -> None:
    old, new = revised_irna()
    ops = word_diff(old, new)
    assert old_of(ops) == old
    assert new_of(ops) == new
    removed_paragraph = old.split("\n\n")[4]
    assert Op("delete", removed_paragraph + "\n\n") in ops
    assert summary(ops) == (
        f"{3 + len(removed_paragraph.split()) + 1} words removed, 7 added in 4 places"
    )


def test_plain_rendering_elides_far_paragraphs() -> None:
    old, new = revised_irna()
    plain = render_plain(word_diff(old, new))
    blocks = plain.rstrip("\n").split("\n\n")
    assert (
        blocks[0] == "Pezeshkian urges Islamic unity to support Palestinians[- and counter Israel-]"
    )
    assert blocks[2] == "…"
    assert blocks[4].startswith("[-Pezeshkian described supporting the oppressed")
    assert blocks[4].endswith("Islamic Revolution.”-]")
    assert "[-massacre-]{+killing+}" in plain
    assert blocks[-1] == "{+The meeting was held in Tehran.+}"
    assert plain.count("…") == 2
    # No context: the last paragraph before a change is elided too.
    tight = render_plain(word_diff(old, new), context=0)
    assert tight.count("\n\n…\n\n") == 2
    # Every paragraph.
    assert "…" not in render_plain(word_diff(old, new), context=None)


def test_plain_rendering_in_color() -> None:
    ops = word_diff("keep old words\n\nnext", "keep new words\n\nnext")
    assert render_plain(ops, color=True) == (
        "keep \x1b[31mold\x1b[0m\x1b[32mnew\x1b[0m words\n\nnext\n"
    )
    # Each line of a change coloured on its own (a pager resets colours at the end of a line).
    multi = render_plain(word_diff("a", "a\nline one\nline two"), color=True)
    assert multi == "a\n\x1b[32mline one\x1b[0m\n\x1b[32mline two\x1b[0m\n"


def test_html_rendering() -> None:
    ops = word_diff(
        "Intro <b>&amp; more</b>\n\nSame.\n\nSame again.\n\nFar para.\n\nEnd x",
        "Intro <i>& more</i>\n\nSame.\n\nSame again.\n\nFar para.\n\nEnd y\nnext line",
    )
    full = render_html(ops)
    assert full == (
        "<p>Intro &lt;<del>b</del><ins>i</ins>&gt;&amp;<del>amp;</del>"
        " more&lt;/<del>b</del><ins>i</ins>&gt;</p>\n"
        "<p>Same.</p>\n<p>Same again.</p>\n<p>Far para.</p>\n"
        "<p>End <del>x</del><ins>y<br>\nnext line</ins></p>\n"
    )
    elided = render_html(ops, context=0)
    assert elided.count('<p class="elided">…</p>') == 1
    assert "Same again" not in elided
    assert render_html(word_diff("One.\n\nTwo.", "One.")) == "<p>One.</p>\n<p><del>Two.</del></p>\n"
