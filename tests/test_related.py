"""The same story across sources: links made as texts are recorded, `newsarchive related`,
rebuilt by `reindex` (on PostgreSQL too), found by two processes recording at once."""

from __future__ import annotations

import io
import json
import multiprocessing
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from crawler.access.stories import link_recorded, link_text, story_keys
from crawler.catalog.db import Catalog, TextFacts, TextRecord, text_bands, text_names, texts
from crawler.catalog.stories import article_links, story_ids
from crawler.ops.cli import main
from crawler.text.similar import SIGNATURE_VERSION

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


def record(
    url: str,
    site: str,
    key: str,
    body: str,
    barrier: object | None = None,
    with_keys: bool = False,
    paramstyle: str | None = None,
) -> None:
    """Record a text and link it: with ``with_keys`` as the crawl does (its story keys stored
    with its version, in one transaction), without as reindex does (keys stored apart);
    ``paramstyle``: the driver's parameter style, if not its default."""
    keys = story_keys(body) if with_keys else None
    engine = None if paramstyle is None else create_engine(url, paramstyle=paramstyle)
    catalog = Catalog(url, engine=engine)
    try:
        catalog.record_text(
            TextRecord(
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
                story_keys=keys,
            )
        )
        text_id = catalog.text_id(f"text/{site}/{key}.txt")
        assert text_id is not None
        if barrier is not None:
            # Both texts are recorded before either looks for the other: the worst case.
            barrier.wait(timeout=30)  # type: ignore[attr-defined]
        if keys is not None:
            link_recorded(catalog, f"text/{site}/{key}.txt", keys)
        else:
            link_text(catalog, text_id)
    finally:
        catalog.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    url: str = request.getfixturevalue("fresh_pg")
    return url


@pytest.mark.parametrize("with_keys", [False, True], ids=["keys-apart", "keys-with-version"])
def test_a_republication_recorded_at_once_by_two_processes_is_linked_once(
    catalog_url: str, with_keys: bool
) -> None:
    url = catalog_url
    Catalog(url).close()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [
        context.Process(
            target=record, args=(url, "presstv", "1", press_tv_text(), barrier, with_keys)
        ),
        context.Process(
            target=record,
            args=(url, "almasirah", "53210", almasirah_text(), barrier, with_keys),
        ),
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


def story_rows(url: str) -> list[tuple[object, ...]]:
    """Every text's story keys as stored: its scheme, its bands, its names."""
    catalog = Catalog(url)
    try:
        with catalog.engine.connect() as conn:
            found: list[tuple[object, ...]] = [
                tuple(r) for r in conn.execute(select(texts.c.text_key, texts.c.story_keys))
            ]
            for table in (text_bands, text_names):
                key = table.c.band if table is text_bands else table.c.key
                rows = conn.execute(
                    select(texts.c.text_key, *[c for c in table.c if c.name != "text_id"])
                    .join(texts, texts.c.id == table.c.text_id)
                    .order_by(texts.c.text_key, key)
                )
                found.extend(tuple(r) for r in rows)
    finally:
        catalog.close()
    return sorted(found, key=repr)


def test_keys_stored_with_the_version_are_the_keys_linking_stores(
    catalog_url: str, tmp_path: Path
) -> None:
    # The crawl stores a text's story keys in its version's transaction; reindex and
    # link_text store them apart: the same rows either way, and the same links.
    apart = f"sqlite:///{tmp_path / 'apart.sqlite'}"
    # A NUL inside a word: the catalog keeps the text without it, and so do its keys.
    with_nul = almasirah_text().replace("Gaza", "Ga\x00za", 1)
    # And through SQLAlchemy's statements, as a driver of another parameter style has them.
    named = f"sqlite:///{tmp_path / 'named.sqlite'}"
    for url, with_keys, style in (
        (apart, False, None),
        (catalog_url, True, None),
        (named, True, "named"),
    ):
        record(url, "presstv", "1", press_tv_text(), with_keys=with_keys, paramstyle=style)
        record(url, "almasirah", "53210", with_nul, with_keys=with_keys, paramstyle=style)
    rows = story_rows(catalog_url)
    assert rows == story_rows(apart)
    assert rows == story_rows(named)
    assert sum(1 for r in rows if r[1] == SIGNATURE_VERSION) == 2
    assert sum(1 for r in rows if len(r) == 4) == 2 * 64  # the bands of both texts
    catalog = Catalog(catalog_url)
    try:
        [link] = article_links(catalog, "presstv", "1")
        assert (link.other.site, link.kind) == ("almasirah", "republication")
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


def test_a_text_whose_linking_failed_is_linked_by_reindex(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Unit: the crawl stores a text's keys with its version, then links it; a failure while
    # linking (here a candidate lookup that raises) leaves it unkeyed for reindex to link.
    import crawler.access.stories as stories

    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    record(url, "presstv", "1", press_tv_text(), with_keys=True)

    def broken(*_args: object, **_kwargs: object) -> list[object]:
        raise RuntimeError("catalog gone")

    monkeypatch.setattr(stories, "candidates", broken)
    with pytest.raises(RuntimeError, match="catalog gone"):
        record(url, "almasirah", "53210", almasirah_text(), with_keys=True)
    monkeypatch.undo()
    assert [r for r in story_rows(url) if len(r) == 2] == [
        ("text/almasirah/53210.txt", None),
        ("text/presstv/1.txt", SIGNATURE_VERSION),
    ]
    catalog = Catalog(url)
    try:
        assert article_links(catalog, "almasirah", "53210") == []
        assert stories.link_all(catalog) == 1
        [link] = article_links(catalog, "almasirah", "53210")
        assert (link.other.site, link.kind) == ("presstv", "republication")
    finally:
        catalog.close()


OLD_SCHEME = "w5-affine64-p192-s1-b64x3"  # SHA-1 of each shingle: the scheme before wordmix64


def test_keys_of_an_older_scheme_are_named_at_a_crawls_start_and_remade_by_reindex(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from crawler.crawl.catalog import ArchiveCatalog

    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    record(url, "presstv", "1", press_tv_text(), with_keys=True)
    now = story_rows(url)
    catalog = Catalog(url)
    try:
        crawl = ArchiveCatalog.__new__(ArchiveCatalog)
        crawl.catalog, crawl.site, crawl.location = catalog, "presstv", "catalog.sqlite"
        with caplog.at_level(logging.WARNING):
            crawl._warn_older_story_keys()
            crawl.site = "irna"  # no texts: nothing to say
            crawl._warn_older_story_keys()
        assert caplog.records == []  # keys of this version's scheme
        # As an older version left them: another scheme named, other bands.
        with catalog.engine.begin() as conn:
            conn.execute(texts.update().values(story_keys=OLD_SCHEME))
            conn.execute(text_bands.update().values(hash=text_bands.c.hash + 1))
        crawl.site = "presstv"
        with caplog.at_level(logging.WARNING):
            crawl._warn_older_story_keys()
        [warning] = caplog.records
        assert OLD_SCHEME in warning.getMessage() and SIGNATURE_VERSION in warning.getMessage()
        assert "newsarchive reindex" in warning.getMessage()
        # reindex's linking remakes them: the rows are the ones this version makes.
        from crawler.access.stories import link_all

        link_all(catalog)
    finally:
        catalog.close()
    assert story_rows(url) == now
