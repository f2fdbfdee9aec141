"""Retries wait: Retry-After on 429/503 is honoured, too long a wait gives up, else backoff."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
import scrapy
from scrapy.http import Response

from crawler.fetch.middlewares import retry_after_seconds
from crawler.mirror.routes import Route
from crawler.mirror.server import MirrorServer
from tests.crawl_helper import run_crawl

HOST = "busy.example.test"
PAGES = {
    "polite": f"https://{HOST}/polite",  # 429 once with Retry-After: 1
    "greedy": f"https://{HOST}/greedy",  # 503 with Retry-After: 3600 (never succeeds)
    "flaky": f"https://{HOST}/flaky",  # 500 once, no header: backoff
}


class BusySpider(scrapy.Spider):
    name = "busysite"
    allowed_domains: ClassVar[list[str]] = [HOST]
    custom_settings: ClassVar[dict[str, Any]] = {"ROBOTSTXT_OBEY": False, "RETRY_TIMES": 2}

    async def start(self) -> AsyncIterator[Any]:
        for url in PAGES.values():
            yield scrapy.Request(url, callback=self.parse, errback=self.failed)

    def parse(self, response: Response) -> Iterator[Any]:
        self.crawler.stats.inc_value(f"test/ok/{response.url.rsplit('/', 1)[1]}")
        yield from ()

    def failed(self, failure: Any) -> None:
        self.crawler.stats.inc_value("test/failed")


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (b"5", 5.0),
        (b" 0 ", 0.0),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True).encode(), 90.0),
        (format_datetime(NOW - timedelta(seconds=90), usegmt=True).encode(), 0.0),
        (b"soon", None),
        (b"", None),
        (None, None),
    ],
)
def test_retry_after_seconds(value: bytes | None, seconds: float | None) -> None:
    assert retry_after_seconds(value, NOW) == seconds


def test_retries_wait_as_asked(tmp_path: Path) -> None:
    with MirrorServer(sites=[]) as mirror:
        mirror.add_route(
            Route(
                url=PAGES["polite"],
                body=b"ok",
                fail_times=1,
                fail_status=429,
                fail_headers=[("Retry-After", "1")],
            )
        )
        mirror.add_route(
            Route(
                url=PAGES["greedy"],
                body=b"ok",
                fail_times=99,
                fail_status=503,
                fail_headers=[("Retry-After", "3600")],
            )
        )
        mirror.add_route(Route(url=PAGES["flaky"], body=b"ok", fail_times=1, fail_status=500))
        started = time.monotonic()
        result = run_crawl(
            f"{__name__}:BusySpider",
            tmp_path / "out.json",
            settings={
                "ARCHIVE_PROXY": mirror.proxy_url,
                "ARCHIVE_STORE_URI": str(tmp_path / "s"),
                "ARCHIVE_RETRY_MAX_WAIT": "60",
                "ARCHIVE_RETRY_BACKOFF": "0.5",
            },
        )
        elapsed = time.monotonic() - started
        polite = [r.time for r in mirror.requests if r.url == PAGES["polite"]]
        greedy = [r for r in mirror.requests if r.url == PAGES["greedy"]]
    stats = result.stats
    assert stats["test/ok/polite"] == 1
    assert stats["test/ok/flaky"] == 1
    assert len(polite) == 2 and polite[1] - polite[0] >= 1.0  # waited what the server asked
    assert len(greedy) == 1  # an hour is past the limit: no retry at all
    assert stats["archive/retry/gave_up_long_wait"] == 1
    assert stats["archive/retry/waits"] == 2
    assert stats["archive/retry/wait_ms"] == 1500  # 1 s asked + 0.5 s backoff
    assert elapsed < 30
