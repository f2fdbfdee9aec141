"""Kill points inside a crawl's own process, for the hardening suite.

``HARDENING_KILL_AT=PHASE:N`` in a crawl's environment SIGKILLs the crawl at the Nth time it
reaches PHASE (see :data:`PHASES`). Start the crawl with the spider
``tests.kill_hooks:SlowSiteSpider``: the crawl helper imports this module in the crawl's process,
which installs the hook before the crawl starts.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.crawl_helper import SlowSiteSpider

__all__ = ["PHASES", "SlowSiteSpider"]

ENV = "HARDENING_KILL_AT"

# Where a crawl can die, and what it leaves behind there.
PHASES = {
    "warc-write": "half of a group of WARC records written (a torn gzip member)",
    "rollover": "a full WARC file fsynced, not yet renamed from .open",
    "rollover-done": "a WARC file just closed, not yet handed to the store",
    "text-write": "half of a text written to its temporary file",
    "catalog-before": "an article extracted, its catalog row not yet committed",
    "catalog-after": "an article's catalog row committed, its text not yet on its way up",
    "upload-after": "an object PUT to S3, not yet verified or removed from the spool",
}


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _counter(n: int) -> Callable[[], bool]:
    count = 0
    lock = threading.Lock()

    def due() -> bool:
        nonlocal count
        with lock:
            count += 1
            return count == n

    return due


def _torn(target: Path, data: bytes) -> None:
    """Half of ``data`` in the hidden temporary file a write goes through, then death."""
    target.parent.mkdir(parents=True, exist_ok=True)
    (target.parent / f".{target.name}.tmp").write_bytes(data[: len(data) // 2])
    _die()


def install(spec: str) -> None:
    phase, _, n = spec.partition(":")
    if phase not in PHASES or not n.isdigit():
        raise SystemExit(f"{ENV}: want PHASE:N with PHASE one of {', '.join(PHASES)}, got {spec!r}")
    due = _counter(int(n))
    from crawler.capture.writer import WarcFileWriter
    from crawler.catalog.db import Catalog
    from crawler.store.base import LocalStore
    from crawler.store.s3 import S3Store
    from crawler.store.spool import Backlog

    if phase == "warc-write":
        write_all = WarcFileWriter._write_all

        def hooked_write(self: WarcFileWriter, data: bytes) -> None:
            if due():
                assert self._file is not None
                self._file.write(data[: len(data) // 2])
                _die()
            write_all(self, data)

        WarcFileWriter._write_all = hooked_write  # type: ignore[method-assign]
    elif phase in ("rollover", "rollover-done"):
        close_current = WarcFileWriter._close_current

        def hooked_close(self: WarcFileWriter) -> list[Path]:
            if phase == "rollover" and due():
                assert self._file is not None
                os.fsync(self._file.fileno())
                _die()
            closed = close_current(self)
            if phase == "rollover-done" and due():
                _die()
            return closed

        WarcFileWriter._close_current = hooked_close  # type: ignore[method-assign]
    elif phase == "text-write":
        write_aside = Backlog.write_aside
        put_bytes = LocalStore.put_bytes

        def hooked_aside(self: Backlog, key: str, data: bytes) -> Path:
            if key.endswith(".txt") and due():
                _torn(self.path_of(key), data)
            return write_aside(self, key, data)

        def hooked_put(self: LocalStore, key: str, data: bytes) -> Any:
            if key.endswith(".txt") and due():
                _torn(self._path(key), data)
            return put_bytes(self, key, data)

        Backlog.write_aside = hooked_aside  # type: ignore[method-assign]
        LocalStore.put_bytes = hooked_put  # type: ignore[method-assign]
    elif phase in ("catalog-before", "catalog-after"):
        record_text = Catalog.record_text

        def hooked_record(self: Catalog, record: Any) -> Any:
            if phase == "catalog-before" and due():
                _die()
            result = record_text(self, record)
            if phase == "catalog-after" and due():
                _die()
            return result

        Catalog.record_text = hooked_record  # type: ignore[method-assign]
        record_texts = Catalog.record_texts

        def hooked_batch(self: Catalog, records: Any) -> Any:  # the crawl's group commit
            if phase == "catalog-before" and sum(due() for _ in records):
                _die()
            result = record_texts(self, records)
            if phase == "catalog-after" and sum(due() for _ in records):
                _die()
            return result

        Catalog.record_texts = hooked_batch  # type: ignore[method-assign]
    elif phase == "upload-after":
        put_single = S3Store._put_single

        def hooked_single(self: S3Store, full: str, body: Any, digest: str) -> Any:
            result = put_single(self, full, body, digest)
            if due():
                _die()
            return result

        S3Store._put_single = hooked_single  # type: ignore[method-assign]


if os.environ.get(ENV):
    install(os.environ[ENV])
