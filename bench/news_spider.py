"""The project's spider on the benchmark's pages: a ``NewsSpider`` whose listings are the
static server's listing pages, with The Diplomatic Insight's site rules (the synthetic pages
have its theme's shape), or none (``GenericBenchSpider``: the generic extractor)."""

from __future__ import annotations

import re
from typing import Any, ClassVar
from urllib.parse import urlsplit

from bench.baseline import ARTICLE_LINKS
from crawler.crawl.spider import NewsSpider
from crawler.text.extract import SiteRules
from spiders.tdi import RULES

_KEY = re.compile(r"^/news/(synthetic-article-\d{6})\.html$")


class BenchNewsSpider(NewsSpider):
    name = "bench"
    allowed_domains: ClassVar[list[str]] = ["127.0.0.1"]
    listing_links: ClassVar[str] = ARTICLE_LINKS.removesuffix("::attr(href)")
    rules: ClassVar[SiteRules | None] = RULES  # type: ignore[assignment]

    def __init__(self, listings: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.listings = tuple(u for u in listings.split(",") if u)  # type: ignore[misc]

    def article_key(self, url: str) -> str | None:
        match = _KEY.match(urlsplit(url).path)
        return match.group(1) if match else None


class GenericBenchSpider(BenchNewsSpider):
    rules: ClassVar[SiteRules | None] = None
