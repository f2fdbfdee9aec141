"""The generic news spider: any source of the sources file, with every guarantee of the archive.

It is a ``NewsSpider`` like the five built-in ones, so capture, revisits, the catalog, leases,
reports and text versions are the same code; only discovery and the article test come from
the entry instead of a module: its feeds, sitemaps and listing pages (``discover = true``
also reads the start pages' ``<link rel=alternate>`` feeds and robots.txt's sitemaps at each
crawl), its ``articles`` regexes or, with ``"auto"``, the URL and page tests of
crawler/text/discover.py. Without ``selectors`` the generic extractor reads each page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from scrapy.http import Request, Response, TextResponse
from scrapy.spiderloader import SpiderLoader

from crawler.constants import META_CONDITIONAL
from crawler.crawl.sources import SourceEntry, SourcesError, configured_sources
from crawler.crawl.spider import NewsSpider
from crawler.text import discover

_CONDITIONAL: dict[str, Any] = {META_CONDITIONAL: True, "handle_httpstatus_list": [304]}
# Common "next page" links of listings: rel=next, WordPress, many themes.
NEXT_LINKS = (
    'link[rel="next"], a[rel="next"], a.next, li.next a, a.next-page, a.nextpostslink, '
    "nav.pagination a.next"
)


class GenericNewsSpider(NewsSpider):
    """A spider made from a sources entry (``generic_spider``); never run without one."""

    source: ClassVar[SourceEntry]
    listing_next: ClassVar[str | None] = NEXT_LINKS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._patterns = self.source.patterns
        self._hosts = self.source.hosts

    def article_key(self, url: str) -> str | None:
        if not discover.same_site(url, self._hosts):
            return None
        return discover.article_key(url, self._patterns)

    def is_article_page(self, response: Response) -> bool:
        if not isinstance(response, TextResponse):
            return False
        if self._patterns:
            # The operator's patterns say what an article is; a page that calls itself a
            # listing is still none.
            return discover.page_kind(response.text) != "listing"
        return discover.is_article_page(response.text)

    async def start(self) -> AsyncIterator[Any]:
        async for request in super().start():
            yield request
        if self.crawl_refused is not None or not self.source.discover:
            return
        for url in self.source.start_urls:
            for request in self._source_request(url, "listing", self.parse_start, {}):
                yield request
            parts = urlsplit(url)
            robots = urlunsplit((parts.scheme, parts.netloc, "/robots.txt", "", ""))
            for request in self._source_request(robots, "robots", self.parse_robots, {}):
                yield request

    def parse_start(self, response: Response) -> Iterator[Request]:
        """A start page at crawl time: its feeds, then its links as a listing's."""
        if isinstance(response, TextResponse) and response.status == 200:
            for feed in discover.feed_links(response.text, response.url):
                yield from self._source_request(feed, "feed", self.parse_feed, _CONDITIONAL)
        yield from self.parse_listing(response)

    def parse_robots(self, response: Response) -> Iterator[Request]:
        if not isinstance(response, TextResponse) or response.status != 200:
            return
        for sitemap in discover.robots_sitemaps(response.text, response.url):
            if discover.same_site(sitemap, self._hosts):
                yield from self._source_request(
                    sitemap, "sitemap", self.parse_sitemap, _CONDITIONAL, depth=0
                )


def generic_spider(entry: SourceEntry) -> type[GenericNewsSpider]:
    """The spider class of one sources entry."""
    attrs: dict[str, Any] = {
        "name": entry.name,
        "source": entry,
        "allowed_domains": sorted(entry.hosts),
        "feeds": entry.feeds,
        "sitemaps": entry.sitemaps,
        "listings": entry.listings,
        "listing_max_pages": entry.listing_pages,
        "render_pages": entry.render,
        "__module__": __name__,
        "__doc__": f"The {entry.name} source of the sources file (generic spider).",
    }
    rules = entry.rules()
    if rules is not None:
        attrs["rules"] = rules
    custom: dict[str, Any] = {}
    if entry.delay is not None:
        custom["DOWNLOAD_DELAY"] = entry.delay
    if entry.concurrency is not None:
        custom["CONCURRENT_REQUESTS_PER_DOMAIN"] = entry.concurrency
    if custom:
        attrs["custom_settings"] = custom
    class_name = "".join(p.capitalize() for p in entry.name.replace("_", "-").split("-"))
    return type(f"{class_name}Spider", (GenericNewsSpider,), attrs)


class SourcesSpiderLoader(SpiderLoader):
    """Scrapy's spider loader, plus a generic spider for each entry of the sources file, so
    ``scrapy crawl``, ``newsarchive crawl``, ``crawl --all`` and the daemon see them all
    (settings/__init__.py names it in ``SPIDER_LOADER_CLASS``)."""

    def __init__(self, settings: Any) -> None:
        self._settings = settings
        super().__init__(settings)

    def _load_all_spiders(self) -> None:
        super()._load_all_spiders()
        for entry in configured_sources(self._settings):
            if entry.name in self._spiders:
                raise SourcesError(
                    f"sources file: [sources.{entry.name}]: the name is a built-in spider's "
                    "(choose another)"
                )
            self._spiders[entry.name] = generic_spider(entry)
