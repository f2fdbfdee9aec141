"""Almasirah spider: URL keys, callbacks on the mirror's pages, extraction, a mirror crawl."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from parsel import Selector
from scrapy.http import HtmlResponse, Request, Response
from scrapy.utils.test import get_crawler

from crawler.constants import META_ARTICLE_KEY, META_DISCOVERY
from crawler.crawl.items import ArticlePage
from crawler.mirror.routes import SITES_DIR, Route, load_site
from crawler.mirror.server import MirrorRequest, MirrorServer
from crawler.text.extract import extract_article
from spiders.almasirah import RULES, AlmasirahSpider, article_key
from tests.conftest import expected_text
from tests.crawl_helper import NO_WINDOW, CrawlResult, run_crawl
from tests.spider_helpers import collect as _collect
from tests.spider_helpers import requests, site_response, stats

M = "https://english.masirahtv.net"
Y = "https://english.almasirah.net.ye"
A = "https://english.almasirah.net"
FEED = f"{M}/rss.php"
HOME = f"{Y}/"
SECTION = f"{Y}/section/1/News"
SAMPLE_000 = f"{M}/post/53210/Pezeshkian-Vows-to-Mobilize-International-Support-for-Gaza"
SAMPLE_000_ALIAS = f"{A}/post/53210/pezeshkian-vows-to-mobilize-international-support-for-gaza"
SAMPLE_003 = (
    f"{M}/post/37588/Iran%2C-Iraq-Urge-Coordinated-Efforts-to-Stop-Israel%27s-Savagery-in-Gaza"
)
NO_DATE = f"{M}/post/53204/Sanaa-Hosts-Conference-on-Rebuilding-Hodeidah-Port"
OLD_PATH = f"{A}/news/37502/Agriculture-Ministry-Launches-Wheat-Planting-Campaign-in-Al-Jawf"
VIDEO = f"{M}/post/53190/Video-Million-Man-March-in-Sanaa-in-Solidarity-with-Gaza"
WITHDRAWN = f"{M}/post/52990/Correction-Notice"
ARTICLES = {"53210", "37588", "53204", "37502"}
BOILERPLATE = "This page is the English version of Almasirah Media Network website"

SITE_DIR = SITES_DIR / "almasirah"
ROUTES: dict[str, Route] = {route.url: route for route in load_site(SITE_DIR).routes}


def mirror_response(url: str, request: Request | None = None) -> Response:
    return site_response(ROUTES, url, request)


@pytest.fixture
def spider() -> AlmasirahSpider:
    return AlmasirahSpider.from_crawler(get_crawler(AlmasirahSpider, NO_WINDOW))


# ------------------------------------------------------------------ URL keys

ARTICLE_KEYS: list[tuple[str, str | None]] = [
    (SAMPLE_000, "53210"),
    # the same post through each host, another slug, no slug, the /news/ path
    (SAMPLE_000_ALIAS, "53210"),
    (f"{Y}/post/53210/Pezeshkian-Vows-to-Mobilize-International-Support-for-Gaza", "53210"),
    (f"{M}/post/53210", "53210"),
    (f"{M}/post/53210/", "53210"),
    (f"{M}/news/53210/Pezeshkian", "53210"),
    ("http://english.masirahtv.net/post/53210/x", "53210"),
    (f"{M}/Post/53210/x", "53210"),
    (f"{M}/post/053210/x", "53210"),
    (f"{M}/post/53210/x#comments", "53210"),
    (f"  {M}/post/53210/x\n", "53210"),
    (f"{M}/post/53210/x?utm_source=telegram", "53210"),
    (SAMPLE_003, "37588"),
    (OLD_PATH, "37502"),
    # article-shaped, rejected later by the page type
    (VIDEO, "53190"),
    # not articles
    (f"{M}/post/53210/x?id=2", None),
    (f"{M}/post/abc/x", None),
    (f"{M}/post/53210/x/amp", None),
    (f"{M}/post/", None),
    (HOME, None),
    (SECTION, None),
    (f"{SECTION}?page=2", None),
    (f"{Y}/tag/Gaza", None),
    (f"{Y}/page.php?id=1", None),
    (FEED, None),
    (f"{M}/print.php?id=53210", None),
    (f"{M}/uploads/2025/53210.jpg", None),
    (f"{M}/robots.txt", None),
    # other hosts and schemes
    ("https://almasirah.net.ye/post/53210/x", None),
    ("https://www.almasirah.net/post/53210/x", None),
    ("https://english.masirahtv.net.example.com/post/53210/x", None),
    ("ftp://english.masirahtv.net/post/53210/x", None),
    ("", None),
    ("not a url", None),
]


@pytest.mark.parametrize(("url", "key"), ARTICLE_KEYS)
def test_article_key(url: str, key: str | None) -> None:
    assert article_key(url) == key


def test_the_spider_method_is_the_module_function() -> None:
    spider = AlmasirahSpider()
    for url, key in ARTICLE_KEYS:
        assert spider.article_key(url) == key


def test_every_host_is_allowed() -> None:
    assert set(AlmasirahSpider.allowed_domains) == {
        "english.almasirah.net",
        "english.almasirah.net.ye",
        "english.masirahtv.net",
    }


# ------------------------------------------------------------------ discovery


def test_start_yields_the_feed_and_the_listings(spider: AlmasirahSpider) -> None:
    started = asyncio.run(_collect(spider.start()))
    assert [r.url for r in started] == [FEED, HOME, SECTION]
    assert started[0].callback == spider.parse_feed
    assert [r.callback for r in started[1:]] == [spider.parse_listing] * 2


def test_feed_gives_articles_on_any_host(spider: AlmasirahSpider) -> None:
    out = requests(spider.parse_feed(mirror_response(FEED)))
    assert [(r.url, r.meta[META_ARTICLE_KEY]) for r in out] == [
        (SAMPLE_000_ALIAS, "53210"),
        (NO_DATE, "53204"),
        (VIDEO, "53190"),
    ]
    assert out[0].meta[META_DISCOVERY][0]["published"] == "2025-06-11T19:40:00+03:00"


def test_homepage_links_cross_hosts(spider: AlmasirahSpider) -> None:
    out = requests(spider.parse_listing(mirror_response(HOME)))
    assert all(r.callback == spider.parse_article for r in out)
    # the ticker's links come first; the withdrawn post is left to robots.txt
    assert [r.url for r in out] == [SAMPLE_000, WITHDRAWN, NO_DATE, VIDEO]
    sample = out[0]
    # linked three times on the page (ticker, thumbnail, headline): one discovery entry
    assert sample.meta[META_DISCOVERY] == [
        {
            "via": "listing",
            "source": HOME,
            "published": None,
            "title": "Pezeshkian Vows to Mobilize International Support for Gaza",
            "lastmod": None,
        }
    ]


def test_section_listing_paginates_up_to_the_limit(spider: AlmasirahSpider) -> None:
    out = requests(spider.parse_listing(mirror_response(SECTION)))
    articles = [r.meta[META_ARTICLE_KEY] for r in out if r.callback == spider.parse_article]
    pages = [(r.url, r.cb_kwargs) for r in out if r.callback == spider.parse_listing]
    assert articles == ["53210", "52990", "37588"]
    assert pages == [(f"{SECTION}?page=2", {"page": 2})]
    page2 = requests(spider.parse_listing(mirror_response(f"{SECTION}?page=2"), page=2))
    assert [r.url for r in page2] == [OLD_PATH]  # and no request for page 3


def test_an_article_found_on_two_hosts_is_requested_once(spider: AlmasirahSpider) -> None:
    from_feed = requests(spider.parse_feed(mirror_response(FEED)))
    from_home = requests(spider.parse_listing(mirror_response(HOME)))
    keys = [r.meta[META_ARTICLE_KEY] for r in from_feed + from_home]
    assert sorted(keys) == ["52990", "53190", "53204", "53210"]
    sample = next(r for r in from_feed if r.meta[META_ARTICLE_KEY] == "53210")
    assert sample.url == SAMPLE_000_ALIAS
    assert [(d["via"], d["source"]) for d in sample.meta[META_DISCOVERY]] == [
        ("feed", FEED),
        ("listing", HOME),
    ]


# ------------------------------------------------------------------ article pages


def test_parse_article_yields_one_item(spider: AlmasirahSpider) -> None:
    request = Request(SAMPLE_000, meta={META_ARTICLE_KEY: "53210", META_DISCOVERY: []})
    (item,) = spider.parse_article(mirror_response(SAMPLE_000, request))
    assert isinstance(item, ArticlePage)
    assert (item.site, item.article_id, item.url) == ("almasirah", "53210", SAMPLE_000)
    assert "Pezeshkian" in item.html


@pytest.mark.parametrize(
    "url",
    [VIDEO, HOME, SECTION, f"{SECTION}?page=2", f"{Y}/tag/Gaza"],
)
def test_non_article_pages_give_no_item(spider: AlmasirahSpider, url: str) -> None:
    assert list(spider.parse_article(mirror_response(url))) == []
    assert stats(spider)["archive/skipped/not-article"] == 1


@pytest.mark.parametrize(
    ("name", "is_article"),
    [
        ("post-53210.html", True),
        ("post-37588.html", True),
        ("post-53204.html", True),
        ("news-37502.html", True),
        ("post-53190.html", False),
        ("index.html", False),
        ("tag-gaza.html", False),
        ("section-1.html", False),
    ],
)
def test_is_article_page_reads_og_type(name: str, is_article: bool) -> None:
    response = HtmlResponse(url=f"{M}/post/1/x", body=(SITE_DIR / name).read_bytes())
    assert AlmasirahSpider().is_article_page(response) is is_article


def test_a_page_without_og_type_counts_as_an_article() -> None:
    response = HtmlResponse(url=f"{M}/post/1/x", body=b"<html><body><p>x</p></body></html>")
    assert AlmasirahSpider().is_article_page(response)


# ------------------------------------------------------------------ extraction


@pytest.mark.parametrize(
    ("name", "url", "expected", "tags", "published"),
    [
        (
            "post-53210.html",
            SAMPLE_000,
            "000_02c3192fcde76f36.txt",
            ("Iran", "Gaza"),
            "2025-06-11T19:40:00+03:00",
        ),
        (
            "post-37588.html",
            SAMPLE_003,
            "003_6cbe9dcc7c9c0c4b.txt",
            ("Iraq", "Iran", "Palestine", "Israel"),
            "2024-04-10T11:05:00+03:00",
        ),
    ],
)
def test_samples_extract_byte_exact(
    name: str, url: str, expected: str, tags: tuple[str, ...], published: str
) -> None:
    html = (SITE_DIR / name).read_bytes()
    article = extract_article(html, url, RULES)
    assert article.text.encode("utf-8") == expected_text(expected)
    assert article.extractor == "rules"
    assert article.tags == tags
    assert article.published is not None and article.published.isoformat() == published
    assert article.section == "Middle East"
    assert article.warnings == ()
    # what the rules keep out: a naive reading of every <p> gets the chrome
    every_p = " ".join(Selector(text=html.decode()).css("p ::text").getall())
    assert every_p.count(BOILERPLATE) == 2
    for chrome in ("Contact Us", "About Us", "#Iran", "copyright by Almasirah"):
        assert chrome in every_p
        assert chrome not in article.text
    assert BOILERPLATE not in article.text
    assert "about 2 days" not in article.text.lower()
    assert "about 3 months" not in article.text.lower()
    assert "Close gallery" not in article.text


def test_the_subheading_and_the_source_line_stay() -> None:
    article = extract_article((SITE_DIR / "post-37588.html").read_bytes(), SAMPLE_003, RULES)
    assert "Gaza ‘most important’ issue in Muslim world" in article.paragraphs
    assert article.paragraphs[0].startswith("News - Middle East: Iran and Iraq")
    assert article.paragraphs[-1] == "Source: Press TV"


def test_an_article_without_a_date_is_extracted_with_a_warning() -> None:
    article = extract_article((SITE_DIR / "post-53204.html").read_bytes(), NO_DATE, RULES)
    assert article.published is None
    assert article.warnings == ("no published date",)
    assert article.title == "Sana'a Hosts Conference on Rebuilding Hodeidah Port"
    assert article.paragraphs[-1] == "Source: Saba"
    assert article.tags == ("Yemen", "Hodeidah")


@pytest.mark.parametrize(
    "line",
    ["#Iran #Gaza about 2 days", "#Iraq #Iran About 3 months", "#Yemen", "about 2 days", "3 hours"],
)
def test_hashtag_and_age_lines_are_dropped_even_inside_a_paragraph(line: str) -> None:
    html = (
        f"<html><head><meta property='og:title' content='T'></head><body>"
        f"<div class='post-content'><p>Body text.</p><p>{line}</p><p>{BOILERPLATE}.</p>"
        f"</div></body></html>"
    )
    assert extract_article(html, SAMPLE_000, RULES).paragraphs == ("Body text.",)


# ------------------------------------------------------------------ a crawl through the mirror


@dataclass
class MirrorCrawl:
    result: CrawlResult
    store: Path
    requests: list[MirrorRequest]


@pytest.fixture(scope="module")
def crawl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MirrorCrawl]:
    work = tmp_path_factory.mktemp("almasirah-crawl")
    store = work / "store"
    with MirrorServer([SITE_DIR]) as mirror:
        result = run_crawl(
            "spiders.almasirah:AlmasirahSpider",
            work / "result.json",
            settings={"ARCHIVE_STORE_URI": str(store), "ARCHIVE_PROXY": mirror.proxy_url},
        )
        yield MirrorCrawl(result, store, mirror.requests)


def sidecars(store: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(store.glob("text/almasirah/*/*/*/*.json")):
        data = json.loads(path.read_text())
        out[data["article_id"]] = data
    return out


def test_the_crawl_archives_each_article_once(crawl: MirrorCrawl) -> None:
    assert crawl.result.exit_code == 0, crawl.result.stderr[-3000:]
    report = crawl.result.report
    assert report["articles"]["new"] == len(ARTICLES)
    assert report["articles"]["failed"] == 0
    assert set(sidecars(crawl.store)) == ARTICLES
    assert len(list(crawl.store.glob("text/almasirah/*/*/*/*.txt"))) == len(ARTICLES)
    # the video post was fetched and skipped; the withdrawn post was stopped by robots.txt
    assert report["skipped"] == {"not-article": 1, "download-error/IgnoreRequest": 1}


def test_the_crawl_fetches_each_post_once_and_never_a_disallowed_path(
    crawl: MirrorCrawl,
) -> None:
    paths = [r.path for r in crawl.requests if r.method == "GET"]
    for post in (*ARTICLES, "53190"):
        fetched = [p for p in paths if f"/{post}/" in p]
        assert len(fetched) == 1, (post, fetched)
    assert not [p for p in paths if p.startswith("/post/52990/")]
    assert "/section/1/News?page=3" not in paths
    assert "/tag/Gaza" not in paths
    robots = [r.url for r in crawl.requests if r.path == "/robots.txt"]
    assert len(robots) == len(set(robots)) >= 2


def test_the_crawl_writes_the_sample_texts_and_their_metadata(crawl: MirrorCrawl) -> None:
    cars = sidecars(crawl.store)
    for post, expected in (
        ("53210", "000_02c3192fcde76f36.txt"),
        ("37588", "003_6cbe9dcc7c9c0c4b.txt"),
    ):
        (text,) = crawl.store.glob(f"text/almasirah/*/*/*/{post}.txt")
        assert text.read_bytes() == expected_text(expected)
    assert cars["53210"]["tags"] == ["Iran", "Gaza"]
    assert cars["53210"]["published"] == "2025-06-11T19:40:00+03:00"
    assert cars["37588"]["tags"] == ["Iraq", "Iran", "Palestine", "Israel"]
    assert cars["37588"]["published"] == "2024-04-10T11:05:00+03:00"
    # The page gives no date: the feed's is taken, and said to be the feed's.
    feed = [d for d in cars["53204"]["discovery"] if d["via"] == "feed"]
    if feed:
        assert cars["53204"]["published"] == "2025-02-02T10:10:00+03:00"
        assert cars["53204"]["published_from"] == "feed"
        assert cars["53204"]["warnings"] == [
            "no published date",
            "published date from the feed https://english.masirahtv.net/rss.php",
        ]
    else:
        assert cars["53204"]["published"] is None
        assert cars["53204"]["warnings"] == ["no published date"]
    assert cars["53210"]["published_from"] == "page"
    # which channel found it first depends on response order; never anything else
    vias = {d["via"] for d in cars["53210"]["discovery"]}
    assert vias and vias <= {"feed", "listing"}
