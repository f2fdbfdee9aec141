"""What ``reextract`` selects from the catalog: each article's latest capture with text (the
last in capture time, then id, order), and a rendered page's DOM (the first resource beside
it, by WARC file and offset)."""

from __future__ import annotations

from pathlib import Path

from crawler.access.records import Location, add_linked, ensure_tables
from crawler.catalog.db import Capture, Catalog
from crawler.crawl.reextract import Selection, select_items
from crawler.layout import sqlite_url


def capture(n: int, key: str | None, time: str, **kw: object) -> Capture:
    fields: dict[str, object] = {
        "record_id": f"<urn:{n}>",
        "crawl_id": "c1",
        "site": "aa",
        "url": f"https://aa.test/{key}/",
        "article_key": key,
        "capture_time": time,
        "status": 200,
        "record_type": "response",
        "payload_digest": "sha1:AAAA",
        "warc_key": "aa/w.warc.gz",
        "warc_offset": 100 * n,
        "warc_length": 100,
        "text_digest": "sha256:x",
        "text_key": f"aa/{key}.txt",
        "version": 1,
        "warc_date": time,
    }
    return Capture(**(fields | kw))  # type: ignore[arg-type]


def test_the_latest_capture_with_text_and_its_first_dom(tmp_path: Path) -> None:
    catalog = Catalog(sqlite_url(tmp_path / "c.sqlite"))
    t1, t2 = "2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z"
    catalog.add_captures(
        [
            capture(1, "a", t1),
            capture(3, "a", t2),
            capture(2, "a", t2),  # the latest of "a": by time, then id (added after 3)
            capture(4, "a", "2026-12-03T00:00:00Z", text_key=None),  # no text: not taken
            capture(5, "a", "2026-12-04T00:00:00Z", record_type="request"),
            capture(6, "b", t1),
            capture(7, None, t2),  # no article
        ]
    )
    ensure_tables(catalog.engine)

    def place(kind: str, n: int, key: str, offset: int) -> Location:
        return Location(kind, f"<urn:l{n}>", key, offset, 10)

    add_linked(
        catalog.engine,
        {
            "<urn:2>": [
                place("request", 1, "aa/a.warc.gz", 0),
                place("resource", 2, "aa/b.warc.gz", 50),
                place("resource", 3, "aa/a.warc.gz", 900),  # first by file, then offset
                place("metadata", 4, "aa/a.warc.gz", 10),
            ],
            "<urn:6>": [place("request", 5, "aa/a.warc.gz", 0), place("metadata", 6, "aa/a", 1)],
        },
    )
    items = select_items(catalog, Selection())
    assert [(i.capture.article_key, i.record_id) for i in items] == [
        ("a", "<urn:2>"),
        ("b", "<urn:6>"),
    ]
    assert items[0].dom == place("resource", 3, "aa/a.warc.gz", 900)
    assert items[1].dom is None  # no resource beside it: not a rendered page
    # Among chosen captures, the latest of those.
    chosen = select_items(catalog, Selection(record_ids=("<urn:1>", "<urn:3>")))
    assert [i.record_id for i in chosen] == ["<urn:3>"]
    catalog.close()
