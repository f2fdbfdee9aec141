"""Rendering in Chromium: the browser's records, settings, president.ir rendered and replayed."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
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

from crawler.capture.browser import DOM_URI_PREFIX, page_records
from crawler.capture.records import RecordBuilder, sha1_digest
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


# ------------------------------------------------------------------ records (no browser)


def test_the_browsers_own_records_are_the_dom_the_full_page_and_how_it_was_rendered() -> None:
    url = "https://news.example.test/a/1"
    capture = page_records(
        builder(),
        page_url=url,
        document_id="<urn:uuid:doc>",
        page_id="p1",
        browser="Chromium/1",
        date=WHEN,
        dom="<html><body>rendered</body></html>",
        screenshot=b"\x89PNG fake",
        fields={"failed-resources": ["https://news.example.test/x.js (HTTP 500)"]},
    )
    dom, shot, meta = read(b"".join(r.data for r in capture.records))
    # The DOM is a resource of its own URI, linked to the document's response.
    assert dom.rec_type == "resource"
    assert dom.rec_headers.get_header("WARC-Target-URI") == DOM_URI_PREFIX + url
    assert dom.rec_headers.get_header("WARC-Concurrent-To") == "<urn:uuid:doc>"
    assert dom.body == b"<html><body>rendered</body></html>"
    assert capture.dom_id == dom.rec_headers.get_header("WARC-Record-ID")
    assert capture.dom_uri == DOM_URI_PREFIX + url
    # The whole page, named as browsertrix-crawler names it (urn:view: is the viewport).
    assert shot.rec_headers.get_header("WARC-Target-URI") == "urn:fullPage:" + url
    assert shot.rec_headers.get_header("Content-Type") == "image/png"
    assert meta.rec_type == "metadata"
    assert capture.dom_id is not None
    assert b"rendered-dom: " + capture.dom_id.encode() in meta.body
    assert b"failed-resources: https://news.example.test/x.js (HTTP 500)" in meta.body


def test_the_text_of_a_rendered_page_refers_to_the_dom_it_was_extracted_from() -> None:
    from concurrent.futures import Future

    from crawler.capture.exchange import CaptureInfo, article_records

    info = CaptureInfo(
        record_id="<urn:uuid:doc>",
        target_uri="https://news.example.test/a/1",
        date="2025-06-12T08:30:00Z",
        payload_digest=None,
        future=Future(),
        rendered_dom="<urn:uuid:dom>",
        rendered_dom_uri="urn:dom:https://news.example.test/a/1",
        rendered_dom_date="2025-06-12T08:30:05Z",
    )
    conversion, _ = read(
        b"".join(r.data for r in article_records(builder(), info, b"text", {"k": "v"}))
    )
    assert conversion.rec_headers.get_header("WARC-Refers-To") == "<urn:uuid:dom>"
    assert conversion.rec_headers.get_header("WARC-Refers-To-Target-URI") == (
        "urn:dom:https://news.example.test/a/1"
    )
    assert conversion.rec_headers.get_header("WARC-Refers-To-Date") == "2025-06-12T08:30:05Z"


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
    assert config.egress_config().upstream_pins == ()


def test_the_mirror_spki_is_trusted_only_through_a_loopback_proxy() -> None:
    pin = "A" * 43 + "="
    config = RenderConfig.from_settings(
        render_settings(ARCHIVE_PROXY="http://127.0.0.1:8899", ARCHIVE_RENDER_TRUSTED_SPKI=pin)
    )
    # Chromium trusts the egress proxy's key only; the egress proxy the mirror's pin only.
    options = config.launch_options(["--ignore-certificate-errors-spki-list=EGRESS"])
    assert [a for a in options["args"] if "certificate" in a] == [
        "--ignore-certificate-errors-spki-list=EGRESS"
    ]
    assert "proxy" not in options
    egress = config.egress_config()
    assert egress.upstream == "http://127.0.0.1:8899" and egress.upstream_pins == (pin,)
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
                coding = (
                    rec.http_headers.get_header("Content-Encoding") if rec.http_headers else None
                )
                raw = rec.raw_stream.read()  # the payload as stored
                out.append(
                    {
                        "type": rec.rec_type,
                        "uri": rec.rec_headers.get_header("WARC-Target-URI"),
                        "id": rec.rec_headers.get_header("WARC-Record-ID"),
                        "concurrent": rec.rec_headers.get_header("WARC-Concurrent-To"),
                        "resource_type": rec.rec_headers.get_header("WARC-Resource-Type"),
                        "content_type": rec.rec_headers.get_header("Content-Type"),
                        "refers_to": rec.rec_headers.get_header("WARC-Refers-To"),
                        "payload_digest": rec.rec_headers.get_header("WARC-Payload-Digest"),
                        "coding": coding,
                        "raw": raw,
                        "body": gzip.decompress(raw) if coding == "gzip" else raw,
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
    [shot] = [r for r in recs if r["uri"] == "urn:fullPage:" + SAMPLE_URL]
    assert shot["body"].startswith(b"\x89PNG") and shot["content_type"] == "image/png"
    # The spider's DOM response is no exchange: no second response record of the page.
    assert sum(r["type"] == "response" and r["uri"] == SAMPLE_URL for r in recs) == 1


def test_browser_payloads_keep_their_coding_and_repeated_assets_are_revisits(
    rendered: Rendered,
) -> None:
    recs = rendered.records
    [doc] = [r for r in recs if r["type"] == "response" and r["uri"] == SAMPLE_URL]
    # As it came over the wire: gzip-coded, the digest of those bytes.
    assert doc["coding"] == "gzip" and doc["raw"][:2] == b"\x1f\x8b"
    assert doc["payload_digest"] == sha1_digest(doc["raw"])
    # The same script on every page: written once, then revisits of that one record.
    app = [
        r for r in recs if r["uri"] == f"{H}/Content/js/app.js?v=2025.5" and r["type"] != "request"
    ]
    [first] = [r for r in app if r["type"] == "response"]
    revisits = [r for r in app if r["type"] == "revisit"]
    assert len(revisits) >= 5
    assert {r["refers_to"] for r in revisits} == {first["id"]}
    assert {r["payload_digest"] for r in revisits} == {first["payload_digest"]}
    # What the browser fetched: its resource types, from the page's own requests.
    assert first["resource_type"] == "script"


def test_the_text_comes_from_the_dom_and_the_sidecar_points_at_the_document(
    rendered: Rendered,
) -> None:
    car = rendered.sidecar("158877")
    assert rendered.store.get_bytes(car["text_key"]) == expected_text(SAMPLE_002)
    by_id = {r["id"]: r for r in rendered.records}
    assert by_id[car["warc"]["record_id"]]["uri"] == SAMPLE_URL
    assert by_id[car["warc"]["record_id"]]["type"] == "response"
    assert by_id[car["warc"]["rendered_dom_record_id"]]["type"] == "resource"
    # The text's conversion record names the DOM it was extracted from, not the document.
    [text] = [r for r in rendered.records if r["uri"] == "urn:text:" + SAMPLE_URL]
    assert text["refers_to"] == car["warc"]["rendered_dom_record_id"]
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
