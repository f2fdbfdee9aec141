"""robots.txt holds for the first requests to a host too, while robots.txt is still downloading."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from scrapy import Spider
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware as StockRobotsTxtMiddleware
from scrapy.utils.conf import build_component_list
from scrapy.utils.misc import load_object
from scrapy.utils.test import get_crawler

from crawler.crawl.addon import Addon
from crawler.fetch.middlewares import RobotsTxtMiddleware
from crawler.mirror.server import MirrorRequest, MirrorServer, Route
from tests.crawl_helper import (
    ROBOTS_ALLOWED,
    ROBOTS_DISALLOWED,
    ROBOTS_HOST,
    CrawlResult,
    run_crawl,
)

ROBOTS_URL = f"https://{ROBOTS_HOST}/robots.txt"
# Scrapy 2.19's middleware instead of ours (the add-on keeps a stock one a project names).
STOCK_MIDDLEWARE = json.dumps(
    {
        "crawler.fetch.middlewares.RobotsTxtMiddleware": None,
        "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": 100,
    }
)


@dataclass
class RobotsCrawl:
    result: CrawlResult
    requests: list[MirrorRequest]

    @property
    def fetched(self) -> list[str]:
        return [r.url for r in self.requests if r.method == "GET"]


def robots_crawl(work: Path, settings: dict[str, str]) -> RobotsCrawl:
    with MirrorServer(sites=[]) as mirror:
        # Slow robots.txt: every start request is waiting for it when it arrives.
        mirror.add_route(
            Route(
                url=ROBOTS_URL,
                body=b"User-agent: *\nDisallow: /private/\n",
                content_type="text/plain",
                delay=0.5,
            )
        )
        for url in (*ROBOTS_ALLOWED, *ROBOTS_DISALLOWED):
            mirror.add_route(Route(url=url, body=b"<html><body>page</body></html>"))
        result = run_crawl(
            "RobotsSpider",
            work / "result.json",
            settings={
                "ARCHIVE_STORE_URI": str(work / "store"),
                "ARCHIVE_PROXY": mirror.proxy_url,
                "ARCHIVE_TEXT_ENABLED": "False",
                **settings,
            },
        )
        return RobotsCrawl(result, mirror.requests)


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RobotsCrawl]:
    yield robots_crawl(tmp_path_factory.mktemp("robots-ours"), {})


@pytest.fixture(scope="module")
def stock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RobotsCrawl]:
    yield robots_crawl(
        tmp_path_factory.mktemp("robots-stock"), {"DOWNLOADER_MIDDLEWARES": STOCK_MIDDLEWARE}
    )


def test_no_disallowed_url_reaches_the_site(ours: RobotsCrawl) -> None:
    assert ours.result.exit_code == 0, ours.result.stderr[-3000:]
    assert ours.fetched[0] == ROBOTS_URL
    assert ours.fetched.count(ROBOTS_URL) == 1
    assert sorted(ours.fetched[1:]) == sorted(ROBOTS_ALLOWED)
    assert not set(ROBOTS_DISALLOWED) & set(ours.fetched)
    assert ours.result.stats["robotstxt/forbidden"] == len(ROBOTS_DISALLOWED)


def test_scrapys_stock_middleware_lets_them_through(stock: RobotsCrawl) -> None:
    """The same crawl with Scrapy 2.19's middleware: the test above can fail."""
    assert stock.result.exit_code == 0, stock.result.stderr[-3000:]
    # The stock middleware really ran: it fetched robots.txt ...
    assert stock.result.stats["robotstxt/request_count"] == 1
    assert stock.fetched[0] == ROBOTS_URL
    # ... yet requests that waited for it went out unchecked.
    leaked = set(ROBOTS_DISALLOWED) & set(stock.fetched)
    assert leaked
    assert stock.result.stats.get("robotstxt/forbidden", 0) < len(ROBOTS_DISALLOWED)


@pytest.mark.parametrize(
    ("project", "enabled"),
    [
        ({}, RobotsTxtMiddleware),
        (json.loads(STOCK_MIDDLEWARE), StockRobotsTxtMiddleware),
    ],
    ids=["default", "project-names-the-stock-one"],
)
def test_the_addon_swaps_in_ours_unless_the_project_says_otherwise(
    project: dict[str, int | None], enabled: type
) -> None:
    crawler = get_crawler(Spider, {"ADDONS": {Addon: 0}, "DOWNLOADER_MIDDLEWARES": project})
    # As Scrapy's DownloaderMiddlewareManager resolves it.
    resolved = crawler.settings.get_component_priority_dict_with_base("DOWNLOADER_MIDDLEWARES")
    components = [load_object(path) for path in build_component_list(resolved)]
    robots = [c for c in components if c in (RobotsTxtMiddleware, StockRobotsTxtMiddleware)]
    assert robots == [enabled]
