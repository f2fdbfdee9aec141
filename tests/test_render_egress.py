"""Chromium behind the egress proxy: every connection it makes is vetted and archived.

A real Chromium (Debian's), launched with the crawl's own options, loads pages from a loopback
site whose document, stylesheet, XHR, image and preconnect redirect or point to names a stub
resolver maps to 169.254.169.254, 10.0.0.1 and ::1. The proxy's connect step records every
socket it opens; none may go to those addresses. A gzip bomb as a script is cut on the way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from crawler.capture.exchange import Exchange
from crawler.fetch.egress import EgressConfig, EgressProxy, browser_service, open_tcp
from crawler.fetch.netguard import NetGuard, NetGuardConfig
from crawler.fetch.render import RenderConfig
from tests.conftest import CHROMIUM, require_program
from tests.test_render import render_settings

NAMES = {
    "site.test": "127.0.0.1",
    "meta.test": "169.254.169.254",
    "ten.test": "10.0.0.1",
    "six.test": "::1",
}
FORBIDDEN = {"169.254.169.254", "10.0.0.1", "::1"}
BOMB_SIZE = 1024 * 1024 * 1024  # inflated
MAX_BODY = 8 * 1024 * 1024
MEMORY_BOUND = 1024 * 1024 * 1024  # all of Chromium's processes together (PSS)


def _bomb() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (16 * 1024 * 1024)
    parts = [packer.compress(block) for _ in range(BOMB_SIZE // len(block))]
    return b"".join(parts) + packer.flush()


PAGE = b"""<!doctype html><html><head><title>guarded</title>
<link rel="preconnect" href="https://ten.test/">
<link rel="stylesheet" href="/style.css">
<script src="/bomb.js"></script>
</head><body><h1>Still archived</h1><img src="http://ten.test/pixel.png">
<p id="out">waiting</p>
<script>
fetch("/api").then(r => r.text()).catch(e => "failed")
  .then(t => { document.getElementById("out").textContent = "done:" + t; });
</script></body></html>"""


def _answer(status: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items())]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Site:
    bomb: bytes
    paths: list[str] = field(default_factory=list)

    def respond(self, path: str) -> bytes:
        self.paths.append(path)
        if path == "/page":
            return _answer("200 OK", {"Content-Type": "text/html"}, PAGE)
        if path == "/style.css":  # the stylesheet redirects to the metadata service
            return _answer("302 Found", {"Location": "http://meta.test/latest/style.css"})
        if path == "/api":  # the XHR redirects to an IPv6 loopback name
            return _answer("302 Found", {"Location": "http://six.test:6379/"})
        if path == "/doc":  # the document itself redirects to the metadata service
            return _answer("302 Found", {"Location": "http://meta.test/latest/meta-data/"})
        if path == "/bomb.js":
            return _answer(
                "200 OK",
                {"Content-Type": "application/javascript", "Content-Encoding": "gzip"},
                self.bomb,
            )
        return _answer("404 Not Found", {"Content-Type": "text/plain"}, b"no")

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                path = line.split(b" ")[1].decode()
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass
                writer.write(self.respond(path))
                await writer.drain()
        except (ConnectionError, IndexError):
            pass
        finally:
            writer.close()


def chromium_memory() -> int:
    """Proportional set size of every Chromium process now running, in bytes (shared pages
    counted once over all of them, as RSS would not)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            exe = os.readlink(entry / "exe")
            rollup = (entry / "smaps_rollup").read_text()
        except OSError:
            continue
        if "chromium" not in exe:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
    return total


@dataclass
class Outcome:
    sockets: list[tuple[str, int]]
    exchanges: list[Exchange]
    stats: dict[str, int]
    proxy: EgressProxy
    site: Site
    page_text: str
    doc_status: int | None
    peak_rss: int


@pytest.fixture(scope="module")
def outcome() -> Iterator[Outcome]:
    require_program(CHROMIUM, "Chromium", "apt-get install chromium")
    from playwright.async_api import async_playwright

    site = Site(_bomb())
    sockets: list[tuple[str, int]] = []
    exchanges: list[Exchange] = []
    stats: dict[str, int] = {}

    class Stats:
        def inc_value(self, key: str, count: int = 1, start: int = 0) -> None:
            stats[key] = stats.get(key, start) + count

    async def resolve(host: str) -> list[str]:
        if host not in NAMES:
            raise OSError(f"{host}: no such name here")
        return [NAMES[host]]

    async def connect(host: str, port: int) -> Any:
        sockets.append((host, port))  # the proxy's connect step: every socket it opens
        return await open_tcp(host, port)

    def capture(exchange: Exchange) -> object:
        exchanges.append(exchange)
        return exchange

    async def run() -> Outcome:
        server = await asyncio.start_server(site.serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        guard = NetGuard(
            NetGuardConfig(True, (ipaddress.ip_network("127.0.0.0/8"),), ""),
            resolve,
            Stats(),  # type: ignore[arg-type]
        )
        render = RenderConfig.from_settings(render_settings())
        config = EgressConfig(max_body=MAX_BODY, read_timeout=20)
        proxy = EgressProxy(config, guard, capture, stats=Stats(), connect=connect)
        await proxy.start()
        peak = 0
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(**render.launch_options(proxy.chromium_args()))
                context = await browser.new_context(**render.context_options())
                page = await context.new_page()
                doc = await page.goto(f"http://site.test:{port}/doc", wait_until="load")
                doc_status = doc.status if doc is not None else None
                load = asyncio.ensure_future(
                    page.goto(f"http://site.test:{port}/page", wait_until="load", timeout=60_000)
                )
                while not load.done():
                    peak = max(peak, chromium_memory())
                    await asyncio.sleep(0.05)
                await load
                await page.wait_for_function(
                    "document.getElementById('out').textContent.startsWith('done:')",
                    timeout=20_000,
                )
                text = await page.inner_text("body")
                peak = max(peak, chromium_memory())
                await browser.close()
        finally:
            await proxy.close()
            server.close()
        return Outcome(sockets, exchanges, stats, proxy, site, text, doc_status, peak)

    yield asyncio.run(run())


def test_no_socket_opens_to_a_forbidden_address_and_each_refusal_is_counted(
    outcome: Outcome,
) -> None:
    assert outcome.sockets, "the proxy opened no socket at all"
    assert not [s for s in outcome.sockets if s[0] in FORBIDDEN], outcome.sockets
    assert {host for host, _ in outcome.sockets} == {"127.0.0.1"}
    refused = {(r.host, r.address, r.kind) for r in outcome.proxy.refused}
    # The document's redirect and the stylesheet's (metadata service), the XHR's redirect
    # (IPv6 loopback), the image and the preconnect (a private address).
    assert ("meta.test", "169.254.169.254", "link-local") in refused
    assert ("six.test", "::1", "loopback") in refused
    assert ("ten.test", "10.0.0.1", "private") in refused
    urls = {r.url for r in outcome.proxy.refused}
    assert "http://meta.test/latest/meta-data/" in urls  # the document's redirect hop
    assert "http://meta.test/latest/style.css" in urls  # the stylesheet's
    assert "http://six.test:6379/" in urls  # the XHR's
    assert "http://ten.test/pixel.png" in urls  # the image
    assert len(outcome.proxy.refused) == outcome.stats["archive/netguard/refused"]
    for kind in ("link-local", "loopback", "private"):
        assert outcome.stats[f"archive/netguard/refused/{kind}"] >= 1


def test_the_page_is_still_archived_with_every_redirect_as_received(outcome: Outcome) -> None:
    assert outcome.doc_status == 403  # the browser got the proxy's refusal, not the metadata
    assert "Still archived" in outcome.page_text and "done:" in outcome.page_text
    by_path = {e.url.split("/", 3)[3]: e for e in outcome.exchanges}
    assert by_path["page"].status == 200 and b"Still archived" in by_path["page"].body
    for path, location in (
        ("doc", b"http://meta.test/latest/meta-data/"),
        ("style.css", b"http://meta.test/latest/style.css"),
        ("api", b"http://six.test:6379/"),
    ):
        assert by_path[path].status == 302
        assert (b"Location", location) in list(by_path[path].response_headers)
    # The XHR's request as Chromium sent it, its own headers included.
    sent = {k.lower(): v for k, v in by_path["api"].request_headers}
    assert b"accept-encoding" in sent and b"user-agent" in sent


def test_a_gzip_bomb_is_cut_marked_truncated_and_chromium_stays_small(outcome: Outcome) -> None:
    [bomb] = [e for e in outcome.exchanges if e.url.endswith("/bomb.js")]
    assert bomb.truncated == "length"
    assert (b"Content-Encoding", b"gzip") in list(bomb.response_headers)
    assert len(bomb.body) < len(outcome.site.bomb)
    assert outcome.stats["archive/egress/truncated"] == 1
    print(f"Chromium's peak memory (PSS) while the bomb came: {outcome.peak_rss / 2**20:.0f} MiB")
    assert 0 < outcome.peak_rss < MEMORY_BOUND


def test_chromium_calls_nowhere_of_its_own(outcome: Outcome) -> None:
    """The proxy log: the pages' hosts, and Chromium's own services, each refused unsent.

    Debian's Chromium 156 asks for component updates and Google accounts with every switch
    that should stop it; the proxy answers them itself: no socket, no failure, a count."""
    own = set(outcome.proxy.hosts) - set(NAMES)
    for host in own:
        refused = [u for u in outcome.proxy.service_refused if urlsplit(u).hostname == host]
        assert refused, f"{host}: asked for and not refused as Chromium's own"
    assert all(browser_service(h) or h == "accounts.google.com" for h in own), own
    assert not [f for f in outcome.proxy.failures if urlsplit(f.url).hostname in own]
    assert outcome.stats.get("archive/egress/browser_service_refused", 0) == len(
        outcome.proxy.service_refused
    )
