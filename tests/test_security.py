"""Security properties (issue 8, item 4): egress guard, key confinement, no leaked secrets, serve.

No test here sends a packet off loopback: the guard is tested by its decision (a stub resolver,
connection calls recorded and refused), and the end-to-end crawl only redirects to loopback
addresses outside the allowed one.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import scrapy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler

from crawler.access.serve import check_bind
from crawler.crawl.addon import Addon
from crawler.crawl.spider import NewsSpider
from crawler.fetch.netguard import (
    STATS_REFUSED,
    ForbiddenAddressError,
    NetGuard,
    NetGuardConfig,
    address_kind,
)
from crawler.layout import safe_key_part, text_key
from crawler.store.base import LocalStore, StoreError, check_key
from crawler.store.s3 import S3Config, S3Store
from crawler.store.spool import Backlog
from tests.conftest import ROOT, venv_program
from tests.crawl_helper import SIMPLE_RULES, run_crawl

# ================================================================== 1. egress guard

FORBIDDEN = {
    "internal.example.test": "10.0.0.1",
    "metadata.example.test": "169.254.169.254",
    "v6local.example.test": "::1",
    "loop.example.test": "127.0.0.1",
    "ula.example.test": "fd00::1",
    "cgnat.example.test": "100.64.1.1",
    "mapped.example.test": "::ffff:192.168.1.1",
    "multicast.example.test": "224.0.0.251",
    "zero.example.test": "0.0.0.0",
}
PUBLIC = {"news.example.test": "93.184.216.34", "v6news.example.test": "2606:4700::1111"}
MIRROR_PROXY = "http://127.0.0.1:3128"


class StubResolver:
    """Name -> address from the tables above; records every lookup."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        if host in FORBIDDEN:
            return [FORBIDDEN[host]]
        if host in PUBLIC:
            return [PUBLIC[host]]
        raise OSError(f"no such name {host}")


def make_guard(**values: str) -> tuple[NetGuard, StubResolver, Any]:
    crawler = get_crawler(scrapy.Spider, {"ADDONS": {Addon: 0}, **values})
    crawler.stats.open_spider()
    resolver = StubResolver()
    guard = NetGuard(NetGuardConfig.from_settings(crawler.settings), resolver, crawler.stats)
    return guard, resolver, crawler.stats


def check(guard: NetGuard, url: str, **meta: str) -> None:
    asyncio.run(guard.check(scrapy.Request(url, meta=meta)))


@pytest.mark.parametrize("host", sorted(FORBIDDEN))
def test_a_name_resolving_to_a_forbidden_address_is_refused_and_counted(host: str) -> None:
    guard, resolver, stats = make_guard()
    with pytest.raises(ForbiddenAddressError) as info:
        check(guard, f"https://{host}/latest/meta-data/")
    assert info.value.address == FORBIDDEN[host]
    assert resolver.asked == [host]
    assert stats.get_value(STATS_REFUSED) == 1
    assert stats.get_value(f"{STATS_REFUSED}/{info.value.kind}") == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://[::1]:8080/",
        "http://[fd00::1]/",
        "http://127.0.0.2/",
        "http://[::ffff:169.254.169.254]/",
        "http://localhost:6379/",
        "http://admin.localhost/",
        "http://0.0.0.0/",
    ],
)
@pytest.mark.parametrize("proxied", [False, True], ids=["direct", "via-proxy"])
def test_ip_literals_and_local_names_are_refused_direct_and_through_the_proxy(
    url: str, proxied: bool
) -> None:
    guard, resolver, stats = make_guard(ARCHIVE_PROXY=MIRROR_PROXY)
    with pytest.raises(ForbiddenAddressError):
        check(guard, url, **({"proxy": MIRROR_PROXY} if proxied else {}))
    assert resolver.asked == []  # decided without a lookup
    assert stats.get_value(STATS_REFUSED) == 1


def test_public_names_pass_and_the_trusted_proxy_resolves_targets_itself() -> None:
    guard, resolver, stats = make_guard(ARCHIVE_PROXY=MIRROR_PROXY)
    for host in PUBLIC:
        check(guard, f"https://{host}/a")
    assert resolver.asked == sorted(PUBLIC, key=list(PUBLIC).index)
    # Through ARCHIVE_PROXY (loopback, named by the operator): the proxy resolves the target.
    check(guard, "https://internal.example.test/", proxy=MIRROR_PROXY)
    assert "internal.example.test" not in resolver.asked
    assert stats.get_value(STATS_REFUSED) is None


def test_a_proxy_not_named_by_archive_proxy_is_checked_like_a_target() -> None:
    guard, _, _ = make_guard(ARCHIVE_PROXY=MIRROR_PROXY)
    for proxy in ("http://10.1.2.3:3128", "http://internal.example.test:3128", "127.0.0.1:9"):
        with pytest.raises(ForbiddenAddressError):
            check(guard, "https://news.example.test/", proxy=proxy)
    # No ARCHIVE_PROXY at all: even a loopback proxy in meta (from the environment) is refused.
    guard, _, _ = make_guard()
    with pytest.raises(ForbiddenAddressError):
        check(guard, "https://news.example.test/", proxy=MIRROR_PROXY)


def test_allowed_networks_and_the_off_switch() -> None:
    guard, _, _ = make_guard(ARCHIVE_NETGUARD_ALLOW="10.0.0.0/8, fd00::/8")
    check(guard, "https://internal.example.test/")
    check(guard, "https://ula.example.test/")
    with pytest.raises(ForbiddenAddressError):
        check(guard, "https://metadata.example.test/")
    guard, _, _ = make_guard(ARCHIVE_NETGUARD_ENABLED="False")
    check(guard, "http://169.254.169.254/")
    with pytest.raises(ValueError, match="ARCHIVE_NETGUARD_ALLOW"):
        make_guard(ARCHIVE_NETGUARD_ALLOW="intranet")


def test_the_guard_is_on_by_default() -> None:
    config = NetGuardConfig.from_settings(Settings())  # not even the add-on's defaults
    assert config.enabled
    assert config.allow == ()


_V4_FORBIDDEN_NETS = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "0.0.0.0/8",
    "224.0.0.0/4",
    "240.0.0.0/4",
]


@settings(max_examples=300)
@given(net=st.sampled_from(_V4_FORBIDDEN_NETS), offset=st.integers(0, 2**24 - 1))
def test_every_address_of_a_forbidden_v4_network_is_forbidden_in_every_spelling(
    net: str, offset: int
) -> None:
    import ipaddress

    network = ipaddress.IPv4Network(net)
    ip = network[offset % network.num_addresses]
    assert address_kind(ip) is not None
    assert address_kind(f"::ffff:{ip}") is not None  # IPv4-mapped
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (int(ip) << 80))
    assert address_kind(sixtofour) is not None


def test_the_download_handler_refuses_before_any_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real handler: the decision comes before the reactor is asked for a connection."""
    from twisted.internet import reactor

    from crawler.fetch.download import ArchiveHTTP11DownloadHandler

    attempts: list[tuple[Any, ...]] = []

    def record(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise AssertionError(f"a connection was attempted: {args[:2]}")

    for name in ("connectTCP", "connectSSL", "connectUNIX"):
        monkeypatch.setattr(reactor, name, record, raising=False)
    crawler = get_crawler(scrapy.Spider, {"ADDONS": {Addon: 0}})
    crawler.stats.open_spider()
    handler = ArchiveHTTP11DownloadHandler(crawler)
    resolver = StubResolver()
    handler.netguard.resolve = resolver
    for host, address in FORBIDDEN.items():
        for scheme in ("http", "https"):
            request = scrapy.Request(f"{scheme}://{host}/x")
            with pytest.raises(ForbiddenAddressError, match=address.replace(".", r"\.")):
                asyncio.run(handler.download_request(request))
    assert attempts == []
    assert crawler.stats.get_value(STATS_REFUSED) == 2 * len(FORBIDDEN)


def test_a_chromium_page_to_a_forbidden_address_is_refused_before_the_browser_starts() -> None:
    """The page itself, on a stand-in handler; Chromium's own requests (subresources, each
    redirect hop, preconnects) meet the same guard in its egress proxy (test_egress.py,
    test_render_egress.py)."""
    from crawler.fetch.chromium import RenderingDownloadHandler
    from crawler.fetch.render import Renderers

    guard, _, stats = make_guard(ARCHIVE_PROXY=MIRROR_PROXY)
    handler = SimpleNamespace(
        _crawler=get_crawler(scrapy.Spider),
        netguard=guard,
        render=SimpleNamespace(block=frozenset(), proxy=MIRROR_PROXY),
        _user_abort=None,
        renderers=Renderers(),
    )
    page = scrapy.Request("https://metadata.example.test/", meta={"playwright": True})
    with pytest.raises(ForbiddenAddressError):  # before the browser is started
        asyncio.run(RenderingDownloadHandler.download_request(handler, page))  # type: ignore[arg-type]
    assert stats.get_value(STATS_REFUSED) == 1


# -- end to end: a crawl whose allowed host redirects to forbidden loopback addresses --------


class _Recorder(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]]
    redirects: ClassVar[dict[str, str]]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        target = self.redirects.get(self.path)
        self.send_response(302 if target else 404)
        if target:
            self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _server(host: str, family: int = socket.AF_INET) -> tuple[ThreadingHTTPServer, list[str]]:
    hits: list[str] = []
    handler = type("Handler", (_Recorder,), {"hits": hits, "redirects": {}})

    class Server(ThreadingHTTPServer):
        address_family = family

    server = Server((host, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, hits


class RedirectSpider(NewsSpider):
    """Asks the allowed test server for the URLs given (``urls``, comma-separated)."""

    urls: str = ""  # its own spider argument (-a urls=...), declared

    name = "redirects"
    rules = SIMPLE_RULES

    def article_key(self, url: str) -> str | None:
        return None

    async def start(self) -> AsyncIterator[Any]:
        for url in str(getattr(self, "urls", "")).split(","):
            yield scrapy.Request(
                url, callback=self.parse_page, errback=self.request_failed, dont_filter=True
            )

    def parse_page(self, response: Any) -> Iterator[Any]:
        yield from ()


def test_a_redirect_to_a_forbidden_address_is_dropped_in_a_real_crawl(tmp_path: Path) -> None:
    allowed, allowed_hits = _server("127.0.0.1")
    other, other_hits = _server("127.0.0.2")
    servers = [allowed, other]
    targets = [f"http://127.0.0.2:{other.server_address[1]}/secret"]
    six_hits: list[str] = []
    if socket.has_ipv6:
        try:
            six, six_hits = _server("::1", socket.AF_INET6)
            servers.append(six)
            targets.append(f"http://[::1]:{six.server_address[1]}/secret")
        except OSError:
            pass  # no IPv6 loopback here: the 127.0.0.2 hop still shows the rule
    base = f"http://127.0.0.1:{allowed.server_address[1]}"
    redirects = {f"/r{i}": target for i, target in enumerate(targets)}
    redirects["/chain"] = "/r0"  # an allowed hop first, then the forbidden one
    allowed.RequestHandlerClass.redirects = redirects  # type: ignore[attr-defined]
    try:
        result = run_crawl(
            "tests.test_security:RedirectSpider",
            tmp_path / "out.json",
            settings={
                "ARCHIVE_STORE_URI": str(tmp_path / "store"),
                "ARCHIVE_NETGUARD_ALLOW": "127.0.0.1/32",
                "ROBOTSTXT_OBEY": "False",
                "ARCHIVE_WACZ_ENABLED": "False",
            },
            spider_args={"urls": ",".join(f"{base}{path}" for path in redirects)},
        )
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    refused = len(redirects)
    assert result.stats.get(STATS_REFUSED) == refused, result.stderr[-3000:]
    assert result.stats.get(f"{STATS_REFUSED}/loopback") == refused
    assert result.report["skipped"].get("download-error/ForbiddenAddressError") == refused
    # The allowed host was reached (/chain's hop to /r0 too) ...
    assert sorted(allowed_hits) == sorted([*redirects, "/r0"])
    assert other_hits == [] and six_hits == []  # ... the forbidden ones never
    assert result.stderr.count("Refused http://") == refused


# ================================================================== 2. keys and paths

HOSTILE_IDS = [
    "..",
    ".",
    "../../etc/passwd",
    "/etc/passwd",
    "%2e%2e",
    "%2e%2e%2fetc%2fpasswd",
    "%252e%252e%252f",
    "..%2f..%2f",
    "a/../../b",
    "a\x00b",
    "\x00",
    "．．/．．/etc",  # fullwidth dots
    "\u2024\u2024/x",  # one-dot leaders
    "..\\..\\windows",
    "C:\\Windows",
    "~/.ssh/id_rsa",
    "a" * 10_000,
    "é" * 500,
    "\u202e" + "txt.exe",
    " ",
    "",
    "-",
    "...",
    "a//b",
    "a/./b",
    "\n",
    "//server/share",
    "file:///etc/passwd",
]


def _inside(path: Path, root: Path) -> bool:
    return os.path.commonpath([os.path.abspath(path), os.path.abspath(root)]) == str(
        os.path.abspath(root)
    )


def _confined(key: str, tmp: Path) -> None:
    """A key is refused, or every place it maps to stays under its root or prefix."""
    try:
        check_key(key)
    except StoreError:
        ok = False
    else:
        ok = True
    store = LocalStore(tmp / "store")
    backlog = Backlog(tmp / "spool", "crawl-1", store.uri)
    s3 = S3Store(S3Config.from_uri("s3://bucket/pre/fix"), client=object())
    for place in (store._path, backlog.path_of, s3._key):
        if not ok:
            with pytest.raises(StoreError):
                place(key)
            continue
        mapped = place(key)
        if isinstance(mapped, Path):
            root = store.root if place == store._path else backlog.files
            assert _inside(mapped, root) and mapped != Path(os.path.abspath(root)), key
        else:
            assert mapped.startswith("pre/fix/") and ".." not in mapped.split("/"), key
    if ok:
        assert "\x00" not in key and not key.startswith("/")
        assert ".." not in key.split("/") and "." not in key.split("/")


@pytest.mark.parametrize("hostile", HOSTILE_IDS, ids=range(len(HOSTILE_IDS)))
def test_hostile_ids_become_one_safe_segment_and_keys_stay_in_the_prefix(
    hostile: str, tmp_path: Path
) -> None:
    part = safe_key_part(hostile)
    assert part and part not in (".", "..") and "/" not in part and len(part) <= 120
    assert len(part.encode()) <= 255  # one file name on any file system
    key = text_key("irna", hostile, "2025-06-01T00:00:00Z", 3)
    assert key.startswith("text/irna/2025/06/01/")
    _confined(key, tmp_path)
    _confined(hostile, tmp_path)
    _confined(f"text/irna/{hostile}", tmp_path)


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(
        st.one_of(
            st.sampled_from(["..", ".", "", "%2e%2e", "\x00", "a", "text", "\\", "~", "．．"]),
            st.text(min_size=1, max_size=12),
        ),
        min_size=1,
        max_size=6,
    ),
    absolute=st.booleans(),
)
def test_random_keys_are_refused_or_confined(
    parts: list[str], absolute: bool, tmp_path: Path
) -> None:
    key = ("/" if absolute else "") + "/".join(parts)
    _confined(key, tmp_path)


@settings(max_examples=400)
@given(st.text(max_size=300))
def test_any_article_id_gives_a_valid_text_key(article_id: str) -> None:
    key = text_key("tdi", article_id, "2025-01-02T03:04:05Z")
    assert check_key(key) == key
    assert key.count("/") == 5 and key.endswith(".txt")


@pytest.mark.parametrize(
    "uri", ["s3://bucket/../x", "s3://bucket/a/../../x", "s3://bucket/a/./b", "s3://bucket/a\x00"]
)
def test_an_s3_prefix_cannot_climb(uri: str) -> None:
    with pytest.raises(StoreError):
        S3Config.from_uri(uri)


# ================================================================== 3. credentials

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzSECRETzz"
SECRET_SETTING = "xQ9vLmSETTINGsecretKEYdoNOTprint0000abcd"
KEY_ID = "AKIAZZZFAKEKEYID0001"


def _newsarchive(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    program = venv_program("newsarchive")
    cmd = [str(program)] if program else [sys.executable, "-m", "crawler.ops.cli"]
    return subprocess.run(
        [*cmd, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _all_bytes(root: Path) -> Iterator[tuple[Path, bytes]]:
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        yield path, data
        if path.name.endswith(".gz") or path.suffix in (".wacz",):
            try:
                if path.suffix == ".wacz":
                    import zipfile

                    with zipfile.ZipFile(path) as zf:
                        for name in zf.namelist():
                            inner = zf.read(name)
                            yield path / name, inner
                            if name.endswith(".gz"):
                                yield path / name, gzip.decompress(inner)
                else:
                    yield path, gzip.decompress(data)
            except (OSError, EOFError):
                pass  # not one gzip stream: the raw bytes were checked


def _leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [s for s in (SECRET, SECRET_SETTING) if s.encode() in data]


def test_secrets_never_appear_in_any_output_of_a_crawl_or_a_command(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_SESSION_TOKEN": SECRET,
        "ARCHIVE_SPOOL_DIR": str(tmp_path / "spool"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    secret_settings = [
        "-s",
        f"AWS_SECRET_ACCESS_KEY={SECRET_SETTING}",
        "-s",
        f"AWS_SESSION_TOKEN={SECRET_SETTING}",
        "-s",
        "LOG_LEVEL=DEBUG",
    ]
    store = tmp_path / "store"
    outputs: dict[str, str] = {}
    demo = _newsarchive(
        "demo", "--sites", "tdi", "--store", str(store), *secret_settings, env=env, cwd=tmp_path
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert list(store.rglob("*.warc.gz")), "the crawl archived nothing"
    outputs["demo"] = demo.stdout + demo.stderr
    # An S3 store that refuses these credentials (nothing listens there: loopback, refused).
    outputs["crawl-s3"] = "".join(
        _newsarchive(
            "crawl",
            "tdi",
            "--store",
            "s3://bucket/x",
            "-s",
            "AWS_ENDPOINT_URL=http://127.0.0.1:9",
            "-s",
            "ARCHIVE_STORE_MAX_ATTEMPTS=1",
            *secret_settings,
            env=env,
            cwd=tmp_path,
        ).__dict__[k]
        for k in ("stdout", "stderr")
    )
    for args in (
        ("status", "--store", str(store)),
        ("status", "--store", str(store), "--json"),
        ("upload", "--store", "s3://bucket/x", "-s", "AWS_ENDPOINT_URL=http://127.0.0.1:9"),
        ("run", "--dry-run", "--store", str(store)),
        ("snapshots", "tdi:nothing", "--store", str(store)),
    ):
        proc = _newsarchive(*args, *secret_settings, env=env, cwd=tmp_path)
        outputs[" ".join(args)] = proc.stdout + proc.stderr
    assert "error" in outputs["crawl-s3"].lower() or "refused" in outputs["crawl-s3"].lower()
    leaked = {name: _leaks(text) for name, text in outputs.items() if _leaks(text)}
    assert not leaked, {name: outputs[name][-2000:] for name in leaked}
    scanned = 0
    for root in (store, tmp_path / "spool", tmp_path / "cache"):
        for path, data in _all_bytes(root):
            scanned += 1
            assert not _leaks(data), path
    assert scanned > 10
    # The crawls did run with the secrets in their settings (the test is not vacuous).
    assert KEY_ID not in SECRET


# ================================================================== 4. serve


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    import hashlib

    return {
        str(p.relative_to(root)): (
            p.stat().st_size,
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).digest(),
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def served(
    demo_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    store = tmp_path_factory.mktemp("serve-ro") / "store"
    shutil.copytree(demo_store, store)
    port = _free_port()
    log = store.parent / "serve.log"
    program = venv_program("newsarchive")
    cmd = [str(program)] if program else [sys.executable, "-m", "crawler.ops.cli"]
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [*cmd, "serve", "--store", str(store), "--port", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    base = f"http://127.0.0.1:{port}"
    try:
        from tests.test_access import wait_for

        wait_for(base + "/", proc, log)
        yield base, store
    finally:
        proc.terminate()
        proc.wait(10)
        assert "serving" in log.read_text()


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _fetch(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with _OPENER.open(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
        exc.close()
        return exc.code, body


def _raw(base: str, path: str) -> bytes:
    """A request line sent as is (urllib would normalise the dots away)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


_HREF = re.compile(r"href=['\"]([^'\"]+)['\"]")
TRAVERSALS = [
    "/text/../../etc/passwd",
    "/text/..%2f..%2fetc%2fpasswd",
    "/text/%2e%2e/%2e%2e/etc/passwd",
    "/text/%252e%252e%252fetc%252fpasswd",
    "/warc/..%5c..%5cetc%5cpasswd",
    "/sidecar/....//....//etc/passwd",
    "//etc/passwd",
    "/html/%00",
    "/site/../../../../etc",
    "/capture/" + "../" * 40 + "etc/passwd",
    "/cdx?url=file:///etc/passwd",
    "/cdx?url=../../etc/passwd&output=json",
]


def test_serve_is_read_only_and_path_traversal_reads_nothing(served: tuple[str, Path]) -> None:
    base, store = served
    before = _snapshot(store)
    status, page = _fetch(base + "/")
    assert status == 200
    site_links = [link for link in _HREF.findall(page.decode()) if link.startswith("/site/")]
    assert site_links
    _, site_page = _fetch(base + site_links[0])
    days = [link for link in _HREF.findall(site_page.decode()) if link.count("/") == 3]
    _, day_page = _fetch(base + days[0])
    captures = [link for link in _HREF.findall(day_page.decode()) if link.startswith("/capture/")]
    assert captures
    ident = captures[0].rsplit("/", 1)[1]
    for kind in ("capture", "text", "sidecar", "warc", "html"):
        assert _fetch(f"{base}/{kind}/{ident}")[0] == 200, kind
    assert _fetch(f"{base}/cdx?url=thediplomaticinsight.com/*&output=json")[0] == 200
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/", f"/text/{ident}", "/cdx"):
            status, _ = _fetch(base + path, method, b"x")
            assert status == 501, (method, path)
    passwd = Path("/etc/passwd").read_bytes()[:32]
    for path in TRAVERSALS:
        # A CDX query is a lookup in the index: it answers (empty), it opens no file.
        allowed = (b"200", b"400", b"404") if path.startswith("/cdx") else (b"400", b"404")
        status, body = _fetch(base + path)
        assert str(status).encode() in allowed, path
        assert passwd not in body
        assert not path.startswith("/cdx") or not body.strip(), body[:200]
        answer = _raw(base, path)
        assert answer.split(b" ", 2)[1] in allowed, path
        assert passwd not in answer
    assert _snapshot(store) == before


def test_serve_binds_to_loopback_unless_told_otherwise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import argparse

    from crawler.access.cli import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    ns = parser.parse_args(["serve"])
    assert ns.host == "127.0.0.1" and not ns.allow_remote
    for host in ("127.0.0.1", "::1", "localhost", "127.8.9.10"):
        check_bind(host, allow_remote=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.org"):
        proc = _newsarchive(
            "serve", "--host", host, "--port", "0", "--store", str(tmp_path), env=env, cwd=tmp_path
        )
        assert proc.returncode != 0
        assert "--allow-remote" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        assert not proc.stdout  # never started serving
    with caplog.at_level("WARNING", logger="crawler.access.serve"):
        check_bind("0.0.0.0", allow_remote=True)
    assert "readable from the network" in caplog.text
