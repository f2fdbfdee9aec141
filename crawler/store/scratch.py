"""A crawl's scratch folder in the spool, and the list of every object it wrote (no Scrapy).

A crawl holds what must not grow in memory with its size on disk, in one hidden folder of the
spool, ``<spool>/.scratch/<crawl id>/``: the list of every object it wrote (``ObjectLog``: the
manifest, the report's counts and the crawl-end indexes read it back a line at a time), and its
crawl-end step's scratch files (the record table, sorted CDXJ runs, the manifest being written).

The crawl holds an ``flock`` on the folder's ``.lock`` while it lives, as a crawl holds its WARC
spool dir (``crawler/capture/session.py``): the kernel lets go of it when the process dies,
however it dies. ``clean_dead_scratch`` removes the folders whose lock it gets, those of dead
crawls (killed in their crawl-end step, say), and never one of a crawl running in another
process on the same spool.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from crawler.store.base import StoredObject

logger = logging.getLogger(__name__)

SCRATCH_DIR = ".scratch"
_LOCK = ".lock"


def scratch_root(spool: Path) -> Path:
    return spool / SCRATCH_DIR


class CrawlScratch:
    """One crawl's scratch folder, ``<spool>/.scratch/<name>/``, locked while the crawl lives."""

    def __init__(self, spool: Path, name: str) -> None:
        self.path = scratch_root(spool) / name
        # A bare descriptor: a crawl that never ends its scratch (a test's ledger left open)
        # holds the lock until its process exits, without a ResourceWarning when collected.
        self._lock_fd: int | None = None

    @property
    def held(self) -> bool:
        return self._lock_fd is not None

    def open(self, timeout: float = 5.0) -> Path:
        """Make the folder and lock it (at once if this process holds it already).

        A cleaner of dead crawls' folders removes a folder whose lock it gets, so it can take
        this one between its mkdir and its flock; it holds the lock only that long: retry until
        the lock is ours on a folder that still exists.
        """
        if self._lock_fd is not None:
            return self.path
        deadline = time.monotonic() + timeout
        while True:
            self.path.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path / _LOCK, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            except FileNotFoundError:
                continue  # removed between mkdir and open
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() > deadline:
                    raise BlockingIOError(
                        errno.EWOULDBLOCK, f"scratch folder {self.path} is locked by another crawl"
                    ) from None
                time.sleep(0.005)
                continue
            if os.fstat(fd).st_nlink:
                self._lock_fd = fd
                return self.path
            os.close(fd)  # removed while we waited for the lock: make it again

    def remove(self) -> None:
        """Remove the folder and everything in it, then let go of its lock."""
        if self._lock_fd is None and not self.path.exists():
            return
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def clean_dead_scratch(spool: Path) -> list[Path]:
    """Remove the scratch folders of crawls that died (their lock is free): the folders removed.

    A folder whose lock is held (a crawl running in this or another process) is left alone.
    """
    root = scratch_root(spool)
    if not root.is_dir():
        return []
    removed = []
    for folder in sorted(root.iterdir()):
        if not folder.is_dir():
            continue
        try:
            fh = (folder / _LOCK).open("ab")
        except OSError:
            continue  # removed meanwhile (its crawl finished), or not ours to open
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live crawl's
            if not os.fstat(fh.fileno()).st_nlink:
                continue  # its crawl removed it while we opened it
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            shutil.rmtree(folder, ignore_errors=True)
        logger.warning(
            "removed the scratch folder %s a dead crawl left in the spool (%d bytes)",
            folder.name,
            size,
        )
        removed.append(folder)
    return removed


class ObjectLog:
    """Every object a crawl wrote, in order, with its size, SHA-256 and whether it waits in the
    spool: an append-only file in the crawl's scratch folder, read back a line at a time.

    Held in memory as a list, 180,000 objects of a 100,000-capture crawl took 57 MiB, all of
    it still held through the crawl-end step. Thread-safe; iterating sees the objects listed
    when it started (as iterating a copy of a list would). Listing never fails for a full
    disk: the file is cut back to its last whole line and the rest of the list is kept in
    memory (the crawl stops for the disk anyway; its manifest must still list everything).
    """

    NAME = "objects.jsonl"
    _SPILL = 256  # lines gathered before they are written

    def __init__(self, scratch: Callable[[], CrawlScratch]) -> None:
        self._scratch = scratch
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._closed = False
        self._failed = False  # the disk refused a write: the rest stays in memory
        self._count = 0
        self._on_disk = 0  # bytes of whole lines in the file
        self._lines: list[str] = []  # lines not in the file (yet)

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def append(self, obj: StoredObject, *, pending: bool = False) -> None:
        line = json.dumps([obj.key, obj.size, obj.sha256, pending], ensure_ascii=False) + "\n"
        with self._lock:
            if self._closed:
                raise ValueError("the crawl's object list was closed")
            self._lines.append(line)
            self._count += 1
            if len(self._lines) >= self._SPILL:
                self._spill()

    def _spill(self) -> None:
        """Write the gathered lines (under the lock); on failure keep them, and all to come."""
        if self._failed or not self._lines:
            return
        data = "".join(self._lines).encode("utf-8")
        try:
            if self._fd is None:
                self._path = self._scratch().open() / self.NAME
                self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            self._failed = True
            if self._fd is not None:
                with contextlib.suppress(OSError):  # a torn last line is never read: see size
                    os.ftruncate(self._fd, self._on_disk)
            logger.warning(
                "the crawl's object list could not be written (%s): the rest is kept in memory",
                exc,
            )
            return
        self._on_disk += len(data)
        self._lines = []

    def __iter__(self) -> Iterator[StoredObject]:
        for obj, _pending in self.entries():
            yield obj

    def entries(self) -> Iterator[tuple[StoredObject, bool]]:
        """Each object and whether it was left pending in the spool, in the order written."""
        with self._lock:
            if self._closed and self._count:
                raise ValueError("the crawl's object list was closed")
            self._spill()
            path, end, rest = self._path, self._on_disk, list(self._lines)
        if path is not None and end:
            with path.open("rb") as fh:
                read = 0
                for raw in fh:
                    read += len(raw)
                    if read > end:
                        break  # written after this reading began
                    yield self._parse(raw)
        for line in rest:
            yield self._parse(line)

    @staticmethod
    def _parse(line: str | bytes) -> tuple[StoredObject, bool]:
        key, size, sha256, pending = json.loads(line)
        return StoredObject(key, size, sha256), bool(pending)

    def close(self) -> None:
        """Close the file (its folder goes with the crawl's scratch); ``len`` still answers."""
        with self._lock:
            self._closed = True
            self._lines = []
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def new_scratch(spool: Path, crawl_id: str) -> CrawlScratch:
    """The scratch folder of ``crawl_id`` (a crawl without an id yet gets one of its own)."""
    return CrawlScratch(spool, crawl_id or f"unnamed-{os.getpid()}-{secrets.token_hex(3)}")
