"""The browser's egress proxy, driven by raw HTTP clients (no Chromium here: test_render_egress).

A loopback "site" answers with the hostile cases; a stub resolver maps names to addresses, so
the guard is tested by its decision: the proxy's connect step records every socket it opens.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.capture.exchange import Exchange, exchange_records
from crawler.capture.records import RecordBuilder, sha1_digest
from crawler.fetch.egress import EgressConfig, EgressProxy, open_tcp
from crawler.fetch.netguard import NetGuard, NetGuardConfig
from crawler.fetch.tls import CertificateAuthority
from crawler.mirror.routes import SITES_DIR
from crawler.mirror.server import MirrorServer

MAX_BODY = 1024 * 1024
GZIPPED = gzip.compress(b"<html><body>" + b"squeezed " * 500 + b"</body></html>", mtime=0)
BOMB = gzip.compress(b"\0" * (64 * 1024 * 1024), mtime=0, compresslevel=9)
ANSWERS: dict[str, bytes] = {
    "/plain": b"HTTP/1.1 200 Fine Thanks\r\nX-Case: Kept\r\nContent-Length: 5\r\n\r\nhello",
    "/gzip": b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n"
    b"Content-Length: %d\r\n\r\n" % len(GZIPPED) + GZIPPED,
    "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
    "/bad-status": b"ICY 200 OK\r\nContent-Type: audio/mpeg\r\n\r\nnot http at all",
    "/bomb": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(BOMB)
    + BOMB,
    "/reset": b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nonly this",
    "/large": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY - 1)
    + b"x" * (MAX_BODY - 1),
    "/empty": b"",
    "/to-metadata": b"HTTP/1.1 302 Found\r\nLocation: http://meta.test/latest/\r\n"
    b"Content-Length: 0\r\n\r\n",
}
NAMES = {
    "site.test": "127.0.0.1",
    "meta.test": "169.254.169.254",
    "ten.test": "10.0.0.1",
    "six.test": "::1",
}


async def _site(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            path = line.split(b" ")[1].decode()
            length = 0
            while (header := await reader.readline()) not in (b"\r\n", b""):
                if header.lower().startswith(b"content-length:"):
                    length = int(header.split(b":")[1])
            if length:
                await reader.readexactly(length)
            writer.write(ANSWERS.get(path, ANSWERS["/plain"]))
            await writer.drain()
            if path in ("/bad-status", "/reset", "/empty"):
                return
    finally:
        writer.close()


class Harness:
    def __init__(self, tls_site: bool = False, upstream: str = "", pins: tuple[str, ...] = ()):
        self.sockets: list[tuple[str, int]] = []
        self.exchanges: list[Exchange] = []
        self.tls_site = tls_site
        self.site_ca = CertificateAuthority(name="site CA")
        self.config = EgressConfig(
            max_body=MAX_BODY,
            upstream=upstream,
            upstream_pins=pins or ((self.site_ca.spki_sha256,) if tls_site else ()),
            read_timeout=10,
        )
        self.stats: dict[str, int] = {}

    async def resolve(self, host: str) -> list[str]:
        if host not in NAMES:
            raise OSError(f"{host}: no such name")
        return [NAMES[host]]

    async def connect(self, host: str, port: int) -> Any:
        self.sockets.append((host, port))
        return await open_tcp(host, port)

    def inc_value(self, key: str, count: int = 1, start: int = 0) -> None:
        self.stats[key] = self.stats.get(key, start) + count

    def capture(self, exchange: Exchange) -> object:
        self.exchanges.append(exchange)
        return exchange

    async def run(self, body: Callable[[EgressProxy, int], Awaitable[None]]) -> None:
        context = self.site_ca.server_context("site.test") if self.tls_site else None
        server = await asyncio.start_server(_site, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        guard = NetGuard(
            NetGuardConfig(True, (ipaddress.ip_network("127.0.0.0/8"),), self.config.upstream),
            self.resolve,
            self,  # type: ignore[arg-type]
        )
        proxy = EgressProxy(self.config, guard, self.capture, stats=self, connect=self.connect)
        await proxy.start()
        self.proxy = proxy
        try:
            await body(proxy, port)
        finally:
            await proxy.close()
            server.close()
            self.site_ca.cleanup()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    try:
        body = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError as exc:  # cut: what came
        body = exc.partial
    return head, body


async def _plain_get(proxy: EgressProxy, url: str) -> tuple[bytes, bytes]:
    host, port = proxy.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"GET {url} HTTP/1.1\r\nHost: x\r\nProxy-Connection: keep-alive\r\n"
        "Accept-Encoding: gzip, br\r\nCookie: a=1\r\n\r\n".encode()
    )
    await writer.drain()
    try:
        return await _read_answer(reader)
    finally:
        writer.close()


def _records(exchange: Exchange) -> list[Any]:
    out = []
    for rec in exchange_records(RecordBuilder(), exchange):
        for parsed in ArchiveIterator(io.BytesIO(rec.data)):
            out.append((parsed, parsed.raw_stream.read(), rec))
    return out


def test_a_compressed_answer_is_archived_as_it_came_over_the_wire() -> None:
    h = Harness()

    async def body(proxy: EgressProxy, port: int) -> None:
        head, got = await _plain_get(proxy, f"http://site.test:{port}/gzip")
        assert b"Content-Encoding: gzip" in head and got == GZIPPED  # the browser got it as sent
        await _plain_get(proxy, f"http://site.test:{port}/plain")
        await _plain_get(proxy, f"http://site.test:{port}/chunked")

    asyncio.run(h.run(body))
    gz, plain, chunked = h.exchanges
    # The payload with its content coding, the head's lines as received, the request as sent.
    assert gz.body == GZIPPED and (b"Content-Encoding", b"gzip") in list(gz.response_headers)
    assert gz.ip_address == "127.0.0.1"
    sent = dict(gz.request_headers)
    assert sent[b"Accept-Encoding"] == b"gzip, br" and sent[b"Cookie"] == b"a=1"
    assert b"Proxy-Connection" not in sent
    (resp, payload, _rec), (req, _, _) = _records(gz)
    assert payload == GZIPPED
    assert resp.rec_headers.get_header("WARC-Payload-Digest") == sha1_digest(GZIPPED)
    assert req.http_headers.get_header("Accept-Encoding") == "gzip, br"
    assert plain.reason == "Fine Thanks" and (b"X-Case", b"Kept") in list(plain.response_headers)
    # Transfer coding removed, the payload whole.
    assert chunked.body == b"hello world" and chunked.truncated is None
    (resp, payload, _), _ = _records(chunked)
    assert payload == b"hello world"
    assert resp.http_headers.get_header("Content-Length") == "11"
    assert h.stats["archive/egress/exchanges"] == 3


def test_a_status_line_that_is_not_valid_is_archived_as_received_and_counted() -> None:
    h = Harness()

    async def body(proxy: EgressProxy, port: int) -> None:
        await _plain_get(proxy, f"http://site.test:{port}/bad-status")

    asyncio.run(h.run(body))
    [ex] = h.exchanges
    assert ex.status_line == b"ICY 200 OK" and ex.body == b"not http at all"
    [(_resp, payload, rec), _] = _records(ex)
    assert rec.data.split(b"\r\n\r\n", 1)[1].startswith(b"ICY 200 OK\r\n")
    assert payload == b"not http at all"
    assert h.stats["archive/egress/bad_status_line"] == 1


def test_a_decompression_bomb_is_cut_marked_and_counted() -> None:
    h = Harness()

    async def body(proxy: EgressProxy, port: int) -> None:
        head, got = await _plain_get(proxy, f"http://site.test:{port}/bomb")
        # The browser gets a broken answer: the head, then less than the body it announced.
        assert head.startswith(b"HTTP/1.1 200") and len(got) < len(BOMB)

    asyncio.run(h.run(body))
    [ex] = h.exchanges
    assert ex.truncated == "length" and len(ex.body) < len(BOMB)
    [(resp, _, _), _] = _records(ex)
    assert resp.rec_headers.get_header("WARC-Truncated") == "length"
    assert h.stats["archive/egress/truncated"] == 1
    assert h.stats["archive/egress/failed/truncated-length"] == 1


def test_a_body_cut_by_the_site_is_archived_as_far_as_it_came() -> None:
    h = Harness()

    async def body(proxy: EgressProxy, port: int) -> None:
        await _plain_get(proxy, f"http://site.test:{port}/reset")
        head, got = await _plain_get(proxy, f"http://site.test:{port}/empty")
        assert head.startswith(b"HTTP/1.1 502") and b"closed without an answer" in got

    asyncio.run(h.run(body))
    [ex] = h.exchanges
    assert ex.truncated == "disconnect" and ex.body == b"only this"
    assert h.stats["archive/egress/failed/truncated-disconnect"] == 1
    assert h.stats["archive/egress/failed/empty"] == 1


def test_a_body_the_browser_walked_away_from_is_archived_as_far_as_it_came_and_says_who_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness()

    async def body(proxy: EgressProxy, port: int) -> None:
        host, proxy_port = proxy.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(proxy_port))
        writer.write(f"GET http://site.test:{port}/large HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        writer.transport.abort()  # the browser is gone: killed, or the tab closed
        for _ in range(500):
            if h.exchanges:
                return
            await asyncio.sleep(0.01)

    with caplog.at_level("WARNING", logger="crawler.fetch.egress"):
        asyncio.run(h.run(body))
    [ex] = h.exchanges
    assert ex.truncated == "disconnect" and 0 < len(ex.body) < MAX_BODY - 1
    assert h.stats["archive/egress/failed/truncated-disconnect"] == 1
    assert "/large failed: response cut: the browser went away mid-body" in caplog.text
    assert "the site closed" not in caplog.text


@pytest.mark.parametrize(
    ("host", "kind"),
    [("meta.test", "link-local"), ("ten.test", "private"), ("six.test", "loopback")],
)
def test_a_forbidden_address_gets_a_403_and_no_socket_opens(host: str, kind: str) -> None:
    h = Harness()

    async def body(proxy: EgressProxy, port: int) -> None:
        head, _ = await _plain_get(proxy, f"http://{host}/latest/")
        assert head.startswith(b"HTTP/1.1 403")
        # HTTPS: refused at CONNECT, before any TLS.
        r, w = await asyncio.open_connection("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]))
        w.write(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
        answer = await r.read(100)
        assert answer.startswith(b"HTTP/1.1 403")
        w.close()

    asyncio.run(h.run(body))
    assert h.sockets == []
    assert h.exchanges == []
    assert h.stats[f"archive/netguard/refused/{kind}"] == 2
    assert [(r.host, r.address, r.kind) for r in h.proxy.refused] == [(host, NAMES[host], kind)] * 2


def test_a_redirect_to_the_metadata_service_is_followed_by_nobody() -> None:
    h = Harness()

    async def body(proxy: EgressProxy, port: int) -> None:
        head, _ = await _plain_get(proxy, f"http://site.test:{port}/to-metadata")
        assert head.startswith(b"HTTP/1.1 302")
        head, _ = await _plain_get(proxy, "http://meta.test/latest/")
        assert head.startswith(b"HTTP/1.1 403")

    asyncio.run(h.run(body))
    assert h.sockets == [("127.0.0.1", h.sockets[0][1])]
    assert [e.status for e in h.exchanges] == [302]


async def _tls_get(proxy: EgressProxy, host: str, port: int, path: str) -> tuple[bytes, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]))
    writer.write(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    await writer.drain()
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    trust = ssl.create_default_context(cafile=str(proxy.ca.cert_path))
    await writer.start_tls(trust, server_hostname=host)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    await writer.drain()
    try:
        return await _read_answer(reader)
    finally:
        writer.close()


def test_https_is_terminated_with_the_crawls_ca_and_fetched_with_the_sites_pin() -> None:
    h = Harness(tls_site=True)

    async def body(proxy: EgressProxy, port: int) -> None:
        head, got = await _tls_get(proxy, "site.test", port, "/gzip")
        assert head.startswith(b"HTTP/1.1 200") and got == GZIPPED

    asyncio.run(h.run(body))
    [ex] = h.exchanges
    assert ex.url.startswith("https://site.test:") and ex.body == GZIPPED


def test_an_unpinned_site_certificate_is_a_named_failure() -> None:
    h = Harness(tls_site=True, pins=("A" * 43 + "=",))

    async def body(proxy: EgressProxy, port: int) -> None:
        head, got = await _tls_get(proxy, "site.test", port, "/plain")
        assert head.startswith(b"HTTP/1.1 502") and b"ARCHIVE_RENDER_TRUSTED_SPKI" in got

    asyncio.run(h.run(body))
    assert h.exchanges == [] and h.stats["archive/egress/failed/tls"] == 1


def test_the_upstream_proxy_stays_behind_the_egress_proxy(tmp_path: Path) -> None:
    """Chromium → egress → the loopback mirror (an upstream proxy) → the site's files."""
    with MirrorServer([SITES_DIR / "tdi"]) as mirror:
        h = Harness(upstream=mirror.proxy_url, pins=(mirror.spki_sha256,))
        host = "thediplomaticinsight.com"

        async def body(proxy: EgressProxy, port: int) -> None:
            head, got = await _tls_get(proxy, host, 443, "/robots.txt")
            assert head.startswith(b"HTTP/1.1 200") and b"User-agent" in got, (head, got)
            head, _got = await _plain_get(proxy, f"http://{host}/robots.txt")
            assert head.startswith((b"HTTP/1.1 200", b"HTTP/1.1 30")), head

        asyncio.run(h.run(body))
        # Only the upstream proxy was connected to; it saw both requests.
        assert {s for s in h.sockets} == {mirror.address}
        assert {e.url for e in h.exchanges} == {
            f"https://{host}/robots.txt",
            f"http://{host}/robots.txt",
        }
        assert all(e.ip_address is None for e in h.exchanges)
