"""The catalog on SQLite: captures, text versions, revisits and revision ages."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crawler.catalog.db import Capture, Catalog, TextRecord, iso
from crawler.layout import sqlite_url

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def capture(n: int, **over: object) -> Capture:
    values: dict[str, object] = {
        "record_id": f"<urn:uuid:00000000-0000-4000-8000-{n:012d}>",
        "crawl_id": "tdi-1",
        "site": "tdi",
        "url": "https://thediplomaticinsight.com/a/",
        "article_key": "a",
        "capture_time": iso(T0 + timedelta(minutes=n)),
        "status": 200,
        "record_type": "response",
        "payload_digest": "sha1:AAAA",
        "warc_key": "warc/tdi/2026/11/23/tdi-1.warc.gz",
        "warc_offset": 100 * n,
        "warc_length": 90,
    }
    values.update(over)
    return Capture(**values)  # type: ignore[arg-type]


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog(sqlite_url(tmp_path / "catalog.sqlite"))


def test_captures_are_recorded_once(catalog: Catalog) -> None:
    assert catalog.add_capture(capture(1))
    assert not catalog.add_capture(capture(1))  # the same record id: a re-run
    assert catalog.add_capture(capture(2, url="https://thediplomaticinsight.com/b/"))
    assert [c.record_id for c in catalog.captures(site="tdi")] == [
        capture(1).record_id,
        capture(2).record_id,
    ]
    only_a = list(catalog.captures(url="https://thediplomaticinsight.com/a/"))
    assert only_a == [capture(1)]
    assert list(catalog.captures(since=iso(T0 + timedelta(minutes=2)))) == [
        capture(2, url="https://thediplomaticinsight.com/b/")
    ]


def test_text_versions(catalog: Catalog) -> None:
    args = {"site": "tdi", "article_key": "a", "url": "https://x/a/", "text_key": "text/a.txt"}
    assert catalog.record_text(
        TextRecord(capture_time=iso(T0), text_digest="sha256:1", **args)
    ) == (1, True)
    # The same text later: still version 1, only checked.
    later = iso(T0 + timedelta(hours=2))
    assert catalog.record_text(TextRecord(capture_time=later, text_digest="sha256:1", **args)) == (
        1,
        False,
    )
    state = catalog.article("tdi", "a")
    assert state is not None
    assert (state.version, state.first_captured, state.last_checked) == (1, iso(T0), later)
    # Edited text: version 2.
    assert catalog.record_text(
        TextRecord(capture_time=iso(T0 + timedelta(days=1)), text_digest="sha256:2", **args)
    ) == (2, True)
    assert catalog.known_keys("tdi") == {"a"}
    assert catalog.known_keys("irna") == set()


def test_payload_capture_finds_the_earliest_response(catalog: Catalog) -> None:
    catalog.add_capture(capture(3))
    catalog.add_capture(capture(1))
    catalog.add_capture(capture(2, record_type="revisit"))
    found = catalog.payload_capture("https://thediplomaticinsight.com/a/", "sha1:AAAA")
    assert found is not None and found.record_id == capture(1).record_id
    assert catalog.payload_capture("https://thediplomaticinsight.com/a/", "sha1:BBBB") is None


@pytest.mark.parametrize(
    ("first_age", "checked_after_first", "due"),
    [
        (timedelta(minutes=30), timedelta(0), False),  # younger than the first age
        (timedelta(hours=2), timedelta(0), True),  # past 1 h, never re-checked
        (timedelta(hours=2), timedelta(hours=1, minutes=5), False),  # checked after 1 h
        (timedelta(days=2), timedelta(hours=1, minutes=5), True),  # past 1 day since
        (timedelta(days=30), timedelta(days=7, minutes=1), False),  # all ages done
        (timedelta(days=30), timedelta(days=2), True),  # the 7-day check never ran
    ],
)
def test_due_for_revision(
    catalog: Catalog, first_age: timedelta, checked_after_first: timedelta, due: bool
) -> None:
    now = T0 + timedelta(days=60)
    first = now - first_age
    args = {"site": "tdi", "article_key": "a", "url": "https://x/a/", "text_key": "k"}
    catalog.record_text(TextRecord(capture_time=iso(first), text_digest="d", **args))
    if checked_after_first:
        catalog.record_text(
            TextRecord(capture_time=iso(first + checked_after_first), text_digest="d", **args)
        )
    assert [a.article_key for a in catalog.due_for_revision("tdi", now)] == (["a"] if due else [])


def test_concurrent_writers_and_a_second_connection(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "c.sqlite")
    catalog = Catalog(url)
    threads = [
        threading.Thread(
            target=lambda i=i: [catalog.add_capture(capture(i * 100 + j)) for j in range(50)]
        )
        for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reader = Catalog(url)
    assert len(list(reader.captures())) == 200


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        iso(datetime(2026, 1, 1))


def test_the_same_catalog_on_postgresql(postgres_url: str) -> None:
    """Any SQLAlchemy URL: a real PostgreSQL server, shared by two catalog instances."""
    catalog = Catalog(postgres_url)
    assert catalog.add_capture(capture(1))
    assert not catalog.add_capture(capture(1))
    args = {"site": "tdi", "article_key": "a", "url": "https://x/a/", "text_key": "k"}
    assert catalog.record_text(TextRecord(capture_time=iso(T0), text_digest="d1", **args)) == (
        1,
        True,
    )
    assert catalog.record_text(TextRecord(capture_time=iso(T0), text_digest="d2", **args)) == (
        2,
        True,
    )
    other = Catalog(postgres_url)  # another process's view, e.g. a second machine
    state = other.article("tdi", "a")
    assert state is not None and state.version == 2
    assert [c.record_id for c in other.captures(site="tdi")] == [capture(1).record_id]
    other.set_validators({"https://x/feed/": ('"e1"', None)}, iso(T0))
    assert catalog.get_validators(["https://x/feed/"]) == {"https://x/feed/": ('"e1"', None)}
    catalog.close()
    other.close()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_gone_keys_are_the_articles_whose_last_answer_was_404_or_410(
    request: pytest.FixtureRequest, tmp_path: Path, database: str
) -> None:
    url = (
        sqlite_url(tmp_path / "catalog.sqlite")
        if database == "sqlite"
        else request.getfixturevalue("fresh_pg")
    )
    catalog = Catalog(url)
    answers = [  # (article key, minute, status, record type)
        ("archived", 1, 200, "response"),
        ("dead", 2, 404, "response"),
        ("dead", 12, 404, "revisit"),  # the same 404 page a crawl later
        ("moved-to-404", 3, 301, "response"),
        ("moved-to-404", 3, 410, "response"),
        ("came-back", 4, 404, "response"),
        ("came-back", 5, 200, "response"),
        ("removed", 5, 200, "response"),
        ("removed", 6, 410, "response"),
        ("retried", 7, 503, "response"),
        ("retried", 7, 404, "response"),  # the same second: the 404 is the answer
        ("down-since", 8, 404, "response"),
        ("down-since", 9, 503, "response"),  # passing, no sign it came back
        ("blocked", 10, 404, "response"),
        ("blocked", 11, 403, "challenge"),  # a challenge page is no answer at all
        ("other-site", 2, 404, "response"),
    ]
    try:
        catalog.add_captures(
            capture(
                n,
                article_key=key,
                site="irna" if key == "other-site" else "tdi",
                url=f"https://thediplomaticinsight.com/{key}/",
                capture_time=iso(T0 + timedelta(minutes=minute)),
                status=status,
                record_type=kind,
            )
            for n, (key, minute, status, kind) in enumerate(answers)
        )
        catalog.add_capture(capture(99, article_key=None, status=404))  # no article's answer
        assert catalog.gone_keys("tdi") == {
            "dead": iso(T0 + timedelta(minutes=12)),
            "moved-to-404": iso(T0 + timedelta(minutes=3)),
            "removed": iso(T0 + timedelta(minutes=6)),
            "retried": iso(T0 + timedelta(minutes=7)),
            "down-since": iso(T0 + timedelta(minutes=8)),
            "blocked": iso(T0 + timedelta(minutes=10)),
        }
        assert catalog.gone_keys("presstv") == {}
    finally:
        catalog.close()
