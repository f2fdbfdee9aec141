"""`newsarchive diff` on an article the mirror revised between two crawls: the diff shows
exactly the change, as plain marks and as HTML; search sees each version's words."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from crawler.mirror.routes import Route
from crawler.mirror.server import MirrorServer
from crawler.ops.cli import main
from tests.crawl_helper import run_crawl

SITE_DIR = Path(__file__).resolve().parent.parent / "crawler" / "mirror" / "sites" / "tdi"
ARTICLE = "https://thediplomaticinsight.com/zambia-independence-day-2023/"
OLD = "Celebrations traditionally include flag-raising ceremonies, parades"
NEW = "Celebrations this year included flag-raising ceremonies, military parades"


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def crawl(mirror: MirrorServer, store: Path, out: Path, **settings: str) -> None:
    result = run_crawl(
        "spiders.tdi:TdiSpider",
        out,
        settings={
            "ARCHIVE_PROXY": mirror.proxy_url,
            "ARCHIVE_STORE_URI": str(store),
            "ARCHIVE_CATALOG_ENABLED": "True",
            **settings,
        },
    )
    assert result.exit_code == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def revised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("revised")
    store = tmp / "store"
    with MirrorServer(sites=[SITE_DIR]) as mirror:
        crawl(mirror, store, tmp / "1.json")
        original = (SITE_DIR / "zambia-independence-day-2023.html").read_text()
        assert OLD in original
        mirror.add_route(
            Route(
                url=ARTICLE,
                body=original.replace(OLD, NEW).encode(),
                content_type="text/html; charset=UTF-8",
            )
        )
        crawl(mirror, store, tmp / "2.json", ARCHIVE_REFRESH="True")
    return store


def test_diff_shows_exactly_the_change(revised: Path) -> None:
    code, out, err = run("diff", ARTICLE, "--store", str(revised), "--color", "never")
    assert code == 0, err
    head, _, body = out.partition("\n\n")
    assert head.startswith("tdi:zambia-independence-day-2023: v1 (captured ")
    assert "-> v2" in head and "2 words removed, 4 added in 2 places" in head
    assert "[-traditionally include-]{+this year included+}" in body
    assert "ceremonies,{+ military+} parades" in body
    # Only the changed paragraph and its neighbours; the rest is elided.
    assert body.count("[-") == 1 and body.count("{+") == 2
    assert "…" in body and "Kenneth Kaunda" in body
    # The first paragraph is two away from the change: elided with the default context of 1.
    assert "Northern Rhodesia" not in body
    code, whole, _ = run(
        "diff", ARTICLE, "--store", str(revised), "--color", "never", "--context", "-1"
    )
    assert "Northern Rhodesia" in whole


def test_diff_as_html_and_bad_versions(revised: Path) -> None:
    code, page, err = run(
        "diff", "tdi:zambia-independence-day-2023", "--store", str(revised), "--html"
    )
    assert code == 0, err
    assert "<del>traditionally include</del><ins>this year included</ins>" in page
    assert "<ins> military</ins>" in page
    code, same, _ = run("diff", ARTICLE, "--store", str(revised), "--from", "2", "--to", "2")
    assert code == 0 and "no changes" in same
    code, _, err = run("diff", ARTICLE, "--store", str(revised), "--from", "3")
    assert code != 0 and "--from 3: the article has the versions 1, 2" in err


def test_search_sees_each_version_words(revised: Path) -> None:
    store = str(revised)
    code, out, err = run("search", "military parades", "--store", store, "--json")
    assert code == 0, err
    [hit] = [json.loads(line) for line in out.splitlines()]
    assert hit["version"] == 2
    code, out, _ = run("search", "traditionally", "--store", store, "--all-versions", "--json")
    assert [json.loads(line)["version"] for line in out.splitlines()] == [1]
