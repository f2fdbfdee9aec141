"""WARC records read from the store by byte range, and the index of one WARC file.

Every record is its own gzip member, so the byte ranges of a few records, concatenated, are a
valid WARC file: a capture's records are fetched without reading the rest of the file.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import BigInteger, Column, Engine, MetaData, String, Table, Text, insert, select
from sqlalchemy.exc import IntegrityError

from crawler import __version__
from crawler.constants import CHALLENGE_FIELD, CHALLENGE_URI_PREFIX
from crawler.store.base import Store
from crawler.util import without_password

CHUNK = 8 * 1024 * 1024
# Records that belong to one capture besides its response: how each points at the response.
LINKED_TYPES = ("request", "metadata", "conversion", "resource")
CAPTURE_TYPES = ("response", "revisit")
WARC_1_1 = "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/"

tables = MetaData()
# Beside the catalog's tables (same database): where each capture's other records lie.
capture_records = Table(
    "capture_records",
    tables,
    Column("record_id", String(80), primary_key=True),
    Column("capture_record_id", String(80), nullable=False, index=True),
    Column("record_type", String(16), nullable=False),
    Column("warc_key", Text, nullable=False),
    Column("warc_offset", BigInteger, nullable=False),
    Column("warc_length", BigInteger, nullable=False),
)


@dataclass(frozen=True, slots=True)
class Location:
    record_type: str
    record_id: str
    warc_key: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class WarcEntry:
    """One record of a WARC file as the index sees it."""

    warc_key: str
    offset: int
    length: int
    record_type: str
    record_id: str
    target_uri: str
    date: str
    mime: str | None
    status: int | None
    payload_digest: str | None
    refers_to: str | None
    concurrent_to: str | None
    challenge: str | None = None  # a challenge page (CHALLENGE_FIELD), not the page asked for

    @property
    def location(self) -> Location:
        return Location(self.record_type, self.record_id, self.warc_key, self.offset, self.length)


def original_mime(entry: WarcEntry, lookup: Callable[[str], WarcEntry | None]) -> str | None:
    """The media type of what a capture holds: a revisit's is its original's (``lookup``
    finds a record by id), None when the chain ends in a revisit or a record not found."""
    seen = entry
    for _ in range(8):  # a revisit of a revisit: follow a few links, no loop
        if seen.record_type != "revisit" or not seen.refers_to:
            break
        nxt = lookup(seen.refers_to)
        if nxt is None:
            break
        seen = nxt
    return None if seen.record_type == "revisit" else seen.mime


class RangeReader(io.RawIOBase):
    """A store object read front to back in ranged GETs of ``chunk`` bytes."""

    def __init__(self, store: Store, key: str, size: int) -> None:
        self.store = store
        self.key = key
        self.size = size
        self.pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self.size - self.pos)
        if want <= 0:
            return 0
        data = self.store.get_range(self.key, self.pos, want)
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)


def object_size(store: Store, key: str) -> int | None:
    path = store.local_path(key)
    if path is not None:
        return path.stat().st_size
    head = getattr(store, "head", None)
    if head is not None:
        found = head(key)
        return None if found is None else int(found.size)
    return None


@contextmanager
def open_object(store: Store, key: str, size: int | None = None) -> Iterator[IO[bytes]]:
    """A stored object as a stream: the file itself when local, ranged reads when remote."""
    path = store.local_path(key)
    if path is not None:
        with path.open("rb") as fh:
            yield fh
        return
    if size is None:
        size = object_size(store, key)
    if size is None:
        raise FileNotFoundError(f"{store.uri}{key}")
    yield io.BufferedReader(RangeReader(store, key, size), CHUNK)


@functools.cache
def _indexer_class() -> type[Any]:
    """The indexer, made on first use: cdxj-indexer's imports (surt, tldextract, requests)
    take ~28 MB that a crawl needs only once it ends (issue 22: crawl-time memory)."""
    from cdxj_indexer.main import CDXJIndexer

    class _Indexer(CDXJIndexer):  # type: ignore[misc]
        """cdxj-indexer's pywb-compatible lines, and every record's place on the side: each
        handed to ``on_line`` and ``on_entry`` as it is read (kept in ``lines`` and ``entries``
        without them)."""

        def __init__(
            self,
            warc_key: str,
            on_entry: Callable[[WarcEntry], None] | None = None,
            on_line: Callable[[str], None] | None = None,
        ) -> None:
            super().__init__(io.StringIO(), [])
            self.warc_key = warc_key
            self.entries: list[WarcEntry] = []
            self.lines: list[str] = []
            self.on_entry = on_entry or self.entries.append
            self.on_line = on_line or self.lines.append
            self._indexed = False

        def filter_record(self, record: Any) -> bool:
            # Every record is seen here; only pywb's default kinds become CDXJ lines.
            self._indexed = bool(super().filter_record(record))
            return True

        def process_index_entry(self, it: Any, record: Any, filename: str, output: Any) -> None:
            headers = record.rec_headers
            challenge = headers.get_header(CHALLENGE_FIELD)
            if self._indexed:
                out = io.StringIO()
                super().process_index_entry(it, record, filename, out)
                line = out.getvalue()
                self.on_line(_challenge_line(line, challenge) if challenge else line)
            status = None
            if record.rec_type in CAPTURE_TYPES and record.http_headers:
                code = record.http_headers.get_statuscode()
                status = int(code) if code and code.isdigit() else None
            self.on_entry(
                WarcEntry(
                    warc_key=self.warc_key,
                    offset=int(it.get_record_offset()),
                    length=int(it.get_record_length()),
                    record_type=record.rec_type,
                    record_id=headers.get_header("WARC-Record-ID") or "",
                    target_uri=headers.get_header("WARC-Target-URI") or "",
                    date=headers.get_header("WARC-Date") or "",
                    mime=self.get_field(record, "mime", it, filename),
                    status=status,
                    payload_digest=headers.get_header("WARC-Payload-Digest"),
                    refers_to=headers.get_header("WARC-Refers-To"),
                    concurrent_to=headers.get_header("WARC-Concurrent-To"),
                    challenge=challenge,
                )
            )

    return _Indexer


def _challenge_line(line: str, challenge: str) -> str:
    """A challenge page's CDXJ line, keyed apart from the page it stood in front of.

    pywb and the CDX API find captures by key: under ``urn:challenge:<url>`` the challenge is
    never served as a capture of ``<url>`` (nor of the robots.txt it answered for), yet stays
    findable, with its place in the WARC, and says what it is (``"challenge"``).
    """
    _key, timestamp, block = line.rstrip("\n").split(" ", 2)
    fields = json.loads(block)
    fields["challenge"] = challenge
    return f"{CHALLENGE_URI_PREFIX}{fields.get('url', '')} {timestamp} {json.dumps(fields)}\n"


def index_warc(stream: IO[bytes], warc_key: str) -> tuple[list[WarcEntry], str]:
    """Every record's place, and the sorted CDXJ (pywb's format, cdxj-indexer's lines)."""
    indexer = _indexer_class()(warc_key)
    indexer.process_one(stream, None, warc_key.rsplit("/", 1)[-1])
    return indexer.entries, "".join(sorted(indexer.lines))


def index_warc_into(
    stream: IO[bytes],
    warc_key: str,
    on_entry: Callable[[WarcEntry], None],
    on_line: Callable[[str], None],
) -> None:
    """As ``index_warc``, each record's place and CDXJ line handed on as it is read (in the
    file's order, the lines unsorted): nothing of the file is held."""
    indexer = _indexer_class()(warc_key, on_entry, on_line)
    indexer.process_one(stream, None, warc_key.rsplit("/", 1)[-1])


def linked_records(entries: Iterable[WarcEntry]) -> dict[str, list[Location]]:
    """Per capture (response or revisit id): its request, metadata, conversion, resource.

    A record points at its capture by ``WARC-Concurrent-To`` (the request; a rendered page's
    DOM, screenshot and page metadata) or ``WARC-Refers-To`` (an article's text and
    metadata). The text of a rendered page refers to the DOM it was extracted from, so it
    belongs to the capture that DOM belongs to.
    """
    out: dict[str, list[Location]] = {}
    owner: dict[str, str] = {}  # a DOM/screenshot record id -> its capture
    later: list[WarcEntry] = []
    for entry in entries:
        if entry.record_type not in LINKED_TYPES:
            continue
        if entry.record_type in ("request", "resource") and entry.concurrent_to:
            out.setdefault(entry.concurrent_to, []).append(entry.location)
            owner[entry.record_id] = entry.concurrent_to
        elif entry.refers_to:
            later.append(entry)
        elif entry.record_type == "metadata" and entry.concurrent_to:
            out.setdefault(entry.concurrent_to, []).append(entry.location)
    for entry in later:
        assert entry.refers_to is not None
        capture = owner.get(entry.refers_to, entry.refers_to)
        out.setdefault(capture, []).append(entry.location)
    return out


def read_records(store: Store, locations: Sequence[Location]) -> bytes:
    """The records at these places, concatenated: a valid WARC (gzip member per record)."""
    return b"".join(store.get_range(loc.warc_key, loc.offset, loc.length) for loc in locations)


def record_problems(
    stream: IO[bytes], on_record: Callable[[], None] | None = None
) -> Iterator[tuple[int, str, str]]:
    """Every record of a WARC stream whose block or payload digest fails, or that cannot be
    read: (offset, record id, what is wrong), read once front to back with warcio's checks.
    A record that cannot be read ends the stream (nothing after it can be found)."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    found: list[tuple[int, str, str]] = []
    offset = 0
    record_id = ""
    said = io.StringIO()  # warcio writes a broken gzip member to stderr and reads on
    try:
        with redirect_stderr(said):
            records = ArchiveIterator(stream, check_digests=True)
            for record in records:
                record_id = record.rec_headers.get_header("WARC-Record-ID") or ""
                if on_record is not None:
                    on_record()
                while record.raw_stream.read(CHUNK):
                    pass  # the digests are taken as the record is read
                offset = int(records.get_record_offset())  # asked before, it reads the record
                checker = record.digest_checker
                left = int(getattr(record.raw_stream, "limit", 0) or 0)
                if said.getvalue().strip() or left > 0:
                    cause = said.getvalue().strip() or "the file ends first"
                    found.append((offset, record_id, f"cut short, {left} bytes missing ({cause})"))
                elif checker.passed is False:
                    found.append((offset, record_id, "; ".join(map(str, checker.problems))))
                said.seek(0)
                said.truncate()
                record_id = ""
    except (ArchiveLoadFailed, OSError, EOFError, ValueError, zlib.error) as exc:
        where = f"after {record_id}" if record_id else "unreadable"
        found.append((offset, record_id, f"{where}: {_short(exc)}"))
    yield from found


def _short(exc: BaseException) -> str:
    """An exception in one short printable line (warcio quotes the bytes it could not read)."""
    text = " ".join(str(exc).split())
    text = "".join(c if c.isprintable() and ord(c) < 128 else "?" for c in text)
    return f"{exc.__class__.__name__}: {text[:100]}{'…' if len(text) > 100 else ''}"


def check_record_bytes(data: bytes, location: Location) -> None:
    """``RecordError`` naming the record and its WARC unless ``data`` is exactly the record the
    catalog places there, whole, its block and payload digests passing."""
    place = f"record {location.record_id} in {location.warc_key} at {location.offset}"
    if len(data) != location.length:
        raise RecordError(f"{place}: {len(data)} of its {location.length} bytes in the store")
    found = list(record_problems(io.BytesIO(data)))
    if found:
        raise RecordError(f"{place} is corrupt: {found[0][2]}")
    record, _payload = wire_payload_of(data)
    ident = record.rec_headers.get_header("WARC-Record-ID") or ""
    if location.record_id and ident != location.record_id:
        raise RecordError(f"{place}: record {ident or '(none)'} there instead")


def read_verified(store: Store, locations: Sequence[Location]) -> bytes:
    """As ``read_records``, each record checked (``check_record_bytes``): RecordError else."""
    parts = []
    for loc in locations:
        data = store.get_range(loc.warc_key, loc.offset, loc.length)
        check_record_bytes(data, loc)
        parts.append(data)
    return b"".join(parts)


def extract_warcinfo(
    filename: str,
    *,
    store_uri: str,
    crawl_ids: Iterable[str],
    query: str,
    description: str,
) -> bytes:
    """The warcinfo record that opens a WARC extract (one gzip member): what it was cut from.

    Names the software, the source store, the crawls the records come from (one
    ``crawl-id`` line each) and the query that chose them. The records after it are copied
    from the store unchanged, so their ``WARC-Warcinfo-ID`` still names their own file's
    warcinfo; this one describes the extract.
    """
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    lines: list[tuple[str, str]] = [
        ("software", f"newsarchive/{__version__}"),
        ("format", "WARC File Format 1.1"),
        ("conformsTo", WARC_1_1),
        ("source-store", without_password(store_uri)),
        *(("crawl-id", crawl_id) for crawl_id in sorted(set(crawl_ids))),
        ("query", query),
        ("description", description),
    ]
    block = "".join(
        f"{name}: {' '.join(value.split())}\r\n" for name, value in lines if value
    ).encode("utf-8")
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True, warc_version="WARC/1.1")
    headers = StatusAndHeaders("", [], protocol="WARC/1.1")
    headers.add_header("WARC-Type", "warcinfo")
    headers.add_header("WARC-Record-ID", f"<urn:uuid:{uuid.uuid4()}>")
    headers.add_header("WARC-Filename", filename)
    headers.add_header("WARC-Date", writer.curr_warc_date())
    record = writer.create_warc_record(
        "",
        "warcinfo",
        warc_headers=headers,
        payload=io.BytesIO(block),
        length=len(block),
        warc_content_type="application/warc-fields",
    )
    writer.write_record(record)
    return out.getvalue()


def payload_of(data: bytes) -> tuple[Any, bytes]:
    """The first record in ``data`` (one record's bytes) and its payload, content coding kept."""
    from warcio.archiveiterator import ArchiveIterator

    for record in ArchiveIterator(io.BytesIO(data)):
        return record, bytes(record.content_stream().read())
    raise ValueError("no WARC record in the given bytes")


class RecordError(ValueError):
    """Bytes that are not the record the catalog says: unreadable, or failing their digest."""


def wire_payload_of(data: bytes) -> tuple[Any, bytes]:
    """The first record in ``data`` and its payload as it came over the wire: a chunked
    transfer coding undone, the Content-Encoding kept (``payload_of`` undoes it too).

    ``RecordError`` when the bytes are no readable WARC record.
    """
    from warcio.archiveiterator import ArchiveIterator
    from warcio.bufferedreaders import ChunkedDataReader
    from warcio.exceptions import ArchiveLoadFailed

    try:
        for record in ArchiveIterator(io.BytesIO(data)):
            stream = record.raw_stream
            headers = record.http_headers
            if headers is not None and (
                (headers.get_header("Transfer-Encoding") or "").strip().lower() == "chunked"
            ):
                stream = ChunkedDataReader(stream)
            return record, bytes(stream.read())
    except (ArchiveLoadFailed, OSError, EOFError, ValueError, zlib.error) as exc:
        raise RecordError(f"no readable WARC record: {exc}") from exc
    raise RecordError("no WARC record in the bytes read")


def digest_matches(label: str, data: bytes) -> bool | None:
    """Whether ``data`` has the digest a WARC header gives (``sha1:BASE32``, or base 16 as some
    tools write it); None for an algorithm this cannot compute."""
    algorithm, _, value = label.strip().partition(":")
    algorithm = algorithm.lower().replace("-", "")
    if algorithm not in ("sha1", "sha256", "sha512", "md5") or not value:
        return None
    digest = hashlib.new(algorithm, data).digest()
    return value.upper() == base64.b32encode(digest).decode("ascii") or (
        value.lower() == digest.hex()
    )


def check_digest(record: Any, payload: bytes) -> None:
    """``RecordError`` when ``payload`` fails the record's payload digest (its block digest for
    a record without HTTP headers, whose block is its payload)."""
    headers = record.rec_headers
    label = headers.get_header("WARC-Payload-Digest")
    if not label and record.http_headers is None:
        label = headers.get_header("WARC-Block-Digest")
    if label and digest_matches(label, payload) is False:
        raise RecordError(f"its payload fails its digest {label.strip()}")


# -- the catalog's side table -----------------------------------------------------------------
def ensure_tables(engine: Engine) -> None:
    """The side table, and catalog indexes added since the catalog was created."""
    from crawler.catalog.db import captures

    tables.create_all(engine)
    for index in captures.indexes:
        index.create(engine, checkfirst=True)


def add_linked(engine: Engine, links: dict[str, list[Location]]) -> int:
    rows = [
        {
            "record_id": loc.record_id,
            "capture_record_id": capture,
            "record_type": loc.record_type,
            "warc_key": loc.warc_key,
            "warc_offset": loc.offset,
            "warc_length": loc.length,
        }
        for capture, locations in links.items()
        for loc in locations
    ]
    if not rows:
        return 0
    try:
        with engine.begin() as conn:
            conn.execute(insert(capture_records), rows)
        return len(rows)
    except IntegrityError:
        added = 0
        for row in rows:  # a re-run: skip those already there
            try:
                with engine.begin() as conn:
                    conn.execute(insert(capture_records).values(**row))
                added += 1
            except IntegrityError:
                continue
        return added


def linked_for_many(
    engine: Engine, ids: Sequence[str], record_type: str | None = None
) -> dict[str, list[Location]]:
    """The other records of many captures in one query (of ``record_type`` only, if given),
    each capture's in WARC file and offset order."""
    out: dict[str, list[Location]] = {i: [] for i in ids}
    if not ids:
        return out
    c = capture_records.c
    query = select(
        c.capture_record_id, c.record_type, c.record_id, c.warc_key, c.warc_offset, c.warc_length
    ).where(c.capture_record_id.in_(list(ids)))
    if record_type is not None:
        query = query.where(c.record_type == record_type)
    with engine.connect() as conn:
        for capture, *place in conn.execute(query.order_by(c.warc_key, c.warc_offset)):
            out[capture].append(Location(*place))
    return out


def linked_for(engine: Engine, capture_record_id: str) -> list[Location]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(capture_records)
            .where(capture_records.c.capture_record_id == capture_record_id)
            .order_by(capture_records.c.warc_key, capture_records.c.warc_offset)
        ).mappings()
        return [
            Location(
                r["record_type"], r["record_id"], r["warc_key"], r["warc_offset"], r["warc_length"]
            )
            for r in rows
        ]
