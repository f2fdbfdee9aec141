"""The loopback mirror, driven over real loopback sockets with stdlib clients."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import brotli
import pytest

from crawler.mirror import routes as routes_module
from crawler.mirror import server as server_module
from crawler.mirror.messages import MirrorResponse, RouteError
from crawler.mirror.routes import Route, guess_content_type, load_site, normalize_url
from crawler.mirror.server import MirrorRequest, MirrorServer

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "crawler" / "mirror" / "sites" / "example"
HOST = "news.example.test"
LONG = (SITE / "long-report.html").read_bytes()
INDEX = (SITE / "index.html").read_bytes()
ARTICLE = (SITE / "article-1.html").read_bytes()


@pytest.fixture
def mirror() -> Iterator[MirrorServer]:
    with MirrorServer([SITE]) as server:
        yield server


def http_conn(mirror: MirrorServer) -> http.client.HTTPConnection:
    """A connection to the proxy for absolute-form plain-http requests."""
    host, port = mirror.address
    return http.client.HTTPConnection(host, port, timeout=5)


def https_conn(mirror: MirrorServer, host: str = HOST) -> http.client.HTTPSConnection:
    """A CONNECT tunnel through the proxy, verifying the certificate against the mirror's CA."""
    ctx = ssl.create_default_context(cafile=str(mirror.ca_cert_path))
    proxy_host, proxy_port = mirror.address
    conn = http.client.HTTPSConnection(proxy_host, proxy_port, timeout=5, context=ctx)
    conn.set_tunnel(host, 443)
    return conn


def get(
    conn: http.client.HTTPConnection,
    target: str,
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> tuple[http.client.HTTPResponse, bytes]:
    conn.request(method, target, headers=headers or {})
    resp = conn.getresponse()
    return resp, resp.read()


def fetch(
    mirror: MirrorServer, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[http.client.HTTPResponse, bytes]:
    """One https request for ``https://news.example.test{path}`` on a fresh tunnel."""
    conn = https_conn(mirror)
    try:
        return get(conn, path, headers, method)
    finally:
        conn.close()


def read_until_head_end(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            break
        data += byte
    return data


def raw_tls(mirror: MirrorServer, host: str = HOST) -> ssl.SSLSocket:
    """A TLS socket inside a CONNECT tunnel, for byte-exact checks of the framing."""
    sock = socket.create_connection(mirror.address, timeout=5)
    sock.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
    head = read_until_head_end(sock)
    assert head.startswith(b"HTTP/1.1 200 "), head
    ctx = ssl.create_default_context(cafile=str(mirror.ca_cert_path))
    return ctx.wrap_socket(sock, server_hostname=host)


def raw_exchange(sock: socket.socket, request: bytes) -> tuple[bytes, bytes]:
    """Send a request and read until the server closes; returns (head, rest)."""
    sock.sendall(request)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ssl.SSLEOFError:  # the mirror closes without close_notify, like many servers
            break
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def parse_chunked(data: bytes) -> tuple[bytes, list[int]]:
    """Decode a chunked body strictly; returns (payload, chunk sizes)."""
    payload, pos = b"", 0
    sizes: list[int] = []
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end], 16)
        pos = end + 2
        if size == 0:
            assert data[pos:] == b"\r\n", "bad chunked terminator"
            return payload, sizes
        sizes.append(size)
        payload += data[pos : pos + size]
        assert data[pos + size : pos + size + 2] == b"\r\n", "chunk not followed by CRLF"
        pos += size + 2


# ---------------------------------------------------------------- TLS and proxying


def test_https_through_connect_verifies_against_the_mirror_ca(mirror: MirrorServer) -> None:
    for host in (HOST, f"www.{HOST}"):
        conn = https_conn(mirror, host)
        resp, body = get(conn, "/robots.txt" if host == HOST else "/")
        sock = conn.sock
        assert isinstance(sock, ssl.SSLSocket)
        cert = sock.getpeercert()
        conn.close()
        assert cert is not None
        assert ("DNS", host) in cert["subjectAltName"]
        if host == HOST:
            assert resp.status == 200
            assert body == b"User-agent: *\nDisallow: /private/\n"
            assert resp.getheader("Content-Type") == "text/plain; charset=utf-8"
        else:  # a listed host without routes: the site's own 404 page
            assert resp.status == 404
            assert body == (SITE / "404.html").read_bytes()
    connects = [r for r in mirror.requests if r.method == "CONNECT"]
    assert [r.url for r in connects] == [f"{HOST}:443", f"www.{HOST}:443"]
    gets = [r for r in mirror.requests if r.method == "GET"]
    assert gets[0].url == f"https://{HOST}/robots.txt" and gets[0].tunnel
    assert gets[0].header("host") == HOST


def test_certificate_does_not_verify_for_another_name(mirror: MirrorServer) -> None:
    sock = socket.create_connection(mirror.address, timeout=5)
    sock.sendall(f"CONNECT {HOST}:443 HTTP/1.1\r\n\r\n".encode())
    assert read_until_head_end(sock).startswith(b"HTTP/1.1 200")
    ctx = ssl.create_default_context(cafile=str(mirror.ca_cert_path))
    with pytest.raises(ssl.SSLCertVerificationError):
        ctx.wrap_socket(sock, server_hostname="thediplomaticinsight.com")
    sock.close()


def test_plain_http_in_absolute_form_and_keep_alive(mirror: MirrorServer) -> None:
    conn = http_conn(mirror)
    resp, body = get(conn, f"http://{HOST}/plain/")
    assert (resp.status, body) == (200, b"served over plain http\n")
    assert resp.getheader("Server") == "nginx"  # the site's headers
    assert resp.getheader("Date")
    # The site sets http_redirect: an http URL without its own route goes to https.
    resp, _ = get(conn, f"http://{HOST}/feed/?x=1")
    assert resp.status == 301
    assert resp.getheader("Location") == f"https://{HOST}/feed/?x=1"
    conn.close()
    assert len({r.client for r in mirror.requests}) == 1  # one connection, kept alive


def test_plain_http_inside_a_connect_tunnel(mirror: MirrorServer) -> None:
    sock = socket.create_connection(mirror.address, timeout=5)
    sock.sendall(f"CONNECT {HOST}:80 HTTP/1.1\r\n\r\n".encode())
    assert read_until_head_end(sock).startswith(b"HTTP/1.1 200")
    head, body = raw_exchange(
        sock, f"GET /plain/ HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
    )
    sock.close()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert body == b"served over plain http\n"
    assert mirror.requests[-1].url == f"http://{HOST}/plain/"


def test_many_requests_on_one_tls_connection(mirror: MirrorServer) -> None:
    conn = https_conn(mirror)
    for _ in range(30):
        resp, body = get(conn, "/long/")
        assert (resp.status, body) == (200, LONG)
    conn.close()
    assert sum(r.method == "CONNECT" for r in mirror.requests) == 1


def test_concurrent_tunnels(mirror: MirrorServer) -> None:
    errors: list[BaseException] = []
    bodies: list[bytes] = []

    def worker() -> None:
        try:
            conn = https_conn(mirror)
            for _ in range(5):
                bodies.append(get(conn, "/long/")[1])
            conn.close()
        except (OSError, http.client.HTTPException, AssertionError) as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert bodies == [LONG] * 80


# ---------------------------------------------------------------- content coding and framing


DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "deflate": zlib.decompress,
}
ENCODED_ROUTES = [("gzip", "/article/1/", ARTICLE), ("br", "/article/2/", LONG),
                  ("deflate", "/article/3/?amp=1", ARTICLE)]  # fmt: skip


@pytest.mark.parametrize(("coding", "path", "expected"), ENCODED_ROUTES)
@pytest.mark.parametrize(
    ("accept", "applied"),
    [
        (None, False),
        ("identity", False),
        ("{coding}", True),
        ("{coding};q=0", False),
        ("identity;q=1, *;q=0.5", True),
        ("*;q=0", False),
        ("zstd, {coding};q=0.1", True),
    ],
)
def test_content_coding_only_when_accepted(
    mirror: MirrorServer,
    coding: str,
    path: str,
    expected: bytes,
    accept: str | None,
    applied: bool,
) -> None:
    headers = {} if accept is None else {"Accept-Encoding": accept.format(coding=coding)}
    resp, body = fetch(mirror, path, headers)
    assert resp.status == 200
    assert resp.getheader("Vary") == "Accept-Encoding"
    if applied:
        assert resp.getheader("Content-Encoding") == coding
        assert body != expected
        assert DECODERS[coding](body) == expected
    else:
        assert resp.getheader("Content-Encoding") is None
        assert body == expected


def test_force_encoding_ignores_accept_encoding(mirror: MirrorServer) -> None:
    mirror.add_route(Route(url=f"https://{HOST}/forced/", body=b"x" * 500, encoding="gzip",
                           force=True))  # fmt: skip
    resp, body = fetch(mirror, "/forced/", {"Accept-Encoding": "identity"})
    assert resp.getheader("Content-Encoding") == "gzip"
    assert gzip.decompress(body) == b"x" * 500


def test_chunked_framing_is_valid(mirror: MirrorServer) -> None:
    sock = raw_tls(mirror)
    head, rest = raw_exchange(
        sock, f"GET /long/chunked/ HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
    )
    sock.close()
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "Transfer-Encoding: chunked" in lines
    assert not any(line.lower().startswith("content-length") for line in lines)
    payload, sizes = parse_chunked(rest)
    assert payload == LONG
    assert sizes == [4096, 4096, len(LONG) - 8192]


def test_http_1_0_client_gets_content_length_and_close(mirror: MirrorServer) -> None:
    sock = raw_tls(mirror)
    head, rest = raw_exchange(sock, b"GET /long/chunked/ HTTP/1.0\r\n\r\n")
    sock.close()
    lines = head.decode().split("\r\n")
    assert f"Content-Length: {len(LONG)}" in lines and "Connection: close" in lines
    assert "Transfer-Encoding: chunked" not in lines
    assert rest == LONG


def test_chunked_and_encoded(mirror: MirrorServer) -> None:
    # http.client de-chunks strictly; the payload is then the brotli stream.
    resp, body = fetch(mirror, "/article/2/", {"Accept-Encoding": "gzip, br"})
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert resp.getheader("Content-Encoding") == "br"
    assert brotli.decompress(body) == LONG


def test_head_sends_headers_only(mirror: MirrorServer) -> None:
    conn = https_conn(mirror)
    resp, body = get(conn, "/article/1/", {"Accept-Encoding": "gzip"}, method="HEAD")
    assert (resp.status, body) == (200, b"")
    length = int(resp.getheader("Content-Length") or -1)
    # The same connection still frames the next response right: no stray body was sent.
    resp, body = get(conn, "/article/1/", {"Accept-Encoding": "gzip"})
    conn.close()
    assert len(body) == length and gzip.decompress(body) == ARTICLE


def test_other_methods_get_405(mirror: MirrorServer) -> None:
    conn = https_conn(mirror)
    conn.request("POST", "/", body=b"a=1", headers={"Content-Type": "text/plain"})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 405
    assert resp.getheader("Allow") == "GET, HEAD"
    resp, body = get(conn, "/")  # the request body was consumed; the connection is usable
    conn.close()
    assert (resp.status, body) == (200, INDEX)
    assert mirror.requests[-2].body == b"a=1"


# ---------------------------------------------------------------- statuses


def test_redirects(mirror: MirrorServer) -> None:
    resp, body = fetch(mirror, "/old-article/")
    assert resp.status == 301 and resp.reason == "Moved Permanently"
    assert resp.getheader("Location") == f"https://{HOST}/article/1/"
    assert b"301 Moved Permanently" in body
    resp, _ = fetch(mirror, "/moved-temporarily/")
    assert resp.status == 302 and resp.getheader("Location") == "/article/1/"


def test_not_found_and_errors(mirror: MirrorServer) -> None:
    resp, body = fetch(mirror, "/no/such/page/")
    assert resp.status == 404 and resp.reason == "Not Found"
    assert body == (SITE / "404.html").read_bytes()
    assert resp.getheader("Server") == "nginx"
    resp, body = fetch(mirror, "/robots.txt/")  # trailing slash is significant
    assert resp.status == 404
    resp, body = fetch(mirror, "/broken/")
    assert resp.status == 500 and b"500 Internal Server Error" in body
    resp, body = fetch(mirror, "/limited/")
    assert (resp.status, body) == (429, b"Too many requests\n")
    assert resp.getheader("Retry-After") == "3"
    # A host without a site-specific 404 page gets a generic HTML one.
    mirror.add_route(Route(url="https://other.example.test/", body=b"home"))
    resp, body = fetch_host(mirror, "other.example.test", "/missing")
    assert resp.status == 404
    assert resp.getheader("Content-Type") == "text/html"
    assert body.startswith(b"<html>") and b"404 Not Found" in body


def fetch_host(
    mirror: MirrorServer, host: str, path: str
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = https_conn(mirror, host)
    try:
        return get(conn, path)
    finally:
        conn.close()


def test_fail_times_then_success(mirror: MirrorServer) -> None:
    statuses = [fetch(mirror, "/flaky/")[0].status for _ in range(4)]
    assert statuses == [500, 500, 200, 200]
    mirror.add_route(
        Route(
            url=f"https://{HOST}/busy/",
            body=b"ok",
            fail_times=1,
            fail_status=503,
            fail_headers={"Retry-After": "1"},
        )
    )
    resp, _ = fetch(mirror, "/busy/")
    assert resp.status == 503 and resp.getheader("Retry-After") == "1"
    resp, body = fetch(mirror, "/busy/")
    assert (resp.status, body, resp.getheader("Retry-After")) == (200, b"ok", None)


def test_delay(mirror: MirrorServer) -> None:
    start = time.monotonic()
    resp, body = fetch(mirror, "/slow/")
    elapsed = time.monotonic() - start
    assert (resp.status, body) == (200, INDEX)
    assert 0.3 <= elapsed < 3


def test_trickle(mirror: MirrorServer) -> None:
    conn = https_conn(mirror)
    get(conn, "/")  # set up the tunnel first so only the body is timed
    start = time.monotonic()
    resp, body = get(conn, "/trickle/")
    elapsed = time.monotonic() - start
    conn.close()
    assert body == LONG and resp.getheader("Content-Length") == str(len(LONG))
    assert 0.1 <= elapsed < 3  # three pieces of 4096 bytes, 0.05 s apart


def test_truncate_sends_fewer_bytes_and_closes(mirror: MirrorServer) -> None:
    sock = raw_tls(mirror)
    head, rest = raw_exchange(sock, f"GET /truncated/ HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    sock.close()
    assert f"Content-Length: {len(LONG)}".encode() in head
    assert rest == LONG[:1000]  # then EOF although the request asked for keep-alive
    resp_conn = https_conn(mirror)
    resp_conn.request("GET", "/truncated/")
    with pytest.raises(http.client.IncompleteRead) as info:
        resp_conn.getresponse().read()
    resp_conn.close()
    assert len(info.value.partial) == 1000


def test_truncate_chunked_stops_without_terminator(mirror: MirrorServer) -> None:
    mirror.add_route(Route(url=f"https://{HOST}/cut/", body=LONG, chunked=True, truncate=5000))
    sock = raw_tls(mirror)
    _, rest = raw_exchange(sock, f"GET /cut/ HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    sock.close()
    assert rest == b"1000\r\n" + LONG[:4096] + b"\r\n" + b"388\r\n" + LONG[4096:5000] + b"\r\n"


def test_repeated_headers(mirror: MirrorServer) -> None:
    resp, _ = fetch(mirror, "/cookies/")
    assert resp.headers.get_all("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]


# ---------------------------------------------------------------- safety


def test_unknown_host_gets_502_and_nothing_goes_out(
    mirror: MirrorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    connects: list[object] = []
    lookups: list[object] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def spy_connect(self: socket.socket, address: object) -> None:
        connects.append(address)
        real_connect(self, address)  # type: ignore[arg-type]

    def spy_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        lookups.append(host)
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", spy_connect)
    monkeypatch.setattr(socket, "getaddrinfo", spy_getaddrinfo)
    monkeypatch.setattr(socket, "gethostbyname", lambda host: pytest.fail(f"resolved {host}"))

    conn = http_conn(mirror)
    resp, body = get(conn, "http://example.org/index.html")
    assert (resp.status, body) == (502, b"not mirrored: example.org\n")
    resp, body = get(conn, "http://NEWS.example.test:80/plain/")  # still usable, host matched
    assert resp.status == 200
    conn.close()
    sock = socket.create_connection(mirror.address, timeout=5)
    sock.sendall(b"CONNECT www.example.org:443 HTTP/1.1\r\nHost: www.example.org:443\r\n\r\n")
    head, rest = raw_exchange(sock, b"")
    sock.close()
    assert head.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert rest == b"not mirrored: www.example.org\n"
    # The only connections and name lookups are the test client's own, to the proxy.
    assert set(map(tuple, connects)) == {mirror.address}  # type: ignore[arg-type]
    assert set(lookups) == {mirror.address[0]}
    assert [r.method for r in mirror.requests] == ["GET", "GET", "CONNECT"]


def test_client_disconnecting_mid_response_is_harmless(
    mirror: MirrorServer, caplog: pytest.LogCaptureFixture
) -> None:
    mirror.add_route(Route(url=f"https://{HOST}/huge/", body=LONG * 200, trickle=0.01))
    for _ in range(3):
        sock = raw_tls(mirror)
        sock.sendall(f"GET /huge/ HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
        sock.close()
    resp, body = fetch(mirror, "/")
    assert (resp.status, body) == (200, INDEX)
    assert [r for r in caplog.records if r.levelname not in ("DEBUG", "INFO")] == []


def test_stop_releases_port_and_threads() -> None:
    before = {t.ident for t in threading.enumerate()}
    server = MirrorServer([SITE])
    server.start()
    port = server.address[1]
    idle = https_conn(server)  # an idle keep-alive tunnel
    get(idle, "/")
    busy = raw_tls(server)  # and a response in progress
    busy.sendall(f"GET /trickle/ HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    server.stop()
    idle.close()
    busy.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    leftover = [t for t in threading.enumerate() if t.ident not in before]
    assert leftover == []
    again = MirrorServer([SITE], port=port)
    again.start()
    assert again.address[1] == port
    again.stop()


def test_port_in_use_raises_and_leaves_no_ca_behind(mirror: MirrorServer) -> None:
    other = MirrorServer([SITE], port=mirror.address[1])
    ca = other.ca_cert_path
    assert ca.is_file()
    with pytest.raises(OSError), other:
        pass
    assert not ca.exists()


# ---------------------------------------------------------------- handlers and API


def test_add_handler(mirror: MirrorServer) -> None:
    seen: list[MirrorRequest] = []

    def articles(req: MirrorRequest) -> MirrorResponse | None:
        seen.append(req)
        number = req.path.rsplit("/", 2)[-2]
        if not number.isdigit():
            return None
        return MirrorResponse(
            body=f"<p>article {number}</p>".encode() * 300,
            content_type="text/html; charset=utf-8",
            encoding="gzip",
            chunked=True,
        )

    def broken(req: MirrorRequest) -> MirrorResponse:
        raise KeyError(req.url)

    mirror.add_handler("Bench.Example.TEST", "/news/", articles)
    mirror.add_handler("bench.example.test", "/news/broken/", broken)
    assert "bench.example.test" in mirror.hosts
    conn = https_conn(mirror, "bench.example.test")
    resp, body = get(conn, "/news/42/?utm=x", {"Accept-Encoding": "gzip", "X-Test": "1"})
    assert resp.status == 200
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert gzip.decompress(body) == b"<p>article 42</p>" * 300
    assert seen[0].url == "https://bench.example.test/news/42/?utm=x"
    assert seen[0].path == "/news/42/?utm=x" and seen[0].header("x-test") == "1"
    resp, body = get(conn, "/news/latest/")  # handler returned None
    assert resp.status == 404
    resp, body = get(conn, "/news/broken/1/")  # longest prefix wins; its error is a 500
    assert resp.status == 500
    conn.close()


def test_handler_fault_fields(mirror: MirrorServer) -> None:
    mirror.add_handler(
        HOST, "/gen/", lambda req: MirrorResponse(body=b"generated", fail_times=1, delay=0.1)
    )
    assert fetch(mirror, "/gen/a")[0].status == 500
    assert fetch(mirror, "/gen/b")[0].status == 500  # counted per URL
    start = time.monotonic()
    resp, body = fetch(mirror, "/gen/a")
    assert (resp.status, body) == (200, b"generated")
    assert time.monotonic() - start >= 0.1


def test_add_route_replaces(mirror: MirrorServer) -> None:
    mirror.add_route(Route(url=f"https://{HOST}/", body=b"new home", content_type="text/plain"))
    resp, body = fetch(mirror, "/")
    assert (resp.status, body) == (200, b"new home")
    assert resp.getheader("Content-Type") == "text/plain"


def test_request_log_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "MAX_LOGGED_REQUESTS", 3)
    with MirrorServer([SITE]) as server:
        conn = http_conn(server)
        for i in range(5):
            get(conn, f"http://{HOST}/plain/?n={i}")
        conn.close()
        assert [r.url[-1] for r in server.requests] == ["2", "3", "4"]
        server.clear_requests()
        assert server.requests == []


def test_default_sites_and_persistent_ca(tmp_path: Path) -> None:
    with MirrorServer(ca_dir=tmp_path) as first:
        assert HOST in first.hosts
        pem = first.ca_cert_path.read_bytes()
        pin = first.spki_sha256
    assert first.ca_cert_path.parent == tmp_path
    with MirrorServer([SITE], ca_dir=tmp_path) as second:
        assert second.ca_cert_path.read_bytes() == pem
        assert second.spki_sha256 == pin
        assert fetch(second, "/")[0].status == 200


def cli_setup(server: MirrorServer) -> None:
    """Used by the CLI test through ``--setup tests.test_mirror:cli_setup``."""
    server.add_handler("cli.example.test", "/", lambda req: MirrorResponse(body=b"from setup"))


def test_cli_serves_until_sigterm() -> None:
    args = ["--port", "0", "--site", str(SITE), "--setup", "tests.test_mirror:cli_setup"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler.mirror.server", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        info = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(4))
        proxy = info["MIRROR_PROXY"]
        assert proxy.startswith("http://127.0.0.1:")
        assert Path(info["MIRROR_CA"]).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        assert HOST in info["MIRROR_HOSTS"].split(",")
        host, port = proxy.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        resp, body = get(conn, f"http://{HOST}/plain/")
        assert (resp.status, body) == (200, b"served over plain http\n")
        resp, body = get(conn, "http://cli.example.test/x")
        assert (resp.status, body) == (200, b"from setup")
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


# ---------------------------------------------------------------- route model


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://News.Example.TEST:443/a/?b=1#frag", "https://news.example.test/a/?b=1"),
        ("http://news.example.test:80", "http://news.example.test/"),
        ("https://news.example.test:8443/x", "https://news.example.test:8443/x"),
        ("https://news.example.test/a", "https://news.example.test/a"),
        ("https://news.example.test/a/", "https://news.example.test/a/"),
        ("https://news.example.test/?b=2&a=1", "https://news.example.test/?b=2&a=1"),
        ("https://news.example.test/été?q=ü", "https://news.example.test/%C3%A9t%C3%A9?q=%C3%BC"),
        ("https://news.example.test/%c3%a9", "https://news.example.test/%c3%a9"),
        ("https://bücher.example/", "https://xn--bcher-kva.example/"),
    ],
)
def test_normalize_url(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (("feed.xml",), "application/xml"),
        (("", "/wp-json/wp/v2/posts.json"), "application/json"),
        (("page.HTML",), "text/html"),
        (("", "/feed/"), "text/html"),
        (("logo.png",), "image/png"),
    ],
)
def test_guess_content_type(names: tuple[str, ...], expected: str) -> None:
    assert guess_content_type(*names) == expected


@pytest.mark.parametrize(
    ("site", "message"),
    [
        ({"routes": [{"url": "https://a.test/", "bodyy": "x"}]}, "unknown keys ['bodyy']"),
        ({"routes": [{"url": "https://a.test/", "file": "../x"}]}, "escapes the site dir"),
        ({"routes": [{"url": "https://a.test/", "file": "missing.html"}]}, "cannot read"),
        ({"routes": [{"url": "https://a.test/", "body": "a", "file": "b"}]}, "not both"),
        ({"routes": [{"url": "/relative"}]}, "absolute http(s) URLs"),
        ({"routes": [{"url": "https://a.test/", "encoding": "zip"}]}, "encoding must be one of"),
        ({"routes": [{"url": "https://a.test/", "status": "200"}]}, "'status' has the wrong type"),
        ({"routes": [{"url": "https://a.test/", "chunked": 1}]}, "'chunked' has the wrong type"),
        (
            {"routes": [{"url": "https://a.test/", "headers": {"Content-Length": "3"}}]},
            "is set by the mirror",
        ),
        ({"routes": [], "hostz": []}, "unknown keys ['hostz']"),
        ({"hosts": []}, "'routes' (list) is required"),
    ],
)
def test_bad_sites_are_rejected_with_the_route_named(
    tmp_path: Path, site: dict[str, object], message: str
) -> None:
    (tmp_path / "routes.json").write_text(json.dumps(site))
    with pytest.raises(RouteError) as info:
        load_site(tmp_path)
    assert message in str(info.value)
    assert str(tmp_path / "routes.json") in str(info.value)


def test_site_loader_reads_everything(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_bytes(b"<p>hi</p>")
    site = {
        "comment": "notes are allowed",
        "hosts": ["A.test", "b.test"],
        "headers": [["Server", "Apache"]],
        "not_found": {"body": "gone", "status": 410},
        "routes": [
            {"_note": "also allowed", "url": "https://a.test/p", "file": "page.html",
             "delay": 1, "fail_headers": {"Retry-After": "5"}},
        ],
    }  # fmt: skip
    (tmp_path / "routes.json").write_text(json.dumps(site))
    loaded = load_site(tmp_path)
    assert loaded.hosts == {"a.test", "b.test"}
    assert loaded.headers == (("Server", "Apache"),)
    assert loaded.not_found is not None and loaded.not_found.effective_status == 410
    (route,) = loaded.routes
    assert (route.body, route.delay, route.source) == (b"<p>hi</p>", 1.0, tmp_path / "page.html")
    assert route.fail_header_items == (("Retry-After", "5"),)


def test_routes_checker_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert routes_module.main([str(SITE)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("example: 18 routes, ") and "'news.example.test'" in out
    (tmp_path / "routes.json").write_text('{"routes": [{"url": "https://a.test/", "x": 1}]}')
    assert routes_module.main([str(tmp_path)]) == 1
    assert "unknown keys ['x']" in capsys.readouterr().out
