"""Probing a news site for ``newsarchive sources add``: a small Scrapy crawl that archives nothing.

``python -m crawler.crawl.probe URL OUT [-s NAME=VALUE]...`` fetches the page at URL, its
robots.txt, the feeds it names (else the usual feed places), the sitemaps robots.txt names
(else the usual sitemap places, indexes followed two levels down), the page's own links to
articles and its next pages; then a few sample articles, each read by the generic extractor.
It writes what it found to the JSON file OUT. The requests go through the crawl's own
download handler, so the egress guard (crawler/fetch/netguard.py), robots.txt (obeyed),
the proxy (``ARCHIVE_PROXY``), the User-Agent and the size and time limits are the crawl's;
the add-on's archive root is switched off, so no WARC, text, catalog row or store object is
made.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import feedparser
import scrapy
from lxml import etree
from scrapy import signals
from scrapy.exceptions import DontCloseSpider
from scrapy.http import HtmlResponse, Request, Response, TextResponse
from scrapy.utils.gz import gunzip, gzip_magic_number
from scrapy.utils.sitemap import Sitemap
from twisted.python.failure import Failure

from crawler.crawl.spider import download_failure, page_text
from crawler.text import discover
from crawler.text.extract import ExtractionError, extract_article

# Statuses the probe reads itself instead of Scrapy dropping them (3xx stay redirects).
_ERRORS = list(range(400, 600))
MAX_LISTING_PAGES = 3
MAX_SECTIONS = 4
MAX_CHILD_SITEMAPS = 10
SAMPLE_TRIES = 8

# The add-on's archive side, off: the probe fetches the way a crawl does and keeps nothing.
PROBE_SETTINGS: dict[str, Any] = {
    "EXTENSIONS": {"crawler.crawl.archive.ArchiveCrawl": None},
    "ITEM_PIPELINES": {"crawler.crawl.pipeline.ArticlePipeline": None},
    "SPIDER_MIDDLEWARES": {"crawler.crawl.middlewares.CaptureLinkMiddleware": None},
    "DOWNLOADER_MIDDLEWARES": {"crawler.crawl.middlewares.ConditionalRequestMiddleware": None},
    "RETRY_ENABLED": False,
    # The probe is no source's spider: the sources file (maybe not made yet) is not read.
    "SPIDER_LOADER_CLASS": "scrapy.spiderloader.SpiderLoader",
    "TELNETCONSOLE_ENABLED": False,
    "LOG_LEVEL": "WARNING",
}


@dataclass
class Sample:
    url: str
    status: int | None = None
    article: bool = False  # the page says it is an article (or looks like one)
    title: str | None = None
    published: str | None = None
    first_line: str | None = None
    words: int = 0
    error: str | None = None


@dataclass
class ProbeResult:
    url: str
    final_url: str | None = None
    hosts: list[str] = field(default_factory=list)
    error: str | None = None
    feeds: dict[str, int] = field(default_factory=dict)  # feed URL -> article links in it
    sitemaps: dict[str, int] = field(default_factory=dict)  # root sitemap -> article URLs
    news_sitemaps: list[str] = field(default_factory=list)
    listings: dict[str, int] = field(default_factory=dict)  # listing page -> article links
    articles: dict[str, str] = field(default_factory=dict)  # article URL -> channel
    samples: list[Sample] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class ProbeSpider(scrapy.Spider):
    name = "probe"

    def __init__(self, url: str = "", samples: int | str = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.result = ProbeResult(url=url)
        self.wanted = int(samples)
        self._sampling = False
        self._hosts: set[str] = {discover.host_of(url)}
        self._requested: set[str] = set()
        self._listing_pages = 0

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> ProbeSpider:
        spider: ProbeSpider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.idle, signal=signals.spider_idle)
        return spider

    # ------------------------------------------------------------------ requests

    def _get(self, url: str, callback: Any, **cb_kwargs: Any) -> Iterator[Request]:
        if url in self._requested:
            return
        self._requested.add(url)
        yield Request(
            url,
            callback=callback,
            errback=self.ignore,
            cb_kwargs=cb_kwargs,
            meta={"handle_httpstatus_list": _ERRORS},
        )

    async def start(self) -> AsyncIterator[Request]:
        self._requested.add(self.result.url)
        yield Request(
            self.result.url,
            callback=self.parse_home,
            errback=self.home_failed,
            meta={"handle_httpstatus_list": _ERRORS},
            dont_filter=True,
        )

    def home_failed(self, failure: Failure) -> None:
        exc = failure.value
        found = download_failure(exc, source=True) if exc is not None else None
        cause, error = found or ("refused", str(exc))
        if cause == "robots":
            self.result.error = "robots.txt forbids this URL to our User-Agent"
        elif cause == "redirect-loop":
            self.result.error = "it redirects in a loop (no page at the end)"
        else:
            self.result.error = f"{cause}: {error}"

    def ignore(self, failure: Failure) -> None:
        """A candidate feed, sitemap or page that gave nothing: it is simply not listed."""

    def _ours(self, url: str) -> bool:
        return discover.same_site(url, self._hosts)

    # ------------------------------------------------------------------ the page

    def parse_home(self, response: Response) -> Iterator[Request]:
        result = self.result
        result.final_url = response.url
        self._hosts.add(discover.host_of(response.url))
        result.hosts = sorted(self._hosts)
        if response.status >= 400:
            result.error = f"HTTP {response.status} (no page at this URL)"
            return
        if not isinstance(response, HtmlResponse):
            kind = (response.headers.get(b"Content-Type") or b"").decode("latin-1") or "no type"
            result.error = f"not an HTML page ({kind})"
            return
        html, _ = page_text(response)
        feeds = discover.feed_links(html, response.url) or discover.usual_places(
            response.url, discover.FEED_PATHS
        )
        for feed in feeds:
            yield from self._get(feed, self.parse_feed)
        parts = urlsplit(response.url)
        robots = urlunsplit((parts.scheme, parts.netloc, "/robots.txt", "", ""))
        yield from self._get(robots, self.parse_robots)
        yield from self.parse_listing(response, depth=0)
        if len(discover.listing_articles(html, response.url, self._hosts)) < 3:
            # A front page with few article links: its sections may list them.
            for section in discover.section_links(html, response.url, self._hosts)[:MAX_SECTIONS]:
                yield from self._get(section, self.parse_listing, depth=MAX_LISTING_PAGES - 1)

    def parse_listing(self, response: Response, depth: int = 0) -> Iterator[Request]:
        if response.status != 200 or not isinstance(response, TextResponse):
            return
        html, _ = page_text(response)
        links = [u for u in discover.listing_articles(html, response.url, self._hosts)]
        if not links:
            return
        self.result.listings[response.url] = len(links)
        for link in links:
            self.result.articles.setdefault(link, "listing")
        following = discover.next_page(html, response.url)
        if following and self._ours(following) and depth + 1 < MAX_LISTING_PAGES:
            yield from self._get(following, self.parse_listing, depth=depth + 1)

    def parse_feed(self, response: Response) -> None:
        if response.status != 200:
            return
        parsed = feedparser.parse(
            response.body, response_headers={"content-location": response.url}
        )
        if not parsed.get("version"):
            return
        links = [
            response.urljoin(str(link).strip())
            for entry in parsed.entries
            if (link := entry.get("link"))
        ]
        links = [link for link in links if self._ours(link)]
        if not links:
            return
        self.result.feeds[response.url] = len(links)
        for link in links:
            self.result.articles.setdefault(link, "feed")

    def parse_robots(self, response: Response) -> Iterator[Request]:
        named: list[str] = []
        if response.status == 200 and isinstance(response, TextResponse):
            named = [
                u for u in discover.robots_sitemaps(response.text, response.url) if self._ours(u)
            ]
        places = named or discover.usual_places(response.url, discover.SITEMAP_PATHS)
        for sitemap in places:
            yield from self._get(sitemap, self.parse_sitemap, root=sitemap, depth=0)

    def parse_sitemap(self, response: Response, root: str, depth: int) -> Iterator[Request]:
        if response.status != 200:
            return
        body = response.body
        if gzip_magic_number(response):
            try:
                body = gunzip(body, max_size=32 * 1024 * 1024)
            except (OSError, EOFError, struct.error, zlib.error, ValueError):
                return
        try:
            sitemap = Sitemap(body)
            entries = list(sitemap)
        except (StopIteration, etree.XMLSyntaxError):
            return
        if sitemap.type == "sitemapindex":
            children = [e["loc"] for e in entries if self._ours(response.urljoin(e["loc"]))]
            for child in children[:MAX_CHILD_SITEMAPS] if depth < 2 else ():
                yield from self._get(
                    response.urljoin(child), self.parse_sitemap, root=root, depth=depth + 1
                )
            return
        if sitemap.type != "urlset":
            return
        if b"sitemap-news/0.9" in body[:2000]:
            self.result.news_sitemaps.append(response.url)
        found = [
            url
            for entry in entries
            if self._ours(url := response.urljoin(entry["loc"]))
            and discover.looks_like_article(url)
        ]
        if found:
            self.result.sitemaps[root] = self.result.sitemaps.get(root, 0) + len(found)
            for url in found:
                self.result.articles.setdefault(url, "sitemap")

    # ------------------------------------------------------------------ samples

    def idle(self) -> None:
        """Discovery is done: fetch the sample articles, once."""
        if self._sampling or self.result.error or not self.result.articles:
            return
        self._sampling = True
        order = {"feed": 0, "sitemap": 1, "listing": 2}
        candidates = sorted(self.result.articles, key=lambda u: order[self.result.articles[u]])
        engine = self.crawler.engine
        assert engine is not None
        for url in candidates[:SAMPLE_TRIES]:
            engine.crawl(
                Request(
                    url,
                    callback=self.parse_sample,
                    errback=self.sample_failed,
                    meta={"handle_httpstatus_list": _ERRORS},
                    dont_filter=True,
                )
            )
        raise DontCloseSpider

    def parse_sample(self, response: Response) -> None:
        first = response.meta.get("redirect_urls", [response.url])[0]
        sample = Sample(url=str(first), status=response.status)
        self.result.samples.append(sample)
        if response.status != 200:
            sample.error = f"HTTP {response.status}"
            return
        if not isinstance(response, HtmlResponse):
            sample.error = "not an HTML page"
            return
        html, encoding = page_text(response)
        sample.article = discover.is_article_page(html)
        try:
            article = extract_article(html, response.url, None, encoding=encoding)
        except ExtractionError as exc:
            sample.error = f"no text ({exc.reason})"
            return
        sample.title = article.title
        sample.published = article.published.isoformat() if article.published else None
        sample.first_line = next(iter(article.paragraphs), None)
        sample.words = len(article.text.split())

    def sample_failed(self, failure: Failure) -> None:
        request = getattr(failure, "request", None)
        url = request.url if isinstance(request, Request) else "?"
        exc = failure.value
        found = download_failure(exc, source=False) if exc is not None else None
        cause = found[0] if found else "skipped"
        self.result.samples.append(Sample(url=url, error=cause))


def run_probe(url: str, out: Path, overrides: dict[str, str], samples: int = 5) -> int:
    """The probe crawl in this process (the reactor runs once: call it in its own process)."""
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "settings")
    from scrapy.crawler import CrawlerProcess
    from scrapy.utils.project import get_project_settings

    settings = get_project_settings()
    settings.setdict(PROBE_SETTINGS, priority="project")
    settings.setdict(overrides, priority="cmdline")
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(ProbeSpider)
    process.crawl(crawler, url=url, samples=samples)
    process.start()
    spider = crawler.spider
    assert isinstance(spider, ProbeSpider)
    out.write_text(json.dumps(spider.result.to_json(), indent=1, ensure_ascii=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    from crawler.options import parse_pairs

    parser = argparse.ArgumentParser(
        prog="python -m crawler.crawl.probe",
        description="Probe a news site (used by `newsarchive sources add`).",
    )
    parser.add_argument("url")
    parser.add_argument("out", type=Path)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("-s", dest="settings", action="append", default=[], metavar="NAME=VALUE")
    ns = parser.parse_args(argv)
    return run_probe(ns.url, ns.out, parse_pairs(ns.settings, "-s"), ns.samples)


if __name__ == "__main__":
    sys.exit(main())
