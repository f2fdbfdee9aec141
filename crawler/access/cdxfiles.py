"""The sorted CDXJ files the CDX API reads, read in place: a binary search to the first line a
query wants, then only the lines it takes (``os.pread`` on the file, never the whole file in
memory, never memory-mapped: mapped pages would count in the server's RSS as they are read).

The store's ``index/**.cdxj`` are written sorted (``index_warc`` sorts them). A local store's
files are read where they lie; a remote store's are copied once, in chunks, to a local cache
directory. ``StoreIndexFiles`` lists the store's ``index/`` prefix at most every few seconds
when asked, so a crawl made after ``serve`` started is answered without a restart.
"""

from __future__ import annotations

import bisect
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from crawler.access.records import open_object
from crawler.layout import INDEX_PREFIX
from crawler.store.base import Store, StoreError

logger = logging.getLogger(__name__)

# A binary search stops halving below this many bytes and reads the rest in order.
_SCAN = 8192
_READ = 65536
# A page of the paged CDX API is made of blocks: a file's lines from one sample to the next.
BLOCK_BYTES = 256 * 1024
BLOCK_LINES = 1000


def is_cdxj(line: str) -> bool:
    parts = line.split(" ", 2)
    return len(parts) == 3 and parts[2].startswith("{")


@dataclass(frozen=True, slots=True)
class Block:
    """Where a block of one index file starts: its first line (the block holds the lines from
    it up to the next block's first line), the file's name, and its place in the file."""

    first: str
    part: str
    offset: int
    length: int
    number: int


class Source(Protocol):
    """One sorted index: its lines between two keys, and its blocks."""

    name: str  # the file's name: pywb's "source", which orders lines equal but for it
    site: str | None  # the archive's site of the file (index/<site>/…), when known

    def lines_in(self, start: str, end: str) -> Iterator[str]: ...

    def blocks(self) -> Sequence[Block]: ...

    def bounds(self) -> tuple[str, str] | None: ...


class MemorySource:
    """Lines given in memory (tests, small indexes): sorted once, read by bisect."""

    def __init__(
        self, lines: Iterable[str], name: str, site: str | None = None, block_lines: int = 0
    ) -> None:
        self.lines = sorted(line.rstrip() for line in lines if line.strip() and is_cdxj(line))
        self.name = name
        self.site = site
        self.block_lines = block_lines or BLOCK_LINES

    def lines_in(self, start: str, end: str) -> Iterator[str]:
        """pywb's ``iter_range``: the lines with ``start <= line < end``."""
        lines = self.lines
        index = bisect.bisect_left(lines, start)
        while index < len(lines) and lines[index] < end:
            yield lines[index]
            index += 1

    def blocks(self) -> list[Block]:
        step = self.block_lines
        return [
            Block(self.lines[i], self.name, i, min(step, len(self.lines) - i), n)
            for n, i in enumerate(range(0, len(self.lines), step))
        ]

    def bounds(self) -> tuple[str, str] | None:
        return (self.lines[0], self.lines[-1]) if self.lines else None


class FileSource:
    """A sorted CDXJ file on local disk, searched with ``os.pread``.

    Lines compare as UTF-8 bytes, which is the order of their text (code points): the order
    ``sorted()`` gave them when the file was written.
    """

    def __init__(
        self, path: Path, name: str, site: str | None = None, block_bytes: int = BLOCK_BYTES
    ) -> None:
        self.path = path
        self.name = name
        self.site = site
        self.block_bytes = block_bytes
        self.size = path.stat().st_size
        self._blocks: list[Block] | None = None
        self._bounds: tuple[str, str] | None = None
        self._lock = threading.Lock()
        self._unsorted_said = False
        with path.open("rb") as fh:
            fd = fh.fileno()
            first = _line_at(fd, 0, self.size)
            last = _last_line(fd, self.size)
        if first is not None and last is not None:
            self._bounds = (first.decode("utf-8", "replace"), last.decode("utf-8", "replace"))

    def bounds(self) -> tuple[str, str] | None:
        return self._bounds

    def lines_in(self, start: str, end: str) -> Iterator[str]:
        bounds = self._bounds
        if bounds is None or bounds[1] < start or bounds[0] >= end:
            return
        low, high = start.encode("utf-8"), end.encode("utf-8")
        with self.path.open("rb", buffering=_READ) as fh:
            offset = _first_at_or_after(fh.fileno(), self.size, low)
            fh.seek(offset)
            previous = b""
            for raw in fh:
                line = raw.rstrip(b"\r\n")
                if line >= high:
                    return
                if line < previous and not self._unsorted_said:
                    self._unsorted_said = True
                    logger.warning("%s is not sorted: the CDX API may miss its lines", self.name)
                previous = line
                if line:
                    yield line.decode("utf-8", "replace")

    def blocks(self) -> list[Block]:
        """One sample line every ``block_bytes``: read once, a few bytes each, then kept."""
        with self._lock:
            if self._blocks is None:
                self._blocks = self._sample()
            return self._blocks

    def _sample(self) -> list[Block]:
        starts: list[tuple[int, bytes]] = []
        with self.path.open("rb") as fh:
            fd = fh.fileno()
            for at in range(0, self.size, self.block_bytes):
                begin = 0 if at == 0 else _next_line_start(fd, at - 1, self.size)
                if begin >= self.size or (starts and starts[-1][0] >= begin):
                    continue
                line = _line_at(fd, begin, self.size)
                if line is not None:
                    starts.append((begin, line))
        if not starts:
            return []
        ends = [begin for begin, _ in starts[1:]] + [self.size]
        return [
            Block(line.decode("utf-8", "replace"), self.name, begin, end - begin, n)
            for n, ((begin, line), end) in enumerate(zip(starts, ends, strict=True))
        ]


def _next_line_start(fd: int, at: int, size: int) -> int:
    """The offset just past the first newline at or after ``at`` (``size`` when none)."""
    while at < size:
        chunk = os.pread(fd, _SCAN, at)
        if not chunk:
            break
        found = chunk.find(b"\n")
        if found >= 0:
            return at + found + 1
        at += len(chunk)
    return size


def _line_at(fd: int, at: int, size: int) -> bytes | None:
    """The line starting at ``at``, without its newline (None at the end of the file)."""
    if at >= size:
        return None
    parts = []
    while at < size:
        chunk = os.pread(fd, _SCAN, at)
        if not chunk:
            break
        found = chunk.find(b"\n")
        if found >= 0:
            parts.append(chunk[:found])
            break
        parts.append(chunk)
        at += len(chunk)
    return b"".join(parts).rstrip(b"\r")


def _last_line(fd: int, size: int) -> bytes | None:
    end = size
    while end > 0:
        begin = max(0, end - _SCAN)
        chunk = os.pread(fd, end - begin, begin)
        stripped = chunk.rstrip(b"\r\n") if end == size else chunk
        if not stripped and begin == 0:
            return None
        found = stripped.rfind(b"\n")
        if found >= 0 or begin == 0:
            return _line_at(fd, begin + found + 1, size)
        end = begin
    return None


def _first_at_or_after(fd: int, size: int, key: bytes) -> int:
    """The offset of the first line ``>= key`` (a line start; ``size`` when none)."""
    low, high = 0, size  # the line at ``low`` is < key (or low is 0); the one at ``high`` is not
    while high - low > _SCAN:
        middle = _next_line_start(fd, (low + high) // 2, size)
        if middle >= high:
            break
        line = _line_at(fd, middle, size) or b""
        if line < key:
            low = middle
        else:
            high = middle
    # ``high`` is a line start (or the end): the bytes from ``low`` to it are whole lines.
    data = os.pread(fd, high - low, low)
    at = 0
    while at < len(data):
        newline = data.find(b"\n", at)
        stop = newline if newline >= 0 else len(data)
        if data[at:stop].rstrip(b"\r") >= key:
            return low + at
        at = stop + 1
    return high


# -- the store's index files, kept up to date -----------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Known:
    stamp: tuple[int, int] | None  # a local file's size and mtime; None: a remote object
    source: FileSource


class StoreIndexFiles:
    """The store's ``index/**.cdxj`` as sources, listed again at most every ``refresh``
    seconds (when asked): new files are opened, changed ones reopened, removed ones dropped."""

    def __init__(
        self,
        store: Store,
        *,
        refresh: float = 5.0,
        cache_dir: Path | None = None,
        block_bytes: int = BLOCK_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.refresh = refresh
        self.block_bytes = block_bytes
        self.clock = clock
        self._cache_dir = cache_dir
        self._own_cache: tempfile.TemporaryDirectory[str] | None = None
        self._known: dict[str, _Known] = {}
        self._sources: tuple[FileSource, ...] = ()
        self._listed_at: float | None = None
        self._lock = threading.Lock()
        self.update()

    def __call__(self) -> Sequence[FileSource]:
        listed = self._listed_at
        due = listed is None or self.clock() - listed >= self.refresh
        # One request lists the store; the others answer from the files known so far.
        if due and self._lock.acquire(blocking=False):
            try:
                self._update_locked()
            finally:
                self._lock.release()
        return self._sources

    def update(self) -> None:
        with self._lock:
            self._update_locked()

    def close(self) -> None:
        if self._own_cache is not None:
            self._own_cache.cleanup()
            self._own_cache = None

    def _update_locked(self) -> None:
        try:
            keys = sorted(k for k in self.store.list(INDEX_PREFIX) if k.endswith(".cdxj"))
        except (StoreError, OSError) as exc:
            logger.warning("the store's index/ could not be listed: %s", exc)
            self._listed_at = self.clock()
            return
        known: dict[str, _Known] = {}
        changed = False
        for key in keys:
            try:
                entry = self._open(key, self._known.get(key))
            except (StoreError, OSError) as exc:
                logger.warning("index %s left out of the CDX API: %s", key, exc)
                continue
            known[key] = entry
            changed = changed or self._known.get(key) is not entry
        changed = changed or set(known) != set(self._known)
        self._known = known
        if changed:
            # pywb's directory source merges its files in the order of their names.
            self._sources = tuple(
                sorted((k.source for k in known.values()), key=lambda s: (s.name, s.path))
            )
            logger.info("CDX API: %d index files", len(self._sources))
        self._listed_at = self.clock()

    def _open(self, key: str, before: _Known | None) -> _Known:
        name = key.rsplit("/", 1)[-1]
        parts = key.split("/")
        site = parts[1] if len(parts) > 2 else None
        path = self.store.local_path(key)
        if path is not None:
            stat = path.stat()
            stamp = (stat.st_size, stat.st_mtime_ns)
            if before is not None and before.stamp == stamp:
                return before
            return _Known(stamp, FileSource(path, name, site, self.block_bytes))
        if before is not None:  # a remote index object is written once, never replaced
            return before
        copy = self._cache() / key.removeprefix(INDEX_PREFIX)
        copy.parent.mkdir(parents=True, exist_ok=True)
        partial = copy.with_name(copy.name + ".part")
        with open_object(self.store, key) as src, partial.open("wb") as out:
            shutil.copyfileobj(src, out, _READ * 16)
        partial.replace(copy)
        return _Known(None, FileSource(copy, name, site, self.block_bytes))

    def _cache(self) -> Path:
        if self._cache_dir is not None:
            return self._cache_dir
        if self._own_cache is None:
            self._own_cache = tempfile.TemporaryDirectory(prefix="newsarchive-cdx-")
        return Path(self._own_cache.name)
