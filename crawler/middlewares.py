"""Small Scrapy middlewares: route through a configured proxy; link captures to article items."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, Self

from scrapy.downloadermiddlewares.robotstxt import (
    RobotsTxtMiddleware as _ScrapyRobotsTxtMiddleware,
)
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.defer import Deferred

from crawler.constants import META_CAPTURE
from crawler.items import ArticlePage

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.robotstxt import RobotParser


class ArchiveProxyMiddleware:
    """Sends every request through ``ARCHIVE_PROXY`` (the loopback mirror in tests and demo).

    Runs before Scrapy's HttpProxyMiddleware, which then does the CONNECT tunnelling for
    https. A request that names its own ``proxy`` in meta keeps it.
    """

    def __init__(self, proxy: str) -> None:
        self.proxy = proxy

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        proxy = str(crawler.settings.get("ARCHIVE_PROXY") or "")
        if not proxy:
            raise NotConfigured("ARCHIVE_PROXY is not set")
        if not proxy.startswith(("http://", "https://")):
            raise ValueError(f"ARCHIVE_PROXY must be an http(s):// URL, got {proxy!r}")
        return cls(proxy)

    def process_request(self, request: Request) -> None:
        request.meta.setdefault("proxy", self.proxy)


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


class RobotsTxtMiddleware(_ScrapyRobotsTxtMiddleware):
    """Scrapy's robots.txt middleware, with every waiter getting the parsed rules.

    In Scrapy 2.19, requests that arrive while a host's robots.txt is still downloading all
    await one shared Deferred; only the first gets the parser, the rest get None and go out
    unchecked. Here each later waiter waits on a Deferred of its own and then reads the parser
    that the middleware stored before firing the shared one.
    """

    async def robot_parser(self, request: Request) -> RobotParser | None:
        netloc = urlparse_cached(request).netloc
        pending = self._parsers.get(netloc)
        if isinstance(pending, Deferred):
            waiter: Deferred[None] = Deferred()

            def release(result: Any) -> Any:
                waiter.callback(None)
                return result

            pending.addBoth(release)
            await maybe_deferred_to_future(waiter)
            parser = self._parsers.get(netloc)
            return None if isinstance(parser, Deferred) else parser
        return await super().robot_parser(request)
