"""The crawl's egress proxy: Chromium's only way out, guarded, and archived from the wire.

Chromium runs with ``--proxy-server`` pointing here and ``--proxy-bypass-list=<-loopback>``,
so every connection it opens — navigations and each redirect hop, subresources, XHR/fetch,
service workers, WebSocket upgrades, preconnects — arrives at this proxy, on 127.0.0.1, in the
crawl's own process. For each one the proxy

* asks the crawl's ``NetGuard`` about the target host before any socket to it opens: a
  forbidden address gets a ``403`` to the browser, a log line naming URL, host, address and
  kind, and a count (``archive/netguard/refused``), exactly as on the Scrapy path;
* terminates HTTPS with a per-crawl CA (crawler/fetch/tls.py) that only this Chromium trusts
  (one SPKI pin), and speaks HTTPS upstream itself: to the site's vetted address, or through
  the crawl's upstream proxy (``ARCHIVE_PROXY``: an operator's proxy, the loopback mirror),
  with the system's trust store or, for the loopback mirror only, its SPKI pins;
* relays the response to the browser byte for byte while it reads it, and hands request and
  response, as they went over the wire (status line and header lines as received, the payload
  with its content coding, transfer coding removed), to the crawl's capture code — the same
  ``CaptureSession.capture`` the Scrapy download handler feeds, with its revisit lookup;
* cuts a body past ``max_body`` bytes on the wire, or past ``max_body`` bytes once its
  gzip/deflate/br coding is undone (counted as it streams, never held whole): the browser
  gets a broken response, the record ``WARC-Truncated: length``, the crawl a count and a line;
* archives a status line that is no valid one as received (counted), never an invented one;
* answers an upstream failure (refused, reset, empty reply, timeout) with a ``502`` naming
  it, logs it with the URL and counts it (``archive/egress/failed/<reason>``); a response cut
  by the upstream is archived as far as it came, ``WARC-Truncated: disconnect``.

Not archived: interim ``1xx`` answers, and the frames of a WebSocket after its ``101``
handshake (the handshake is). Chromium speaks HTTP/1.1 to the proxy (ALPN offers nothing
else), and the proxy HTTP/1.1 upstream.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import ssl
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from crawler.capture.exchange import Exchange, parse_header_lines
from crawler.capture.records import utc_now
from crawler.fetch.netguard import NetGuard, Verdict
from crawler.fetch.tls import CertificateAuthority, der_spki_pin

logger = logging.getLogger(__name__)

STATS_EXCHANGES = "archive/egress/exchanges"
STATS_FAILED = "archive/egress/failed"
STATS_FAILED_REASON = "archive/egress/failed/{reason}"
STATS_TRUNCATED = "archive/egress/truncated"
STATS_BAD_STATUS_LINE = "archive/egress/bad_status_line"
STATS_NOT_ARCHIVED = "archive/egress/not_archived"
STATS_BROWSER_SERVICE = "archive/egress/browser_service_refused"

# Chromium's own services. Debian's Chromium 156 still asks for component updates
# (update2/json) and Google accounts (ListAccounts) with --disable-background-networking,
# --disable-component-update and Playwright's switches; no page needs these, and a crawler must
# not call home. Hosts that serve nothing else are refused at CONNECT; on shared hosts, paths.
BROWSER_SERVICE_HOSTS = frozenset(
    {
        "update.googleapis.com",
        "safebrowsing.googleapis.com",
        "sb-ssl.google.com",
        "optimizationguide-pa.googleapis.com",
        "clientservices.googleapis.com",
        "content-autofill.googleapis.com",
        "redirector.gvt1.com",
        "edgedl.me.gvt1.com",
        "android.clients.google.com",
    }
)
BROWSER_SERVICE_PATHS = (
    ("accounts.google.com", "/ListAccounts"),
    ("accounts.google.com", "/oauth/multilogin"),
    ("clients2.google.com", "/time/"),
    ("clients2.google.com", "/service/update2"),
    ("clients2.googleusercontent.com", "/crx/"),
    ("www.google.com", "/complete/search"),
)


def browser_service(host: str, path: str | None = None) -> bool:
    """Whether a request is Chromium's own (updates, accounts, time), never a page's."""
    if host in BROWSER_SERVICE_HOSTS:
        return True
    return path is not None and any(
        host == h and path.startswith(prefix) for h, prefix in BROWSER_SERVICE_PATHS
    )


EGRESS_HEADER = "X-Newsarchive-Egress"  # on the proxy's own answers (refusals, failures)
_MAX_HEAD = 64 * 1024  # bytes of one request or response head
_MAX_REQUEST_BODY = 32 * 1024 * 1024
_READ = 64 * 1024
_STATUS_LINE = re.compile(rb"(HTTP/\d(?:\.\d)?) (\d{3})(?: (.*))?")
_REQUEST_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) (HTTP/1\.[01])")
_HOP_TO_PROXY = (b"proxy-connection", b"proxy-authorization")
_DEFAULT_PORTS = {"http": 80, "https": 443}

Connect = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
# (method, url) -> more WARC fields for that exchange's records (resource type, page id).
Hints = Callable[[str, str], Mapping[str, str] | None]


class Counter(Protocol):
    def inc_value(self, key: str, count: int = 1, start: int = 0) -> None: ...


class Capture(Protocol):
    def __call__(self, exchange: Exchange) -> object: ...


async def open_tcp(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port, limit=_MAX_HEAD)


class UpstreamError(Exception):
    """The upstream failed; ``reason`` is a short counted name ("refused", "reset", ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class EgressConfig:
    max_body: int = 8 * 1024 * 1024  # wire bytes, and decoded bytes, of one response body
    upstream: str = ""  # http://[user:pass@]host:port of the crawl's own proxy, or ""
    upstream_pins: tuple[str, ...] = ()  # base64 SHA-256 SPKI pins for upstream TLS (mirror)
    connect_timeout: float = 30.0
    read_timeout: float = 60.0


@dataclass(slots=True)
class Refusal:
    url: str
    host: str
    address: str
    kind: str


@dataclass(slots=True)
class Failure:
    url: str
    reason: str
    message: str


@dataclass(slots=True)
class _Request:
    method: str
    url: str
    scheme: str
    host: str
    port: int
    headers: list[tuple[bytes, bytes]]  # as received, minus the ones meant for the proxy
    body: bytes  # as sent (de-chunked)
    raw_body: bytes  # as framed by the browser
    version: str
    upgrade: bool = False


@dataclass(slots=True)
class _Head:
    raw: list[bytes]  # the lines as received, without line ends
    status: int
    protocol: str | None
    reason: str | None
    headers: list[tuple[bytes, bytes]]
    valid: bool


@dataclass(slots=True)
class _Upstream:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    ip: str | None
    used: int = 0


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    found = None
    for key, value in headers:
        if key.strip().lower() == name:
            found = value if found is None else found + b", " + value
    return found


def _tokens(value: bytes | None) -> list[str]:
    if not value:
        return []
    return [t.strip().lower() for t in value.decode("latin-1").split(",") if t.strip()]


class _Inflation:
    """Counts the size of a body once its content codings are undone, as it streams.

    Never holds the inflated bytes: each step is asked for at most what is left of the limit.
    An unknown or broken coding stops the count (the browser finds out on its own).
    """

    def __init__(self, codings: list[str], limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.steps: list[Any] = []
        self.broken = False
        for coding in reversed(codings):
            if coding in ("gzip", "x-gzip"):
                self.steps.append(("zlib", zlib.decompressobj(16 + zlib.MAX_WBITS)))
            elif coding == "deflate":
                self.steps.append(("deflate", None))
            elif coding == "br":
                try:
                    import brotli

                    self.steps.append(("br", brotli.Decompressor()))
                except ImportError:  # pragma: no cover - brotli is a dependency
                    self.broken = True
            elif coding != "identity":
                self.broken = True

    @property
    def active(self) -> bool:
        return bool(self.steps) and not self.broken

    def feed(self, data: bytes) -> bool:
        """False once the decoded size passes the limit."""
        if not self.active:
            return True
        try:
            out = self._run(0, data)
        except Exception:  # a broken stream: not ours to judge
            self.broken = True
            return True
        if not out:
            return True
        self.size += out
        return self.size <= self.limit

    def _run(self, index: int, data: bytes) -> int:
        """Push ``data`` through step ``index`` onwards; the last step's output size."""
        if index == len(self.steps) or not data:
            return len(data) if index == len(self.steps) else 0
        kind, state = self.steps[index]
        total = 0
        budget = self.limit - self.size + 1
        if kind == "deflate" and state is None:
            # zlib-wrapped, as the RFC says, or raw deflate, as some servers send.
            wrapped = len(data) > 1 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            state = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            self.steps[index] = ("zlib", state)
            kind = "zlib"
        if kind == "zlib":
            pending = data
            while pending:
                chunk = state.decompress(pending, _READ)
                pending = state.unconsumed_tail
                total += self._run(index + 1, chunk)
                if self.size + total > self.limit or (not chunk and pending):
                    break
            return total
        # brotli >= 1.2: bounded output per call.
        pending = data
        while True:
            chunk = state.process(pending, output_buffer_limit=_READ)
            pending = b""
            total += self._run(index + 1, chunk)
            if self.size + total > budget or not chunk or state.can_accept_more_data():
                return total


class EgressProxy:
    """An HTTP/1.1 forward proxy on 127.0.0.1 for one crawl's browser (module docstring)."""

    def __init__(
        self,
        config: EgressConfig,
        guard: NetGuard,
        capture: Capture | None,
        *,
        ca: CertificateAuthority | None = None,
        stats: Counter | None = None,
        connect: Connect = open_tcp,
        hints: Hints | None = None,
    ) -> None:
        self.config = config
        self.guard = guard
        self.capture = capture
        self.ca = ca or CertificateAuthority(name="newsarchive crawl egress CA")
        self._own_ca = ca is None
        self.stats = stats
        self.connect = connect
        self.hints = hints
        self.refused: list[Refusal] = []
        self.failures: list[Failure] = []
        self.service_refused: list[str] = []  # Chromium's own requests, refused (never sent)
        self.hosts: list[str] = []  # every host the browser asked for, in order (the proxy log)
        self.captured: dict[str, object] = {}  # url -> the latest capture of it
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._port = 0
        up = urlsplit(config.upstream) if config.upstream else None
        self._upstream = (up.hostname or "", up.port or 80) if up is not None else None
        self._upstream_auth: bytes | None = None
        if up is not None and up.username is not None:
            token = f"{unquote(up.username)}:{unquote(up.password or '')}".encode()
            self._upstream_auth = b"Basic " + base64.b64encode(token)
        self._tls = self._client_context()

    # -- life cycle ----------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve_client, "127.0.0.1", 0, limit=_MAX_HEAD
        )
        self._port = self._server.sockets[0].getsockname()[1]
        logger.info("egress proxy for the browser on %s", self.url)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def spki_sha256(self) -> str:
        """The pin Chromium is given: its only trusted certificate key."""
        return self.ca.spki_sha256

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._own_ca:
            self.ca.cleanup()

    def chromium_args(self) -> list[str]:
        return [
            f"--proxy-server={self.url}",
            # Nothing goes around the proxy, loopback included.
            "--proxy-bypass-list=<-loopback>",
            f"--ignore-certificate-errors-spki-list={self.spki_sha256}",
        ]

    # -- the browser's side ----------------------------------------------------------------
    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        upstreams: dict[tuple[str, str, int], _Upstream] = {}
        try:
            await self._client_loop(reader, writer, upstreams)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError):
            pass  # the browser went away, or gave up on a slow site
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception("egress proxy: a browser connection failed")
        finally:
            for up in upstreams.values():
                up.writer.close()
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _client_loop(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstreams: dict[tuple[str, str, int], _Upstream],
    ) -> None:
        tunnel: tuple[str, str, int] | None = None  # scheme, host, port of a CONNECT tunnel
        while True:
            lines = await _read_head(reader)
            if lines is None:
                return
            match = _REQUEST_LINE.fullmatch(lines[0])
            if match is None:
                await _answer(writer, 400, "Bad Request", "not an HTTP/1.1 request line")
                return
            method = match[1].decode("ascii")
            target = match[2].decode("latin-1")
            headers = parse_header_lines(lines[1:])
            if method == "CONNECT" and tunnel is None:
                host, _, port_text = target.rpartition(":")
                host = host.strip("[]").lower()
                if not host or not port_text.isdigit():
                    await _answer(writer, 400, "Bad Request", f"bad CONNECT target {target!r}")
                    return
                port = int(port_text)
                scheme = "http" if port == 80 else "https"
                url = f"{scheme}://{_authority(host, port, scheme)}/"
                self.hosts.append(host)
                if browser_service(host):
                    self._browser_service(url)
                    await _answer(writer, 403, "Forbidden", "not the page's: the browser's own")
                    return
                verdict = await self._vet(url, host)
                if verdict is None:
                    await _answer(writer, 403, "Forbidden", self._refusal_text())
                    return
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                if scheme == "https":
                    await writer.start_tls(self.ca.server_context(host))
                tunnel = (scheme, host, port)
                continue
            request = await self._read_request(reader, method, target, headers, match, tunnel)
            if request is None:
                await _answer(writer, 400, "Bad Request", f"cannot proxy {target!r}")
                return
            if tunnel is None:
                self.hosts.append(request.host)
            if browser_service(request.host, urlsplit(request.url).path):
                self._browser_service(request.url)
                await _answer(writer, 403, "Forbidden", "not the page's: the browser's own")
                continue
            if tunnel is None and await self._vet(request.url, request.host) is None:
                await _answer(writer, 403, "Forbidden", self._refusal_text())
                continue
            keep = await self._exchange(request, reader, writer, upstreams)
            if not keep:
                return

    async def _read_request(
        self,
        reader: asyncio.StreamReader,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        match: re.Match[bytes],
        tunnel: tuple[str, str, int] | None,
    ) -> _Request | None:
        if tunnel is not None:
            scheme, host, port = tunnel
            if not target.startswith("/"):
                parts = urlsplit(target)
                target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            url = f"{scheme}://{_authority(host, port, scheme)}{target}"
        else:
            parts = urlsplit(target)
            if parts.scheme not in ("http", "ws") or not parts.hostname:
                return None
            scheme, host = "http", parts.hostname.lower()
            try:
                port = parts.port or 80
            except ValueError:
                return None
            url = target if parts.scheme == "http" else "http" + target[2:]
        kept = [(n, v) for n, v in headers if n.strip().lower() not in _HOP_TO_PROXY]
        body, raw = b"", b""
        if "chunked" in _tokens(_header(kept, b"transfer-encoding")):
            body, raw, _ = await _read_chunked(reader, _MAX_REQUEST_BODY, None)
        else:
            length = _header(kept, b"content-length")
            if length is not None:
                if not length.strip().isdigit() or int(length) > _MAX_REQUEST_BODY:
                    return None
                body = raw = await reader.readexactly(int(length))
        upgrade = "upgrade" in _tokens(_header(kept, b"connection"))
        return _Request(
            method, url, scheme, host, port, kept, body, raw, match[3].decode(), upgrade
        )

    async def _vet(self, url: str, host: str) -> Verdict | None:
        """The guard's verdict for ``host``, or None (refused, logged and counted)."""
        verdict = await self.guard.vet(host, proxied=self._upstream is not None)
        if not verdict.refused:
            return verdict
        assert verdict.kind is not None and verdict.address is not None
        self.guard.count(verdict.kind)
        self.refused.append(Refusal(url, host, verdict.address, verdict.kind))
        logger.warning("Refused %s in the browser: %s", url, verdict.reason())
        return None

    # -- one exchange --------------------------------------------------------------------
    async def _exchange(
        self,
        request: _Request,
        client_reader: asyncio.StreamReader,
        client: asyncio.StreamWriter,
        upstreams: dict[tuple[str, str, int], _Upstream],
    ) -> bool:
        """Relay one request and its response; False when the browser connection must end."""
        key = (request.scheme, request.host, request.port)
        date = utc_now()
        for attempt in (0, 1):
            up = upstreams.get(key)
            fresh = up is None
            try:
                if up is None:
                    up = upstreams[key] = await self._open(request)
                await self._send(up, request)
                head = await self._read_response_head(up, request)
            except UpstreamError as exc:
                upstreams.pop(key, None)
                if up is not None:
                    up.writer.close()
                if (
                    exc.reason == "empty"
                    and not fresh
                    and attempt == 0
                    and request.method
                    in (
                        "GET",
                        "HEAD",
                        "OPTIONS",
                    )
                ):
                    continue  # a kept-alive connection the site had closed: once more, anew
                self._failed(request.url, exc.reason, str(exc))
                await _answer(client, 502, "Bad Gateway", f"{request.url} failed: {exc}")
                return False
            break
        assert up is not None
        up.used += 1
        keep = await self._relay(request, head, up, client, upstreams, key, date)
        if head.status == 101 and head.valid:
            await _pipe(client_reader, client, up)
            return False
        return keep

    async def _relay(
        self,
        request: _Request,
        head: _Head,
        up: _Upstream,
        client: asyncio.StreamWriter,
        upstreams: dict[tuple[str, str, int], _Upstream],
        key: tuple[str, str, int],
        date: Any,
    ) -> bool:
        client.write(b"\r\n".join(head.raw) + b"\r\n\r\n")
        if not head.valid:
            self._count(STATS_BAD_STATUS_LINE)
            logger.warning(
                "%s: the site sent no valid status line (%r); archived as received",
                request.url,
                head.raw[0][:80],
            )
        te = _tokens(_header(head.headers, b"transfer-encoding"))
        length = _header(head.headers, b"content-length")
        no_body = request.method == "HEAD" or head.status in (204, 304) or 100 <= head.status < 200
        codings = _tokens(_header(head.headers, b"content-encoding"))
        inflation = _Inflation(codings, self.config.max_body)
        body = bytearray()
        truncated: str | None = None
        reusable = head.valid and "close" not in _tokens(_header(head.headers, b"connection"))
        try:
            async with asyncio.timeout(self.config.read_timeout):
                if no_body or head.status == 101:
                    pass
                elif head.valid and te and te[-1] == "chunked":
                    decoded, _, truncated = await _read_chunked(
                        up.reader, self.config.max_body, client, inflation
                    )
                    body += decoded
                elif head.valid and length is not None and length.strip().isdigit():
                    truncated = await _read_length(
                        up.reader, int(length), self.config.max_body, client, body, inflation
                    )
                else:
                    reusable = False
                    truncated = await _read_to_close(
                        up.reader, self.config.max_body, client, body, inflation
                    )
                await client.drain()
        except TimeoutError:
            truncated = "time"
        except (ConnectionError, asyncio.IncompleteReadError):
            truncated = "disconnect"
        if truncated is not None:
            reusable = False
            why = {
                "length": f"past {self.config.max_body} bytes"
                + (" once decoded" if inflation.size > self.config.max_body else ""),
                "disconnect": (
                    "the browser went away mid-body"
                    if client.is_closing()
                    else "the site closed the connection mid-body"
                ),
                "time": f"no data for {self.config.read_timeout:g} s",
            }[truncated]
            self._count(STATS_TRUNCATED)
            self._failed(request.url, f"truncated-{truncated}", f"response cut: {why}")
        self._record(request, head, bytes(body), up.ip, date, truncated)
        if head.status == 101 and head.valid:
            upstreams.pop(key, None)  # the connection is the WebSocket's now
            return False
        if not reusable:
            upstreams.pop(key, None)
            up.writer.close()
        if truncated is not None:
            return False
        return "close" not in _tokens(_header(request.headers, b"connection"))

    def _record(
        self,
        request: _Request,
        head: _Head,
        body: bytes,
        ip: str | None,
        date: Any,
        truncated: str | None,
    ) -> None:
        self._count(STATS_EXCHANGES)
        if self.capture is None:
            return
        extra = self.hints(request.method, request.url) if self.hints is not None else None
        exchange = Exchange(
            url=request.url,
            method=request.method,
            request_headers=request.headers,
            request_body=request.body,
            status=head.status if head.valid else 0,
            protocol=head.protocol,
            reason=head.reason,
            response_headers=head.headers,
            body=body,
            date=date,
            ip_address=ip,
            truncated=truncated,
            status_line=None if head.valid else head.raw[0],
            warc_fields=extra or None,
        )
        try:
            self.captured[request.url] = self.capture(exchange)
        except ValueError as exc:
            # A URL or header that cannot be written faithfully (CR/LF in it).
            self._count(STATS_NOT_ARCHIVED)
            logger.warning("not archiving %s from the browser: %s", request.url, exc)

    # -- the site's side -----------------------------------------------------------------
    def _client_context(self) -> ssl.SSLContext:
        if self.config.upstream_pins:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the pin below is the check
        else:
            ctx = ssl.create_default_context()
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    async def _open(self, request: _Request) -> _Upstream:
        timeout = self.config.connect_timeout
        ip: str | None = None
        try:
            async with asyncio.timeout(timeout):
                if self._upstream is not None:
                    reader, writer = await self.connect(*self._upstream)
                    if request.scheme == "https":
                        await self._connect_through(reader, writer, request)
                else:
                    verdict = await self.guard.vet(request.host, proxied=False)
                    if verdict.refused:  # the answer changed since the CONNECT: refuse again
                        raise UpstreamError("refused-address", verdict.reason())
                    if verdict.addresses:
                        ip = verdict.addresses[0]
                    elif self.guard.config.enabled:
                        raise UpstreamError("dns", f"{request.host} did not resolve")
                    reader, writer = await self.connect(ip or request.host, request.port)
                if request.scheme == "https":
                    await writer.start_tls(self._tls, server_hostname=request.host)
                    if self.config.upstream_pins:
                        self._check_pin(writer, request.host)
        except TimeoutError:
            raise UpstreamError("timeout", f"no connection within {timeout:g} s") from None
        except ConnectionRefusedError as exc:
            raise UpstreamError("refused", f"connection refused: {exc}") from None
        except ssl.SSLError as exc:
            raise UpstreamError("tls", f"TLS with {request.host} failed: {exc}") from None
        except OSError as exc:
            raise UpstreamError("connect", f"cannot connect: {exc}") from None
        return _Upstream(reader, writer, ip)

    def _check_pin(self, writer: asyncio.StreamWriter, host: str) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der or der_spki_pin(der) not in self.config.upstream_pins:
            raise UpstreamError(
                "tls", f"the certificate of {host} is not one of ARCHIVE_RENDER_TRUSTED_SPKI"
            )

    async def _connect_through(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: _Request
    ) -> None:
        authority = _authority(request.host, request.port, "")
        lines = [f"CONNECT {authority} HTTP/1.1".encode(), b"Host: " + authority.encode()]
        if self._upstream_auth is not None:
            lines.append(b"Proxy-Authorization: " + self._upstream_auth)
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
        await writer.drain()
        head = await _read_head(reader)
        if head is None:
            raise UpstreamError("upstream-proxy", "the upstream proxy closed on CONNECT")
        match = _STATUS_LINE.fullmatch(head[0])
        if match is None or match[2] != b"200":
            raise UpstreamError(
                "upstream-proxy",
                f"the upstream proxy answered CONNECT {authority} with {head[0][:80]!r}",
            )

    async def _send(self, up: _Upstream, request: _Request) -> None:
        parts = urlsplit(request.url)
        if self._upstream is not None and request.scheme == "http":
            target = request.url  # absolute-form to the upstream proxy
        else:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"{request.method} {target} {request.version}".encode("latin-1")]
        lines += [name + b": " + value for name, value in request.headers]
        if self._upstream is not None and request.scheme == "http" and self._upstream_auth:
            lines.append(b"Proxy-Authorization: " + self._upstream_auth)
        try:
            up.writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + request.raw_body)
            await up.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise UpstreamError("empty", f"the site closed the connection: {exc}") from None

    async def _read_response_head(self, up: _Upstream, request: _Request) -> _Head:
        try:
            async with asyncio.timeout(self.config.read_timeout):
                while True:
                    lines = await _read_head(up.reader)
                    if lines is None:
                        raise UpstreamError("empty", "the site closed without an answer")
                    match = _STATUS_LINE.fullmatch(lines[0])
                    if match is None:
                        return _Head(lines, 0, None, None, parse_header_lines(lines[1:]), False)
                    status = int(match[2])
                    if 100 <= status < 200 and status != 101:
                        continue  # interim (100 Continue, 103 Early Hints): not archived
                    reason = match[3].decode("latin-1") if match[3] is not None else ""
                    return _Head(
                        lines,
                        status,
                        match[1].decode("ascii"),
                        reason,
                        parse_header_lines(lines[1:]),
                        True,
                    )
        except TimeoutError:
            raise UpstreamError(
                "timeout", f"no answer within {self.config.read_timeout:g} s"
            ) from None
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise UpstreamError("reset", f"the connection was reset: {exc}") from None
        except (ValueError, asyncio.LimitOverrunError):
            raise UpstreamError("bad-head", "the response head is over 64 KiB") from None

    # -- bookkeeping ---------------------------------------------------------------------
    def _count(self, key: str, count: int = 1) -> None:
        if self.stats is not None:
            self.stats.inc_value(key, count)

    def _refusal_text(self) -> str:
        last = self.refused[-1]
        where = last.host if last.host == last.address else f"{last.host} is {last.address},"
        return f"refused {last.url}: {where} a {last.kind} address (not in ARCHIVE_NETGUARD_ALLOW)"

    def _browser_service(self, url: str) -> None:
        self._count(STATS_BROWSER_SERVICE)
        self.service_refused.append(url)
        logger.debug("Refused %s: Chromium's own service, no page's request", url)

    def _failed(self, url: str, reason: str, message: str) -> None:
        self._count(STATS_FAILED)
        self._count(STATS_FAILED_REASON.format(reason=reason))
        self.failures.append(Failure(url, reason, message))
        logger.warning("browser request %s failed: %s", url, message)


@dataclass(slots=True)
class _Sink:
    """Where a body goes as it is read: to the browser, into the record, through the count."""

    client: asyncio.StreamWriter | None
    inflation: _Inflation | None
    limit: int
    body: bytearray = field(default_factory=bytearray)

    def take(self, raw: bytes, payload: bytes) -> bool:
        """Forward ``raw`` (as framed) and keep ``payload``; False once past a limit."""
        if len(self.body) + len(payload) > self.limit:
            return False
        if self.inflation is not None and not self.inflation.feed(payload):
            return False
        self.body += payload
        if self.client is not None:
            self.client.write(raw)
        return True


async def _read_head(reader: asyncio.StreamReader) -> list[bytes] | None:
    """The lines of one head (CRLF or bare LF), or None at a clean end of stream."""
    lines: list[bytes] = []
    size = 0
    while True:
        line = await reader.readline()
        if not line:
            if lines:
                raise asyncio.IncompleteReadError(b"", None)
            return None
        size += len(line)
        if size > _MAX_HEAD:
            raise ValueError("head too long")
        line = line.rstrip(b"\r\n")
        if not line:
            if not lines:
                continue  # stray empty lines before a head (RFC 9112 2.2)
            return lines
        lines.append(line)


async def _read_length(
    reader: asyncio.StreamReader,
    length: int,
    limit: int,
    client: asyncio.StreamWriter,
    body: bytearray,
    inflation: _Inflation,
) -> str | None:
    sink = _Sink(client, inflation, limit, body)
    left = length
    while left:
        data = await reader.read(min(left, _READ))
        if not data:
            return "disconnect"
        left -= len(data)
        if not sink.take(data, data):
            return "length"
        await client.drain()
    return None


async def _read_to_close(
    reader: asyncio.StreamReader,
    limit: int,
    client: asyncio.StreamWriter,
    body: bytearray,
    inflation: _Inflation,
) -> str | None:
    sink = _Sink(client, inflation, limit, body)
    while True:
        data = await reader.read(_READ)
        if not data:
            return None
        if not sink.take(data, data):
            return "length"
        await client.drain()


async def _read_chunked(
    reader: asyncio.StreamReader,
    limit: int,
    client: asyncio.StreamWriter | None,
    inflation: _Inflation | None = None,
) -> tuple[bytes, bytes, str | None]:
    """De-chunk a body: (payload, raw bytes when no client takes them, truncation)."""
    sink = _Sink(client, inflation, limit)
    raw = bytearray()

    def forward(data: bytes, payload: bytes) -> bool:
        if client is None:
            raw.extend(data)
            if len(sink.body) + len(payload) > limit:
                return False
            sink.body += payload
            return True
        return sink.take(data, payload)

    while True:
        line = await reader.readline()
        if not line:
            return bytes(sink.body), bytes(raw), "disconnect"
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return bytes(sink.body), bytes(raw), "disconnect"
        if not forward(line, b""):
            return bytes(sink.body), bytes(raw), "length"
        if size == 0:
            while True:  # trailer lines, up to the empty one
                trailer = await reader.readline()
                forward(trailer, b"")
                if trailer in (b"\r\n", b"\n", b""):
                    return bytes(sink.body), bytes(raw), None
        left = size
        while left:
            data = await reader.read(min(left, _READ))
            if not data:
                return bytes(sink.body), bytes(raw), "disconnect"
            left -= len(data)
            if not forward(data, data):
                return bytes(sink.body), bytes(raw), "length"
            if client is not None:
                await client.drain()
        end = await reader.readline()
        forward(end, b"")


async def _answer(writer: asyncio.StreamWriter, status: int, reason: str, text: str) -> None:
    """The proxy's own answer, marked (``EGRESS_HEADER``) so that it is never taken for the
    site's: a page whose document got one is a failed page, not a page to archive."""
    body = (text + "\n").encode("utf-8", "replace")
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"{EGRESS_HEADER}: {status}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def _pipe(
    client_reader: asyncio.StreamReader, client: asyncio.StreamWriter, up: _Upstream
) -> None:
    """A WebSocket after its handshake: bytes both ways, unarchived, until one side ends."""

    async def copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(_READ):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    await asyncio.gather(copy(client_reader, up.writer), copy(up.reader, client))


def _authority(host: str, port: int, scheme: str) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if _DEFAULT_PORTS.get(scheme) == port else f"{name}:{port}"
