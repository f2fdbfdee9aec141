"""One crawl's bookkeeping: crawl id, what it wrote, its closers, its report and manifest."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThread

from crawler import layout
from crawler.constants import SITE_BUSY, STATS_STORE_BYTES, STATS_STORE_OBJECTS
from crawler.crawl.config import HealthConfig, LedgerConfig
from crawler.crawl.report import CrawlFacts, FailedUrl, FailureLog, build_report, format_summary
from crawler.store.base import (
    Store,
    StoredObject,
    local_root,
)
from crawler.store.s3 import DEFAULT_CONCURRENCY
from crawler.store.scratch import ObjectLog, clean_dead_scratch
from crawler.store.uploader import Uploader
from crawler.util import json_bytes

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

Closer = Callable[[], None]
# The finish reason of a crawl stopped because a local write failed (disk full, read-only).
STORAGE_FAILED = "storage_failed"
STATS_STORE_PENDING = "archive/store/pending"


def new_crawl_id(site: str, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{site}-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class CrawlLedger:
    """One crawl's bookkeeping: its id, what it wrote, its closers, its report and manifest.

    Objects go to the store through an ``Uploader`` (spooled while a remote store is down).
    Components that must finish before the manifest is written (the WARC writer closing its
    last file) register a closer; closers run in registration order, in a thread, at spider
    close, then the report and the manifest are stored last.
    """

    def __repr__(self) -> str:  # Scrapy logs a failing signal handler by its repr: no address
        return "<CrawlLedger>"

    def __init__(
        self,
        config: LedgerConfig,
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
        # Every URL that failed, at any stage: the spider's hook and the pipeline add them.
        self.failures = FailureLog()
        self._notes: list[str] = []
        self._closers: list[tuple[str, Closer]] = []
        self.report: dict[str, Any] | None = None
        self.refused: str | None = None  # why the site's lease was not this crawl's
        self._finishers: list[Callable[[], None]] = []  # run once every upload is done
        self.adopted_sidecars: list[dict[str, Any]] = []
        # Sections a component adds to the report (a replay's "replay"), made as it is built.
        self._sections: list[tuple[str, Callable[[], dict[str, Any]]]] = []
        self._stopping = False
        concurrency = config.store_options.get("ARCHIVE_STORE_CONCURRENCY")
        self.uploads = Uploader(
            store,
            layout.spool_dir_for(local_root(store), config.spool_dir),
            keep_local=config.keep_local,
            retry_after=config.retry_after,
            concurrency=int(str(concurrency or DEFAULT_CONCURRENCY)),
            on_stored=self._count,
        )
        self.uploads.crawl_id = self.crawl_id

    # -- what the components see ------------------------------------------------------------------
    @property
    def spool_dir(self) -> Path:
        return self.uploads.spool_dir

    @property
    def remote(self) -> bool:
        return self.uploads.remote

    @property
    def objects(self) -> ObjectLog:
        """Every object the crawl wrote, in order: a file in its scratch folder, read back as
        it is iterated."""
        return self.uploads.objects

    def scratch_dir(self) -> Path:
        """The crawl's own scratch folder in the spool (locked while the crawl lives, removed
        at its end; a dead crawl's is removed by the next one)."""
        return self.uploads.scratch_dir()

    @property
    def pending(self) -> list[str]:
        return self.uploads.pending

    @property
    def notes(self) -> list[str]:
        """What went wrong that the report must say: the crawl's own notes and the store's."""
        return [*self.uploads.notes, *self._notes]

    def put_file(
        self, key: str, path: Path, *, move: bool = True, sha256: str | None = None
    ) -> StoredObject:
        return self.uploads.put_file(key, path, move=move, sha256=sha256)

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        return self.uploads.put_bytes(key, data)

    def queue_bytes(self, key: str, data: bytes, *, hold: bool = False) -> StoredObject:
        return self.uploads.queue_bytes(key, data, hold=hold)

    def release(self, objects: Sequence[StoredObject]) -> None:
        self.uploads.release(objects)

    def flush_uploads(self) -> None:
        self.uploads.flush()

    def drain(self) -> None:
        self.uploads.drain()

    def _finish(self) -> None:
        for finisher in self._finishers:
            try:
                finisher()
            except Exception:
                logger.exception("finishing the crawl failed")

    def add_finisher(self, finisher: Callable[[], None]) -> None:
        """Called at the very end, once every upload finished or waits in the spool."""
        self._finishers.append(finisher)

    def add_closer(self, name: str, closer: Closer) -> None:
        self._closers.append((name, closer))

    def add_section(self, name: str, section: Callable[[], dict[str, Any]]) -> None:
        """A section of the report that a component makes when the report is built."""
        self._sections.append((name, section))

    def add_failure(self, failure: FailedUrl) -> None:
        """A URL that failed (the spider's ``on_failure``, the pipeline): for the report."""
        self.failures.add(failure)

    def _count(self, obj: StoredObject, pending: bool) -> None:
        if self.crawler is not None and self.crawler.stats is not None:
            self.crawler.stats.inc_value(STATS_STORE_OBJECTS)
            self.crawler.stats.inc_value(STATS_STORE_BYTES, obj.size)
            if pending:
                self.crawler.stats.inc_value(STATS_STORE_PENDING)

    # -- life cycle -------------------------------------------------------------------------------
    def spider_opened(self, spider: Spider, *, writes: bool = True) -> None:
        """``writes``: False for a crawl that writes nothing (a replay): no spool is made."""
        self.site = spider.name
        if not self.crawl_id:
            self.crawl_id = new_crawl_id(spider.name, self.started_at)
        self.uploads.crawl_id = self.crawl_id
        if writes:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            # Crawls killed in their crawl-end step left their scratch (record table, runs).
            clean_dead_scratch(self.spool_dir)
        logger.info(
            "%s %s of %s %s %s",
            "crawl" if writes else "replay",
            self.crawl_id,
            spider.name,
            "into" if writes else "from",
            self.store.uri,
            extra={"spider": spider},
        )

    def refuse(self, why: str, reason: str = SITE_BUSY) -> None:
        """Not this crawl's to run (the site's lease is another crawl's, or the catalog
        describes another store): it stores nothing and closes at once with ``reason``; its
        report stays local, with ``why`` as its note."""
        self.refused = why
        self._notes.append(why)
        if reason == SITE_BUSY:
            logger.warning("not crawled: %s", why)
        else:
            logger.error("not crawled: %s", why)
        self.close_spider(reason)

    def close_spider(self, reason: str) -> None:
        """Ask the engine to close the spider with ``reason`` (from any thread)."""
        crawler = self.crawler
        if crawler is None or crawler.engine is None:
            return
        from scrapy.utils.defer import deferred_from_coro
        from twisted.internet import reactor

        engine = crawler.engine
        reactor.callFromThread(lambda: deferred_from_coro(engine.close_spider_async(reason=reason)))

    def upload_backlog(self, spider: Spider) -> None:
        """What earlier crawls left in the spool goes up in a thread while this crawl runs;
        the sidecars killed crawls left are kept for the catalog (``adopted_sidecars``)."""
        self.adopted_sidecars = self.uploads.start_draining()

    def storage_failed(self, what: str, exc: OSError) -> None:
        """A local write failed (disk full, read-only, gone): stop the crawl, once.

        Pages fetched from now on could not be archived; what was written stays whole (WARC
        groups are cut back to their last complete record, texts land whole or not at all).
        """
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            self._notes.append(f"crawl stopped: {what} failed: {exc}")
        logger.error("stopping the crawl: %s failed: %s", what, exc)
        self.close_spider(STORAGE_FAILED)

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        # Closing files, hashing and writing the manifest must not block the reactor.
        await maybe_deferred_to_future(deferToThread(self._close_blocking, reason))

    def _close_blocking(self, reason: str) -> None:
        if self.refused is not None:
            # Not this crawl's site now: nothing opened, nothing goes to the store.
            self.report = self.build_report(reason)
            self._finish()
            self.uploads.close_scratch()
            return
        self.uploads.join_drain()
        for name, closer in self._closers:
            try:
                closer()
            except Exception as exc:
                if isinstance(exc, OSError):
                    # Disk full, store gone: the reason is enough, a traceback adds nothing.
                    # When the crawl already stopped for a failed write, this is the same
                    # cause again, logged at ERROR once (storage_failed) and noted here.
                    log = logger.warning if self._stopping else logger.error
                    log("closing %s failed: %s", name, exc)
                else:
                    logger.exception("closing %s failed", name)
                self._notes.append(f"closing {name} failed: {exc}")
                if self.crawler is not None and self.crawler.stats is not None:
                    self.crawler.stats.inc_value("archive/errors/close")
        try:
            self.flush_uploads()
        except Exception as exc:
            logger.exception("finishing the uploads failed")
            self._notes.append(f"finishing the uploads failed: {exc}")
        self.report = self.build_report(reason)
        if self.config.report:
            try:
                self.write_report_and_manifest(self.report)
            except OSError as exc:
                # The summary below still goes to the log.
                where = f"the spool {self.spool_dir}" if self.remote else self.store.uri
                logger.error(
                    "the crawl report and manifest could not be stored in %s: %s", where, exc
                )
                self._notes.append(f"crawl report and manifest not stored: {exc}")
        pending = self.uploads.finish()
        if pending is not None:
            self.report["upload"]["pending"] = pending
        self._finish()
        self.uploads.close_scratch()
        logger.info("%s", format_summary(self.report))
        if self._stopping:
            return  # the pages that failed failed for the reason already logged
        for problem in self.report["health"]["problems"]:
            logger.error("site %s: %s", self.site, problem)

    def build_report(self, reason: str) -> dict[str, Any]:
        stats: dict[str, Any] = {}
        if self.crawler is not None and self.crawler.stats is not None:
            stats = dict(self.crawler.stats.get_stats())
        facts = CrawlFacts(
            crawl_id=self.crawl_id,
            site=self.site,
            store_uri=self.store.uri,
            started=self.started_at,
            t0=self._t0,
            cpu0=self._cpu0,
            health=self.health,
            objects=self.objects,
            pending=self.pending,
            spool_dir=self.spool_dir,
            remote=self.remote,
            failures=self.failures,
            notes=self.notes,
            refused=list(self.uploads.refused),
        )
        report = build_report(facts, stats, reason)
        for name, section in self._sections:
            try:
                report[name] = section()
            except Exception as exc:  # the report is still written, without this section
                logger.exception("the report's %s section failed", name)
                report["notes"].append(f"the report's {name} section failed: {exc}")
        return report

    def write_report_and_manifest(self, report: dict[str, Any]) -> None:
        self.put_bytes(layout.report_key(self.site, self.crawl_id), json_bytes(report))
        head = {
            "crawl_id": self.crawl_id,
            "site": self.site,
            "created": datetime.now(UTC).isoformat(),
            "store": self.store.uri,
        }
        # Written object by object, as the object list is read, into the crawl's scratch
        # folder (a crawl's objects are many: held as one list of dicts and its JSON, 200,000
        # of them took 100 MB), then stored. The manifest is written last and is not listed
        # in itself.
        path = self.scratch_dir() / "manifest.json"
        try:
            with path.open("w", encoding="utf-8") as out:
                out.writelines(manifest_json(head, self.objects, report))
            self.uploads.put_file_unlisted(layout.manifest_key(self.site, self.crawl_id), path)
        finally:
            path.unlink(missing_ok=True)


def manifest_json(
    head: Mapping[str, Any], objects: Iterable[StoredObject], report: Mapping[str, Any]
) -> Iterator[str]:
    """A crawl's manifest, as ``json_bytes`` writes ``{**head, "objects": [...], "report":
    report}``, a piece at a time: every object listed with its size and SHA-256."""

    def nested(value: Any, level: int = 1) -> str:
        return json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n" + "  " * level)

    yield "{\n"
    for name, value in head.items():
        yield f"  {nested(name)}: {nested(value)},\n"
    yield '  "objects": ['
    listed = 0
    for o in objects:
        item = {"key": o.key, "size": o.size, "sha256": o.sha256}
        yield ("\n    " if listed == 0 else ",\n    ") + nested(item, 2)
        listed += 1
    yield "\n  ],\n" if listed else "],\n"
    yield f'  "report": {nested(report)}\n}}\n'
