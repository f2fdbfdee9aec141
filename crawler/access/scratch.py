"""Bounded memory for work on a whole crawl: lines sorted in runs on disk, records in SQLite.

A crawl's end (its CDXJ, capture table and package) reads every record of every WARC it wrote;
held in memory, that grows with the crawl (1.4 GB at 20,000 pages). ``SortedLines`` sorts any
number of lines with at most ``batch`` of them in memory (sorted runs spilled to files, then
``heapq.merge``); ``RecordTable`` keeps every record's place, the links between records and
what the crawl's sidecars say in a scratch SQLite file, read back a batch at a time.
"""

from __future__ import annotations

import heapq
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from crawler.access.records import LINKED_TYPES, Location, WarcEntry, original_mime


class SortedLines:
    """Lines sorted as ``sorted()`` sorts them, at most ``batch`` in memory, runs on disk."""

    def __init__(self, directory: Path, batch: int) -> None:
        self.directory = directory
        self.batch = max(1, batch)
        self.count = 0
        self._lines: list[str] = []
        self._runs: list[Path] = []

    def add(self, line: str) -> None:
        self._lines.append(line)
        self.count += 1
        if len(self._lines) >= self.batch:
            self._spill()

    def _spill(self) -> None:
        self._lines.sort()
        fd, name = tempfile.mkstemp(dir=self.directory, prefix=".run-", suffix=".cdxj")
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.writelines(self._lines)
        self._runs.append(Path(name))
        self._lines = []

    def write_to(self, out: IO[str]) -> None:
        """Every line, in order (a line that lacks its newline gets none)."""
        self._lines.sort()
        with ExitStack() as stack:
            runs = [
                stack.enter_context(path.open(encoding="utf-8", newline="")) for path in self._runs
            ]
            out.writelines(heapq.merge(*runs, self._lines))

    def close(self) -> None:
        for path in self._runs:
            path.unlink(missing_ok=True)
        self._runs = []
        self._lines = []


def merge_files(paths: Sequence[Path], out: IO[str]) -> None:
    """Sorted line files merged into one sorted stream."""
    with ExitStack() as stack:
        files = [stack.enter_context(path.open(encoding="utf-8", newline="")) for path in paths]
        out.writelines(heapq.merge(*files))


_ENTRY_FIELDS = (
    "warc_key",
    "offset",
    "length",
    "record_type",
    "record_id",
    "target_uri",
    "date",
    "mime",
    "status",
    "payload_digest",
    "refers_to",
    "concurrent_to",
    "challenge",
)
_COLUMNS = ", ".join(_ENTRY_FIELDS)
_INSERT_BATCH = 5000


class RecordTable:
    """Every record of a crawl's WARCs (``origin`` 0) and of its package's originals (1), in
    the order read, in a scratch SQLite file; the crawl's sidecars by capture record id."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.unlink(missing_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False)
        # Scratch: nothing to recover after a crash, so no journal and no syncs.
        self.db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA cache_size = -4000;
            PRAGMA temp_store = FILE;
            CREATE TABLE entries (
                seq INTEGER PRIMARY KEY, origin INTEGER NOT NULL, warc_key TEXT, offset INTEGER,
                length INTEGER, record_type TEXT, record_id TEXT, target_uri TEXT, date TEXT,
                mime TEXT, status INTEGER, payload_digest TEXT, refers_to TEXT,
                concurrent_to TEXT, challenge TEXT);
            CREATE TABLE sidecars (key TEXT PRIMARY KEY, record_id TEXT NOT NULL, data TEXT);
            CREATE TABLE objects (key TEXT PRIMARY KEY, size INTEGER, pending INTEGER);
            CREATE TABLE wanted (record_id TEXT PRIMARY KEY);
            CREATE TABLE sought (record_id TEXT PRIMARY KEY);
            CREATE TABLE places (record_type TEXT, record_id TEXT PRIMARY KEY, warc_key TEXT,
                offset INTEGER, length INTEGER);
            """
        )
        self._pending: list[tuple[Any, ...]] = []

    def close(self) -> None:
        self.db.close()
        self.path.unlink(missing_ok=True)

    # -- filling ----------------------------------------------------------------------------------
    def entry_sink(self, origin: int) -> Any:
        """A callable taking each ``WarcEntry`` of records of ``origin`` as they are read."""

        def add(entry: WarcEntry) -> None:
            self._pending.append((origin, *(getattr(entry, f) for f in _ENTRY_FIELDS)))
            if len(self._pending) >= _INSERT_BATCH:
                self.flush()

        return add

    def flush(self) -> None:
        if self._pending:
            self.db.executemany(
                f"INSERT INTO entries (origin, {_COLUMNS}) VALUES (?{', ?' * len(_ENTRY_FIELDS)})",
                self._pending,
            )
            self._pending = []

    def forget(self, origin: int) -> None:
        self.flush()
        self.db.execute("DELETE FROM entries WHERE origin = ?", (origin,))

    def add_objects(self, rows: Iterable[tuple[str, int, bool]]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?)", rows)

    def object_size(self, key: str) -> tuple[int | None, bool]:
        """The size the crawl stored ``key`` with, and whether it waits in the spool."""
        found = self.db.execute(
            "SELECT size, pending FROM objects WHERE key = ?", (key,)
        ).fetchone()
        return (None, False) if found is None else (int(found[0]), bool(found[1]))

    def add_sidecars(self, found: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """Sidecars (by key) that name their capture's record; the others say nothing here."""
        rows = [
            (key, str(car["warc"]["record_id"]), json.dumps(car))
            for key, car in found
            if isinstance(car.get("warc"), dict)
        ]
        self.db.executemany("INSERT OR REPLACE INTO sidecars VALUES (?, ?, ?)", rows)

    def link(self) -> None:
        """Each capture's other records, as ``records.linked_records`` finds them."""
        self.flush()
        linked = ", ".join(f"'{t}'" for t in LINKED_TYPES)
        self.db.executescript(
            f"""
            CREATE INDEX entries_id ON entries (record_id);
            CREATE TABLE links (capture TEXT, phase INTEGER, seq INTEGER);
            INSERT INTO links SELECT concurrent_to, 0, seq FROM entries
              WHERE origin = 0 AND record_type IN ({linked}) AND (
                (record_type IN ('request', 'resource') AND concurrent_to IS NOT NULL)
                OR (refers_to IS NULL AND record_type = 'metadata' AND concurrent_to IS NOT NULL));
            INSERT INTO links SELECT COALESCE(
                (SELECT o.concurrent_to FROM entries o WHERE o.record_id = e.refers_to
                  AND o.origin = 0 AND o.record_type IN ('request', 'resource')
                  AND o.concurrent_to IS NOT NULL ORDER BY o.seq DESC LIMIT 1),
                e.refers_to), 1, e.seq
              FROM entries e
              WHERE e.origin = 0 AND e.record_type IN ({linked}) AND e.refers_to IS NOT NULL
                AND NOT (e.record_type IN ('request', 'resource') AND e.concurrent_to IS NOT NULL);
            CREATE INDEX links_capture ON links (capture, phase, seq);
            """
        )

    # -- reading back -----------------------------------------------------------------------------
    @staticmethod
    def _entry(row: Sequence[Any]) -> WarcEntry:
        return WarcEntry(*row)

    def captures(self, batch: int, origins: tuple[int, ...] = (0,)) -> Iterator[list[WarcEntry]]:
        """Response and revisit records of HTTP(S) exchanges, in the order read, ``batch`` at
        a time (``indexes.is_capture``)."""
        self.flush()
        marks = ", ".join("?" * len(origins))
        cursor = self.db.execute(
            f"SELECT {_COLUMNS} FROM entries WHERE origin IN ({marks})"
            " AND record_type IN ('response', 'revisit') AND substr(target_uri, 1, 4) = 'http'"
            " ORDER BY seq",
            origins,
        )
        while rows := cursor.fetchmany(batch):
            yield [self._entry(r) for r in rows]

    def links_for(self, capture_ids: Sequence[str]) -> dict[str, list[Location]]:
        out: dict[str, list[Location]] = {}
        for part in _chunks(capture_ids):
            rows = self.db.execute(
                "SELECT l.capture, e.record_type, e.record_id, e.warc_key, e.offset, e.length"
                " FROM links l JOIN entries e ON e.seq = l.seq"
                f" WHERE l.capture IN ({', '.join('?' * len(part))})"
                " ORDER BY l.capture, l.phase, l.seq",
                part,
            )
            for capture, *place in rows:
                out.setdefault(capture, []).append(Location(*place))
        return out

    def all_links(self, batch: int) -> Iterator[dict[str, list[Location]]]:
        """Every capture's other records (any capture id a record points at), ``batch``
        captures at a time."""
        cursor = self.db.execute(
            "SELECT l.capture, e.record_type, e.record_id, e.warc_key, e.offset, e.length"
            " FROM links l JOIN entries e ON e.seq = l.seq ORDER BY l.capture, l.phase, l.seq"
        )
        out: dict[str, list[Location]] = {}
        for capture, *place in cursor:
            if capture not in out and len(out) >= batch:
                yield out
                out = {}
            out.setdefault(capture, []).append(Location(*place))
        if out:
            yield out

    def sidecars_for(self, record_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The sidecar naming each capture (the last by key where several do)."""
        out: dict[str, dict[str, Any]] = {}
        for part in _chunks(record_ids):
            rows = self.db.execute(
                "SELECT record_id, data FROM sidecars"
                f" WHERE record_id IN ({', '.join('?' * len(part))}) ORDER BY key",
                part,
            )
            for record_id, data in rows:
                out[record_id] = json.loads(data)
        return out

    def mimes_for(self, record_ids: Sequence[str]) -> dict[str, str | None]:
        """As ``indexes.page_mimes`` over the captures and the originals: a revisit's media
        type is its original's."""
        out: dict[str, str | None] = {}
        for record_id in record_ids:
            entry = self._capture_entry(record_id)
            if entry is not None:
                out[record_id] = original_mime(entry, self._capture_entry)
        return out

    def _capture_entry(self, record_id: str) -> WarcEntry | None:
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM entries WHERE record_id = ? AND (origin = 1 OR ("
            "record_type IN ('response', 'revisit') AND substr(target_uri, 1, 4) = 'http'))"
            " ORDER BY seq DESC LIMIT 1",
            (record_id,),
        ).fetchone()
        return None if row is None else self._entry(row)

    # -- originals of revisits --------------------------------------------------------------------
    def next_originals(self) -> int:
        """Gather the record ids that revisits refer to and no record read holds, not sought
        before (in ``wanted``, sorted); how many."""
        self.flush()
        self.db.executescript(
            """
            DELETE FROM wanted;
            DELETE FROM places;
            INSERT INTO wanted SELECT DISTINCT e.refers_to FROM entries e
              WHERE e.record_type = 'revisit' AND e.refers_to IS NOT NULL AND e.refers_to != ''
              AND (e.origin = 1 OR substr(e.target_uri, 1, 4) = 'http')
              AND NOT EXISTS (SELECT 1 FROM entries o WHERE o.record_id = e.refers_to
                AND (o.origin = 1 OR (o.record_type IN ('response', 'revisit')
                  AND substr(o.target_uri, 1, 4) = 'http')))
              AND NOT EXISTS (SELECT 1 FROM sought s WHERE s.record_id = e.refers_to);
            INSERT INTO sought SELECT record_id FROM wanted;
            """
        )
        return int(self.db.execute("SELECT count(*) FROM wanted").fetchone()[0])

    def wanted(self, batch: int) -> Iterator[list[str]]:
        last = ""
        while part := [
            r[0]
            for r in self.db.execute(
                "SELECT record_id FROM wanted WHERE record_id > ? ORDER BY record_id LIMIT ?",
                (last, batch),
            )
        ]:
            yield part
            last = part[-1]

    def add_places(self, places: Iterable[Location]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO places VALUES (?, ?, ?, ?, ?)",
            ((p.record_type, p.record_id, p.warc_key, p.offset, p.length) for p in places),
        )

    def places(self, batch: int) -> Iterator[list[Location]]:
        """The places found, in the order of their WARCs and offsets."""
        last: tuple[str, int] = ("", -1)
        while part := [
            Location(*r)
            for r in self.db.execute(
                "SELECT record_type, record_id, warc_key, offset, length FROM places"
                " WHERE (warc_key, offset) > (?, ?) ORDER BY warc_key, offset LIMIT ?",
                (*last, batch),
            )
        ]:
            yield part
            last = (part[-1].warc_key, part[-1].offset)


def _chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
