"""Spider arguments and the discovery window: since/until/refresh/max_articles, validated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from scrapy.utils.test import get_crawler

from crawler.crawl.spider import CrawlArgs
from spiders.tdi import TdiSpider

URL = "https://thediplomaticinsight.com/{}/"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, CrawlArgs()),
        ({"max_articles": "20"}, CrawlArgs(max_articles=20)),
        ({"since": "2020-01-01"}, CrawlArgs(since=datetime(2020, 1, 1, tzinfo=UTC))),
        (
            {"until": "2025-06-30"},
            CrawlArgs(until=datetime(2025, 6, 30, 23, 59, 59, 999999, tzinfo=UTC)),
        ),
        (
            {"since": "2025-06-11T19:16:00+03:30"},
            CrawlArgs(since=datetime(2025, 6, 11, 15, 46, tzinfo=UTC)),
        ),
        ({"refresh": "1"}, CrawlArgs(refresh=True)),
        ({"refresh": "false"}, CrawlArgs(refresh=False)),
    ],
)
def test_arguments_parse(kwargs: dict[str, str], expected: CrawlArgs) -> None:
    assert CrawlArgs.parse(**kwargs) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"since": "last tuesday"}, "since must be a date"),
        ({"until": "2025-13-01"}, "until must be a date"),
        ({"since": "2025-07-01", "until": "2025-06-01"}, "is after until"),
        ({"refresh": "maybe"}, "refresh must be true or false"),
        ({"max_articles": "0"}, "max_articles must be a positive integer"),
    ],
)
def test_bad_arguments_fail_at_start(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TdiSpider(**kwargs)


def spider(settings: dict[str, Any] | None = None, **kwargs: Any) -> TdiSpider:
    crawler = get_crawler(TdiSpider, settings or {})
    made = TdiSpider.from_crawler(crawler, **kwargs)
    assert isinstance(made, TdiSpider)
    return made


def discovered(s: TdiSpider, slug: str, published: str | None) -> bool:
    requests = list(s._article_request(URL.format(slug), {"via": "feed", "published": published}))
    return bool(requests)


def test_default_window_is_thirty_days() -> None:
    s = spider()
    now = datetime.now(UTC)
    assert discovered(s, "fresh", (now - timedelta(days=2)).isoformat())
    assert not discovered(s, "stale", (now - timedelta(days=45)).isoformat())
    assert discovered(s, "undated", None)  # no date: cannot judge, fetch it
    assert s.crawler.stats.get_value("archive/skipped/outside-window") == 1


def test_since_and_until_bound_the_window() -> None:
    s = spider(since="2023-10-01", until="2023-10-31")
    assert discovered(s, "in", "2023-10-24T10:00:00+05:00")
    assert discovered(s, "last-day", "2023-10-31T23:00:00+00:00")
    assert not discovered(s, "before", "2023-09-30T23:00:00+00:00")
    assert not discovered(s, "after", "2023-11-01T00:00:01+00:00")


def test_window_off_by_setting() -> None:
    s = spider({"ARCHIVE_DISCOVERY_WINDOW_DAYS": 0})
    assert discovered(s, "old", "2009-01-01T00:00:00+00:00")


def test_archived_articles_are_not_requested_nor_counted() -> None:
    s = spider({"ARCHIVE_DISCOVERY_WINDOW_DAYS": 0}, max_articles="1")
    s.article_wanted = lambda key: key != "known"
    assert not discovered(s, "known", None)
    assert not discovered(s, "known", None)  # found again (another feed): counted once
    assert discovered(s, "new", None)  # max_articles=1 still has room after the known one
    assert s.crawler.stats.get_value("archive/skipped/already-archived") == 1
    refreshed = spider({"ARCHIVE_DISCOVERY_WINDOW_DAYS": 0}, refresh="1")
    refreshed.article_wanted = lambda key: False
    assert discovered(refreshed, "known", None)
