"""Indexes written per crawl: a CDXJ per WARC, a Parquet capture index, a WACZ package.

Pure functions of the crawl's WARC files and sidecars; the crawl calls them at its end
(``crawler/crawl/indexes.py``, after the last WARC is stored and before the manifest, which
lists what they write). The same code rebuilds a crawl's rows from its WARCs when ``reindex``
finds no Parquet index (crawls made before indexes were written).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from crawler import __version__
from crawler.access import table
from crawler.access.records import (
    CAPTURE_TYPES,
    Location,
    WarcEntry,
    index_warc,
    index_warc_into,
    linked_records,
    original_mime,
)
from crawler.access.scratch import RecordTable, SortedLines
from crawler.catalog.db import Capture, Catalog, captures
from crawler.constants import CHALLENGE_RECORD

logger = logging.getLogger(__name__)

Opener = Callable[[str], AbstractContextManager[IO[bytes]]]
WACZ_VERSION = "1.1.1"
_COPY = 1024 * 1024


def catalog_time(warc_date: str) -> str:
    return warc_date[:19] + "Z"


@dataclass
class CrawlIndex:
    """What the WARC files of one crawl hold: CDXJ per file, captures, their other records."""

    cdxj: dict[str, str] = field(default_factory=dict)
    captures: list[WarcEntry] = field(default_factory=list)
    links: dict[str, list[Location]] = field(default_factory=dict)


def index_crawl(warc_keys: Iterable[str], opener: Opener) -> CrawlIndex:
    result = CrawlIndex()
    entries: list[WarcEntry] = []
    for key in warc_keys:
        with opener(key) as stream:
            found, cdxj = index_warc(stream, key)
        result.cdxj[key] = cdxj
        entries.extend(found)
    result.captures = [e for e in entries if is_capture(e)]
    result.links = linked_records(entries)
    return result


def is_capture(entry: WarcEntry) -> bool:
    """A response or revisit of an HTTP(S) exchange: a row of the catalog's captures."""
    return entry.record_type in CAPTURE_TYPES and entry.target_uri.startswith("http")


def capture_of(
    entry: WarcEntry,
    site: str,
    crawl_id: str,
    *,
    article_key: str | None = None,
    text_digest: str | None = None,
    text_key: str | None = None,
    version: int | None = None,
) -> Capture:
    """The catalog's row of a capture record, read from its WARC file."""
    return Capture(
        record_id=entry.record_id,
        crawl_id=crawl_id,
        site=site,
        url=entry.target_uri,
        article_key=article_key,
        capture_time=catalog_time(entry.date),
        warc_date=entry.date,
        status=entry.status or 0,
        record_type=CHALLENGE_RECORD if entry.challenge else entry.record_type,
        payload_digest=entry.payload_digest,
        warc_key=entry.warc_key,
        warc_offset=entry.offset,
        warc_length=entry.length,
        text_digest=text_digest,
        text_key=text_key,
        version=version,
    )


def crawl_rows(
    index: CrawlIndex,
    site: str,
    crawl_id: str,
    sidecars: Sequence[Mapping[str, Any]],
    read_text: Callable[[str], str | None],
    read_sidecar: Callable[[str], Mapping[str, Any] | None],
    known: Mapping[str, Capture] | None = None,
) -> list[dict[str, Any]]:
    """One row per capture; article fields from the sidecars, texts read by key.

    ``known`` are the catalog's rows of this crawl: they add the article key of captures
    that produced no new text (unchanged, failed) and the text an unchanged capture matched.
    """
    by_record = {
        str(car["warc"]["record_id"]): car for car in sidecars if isinstance(car.get("warc"), dict)
    }
    rows = []
    for entry in index.captures:
        capture, car = capture_fields(
            entry,
            site,
            crawl_id,
            by_record.get(entry.record_id),
            (known or {}).get(entry.record_id),
            read_sidecar,
        )
        text = read_text(capture.text_key) if capture.text_key else None
        rows.append(table.row(capture, index.links.get(entry.record_id, ()), car, text))
    return rows


def capture_fields(
    entry: WarcEntry,
    site: str,
    crawl_id: str,
    car: Mapping[str, Any] | None,
    row_known: Capture | None,
    read_sidecar: Callable[[str], Mapping[str, Any] | None],
) -> tuple[Capture, Mapping[str, Any] | None]:
    """A capture's catalog row and the sidecar of its text: its own (``car``), else, for a
    capture that produced no new text, the catalog's row (``row_known``) names the text it
    matched, whose sidecar is read."""
    article_key = car.get("article_id") if car else None
    text_key = car.get("text_key") if car else None
    text_digest = car.get("text_digest") if car else None
    version = car.get("version") if car else None
    if row_known is not None:
        article_key = article_key or row_known.article_key
        if text_key is None and row_known.text_key:
            text_key, text_digest = row_known.text_key, row_known.text_digest
            version = row_known.version
            car = read_sidecar(text_key)
    capture = capture_of(
        entry,
        site,
        crawl_id,
        article_key=article_key,
        text_digest=text_digest,
        text_key=text_key,
        version=version,
    )
    return capture, car


def page_mimes(entries: Iterable[WarcEntry]) -> dict[str, str | None]:
    """Per capture, the media type of what it holds: a revisit's is its original's."""
    found = list(entries)
    by_id = {e.record_id: e for e in found}
    return {entry.record_id: original_mime(entry, by_id.get) for entry in found}


def page_time(warc_date: str) -> str:
    """A WARC-Date as browsertrix-crawler writes a page's ``ts``: ISO 8601, milliseconds, Z."""
    try:
        moment = datetime.fromisoformat(warc_date.replace("Z", "+00:00"))
    except ValueError:
        return warc_date
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def _is_html(mime: str | None) -> bool:
    return bool(mime) and ("html" in str(mime).lower())


def pages_jsonl(
    rows: Iterable[Mapping[str, Any]], mimes: Mapping[str, str | None] | None = None
) -> bytes:
    """WACZ pages: every article page the crawl captured, with its cleaned text.

    New, revised and unchanged alike (an unchanged article's capture is a revisit; its row
    carries the text it matched): one line each, ``url`` and ``ts`` (the record's WARC-Date,
    as browsertrix-crawler writes it: ISO, milliseconds) of a capture the package's CDXJ
    lists, ``title`` and ``text``, which ReplayWeb.page's full-text search reads. A crawl
    that captured no article lists its HTML pages answered 200 (start and listing pages), so
    no package is without pages.
    """
    captured = [item for item in rows if _is_page(item)]
    chosen = [item for item in captured if _is_article(item)]
    if not chosen and mimes is not None:
        chosen = [item for item in captured if _is_html(mimes.get(str(item["record_id"])))]
    return PAGES_HEADER + b"".join(page_line(item) for item in chosen)


PAGES_HEADER = b'{"format": "json-pages-1.0", "id": "pages", "title": "Pages"}\n'


def _is_page(item: Mapping[str, Any]) -> bool:
    return item.get("record_type") in CAPTURE_TYPES and item.get("status") == 200


def _is_article(item: Mapping[str, Any]) -> bool:
    return bool(item.get("article_key") or item.get("text_key"))


def page_line(item: Mapping[str, Any]) -> bytes:
    """One line of pages.jsonl: a capture table row as the package lists it."""
    page: dict[str, Any] = {
        "id": hashlib.sha1(str(item["record_id"]).encode()).hexdigest()[:24],
        "url": item["url"],
        "ts": page_time(str(item["warc_date"])),
        "title": item.get("title") or item["url"],
        "status": item.get("status"),
    }
    if item.get("text"):
        page["text"] = item["text"]
    return json.dumps(page, ensure_ascii=False).encode() + b"\n"


class PageLines:
    """pages.jsonl written to a file as the capture table's rows go by, a batch at a time
    (``pages_jsonl`` of all of them, without holding them): the article pages, else, for a
    crawl that captured none, its HTML pages (``mimes`` of the rows' records)."""

    def __init__(self, directory: Path) -> None:
        self.articles = directory / ".pages-articles.jsonl"
        self.html = directory / ".pages-html.jsonl"
        self._articles = self.articles.open("wb")
        self._html = self.html.open("wb")
        for out in (self._articles, self._html):
            out.write(PAGES_HEADER)
        self.count = 0

    def add(
        self,
        rows: Sequence[Mapping[str, Any]],
        mimes: Callable[[Sequence[str]], Mapping[str, str | None]],
    ) -> None:
        captured = [item for item in rows if _is_page(item)]
        for item in captured:
            if _is_article(item):
                self._articles.write(page_line(item))
                self.count += 1
        if self.count:
            return  # an article page: the HTML pages will not be listed
        found = mimes([str(item["record_id"]) for item in captured])
        for item in captured:
            if _is_html(found.get(str(item["record_id"]))):
                self._html.write(page_line(item))

    def finish(self) -> Path:
        """The file with the lines the package lists."""
        self._articles.close()
        self._html.close()
        return self.articles if self.count else self.html

    def close(self) -> None:
        for out in (self._articles, self._html):
            out.close()
        self.articles.unlink(missing_ok=True)
        self.html.unlink(missing_ok=True)


# -- originals of revisits --------------------------------------------------------------------
# Each crawl's WACZ is self-contained: the response records its revisits refer to, when an
# earlier crawl wrote them, are copied (their exact gzip members) into one more WARC of the
# package, ``archive/<crawl-id>-originals.warc.gz``, and indexed in its CDXJ. The other design,
# WARC-Refers-To-Container and a multi-WACZ collection, keeps each original once, but a
# package then replays only beside every earlier package of the site: a researcher who
# downloads one crawl's package (the unit we publish and cite) would see the unchanged pages
# as holes. The copies cost the size of the unchanged responses once per crawl.


@dataclass
class Originals:
    """The originals WARC written for a package: its CDXJ, its records, what was not found."""

    cdxj: str = ""
    entries: list[WarcEntry] = field(default_factory=list)
    copied: int = 0
    missing: list[str] = field(default_factory=list)


def missing_originals(entries: Iterable[WarcEntry]) -> list[str]:
    """Record ids that revisits among ``entries`` refer to and ``entries`` do not hold."""
    found = list(entries)
    have = {e.record_id for e in found}
    wanted = {
        e.refers_to
        for e in found
        if e.record_type == "revisit" and e.refers_to and e.refers_to not in have
    }
    return sorted(wanted)


def original_locations(catalog: Catalog, record_ids: Sequence[str]) -> dict[str, Location]:
    """Where the catalog says these captures lie (any crawl)."""
    out: dict[str, Location] = {}
    with catalog.engine.connect() as conn:
        for start in range(0, len(record_ids), 500):
            part = list(record_ids[start : start + 500])
            found = conn.execute(captures.select().where(captures.c.record_id.in_(part))).mappings()
            for r in found:
                out[r["record_id"]] = Location(
                    r["record_type"],
                    r["record_id"],
                    r["warc_key"],
                    int(r["warc_offset"]),
                    int(r["warc_length"]),
                )
    return out


def _record_id(data: bytes) -> str | None:
    from warcio.archiveiterator import ArchiveIterator

    for record in ArchiveIterator(io.BytesIO(data)):
        return str(record.rec_headers.get_header("WARC-Record-ID") or "")
    return None


def write_originals(
    path: Path,
    name: str,
    entries: Sequence[WarcEntry],
    locate: Callable[[Sequence[str]], Mapping[str, Location]],
    read_range: Callable[[str, int, int], bytes],
) -> Originals:
    """The original records of the revisits in ``entries``, copied into one WARC at ``path``.

    Each is the exact gzip member of its record, read by byte range from its stored WARC;
    an original that is itself a revisit brings its own original along. ``name`` is the
    WARC's name in the package (its CDXJ lines cite it).
    """
    result = Originals()
    have = list(entries)
    wanted = missing_originals(have)
    done: set[str] = set()

    def copy_of(place: Location) -> bytes | None:
        try:
            data = read_range(place.warc_key, place.offset, place.length)
            if len(data) == place.length and _record_id(data) == place.record_id:
                return data
            logger.warning("original %s: not at its catalog place", place.record_id)
        except Exception as exc:  # an unreadable original costs its revisit, not the package
            logger.warning("original %s not readable: %s", place.record_id, exc)
        return None

    # Ranged reads in parallel (a remote store's round trips), a batch at a time in memory.
    with path.open("wb") as out, ThreadPoolExecutor(8, thread_name_prefix="originals") as pool:
        while wanted:
            done.update(wanted)
            places = locate(wanted)
            result.missing.extend(i for i in wanted if i not in places)
            found = sorted(places.values(), key=lambda loc: (loc.warc_key, loc.offset))
            added = 0
            for start in range(0, len(found), 64):
                batch = found[start : start + 64]
                for place, data in zip(batch, pool.map(copy_of, batch), strict=True):
                    if data is None:
                        result.missing.append(place.record_id)
                        continue
                    out.write(data)
                    added += 1
            if not added:
                break
            result.copied += added
            out.flush()
            with path.open("rb") as fh:
                result.entries, result.cdxj = index_warc(fh, name)
            wanted = [i for i in missing_originals([*have, *result.entries]) if i not in done]
    if result.missing:
        logger.warning(
            "%d revisit originals not found; their revisits will not replay from this package",
            len(result.missing),
        )
    return result


@dataclass
class CopiedOriginals:
    """The originals WARC written for a package, its records in the crawl's ``RecordTable``
    (origin 1): how many copied, how many not found; its sorted CDXJ in ``cdxj``."""

    copied: int = 0
    missing: int = 0
    cdxj: Path | None = None


def _record_head(data: bytes) -> tuple[str, str, str | None] | None:
    """The id, type and WARC-Refers-To of the first record in ``data``."""
    from warcio.archiveiterator import ArchiveIterator

    for record in ArchiveIterator(io.BytesIO(data)):
        headers = record.rec_headers
        return (
            str(headers.get_header("WARC-Record-ID") or ""),
            str(record.rec_type),
            headers.get_header("WARC-Refers-To"),
        )
    return None


def copy_originals(
    path: Path,
    name: str,
    records: RecordTable,
    locate: Callable[[Sequence[str]], Mapping[str, Location]],
    read_range: Callable[[str, int, int], bytes],
    lines: SortedLines,
    batch: int,
) -> CopiedOriginals:
    """``write_originals`` for a crawl of any size: the revisits among ``records`` (origin 0)
    give the originals to copy, ``batch`` ids at a time; the WARC at ``path`` is then indexed
    into ``records`` (origin 1) and its CDXJ lines into ``lines``. The same file, record for
    record, as ``write_originals`` writes."""
    result = CopiedOriginals()

    def copy_of(place: Location) -> tuple[bytes, tuple[str, str, str | None]] | None:
        try:
            data = read_range(place.warc_key, place.offset, place.length)
            head = _record_head(data) if len(data) == place.length else None
            if head is not None and head[0] == place.record_id:
                return data, head
            logger.warning("original %s: not at its catalog place", place.record_id)
        except Exception as exc:  # an unreadable original costs its revisit, not the package
            logger.warning("original %s not readable: %s", place.record_id, exc)
        return None

    sink = records.entry_sink(1)
    with path.open("wb") as out, ThreadPoolExecutor(8, thread_name_prefix="originals") as pool:
        while records.next_originals():
            for wanted in records.wanted(max(batch, 1)):
                places = locate(wanted)
                result.missing += sum(1 for i in wanted if i not in places)
                records.add_places(places.values())
            added = 0
            for found in records.places(64):
                for copy in pool.map(copy_of, found):
                    if copy is None:
                        result.missing += 1
                        continue
                    data, (record_id, record_type, refers_to) = copy
                    # Enough of the record for the next round to find its own original.
                    sink(
                        WarcEntry(
                            name,
                            out.tell(),
                            len(data),
                            record_type,
                            record_id,
                            "",
                            "",
                            None,
                            None,
                            None,
                            refers_to,
                            None,
                        )
                    )
                    out.write(data)
                    added += 1
            if not added:
                break
            result.copied += added
    records.forget(1)
    if result.copied:
        with path.open("rb") as fh:
            index_warc_into(fh, name, sink, lines.add)
        records.flush()
    if result.missing:
        logger.warning(
            "%d revisit originals not found; their revisits will not replay from this package",
            result.missing,
        )
    return result


# -- the package ------------------------------------------------------------------------------
# An extra field no reader interprets (the id Android's zipalign pads with): it evens the
# lengths of a member's local and central extra fields when zipfile gives them ZIP64 fields of
# different sizes.
_PAD_ID = 0xD935
_ZIP64_LOCAL = 20  # the local header's ZIP64 field: id, length, two sizes


def _pad(length: int) -> bytes:
    return struct.pack("<HH", _PAD_ID, length - 4) + bytes(length - 4) if length else b""


@contextmanager
def _member(zf: zipfile.ZipFile, name: str, size: int, compress: int) -> Iterator[IO[bytes]]:
    """A member whose local header's extra field is as long as its central directory's.

    Readers that compute where a member's data starts from the central directory alone
    (ReplayWeb.page's) read a WARC at the wrong offset when the two differ: zipfile puts a
    ZIP64 field in the local header when ``file_size`` is near the limit (or when forced) and
    in the central directory when the size or the member's offset passes it. ``size`` must be
    the member's exact uncompressed size; both lengths are known before the member is written,
    and a padding field makes up the difference.
    """
    limit = zipfile.ZIP64_LIMIT
    info = zipfile.ZipInfo(name, date_time=datetime.now(UTC).timetuple()[:6])
    info.compress_type = compress
    info.file_size = size
    assert zf.fp is not None
    offset = zf.fp.tell()
    local = _ZIP64_LOCAL if size * 1.05 > limit else 0  # zipfile's own rule (_open_to_write)
    fields = (2 if size > limit else 0) + (1 if offset > limit else 0)
    central = 4 + 8 * fields if fields else 0
    info.extra = _pad(central - local) if central > local else b""
    with zf.open(info, "w") as out:
        yield out
    if info.file_size != size:
        raise ValueError(f"{name}: {info.file_size} bytes written, {size} announced")
    # The local header is written; what is left in ``extra`` goes to the central directory.
    info.extra = _pad(local - central) if local > central else b""


def _size_of(key: str, opener: Opener) -> int:
    with opener(key) as src:
        try:
            return int(src.seek(0, io.SEEK_END))
        except (OSError, ValueError, io.UnsupportedOperation):
            size = 0
            while chunk := src.read(_COPY):
                size += len(chunk)
            return size


def write_wacz(
    path: Path,
    warc_keys: Sequence[str],
    opener: Opener,
    cdxj: str | Path,
    pages: bytes | Path,
    title: str,
    sizes: Mapping[str, int] | None = None,
) -> None:
    """A WACZ 1.1.1 package: WARCs stored as they are, the merged CDXJ, pages, datapackage.

    ``sizes`` are the WARCs' sizes when known (else they are measured through ``opener``).
    The index and the pages are given as they are, or as files streamed into the package.
    """
    resources = []
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with zipfile.ZipFile(path, "w", allowZip64=True) as zf:
        for key in warc_keys:
            name = "archive/" + key.rsplit("/", 1)[-1]
            digest = hashlib.sha256()
            known = (sizes or {}).get(key)
            size = known if known is not None else _size_of(key, opener)
            # The spec: WARCs are stored, not deflated (replay reads records by range).
            with opener(key) as src, _member(zf, name, size, zipfile.ZIP_STORED) as out:
                while chunk := src.read(_COPY):
                    digest.update(chunk)
                    out.write(chunk)
            resources.append((name, size, digest.hexdigest()))
        for name, content in (
            ("indexes/index.cdx", cdxj.encode() if isinstance(cdxj, str) else cdxj),
            ("pages/pages.jsonl", pages),
        ):
            digest = hashlib.sha256()
            if isinstance(content, bytes):
                size = len(content)
                source: IO[bytes] = io.BytesIO(content)
            else:
                size = content.stat().st_size
                source = content.open("rb")
            with source, _member(zf, name, size, zipfile.ZIP_DEFLATED) as out:
                while chunk := source.read(_COPY):
                    digest.update(chunk)
                    out.write(chunk)
            resources.append((name, size, digest.hexdigest()))
        package = {
            "profile": "data-package",
            "resources": [
                {
                    "name": name.rsplit("/", 1)[-1].lower(),
                    "path": name,
                    "hash": f"sha256:{digest}",
                    "bytes": size,
                }
                for name, size, digest in resources
            ],
            "title": title,
            "created": created,
            "wacz_version": WACZ_VERSION,
            "software": f"newsarchive/{__version__}",
        }
        package_bytes = json.dumps(package, indent=2).encode()
        with _member(zf, "datapackage.json", len(package_bytes), zipfile.ZIP_DEFLATED) as out:
            out.write(package_bytes)
        digest_doc = {
            "path": "datapackage.json",
            "hash": "sha256:" + hashlib.sha256(package_bytes).hexdigest(),
        }
        digest_bytes = json.dumps(digest_doc, indent=2).encode()
        with _member(zf, "datapackage-digest.json", len(digest_bytes), zipfile.ZIP_DEFLATED) as out:
            out.write(digest_bytes)


def merged_cdxj(parts: Iterable[str]) -> str:
    return "".join(sorted(line for part in parts for line in part.splitlines(keepends=True)))


def known_rows(catalog: Catalog, crawl_id: str, record_ids: Sequence[str]) -> dict[str, Capture]:
    """The catalog's rows of these captures of the crawl (``catalog_rows``, a batch of it)."""
    out: dict[str, Capture] = {}
    with catalog.engine.connect() as conn:
        for start in range(0, len(record_ids), 500):
            part = list(record_ids[start : start + 500])
            found = conn.execute(
                captures.select().where(
                    captures.c.record_id.in_(part), captures.c.crawl_id == crawl_id
                )
            ).mappings()
            out.update((r["record_id"], table.capture_of(r)) for r in found)
    return out


def index_crawl_into(
    warc_keys: Iterable[str],
    opener: Opener,
    records: RecordTable,
    directory: Path,
    batch: int,
    on_cdxj: Callable[[str, Path], None],
) -> int:
    """``index_crawl`` for a crawl of any size: each WARC's records into ``records`` (origin
    0), its CDXJ sorted (``batch`` lines at most in memory) into a file handed to
    ``on_cdxj(warc_key, path)``, one WARC at a time; how many CDXJ lines in all."""
    count = 0
    sink = records.entry_sink(0)
    for key in warc_keys:
        lines = SortedLines(directory, batch)
        try:
            with opener(key) as stream:
                index_warc_into(stream, key, sink, lines.add)
            fd, name = tempfile.mkstemp(dir=directory, prefix=".cdxj-", suffix=".cdxj")
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                lines.write_to(out)
        finally:
            lines.close()
        count += lines.count
        on_cdxj(key, Path(name))
    records.flush()
    return count


def catalog_rows(catalog: Catalog, crawl_id: str) -> dict[str, Capture]:
    with catalog.engine.connect() as conn:
        found = conn.execute(captures.select().where(captures.c.crawl_id == crawl_id)).mappings()
        return {r["record_id"]: table.capture_of(r) for r in found}
