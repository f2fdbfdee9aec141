"""The pages of `newsarchive serve` a reader uses (issue 20), over the all-sites demo: search
with marked snippets and paging, each site by publication day, an article with its captures,
its other coverage and its crawl's WACZ (by byte range), a replay in ReplayWeb.page that runs
the archived page's own script from the archive, and the word diff of two text versions."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from crawler.mirror.routes import Route
from crawler.mirror.server import MirrorServer
from tests.conftest import ROOT, require_program, venv_program
from tests.test_diff_versions import ARTICLE, NEW, OLD, SITE_DIR, crawl

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# The three reports of one meeting (11 June 2025) that name Jamil Mezher.
MEZHER = {("irna", "85859288"), ("president", "158877"), ("almasirah", "53210")}
IRNA_ARTICLE = "https://en.irna.ir/news/85859288/"
_HIT = re.compile(r"<li class=hit>(.*?)</li>", re.S)
_HREF = re.compile(r"href='([^']+)'")
_CAPTURE = re.compile(r"/capture/[0-9a-f-]{36}")


@dataclass
class Reply:
    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def get(url: str, headers: dict[str, str] | None = None) -> Reply:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with OPENER.open(request, timeout=30) as resp:
            return Reply(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        exc.close()
        return Reply(exc.code, exc.headers, body)


def raw_status(base: str, path: str) -> int:
    """The status of a request line sent as is (urllib would normalise the dots away)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        first = sock.recv(64)
    return int(first.split(b" ", 2)[1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(store: Path, log: Path, *args: str) -> Iterator[str]:
    """`newsarchive serve` of ``store`` on a free loopback port; its base URL."""
    port = free_port()
    program = venv_program("newsarchive")
    cmd = [str(program)] if program else [sys.executable, "-m", "crawler.ops.cli"]
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [*cmd, "serve", "--store", str(store), "--port", str(port), *args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"serve exited {proc.returncode}: {log.read_text()[-3000:]}")
            try:
                with OPENER.open(base + "/", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"serve did not answer: {log.read_text()[-3000:]}")
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def replay_app() -> Path | None:
    from tests.replayweb import app_dir

    return app_dir()


@pytest.fixture(scope="module")
def service(demo_all_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo's store served with ReplayWeb.page (when it is installed)."""
    app = replay_app()
    extra = ["--replaywebpage", str(app)] if app else []
    log = tmp_path_factory.mktemp("serve-browse") / "serve.log"
    with serving(demo_all_store, log, *extra) as base:
        yield base


def hits(page: str) -> list[str]:
    return _HIT.findall(page)


def hit_article(hit: str) -> tuple[str, str]:
    """(site, article key) of a hit, from its site label and URL."""
    site = re.search(r"<span class=site>([^<]+)</span>", hit)
    url = re.search(r"<small>(https?://[^ <]+)", hit)
    assert site and url, hit
    # A numeric id in the path (IRNA, president.ir, Al-Masirah), else the slug (TDI).
    found = re.search(r"/(\d+)(?:/|$)", url[1]) or re.search(r"/([^/]+)/?$", url[1])
    assert found, url[1]
    return site[1], found[1]


def search(base: str, **params: str) -> Reply:
    return get(f"{base}/search?{urlencode(params)}")


# ------------------------------------------------------------------ search


def test_search_lists_the_three_reports_with_marked_snippets(service: str) -> None:
    reply = search(service, q="Mezher")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    found = hits(reply.text)
    assert {hit_article(h) for h in found} == MEZHER and len(found) == 3
    for hit in found:
        assert "<mark>Mezher</mark>" in hit
        assert re.search(r"<span class=published>2025-06-1[12]</span>", hit)
        [link] = _CAPTURE.findall(hit)
        title = re.search(r"<a class=title href='[^']+'>([^<]+)</a>", hit)
        assert title
        page = get(service + link)
        assert page.status == 200 and f"<h1>{title[1]}</h1>" in page.text
    # The search box is on every page, and keeps the words asked.
    assert "<input type=search name=q value='Mezher'" in reply.text
    assert "<form class=searchbox action='/search'" in get(service + "/").text


def test_search_filters_narrow_the_hits(service: str) -> None:
    def articles(**params: str) -> set[tuple[str, str]]:
        reply = search(service, q="Mezher", **params)
        assert reply.status == 200, reply.text
        return {hit_article(h) for h in hits(reply.text)}

    assert articles(site="irna") == {("irna", "85859288")}
    assert articles(site="president,almasirah") == MEZHER - {("irna", "85859288")}
    assert articles(published_from="2025-06-12") == {("president", "158877")}
    assert articles(published_to="2025-06-11") == MEZHER - {("president", "158877")}
    assert articles(published_from="2025-06", published_to="2025-06") == MEZHER
    assert articles(language="en") == MEZHER
    assert articles(site="tdi") == set()
    # The form shows the filters asked, so sending it again keeps them.
    form = search(service, q="Mezher", site="president,almasirah", published_from="2025-06").text
    assert "<option value='president,almasirah' selected>" in form
    assert "name=published_from size=10 placeholder='2025-06' value='2025-06'" in form


def test_a_bad_query_is_a_400_page_that_says_why(service: str) -> None:
    for params, said in (
        ({"q": "-Mezher"}, "nothing to search for"),
        ({"q": "Mezher OR"}, "OR needs a term on each side"),
        ({"q": "Mezher", "published_from": "2025-06-11T10:00"}, "publication dates are days"),
        ({"q": "Mezher", "site": "nosuch"}, "unknown site"),
        ({"q": "Mezher", "page": "0"}, "page must be at least 1"),
        ({"q": "Mezher", "page": "two"}, "page must be a whole number"),
    ):
        reply = search(service, **params)
        assert reply.status == 400, params
        assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
        assert said in reply.text, (params, reply.text[-500:])
        assert "Traceback" not in reply.text


def test_search_pages_twenty_at_a_time(service: str) -> None:
    first = search(service, q="the")
    assert first.status == 200
    page_one = [hit_article(h) for h in hits(first.text)]
    assert len(page_one) == 20
    assert "rel=prev" not in first.text
    [next_link] = re.findall(r"<a rel=next href='([^']+)'>", first.text)
    assert "page=2" in next_link and "q=the" in next_link
    second = get(service + next_link.replace("&amp;", "&"))
    page_two = [hit_article(h) for h in hits(second.text)]
    assert page_two and len(page_two) <= 20
    assert not set(page_one) & set(page_two)
    assert "rel=prev" in second.text and "rel=next" not in second.text
    assert re.search(r"<ol class=hits start=21>", second.text)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 10)),
        ("bytes=90-", (90, 100)),
        ("bytes=90-500", (90, 100)),
        ("bytes=-22", (78, 100)),
        ("bytes=-500", (0, 100)),
        ("bytes=99-99", (99, 100)),
        ("bytes=9-3", None),  # no range: the whole object
        ("bytes=0-1,5-6", None),  # several ranges are not taken: the whole object
        ("items=0-9", None),
        ("bytes=-", None),
        ("bytes=100-", "416"),
        ("bytes=-0", "416"),
    ],
)
def test_range_header(header: str | None, expected: tuple[int, int] | str | None) -> None:
    from crawler.access.serve import RangeNotSatisfiable, parse_range

    if expected == "416":
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, 100)
    else:
        assert parse_range(header, 100) == expected


# ------------------------------------------------------------------ browse


def test_a_site_is_listed_by_publication_day(service: str) -> None:
    page = get(f"{service}/site/irna").text
    published = re.search(r"<ul class=published>(.*?)</ul>", page, re.S)
    assert published
    days = _HREF.findall(published[1])
    assert "/site/irna/2025-06-11" in days
    assert days.index("/site/irna/2025-06-12") < days.index("/site/irna/2025-06-11")
    assert re.search(r"2025-06-11</a> \(2 articles\)", published[1])
    # The capture days stay reachable.
    assert re.search(r"href='/site/irna/captured/\d{4}-\d{2}-\d{2}'", page)
    day = get(f"{service}/site/irna/2025-06-11")
    assert day.status == 200
    listed = re.findall(r"<a class=article href='/capture/[^']+'>([^<]+)</a>", day.text)
    assert sorted(listed) == [
        "Iran, Oman discuss expansion of economic ties",
        "Pezeshkian urges Islamic unity to support Palestinians and counter Israel",
    ]
    # An article the page gives no date for is in the undated bucket, listed last.
    president = _HREF.findall(get(f"{service}/site/president").text)
    dated = [d for d in president if re.fullmatch(r"/site/president/\d{4}-\d{2}-\d{2}", d)]
    assert dated == sorted(dated, reverse=True)
    assert president.index("/site/president/undated") > president.index(dated[-1])
    undated = get(f"{service}/site/president/undated").text
    assert "International Quds Conference" in undated and _CAPTURE.search(undated)
    captured = re.findall(
        r"/site/irna/captured/\d{4}-\d{2}-\d{2}", get(f"{service}/site/irna/captured").text
    )
    assert captured and _CAPTURE.search(get(service + captured[0]).text)
    for path in (
        "/site/irna/2031-01-01",
        "/site/irna/undated",  # every IRNA article is dated
        "/site/irna/not-a-day",
        "/site/irna/captured/2031-01-01",
        "/site/nosuch",
        "/site/irna/a/b",
    ):
        assert get(service + path).status == 404, path


def irna_page(service: str) -> tuple[str, str]:
    """The IRNA article's capture page: (its path, its HTML)."""
    day = get(f"{service}/site/irna/2025-06-11").text
    [link] = re.findall(r"<a class=article href='(/capture/[^']+)'>Pezeshkian urges", day)
    return link, get(service + link).text


def test_the_article_page_links_the_live_site_its_captures_and_other_coverage(
    service: str,
) -> None:
    link, page = irna_page(service)
    live = re.search(r"<a class=live href='([^']+)' rel='noreferrer noopener'>", page)
    assert live and live[1].startswith(IRNA_ARTICLE)
    assert "(live site)" in page
    captures = re.search(r"<table class=captures>(.*?)</table>", page, re.S)
    assert captures
    rows = re.findall(
        r"<tr[^>]*><td><a href='(/capture/[^']+)'>[^<]+</a></td><td>(\d+)</td>", captures[1]
    )
    assert (link, "200") in rows
    assert "<tr class=current>" in captures[1]
    versions = re.search(r"<ul class=versions>(.*?)</ul>", page, re.S)
    assert versions and "v1" in versions[1]
    coverage = re.search(r"<ul class=coverage>(.*?)</ul>", page, re.S)
    assert coverage
    linked = {}
    for item in re.findall(r"<li>(.*?)</li>", coverage[1]):
        site = re.search(r"<span class=site>([^<]+)</span>", item)
        [other] = _CAPTURE.findall(item)
        assert site
        linked[site[1]] = other
    assert set(linked) == {"president", "almasirah"}
    assert "https://president.ir/en/158877" in get(service + linked["president"]).text
    assert "/post/53210/" in get(service + linked["almasirah"]).text


def test_the_wacz_download_is_the_stored_package_with_ranges(
    service: str, demo_all_store: Path
) -> None:
    _, page = irna_page(service)
    [link] = re.findall(r"<a class=wacz href='([^']+)' download>", page)
    site, name = link.removeprefix("/wacz/").split("/")
    stored = (demo_all_store / "wacz" / site / name).read_bytes()
    whole = get(service + link)
    assert whole.status == 200 and whole.body[:2] == b"PK" and whole.body == stored
    assert whole.headers["Accept-Ranges"] == "bytes"
    part = get(service + link, {"Range": "bytes=30-129"})
    assert part.status == 206 and part.body == stored[30:130]
    assert part.headers["Content-Range"] == f"bytes 30-129/{len(stored)}"
    tail = get(service + link, {"Range": "bytes=-22"})  # a zip's end record, as readers ask
    assert tail.status == 206 and tail.body == stored[-22:]
    assert get(service + link, {"Range": f"bytes={len(stored) - 5}-"}).body == stored[-5:]
    beyond = get(service + link, {"Range": f"bytes={len(stored)}-"})
    assert beyond.status == 416 and beyond.headers["Content-Range"] == f"bytes */{len(stored)}"
    crawl_id = name.removesuffix(".wacz")
    other_site = "tdi" if site != "tdi" else "irna"
    for path in (
        f"/wacz/{other_site}/{crawl_id}.wacz",  # a crawl of another site
        f"/wacz/{site}/{site}-20000101T000000Z-000000.wacz",  # no such crawl
        f"/wacz/{site}/{crawl_id}",
        f"/wacz/{site}/..%2f..%2fnewsarchive-store.json%00.wacz",
    ):
        assert get(service + path).status == 404, path
    for path in (
        f"/wacz/{site}/../../newsarchive-store.json",
        "/wacz/../../etc/passwd.wacz",
        "/wacz/%2e%2e/%2e%2e%2fetc%2fpasswd.wacz",
        "/replay/../../etc/passwd",
        "/replay/adblock/../../../../etc/passwd",
        "/replay/adblock/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/replay/src/index.ts",
        "/diff/../../etc/passwd",
    ):
        assert raw_status(service, path) in (400, 404), path


# ------------------------------------------------------------------ replay


def test_replay_runs_the_archived_pages_own_script_from_the_archive(service: str) -> None:
    """president.ir's article page is a shell that says "Loading…": its text arrives by its own
    script from en-158877.json. Replayed by ReplayWeb.page from the crawl's WACZ, the text shows:
    the script ran, and everything it asked for came from the archive."""
    app = require_program(
        replay_app(), "ReplayWeb.page (npm replaywebpage)", "./scripts/bootstrap --test"
    )
    chromium = require_program(
        CHROMIUM if CHROMIUM.exists() else None, "Chromium", "apt-get install chromium"
    )
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    from crawler.fetch.render import CHROMIUM_ARGS
    from tests.replayweb import LOOPBACK_ONLY, squash

    assert app.is_dir()
    found = hits(search(service, q="Mezher", site="president").text)
    [link] = _CAPTURE.findall(found[0])
    page = get(service + link).text
    [replay] = re.findall(r"<a class=replay href='([^']+)'>replay \(runs the page's scripts", page)
    replay = replay.replace("&amp;", "&")
    url = parse_qs(urlsplit(replay).query)["url"][0]
    assert url == "https://president.ir/en/158877"
    assert urlsplit(replay).path.startswith("/replay/president/president-")
    ident = link.rsplit("/", 1)[1]
    archived = get(f"{service}/html/{ident}").text
    assert "Loading…" in archived
    paragraphs = get(f"{service}/text/{ident}").text.split("\n\n")[1:]
    # A sentence of the body the archived HTML does not hold (the lead is its description).
    expect = next(p.split(". ")[0] for p in paragraphs if p.split(". ")[0] not in archived)
    reply = get(service + replay)
    assert reply.status == 200
    csp = reply.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "worker-src 'self'" in csp
    assert "<script src='/ui.js'></script>" in reply.text
    assert "<replay-web-page source='/wacz/president/president-" in reply.text

    outside: list[str] = []

    def note(request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and not request.url.startswith(service):
            outside.append(request.url)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(chromium), args=[*CHROMIUM_ARGS, *LOOPBACK_ONLY]
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.on("request", note)
            tab = context.new_page()
            tab.goto(service + replay)
            deadline = time.monotonic() + 60
            text = ""
            while time.monotonic() < deadline:
                for frame in tab.frames:
                    if "mp_/" not in frame.url or not frame.url.endswith(url):
                        continue
                    try:
                        text = str(frame.locator("body").inner_text(timeout=2000))
                    except PlaywrightError:  # a frame being replaced while read
                        continue
                if squash(expect) in squash(text):
                    break
                tab.wait_for_timeout(250)
            assert squash(expect) in squash(text), f"the replay showed {text[:800]!r}"
            assert "Loading…" not in text
            context.close()
        finally:
            browser.close()
    assert outside == [], "Chromium asked for something off loopback"


def test_without_replaywebpage_there_is_no_replay(
    demo_all_store: Path, tmp_path: Path, service: str
) -> None:
    link, _ = irna_page(service)
    with serving(demo_all_store, tmp_path / "serve.log") as plain:
        page = get(plain + link).text
        assert "class=wacz" in page and "class=replay" not in page
        for path in ("/ui.js", "/replay/sw.js", "/replay/"):
            assert get(plain + path).status == 404, path


# ------------------------------------------------------------------ versions


@pytest.fixture(scope="module")
def revised_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The TDI mirror crawled twice, one article edited in between (as test_diff_versions),
    served."""
    tmp = tmp_path_factory.mktemp("serve-revised")
    store = tmp / "store"
    with MirrorServer(sites=[SITE_DIR]) as mirror:
        crawl(mirror, store, tmp / "1.json")
        original = (SITE_DIR / "zambia-independence-day-2023.html").read_text()
        mirror.add_route(
            Route(
                url=ARTICLE,
                body=original.replace(OLD, NEW).encode(),
                content_type="text/html; charset=UTF-8",
            )
        )
        crawl(mirror, store, tmp / "2.json", ARCHIVE_REFRESH="True")
    with serving(store, tmp / "serve.log") as base:
        yield base


def test_the_diff_of_two_versions_shows_the_change(revised_service: str) -> None:
    base = revised_service
    day = get(f"{base}/site/tdi/2023-10-24").text
    [link] = re.findall(r"<a class=article href='(/capture/[^']+)'>Zambia Independence Day", day)
    assert re.search(r"zambia-independence-day-2023/ v2</small>", day)  # the latest version
    page = get(base + link).text
    versions = re.search(r"<ul class=versions>(.*?)</ul>", page, re.S)
    assert versions
    assert "v1, captured" in versions[1] and "v2, captured" in versions[1]
    [diff] = re.findall(r"<a class=diff href='([^']+)'>([^<]+)</a>", versions[1])
    assert diff == (
        "/diff/tdi/zambia-independence-day-2023?from=1&amp;to=2",
        "2 words removed, 4 added in 2 places",
    )
    reply = get(base + diff[0].replace("&amp;", "&"))
    assert reply.status == 200
    assert "<del>traditionally include</del><ins>this year included</ins>" in reply.text
    assert "<ins> military</ins>" in reply.text
    assert "2 words removed, 4 added in 2 places" in reply.text
    assert "Northern Rhodesia" not in reply.text  # two paragraphs from the change: elided
    assert get(f"{base}/diff/tdi/zambia-independence-day-2023").text.count("<del>") == 1
    whole = get(f"{base}/diff/tdi/zambia-independence-day-2023?from=1&to=2&context=all")
    assert "Northern Rhodesia" in whole.text
    same = get(f"{base}/diff/tdi/zambia-independence-day-2023?from=2&to=2")
    assert same.status == 200 and "no changes" in same.text
    assert get(f"{base}/diff/tdi/zambia-independence-day-2023?from=x").status == 400
    assert get(f"{base}/diff/tdi/zambia-independence-day-2023?from=3").status == 404
    assert get(f"{base}/diff/tdi/no-such-article").status == 404
