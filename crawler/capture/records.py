"""WARC/1.1 records serialized to bytes: fast, byte-exact, no Scrapy."""

from __future__ import annotations

import functools
import hashlib
import http
import ipaddress
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
RecordIdFactory = Callable[[], str]

WARC_VERSION = "WARC/1.1"
REVISIT_PROFILE_IDENTICAL_PAYLOAD = (
    "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest"
)
CONTENT_TYPE_HTTP_REQUEST = "application/http;msgtype=request"
CONTENT_TYPE_HTTP_RESPONSE = "application/http;msgtype=response"
CONTENT_TYPE_WARC_FIELDS = "application/warc-fields"

_CRLF = b"\r\n"
_RECORD_END = b"\r\n\r\n"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# Hop-by-hop or secret headers meant for a proxy, never for the origin server.
_REQUEST_HEADERS_DROPPED = frozenset({b"proxy-authorization", b"proxy-connection"})
# Scrapy reports HTTP/2 as "h2"; a status line needs the HTTP-version form.
_PROTOCOL_ALIASES = {"h2": "HTTP/2", "h2c": "HTTP/2", "h3": "HTTP/3"}
_FIELD_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FOLD = re.compile(r"[\r\n]+")
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_SHIFTS = range(155, -1, -5)


def utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


def new_record_id() -> str:
    """A fresh random WARC-Record-ID (uuid4: no host or time leaks, no collisions)."""
    return f"<urn:uuid:{uuid.uuid4()}>"


def format_warc_date(dt: datetime) -> str:
    """W3C-ISO8601 UTC date; WARC/1.1 allows the fraction, written only when non-zero."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"WARC dates must be timezone-aware, got naive {dt!r}")
    dt = dt.astimezone(UTC)
    if dt.microsecond:
        return f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond:06d}Z"
    return f"{dt:%Y-%m-%dT%H:%M:%S}Z"


def sha1_digest(data: bytes) -> str:
    """The "sha1:BASE32" labelled digest pywb, cdxj-indexer and warcio expect."""
    return _label(hashlib.sha1(data).digest())


def _label(sha1: bytes) -> str:
    # base64.b32encode is pure Python in 3.11; a 160-bit digest is exactly 32 symbols.
    number = int.from_bytes(sha1, "big")
    return "sha1:" + "".join([_B32[(number >> shift) & 31] for shift in _B32_SHIFTS])


@functools.lru_cache(maxsize=4096)
def _checked_ip(ip_address: str) -> str:
    ipaddress.ip_address(ip_address)  # raises ValueError for anything but an IP address
    return ip_address


@dataclass(frozen=True, slots=True)
class WarcRecord:
    """One serialized record; ``data`` is uncompressed and ends with the record's CRLFCRLF."""

    record_id: str
    record_type: str
    data: bytes
    payload_digest: str | None = None
    block_digest: str = ""
    # The record's WARC-Date (None: read it from ``data``); the writer compares it with the
    # warcinfo of the file the record goes into.
    date: datetime | None = None


_WARC_DATE_FIELD = b"\r\nWARC-Date:"
_WARCINFO_ID_FIELD = b"\r\nWARC-Warcinfo-ID:"


def record_date(record: WarcRecord) -> datetime:
    """A record's WARC-Date: the one it was built with, else read from its header."""
    if record.date is not None:
        return record.date
    data = record.data
    end = data.find(_RECORD_END)
    start = data.find(_WARC_DATE_FIELD, 0, end)
    if start < 0:
        raise ValueError(f"record {record.record_id} has no WARC-Date")
    start += len(_WARC_DATE_FIELD)
    value = data[start : data.find(_CRLF, start, end + 2)].strip().decode("ascii")
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def warcinfo_id_split(data: bytes) -> int:
    """Where a ``WARC-Warcinfo-ID`` line goes in a serialised record: after WARC-Date.

    -1 when the record already has one. The block digest does not cover the WARC header, so
    the line can be put in as the record is written, once its file is known.
    """
    end = data.find(_RECORD_END)
    if end < 0:
        raise ValueError("not a serialised WARC record: no end of header")
    if data.find(_WARCINFO_ID_FIELD, 0, end) >= 0:
        return -1
    start = data.find(_WARC_DATE_FIELD, 0, end)
    if start < 0:
        return end + 2  # the last header line
    return data.find(_CRLF, start + 2, end + 2) + 2


def warcinfo_id_line(warcinfo_id: str) -> bytes:
    """The header line naming the warcinfo record of a record's file."""
    return f"WARC-Warcinfo-ID: {_check_id('WARC-Warcinfo-ID', warcinfo_id)}\r\n".encode()


def _check_value(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name} must not contain CR or LF: {value!r}")
    return value


def _check_id(name: str, value: str) -> str:
    _check_value(name, value)
    if len(value) < 3 or value[0] != "<" or value[-1] != ">" or " " in value:
        raise ValueError(f'{name} must be a URI in angle brackets ("<urn:uuid:...>"): {value!r}')
    return value


def _check_header_bytes(name: bytes, value: bytes) -> None:
    if b"\r" in name or b"\n" in name or b"\r" in value or b"\n" in value:
        raise ValueError(f"HTTP header must not contain CR or LF: {name!r}: {value!r}")
    if not name or b":" in name:
        raise ValueError(f"invalid HTTP header name: {name!r}")


def build_request_head(
    method: str,
    url: str,
    headers: Iterable[tuple[bytes, bytes]],
    body_length: int = 0,
) -> bytes:
    """The HTTP/1.1 request head as sent: origin-form target, Host first, CRLF-terminated."""
    _check_value("URL", url)
    if not _FIELD_NAME.fullmatch(method):
        raise ValueError(f"invalid HTTP method: {method!r}")
    parts = urlsplit(url)
    if not parts.netloc:
        raise ValueError(f"URL has no host: {url!r}")
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    if " " in target:
        raise ValueError(f"URL must not contain spaces: {url!r}")

    lines: list[bytes] = [f"{method} {target} HTTP/1.1".encode()]
    kept: list[bytes] = []
    has_host = has_length = False
    for name, value in headers:
        _check_header_bytes(name, value)
        lower = name.lower()
        if lower in _REQUEST_HEADERS_DROPPED:
            continue
        if lower == b"host":
            has_host = True
        elif lower == b"content-length":
            has_length = True
        kept.append(name + b": " + value)
    if not has_host:
        lines.append(b"Host: " + _host_value(parts.scheme, parts.netloc, parts.port).encode())
    lines.extend(kept)
    if body_length and not has_length:
        lines.append(b"Content-Length: %d" % body_length)
    lines.append(_CRLF)
    return _CRLF.join(lines)


def _host_value(scheme: str, netloc: str, port: int | None) -> str:
    hostport = netloc.rpartition("@")[2]
    if hostport.endswith(":"):
        return hostport[:-1]
    if port is not None and port == _DEFAULT_PORTS.get(scheme.lower()):
        return hostport[: hostport.rfind(":")]
    return hostport


def build_response_head(
    protocol: str | None,
    status: int,
    reason: str | None,
    headers: Iterable[tuple[bytes, bytes]],
    payload_length: int,
    status_line: bytes | None = None,
) -> bytes:
    """The response head as received, with transfer coding removed and Content-Length fixed.

    ``status_line``: the first line exactly as received, when it is no valid status line
    (archived as it came, never replaced by an invented one; ``status`` is then not checked).

    The payload is stored de-chunked (the HTTP client already removed the chunking), so a
    Transfer-Encoding header is dropped and Content-Length set to the stored payload length.
    Scrapy's headers never hold Transfer-Encoding (Twisted keeps framing headers apart), so a
    head without Content-Length (chunked, or ended by closing the connection) gets one too
    when the payload is not empty.
    Content-Encoding is kept: the payload stays compressed as received.
    """
    first: bytes
    if status_line is not None:
        if b"\r" in status_line or b"\n" in status_line:
            raise ValueError(f"status line holds CR or LF: {status_line!r}")
        first = status_line
    else:
        version = _PROTOCOL_ALIASES.get(protocol or "", protocol or "HTTP/1.1")
        _check_value("HTTP protocol", version)
        if not version or " " in version:
            raise ValueError(f"invalid HTTP protocol: {protocol!r}")
        if not 100 <= status <= 999:
            raise ValueError(f"invalid HTTP status: {status!r}")
        if reason is None:
            try:
                reason = http.HTTPStatus(status).phrase
            except ValueError:
                reason = ""
        _check_value("HTTP reason phrase", reason)
        first = f"{version} {status} {reason}".encode()

    items: list[tuple[bytes, bytes]] = []
    chunked = False
    for name, value in headers:
        _check_header_bytes(name, value)
        if name.lower() == b"transfer-encoding":
            chunked = True
        items.append((name, value))

    lines: list[bytes] = [first]
    if chunked:
        length_line = b"Content-Length: %d" % payload_length
        for name, value in items:
            if name.lower() in (b"transfer-encoding", b"content-length"):
                if length_line:
                    # Keep the header where the framing header was, for a faithful order.
                    lines.append(length_line)
                    length_line = b""
                continue
            lines.append(name + b": " + value)
    else:
        lines.extend(name + b": " + value for name, value in items)
        # An empty body (HEAD, 204, 304) keeps its head as it was: no length to state.
        if payload_length and not any(name.lower() == b"content-length" for name, _ in items):
            lines.append(b"Content-Length: %d" % payload_length)
    lines.append(_CRLF)
    return _CRLF.join(lines)


def _warc_fields(fields: Mapping[str, str | Sequence[str]]) -> bytes:
    out: list[str] = []
    for name, value in fields.items():
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(f"invalid warc-fields name: {name!r}")
        values = (value,) if isinstance(value, str) else value
        for item in values:
            out.append(f"{name}: {_FOLD.sub(' ', item)}\r\n")
    return "".join(out).encode()


class RecordBuilder:
    """Builds records with an injectable clock and id factory (so tests can be byte-exact)."""

    def __init__(self, *, clock: Clock = utc_now, make_id: RecordIdFactory = new_record_id) -> None:
        self._clock = clock
        self._make_id = make_id

    def _head(
        self,
        record_type: str,
        record_id: str | None,
        date: datetime | None,
        target_uri: str | None,
    ) -> tuple[str, list[str], datetime]:
        rid = _check_id("WARC-Record-ID", record_id if record_id is not None else self._make_id())
        moment = date if date is not None else self._clock()
        lines = [
            WARC_VERSION,
            f"WARC-Type: {record_type}",
            f"WARC-Record-ID: {rid}",
            f"WARC-Date: {format_warc_date(moment)}",
        ]
        if target_uri is not None:
            if not target_uri:
                raise ValueError("WARC-Target-URI must not be empty")
            if " " in target_uri:
                raise ValueError(f"WARC-Target-URI must not contain spaces: {target_uri!r}")
            lines.append(f"WARC-Target-URI: {_check_value('WARC-Target-URI', target_uri)}")
        return rid, lines, moment

    @staticmethod
    def _finish(
        lines: list[str],
        record_type: str,
        record_id: str,
        content_type: str,
        block: bytes | Sequence[bytes],
        block_digest: str,
        payload_digest: str | None,
        date: datetime,
    ) -> WarcRecord:
        parts = (block,) if isinstance(block, bytes) else block
        length = sum(len(part) for part in parts)
        lines.append(f"WARC-Block-Digest: {block_digest}")
        if payload_digest is not None:
            lines.append(f"WARC-Payload-Digest: {payload_digest}")
        lines.append(f"Content-Type: {_check_value('Content-Type', content_type)}")
        lines.append(f"Content-Length: {length}")
        lines.append("\r\n")
        data = b"".join(("\r\n".join(lines).encode(), *parts, _RECORD_END))
        return WarcRecord(
            record_id=record_id,
            record_type=record_type,
            data=data,
            payload_digest=payload_digest,
            block_digest=block_digest,
            date=date,
        )

    @staticmethod
    def _link(lines: list[str], name: str, value: str | None) -> None:
        if value is not None:
            lines.append(f"{name}: {_check_id(name, value)}")

    @staticmethod
    def _extra(lines: list[str], fields: Mapping[str, str] | None) -> None:
        for name, value in (fields or {}).items():
            if not _FIELD_NAME.fullmatch(name):
                raise ValueError(f"invalid WARC field name: {name!r}")
            lines.append(f"{name}: {_check_value(name, value)}")

    @staticmethod
    def _ip(lines: list[str], ip_address: str | None) -> None:
        if ip_address is not None:
            lines.append(f"WARC-IP-Address: {_checked_ip(ip_address)}")

    def warcinfo(
        self,
        filename: str,
        fields: Mapping[str, str | Sequence[str]],
        *,
        date: datetime | None = None,
    ) -> WarcRecord:
        """The record opening a file: who wrote it, how, under which name.

        ``date``: when the file was opened (the clock's time without it); the writer gives an
        earlier one when a record going into the file is dated earlier (see WarcFileWriter).
        """
        if not filename or "/" in filename:
            raise ValueError(f"WARC-Filename must be a bare file name: {filename!r}")
        rid, lines, moment = self._head("warcinfo", None, date, None)
        lines.append(f"WARC-Filename: {_check_value('WARC-Filename', filename)}")
        block = _warc_fields(fields)
        return self._finish(
            lines,
            "warcinfo",
            rid,
            CONTENT_TYPE_WARC_FIELDS,
            block,
            sha1_digest(block),
            None,
            moment,
        )

    def request(
        self,
        *,
        target_uri: str,
        http_head: bytes,
        body: bytes = b"",
        date: datetime | None = None,
        concurrent_to: str | None = None,
        ip_address: str | None = None,
        record_id: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> WarcRecord:
        """An HTTP request as sent: ``http_head`` from :func:`build_request_head`, then the body.

        ``extra``: more WARC fields (e.g. browsertrix's ``WARC-Resource-Type``).
        """
        rid, lines, moment = self._head("request", record_id, date, target_uri)
        self._link(lines, "WARC-Concurrent-To", concurrent_to)
        self._ip(lines, ip_address)
        self._extra(lines, extra)
        digest = hashlib.sha1(http_head)
        if body:
            digest.update(body)
        block_digest = _label(digest.digest())
        return self._finish(
            lines,
            "request",
            rid,
            CONTENT_TYPE_HTTP_REQUEST,
            (http_head, body),
            block_digest,
            None,
            moment,
        )

    def response(
        self,
        *,
        target_uri: str,
        http_head: bytes,
        payload: bytes,
        date: datetime | None = None,
        ip_address: str | None = None,
        truncated: str | None = None,
        record_id: str | None = None,
        concurrent_to: str | None = None,
        extra: Mapping[str, str] | None = None,
        payload_digest: str | None = None,
    ) -> WarcRecord:
        """An HTTP response as received; ``truncated`` names why a payload is incomplete.

        ``payload_digest``: the payload's :func:`sha1_digest` where the caller computed it
        already (the revisit lookup needs it first), so the payload is hashed once for it.
        """
        rid, lines, moment = self._head("response", record_id, date, target_uri)
        self._link(lines, "WARC-Concurrent-To", concurrent_to)
        self._ip(lines, ip_address)
        self._extra(lines, extra)
        if truncated is not None:
            if not truncated or " " in truncated:
                raise ValueError(f"invalid WARC-Truncated reason: {truncated!r}")
            lines.append(f"WARC-Truncated: {_check_value('WARC-Truncated', truncated)}")
        block = hashlib.sha1(http_head)
        block.update(payload)
        block_digest = _label(block.digest())
        return self._finish(
            lines,
            "response",
            rid,
            CONTENT_TYPE_HTTP_RESPONSE,
            (http_head, payload),
            block_digest,
            payload_digest if payload_digest is not None else sha1_digest(payload),
            moment,
        )

    def revisit(
        self,
        *,
        target_uri: str,
        http_head: bytes,
        date: datetime | None = None,
        refers_to: str,
        refers_to_target_uri: str,
        refers_to_date: str,
        payload_digest: str,
        ip_address: str | None = None,
        record_id: str | None = None,
        concurrent_to: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> WarcRecord:
        """A revisit (identical-payload-digest profile): the response head, no payload."""
        rid, lines, moment = self._head("revisit", record_id, date, target_uri)
        self._link(lines, "WARC-Concurrent-To", concurrent_to)
        self._link(lines, "WARC-Refers-To", refers_to)
        lines.append(
            f"WARC-Refers-To-Target-URI: "
            f"{_check_value('WARC-Refers-To-Target-URI', refers_to_target_uri)}"
        )
        lines.append(f"WARC-Refers-To-Date: {_check_value('WARC-Refers-To-Date', refers_to_date)}")
        self._ip(lines, ip_address)
        lines.append(f"WARC-Profile: {REVISIT_PROFILE_IDENTICAL_PAYLOAD}")
        self._extra(lines, extra)
        _check_value("WARC-Payload-Digest", payload_digest)
        return self._finish(
            lines,
            "revisit",
            rid,
            CONTENT_TYPE_HTTP_RESPONSE,
            http_head,
            sha1_digest(http_head),
            payload_digest,
            moment,
        )

    def resource(
        self,
        *,
        target_uri: str,
        content: bytes,
        content_type: str,
        date: datetime | None = None,
        concurrent_to: str | None = None,
        refers_to: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> WarcRecord:
        """Content with no HTTP envelope, e.g. a DOM rendered in a browser."""
        rid, lines, moment = self._head("resource", None, date, target_uri)
        self._link(lines, "WARC-Concurrent-To", concurrent_to)
        self._link(lines, "WARC-Refers-To", refers_to)
        self._extra(lines, extra)
        digest = sha1_digest(content)
        return self._finish(lines, "resource", rid, content_type, content, digest, digest, moment)

    def conversion(
        self,
        *,
        target_uri: str,
        content: bytes,
        content_type: str = "text/plain; charset=utf-8",
        refers_to: str,
        date: datetime | None = None,
        refers_to_target_uri: str | None = None,
        refers_to_date: str | None = None,
    ) -> WarcRecord:
        """Content derived from another record (``refers_to``), e.g. the cleaned article text."""
        rid, lines, moment = self._head("conversion", None, date, target_uri)
        self._link(lines, "WARC-Refers-To", refers_to)
        for name, value in (
            ("WARC-Refers-To-Target-URI", refers_to_target_uri),
            ("WARC-Refers-To-Date", refers_to_date),
        ):
            if value is not None:
                lines.append(f"{name}: {_check_value(name, value)}")
        digest = sha1_digest(content)
        return self._finish(lines, "conversion", rid, content_type, content, digest, digest, moment)

    def metadata(
        self,
        *,
        target_uri: str,
        fields: Mapping[str, str | Sequence[str]],
        refers_to: str | None = None,
        concurrent_to: str | None = None,
        date: datetime | None = None,
    ) -> WarcRecord:
        """warc-fields about another record; a sequence value becomes repeated lines."""
        rid, lines, moment = self._head("metadata", None, date, target_uri)
        self._link(lines, "WARC-Refers-To", refers_to)
        self._link(lines, "WARC-Concurrent-To", concurrent_to)
        block = _warc_fields(fields)
        return self._finish(
            lines,
            "metadata",
            rid,
            CONTENT_TYPE_WARC_FIELDS,
            block,
            sha1_digest(block),
            None,
            moment,
        )
