"""How ``newsarchive reextract`` shares its records among pool processes (issue 21): tasks of
about equal work cut from each WARC file in offset order, tasks and answers as plain tuples
(a text equal to the article's comes back as its id and counts only), the pool started as the
run starts and its processes gone once it is closed; a two-worker run decides every record as
one worker does, a changed text among unchanged ones included.
"""

from __future__ import annotations

import dataclasses
import pickle
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from crawler.crawl.reextract import (
    _TASK_RECORDS,
    _TASKS_PER_WORKER,
    Reextractor,
    Selection,
    _Workers,
    select_items,
    slice_tasks,
)
from crawler.crawl.reextract_worker import (
    Extracted,
    GroupTask,
    Place,
    RecordReader,
    RecordTask,
    answer,
    pack,
    ready,
    unpack,
)


def _record(n: int, key: str, length: int, fallback: bool = False) -> RecordTask:
    place = Place(f"<urn:uuid:{n:032d}>", "response", key, 1000 * n, length)
    dom = Place(f"<urn:uuid:{n:031d}d>", "resource", key, 1000 * n + 500, 90) if fallback else None
    return RecordTask(
        f"<urn:uuid:c{n:031d}>", "tdi", f"https://x.test/{n}/", place, dom, "sha256:a"
    )


def test_tasks_are_cut_by_bytes_in_offset_order_within_one_file() -> None:
    """Every record once, each task of one file in offset order, none past 256 records, none
    under 8 but a file's last, and none much over its share of the bytes (a share plus one
    record): two workers' last tasks end close together."""
    sizes = [300 + (n * 7919) % 9000 for n in range(1500)]  # mixed sizes, as the mirror's
    groups: dict[str, list[RecordTask]] = {}
    for n, size in enumerate(sizes):
        key = f"warc/site{n % 3}/f.warc.gz"
        groups.setdefault(key, []).append(_record(n, key, size))
    for records in groups.values():
        records.reverse()  # given out of order: the tasks are in offset order all the same
    tasks = slice_tasks(groups, 2)
    ids = [r.record_id for t in tasks for r in t.records]
    assert sorted(ids) == sorted(r.record_id for g in groups.values() for r in g)
    assert len(ids) == len(set(ids))
    low, high = _TASK_RECORDS
    share = sum(sizes) / (2 * _TASKS_PER_WORKER)
    for task in tasks:
        offsets = [r.read.offset for r in task.records]
        assert offsets == sorted(offsets)
        assert {r.read.warc_key for r in task.records} == {task.warc_key}
        assert len(task.records) <= high
        last = task.records[-1] is max(groups[task.warc_key], key=lambda r: r.read.offset)
        assert len(task.records) >= low or last
        assert sum(r.read.length for r in task.records) < share + max(sizes)
    assert len(tasks) >= 2 * _TASKS_PER_WORKER - 3  # at least the share a worker, give or take a
    # file's remainder
    # One worker: the whole file in tasks of 256.
    single = slice_tasks(groups, 1)
    assert [len(t.records) for t in single] == [256, 244] * 3


def test_tasks_and_answers_cross_as_tuples_and_come_back_the_same() -> None:
    records = (_record(1, "warc/a.warc.gz", 10), _record(2, "warc/a.warc.gz", 20, fallback=True))
    task = GroupTask("warc/a.warc.gz", records)
    packed = pack(task)
    assert unpack(pickle.loads(pickle.dumps(packed))) == task
    # Tuples and strings only: nothing of this module's classes in the pickle.
    assert b"reextract_worker" not in pickle.dumps(packed)
    same = Extracted("a", digest="sha256:a", reads=1, bytes_read=10, source=records[0].read)
    failed = Extracted("b", "digest-mismatch", "bad", reads=1, bytes_read=20)
    changed = Extracted("c", digest="sha256:c", text=b"new", reads=2, bytes_read=30)
    changed.article = object()  # type: ignore[assignment]  # any article: it travels whole
    kept, rest = answer([same, failed, changed])
    assert kept == [("a", 1, 10)]
    assert rest == [failed, changed]


def test_a_started_pool_answers_and_its_processes_exit_when_closed(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from crawler.store.base import LocalStore

    # What _Workers reads of its Reextractor.
    owner = SimpleNamespace(
        store=LocalStore(tmp_path), store_options={}, rules={}, mode="article", workers=2
    )
    workers = _Workers(owner)  # type: ignore[arg-type]
    workers.start()
    pool = workers.take_pool()
    assert pool is not None and workers.take_pool() is None  # given out once
    assert pool.submit(ready).result(timeout=120) is None
    pids = list(pool._processes)
    assert len(pids) == 2
    pool.shutdown(wait=False)
    workers.close()
    deadline = time.monotonic() + 60
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_running(pid) for pid in pids)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Forty records of six synthetic TDI pages (gzipped as served) with their texts."""
    from bench.reextract import build, site_rules, synthetic_pages

    rules = site_rules()
    root = tmp_path_factory.mktemp("pool")
    store, catalog = build(root, synthetic_pages(rules, 6), 40)
    yield store, catalog, rules
    catalog.close()


def test_two_workers_decide_every_record_as_one_does(archive: Any) -> None:
    """A dry run where some articles' texts in the catalog differ from what the pages give:
    those texts come back whole from the pool, the rest as ids; the same outcomes, reads,
    bytes and changes as one worker."""
    from sqlalchemy import update

    from crawler.catalog.db import articles

    store, catalog, rules = archive
    items = select_items(catalog, Selection())
    stale = sorted(str(i.capture.article_key) for i in items)[::7]
    keep = {i.capture.article_key: i.current.text_digest for i in items if i.current}
    with catalog.engine.begin() as conn:
        conn.execute(
            update(articles)
            .where(articles.c.article_key.in_(stale))
            .values(text_digest="sha256:" + "0" * 64)
        )
    try:
        one = Reextractor(store, catalog, rules, workers=1).run(Selection(), dry_run=True)
        two = Reextractor(store, catalog, rules, workers=2).run(Selection(), dry_run=True)
    finally:
        with catalog.engine.begin() as conn:
            for key in stale:
                conn.execute(
                    update(articles)
                    .where(articles.c.article_key == key)
                    .values(text_digest=keep[key])
                )
    assert (one.changed, one.unchanged, one.failed) == (len(stale), 40 - len(stale), 0)
    for summary in (one, two):
        summary.seconds = 0.0
    assert one.counts() == two.counts()
    assert sorted(c.article_key for c in two.changes) == stale
    assert sorted(dataclasses.astuple(c) for c in one.changes) == sorted(
        dataclasses.astuple(c) for c in two.changes
    )
    # The catalog as it was: every record unchanged, each counted once with its bytes.
    again = Reextractor(store, catalog, rules, workers=2).run(Selection())
    assert again.unchanged == len(items) == 40
    assert again.reads == 40
    assert again.bytes_read == sum(i.source.warc_length for i in items if i.source)


def test_a_reader_answer_equals_its_group(archive: Any) -> None:
    store, catalog, rules = archive
    engine = Reextractor(store, catalog, rules, workers=1)
    tasks = engine._tasks(select_items(catalog, Selection()), set())
    reader = RecordReader(store, rules, "article")
    for task in tasks:
        results = reader.group(task)
        same, rest = answer(results)
        assert not rest
        assert Counter(r for r, _reads, _size in same) == Counter(g.record_id for g in results)
        assert [(n, s) for _r, n, s in same] == [(g.reads, g.bytes_read) for g in results]
