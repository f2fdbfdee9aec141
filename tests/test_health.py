"""Site health: when a crawl of a site counts as broken."""

from __future__ import annotations

import pytest

from crawler.crawl.config import HealthConfig
from crawler.crawl.report import FailedUrl, FailureLog, site_health


def stats(discovered: int, new: int = 0, failed: int = 0, unchanged: int = 0) -> dict[str, int]:
    return {
        "archive/articles/discovered": discovered,
        "archive/articles/requested": new + failed + unchanged,
        "archive/sources/requested": 2,
        "archive/articles/new": new,
        "archive/articles/failed": failed,
        "archive/articles/unchanged": unchanged,
    }


def failures(failed: int) -> FailureLog:
    """One bad feed, and ``failed`` article pages whose text could not be extracted."""
    out = FailureLog()
    out.add(FailedUrl("https://x.test/feed", "discovery", "parse"))
    for i in range(failed):
        out.add(FailedUrl(f"https://x.test/{i}", "text", "empty-body"))
    return out


@pytest.mark.parametrize(
    ("numbers", "problem"),
    [
        (stats(10, new=10), None),
        (stats(10, unchanged=10), None),  # nothing new is fine: the site still lists articles
        (stats(0), "discovered no article: 1 of 2 sources failed (parse: 1)"),
        (stats(10, new=2, failed=8), "8 of 10 requested articles failed (text empty-body: 8)"),
        (stats(4, new=2, failed=2), None),  # too few failures to judge
        (stats(20, new=14, failed=6), None),  # under half
    ],
)
def test_site_health(numbers: dict[str, int], problem: str | None) -> None:
    health = site_health(
        numbers, {"bad-feed": 1}, failures(numbers["archive/articles/failed"]), HealthConfig()
    )
    if problem is None:
        assert health["status"] == "ok" and health["problems"] == []
    else:
        assert health["status"] == "error"
        assert any(problem in p for p in health["problems"])
    assert health["sources_failed"] == {"parse": 1}
    assert health["sources"] == {"requested": 2, "failed": 1}


def test_spiders_that_do_not_discover_are_not_judged_by_discovery() -> None:
    assert site_health({}, {}, FailureLog(), HealthConfig())["status"] == "ok"


def test_spiders_that_request_their_own_way_are_judged_by_the_pages_parsed() -> None:
    numbers = {"archive/articles/new": 2, "archive/articles/failed": 8}
    health = site_health(numbers, {}, failures(8), HealthConfig())
    assert health["problems"] == ["8 of 10 article pages failed to parse (empty-body: 8)"]
