"""One catalog, many processes: site leases, the schema, text versions and the store it describes.

Every test runs on SQLite (a file) and on a real PostgreSQL (a fresh database per test); the
races run in separate processes started together, as separate machines would.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

from crawler.catalog.db import (
    LEASE_LOST,
    NO_LEASE,
    SCHEMA_VERSION,
    Catalog,
    CatalogMismatch,
    Run,
    TextRecord,
    iso,
    metadata,
)
from crawler.catalog.search import SearchQuery, search
from crawler.layout import sqlite_url

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=60)
PROCESSES = 10
SPAWN = multiprocessing.get_context("spawn")  # no fork of a process that has threads


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "catalog.sqlite")
    url: str = request.getfixturevalue("fresh_pg")
    return url


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    opened = Catalog(catalog_url)
    yield opened
    opened.close()


def take(catalog: Catalog, crawl_id: str, at: datetime, **over: Any) -> Any:
    args: dict[str, Any] = {"crawl_id": crawl_id, "host": f"host-{crawl_id}", "pid": 100}
    args.update(over)
    return catalog.take_lease("tdi", ttl=TTL, now=at, **args)


def run_row(crawl_id: str, started: datetime, site: str = "tdi") -> Run:
    return Run(crawl_id=crawl_id, site=site, trigger="schedule", started=iso(started))


def in_processes(target: Any, *args: Any, count: int = PROCESSES) -> list[Any]:
    """Run ``target(index, barrier, *args)`` in ``count`` processes started together; the
    values they return (a process that failed fails the test with its error)."""
    barrier, results = SPAWN.Barrier(count), SPAWN.Queue()
    processes = [
        SPAWN.Process(target=_reporting, args=(target, i, barrier, results, *args))
        for i in range(count)
    ]
    for process in processes:
        process.start()
    found = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
    failures = [error for ok, error in found if not ok]
    assert failures == []
    return [value for _, value in found]


def _reporting(target: Any, index: int, barrier: Any, results: Any, *args: Any) -> None:
    try:
        results.put((True, target(index, barrier, *args)))
    except Exception as exc:  # any failure is the test's finding, reported by the parent
        results.put((False, f"process {index}: {type(exc).__name__}: {exc}"))


# ---------------------------------------------------------------------------------- leases


def test_a_held_lease_is_refused_with_its_holder(catalog: Catalog) -> None:
    first = take(catalog, "a", T0)
    assert first.taken and first.took_over is None and not first.already_started
    assert (first.lease.crawl_id, first.lease.expires) == ("a", iso(T0 + TTL))
    refused = take(catalog, "b", T0 + timedelta(seconds=59))
    assert not refused.taken
    assert refused.lease == first.lease
    assert refused.message() == f"tdi: held by crawl a on host-a (pid 100) until {iso(T0 + TTL)}"
    # The holder taking it again renews it, keeping when it was taken.
    again = take(catalog, "a", T0 + timedelta(seconds=30))
    assert again.taken and again.lease.taken == iso(T0)
    assert again.lease.expires == iso(T0 + timedelta(seconds=90))
    assert catalog.renew_lease("tdi", "a", TTL, now=T0 + timedelta(seconds=80))
    assert catalog.leases() == [catalog.lease("tdi")]
    [lease] = catalog.leases()
    assert lease.heartbeat == iso(T0 + timedelta(seconds=80))
    assert lease.live(T0 + timedelta(seconds=139))
    assert not lease.live(T0 + timedelta(seconds=140))


def test_an_expired_lease_is_taken_over_and_its_run_killed(
    catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    catalog.start_run(run_row("a", T0))
    take(catalog, "a", T0)
    assert catalog.renew_lease("tdi", "a", TTL, now=T0 + timedelta(seconds=20))
    # Then crawl a stops renewing (killed): its lease holds until T0+80s.
    assert not take(catalog, "b", T0 + timedelta(seconds=79)).taken
    with caplog.at_level(logging.WARNING, logger="crawler.catalog.db"):
        result = take(catalog, "b", T0 + timedelta(seconds=80))
    assert result.taken
    assert result.took_over is not None and result.took_over.crawl_id == "a"
    since = iso(T0 + timedelta(seconds=20))
    message = f"tdi: took over the lease of crawl a on host-a (pid 100), silent since {since}"
    assert result.message() == message
    assert message in caplog.messages
    [run] = catalog.runs("tdi")
    assert (run.result, run.failure) == ("killed", LEASE_LOST)
    assert run.finished == iso(T0 + timedelta(seconds=20))  # the last time it was seen alive
    # The old holder learns it lost the lease; its release changes nothing.
    assert not catalog.renew_lease("tdi", "a", TTL, now=T0 + timedelta(seconds=81))
    catalog.release_lease("tdi", "a", now=T0 + timedelta(seconds=82))
    lease = catalog.lease("tdi")
    assert lease is not None and lease.crawl_id == "b" and lease.live(T0 + timedelta(seconds=82))


def test_a_released_lease_is_free_at_once(catalog: Catalog) -> None:
    catalog.start_run(run_row("a", T0))
    take(catalog, "a", T0)
    catalog.release_lease("tdi", "a", now=T0 + timedelta(seconds=10))
    released = catalog.lease("tdi")
    assert released is not None and released.released == iso(T0 + timedelta(seconds=10))
    assert not released.live(T0 + timedelta(seconds=10))
    result = take(catalog, "b", T0 + timedelta(seconds=10))
    assert result.taken and result.took_over is None
    assert result.lease.taken == iso(T0 + timedelta(seconds=10))
    # The run that released is finishing, not dead: left to record its own end.
    assert catalog.runs("tdi")[0].result == "running"


def test_a_scheduled_start_runs_once(catalog: Catalog) -> None:
    due, next_due = "2026-11-23T12:00:00Z", "2026-11-23T13:00:00Z"
    first = take(catalog, "replica1-run", T0, start=due)
    assert first.taken and first.lease.last_start == due
    # The crawl itself (same crawl id) takes the lease again for its start: still its own.
    assert take(catalog, "replica1-run", T0 + timedelta(seconds=1), start=due).taken
    # It finishes before the second replica gets to that start.
    catalog.release_lease("tdi", "replica1-run", now=T0 + timedelta(seconds=5))
    late = take(catalog, "replica2-run", T0 + timedelta(seconds=6), start=due)
    assert not late.taken and late.already_started
    assert (
        late.message()
        == f"tdi: start {due} already taken by crawl replica1-run on host-replica1-run (pid 100)"
    )
    assert not take(catalog, "replica2-old", T0, start="2026-11-23T11:00:00Z").taken
    # A crawl without a start (`newsarchive crawl` by hand) takes a free lease; the start stays.
    by_hand = take(catalog, "hand", T0 + timedelta(seconds=7))
    assert by_hand.taken and by_hand.lease.last_start == due
    catalog.release_lease("tdi", "hand", now=T0 + timedelta(seconds=8))
    later = take(catalog, "replica2-next", T0 + timedelta(hours=1), start=next_due)
    assert later.taken and later.lease.last_start == next_due


def test_leases_on_the_catalogs_clock(catalog: Catalog) -> None:
    """Without ``now``: the database's clock on PostgreSQL (one for all machines), else ours."""
    before = datetime.now(UTC) - timedelta(seconds=5)
    result = catalog.take_lease("tdi", crawl_id="a", host="m", pid=1, ttl=TTL)
    assert result.taken
    assert iso(before + TTL) <= result.lease.expires <= iso(before + TTL + timedelta(seconds=65))
    assert catalog.renew_lease("tdi", "a", TTL)
    catalog.release_lease("tdi", "a")
    assert catalog.take_lease("tdi", crawl_id="b", host="m", pid=2, ttl=TTL).taken


def _race_for_a_start(index: int, barrier: Any, url: str, now: datetime, start: str) -> Any:
    catalog = Catalog(url)
    barrier.wait(60)
    result = catalog.take_lease(
        "tdi",
        crawl_id=f"replica{index}",
        host=f"m{index}",
        pid=index,
        ttl=TTL,
        now=now,
        start=start,
    )
    if result.taken:
        # Done at once: the start must stay taken for the replicas that come later.
        catalog.release_lease("tdi", f"replica{index}", now=now)
    catalog.close()
    return result.taken, result.already_started, result.took_over


def test_replicas_racing_for_one_start_run_it_once(catalog_url: str) -> None:
    found = in_processes(_race_for_a_start, catalog_url, T0, "2026-11-23T12:00:00Z")
    assert sorted(taken for taken, _, _ in found) == [False] * (PROCESSES - 1) + [True]
    assert all(took_over is None for _, _, took_over in found)


def test_replicas_racing_to_take_over_a_dead_holder(catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    catalog.start_run(run_row("dead", T0))
    take(catalog, "dead", T0)
    found = in_processes(_race_for_a_start, catalog_url, T0 + TTL, "2026-11-23T12:01:00Z")
    assert sorted(taken for taken, _, _ in found) == [False] * (PROCESSES - 1) + [True]
    [took_over] = [took_over for taken, _, took_over in found if taken]
    assert took_over.crawl_id == "dead"
    [run] = catalog.runs("tdi")
    assert (run.result, run.failure) == ("killed", LEASE_LOST)
    catalog.close()


def test_runs_whose_process_is_gone_are_marked_killed(catalog: Catalog) -> None:
    now = T0 + timedelta(hours=1)
    # live: holds a live lease; silent: its lease expired long ago; lost: took no lease and
    # started long ago; young: took no lease yet, started a moment ago; done: finished.
    for crawl_id, started, site in [
        ("live", T0, "tdi"),
        ("silent", T0, "irna"),
        ("lost", T0, "kayhan"),
        ("young", now - timedelta(seconds=5), "kayhan"),
        ("done", T0, "tdi"),
    ]:
        catalog.start_run(run_row(crawl_id, started, site))
    catalog.finish_run(Run("done", "tdi", "schedule", iso(T0), result="ok"))
    catalog.take_lease("irna", crawl_id="silent", host="m1", pid=1, ttl=TTL, now=T0)
    catalog.take_lease("tdi", crawl_id="live", host="m2", pid=2, ttl=TTL, now=T0)
    assert catalog.renew_lease("tdi", "live", TTL, now=now)
    assert catalog.mark_dead_runs(TTL, now=now) == ["lost", "silent"]
    results = {run.crawl_id: (run.result, run.failure) for run in catalog.runs(limit=10)}
    assert results == {
        "live": ("running", None),
        "silent": ("killed", LEASE_LOST),
        "lost": ("killed", NO_LEASE),
        "young": ("running", None),
        "done": ("ok", None),
    }
    assert catalog.mark_dead_runs(TTL, now=now) == []
    # A run marked by mistake (it ran on without a lease) records its own end over it.
    catalog.finish_run(Run("lost", "tdi", "schedule", iso(T0), result="ok"))
    assert {r.crawl_id: r.result for r in catalog.runs(limit=10)}["lost"] == "ok"


def test_a_run_that_released_its_lease_has_a_ttl_to_record_its_end(catalog: Catalog) -> None:
    catalog.start_run(run_row("a", T0))
    take(catalog, "a", T0)
    catalog.release_lease("tdi", "a", now=T0 + timedelta(minutes=30))
    assert catalog.mark_dead_runs(TTL, now=T0 + timedelta(minutes=30, seconds=59)) == []
    assert catalog.mark_dead_runs(TTL, now=T0 + timedelta(minutes=31)) == ["a"]
    [run] = catalog.runs()
    assert (run.result, run.failure, run.finished) == (
        "killed",
        NO_LEASE,
        iso(T0 + timedelta(minutes=30)),
    )


# ---------------------------------------------------------------------------------- schema


def _open_catalog(index: int, barrier: Any, url: str) -> str:
    barrier.wait(60)
    Catalog(url).close()
    return "ok"


def test_ten_first_starts_at_once_create_the_schema_once(catalog_url: str) -> None:
    assert in_processes(_open_catalog, catalog_url) == ["ok"] * PROCESSES
    engine = create_engine(catalog_url)
    with engine.connect() as conn:
        # SQLite's full-text index is a virtual table with shadow tables of its own.
        found = {t for t in inspect(conn).get_table_names() if not t.startswith("texts_fts")}
        assert found == set(metadata.tables)
        rows = conn.execute(text("SELECT value FROM catalog_info WHERE name = 'schema_version'"))
        assert rows.scalars().all() == [str(SCHEMA_VERSION)]
    engine.dispose()


def test_a_catalog_of_an_older_newsarchive_is_upgraded(catalog_url: str) -> None:
    """A catalog made before leases: no site_leases table, a column missing, schema 1."""
    engine = create_engine(catalog_url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE site_leases")
        for table in ("texts", "text_bands", "text_names", "text_links"):
            conn.exec_driver_sql(f"DROP TABLE {table}")  # schema 2 had no text index
        conn.exec_driver_sql("ALTER TABLE runs DROP COLUMN pending_uploads")
        conn.exec_driver_sql(
            "INSERT INTO runs (crawl_id, site, trigger, started, result) "
            "VALUES ('old', 'tdi', 'schedule', '2026-01-01T00:00:00Z', 'ok')"
        )
        conn.exec_driver_sql("INSERT INTO catalog_info VALUES ('schema_version', '1')")
    catalog = Catalog(catalog_url)
    assert [(r.crawl_id, r.pending_uploads) for r in catalog.runs()] == [("old", None)]
    assert take(catalog, "a", T0).taken
    with engine.connect() as conn:
        found = conn.exec_driver_sql(
            "SELECT value FROM catalog_info WHERE name = 'schema_version'"
        ).scalar()
    assert found == str(SCHEMA_VERSION)
    # The text index came with the upgrade: a text recorded now is searchable.
    catalog.record_text(
        TextRecord(
            site="tdi",
            article_key="k",
            url="https://tdi.example/k",
            capture_time="2026-01-02T00:00:00Z",
            text_digest="sha256:k",
            text_key="text/tdi/k.txt",
            body="Headline\n\nWords of an upgraded catalog.\n",
        )
    )
    assert [h.article_key for h in search(catalog, SearchQuery("upgraded"))] == ["k"]
    catalog.close()
    engine.dispose()


def test_a_catalog_of_a_newer_newsarchive_is_refused(catalog_url: str) -> None:
    Catalog(catalog_url).close()
    engine = create_engine(catalog_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE catalog_info SET value = '99' WHERE name = 'schema_version'")
    engine.dispose()
    with pytest.raises(ValueError, match="has schema 99, newer than this newsarchive"):
        Catalog(catalog_url)


# ---------------------------------------------------------------------------------- versions

KEYS = [f"article-{n}" for n in range(20)]
WRITERS = 4


def _text(key: str, article_key: str, digest: str) -> TextRecord:
    """A text of ``key``'s page (``article_key``: the key or its "-same" twin)."""
    return TextRecord(
        site="tdi",
        article_key=article_key,
        url=f"https://x/{key}/",
        capture_time=iso(T0),
        text_digest=digest,
        text_key=f"text/{digest}",
    )


def _record_texts(index: int, barrier: Any, url: str) -> list[tuple[str, int, bool]]:
    """Every writer records its own text (a new version each) under each key, and under each
    key's "-same" twin the one text they all share."""
    catalog = Catalog(url)
    found = []
    barrier.wait(60)
    for key in KEYS:
        for article_key, digest in [(key, f"d{index}"), (f"{key}-same", "same")]:
            version, new = catalog.record_text(_text(key, article_key, digest))
            found.append((article_key, version, new))
    catalog.close()
    return found


@pytest.mark.parametrize("archived", [False, True], ids=["new", "archived"])
def test_versions_decided_by_processes_at_once_never_collide(
    catalog_url: str, archived: bool
) -> None:
    """New articles race for version 1 (and on), archived ones (version 1 there) for 2."""
    catalog = Catalog(catalog_url)  # the schema made first: this test is about versions
    first = 1 if archived else 0
    for key in KEYS if archived else []:
        for article_key, digest in [(key, "d-first"), (f"{key}-same", "same")]:
            catalog.record_text(_text(key, article_key, digest))
    decided: dict[str, list[tuple[int, bool]]] = {}
    for found in in_processes(_record_texts, catalog_url, count=WRITERS):
        for key, version, new in found:
            decided.setdefault(key, []).append((version, new))
    for key in KEYS:
        assert sorted(decided[key]) == [(first + v, True) for v in range(1, WRITERS + 1)], key
        article = catalog.article("tdi", key)
        assert article is not None and article.version == first + WRITERS
        # One new version 1 when none was there; the same text only checked otherwise.
        same = [(1, False)] * (WRITERS - 1) + [(1, not archived)]
        assert sorted(decided[f"{key}-same"]) == same
    catalog.close()


# ---------------------------------------------------------------------------------- store


def test_a_catalog_is_bound_to_one_store(catalog: Catalog) -> None:
    assert catalog.store_binding() is None
    catalog.bind_store("store-1", "s3://bucket-a/news")
    catalog.bind_store("store-1", "s3://bucket-a/news")
    assert catalog.store_binding() == ("store-1", "s3://bucket-a/news")
    # The same store reached at another address: still this catalog's, at its new address.
    catalog.bind_store("store-1", "s3://bucket-a/news-moved")
    assert catalog.store_binding() == ("store-1", "s3://bucket-a/news-moved")
    with pytest.raises(CatalogMismatch) as refused:
        catalog.bind_store("store-2", "s3://bucket-b/news")
    message = str(refused.value)
    assert "\n" not in message
    assert message == (
        f"the catalog {catalog} describes the store s3://bucket-a/news-moved (id store-1), "
        "not s3://bucket-b/news (id store-2): give this store its own catalog"
    )
    assert isinstance(refused.value, ValueError)
    other = Catalog(catalog.url)  # another machine's view
    assert other.store_binding() == ("store-1", "s3://bucket-a/news-moved")
    other.close()
