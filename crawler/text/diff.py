"""Word-level differences between two versions of an article's text, and their renderings.

:func:`word_diff` gives operations whose pieces re-assemble both texts exactly: the equal and
deleted pieces, in order, are the old text; the equal and inserted pieces the new one.
Whitespace and paragraph breaks are pieces like words, so nothing is normalised away.

Paragraphs are aligned first (lines, with difflib), then the words of each changed run of
paragraphs: an edit stays inside its paragraph, and the word-level matcher, which needs every
token (``autojunk`` off: in a long text " " and "the" would otherwise be junk), only ever sees
the changed part. Beyond ``_EXACT_LIMIT`` pairs of lines or of tokens, difflib's heuristic
takes over: coarser, but fast.
"""

from __future__ import annotations

import difflib
import html
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

OpTag = Literal["equal", "delete", "insert"]

# Whitespace runs, words (with the combining marks and joiners inside Arabic-script and
# accented words), and any other character on its own: every character is in one token.
_TOKEN = re.compile(
    r"\s+|(?:\w|[\u0300-\u036f\u0610-\u061a\u064b-\u065f\u0670\u200c\u200d])+|[^\w\s]"
)
_WORD = re.compile(r"\w+")
# A paragraph break: a newline, at least one blank line, and the indentation after it.
_BREAK = re.compile(r"\r?\n(?:[ \t\r]*\n)+[ \t]*")
_EXACT_LIMIT: Final = 4_000_000
PILCROW: Final = "¶"
ELISION: Final = "…"
_RED, _GREEN, _RESET = "\x1b[31m", "\x1b[32m", "\x1b[0m"


@dataclass(frozen=True)
class Op:
    """One piece of a diff: text both versions have (equal), only the old (delete), or only the
    new (insert). A replacement is a delete followed by an insert."""

    tag: OpTag
    text: str


def tokens(text: str) -> list[str]:
    """The text as words, whitespace runs and single other characters; they join to it."""
    return _TOKEN.findall(text)


def word_diff(old: str, new: str) -> list[Op]:
    """The word-level diff of two texts: non-empty pieces, no two neighbours of one tag, each
    change one delete and/or one insert (delete first) between equal pieces."""
    raw: list[Op] = []
    old_lines, new_lines = old.splitlines(keepends=True), new.splitlines(keepends=True)
    exact = len(old_lines) * len(new_lines) <= _EXACT_LIMIT
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=not exact)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        before, after = "".join(old_lines[i1:i2]), "".join(new_lines[j1:j2])
        if tag == "equal":
            raw.append(Op("equal", before))
        elif tag == "replace":
            raw.extend(_words(before, after))
        else:
            raw.append(Op("delete", before) if before else Op("insert", after))
    return _tidy(raw)


def _words(old: str, new: str) -> list[Op]:
    a, b = tokens(old), tokens(new)
    exact = len(a) * len(b) <= _EXACT_LIMIT
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=not exact)
    ops: list[Op] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            ops.append(Op("equal", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            ops.append(Op("delete", "".join(a[i1:i2])))
        if j2 > j1:
            ops.append(Op("insert", "".join(b[j1:j2])))
    return ops


def _tidy(ops: Iterable[Op]) -> list[Op]:
    """One delete and one insert per change; spacing that only separates two replacements
    ("[-a-]{+x+} [-b-]{+y+}") goes into both of them ("[-a b-]{+x y+}")."""
    # Runs: ("equal", text, "") or ("change", deleted, inserted).
    runs: list[tuple[str, str, str]] = []
    for op in ops:
        if not op.text:
            continue
        kind = "equal" if op.tag == "equal" else "change"
        deleted = op.text if op.tag != "insert" else ""
        inserted = op.text if op.tag == "insert" else ""
        if runs and runs[-1][0] == kind:
            last = runs[-1]
            runs[-1] = (kind, last[1] + deleted, last[2] + inserted)
        else:
            runs.append((kind, deleted, inserted))
    merged: list[tuple[str, str, str]] = []
    for run in runs:
        if (
            run[0] == "change"
            and all(run[1:])
            and len(merged) >= 2
            and _is_spacing(merged[-1][1])
            and merged[-2][0] == "change"
            and all(merged[-2][1:])
        ):
            spacing = merged.pop()[1]
            before = merged.pop()
            run = ("change", before[1] + spacing + run[1], before[2] + spacing + run[2])
        merged.append(run)
    out: list[Op] = []
    for kind, first, second in merged:
        if kind == "equal":
            out.append(Op("equal", first))
            continue
        if first:
            out.append(Op("delete", first))
        if second:
            out.append(Op("insert", second))
    return out


def _is_spacing(text: str) -> bool:
    """Spaces (or a line break), not a paragraph break."""
    return not text.strip() and _BREAK.search(text) is None


# ------------------------------------------------------------------------------ summary


def summary(ops: Sequence[Op]) -> str:
    """ "3 words removed, 7 added in 2 places"; "no changes" when the texts are equal."""
    removed = sum(len(_WORD.findall(op.text)) for op in ops if op.tag == "delete")
    added = sum(len(_WORD.findall(op.text)) for op in ops if op.tag == "insert")
    places = len(_changes(ops))
    if places == 0:
        return "no changes"
    where = f"in {places} place{'s' if places != 1 else ''}"
    if removed == 0 and added == 0:
        return f"punctuation or spacing changed {where}"
    if added == 0:
        return f"{_words_count(removed)} removed {where}"
    if removed == 0:
        return f"{_words_count(added)} added {where}"
    return f"{_words_count(removed)} removed, {added} added {where}"


def _words_count(n: int) -> str:
    return f"{n} word{'s' if n != 1 else ''}"


def _changes(ops: Sequence[Op]) -> list[int]:
    """Where each change starts: the index of each run of pieces that are not equal."""
    return [
        i for i, op in enumerate(ops) if op.tag != "equal" and (i == 0 or ops[i - 1].tag == "equal")
    ]


# ------------------------------------------------------------------------- paragraphs

Fragment = tuple[OpTag, str]


def paragraphs(ops: Sequence[Op]) -> list[list[Fragment]]:
    """The diff as the paragraphs a reader sees, each a list of (tag, text) fragments.

    A paragraph break inside a piece starts a new paragraph (a deleted paragraph becomes a
    paragraph of one deleted fragment); a change that is nothing but a paragraph break (two
    paragraphs joined, or one split) stays in its paragraph as a deleted or inserted "¶".
    Unchanged spacing at a paragraph's edges is left out.
    """
    result: list[list[Fragment]] = [[]]
    for op in ops:
        if op.tag != "equal" and not op.text.strip() and _BREAK.search(op.text):
            result[-1].append((op.tag, PILCROW))
            continue
        for n, part in enumerate(_BREAK.split(op.text)):
            if n > 0 and result[-1]:
                result.append([])
            if part:
                result[-1].append((op.tag, part))
    return [trimmed for p in result if (trimmed := _trim(p))]


def _trim(para: list[Fragment]) -> list[Fragment]:
    """Unchanged spacing at the edges of a paragraph is not shown (the text's final newline)."""
    if para and para[0][0] == "equal":
        para[0] = ("equal", para[0][1].lstrip())
    if para and para[-1][0] == "equal":
        para[-1] = ("equal", para[-1][1].rstrip())
    return [fragment for fragment in para if fragment[1]]


def _kept(paras: Sequence[Sequence[Fragment]], context: int | None) -> list[bool]:
    """Which paragraphs to show: all, or those within ``context`` paragraphs of a change."""
    if context is None:
        return [True] * len(paras)
    changed = [i for i, p in enumerate(paras) if any(tag != "equal" for tag, _ in p)]
    return [any(abs(i - c) <= context for c in changed) for i in range(len(paras))]


def _layout(
    paras: Sequence[Sequence[Fragment]], context: int | None
) -> list[Sequence[Fragment] | None]:
    """The paragraphs to show, None for each run of elided ones."""
    shown: list[Sequence[Fragment] | None] = []
    for para, keep in zip(paras, _kept(paras, context), strict=True):
        if keep:
            shown.append(para)
        elif not shown or shown[-1] is not None:
            shown.append(None)
    return shown


# ------------------------------------------------------------------------------ plain


def render_plain(ops: Sequence[Op], color: bool = False, context: int | None = 1) -> str:
    """A readable diff: ``[-removed-]{+added+}`` (wdiff's marks), or with ``color`` red and
    green (ANSI) instead of marks.

    Paragraphs more than ``context`` paragraphs from any change are elided, each run of them
    as one "…" paragraph (``context=None``: every paragraph). Paragraphs are separated by one
    blank line. Nothing changed, nothing shown: an empty string.
    """
    if not _changes(ops) and context is not None:
        return ""
    blocks = []
    for para in _layout(paragraphs(ops), context):
        if para is None:
            blocks.append(ELISION)
        else:
            blocks.append("".join(_plain(tag, text, color) for tag, text in para))
    return "\n\n".join(blocks) + "\n"


def _plain(tag: OpTag, text: str, color: bool) -> str:
    if tag == "equal":
        return text
    if color:
        start = _RED if tag == "delete" else _GREEN
        # Each line coloured on its own: pagers (less -R) reset colours at a line's end.
        return "\n".join(f"{start}{line}{_RESET}" if line else "" for line in text.split("\n"))
    return f"[-{text}-]" if tag == "delete" else f"{{+{text}+}}"


# ------------------------------------------------------------------------------- html


def render_html(ops: Sequence[Op], context: int | None = None) -> str:
    """The diff as HTML: a ``<p>`` per paragraph, ``<del>`` and ``<ins>`` for the changes, all
    text escaped, line breaks inside a paragraph as ``<br>``. With ``context``, paragraphs
    that far from any change are elided as ``<p class="elided">…</p>``."""
    if not _changes(ops) and context is not None:
        return ""
    blocks = []
    for para in _layout(paragraphs(ops), context):
        if para is None:
            blocks.append(f'<p class="elided">{ELISION}</p>')
        else:
            blocks.append("<p>" + "".join(_html(tag, text) for tag, text in para) + "</p>")
    return "\n".join(blocks) + "\n"


def _html(tag: OpTag, text: str) -> str:
    body = html.escape(text).replace("\n", "<br>\n")
    if tag == "equal":
        return body
    element = "del" if tag == "delete" else "ins"
    return f"<{element}>{body}</{element}>"
