"""Rendering under faults: a page that never loads is abandoned, a killed browser comes back,
a gzip bomb among a page's scripts is cut on its way to Chromium and the crawl goes on."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.crawl.spider import NewsSpider
from crawler.mirror.server import MirrorRequest, MirrorResponse, MirrorServer, Route
from crawler.text.extract import SiteRules
from tests.conftest import CHROMIUM, require_program
from tests.crawl_helper import SIMPLE_RULES, CrawlResult, mirror_settings, run_crawl

HOST = "render.example.test"
BASE = f"https://{HOST}"
_ARTICLE = re.compile(rf"{re.escape(BASE)}/a/(\w+)/")
PLAIN = ("1", "2", "3", "4")
PAGE_TIMEOUT = 3
BOMB_SIZE = 1024 * 1024 * 1024  # inflated: 1 GiB of zeros, about 1 MB on the wire
MEMORY_BOUND = 1024 * 1024 * 1024  # every Chromium process together (PSS)


def gzip_bomb() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (16 * 1024 * 1024)
    return b"".join(packer.compress(block) for _ in range(BOMB_SIZE // len(block))) + (
        packer.flush()
    )


def chromium_memory() -> int:
    """Proportional set size of every Chromium process now running, in bytes."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if "chromium" not in os.readlink(entry / "exe"):
                continue
            rollup = (entry / "smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
    return total


class RenderFaultSpider(NewsSpider):
    """Rendered articles from one sitemap: four fine, one that never loads, one that crashes."""

    name = "renderfault"
    allowed_domains: ClassVar[list[str]] = [HOST]
    sitemaps: ClassVar[tuple[str, ...]] = (f"{BASE}/sitemap.xml",)
    render_pages: ClassVar[bool] = True
    rules: ClassVar[SiteRules] = SIMPLE_RULES

    def article_key(self, url: str) -> str | None:
        match = _ARTICLE.fullmatch(url)
        return match.group(1) if match else None


def shell(key: str, extra: str = "") -> bytes:
    """A page whose headline and story only exist once its script ran."""
    return (
        f"<!DOCTYPE html><html><head><title>{key}</title></head><body>"
        f'<div id="app"></div>{extra}<script>'
        f"document.getElementById('app').innerHTML = '<h1>Article {key}</h1>"
        f'<div class="story"><p>The story of article {key}, written by a script.</p></div>\';'
        "</script></body></html>"
    ).encode()


def browser_pids() -> list[int]:
    """The crawl's Chromium browser processes: those behind an egress proxy (not their child
    processes, and no other Chromium of the tests, which runs without one)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in cmdline]
        proxied = "--proxy-bypass-list=<-loopback>" in args
        if proxied and "chrom" in args[0] and not any(a.startswith("--type=") for a in args):
            pids.append(int(entry.name))
    return pids


@dataclass
class Faults:
    result: CrawlResult
    store: Path
    killed: list[int]
    peak_memory: int

    def sidecars(self) -> dict[str, dict[str, Any]]:
        out = {}
        for path in (self.store / "text" / "renderfault").rglob("*.json"):
            data = json.loads(path.read_text())
            out[data["article_id"]] = data
        return out


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    require_program(CHROMIUM, "Chromium", "apt-get install chromium")
    work: Path = tmp_path_factory.mktemp("render-faults")
    keys = [*PLAIN, "hang", "crash", "bomb"]
    sitemap = "".join(f"<url><loc>{BASE}/a/{k}/</loc></url>" for k in keys)
    killed: list[int] = []
    lock = threading.Lock()
    with MirrorServer([]) as mirror:
        mirror.add_route(
            Route(
                url=f"{BASE}/sitemap.xml",
                body=f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/'
                f'sitemap/0.9">{sitemap}</urlset>'.encode(),
                content_type="application/xml",
            )
        )
        for key in PLAIN:
            mirror.add_route(Route(url=f"{BASE}/a/{key}/", body=shell(key)))
        # A script that never arrives: the load event never fires.
        mirror.add_route(
            Route(url=f"{BASE}/a/hang/", body=shell("hang", '<script src="/hang.js"></script>'))
        )
        mirror.add_route(Route(url=f"{BASE}/hang.js", body=b"1;", delay=120.0))
        mirror.add_route(
            Route(url=f"{BASE}/a/crash/", body=shell("crash", '<img src="/crash.png">'))
        )

        def crash(req: MirrorRequest) -> MirrorResponse | None:
            # The first time the browser asks for the image, its process is killed.
            with lock:
                if not killed:
                    for pid in browser_pids():
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
            return MirrorResponse(status=404)

        mirror.add_handler(HOST, "/crash.png", crash)
        # A script that inflates to 1 GiB: the egress proxy cuts it past ARCHIVE_RENDER_MAX_BODY.
        mirror.add_route(
            Route(url=f"{BASE}/a/bomb/", body=shell("bomb", '<script src="/bomb.js"></script>'))
        )
        mirror.add_route(
            Route(
                url=f"{BASE}/bomb.js",
                body=gzip_bomb(),
                content_type="application/javascript",
                headers=(("Content-Encoding", "gzip"),),
            )
        )
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.05):
                peak[0] = max(peak[0], chromium_memory())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        result = run_crawl(
            "tests.test_render_faults:RenderFaultSpider",
            work / "result.json",
            settings={
                "ARCHIVE_STORE_URI": str(work / "store"),
                "ARCHIVE_RENDER_PAGE_TIMEOUT": str(PAGE_TIMEOUT),
                "ARCHIVE_RENDER_MAX_PAGES": "2",
                **mirror_settings(mirror),
            },
            timeout=180,
        )
        done.set()
        sampler.join()
    yield Faults(result, work / "store", killed, peak[0])


def test_a_page_that_never_loads_is_abandoned_counted_and_the_crawl_goes_on(
    faults: Faults,
) -> None:
    result = faults.result
    assert result.exit_code == 0, result.stderr[-3000:]
    assert result.stats["archive/render/timeout"] == 1
    assert result.report["skipped"]["download-error/RenderTimeoutError"] == 1
    assert "hang" not in faults.sidecars()
    assert set(PLAIN) <= set(faults.sidecars())
    # What the browser did receive of the abandoned page is archived, and says it was abandoned.
    notes = []
    for path in (faults.store / "warc").rglob("*.warc.gz"):
        with path.open("rb") as fh:
            for rec in ArchiveIterator(fh):
                uri = rec.rec_headers.get_header("WARC-Target-URI")
                if uri == f"{BASE}/a/hang/" and rec.rec_type in ("response", "metadata"):
                    notes.append((rec.rec_type, rec.content_stream().read()))
    # Once; or, when the browser was killed while the page hung (two pages render at once),
    # once more for the render that died with it. Abandoned at the timeout exactly once.
    responses = [kind for kind, _ in notes].count("response")
    assert 1 <= responses <= 1 + len(faults.killed), notes
    abandoned = b"render-result: abandoned: not loaded within 3 s"
    assert [abandoned in body for kind, body in notes if kind == "metadata"].count(True) == 1


def test_a_killed_browser_is_launched_again_and_the_pages_are_rendered(faults: Faults) -> None:
    assert faults.killed, "the browser was never killed"
    stats = faults.result.stats
    assert stats["playwright/browser_count"] == 2
    # Every page but the one that never loads is archived, the one in flight at the crash too.
    assert set(faults.sidecars()) == {*PLAIN, "crash", "bomb"}
    for key, car in faults.sidecars().items():
        assert car["title"] == f"Article {key}"
    assert stats["archive/render/pages"] == len(PLAIN) + 2


def test_a_gzip_bomb_among_the_scripts_is_cut_and_chromium_stays_small(faults: Faults) -> None:
    result = faults.result
    assert result.exit_code == 0, result.stderr[-3000:]
    assert "bomb" in faults.sidecars()  # the page itself is archived, its text extracted
    cut = []
    for path in (faults.store / "warc").rglob("*.warc.gz"):
        with path.open("rb") as fh:
            for rec in ArchiveIterator(fh):
                uri = rec.rec_headers.get_header("WARC-Target-URI")
                if uri == f"{BASE}/bomb.js" and rec.rec_type == "response":
                    cut.append(rec.rec_headers.get_header("WARC-Truncated"))
    # Cut at the size cap, and marked so. When the browser is killed while the script is in
    # flight, that capture is cut by the disconnect and says so; the page is rendered anew and
    # the script cut at the cap again. Never a whole bomb, never an unmarked record.
    assert "length" in cut, cut
    assert set(cut) <= {"length", "disconnect"}, cut
    assert cut.count("disconnect") <= len(faults.killed), cut
    if "disconnect" in cut:  # named for what it was: the browser left, not the site
        assert f"{BASE}/bomb.js failed: response cut: the browser went away" in result.stderr
    assert result.stats["archive/egress/truncated"] >= 1
    print(f"Chromium's peak memory (PSS) during the crawl: {faults.peak_memory / 2**20:.0f} MiB")
    assert 0 < faults.peak_memory < MEMORY_BOUND


def test_failed_subresources_are_logged_and_counted_per_page(faults: Faults) -> None:
    stats = faults.result.stats
    # crash.png answered 404; the bomb script was cut (a broken response to the browser).
    assert stats["archive/render/failed_resources"] >= 2
    logged = faults.result.stderr
    assert f"{BASE}/a/crash/: 1 subresources failed: {BASE}/crash.png (HTTP 404)" in logged
    assert f"{BASE}/a/bomb/:" in logged and f"{BASE}/bomb.js" in logged
