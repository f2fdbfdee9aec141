"""Press TV spider: URL keys, callbacks on the mirror's pages, extraction, a mirror crawl."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from scrapy.http import HtmlResponse, Request, Response
from scrapy.utils.test import get_crawler

from crawler.constants import META_ARTICLE_KEY, META_DISCOVERY
from crawler.crawl.items import ArticlePage
from crawler.mirror.routes import SITES_DIR, Route, load_site
from crawler.mirror.server import MirrorRequest, MirrorServer
from crawler.text.extract import SiteRules, extract_article
from spiders.presstv import RULES, PressTvSpider, article_key
from tests.crawl_helper import NO_WINDOW, CrawlResult, run_crawl
from tests.spider_helpers import collect as _collect
from tests.spider_helpers import requests, site_response, stats

W = "https://www.presstv.ir"
UK = "https://www.presstv.co.uk"
FEED = f"{W}/rss.xml"
FEED_IRAN = f"{W}/rss/rss-101.xml"
FEED_SPORT = f"{W}/rss/rss-10107.xml"
SITEMAP = f"{W}/sitemap.xml"
NEWS_SITEMAP = f"{W}/sitemap-news.xml"
SECTION = f"{W}/Section/101/"
OMAN = f"{W}/Detail/2025/09/14/770412/Iran-Oman-FMs-discuss-regional-developments-in-Muscat"
OMAN_LOWER = f"{W}/Detail/2025/09/14/770412/iran-oman-fms-discuss-regional-developments-in-muscat"
GULF = (
    f"{W}/Detail/2025/09/13/770398/Tehran-hosts-international-conference-on-Persian-Gulf-security"
)
WRESTLING = f"{W}/Detail/2025/09/13/770377/Iranian-wrestlers-win-world-championship-title"
SAFFRON = f"{W}/Detail/2025/09/12/770355/Iran-reports-record-saffron-exports"
VIDEO = f"{W}/Detail/2025/09/14/770420/Video-Tehran-marks-Sacred-Defense-Week"
UK_ONLY = f"{UK}/Detail/2025/09/10/770300/Iran-inaugurates-new-petrochemical-plant"
ARTICLES = {"770412", "770398", "770377", "770355"}

SITE_DIR = SITES_DIR / "presstv"
ROUTES: dict[str, Route] = {route.url: route for route in load_site(SITE_DIR).routes}


def mirror_response(url: str, request: Request | None = None) -> Response:
    return site_response(ROUTES, url, request)


@pytest.fixture
def spider() -> PressTvSpider:
    return PressTvSpider.from_crawler(get_crawler(PressTvSpider, NO_WINDOW))


# ------------------------------------------------------------------ URL keys

ARTICLE_KEYS: list[tuple[str, str | None]] = [
    (OMAN, "770412"),
    # slug spellings, the other hosts, no slug, case, escapes
    (OMAN_LOWER, "770412"),
    (
        f"{UK}/Detail/2025/09/14/770412/Iran-Oman-FMs-discuss-regional-developments-in-Muscat",
        "770412",
    ),
    ("https://presstv.ir/Detail/2025/09/14/770412/anything", "770412"),
    ("https://presstv.co.uk/Detail/2025/09/14/770412/", "770412"),
    (f"{W}/Detail/2025/09/14/770412", "770412"),
    (f"{W}/detail/2025/09/14/770412/x", "770412"),
    ("http://www.presstv.ir/Detail/2025/09/14/770412/x", "770412"),
    (f"{W}/Detail/2025/9/4/770412/x", "770412"),
    (f"{W}/Detail/2025/09/14/770412/Iran%E2%80%99s-view", "770412"),
    (f"{W}/Detail/2025/09/14/770412/x?utm_source=rss", "770412"),
    (f"{W}/Detail/2025/09/14/770412/x#comments", "770412"),
    (VIDEO, "770420"),  # article-shaped; the page check rejects it
    # not articles
    (f"{W}/", None),
    (SECTION, None),
    (f"{SECTION}?page=2", None),
    (f"{W}/Section/13013/", None),
    (FEED, None),
    (FEED_IRAN, None),
    (SITEMAP, None),
    (f"{W}/Detail/About", None),
    (f"{W}/Detail/2025/09/14/", None),
    (f"{W}/Detail/2025/09/14/abc/x", None),
    (f"{W}/Detail/2025/09/14/770412/x/amp", None),
    (f"{W}/detail/139946.html", None),
    (f"{W}/Tag/Iran", None),
    # other hosts
    ("https://french.presstv.ir/Detail/2025/09/14/770412/x", None),
    ("https://presstv.ir.example.com/Detail/2025/09/14/770412/x", None),
    ("https://preview.presstv.ir/newsvideo/2025/09/14/770420.mp4", None),
    ("ftp://www.presstv.ir/Detail/2025/09/14/770412/x", None),
    ("", None),
    ("not a url", None),
]


@pytest.mark.parametrize(("url", "key"), ARTICLE_KEYS)
def test_article_key(url: str, key: str | None) -> None:
    assert article_key(url) == key


def test_the_spider_method_is_the_module_function() -> None:
    spider = PressTvSpider()
    for url, key in ARTICLE_KEYS:
        assert spider.article_key(url) == key


# ------------------------------------------------------------------ discovery


def test_start_yields_feeds_sitemap_and_section(spider: PressTvSpider) -> None:
    started = asyncio.run(_collect(spider.start()))
    assert [r.url for r in started] == [FEED, FEED_IRAN, FEED_SPORT, SITEMAP, SECTION]
    assert [r.callback for r in started] == [spider.parse_feed] * 3 + [
        spider.parse_sitemap,
        spider.parse_listing,
    ]


def test_feeds_give_each_article_once_whatever_the_slug(spider: PressTvSpider) -> None:
    main = requests(spider.parse_feed(mirror_response(FEED)))
    iran = requests(spider.parse_feed(mirror_response(FEED_IRAN)))
    assert [r.url for r in main] == [VIDEO, OMAN, GULF]
    # 770412 again under its lower-case slug: no second request
    assert [r.url for r in iran] == [WRESTLING]
    oman = main[1]
    assert [(d["via"], d["source"]) for d in oman.meta[META_DISCOVERY]] == [
        ("feed", FEED),
        ("feed", FEED_IRAN),
    ]
    assert oman.meta[META_DISCOVERY][0]["published"] == "2025-09-14T06:22:11+00:00"


def test_sitemap_index_follows_child_sitemaps_and_requests_listed_articles(
    spider: PressTvSpider,
) -> None:
    out = requests(spider.parse_sitemap(mirror_response(SITEMAP)))
    assert [(r.url, r.callback) for r in out] == [
        (NEWS_SITEMAP, spider.parse_sitemap),
        (SAFFRON, spider.parse_article),
    ]
    assert out[1].meta[META_DISCOVERY] == [
        {
            "via": "sitemap",
            "source": SITEMAP,
            "published": None,
            "title": None,
            "lastmod": "2025-09-12T11:03:40+03:30",
        }
    ]


def test_news_sitemap_fields_reach_the_provenance(spider: PressTvSpider) -> None:
    out = requests(spider.parse_sitemap(mirror_response(NEWS_SITEMAP)))
    assert [r.meta[META_ARTICLE_KEY] for r in out] == ["770412", "770398"]
    assert out[0].meta[META_DISCOVERY] == [
        {
            "via": "sitemap",
            "source": NEWS_SITEMAP,
            "published": "2025-09-14T09:52:11+03:30",
            "title": "Iran, Oman FMs discuss regional developments in Muscat",
            "lastmod": "2025-09-14T09:52:11+03:30",
        }
    ]


def test_section_listing_paginates_with_li_next(spider: PressTvSpider) -> None:
    out = requests(spider.parse_listing(mirror_response(SECTION)))
    articles = [r.url for r in out if r.callback == spider.parse_article]
    pages = [(r.url, r.cb_kwargs) for r in out if r.callback == spider.parse_listing]
    # the co.uk link is requested: robots.txt of that host decides
    assert articles == [GULF, UK_ONLY]
    assert pages == [(f"{SECTION}?page=2", {"page": 2})]
    page2 = requests(spider.parse_listing(mirror_response(f"{SECTION}?page=2"), page=2))
    assert [r.url for r in page2] == [WRESTLING]


# ------------------------------------------------------------------ article pages


def test_parse_article_yields_one_item(spider: PressTvSpider) -> None:
    request = Request(OMAN_LOWER, meta={META_ARTICLE_KEY: "770412", META_DISCOVERY: []})
    (item,) = spider.parse_article(mirror_response(OMAN_LOWER, request))
    assert isinstance(item, ArticlePage)
    assert (item.site, item.article_id, item.url) == ("presstv", "770412", OMAN_LOWER)


@pytest.mark.parametrize(
    "url", [VIDEO, f"{W}/", SECTION, f"{SECTION}?page=2", f"{W}/Tag/Iran", FEED]
)
def test_non_article_pages_give_no_item(spider: PressTvSpider, url: str) -> None:
    assert list(spider.parse_article(mirror_response(url))) == []
    skipped = {k: v for k, v in stats(spider).items() if k.startswith("archive/skipped/")}
    assert skipped == {"archive/skipped/not-article": 1}


@pytest.mark.parametrize(
    ("name", "is_article"),
    [
        ("detail-770412.html", True),
        ("detail-770398.html", True),
        ("detail-770377.html", True),
        ("detail-770355.html", True),
        ("detail-770420-video.html", False),
    ],
)
def test_is_article_page_rejects_video_pages(name: str, is_article: bool) -> None:
    response = HtmlResponse(url=OMAN, body=(SITE_DIR / name).read_bytes())
    assert PressTvSpider().is_article_page(response) is is_article


# ------------------------------------------------------------------ extraction


def test_article_fields() -> None:
    article = extract_article((SITE_DIR / "detail-770412.html").read_bytes(), OMAN, RULES)
    assert article.extractor == "rules"
    assert article.title == "Iran, Oman FMs discuss regional developments in Muscat"
    assert article.published is not None
    assert article.published.isoformat() == "2025-09-14T09:52:11+03:30"
    assert article.tags == ("Iran", "Oman", "Abbas Araghchi")
    assert article.section == "West Asia"
    assert article.warnings == ()
    # the summary above the body is the first paragraph; "Read more" and sharing are not text
    assert article.paragraphs[0].startswith("Iran's foreign minister and his Omani counterpart")
    assert len(article.paragraphs) == 5
    assert "Read more" not in article.text
    assert "Twitter" not in article.text
    assert article.text.startswith(article.title + "\n\nIran's foreign minister")
    assert article.text.endswith("the only way to settle regional disputes.\n")


def test_subheadings_stay_in_the_body() -> None:
    article = extract_article((SITE_DIR / "detail-770398.html").read_bytes(), GULF, RULES)
    assert "Maritime cooperation" in article.paragraphs


def test_an_article_without_its_time_element_takes_the_day_from_the_url() -> None:
    article = extract_article((SITE_DIR / "detail-770377.html").read_bytes(), WRESTLING, RULES)
    assert article.published is not None
    assert article.published.isoformat() == "2025-09-13T00:00:00+03:30"
    assert article.warnings == ("published date from the URL (day only)",)


def test_an_article_without_its_headline_takes_og_title_without_the_prefix() -> None:
    html = (SITE_DIR / "detail-770412.html").read_text()
    html = html.replace('<h1 class="news-title-container">', '<h1 class="x">', 1).replace(
        "<h1 ", "<div ", 1
    )
    assert "news-title-container" not in html
    article = extract_article(html, OMAN, RULES)
    assert article.title == "Iran, Oman FMs discuss regional developments in Muscat"


def test_a_url_date_rule_needs_its_groups() -> None:
    with pytest.raises(ValueError, match="year, month and day"):
        SiteRules(title=("h1",), body=("div",), url_date=r"/(\d{4})/(\d\d)/(\d\d)/")


def test_an_impossible_url_date_is_a_warning_not_a_date() -> None:
    html = (SITE_DIR / "detail-770377.html").read_bytes()
    article = extract_article(html, f"{W}/Detail/2025/13/45/770377/x", RULES)
    assert article.published is None
    assert article.warnings[0].startswith("unparsed published date in the URL")


# ------------------------------------------------------------------ a crawl through the mirror


@dataclass
class MirrorCrawl:
    result: CrawlResult
    store: Path
    requests: list[MirrorRequest]


@pytest.fixture(scope="module")
def crawl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MirrorCrawl]:
    work = tmp_path_factory.mktemp("presstv-crawl")
    store = work / "store"
    with MirrorServer([SITE_DIR]) as mirror:
        result = run_crawl(
            "spiders.presstv:PressTvSpider",
            work / "result.json",
            settings={"ARCHIVE_STORE_URI": str(store), "ARCHIVE_PROXY": mirror.proxy_url},
        )
        yield MirrorCrawl(result, store, mirror.requests)


def sidecars(store: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(store.glob("text/presstv/*/*/*/*.json")):
        data = json.loads(path.read_text())
        out[data["article_id"]] = data
    return out


def test_the_crawl_archives_each_article_once(crawl: MirrorCrawl) -> None:
    assert crawl.result.exit_code == 0, crawl.result.stderr[-3000:]
    report = crawl.result.report
    assert report["articles"]["new"] == len(ARTICLES)
    assert report["articles"]["failed"] == 0
    assert set(sidecars(crawl.store)) == ARTICLES
    assert len(list(crawl.store.glob("text/presstv/*/*/*/*.txt"))) == len(ARTICLES)
    # the video page was fetched and skipped; the co.uk article was stopped by robots.txt
    assert report["skipped"] == {"not-article": 1, "download-error/IgnoreRequest": 1}


def test_the_crawl_fetches_each_article_once_and_never_a_disallowed_path(
    crawl: MirrorCrawl,
) -> None:
    gets = [r for r in crawl.requests if r.method == "GET"]
    for article in (*ARTICLES, "770420"):
        fetched = [r.url for r in gets if f"/{article}/" in r.url]
        assert len(fetched) == 1, (article, fetched)
    uk = [r.path for r in gets if r.host == "www.presstv.co.uk"]
    assert uk == ["/robots.txt"]
    assert f"{SECTION}?page=3" not in {r.url for r in gets}


def test_the_crawl_writes_dates_and_warnings(crawl: MirrorCrawl) -> None:
    cars = sidecars(crawl.store)
    assert cars["770412"]["published"] == "2025-09-14T09:52:11+03:30"
    assert cars["770412"]["tags"] == ["Iran", "Oman", "Abbas Araghchi"]
    assert cars["770377"]["published"] == "2025-09-13T00:00:00+03:30"
    assert cars["770377"]["warnings"] == ["published date from the URL (day only)"]
    (text,) = crawl.store.glob("text/presstv/*/*/*/770355.txt")
    assert text.read_text().startswith("Iran reports record saffron exports\n\n")
    assert {d["via"] for d in cars["770355"]["discovery"]} == {"sitemap"}


def test_a_bad_url_date_regex_fails_when_declared() -> None:
    with pytest.raises(ValueError, match="bad regex"):
        SiteRules(title=("h1",), body=("div",), url_date=r"/(?P<year>\d{4}")
