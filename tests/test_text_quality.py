"""The shared checks of issue 23, as functions: a payload that cannot give a whole page
(``crawler.text.page.payload_problem``), the decoding on record (``decode_page``,
``settle_decoding``) and the degenerate-text rule (``crawler.text.quality``)."""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

import brotli
import pytest
from scrapy.http import HtmlResponse

from crawler.crawl.spider import page_decoding
from crawler.text.extract import extract_article
from crawler.text.page import BAD_CODING, TRUNCATED, decode_page, payload_problem
from crawler.text.quality import DegenerateGuard, TextLimits, UsualSize, body_chars, degenerate
from tests.crawl_helper import SIMPLE_RULES

try:
    from compression import zstd  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from backports import zstd  # type: ignore[no-redef,import-not-found,unused-ignore]

ARABIC = "أعلن وزير الخارجية اليوم عن مبادرة جديدة للسلام في المنطقة."
PERSIAN = "پيام چهارم گفتگو درباره صلح"
PAGE = (
    "<html><head><title>T</title></head><body><h1>T</h1><div class='story'>"
    + "".join(f"<p>Paragraph {i} of a story that goes on for a while.</p>" for i in range(200))
    + "</div></body></html>"
).encode()


# -- payload_problem ------------------------------------------------------------------------------
def _deflate_raw(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


CODERS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstd.compress,
}


@pytest.mark.parametrize("coding", sorted(CODERS))
@pytest.mark.parametrize("give_decoded", [True, False], ids=["trailer", "strict"])
def test_a_whole_coded_payload_has_no_problem(coding: str, give_decoded: bool) -> None:
    payload = CODERS[coding](PAGE)
    decoded = PAGE if give_decoded else None
    assert payload_problem(payload, [coding], decoded=decoded) is None


@pytest.mark.parametrize("coding", sorted(CODERS))
def test_a_coded_stream_cut_short_is_truncated(coding: str) -> None:
    payload = CODERS[coding](PAGE)
    cut = payload[: len(payload) // 2]
    # What Scrapy would have kept: the start of the page.
    problem = payload_problem(cut, [coding], decoded=PAGE[:1000])
    assert problem is not None
    assert problem[0] == TRUNCATED and problem[1].startswith(f"{coding}: ")


def test_a_gzip_checksum_that_fails_is_a_bad_coding() -> None:
    payload = gzip.compress(PAGE)
    bad = payload[:-8] + b"\0\0\0\0" + payload[-4:]
    problem = payload_problem(bad, ["gzip"], decoded=PAGE)
    assert problem is not None and problem[0] == BAD_CODING
    assert "incorrect data check" in problem[1]


def test_gzip_members_trailing_bytes_and_nested_codings() -> None:
    two = gzip.compress(PAGE[:500]) + gzip.compress(PAGE[500:])
    assert payload_problem(two, ["gzip"], decoded=PAGE) is None
    frames = zstd.compress(PAGE[:500]) + zstd.compress(PAGE[500:])
    assert payload_problem(frames, ["zstd"], decoded=PAGE) is None
    assert payload_problem(frames[:-10], ["zstd"], decoded=PAGE)[0] == TRUNCATED  # type: ignore[index]
    assert payload_problem(gzip.compress(PAGE) + b"junk" * 10, ["gzip"], decoded=PAGE) is None
    nested = gzip.compress(gzip.compress(PAGE))
    assert payload_problem(nested, ["gzip, gzip"], decoded=PAGE) is None
    inner_cut = gzip.compress(gzip.compress(PAGE)[:100])
    problem = payload_problem(inner_cut, ["gzip", "gzip"], decoded=PAGE[:10])
    assert problem is not None and problem[0] == TRUNCATED
    # The second member cut: the start of the page is all there is.
    problem = payload_problem(two[:-20], ["gzip"], decoded=PAGE[:500])
    assert problem is not None and problem[0] == TRUNCATED


@pytest.mark.parametrize("coding", sorted(CODERS))
def test_a_payload_inflating_past_the_limit_is_no_page(coding: str) -> None:
    payload = CODERS[coding](b"\0" * 200_000)
    problem = payload_problem(payload, [coding], max_size=10_000)
    assert problem == (BAD_CODING, f"{coding}: inflates past 10000 bytes")


def test_raw_deflate_is_checked_too() -> None:
    raw = _deflate_raw(PAGE)
    assert payload_problem(raw, ["deflate"], decoded=PAGE) is None
    problem = payload_problem(raw[: len(raw) // 2], ["deflate"], decoded=PAGE[:100])
    assert problem is not None and problem[0] == TRUNCATED


def test_a_body_shorter_than_its_content_length_is_truncated() -> None:
    assert payload_problem(PAGE[:100], [], content_length="5000") == (
        TRUNCATED,
        "100 of the 5000 bytes its Content-Length gives",
    )
    assert payload_problem(PAGE, [], content_length=str(len(PAGE))) is None
    assert payload_problem(PAGE, [], content_length="not a number") is None


def test_no_coding_an_unknown_one_or_an_empty_payload_is_left_alone() -> None:
    assert payload_problem(PAGE, []) is None
    assert payload_problem(PAGE, ["x-unknown"]) is None
    assert payload_problem(b"", ["gzip"]) is None  # the extraction says: empty document


# -- the decoding on record -----------------------------------------------------------------------
def _html(text: str, head: str = "") -> str:
    return f"<html><head>{head}</head><body><p>{text}</p><p>{text}</p></body></html>"


META_1256 = '<meta http-equiv="Content-Type" content="text/html; charset=windows-1256">'


@pytest.mark.parametrize(
    ("body", "content_type", "name", "source", "contains"),
    [
        (_html("café").encode(), "text/html; charset=utf-8", "utf-8", "header", "café"),
        (
            b"\xef\xbb\xbf" + _html("café").encode(),
            "text/html; charset=latin-1",
            "utf-8",
            "bom",
            "café",
        ),
        (_html(ARABIC, META_1256).encode("cp1256"), "text/html", "cp1256", "meta", ARABIC),
        # windows-1256 bytes labelled UTF-8: the page's own <meta>.
        (
            _html(ARABIC, META_1256).encode("cp1256"),
            "text/html; charset=utf-8",
            "cp1256",
            "meta",
            ARABIC,
        ),
        # ... with no <meta>: detection.
        (_html(ARABIC).encode("cp1256"), "text/html; charset=utf-8", "cp1256", "detected", ARABIC),
        # UTF-8 labelled windows-1256, by the header or the <meta>: UTF-8.
        (_html(PERSIAN).encode(), "text/html; charset=windows-1256", "utf-8", "detected", PERSIAN),
        (_html(ARABIC, META_1256).encode(), "text/html", "utf-8", "detected", ARABIC),
        # UTF-16 with no BOM and no label.
        (_html(ARABIC).encode("utf-16-le"), "text/html", "utf-16-le", "detected", ARABIC),
        (_html(ARABIC).encode("utf-16-be"), "text/html", "utf-16-be", "detected", ARABIC),
    ],
)
def test_the_decoding_says_which_charset_and_why(
    body: bytes, content_type: str, name: str, source: str, contains: str
) -> None:
    text, decoding = decode_page(body, content_type)
    assert (decoding.name, decoding.source) == (name, source)
    assert contains in text
    assert not decoding.suspect and decoding.replacement_chars == 0
    # The spider reads Scrapy's response to the same text and the same decision.
    response = HtmlResponse("https://x.test/a/", body=body, headers={"Content-Type": content_type})
    assert page_decoding(response) == (text, decoding)


def test_nuls_are_dropped_and_counted() -> None:
    body = _html("before\0after, caf\u00e9").encode()
    text, decoding = decode_page(body, "text/html; charset=utf-8")
    assert "\0" not in text and "beforeafter, café" in text
    assert decoding.nul_dropped == 2
    assert "2 NUL characters dropped from the page" in decoding.warnings()


def test_a_utf8_page_with_a_stray_byte_stays_utf8() -> None:
    """It was read whole in a one-byte charset: every accented letter became mojibake."""
    body = _html(f"caf\u00e9 na\u00efve \0{ARABIC} " + "and the story goes on. " * 50).encode()
    body += b"\x80"
    for content_type in ("text/html", "text/html; charset=utf-8"):
        text, decoding = decode_page(body, content_type)
        assert "café naïve" in text and ARABIC in text
        assert (decoding.name, decoding.replacement_chars, decoding.nul_dropped) == ("utf-8", 1, 2)
        # One U+FFFD in a page of this size is under the threshold (1 per 1000 characters).
        assert not decoding.suspect


def test_replacement_characters_past_the_threshold_are_flagged() -> None:
    body = _html("caf\u00e9 " * 20).encode().replace(b"</body>", b"\xff\xfe\xfd</body>")
    text, decoding = decode_page(body, "text/html; charset=utf-8")
    assert decoding.replacement_chars == 3 and decoding.suspect
    assert any("3 replacement characters" in w for w in decoding.warnings())
    # U+FFFD the page holds itself, correctly encoded, is no decoding's doing.
    text, decoding = decode_page(_html("broken \ufffd glyph").encode(), "text/html; charset=utf-8")
    assert "\ufffd" in text and decoding.replacement_chars == 0 and not decoding.suspect


def test_a_label_the_bytes_cannot_disprove_is_followed_and_marked_as_mojibake() -> None:
    body = _html(ARABIC, META_1256).encode("cp1256")
    text, decoding = decode_page(body, "text/html; charset=iso-8859-1")
    assert text == body.decode("cp1252")  # as browsers show it
    assert (decoding.name, decoding.source, decoding.mojibake, decoding.suspect) == (
        "cp1252",
        "header",
        True,
        True,
    )
    assert decoding.header == "iso-8859-1" and decoding.meta == "cp1256"
    # French in windows-1252 reads as French: no mojibake.
    french = _html("Le ministre a déclaré que les négociations reprendront à Genève.")
    _text, decoding = decode_page(french.encode("cp1252"), "text/html; charset=windows-1252")
    assert (decoding.name, decoding.mojibake) == ("cp1252", False)


# -- degenerate texts ----------------------------------------------------------------------------
def _article(*paragraphs: str) -> object:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    page = (
        f"<html><body><h1>Headline of the piece</h1><div class='story'>{body}</div></body></html>"
    )
    return extract_article(page, "https://x.test/a/", SIMPLE_RULES)


LIMITS = TextLimits(ratio=0.05, min_chars=20, min_texts=5)


def test_a_site_with_few_texts_has_only_the_floor() -> None:
    usual = UsualSize.of([5000, 6000, 7000], LIMITS)
    assert (usual.median, usual.texts, usual.threshold(LIMITS)) == (None, 3, 20)
    tiny = _article("11 June 2025")
    assert body_chars(tiny) == 12  # the headline is not the body
    assert degenerate(tiny, usual, LIMITS) == (
        "body of 12 characters, below 20: the floor for a site with fewer than 5 texts (3)"
    )
    assert degenerate(_article("A short item of news, a sentence."), usual, LIMITS) is None


def test_a_text_far_below_the_sites_median_is_degenerate() -> None:
    usual = UsualSize.of([3000, 100, 3200, 2800, 50_000, 3100], LIMITS)
    assert usual.median == 3050  # the median: one huge page and one short one move it little
    assert usual.threshold(LIMITS) == 153
    stub = _article("Tehran, 11 June 2025 (IRNA) -- The minister said")
    assert degenerate(stub, usual, LIMITS) == (
        "body of 48 characters, below 153: 0.05 of the site's usual 3050 "
        "(median of its latest 6 texts)"
    )
    brief = _article("The envoy arrived in the capital on Tuesday for two days of talks. " * 3)
    assert degenerate(brief, usual, LIMITS) is None
    # A site of short texts: the floor still holds.
    assert UsualSize.of([100] * 10, LIMITS).threshold(LIMITS) == 20


@pytest.mark.parametrize(
    "kwargs", [{"ratio": 0}, {"ratio": 1.5}, {"min_chars": -1}, {"min_texts": 0}]
)
def test_limits_that_would_switch_the_guard_off_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TextLimits(**kwargs)  # type: ignore[arg-type]


# -- reextract asks the same -----------------------------------------------------------------------
def _response_record(payload: bytes) -> tuple[str, bytes]:
    """A WARC response record (one gzip member) with ``payload`` under Content-Encoding gzip."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    http = StatusAndHeaders(
        "200 OK",
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Encoding", "gzip"),
            ("Content-Length", str(len(payload))),
        ],
        protocol="HTTP/1.1",
    )
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True, warc_version="WARC/1.1")
    record = writer.create_warc_record(
        "https://x.test/a/", "response", payload=io.BytesIO(payload), http_headers=http
    )
    writer.write_record(record)
    record.raw_stream.close()  # warcio's temporary copy, made for the digests
    return str(record.rec_headers.get_header("WARC-Record-ID")), out.getvalue()


@pytest.mark.parametrize("cut", [False, True], ids=["whole", "cut"])
def test_reextract_makes_no_text_of_a_coding_cut_short(tmp_path: Path, cut: bool) -> None:
    from crawler.crawl.reextract_worker import Place, RecordReader, RecordTask
    from crawler.store.base import LocalStore

    coded = gzip.compress(PAGE)
    # Cut past the first paragraphs: Scrapy's reading keeps those, a text of a few lines.
    record_id, data = _response_record(coded[: len(coded) // 3] if cut else coded)
    place = Place(record_id, "response", "warc/x/x.warc.gz", 0, len(data))
    reader = RecordReader(LocalStore(tmp_path), {"x": SIMPLE_RULES}, "article")
    got = reader.one(RecordTask(record_id, "x", "https://x.test/a/", place), lambda _p: data)
    if cut:
        assert (got.reason, got.article) == ("truncated", None)
        assert got.detail.endswith("gzip: the stream ends before its last member does")
    else:
        assert got.reason is None and got.article is not None
        assert "Paragraph 199 of a story" in got.article.text


# -- the site's usual size, from the catalog ------------------------------------------------------
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_catalog_gives_the_sites_latest_body_lengths(
    request: pytest.FixtureRequest, tmp_path: Path, database: str
) -> None:
    from crawler.catalog.db import Catalog, TextRecord

    url = (
        f"sqlite:///{tmp_path / 'catalog.sqlite'}"
        if database == "sqlite"
        else request.getfixturevalue("fresh_pg")
    )
    catalog = Catalog(url)
    try:
        for n, (site, body_chars_) in enumerate(
            [("tdi", 300), ("irna", 50), ("tdi", 1000), ("tdi", 2000), ("tdi", 4000)]
        ):
            title = f"Headline {n} é"  # characters, not bytes, on either database
            catalog.record_text(
                TextRecord(
                    site=site,
                    article_key=str(n),
                    url=f"https://{site}.example/{n}",
                    capture_time="2026-12-01T10:00:00Z",
                    text_digest=f"sha256:{n}",
                    text_key=f"text/{site}/{n}.txt",
                    title=title,
                    body=title + "\n\n" + "é" * (body_chars_ - 3) + "\n",
                )
            )
        # A page-mode text: no headline at its start, nothing taken off.
        catalog.record_text(
            TextRecord(
                site="irna",
                article_key="page",
                url="https://irna.example/page",
                capture_time="2026-12-01T10:00:00Z",
                text_digest="sha256:page",
                text_key="text/irna/page.txt",
                title="Headline",
                body="x" * 79 + "\n",
            )
        )
        # The latest first, the headline (and nothing else) left out of each.
        assert catalog.text_lengths("tdi", limit=3) == [4000, 2000, 1000]
        assert catalog.text_lengths("irna") == [80, 50]
        assert catalog.text_lengths("presstv") == []
        limits = TextLimits(min_texts=3)
        assert UsualSize.of(catalog.text_lengths("tdi"), limits) == UsualSize(1500, 4)
    finally:
        catalog.close()


def test_the_guard_asks_each_sites_usual_size_once() -> None:
    asked: list[tuple[str, int]] = []

    def lengths(site: str, limit: int) -> list[int]:
        asked.append((site, limit))
        if site == "gone":
            raise LookupError("the catalog is gone")
        return [3000] * 10 if site == "tdi" else []

    guard = DegenerateGuard(LIMITS, lengths)
    stub = _article("Tehran, 11 June 2025 (IRNA) -- The minister said")
    assert guard.check("tdi", stub) is not None  # 48 characters, below 150
    assert guard.check("tdi", _article("A paragraph of news. " * 10)) is None
    assert guard.check("irna", stub) is None  # a new site: the floor only
    assert guard.check("gone", stub) is None  # no catalog to ask: the floor only
    assert guard.check("gone", _article("11 June 2025")) is not None
    assert asked == [("tdi", 200), ("irna", 200), ("gone", 200)]
    assert DegenerateGuard(LIMITS, None).usual("tdi") == UsualSize(None, 0)
