"""One crawl's bookkeeping: crawl id, the store, the manifest of written objects, the run report."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self

from scrapy import signals
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThread

from crawler import __version__
from crawler.constants import STATS_STORE_BYTES, STATS_STORE_OBJECTS
from crawler.store.base import (
    LocalStore,
    Store,
    StoreConflictError,
    StoredObject,
    StoreError,
    StoreUnavailableError,
    check_key,
    file_digest,
    open_store,
    sha256_file,
)
from crawler.store.s3 import DEFAULT_CONCURRENCY

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)

Closer = Callable[[], None]
# The finish reason of a crawl stopped because a local write failed (disk full, read-only).
STORAGE_FAILED = "storage_failed"
# Queued uploads (texts, sidecars) waiting or running at once; more blocks the pipeline.
MAX_IN_FLIGHT = 256
Progress = Callable[[str], None]
STATS_STORE_PENDING = "archive/store/pending"
# Settings the store reads (Scrapy's AWS_* and ours); boto3's own chain fills what is unset.
STORE_OPTIONS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_REGION_NAME",
    "AWS_PROFILE",
    "ARCHIVE_STORE_S3_ADDRESSING_STYLE",
    "ARCHIVE_STORE_MULTIPART_THRESHOLD",
    "ARCHIVE_STORE_MULTIPART_PART_SIZE",
    "ARCHIVE_STORE_MAX_ATTEMPTS",
    "ARCHIVE_STORE_CONCURRENCY",
)


def store_options(settings: BaseSettings | Mapping[str, object]) -> dict[str, object]:
    return {name: settings.get(name) for name in STORE_OPTIONS if settings.get(name) is not None}


def default_spool_dir() -> Path:
    """Where a remote store's files wait: ``$XDG_CACHE_HOME/newsarchive/spool``."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "newsarchive" / "spool"


def spool_dir_for(store: Store, configured: Path | None) -> Path:
    if isinstance(store, LocalStore):
        return configured if configured is not None else store.root / ".spool"
    return configured if configured is not None else default_spool_dir()


@dataclass(frozen=True, slots=True)
class RunConfig:
    store_uri: str
    spool_dir: Path | None
    crawl_id: str
    report: bool
    store_options: Mapping[str, object] = field(default_factory=dict)
    keep_local: bool = False
    retry_after: float = 60.0

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> RunConfig:
        spool = settings.get("ARCHIVE_SPOOL_DIR") or ""
        retry_after = settings.getfloat("ARCHIVE_STORE_RETRY_AFTER", 60.0)
        if retry_after < 0:
            raise ValueError(f"ARCHIVE_STORE_RETRY_AFTER must be >= 0, got {retry_after}")
        return cls(
            store_uri=str(settings.get("ARCHIVE_STORE_URI") or ""),
            spool_dir=Path(spool).expanduser() if spool else None,
            crawl_id=str(settings.get("ARCHIVE_CRAWL_ID") or ""),
            report=settings.getbool("ARCHIVE_REPORT_ENABLED"),
            store_options=store_options(settings),
            keep_local=settings.getbool("ARCHIVE_STORE_KEEP_LOCAL"),
            retry_after=retry_after,
        )


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """When a crawl of a site counts as broken (an ERROR and a non-zero exit)."""

    max_failed_ratio: float = 0.5
    min_failed: int = 3

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> HealthConfig:
        ratio = settings.getfloat("ARCHIVE_HEALTH_MAX_FAILED_RATIO", 0.5)
        if not 0 <= ratio <= 1:
            raise ValueError(f"ARCHIVE_HEALTH_MAX_FAILED_RATIO must be 0..1, got {ratio}")
        return cls(ratio, settings.getint("ARCHIVE_HEALTH_MIN_FAILED", 3))


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


def check_settings(settings: BaseSettings) -> list[str]:
    """Every configuration error of the archive components, each a sentence; empty when fine.

    The store is checked for real (bucket, credentials, write permission) unless
    ``ARCHIVE_STORE_CHECK`` is off for a remote store (crawl now, ``newsarchive upload`` later).
    """
    from crawler.crawl.capture import WarcConfig
    from crawler.crawl.pipeline import TextConfig
    from crawler.fetch.render import RenderConfig

    errors: list[str] = []
    try:
        store = open_store(str(settings.get("ARCHIVE_STORE_URI") or ""), store_options(settings))
        if isinstance(store, LocalStore) or settings.getbool("ARCHIVE_STORE_CHECK", True):
            store.check_writable()
    except StoreError as exc:
        errors.append(str(exc))
    for parse_config in (RunConfig.from_settings, HealthConfig.from_settings):
        try:
            parse_config(settings)
        except ValueError as exc:
            errors.append(str(exc))
    checks: list[tuple[str, Callable[[BaseSettings], object]]] = [
        ("ARCHIVE_WARC_ENABLED", WarcConfig.from_settings),
        ("ARCHIVE_TEXT_ENABLED", TextConfig.from_settings),
        ("ARCHIVE_RENDER_ENABLED", RenderConfig.from_settings),
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


class Backlog:
    """What the store did not take during one crawl, kept in the spool until it does.

    Files live under ``<spool>/pending/<crawl-id>/<key>``, listed in order (the manifest last)
    in ``<spool>/pending/<crawl-id>.json`` with their size and SHA-256. A lock file beside the
    list keeps two processes (a crawl and ``newsarchive upload``) off the same backlog.

    The same directory holds a live crawl's texts and sidecars on their way up ("in flight",
    not listed). Every file lands there whole (written aside, then renamed), so a file a
    killed crawl left unlisted is adopted by the next drain rather than forgotten, and the
    list may be saved lazily (at most once a second while a crawl adds to it).
    """

    def __init__(self, spool: Path, crawl_id: str, store_uri: str) -> None:
        self.spool = spool
        self.crawl_id = crawl_id
        self.store_uri = store_uri
        self.dir = spool / "pending"
        self.list_path = self.dir / f"{crawl_id}.json"
        self.files = self.dir / crawl_id
        self.entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._lock_fh: IO[bytes] | None = None
        self._saved_at = 0.0
        self._unsaved = False

    @classmethod
    def load(cls, list_path: Path) -> Backlog:
        data = json.loads(list_path.read_text(encoding="utf-8"))
        backlog = cls(list_path.parent.parent, str(data["crawl_id"]), str(data["store"]))
        backlog.entries = list(data["objects"])
        return backlog

    def lock(self) -> bool:
        """Take the backlog's lock without waiting; False when another process holds it."""
        if self._lock_fh is not None:
            return True
        self.dir.mkdir(parents=True, exist_ok=True)
        fh = (self.dir / f"{self.crawl_id}.lock").open("ab")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        self._lock_fh = fh
        return True

    def unlock(self) -> None:
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    def path_of(self, key: str) -> Path:
        return self.files.joinpath(*check_key(key).split("/"))

    def add_file(self, obj: StoredObject, path: Path, *, move: bool) -> None:
        target = self.path_of(obj.key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if move:
            os.replace(path, target)
        else:
            tmp = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        self._add(obj, target)

    def add_bytes(self, obj: StoredObject, data: bytes, *, lazy: bool = False) -> None:
        self._add(obj, self.write_aside(obj.key, data), lazy=lazy)

    def write_aside(self, key: str, data: bytes) -> Path:
        """Put bytes in the backlog's directory, whole or not at all, without listing them."""
        target = self.path_of(key)
        with self._lock:
            self.lock()
            if not self.list_path.exists():
                # The list names the store: a drain must know where unlisted files belong.
                self._write_list()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        return target

    def add_spooled(self, obj: StoredObject, target: Path, *, lazy: bool = False) -> None:
        """List a file already in the backlog's directory (written by ``write_aside``)."""
        self._add(obj, target, lazy=lazy)

    def _add(self, obj: StoredObject, target: Path, *, lazy: bool = False) -> None:
        with self._lock:
            self.lock()
            self.entries = [e for e in self.entries if e["key"] != obj.key]
            self.entries.append(
                {
                    "key": obj.key,
                    "path": target.relative_to(self.spool).as_posix(),
                    "size": obj.size,
                    "sha256": obj.sha256,
                }
            )
            self.save(lazy=lazy)

    def unlisted(self) -> list[Path]:
        """Whole files in the directory that the list does not name (in flight, or orphaned)."""
        if not self.files.is_dir():
            return []
        listed = {str(e["path"]) for e in self.entries}
        return [
            path
            for path in sorted(self.files.rglob("*"))
            if path.is_file()
            and not path.name.startswith(".")
            and path.relative_to(self.spool).as_posix() not in listed
        ]

    @property
    def waiting(self) -> int:
        """Objects waiting for the store: listed ones and whole unlisted files."""
        return len(self.entries) + len(self.unlisted())

    def adopt_unlisted(self) -> int:
        """List the files a killed crawl left in the directory unlisted; they go up first."""
        adopted = []
        for path in self.unlisted():
            rel = path.relative_to(self.spool).as_posix()
            size, digest = sha256_file(path)
            key = path.relative_to(self.files).as_posix()
            adopted.append({"key": key, "path": rel, "size": size, "sha256": digest})
        if adopted:
            logger.warning(
                "backlog %s: %d files a killed crawl left on their way up are listed now",
                self.crawl_id,
                len(adopted),
            )
            with self._lock:
                self.entries = adopted + self.entries
                self.save()
        return len(adopted)

    def save(self, *, lazy: bool = False) -> None:
        """Write the list (``lazy``: unless written less than a second ago; ``flush`` later)."""
        if lazy and time.monotonic() - self._saved_at < 1.0:
            self._unsaved = True
            return
        self._unsaved = False
        self._saved_at = time.monotonic()
        if not self.entries and not self._has_files():
            self.list_path.unlink(missing_ok=True)
            shutil.rmtree(self.files, ignore_errors=True)
            (self.dir / f"{self.crawl_id}.lock").unlink(missing_ok=True)
            return
        self._write_list()

    def flush(self) -> None:
        """Save the list now (or remove the backlog if nothing is left in it)."""
        with self._lock:
            self.save()

    def _has_files(self) -> bool:
        return self.files.is_dir() and any(
            not p.name.startswith(".") for p in self.files.rglob("*") if p.is_file()
        )

    def _write_list(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        data = {"crawl_id": self.crawl_id, "store": self.store_uri, "objects": self.entries}
        tmp = self.list_path.with_name(f".{self.list_path.name}.tmp")
        tmp.write_bytes(_dump(data))
        os.replace(tmp, self.list_path)


def pending_backlogs(spool: Path) -> list[Path]:
    pending = spool / "pending"
    return sorted(pending.glob("*.json")) if pending.is_dir() else []


def adopt_leftovers(spool: Path, store_uri: str, skip: str) -> list[dict[str, Any]]:
    """List what killed crawls left unlisted in their backlogs; their sidecars, parsed."""
    sidecars: list[dict[str, Any]] = []
    for list_path in pending_backlogs(spool):
        try:
            backlog = Backlog.load(list_path)
        except (OSError, ValueError, KeyError):
            continue  # reported by the drain
        if backlog.crawl_id == skip or backlog.store_uri != store_uri or not backlog.lock():
            continue
        try:
            backlog.adopt_unlisted()
            for entry in backlog.entries:
                key = str(entry["key"])
                if not (key.startswith("text/") and key.endswith(".json")):
                    continue
                try:
                    data = json.loads((spool / str(entry["path"])).read_bytes())
                except (OSError, ValueError) as exc:
                    logger.warning("%s: unreadable sidecar in the spool: %s", key, exc)
                    continue
                if isinstance(data, dict):
                    sidecars.append(data)
        finally:
            backlog.unlock()
    return sidecars


def drain_backlog(
    store: Store,
    spool: Path,
    *,
    keep_local: bool = False,
    skip: str = "",
    progress: Progress | None = None,
) -> tuple[list[StoredObject], list[str]]:
    """Upload every backlog in the spool meant for this store: (uploaded, failure messages).

    Each object is uploaded, verified against the size and SHA-256 recorded when it was
    spooled, and only then removed locally (kept under ``<spool>/kept/`` with keep_local).
    """
    uploaded: list[StoredObject] = []
    failed: list[str] = []
    for list_path in pending_backlogs(spool):
        try:
            backlog = Backlog.load(list_path)
        except (OSError, ValueError, KeyError) as exc:
            failed.append(f"{list_path}: unreadable backlog list ({exc})")
            continue
        if backlog.crawl_id == skip or backlog.store_uri != store.uri:
            continue
        if not backlog.lock():
            logger.info("backlog %s is being uploaded by another process", backlog.crawl_id)
            continue
        try:
            backlog.adopt_unlisted()
            for entry in list(backlog.entries):
                key, path = str(entry["key"]), spool / str(entry["path"])
                try:
                    obj = _upload_spooled(store, spool, key, path, entry, keep_local)
                except (StoreError, OSError) as exc:
                    failed.append(f"{key}: {exc}")
                    if progress is not None:
                        progress(f"failed   {key}: {exc}")
                    if isinstance(exc, StoreUnavailableError):
                        # The store is down: the rest waits too, no point retrying each one.
                        return uploaded, failed
                    continue
                uploaded.append(obj)
                with backlog._lock:
                    backlog.entries.remove(entry)
                    backlog.save(lazy=True)
                if progress is not None:
                    progress(f"uploaded {key} ({obj.size:,} bytes, sha256 {obj.sha256[:12]}…)")
        finally:
            backlog.flush()
            backlog.unlock()
    return uploaded, failed


def _upload_spooled(
    store: Store, spool: Path, key: str, path: Path, entry: Mapping[str, Any], keep_local: bool
) -> StoredObject:
    if not path.exists():
        # Uploaded and removed just before a kill, the list not yet saved: the store has it.
        stored = store.head(key)
        if stored is not None and (stored.size, stored.sha256) == (entry["size"], entry["sha256"]):
            return stored
    size, digest = sha256_file(path)
    if (size, digest) != (entry["size"], entry["sha256"]):
        raise StoreError(
            f"spooled file {path} changed since the crawl ({size} bytes, sha256 {digest}; "
            f"recorded {entry['size']} bytes, sha256 {entry['sha256']}): not uploaded"
        )
    # The digest just checked: the store need not read the file once more to get it.
    obj = store.put_file(key, path, move=not keep_local, sha256=digest)
    if keep_local:
        _keep(spool, key, path)
    return obj


def _keep(spool: Path, key: str, path: Path) -> None:
    target = spool.joinpath("kept", *key.split("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)


class ArchiveRun:
    """Owns the store for one crawl; other components hand it what they write.

    Components that must finish before the manifest is written (the WARC writer closing its
    last file) register a closer; closers run in registration order, in a thread, at spider
    close, then the run report and the manifest are stored last.
    """

    def __init__(self, config: RunConfig, store: Store, crawler: Crawler | None = None) -> None:
        self.config = config
        self.store = store
        self.crawler = crawler
        self.crawl_id = config.crawl_id
        self.site = ""
        self.health = HealthConfig()
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

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        errors = check_settings(crawler.settings)
        if errors:
            # Not NotConfigured: a crawl that cannot archive must not run at all.
            raise ValueError("newsarchive cannot start: " + "; ".join(errors))
        config = RunConfig.from_settings(crawler.settings)
        store = open_store(config.store_uri, config.store_options)
        ext = cls(config, store, crawler)
        ext.health = HealthConfig.from_settings(crawler.settings)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.upload_backlog, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    @property
    def spool_dir(self) -> Path:
        return spool_dir_for(self.store, self.config.spool_dir)

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
                    _keep(self.spool_dir, key, path)
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
                        _keep(self.spool_dir, obj.key, path)
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
        self._put_bytes(f"manifests/{self.site}/{self.crawl_id}.json", _dump(manifest))


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
