"""WARC records of what a browser made of a page: its DOM, a screenshot, how it was rendered.

What the browser fetched is no business of this module: every request Chromium sends goes
through the crawl's egress proxy (crawler/fetch/egress.py), which hands each exchange, as it
went over the wire, to the same capture code as the Scrapy path. Here are only the records
no wire carries: the rendered DOM as a ``resource`` record (``urn:dom:<url>``) concurrent to
the document's response, the full-page screenshot (``urn:fullPage:<url>``, browsertrix-
crawler's name for the whole page; ``urn:view:`` is its viewport), and a ``metadata`` record
saying how the page was rendered, which subresources failed and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from crawler.capture.records import RecordBuilder, WarcRecord

DOM_URI_PREFIX = "urn:dom:"
SCREENSHOT_URI_PREFIX = "urn:fullPage:"


@dataclass(slots=True)
class PageCapture:
    """The browser's own records of one page; ``dom_id`` is its DOM's resource record."""

    records: list[WarcRecord] = field(default_factory=list)
    dom_id: str | None = None
    dom_uri: str | None = None
    dom_date: datetime | None = None


def page_records(
    builder: RecordBuilder,
    *,
    page_url: str,
    document_id: str | None,
    page_id: str,
    browser: str,
    date: datetime,
    dom: str | None,
    screenshot: bytes | None = None,
    fields: Mapping[str, str | Sequence[str]] | None = None,
) -> PageCapture:
    """The DOM, the screenshot and the page's metadata record (each concurrent to the
    document's response record, when there is one)."""
    out = PageCapture()
    extra = {"WARC-Page-ID": page_id}
    if dom is not None:
        dom_record = builder.resource(
            target_uri=DOM_URI_PREFIX + page_url,
            content=dom.encode("utf-8"),
            content_type="text/html; charset=utf-8",
            date=date,
            concurrent_to=document_id,
            extra=extra,
        )
        out.dom_id = dom_record.record_id
        out.dom_uri = DOM_URI_PREFIX + page_url
        out.dom_date = date
        out.records.append(dom_record)
    if screenshot is not None:
        out.records.append(
            builder.resource(
                target_uri=SCREENSHOT_URI_PREFIX + page_url,
                content=screenshot,
                content_type="image/png",
                date=date,
                concurrent_to=document_id,
                extra=extra,
            )
        )
    info: dict[str, str | Sequence[str]] = {
        "rendered-by": browser,
        "page-id": page_id,
        "note": "the page's network exchanges are response and request records as they went "
        "over the wire (through the crawl's egress proxy); this DOM is the browser's own",
    }
    if out.dom_id is not None:
        info["rendered-dom"] = out.dom_id
    info.update(fields or {})
    out.records.append(
        builder.metadata(
            target_uri=page_url,
            fields=info,
            concurrent_to=document_id,
            date=date,
        )
    )
    return out
