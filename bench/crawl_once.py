"""One benchmark crawl in this process; prints a JSON line with its figures."""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.http import Response

from bench.synthetic import BASE, article_url
from crawler.crawl.items import ArticlePage
from crawler.text.extract import SiteRules
from spiders.tdi import TdiSpider

MODES = ("full", "generic", "capture", "plain")


class BenchSpider(scrapy.Spider):
    name = "bench"
    allowed_domains: ClassVar[list[str]] = ["bench.newsarchive.test"]
    rules: SiteRules | None = TdiSpider.rules

    def __init__(self, pages: str = "2000", proxy: str = "", generic: str = "", **kw: Any):
        super().__init__(**kw)
        self.pages = int(pages)
        self.proxy = proxy
        if generic:
            self.rules = None

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for n in range(self.pages):
            yield scrapy.Request(article_url(n), meta={"proxy": self.proxy})

    def parse(self, response: Response) -> Any:
        yield ArticlePage(
            url=response.url,
            site=self.name,
            article_id=response.url.rstrip("/").rsplit("/", 1)[1],
            html=response.text,
            encoding=response.encoding,
            status=response.status,
            request_url=response.request.url if response.request else response.url,
            discovery=[{"via": "bench", "source": BASE}],
        )


def main() -> None:
    mode, pages, proxy = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode not in MODES:
        raise SystemExit(f"mode must be one of {MODES}")
    os.environ["SCRAPY_SETTINGS_MODULE"] = "settings"
    store = tempfile.mkdtemp(prefix="bench-store-")
    settings: dict[str, Any] = {
        "BOT_NAME": "bench",
        "ROBOTSTXT_OBEY": False,
        "CONCURRENT_REQUESTS": 32,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 32,
        "DOWNLOAD_DELAY": 0,
        "AUTOTHROTTLE_ENABLED": False,
        "LOG_LEVEL": "WARNING",
        "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
        "ARCHIVE_STORE_URI": store,
        "TELNETCONSOLE_ENABLED": False,
    }
    if mode == "plain":
        settings["ADDONS"] = {}
    else:
        settings["ADDONS"] = {"crawler.crawl.addon.Addon": 0}
        settings["ARCHIVE_TEXT_ENABLED"] = mode != "capture"
    process = CrawlerProcess(settings, install_root_handler=True)
    crawler = process.create_crawler(BenchSpider)
    t0, c0 = time.perf_counter(), time.process_time()
    process.crawl(crawler, pages=pages, proxy=proxy, generic="1" if mode == "generic" else "")
    process.start()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    stats = crawler.stats.get_stats() if crawler.stats else {}
    n = int(stats.get("downloader/response_count", 0))
    print(
        json.dumps(
            {
                "mode": mode,
                "pages": n,
                "wall_s": wall,
                "cpu_s": cpu,
                "pages_per_s": n / wall if wall else 0.0,
                "cpu_ms_per_page": 1000 * cpu / n if n else 0.0,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "articles": int(stats.get("archive/articles/new", 0)),
                "warc_records": int(stats.get("archive/warc/records", 0)),
            }
        )
    )


if __name__ == "__main__":
    main()
