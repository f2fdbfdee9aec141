"""One crawl's bookkeeping: crawl id, the store, the manifest of written objects, the run report."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from scrapy import signals
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThread

from crawler import __version__
from crawler.constants import STATS_STORE_BYTES, STATS_STORE_OBJECTS
from crawler.store import LocalStore, StoredObject, StoreError, open_store

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)

Closer = Callable[[], None]


@dataclass(frozen=True, slots=True)
class RunConfig:
    store_uri: str
    spool_dir: Path | None
    crawl_id: str
    report: bool

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> RunConfig:
        spool = settings.get("ARCHIVE_SPOOL_DIR") or ""
        return cls(
            store_uri=str(settings.get("ARCHIVE_STORE_URI") or ""),
            spool_dir=Path(spool) if spool else None,
            crawl_id=str(settings.get("ARCHIVE_CRAWL_ID") or ""),
            report=settings.getbool("ARCHIVE_REPORT_ENABLED"),
        )


def check_settings(settings: BaseSettings) -> list[str]:
    """Every configuration error of the archive components, each a sentence; empty when fine."""
    from crawler.pipelines import TextConfig
    from crawler.warc_capture import WarcConfig

    errors: list[str] = []
    try:
        open_store(str(settings.get("ARCHIVE_STORE_URI") or "")).check_writable()
    except StoreError as exc:
        errors.append(str(exc))
    checks: list[tuple[str, Callable[[BaseSettings], object]]] = [
        ("ARCHIVE_WARC_ENABLED", WarcConfig.from_settings),
        ("ARCHIVE_TEXT_ENABLED", TextConfig.from_settings),
    ]
    for switch, parse in checks:
        if settings.getbool(switch):
            try:
                parse(settings)
            except ValueError as exc:
                errors.append(str(exc))
    return errors


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
        self, config: RunConfig, store: LocalStore, crawler: Crawler | None = None
    ) -> None:
        self.config = config
        self.store = store
        self.crawler = crawler
        self.crawl_id = config.crawl_id
        self.site = ""
        self.started_at = datetime.now(UTC)
        self._t0 = time.monotonic()
        self._cpu0 = time.process_time()
        self._lock = threading.Lock()
        self.objects: list[StoredObject] = []
        self.failures: list[dict[str, str]] = []
        self.notes: list[str] = []
        self._closers: list[tuple[str, Closer]] = []
        self.report: dict[str, Any] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        errors = check_settings(crawler.settings)
        if errors:
            # Not NotConfigured: a crawl that cannot archive must not run at all.
            raise ValueError("newsarchive cannot start: " + "; ".join(errors))
        config = RunConfig.from_settings(crawler.settings)
        store = open_store(config.store_uri)
        ext = cls(config, store, crawler)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    @property
    def spool_dir(self) -> Path:
        if self.config.spool_dir is not None:
            return self.config.spool_dir
        return self.store.root / ".spool"

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

    def put_file(self, key: str, path: Path, *, move: bool = True) -> StoredObject:
        obj = self.store.put_file(key, path, move=move)
        self._record(obj)
        return obj

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        obj = self.store.put_bytes(key, data)
        self._record(obj)
        return obj

    def _record(self, obj: StoredObject) -> None:
        with self._lock:
            self.objects.append(obj)
        if self.crawler is not None and self.crawler.stats is not None:
            self.crawler.stats.inc_value(STATS_STORE_OBJECTS)
            self.crawler.stats.inc_value(STATS_STORE_BYTES, obj.size)

    def add_failure(self, url: str, reason: str, detail: str = "") -> None:
        with self._lock:
            self.failures.append({"url": url, "reason": reason, "detail": detail[:500]})

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        # Closing files, hashing and writing the manifest must not block the reactor.
        await maybe_deferred_to_future(deferToThread(self._close_blocking, reason))

    def _close_blocking(self, reason: str) -> None:
        for name, closer in self._closers:
            try:
                closer()
            except Exception as exc:
                logger.exception("closing %s failed", name)
                self.notes.append(f"closing {name} failed: {exc}")
                if self.crawler is not None and self.crawler.stats is not None:
                    self.crawler.stats.inc_value("archive/errors/close")
        self.report = self.build_report(reason)
        if self.config.report:
            self.write_report_and_manifest(self.report)
        logger.info("%s", format_summary(self.report))

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
                "new": int(stats.get("archive/articles/new", 0)),
                "failed": int(stats.get("archive/articles/failed", 0)),
                "failed_by_reason": failed_reasons,
                "failures": list(self.failures),
            },
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
            "notes": list(self.notes),
        }

    def write_report_and_manifest(self, report: dict[str, Any]) -> None:
        report_key = f"reports/{self.site}/{self.crawl_id}.json"
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
        self.store.put_bytes(f"manifests/{self.site}/{self.crawl_id}.json", _dump(manifest))


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
        f"  articles: {arts['new']} new, {arts['failed']} failed"
        + (
            f" ({', '.join(f'{k}: {v}' for k, v in arts['failed_by_reason'].items())})"
            if arts["failed_by_reason"]
            else ""
        ),
        f"  warc: {len(report['warc']['files'])} files, {report['warc']['records']} records, "
        f"{report['warc']['bytes']:,} bytes",
    ]
    if report["skipped"]:
        lines.append(
            "  skipped: " + ", ".join(f"{k}: {v}" for k, v in sorted(report["skipped"].items()))
        )
    return "\n".join(lines)
