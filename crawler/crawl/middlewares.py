"""The crawl's own middlewares: captures linked to article items, conditional requests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, Self

from scrapy.exceptions import NotConfigured

from crawler.constants import META_CAPTURE, META_CONDITIONAL
from crawler.crawl.archive import ArchiveCrawl
from crawler.crawl.items import ArticlePage

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

    from crawler.crawl.catalog import ArchiveCatalog


class CaptureLinkMiddleware:
    """Attaches the WARC capture of a response to the article items parsed from it.

    Spiders stay unaware of capture: the pipeline finds the response record through the item.
    """

    def _link(self, response: Response, item: Any) -> Any:
        if isinstance(item, ArticlePage) and item.capture is None:
            item.capture = response.meta.get(META_CAPTURE)
        return item

    def process_spider_output(self, response: Response, result: Iterable[Any]) -> Iterable[Any]:
        for item in result:
            yield self._link(response, item)

    async def process_spider_output_async(
        self, response: Response, result: AsyncIterator[Any]
    ) -> AsyncIterator[Any]:
        async for item in result:
            yield self._link(response, item)


class ConditionalRequestMiddleware:
    """Asks feeds, sitemaps and listings "changed since last time?" with their validators.

    Only requests marked ``meta["archive_conditional"]`` (NewsSpider's sources); a 304 goes to
    the callback, which counts it. New validators are kept by ArchiveCatalog and stored when
    the crawl ends having lost nothing, so an article a failed crawl missed is not hidden
    behind a 304 the next time.
    """

    def __init__(self, catalog: ArchiveCatalog) -> None:
        self.catalog = catalog

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        catalog = ArchiveCrawl.of(crawler).catalog
        if catalog is None:
            raise NotConfigured("ARCHIVE_CATALOG_ENABLED is off")
        return cls(catalog)

    def process_request(self, request: Request) -> None:
        if not request.meta.get(META_CONDITIONAL):
            return
        ext = self.catalog
        etag, last_modified = ext.validators.get(request.url, (None, None))
        if etag:
            request.headers.setdefault(b"If-None-Match", etag.encode("latin-1"))
        if last_modified:
            request.headers.setdefault(b"If-Modified-Since", last_modified.encode("latin-1"))

    def process_response(self, request: Request, response: Response) -> Response:
        if request.meta.get(META_CONDITIONAL) and response.status == 200:
            ext = self.catalog
            etag = response.headers.get(b"ETag")
            modified = response.headers.get(b"Last-Modified")
            if etag or modified:
                ext.seen_validators[request.url] = (
                    etag.decode("latin-1") if etag else None,
                    modified.decode("latin-1") if modified else None,
                )
        return response
