"""``page_text`` (what reextract decodes a record's page with) gives, for every page, the very
text and charset of the full decoding (``decode_page``: Scrapy's inference, then mending,
NULs, doubly encoded UTF-8 and the decision's record), whether or not it takes the shortcut
for a page declared UTF-8 whose bytes are valid UTF-8.

Over the mirror's every file, ``bench/synthetic.py``'s pages, the hostile-input cases' bodies
and pages made to sit on each edge of the shortcut, each under its own Content-Type and a set
of others (none, no charset, UTF-8 spelt several ways, one-byte charsets, an unknown one).
"""

from __future__ import annotations

import codecs
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.synthetic import article_page, listing_page
from crawler.text import page
from crawler.text.page import decode_page, page_text

SITES = Path(__file__).resolve().parent.parent / "crawler" / "mirror" / "sites"
HEADERS: tuple[str | None, ...] = (
    None,
    "",
    "text/html",
    "text/html; charset=utf-8",
    "text/html; charset=UTF-8",
    'text/html; charset="utf8"',
    "text/html;charset=UTF8 ; foo=bar",
    "text/html; charset=windows-1256",
    "text/html; charset=iso-8859-1",
    "text/html; charset=utf-16",
    "text/html; charset=no-such-charset",
    "application/octet-stream",
)
ARABIC = "أعلن وزير الخارجية اليوم عن مبادرة جديدة للسلام في المنطقة."
PERSIAN = "پيام چهارم گفتگو درباره صلح، ژاله کوچک گفت: «چرا؟»"
LATIN = "Café naïve résumé, Straße, São Paulo, Łódź"


def _html(text: str, meta: str = "<meta charset='utf-8'>") -> str:
    return (
        f"<!DOCTYPE html><html><head>{meta}<title>T</title></head><body><h1>T</h1>"
        f"<div class='story'><p>{text}</p><p>And the story goes on.</p></div></body></html>"
    )


def _twice(text: str) -> str:
    """``text``'s UTF-8 read as cp1252 (its five undefined bytes as Latin-1's controls)."""
    return "".join(
        chr(b) if b in (0x81, 0x8D, 0x8F, 0x90, 0x9D) else bytes([b]).decode("cp1252")
        for b in text.encode()
    )


def edge_pages() -> Iterator[tuple[str, bytes]]:
    """Pages on each side of the shortcut's conditions."""
    for label, text in (("arabic", ARABIC), ("persian", PERSIAN), ("latin", LATIN)):
        for meta in ("<meta charset='utf-8'>", "<meta charset='windows-1256'>", ""):
            html = _html(text, meta)
            yield f"{label} utf-8 meta={meta!r}", html.encode()
            yield f"{label} utf-8 bom meta={meta!r}", codecs.BOM_UTF8 + html.encode()
            yield f"{label} nul meta={meta!r}", html.encode().replace(b"<p>", b"<p>\0", 1)
            yield f"{label} twice meta={meta!r}", _twice(html).encode()
            yield f"{label} twice thrice meta={meta!r}", _twice(_twice(html)).encode()
            yield f"{label} utf-16-le no bom", html.encode("utf-16-le")
            yield f"{label} utf-16 bom", html.encode("utf-16")
            stray = html.encode().replace(b"<p>", b"<p>\xff", 1)
            yield f"{label} one stray byte meta={meta!r}", stray
            yield f"{label} cut mid-character", html.encode()[: html.encode().index(b"</p>") - 1]
            yield f"{label} own U+FFFD meta={meta!r}", _html(text + " \ufffd", meta).encode()
        one_byte = {"arabic": "cp1256", "persian": "cp1256", "latin": "cp1252"}[label]
        yield (
            f"{label} {one_byte}",
            _html(text, f"<meta charset='{one_byte}'>").encode(one_byte, "replace"),
        )
        yield f"{label} {one_byte} meta utf-8", _html(text).encode(one_byte, "replace")
    yield "ascii", _html("plain words").encode()
    yield "ascii no meta", _html("plain words", "").encode()
    yield "empty", b""
    yield "meta after 4096 bytes", (" " * 5000 + _html(LATIN)).encode()
    yield (
        "meta http-equiv",
        _html(
            LATIN, "<meta http-equiv='Content-Type' content='text/html; charset=utf-8'>"
        ).encode(),
    )
    yield "xml declaration", ("<?xml version='1.0' encoding='utf-8'?>" + _html(LATIN, "")).encode()
    yield "surrogate bytes", _html("x").encode().replace(b"x", b"\xed\xa0\x80")
    yield "binary", bytes(range(256)) * 8


def mirror_pages() -> Iterator[tuple[str, bytes, str | None]]:
    """Every file the mirror serves, as served (its route's type), content coding undone."""
    for routes_file in sorted(SITES.glob("*/routes.json")):
        site = routes_file.parent
        typed = {}
        for route in json.loads(routes_file.read_text())["routes"]:
            if route.get("file"):
                typed[route["file"]] = (route.get("content_type"), route.get("encoding"))
        for path in sorted(p for p in site.rglob("*") if p.is_file()):
            kind, coding = typed.get(str(path.relative_to(site)), (None, None))
            body = path.read_bytes()
            if coding == "gzip" and body[:2] == b"\x1f\x8b":
                body = gzip.decompress(body)
            yield f"mirror {path.relative_to(SITES)}", body, kind


def synthetic_pages() -> Iterator[tuple[str, bytes, str | None]]:
    for n in range(24):
        yield f"synthetic article {n}", article_page(n), "text/html; charset=UTF-8"
    yield "synthetic listing", listing_page(0, range(40)), "text/html; charset=UTF-8"


def hostile_pages() -> Iterator[tuple[str, bytes, str | None]]:
    """The bodies of the hostile-input cases (a bomb's coded bytes as they are: bytes)."""
    from tests.hostile_cases import CASES, _PortStub

    stub = _PortStub()
    for case in CASES:
        if case.build is None or "bomb" in case.name:
            continue
        try:
            response = case.build(stub)  # type: ignore[arg-type]
        except AttributeError:  # a case that needs the running mirror
            continue
        if response is None or not isinstance(response.body, bytes):
            continue
        yield f"hostile {case.name}", response.body, response.content_type


def _same(label: str, body: bytes, content_type: str | None) -> None:
    text, decoding = decode_page(body, content_type)
    assert page_text(body, content_type) == (text, decoding.name), (label, content_type)


def test_page_text_is_the_full_decoding_on_every_page() -> None:
    shortcut = 0
    seen = 0
    for label, body, own in (*mirror_pages(), *synthetic_pages(), *hostile_pages()):
        headers = (own, *HEADERS) if len(body) < 4_000_000 else (own,)
        for content_type in headers:
            _same(label, body, content_type)
            seen += 1
            shortcut += page._declared_utf8(body, content_type) is not None
    for label, body in edge_pages():
        for content_type in HEADERS:
            _same(label, body, content_type)
            seen += 1
            shortcut += page._declared_utf8(body, content_type) is not None
    # Both paths are exercised: most pages under a UTF-8 label take the shortcut.
    assert 0 < shortcut < seen


@pytest.mark.parametrize(
    ("body", "content_type", "shortcut"),
    [
        (_html(PERSIAN).encode(), "text/html; charset=utf-8", True),
        (_html(PERSIAN).encode(), None, True),  # the <meta> says UTF-8
        (_html(PERSIAN, "").encode(), None, False),  # nothing declared: inferred
        (_html(PERSIAN).encode(), "text/html; charset=windows-1256", False),
        (codecs.BOM_UTF8 + _html(PERSIAN).encode(), "text/html; charset=utf-8", False),
        (_html(PERSIAN).encode().replace(b"<p>", b"<p>\0"), "text/html; charset=utf-8", False),
        (_html(PERSIAN).encode().replace(b"<p>", b"<p>\xff"), "text/html; charset=utf-8", False),
        (_twice(_html(PERSIAN)).encode(), "text/html; charset=utf-8", True),
    ],
)
def test_the_shortcut_is_taken_only_where_it_may_be(
    body: bytes, content_type: str | None, shortcut: bool
) -> None:
    assert (page._declared_utf8(body, content_type) is not None) is shortcut
    _same("case", body, content_type)


def test_doubly_encoded_utf8_is_repaired_on_the_shortcut() -> None:
    body = _twice(_html(ARABIC)).encode()
    text, encoding = page_text(body, "text/html; charset=utf-8")
    assert encoding == "utf-8"
    assert ARABIC in text
    assert decode_page(body, "text/html; charset=utf-8")[1].repaired > 0


def test_the_corpus_holds_what_it_names() -> None:
    assert sum(1 for _ in mirror_pages()) > 150
    assert sum(1 for _ in hostile_pages()) > 50
