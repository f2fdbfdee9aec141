"""TDI spider callbacks fed with the mirror's saved pages, no network."""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from scrapy.http import HtmlResponse, Request, Response
from scrapy.http.headers import Headers
from scrapy.responsetypes import responsetypes
from scrapy.utils.test import get_crawler

from crawler.constants import META_ARTICLE_KEY, META_DISCOVERY
from crawler.crawl.items import ArticlePage
from crawler.crawl.spider import CrawlArgs, NewsSpider, body_classes
from crawler.mirror.routes import SITES_DIR, Route, load_site
from spiders.tdi import TdiSpider
from tests.crawl_helper import NO_WINDOW

SITE = "https://thediplomaticinsight.com"
FEED = f"{SITE}/feed/"
SITEMAP = f"{SITE}/wp-sitemap.xml"
POSTS_SITEMAP = f"{SITE}/wp-sitemap-posts-post-1.xml"
CATEGORY_SITEMAP = f"{SITE}/wp-sitemap-taxonomies-category-1.xml"
SAMPLE = "iranian-fm-discusses-gaza-with-hamas-and-islamic-jihad-leaders"
FEED_ONLY = "zambia-independence-day-2023"
SITEMAP_ONLY = "iran-calls-for-oic-sanctions-on-israel-amid-gaza-crisis"
ALL_ARTICLES = {
    SAMPLE,
    FEED_ONLY,
    SITEMAP_ONLY,
    "world-polio-day-2023",
    "tdi-hosts-roundtable-on-climate-diplomacy-in-islamabad",
    "president-of-pakistan-stands-with-palestine-calls-for-un-action",
}
ROUTES: dict[str, Route] = {route.url: route for route in load_site(SITES_DIR / "tdi").routes}


def mirror_response(
    url: str,
    request: Request | None = None,
    *,
    status: int | None = None,
    body: bytes | None = None,
) -> Response:
    """The response the mirror would give for ``url``, typed the way Scrapy types it."""
    route = ROUTES[url]
    headers = Headers({"Content-Type": route.content_type or "text/html"})
    data = route.body if body is None else body
    cls = responsetypes.from_args(headers=headers, url=url, body=data)
    return cls(
        url=url,
        status=status or route.effective_status,
        headers=headers,
        body=data,
        request=request or Request(url),
    )


def article_request(url: str, key: str, *, redirected_from: str | None = None) -> Request:
    meta: dict[str, Any] = {
        META_ARTICLE_KEY: key,
        META_DISCOVERY: [{"via": "feed", "source": FEED}],
    }
    if redirected_from:
        meta["redirect_urls"] = [redirected_from]
    return Request(url, meta=meta)


@pytest.fixture
def spider() -> TdiSpider:
    crawler = get_crawler(TdiSpider, NO_WINDOW)
    return TdiSpider.from_crawler(crawler)


def stats(spider: NewsSpider) -> dict[str, Any]:
    assert spider.crawler.stats is not None
    return spider.crawler.stats.get_stats()


def requests(results: Iterable[Any]) -> list[Request]:
    out = list(results)
    assert all(isinstance(r, Request) for r in out)
    return out


async def _collect(gen: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in gen]


# ------------------------------------------------------------------ start


def test_start_yields_the_feed_and_the_sitemap(spider: TdiSpider) -> None:
    started = asyncio.run(_collect(spider.start()))
    assert [r.url for r in started] == [FEED, SITEMAP]
    assert started[0].callback == spider.parse_feed
    assert started[1].callback == spider.parse_sitemap


def test_start_requests_is_not_what_the_spider_relies_on() -> None:
    # Scrapy 2.13+ may skip a plain start_requests(); the base defines start() only.
    assert "start_requests" not in vars(NewsSpider)
    assert "start" in vars(NewsSpider)


# ------------------------------------------------------------------ feed


def test_parse_feed_yields_article_requests_with_provenance(spider: TdiSpider) -> None:
    out = requests(spider.parse_feed(mirror_response(FEED)))
    keys = [r.meta[META_ARTICLE_KEY] for r in out]
    assert keys == [
        FEED_ONLY,
        SAMPLE,
        "world-polio-day-2023",
        "tdi-hosts-roundtable-on-climate-diplomacy-in-islamabad",
        "president-of-pakistan-stands-with-palestine-calls-for-un-action",
    ]
    assert all(r.callback == spider.parse_article for r in out)
    first = out[0]
    assert first.url == f"{SITE}/{FEED_ONLY}/"
    assert first.meta[META_DISCOVERY] == [
        {
            "via": "feed",
            "source": FEED,
            "published": "2023-10-24T15:40:03+00:00",
            "title": "Zambia Independence Day 2023",
            "lastmod": None,
        }
    ]
    # the feed item that still names the old www host is requested as given (it redirects)
    assert out[2].url == "https://www.thediplomaticinsight.com/world-polio-day-2023/"


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body><h1>Not a feed</h1></body></html>",
        b"",
        b"\x00\x01\x02 garbage \xff\xfe",
        b"<?xml version='1.0'?><rss version='2.0'><channel><item><title>unterminated",
    ],
)
def test_a_broken_feed_is_a_counted_skip_not_an_exception(
    spider: TdiSpider, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    out = list(spider.parse_feed(mirror_response(FEED, body=body)))
    assert out == []
    assert stats(spider)["archive/skipped/bad-feed"] == 1
    assert "Skipped feed https://thediplomaticinsight.com/feed/" in caplog.text


def test_a_feed_with_no_items_is_no_error(spider: TdiSpider) -> None:
    body = (
        b"<?xml version='1.0'?><rss version='2.0'><channel><title>x</title>"
        b"<link>https://thediplomaticinsight.com/</link></channel></rss>"
    )
    assert list(spider.parse_feed(mirror_response(FEED, body=body))) == []
    assert "archive/skipped/bad-feed" not in stats(spider)


def test_a_malformed_feed_still_gives_its_readable_items(spider: TdiSpider) -> None:
    body = ROUTES[FEED].body.replace(b"</rss>", b"").replace(b"<channel>", b"<channel><bogus>")
    out = requests(spider.parse_feed(mirror_response(FEED, body=body)))
    assert len(out) == 5


# ------------------------------------------------------------------ sitemaps


def test_sitemap_index_follows_only_post_sitemaps(spider: TdiSpider) -> None:
    out = requests(spider.parse_sitemap(mirror_response(SITEMAP)))
    assert [r.url for r in out] == [POSTS_SITEMAP]
    assert out[0].callback == spider.parse_sitemap


def test_a_yoast_sitemap_index_is_followed_to_its_post_sitemaps(spider: TdiSpider) -> None:
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
 <sitemap><loc>{SITE}/post-sitemap.xml</loc></sitemap>
 <sitemap><loc>{SITE}/post-sitemap2.xml</loc></sitemap>
 <sitemap><loc>{SITE}/page-sitemap.xml</loc></sitemap>
 <sitemap><loc>{SITE}/category-sitemap.xml</loc></sitemap>
 <sitemap><loc>{SITE}/author-sitemap.xml</loc></sitemap>
</sitemapindex>""".encode()
    out = requests(spider.parse_sitemap(mirror_response(SITEMAP, body=body)))
    assert [r.url for r in out] == [f"{SITE}/post-sitemap.xml", f"{SITE}/post-sitemap2.xml"]


def test_post_sitemap_yields_article_requests_with_lastmod(spider: TdiSpider) -> None:
    out = requests(spider.parse_sitemap(mirror_response(POSTS_SITEMAP)))
    keys = {r.meta[META_ARTICLE_KEY] for r in out}
    assert keys == ALL_ARTICLES - {FEED_ONLY}
    oic = next(r for r in out if r.meta[META_ARTICLE_KEY] == SITEMAP_ONLY)
    assert oic.meta[META_DISCOVERY] == [
        {
            "via": "sitemap",
            "source": POSTS_SITEMAP,
            "published": None,
            "title": None,
            "lastmod": "2023-10-18T10:44:21+00:00",
        }
    ]


def test_category_sitemap_gives_no_article_requests(spider: TdiSpider) -> None:
    assert list(spider.parse_sitemap(mirror_response(CATEGORY_SITEMAP))) == []


def test_gzipped_sitemap_is_read(spider: TdiSpider) -> None:
    body = gzip.compress(ROUTES[POSTS_SITEMAP].body)
    out = requests(spider.parse_sitemap(mirror_response(POSTS_SITEMAP, body=body)))
    assert len(out) == 5


def test_google_news_sitemap_fields_reach_the_provenance(spider: TdiSpider) -> None:
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
 <url><loc>{SITE}/{SAMPLE}/</loc><lastmod>2023-10-24T12:07:10+00:00</lastmod>
  <news:news><news:publication><news:name>The Diplomatic Insight</news:name>
   <news:language>en</news:language></news:publication>
   <news:publication_date>2023-10-24T17:05:32+05:00</news:publication_date>
   <news:title>Iranian FM discusses Gaza with Hamas and Islamic Jihad leaders</news:title>
  </news:news></url>
</urlset>""".encode()
    out = requests(spider.parse_sitemap(mirror_response(POSTS_SITEMAP, body=body)))
    assert out[0].meta[META_DISCOVERY] == [
        {
            "via": "sitemap",
            "source": POSTS_SITEMAP,
            "published": "2023-10-24T17:05:32+05:00",
            "title": "Iranian FM discusses Gaza with Hamas and Islamic Jihad leaders",
            "lastmod": "2023-10-24T12:07:10+00:00",
        }
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body><p>Not a sitemap</p></body></html>",
        b"not xml at all",
        b"",
        b"\x1f\x8b\x08\x00broken gzip",
    ],
)
def test_a_broken_sitemap_is_a_counted_skip(
    spider: TdiSpider, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    assert list(spider.parse_sitemap(mirror_response(POSTS_SITEMAP, body=body))) == []
    assert stats(spider)["archive/skipped/bad-sitemap"] == 1
    assert "Skipped sitemap" in caplog.text


def test_sitemap_entities_are_not_resolved(spider: TdiSpider) -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>&e;</loc>'
        b"</url></urlset>"
    )
    assert list(spider.parse_sitemap(mirror_response(POSTS_SITEMAP, body=body))) == []


# ------------------------------------------------------------------ both channels


def test_both_channels_cover_every_article_once(spider: TdiSpider) -> None:
    from_feed = requests(spider.parse_feed(mirror_response(FEED)))
    from_sitemap = requests(spider.parse_sitemap(mirror_response(POSTS_SITEMAP)))
    keys = [r.meta[META_ARTICLE_KEY] for r in from_feed + from_sitemap]
    assert sorted(keys) == sorted(ALL_ARTICLES)  # each key requested once
    assert [r.meta[META_ARTICLE_KEY] for r in from_sitemap] == [SITEMAP_ONLY]
    # a post found by both carries both discoveries while its request is pending
    sample = next(r for r in from_feed if r.meta[META_ARTICLE_KEY] == SAMPLE)
    assert [d["via"] for d in sample.meta[META_DISCOVERY]] == ["feed", "sitemap"]
    polio = next(r for r in from_feed if r.meta[META_ARTICLE_KEY] == "world-polio-day-2023")
    assert [d["source"] for d in polio.meta[META_DISCOVERY]] == [FEED, POSTS_SITEMAP]


def test_a_discovery_after_the_page_was_parsed_requests_nothing(spider: TdiSpider) -> None:
    first = requests(spider.parse_feed(mirror_response(FEED)))
    sample = next(r for r in first if r.meta[META_ARTICLE_KEY] == SAMPLE)
    items = list(spider.parse_article(mirror_response(sample.url, sample)))
    assert len(items) == 1
    again = requests(spider.parse_sitemap(mirror_response(POSTS_SITEMAP)))
    assert SAMPLE not in {r.meta[META_ARTICLE_KEY] for r in again}
    assert [d["via"] for d in items[0].discovery] == ["feed"]


# ------------------------------------------------------------------ max_articles


def test_max_articles_caps_the_article_requests(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="crawler.crawl.spider")
    spider = TdiSpider.from_crawler(get_crawler(TdiSpider, NO_WINDOW), max_articles="2")
    assert spider.args == CrawlArgs(max_articles=2)
    out = requests(spider.parse_feed(mirror_response(FEED)))
    assert len(out) == 2
    assert stats(spider)["archive/skipped/max-articles"] == 3
    assert caplog.text.count("max_articles=2 reached") == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("5", 5),
        (" 7 ", 7),
        (3, 3),
        (1, 1),
    ],
)
def test_max_articles_values(value: object, expected: int | None) -> None:
    assert TdiSpider(max_articles=value).args.max_articles == expected


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", "10 articles", 0, -3, True, 2.0, []])
def test_bad_max_articles_fails_at_init(value: object) -> None:
    with pytest.raises(ValueError, match="max_articles must be a positive integer"):
        TdiSpider(max_articles=value)


# ------------------------------------------------------------------ article pages


def test_parse_article_yields_one_item(spider: TdiSpider) -> None:
    url = f"{SITE}/{SAMPLE}/"
    response = mirror_response(url, article_request(url, SAMPLE))
    out = list(spider.parse_article(response))
    assert len(out) == 1
    item = out[0]
    assert isinstance(item, ArticlePage)
    assert item.url == url
    assert item.request_url == url
    assert item.site == "tdi"
    assert item.article_id == SAMPLE
    assert item.status == 200
    assert item.encoding == "utf-8"
    assert item.html == response.text
    assert "Iranian FM discusses Gaza" in item.html
    assert item.discovery == [{"via": "feed", "source": FEED}]


def test_redirected_article_keeps_the_first_url(spider: TdiSpider) -> None:
    www = "https://www.thediplomaticinsight.com/world-polio-day-2023/"
    url = f"{SITE}/world-polio-day-2023/"
    request = article_request(url, "world-polio-day-2023", redirected_from=www)
    (item,) = spider.parse_article(mirror_response(url, request))
    assert item.url == url
    assert item.request_url == www
    assert item.article_id == "world-polio-day-2023"


def test_a_renamed_post_is_keyed_by_its_final_slug(spider: TdiSpider) -> None:
    url = f"{SITE}/{SAMPLE}/"
    request = article_request(url, "old-slug", redirected_from=f"{SITE}/old-slug/")
    (item,) = spider.parse_article(mirror_response(url, request))
    assert item.article_id == SAMPLE


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"{SITE}/", "not-article"),
        (f"{SITE}/category/middle-east/", "not-article"),
        (f"{SITE}/tag/gaza/", "not-article"),
        (f"{SITE}/author/maham-shabir/", "not-article"),
        (f"{SITE}/about-us/", "not-article"),
        (FEED, "not-html"),
        (POSTS_SITEMAP, "not-html"),
    ],
)
def test_non_article_pages_give_no_item(spider: TdiSpider, url: str, reason: str) -> None:
    out = list(spider.parse_article(mirror_response(url, article_request(url, "x"))))
    assert out == []
    assert stats(spider)[f"archive/skipped/{reason}"] == 1


def test_an_article_url_requested_without_discovery_meta_still_gives_an_item(
    spider: TdiSpider,
) -> None:
    url = f"{SITE}/{SAMPLE}/"
    (item,) = spider.parse_article(mirror_response(url, Request(url)))
    assert item.article_id == SAMPLE
    assert item.discovery == []
    home = f"{SITE}/"
    assert list(spider.parse_article(mirror_response(home, Request(home)))) == []
    assert stats(spider)["archive/skipped/not-article"] == 1


def test_a_non_200_answer_gives_no_item(spider: TdiSpider) -> None:
    url = f"{SITE}/{SAMPLE}/"
    response = mirror_response(url, article_request(url, SAMPLE), status=203)
    assert list(spider.parse_article(response)) == []
    assert stats(spider)["archive/skipped/http-status"] == 1


@pytest.mark.parametrize(
    ("name", "is_article"),
    [
        (f"{SAMPLE}.html", True),
        ("zambia-independence-day-2023.html", True),
        ("tdi-hosts-roundtable-on-climate-diplomacy-in-islamabad.html", True),
        ("index.html", False),
        ("category-middle-east.html", False),
        ("tag-gaza.html", False),
        ("author-maham-shabir.html", False),
        ("about-us.html", False),
        ("404.html", False),
    ],
)
def test_is_article_page_reads_the_body_class(name: str, is_article: bool) -> None:
    body = (SITES_DIR / "tdi" / name).read_bytes()
    response = HtmlResponse(url=f"{SITE}/x/", body=body, encoding="utf-8")
    assert TdiSpider().is_article_page(response) is is_article


@pytest.mark.parametrize(
    ("html", "classes"),
    [
        ('<html><body class="single single-post postid-1">', {"single", "single-post", "postid-1"}),
        ("<html><BODY id='b' Class='home blog'>", {"home", "blog"}),
        ("<html><body class=home>", {"home"}),
        ("<html><body>", set()),
        ("<html><p>no body tag</p>", set()),
    ],
)
def test_body_classes(html: str, classes: set[str]) -> None:
    response = HtmlResponse(url=f"{SITE}/", body=html.encode(), encoding="utf-8")
    assert body_classes(response) == classes


# ------------------------------------------------------------------ listing machinery


class ListingSpider(TdiSpider):
    name = "tdi-listing"
    listings = (f"{SITE}/category/middle-east/",)
    listing_links = "div.td-ss-main-content h3.entry-title a"
    listing_next = 'div.page-nav a[aria-label="next-page"]'
    listing_max_pages = 2


def test_start_yields_listing_requests() -> None:
    spider = ListingSpider.from_crawler(get_crawler(ListingSpider, NO_WINDOW))
    started = asyncio.run(_collect(spider.start()))
    assert [r.url for r in started] == [FEED, SITEMAP, f"{SITE}/category/middle-east/"]
    assert started[2].cb_kwargs == {"page": 1}


def test_listing_pages_give_articles_and_the_next_page_up_to_the_limit() -> None:
    spider = ListingSpider.from_crawler(get_crawler(ListingSpider, NO_WINDOW))
    url = f"{SITE}/category/middle-east/"
    out = requests(spider.parse_listing(mirror_response(url)))
    articles = [r for r in out if r.callback == spider.parse_article]
    pages = [r for r in out if r.callback == spider.parse_listing]
    assert [r.meta[META_ARTICLE_KEY] for r in articles] == [SAMPLE, SITEMAP_ONLY]
    assert articles[0].meta[META_DISCOVERY] == [
        {
            "via": "listing",
            "source": url,
            "published": None,
            "title": "Iranian FM discusses Gaza with Hamas and Islamic Jihad leaders",
            "lastmod": None,
        }
    ]
    assert [(r.url, r.cb_kwargs) for r in pages] == [(f"{url}page/2/", {"page": 2})]
    # the last allowed page does not paginate further
    last = requests(spider.parse_listing(mirror_response(url), page=2))
    assert all(r.callback == spider.parse_article for r in last)
