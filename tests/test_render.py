"""Rendering in Chromium: the browser's records, settings, president.ir rendered and replayed."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from scrapy.settings import Settings
from warcio.archiveiterator import ArchiveIterator

from crawler.capture.browser import DOM_URI_PREFIX, BrowserExchange, page_records
from crawler.capture.records import RecordBuilder
from crawler.fetch.render import CHROMIUM_ARGS, RenderConfig, RenderMiddleware
from crawler.mirror.routes import SITES_DIR
from crawler.mirror.server import MirrorServer
from crawler.store.base import LocalStore
from settings import defaults
from tests.conftest import CHROMIUM, expected_text, pywb_bin, require_program
from tests.crawl_helper import CrawlResult, mirror_settings, run_crawl
from tests.test_replay import fetch, free_port, offline_env

H = "https://president.ir"
SAMPLE_URL = f"{H}/en/158877"
SAMPLE_API = f"{H}/api/en/page/158877"
SAMPLE_002 = "002_93a6c316173974e2.txt"
TEXT = b"oppressed nation of Palestine is a priority"  # in the JSON, not in the shell
WHEN = datetime(2025, 6, 12, 8, 30, tzinfo=UTC)


def builder() -> RecordBuilder:
    ids = iter(range(1, 1000))
    return RecordBuilder(clock=lambda: WHEN, make_id=lambda: f"<urn:uuid:{next(ids):08d}>")


def read(data: bytes) -> list[Any]:
    """The records, each with its content read (``body``) while the iterator is on it."""
    out = []
    for rec in ArchiveIterator(io.BytesIO(data)):
        rec.body = rec.content_stream().read()
        out.append(rec)
    return out


def exchange(**overrides: Any) -> BrowserExchange:
    fields: dict[str, Any] = {
        "url": "https://news.example.test/a/1",
        "method": "GET",
        "request_headers": [(":method", "GET"), ("accept", "text/html"), ("user-agent", "UA")],
        "status": 200,
        "reason": "",
        "response_headers": [
            (":status", "200"),
            ("content-type", "text/html; charset=utf-8"),
            ("content-encoding", "gzip"),
            ("content-length", "31"),
            ("etag", '"x1"'),
        ],
        "body": b"<html><body>decoded</body></html>",
        "resource_type": "document",
        "date": WHEN,
    }
    fields.update(overrides)
    return BrowserExchange(**fields)


# ------------------------------------------------------------------ records (no browser)


def test_a_browser_response_says_what_it_is_and_holds_the_decoded_body() -> None:
    doc = exchange()
    capture = page_records(
        builder(),
        [doc],
        document=doc,
        page_url=doc.url,
        page_id="p1",
        browser="Chromium/1",
        date=WHEN,
        dom="<html><body>rendered</body></html>",
    )
    response, request, dom, meta = read(b"".join(r.data for r in capture.records))
    assert response.rec_type == "response"
    head = response.http_headers
    assert head.protocol == "HTTP/1.1" and head.get_statuscode() == "200"
    # The payload is the decoded body: no Content-Encoding, the length of what is stored, no
    # pseudo-header; the other headers as the browser reported them.
    assert head.get_header("Content-Encoding") is None
    assert head.get_header("Content-Length") == str(len(doc.body))
    assert head.get_header("etag") == '"x1"'
    assert not [k for k, _ in head.headers if k.startswith(":")]
    assert response.body == doc.body
    assert response.rec_headers.get_header("WARC-Resource-Type") == "document"
    assert response.rec_headers.get_header("WARC-Page-ID") == "p1"
    note = json.loads(response.rec_headers.get_header("WARC-JSON-Metadata"))
    assert note["capturedBy"] == "Chromium/1"
    assert note["contentEncodingRemoved"] == "gzip"
    assert "not the bytes received" in note["httpHead"]
    assert request.rec_type == "request"
    assert request.rec_headers.get_header("WARC-Concurrent-To") == capture.document_id
    assert request.http_headers.get_header("accept") == "text/html"
    assert request.http_headers.get_header(":method") is None
    # The DOM is a resource of its own URI, linked to the document's response.
    assert dom.rec_type == "resource"
    assert dom.rec_headers.get_header("WARC-Target-URI") == DOM_URI_PREFIX + doc.url
    assert dom.rec_headers.get_header("WARC-Concurrent-To") == capture.document_id
    assert dom.body == b"<html><body>rendered</body></html>"
    assert capture.dom_id == dom.rec_headers.get_header("WARC-Record-ID")
    assert meta.rec_type == "metadata"
    assert b"rendered-dom: " + capture.dom_id.encode() in meta.body


def test_the_document_comes_first_and_an_oversized_body_is_marked_truncated() -> None:
    script = exchange(
        url="https://news.example.test/app.js",
        resource_type="script",
        body=b"",
        body_missing="length",
        response_headers=[("Content-Type", "application/javascript"), ("Content-Length", "99")],
    )
    doc = exchange()
    capture = page_records(
        builder(),
        [script, doc],
        document=doc,
        page_url=doc.url,
        page_id="p1",
        browser="Chromium/1",
        date=WHEN,
        dom=None,
        screenshot=b"\x89PNG fake",
    )
    records = read(b"".join(r.data for r in capture.records))
    assert [r.rec_type for r in records] == [
        "response",
        "request",
        "response",
        "request",
        "resource",
        "metadata",
    ]
    assert records[0].rec_headers.get_header("WARC-Target-URI") == doc.url
    truncated = records[2]
    assert truncated.rec_headers.get_header("WARC-Truncated") == "length"
    assert truncated.body == b""
    assert truncated.http_headers.get_header("Content-Length") is None
    shot = records[4]
    assert shot.rec_headers.get_header("Content-Type") == "image/png"
    assert shot.rec_headers.get_header("WARC-Target-URI") == "urn:view:" + doc.url


# ------------------------------------------------------------------ settings


def render_settings(**values: object) -> Settings:
    settings = Settings(
        {k: getattr(defaults, k) for k in dir(defaults) if k.startswith("ARCHIVE_")}
    )
    settings.setdict(values)
    return settings


def test_the_defaults_are_valid_and_never_ignore_certificate_errors() -> None:
    config = RenderConfig.from_settings(render_settings())
    args = config.launch_options()["args"]
    assert not [a for a in args if "certificate" in a]
    assert config.launch_options()["executable_path"] == "/usr/bin/chromium"
    assert "proxy" not in config.launch_options()


def test_the_mirror_spki_is_trusted_only_through_a_loopback_proxy() -> None:
    pin = "A" * 43 + "="
    config = RenderConfig.from_settings(
        render_settings(ARCHIVE_PROXY="http://127.0.0.1:8899", ARCHIVE_RENDER_TRUSTED_SPKI=pin)
    )
    options = config.launch_options()
    assert f"--ignore-certificate-errors-spki-list={pin}" in options["args"]
    assert options["proxy"] == {"server": "http://127.0.0.1:8899"}
    with pytest.raises(ValueError, match="only for the loopback mirror"):
        RenderConfig.from_settings(
            render_settings(
                ARCHIVE_PROXY="http://proxy.example.net:3128", ARCHIVE_RENDER_TRUSTED_SPKI=pin
            )
        )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ARCHIVE_RENDER_PAGE_TIMEOUT", "soon", "ARCHIVE_RENDER_PAGE_TIMEOUT must be a number"),
        (
            "ARCHIVE_RENDER_PAGE_TIMEOUT",
            "0",
            "ARCHIVE_RENDER_PAGE_TIMEOUT must be more than 0, got .0.",
        ),
        (
            "ARCHIVE_RENDER_MAX_PAGES",
            "1.5",
            "ARCHIVE_RENDER_MAX_PAGES must be a whole number, got .1.5.",
        ),
        ("ARCHIVE_RENDER_BLOCK", "image,video", "unknown resource types \\['video'\\]"),
        ("ARCHIVE_RENDER_BLOCK", "document", "must not block 'document'"),
        ("ARCHIVE_RENDER_TRUSTED_SPKI", "not-a-pin", "no base64 SHA-256 SPKI hash"),
        (
            "ARCHIVE_RENDER_EXECUTABLE",
            "",
            "ARCHIVE_RENDER_EXECUTABLE must be the absolute path of the Chromium binary",
        ),
    ],
)
def test_a_bad_setting_is_a_clear_error_at_start(name: str, value: str, message: str) -> None:
    crawler = SimpleNamespace(settings=render_settings(**{name: value}))
    with pytest.raises(ValueError, match=message):
        RenderMiddleware.from_crawler(crawler)  # type: ignore[arg-type]


# ------------------------------------------------------------------ president.ir rendered


@dataclass(frozen=True)
class Rendered:
    result: CrawlResult
    store: LocalStore
    records: list[dict[str, Any]]
    warcs: list[Path]

    def sidecar(self, article_id: str) -> dict[str, Any]:
        for key in self.store.list("text/president/"):
            if key.endswith(".json"):
                data: dict[str, Any] = json.loads(self.store.get_bytes(key))
                if data["article_id"] == article_id:
                    return data
        raise AssertionError(f"no sidecar for {article_id}")


def warc_records(paths: list[Path]) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        with path.open("rb") as fh:
            for rec in ArchiveIterator(fh):
                out.append(
                    {
                        "type": rec.rec_type,
                        "uri": rec.rec_headers.get_header("WARC-Target-URI"),
                        "id": rec.rec_headers.get_header("WARC-Record-ID"),
                        "concurrent": rec.rec_headers.get_header("WARC-Concurrent-To"),
                        "resource_type": rec.rec_headers.get_header("WARC-Resource-Type"),
                        "content_type": rec.rec_headers.get_header("Content-Type"),
                        "body": rec.content_stream().read(),
                    }
                )
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    require_program(CHROMIUM, "Chromium", "apt-get install chromium")
    work: Path = tmp_path_factory.mktemp("render-president")
    with MirrorServer([SITES_DIR / "president"]) as mirror:
        result = run_crawl(
            "spiders.president:PresidentSpider",
            work / "result.json",
            settings={
                "ARCHIVE_STORE_URI": str(work / "store"),
                "ARCHIVE_RENDER_SCREENSHOT": "True",
                **mirror_settings(mirror),
            },
            timeout=120,
        )
    assert result.exit_code == 0, result.stderr[-3000:]
    warcs = sorted((work / "store" / "warc").rglob("*.warc.gz"))
    return Rendered(result, LocalStore(work / "store"), warc_records(warcs), warcs)


def test_the_warc_holds_the_document_the_json_and_the_rendered_dom(rendered: Rendered) -> None:
    recs = rendered.records
    [doc] = [r for r in recs if r["type"] == "response" and r["uri"] == SAMPLE_URL]
    # The document as served: the JavaScript shell, without the article's text.
    assert b'<div id="app"' in doc["body"]
    assert TEXT not in doc["body"]
    assert doc["resource_type"] == "document"
    [api] = [r for r in recs if r["type"] == "response" and r["uri"] == SAMPLE_API]
    assert api["resource_type"] == "fetch"
    assert TEXT in api["body"] and b'"bodyClass"' in api["body"]
    [dom] = [r for r in recs if r["uri"] == DOM_URI_PREFIX + SAMPLE_URL]
    assert dom["type"] == "resource" and dom["concurrent"] == doc["id"]
    assert TEXT in dom["body"] and b"news-detail" in dom["body"]
    [shot] = [r for r in recs if r["uri"] == "urn:view:" + SAMPLE_URL]
    assert shot["body"].startswith(b"\x89PNG") and shot["content_type"] == "image/png"
    # The spider's DOM response is no exchange: no second response record of the page.
    assert sum(r["type"] == "response" and r["uri"] == SAMPLE_URL for r in recs) == 1


def test_the_text_comes_from_the_dom_and_the_sidecar_points_at_the_document(
    rendered: Rendered,
) -> None:
    car = rendered.sidecar("158877")
    assert rendered.store.get_bytes(car["text_key"]) == expected_text(SAMPLE_002)
    by_id = {r["id"]: r for r in rendered.records}
    assert by_id[car["warc"]["record_id"]]["uri"] == SAMPLE_URL
    assert by_id[car["warc"]["record_id"]]["type"] == "response"
    assert by_id[car["warc"]["rendered_dom_record_id"]]["type"] == "resource"
    stats = rendered.result.stats
    assert stats["archive/render/pages"] == 9  # 3 listing pages, 5 articles, the gallery
    assert stats["archive/render/resources"] >= 2 * 9


def wayback_server(warcs: list[Path], root: Path) -> contextlib.AbstractContextManager[str]:
    @contextlib.contextmanager
    def serve() -> Iterator[str]:
        bindir = require_program(pywb_bin(), "pywb", "set NEWSARCHIVE_PYWB_BIN (scripts/test)")
        env = offline_env()
        for args in (["init", "coll"], ["add", "coll", *map(str, warcs)]):
            proc = subprocess.run(
                [str(bindir / "wb-manager"), *args],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with (root / "wayback.log").open("wb") as log:
            server = subprocess.Popen(
                [str(bindir / "wayback"), "--bind", "127.0.0.1", "--port", str(port)],
                cwd=root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 30
            while True:
                assert server.poll() is None, (root / "wayback.log").read_text()
                with contextlib.suppress(OSError):
                    if fetch(f"{base}/coll/cdx?url=president.ir/robots.txt", timeout=2).status:
                        break
                assert time.monotonic() < deadline, (root / "wayback.log").read_text()
                time.sleep(0.2)
            yield base
        finally:
            server.terminate()
            server.wait(timeout=10)

    return serve()


async def browser_text(url: str) -> str:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            # Only the loopback replay server: no proxy, and no other address is reachable.
            args=list(CHROMIUM_ARGS),
        )
        try:
            page = await browser.new_page()
            seen: list[str] = []
            page.on("request", lambda r: seen.append(r.url))
            await page.goto(url, wait_until="load", timeout=30_000)
            # pywb shows the archived page in an iframe under its banner.
            body = page.frame_locator("#replay_iframe").locator("div.news-body")
            await body.locator("p").first.wait_for(timeout=15_000)
            text: str = await body.inner_text()
            assert all(u.startswith(("http://127.0.0.1", "data:", "blob:")) for u in seen), seen
            return text
        finally:
            await browser.close()


@pytest.mark.slow
def test_pywb_replays_the_rendered_page_and_chromium_shows_the_text(
    rendered: Rendered, tmp_path: Path
) -> None:
    with wayback_server(rendered.warcs, tmp_path) as base:
        # The document pywb indexes for the page URL is the browser's response (not the DOM).
        cdx = fetch(f"{base}/coll/cdx?url={SAMPLE_URL}&output=json").body.decode()
        rows = [json.loads(line) for line in cdx.splitlines() if line.strip()]
        assert rows and {row["mime"] for row in rows} == {"text/html"}
        text = asyncio.run(browser_text(f"{base}/coll/{rows[0]['timestamp']}/{SAMPLE_URL}"))
    # The text the page's script inserted from the archived JSON response.
    assert TEXT.decode() in text
    sample = expected_text(SAMPLE_002).decode()
    last_paragraph = sample.strip().splitlines()[-1]
    assert last_paragraph in text
