"""WarcCapture without a network: hand-made exchanges in, byte-exact records and stored file out."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import gzip
import hashlib
import io
import ipaddress
import json
import shutil
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler
from scrapy.http import Response
from scrapy.utils.test import get_crawler
from twisted.internet import defer
from twisted.python.failure import Failure
from warcio.archiveiterator import ArchiveIterator
from warcio.cli import main as warcio_main

from crawler.capture.exchange import CaptureInfo, exchange_records
from crawler.capture.records import RecordBuilder
from crawler.capture.session import CaptureSession
from crawler.constants import META_CAPTURE, META_HTTP_REASON
from crawler.crawl import capture as capture_module
from crawler.crawl import ledger as ledger_module
from crawler.crawl.addon import Addon
from crawler.crawl.capture import WarcCapture, scrapy_exchange
from crawler.crawl.config import ArchiveConfig, ConfigError, check_settings
from crawler.crawl.ledger import CrawlLedger
from crawler.store.uri import open_store

FIXED_DATE = datetime(2026, 11, 23, 13, 16, 36, tzinfo=UTC)
CRAWL_ID = "unit-crawl-1"
# The crawl's token (a digest of an id with no random tail) after the prefix.
WARC_NAME = "unit-20261123131636-00000-f6633f-testhost.warc.gz"
WARC_KEY = f"warc/unit/2026/11/23/{WARC_NAME}"
# gzip.compress(b"<html><body>Hello, archive.</body></html>\n", mtime=0), frozen so the golden
# digests do not depend on the zlib build.
GZIP_BODY = (
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xb3\xc9(\xc9\xcd\xb1\xb3I\xcaO\xa9\xb4\xf3H"
    b'\xcd\xc9\xc9\xd7QH,J\xce\xc8,K\xd5\xb3\xd1\x07\x8b\xda\xe8\x83\x95p\x01\x00\xe5";'
    b"\xa3*\x00\x00\x00"
)


def counting_ids() -> Callable[[], str]:
    count = 0

    def make() -> str:
        nonlocal count
        count += 1
        return f"<urn:uuid:00000000-0000-4000-8000-{count:012d}>"

    return make


def sha1_label(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def warcio_check(path: Path) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        warcio_main(["check", "-v", str(path)])
    return int(exited.value.code or 0), out.getvalue()


def gzip_members(data: bytes) -> Iterator[bytes]:
    """The uncompressed bytes of each gzip member, in order."""
    while data:
        inflater = zlib.decompressobj(31)
        yield inflater.decompress(data) + inflater.flush()
        assert inflater.eof
        data = inflater.unused_data


def make_crawler(store: Path, **settings: Any) -> Crawler:
    return get_crawler(
        Spider,
        {
            "ADDONS": {Addon: 0},
            "ARCHIVE_STORE_URI": str(store),
            "ARCHIVE_CRAWL_ID": CRAWL_ID,
            **settings,
        },
    )


@dataclass
class Capture:
    crawler: Crawler
    spider: Spider
    run: CrawlLedger
    capture: WarcCapture
    store: Path

    def download(self, response: Response, request: Request) -> None:
        """Fire ``response_downloaded`` as Scrapy's engine does."""
        results = self.crawler.signals.send_catch_log(
            signal=signals.response_downloaded,
            response=response,
            request=request,
            spider=self.spider,
        )
        failures = [r for _, r in results if isinstance(r, Failure)]
        assert not failures, failures

    def open(self) -> None:
        self.run.spider_opened(self.spider)
        asyncio.run(self.capture.spider_opened(self.spider))

    def close(self) -> None:
        asyncio.run(self.run.spider_closed(self.spider, "finished"))


@pytest.fixture
def new_capture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Capture]:
    """CrawlLedger and WarcCapture as the composition root builds them, not opened yet."""
    store = tmp_path / "store"
    crawler = make_crawler(store)
    spider = Spider("unit")
    config = ArchiveConfig.from_settings(crawler.settings)
    assert config.warc is not None and crawler.stats is not None
    run = CrawlLedger(config.ledger, open_store(str(store)), crawler, health=config.health)
    # The injection points: a fixed clock, counted record ids, a fixed host name.
    session = CaptureSession(
        config.warc,
        run,
        crawler.stats,
        hostname="testhost",
        clock=lambda: FIXED_DATE,
        builder=RecordBuilder(clock=lambda: FIXED_DATE, make_id=counting_ids()),
    )
    capture = WarcCapture(session, run)
    run.add_closer("warc", capture.close)
    crawler.signals.connect(capture.response_downloaded, signal=signals.response_downloaded)

    # No reactor in this process: the threaded steps run inline.
    def inline(fn: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        return defer.succeed(fn(*args))

    monkeypatch.setattr(capture_module, "deferToThread", inline)
    monkeypatch.setattr(ledger_module, "deferToThread", inline)
    yield Capture(crawler, spider, run, capture, store)
    if session.writer is not None:
        capture.close()


@pytest.fixture
def open_capture(new_capture: Capture) -> Capture:
    """The capture opened as at spider_opened."""
    new_capture.open()
    return new_capture


def gzip_exchange() -> tuple[Response, Request]:
    url = "https://news.example.test/search?q=gaza&page=2"
    request = Request(
        url,
        headers={
            "User-Agent": "newsarchive/0.1 (test)",
            "Accept-Encoding": "gzip, br",
            "Proxy-Authorization": "Basic dXNlcjpwYXNz",
        },
        meta={
            "proxy": "http://user:pass@127.0.0.1:8080",
            "download_latency": 0.25,
            META_HTTP_REASON: "Okay",
        },
    )
    response = Response(
        url,
        status=200,
        headers={
            "Content-Type": "text/html; charset=utf-8",
            "Content-Encoding": "gzip",
            "Content-Length": str(len(GZIP_BODY)),
        },
        body=GZIP_BODY,
        request=request,
        protocol="HTTP/1.1",
        ip_address=ipaddress.ip_address("127.0.0.1"),
    )
    return response, request


def chunked_exchange() -> tuple[Response, Request]:
    url = "http://plain.example.test/live/"
    request = Request(url, headers={"User-Agent": "newsarchive/0.1 (test)"})
    response = Response(
        url,
        status=200,
        headers={"Content-Type": "text/plain", "Transfer-Encoding": "chunked"},
        body=b"hello, chunked world",
        request=request,
        protocol="HTTP/1.1",
        ip_address=ipaddress.ip_address("127.0.0.1"),
    )
    return response, request


def truncated_exchange() -> tuple[Response, Request]:
    url = "https://news.example.test/long/"
    request = Request(url, headers={"User-Agent": "newsarchive/0.1 (test)"})
    response = Response(
        url,
        status=200,
        headers={"Content-Type": "text/html", "Content-Length": "1000"},
        body=b"<html><bo",
        request=request,
        protocol="HTTP/1.1",
        flags=["dataloss"],
    )
    return response, request


# Each record names the warcinfo of its file (id 7: the file opens at the first write).
EXPECTED_GZIP_RESPONSE = (
    b"WARC/1.1\r\n"
    b"WARC-Type: response\r\n"
    b"WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>\r\n"
    # The clock minus the download latency: when the request went out.
    b"WARC-Date: 2026-11-23T13:16:35.750000Z\r\n"
    b"WARC-Warcinfo-ID: <urn:uuid:00000000-0000-4000-8000-000000000007>\r\n"
    b"WARC-Target-URI: https://news.example.test/search?q=gaza&page=2\r\n"
    # No WARC-IP-Address: through a proxy the peer is the proxy, not the site.
    b"WARC-Block-Digest: sha1:V6T6KGFQQ7RWYKJB4OFOJ4M2AK4CJKRG\r\n"
    b"WARC-Payload-Digest: sha1:AG5C4UXMDQ57CUHJZDQYW3OLF6ZFF7FK\r\n"
    b"Content-Type: application/http;msgtype=response\r\n"
    b"Content-Length: 161\r\n"
    b"\r\n"
    b"HTTP/1.1 200 Okay\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Content-Encoding: gzip\r\n"
    b"Content-Length: 56\r\n"
    b"\r\n" + GZIP_BODY + b"\r\n\r\n"
)
EXPECTED_GZIP_REQUEST = (
    b"WARC/1.1\r\n"
    b"WARC-Type: request\r\n"
    b"WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000002>\r\n"
    b"WARC-Date: 2026-11-23T13:16:35.750000Z\r\n"
    b"WARC-Warcinfo-ID: <urn:uuid:00000000-0000-4000-8000-000000000007>\r\n"
    b"WARC-Target-URI: https://news.example.test/search?q=gaza&page=2\r\n"
    b"WARC-Concurrent-To: <urn:uuid:00000000-0000-4000-8000-000000000001>\r\n"
    b"WARC-Block-Digest: sha1:B6KQGSOEGP6QZFOJJ65BJ5H7WBR3ZXRV\r\n"
    b"Content-Type: application/http;msgtype=request\r\n"
    b"Content-Length: 126\r\n"
    b"\r\n"
    b"GET /search?q=gaza&page=2 HTTP/1.1\r\n"
    b"Host: news.example.test\r\n"
    b"User-Agent: newsarchive/0.1 (test)\r\n"
    b"Accept-Encoding: gzip, br\r\n"
    b"\r\n"
    b"\r\n\r\n"
)
EXPECTED_CHUNKED_RESPONSE = (
    b"WARC/1.1\r\n"
    b"WARC-Type: response\r\n"
    b"WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000003>\r\n"
    b"WARC-Date: 2026-11-23T13:16:36Z\r\n"
    b"WARC-Warcinfo-ID: <urn:uuid:00000000-0000-4000-8000-000000000007>\r\n"
    b"WARC-Target-URI: http://plain.example.test/live/\r\n"
    b"WARC-IP-Address: 127.0.0.1\r\n"
    b"WARC-Block-Digest: sha1:6X62Z322UBVYREFTOWCOZEN5ME2ZDFBI\r\n"
    b"WARC-Payload-Digest: sha1:JKYGGPGBU7XSGZG2LVCJ2JVE3X2CZPY7\r\n"
    b"Content-Type: application/http;msgtype=response\r\n"
    b"Content-Length: 85\r\n"
    b"\r\n"
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/plain\r\n"
    # The chunking is gone from the stored payload, so its header is too.
    b"Content-Length: 20\r\n"
    b"\r\n"
    b"hello, chunked world"
    b"\r\n\r\n"
)
EXPECTED_CHUNKED_REQUEST = (
    b"WARC/1.1\r\n"
    b"WARC-Type: request\r\n"
    b"WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000004>\r\n"
    b"WARC-Date: 2026-11-23T13:16:36Z\r\n"
    b"WARC-Warcinfo-ID: <urn:uuid:00000000-0000-4000-8000-000000000007>\r\n"
    b"WARC-Target-URI: http://plain.example.test/live/\r\n"
    b"WARC-Concurrent-To: <urn:uuid:00000000-0000-4000-8000-000000000003>\r\n"
    b"WARC-IP-Address: 127.0.0.1\r\n"
    b"WARC-Block-Digest: sha1:O5R7O4HXELSHGKJUTAY53ESLPESCEWM6\r\n"
    b"Content-Type: application/http;msgtype=request\r\n"
    b"Content-Length: 85\r\n"
    b"\r\n"
    b"GET /live/ HTTP/1.1\r\n"
    b"Host: plain.example.test\r\n"
    b"User-Agent: newsarchive/0.1 (test)\r\n"
    b"\r\n"
    b"\r\n\r\n"
)
EXPECTED_TRUNCATED_RESPONSE = (
    b"WARC/1.1\r\n"
    b"WARC-Type: response\r\n"
    b"WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000005>\r\n"
    b"WARC-Date: 2026-11-23T13:16:36Z\r\n"
    b"WARC-Warcinfo-ID: <urn:uuid:00000000-0000-4000-8000-000000000007>\r\n"
    b"WARC-Target-URI: https://news.example.test/long/\r\n"
    b"WARC-Truncated: disconnect\r\n"
    b"WARC-Block-Digest: sha1:45QHTIT7QBRDGHEOC4TN7ASOBEEFJWSE\r\n"
    b"WARC-Payload-Digest: sha1:F25CV6RX7HTVCZVVA3RGGPRRQJUCKBTX\r\n"
    b"Content-Type: application/http;msgtype=response\r\n"
    b"Content-Length: 75\r\n"
    b"\r\n"
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/html\r\n"
    # As received: the header announced 1000 bytes, the connection gave 9.
    b"Content-Length: 1000\r\n"
    b"\r\n"
    b"<html><bo"
    b"\r\n\r\n"
)
EXPECTED_TRUNCATED_REQUEST = (
    b"WARC/1.1\r\n"
    b"WARC-Type: request\r\n"
    b"WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000006>\r\n"
    b"WARC-Date: 2026-11-23T13:16:36Z\r\n"
    b"WARC-Warcinfo-ID: <urn:uuid:00000000-0000-4000-8000-000000000007>\r\n"
    b"WARC-Target-URI: https://news.example.test/long/\r\n"
    b"WARC-Concurrent-To: <urn:uuid:00000000-0000-4000-8000-000000000005>\r\n"
    b"WARC-Block-Digest: sha1:V7XOPPWP2E6HZEHIEX3DND5FFBPO7EXR\r\n"
    b"Content-Type: application/http;msgtype=request\r\n"
    b"Content-Length: 84\r\n"
    b"\r\n"
    b"GET /long/ HTTP/1.1\r\n"
    b"Host: news.example.test\r\n"
    b"User-Agent: newsarchive/0.1 (test)\r\n"
    b"\r\n"
    b"\r\n\r\n"
)
EXPECTED_EXCHANGES = [
    EXPECTED_GZIP_RESPONSE,
    EXPECTED_GZIP_REQUEST,
    EXPECTED_CHUNKED_RESPONSE,
    EXPECTED_CHUNKED_REQUEST,
    EXPECTED_TRUNCATED_RESPONSE,
    EXPECTED_TRUNCATED_REQUEST,
]


def check_digests(record: bytes) -> None:
    """The golden digests are sha1 (base32) of the block and of the HTTP payload."""
    head, _, rest = record.partition(b"\r\n\r\n")
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    block = rest[: int(fields[b"Content-Length"])]
    assert rest[len(block) :] == b"\r\n\r\n"
    assert fields[b"WARC-Block-Digest"].decode() == sha1_label(block)
    if b"WARC-Payload-Digest" in fields:
        payload = block.partition(b"\r\n\r\n")[2]
        assert fields[b"WARC-Payload-Digest"].decode() == sha1_label(payload)


@pytest.mark.parametrize("record", EXPECTED_EXCHANGES, ids=lambda r: r[30:60].decode())
def test_golden_digests_are_independently_right(record: bytes) -> None:
    check_digests(record)


def capture_all(harness: Capture) -> list[Request]:
    requests = []
    for make in (gzip_exchange, chunked_exchange, truncated_exchange):
        response, request = make()
        harness.download(response, request)
        requests.append(request)
    return requests


def test_exchanges_become_byte_exact_records(open_capture: Capture) -> None:
    capture_all(open_capture)
    open_capture.close()
    members = list(gzip_members((open_capture.store / WARC_KEY).read_bytes()))
    assert members[0].startswith(
        b"WARC/1.1\r\nWARC-Type: warcinfo\r\n"
        b"WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000007>\r\n"
        # Not the clock's 13:16:36: no earlier than the request time of its first record.
        b"WARC-Date: 2026-11-23T13:16:35.750000Z\r\n"
        b"WARC-Filename: " + WARC_NAME.encode() + b"\r\n"
    )
    assert b"\r\ncrawl-id: unit-crawl-1\r\n" in members[0]
    assert b"\r\nformat: WARC File Format 1.1\r\n" in members[0]
    assert members[1:] == EXPECTED_EXCHANGES
    # warcio reads the same records back uncompressed too.
    plain = ArchiveIterator(io.BytesIO(b"".join(members)))
    ids = [record.rec_headers.get_header("WARC-Record-ID") for record in plain]
    assert ids == [f"<urn:uuid:00000000-0000-4000-8000-{n:012d}>" for n in (7, 1, 2, 3, 4, 5, 6)]


def test_query_string_kept_and_proxy_credentials_never_written(open_capture: Capture) -> None:
    capture_all(open_capture)
    open_capture.close()
    data = b"".join(gzip_members((open_capture.store / WARC_KEY).read_bytes()))
    assert b"\r\n\r\nGET /search?q=gaza&page=2 HTTP/1.1\r\n" in data
    assert b"Proxy-Authorization" not in data
    assert b"dXNlcjpwYXNz" not in data
    assert b"user:pass" not in data


def test_ip_address_only_for_direct_connections(open_capture: Capture) -> None:
    response, request = chunked_exchange()
    builder = open_capture.capture.session.builder
    direct = exchange_records(builder, scrapy_exchange(response, request, FIXED_DATE))
    request.meta["proxy"] = "http://127.0.0.1:8080"
    proxied = exchange_records(builder, scrapy_exchange(response, request, FIXED_DATE))
    for record in direct:
        assert b"\r\nWARC-IP-Address: 127.0.0.1\r\n" in record.data
    for record in proxied:
        assert b"WARC-IP-Address" not in record.data


def test_chunked_as_scrapy_delivers_it_gets_a_content_length(open_capture: Capture) -> None:
    # Twisted keeps framing headers apart: a chunked response reaches Scrapy with neither
    # Transfer-Encoding nor Content-Length. The stored, de-chunked payload states its length.
    response, request = chunked_exchange()
    del response.headers["Transfer-Encoding"]
    builder = open_capture.capture.session.builder
    [record, _] = exchange_records(builder, scrapy_exchange(response, request, FIXED_DATE))
    http_head = record.data.split(b"\r\n\r\n")[1]
    assert http_head.split(b"\r\n")[0] == b"HTTP/1.1 200 OK"
    assert b"\r\nContent-Length: 20\r\n" in http_head + b"\r\n"
    assert b"Transfer-Encoding" not in record.data


def test_capture_info_points_at_the_response_record(open_capture: Capture) -> None:
    requests = capture_all(open_capture)
    infos = [request.meta[META_CAPTURE] for request in requests]
    assert all(isinstance(info, CaptureInfo) for info in infos)
    first = infos[0]
    assert first.record_id == "<urn:uuid:00000000-0000-4000-8000-000000000001>"
    assert first.target_uri == "https://news.example.test/search?q=gaza&page=2"
    assert first.date == "2026-11-23T13:16:35.750000Z"
    assert first.payload_digest == sha1_label(GZIP_BODY)
    open_capture.close()
    data = (open_capture.store / WARC_KEY).read_bytes()
    expected = [EXPECTED_GZIP_RESPONSE, EXPECTED_CHUNKED_RESPONSE, EXPECTED_TRUNCATED_RESPONSE]
    for info, record in zip(infos, expected, strict=True):
        location = info.location(timeout=5)
        assert location.filename == WARC_NAME
        assert location.record_id == info.record_id
        member = data[location.offset : location.offset + location.length]
        assert gzip.decompress(member) == record


def test_skipped_and_non_http_exchanges_are_not_written(open_capture: Capture) -> None:
    response, request = chunked_exchange()
    request.meta["archive_skip_capture"] = True
    open_capture.download(response, request)
    data_request = Request("data:text/plain,hello")
    open_capture.download(Response(data_request.url, body=b"hello"), data_request)
    assert open_capture.crawler.stats is not None
    assert open_capture.crawler.stats.get_value("archive/warc/records") is None
    open_capture.close()
    assert not (open_capture.store / "warc").exists()


def test_closed_file_lands_in_the_store_with_its_manifest(open_capture: Capture) -> None:
    capture_all(open_capture)
    spool = open_capture.run.spool_dir / "warc" / "unit" / CRAWL_ID
    assert open_capture.capture.session.writer is not None
    open_capture.capture.session.writer.flush()
    assert [p.name for p in spool.glob("*.open")] == [WARC_NAME + ".open"]
    open_capture.close()
    path = open_capture.store / WARC_KEY
    assert path.is_file()
    assert not spool.exists()  # nothing left open, nothing left behind
    assert not list(open_capture.store.rglob("*.open"))
    status, report = warcio_check(path)
    assert status == 0, report
    with path.open("rb") as stream:
        types = [record.rec_type for record in ArchiveIterator(stream)]
    assert types == ["warcinfo", *["response", "request"] * 3]

    manifest = json.loads((open_capture.store / f"manifests/unit/{CRAWL_ID}.json").read_bytes())
    listed = {o["key"]: o for o in manifest["objects"]}
    data = path.read_bytes()
    assert listed[WARC_KEY] == {
        "key": WARC_KEY,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert manifest["report"]["warc"]["files"] == [WARC_KEY]
    assert manifest["report"]["warc"]["records"] == 6
    stats = open_capture.crawler.stats
    assert stats is not None
    assert stats.get_value("archive/warc/files") == 1
    assert stats.get_value("archive/warc/truncated") == 1


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ARCHIVE_WARC_MAX_SIZE": 0}, "ARCHIVE_WARC_MAX_SIZE must be at least 1, got 0"),
        (
            {"ARCHIVE_WARC_MAX_SIZE": "1GB"},
            "ARCHIVE_WARC_MAX_SIZE must be a whole number, got '1GB'",
        ),
        ({"ARCHIVE_WARC_MAX_AGE": -1}, "ARCHIVE_WARC_MAX_AGE must be at least 0, got -1"),
        ({"ARCHIVE_WARC_COMPRESS_LEVEL": 10}, "ARCHIVE_WARC_COMPRESS_LEVEL must be 0 to 9, got 10"),
        (
            {"ARCHIVE_WARC_COMPRESS_LEVEL": "fast"},
            "ARCHIVE_WARC_COMPRESS_LEVEL must be a whole number, got 'fast'",
        ),
        (
            {"ARCHIVE_WARC_ENABLED": "maybe"},
            "ARCHIVE_WARC_ENABLED must be true or false (1/0, yes/no, on/off), got 'maybe'",
        ),
    ],
)
def test_bad_warc_settings_stop_the_crawl_with_a_clear_message(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    """Never a capture quietly switched off: the crawl does not start, the setting is named."""
    # Without the root extension (it would refuse to build this crawler at all).
    crawler = make_crawler(
        tmp_path / "store", EXTENSIONS={"crawler.crawl.archive.ArchiveCrawl": None}, **settings
    )
    with pytest.raises(ConfigError) as raised:
        ArchiveConfig.from_settings(crawler.settings)
    assert raised.value.errors == [message]
    assert check_settings(crawler.settings) == [message]
    with pytest.raises(ConfigError, match="newsarchive cannot start: ARCHIVE_WARC_"):
        make_crawler(tmp_path / "store", **settings)


def test_capture_switched_off_on_purpose_is_no_error(tmp_path: Path) -> None:
    crawler = make_crawler(tmp_path / "store", ARCHIVE_WARC_ENABLED=False)
    assert ArchiveConfig.from_settings(crawler.settings).warc is None
    assert check_settings(crawler.settings) == []


def test_a_spool_dir_removed_by_another_crawls_recovery_is_made_again(
    new_capture: Capture,
) -> None:
    """Another crawl's start-up recovery can lock our new, still empty spool dir and remove it.

    Opening waits for it and ends up holding the lock of a spool dir that exists, instead of
    failing (and crawling with no WARC capture at all).
    """
    spool = new_capture.run.spool_dir / "warc" / "unit" / CRAWL_ID
    spool.mkdir(parents=True)
    other = (spool / ".lock").open("ab")
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def finish_that_recovery() -> None:
        time.sleep(0.05)
        shutil.rmtree(spool)  # it found no file in the dir ...
        other.close()  # ... and lets go of its lock

    thread = threading.Thread(target=finish_that_recovery)
    thread.start()
    try:
        new_capture.open()
    finally:
        thread.join()
        other.close()
    assert spool.is_dir()
    with (spool / ".lock").open("ab") as probe, pytest.raises(BlockingIOError):
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    response, request = chunked_exchange()
    new_capture.download(response, request)
    new_capture.close()
    assert (new_capture.store / WARC_KEY).is_file()
