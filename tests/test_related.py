"""The same story across sources: links made as texts are recorded, `newsarchive related`,
rebuilt by `reindex` (on PostgreSQL too), found by two processes recording at once."""

from __future__ import annotations

import io
import json
import multiprocessing
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from crawler.access.stories import link_text
from crawler.catalog.db import Catalog, TextFacts
from crawler.catalog.stories import article_links, story_ids
from crawler.ops.cli import main

DATA = Path(__file__).resolve().parent / "data"
MEZHER = {("irna", "85859288"), ("president", "158877"), ("almasirah", "53210")}


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def linked(output: str) -> dict[tuple[str, str], str]:
    return {(r["site"], r["article_key"]): r["kind"] for r in map(json.loads, output.splitlines())}


def test_related_lists_the_other_reports_of_the_meeting_and_nothing_else(
    demo_all_store: Path,
) -> None:
    store = str(demo_all_store)
    code, out, err = run("related", "https://en.irna.ir/news/85859288/", "--store", store, "--json")
    assert code == 0, err
    assert linked(out) == {
        ("president", "158877"): "same-event",
        ("almasirah", "53210"): "same-event",
    }
    assert {json.loads(line)["story_id"] for line in out.splitlines()} == {"almasirah:53210"}
    # Of the 23 articles of five sites, only the meeting's three are in a story.
    catalog = Catalog(f"sqlite:///{demo_all_store / '.catalog.sqlite'}")
    try:
        stories = story_ids(catalog)
    finally:
        catalog.close()
    assert set(stories) == MEZHER
    code, out, _ = run("related", "tdi:world-polio-day-2023", "--store", store)
    assert code == 0 and "no article of another site is linked to it" in out
    code, table, _ = run("related", "president:158877", "--store", store)
    assert "2 articles of other sites tell the same story" in table
    assert "https://en.irna.ir/news/85859288" in table


def test_reindex_rebuilds_the_links_on_postgresql(demo_all_store: Path, fresh_pg: str) -> None:
    store = str(demo_all_store)
    code, out, err = run("reindex", "--store", store, "--catalog", fresh_pg, "--quiet")
    assert code == 0, err
    assert "3 new links between sites' stories" in out
    code, out, err = run(
        "related", "irna:85859288", "--store", store, "--catalog", fresh_pg, "--json"
    )
    assert code == 0, err
    assert set(linked(out)) == MEZHER - {("irna", "85859288")}
    # Again: nothing new.
    code, out, _ = run("reindex", "--store", store, "--catalog", fresh_pg, "--quiet")
    assert "0 text versions newly searchable, 0 new links" in out


# -- copies, across processes --------------------------------------------------------------------


def press_tv_text() -> str:
    """Sample 000 is Almasirah's republication of a Press TV text: the original, as Press TV
    would have it (without the source line)."""
    [path] = list((DATA / "samples" / "expected").glob("000_*.txt"))
    return "\n".join(
        line for line in path.read_text().splitlines() if "Source: Press TV" not in line
    )


def almasirah_text() -> str:
    [path] = list((DATA / "samples" / "expected").glob("000_*.txt"))
    return path.read_text()


def record(url: str, site: str, key: str, body: str, barrier: object | None = None) -> None:
    catalog = Catalog(url)
    try:
        catalog.record_text(
            site=site,
            article_key=key,
            url=f"https://{site}.example/{key}",
            capture_time="2026-12-01T10:00:00Z",
            text_digest=f"sha256:{site}{key}",
            text_key=f"text/{site}/{key}.txt",
            title=body.split("\n", 1)[0],
            published="2025-06-11T19:00:00+03:00",
            body=body,
            facts=TextFacts(published_text="2025-06-11T19:00:00+03:00"),
        )
        text_id = catalog.text_id(f"text/{site}/{key}.txt")
        assert text_id is not None
        if barrier is not None:
            # Both texts are recorded before either looks for the other: the worst case.
            barrier.wait(timeout=30)  # type: ignore[attr-defined]
        link_text(catalog, text_id)
    finally:
        catalog.close()


def test_a_republication_recorded_at_once_by_two_processes_is_linked_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    Catalog(url).close()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [
        context.Process(target=record, args=(url, "presstv", "1", press_tv_text(), barrier)),
        context.Process(target=record, args=(url, "almasirah", "53210", almasirah_text(), barrier)),
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    catalog = Catalog(url)
    try:
        [link] = article_links(catalog, "almasirah", "53210")
        assert (link.other.site, link.kind) == ("presstv", "republication")
        assert link.score > 0.9
        assert [(x.other.site, x.kind) for x in article_links(catalog, "presstv", "1")] == [
            ("almasirah", "republication")
        ]
    finally:
        catalog.close()


def test_articles_of_one_site_are_never_linked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    record(url, "almasirah", "1", almasirah_text())
    record(url, "almasirah", "2", almasirah_text() + "\nA line more.\n")
    catalog = Catalog(url)
    try:
        assert article_links(catalog, "almasirah", "1") == []
        assert story_ids(catalog) == {}
    finally:
        catalog.close()
