"""president.ir English spider: URL keys, listing callbacks on the mirror's pages, one crawl."""

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
from crawler.store.base import LocalStore
from crawler.text.extract import extract_article
from spiders.president import RULES, PresidentSpider, article_key
from tests.conftest import CHROMIUM, expected_text, mirror_file, require_program
from tests.crawl_helper import NO_WINDOW, CrawlResult, mirror_settings, run_crawl
from tests.spider_helpers import collect as _collect
from tests.spider_helpers import requests, site_response, stats

H = "https://president.ir"
HOME = f"{H}/en/"
ARCHIVE = f"{H}/en/archive"
ARCHIVE_PAGE_2 = f"{H}/en/archive/page/2"
LEGACY = f"{H}/en/?ArtID=21904"  # disallowed by robots.txt
CABINET = f"{H}/en/president/cabinet"
GALLERY = f"{H}/en/158860"
SAMPLE_ID = "158877"
SAMPLE_URL = f"{H}/en/{SAMPLE_ID}"
NO_DATE_ID = "158902"
ARTICLES = {SAMPLE_ID, "158880", "158891", "158850", NO_DATE_ID}
SAMPLE_002 = "002_93a6c316173974e2.txt"
ROUTES: dict[str, Route] = {route.url: route for route in load_site(SITES_DIR / "president").routes}


def mirror_response(url: str, request: Request | None = None) -> Response:
    """The page as Chromium shows it once rendered: the mirror serves a JavaScript shell
    (``<name>.shell.html``) whose body a script fills in; ``<name>.html`` is the result."""
    source = ROUTES[url].source
    assert source is not None and source.name.endswith(".shell.html")
    rendered = mirror_file("president", source.name.replace(".shell.html", ".html"))
    return site_response(ROUTES, url, request, body=rendered)


def article_request(url: str, key: str) -> Request:
    return Request(url, meta={META_ARTICLE_KEY: key, META_DISCOVERY: [{"via": "listing"}]})


@pytest.fixture
def spider() -> PresidentSpider:
    return PresidentSpider.from_crawler(get_crawler(PresidentSpider, NO_WINDOW))


# ------------------------------------------------------------------ URL heuristics

ARTICLE_KEYS: list[tuple[str, str | None]] = [
    (SAMPLE_URL, SAMPLE_ID),
    (f"{H}/en/164932", "164932"),
    (f"{SAMPLE_URL}/", SAMPLE_ID),
    (f"https://www.president.ir/en/{SAMPLE_ID}", SAMPLE_ID),
    (f"http://president.ir/en/{SAMPLE_ID}", SAMPLE_ID),
    (f"HTTPS://President.IR/en/{SAMPLE_ID}", SAMPLE_ID),
    (f"{SAMPLE_URL}#top", SAMPLE_ID),
    (f"  {SAMPLE_URL}\n", SAMPLE_ID),
    (f"{SAMPLE_URL}?utm_source=twitter", SAMPLE_ID),
    # the legacy form gives the same key
    (f"http://www.president.ir/en/?ArtID={SAMPLE_ID}", SAMPLE_ID),
    (f"{H}/en/?ArtID=21904", "21904"),
    (f"{H}/en/?artid=10114", "10114"),
    (f"{H}/en?ArtID=10114", "10114"),
    (f"{H}/en/default.aspx?ArtID=10114", "10114"),
    (f"{H}/en/?ArtID=10114&utm_medium=rss", "10114"),
    (f"{H}/en/?ArtID=010114", "10114"),
    # broken legacy forms
    (f"{H}/en/?ArtID=", None),
    (f"{H}/en/?ArtID=abc", None),
    (f"{H}/en/?ArtID=0", None),
    (f"{H}/en/?ArtID=1&ArtID=2", None),
    (f"{H}/en/?ArtID=1&print=1", None),
    (f"{H}/fa/?ArtID=10114", None),
    (f"{H}/en/{SAMPLE_ID}?ArtID=1", None),
    (f"{H}/en/?ArtID=\u0661\u0662", None),  # Arabic-Indic digits
    # other languages, pages and listings
    (f"{H}/fa/{SAMPLE_ID}", None),
    (f"{H}/ar/{SAMPLE_ID}", None),
    (f"{H}/en/{SAMPLE_ID}?page=2", None),
    (f"{H}/en/0", None),
    (f"{H}/en/1234567890", None),
    (f"{H}/en/{SAMPLE_ID}/photos", None),
    (HOME, None),
    (f"{H}/en", None),
    (H, None),
    (ARCHIVE, None),
    (ARCHIVE_PAGE_2, None),
    (CABINET, None),
    (f"{H}/en/president", None),
    (f"{H}/en/rss", None),
    (f"{H}/en/search?q=gaza", None),
    (f"{H}/en/print/{SAMPLE_ID}", None),
    (f"{H}/robots.txt", None),
    (f"{H}/Content/images/news/{SAMPLE_ID}.jpg", None),
    # other hosts and schemes
    (f"https://president.ir.example.net/en/{SAMPLE_ID}", None),
    (f"https://media.president.ir/en/{SAMPLE_ID}", None),
    (f"ftp://president.ir/en/{SAMPLE_ID}", None),
    ("", None),
    ("not a url", None),
]


@pytest.mark.parametrize(("url", "key"), ARTICLE_KEYS)
def test_article_key(url: str, key: str | None) -> None:
    assert article_key(url) == key


def test_the_spider_method_is_the_module_function() -> None:
    spider = PresidentSpider()
    for url, key in ARTICLE_KEYS:
        assert spider.article_key(url) == key


# ------------------------------------------------------------------ discovery


def test_start_yields_the_listings(spider: PresidentSpider) -> None:
    started = asyncio.run(_collect(spider.start()))
    assert [r.url for r in started] == [HOME, ARCHIVE]
    assert all(r.callback == spider.parse_listing for r in started)
    assert all(r.cb_kwargs == {"page": 1} for r in started)


def test_the_homepage_gives_its_news_and_the_legacy_link(spider: PresidentSpider) -> None:
    out = requests(spider.parse_listing(mirror_response(HOME)))
    assert [r.url for r in out] == [SAMPLE_URL, f"{H}/en/158880", GALLERY, LEGACY]
    assert all(r.callback == spider.parse_article for r in out)
    assert [r.meta[META_ARTICLE_KEY] for r in out] == [SAMPLE_ID, "158880", "158860", "21904"]
    assert out[0].meta[META_DISCOVERY] == [
        {
            "via": "listing",
            "source": HOME,
            "published": None,
            "title": (
                "Pezeshkian: Iran will use all diplomatic and political capacities to halt "
                "Zionist crimes in Gaza"
            ),
            "lastmod": None,
        }
    ]


def test_the_archive_paginates(spider: PresidentSpider) -> None:
    first = requests(spider.parse_listing(mirror_response(ARCHIVE)))
    articles = [r.meta[META_ARTICLE_KEY] for r in first if r.callback == spider.parse_article]
    assert articles == [NO_DATE_ID, "158891", SAMPLE_ID]
    pages = [r for r in first if r.callback == spider.parse_listing]
    assert [(r.url, r.cb_kwargs) for r in pages] == [(ARCHIVE_PAGE_2, {"page": 2})]
    second = requests(spider.parse_listing(mirror_response(ARCHIVE_PAGE_2), page=2))
    assert [r.meta[META_ARTICLE_KEY] for r in second] == ["158880", "158850"]
    assert all(r.callback == spider.parse_article for r in second)  # the last page


def test_both_listings_cover_every_article_once(spider: PresidentSpider) -> None:
    out = requests(spider.parse_listing(mirror_response(HOME)))
    out += requests(spider.parse_listing(mirror_response(ARCHIVE)))
    out += requests(spider.parse_listing(mirror_response(ARCHIVE_PAGE_2), page=2))
    keys = [r.meta[META_ARTICLE_KEY] for r in out if r.callback == spider.parse_article]
    assert sorted(keys) == sorted(ARTICLES | {"158860", "21904"})


# ------------------------------------------------------------------ article pages


def test_parse_article_yields_the_item(spider: PresidentSpider) -> None:
    response = mirror_response(SAMPLE_URL, article_request(SAMPLE_URL, SAMPLE_ID))
    (item,) = spider.parse_article(response)
    assert isinstance(item, ArticlePage)
    assert (item.site, item.article_id, item.url) == ("president", SAMPLE_ID, SAMPLE_URL)
    assert item.html == response.text


@pytest.mark.parametrize("url", [GALLERY, CABINET, HOME, ARCHIVE, ARCHIVE_PAGE_2])
def test_gallery_cabinet_and_listing_pages_give_no_item(spider: PresidentSpider, url: str) -> None:
    assert list(spider.parse_article(mirror_response(url, article_request(url, "x")))) == []
    assert stats(spider)["archive/skipped/not-article"] == 1


@pytest.mark.parametrize(
    ("name", "is_article"),
    [
        ("en-158877.html", True),
        ("en-158880.html", True),
        ("en-158891.html", True),
        ("en-158850.html", True),
        ("en-158902.html", True),
        ("en-158860.html", False),
        ("en-president-cabinet.html", False),
        ("en-index.html", False),
        ("en-archive.html", False),
        ("404.html", False),
    ],
)
def test_is_article_page_reads_the_body_class(name: str, is_article: bool) -> None:
    response = HtmlResponse(url=SAMPLE_URL, body=mirror_file("president", name), encoding="utf-8")
    assert PresidentSpider().is_article_page(response) is is_article


# ------------------------------------------------------------------ extraction


def test_sample_002_is_extracted_byte_exact() -> None:
    article = extract_article(mirror_file("president", "en-158877.html"), SAMPLE_URL, RULES)
    assert article.text.encode("utf-8") == expected_text(SAMPLE_002)
    assert article.extractor == "rules"
    assert article.warnings == ()


def test_sample_002_metadata() -> None:
    article = extract_article(mirror_file("president", "en-158877.html"), SAMPLE_URL, RULES)
    assert article.published is not None
    assert article.published.date().isoformat() == "2025-06-12"
    assert article.published.isoformat() == "2025-06-12T00:00:00+03:30"
    assert article.tags == ("Palestine", "Gaza")
    assert "date" not in article.paragraphs[0]
    for chrome in ("Print", "Share", "News code", "Related news", "Contact Us"):
        assert chrome not in article.text


def test_an_article_without_a_date_is_archived_with_a_warning() -> None:
    page = mirror_file("president", "en-158902.html")
    article = extract_article(page, f"{H}/en/{NO_DATE_ID}", RULES)
    assert article.published is None
    assert article.warnings == ("no published date",)
    assert article.title == "President’s message to the International Quds Conference"


# ------------------------------------------------------------------ a crawl through the mirror


@dataclass(frozen=True)
class Crawl:
    result: CrawlResult
    requests: list[MirrorRequest]
    store: LocalStore

    @property
    def fetched(self) -> list[str]:
        """The pages asked for: plain requests and the browser's navigations, not the
        scripts, styles, images and JSON the rendered pages load."""
        return [
            r.url
            for r in self.requests
            if r.method == "GET" and r.header("Sec-Fetch-Dest") in (None, "document")
        ]

    def sidecars(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for key in self.store.list("text/president/"):
            if key.endswith(".json"):
                data = json.loads(self.store.get_bytes(key))
                assert data["article_id"] not in out, f"{data['article_id']} archived twice"
                out[data["article_id"]] = data
        return out


@pytest.fixture(scope="module")
def crawl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crawl]:
    work: Path = tmp_path_factory.mktemp("president-crawl")
    require_program(CHROMIUM, "Chromium", "apt-get install chromium")
    with MirrorServer([SITES_DIR / "president"]) as mirror:
        result = run_crawl(
            "spiders.president:PresidentSpider",
            work / "result.json",
            settings={"ARCHIVE_STORE_URI": str(work / "store"), **mirror_settings(mirror)},
        )
        yield Crawl(result, mirror.requests, LocalStore(work / "store"))


def test_the_crawl_archives_each_article_once(crawl: Crawl) -> None:
    assert crawl.result.exit_code == 0, crawl.result.stderr[-3000:]
    assert crawl.result.report["articles"]["new"] == len(ARTICLES)
    assert crawl.result.report["articles"]["failed"] == 0
    assert set(crawl.sidecars()) == ARTICLES
    for key in ARTICLES:
        assert crawl.fetched.count(f"{H}/en/{key}") == 1
    assert crawl.fetched.count(ARCHIVE_PAGE_2) == 1


def test_the_crawl_writes_sample_002_and_its_metadata(crawl: Crawl) -> None:
    sidecars = crawl.sidecars()
    sample = sidecars[SAMPLE_ID]
    assert crawl.store.get_bytes(sample["text_key"]) == expected_text(SAMPLE_002)
    assert sample["article_id"] == SAMPLE_ID
    assert sample["published"] == "2025-06-12T00:00:00+03:30"
    assert sample["warnings"] == []
    assert sidecars[NO_DATE_ID]["published"] is None
    assert sidecars[NO_DATE_ID]["warnings"] == ["no published date"]


def test_the_crawl_skips_non_articles_and_never_asks_for_disallowed_pages(crawl: Crawl) -> None:
    assert crawl.result.report["skipped"]["not-article"] == 1  # the photo gallery
    assert crawl.fetched.count(GALLERY) == 1
    assert crawl.fetched.count(f"{H}/robots.txt") == 1
    assert LEGACY not in crawl.fetched
    assert not any("?" in url for url in crawl.fetched)
    assert crawl.result.stats["robotstxt/forbidden"] == 1
    assert CABINET not in crawl.fetched  # linked from every page, but not an article
