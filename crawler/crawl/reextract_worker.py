"""The pool's side of ``newsarchive reextract``: records read by byte range, checked against
their payload digest, decoded as the crawl decodes them and extracted.

A module of its own so that a pool process imports only this (the extractor, the store), not
the catalog, Parquet and story-linking code the writing side needs: the pool starts in a
fraction of the time.
"""

from __future__ import annotations

import gc
import hashlib
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Final

from isal import isal_zlib

from crawler.capture.browser import DOM_URI_PREFIX
from crawler.capture.records import sha1_digest
from crawler.store.base import Store, StoreError, local_root
from crawler.text.extract import Article, ExtractionError, SiteRules, extract_article
from crawler.text.page import (
    DEFAULT_MAX_SIZE,
    ContentCodingError,
    page_text,
    payload_problem,
    undo_content_coding,
)

# isal's stubs declare its error an instance, not a class.
_INFLATE_ERROR: type[Exception] = isal_zlib.error  # type: ignore[assignment]


class Unreadable(ValueError):
    """Bytes that are no readable WARC record."""


@dataclass(frozen=True, slots=True)
class Place:
    """A record to read: where it lies and which it must be."""

    record_id: str
    record_type: str  # response | resource (a rendered page's DOM)
    warc_key: str
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class RecordTask:
    record_id: str  # the capture re-extracted
    site: str
    url: str
    read: Place  # what its text is made from
    fallback: Place | None = None  # the response, when ``read`` is a resource and no DOM
    expect: str | None = None  # the article's text digest: a text with it comes back bare


@dataclass(frozen=True, slots=True)
class GroupTask:
    """Records of one WARC file, read through one open file (or ranged GETs)."""

    warc_key: str
    records: tuple[RecordTask, ...]


@dataclass(slots=True)
class Extracted:
    """What a worker made of one record: an article, or why none; and the record it read."""

    record_id: str
    reason: str | None = None
    detail: str = ""
    article: Article | None = None
    text: bytes = b""
    digest: str = ""  # of the text; with no article: the text the article has already
    encoding: str = ""
    source: Place | None = None
    source_uri: str = ""  # the record's WARC-Target-URI and WARC-Date (WARC-Refers-To-…)
    source_date: str = ""
    reads: int = 0
    bytes_read: int = 0


class RecordReader:
    """Reads, checks and extracts the records of WARC files: the pool's unit of work."""

    def __init__(self, store: Store, rules: Mapping[str, SiteRules], mode: str) -> None:
        self.store = store
        self.rules = rules
        self.mode = mode

    def group(self, task: GroupTask) -> list[Extracted]:
        key = task.warc_key
        path = self.store.local_path(key)
        if path is not None:
            try:
                handle = path.open("rb")
            except FileNotFoundError:
                return [Extracted(r.record_id, "missing-warc", key) for r in task.records]
            except OSError as exc:
                why = f"{key}: {exc}"
                return [Extracted(r.record_id, "store-error", why) for r in task.records]
            with handle:

                def read_local(place: Place) -> bytes:
                    if place.warc_key != key:
                        return self.store.get_range(place.warc_key, place.offset, place.length)
                    handle.seek(place.offset)
                    return handle.read(place.length)

                return [self.one(r, read_local) for r in task.records]
        out = []
        gone: str | None = None
        for record in task.records:
            if gone is not None:
                out.append(Extracted(record.record_id, "object-gone", gone))
                continue
            got = self.one(
                record,
                lambda place: self.store.get_range(place.warc_key, place.offset, place.length),
            )
            if got.reason == "object-gone" and got.detail == key:
                gone = key  # the rest of this file is not asked for again
            out.append(got)
        return out

    def one(self, task: RecordTask, read: Callable[[Place], bytes]) -> Extracted:
        """One capture's text: from ``task.read``, or its fallback when that is no DOM."""
        reads = size = 0
        got = Extracted(task.record_id)
        for place in (task.read, task.fallback):
            if place is None:
                break
            try:
                data = read(place)
            except FileNotFoundError:
                reason = "object-gone" if local_root(self.store) is None else "missing-warc"
                got = Extracted(task.record_id, reason, place.warc_key)
                break
            except (StoreError, OSError) as exc:
                got = Extracted(task.record_id, "store-error", f"{place.warc_key}: {exc}")
                break
            reads += 1
            size += len(data)
            got = self._record(task, place, data)
            if got.reason != "not-dom":
                break
        if got.reason == "not-dom":
            got.reason = "corrupt-record"
        got.reads, got.bytes_read = reads, size
        return got

    def _record(self, task: RecordTask, place: Place, data: bytes) -> Extracted:
        where = f"{place.warc_key} at {place.offset}"
        failed = task.record_id
        if len(data) != place.length:
            return Extracted(
                failed,
                "corrupt-record",
                f"{where}: {len(data)} of {place.length} bytes (the file is shorter)",
            )
        try:
            record = _parse_record(data)
        except Unreadable as exc:
            return Extracted(failed, "corrupt-record", f"{where}: {exc}")
        headers = record.headers
        found = headers.get("warc-record-id")
        target = headers.get("warc-target-uri", "")
        if found != place.record_id or record.rec_type != place.record_type:
            return Extracted(
                failed,
                "corrupt-record",
                f"{where} holds the {record.rec_type} {found}, not the {place.record_type} "
                f"{place.record_id}",
            )
        if place.record_type == "resource" and not target.startswith(DOM_URI_PREFIX):
            return Extracted(failed, "not-dom", f"{where}: {target} is no rendered DOM")
        if headers.get("warc-truncated"):
            return Extracted(failed, "truncated", where)
        payload = record.payload
        label = headers.get("warc-payload-digest", "")
        number = _sha1_label_value(label)
        if number is not None and number == int.from_bytes(hashlib.sha1(payload).digest()):
            matches: bool | None = True  # the crawl's kind, checked without base32's Python
        elif label:
            from crawler.access.records import digest_matches

            matches = digest_matches(label, payload)
        else:
            matches = None
        if matches is None:
            why = f"{label}, which cannot be checked" if label else "none"
            return Extracted(failed, "no-digest", f"{where}: payload digest {why}")
        if not matches:
            return Extracted(
                failed,
                "digest-mismatch",
                f"{where} ({place.record_id}): payload {sha1_digest(payload)}, record says {label}",
            )
        if record.http is not None:
            codings = [value for name, value in record.http if name.lower() == "content-encoding"]
            types = [value for name, value in record.http if name.lower() == "content-type"]
        else:  # a DOM: its block is the document, as the browser serialised it
            codings, types = [], [headers.get("content-type") or "text/html"]
        body = _one_gzip_member(payload) if _is_gzip(codings) else None
        if body is None:
            try:
                body, _left = undo_content_coding(payload, codings)
            except ContentCodingError as exc:
                return Extracted(failed, "content-coding", f"{where}: {exc}")
            # The crawl's check (text/page.py): a coding cut short or failing its checksum
            # gave the start of the page at best, never a text (issue 23).
            if (problem := payload_problem(payload, codings, decoded=body)) is not None:
                return Extracted(failed, problem[0], f"{where}: {problem[1]}")
        html, encoding = page_text(body, types[-1] if types else None)
        try:
            article = extract_article(html, task.url, self.rules.get(task.site), mode=self.mode)
        except ExtractionError as exc:
            return Extracted(failed, "extraction-error", f"{exc.reason}: {task.url}")
        text = article.text.encode("utf-8")
        digest = "sha256:" + hashlib.sha256(text).hexdigest()
        if digest == task.expect:
            # The text the article has: nothing of it needs to travel back.
            return Extracted(failed, digest=digest, source=place)
        return Extracted(
            failed,
            article=article,
            text=text,
            digest=digest,
            encoding=encoding,
            source=place,
            source_uri=target,
            source_date=headers.get("warc-date", ""),
        )


# The base32 alphabet (either case) as int()'s base-32 digits, 0-9a-v; every other ASCII
# character as one int() refuses (its sign, spaces and underscores too).
_B32_DIGITS: Final = {c: "!" for c in range(128)} | {
    ord(symbol): digit
    for alphabet in ("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "abcdefghijklmnopqrstuvwxyz234567")
    for symbol, digit in zip(alphabet, "0123456789abcdefghijklmnopqrstuv", strict=True)
}


def _sha1_label_value(label: str) -> int | None:
    """The 160-bit digest a ``sha1:BASE32`` label spells (its symbols in either case), as a
    number; None for any other label. A label and a digest match exactly when the label in
    upper case is ``sha1_digest``'s, whose 32 symbols spell the digest's 160 bits: compared
    as numbers (two C calls), not as strings (base32 in a Python loop, 3 us a record)."""
    value = label[5:]
    if len(value) != 32 or not value.isascii() or label[:5].lower() != "sha1:":
        return None
    try:
        return int(value.translate(_B32_DIGITS), 32)
    except ValueError:
        return None


def _is_gzip(codings: list[str]) -> bool:
    return len(codings) == 1 and codings[0].strip().lower() in ("gzip", "x-gzip")


def _one_gzip_member(payload: bytes) -> bytes | None:
    """A gzip payload that is one whole member (its CRC and length checked), inflated at once
    by ISA-L: byte for byte what ``undo_content_coding`` (Scrapy's GzipFile reading) gives it,
    at a fraction of the cost. None for anything else (several members, trailing bytes, a
    broken or cut stream, past Scrapy's size limit): ``undo_content_coding`` reads those."""
    inflater = isal_zlib.decompressobj(31)
    try:
        body = inflater.decompress(payload, DEFAULT_MAX_SIZE + 1)
    except _INFLATE_ERROR:
        return None
    if not inflater.eof or inflater.unused_data or len(body) > DEFAULT_MAX_SIZE:
        return None
    return body


@dataclass(slots=True)
class _Record:
    """One WARC record as reextract needs it: its WARC header (names in lower case), its HTTP
    header lines (a response) and its payload as stored (chunking undone)."""

    rec_type: str
    headers: dict[str, str]
    http: list[tuple[str, str]] | None
    payload: bytes


def _parse_record(data: bytes) -> _Record:
    """The record in ``data`` (its gzip member, or the plain record): read directly when it is
    as the crawl writes records, else by warcio (``RecordError`` when unreadable)."""
    found = _plain_record(data)
    if found is not None:
        return found
    from crawler.access.records import RecordError, wire_payload_of

    try:
        record, payload = wire_payload_of(data)
    except RecordError as exc:
        raise Unreadable(str(exc)) from exc
    http = record.http_headers
    return _Record(
        record.rec_type,
        {name.lower(): value.strip() for name, value in record.rec_headers.headers},
        list(http.headers) if http is not None else None,
        payload,
    )


def _plain_record(data: bytes) -> _Record | None:
    """The record parsed by hand, or None for anything unusual (warcio reads those): a
    tenth of warcio's cost, which counts when extraction takes a millisecond. The gzip
    member is inflated by ISA-L (the same format, twice zlib's speed)."""
    if data[:2] == b"\x1f\x8b":
        inflater = isal_zlib.decompressobj(31)
        try:
            raw = inflater.decompress(data)
        except _INFLATE_ERROR:
            return None
        if not inflater.eof or inflater.unused_data:
            return None
    else:
        raw = data
    end = raw.find(b"\r\n\r\n")
    if end < 0 or not raw.startswith(b"WARC/1."):
        return None
    lines = _header_lines(raw[:end].decode("utf-8", "replace"))
    if lines is None:
        return None
    headers = {name.lower(): value for name, value in lines}
    try:
        length = int(headers["content-length"])
    except (KeyError, ValueError):
        return None
    start, stop = end + 4, end + 4 + length
    if raw[stop:] != b"\r\n\r\n":
        return None
    rec_type = headers.get("warc-type", "")
    if not headers.get("content-type", "").startswith("application/http"):
        return _Record(rec_type, headers, None, raw[start:stop])
    head_end = raw.find(b"\r\n\r\n", start, stop)
    if head_end < 0:
        return None
    http = _header_lines(raw[start:head_end].decode("latin-1"))
    if http is None:
        return None
    if any(name.lower() == "transfer-encoding" for name, _value in http):
        return None  # chunked as stored: warcio undoes it
    # One copy of the payload, straight out of the inflated member.
    return _Record(rec_type, headers, http, raw[head_end + 4 : stop])


def _header_lines(head: str) -> list[tuple[str, str]] | None:
    """The ``name: value`` lines after a header block's first line; None when one is folded
    or broken (warcio reads those)."""
    pairs = []
    for line in head.split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if not sep or line[:1] in (" ", "\t"):
            return None
        pairs.append((name.strip(), value.strip()))
    return pairs


_reader: RecordReader | None = None  # one per pool process


def start_worker(
    store_uri: str,
    options: Mapping[str, object],
    rules: Mapping[str, SiteRules],
    mode: str,
    alive: Any,
) -> None:
    from crawler.store.uri import open_store

    global _reader
    # Ctrl-C is the command's to handle: it stops the run and lets the pool finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _reader = RecordReader(open_store(store_uri, options), rules, mode)
    # What the process holds from now on lives as long as it: out of the collector's way
    # (reextract's _frozen), so each task's collections walk only what the task made.
    gc.freeze()

    def watch() -> None:
        # The command holds the other end: it closes when the command ends, however it
        # ends (SIGKILL too), and a pool process waiting for work would otherwise wait on.
        with suppress(EOFError, OSError):
            alive.recv()
        os._exit(0)

    threading.Thread(target=watch, name="reextract-parent-watch", daemon=True).start()


# What crosses the process boundary is plain tuples, which pickle in C: a task's dataclasses
# cost 25 us a record to pickle and unpickle, and as much an answer's (the parent's share was a
# tenth of a core beside two workers busy extracting, on a 2-core machine).
PlaceTuple = tuple[str, str, str, int, int]
RecordTuple = tuple[str, str, str, PlaceTuple, PlaceTuple | None, str | None]
Packed = tuple[str, tuple[RecordTuple, ...]]  # a GroupTask
# A task's answer: the records whose text is the one the article has (record id, reads, bytes
# read: all the parent needs of them), and every other one whole.
Answer = tuple[list[tuple[str, int, int]], list[Extracted]]
# What a pool process sends back: the answer, its process id and the CPU seconds the task took.
Done = tuple[list[tuple[str, int, int]], list[Extracted], int, float]


def _place_tuple(place: Place) -> PlaceTuple:
    return (place.record_id, place.record_type, place.warc_key, place.offset, place.length)


def pack(task: GroupTask) -> Packed:
    """``task`` as the tuples :func:`work` takes."""
    return task.warc_key, tuple(
        (
            r.record_id,
            r.site,
            r.url,
            _place_tuple(r.read),
            None if r.fallback is None else _place_tuple(r.fallback),
            r.expect,
        )
        for r in task.records
    )


def unpack(packed: Packed) -> GroupTask:
    key, records = packed
    return GroupTask(
        key,
        tuple(
            RecordTask(
                record_id,
                site,
                url,
                Place(*read),
                Place(*fallback) if fallback is not None else None,
                expect,
            )
            for record_id, site, url, read, fallback, expect in records
        ),
    )


def answer(results: list[Extracted]) -> Answer:
    """``results`` as :func:`work` sends them back: a text equal to the one expected (no
    article, no reason: ``digest`` is the task's ``expect``) as its id and counts only."""
    same: list[tuple[str, int, int]] = []
    rest: list[Extracted] = []
    for got in results:
        if got.reason is None and got.article is None:
            same.append((got.record_id, got.reads, got.bytes_read))
        else:
            rest.append(got)
    return same, rest


def ready() -> None:
    """A pool process's first task: started early, it is up when the work comes."""


def work(packed: Packed) -> Done:
    assert _reader is not None, "a pool process without its reader"
    start = time.process_time()
    same, rest = answer(_reader.group(unpack(packed)))
    return same, rest, os.getpid(), time.process_time() - start
