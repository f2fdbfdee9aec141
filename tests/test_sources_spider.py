"""The generic spider on the mirror's saved pages (Scrapy responses, no network), and how
`sources test` judges the texts of a scratch store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from scrapy.http import Request
from scrapy.utils.test import get_crawler

from crawler.constants import META_SOURCE
from crawler.crawl.generic import GenericNewsSpider, generic_spider
from crawler.crawl.items import ArticlePage
from crawler.crawl.sources import parse_entry
from crawler.mirror.routes import SITES_DIR, Route, load_site
from crawler.ops.sources import article_findings
from tests.crawl_helper import NO_WINDOW
from tests.spider_helpers import collect, site_response

ROUTES: dict[str, Route] = {
    route.url: route
    for name in ("harborpost", "valleytimes", "coastaldaily")
    for route in load_site(SITES_DIR / name).routes
}
HARBOR = "https://www.harborpost.example/"
VALLEY = "https://www.valleytimes.example/"


def spider_for(entry: dict[str, Any], name: str = "site") -> GenericNewsSpider:
    cls = generic_spider(parse_entry(name, entry, "test"))
    crawler = get_crawler(cls, NO_WINDOW)
    spider = cls.from_crawler(crawler)
    return spider


def test_discover_finds_feeds_and_sitemaps_at_crawl_start() -> None:
    spider = spider_for({"start_urls": [HARBOR], "discover": True})
    first = asyncio.run(collect(spider.start()))
    urls = [r.url for r in first]
    assert urls == [HARBOR, "https://www.harborpost.example/robots.txt"]
    home = site_response(ROUTES, HARBOR, first[0])
    found = list(spider.parse_start(home))
    feeds = [r for r in found if r.meta.get(META_SOURCE) == "feed"]
    assert [r.url for r in feeds] == ["https://www.harborpost.example/feed/"]
    # The front page is a listing too: its ten article links, not its menu or sidebar.
    articles = [r for r in found if r.callback == spider.parse_article]
    assert len(articles) == 10
    robots = site_response(ROUTES, "https://www.harborpost.example/robots.txt", first[1])
    [sitemap] = spider.parse_robots(robots)
    assert sitemap.url == "https://www.harborpost.example/wp-sitemap.xml"
    index = site_response(ROUTES, sitemap.url, sitemap)
    children = list(spider.parse_sitemap(index, depth=0))
    assert len(children) == 3  # posts, categories, users: every child followed
    posts = site_response(ROUTES, "https://www.harborpost.example/wp-sitemap-posts-post-1.xml")
    from_sitemap = list(spider.parse_sitemap(posts, depth=1))
    # The front page asked for ten already; the sitemap adds the other five.
    assert len(from_sitemap) == 5
    categories = site_response(
        ROUTES, "https://www.harborpost.example/wp-sitemap-taxonomies-category-1.xml"
    )
    assert list(spider.parse_sitemap(categories, depth=1)) == []  # no article among them


def test_listing_pages_are_followed_to_their_limit() -> None:
    spider = spider_for({"start_urls": [VALLEY], "listing_pages": 2})
    [home_request] = asyncio.run(collect(spider.start()))
    found = list(spider.parse_listing(site_response(ROUTES, VALLEY, home_request)))
    nexts = [r for r in found if r.meta.get(META_SOURCE) == "listing"]
    assert [r.url for r in nexts] == ["https://www.valleytimes.example/news/page/2/"]
    assert len([r for r in found if r.callback == spider.parse_article]) == 8
    page2 = site_response(ROUTES, nexts[0].url, nexts[0])
    found2 = list(spider.parse_listing(page2, page=2))
    # Page 3 is past listing_pages = 2.
    assert [r for r in found2 if r.meta.get(META_SOURCE) == "listing"] == []
    assert len([r for r in found2 if r.callback == spider.parse_article]) == 8


def test_an_article_page_becomes_an_item_and_a_listing_does_not() -> None:
    spider = spider_for({"start_urls": [VALLEY]})
    url = "https://www.valleytimes.example/stories/westvale-police-launch-a-review-of-night-patrols-80513.html"
    key = spider.article_key(url)
    assert key == "stories/westvale-police-launch-a-review-of-night-patrols-80513.html"
    [request] = list(spider._article_request(url, {"via": "listing", "source": VALLEY}))
    [item] = list(spider.parse_article(site_response(ROUTES, url, request)))
    assert isinstance(item, ArticlePage) and item.article_id == key
    # A section page that a pattern would let through is still no article: it says so.
    patterned = spider_for({"start_urls": [VALLEY], "articles": ["^/"]})
    section = "https://www.valleytimes.example/local/"
    request = Request(section, meta={"archive_article_key": "local"})
    assert list(patterned.parse_article(site_response(ROUTES, section, request))) == []


def write_text(root: Path, where: str, name: str, sidecar: dict[str, Any], text: str) -> None:
    folder = root / where / "site" / "2026" / "12" / "07"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(sidecar))
    (folder / f"{name}.txt").write_text(text)


def test_sources_test_flags_empty_degenerate_and_undated_texts(tmp_path: Path) -> None:
    body = " ".join(["word"] * 80)
    dated = {"published": "2025-06-11T10:00:00+00:00", "title": "Headline"}
    write_text(
        tmp_path, "text", "a", {**dated, "url": "a", "text_digest": "1"}, f"Headline\n\n{body} a\n"
    )
    write_text(
        tmp_path, "text", "b", {**dated, "url": "b", "text_digest": "2"}, "Headline\n\nshort one\n"
    )
    write_text(
        tmp_path,
        "text",
        "c",
        {"title": "H", "url": "c", "text_digest": "3", "published": None},
        f"H\n\n{body} c\n",
    )
    for name in ("d", "e"):  # one text for two pages: the site's chrome, not an article
        write_text(
            tmp_path,
            "text",
            name,
            {**dated, "url": name, "text_digest": "4"},
            f"Headline\n\n{body}\n",
        )
    write_text(
        tmp_path,
        "flagged",
        "f",
        {**dated, "url": "f", "text_digest": "5", "quality": "degenerate"},
        f"Headline\n\n{body} f\n",
    )
    write_text(
        tmp_path,
        "text",
        "g",
        {"url": "g", "text_digest": "6", "title": None, "published": None},
        "",
    )
    found = {f["url"]: f["flags"] for f in article_findings(tmp_path, "site")}
    assert found == {
        "a": [],
        "b": ["degenerate"],
        "c": ["no-date"],
        "d": ["degenerate"],
        "e": ["degenerate"],
        "f": ["degenerate"],
        "g": ["empty", "no-date", "no-headline"],
    }
