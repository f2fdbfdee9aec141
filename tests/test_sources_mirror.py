"""Issue 24 on the loopback mirror: three sites with no spider module, onboarded with
`newsarchive sources add URL` and crawled with `newsarchive crawl NAME`, no code change.

The mirror's generated sources (crawler/mirror/generate_sources.py): harborpost (WordPress-like:
feed and sitemap index), coastaldaily (a Google News sitemap only), valleytimes (listing pages
only); each has one broken article (404, 410, a redirect loop) that the report must name.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crawler.mirror.server import MirrorServer
from crawler.ops import cli

ROOT = Path(__file__).resolve().parent.parent
SITES = {
    "harborpost": "https://harborpost.example/",
    "coastaldaily": "https://news.coastaldaily.example/",
    "valleytimes": "https://www.valleytimes.example/",
}
# The broken article of each site and the cause the report must give.
BROKEN = {
    "harborpost": (
        "https://www.harborpost.example/2025/06/05/harbor-city-regional-airport-wins-approval-"
        "for-a-longer-runway/",
        "http-404",
    ),
    "coastaldaily": (
        "https://news.coastaldaily.example/news/4210259/greenhaven-teachers-union-accepts-a-"
        "three-year-pay-deal",
        "http-410",
    ),
    "valleytimes": (
        "https://www.valleytimes.example/stories/millbridge-port-authority-reports-record-"
        "container-traffic-80510.html",
        "redirect-loop",
    ),
}
FAST = ["-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=False"]


@dataclass
class Run:
    code: int
    out: str
    err: str


@dataclass
class Onboarded:
    work: Path
    sources: Path
    store: Path
    added: dict[str, Run]
    crawl: Run


def newsarchive(*args: str) -> Run:
    """`newsarchive ARGS` in this process (its crawls and probes run in their own)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(args))
    return Run(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def clean_env() -> Iterator[pytest.MonkeyPatch]:
    """No ARCHIVE_* setting or proxy from the environment; the checkout importable by the
    crawls' processes. Requests go to the mirror (--proxy), and nowhere else."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if (
                name.startswith("ARCHIVE_")
                or name == "NEWSARCHIVE_STORE"
                or name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
            ):
                mp.delenv(name)
        mp.setenv("PYTHONPATH", str(ROOT))
        mp.setenv("SCRAPY_SETTINGS_MODULE", "settings")
        yield mp


@pytest.fixture(scope="module")
def mirror() -> Iterator[MirrorServer]:
    with MirrorServer() as server:
        yield server


@pytest.fixture(scope="module")
def onboarded(
    mirror: MirrorServer, clean_env: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Onboarded:
    """`sources add` of each site, then one `crawl` of the three (each in its own process)."""
    work = tmp_path_factory.mktemp("sources")
    sources = work / "sources.toml"
    clean_env.setenv("ARCHIVE_SOURCES_FILE", str(sources))
    store = work / "store"
    proxy = ["--proxy", mirror.proxy_url]
    added = {name: newsarchive("sources", "add", url, *proxy, *FAST) for name, url in SITES.items()}
    crawl = newsarchive(
        "crawl",
        *SITES,
        "--jobs",
        "3",
        "--store",
        str(store),
        *proxy,
        *FAST,
        "-s",
        "ARCHIVE_DISCOVERY_WINDOW_DAYS=0",
    )
    return Onboarded(work, sources, store, added, crawl)


def report_of(store: Path, site: str) -> dict[str, Any]:
    [path] = (store / "reports" / site).glob("*.json")
    report: dict[str, Any] = json.loads(path.read_text())
    return report


@pytest.mark.parametrize("site", list(SITES))
def test_sources_add_prints_what_it_found_and_writes_the_entry(
    onboarded: Onboarded, site: str
) -> None:
    run = onboarded.added[site]
    assert run.code == 0, run.err[-3000:]
    out = run.out
    assert f"wrote [sources.{site}] to {onboarded.sources}" in out
    # Five samples with headline, date and first line, as the generic extractor reads them.
    samples = [line for line in out.splitlines() if line.startswith("   ") and ". " in line[:7]]
    assert len(samples) == 5, out
    assert out.count("words") >= 5
    assert out.count("T") and "no date" not in out
    entry = tomllib.loads(onboarded.sources.read_text())["sources"][site]
    if site == "harborpost":
        assert entry["feeds"] == ["https://www.harborpost.example/feed/"]
        assert entry["sitemaps"] == ["https://www.harborpost.example/wp-sitemap.xml"]
        assert "harborpost.example" in entry["hosts"]
        assert "15 article URLs" in out
    elif site == "coastaldaily":
        assert entry["feeds"] == [] and entry["listings"] == []
        assert entry["sitemaps"] == ["https://news.coastaldaily.example/sitemap-news.xml"]
        assert "Google News sitemap" in out
        assert entry["articles"] == [r"^/news/(?P<id>\d+)/[^/]+$"]
    else:
        assert entry["feeds"] == [] and entry["sitemaps"] == []
        assert entry["listings"][0] == "https://www.valleytimes.example/"
        assert "20 article URLs" in out


@pytest.mark.parametrize("site", list(SITES))
def test_crawl_archives_nine_in_ten_and_names_the_rest(onboarded: Onboarded, site: str) -> None:
    crawl = onboarded.crawl
    assert crawl.code == 0, crawl.out + crawl.err[-3000:]
    line = next(x for x in crawl.out.splitlines() if x.startswith(f"{site} "))
    assert " ok " in line
    report = report_of(onboarded.store, site)
    sidecars = [
        json.loads(p.read_text()) for p in (onboarded.store / "text" / site).rglob("*.json")
    ]
    good = []
    for sidecar in sidecars:
        text = Path(
            onboarded.store / "text" / site / Path(sidecar["text_key"]).relative_to(f"text/{site}")
        ).read_text()
        body = text.split("\n\n", 1)[1]
        if (
            sidecar["published"]
            and sidecar["published_from"] == "page"
            and len(body.split()) >= 100
        ) and sidecar.get("quality", "ok") == "ok":
            good.append(sidecar["url"])
    discovered = report["articles"]["discovered"]
    assert discovered == {"harborpost": 15, "coastaldaily": 12, "valleytimes": 20}[site]
    assert len(good) / discovered >= 0.9, (len(good), discovered)
    # The rest are named in the report, with their cause.
    url, cause = BROKEN[site]
    failures = {(f["url"], f["cause"]) for f in report["failures"]["urls"]}
    assert failures == {(url, cause)}
    assert len(good) + len(failures) == discovered
    # Every guarantee of a built-in site: WARC records, catalog rows, a manifest.
    assert list((onboarded.store / "warc" / site).rglob("*.warc.gz"))
    assert list((onboarded.store / "manifests" / site).glob("*.json"))
    assert all(s["warc"]["record_id"] for s in sidecars)


# Broken for good: harborpost's deleted post answers 404, coastaldaily's removed one 410.
GONE = ("harborpost", "coastaldaily")


def recrawl(onboarded: Onboarded, mirror: MirrorServer, store: Path, *settings: str) -> Run:
    """A second crawl of the sites with a dead link, on a copy of the first crawl's archive (the
    other tests read its one crawl of each site)."""
    shutil.copytree(onboarded.store, store)
    return newsarchive(
        "crawl",
        *GONE,
        "--jobs",
        "2",
        "--store",
        str(store),
        "--proxy",
        mirror.proxy_url,
        *FAST,
        "-s",
        "ARCHIVE_DISCOVERY_WINDOW_DAYS=0",
        *settings,
    )


def second_report(onboarded: Onboarded, store: Path, site: str) -> dict[str, Any]:
    first = {p.name for p in (onboarded.store / "reports" / site).glob("*.json")}
    [path] = [p for p in (store / "reports" / site).glob("*.json") if p.name not in first]
    report: dict[str, Any] = json.loads(path.read_text())
    return report


def asked(mirror: MirrorServer, url: str) -> int:
    return sum(1 for r in mirror.requests if r.url == url)


def test_a_dead_link_is_not_asked_again_before_its_recheck(
    onboarded: Onboarded, mirror: MirrorServer, tmp_path: Path
) -> None:
    """The first crawl named the dead link (test_crawl_archives_nine_in_ten_and_names_the_rest);
    the next one is ok, skips it as gone and does not fetch it."""
    before = {site: asked(mirror, BROKEN[site][0]) for site in GONE}
    assert all(before.values()), before  # the first crawl asked each
    run = recrawl(onboarded, mirror, tmp_path / "store")
    assert run.code == 0, run.out + run.err[-3000:]
    for site in GONE:
        line = next(x for x in run.out.splitlines() if x.startswith(f"{site} "))
        assert " ok " in line, line
        assert asked(mirror, BROKEN[site][0]) == before[site]
        report = second_report(onboarded, tmp_path / "store", site)
        assert report["skipped"]["gone"] == 1, report["skipped"]
        assert report["health"] == {**report["health"], "status": "ok", "still_gone": 0}
        assert report["failures"]["total"] == 0
        # Nothing else was due: the rest is archived already, and was not asked either.
        assert report["articles"]["requested"] == 0


def test_a_dead_link_asked_again_at_its_recheck_is_listed_and_the_crawl_is_ok(
    onboarded: Onboarded, mirror: MirrorServer, tmp_path: Path
) -> None:
    """ARCHIVE_GONE_RECHECK_DAYS=0: asked every crawl; gone still, it is listed in the report,
    and the site is no less healthy for it."""
    before = {site: asked(mirror, BROKEN[site][0]) for site in GONE}
    run = recrawl(onboarded, mirror, tmp_path / "store", "-s", "ARCHIVE_GONE_RECHECK_DAYS=0")
    assert run.code == 0, run.out + run.err[-3000:]
    for site in GONE:
        url, cause = BROKEN[site]
        line = next(x for x in run.out.splitlines() if x.startswith(f"{site} "))
        assert " ok " in line, line
        assert asked(mirror, url) == before[site] + 1
        report = second_report(onboarded, tmp_path / "store", site)
        assert "gone" not in report["skipped"]
        assert [(f["url"], f["cause"], f["gone"]) for f in report["failures"]["urls"]] == [
            (url, cause, True)
        ]
        assert report["failures"]["still_gone"] == 1
        assert report["articles"]["requested"] == 1
        assert report["health"]["status"] == "ok" and report["health"]["still_gone"] == 1


def test_crawl_all_and_the_daemon_cover_configured_sources(onboarded: Onboarded) -> None:
    check = newsarchive("check", "--all", "--store", str(onboarded.store))
    assert check.code == 0, check.err
    for site in ["almasirah", "irna", "president", "presstv", "tdi", *SITES]:
        assert f"  {site:10} would crawl" in check.out, check.out
    assert "coastaldaily would crawl 1 sitemap" in check.out
    plan = newsarchive("run", "--dry-run", "--store", str(onboarded.store))
    assert plan.code == 0, plan.err
    for site in SITES:
        assert site in plan.out
    listed = newsarchive("sources", "list")
    assert listed.code == 0
    assert f"{onboarded.sources}: 3 sources" in listed.out
    assert "valleytimes" in listed.out and "articles patterns" in listed.out


def test_sources_test_reports_each_article(onboarded: Onboarded, mirror: MirrorServer) -> None:
    run = newsarchive(
        "sources",
        "test",
        "coastaldaily",
        "--articles",
        "12",
        "--proxy",
        mirror.proxy_url,
        *FAST,
    )
    # The removed item fails: exit 1, and the line names it with its cause.
    assert run.code == 1, run.err[-2000:]
    assert "coastaldaily: 11 of 12 articles archived with a non-degenerate text and a date" in (
        run.out
    )
    assert f"failed      fetch/http-410: {BROKEN['coastaldaily'][0]}" in run.out
    assert run.out.count("  ok   ") == 11
    # A scratch store: the archive has its one crawl of the site, not a second.
    assert len(list((onboarded.store / "reports" / "coastaldaily").glob("*.json"))) == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "https://www.plain-page.example/",
            "not a news site: no feed, no sitemap and no links to article pages found "
            "(give the home page of a news site)",
        ),
        ("https://www.plain-page.example/gone", "HTTP 404 (no page at this URL)"),
        ("https://loop.plain-page.example/", "it redirects in a loop (no page at the end)"),
        ("https://closed.plain-page.example/", "robots.txt forbids this URL to our User-Agent"),
    ],
)
def test_sources_add_refuses_what_is_no_news_site(
    mirror: MirrorServer,
    clean_env: pytest.MonkeyPatch,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    url: str,
    message: str,
) -> None:
    sources = tmp_path / "sources.toml"
    monkeypatch.setenv("ARCHIVE_SOURCES_FILE", str(sources))
    run = newsarchive("sources", "add", url, "--proxy", mirror.proxy_url, *FAST)
    assert run.code == 2
    assert run.err == f"error: {url}: {message}; nothing written\n"
    assert not sources.exists()
    assert os.listdir(tmp_path) == []
