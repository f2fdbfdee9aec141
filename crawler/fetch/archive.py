"""A download handler that answers every request from the archive instead of the network.

For a crawl replayed from the archive (``newsarchive crawl SITE --from-archive``): the real
spider, middlewares and text extraction run as live, while each request is answered by a
``ReplaySource`` (the catalog and the store, given by the crawl's root: this module knows
neither) with the response as the wire gave it: status, header lines, the body with its
Content-Encoding, so Scrapy's middlewares decompress, redirect and type it as they do live. A
request asking to be rendered gets the DOM the browser made of the page, when one is archived.

A request the archive cannot answer fails as an ``IgnoreRequest`` that names why
(``ReplayMiss.cause``): ``not-in-archive`` (never captured), ``archive-missing`` (its WARC
object is gone from the store), ``archive-corrupt`` (its bytes are no readable record, or fail
their digest). The spider lists it with the URL like any failed request; nothing opens a socket.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Self

from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import Headers
from scrapy.responsetypes import responsetypes
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThread

from crawler.constants import (
    META_ARTICLE_KEY,
    META_RENDER,
    STATS_REPLAY_MISSED,
    STATS_REPLAY_NOT_RENDERED,
    STATS_REPLAY_RENDERED,
    STATS_REPLAY_RESPONSES,
)

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

NOT_IN_ARCHIVE = "not-in-archive"
ARCHIVE_MISSING = "archive-missing"
ARCHIVE_CORRUPT = "archive-corrupt"
# Response flags: answered from the archive; the body is a browser's DOM (as render.py flags it).
FLAG_REPLAYED = "replayed"
FLAG_RENDERED = "rendered"


class ReplayMiss(IgnoreRequest):
    """A request the archive does not answer; ``cause`` is its cause in the crawl report."""

    cause = NOT_IN_ARCHIVE

    def __init__(self, message: str, cause: str | None = None) -> None:
        super().__init__(message)
        if cause is not None:
            self.cause = cause


class NotInArchive(ReplayMiss):
    """The archive never captured this URL (in the crawl replayed)."""


class ArchiveReadError(ReplayMiss):
    """The capture is in the catalog, but its record cannot be used (``ARCHIVE_MISSING``,
    ``ARCHIVE_CORRUPT``)."""

    cause = ARCHIVE_CORRUPT


@dataclass(frozen=True, slots=True)
class ArchivedAnswer:
    """A response as the archive holds it: what the wire gave (or a browser's DOM)."""

    url: str
    status: int
    headers: Sequence[tuple[str, str]]  # as received: order, repeats, Content-Encoding kept
    body: bytes
    protocol: str = "HTTP/1.1"
    ip_address: str | None = None
    truncated: bool = False  # the record is marked WARC-Truncated: the body is cut
    rendered: bool = False  # the body is the DOM a browser made of the page


class ReplaySource(Protocol):
    """Where a replay's answers come from; called in a worker thread (it may block)."""

    def answer(self, url: str, *, render: bool, article_key: str | None = None) -> ArchivedAnswer:
        """The archived response for ``url`` (for an article, ``article_key``: its capture
        under another of its URLs may answer); ``ReplayMiss`` when there is none to give."""
        ...


def make_response(answer: ArchivedAnswer, request: Request | None = None) -> Response:
    """The Scrapy response a download of ``answer`` would have given, typed as Scrapy types it."""
    headers = Headers()
    for name, value in answer.headers:  # appendlist: repeated headers (Set-Cookie) all kept
        headers.appendlist(name, value)
    flags = [FLAG_REPLAYED]
    if answer.truncated:
        flags.append("dataloss")  # as Scrapy flags a body cut short on the wire
    if answer.rendered:
        flags.append(FLAG_RENDERED)
    body = b"" if request is not None and request.method == "HEAD" else answer.body
    address = None
    if answer.ip_address:
        try:
            address = ipaddress.ip_address(answer.ip_address)
        except ValueError:
            address = None
    cls = responsetypes.from_args(headers=headers, url=answer.url, body=body)
    return cls(
        url=answer.url,
        status=answer.status,
        headers=headers,
        body=body,
        flags=flags,
        request=request,
        ip_address=address,
        protocol=answer.protocol,
    )


class ReplayDownloadHandler:
    """Answers every request from a ``ReplaySource``: never a connection, never a name lookup.

    Installed for every scheme (``DOWNLOAD_HANDLERS``) when a crawl replays the archive.
    """

    lazy = False

    def __init__(self, crawler: Crawler, source: ReplaySource | None = None) -> None:
        if source is None:
            raise NotConfigured("no archive to replay from (the crawl's root gives it)")
        self.crawler = crawler
        self.source = source

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def _inc(self, key: str) -> None:
        if self.crawler.stats is not None:
            self.crawler.stats.inc_value(key)

    async def download_request(self, request: Request) -> Response:
        render = bool(request.meta.get(META_RENDER))
        key = request.meta.get(META_ARTICLE_KEY)
        if request.method not in ("GET", "HEAD"):
            self._inc(STATS_REPLAY_MISSED.format(cause=NOT_IN_ARCHIVE))
            raise NotInArchive(f"{request.method} {request.url}: only GET requests are archived")
        try:
            # Catalog queries and ranged reads block: off the reactor.
            answer: ArchivedAnswer = await maybe_deferred_to_future(
                deferToThread(
                    self.source.answer,
                    request.url,
                    render=render,
                    article_key=str(key) if key else None,
                )
            )
        except ReplayMiss as exc:
            self._inc(STATS_REPLAY_MISSED.format(cause=exc.cause))
            raise
        self._inc(STATS_REPLAY_RESPONSES)
        if render:
            self._inc(STATS_REPLAY_RENDERED if answer.rendered else STATS_REPLAY_NOT_RENDERED)
        return make_response(answer, request)

    async def close(self) -> None:
        pass
