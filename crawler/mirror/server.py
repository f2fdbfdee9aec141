"""Loopback HTTP(S) proxy that answers saved pages as the real news hosts.

Point a client at ``MirrorServer.proxy_url`` as its HTTP proxy: plain-http requests arrive in
absolute form, https requests through ``CONNECT host:443``; inside the tunnel the mirror terminates
TLS with a certificate for ``host`` signed by its own CA (``ca_cert_path``) and answers the
origin-form requests from the routes (see ``crawler.mirror.routes`` for the route format).

The mirror has no forwarding code path at all: it never resolves a name and never opens an outbound
connection. A request for a host it does not mirror is answered ``502 Bad Gateway`` with the body
``not mirrored: <host>``, whatever the host.

Run it standalone with ``python -m crawler.mirror.server --port 8899``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import email.utils
import gzip
import importlib
import logging
import selectors
import signal
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from urllib.parse import urlsplit

from crawler.fetch.tls import CertificateAuthority
from crawler.mirror.challenge import ArvanChallenge
from crawler.mirror.messages import HeaderItems, MirrorResponse, RouteError
from crawler.mirror.routes import (
    Route,
    Site,
    guess_content_type,
    load_sites,
    normalize_host,
    normalize_url,
    reason_phrase,
    url_host,
)

__all__ = [
    "Handler",
    "MirrorRequest",
    "MirrorResponse",
    "MirrorServer",
    "Route",
    "serve_forever_cli",
]

logger = logging.getLogger(__name__)

MAX_LOGGED_REQUESTS = 100_000
IDLE_TIMEOUT = 75.0  # seconds a keep-alive connection may sit idle (nginx's default)
HANDSHAKE_TIMEOUT = 10.0
MAX_LINE = 65536
MAX_HEADERS = 200
MAX_REQUEST_BODY = 10 * 1024 * 1024
ALLOWED_METHODS = ("GET", "HEAD")
_TLS_HANDSHAKE_RECORD = 0x16
_NO_BODY_STATUSES = frozenset({204, 304})

Handler = Callable[["MirrorRequest"], MirrorResponse | None]


@dataclass(frozen=True)
class MirrorRequest:
    """One request as the mirror received it."""

    method: str
    url: str  # normalised absolute URL; "host:port" for CONNECT
    target: str  # the request-target exactly as sent
    version: str
    headers: HeaderItems
    body: bytes = b""
    time: float = 0.0
    client: tuple[str, int] = ("", 0)
    tunnel: bool = False  # received inside a CONNECT tunnel

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of a header, matched case-insensitively."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return default

    @property
    def host(self) -> str:
        """The normalised host name the request is for."""
        if self.method == "CONNECT":
            return normalize_host(urlsplit(f"//{self.url}").hostname or "")
        return url_host(self.url)

    @property
    def path(self) -> str:
        """Path and query of the URL."""
        parts = urlsplit(self.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")


@dataclass
class _Static:
    """A loaded route with its encoded bodies cached."""

    route: Route
    content_type: str
    encoded: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class _HostDefaults:
    headers: HeaderItems = ()
    http_redirect: bool = False
    not_found: MirrorResponse | None = None


class _BadRequest(Exception):
    """The client sent something that is not HTTP/1.x; answer 400 and close."""


class _ClientGone(Exception):
    """The client closed the connection, or the server is stopping."""


def _encode(body: bytes, coding: str, *, fast: bool) -> bytes:
    if coding == "gzip":
        return gzip.compress(body, compresslevel=1 if fast else 6, mtime=0)
    if coding == "deflate":
        return zlib.compress(body, 1 if fast else 6)
    import brotli  # only needed by "br" routes

    out: bytes = brotli.compress(body, quality=4 if fast else 11)
    return out


def _accepts(accept_encoding: str | None, coding: str) -> bool:
    """Whether an Accept-Encoding value allows ``coding`` (absent header: no coding, like nginx)."""
    if accept_encoding is None:
        return False
    star: float | None = None
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        name = name.strip().lower()
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name == coding or (coding == "gzip" and name == "x-gzip"):
            return q > 0
        if name == "*":
            star = q
    return star is not None and star > 0


def _html_page(status: int, reason: str) -> bytes:
    return (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode("ascii")


class _DateCache:
    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._value = email.utils.formatdate(second, usegmt=True)
            self._second = second
        return self._value


class _Reader:
    """Minimal buffered reader over a (possibly TLS) socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def readline(self) -> bytes | None:
        """One line including its newline; None at a clean EOF before any byte."""
        start = 0
        while True:
            idx = self.buf.find(b"\n", start)
            if idx >= 0:
                line = bytes(self.buf[: idx + 1])
                del self.buf[: idx + 1]
                return line
            if len(self.buf) > MAX_LINE:
                raise _BadRequest("line too long")
            start = len(self.buf)
            if not self._fill():
                if self.buf:
                    raise _ClientGone("EOF in the middle of a line")
                return None

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise _ClientGone("EOF in a request body")
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data


class _Connection:
    """State of one client connection; ``sock`` changes when the tunnel turns to TLS."""

    def __init__(self, sock: socket.socket, client: tuple[str, int]) -> None:
        self.sock = sock
        self.client = client
        self.reader = _Reader(sock)
        self.tunnel_scheme: str | None = None
        self.tunnel_authority = ""


class MirrorServer:
    """The loopback mirror: an HTTP proxy that answers only from saved routes and handlers."""

    def __init__(
        self,
        sites: Iterable[Path] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ca_dir: Path | None = None,
    ) -> None:
        self._bind = (host, port)
        self._lock = threading.Lock()
        self._routes: dict[str, _Static] = {}
        self._hosts: set[str] = set()
        self._site_names: list[str] = []
        self._host_defaults: dict[str, _HostDefaults] = {}
        self._handlers: dict[str, list[tuple[str, Handler]]] = {}
        self._challenges: dict[str, ArvanChallenge] = {}
        self._fail_counts: dict[str, int] = {}
        self._log: collections.deque[MirrorRequest] = collections.deque(maxlen=MAX_LOGGED_REQUESTS)
        self._log_lock = threading.Lock()
        self._dates = _DateCache()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._conns: dict[_Connection, threading.Thread] = {}
        self._conns_lock = threading.Lock()
        loaded = load_sites(sites)  # first: a bad route must not leave a CA directory behind
        self._ca = CertificateAuthority(ca_dir)
        for site in loaded:
            self.add_site(site)

    # ---------------------------------------------------------------- configuration

    @property
    def sites(self) -> list[str]:
        """Names of the mirrored sites (their directory names), in the order added."""
        with self._lock:
            return list(self._site_names)

    def add_site(self, site: Site) -> None:
        """Serve a loaded site: its routes, hosts and per-host defaults."""
        defaults = _HostDefaults(site.headers, site.http_redirect, site.not_found)
        with self._lock:
            self._site_names.append(site.name)
            for host in site.hosts:
                self._hosts.add(host)
                self._host_defaults[host] = defaults
        for route in site.routes:
            self.add_route(route)
        if site.challenge is not None:
            self.add_challenge(site.hosts, site.challenge)
        logger.debug(
            "Mirroring site %s: %d routes, hosts %s",
            site.name,
            len(site.routes),
            sorted(site.hosts),
        )

    def add_route(self, route: Route) -> None:
        """Add a route, or replace the one for the same URL (its failure count restarts)."""
        key = normalize_url(route.url)
        path = urlsplit(key).path
        names = (route.source.name if route.source else "", path)
        content_type = route.content_type or guess_content_type(*names)
        with self._lock:
            self._routes[key] = _Static(route, content_type)
            self._hosts.add(url_host(key))
            self._fail_counts.pop(key, None)

    def add_handler(self, host: str, path_prefix: str, handler: Handler) -> None:
        """Answer requests for ``host`` whose path starts with ``path_prefix`` with ``handler``.

        Exact routes win over handlers; among handlers the longest prefix wins. A handler may
        return None to fall through to the 404 page. Its MirrorResponse goes through the same
        encoding, chunking and fault machinery as a route.
        """
        if not path_prefix.startswith("/"):
            raise ValueError(f"path_prefix must start with '/', got {path_prefix!r}")
        host = normalize_host(host)
        with self._lock:
            self._hosts.add(host)
            handlers = [(p, h) for p, h in self._handlers.get(host, []) if p != path_prefix]
            handlers.append((path_prefix, handler))
            handlers.sort(key=lambda item: len(item[0]), reverse=True)
            self._handlers[host] = handlers

    def add_challenge(self, hosts: Iterable[str], challenge: ArvanChallenge | None) -> None:
        """Put a cookie challenge in front of ``hosts`` (None: take it away)."""
        with self._lock:
            for host in hosts:
                if challenge is None:
                    self._challenges.pop(normalize_host(host), None)
                else:
                    self._challenges[normalize_host(host)] = challenge

    def challenge(self, host: str) -> ArvanChallenge | None:
        """The challenge in front of ``host``, if any."""
        with self._lock:
            return self._challenges.get(normalize_host(host))

    @property
    def hosts(self) -> set[str]:
        """Every host name the mirror answers for."""
        with self._lock:
            return set(self._hosts)

    @property
    def requests(self) -> list[MirrorRequest]:
        """A snapshot of the last requests received (at most 100,000), oldest first."""
        with self._log_lock:
            return list(self._log)

    def clear_requests(self) -> None:
        """Forget the logged requests."""
        with self._log_lock:
            self._log.clear()

    @property
    def proxy_url(self) -> str:
        """``http://127.0.0.1:PORT``, to use as the client's HTTP and HTTPS proxy."""
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the proxy listens on; only once started."""
        if self._listener is None:
            raise RuntimeError("the mirror is not running: call start() first")
        addr = self._listener.getsockname()
        return str(addr[0]), int(addr[1])

    @property
    def ca_cert_path(self) -> Path:
        """PEM file of the CA that signs the mirror's certificates."""
        return self._ca.cert_path

    @property
    def spki_sha256(self) -> str:
        """Base64 SHA-256 SPKI pin of every leaf certificate (for Chromium)."""
        return self._ca.spki_sha256

    # ---------------------------------------------------------------- life cycle

    def start(self) -> None:
        """Bind the listening socket and serve in a background thread."""
        if self._listener is not None:
            raise RuntimeError("the mirror is already running")
        if self._stopping.is_set():
            raise RuntimeError("a stopped mirror cannot be restarted; make a new one")
        host, port = self._bind
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, port), family=family, backlog=1024)
        listener.setblocking(False)
        self._wake_r, self._wake_w = socket.socketpair()
        self._listener = listener
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="mirror-accept", daemon=True
        )
        self._accept_thread.start()
        logger.info("Mirror listening on %s (CA %s)", self.proxy_url, self.ca_cert_path)

    def stop(self) -> None:
        """Close the listening socket and every open connection, and wait for the threads."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._wake_w is not None:
            try:
                self._wake_w.send(b"x")
            except OSError:
                logger.debug("Mirror wake-up failed", exc_info=True)
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
        for sock in (self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        with self._conns_lock:
            conns = list(self._conns.items())
        for conn, _ in conns:
            # Only shut down: the connection's own thread closes its socket. OSError: it already
            # did, or the socket never finished connecting.
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        for _, thread in conns:
            thread.join(timeout=5)
            if thread.is_alive():
                logger.warning("Mirror connection thread %s did not stop", thread.name)
        self._ca.cleanup()
        logger.info("Mirror stopped")

    def __enter__(self) -> MirrorServer:
        try:
            self.start()
        except OSError:
            self.stop()  # e.g. the port is taken: still remove the temporary CA
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        # OSError: already closed, or the peer reset it; nothing is left to release.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def _accept_loop(self) -> None:
        assert self._listener is not None and self._wake_r is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in sel.select():
                    if key.fileobj is not self._listener or self._stopping.is_set():
                        continue
                    try:
                        sock, addr = self._listener.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:  # e.g. out of file descriptors: back off, keep serving
                        logger.warning("Mirror accept failed", exc_info=True)
                        self._stopping.wait(0.1)
                        continue
                    self._spawn(sock, (str(addr[0]), int(addr[1])))

    def _spawn(self, sock: socket.socket, client: tuple[str, int]) -> None:
        sock.setblocking(True)
        sock.settimeout(IDLE_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Connection(sock, client)
        thread = threading.Thread(
            target=self._serve_connection,
            args=(conn,),
            name=f"mirror-conn-{client[1]}",
            daemon=True,
        )
        with self._conns_lock:
            self._conns[conn] = thread
        thread.start()

    def _serve_connection(self, conn: _Connection) -> None:
        try:
            while not self._stopping.is_set() and self._serve_one(conn):
                pass
        except _BadRequest as exc:
            logger.debug("Bad request from %s: %s", conn.client, exc)
            self._try_send_simple(conn, 400, b"bad request\n", "text/plain")
        except (_ClientGone, OSError) as exc:
            logger.debug("Mirror connection from %s ended: %r", conn.client, exc)
        finally:
            self._shutdown(conn.sock)
            with self._conns_lock:
                self._conns.pop(conn, None)

    # ---------------------------------------------------------------- HTTP

    def _read_request(self, conn: _Connection) -> MirrorRequest | None:
        reader = conn.reader
        line = reader.readline()
        while line in (b"\r\n", b"\n"):  # RFC 9112 lets a server ignore empty lines first
            line = reader.readline()
        if line is None:
            return None
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(f"bad request line {line[:200]!r}")
        method, target, version = parts
        headers: list[tuple[str, str]] = []
        while True:
            hline = reader.readline()
            if hline is None:
                raise _ClientGone("EOF in the request headers")
            if hline in (b"\r\n", b"\n"):
                break
            if len(headers) >= MAX_HEADERS:
                raise _BadRequest("too many headers")
            name, sep, value = hline.decode("latin-1").partition(":")
            if not sep or not name or name != name.strip():
                raise _BadRequest(f"bad header line {hline[:200]!r}")
            headers.append((name, value.strip()))
        req = MirrorRequest(method, "", target, version, tuple(headers))
        body = self._read_body(reader, req)
        return MirrorRequest(
            method=method,
            url=self._request_url(conn, req),
            target=target,
            version=version,
            headers=tuple(headers),
            body=body,
            time=time.time(),
            client=conn.client,
            tunnel=conn.tunnel_scheme is not None,
        )

    @staticmethod
    def _read_body(reader: _Reader, req: MirrorRequest) -> bytes:
        if "chunked" in (req.header("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = reader.readline()
                if size_line is None:
                    raise _ClientGone("EOF in a chunked request body")
                try:
                    size = int(size_line.split(b";")[0].strip(), 16)
                except ValueError as exc:
                    raise _BadRequest("bad chunk size") from exc
                total += size
                if total > MAX_REQUEST_BODY:
                    raise _BadRequest("request body too large")
                if size == 0:
                    while reader.readline() not in (b"\r\n", b"\n", None):
                        pass  # trailer fields: nothing to keep
                    return b"".join(chunks)
                chunks.append(reader.read(size))
                reader.read(2)
        length = req.header("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError as exc:
            raise _BadRequest("bad Content-Length") from exc
        if not 0 <= n <= MAX_REQUEST_BODY:
            raise _BadRequest("request body too large")
        return reader.read(n)

    @staticmethod
    def _request_url(conn: _Connection, req: MirrorRequest) -> str:
        target = req.target
        if req.method == "CONNECT":
            return target
        if target.lower().startswith(("http://", "https://")):
            raw = target
        elif conn.tunnel_scheme is not None:
            raw = f"{conn.tunnel_scheme}://{conn.tunnel_authority}{target}"
        else:
            host = req.header("Host")
            if not host:
                raise _BadRequest("origin-form request without a Host header")
            raw = f"http://{host}{target}"
        try:
            return normalize_url(raw)
        except RouteError as exc:
            raise _BadRequest(str(exc)) from exc

    def _serve_one(self, conn: _Connection) -> bool:
        """Read and answer one request; False when the connection must close."""
        req = self._read_request(conn)
        if req is None:
            return False
        with self._log_lock:
            self._log.append(req)
        logger.debug("Mirror %s %s", req.method, req.url)
        if req.version == "HTTP/1.0":
            keep_alive = "keep-alive" in (req.header("Connection") or "").lower()
        else:
            keep_alive = "close" not in (req.header("Connection") or "").lower()
        if req.method == "CONNECT":
            return self._connect(conn, req)
        return self._respond(conn, req, keep_alive)

    def _connect(self, conn: _Connection, req: MirrorRequest) -> bool:
        if conn.tunnel_scheme is not None:
            raise _BadRequest("CONNECT inside a tunnel")
        try:
            parts = urlsplit(f"//{req.target}")
            host = normalize_host(parts.hostname or "")
            port = parts.port or 443
        except (ValueError, RouteError) as exc:
            raise _BadRequest(f"bad CONNECT target {req.target!r}") from exc
        if not self._is_mirrored(host):
            self._send_not_mirrored(conn, host, keep_alive=False)
            return False
        conn.sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if conn.reader.buf:
            raise _BadRequest("data sent before the tunnel was established")
        first = conn.sock.recv(1, socket.MSG_PEEK)
        if not first:
            return False
        authority = host if ":" not in host else f"[{host}]"
        conn.tunnel_authority = f"{authority}:{port}"
        if first[0] == _TLS_HANDSHAKE_RECORD:
            context = self._ca.server_context(host)
            conn.sock.settimeout(HANDSHAKE_TIMEOUT)
            tls_sock = context.wrap_socket(
                conn.sock, server_side=True, do_handshake_on_connect=False
            )
            conn.sock = tls_sock
            if self._stopping.is_set():  # stop() may have missed the socket while it changed
                return False
            tls_sock.do_handshake()
            tls_sock.settimeout(IDLE_TIMEOUT)
            conn.reader = _Reader(tls_sock)
            conn.tunnel_scheme = "https"
        else:
            conn.tunnel_scheme = "http"
        return True

    def _is_mirrored(self, host: str) -> bool:
        with self._lock:
            return host in self._hosts

    def _respond(self, conn: _Connection, req: MirrorRequest, keep_alive: bool) -> bool:
        host = req.host
        if not self._is_mirrored(host):
            self._send_not_mirrored(conn, host, keep_alive)
            return keep_alive
        with self._lock:
            defaults = self._host_defaults.get(host, _HostDefaults())
        if req.method not in ALLOWED_METHODS:
            resp = MirrorResponse(status=405, headers={"Allow": ", ".join(ALLOWED_METHODS)})
            return self._send(conn, req, resp, None, "text/html", defaults, keep_alive)
        with self._lock:
            challenge = self._challenges.get(host)
        page = challenge.gate(req) if challenge is not None else None
        if page is not None:
            return self._send(conn, req, page, None, "text/html", defaults, keep_alive)
        static, resolved = self._resolve(req, defaults)
        if static is not None:
            content_type = static.content_type
            resp = static.route
        else:
            assert resolved is not None
            resp = resolved
            content_type = resp.content_type or guess_content_type(urlsplit(req.url).path)
        if resp.fail_times:
            with self._lock:
                count = self._fail_counts.get(req.url, 0)
                failing = count < resp.fail_times
                if failing:
                    self._fail_counts[req.url] = count + 1
            if failing:
                resp = MirrorResponse(status=resp.fail_status, headers=resp.fail_headers)
                static, content_type = None, "text/html"
        return self._send(conn, req, resp, static, content_type, defaults, keep_alive)

    def _resolve(
        self, req: MirrorRequest, defaults: _HostDefaults
    ) -> tuple[_Static | None, MirrorResponse | None]:
        """The static route or the handler's response for a request, else the 404 page."""
        host = req.host
        with self._lock:
            static = self._routes.get(req.url)
            handlers = list(self._handlers.get(host, ()))
        if static is not None:
            return static, None
        path = urlsplit(req.url).path
        for prefix, handler in handlers:
            if path.startswith(prefix):
                try:
                    resp = handler(req)
                except Exception:  # a broken test handler must not kill the connection
                    logger.exception("Mirror handler for %s%s failed on %s", host, prefix, req.url)
                    return None, MirrorResponse(status=500)
                if resp is not None:
                    return None, resp
                break
        if defaults.http_redirect and req.url.startswith("http://"):
            return None, MirrorResponse(redirect="https://" + req.url[len("http://") :])
        if defaults.not_found is not None:
            return None, defaults.not_found
        return None, MirrorResponse(status=404, content_type="text/html")

    def _send_not_mirrored(self, conn: _Connection, host: str, keep_alive: bool) -> None:
        logger.debug("Mirror refused unmirrored host %s", host)
        body = f"not mirrored: {host}\n".encode()
        head = self._head(
            502,
            "Bad Gateway",
            [("Content-Type", "text/plain; charset=utf-8")],
            len(body),
            keep_alive,
        )
        conn.sock.sendall(head + body)

    def _try_send_simple(self, conn: _Connection, status: int, body: bytes, ctype: str) -> None:
        head = self._head(
            status, reason_phrase(status), [("Content-Type", ctype)], len(body), False
        )
        try:
            conn.sock.sendall(head + body)
        except OSError:
            logger.debug("Could not send %d to %s", status, conn.client)

    def _head(
        self,
        status: int,
        reason: str,
        headers: Sequence[tuple[str, str]],
        length: int | None,
        keep_alive: bool,
    ) -> bytes:
        lines = [f"HTTP/1.1 {status} {reason}", f"Date: {self._dates.now()}"]
        lines.extend(f"{name}: {value}" for name, value in headers)
        if length is not None:
            lines.append(f"Content-Length: {length}")
        if not keep_alive:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(
        self,
        conn: _Connection,
        req: MirrorRequest,
        resp: MirrorResponse,
        static: _Static | None,
        content_type: str,
        defaults: _HostDefaults,
        keep_alive: bool,
    ) -> bool:
        """Write one response with its faults; False when the connection must close."""
        status = resp.effective_status
        reason = resp.reason or reason_phrase(status)
        body = resp.body
        if not body and status >= 300 and status not in _NO_BODY_STATUSES:
            body, content_type = _html_page(status, reason), "text/html"
        own = resp.header_items
        own_names = {name.lower() for name, _ in own}
        headers: list[tuple[str, str]] = []
        if "content-type" not in own_names:
            headers.append(("Content-Type", content_type))
        if resp.encoding is not None and "content-encoding" not in own_names:
            headers.append(("Vary", "Accept-Encoding"))
            if resp.force or _accepts(req.header("Accept-Encoding"), resp.encoding):
                body = self._encoded(resp, static, body)
                headers.append(("Content-Encoding", resp.encoding))
        if resp.redirect is not None and "location" not in own_names:
            headers.append(("Location", resp.redirect))
        headers.extend(h for h in defaults.headers if h[0].lower() not in own_names)
        headers.extend(own)
        if status in _NO_BODY_STATUSES:
            body = b""
        chunked = resp.chunked and status not in _NO_BODY_STATUSES and req.version != "HTTP/1.0"
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        truncated = resp.truncate is not None and resp.truncate < len(body)
        keep_alive = keep_alive and not truncated
        if keep_alive and req.version == "HTTP/1.0":
            headers.append(("Connection", "keep-alive"))
        head = self._head(status, reason, headers, None if chunked else len(body), keep_alive)
        if resp.delay and self._stopping.wait(resp.delay):
            raise _ClientGone("server stopping")
        sock = conn.sock
        if req.method == "HEAD":
            sock.sendall(head)
            return keep_alive
        if resp.truncate is not None:
            body = body[: resp.truncate]
        if not chunked and not resp.trickle:
            sock.sendall(head + body)
            return keep_alive
        sock.sendall(head)
        size = resp.chunk_size
        for offset in range(0, len(body), size):
            piece = body[offset : offset + size]
            if offset and resp.trickle and self._stopping.wait(resp.trickle):
                raise _ClientGone("server stopping")
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked and not truncated:
            sock.sendall(b"0\r\n\r\n")
        return keep_alive

    @staticmethod
    def _encoded(resp: MirrorResponse, static: _Static | None, body: bytes) -> bytes:
        assert resp.encoding is not None
        if static is None:
            return _encode(body, resp.encoding, fast=True)
        cached = static.encoded.get(resp.encoding)
        if cached is None:  # two threads may both encode once: harmless
            cached = _encode(body, resp.encoding, fast=False)
            static.encoded[resp.encoding] = cached
        return cached


def serve_forever_cli(argv: Sequence[str] | None = None) -> int:
    """Run the mirror until SIGINT or SIGTERM, printing where it listens."""
    parser = argparse.ArgumentParser(
        prog="python -m crawler.mirror.server",
        description="Loopback HTTP(S) proxy answering saved pages as the real news hosts.",
        epilog="example: python -m crawler.mirror.server --port 8899 --ca-dir /tmp/mirror-ca",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8899, help="port (0: any free port)")
    parser.add_argument(
        "--site",
        action="append",
        type=Path,
        metavar="DIR",
        help="site directory with routes.json (repeatable; default: all of crawler/mirror/sites)",
    )
    parser.add_argument(
        "--ca-dir", type=Path, help="keep (and reuse) the CA here instead of a temporary directory"
    )
    parser.add_argument(
        "--setup",
        action="append",
        default=[],
        metavar="MODULE:FUNCTION",
        help="call FUNCTION(server) before serving, e.g. to add_handler() synthetic pages "
        "(repeatable; example: bench.synthetic:install)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    setups: list[Callable[[MirrorServer], object]] = []
    for spec in args.setup:
        module_name, sep, func_name = spec.partition(":")
        if not sep or not module_name or not func_name:
            parser.error(f"--setup wants MODULE:FUNCTION, got {spec!r}")
        try:
            setups.append(getattr(importlib.import_module(module_name), func_name))
        except (ImportError, AttributeError) as exc:
            parser.error(f"--setup {spec}: {exc}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    server = MirrorServer(args.site, host=args.host, port=args.port, ca_dir=args.ca_dir)
    for setup in setups:
        setup(server)
    with server:
        print(f"MIRROR_PROXY={server.proxy_url}", flush=True)
        print(f"MIRROR_CA={server.ca_cert_path}", flush=True)
        print(f"MIRROR_SPKI={server.spki_sha256}", flush=True)
        print(f"MIRROR_HOSTS={','.join(sorted(server.hosts))}", flush=True)
        while not stop.wait(1.0):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(serve_forever_cli())
