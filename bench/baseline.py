"""The baseline spiders: plain Scrapy on the benchmark's pages, and the naive text build.

``PlainSpider`` follows the listing pages' article links and does nothing with an article's
body: what plain Scrapy costs to fetch the pages. ``TrafilaturaSpider`` is the naive build's
callback: ``trafilatura.extract(favor_precision=True)`` on every article, the text yielded as an
item (no pipeline takes it). Neither imports anything of newsarchive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import scrapy
from scrapy.http import Response

# The links the project's bench spider follows too (bench/news_spider.py).
ARTICLE_LINKS = "a.story::attr(href)"


class PlainSpider(scrapy.Spider):
    name = "bench"

    def __init__(self, listings: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.listing_urls = [u for u in listings.split(",") if u]

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for url in self.listing_urls:
            yield scrapy.Request(url, callback=self.parse)

    def parse(self, response: Response) -> Iterator[scrapy.Request]:
        for href in response.css(ARTICLE_LINKS).getall():
            yield response.follow(href, callback=self.parse_article)

    def parse_article(self, response: Response) -> Any:
        return None


class TrafilaturaSpider(PlainSpider):
    def __init__(self, listings: str = "", **kwargs: Any) -> None:
        super().__init__(listings, **kwargs)
        import trafilatura

        self._extract = trafilatura.extract

    def parse_article(self, response: Response) -> Any:
        text = self._extract(response.text, url=response.url, favor_precision=True)
        yield {"url": response.url, "text": text}
