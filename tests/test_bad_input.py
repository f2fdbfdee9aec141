"""Bad input gets a logged, counted skip, never a crashed crawl: one crawl of a broken site."""

from __future__ import annotations

import collections
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from scrapy.http import HtmlResponse
from warcio.archiveiterator import ArchiveIterator

from crawler.constants import EXIT_FAILED
from crawler.crawl.spider import page_text
from crawler.mirror.server import MirrorRequest, MirrorServer, Route
from tests.crawl_helper import BAD_HOST, CrawlResult, run_crawl

H = f"https://{BAD_HOST}"
ARABIC_TITLE = "مبادرة جديدة للسلام"
ARABIC_TEXT = "أعلن وزير الخارجية اليوم عن مبادرة جديدة للسلام في المنطقة."
# The articles the sitemap lists: one per case, /news/<name>/.
ARTICLES = (
    "good",
    "malformed",
    "garbage",
    "arabic-utf8-label",
    "arabic-latin1-label",
    "arabic-no-charset",
    "truncated-gzip",
    "truncated-gzip-header",
    "loop-a",
    "missing",
    "broken",
    "empty",
)


def page(title: str, paragraphs: list[str], head: str = "") -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<!DOCTYPE html><html><head>{head}<title>{title}</title></head>"
        f"<body><h1>{title}</h1><div class='story'>{body}</div></body></html>"
    )


def arabic_page(charset_meta: bool) -> str:
    head = '<meta http-equiv="Content-Type" content="text/html; charset=windows-1256">'
    return page(ARABIC_TITLE, [ARABIC_TEXT, ARABIC_TEXT], head if charset_meta else "")


def long_page() -> bytes:
    # Words in random order: gzip cannot shrink it below the truncation point.
    rng = random.Random(5)
    words = ["diplomacy", "summit", "minister", "talks", "region", "peace", "trade", "aid"]
    paragraphs = [" ".join(rng.choice(words) for _ in range(60)) + "." for _ in range(40)]
    return page("A long report", paragraphs).encode()


def add_routes(mirror: MirrorServer) -> None:
    def route(url: str, body: str | bytes = b"", **kwargs: Any) -> None:
        data = body.encode() if isinstance(body, str) else body
        mirror.add_route(Route(url=H + url, body=data, **kwargs))

    html = "text/html; charset=utf-8"
    sitemap = "".join(f"<url><loc>{H}/news/{name}/</loc></url>" for name in ARTICLES)
    route("/robots.txt", "User-agent: *\nAllow: /\n", content_type="text/plain")
    route(
        "/sitemap.xml",
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{sitemap}</urlset>',
        content_type="application/xml",
    )
    route("/broken-sitemap.xml", "Sitemap? {not: xml} at all", content_type="application/xml")
    route("/feed/", "<<<not a feed>>> \x01 & garbage", content_type="application/rss+xml")
    route("/news/good/", page("Good news", ["A perfectly fine paragraph."]), content_type=html)
    route(
        "/news/malformed/",
        "<html><head><title>Broken</title><body><h1>Malformed page</h1>"
        "<div class='story'><p>First paragraph with <b>unclosed bold<p>Second <i>one &&& <<>>"
        "</span></td></div><table><tr><td>stray cell <p>Third paragraph survives",
        content_type=html,
    )
    route("/news/garbage/", bytes(range(256)) * 20, content_type="text/html")
    cp1256 = arabic_page(charset_meta=True).encode("cp1256")
    route("/news/arabic-utf8-label/", cp1256, content_type=html)
    route("/news/arabic-latin1-label/", cp1256, content_type="text/html; charset=iso-8859-1")
    route("/news/arabic-no-charset/", arabic_page(charset_meta=False), content_type="text/html")
    for name, cut in (("truncated-gzip", 1000), ("truncated-gzip-header", 5)):
        route(
            f"/news/{name}/",
            long_page(),
            content_type=html,
            encoding="gzip",
            force=True,
            truncate=cut,
        )
    route("/news/loop-a/", redirect=f"{H}/news/loop-b/")
    route("/news/loop-b/", redirect=f"{H}/news/loop-a/")
    route("/news/broken/", status=500)
    route("/news/empty/", b"", content_type=html)
    # /news/missing/ has no route: the mirror's 404 page.


@dataclass
class BadCrawl:
    result: CrawlResult
    store: Path
    requests: list[MirrorRequest]

    @property
    def stats(self) -> dict[str, Any]:
        return self.result.stats

    @property
    def report(self) -> dict[str, Any]:
        return self.result.report

    def text(self, name: str) -> str:
        [path] = self.store.glob(f"text/badinput/*/*/*/{name}.txt")
        return path.read_text(encoding="utf-8")

    def sidecar(self, name: str) -> dict[str, Any]:
        [path] = self.store.glob(f"text/badinput/*/*/*/{name}.json")
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def warc_files(self) -> list[Path]:
        return sorted(self.store.glob("warc/badinput/*/*/*/*.warc.gz"))

    def responses(self) -> list[Any]:
        out = []
        for path in self.warc_files():
            with path.open("rb") as stream:
                for record in ArchiveIterator(stream):
                    # A retry that got the same bytes again is a revisit of the first capture.
                    if record.rec_type in ("response", "revisit"):
                        # raw_stream: the payload as stored (content_stream would gunzip it).
                        record.payload = record.raw_stream.read()
                        out.append(record)
        return out


@pytest.fixture(scope="module")
def bad_crawl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BadCrawl]:
    work = tmp_path_factory.mktemp("bad-input")
    store = work / "store"
    with MirrorServer(sites=[]) as mirror:
        add_routes(mirror)
        result = run_crawl(
            "BadInputSpider",
            work / "result.json",
            settings={"ARCHIVE_STORE_URI": str(store), "ARCHIVE_PROXY": mirror.proxy_url},
        )
        yield BadCrawl(result, store, mirror.requests)


def test_the_crawl_finishes_without_a_spider_exception(bad_crawl: BadCrawl) -> None:
    assert bad_crawl.report["finish_reason"] == "finished", bad_crawl.result.stderr[-3000:]
    # Finished, but 7 of the 12 articles failed: a site in that state is reported broken.
    assert bad_crawl.result.exit_code == EXIT_FAILED
    assert bad_crawl.report["health"]["problems"] == [
        "7 of 12 requested articles failed (fetch decoding: 1, fetch http-404: 1, "
        "fetch http-500: 1, fetch redirect-loop: 1, parse truncated: 1, "
        "text empty-body: 1, text empty-document: 1)"
    ]
    assert "spider_exceptions/count" not in bad_crawl.stats
    assert bad_crawl.report["errors"]["spider_exceptions"] == 0
    assert bad_crawl.report["warc"]["errors"] == 0
    assert "Traceback" not in bad_crawl.result.stderr


def test_every_bad_input_is_counted(bad_crawl: BadCrawl) -> None:
    skipped = dict(bad_crawl.report["skipped"])
    download_errors = {k: v for k, v in skipped.items() if k.startswith("download-error/")}
    # A gzip body cut inside its header cannot be decoded at all (EOFError on CPython 3.11).
    [(key, count)] = download_errors.items()
    assert count == 1
    assert key.split("/")[1] in ("EOFError", "BadGzipFile", "OSError")
    for key in download_errors:
        del skipped[key]
    assert skipped == {
        "bad-feed": 1,  # /feed/ is not XML
        "bad-sitemap": 1,  # /broken-sitemap.xml is not XML
        "http-status": 2,  # the 404 and the 500 (after its retries)
        "redirect-loop": 1,  # loop-a -> loop-b -> loop-a
        "truncated": 1,  # the gzip body cut after 1000 bytes: archived, but no article text
    }
    articles = bad_crawl.report["articles"]
    assert articles["failed_by_reason"] == {"empty-document": 1, "empty-body": 1}
    failures = {f["url"]: (f["stage"], f["cause"]) for f in bad_crawl.report["failures"]["urls"]}
    assert failures == {
        f"{H}/feed/": ("discovery", "parse"),
        f"{H}/broken-sitemap.xml": ("discovery", "parse"),
        f"{H}/news/missing/": ("fetch", "http-404"),
        f"{H}/news/broken/": ("fetch", "http-500"),
        f"{H}/news/loop-a/": ("fetch", "redirect-loop"),
        f"{H}/news/truncated-gzip-header/": ("fetch", "decoding"),
        f"{H}/news/truncated-gzip/": ("parse", "truncated"),
        f"{H}/news/empty/": ("text", "empty-document"),
        f"{H}/news/garbage/": ("text", "empty-body"),
    }
    attempts = {f["url"]: f["attempts"] for f in bad_crawl.report["failures"]["urls"]}
    assert attempts[f"{H}/news/broken/"] == 3  # the first try and two retries
    assert bad_crawl.report["health"]["sources_failed"] == {"parse": 2}
    # good, malformed and the three Arabic pages.
    assert articles["new"] == 5
    stats = bad_crawl.stats
    assert stats["retry/max_reached"] == 1
    assert stats["downloader/response_status_count/404"] == 1
    assert stats["downloader/response_status_count/500"] == 3
    assert stats["dupefilter/filtered"] == 1


def test_every_skip_is_logged(bad_crawl: BadCrawl) -> None:
    log = bad_crawl.result.stderr
    assert f"Skipped feed {H}/feed/" in log
    assert f"Skipped sitemap {H}/broken-sitemap.xml" in log
    assert f"Skipped {H}/news/missing/ (http-status, HTTP 404)" in log
    assert f"Skipped {H}/news/broken/ (http-status, HTTP 500)" in log
    assert f"Skipped {H}/news/truncated-gzip/ (truncated, HTTP 200)" in log
    assert f"Skipped {H}/news/truncated-gzip-header/ (download-error/" in log
    assert (
        f"Skipped {H}/news/loop-a/ (redirect-loop): "
        f"{H}/news/loop-a/ -> {H}/news/loop-b/ -> {H}/news/loop-a/"
    ) in log


def test_every_response_is_in_the_warc(bad_crawl: BadCrawl) -> None:
    answered = collections.Counter(r.url for r in bad_crawl.requests if r.method == "GET")
    records = bad_crawl.responses()
    archived = collections.Counter(r.rec_headers.get_header("WARC-Target-URI") for r in records)
    assert archived == answered
    assert answered[f"{H}/news/broken/"] == 3  # the first try and two retries
    broken = [
        r.rec_type
        for r in records
        if r.rec_headers.get_header("WARC-Target-URI") == f"{H}/news/broken/"
    ]
    assert broken == ["response", "revisit", "revisit"]  # the same 500 page three times
    truncated = {
        r.rec_headers.get_header("WARC-Target-URI"): r
        for r in records
        if r.rec_headers.get_header("WARC-Truncated")
    }
    assert set(truncated) == {f"{H}/news/truncated-gzip/", f"{H}/news/truncated-gzip-header/"}
    for record in truncated.values():
        assert record.rec_headers.get_header("WARC-Truncated") == "disconnect"
        assert record.http_headers.get_header("Content-Encoding") == "gzip"
    # The bytes as they came: still gzip, cut where the server stopped.
    assert len(truncated[f"{H}/news/truncated-gzip/"].payload) == 1000
    assert truncated[f"{H}/news/truncated-gzip-header/"].payload[:3] == b"\x1f\x8b\x08"
    by_url = {r.rec_headers.get_header("WARC-Target-URI"): r for r in records}
    # The mislabelled page is archived byte for byte, so its text can always be redone.
    assert by_url[f"{H}/news/arabic-utf8-label/"].payload == arabic_page(True).encode("cp1256")


def test_every_warc_file_passes_warcio_check(bad_crawl: BadCrawl) -> None:
    files = bad_crawl.warc_files()
    assert [f"warc/badinput/{p.relative_to(bad_crawl.store / 'warc/badinput')}" for p in files] == (
        bad_crawl.report["warc"]["files"]
    )
    warcio = Path(sys.executable).parent / "warcio"
    for path in files:
        proc = subprocess.run(
            [str(warcio), "check", "-v", str(path)], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_malformed_html_still_gives_its_text(bad_crawl: BadCrawl) -> None:
    text = bad_crawl.text("malformed")
    assert text.startswith("Malformed page\n\n")
    for paragraph in ("First paragraph with unclosed bold", "Second one &&& <<>>"):
        assert f"\n\n{paragraph}\n" in text


def test_arabic_text_whatever_the_charset_label(bad_crawl: BadCrawl) -> None:
    """What the text of an Arabic page becomes, by the charset its server declared.

    The decision (``crawler.crawl.spider.page_text``): the HTTP charset wins over ``<meta
    charset>``, as in browsers, unless the bytes are not valid in it. windows-1256 bytes
    labelled UTF-8 are not valid UTF-8, so the label is dropped and the page's own declaration
    (windows-1256) reads them: the Arabic text. The same bytes labelled ISO-8859-1 are valid in
    that charset (every byte is), so the label is followed and the text is mojibake, exactly
    what a browser shows; the sidecar names the encoding used, on whose word, and marks the
    text as mojibake, and the WARC keeps the bytes to redo it. A page with no charset anywhere
    is detected (valid UTF-8 here).
    """
    expected = f"{ARABIC_TITLE}\n\n{ARABIC_TEXT}\n\n{ARABIC_TEXT}\n"
    assert bad_crawl.text("arabic-utf8-label") == expected
    assert bad_crawl.sidecar("arabic-utf8-label")["encoding"] == "cp1256"
    assert bad_crawl.text("arabic-no-charset") == expected
    assert bad_crawl.sidecar("arabic-no-charset")["encoding"] == "utf-8"
    mojibake = expected.encode("cp1256").decode("cp1252")
    assert bad_crawl.text("arabic-latin1-label") == mojibake
    assert bad_crawl.sidecar("arabic-latin1-label")["encoding"] == "cp1252"
    decoding = bad_crawl.sidecar("arabic-latin1-label")["decoding"]
    assert (decoding["source"], decoding["mojibake"], decoding["suspect"]) == ("header", True, True)
    assert bad_crawl.sidecar("arabic-utf8-label")["decoding"]["source"] == "meta"
    assert bad_crawl.sidecar("arabic-no-charset")["decoding"]["mojibake"] is False
    assert "\ufffd" not in "".join(
        bad_crawl.text(n) for n in ("arabic-utf8-label", "arabic-latin1-label", "arabic-no-charset")
    )


PERSIAN = "پيام چهارم گفتگو"  # پ, چ and گ sit where windows-1252 has holes
META_1256 = '<meta charset="windows-1256">'


@pytest.mark.parametrize(
    ("body", "content_type", "text", "encoding"),
    [
        # Bytes that prove the UTF-8 label wrong: the page's own declaration reads them.
        (
            f"<html><head>{META_1256}</head><body>{ARABIC_TEXT}</body></html>".encode("cp1256"),
            "text/html; charset=utf-8",
            ARABIC_TEXT,
            "cp1256",
        ),
        # No declaration in the page either: detection.
        (
            f"<html><body><p>{ARABIC_TEXT}</p><p>{ARABIC_TEXT}</p></body></html>".encode("cp1256"),
            "text/html; charset=utf-8",
            ARABIC_TEXT,
            "cp1256",
        ),
        # A Latin-1 label the bytes cannot disprove is followed, as browsers do.
        (
            f"<html><head>{META_1256}</head><body>{ARABIC_TEXT}</body></html>".encode("cp1256"),
            "text/html; charset=iso-8859-1",
            ARABIC_TEXT.encode("cp1256").decode("cp1252"),
            "cp1252",
        ),
        # ... unless they fall into one of windows-1252's five holes (Persian letters do).
        (
            f"<html><head>{META_1256}</head><body>{PERSIAN}</body></html>".encode("cp1256"),
            "text/html; charset=iso-8859-1",
            PERSIAN,
            "cp1256",
        ),
        # A page that really holds U+FFFD, correctly encoded, is left as it is.
        (
            "<html><body>broken \ufffd glyph</body></html>".encode(),
            "text/html; charset=utf-8",
            "broken \ufffd glyph",
            "utf-8",
        ),
    ],
    ids=["utf8-label-meta", "utf8-label-detect", "latin1-label", "latin1-label-holes", "real-fffd"],
)
def test_page_text_drops_a_charset_label_the_bytes_disprove(
    body: bytes, content_type: str, text: str, encoding: str
) -> None:
    response = HtmlResponse(f"{H}/news/x/", body=body, headers={"Content-Type": content_type})
    decoded, used = page_text(response)
    assert text in decoded
    assert used == encoding
