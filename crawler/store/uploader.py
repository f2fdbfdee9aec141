"""One crawl's writes to the store: straight to a local store, through the spool to a remote one.

Nothing is lost while a remote store is down or refuses a write: what it does not take stays
in the spool's backlog (``crawler/store/spool.py``), listed with its size and SHA-256, and the
next crawl or ``newsarchive upload`` sends it. Knows no Scrapy.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from crawler.store.base import (
    LocalStore,
    Store,
    StoreConflictError,
    StoredObject,
    StoreError,
    file_digest,
)
from crawler.store.scratch import CrawlScratch, ObjectLog, new_scratch
from crawler.store.spool import (
    Backlog,
    adopt_leftovers,
    aside_path,
    drain_backlog,
    move_aside,
    pending_backlogs,
)

logger = logging.getLogger(__name__)

# Queued uploads (texts, sidecars) waiting or running at once; more blocks the caller.
MAX_IN_FLIGHT = 256
# Told of every object written: stored (False) or left pending in the spool (True).
OnStored = Callable[[StoredObject, bool], None]


class Uploader:
    """Writes one crawl's objects and lists them (the manifest lists ``objects``): in a file of
    the crawl's scratch folder in the spool (``crawler/store/scratch.py``), not in memory."""

    def __init__(
        self,
        store: Store,
        spool_dir: Path,
        *,
        keep_local: bool = False,
        retry_after: float = 60.0,
        concurrency: int = 10,
        on_stored: OnStored | None = None,
    ) -> None:
        self.store = store
        self.spool_dir = spool_dir
        self.keep_local = keep_local
        self.retry_after = retry_after
        self.concurrency = concurrency
        self.on_stored = on_stored
        self.crawl_id = ""
        self._scratch: CrawlScratch | None = None
        self.objects = ObjectLog(self.scratch)
        self.notes: list[str] = []
        # Keys the store refused because they hold other bytes: errors that fail the crawl.
        self.refused: list[str] = []
        self._lock = threading.Lock()
        self._backlog: Backlog | None = None
        self._store_down_until = 0.0
        # Texts and sidecars of a remote store: spooled at once, uploaded by a few threads.
        self._uploads: ThreadPoolExecutor | None = None
        self._in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self._drainer: threading.Thread | None = None

    @property
    def remote(self) -> bool:
        return not isinstance(self.store, LocalStore)

    # -- the crawl's scratch folder ------------------------------------------------------------
    def scratch(self) -> CrawlScratch:
        """The crawl's scratch folder in the spool (made and locked by its ``open``)."""
        with self._lock:
            if self._scratch is None:
                self._scratch = new_scratch(self.spool_dir, self.crawl_id)
            return self._scratch

    def scratch_dir(self) -> Path:
        """The crawl's scratch folder, made and locked now if it was not yet."""
        return self.scratch().open()

    def close_scratch(self) -> None:
        """The crawl is over: its object list and scratch folder go (``len(objects)`` stays)."""
        self.objects.close()
        with self._lock:
            scratch = self._scratch
        if scratch is not None:
            scratch.remove()

    # -- what earlier crawls left ----------------------------------------------------------------
    def start_draining(self) -> list[dict[str, Any]]:
        """Send what earlier crawls left in the spool, in a thread beside this crawl.

        First, before it returns: the texts a killed crawl left on their way up are listed,
        and their sidecars returned (the crawl may have died before it recorded them in the
        catalog: they must not be archived a second time).
        """
        if not self.remote or not pending_backlogs(self.spool_dir):
            return []
        adopted = adopt_leftovers(self.spool_dir, self.store.uri, self.crawl_id)
        self._drainer = threading.Thread(target=self.drain, name="backlog", daemon=True)
        self._drainer.start()
        return adopted

    def drain(self) -> None:
        uploaded, failed = drain_backlog(
            self.store, self.spool_dir, keep_local=self.keep_local, skip=self.crawl_id
        )
        if uploaded or failed:
            logger.info(
                "backlog of earlier crawls: %d objects uploaded, %d not (named above)",
                len(uploaded),
                len(failed),
            )

    def join_drain(self) -> None:
        if self._drainer is not None:
            self._drainer.join()

    # -- writing ---------------------------------------------------------------------------------
    def put_file(
        self, key: str, path: Path, *, move: bool = True, sha256: str | None = None
    ) -> StoredObject:
        """Store a file (called from worker threads: uploads block).

        With a remote store, a file the store does not take stays in the spool's backlog
        and the crawl goes on; ``move`` then means: removed locally once verified.
        ``sha256`` is the digest its writer computed: the stored bytes must match it.
        """
        if not self.remote:
            try:
                obj = self.store.put_file(key, path, move=move, sha256=sha256)
            except StoreConflictError as exc:
                return self._keep_refused(key, exc, path=path, move=move)
            self._record(obj)
            return obj
        if self._store_is_up():
            keep = move and self.keep_local
            try:
                obj = self.store.put_file(key, path, move=move and not keep, sha256=sha256)
            except StoreError as exc:
                self._store_failed(key, exc)
            else:
                if keep:
                    move_aside(self.spool_dir, "kept", key, path)
                self._record(obj)
                return obj
        size, digest = file_digest(path, sha256)
        obj = StoredObject(key, size, digest)
        self._spool_backlog().add_file(obj, path, move=move)
        self._record(obj, pending=True)
        return obj

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        obj = self.put_bytes_unlisted(key, data)
        if not self.remote and key in self.refused:
            return obj  # kept aside, listed as refused: not an object of this crawl
        self._record(obj, pending=not self.store_has(obj))
        return obj

    def put_bytes_unlisted(self, key: str, data: bytes) -> StoredObject:
        """Store bytes without listing them among ``objects`` (the manifest itself)."""
        if not self.remote:
            try:
                return self.store.put_bytes(key, data)
            except StoreConflictError as exc:
                return self._keep_refused(key, exc, data=data)
        if self._store_is_up():
            try:
                return self.store.put_bytes(key, data)
            except StoreError as exc:
                self._store_failed(key, exc)
        obj = StoredObject(key, len(data), hashlib.sha256(data).hexdigest())
        self._spool_backlog().add_bytes(obj, data)
        return obj

    def put_file_unlisted(self, key: str, path: Path) -> StoredObject:
        """Store a file, moved, without listing it among ``objects`` (a large manifest)."""
        if not self.remote:
            try:
                return self.store.put_file(key, path, move=True)
            except StoreConflictError as exc:
                return self._keep_refused(key, exc, path=path, move=True)
        if self._store_is_up():
            try:
                return self.store.put_file(key, path, move=True)
            except StoreError as exc:
                self._store_failed(key, exc)
        size, digest = file_digest(path)
        obj = StoredObject(key, size, digest)
        self._spool_backlog().add_file(obj, path, move=True)
        return obj

    def queue_bytes(self, key: str, data: bytes, *, hold: bool = False) -> StoredObject:
        """Store bytes without waiting for a remote store (texts, sidecars).

        The bytes land whole in the spool at once, so nothing is lost if the crawl is killed
        (the next crawl adopts them); a few threads upload them, each verified, and the spool
        copy goes once the store has it. ``flush`` waits for all of them. ``hold``: not
        uploaded before ``release`` (the pipeline records the article in the catalog first,
        so no object reaches the store that the catalog does not know).
        """
        if not self.remote:
            return self.put_bytes(key, data)
        obj = StoredObject(key, len(data), hashlib.sha256(data).hexdigest())
        self._spool_backlog().write_aside(key, data)
        if not hold:
            self.release([obj])
        return obj

    def release(self, objects: Sequence[StoredObject]) -> None:
        """Upload objects queued with ``hold``."""
        if not self.remote:
            return
        for obj in objects:
            self._submit(obj)

    def _submit(self, obj: StoredObject) -> None:
        backlog = self._spool_backlog()
        path = backlog.path_of(obj.key)
        if not self._store_is_up():
            backlog.add_spooled(obj, path, lazy=True)
            self._record(obj, pending=True)
            return
        with self._lock:
            if self._uploads is None:
                self._uploads = ThreadPoolExecutor(self.concurrency, thread_name_prefix="upload")
        # Bounded: a slow store slows the caller down instead of filling memory.
        self._in_flight.acquire()
        self._uploads.submit(self._upload_queued, obj, path)

    def _upload_queued(self, obj: StoredObject, path: Path) -> None:
        try:
            if self._store_is_up():
                keep = self.keep_local
                try:
                    self.store.put_file(obj.key, path, move=not keep, sha256=obj.sha256)
                except StoreError as exc:
                    self._store_failed(obj.key, exc)
                else:
                    if keep:
                        move_aside(self.spool_dir, "kept", obj.key, path)
                    self._record(obj)
                    return
            self._spool_backlog().add_spooled(obj, path, lazy=True)
            self._record(obj, pending=True)
        except Exception:
            # The file stays in the spool, where the next drain adopts it.
            logger.exception("upload of %s failed; it stays in the spool", obj.key)
        finally:
            self._in_flight.release()

    def flush(self) -> None:
        """Wait for queued uploads; called before the manifest, which lists them."""
        with self._lock:
            uploads, self._uploads = self._uploads, None
        if uploads is not None:
            uploads.shutdown(wait=True)
        if self._backlog is not None:
            self._backlog.flush()

    def finish(self) -> int | None:
        """Let go of this crawl's backlog: the objects still pending in it (None: it has none)."""
        if self._backlog is None:
            return None
        pending = self._backlog.count
        self._backlog.unlock()
        return pending

    def store_has(self, obj: StoredObject) -> bool:
        return self._backlog is None or not self._backlog.holds(obj.key)

    @property
    def pending(self) -> list[str]:
        return [] if self._backlog is None else [str(e["key"]) for e in self._backlog.entries]

    # -- the store's state -----------------------------------------------------------------------
    def _store_is_up(self) -> bool:
        return time.monotonic() >= self._store_down_until

    def _keep_refused(
        self,
        key: str,
        exc: StoreConflictError,
        *,
        data: bytes | None = None,
        path: Path | None = None,
        move: bool = False,
    ) -> StoredObject:
        """A local store refused ``key`` (it holds other bytes): the bytes are kept in
        ``<spool>/refused/<key>``, the key listed as refused (the crawl fails by name)."""
        self._store_failed(key, exc)
        kept = aside_path(self.spool_dir, "refused", key)
        kept.parent.mkdir(parents=True, exist_ok=True)
        if data is not None:
            kept.write_bytes(data)
            return StoredObject(key, len(data), hashlib.sha256(data).hexdigest())
        assert path is not None
        size, digest = file_digest(path)
        if move:
            shutil.move(path, kept)
        else:
            shutil.copyfile(path, kept)
        return StoredObject(key, size, digest)

    def _store_failed(self, key: str, exc: StoreError) -> None:
        if isinstance(exc, StoreConflictError):
            # Not an outage: another writer holds different bytes under this key.
            logger.error("%s: refused by the store, kept in the spool: %s", key, exc)
            with self._lock:
                self.refused.append(key)
                self.notes.append(str(exc))
            return
        logger.warning("%s: kept in the spool for a later upload (%s)", key, exc)
        with self._lock:
            if not any(n.startswith("store unavailable") for n in self.notes):
                self.notes.append(f"store unavailable: {exc}")
            # Skip the store for a while instead of waiting out retries on every object.
            self._store_down_until = time.monotonic() + self.retry_after

    def _spool_backlog(self) -> Backlog:
        with self._lock:
            if self._backlog is None:
                self._backlog = Backlog(self.spool_dir, self.crawl_id, self.store.uri)
            return self._backlog

    def _record(self, obj: StoredObject, *, pending: bool = False) -> None:
        self.objects.append(obj, pending=pending)
        if self.on_stored is not None:
            self.on_stored(obj, pending)
