"""Byte-exact WARC records, read back with warcio (gzip and plain) and cdxj-indexer."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cdxj_indexer.main import main as cdxj_main
from warcio.archiveiterator import ArchiveIterator
from warcio.cli import main as warcio_main
from warcio.statusandheaders import StatusAndHeaders

from crawler.capture.records import (
    RecordBuilder,
    WarcRecord,
    build_request_head,
    build_response_head,
    format_warc_date,
    new_record_id,
    sha1_digest,
)
from crawler.capture.writer import WarcFileWriter

FIXED_DATE = datetime(2026, 11, 23, 13, 16, 36, tzinfo=UTC)
ORIGINAL_ID = "<urn:uuid:00000000-0000-4000-8000-000000000099>"
# gzip.compress(b"<html><body>Hello, archive.</body></html>\n", mtime=0), frozen so the golden
# digests do not depend on the zlib build.
GZIP_PAYLOAD = (
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xb3\xc9(\xc9\xcd\xb1\xb3I\xcaO\xa9\xb4\xf3H"
    b'\xcd\xc9\xc9\xd7QH,J\xce\xc8,K\xd5\xb3\xd1\x07\x8b\xda\xe8\x83\x95p\x01\x00\xe5";'
    b"\xa3*\x00\x00\x00"
)
GZIP_PAYLOAD_TEXT = b"<html><body>Hello, archive.</body></html>\n"


def counting_ids() -> Callable[[], str]:
    count = 0

    def make() -> str:
        nonlocal count
        count += 1
        return f"<urn:uuid:00000000-0000-4000-8000-{count:012d}>"

    return make


@pytest.fixture
def builder() -> RecordBuilder:
    return RecordBuilder(clock=lambda: FIXED_DATE, make_id=counting_ids())


def warcio_check(path: Path) -> tuple[int, str]:
    """Run `warcio check -v` in-process: exit status and its report."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        warcio_main(["check", "-v", str(path)])
    return int(exited.value.code or 0), out.getvalue()


# -- golden records ------------------------------------------------------------------------


def make_warcinfo(b: RecordBuilder) -> WarcRecord:
    return b.warcinfo(
        "tdi-20261123131636-00000-host.warc.gz",
        {"software": "newsarchive/0.1.0", "isPartOf": "tdi", "robots": "obey"},
    )


EXPECTED_WARCINFO = (
    b"WARC/1.1\r\n"
    b"WARC-Type: warcinfo\r\n"
    b"WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>\r\n"
    b"WARC-Date: 2026-11-23T13:16:36Z\r\n"
    b"WARC-Filename: tdi-20261123131636-00000-host.warc.gz\r\n"
    b"WARC-Block-Digest: sha1:PZWRGRJER76IQCYF2CHY7HVYBVCTEFWJ\r\n"
    b"Content-Type: application/warc-fields\r\n"
    b"Content-Length: 58\r\n"
    b"\r\n"
    b"software: newsarchive/0.1.0\r\n"
    b"isPartOf: tdi\r\n"
    b"robots: obey\r\n"
    b"\r\n\r\n"
)


def make_request(b: RecordBuilder) -> WarcRecord:
    head = build_request_head(
        "GET",
        "https://thediplomaticinsight.com:8443/news/?page=2&q=a%20b#top",
        [
            (b"User-Agent", b"newsarchive/0.1 (+mailto:ops@example.org)"),
            (b"Accept-Encoding", b"gzip, br"),
            (b"Proxy-Authorization", b"Basic c2VjcmV0"),
        ],
    )
    return b.request(
        target_uri="https://thediplomaticinsight.com:8443/news/?page=2&q=a%20b",
        http_head=head,
        date=datetime(2026, 11, 23, 13, 16, 36, 123456, tzinfo=UTC),
        concurrent_to=ORIGINAL_ID,
        ip_address="203.0.113.7",
    )


EXPECTED_REQUEST = (
    b"WARC/1.1\r\n"
    b"WARC-Type: request\r\n"
    b"WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>\r\n"
    b"WARC-Date: 2026-11-23T13:16:36.123456Z\r\n"
    b"WARC-Target-URI: https://thediplomaticinsight.com:8443/news/?page=2&q=a%20b\r\n"
    b"WARC-Concurrent-To: <urn:uuid:00000000-0000-4000-8000-000000000099>\r\n"
    b"WARC-IP-Address: 203.0.113.7\r\n"
    b"WARC-Block-Digest: sha1:WYHDZTX55CR6MNIEIOEQ4Z2XLJNVVRB6\r\n"
    b"Content-Type: application/http;msgtype=request\r\n"
    b"Content-Length: 157\r\n"
    b"\r\n"
    b"GET /news/?page=2&q=a%20b HTTP/1.1\r\n"
    b"Host: thediplomaticinsight.com:8443\r\n"
    b"User-Agent: newsarchive/0.1 (+mailto:ops@example.org)\r\n"
    b"Accept-Encoding: gzip, br\r\n"
    b"\r\n"
    b"\r\n\r\n"
)


def make_response(b: RecordBuilder) -> WarcRecord:
    head = build_response_head(
        "HTTP/1.1",
        200,
        None,
        [
            (b"Content-Type", b"text/html; charset=utf-8"),
            (b"Content-Encoding", b"gzip"),
            (b"Content-Length", b"56"),
        ],
        len(GZIP_PAYLOAD),
    )
    return b.response(
        target_uri="https://thediplomaticinsight.com/",
        http_head=head,
        payload=GZIP_PAYLOAD,
        date=None,
        ip_address="2001:db8::1",
        record_id=ORIGINAL_ID,
    )


EXPECTED_RESPONSE = (
    b"WARC/1.1\r\n"
    b"WARC-Type: response\r\n"
    b"WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000099>\r\n"
    b"WARC-Date: 2026-11-23T13:16:36Z\r\n"
    b"WARC-Target-URI: https://thediplomaticinsight.com/\r\n"
    b"WARC-IP-Address: 2001:db8::1\r\n"
    b"WARC-Block-Digest: sha1:XT2JLY6CPT6M6GMEI6GD4S3A5MV2MPMO\r\n"
    b"WARC-Payload-Digest: sha1:AG5C4UXMDQ57CUHJZDQYW3OLF6ZFF7FK\r\n"
    b"Content-Type: application/http;msgtype=response\r\n"
    b"Content-Length: 159\r\n"
    b"\r\n"
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Content-Encoding: gzip\r\n"
    b"Content-Length: 56\r\n"
    b"\r\n" + GZIP_PAYLOAD + b"\r\n\r\n"
)


def make_chunked_response(b: RecordBuilder) -> WarcRecord:
    head = build_response_head(
        "HTTP/1.1",
        404,
        "Not Here",
        [
            (b"Transfer-Encoding", b"chunked"),
            (b"Content-Type", b"text/plain"),
            (b"Content-Length", b"999"),
        ],
        9,
    )
    return b.response(
        target_uri="https://www.presstv.ir/missing",
        http_head=head,
        payload=b"not found",
        date=None,
        truncated="length",
    )


EXPECTED_CHUNKED_RESPONSE = (
    b"WARC/1.1\r\n"
    b"WARC-Type: response\r\n"
    b"WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>\r\n"
    b"WARC-Date: 2026-11-23T13:16:36Z\r\n"
    b"WARC-Target-URI: https://www.presstv.ir/missing\r\n"
    b"WARC-Truncated: length\r\n"
    b"WARC-Block-Digest: sha1:LSQMMJYZQZK34RWVZEIXV32LNU4VR6S3\r\n"
    b"WARC-Payload-Digest: sha1:BFFXMO2M7TALAXS5AQCYDTKRHQ6KBADH\r\n"
    b"Content-Type: application/http;msgtype=response\r\n"
    b"Content-Length: 79\r\n"
    b"\r\n"
    b"HTTP/1.1 404 Not Here\r\n"
    b"Content-Length: 9\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"not found"
    b"\r\n\r\n"
)


def make_revisit(b: RecordBuilder) -> WarcRecord:
    head = build_response_head(
        "HTTP/1.1", 200, "OK", [(b"Content-Type", b"text/html"), (b"Content-Length", b"5")], 5
    )
    return b.revisit(
        target_uri="https://en.irna.ir/",
        http_head=head,
        date=None,
        refers_to=ORIGINAL_ID,
        refers_to_target_uri="https://en.irna.ir/",
        refers_to_date="2026-11-22T10:00:00Z",
        payload_digest="sha1:VL2MMHO4YXUKFWV63YHTWSBM3GXKSQ2N",
    )


EXPECTED_REVISIT = (
    b"WARC/1.1\r\n"
    b"WARC-Type: revisit\r\n"
    b"WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>\r\n"
    b"WARC-Date: 2026-11-23T13:16:36Z\r\n"
    b"WARC-Target-URI: https://en.irna.ir/\r\n"
    b"WARC-Refers-To: <urn:uuid:00000000-0000-4000-8000-000000000099>\r\n"
    b"WARC-Refers-To-Target-URI: https://en.irna.ir/\r\n"
    b"WARC-Refers-To-Date: 2026-11-22T10:00:00Z\r\n"
    b"WARC-Profile: http://netpreserve.org/warc/1.1/revisit/identical-payload-digest\r\n"
    b"WARC-Block-Digest: sha1:UO7NKCIQODUWPUE677UKDKMK6O7HNVCU\r\n"
    b"WARC-Payload-Digest: sha1:VL2MMHO4YXUKFWV63YHTWSBM3GXKSQ2N\r\n"
    b"Content-Type: application/http;msgtype=response\r\n"
    b"Content-Length: 63\r\n"
    b"\r\n"
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/html\r\n"
    b"Content-Length: 5\r\n"
    b"\r\n"
    b"\r\n\r\n"
)


def make_resource(b: RecordBuilder) -> WarcRecord:
    return b.resource(
        target_uri="https://president.ir/en/1",
        content=b"<html><body>rendered</body></html>",
        content_type="text/html; charset=utf-8",
        concurrent_to=ORIGINAL_ID,
    )


EXPECTED_RESOURCE = (
    b"WARC/1.1\r\n"
    b"WARC-Type: resource\r\n"
    b"WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>\r\n"
    b"WARC-Date: 2026-11-23T13:16:36Z\r\n"
    b"WARC-Target-URI: https://president.ir/en/1\r\n"
    b"WARC-Concurrent-To: <urn:uuid:00000000-0000-4000-8000-000000000099>\r\n"
    b"WARC-Block-Digest: sha1:Z26OFJVKVY2WUU5RPPNFD6TVIWJ7YE77\r\n"
    b"WARC-Payload-Digest: sha1:Z26OFJVKVY2WUU5RPPNFD6TVIWJ7YE77\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Content-Length: 34\r\n"
    b"\r\n"
    b"<html><body>rendered</body></html>"
    b"\r\n\r\n"
)


def make_conversion(b: RecordBuilder) -> WarcRecord:
    return b.conversion(
        target_uri="https://thediplomaticinsight.com/",
        content="Headline\n\nBody \u2014 text.\n".encode(),
        refers_to=ORIGINAL_ID,
    )


EXPECTED_CONVERSION = (
    b"WARC/1.1\r\n"
    b"WARC-Type: conversion\r\n"
    b"WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>\r\n"
    b"WARC-Date: 2026-11-23T13:16:36Z\r\n"
    b"WARC-Target-URI: https://thediplomaticinsight.com/\r\n"
    b"WARC-Refers-To: <urn:uuid:00000000-0000-4000-8000-000000000099>\r\n"
    b"WARC-Block-Digest: sha1:QIDM6LHLRVTXJAWM2PM3ITTISHIGDWLB\r\n"
    b"WARC-Payload-Digest: sha1:QIDM6LHLRVTXJAWM2PM3ITTISHIGDWLB\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 25\r\n"
    b"\r\n"
    b"Headline\n\nBody \xe2\x80\x94 text.\n"
    b"\r\n\r\n"
)


def make_metadata(b: RecordBuilder) -> WarcRecord:
    return b.metadata(
        target_uri="https://thediplomaticinsight.com/",
        fields={
            "via": "https://thediplomaticinsight.com/feed/",
            "outlink": ["https://a.example/1", "https://a.example/2"],
            "feedTitle": "Line one\r\nline two",
        },
        refers_to=ORIGINAL_ID,
    )


EXPECTED_METADATA = (
    b"WARC/1.1\r\n"
    b"WARC-Type: metadata\r\n"
    b"WARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000001>\r\n"
    b"WARC-Date: 2026-11-23T13:16:36Z\r\n"
    b"WARC-Target-URI: https://thediplomaticinsight.com/\r\n"
    b"WARC-Refers-To: <urn:uuid:00000000-0000-4000-8000-000000000099>\r\n"
    b"WARC-Block-Digest: sha1:HUVB22TCF77VYPL5MFJ7RIRJQSXLUTXK\r\n"
    b"Content-Type: application/warc-fields\r\n"
    b"Content-Length: 135\r\n"
    b"\r\n"
    b"via: https://thediplomaticinsight.com/feed/\r\n"
    b"outlink: https://a.example/1\r\n"
    b"outlink: https://a.example/2\r\n"
    b"feedTitle: Line one line two\r\n"
    b"\r\n\r\n"
)

GOLDEN: dict[str, tuple[Callable[[RecordBuilder], WarcRecord], bytes]] = {
    "warcinfo": (make_warcinfo, EXPECTED_WARCINFO),
    "request": (make_request, EXPECTED_REQUEST),
    "response": (make_response, EXPECTED_RESPONSE),
    "chunked-response": (make_chunked_response, EXPECTED_CHUNKED_RESPONSE),
    "revisit": (make_revisit, EXPECTED_REVISIT),
    "resource": (make_resource, EXPECTED_RESOURCE),
    "conversion": (make_conversion, EXPECTED_CONVERSION),
    "metadata": (make_metadata, EXPECTED_METADATA),
}


@pytest.mark.parametrize("kind", list(GOLDEN))
def test_record_bytes_are_exact(kind: str, builder: RecordBuilder) -> None:
    make, expected = GOLDEN[kind]
    record = make(builder)
    assert record.data == expected
    assert record.record_type == kind.removeprefix("chunked-")
    head = expected.split(b"\r\n\r\n", 1)[0].decode()
    assert f"WARC-Record-ID: {record.record_id}" in head
    assert f"WARC-Block-Digest: {record.block_digest}" in head
    payload_digest = re.search(r"WARC-Payload-Digest: (\S+)", head)
    assert record.payload_digest == (payload_digest.group(1) if payload_digest else None)


def all_golden(builder: RecordBuilder) -> list[WarcRecord]:
    return [make(builder) for make, _ in GOLDEN.values()]


def assert_reads_back(path: Path, records: list[WarcRecord]) -> None:
    """warcio sees the same records: types, headers, and the exact stored block bytes."""
    with path.open("rb") as stream:
        seen = list(_read_all(stream))
    assert len(seen) == len(records)
    for (rec_type, headers, block), record in zip(seen, records, strict=True):
        assert rec_type == record.record_type
        assert headers["WARC-Record-ID"] == record.record_id
        assert headers["WARC-Block-Digest"] == record.block_digest
        assert headers.get("WARC-Payload-Digest") == record.payload_digest
        rest = record.data.partition(b"\r\n\r\n")[2]
        assert block == rest.removesuffix(b"\r\n\r\n")
        assert int(headers["Content-Length"]) == len(block)


def _read_all(stream: io.BufferedReader) -> list[tuple[str, dict[str, str], bytes]]:
    out = []
    for rec in ArchiveIterator(stream, no_record_parse=True):
        headers = dict(rec.rec_headers.headers)
        out.append((rec.rec_type, headers, rec.raw_stream.read()))
    return out


def test_golden_records_round_trip_gzip(builder: RecordBuilder, tmp_path: Path) -> None:
    records = all_golden(builder)
    writer = WarcFileWriter(tmp_path, prefix="golden", hostname="host", clock=lambda: FIXED_DATE)
    writer.write_sync(records)
    [path] = writer.close()
    # The writer puts its own warcinfo first.
    with path.open("rb") as stream:
        first = next(iter(ArchiveIterator(stream)))
        assert first.rec_type == "warcinfo"
    with path.open("rb") as stream:
        rest = _read_all(stream)[1:]
    assert [r[0] for r in rest] == [r.record_type for r in records]

    status, report = warcio_check(path)
    assert status == 0, report
    # warcinfo + 7 records carry digests warcio verifies; the revisit's are not checkable.
    assert report.count("digest pass") == len(records)
    assert report.count("digest present but not checked (revisit)") == 1


def test_golden_records_round_trip_plain(builder: RecordBuilder, tmp_path: Path) -> None:
    records = all_golden(builder)
    path = tmp_path / "golden.warc"
    path.write_bytes(b"".join(r.data for r in records))
    assert_reads_back(path, records)
    status, report = warcio_check(path)
    assert status == 0, report
    assert report.count("digest pass") == len(records) - 1


def read_http(path: Path, *, decoded: bool) -> dict[str, tuple[StatusAndHeaders, bytes]]:
    """Record id -> (HTTP head, payload) as warcio reads it, raw or content-decoded."""
    out = {}
    with path.open("rb") as stream:
        for rec in ArchiveIterator(stream):
            if rec.http_headers is not None:
                body = rec.content_stream().read() if decoded else rec.raw_stream.read()
                out[rec.rec_headers.get_header("WARC-Record-ID")] = (rec.http_headers, body)
    return out


def test_http_payloads_as_warcio_sees_them(builder: RecordBuilder, tmp_path: Path) -> None:
    """Content-Encoding is kept as received: raw bytes gzip, content_stream decoded."""
    request = make_request(builder)
    response = make_response(builder)
    chunked = make_chunked_response(builder)
    writer = WarcFileWriter(tmp_path, prefix="http", hostname="host")
    writer.write_sync([request, response, chunked])
    [path] = writer.close()

    raw = read_http(path, decoded=False)
    decoded = read_http(path, decoded=True)

    head, body = raw[response.record_id]
    assert head.get_statuscode() == "200"
    assert head.get_header("Content-Encoding") == "gzip"
    assert body == GZIP_PAYLOAD
    assert decoded[response.record_id][1] == GZIP_PAYLOAD_TEXT

    head, body = raw[chunked.record_id]
    assert head.statusline == "404 Not Here"
    assert head.get_header("Transfer-Encoding") is None
    assert head.get_header("Content-Length") == "9"
    assert body == decoded[chunked.record_id][1] == b"not found"

    head, body = raw[request.record_id]
    assert head.protocol == "GET"
    assert head.statusline == "/news/?page=2&q=a%20b HTTP/1.1"
    assert head.get_header("Host") == "thediplomaticinsight.com:8443"
    assert head.get_header("Proxy-Authorization") is None
    assert body == b""


def test_cdxj_indexer_lists_the_response(builder: RecordBuilder, tmp_path: Path) -> None:
    records = all_golden(builder)
    writer = WarcFileWriter(tmp_path / "warc", prefix="cdx", hostname="host")
    locations = writer.write_sync(records)
    [path] = writer.close()
    out = tmp_path / "index.cdxj"
    cdxj_main([str(path), "-o", str(out)])
    lines = out.read_text().splitlines()
    by_key = {}
    for line in lines:
        surt, stamp, blob = line.split(" ", 2)
        fields = json.loads(blob)
        by_key[(surt, fields.get("mime"), fields.get("status"))] = (stamp, fields)
    stamp, fields = by_key[("com,thediplomaticinsight)/", "text/html", "200")]
    assert stamp == "20261123131636"
    assert fields["digest"] == "sha1:AG5C4UXMDQ57CUHJZDQYW3OLF6ZFF7FK"
    [response_location] = [loc for loc in locations if loc.record_id == ORIGINAL_ID]
    assert fields["offset"] == str(response_location.offset)
    assert fields["length"] == str(response_location.length)
    assert fields["filename"] == path.name == response_location.filename
    assert ("ir,presstv)/missing", "text/plain", "404") in by_key
    revisit = [f for (s, _, _), (_, f) in by_key.items() if s == "ir,irna,en)/"]
    assert revisit and revisit[0]["mime"] == "warc/revisit"


# -- HTTP heads ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "request_line", "host"),
    [
        ("http://example.com", b"GET / HTTP/1.1", b"example.com"),
        ("http://example.com:80/a", b"GET /a HTTP/1.1", b"example.com"),
        ("https://example.com:443/a?b=c", b"GET /a?b=c HTTP/1.1", b"example.com"),
        ("https://example.com:80/a", b"GET /a HTTP/1.1", b"example.com:80"),
        ("http://example.com:8080/a;p?q=1&r=%20#frag", b"GET /a;p?q=1&r=%20 HTTP/1.1", None),
        ("http://user:pw@example.com/x/", b"GET /x/ HTTP/1.1", b"example.com"),
        ("http://[2001:db8::1]:8080/", b"GET / HTTP/1.1", b"[2001:db8::1]:8080"),
        ("http://[2001:db8::1]:80/", b"GET / HTTP/1.1", b"[2001:db8::1]"),
        ("http://Example.COM/?", b"GET / HTTP/1.1", b"Example.COM"),
    ],
)
def test_request_line_and_host(url: str, request_line: bytes, host: bytes | None) -> None:
    head = build_request_head("GET", url, [(b"Accept", b"*/*")])
    lines = head.split(b"\r\n")
    assert lines[0] == request_line
    assert lines[1] == b"Host: " + (host or b"example.com:8080")
    assert lines[2:] == [b"Accept: */*", b"", b""]


def test_request_head_keeps_given_host_and_order_and_drops_proxy_headers() -> None:
    head = build_request_head(
        "POST",
        "https://en.irna.ir/search?q=x",
        [
            (b"X-First", b"1"),
            (b"proxy-authorization", b"Basic c2VjcmV0"),
            (b"host", b"en.irna.ir"),
            (b"Proxy-Connection", b"keep-alive"),
            (b"Content-Type", b"application/x-www-form-urlencoded"),
        ],
        body_length=7,
    )
    assert head == (
        b"POST /search?q=x HTTP/1.1\r\n"
        b"X-First: 1\r\n"
        b"host: en.irna.ir\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 7\r\n"
        b"\r\n"
    )
    with_length = build_request_head(
        "POST", "https://e.example/", [(b"content-length", b"7")], body_length=7
    )
    assert with_length.count(b"ength: 7") == 1


def test_response_head_removes_transfer_coding_and_sets_length() -> None:
    head = build_response_head(
        "HTTP/1.1",
        200,
        None,
        [
            (b"Date", b"Mon, 23 Nov 2026 13:16:36 GMT"),
            (b"transfer-encoding", b"chunked"),
            (b"Content-Encoding", b"br"),
            (b"Set-Cookie", b"a=1"),
            (b"Set-Cookie", b"b=2"),
        ],
        12345,
    )
    assert head == (
        b"HTTP/1.1 200 OK\r\n"
        b"Date: Mon, 23 Nov 2026 13:16:36 GMT\r\n"
        b"Content-Length: 12345\r\n"
        b"Content-Encoding: br\r\n"
        b"Set-Cookie: a=1\r\n"
        b"Set-Cookie: b=2\r\n"
        b"\r\n"
    )


def test_response_head_keeps_content_length_as_received_without_transfer_coding() -> None:
    head = build_response_head("HTTP/1.0", 301, None, [(b"Content-Length", b"0")], 0)
    assert head == b"HTTP/1.0 301 Moved Permanently\r\nContent-Length: 0\r\n\r\n"
    assert build_response_head(None, 599, None, [], 0) == b"HTTP/1.1 599 \r\n\r\n"
    assert build_response_head("h2", 204, None, [], 0) == b"HTTP/2 204 No Content\r\n\r\n"


@pytest.mark.parametrize(
    "headers",
    [
        [(b"X-Evil", b"a\r\nSet-Cookie: b")],
        [(b"X-Evil", b"a\nb")],
        [(b"X-Ev\ril", b"a")],
        [(b"", b"a")],
    ],
)
def test_crlf_in_http_headers_is_rejected(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(ValueError, match="HTTP header"):
        build_request_head("GET", "http://example.com/", headers)
    with pytest.raises(ValueError, match="HTTP header"):
        build_response_head("HTTP/1.1", 200, "OK", headers, 0)


def test_bad_urls_and_lines_are_rejected() -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        build_request_head("GET", "http://example.com/a\nb", [])
    with pytest.raises(ValueError, match="CR or LF"):
        build_response_head("HTTP/1.1", 200, "OK\r\nX: y", [], 0)
    with pytest.raises(ValueError, match="method"):
        build_request_head("GET /x", "http://example.com/", [])
    with pytest.raises(ValueError, match="no host"):
        build_request_head("GET", "/relative", [])
    with pytest.raises(ValueError, match="status"):
        build_response_head("HTTP/1.1", 42, None, [], 0)


def test_crlf_in_warc_header_values_is_rejected(builder: RecordBuilder) -> None:
    head = b"GET / HTTP/1.1\r\n\r\n"
    with pytest.raises(ValueError, match="WARC-Target-URI"):
        builder.request(target_uri="http://e.example/\r\nX: y", http_head=head, date=None)
    with pytest.raises(ValueError, match="WARC-Target-URI"):
        builder.request(target_uri="http://e.example/a b", http_head=head, date=None)
    with pytest.raises(ValueError, match="WARC-Concurrent-To"):
        builder.request(
            target_uri="http://e.example/", http_head=head, concurrent_to="<urn:x>\n", date=None
        )
    with pytest.raises(ValueError, match="angle brackets"):
        builder.request(
            target_uri="http://e.example/", http_head=head, concurrent_to="urn:uuid:x", date=None
        )
    with pytest.raises(ValueError, match="Content-Type"):
        builder.resource(target_uri="x:y", content=b"", content_type="text/plain\r\nX: y")
    with pytest.raises(ValueError):
        builder.response(
            target_uri="http://e.example/", http_head=head, payload=b"", ip_address="e.example"
        )
    with pytest.raises(ValueError, match="warc-fields name"):
        builder.metadata(target_uri="x:y", fields={"bad name": "v"})
    with pytest.raises(ValueError, match="CR or LF"):
        builder.revisit(
            target_uri="http://e.example/",
            http_head=head,
            refers_to=ORIGINAL_ID,
            refers_to_target_uri="http://e.example/",
            refers_to_date="2026-11-22T10:00:00Z\r\n",
            payload_digest="sha1:AAAA",
        )


# -- dates and ids -------------------------------------------------------------------------


def test_warc_dates() -> None:
    assert format_warc_date(FIXED_DATE) == "2026-11-23T13:16:36Z"
    assert format_warc_date(FIXED_DATE.replace(microsecond=5)) == "2026-11-23T13:16:36.000005Z"
    tehran = timezone(timedelta(hours=3, minutes=30))
    assert format_warc_date(datetime(2026, 11, 23, 16, 46, 36, tzinfo=tehran)) == (
        "2026-11-23T13:16:36Z"
    )
    with pytest.raises(ValueError, match="naive"):
        format_warc_date(datetime(2026, 11, 23))


def test_sha1_digest_is_standard_base32() -> None:
    for data in (b"", b"a", os.urandom(1000), os.urandom(100_000)):
        expected = "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode("ascii")
        assert sha1_digest(data) == expected


def test_record_ids_are_random_uuid4() -> None:
    ids = {new_record_id() for _ in range(100)}
    assert len(ids) == 100
    for rid in ids:
        assert re.fullmatch(
            r"<urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}>", rid
        )


def test_defaults_come_from_clock_and_factory() -> None:
    dates = iter([FIXED_DATE, FIXED_DATE + timedelta(seconds=1, microseconds=250_000)])
    b = RecordBuilder(clock=lambda: next(dates), make_id=lambda: "<urn:uuid:fixed>")
    first = b.resource(target_uri="x:y", content=b"a", content_type="text/plain")
    second = b.resource(target_uri="x:y", content=b"a", content_type="text/plain")
    assert b"WARC-Date: 2026-11-23T13:16:36Z\r\n" in first.data
    assert b"WARC-Date: 2026-11-23T13:16:37.250000Z\r\n" in second.data
    assert first.record_id == "<urn:uuid:fixed>"
    explicit = b.response(
        target_uri="http://e.example/",
        http_head=b"HTTP/1.1 200 OK\r\n\r\n",
        payload=b"",
        date=FIXED_DATE,
        record_id="<urn:uuid:given>",
    )
    assert explicit.record_id == "<urn:uuid:given>"
