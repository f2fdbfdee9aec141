"""UTF-8 encoded twice (issue 23): found in the decoded page, repaired, and on record
(``crawler.text.page.settle_decoding``, ``repair_double_utf8``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from scrapy.http import HtmlResponse

from crawler.crawl.spider import page_decoding
from crawler.text.page import (
    _DOUBLE_BYTES_RE,
    DOUBLE_UTF8,
    MESS,
    _double_utf8_suspected,
    decode_page,
    repair_double_utf8,
)

ARABIC = "أعلن وزير الخارجية اليوم عن مبادرة جديدة للسلام في المنطقة."
PERSIAN = "پيام چهارم گفتگو درباره صلح، ژاله کوچک گفت: «چرا؟»"
ENGLISH = "It’s “quoted” — the minister’s reply… costs €5 ™"
LATIN = "Café naïve résumé, Straße, São Paulo, Łódź, Ñandú, Ærø"
OTHER = "中文 Привет Ελλάδα שלום हिन्दी Tiếng Việt 한국어 😀"
SITES = Path(__file__).resolve().parent.parent / "crawler" / "mirror" / "sites"


def _html(text: str) -> str:
    return (
        "<html><head><meta charset='utf-8'><title>T</title></head><body><h1>T</h1>"
        f"<div class='story'><p>{text}</p><p>And the story goes on for a while.</p></div>"
        "</body></html>"
    )


def _twice(text: str, variant: str = "cp1252") -> str:
    """``text``'s UTF-8 read as ``variant``, as a CMS that doubly encodes does (cp1252 with
    its five undefined bytes as Latin-1's C1 controls, or Latin-1 itself)."""
    data = text.encode()
    if variant == "latin-1":
        return data.decode("latin-1")
    return "".join(
        chr(b) if b in (0x81, 0x8D, 0x8F, 0x90, 0x9D) else bytes([b]).decode("cp1252") for b in data
    )


@pytest.mark.parametrize("text", [ARABIC, PERSIAN, ENGLISH, LATIN, OTHER])
@pytest.mark.parametrize("variant", ["cp1252", "latin-1"])
def test_a_page_encoded_twice_is_repaired_and_on_record(text: str, variant: str) -> None:
    page = _html(text)
    served = _twice(page, variant).encode()
    decoded, decoding = decode_page(served, "text/html; charset=utf-8")
    assert decoded == page
    assert (decoding.name, decoding.source) == ("utf-8", "header")
    assert (decoding.mojibake, decoding.mojibake_reason, decoding.suspect) == (
        True,
        DOUBLE_UTF8,
        True,
    )
    # One run put back per non-ASCII character of the page.
    assert decoding.repaired == sum(1 for c in page if not c.isascii())
    record = decoding.record()
    assert (record["mojibake_reason"], record["repaired"]) == (DOUBLE_UTF8, decoding.repaired)
    assert any("UTF-8 encoded twice" in w for w in decoding.warnings())
    # The spider reads Scrapy's response to the same text and the same decision.
    response = HtmlResponse(
        "https://x.test/a/", body=served, headers={"Content-Type": "text/html; charset=utf-8"}
    )
    assert page_decoding(response) == (decoded, decoding)


def test_three_times_is_repaired_too() -> None:
    page = _html(ARABIC + " " + ENGLISH)
    decoded, decoding = decode_page(_twice(_twice(page)).encode(), "text/html")
    assert decoded == page and decoding.mojibake_reason == DOUBLE_UTF8


def test_only_the_doubly_encoded_part_is_repaired() -> None:
    # A clean page with one paragraph (or an alt text) pasted in doubly encoded.
    page = _html(f"{LATIN} {ARABIC}</p><p>{_twice('Medellín, Jäger, ’s')} <img alt='Sprühregen'>")
    decoded, decoding = decode_page(page.encode(), "text/html; charset=utf-8")
    assert decoded == page.replace(_twice("Medellín, Jäger, ’s"), "Medellín, Jäger, ’s")
    assert decoding.repaired == 3 and decoding.mojibake_reason == DOUBLE_UTF8


@pytest.mark.parametrize(
    "text",
    [
        # Latin-1 letters next to Latin-1 signs that are valid UTF-8 once put back to bytes:
        "Stra\u00dfe mit wei\u00df\u00adem Ha\u00df\u00ad",  # ß + soft hyphen: U+07ED (NKo)
        "NESTL\u00c9\u00ae Nesquik",  # É + ®: U+026E (IPA)
        "Il a dit \u00ab\u00a0c'est r\u00e9gl\u00e9\u201d\u00a0\u00bb",  # é”+nbsp: U+9520 (CJK)
        "jusqu'\u00e0\u00a0\u00ab\u00a0demain\u00a0\u00bb",  # à + nbsp + «: U+082B (Samaritan)
        "\u00dc\u00b9 \u00c3O PAULO, K\u00d8BENHAVN \u00a9 2024, CH\u00c2TEAU",
        LATIN,
        ARABIC,
        PERSIAN,
        ENGLISH,
        OTHER,
    ],
)
def test_a_clean_page_is_left_alone(text: str) -> None:
    page = _html(text)
    decoded, decoding = decode_page(page.encode(), "text/html; charset=utf-8")
    assert decoded == page
    assert (decoding.mojibake, decoding.mojibake_reason, decoding.repaired) == (False, None, 0)
    assert not decoding.suspect and decoding.warnings() == []
    assert repair_double_utf8(text) == (text, 0)


def test_every_mirror_page_is_left_alone() -> None:
    pages = sorted(p for p in SITES.rglob("*") if p.suffix in (".html", ".xml", ".json"))
    assert len(pages) > 100
    for path in pages:
        body = path.read_bytes()
        decoded, decoding = decode_page(body, "text/html; charset=utf-8")
        assert not decoding.mojibake, path
        assert decoded == body.decode("utf-8"), path


def test_a_one_byte_page_with_a_doubly_encoded_word() -> None:
    # A windows-1252 page that pasted in a UTF-8 word: read as cp1252, the word is "fÃ¼r".
    page = "<html><body><p>Gr\u00fc\u00dfe aus K\u00f6ln, f\u00fcr alle</p></body></html>"
    body = page.encode("cp1252").replace(b"f\xfcr", "für".encode())
    decoded, decoding = decode_page(body, "text/html; charset=windows-1252")
    assert decoded == page
    assert (decoding.name, decoding.mojibake_reason, decoding.repaired) == (
        "cp1252",
        DOUBLE_UTF8,
        1,
    )


def test_a_utf16_page_encoded_twice() -> None:
    page = _html(ARABIC)
    body = b"\xff\xfe" + _twice(page).encode("utf-16-le")
    decoded, decoding = decode_page(body, "text/html")
    assert decoded == page
    assert (decoding.name, decoding.source, decoding.mojibake_reason) == (
        "utf-16-le",
        "bom",
        DOUBLE_UTF8,
    )


def test_nuls_inside_a_doubly_encoded_page() -> None:
    page = _html(ARABIC)
    served = _twice(page).encode().replace("Ø§".encode(), "Ø\0§".encode(), 1)
    decoded, decoding = decode_page(served, "text/html; charset=utf-8")
    assert decoded == page
    assert decoding.nul_dropped == 1 and decoding.mojibake_reason == DOUBLE_UTF8


def test_one_byte_mojibake_keeps_its_own_reason_and_its_text() -> None:
    """Arabic windows-1256 bytes under a Latin-1 label: followed as browsers do, flagged by the
    mess detector, not "repaired" into other scripts by the double UTF-8 check."""
    body = _html(ARABIC).replace("utf-8", "windows-1256").encode("cp1256")
    decoded, decoding = decode_page(body, "text/html; charset=iso-8859-1")
    assert decoded == body.decode("cp1252")
    assert (decoding.mojibake, decoding.mojibake_reason, decoding.repaired) == (True, MESS, 0)
    assert any("reads as mojibake" in w for w in decoding.warnings())


def test_a_run_that_is_not_valid_utf8_is_kept() -> None:
    # "Ã" then a continuation that does not make a character ("Ã" + "(" is not a run; "â€" +
    # "x" lacks its third byte; "ð" + two continuations lacks its fourth).
    text = "Ã( â€x ðŸ˜ 2×3"
    assert repair_double_utf8(text) == (text, 0)


def test_french_typography_is_not_even_scanned() -> None:
    # "é" + no-break space + "»" passes the loose byte test (a lead, a continuation) but not
    # the exact one: the page's text is never scanned.
    page = _html("Il a dit\u00a0: \u00ab\u00a0c'est r\u00e9gl\u00e9\u00a0\u00bb " * 500).encode()
    assert _DOUBLE_BYTES_RE.search(page) is not None
    assert not _double_utf8_suspected(page, page.decode(), "utf-8", 0)
    served = _twice(_html(LATIN)).encode()
    assert _double_utf8_suspected(served, served.decode(), "utf-8", 0)


def test_a_typographic_coincidence_beside_real_runs_is_left_alone() -> None:
    # The page (and the paragraph) would decode whole as UTF-8, "é”" + no-break space
    # included (U+9520): the run-by-run rules decide instead.
    real = _twice("Medellín, Jäger, Köln, Zürich")
    text = f"{real} et caf\u00e9\u201d\u00a0 suite"
    page = _html(text)
    decoded, decoding = decode_page(page.encode(), "text/html; charset=utf-8")
    assert decoded == _html("Medellín, Jäger, Köln, Zürich et caf\u00e9\u201d\u00a0 suite")
    assert decoding.repaired == 4
