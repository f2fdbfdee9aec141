"""IRNA English spider: URL keys, callbacks fed with the mirror's saved pages, and one crawl."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
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
from spiders.irna import RULES, IrnaSpider, article_key
from tests.conftest import CHROMIUM, expected_text, mirror_file, require_program
from tests.crawl_helper import NO_WINDOW, CrawlResult, mirror_settings, run_crawl
from tests.spider_helpers import collect as _collect
from tests.spider_helpers import requests, site_response, stats

H = "https://en.irna.ir"
FEED = f"{H}/rss"
SITEMAP = f"{H}/sitemap/news/sitemap.xml"
ARCHIVE = f"{H}/archive"
ARCHIVE_PAGE_2 = f"{H}/archive?pi=2"  # disallowed by robots.txt
SAMPLE_ID = "85859288"
SAMPLE_SLUG = "Pezeshkian-urges-Islamic-unity-to-support-Palestinians-and"
SAMPLE_URL = f"{H}/news/{SAMPLE_ID}/{SAMPLE_SLUG}"
OMAN_URL = f"{H}/news/85859410/Iran-Oman-discuss-expansion-of-economic-ties"
BISHKEK_URL = f"{H}/news/85859533/Iranian-wrestlers-win-Asian-junior-title-in-Bishkek"
NO_DATE_URL = f"{H}/news/85859601/Tehran-book-fair-draws-record-attendance"
PHOTO_URL = f"{H}/news/85859350/Photos-Tehran-hosts-Islamic-unity-conference"
VIDEO_URL = f"{H}/news/85859377/Video-Persian-Gulf-fishermen-prepare-for-new-season"
AUDIO_URL = f"{H}/news/85859388/Audio-Weekly-news-roundup"
TAG_URL = f"{H}/tag/Gaza"
ARTICLES = {SAMPLE_ID, "85859410", "85859533", "85859601"}
NOT_ARTICLES = {"85859350", "85859377", "85859388"}  # photo, video, audio items
SAMPLE_001 = "001_89df22862bce6eb6.txt"
ROUTES: dict[str, Route] = {route.url: route for route in load_site(SITES_DIR / "irna").routes}


def mirror_response(
    url: str, request: Request | None = None, *, body: bytes | None = None
) -> Response:
    return site_response(ROUTES, url, request, body=body)


def article_request(url: str, key: str, *, redirected_from: str | None = None) -> Request:
    meta: dict[str, Any] = {META_ARTICLE_KEY: key, META_DISCOVERY: [{"via": "feed"}]}
    if redirected_from:
        meta["redirect_urls"] = [redirected_from]
    return Request(url, meta=meta)


@pytest.fixture
def spider() -> IrnaSpider:
    return IrnaSpider.from_crawler(get_crawler(IrnaSpider, NO_WINDOW))


def keys(out: Iterable[Request]) -> list[str]:
    return [r.meta[META_ARTICLE_KEY] for r in out if META_ARTICLE_KEY in r.meta]


# ------------------------------------------------------------------ URL heuristics

ARTICLE_KEYS: list[tuple[str, str | None]] = [
    # the slugged URL the feed, the sitemap and the site give, and the bare form cited elsewhere
    (SAMPLE_URL, SAMPLE_ID),
    (f"{H}/news/{SAMPLE_ID}", SAMPLE_ID),
    (f"{H}/news/{SAMPLE_ID}/", SAMPLE_ID),
    (f"{H}/news/86266841/Iran-strongly-rejects-membership-of-US-to-IAEA-BoG", "86266841"),
    (f"{H}/news/83425999/FM-congratulates-IRNA-s-85th-birthday", "83425999"),
    # a slug truncated at another length, or another slug, is the same item
    (f"{H}/news/{SAMPLE_ID}/Pezeshkian-urges-Islamic-unity", SAMPLE_ID),
    (f"{H}/news/{SAMPLE_ID}/x", SAMPLE_ID),
    # scheme, host case, fragment, whitespace and tracking parameters change nothing
    (f"http://en.irna.ir/news/{SAMPLE_ID}/{SAMPLE_SLUG}", SAMPLE_ID),
    (f"HTTPS://EN.IRNA.IR/news/{SAMPLE_ID}/{SAMPLE_SLUG}", SAMPLE_ID),
    (f"{SAMPLE_URL}#comments", SAMPLE_ID),
    (f"  {SAMPLE_URL}\n", SAMPLE_ID),
    (f"{SAMPLE_URL}?utm_source=rss&utm_medium=feed", SAMPLE_ID),
    # a nine-digit id (the id space will get there)
    (f"{H}/news/123456789/Slug", "123456789"),
    # other query strings, sub-pages and id shapes
    (f"{SAMPLE_URL}?pi=2", None),
    (f"{H}/news/{SAMPLE_ID}/{SAMPLE_SLUG}/amp", None),
    (f"{H}/news/1234567/Seven-digits", None),
    (f"{H}/news/1234567890/Ten-digits", None),
    (f"{H}/news/abc/Slug", None),
    (f"{H}/news/", None),
    (f"{H}/amp/{SAMPLE_ID}/{SAMPLE_SLUG}", None),
    (f"{H}/print/{SAMPLE_ID}", None),
    # listings, tags, feeds, sitemaps, files
    (f"{H}/", None),
    (H, None),
    (ARCHIVE, None),
    (ARCHIVE_PAGE_2, None),
    (TAG_URL, None),
    (f"{H}/service/Politics", None),
    (FEED, None),
    (f"{H}/rss/home", None),
    (SITEMAP, None),
    (f"{H}/robots.txt", None),
    (f"{H}/d/2025/06/11/4/171283456.jpg", None),
    (f"{H}/page/archive.xhtml", None),
    # the other IRNA services share the id space but are other sites
    (f"https://www.irna.ir/news/{SAMPLE_ID}/x", None),
    (f"https://ar.irna.ir/news/{SAMPLE_ID}/x", None),
    (f"https://irna.ir/news/{SAMPLE_ID}/x", None),
    (f"https://en.irna.ir.example.net/news/{SAMPLE_ID}/x", None),
    (f"ftp://en.irna.ir/news/{SAMPLE_ID}/x", None),
    ("", None),
    ("not a url", None),
]


@pytest.mark.parametrize(("url", "key"), ARTICLE_KEYS)
def test_article_key(url: str, key: str | None) -> None:
    assert article_key(url) == key


def test_the_spider_method_is_the_module_function() -> None:
    spider = IrnaSpider()
    for url, key in ARTICLE_KEYS:
        assert spider.article_key(url) == key


# ------------------------------------------------------------------ discovery


def test_start_yields_the_feed_the_sitemap_and_the_archive(spider: IrnaSpider) -> None:
    started = asyncio.run(_collect(spider.start()))
    assert [r.url for r in started] == [FEED, SITEMAP, ARCHIVE]
    assert [r.callback for r in started] == [
        spider.parse_feed,
        spider.parse_sitemap,
        spider.parse_listing,
    ]


def test_the_feed_gives_its_items_with_provenance(spider: IrnaSpider) -> None:
    out = requests(spider.parse_feed(mirror_response(FEED)))
    assert [r.url for r in out] == [NO_DATE_URL, VIDEO_URL, OMAN_URL, SAMPLE_URL]
    sample = out[3]
    assert sample.callback == spider.parse_article
    assert sample.meta[META_DISCOVERY] == [
        {
            "via": "feed",
            "source": FEED,
            "published": "2025-06-11T15:46:00+00:00",
            "title": "Pezeshkian urges Islamic unity to support Palestinians and counter Israel",
            "lastmod": None,
        }
    ]


def test_the_news_sitemap_gives_lastmod_and_google_news_fields(spider: IrnaSpider) -> None:
    out = requests(spider.parse_sitemap(mirror_response(SITEMAP)))
    assert keys(out) == ["85859388", "85859410", SAMPLE_ID, "85859350"]
    sample = out[2]
    assert sample.url == SAMPLE_URL
    assert sample.meta[META_DISCOVERY] == [
        {
            "via": "sitemap",
            "source": SITEMAP,
            "published": "2025-06-11T15:46:00+00:00",
            "title": "Pezeshkian urges Islamic unity to support Palestinians and counter Israel",
            "lastmod": "2025-06-11T15:46:00+00:00",
        }
    ]


def test_the_archive_gives_news_items_only_and_asks_for_the_next_page(
    spider: IrnaSpider,
) -> None:
    out = requests(spider.parse_listing(mirror_response(ARCHIVE)))
    articles = [r for r in out if r.callback == spider.parse_article]
    pages = [r for r in out if r.callback == spider.parse_listing]
    # li.audio and li.photo items are not followed; bare /news/<id> links are
    assert [r.url for r in articles] == [f"{H}/news/85859533", OMAN_URL, f"{H}/news/{SAMPLE_ID}"]
    assert keys(articles) == ["85859533", "85859410", SAMPLE_ID]
    assert articles[0].meta[META_DISCOVERY][0]["title"] == (
        "Iranian wrestlers win Asian junior title in Bishkek"
    )
    assert [(r.url, r.cb_kwargs) for r in pages] == [(ARCHIVE_PAGE_2, {"page": 2})]
    last = requests(spider.parse_listing(mirror_response(ARCHIVE), page=2))
    assert all(r.callback == spider.parse_article for r in last)


def test_an_item_with_and_without_its_slug_is_requested_once(spider: IrnaSpider) -> None:
    from_feed = requests(spider.parse_feed(mirror_response(FEED)))
    from_sitemap = requests(spider.parse_sitemap(mirror_response(SITEMAP)))
    from_archive = requests(spider.parse_listing(mirror_response(ARCHIVE)))
    article_keys = keys(from_feed + from_sitemap + from_archive)
    assert sorted(article_keys) == sorted(ARTICLES | NOT_ARTICLES)
    sample = next(r for r in from_feed if r.meta[META_ARTICLE_KEY] == SAMPLE_ID)
    assert [(d["via"], d["source"]) for d in sample.meta[META_DISCOVERY]] == [
        ("feed", FEED),
        ("sitemap", SITEMAP),
        ("listing", ARCHIVE),
    ]


# ------------------------------------------------------------------ article pages


def test_parse_article_yields_the_item(spider: IrnaSpider) -> None:
    response = mirror_response(SAMPLE_URL, article_request(SAMPLE_URL, SAMPLE_ID))
    (item,) = spider.parse_article(response)
    assert isinstance(item, ArticlePage)
    assert (item.site, item.article_id, item.url, item.status) == (
        "irna",
        SAMPLE_ID,
        SAMPLE_URL,
        200,
    )
    assert item.html == response.text


def test_the_bare_url_redirects_and_keeps_the_first_url(spider: IrnaSpider) -> None:
    bare = f"{H}/news/85859533"
    assert ROUTES[bare].redirect == BISHKEK_URL
    request = article_request(BISHKEK_URL, "85859533", redirected_from=bare)
    (item,) = spider.parse_article(mirror_response(BISHKEK_URL, request))
    assert (item.article_id, item.url, item.request_url) == ("85859533", BISHKEK_URL, bare)


@pytest.mark.parametrize("url", [PHOTO_URL, VIDEO_URL, AUDIO_URL, TAG_URL, ARCHIVE])
def test_media_items_tag_and_listing_pages_give_no_item(spider: IrnaSpider, url: str) -> None:
    out = list(spider.parse_article(mirror_response(url, article_request(url, "x"))))
    assert out == []
    assert stats(spider)["archive/skipped/not-article"] == 1


@pytest.mark.parametrize(
    ("name", "is_article"),
    [
        ("news-85859288.html", True),
        ("news-85859410.html", True),
        ("news-85859533.html", True),
        ("news-85859601.html", True),
        ("news-85859350.html", False),
        ("news-85859377.html", False),
        ("news-85859388.html", False),
        ("tag-Gaza.html", False),
        ("archive.html", False),
        ("404.html", False),
    ],
)
def test_is_article_page_reads_the_item_type(name: str, is_article: bool) -> None:
    response = HtmlResponse(url=SAMPLE_URL, body=mirror_file("irna", name), encoding="utf-8")
    assert IrnaSpider().is_article_page(response) is is_article


# ------------------------------------------------------------------ extraction


def test_sample_001_is_extracted_byte_exact() -> None:
    article = extract_article(mirror_file("irna", "news-85859288.html"), SAMPLE_URL, RULES)
    assert article.text.encode("utf-8") == expected_text(SAMPLE_001)
    assert article.extractor == "rules"
    assert article.warnings == ()


def test_sample_001_metadata() -> None:
    article = extract_article(mirror_file("irna", "news-85859288.html"), SAMPLE_URL, RULES)
    assert (
        article.title == "Pezeshkian urges Islamic unity to support Palestinians and counter Israel"
    )
    assert article.published is not None
    assert article.published.isoformat() == "2025-06-11T19:16:00+03:30"
    # the visible Tehran time and the UTC meta are the same instant
    assert article.published == datetime(2025, 6, 11, 15, 46, tzinfo=UTC)
    assert article.lead is not None and article.lead.startswith("Pezeshkian stressed")
    assert article.paragraphs[0] == article.lead
    assert article.tags == ("Masoud Pezeshkian", "Palestine", "Gaza")
    assert article.section == "Politics"
    caption = (
        "President Masoud Pezeshkian (left) meets Deputy Secretary General of the Popular Front "
        "for the Liberation of Palestine Jamil Mezher in Tehran, June 11, 2025."
    )
    assert article.images == (
        {"src": "https://en.irna.ir/d/2025/06/11/4/171283456.jpg", "caption": caption},
    )
    assert caption not in article.text
    for chrome in ("News ID", "T T", "Persons", "Tags", "Your Comment", "replying", "3266**4353"):
        assert chrome not in article.text


@pytest.mark.parametrize(
    ("visible", "published"),
    [
        # the narrow no-break space before PM (as in sample 001), a no-break space, a plain one
        ("Jun 11, 2025, 7:16\u202fPM", "2025-06-11T19:16:00+03:30"),
        ("Jun 11, 2025, 7:16\u00a0PM", "2025-06-11T19:16:00+03:30"),
        ("Jun 11, 2025, 7:16 PM", "2025-06-11T19:16:00+03:30"),
        ("Jan 2, 2025, 9:05\u202fAM", "2025-01-02T09:05:00+03:30"),
        # no visible date: the UTC meta, same instant as the page's own time
        ("", "2025-06-11T15:46:00+00:00"),
        ("not a date", "2025-06-11T15:46:00+00:00"),
    ],
)
def test_published_is_the_visible_tehran_time(visible: str, published: str) -> None:
    page = mirror_file("irna", "news-85859288.html").decode()
    page = page.replace("<span>Jun 11, 2025, 7:16\u202fPM</span>", f"<span>{visible}</span>")
    article = extract_article(page, SAMPLE_URL, RULES)
    assert article.published is not None
    assert article.published.isoformat() == published


def test_an_item_without_a_date_is_archived_with_a_warning() -> None:
    article = extract_article(mirror_file("irna", "news-85859601.html"), NO_DATE_URL, RULES)
    assert article.published is None
    assert article.warnings == ("no published date",)
    assert article.text.startswith("Tehran book fair draws record attendance\n\n")


def test_every_invented_article_has_its_fields() -> None:
    for name, url, published in [
        ("news-85859410.html", OMAN_URL, "2025-06-11T21:02:00+03:30"),
        ("news-85859533.html", BISHKEK_URL, "2025-06-12T10:25:00+03:30"),
    ]:
        article = extract_article(mirror_file("irna", name), url, RULES)
        assert article.published is not None
        assert article.published.isoformat() == published
        assert article.warnings == ()
        assert article.lead == article.paragraphs[0]
        assert not any("**" in p for p in article.paragraphs)


# ------------------------------------------------------------------ a crawl through the mirror


@dataclass(frozen=True)
class Crawl:
    result: CrawlResult
    requests: list[MirrorRequest]
    store: LocalStore

    @property
    def fetched(self) -> list[str]:
        """The GETs that passed the mirror's cookie challenge (not the one answered by it)."""
        return [
            r.url
            for r in self.requests
            if r.method == "GET" and "__arcsjs=" in (r.header("Cookie") or "")
        ]

    def sidecars(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for key in self.store.list("text/irna/"):
            if key.endswith(".json"):
                data = json.loads(self.store.get_bytes(key))
                assert data["article_id"] not in out, f"{data['article_id']} archived twice"
                out[data["article_id"]] = data
        return out


@pytest.fixture(scope="module")
def crawl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crawl]:
    work: Path = tmp_path_factory.mktemp("irna-crawl")
    require_program(CHROMIUM, "Chromium", "apt-get install chromium")  # solves the challenge
    with MirrorServer([SITES_DIR / "irna"]) as mirror:
        result = run_crawl(
            "spiders.irna:IrnaSpider",
            work / "result.json",
            settings={"ARCHIVE_STORE_URI": str(work / "store"), **mirror_settings(mirror)},
        )
        yield Crawl(result, mirror.requests, LocalStore(work / "store"))


def test_the_crawl_archives_each_article_once(crawl: Crawl) -> None:
    assert crawl.result.exit_code == 0, crawl.result.stderr[-3000:]
    report = crawl.result.report
    assert report["articles"]["new"] == len(ARTICLES)
    assert report["articles"]["failed"] == 0
    sidecars = crawl.sidecars()
    assert set(sidecars) == ARTICLES
    # The sample was found by feed, sitemap and archive, the archive giving its bare URL: one
    # request, which is the bare URL (then its redirect) only if the archive came in first.
    sample_fetches = [u for u in crawl.fetched if u.startswith(f"{H}/news/{SAMPLE_ID}")]
    assert sample_fetches in ([SAMPLE_URL], [f"{H}/news/{SAMPLE_ID}", SAMPLE_URL])
    for key in ARTICLES:
        assert sum(f"/news/{key}/" in url for url in crawl.fetched) == 1


def test_the_crawl_writes_sample_001_and_its_metadata(crawl: Crawl) -> None:
    sidecar = crawl.sidecars()[SAMPLE_ID]
    assert crawl.store.get_bytes(sidecar["text_key"]) == expected_text(SAMPLE_001)
    assert sidecar["article_id"] == SAMPLE_ID
    assert sidecar["published"] == "2025-06-11T19:16:00+03:30"
    assert sidecar["images"][0]["caption"].startswith("President Masoud Pezeshkian (left)")
    assert sidecar["warnings"] == []
    assert {d["via"] for d in sidecar["discovery"]} <= {"feed", "sitemap", "listing"}
    no_date = crawl.sidecars()["85859601"]
    # The page gives no date: the feed's stands in, and the sidecar says whose it is.
    feed = [d for d in no_date["discovery"] if d["via"] == "feed" and d.get("published")]
    if feed:
        assert no_date["published"] == "2025-06-12T07:40:00+00:00"
        assert no_date["published_from"] == "feed"
        assert no_date["warnings"] == [
            "no published date",
            f"published date from the feed {feed[0]['source']}",
        ]
    else:
        assert no_date["published"] is None
        assert no_date["warnings"] == ["no published date"]
    bishkek = crawl.sidecars()["85859533"]
    assert (bishkek["request_url"], bishkek["url"]) == (f"{H}/news/85859533", BISHKEK_URL)


def test_the_crawl_skips_media_items_and_never_asks_for_disallowed_pages(crawl: Crawl) -> None:
    assert crawl.result.report["skipped"]["not-article"] == len(NOT_ARTICLES)
    for url in (PHOTO_URL, VIDEO_URL, AUDIO_URL):
        assert crawl.fetched.count(url) == 1
    assert crawl.fetched.count(f"{H}/robots.txt") == 1
    assert ARCHIVE_PAGE_2 not in crawl.fetched
    assert not any("/archive?" in url or "/tag/" in url for url in crawl.fetched)
    assert crawl.result.stats["robotstxt/forbidden"] == 1
    assert crawl.fetched.count(ARCHIVE) == 1


def test_the_crawl_solves_the_challenge_once_and_fetches_the_rest_plainly(crawl: Crawl) -> None:
    assert crawl.result.stats["archive/challenge/solved"] == 1
    # The first request (robots.txt) met the challenge; every other one carried its cookies.
    without = [
        r.url
        for r in crawl.requests
        if r.method == "GET" and "__arcsjs=" not in (r.header("Cookie") or "")
    ]
    assert without == [f"{H}/robots.txt"]
    # Plain HTTP: no rendered page, and the browser asked the mirror for nothing.
    assert "archive/render/pages" not in crawl.result.stats
    assert not [r for r in crawl.requests if r.header("Sec-Fetch-Mode")]
