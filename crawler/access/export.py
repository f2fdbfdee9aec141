"""Exports of one site's archived articles over a time range: text, JSONL, Parquet, WARC."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import and_, func, select

from crawler.access import table
from crawler.access.query import AccessError, Archive, text_conditions
from crawler.access.records import Location, extract_warcinfo, linked_for_many, read_records
from crawler.catalog.db import Capture, captures
from crawler.layout import TEXT_PREFIX
from crawler.store.base import check_key

FORMATS = ("text", "jsonl", "parquet", "warc")
BATCH = 500  # rows whose other records are looked up in one query


@dataclass
class Summary:
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def line(self, what: str, dest: str) -> str:
        seconds = self.seconds or 1e-9
        mb = self.bytes / 1e6
        return (
            f"exported {self.rows} articles ({mb:.2f} MB) of {what} to {dest} in "
            f"{self.seconds:.2f}s ({self.rows / seconds:,.0f} rows/s, {mb / seconds:.2f} MB/s)"
        )


class Progress:
    """A one-line progress bar on a terminal (nothing when stderr is a file or a pipe)."""

    def __init__(self, total: int, stream: IO[str] | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.on = self.stream.isatty()
        self._last = 0.0

    def update(self, done: int, size: int) -> None:
        now = time.monotonic()
        if not self.on or (now - self._last < 0.1 and done < self.total):
            return
        self._last = now
        width = 30
        filled = int(width * done / self.total) if self.total else width
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} {size / 1e6:.1f} MB"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.on:
            self.stream.write("\n")


def count_rows(archive: Archive, site: str, since: str | None, until: str | None) -> int:
    c = captures.c
    conditions = text_conditions(site, since, until)
    with archive.catalog.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count(func.distinct(c.text_key))).where(and_(*conditions))
            ).scalar()
            or 0
        )


def crawl_ids(archive: Archive, site: str, since: str | None, until: str | None) -> list[str]:
    """The crawls whose captures an export of this site and range takes."""
    c = captures.c
    conditions = text_conditions(site, since, until)
    with archive.catalog.engine.connect() as conn:
        return sorted(
            conn.execute(select(c.crawl_id).where(and_(*conditions)).distinct()).scalars()
        )


def warcinfo(archive: Archive, site: str, since: str | None, until: str | None) -> bytes:
    """The export's own warcinfo, first in the file: the store, the crawls, the query."""
    query = f"export --format warc --site {site}"
    if since:
        query += f" --from {since}"
    if until:
        query += f" --to {until}"
    return extract_warcinfo(
        "export.warc.gz",
        store_uri=archive.store.uri,
        crawl_ids=crawl_ids(archive, site, since, until),
        query=query,
        description=f"articles of {site} captured {since or 'any time'} to {until or 'now'}: "
        "each capture's response, request, metadata and conversion records, copied unchanged "
        "from the store",
    )


def export(
    archive: Archive,
    site: str,
    since: str | None,
    until: str | None,
    fmt: str,
    dest: Path,
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Stream one row per archived article version from the store into ``dest``."""
    if fmt not in FORMATS:
        raise AccessError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    started = time.monotonic()
    summary = Summary()
    if fmt == "text":
        if dest.exists() and not dest.is_dir():
            raise AccessError(f"{dest} exists and is not a directory (text exports are a tree)")
        dest.mkdir(parents=True, exist_ok=True)
    elif dest.is_dir():
        raise AccessError(f"{dest} is a directory: give a file name for the {fmt} export")
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)

    sink: Any = None
    out: IO[bytes] | None = None
    if fmt == "parquet":
        sink = table.ParquetSink(str(dest))
    elif fmt in ("jsonl", "warc"):
        out = dest.open("wb")
        if fmt == "warc":
            out.write(warcinfo(archive, site, since, until))
    try:
        batch: list[Capture] = []
        for capture in archive.article_rows(site, since, until):
            batch.append(capture)
            if len(batch) >= BATCH:
                _write_batch(archive, batch, fmt, dest, sink, out, summary, progress)
                batch = []
        _write_batch(archive, batch, fmt, dest, sink, out, summary, progress)
    finally:
        if sink is not None:
            sink.close()
        if out is not None:
            out.close()
    summary.seconds = time.monotonic() - started
    return summary


def _write_batch(
    archive: Archive,
    batch: list[Capture],
    fmt: str,
    dest: Path,
    sink: Any,
    out: IO[bytes] | None,
    summary: Summary,
    progress: Callable[[int, int], None] | None,
) -> None:
    # The other records of a whole batch in one query, not one per row.
    links = linked_for_many(archive.catalog.engine, [c.record_id for c in batch])
    for capture in batch:
        summary.bytes += _write_one(
            archive, capture, fmt, dest, sink, out, links[capture.record_id]
        )
        summary.rows += 1
        if progress is not None:
            progress(summary.rows, summary.bytes)


def _write_one(
    archive: Archive,
    capture: Capture,
    fmt: str,
    dest: Path,
    sink: Any,
    out: IO[bytes] | None,
    links: list[Location],
) -> int:
    if fmt == "warc":
        assert out is not None
        data = read_records(archive.store, [archive.locations(capture, [])[0], *links])
        out.write(data)
        return len(data)
    text = archive.text(capture)
    if fmt == "text":
        assert capture.text_key is not None
        # The key comes from the catalog: it must not lead out of dest.
        path = dest.joinpath(*check_key(capture.text_key).removeprefix(TEXT_PREFIX).split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text)
        return len(text)
    sidecar = archive.sidecar(capture)
    if fmt == "jsonl":
        assert out is not None
        line = dict(sidecar)
        line["capture"] = {
            "record_id": capture.record_id,
            "capture_time": capture.capture_time,
            "warc_key": capture.warc_key,
            "warc_offset": capture.warc_offset,
            "warc_length": capture.warc_length,
            "version": capture.version,
        }
        line["text"] = text.decode("utf-8")
        data = json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n"
        out.write(data)
        return len(data)
    sink.add(table.row(capture, links, sidecar, text.decode("utf-8")))
    return len(text)
