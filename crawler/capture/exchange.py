"""One HTTP exchange as it went over the wire, and the WARC records it becomes.

No Scrapy object comes here: the crawl's adapter (``crawler/crawl/capture.py``) hands over an
``Exchange`` of plain values, and gets back the records and a ``CaptureInfo``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime

from crawler.capture.records import (
    RecordBuilder,
    WarcRecord,
    build_request_head,
    build_response_head,
    sha1_digest,
)
from crawler.capture.writer import RecordLocation

TEXT_URI_PREFIX = "urn:text:"


@dataclass(slots=True)
class CaptureInfo:
    """Where the response of one exchange went; set in the request's meta at download time."""

    record_id: str
    target_uri: str
    date: str
    payload_digest: str | None
    future: Future[list[RecordLocation]] = field(repr=False)
    record_type: str = "response"  # or "revisit": the payload equals an earlier capture's
    rendered_dom: str | None = None  # a rendered page: its DOM's resource record (render.py)
    rendered_dom_uri: str | None = None
    rendered_dom_date: str | None = None

    def location(self, timeout: float | None = 60.0) -> RecordLocation:
        return self.future.result(timeout)[0]


@dataclass(frozen=True, slots=True)
class RevisitTarget:
    """An earlier response with the same payload, which a revisit record refers to."""

    record_id: str
    target_uri: str
    date: str


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and its response, as sent and received (the response head in wire order)."""

    url: str
    method: str
    request_headers: Sequence[tuple[bytes, bytes]]
    request_body: bytes
    status: int
    protocol: str | None
    reason: str | None
    response_headers: Sequence[tuple[bytes, bytes]]
    body: bytes
    date: datetime
    ip_address: str | None = None
    truncated: str | None = None  # WARC-Truncated: "disconnect", "length", …
    article_key: str | None = None  # the article the spider fetched it as, if any
    # The first line as received when it is no valid status line (``status`` is then 0).
    status_line: bytes | None = None
    warc_fields: Mapping[str, str] | None = None  # more WARC fields (WARC-Resource-Type, …)


# url, payload digest, article key -> an earlier identical response, or None (write it whole).
RevisitLookup = Callable[[str, str, "str | None"], "RevisitTarget | None"]
# Told of every capture once it is queued for writing (the catalog records them).
CaptureListener = Callable[["CaptureInfo", "Exchange"], None]


def parse_raw_head(
    lines: Sequence[bytes] | None, status: int
) -> tuple[str, str, list[tuple[bytes, bytes]]] | None:
    """Protocol, reason and header pairs in wire order from the head's raw lines, or None.

    None when there are none or they belong to another response (their status differs).
    """
    if not lines:
        return None
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit() or int(parts[1]) != status:
        return None
    protocol = parts[0].decode("latin-1")
    reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
    return protocol, reason, parse_header_lines(lines[1:])


def parse_header_lines(lines: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
    """Header pairs in wire order from a head's lines after its first (no line ends)."""
    headers: list[tuple[bytes, bytes]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and headers:
            # An obsolete folded continuation line: one value, as every parser reads it.
            name, value = headers[-1]
            headers[-1] = (name, value + b" " + line.strip())
            continue
        name, sep, value = line.partition(b":")
        if sep and name.strip():
            headers.append((name, value.strip()))
    return headers


def exchange_records(
    builder: RecordBuilder, exchange: Exchange, revisit_lookup: RevisitLookup | None = None
) -> list[WarcRecord]:
    """The response (or identical-payload revisit) record, then the request record."""
    body = exchange.body
    resp_head = build_response_head(
        exchange.protocol,
        exchange.status,
        exchange.reason,
        list(exchange.response_headers),
        len(body),
        exchange.status_line,
    )
    extra = exchange.warc_fields
    earlier = None
    # Hashed once: the revisit lookup and the response record's payload digest share it.
    digest = sha1_digest(body)
    if revisit_lookup is not None and body and exchange.truncated is None:
        earlier = revisit_lookup(exchange.url, digest, exchange.article_key)
    if earlier is not None:
        # Identical-payload revisit: the head as received now, the payload by reference.
        resp = builder.revisit(
            target_uri=exchange.url,
            http_head=resp_head,
            date=exchange.date,
            refers_to=earlier.record_id,
            refers_to_target_uri=earlier.target_uri,
            refers_to_date=earlier.date,
            payload_digest=digest,
            ip_address=exchange.ip_address,
            extra=extra,
        )
    else:
        resp = builder.response(
            target_uri=exchange.url,
            http_head=resp_head,
            payload=body,
            date=exchange.date,
            ip_address=exchange.ip_address,
            truncated=exchange.truncated,
            extra=extra,
            payload_digest=digest,
        )
    req_head = build_request_head(
        exchange.method, exchange.url, exchange.request_headers, len(exchange.request_body)
    )
    req = builder.request(
        target_uri=exchange.url,
        http_head=req_head,
        body=exchange.request_body,
        date=exchange.date,
        concurrent_to=resp.record_id,
        ip_address=exchange.ip_address,
        extra=extra,
    )
    return [resp, req]


def article_records(
    builder: RecordBuilder,
    capture: CaptureInfo,
    text: bytes,
    metadata: Mapping[str, str | Sequence[str]],
) -> list[WarcRecord]:
    """The conversion (cleaned text) and metadata (provenance) records of one article."""
    # Not the page's own URL: replay tools (pywb) would index the text as one more, newer
    # capture of the page. "urn:text:" is browsertrix-crawler's name for derived text.
    # The text of a rendered page comes from its DOM, not from the document's response.
    if capture.rendered_dom is not None:
        source = (
            capture.rendered_dom,
            capture.rendered_dom_uri or capture.target_uri,
            capture.rendered_dom_date or capture.date,
        )
    else:
        source = (capture.record_id, capture.target_uri, capture.date)
    conversion = builder.conversion(
        target_uri=TEXT_URI_PREFIX + capture.target_uri,
        content=text,
        refers_to=source[0],
        refers_to_target_uri=source[1],
        refers_to_date=source[2],
    )
    meta = builder.metadata(
        target_uri=capture.target_uri,
        fields=metadata,
        refers_to=capture.record_id,
    )
    return [conversion, meta]
