"""The crawl report names every failed URL: its stage, cause, status and attempts; the site's
health and the reason a crawl failed name the real cause (429, 503, TLS, a loop, a bad page)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from crawler.constants import EXIT_FAILED
from crawler.crawl.config import HealthConfig
from crawler.crawl.report import (
    FailedUrl,
    FailureLog,
    build_report,
    format_summary,
    site_health,
)
from crawler.crawl.runner import crawl_failed
from crawler.crawl.spider import NewsSpider, download_failure
from crawler.mirror.routes import Route
from crawler.mirror.server import MirrorServer
from crawler.text.extract import SiteRules
from tests.crawl_helper import CrawlResult, run_crawl

HOST = "failing.example.test"
TLS_HOST = f"tls.{HOST}"  # answers plain HTTP inside the CONNECT tunnel, where TLS was asked
H = f"https://{HOST}"
_ARTICLE = re.compile(rf"{re.escape(H)}/news/([a-z0-9-]+)/")
ARTICLES = ("one", "two", "three")  # pages without a story: their text extraction fails
MISSING = f"{H}/news/gone/"  # listed, answers 404


class FailingSpider(NewsSpider):
    """Every source broken its own way but one listing; every article page without text."""

    name = "failing"
    allowed_domains: ClassVar[list[str]] = [HOST]
    feeds: ClassVar[tuple[str, ...]] = (f"{H}/feed-429/", f"{H}/feed-503/", f"{H}/feed-bad/")
    sitemaps: ClassVar[tuple[str, ...]] = (
        f"https://{TLS_HOST}/sitemap.xml",
        f"{H}/loop-a.xml",
    )
    listings: ClassVar[tuple[str, ...]] = (f"{H}/latest/",)
    rules: ClassVar[SiteRules] = SiteRules(title=("h1",), body=("div.story",))

    def article_key(self, url: str) -> str | None:
        match = _ARTICLE.fullmatch(url)
        return match.group(1) if match else None


class TlsOnlySpider(FailingSpider):
    """Both sources on the host whose TLS fails: nothing can be discovered."""

    name = "tlsonly"
    allowed_domains: ClassVar[list[str]] = [TLS_HOST]
    feeds: ClassVar[tuple[str, ...]] = ()
    sitemaps: ClassVar[tuple[str, ...]] = (
        f"https://{TLS_HOST}/sitemap.xml",
        f"https://{TLS_HOST}/news-sitemap.xml",
    )
    listings: ClassVar[tuple[str, ...]] = ()


class TlsBrokenMirror(MirrorServer):
    """The mirror, except that TLS_HOST speaks plain HTTP where the client starts TLS."""

    def _connect(self, conn: Any, req: Any) -> bool:
        if req.host != TLS_HOST:
            return bool(super()._connect(conn, req))
        conn.sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        conn.sock.recv(65536)  # the client's TLS hello
        conn.sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        return False  # closed


def add_routes(mirror: MirrorServer) -> None:
    def route(url: str, body: str = "", **kwargs: Any) -> None:
        mirror.add_route(Route(url=url, body=body.encode(), **kwargs))

    route(f"{H}/robots.txt", "User-agent: *\nAllow: /\n", content_type="text/plain")
    route(f"{H}/feed-429/", "<rss/>", fail_times=99, fail_status=429)
    route(f"{H}/feed-503/", "<rss/>", fail_times=99, fail_status=503)
    route(f"{H}/feed-bad/", "<<<not a feed>>> \x01", content_type="application/rss+xml")
    route(f"{H}/loop-a.xml", redirect=f"{H}/loop-b.xml")
    route(f"{H}/loop-b.xml", redirect=f"{H}/loop-a.xml")
    links = "".join(f'<a href="/news/{name}/">{name}</a>' for name in ARTICLES)
    route(
        f"{H}/latest/",
        f'<html><body>{links}<a href="{MISSING}">gone</a></body></html>',
        content_type="text/html; charset=utf-8",
    )
    for name in ARTICLES:
        route(
            f"{H}/news/{name}/",
            f"<html><head><title>{name}</title></head><body><h1>{name}</h1>"
            "<div class='menu'>Home</div></body></html>",
            content_type="text/html; charset=utf-8",
        )


def crawl(spider: str, work: Path) -> CrawlResult:
    with TlsBrokenMirror(sites=[]) as mirror:
        add_routes(mirror)
        return run_crawl(
            f"{__name__}:{spider}",
            work / "result.json",
            settings={
                "ARCHIVE_STORE_URI": str(work / "store"),
                "ARCHIVE_PROXY": mirror.proxy_url,
                "ARCHIVE_RETRY_BACKOFF": "0.1",
            },
        )


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrawlResult]:
    yield crawl("FailingSpider", tmp_path_factory.mktemp("failing"))


def test_every_failed_url_is_listed_with_stage_cause_and_attempts(failing: CrawlResult) -> None:
    assert failing.report["finish_reason"] == "finished", failing.stderr[-3000:]
    failures = failing.report["failures"]
    by_url = {f["url"]: f for f in failures["urls"]}
    assert {u: (f["stage"], f["cause"], f["status"]) for u, f in by_url.items()} == {
        f"{H}/feed-429/": ("discovery", "http-429", 429),
        f"{H}/feed-503/": ("discovery", "http-503", 503),
        f"{H}/feed-bad/": ("discovery", "parse", 200),
        f"https://{TLS_HOST}/sitemap.xml": ("discovery", "tls", None),
        f"{H}/loop-a.xml": ("discovery", "redirect-loop", None),
        MISSING: ("fetch", "http-404", 404),
        **{f"{H}/news/{name}/": ("text", "empty-body", 200) for name in ARTICLES},
    }
    # Retried: 429 and 503 (the server's answer), the TLS failure (a download error).
    for url in (f"{H}/feed-429/", f"{H}/feed-503/", f"https://{TLS_HOST}/sitemap.xml"):
        assert by_url[url]["attempts"] == 3, by_url[url]
    assert by_url[f"{H}/loop-a.xml"]["attempts"] == 1
    assert "SSL" in by_url[f"https://{TLS_HOST}/sitemap.xml"]["error"]
    assert f"{H}/loop-b.xml" in by_url[f"{H}/loop-a.xml"]["error"]
    assert failures["total"] == len(by_url) == 9
    assert failures["not_listed"] == 0
    assert failures["by_stage"] == {"discovery": 5, "fetch": 1, "text": 3}
    assert failures["by_cause"] == {
        "empty-body": 3,
        "http-404": 1,
        "http-429": 1,
        "http-503": 1,
        "parse": 1,
        "redirect-loop": 1,
        "tls": 1,
    }
    assert "failures" not in failing.report["articles"]
    assert failing.report["articles"]["requested"] == 4


def test_sources_failed_are_counted_by_cause(failing: CrawlResult) -> None:
    health = failing.report["health"]
    assert health["sources"] == {"requested": 6, "failed": 5}
    assert health["sources_failed"] == {
        "http-429": 1,
        "http-503": 1,
        "parse": 1,
        "redirect-loop": 1,
        "tls": 1,
    }
    # The skips are counted as before.
    skipped = failing.report["skipped"]
    assert skipped["http-status"] == 3 and skipped["redirect-loop"] == 1
    assert skipped["bad-feed"] == 1


def test_the_reason_names_the_causes_and_the_crawl_fails(failing: CrawlResult) -> None:
    assert failing.exit_code == EXIT_FAILED
    health = failing.report["health"]
    assert health["status"] == "error"
    assert health["problems"] == [
        "4 articles requested, none archived (text empty-body: 3, fetch http-404: 1)"
    ]
    assert crawl_failed(failing.report) == health["problems"][0]
    assert re.search(
        rf"Z ERROR \[failing failing-\S+\] crawler\.crawl\.ledger: site failing: "
        rf"{re.escape(health['problems'][0])}$",
        failing.stderr,
        re.M,
    ), failing.stderr[-2000:]


def test_each_failure_is_logged_once_with_its_url_and_cause(failing: CrawlResult) -> None:
    warnings = [line for line in failing.stderr.splitlines() if "WARNING" in line]

    def logged(url: str, cause: str) -> int:
        return sum(1 for line in warnings if f"Skipped {url} (" in line and cause in line)

    assert logged(f"{H}/feed-429/", "HTTP 429") == 1
    assert logged(f"{H}/feed-503/", "HTTP 503") == 1
    assert logged(f"https://{TLS_HOST}/sitemap.xml", "tls") == 1
    assert logged(f"{H}/loop-a.xml", "redirect-loop") == 1
    assert logged(MISSING, "HTTP 404") == 1
    assert sum(1 for line in warnings if f"Skipped feed {H}/feed-bad/" in line) == 1
    summary = failing.stderr[failing.stderr.index("crawl failing-") :]
    assert "failures: 9 by stage (discovery: 5, text: 3, fetch: 1)" in summary


def test_every_source_failing_is_named_as_the_reason(tmp_path: Path) -> None:
    result = crawl("TlsOnlySpider", tmp_path)
    assert result.exit_code == EXIT_FAILED
    report = result.report
    assert report["health"]["problems"] == ["discovered no article: 2 of 2 sources failed (tls: 2)"]
    assert report["health"]["sources_failed"] == {"tls": 2}
    reason = crawl_failed(report)
    assert reason is not None and reason.endswith(
        "discovered no article: 2 of 2 sources failed (tls: 2)"
    )
    assert {(f["url"], f["cause"], f["attempts"]) for f in report["failures"]["urls"]} == {
        (f"https://{TLS_HOST}/sitemap.xml", "tls", 3),
        (f"https://{TLS_HOST}/news-sitemap.xml", "tls", 3),
    }


# ------------------------------------------------------------------ site health, in figures


def stats(
    *, discovered: int = 0, requested: int = 0, sources: int = 2, **archived: int
) -> dict[str, int]:
    out = {
        "archive/articles/discovered": discovered,
        "archive/articles/requested": requested,
        "archive/sources/requested": sources,
    }
    out.update({f"archive/articles/{k}": v for k, v in archived.items()})
    return out


def log(*failures: tuple[str, str, str]) -> FailureLog:
    out = FailureLog()
    for url, stage, cause in failures:
        out.add(FailedUrl(url, stage, cause))
    return out


def health(numbers: dict[str, int], failures: FailureLog, **skipped: int) -> dict[str, Any]:
    return site_health(numbers, skipped, failures, HealthConfig())


def test_sources_that_answered_but_listed_nothing_keep_the_old_wording() -> None:
    got = health(stats(), log())
    assert got["problems"] == ["discovered no article: its feeds, sitemaps and listings gave none"]
    assert got["sources"] == {"requested": 2, "failed": 0} and got["sources_failed"] == {}


def test_no_article_and_failed_sources_name_the_causes() -> None:
    got = health(stats(), log(("a", "discovery", "tls"), ("b", "discovery", "tls")))
    assert got["problems"] == ["discovered no article: 2 of 2 sources failed (tls: 2)"]
    got = health(stats(), log(("a", "discovery", "http-429")))
    assert got["problems"] == ["discovered no article: 1 of 2 sources failed (http-429: 1)"]


def test_every_source_failed_even_with_revisions_fetched() -> None:
    failures = log(("a", "discovery", "http-503"), ("b", "discovery", "redirect-loop"))
    got = health(stats(discovered=3, requested=3, unchanged=3), failures)
    assert got["problems"] == [
        "every source failed: 2 of 2 sources (http-503: 1, redirect-loop: 1)"
    ]
    assert got["sources_failed"] == {"http-503": 1, "redirect-loop": 1}


def test_articles_requested_and_none_archived() -> None:
    failures = log(
        *[(f"f{i}", "fetch", "http-503") for i in range(4)],
        *[(f"t{i}", "text", "empty-body") for i in range(3)],
    )
    got = health(stats(discovered=7, requested=7), failures)
    assert got["problems"] == [
        "7 articles requested, none archived (fetch http-503: 4, text empty-body: 3)"
    ]


def test_pages_that_are_no_articles_are_listed_but_do_not_fail_the_site() -> None:
    # A later crawl: the articles archived, the gallery page with an article's URL asked again.
    failures = log(("g", "parse", "not-article"))
    got = health(stats(discovered=6, requested=2, sources=1), failures, **{"already-archived": 4})
    assert got["status"] == "ok"
    # Counted against the site only beside real failures.
    failures = log(("g", "parse", "not-article"), ("a", "fetch", "http-503"))
    got = health(stats(discovered=6, requested=2, sources=1), failures)
    assert got["problems"] == [
        "2 articles requested, none archived (fetch http-503: 1, parse not-article: 1)"
    ]


def test_all_already_archived_is_ok() -> None:
    # Discovered, none requested: already archived, outside the window, over max_articles.
    got = health(stats(discovered=10), log(), **{"already-archived": 10})
    assert got["status"] == "ok" and got["problems"] == []


def test_a_304_source_is_no_failure() -> None:
    assert health(stats(sources=1), log(), **{"not-modified": 1})["status"] == "ok"


@pytest.mark.parametrize(
    ("requested", "failed", "problem"),
    [
        (10, 6, "6 of 10 requested articles failed (fetch http-404: 3, parse not-html: 3)"),
        (10, 5, None),  # half is not more than half
        (4, 2, None),  # too few failures to judge
    ],
)
def test_more_than_half_the_articles_failed_at_any_stage(
    requested: int, failed: int, problem: str | None
) -> None:
    failures = log(
        *[
            (f"u{i}", "fetch" if i % 2 else "parse", "http-404" if i % 2 else "not-html")
            for i in range(failed)
        ]
    )
    got = health(stats(discovered=requested, requested=requested, new=requested - failed), failures)
    assert got["problems"] == ([problem] if problem else [])


def test_the_report_lists_at_most_the_cap() -> None:
    failures = FailureLog(limit=3)
    for i in range(5):
        failures.add(FailedUrl(f"https://x.test/{i}", "fetch", "timeout", error="e" * 900))
    report = failures.report()
    assert report["total"] == 5 and report["not_listed"] == 2
    assert [u["url"] for u in report["urls"]] == [f"https://x.test/{i}" for i in range(3)]
    assert len(report["urls"][0]["error"]) == 500
    assert report["by_stage"] == {"fetch": 5} and report["by_cause"] == {"timeout": 5}


def test_the_summary_has_a_failures_line() -> None:
    from datetime import UTC, datetime

    from crawler.crawl.report import CrawlFacts

    facts = CrawlFacts(
        crawl_id="c1",
        site="s",
        store_uri="/tmp/x",
        started=datetime.now(UTC),
        t0=0.0,
        cpu0=0.0,
        health=HealthConfig(),
        failures=log(("a", "discovery", "tls"), ("b", "text", "empty-body")),
    )
    report = build_report(facts, stats(discovered=1, requested=1, new=1), "finished")
    assert "failures: 2 by stage (discovery: 1, text: 1), by cause (empty-body: 1, tls: 1)" in (
        format_summary(report)
    )


# ------------------------------------------------------------------ articles gone last time


def still_gone(url: str, status: int = 404) -> FailedUrl:
    """An article gone (404, 410) at its last answer, asked again at its recheck: gone still."""
    return FailedUrl(url, "fetch", f"http-{status}", status, f"HTTP {status}", gone=True)


def test_an_article_still_gone_at_its_recheck_is_listed_but_does_not_fail_the_site() -> None:
    # A later crawl: the rest archived, the dead link the sitemap keeps listing asked again.
    failures = FailureLog()
    failures.add(still_gone("dead"))
    got = health(stats(discovered=10, requested=1, sources=1), failures, **{"already-archived": 9})
    assert got["status"] == "ok" and got["problems"] == [] and got["still_gone"] == 1
    report = failures.report()
    assert [(u["url"], u["cause"], u["gone"]) for u in report["urls"]] == [
        ("dead", "http-404", True)
    ]
    assert report["total"] == 1 and report["still_gone"] == 1


def test_the_same_404_from_a_url_never_seen_gone_fails_the_site() -> None:
    failures = FailureLog()
    failures.add(FailedUrl("dead", "fetch", "http-404", 404))
    got = health(stats(discovered=10, requested=1, sources=1), failures, **{"already-archived": 9})
    assert got["problems"] == ["1 article requested, none archived (fetch http-404: 1)"]
    assert got["still_gone"] == 0 and failures.report()["urls"][0]["gone"] is False


def test_a_new_dead_url_beside_a_still_gone_one_fails_the_site() -> None:
    failures = FailureLog()
    failures.add(still_gone("old", 410))
    failures.add(FailedUrl("new", "fetch", "http-404", 404))
    got = health(stats(discovered=10, requested=2, sources=1), failures, **{"already-archived": 8})
    assert got["problems"] == ["1 article requested, none archived (fetch http-404: 1)"]
    assert got["still_gone"] == 1
    # The report lists both, and counts them by cause as ever.
    assert failures.report()["by_cause"] == {"http-404": 1, "http-410": 1}


def test_a_layout_change_where_every_new_article_404s_still_fails_the_site() -> None:
    failures = FailureLog()
    for i in range(3):  # the old dead links, gone still
        failures.add(still_gone(f"old{i}"))
    for i in range(5):  # every new article
        failures.add(FailedUrl(f"new{i}", "fetch", "http-404", 404))
    got = health(stats(discovered=8, requested=8), failures)
    assert got["problems"] == ["5 articles requested, none archived (fetch http-404: 5)"]
    # Beside two archived revisions: 5 of the 7 asked that could tell, over half.
    got = health(stats(discovered=10, requested=10, unchanged=2), failures)
    assert got["problems"] == ["5 of 7 requested articles failed (fetch http-404: 5)"]


def test_rechecks_still_gone_do_not_tip_the_failed_share() -> None:
    # 20 dead links asked again beside 10 articles, all archived: no failure of the site.
    failures = FailureLog()
    for i in range(20):
        failures.add(still_gone(f"old{i}"))
    assert health(stats(discovered=30, requested=30, new=10), failures)["status"] == "ok"
    # Three real failures among those 10 are 3 of 10, not 23 of 30.
    for i in range(3):
        failures.add(FailedUrl(f"f{i}", "fetch", "http-503", 503))
    assert health(stats(discovered=30, requested=30, new=7), failures)["status"] == "ok"
    for i in range(3, 6):
        failures.add(FailedUrl(f"f{i}", "fetch", "http-503", 503))
    got = health(stats(discovered=30, requested=30, new=4), failures)
    assert got["problems"] == ["6 of 10 requested articles failed (fetch http-503: 6)"]


def test_the_summary_says_what_is_still_gone() -> None:
    from datetime import UTC, datetime

    from crawler.crawl.report import CrawlFacts

    failures = FailureLog()
    failures.add(still_gone("dead", 410))
    facts = CrawlFacts(
        crawl_id="c1",
        site="s",
        store_uri="/tmp/x",
        started=datetime.now(UTC),
        t0=0.0,
        cpu0=0.0,
        health=HealthConfig(),
        failures=failures,
    )
    figures = {**stats(discovered=3, requested=1), "downloader/response_count": 3}
    report = build_report(facts, figures, "finished")
    assert report["health"]["status"] == "ok"
    assert crawl_failed(report) is None
    assert "failures: 1 by stage (fetch: 1), by cause (http-410: 1); 1 gone at their last " in (
        format_summary(report)
    )


def answer(spider: NewsSpider, request: Any, status: int) -> None:
    """The article request answered ``status``: Scrapy's HttpError to the spider's errback."""
    from scrapy.http import HtmlResponse
    from scrapy.spidermiddlewares.httperror import HttpError
    from twisted.python.failure import Failure

    response = HtmlResponse(request.url, status=status, request=request, body=b"")
    failure = Failure(HttpError(response, "Ignoring non-200 response"))
    failure.request = request  # as Scrapy sets it for an errback
    spider.request_failed(failure)


def test_the_spider_skips_a_gone_article_until_its_recheck_and_marks_the_recheck() -> None:
    from scrapy.utils.test import get_crawler

    from crawler.constants import META_GONE

    crawler = get_crawler(FailingSpider)
    spider = FailingSpider.from_crawler(crawler)
    found: list[FailedUrl] = []
    spider.on_failure = found.append
    # one: gone, not asked yet; two: gone, its recheck due; three: archived, then gone.
    gone = {"one": True, "two": False, "three": True}
    spider.use_catalog(lambda key: key not in ("three", "four"), [], gone)
    assert list(spider._article_request(f"{H}/news/one/", {})) == []
    assert list(spider._article_request(f"{H}/news/one/", {})) == []  # counted once
    assert list(spider._article_request(f"{H}/news/three/", {})) == []
    assert list(spider._article_request(f"{H}/news/four/", {})) == []  # archived
    [recheck] = spider._article_request(f"{H}/news/two/", {})
    [new] = spider._article_request(f"{H}/news/five/", {})
    assert recheck.meta[META_GONE] is True and META_GONE not in new.meta
    got = crawler.stats.get_stats()
    assert got["archive/skipped/gone"] == 2 and got["archive/skipped/already-archived"] == 1
    assert got["archive/articles/requested"] == 2
    # Gone still (404 or 410): marked; a 503 from it, or a 404 from a new URL, are failures.
    answer(spider, recheck, 404)
    answer(spider, recheck, 410)
    answer(spider, recheck, 503)
    answer(spider, new, 404)
    assert [(f.url, f.cause, f.gone) for f in found] == [
        (f"{H}/news/two/", "http-404", True),
        (f"{H}/news/two/", "http-410", True),
        (f"{H}/news/two/", "http-503", False),
        (f"{H}/news/five/", "http-404", False),
    ]


def test_refresh_asks_gone_articles_again() -> None:
    from scrapy.utils.test import get_crawler

    from crawler.constants import META_GONE

    crawler = get_crawler(FailingSpider)
    spider = FailingSpider.from_crawler(crawler, refresh="1")
    spider.use_catalog(lambda key: False, [], {"one": True})
    [request] = spider._article_request(f"{H}/news/one/", {})
    assert request.meta[META_GONE] is True


# ------------------------------------------------------------------ causes of download errors


def test_download_errors_are_classified_by_type() -> None:
    from OpenSSL import SSL
    from scrapy.exceptions import (
        CannotResolveHostError,
        DownloadFailedError,
        DownloadTimeoutError,
        IgnoreRequest,
    )
    from twisted.internet.error import ConnectionLost, ConnectionRefusedError, DNSLookupError
    from twisted.python.failure import Failure
    from twisted.web._newclient import ResponseNeverReceived

    def wrapped(inner: BaseException) -> BaseException:
        try:
            raise DownloadFailedError("failed") from ResponseNeverReceived(
                [Failure(ConnectionLost("lost")), Failure(inner)]
            )
        except DownloadFailedError as exc:
            return exc

    assert download_failure(wrapped(SSL.Error([("SSL routines", "", "bad")])), source=False) == (
        "tls",
        "OpenSSL.SSL.Error: [('SSL routines', '', 'bad')]",
    )
    cases: list[tuple[BaseException, str | None]] = [
        (wrapped(ValueError("x")), "connection"),
        (DownloadTimeoutError("slow"), "timeout"),
        (CannotResolveHostError("nx"), "dns"),
        (DNSLookupError("nx"), "dns"),
        (ConnectionRefusedError("no"), "connection"),
        (TimeoutError("t"), "timeout"),
        (EOFError("cut"), "decoding"),
        (IgnoreRequest("max redirections reached"), "redirect-loop"),
        (IgnoreRequest("Filtered offsite request to 'x.test'"), None),
        (IgnoreRequest("Forbidden by robots.txt"), None),
    ]
    for exc, cause in cases:
        found = download_failure(exc, source=False)
        assert (found[0] if found else None) == cause, exc
    # robots.txt forbidding a feed is a failure of the source; an article, the site's choice.
    assert download_failure(IgnoreRequest("Forbidden by robots.txt"), source=True) == (
        "robots",
        "Forbidden by robots.txt",
    )


def test_a_rendered_page_whose_upstream_tls_failed_is_a_tls_failure() -> None:
    from scrapy.exceptions import IgnoreRequest

    message = (
        "https://president.ir/en/: not rendered: https://president.ir/en/ failed: TLS with "
        "president.ir failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
    )
    assert download_failure(IgnoreRequest(message), source=True) == ("tls", message)
    other = "https://president.ir/en/: not rendered: the page timed out"
    assert download_failure(IgnoreRequest(other), source=True) == ("render", other)
