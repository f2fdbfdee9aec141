"""The generic extractor's fast paths answer as the plain patterns they stand for (issue 23).

Each fast path replaces a regular expression on the hot path; these tests hold it to the
expression's answer on words and texts meant to catch the differences (capitals, camelCase,
WordPress's taxonomy classes, the characters Unicode case folding treats specially).
"""

from __future__ import annotations

import random
import re

import pytest

from crawler.text import generic

# Unicode's special cases for ignoring case: Kelvin sign, long s, dotless i, dotted I, sharp s.
_ODD = "Kſıİßẞé"
_WORDS = [
    "body", "content", "text", "entry", "main", "article", "post", "nav", "hidden", "tag",
    "has", "with", "share", "read", "next", "Read", "Next", "side", "bar", "ad", "ads", "sr",
    "only", "category", "Newsletter", "Box", "js", "o", "section", "comments", "meta", "x",
]  # fmt: skip
_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_0123456789" + _ODD


def _reference_words(name: str) -> str:
    if "-" in name:
        name = generic._TAXONOMY_RE.sub(" ", name)
        if "has-" in name or "with-" in name:
            name = generic._HOLDS_RE.sub(" ", name)
    return generic._CAMEL_RE.sub(r"\1-\2", name).lower()


def _reference_flags(token: str) -> tuple[int, bool]:
    body = 2 if generic._BODY_RE.search(token) else 1 if generic._MAIN_RE.search(token) else 0
    hidden = generic._HIDDEN_CLASS_RE.search(token)
    return body, bool(hidden or generic._CHROME_RE.search(_reference_words(token)))


def _tokens(count: int) -> list[str]:
    rng = random.Random(23)
    out = [*sorted(generic._HIDDEN_CLASSES), "articleBody", "mainContent", "has-ads", "tag-x"]
    for _ in range(count):
        parts = [rng.choice(_WORDS + list(_CHARS)) for _ in range(rng.randint(1, 6))]
        out.append("".join(parts))
    return out


def test_a_class_word_has_the_flags_of_the_patterns() -> None:
    for token in _tokens(20_000):
        assert generic._token_flags.__wrapped__(token) == _reference_flags(token), token
        assert generic._words(token) == _reference_words(token), token


def test_a_class_string_has_the_flags_of_its_words_however_often_asked() -> None:
    rng = random.Random(22)
    tokens = _tokens(2_000)
    for _ in range(3_000):
        name = " ".join(rng.choice(tokens) for _ in range(rng.randint(1, 4)))
        flags = [_reference_flags(token) for token in name.split()]
        expected = (max(f[0] for f in flags), any(f[1] for f in flags))
        assert generic._name_flags(name) == expected == generic._name_flags(name), name


_TWINS = [
    (generic._RIGHTS_RE, generic._RIGHTS_LOWER_RE),
    (generic._CREDIT_RE, generic._CREDIT_LOWER_RE),
    (generic._INVITATION_RE, generic._INVITATION_LOWER_RE),
    (generic._DISCLOSURE_RE, generic._DISCLOSURE_LOWER_RE),
    (generic._BOILERPLATE_RE, generic._BOILERPLATE_LOWER_RE),
    (generic._CHROME_RE, generic._CHROME_ASCII_RE),
]


@pytest.mark.parametrize(("pattern", "lower"), _TWINS)
def test_a_twin_heeding_case_is_the_pattern_in_lower_case(
    pattern: re.Pattern[str], lower: re.Pattern[str]
) -> None:
    # What makes lower.search(text.lower()) the same as pattern.search(text) on ASCII text.
    assert pattern.flags == re.IGNORECASE | re.UNICODE
    assert lower.flags == re.UNICODE
    assert lower.pattern == pattern.pattern
    letters = re.sub(r"\\[A-Za-z]", "", pattern.pattern)
    assert not any(c.isupper() for c in letters)


_PHRASES = [
    "Follow us on Twitter",
    "SUBSCRIBE NOW",
    "Download the NewsApp app",
    "Copyright 2024 The Paper. All Rights Reserved.",
    "(C) 2023",
    "Photo: AP",
    "This post contains affiliate links",
    "Werbung",
    "Read more:",
    "Related Articles",
    "Share this story",
    "Mehr zum Thema",
    "Support our journalism",
    "an ordinary sentence about the council's budget, with nothing else in it.",
    "Foto: dpa",
    "SIGN UP FOR our newsletter",
    "Creative Commons CC-BY",
]


def _texts(count: int) -> list[str]:
    rng = random.Random(21)
    out = list(_PHRASES)
    for _ in range(count):
        bits = [rng.choice(_PHRASES + _WORDS) for _ in range(rng.randint(1, 4))]
        text = " ".join(bits)
        if rng.random() < 0.3:
            text = text.swapcase()
        if rng.random() < 0.2:
            position = rng.randrange(len(text) + 1)
            text = text[:position] + rng.choice(_ODD + "©:!?.") + text[position:]
        out.append(text)
    return out


def test_the_fast_searches_find_what_the_patterns_find() -> None:
    for text in _texts(5_000):
        for pattern, lower in _TWINS[:4]:
            assert generic._found(pattern, lower, text) == bool(pattern.search(text)), text
        plain = generic._BOILERPLATE_RE.match(text)
        assert generic._furniture(text, len(text)) == bool(
            plain and (len(text) < generic._BOILERPLATE_CHARS or plain[0].rstrip()[-1:] in ":：")
        ), text


def test_symbols_are_counted_as_the_pattern_counts_them() -> None:
    rng = random.Random(20)
    alphabet = [chr(c) for c in range(128)] + list(_ODD + "«»—–…€°·\u00a0\u2009")
    for _ in range(3_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        assert generic._symbols(text) == len(generic._SYMBOL_RE.findall(text)), text
