"""A revisit's media type is its original's, followed through revisits of revisits, in both
places that ask: ``indexes.page_mimes`` (entries in memory) and ``RecordTable.mimes_for`` (the
crawl-end step's scratch table). Both go through ``records.original_mime``."""

from __future__ import annotations

from pathlib import Path

from crawler.access.indexes import page_mimes
from crawler.access.records import WarcEntry
from crawler.access.scratch import RecordTable


def _entry(record_id: str, kind: str, mime: str | None, refers_to: str | None = None) -> WarcEntry:
    return WarcEntry(
        "warc/a.warc.gz", 0, 10, kind, record_id, f"https://site.test/{record_id}",
        "2026-12-07T00:00:00Z", mime, 200, "sha1:X", refers_to, None,
    )  # fmt: skip


ENTRIES = [
    _entry("orig", "response", "text/html"),
    _entry("rev1", "revisit", "warc/revisit", "orig"),  # a revisit
    _entry("rev2", "revisit", "warc/revisit", "rev1"),  # a revisit of a revisit
    _entry("lost", "revisit", "warc/revisit", "gone"),  # its original is in no WARC read
    _entry("bare", "revisit", "warc/revisit"),  # no WARC-Refers-To at all
    _entry("loop1", "revisit", "warc/revisit", "loop2"),  # a loop: followed a few links only
    _entry("loop2", "revisit", "warc/revisit", "loop1"),
    _entry("pdf", "response", "application/pdf"),
]
EXPECTED = {
    "orig": "text/html",
    "rev1": "text/html",
    "rev2": "text/html",
    "lost": None,
    "bare": None,
    "loop1": None,
    "loop2": None,
    "pdf": "application/pdf",
}


def test_page_mimes_follow_revisits_to_their_original() -> None:
    assert page_mimes(ENTRIES) == EXPECTED


def test_the_scratch_table_decides_as_page_mimes(tmp_path: Path) -> None:
    table = RecordTable(tmp_path / "scratch.sqlite")
    try:
        add = table.entry_sink(0)
        for entry in ENTRIES:
            add(entry)
        table.flush()
        assert table.mimes_for([*EXPECTED, "unknown"]) == EXPECTED
    finally:
        table.close()
