"""Incremental crawling through the catalog: nothing archived twice, revisits, text versions."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.catalog.db import Catalog, articles
from crawler.crawl.config import parse_ages
from crawler.layout import sqlite_url
from crawler.mirror.messages import MirrorResponse
from crawler.mirror.routes import Route, load_site
from crawler.mirror.server import MirrorRequest, MirrorServer
from tests.crawl_helper import CrawlResult, run_crawl

SITE_DIR = Path(__file__).resolve().parent.parent / "crawler" / "mirror" / "sites" / "tdi"
ARTICLE = "https://thediplomaticinsight.com/zambia-independence-day-2023/"
CATALOG = {"ARCHIVE_CATALOG_ENABLED": "True", "ARCHIVE_REVISION_AGES": "1h,1d,7d"}


def crawl(
    mirror: MirrorServer, store: Path, out: Path, exit_code: int = 0, **settings: str
) -> CrawlResult:
    result = run_crawl(
        "spiders.tdi:TdiSpider",
        out,
        settings={
            "ARCHIVE_PROXY": mirror.proxy_url,
            "ARCHIVE_STORE_URI": str(store),
            **CATALOG,
            **settings,
        },
    )
    assert result.exit_code == exit_code, result.stderr[-3000:]
    return result


def article_fetches(mirror: MirrorServer) -> list[str]:
    return [
        r.url
        for r in mirror.requests
        if r.method == "GET"
        and r.url.startswith("https://thediplomaticinsight.com/")
        and r.url.rstrip("/").count("/") == 3
        and "feed" not in r.url
        and "sitemap" not in r.url
        and not r.url.endswith(("/robots.txt", ".com/"))
    ]


def warc_types(store: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted((store / "warc").rglob("*.warc.gz")):
        with path.open("rb") as fh:
            for rec in ArchiveIterator(fh):
                uri = rec.rec_headers.get_header("WARC-Target-URI") or ""
                found.setdefault(uri, []).append(rec.rec_type)
    return found


@pytest.mark.parametrize(
    ("value", "hours"),
    [("1h,1d,7d", [1, 24, 168]), ("90m, 2h", [1.5, 2]), ("7d,1h", [1, 168]), ("0", []), ("", [])],
)
def test_parse_ages(value: str, hours: list[float]) -> None:
    assert [a.total_seconds() / 3600 for a in parse_ages(value)] == hours


def test_parse_ages_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="ARCHIVE_REVISION_AGES"):
        parse_ages("1 fortnight")


def test_second_run_fetches_no_article_again(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with MirrorServer(sites=[SITE_DIR]) as mirror:
        first = crawl(mirror, store, tmp_path / "1.json")
        assert first.report["articles"]["new"] == 6
        assert len(article_fetches(mirror)) >= 6
        mirror.clear_requests()
        second = crawl(mirror, store, tmp_path / "2.json")
        fetched = article_fetches(mirror)
    assert fetched == []  # feeds and sitemaps only
    assert second.report["articles"]["new"] == 0
    assert second.stats["archive/skipped/already-archived"] >= 6
    catalog = Catalog(sqlite_url(store / ".catalog.sqlite"))
    assert len(catalog.known_keys("tdi")) == 6
    # Every capture of both runs is in the catalog, with its WARC place.
    captures = list(catalog.captures(site="tdi"))
    records = sum(t.count("response") + t.count("revisit") for t in warc_types(store).values())
    assert len(captures) == records
    # Each article capture carries the text written for it.
    article_rows = [c for c in captures if c.article_key and c.status == 200]
    assert len(article_rows) == 6
    assert all(c.text_digest and c.text_key and c.version == 1 for c in article_rows)


def test_any_page_the_site_served_before_unchanged_is_a_revisit(tmp_path: Path) -> None:
    """Not only articles and feeds: robots.txt (fetched by every crawl) and any other page whose
    payload equals the site's earlier capture of it is written as a revisit, not again whole."""
    store = tmp_path / "store"
    robots = "https://thediplomaticinsight.com/robots.txt"
    with MirrorServer(sites=[SITE_DIR]) as mirror:
        crawl(mirror, store, tmp_path / "1.json")
        first = warc_types(store)[robots]
        crawl(mirror, store, tmp_path / "2.json")
    assert first.count("response") == 1
    both = warc_types(store)[robots]
    assert both.count("response") == 1, both  # the second crawl's are revisits
    assert both.count("revisit") > first.count("revisit")
    # No URL of the first crawl's 200 responses has a second whole 200 response.
    catalog = Catalog(sqlite_url(store / ".catalog.sqlite"))
    rows = [c for c in catalog.captures(site="tdi") if c.status == 200]
    crawls = sorted({c.crawl_id for c in rows})
    assert len(crawls) == 2
    earlier = {c.url for c in rows if c.crawl_id == crawls[0]}
    again = [
        c.url
        for c in rows
        if c.crawl_id == crawls[1] and c.record_type == "response" and c.url in earlier
    ]
    assert again == []


def test_refetch_gives_revisits_and_an_edit_gives_a_second_version(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with MirrorServer(sites=[SITE_DIR]) as mirror:
        crawl(mirror, store, tmp_path / "1.json")
        # Every article due again (as after its revision age), the mirror unchanged but one.
        original = (SITE_DIR / "zambia-independence-day-2023.html").read_text()
        edited = original.replace("</p>", " (Updated.)</p>", 1)
        assert edited != original
        mirror.add_route(
            Route(url=ARTICLE, body=edited.encode(), content_type="text/html; charset=UTF-8")
        )
        second = crawl(mirror, store, tmp_path / "2.json", ARCHIVE_REFRESH="True")
    stats = second.stats
    assert stats.get("archive/articles/new", 0) == 0
    assert stats["archive/articles/revised"] == 1
    assert stats["archive/articles/unchanged"] == 5
    types = warc_types(store)
    # Unchanged pages: the second capture is a revisit of the first, not a second copy.
    sample = "https://thediplomaticinsight.com/iranian-fm-discusses-gaza-with-hamas-and-islamic-jihad-leaders/"
    assert types[sample] == ["response", "request", "metadata", "revisit", "request"]
    # The edited page: a full response and a second text version.
    assert types[ARTICLE].count("response") == 2
    texts = sorted(p.name for p in (store / "text").rglob("zambia-independence-day-2023*.txt"))
    assert texts == ["zambia-independence-day-2023.txt", "zambia-independence-day-2023.v2.txt"]
    v2 = json.loads(
        next((store / "text").rglob("zambia-independence-day-2023.v2.json")).read_text()
    )
    assert v2["version"] == 2
    assert v2["previous_version"]["version"] == 1
    assert v2["previous_version"]["text_key"].endswith("zambia-independence-day-2023.txt")
    assert "(Updated.)" in (store / v2["text_key"]).read_text()
    catalog = Catalog(sqlite_url(store / ".catalog.sqlite"))
    state = catalog.article("tdi", "zambia-independence-day-2023")
    assert state is not None and state.version == 2


def test_articles_due_for_revision_are_fetched_without_discovery(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with MirrorServer(sites=[SITE_DIR]) as mirror:
        first = crawl(mirror, store, tmp_path / "1.json")
        assert first.report["articles"]["new"] == 6
        # Two hours later (first capture moved back), with feed and sitemap gone.
        catalog = Catalog(sqlite_url(store / ".catalog.sqlite"))
        with catalog.engine.begin() as conn:
            conn.execute(
                articles.update().values(
                    first_captured="2026-01-01T10:00:00Z", last_checked="2026-01-01T10:00:00Z"
                )
            )
        for url in (
            "https://thediplomaticinsight.com/feed/",
            "https://thediplomaticinsight.com/wp-sitemap.xml",
        ):
            mirror.add_route(Route(url=url, status=404))
        mirror.clear_requests()
        second = crawl(mirror, store, tmp_path / "2.json", exit_code=1, ARCHIVE_REVISION_AGES="1h")
        fetched = article_fetches(mirror)
    assert len(set(fetched)) == 6  # every article re-checked, found through the catalog
    # The revisions came through, but a site whose every source fails is still broken.
    assert second.report["health"]["problems"] == [
        "every source failed: 2 of 2 sources (http-404: 2)"
    ]
    assert second.stats["archive/articles/unchanged"] == 6
    # Checked now: not due again until its next age.
    assert (
        Catalog(sqlite_url(store / ".catalog.sqlite")).due_for_revision(
            "tdi", datetime.now(UTC), parse_ages("1h")
        )
        == []
    )


FEED = "https://thediplomaticinsight.com/feed/"
ETAG = '"feed-v1"'


def conditional_mirror() -> MirrorServer:
    """The tdi mirror with a feed that answers 304 to its own ETag."""
    site = load_site(SITE_DIR)
    mirror = MirrorServer(sites=[])
    mirror.add_site(
        dataclasses.replace(site, routes=tuple(r for r in site.routes if r.url != FEED))
    )
    body = (SITE_DIR / "feed.xml").read_bytes()

    def feed(req: MirrorRequest) -> MirrorResponse:
        if req.header("If-None-Match") == ETAG:
            return MirrorResponse(status=304, headers=[("ETag", ETAG)])
        return MirrorResponse(
            body=body, content_type="application/rss+xml; charset=UTF-8", headers=[("ETag", ETAG)]
        )

    mirror.add_handler("thediplomaticinsight.com", "/feed/", feed)
    return mirror


def feed_requests(mirror: MirrorServer) -> list[str | None]:
    return [r.header("If-None-Match") for r in mirror.requests if r.url == FEED]


def test_feeds_are_asked_conditionally_after_a_crawl_that_lost_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with conditional_mirror() as mirror:
        crawl(mirror, store, tmp_path / "1.json")
        assert feed_requests(mirror) == [None]
        mirror.clear_requests()
        second = crawl(mirror, store, tmp_path / "2.json")
        assert feed_requests(mirror) == [ETAG]
    assert second.stats["archive/skipped/not-modified"] == 1
    assert second.report["health"]["status"] == "ok"
    assert second.report["articles"]["new"] == 0


def test_no_validators_are_kept_when_an_article_was_lost(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with conditional_mirror() as mirror:
        mirror.add_route(Route(url=ARTICLE, status=503, headers=[("Retry-After", "0")]))
        crawl(mirror, store, tmp_path / "1.json", RETRY_TIMES="0")
        mirror.clear_requests()
        # The article still missing: the feed must be read again, not answered 304. The one
        # article asked failed again, and none came through: the crawl fails.
        crawl(mirror, store, tmp_path / "2.json", exit_code=1, RETRY_TIMES="0")
        assert feed_requests(mirror) == [None]


def test_a_dead_link_that_comes_back_is_archived(tmp_path: Path) -> None:
    """An article that answered 404 is gone; asked again at its recheck (0 days: every crawl)
    and there again, it is archived like any new article and is gone no more."""
    store = tmp_path / "store"
    site = load_site(SITE_DIR)
    [page] = [r for r in site.routes if r.url == ARTICLE]
    with MirrorServer(sites=[SITE_DIR]) as mirror:
        mirror.add_route(Route(url=ARTICLE, status=404, body=b"Not Found\n"))
        first = crawl(mirror, store, tmp_path / "1.json")
        assert [(f["url"], f["cause"], f["gone"]) for f in first.report["failures"]["urls"]] == [
            (ARTICLE, "http-404", False)
        ]
        catalog = Catalog(sqlite_url(store / ".catalog.sqlite"))
        try:
            assert list(catalog.gone_keys("tdi")) == ["zambia-independence-day-2023"]
            mirror.add_route(page)
            mirror.clear_requests()
            second = crawl(mirror, store, tmp_path / "2.json", ARCHIVE_GONE_RECHECK_DAYS="0")
            assert article_fetches(mirror) == [ARTICLE]
            assert second.report["articles"]["new"] == 1
            assert second.report["failures"]["total"] == 0
            assert "gone" not in second.report["skipped"]
            assert catalog.gone_keys("tdi") == {}
            assert "zambia-independence-day-2023" in catalog.known_keys("tdi")
        finally:
            catalog.close()
