"""One crawl's bookkeeping: crawl id, the store, the manifest of written objects, the run report."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThread

from crawler import __version__, layout
from crawler.constants import STATS_STORE_BYTES, STATS_STORE_OBJECTS
from crawler.crawl.config import HealthConfig, RunConfig
from crawler.store.base import (
    LocalStore,
    Store,
    StoreConflictError,
    StoredObject,
    StoreError,
    file_digest,
    local_root,
)
from crawler.store.s3 import DEFAULT_CONCURRENCY
from crawler.store.spool import (
    Backlog,
    adopt_leftovers,
    drain_backlog,
    keep_local_copy,
    pending_backlogs,
)

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

Closer = Callable[[], None]
# The finish reason of a crawl stopped because a local write failed (disk full, read-only).
STORAGE_FAILED = "storage_failed"
# Queued uploads (texts, sidecars) waiting or running at once; more blocks the pipeline.
MAX_IN_FLIGHT = 256
Progress = Callable[[str], None]
STATS_STORE_PENDING = "archive/store/pending"


_SOURCE_SKIPS = ("bad-feed", "bad-sitemap", "bad-listing")


def site_health(
    stats: dict[str, Any],
    skipped: dict[str, int],
    failed_reasons: dict[str, int],
    config: HealthConfig,
) -> dict[str, Any]:
    """Whether the site still yields articles, and what looks broken when it does not."""
    discovered = int(stats.get("archive/articles/discovered", 0))
    failed = int(stats.get("archive/articles/failed", 0))
    done = failed + sum(
        int(stats.get(f"archive/articles/{k}", 0)) for k in ("new", "revised", "unchanged")
    )
    problems = []
    # Only spiders that discover (NewsSpider sets the count at start) can discover nothing.
    # A source that answered 304 (not modified since the last crawl) is working.
    if (
        "archive/articles/discovered" in stats
        and discovered == 0
        and not skipped.get("not-modified")
    ):
        problems.append("discovered no article: its feeds, sitemaps and listings gave none")
    if failed >= config.min_failed and failed > config.max_failed_ratio * done:
        problems.append(
            f"{failed} of {done} article pages failed to parse "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(failed_reasons.items()))})"
        )
    return {
        "status": "error" if problems else "ok",
        "problems": problems,
        "sources_failed": {k: v for k, v in skipped.items() if k in _SOURCE_SKIPS},
        "empty_body": failed_reasons.get("empty-body", 0),
        "no_title": int(stats.get("archive/articles/no_title", 0)),
    }


def new_crawl_id(site: str, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{site}-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class ArchiveRun:
    """Owns the store for one crawl; other components hand it what they write.

    Components that must finish before the manifest is written (the WARC writer closing its
    last file) register a closer; closers run in registration order, in a thread, at spider
    close, then the run report and the manifest are stored last.
    """

    def __init__(
        self,
        config: RunConfig,
        store: Store,
        crawler: Crawler | None = None,
        health: HealthConfig | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.crawler = crawler
        self.crawl_id = config.crawl_id
        self.site = ""
        self.health = health or HealthConfig()
        self.started_at = datetime.now(UTC)
        self._t0 = time.monotonic()
        self._cpu0 = time.process_time()
        self._lock = threading.Lock()
        self.objects: list[StoredObject] = []
        self.failures: list[dict[str, str]] = []
        self.notes: list[str] = []
        self._closers: list[tuple[str, Closer]] = []
        self.report: dict[str, Any] | None = None
        self._backlog: Backlog | None = None
        self._store_down_until = 0.0
        # Texts and sidecars of a remote store: spooled at once, uploaded by a few threads.
        self._uploads: ThreadPoolExecutor | None = None
        self._in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self._drainer: threading.Thread | None = None
        self.adopted_sidecars: list[dict[str, Any]] = []
        self._stopping = False

    @property
    def spool_dir(self) -> Path:
        return layout.spool_dir_for(local_root(self.store), self.config.spool_dir)

    @property
    def remote(self) -> bool:
        return not isinstance(self.store, LocalStore)

    def spider_opened(self, spider: Spider) -> None:
        self.site = spider.name
        if not self.crawl_id:
            self.crawl_id = new_crawl_id(spider.name, self.started_at)
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        logger.info(
            "crawl %s of %s into %s",
            self.crawl_id,
            spider.name,
            self.store.uri,
            extra={"spider": spider},
        )

    def add_closer(self, name: str, closer: Closer) -> None:
        self._closers.append((name, closer))

    def upload_backlog(self, spider: Spider) -> None:
        """What earlier crawls left in the spool goes up in a thread while this crawl runs.

        First, before any request: the texts a killed crawl left on their way up are listed,
        and their sidecars kept in ``adopted_sidecars`` for the catalog (the crawl may have
        died before it recorded them: they must not be archived a second time).
        """
        if self.remote and pending_backlogs(self.spool_dir):
            self.adopted_sidecars = adopt_leftovers(self.spool_dir, self.store.uri, self.crawl_id)
            self._drainer = threading.Thread(target=self.drain, name="backlog", daemon=True)
            self._drainer.start()

    def drain(self) -> None:
        uploaded, failed = drain_backlog(
            self.store, self.spool_dir, keep_local=self.config.keep_local, skip=self.crawl_id
        )
        if uploaded or failed:
            logger.info(
                "backlog of earlier crawls: %d objects uploaded, %d still pending",
                len(uploaded),
                len(failed),
            )

    def put_file(
        self, key: str, path: Path, *, move: bool = True, sha256: str | None = None
    ) -> StoredObject:
        """Store a file (called from worker threads: uploads block).

        With a remote store, a file the store does not take stays in the spool's backlog
        and the crawl goes on; ``move`` then means: removed locally once verified.
        ``sha256`` is the digest its writer computed: the stored bytes must match it.
        """
        if not self.remote:
            obj = self.store.put_file(key, path, move=move, sha256=sha256)
            self._record(obj)
            return obj
        if self._store_is_up():
            keep = move and self.config.keep_local
            try:
                obj = self.store.put_file(key, path, move=move and not keep, sha256=sha256)
            except StoreError as exc:
                self._store_failed(key, exc)
            else:
                if keep:
                    keep_local_copy(self.spool_dir, key, path)
                self._record(obj)
                return obj
        size, digest = file_digest(path, sha256)
        obj = StoredObject(key, size, digest)
        self._spool_backlog().add_file(obj, path, move=move)
        self._record(obj, pending=True)
        return obj

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        obj = self._put_bytes(key, data)
        self._record(obj, pending=not self.store_has(obj))
        return obj

    def queue_bytes(self, key: str, data: bytes, *, hold: bool = False) -> StoredObject:
        """Store bytes without waiting for a remote store (texts, sidecars).

        The bytes land whole in the spool at once, so nothing is lost if the crawl is killed
        (the next crawl adopts them); a few threads upload them, each verified, and the spool
        copy goes once the store has it. ``flush_uploads`` waits for all of them. ``hold``:
        not uploaded before ``release`` (the pipeline records the article in the catalog
        first, so no object reaches the store that the catalog does not know).
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
                option = self.config.store_options.get("ARCHIVE_STORE_CONCURRENCY")
                workers = int(str(option or DEFAULT_CONCURRENCY))
                self._uploads = ThreadPoolExecutor(workers, thread_name_prefix="upload")
        # Bounded: a slow store slows the pipeline down instead of filling memory.
        self._in_flight.acquire()
        self._uploads.submit(self._upload_queued, obj, path)

    def _upload_queued(self, obj: StoredObject, path: Path) -> None:
        try:
            if self._store_is_up():
                keep = self.config.keep_local
                try:
                    self.store.put_file(obj.key, path, move=not keep, sha256=obj.sha256)
                except StoreError as exc:
                    self._store_failed(obj.key, exc)
                else:
                    if keep:
                        keep_local_copy(self.spool_dir, obj.key, path)
                    self._record(obj)
                    return
            self._spool_backlog().add_spooled(obj, path, lazy=True)
            self._record(obj, pending=True)
        except Exception:
            # The file stays in the spool, where the next drain adopts it.
            logger.exception("upload of %s failed; it stays in the spool", obj.key)
        finally:
            self._in_flight.release()

    def flush_uploads(self) -> None:
        """Wait for queued uploads; called before the manifest, which lists them."""
        with self._lock:
            uploads, self._uploads = self._uploads, None
        if uploads is not None:
            uploads.shutdown(wait=True)
        if self._backlog is not None:
            self._backlog.flush()

    def store_has(self, obj: StoredObject) -> bool:
        return self._backlog is None or all(e["key"] != obj.key for e in self._backlog.entries)

    def _put_bytes(self, key: str, data: bytes) -> StoredObject:
        if not self.remote:
            return self.store.put_bytes(key, data)
        if self._store_is_up():
            try:
                return self.store.put_bytes(key, data)
            except StoreError as exc:
                self._store_failed(key, exc)
        obj = StoredObject(key, len(data), hashlib.sha256(data).hexdigest())
        self._spool_backlog().add_bytes(obj, data)
        return obj

    def _store_is_up(self) -> bool:
        return time.monotonic() >= self._store_down_until

    def _store_failed(self, key: str, exc: StoreError) -> None:
        if isinstance(exc, StoreConflictError):
            # Not an outage: another writer holds different bytes under this key.
            logger.error("%s: kept in the spool: %s", key, exc)
            with self._lock:
                self.notes.append(str(exc))
            return
        logger.warning("%s: kept in the spool for a later upload (%s)", key, exc)
        with self._lock:
            if not any(n.startswith("store unavailable") for n in self.notes):
                self.notes.append(f"store unavailable: {exc}")
            # Skip the store for a while instead of waiting out retries on every object.
            self._store_down_until = time.monotonic() + self.config.retry_after

    def _spool_backlog(self) -> Backlog:
        with self._lock:
            if self._backlog is None:
                self._backlog = Backlog(self.spool_dir, self.crawl_id, self.store.uri)
            return self._backlog

    @property
    def pending(self) -> list[str]:
        return [] if self._backlog is None else [str(e["key"]) for e in self._backlog.entries]

    def _record(self, obj: StoredObject, *, pending: bool = False) -> None:
        with self._lock:
            self.objects.append(obj)
        if self.crawler is not None and self.crawler.stats is not None:
            self.crawler.stats.inc_value(STATS_STORE_OBJECTS)
            self.crawler.stats.inc_value(STATS_STORE_BYTES, obj.size)
            if pending:
                self.crawler.stats.inc_value(STATS_STORE_PENDING)

    def storage_failed(self, what: str, exc: OSError) -> None:
        """A local write failed (disk full, read-only, gone): stop the crawl, once.

        Pages fetched from now on could not be archived; what was written stays whole (WARC
        groups are cut back to their last complete record, texts land whole or not at all).
        """
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            self.notes.append(f"crawl stopped: {what} failed: {exc}")
        logger.error("stopping the crawl: %s failed: %s", what, exc)
        crawler = self.crawler
        if crawler is None or crawler.engine is None:
            return
        from scrapy.utils.defer import deferred_from_coro
        from twisted.internet import reactor

        engine = crawler.engine
        reactor.callFromThread(
            lambda: deferred_from_coro(engine.close_spider_async(reason=STORAGE_FAILED))
        )

    def add_failure(self, url: str, reason: str, detail: str = "") -> None:
        with self._lock:
            self.failures.append({"url": url, "reason": reason, "detail": detail[:500]})

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        # Closing files, hashing and writing the manifest must not block the reactor.
        await maybe_deferred_to_future(deferToThread(self._close_blocking, reason))

    def _close_blocking(self, reason: str) -> None:
        if self._drainer is not None:
            self._drainer.join()
        for name, closer in self._closers:
            try:
                closer()
            except Exception as exc:
                if isinstance(exc, OSError):
                    # Disk full, store gone: the reason is enough, a traceback adds nothing.
                    logger.error("closing %s failed: %s", name, exc)
                else:
                    logger.exception("closing %s failed", name)
                self.notes.append(f"closing {name} failed: {exc}")
                if self.crawler is not None and self.crawler.stats is not None:
                    self.crawler.stats.inc_value("archive/errors/close")
        try:
            self.flush_uploads()
        except Exception as exc:
            logger.exception("finishing the uploads failed")
            self.notes.append(f"finishing the uploads failed: {exc}")
        self.report = self.build_report(reason)
        if self.config.report:
            try:
                self.write_report_and_manifest(self.report)
            except OSError as exc:
                # The summary below still goes to the log.
                logger.error("the run report and manifest could not be stored: %s", exc)
                self.notes.append(f"run report and manifest not stored: {exc}")
        if self._backlog is not None:
            self.report["upload"]["pending"] = len(self._backlog.entries)
            self._backlog.unlock()
        logger.info("%s", format_summary(self.report))
        if self._stopping:
            return  # the pages that failed failed for the reason already logged
        for problem in self.report["health"]["problems"]:
            logger.error("site %s: %s", self.site, problem)

    def build_report(self, reason: str) -> dict[str, Any]:
        stats: dict[str, Any] = {}
        if self.crawler is not None and self.crawler.stats is not None:
            stats = dict(self.crawler.stats.get_stats())
        by_status: dict[str, int] = {}
        for key, value in stats.items():
            if key.startswith("downloader/response_status_count/"):
                by_status[key.rsplit("/", 1)[1]] = int(value)
        skipped = {
            key.split("/", 2)[2]: int(value)
            for key, value in stats.items()
            if key.startswith("archive/skipped/")
        }
        # Requests to hosts outside allowed_domains (links, redirects): dropped by Scrapy.
        if offsite := int(stats.get("offsite/filtered", 0)):
            skipped["offsite"] = offsite
        failed_reasons = {
            key.rsplit("/", 1)[1]: int(value)
            for key, value in stats.items()
            if key.startswith("archive/articles/failed/")
        }
        warc_files = sorted(o.key for o in self.objects if o.key.startswith("warc/"))
        finished = datetime.now(UTC)
        return {
            "crawl_id": self.crawl_id,
            "site": self.site,
            "software": f"newsarchive/{__version__}",
            "store": self.store.uri,
            "started": self.started_at.isoformat(),
            "finished": finished.isoformat(),
            "duration_s": round(time.monotonic() - self._t0, 3),
            "cpu_s": round(time.process_time() - self._cpu0, 3),
            "finish_reason": reason,
            "pages": {
                "requests": int(stats.get("downloader/request_count", 0)),
                "responses": int(stats.get("downloader/response_count", 0)),
                "by_status": dict(sorted(by_status.items())),
                "bytes_received": int(stats.get("downloader/response_bytes", 0)),
                "download_errors": int(stats.get("downloader/exception_count", 0)),
            },
            "articles": {
                "discovered": int(stats.get("archive/articles/discovered", 0)),
                "new": int(stats.get("archive/articles/new", 0)),
                "revised": int(stats.get("archive/articles/revised", 0)),
                "unchanged": int(stats.get("archive/articles/unchanged", 0)),
                "failed": int(stats.get("archive/articles/failed", 0)),
                "failed_by_reason": failed_reasons,
                "no_title": int(stats.get("archive/articles/no_title", 0)),
                "failures": list(self.failures),
            },
            "health": site_health(stats, skipped, failed_reasons, self.health),
            "skipped": skipped,
            "warc": {
                "files": warc_files,
                "records": int(stats.get("archive/warc/records", 0)),
                "bytes": int(stats.get("archive/warc/bytes", 0)),
                "recovered_files": int(stats.get("archive/warc/recovered_files", 0)),
                "errors": int(stats.get("archive/warc/errors", 0)),
            },
            "text": {"bytes": int(stats.get("archive/text/bytes", 0))},
            "errors": {
                "log_errors": int(stats.get("log_count/ERROR", 0)),
                "spider_exceptions": int(stats.get("spider_exceptions/count", 0)),
            },
            "upload": {
                "pending": len(self.pending),
                "spool": str(self.spool_dir) if self.remote else None,
            },
            "notes": list(self.notes),
        }

    def write_report_and_manifest(self, report: dict[str, Any]) -> None:
        report_key = layout.report_key(self.site, self.crawl_id)
        self.put_bytes(report_key, _dump(report))
        with self._lock:
            objects = [{"key": o.key, "size": o.size, "sha256": o.sha256} for o in self.objects]
        manifest = {
            "crawl_id": self.crawl_id,
            "site": self.site,
            "created": datetime.now(UTC).isoformat(),
            "store": self.store.uri,
            "objects": objects,
            "report": report,
        }
        # The manifest is written last and is not listed in itself.
        self._put_bytes(layout.manifest_key(self.site, self.crawl_id), _dump(manifest))


def _dump(data: dict[str, Any]) -> bytes:
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False).encode() + b"\n"


def format_summary(report: dict[str, Any]) -> str:
    pages = report["pages"]
    statuses = ", ".join(f"{k}: {v}" for k, v in pages["by_status"].items()) or "none"
    arts = report["articles"]
    lines = [
        f"crawl {report['crawl_id']} ({report['site']}) {report['finish_reason']} "
        f"in {report['duration_s']:.1f}s",
        f"  pages: {pages['responses']} fetched ({statuses}), "
        f"{pages['download_errors']} download errors, {pages['bytes_received']:,} bytes",
        f"  articles: {arts['discovered']} discovered, {arts['new']} new, "
        f"{arts['revised']} revised, {arts['unchanged']} unchanged, {arts['failed']} failed"
        + (
            f" ({', '.join(f'{k}: {v}' for k, v in arts['failed_by_reason'].items())})"
            if arts["failed_by_reason"]
            else ""
        ),
        f"  warc: {len(report['warc']['files'])} files, {report['warc']['records']} records, "
        f"{report['warc']['bytes']:,} bytes",
    ]
    pending = report.get("upload", {}).get("pending", 0)
    if pending:
        lines.append(
            f"  upload: {pending} objects pending in {report['upload']['spool']} "
            "(the next crawl or `newsarchive upload` sends them)"
        )
    if report["skipped"]:
        lines.append(
            "  skipped: " + ", ".join(f"{k}: {v}" for k, v in sorted(report["skipped"].items()))
        )
    return "\n".join(lines)
