"""The degenerate-text guard against a site's usual size, from the catalog: two crawls of one
small site, the second judged by the texts the first archived (issue 23).

The hostile-input suite covers the floor (a new site) and the truncated payloads; here the
median path: a page that parses but gives a date line where the site's articles give
paragraphs is kept flagged, never a version, and never replaces the article's good text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from crawler.catalog.db import Catalog
from crawler.crawl.spider import NewsSpider
from crawler.mirror.server import MirrorServer, Route
from tests.crawl_helper import SIMPLE_RULES, CrawlResult, run_crawl

HOST = "usual.example.test"
H = f"https://{HOST}"
_ARTICLE = re.compile(rf"{re.escape(H)}/news/([a-z0-9-]+)/")
WORDS = ("minister", "summit", "talks", "region", "peace", "trade", "envoy", "border")


class UsualSizeSpider(NewsSpider):
    name = "usual"
    allowed_domains: ClassVar[list[str]] = [HOST]
    sitemaps: ClassVar[tuple[str, ...]] = (f"{H}/sitemap.xml",)
    rules = SIMPLE_RULES

    def article_key(self, url: str) -> str | None:
        match = _ARTICLE.fullmatch(url)
        return match.group(1) if match else None


def page(title: str, paragraphs: list[str]) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<html><head><title>{title}</title></head><body><h1>{title}</h1>"
        f"<div class='story'>{body}</div></body></html>"
    ).encode()


def report_page(n: int) -> bytes:
    """An ordinary article of the site: about 1,500 characters in five paragraphs."""
    paragraphs = [
        " ".join(WORDS[(n + i * 7 + j) % len(WORDS)] for j in range(40)) + "." for i in range(5)
    ]
    return page(f"Report {n}", paragraphs)


# 40 characters: over the floor (20), far under the site's usual ~1,500.
STUB = page("Report 1", ["Published 11 June 2025, 10:20 Tehran time"])
BRIEF = page("A brief", ["The envoy arrived in the capital on Tuesday for two days of talks. " * 2])


def serve(mirror: MirrorServer, pages: dict[str, bytes]) -> None:
    html = "text/html; charset=utf-8"
    mirror.add_route(
        Route(url=f"{H}/robots.txt", body=b"User-agent: *\n", content_type="text/plain")
    )
    locs = "".join(f"<url><loc>{H}/news/{slug}/</loc></url>" for slug in pages)
    sitemap = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{locs}</urlset>'
    )
    mirror.add_route(Route(url=f"{H}/sitemap.xml", body=sitemap.encode(), content_type="text/xml"))
    for slug, body in pages.items():
        mirror.add_route(Route(url=f"{H}/news/{slug}/", body=body, content_type=html))


@dataclass
class TwoCrawls:
    first: CrawlResult
    second: CrawlResult
    store: Path

    def flagged(self) -> list[dict[str, Any]]:
        return [
            json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(self.store.glob("flagged/usual/*/*/*/*.json"))
        ]


@pytest.fixture(scope="module")
def crawls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoCrawls]:
    work = tmp_path_factory.mktemp("usual")
    store = work / "store"
    settings = {
        "ARCHIVE_STORE_URI": str(store),
        "ARCHIVE_DISCOVERY_WINDOW_DAYS": "0",
        "ARCHIVE_WACZ_ENABLED": "False",
        # Three texts are enough for the site's median here (20 by default).
        "ARCHIVE_TEXT_DEGENERATE_MIN_TEXTS": "3",
    }
    with MirrorServer(sites=[]) as mirror:
        settings["ARCHIVE_PROXY"] = mirror.proxy_url
        serve(mirror, {f"report-{n}": report_page(n) for n in (1, 2, 3)})
        first = run_crawl(f"{__name__}:UsualSizeSpider", work / "first.json", settings=settings)
        # The next crawl: report-1 now gives only its date line, a stub is new, a brief too.
        serve(
            mirror,
            {"report-1": STUB, "report-2": report_page(2), "report-3": report_page(3)}
            | {"stub": page("A stub", ["Published 11 June 2025, 10:20 Tehran time"])}
            | {"brief": BRIEF},
        )
        second = run_crawl(
            f"{__name__}:UsualSizeSpider",
            work / "second.json",
            settings=settings,
            spider_args={"refresh": "1"},
        )
    yield TwoCrawls(first, second, store)


def test_the_first_crawl_archives_the_site(crawls: TwoCrawls) -> None:
    assert crawls.first.report["articles"]["new"] == 3
    assert crawls.first.report["articles"]["degenerate"] == 0


def test_a_text_far_below_the_sites_usual_size_is_flagged(crawls: TwoCrawls) -> None:
    report = crawls.second.report
    articles = report["articles"]
    # The brief (134 characters) is a short article, not a degenerate one: new.
    assert (articles["new"], articles["revised"], articles["unchanged"]) == (1, 0, 2)
    assert articles["degenerate"] == 2
    assert articles["failed_by_reason"] == {"degenerate": 2}
    failed = {f["url"]: f for f in report["failures"]["urls"]}
    for slug in ("report-1", "stub"):
        failure = failed[f"{H}/news/{slug}/"]
        assert (failure["stage"], failure["cause"]) == ("text", "degenerate")
        assert "body of 41 characters, below " in failure["error"]
        assert "of the site's usual " in failure["error"]
        assert "(median of its latest 3 texts)" in failure["error"]
    flagged = {f["article_id"]: f for f in crawls.flagged()}
    assert set(flagged) == {"report-1", "stub"}
    assert all(f["quality"] == "degenerate" and f["version"] is None for f in flagged.values())
    # The measure, logged once: 5 % of the median body of the site's three texts.
    found = re.search(
        r"usual: a text under (\d+) body characters is degenerate \(median (\d+) of 3 texts\)",
        crawls.second.stderr,
    )
    assert found is not None
    threshold, median = int(found[1]), int(found[2])
    assert threshold == math.ceil(0.05 * median)
    assert 41 < threshold < 133  # between the stub and the brief


def test_a_degenerate_text_never_replaces_the_articles_text(crawls: TwoCrawls) -> None:
    catalog = Catalog(f"sqlite:///{crawls.store / '.catalog.sqlite'}")
    try:
        report = catalog.article("usual", "report-1")
        assert report is not None
        assert report.version == 1  # still the first crawl's text
        text = (crawls.store / report.text_key).read_text(encoding="utf-8")
        assert text.startswith("Report 1\n\nsummit talks") and "Published" not in text
        assert catalog.article("usual", "stub") is None  # not an article of the archive
        assert catalog.article("usual", "brief") is not None
        assert not list(crawls.store.glob("text/usual/*/*/*/stub*"))
        assert not list(crawls.store.glob("text/usual/*/*/*/report-1.v2.*"))
    finally:
        catalog.close()
