"""Exports of archived articles (one site or several, over a time range) into one output: text
files, JSON lines, a Parquet table, or a WARC (gzipped or plain). The format follows the
destination's name; a file export is written beside its destination and renamed into place
when complete, so a failed export leaves no half file and replaces nothing."""

from __future__ import annotations

import gzip
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from sqlalchemy import and_, func, select

from crawler.access import table
from crawler.access.query import (
    AccessError,
    Archive,
    Published,
    describe_published,
    text_conditions,
)
from crawler.access.records import (
    Location,
    RecordError,
    extract_warcinfo,
    linked_for_many,
    read_verified,
)
from crawler.catalog.db import Capture, captures
from crawler.catalog.stories import story_ids
from crawler.layout import TEXT_PREFIX
from crawler.store.base import check_key

FORMATS = ("text", "jsonl", "parquet", "warc")
# How a destination's name ends -> its format (longest first: .warc.gz before .gz's kin).
EXTENSIONS = (
    (".warc.gz", "warc"),
    (".warc", "warc"),
    (".parquet", "parquet"),
    (".jsonl", "jsonl"),
    (".ndjson", "jsonl"),
    (".json", "jsonl"),  # JSON lines all the same: one object per article
)
BATCH = 500  # rows whose other records are looked up in one query
PARTIAL = ".partial"  # a file export in progress, beside its destination


class OutputError(ValueError):
    """A destination that does not fit the export asked for: said in one line, a usage error."""


def format_for(dest: str, given: str | None) -> str:
    """The export's format: from the destination's name (a directory or a trailing / is a text
    export), or ``given``; both, when they disagree, is an OutputError."""
    named = None
    lower = dest.lower()
    for ending, fmt in EXTENSIONS:
        if lower.endswith(ending):
            named, why = fmt, f"ends in {ending}"
            break
    else:
        if dest.endswith(("/", os.sep)) or Path(dest).is_dir():
            named, why = "text", "is a directory"
    if given is not None and given not in FORMATS:
        raise OutputError(f"unknown format {given!r} (one of {', '.join(FORMATS)})")
    if given is not None and named is not None and given != named:
        raise OutputError(
            f"--format {given}, but {dest} {why}: a {named} export (drop --format, or name "
            f"the destination for {given}: {example(given)})"
        )
    if given is not None:
        return given
    if named is not None:
        return named
    raise OutputError(
        f"cannot tell the format from {dest!r}: end it in .jsonl, .parquet, .warc.gz (or "
        ".warc) or / (a directory of text files), or give --format"
    )


def example(fmt: str) -> str:
    return {"text": "texts/", "jsonl": "x.jsonl", "parquet": "x.parquet", "warc": "x.warc.gz"}[fmt]


def check_dest(dest: Path, fmt: str, *, force: bool) -> None:
    """Refuse, before anything is read, a destination the export would spoil or cannot use."""
    if fmt == "text":
        if dest.exists() and not dest.is_dir():
            raise OutputError(f"{dest} exists and is not a directory (text exports are a tree)")
        if dest.is_dir() and any(dest.iterdir()) and not force:
            raise OutputError(
                f"{dest} is not empty: --force writes into it (files of the same name replaced)"
            )
        return
    if dest.is_dir():
        raise OutputError(f"{dest} is a directory: give a file name for the {fmt} export")
    if dest.exists() and not force:
        raise OutputError(f"{dest} exists: it is kept unless --force is given")
    parent = dest.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {dest}: {parent} is not a writable directory")


@dataclass
class Summary:
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    # Records refused because their bytes fail their digests (or are not there): one line each.
    corrupt: list[str] = field(default_factory=list)

    def line(self, what: str, dest: str) -> str:
        seconds = self.seconds or 1e-9
        mb = self.bytes / 1e6
        skipped = f"; {len(self.corrupt)} corrupt, skipped" if self.corrupt else ""
        return (
            f"exported {self.rows} articles ({mb:.2f} MB) of {what} to {dest} in "
            f"{self.seconds:.2f}s ({self.rows / seconds:,.0f} rows/s, {mb / seconds:.2f} MB/s)"
            f"{skipped}"
        )

    def add(self, other: Summary) -> None:
        self.rows += other.rows
        self.bytes += other.bytes
        self.seconds += other.seconds
        self.corrupt.extend(other.corrupt)


class Progress:
    """A one-line progress bar on a terminal (nothing when stderr is a file or a pipe)."""

    def __init__(self, total: int, stream: IO[str] | None = None, label: str = "") -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.on = self.stream.isatty()
        self.label = f"{label} " if label else ""
        self._last = 0.0

    def update(self, done: int, size: int) -> None:
        now = time.monotonic()
        if not self.on or (now - self._last < 0.1 and done < self.total):
            return
        self._last = now
        width = 30
        filled = int(width * done / self.total) if self.total else width
        self.stream.write(
            f"\r{self.label}[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
            f"{size / 1e6:.1f} MB"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.on:
            self.stream.write("\n")


def count_rows(
    archive: Archive,
    site: str,
    since: str | None,
    until: str | None,
    published: Published = (None, None),
) -> int:
    c = captures.c
    conditions = text_conditions(site, since, until, published)
    with archive.catalog.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count(func.distinct(c.text_key))).where(and_(*conditions))
            ).scalar()
            or 0
        )


def crawl_ids(
    archive: Archive,
    site: str,
    since: str | None,
    until: str | None,
    published: Published = (None, None),
) -> list[str]:
    """The crawls whose captures an export of this site and range takes."""
    c = captures.c
    conditions = text_conditions(site, since, until, published)
    with archive.catalog.engine.connect() as conn:
        return sorted(
            conn.execute(select(c.crawl_id).where(and_(*conditions)).distinct()).scalars()
        )


def warcinfo(
    archive: Archive,
    site: str | Sequence[str],
    since: str | None,
    until: str | None,
    filename: str = "export.warc.gz",
    published: Published = (None, None),
) -> bytes:
    """The export's own warcinfo, first in the file: the store, the crawls, the query."""
    sites = [site] if isinstance(site, str) else list(site)
    query = f"export --format warc --site {','.join(sites)}"
    if since:
        query += f" --from {since}"
    if until:
        query += f" --to {until}"
    if published[0]:
        query += f" --published-from {published[0]}"
    if published[1]:
        query += f" --published-until {published[1]} (exclusive)"
    when = f"captured {since or 'any time'} to {until or 'now'}"
    if any(published):
        when += ", " + describe_published(published)
    return extract_warcinfo(
        filename,
        store_uri=archive.store.uri,
        crawl_ids=[i for s in sites for i in crawl_ids(archive, s, since, until, published)],
        query=query,
        description=f"articles of {', '.join(sites)} {when}: each capture's response, "
        "request, metadata and conversion records, copied unchanged from the store",
    )


class Export:
    """One export (a file or a tree of text files) that takes several sites, one after the
    other: ``with Export(...) as out: out.site("irna")``. A file export is written to
    ``<dest>.partial`` and renamed to ``dest`` when the block ends without an error."""

    def __init__(
        self,
        archive: Archive,
        fmt: str,
        dest: Path,
        *,
        sites: Sequence[str],
        since: str | None = None,
        until: str | None = None,
        published: Published = (None, None),
    ) -> None:
        if fmt not in FORMATS:
            raise AccessError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
        self.archive = archive
        self.fmt = fmt
        self.dest = dest
        self.since = since
        self.until = until
        self.published = published
        # Each article's story across sites (Parquet and JSON lines carry it): computed once.
        self.stories = story_ids(archive.catalog) if fmt in ("parquet", "jsonl") else {}
        # A plain .warc gets its records uncompressed (they are stored as gzip members).
        self.plain = fmt == "warc" and dest.name.lower().endswith(".warc")
        self.sink: Any = None
        self.out: IO[bytes] | None = None
        self.partial = dest.with_name(dest.name + PARTIAL)
        if fmt == "text":
            if dest.exists() and not dest.is_dir():
                raise AccessError(f"{dest} exists and is not a directory (text exports are a tree)")
            dest.mkdir(parents=True, exist_ok=True)
            return
        if dest.is_dir():
            raise AccessError(f"{dest} is a directory: give a file name for the {fmt} export")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            self.sink = table.ParquetSink(str(self.partial))
        else:
            self.out = self.partial.open("wb")
            if fmt == "warc":
                self._write(warcinfo(archive, sites, since, until, dest.name, published))

    def __enter__(self) -> Export:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close(done=kind is None)

    def close(self, *, done: bool = True) -> None:
        """Close the output; ``done``: move it into place, else remove what was written."""
        try:
            if self.sink is not None:
                self.sink.close()
            if self.out is not None:
                self.out.close()
        except BaseException:
            done = False  # a file that could not be closed is no export
            raise
        finally:
            self.sink = self.out = None
            if self.fmt != "text" and self.partial.exists():
                if done:
                    self.partial.replace(self.dest)
                else:
                    self.partial.unlink()

    def site(self, site: str, progress: Callable[[int, int], None] | None = None) -> Summary:
        """Stream one row per archived article version of ``site`` into the output."""
        rows = self.archive.article_rows(site, self.since, self.until, published=self.published)
        return self.captures(rows, progress)

    def captures(
        self, items: Iterable[Capture], progress: Callable[[int, int], None] | None = None
    ) -> Summary:
        """Stream these captures (a search's hits, say) into the output, in their order."""
        started = time.monotonic()
        summary = Summary()
        batch: list[Capture] = []
        for capture in items:
            batch.append(capture)
            if len(batch) >= BATCH:
                self._write_batch(batch, summary, progress)
                batch = []
        self._write_batch(batch, summary, progress)
        summary.seconds = time.monotonic() - started
        return summary

    def _write(self, data: bytes) -> int:
        """Write to the output file; the bytes written (a plain WARC's, unzipped)."""
        assert self.out is not None
        if self.plain:
            data = gzip.decompress(data)
        self.out.write(data)
        return len(data)

    def _write_batch(
        self,
        batch: list[Capture],
        summary: Summary,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        # The other records of a whole batch in one query, not one per row.
        links = linked_for_many(self.archive.catalog.engine, [c.record_id for c in batch])
        for capture in batch:
            try:
                summary.bytes += self._write_one(capture, links[capture.record_id])
            except RecordError as exc:
                summary.corrupt.append(str(exc))
                continue
            summary.rows += 1
            if progress is not None:
                progress(summary.rows, summary.bytes)

    def _write_one(self, capture: Capture, links: list[Location]) -> int:
        archive = self.archive
        if self.fmt == "warc":
            locations = [archive.locations(capture, [])[0], *links]
            try:
                data = read_verified(archive.store, locations)
            except FileNotFoundError:
                raise RecordError(
                    f"record {capture.record_id}: {capture.warc_key} is not in the store"
                ) from None
            return self._write(data)
        text = archive.text(capture)
        if self.fmt == "text":
            assert capture.text_key is not None
            # The key comes from the catalog: it must not lead out of dest.
            relative = check_key(capture.text_key).removeprefix(TEXT_PREFIX)
            path = self.dest.joinpath(*relative.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text)
            return len(text)
        sidecar = archive.sidecar(capture)
        if self.fmt == "jsonl":
            line = dict(sidecar)
            line["capture"] = {
                "record_id": capture.record_id,
                "capture_time": capture.capture_time,
                "warc_key": capture.warc_key,
                "warc_offset": capture.warc_offset,
                "warc_length": capture.warc_length,
                "version": capture.version,
            }
            line["story_id"] = self._story(capture)
            line["text"] = text.decode("utf-8")
            data = json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n"
            return self._write(data)
        row = table.row(capture, links, sidecar, text.decode("utf-8"), self._story(capture))
        self.sink.add(row)
        return len(text)

    def _story(self, capture: Capture) -> str | None:
        return self.stories.get((capture.site, capture.article_key or ""))


def export(
    archive: Archive,
    site: str | Iterable[str],
    since: str | None,
    until: str | None,
    fmt: str,
    dest: Path,
    progress: Callable[[int, int], None] | None = None,
) -> Summary:
    """Stream one row per archived article version of ``site`` (one or several) into
    ``dest``; the summary of them all."""
    sites = [site] if isinstance(site, str) else list(site)
    total = Summary()
    with Export(archive, fmt, dest, sites=sites, since=since, until=until) as out:
        for name in sites:
            total.add(out.site(name, progress))
    return total
