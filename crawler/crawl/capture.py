"""WARC capture in a crawl: every exchange Scrapy downloads, handed to the capture session.

Connected to ``response_downloaded``, so the body is still as received (compressed when the
server compressed it) and redirects, robots.txt and errors are all captured. This module only
turns Scrapy's request and response into an ``Exchange``; ``crawler/capture/`` writes it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThread

from crawler.capture.exchange import Exchange, parse_raw_head
from crawler.capture.session import CaptureSession
from crawler.constants import (
    CHALLENGE_FIELD,
    META_ARTICLE_KEY,
    META_CAPTURE,
    META_HTTP_HEAD,
    META_HTTP_REASON,
    META_SKIP_CAPTURE,
    STATS_WARC_ERRORS,
    STATS_WARC_TRUNCATED,
)
from crawler.fetch.challenge import CHALLENGE_KIND, is_challenge
from crawler.layout import warc_spool_dir

if TYPE_CHECKING:
    from datetime import datetime

    from scrapy import Request, Spider
    from scrapy.http import Response

    from crawler.capture.exchange import CaptureInfo
    from crawler.crawl.ledger import CrawlLedger

logger = logging.getLogger(__name__)


def _header_pairs(headers: Mapping[Any, Any]) -> Iterator[tuple[bytes, bytes]]:
    for name, values in headers.items():
        for value in values:
            yield bytes(name), bytes(value)


def scrapy_exchange(
    response: Response,
    request: Request,
    date: datetime,
    warc_fields: Mapping[str, str] | None = None,
) -> Exchange:
    """The exchange as it went over the wire; pops the raw head the download handler kept."""
    # Through a proxy the peer address is the proxy's, not the site's: leave it out.
    ip = None
    if response.ip_address is not None and not request.meta.get("proxy"):
        ip = str(response.ip_address)
    truncated = None
    if "dataloss" in response.flags or "partial" in response.flags:
        truncated = "disconnect"
    # Popped: a redirect or retry copies the meta into the next request.
    reason = request.meta.pop(META_HTTP_REASON, None)
    raw = parse_raw_head(request.meta.pop(META_HTTP_HEAD, None), response.status)
    protocol: str | None
    if raw is not None:
        protocol, reason, headers = raw
    else:
        protocol, headers = response.protocol, list(_header_pairs(response.headers))
    return Exchange(
        url=request.url,
        method=request.method,
        request_headers=list(_header_pairs(request.headers)),
        request_body=request.body,
        status=response.status,
        protocol=protocol,
        reason=reason,
        response_headers=headers,
        body=response.body,
        date=date,
        ip_address=ip,
        truncated=truncated,
        article_key=request.meta.get(META_ARTICLE_KEY),
        warc_fields=warc_fields,
    )


class WarcCapture:
    """Writes each downloaded exchange as it arrived: response + request, linked.

    The response record id is known at once and put in ``meta["archive_capture"]``.
    """

    def __repr__(self) -> str:  # Scrapy logs a failing signal handler by its repr: no address
        return "<WarcCapture>"

    def __init__(self, session: CaptureSession, ledger: CrawlLedger) -> None:
        self.session = session
        self.ledger = ledger

    async def spider_opened(self, spider: Spider) -> None:
        ledger = self.ledger
        self.session.open(
            spider.name,
            ledger.crawl_id,
            warc_spool_dir(ledger.spool_dir, spider.name, ledger.crawl_id),
        )
        # Repairing a 1 GB file takes seconds: not on the reactor thread.
        await maybe_deferred_to_future(
            deferToThread(self.session.recover, ledger.spool_dir / "warc")
        )

    def close(self) -> None:
        self.session.close()

    def response_downloaded(self, response: Response, request: Request, spider: Spider) -> None:
        if self.session.writer is None or request.meta.get(META_SKIP_CAPTURE):
            return
        if "rendered" in response.flags:
            return  # a browser's DOM, no exchange: fetch/render.py archived what it received
        if not request.url.startswith(("http://", "https://")):
            return
        latency = float(request.meta.get("download_latency") or 0.0)
        date = self.session.clock() - timedelta(seconds=latency)
        # A challenge page stands in front of the page asked for: kept as received, marked.
        fields = {CHALLENGE_FIELD: CHALLENGE_KIND} if is_challenge(response) else None
        try:
            info: CaptureInfo = self.session.capture(
                scrapy_exchange(response, request, date, fields)
            )
        except ValueError as exc:
            # A URL or header that cannot be written faithfully (e.g. CR/LF in it).
            logger.warning("not archiving %s: %s", request.url, exc, extra={"spider": spider})
            self.session.stats.inc_value(STATS_WARC_ERRORS)
            return
        request.meta[META_CAPTURE] = info
        if "dataloss" in response.flags or "partial" in response.flags:
            self.session.stats.inc_value(STATS_WARC_TRUNCATED)
