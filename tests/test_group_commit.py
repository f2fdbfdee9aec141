"""The catalog's group commit of a crawl's new texts (issue 22): ``Catalog.record_texts`` records
several texts in one transaction, deciding each as ``record_text`` does; the crawl's
``TextRecorder`` commits them a batch at a time and tells each caller when its text is in. A
crawl killed before a batch went in loses none of its texts: the next one records them.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from crawler.catalog.db import Catalog, StoryKeys, TextRecord, iso, texts
from crawler.crawl.catalog import TextRecorder
from crawler.layout import default_catalog_url, sidecar_key, sqlite_url
from tests.conftest import SeaweedFS, s3_env
from tests.crawl_helper import run_crawl, start_crawl
from tests.group_commit_hooks import ENV, NOTE
from tests.test_catalog_fleet import KEYS, T0, WRITERS, catalog_url, in_processes
from tests.test_crash_recovery import SITE, mirror

__all__ = ["catalog_url", "mirror"]  # fixtures of other test modules, used here

MirrorServer = Any


def record(article_key: str, digest: str, *, body: str | None = None, site: str = "tdi") -> Any:
    return TextRecord(
        site=site,
        article_key=article_key,
        url=f"https://x/{article_key}/",
        capture_time=iso(T0),
        text_digest=digest,
        text_key=f"text/{site}/{article_key}/{digest}.txt",
        title=f"Title {article_key}",
        body=body,
    )


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    opened = Catalog(sqlite_url(tmp_path / "catalog.sqlite"))
    yield opened
    opened.close()


# ------------------------------------------------------------------ Catalog.record_texts


def test_a_batch_is_decided_text_by_text_as_record_text_decides(catalog: Catalog) -> None:
    catalog.record_text(record("old", "d1", body="The old text."))
    batch = [
        record("new", "a", body="A first text."),
        record("new", "b", body="Its second version."),  # the batch's own earlier text counts
        record("new", "b"),  # the same text again: only checked
        record("old", "d1"),  # unchanged
        record("old", "d2", body="A revised old text."),
    ]
    assert catalog.record_texts(batch) == [(1, True), (2, True), (2, False), (1, False), (2, True)]
    new, old = catalog.article("tdi", "new"), catalog.article("tdi", "old")
    assert new is not None and (new.version, new.text_digest) == (2, "b")
    assert old is not None and (old.version, old.text_digest) == (2, "d2")
    with catalog.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(texts)).scalar() == 4
    # The full-text index has the batch's texts.
    assert catalog.text_id("text/tdi/new/b.txt") is not None


def test_a_batch_that_loses_a_write_is_undone_and_recorded_one_by_one(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process wrote one of the articles between its read and its write: nothing of
    the batch is kept, and each text is recorded on its own (none twice, none lost)."""
    record_in = Catalog._record_in
    calls = {"n": 0}

    def losing_the_second(self: Catalog, conn: Any, one: TextRecord, **kwargs: Any) -> Any:
        calls["n"] += 1
        return None if calls["n"] == 2 else record_in(self, conn, one, **kwargs)

    monkeypatch.setattr(Catalog, "_record_in", losing_the_second)
    batch = [record(f"k{n}", f"d{n}", body=f"Text {n}.") for n in range(3)]
    assert catalog.record_texts(batch) == [(1, True)] * 3
    assert calls["n"] == 2 + 3  # the batch undone at its second text, then one by one
    with catalog.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(texts)).scalar() == 3


def test_a_batch_whose_new_text_finds_key_rows_under_its_id_is_recorded_alone(
    catalog: Catalog,
) -> None:
    """A batch inserts a new text's story keys without first deleting any under its id (none
    can be there unless a row was removed by hand and its id reused): if some are, the batch
    fails on them and the text is recorded on its own, its keys replacing them."""
    from crawler.access.stories import story_keys
    from crawler.catalog.db import text_bands

    body = "Talks in Muscat. " * 20
    catalog.record_texts([record("first", "d1", body=body + "First.")])
    first = catalog.text_id("text/tdi/first/d1.txt")
    assert first is not None
    with catalog.engine.begin() as conn:  # left under the id the next text gets
        conn.execute(text_bands.insert().values(text_id=first + 1, band=0, hash=7, site="x"))
    keys = story_keys(body + "Second.")
    second = dataclasses.replace(record("second", "d2", body=body + "Second."), story_keys=keys)
    assert catalog.record_texts([second]) == [(1, True)]
    assert catalog.text_id("text/tdi/second/d2.txt") == first + 1
    with catalog.engine.connect() as conn:
        rows = conn.execute(
            select(text_bands.c.band, text_bands.c.hash, text_bands.c.site).where(
                text_bands.c.text_id == first + 1
            )
        ).all()
    assert sorted(rows) == [(band, value, "tdi") for band, value in keys.bands]


def _record_batches(index: int, barrier: Any, url: str) -> list[tuple[str, int, bool]]:
    """As test_catalog_fleet's writers, each its own text under each key and the shared one
    under each "-same" key, but four keys' texts to a transaction."""
    catalog = Catalog(url)
    batch = []
    for key in KEYS:
        batch += [record(key, f"d{index}"), record(f"{key}-same", "same")]
    barrier.wait(60)
    found = []
    for start in range(0, len(batch), 8):
        part = batch[start : start + 8]
        decided = catalog.record_texts(part)
        found += [(r.article_key, v, new) for r, (v, new) in zip(part, decided, strict=True)]
    catalog.close()
    return found


def test_batches_of_processes_at_once_never_collide(catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    decided: dict[str, list[tuple[int, bool]]] = {}
    for found in in_processes(_record_batches, catalog_url, count=WRITERS):
        for key, version, new in found:
            decided.setdefault(key, []).append((version, new))
    for key in KEYS:
        assert sorted(decided[key]) == [(v, True) for v in range(1, WRITERS + 1)], key
        article = catalog.article("tdi", key)
        assert article is not None and article.version == WRITERS
        assert sorted(decided[f"{key}-same"]) == [(1, False)] * (WRITERS - 1) + [(1, True)]
    catalog.close()


# ------------------------------------------------------------------ TextRecorder


class Counting(Catalog):
    """A catalog that keeps the size of each batch it was given."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.batches: list[int] = []

    def record_texts(self, records: Any) -> list[tuple[int, bool]]:
        self.batches.append(len(records))
        return super().record_texts(records)


def test_the_recorder_commits_full_batches_and_the_rest_at_close(tmp_path: Path) -> None:
    catalog = Counting(sqlite_url(tmp_path / "catalog.sqlite"))
    recorder = TextRecorder(catalog, batch=2, seconds=60)
    futures = [recorder.submit(record(f"k{n}", "d", body=f"Text {n}.")) for n in range(5)]
    recorder.close()
    assert [f.result(0) for f in futures] == [(1, True)] * 5
    assert catalog.batches == [2, 2, 1]
    assert len(catalog.known_keys("tdi")) == 5
    catalog.close()


def test_a_lone_text_goes_in_after_the_wait(tmp_path: Path) -> None:
    catalog = Counting(sqlite_url(tmp_path / "catalog.sqlite"))
    recorder = TextRecorder(catalog, batch=50, seconds=0.05)
    done = recorder.submit(record("alone", "d", body="Alone."))
    assert done.result(30) == (1, True)  # not closed: it went in by itself
    assert catalog.batches == [1]
    recorder.close()
    catalog.close()


def test_a_failed_write_fails_every_text_of_its_batch(tmp_path: Path) -> None:
    class Failing(Catalog):
        def record_texts(self, records: Any) -> list[tuple[int, bool]]:
            raise OperationalError("INSERT", {}, Exception("database or disk is full"))

    catalog = Failing(sqlite_url(tmp_path / "catalog.sqlite"))
    recorder = TextRecorder(catalog, batch=3, seconds=60)
    futures = [recorder.submit(record(f"k{n}", "d", body="x")) for n in range(3)]
    recorder.close()
    for future in futures:
        with pytest.raises(OperationalError, match="disk is full"):
            future.result(0)
    catalog.close()


def test_committed_new_texts_are_linked_after_their_batch(tmp_path: Path) -> None:
    catalog = Catalog(sqlite_url(tmp_path / "catalog.sqlite"))
    catalog.record_text(record("seen", "d", body="Seen before."))
    linked: list[tuple[str, int | None]] = []
    lock = threading.Lock()

    def link(key: str, keys: StoryKeys) -> None:
        with lock:  # each text is in the catalog when it is linked
            linked.append((key, catalog.text_id(key)))

    keys = StoryKeys([(0, 1)], [], "test")
    recorder = TextRecorder(catalog, batch=3, seconds=60, link=link)
    batch = [
        TextRecord(**{**_fields(record("seen", "d", body="Seen before.")), "story_keys": keys}),
        TextRecord(**{**_fields(record("a", "d", body="New a.")), "story_keys": keys}),
        record("b", "d", body="New b, no keys."),
    ]
    futures: list[Future[tuple[int, bool]]] = [recorder.submit(one) for one in batch]
    recorder.close()
    assert [f.result(0) for f in futures] == [(1, False), (1, True), (1, True)]
    assert [key for key, _id in linked] == ["text/tdi/a/d.txt"]
    assert all(text_id is not None for _key, text_id in linked)
    catalog.close()


def _fields(one: TextRecord) -> dict[str, Any]:
    return {name: getattr(one, name) for name in TextRecord.__dataclass_fields__}


# ------------------------------------------------------------------ a real crawl, killed


@pytest.mark.slow
@pytest.mark.parametrize("store_kind", ["s3", "local"])
def test_a_crawl_killed_before_its_texts_batch_committed_loses_none_of_them(
    mirror: MirrorServer, tmp_path: Path, store_kind: str, request: pytest.FixtureRequest
) -> None:
    """SIGKILL just before the catalog commits a batch of three new texts, each written whole
    (held in the spool for S3, nothing of them gone up; in a local store, journaled): the
    catalog knows none of them; the next crawl records each as version 1 (its text
    searchable), and the store holds it once, with no second version."""
    spool = tmp_path / "spool"
    aws: dict[str, str] = {}
    if store_kind == "s3":
        seaweedfs: SeaweedFS = request.getfixturevalue("seaweedfs")
        bucket = seaweedfs.new_bucket()
        store_uri, prefix = f"s3://{bucket}/k", "k/"
        aws = {k: v for k, v in s3_env(seaweedfs.endpoint).items() if k.startswith("AWS_")}
        client = seaweedfs.client()

        def stored() -> list[str]:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            return [o["Key"] for page in pages for o in page.get("Contents", [])]

        url = default_catalog_url(None, spool, store_uri)
    else:
        store = tmp_path / "store"
        store_uri, prefix = str(store), ""

        def stored() -> list[str]:
            return [
                p.relative_to(store).as_posix()
                for p in store.rglob("*")
                if p.is_file() and not p.name.startswith(".")
            ]

        url = default_catalog_url(store, spool, store_uri)
    settings = {
        "ARCHIVE_STORE_URI": store_uri,
        "ARCHIVE_PROXY": mirror.proxy_url,
        "ARCHIVE_SPOOL_DIR": str(spool),
    }
    note = tmp_path / "batch.txt"
    proc = start_crawl(
        "tests.group_commit_hooks:SlowSiteSpider",
        tmp_path / "killed.json",
        settings=settings,
        env={**aws, ENV: "3", NOTE: str(note)},
    )
    try:
        assert proc.wait(120) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    pending = note.read_text().split()
    assert len(pending) == 3
    articles = {key: Path(key).name.removesuffix(".txt") for key in pending}

    catalog = Catalog(url)
    try:
        assert all(catalog.article(SITE, a) is None for a in articles.values())
    finally:
        catalog.close()
    if store_kind == "s3":
        spooled = {p.relative_to(spool).as_posix() for p in spool.rglob("*") if p.is_file()}
        for key in pending:  # whole in the spool, text and sidecar
            for name in (key, sidecar_key(key)):
                assert any(path.endswith(name) for path in spooled), name
        assert not any(f"{prefix}{key}" in stored() for key in pending)  # held: none went up
    else:
        assert all(key in stored() and sidecar_key(key) in stored() for key in pending)

    result = run_crawl(
        "SlowSiteSpider",
        tmp_path / "next.json",
        settings=settings,
        env=aws,
        spider_args={"max_articles": "2"},
    )
    assert result.exit_code == 0, result.stderr[-3000:]
    assert "ERROR" not in result.stderr, result.stderr[-3000:]
    catalog = Catalog(url)
    try:
        for key, article_key in articles.items():
            article = catalog.article(SITE, article_key)
            assert article is not None, article_key
            assert (article.version, article.text_key) == (1, key)
            assert catalog.text_id(key) is not None  # its text is in the search index
    finally:
        catalog.close()
    keys = stored()
    for key, article_key in articles.items():
        assert f"{prefix}{key}" in keys and f"{prefix}{sidecar_key(key)}" in keys
        # Archived once: no other text of the article (no second version).
        mine = [k for k in keys if k.endswith((f"/{article_key}.txt", f"/{article_key}.v2.txt"))]
        assert mine == [f"{prefix}{key}"]
    # The next crawl ended with all its texts committed: no journal left.
    assert not [p for p in spool.rglob("*.keys")]
