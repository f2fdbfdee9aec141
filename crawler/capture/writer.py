"""Rolling .warc.gz writer on a background thread, and recovery of files left open by a crash."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import logging
import os
import queue
import re
import socket
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from isal import isal_zlib

from crawler.capture.records import (
    Clock,
    RecordBuilder,
    WarcRecord,
    record_date,
    utc_now,
    warcinfo_id_line,
    warcinfo_id_split,
)
from crawler.layout import OPEN_SUFFIX, WARC_GZ_SUFFIX, warc_file_name

logger = logging.getLogger(__name__)

FORMAT_FIELDS: Mapping[str, str] = {
    "format": "WARC File Format 1.1",
    "conformsTo": "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/",
}

_PREFIX_RE = re.compile(r"[A-Za-z0-9._-]+")
_HOST_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")
_READ_CHUNK = 64 * 1024  # small: each member boundary copies the rest of the chunk
_INFLATE_LIMIT = 1024 * 1024  # bounds memory per inflate step, whatever the ratio
_MAX_WARC_HEAD = 1024 * 1024

_Task = tuple[Callable[[], Any], Future[Any]]


class WarcWriteError(OSError):
    """Writing a WARC file failed; the writer accepts no more records."""


@dataclass(frozen=True, slots=True)
class RecordLocation:
    """Where a record landed: its gzip member's offset and compressed length in the file."""

    filename: str
    offset: int
    length: int
    record_id: str


@dataclass(frozen=True, slots=True)
class RecoveryResult:
    """A file left open by a crash, repaired and renamed to its final name."""

    path: Path
    records_kept: int
    bytes_cut: int


def _open_exclusive(path: Path) -> io.FileIO:
    # Unbuffered: each group goes out in one write() call, so nothing waits in user space.
    return io.FileIO(path, "xb")


# Levels 1-3 deflate with ISA-L (python-isal): its levels 1-3 give zlib's ratios at those
# levels (within a few per cent on news pages) for a fifth to a half of the CPU; 0 stores,
# 4-9 are zlib's.
# Either way each member is a plain RFC 1952 gzip member that every WARC reader opens.
ISAL_LEVELS = range(1, 4)


class _Deflater(Protocol):
    def compress(self, data: bytes | memoryview, /) -> bytes: ...
    def flush(self) -> bytes: ...


def _compressor(level: int) -> _Deflater:
    """A gzip member's deflater at ``level`` (0-9, zlib's scale)."""
    if level in ISAL_LEVELS:
        deflater: _Deflater = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)
        return deflater
    return zlib.compressobj(level, zlib.DEFLATED, 31)


def _gzip_member(data: bytes, level: int) -> bytes:
    compressor = _compressor(level)
    return compressor.compress(data) + compressor.flush()


def _gzip_record(data: bytes, warcinfo_line: bytes, level: int) -> bytes:
    """One record's member, with the ``WARC-Warcinfo-ID`` line put into its header.

    The record bytes are fed to the compressor around the line, never copied whole.
    """
    split = warcinfo_id_split(data)
    if split < 0:
        return _gzip_member(data, level)
    view = memoryview(data)
    compressor = _compressor(level)
    return b"".join(
        (
            compressor.compress(view[:split]),
            compressor.compress(warcinfo_line),
            compressor.compress(view[split:]),
            compressor.flush(),
        )
    )


class WarcFileWriter:
    """Writes record groups to ``{prefix}-{time}-{serial}-{host}.warc.gz`` files, in order.

    All file work runs on one background thread: the caller (the reactor) only queues bytes.
    Each record is its own gzip member; a group (request + response, …) stays contiguous in
    one file. Each file starts with a warcinfo record, and every other record gets a
    ``WARC-Warcinfo-ID`` naming it, put in as the record is written (records are built before
    their file is known; the line is in the WARC header, which no digest covers).

    Dates: no record is dated before the warcinfo of its file. Records carry the time their
    request went out, so a record may be older than a file opened while it was downloading.
    Files open (and roll over) lazily, at the write of the group that goes into them, and the
    warcinfo is dated at that moment or, if a record of that group is older, at that record's
    date. A later group holding a record older than the current file's warcinfo (a download
    that outlasted a rollover) starts a new file, dated the same way: the warcinfo cannot be
    re-dated once written, since offsets of the records after it are already handed out.
    That takes a download longer than the age of the file, so these early rollovers are rare.

    A file is written as ``<name>.open`` and renamed when closed; ``on_close`` then
    runs on the writer thread, so it should hand slow work (uploads) elsewhere. A writer that
    is never closed leaves its ``.open`` file for :func:`recover_open_files`.
    """

    def __init__(
        self,
        directory: Path,
        *,
        prefix: str,
        hostname: str | None = None,
        crawl_tag: str = "",
        builder: RecordBuilder | None = None,
        warcinfo_fields: Mapping[str, str | Sequence[str]] | None = None,
        max_size: int = 1_000_000_000,
        max_age: float | None = 3600.0,
        compress_level: int = 2,
        on_close: Callable[[Path], None] | None = None,
        clock: Clock = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        max_queued: int = 16 * 1024 * 1024,
    ) -> None:
        if not _PREFIX_RE.fullmatch(prefix):
            raise ValueError(f"WARC prefix must match [A-Za-z0-9._-]+, got {prefix!r}")
        if max_size <= 0:
            raise ValueError(f"max_size must be positive, got {max_size!r}")
        if max_age is not None and max_age <= 0:
            raise ValueError(f"max_age must be positive or None, got {max_age!r}")
        if not 0 <= compress_level <= 9:
            raise ValueError(f"compress_level must be 0-9, got {compress_level!r}")
        self.directory = Path(directory)
        self.prefix = prefix
        self.hostname = _HOST_UNSAFE.sub("-", hostname or socket.gethostname()) or "localhost"
        if crawl_tag:
            # As Heritrix puts its pid there: the crawl's tag in the host field keeps the
            # names' shape and order, and no other crawl can choose the same name. ("-", not
            # Heritrix's "~": a WACZ resource name allows only [-a-z0-9._/].)
            self.hostname = f"{_HOST_UNSAFE.sub('-', crawl_tag)}-{self.hostname}"
        self._builder = builder if builder is not None else RecordBuilder(clock=clock)
        fields: dict[str, str | Sequence[str]] = dict(warcinfo_fields or {})
        fields.update(FORMAT_FIELDS)
        self._warcinfo_fields = fields
        self._max_size = max_size
        self._max_age = max_age
        self._level = compress_level
        self._on_close = on_close
        self._clock = clock
        self._monotonic = monotonic
        # A crawl's writer is made when the crawl opens, before any request goes out: its
        # first file's warcinfo is dated then, so the first responses, which arrive in any
        # order, never predate it (and never start a file of their own).
        self._created = clock()
        self._files_opened = 0

        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        # Record bytes queued and not yet written: past max_queued, a caller waits for the
        # writer (the crawl's downloads pause with it) instead of the backlog growing in memory
        # while the writer is behind (a fast crawl of large identity bodies).
        self._max_queued = max_queued
        self._queued = 0
        self._room = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._closing = False
        self._close_future: Future[list[Path]] | None = None

        # Owned by the writer thread.
        self._file: io.FileIO | None = None
        self._open_path: Path | None = None
        self._final_name = ""
        self._size = 0
        self._opened_at = 0.0
        self._warcinfo_date: datetime | None = None
        self._warcinfo_line = b""
        self._serial = 0
        self._dirty = False
        self._error: OSError | None = None
        self._closed_files: list[Path] = []
        # SHA-256 of every byte written to the current file, and of each closed file: the
        # upload is checked against it instead of reading the file a second time.
        self._hash = hashlib.sha256()
        self._digests: dict[Path, str] = {}

    @property
    def closed_files(self) -> list[Path]:
        """Final paths of the files closed so far."""
        return list(self._closed_files)

    def sha256_of(self, path: Path) -> str | None:
        """SHA-256 of a file this writer closed, as written (None for another file)."""
        return self._digests.get(path)

    @property
    def current_path(self) -> Path | None:
        """The ``.open`` file being written, if any."""
        return self._open_path

    def write(self, records: Sequence[WarcRecord]) -> Future[list[RecordLocation]]:
        """Queue a group of records; the future gets their locations once they are written.

        Never raises: after a write error, or once the writer is closed, the future fails
        with :class:`WarcWriteError` at once.
        """
        group = list(records)
        future: Future[list[RecordLocation]] = Future()
        with self._lock:
            if self._error is not None or self._closing:
                future.set_exception(
                    self._stopped_error()
                    if self._error is not None
                    else WarcWriteError(f"WARC writer for {self.directory} is closed")
                )
                return future
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"warc-writer-{self.prefix}", daemon=True
                )
                self._thread.start()
            size = sum(len(record.data) for record in group)
            if self._thread is not threading.current_thread():  # never wait for oneself
                while (
                    self._queued
                    and self._queued + size > self._max_queued
                    and self._error is None
                    and not self._closing
                ):
                    self._room.wait()
            self._queued += size
            self._queue.put((lambda: self._write_counted(group, size), future))
        return future

    def _write_counted(self, group: list[WarcRecord], size: int) -> list[RecordLocation]:
        try:
            return self._write_group(group)
        finally:
            with self._room:
                self._queued -= size
                self._room.notify_all()

    def write_sync(self, records: Sequence[WarcRecord]) -> list[RecordLocation]:
        """Write a group and wait for it."""
        return self.write(records).result()

    def flush(self) -> None:
        """Wait until everything queued so far is handed to the OS (no fsync)."""
        future: Future[None] = Future()
        with self._lock:
            if self._thread is None or self._closing:
                return
            self._queue.put((self._check_ok, future))
        future.result()

    def close(self) -> list[Path]:
        """Finish queued work, close and rename the current file, stop the thread."""
        with self._lock:
            thread = self._thread
            if thread is threading.current_thread():
                raise RuntimeError("WarcFileWriter.close() called from its own writer thread")
            if not self._closing:
                self._closing = True
                if thread is not None:
                    self._close_future = Future()
                    self._queue.put((self._close_current, self._close_future))
                    self._queue.put(None)
        if thread is not None:
            thread.join()
        if self._close_future is not None:
            self._close_future.result()
        return self.closed_files

    def _stopped_error(self) -> WarcWriteError:
        cause = self._error
        error = WarcWriteError(
            cause.errno if cause is not None else None,
            f"WARC writer for {self.directory} stopped after an earlier error: {cause}",
        )
        error.__cause__ = cause
        return error

    # -- writer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            task = self._queue.get()
            if task is None:
                return
            fn, future = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn()
            except BaseException as exc:  # handed to the caller through its future
                future.set_exception(exc)
            else:
                future.set_result(result)

    def _check_ok(self) -> None:
        if self._error is not None:
            raise self._stopped_error()

    def _write_group(self, records: list[WarcRecord]) -> list[RecordLocation]:
        self._check_ok()
        if not records:
            return []
        earliest = min(record_date(record) for record in records)
        try:
            if self._file is not None and self._due_for_rollover(earliest):
                self._close_current()
            if self._file is None:
                self._open_next(earliest)
        except OSError as exc:
            self._error = exc
            raise WarcWriteError(
                exc.errno, f"cannot open the next WARC file in {self.directory}: {exc}"
            ) from exc
        members = [_gzip_record(r.data, self._warcinfo_line, self._level) for r in records]
        start = self._size
        locations: list[RecordLocation] = []
        offset = start
        for record, member in zip(records, members, strict=True):
            locations.append(
                RecordLocation(self._final_name, offset, len(member), record.record_id)
            )
            offset += len(member)
        try:
            self._write_all(b"".join(members))
        except OSError as exc:
            self._error = exc
            self._cut_back(start)
            raise WarcWriteError(
                exc.errno, f"writing WARC records failed: {exc}", str(self._open_path)
            ) from exc
        self._size = offset
        return locations

    def _due_for_rollover(self, earliest: datetime) -> bool:
        if self._size >= self._max_size:
            return True
        if self._warcinfo_date is not None and earliest < self._warcinfo_date:
            logger.info(
                "a record dated %s predates the warcinfo of %s (%s): starting a new file",
                earliest.isoformat(),
                self._final_name,
                self._warcinfo_date.isoformat(),
            )
            return True
        return self._max_age is not None and self._monotonic() - self._opened_at >= self._max_age

    def _write_all(self, data: bytes) -> None:
        assert self._file is not None
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            if not written:
                raise OSError(errno.EIO, "short write to WARC file")
            view = view[written:]
        # Only whole writes: a failed one is cut back and never counted.
        self._hash.update(data)

    def _cut_back(self, offset: int) -> None:
        """Drop a partly written group so the file ends with a complete member."""
        assert self._file is not None
        try:
            self._file.truncate(offset)
            self._file.seek(offset)
        except OSError:
            self._dirty = True
            logger.exception(
                "could not cut %s back to %d bytes; it stays .open for recover_open_files",
                self._open_path,
                offset,
            )
        else:
            self._size = offset

    def _open_next(self, earliest: datetime) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        now = self._clock()
        while True:
            name = warc_file_name(self.prefix, now, self._serial, self.hostname)
            self._serial += 1
            final_path = self.directory / name
            open_path = self.directory / (name + OPEN_SUFFIX)
            if final_path.exists():
                logger.warning("WARC file %s already exists, taking the next serial", final_path)
                continue
            try:
                handle = _open_exclusive(open_path)
            except FileExistsError:
                logger.warning("WARC file %s already exists, taking the next serial", open_path)
                continue
            break
        try:
            # Tells recover_open_files that a live writer owns this file.
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._file, self._open_path, self._final_name = handle, open_path, name
            self._size = 0
            self._dirty = False
            self._hash = hashlib.sha256()
            self._opened_at = self._monotonic()
            # Dated at opening, or as early as the first record written into the file (the
            # first file: as early as the writer itself).
            date = min(now, earliest) if self._files_opened else min(now, earliest, self._created)
            warcinfo = self._builder.warcinfo(name, self._warcinfo_fields, date=date)
            member = _gzip_member(warcinfo.data, self._level)
            self._write_all(member)
            self._size = len(member)
            self._warcinfo_date = record_date(warcinfo)
            self._warcinfo_line = warcinfo_id_line(warcinfo.record_id)
            self._files_opened += 1
        except OSError:
            self._file = self._open_path = None
            handle.close()
            open_path.unlink(missing_ok=True)
            raise
        logger.info("opened WARC file %s", open_path)

    def _close_current(self) -> list[Path]:
        handle, open_path = self._file, self._open_path
        if handle is None or open_path is None:
            return self.closed_files
        self._file = self._open_path = None
        self._warcinfo_date, self._warcinfo_line = None, b""
        final_path = open_path.with_name(self._final_name)
        try:
            # Once per file: the rename must not outlive the data on a power cut.
            os.fsync(handle.fileno())
        finally:
            handle.close()
        if self._dirty:
            logger.error("WARC file %s has a damaged tail; left for recover_open_files", open_path)
            return self.closed_files
        os.rename(open_path, final_path)
        self._closed_files.append(final_path)
        self._digests[final_path] = self._hash.hexdigest()
        logger.info("closed WARC file %s (%d bytes)", final_path, self._size)
        _notify(self._on_close, final_path)
        return self.closed_files


def _notify(on_close: Callable[[Path], None] | None, path: Path) -> None:
    if on_close is None:
        return
    try:
        on_close(path)
    except Exception:  # a failing callback must not lose or reopen the file
        logger.exception("on_close callback failed for %s", path)


class _RecordCheck:
    """Follows one member's inflated bytes: a WARC head, Content-Length bytes, CRLFCRLF."""

    __slots__ = ("_expected", "_head", "_last4", "_total", "valid")

    def __init__(self) -> None:
        self._head = bytearray()
        self._expected = -1
        self._total = 0
        self._last4 = b""
        self.valid = True

    def feed(self, data: bytes) -> bool:
        self._total += len(data)
        self._last4 = data[-4:] if len(data) >= 4 else (self._last4 + data)[-4:]
        if self._expected < 0:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                self.valid = len(self._head) <= _MAX_WARC_HEAD
            else:
                length = _content_length(bytes(self._head[:end]))
                self.valid = length is not None
                self._expected = end + 4 + (length or 0) + 4
                self._head = bytearray()
        if self._expected >= 0 and self._total > self._expected:
            self.valid = False
        return self.valid

    def complete(self) -> bool:
        return self.valid and self._total == self._expected and self._last4 == b"\r\n\r\n"


def _content_length(head: bytes) -> int | None:
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"WARC/"):
        return None
    length: int | None = None
    has_type = False
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            return None
        name = name.strip().lower()
        if name == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return None
        elif name == b"warc-type":
            has_type = True
    if not has_type or length is None or length < 0:
        return None
    return length


def _scan_members(handle: BinaryIO) -> tuple[int, int]:
    """Offset just past the last complete record member, and how many precede it."""
    good_end = 0
    kept = 0
    data = handle.read(_READ_CHUNK)
    while data:
        inflater = zlib.decompressobj(31)
        check = _RecordCheck()
        consumed = 0
        while True:
            try:
                out = inflater.decompress(data, _INFLATE_LIMIT)
            except zlib.error:
                return good_end, kept
            if not check.feed(out):
                return good_end, kept
            if inflater.eof:
                consumed += len(data) - len(inflater.unused_data)
                data = inflater.unused_data
                break
            tail = inflater.unconsumed_tail
            consumed += len(data) - len(tail)
            # A full output buffer may leave output pending even with all input taken.
            if tail or len(out) == _INFLATE_LIMIT:
                data = tail
                continue
            data = handle.read(_READ_CHUNK)
            if not data:
                return good_end, kept
        if not check.complete():
            return good_end, kept
        good_end += consumed
        kept += 1
        if not data:
            data = handle.read(_READ_CHUNK)
    return good_end, kept


def recover_open_files(
    directory: Path, *, on_close: Callable[[Path], None] | None = None
) -> list[RecoveryResult]:
    """Repair and rename every ``*.warc.gz.open`` a killed crawl left in ``directory``.

    Each file is cut right after its last complete record; a file with no complete record is
    removed. Files held by a live writer (it keeps an flock on them) are skipped.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    results: list[RecoveryResult] = []
    for path in sorted(directory.glob(f"*{WARC_GZ_SUFFIX}{OPEN_SUFFIX}")):
        result = _recover_file(path)
        if result is not None:
            _notify(on_close, result.path)
            results.append(result)
    return results


def _recover_file(path: Path) -> RecoveryResult | None:
    final_path = path.with_name(path.name[: -len(OPEN_SUFFIX)])
    try:
        handle = open(path, "r+b")  # noqa: SIM115 - closed below, after the rename
    except FileNotFoundError:
        return None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("skipping %s: a running writer holds it", path)
            return None
        size = os.fstat(handle.fileno()).st_size
        good_end, kept = _scan_members(handle)
        if kept == 0:
            path.unlink()
            logger.warning("removed %s: no complete WARC record in its %d bytes", path, size)
            return None
        if final_path.exists():
            logger.error("cannot recover %s: %s already exists", path, final_path.name)
            return None
        if good_end < size:
            handle.truncate(good_end)
            os.fsync(handle.fileno())
        os.rename(path, final_path)
    logger.warning("recovered %s: %d records kept, %d bytes cut", final_path, kept, size - good_end)
    return RecoveryResult(path=final_path, records_kept=kept, bytes_cut=size - good_end)
