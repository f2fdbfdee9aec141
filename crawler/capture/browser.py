"""WARC records of what a browser received while rendering one page.

A browser does not give the bytes it read from the wire: Chromium reports each response's
header lines as it parsed them (HTTP/2 pseudo-headers included) and the body after removing
its content coding. The records say so instead of passing as wire captures, the way
browsertrix-crawler writes its own: an HTTP/1.1 head rebuilt from the reported headers,
``Content-Encoding`` and ``Transfer-Encoding`` dropped (the payload is decoded) and
``Content-Length`` set to the payload kept, the fields ``WARC-Page-ID`` and
``WARC-Resource-Type``, and ``WARC-JSON-Metadata`` naming the browser and what was changed.
The rendered DOM is a ``resource`` record (``urn:dom:<url>``) concurrent to the document's
response, a screenshot one more (``urn:view:<url>``, as browsertrix names it), and a
``metadata`` record lists how the page was rendered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from crawler.capture.records import (
    RecordBuilder,
    WarcRecord,
    build_request_head,
    build_response_head,
)

DOM_URI_PREFIX = "urn:dom:"
SCREENSHOT_URI_PREFIX = "urn:view:"
# Framing of the transfer the browser already undid: never true of the payload kept.
_DECODED_HEADERS = frozenset({"content-encoding", "transfer-encoding", "content-length"})


@dataclass(frozen=True, slots=True)
class BrowserExchange:
    """One request the browser sent and the response it got, as the browser reported them."""

    url: str
    method: str
    request_headers: Sequence[tuple[str, str]]
    status: int
    reason: str
    response_headers: Sequence[tuple[str, str]]
    body: bytes
    resource_type: str
    date: datetime
    request_body: bytes = b""
    body_missing: str | None = None  # why no body was kept: "length" (over the limit), ...


@dataclass(slots=True)
class PageCapture:
    """The records of one rendered page; ``document_id`` is the document's response record."""

    records: list[WarcRecord] = field(default_factory=list)
    document_id: str | None = None
    document_digest: str | None = None
    dom_id: str | None = None


def _pairs(headers: Sequence[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    # HTTP/2 and /3 pseudo-headers (":status", ":authority") are no HTTP/1.1 header lines.
    return [
        (name.encode("latin-1"), value.encode("latin-1", "replace"))
        for name, value in headers
        if name and not name.startswith(":")
    ]


def exchange_records(
    builder: RecordBuilder,
    exchange: BrowserExchange,
    *,
    page_id: str,
    browser: str,
) -> list[WarcRecord]:
    """The response and request records of one browser exchange (response first)."""
    kept: list[tuple[str, str]] = []
    decoded: list[str] = []
    for name, value in exchange.response_headers:
        lower = name.lower()
        if lower in _DECODED_HEADERS:
            if lower == "content-encoding" and value.strip().lower() != "identity":
                decoded.append(value.strip())
            continue
        kept.append((name, value))
    body = exchange.body if exchange.body_missing is None else b""
    head = build_response_head(
        "HTTP/1.1", exchange.status, exchange.reason or None, _pairs(kept), len(body)
    )
    note: dict[str, object] = {
        "capturedBy": browser,
        "httpHead": "rebuilt from the headers the browser reported, not the bytes received",
    }
    if decoded:
        note["contentEncodingRemoved"] = ", ".join(decoded)
    extra = {
        "WARC-Page-ID": page_id,
        "WARC-Resource-Type": exchange.resource_type,
        "WARC-JSON-Metadata": json.dumps(note, separators=(",", ":"), sort_keys=True),
    }
    response = builder.response(
        target_uri=exchange.url,
        http_head=head,
        payload=body,
        date=exchange.date,
        truncated=exchange.body_missing,
        extra=extra,
    )
    request_head = build_request_head(
        exchange.method,
        exchange.url,
        _pairs(exchange.request_headers),
        len(exchange.request_body),
    )
    request = builder.request(
        target_uri=exchange.url,
        http_head=request_head,
        body=exchange.request_body,
        date=exchange.date,
        concurrent_to=response.record_id,
        extra={"WARC-Page-ID": page_id, "WARC-Resource-Type": exchange.resource_type},
    )
    return [response, request]


def page_records(
    builder: RecordBuilder,
    exchanges: Sequence[BrowserExchange],
    *,
    document: BrowserExchange | None,
    page_url: str,
    page_id: str,
    browser: str,
    date: datetime,
    dom: str | None,
    screenshot: bytes | None = None,
    fields: Mapping[str, str | Sequence[str]] | None = None,
) -> PageCapture:
    """Every record of a rendered page: the document's exchange first, then the others in the
    order they finished, then the DOM, the screenshot and the page's metadata record."""
    out = PageCapture()
    ordered = ([document] if document is not None else []) + [
        ex for ex in exchanges if ex is not document
    ]
    for ex in ordered:
        records = exchange_records(builder, ex, page_id=page_id, browser=browser)
        if ex is document:
            out.document_id = records[0].record_id
            out.document_digest = records[0].payload_digest
        out.records.extend(records)
    extra = {"WARC-Page-ID": page_id}
    if dom is not None:
        dom_record = builder.resource(
            target_uri=DOM_URI_PREFIX + page_url,
            content=dom.encode("utf-8"),
            content_type="text/html; charset=utf-8",
            date=date,
            concurrent_to=out.document_id,
            extra=extra,
        )
        out.dom_id = dom_record.record_id
        out.records.append(dom_record)
    if screenshot is not None:
        out.records.append(
            builder.resource(
                target_uri=SCREENSHOT_URI_PREFIX + page_url,
                content=screenshot,
                content_type="image/png",
                date=date,
                concurrent_to=out.document_id,
                extra=extra,
            )
        )
    info: dict[str, str | Sequence[str]] = {
        "rendered-by": browser,
        "page-id": page_id,
        "network-responses": str(len(ordered)),
        "note": "response records of this page are the browser's view: head rebuilt from the "
        "reported headers, payload after content decoding",
    }
    if out.dom_id is not None:
        info["rendered-dom"] = out.dom_id
    info.update(fields or {})
    out.records.append(
        builder.metadata(
            target_uri=page_url,
            fields=info,
            concurrent_to=out.document_id,
            date=date,
        )
    )
    return out
