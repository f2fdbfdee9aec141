"""Incremental crawling: the catalog records every capture and decides what is fetched again."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThread

from crawler.capture.exchange import CaptureInfo, Exchange, RevisitTarget
from crawler.capture.writer import RecordLocation
from crawler.catalog.db import (
    ArchivedArticle,
    Capture,
    Catalog,
    CatalogMismatch,
    CatalogWriteError,
    Lease,
    StoryKeys,
    TextFacts,
    TextRecord,
    iso,
    url_digest,
)
from crawler.constants import CHALLENGE_FIELD, CHALLENGE_RECORD
from crawler.crawl.config import CatalogConfig
from crawler.crawl.ledger import CrawlLedger
from crawler.layout import default_catalog_url, sidecar_key, warc_key
from crawler.store.base import StoreError, local_root, store_identity
from crawler.store.spool import SPOOLED_TEXT, spool_identity, waiting_crawls
from crawler.util import without_password

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.statscollectors import StatsCollector

logger = logging.getLogger(__name__)

BATCH = 200  # capture rows per catalog transaction
FLUSH_SECONDS = 2.0  # ... or fewer, at least this often
LEASE_LOST = "lease-lost"  # the finish reason of a crawl whose lease was taken over
# New texts go into the catalog by group commit: this many per transaction at most, the first
# of a batch waiting this long at most for others (a commit per text was a third of recording).
GROUP_TEXTS = 32
GROUP_SECONDS = 0.1
# Under a local store's spool: <site>/<crawl id>.keys, the text keys a crawl wrote to the store
# and had not seen committed to the catalog (see TextJournal).
PENDING_TEXTS = "catalog-pending"


class TextJournal:
    """The texts a crawl into a local store wrote and the catalog may not have yet: their keys,
    a line each, appended before they are submitted to the group commit (no fsync: a killed
    process loses no write it made; WAL with synchronous=NORMAL is as durable). A crawl that
    ends with every text committed removes its file; the next crawl of the site records the
    texts of a file left (:meth:`ArchiveCatalog.adopt_pending`). A remote store's crawl needs
    none: its texts wait in the spool's backlog until they are committed, and are adopted from
    there."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()

    def add(self, text_key: str) -> None:
        line = (text_key.replace("\n", " ") + "\n").encode("utf-8", "surrogateescape")
        with self._lock:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(self._fd, line)

    def close(self, *, committed: bool) -> None:
        """Close the file; remove it when every text in it was committed."""
        with self._lock:
            if self._fd is None:
                return
            os.close(self._fd)
            self._fd = None
            if committed:
                self.path.unlink(missing_ok=True)


class TextRecorder:
    """Group commit of a crawl's new texts: ``submit`` queues a text and returns at once; one
    thread records the queued texts together (``Catalog.record_texts``, one transaction) when
    ``batch`` are waiting or ``seconds`` after the first of them came, and completes each
    text's future with its (version, new) once they are committed, or with the error.

    The caller waits for its future before it counts the text archived and before it lets
    its held spool files go up to the store: a crawl killed with texts waiting loses none of
    them, since each text and sidecar is whole in the spool (or the store) before it is
    submitted, and the next crawl records what the catalog does not know (``_record_adopted``).

    After a commit, ``link`` (if given) is called with the text key and story keys of each new
    text that has them: linking looks for the texts committed before it, its own included.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        batch: int = GROUP_TEXTS,
        seconds: float = GROUP_SECONDS,
        link: Callable[[str, StoryKeys], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.batch = max(1, batch)
        self.seconds = seconds
        self.link = link
        self._waiting: list[tuple[TextRecord, Future[tuple[int, bool]]]] = []
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="catalog-texts", daemon=True)
        self._thread.start()

    def submit(self, record: TextRecord) -> Future[tuple[int, bool]]:
        future: Future[tuple[int, bool]] = Future()
        with self._wake:
            if self._closed:
                raise RuntimeError("the catalog's text recorder is closed")
            self._waiting.append((record, future))
            if len(self._waiting) in (1, self.batch):
                self._wake.notify()
        return future

    def close(self) -> None:
        """Commit what waits, then stop (every future is done when this returns)."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not self._closed:
                    self._wake.wait()
                if not self._waiting:
                    return  # closed, nothing left
                deadline = time.monotonic() + self.seconds
                while len(self._waiting) < self.batch and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._wake.wait(left)
                batch = self._waiting[: self.batch]
                del self._waiting[: self.batch]
            self._commit(batch)

    def _commit(self, batch: list[tuple[TextRecord, Future[tuple[int, bool]]]]) -> None:
        try:
            decided = self.catalog.record_texts([record for record, _future in batch])
        except Exception as exc:  # each caller decides what a failed write means
            for _record, future in batch:
                future.set_exception(exc)
            return
        for (_record, future), result in zip(batch, decided, strict=True):
            future.set_result(result)
        if self.link is None:
            return
        for (record, _future), (_version, new) in zip(batch, decided, strict=True):
            if new and record.story_keys is not None:
                try:
                    self.link(record.text_key, record.story_keys)
                except Exception as exc:  # the links are an index: reindex makes them
                    logger.warning(
                        "%s: not linked to other sites' stories: %s", record.text_key, exc
                    )


class ArchiveCatalog:
    """Keeps the catalog for one crawl: records captures, offers revisits, knows what is new.

    An article already archived is not requested again unless it is due for a revision (an
    age from ``ARCHIVE_REVISION_AGES`` passed since its first capture and it was not checked
    since) or the crawl runs with ``ARCHIVE_REFRESH`` (or the spider argument ``refresh``).
    An article whose last answer was 404 or 410 is not requested again until
    ``ARCHIVE_GONE_RECHECK_DAYS`` passed since that answer (``gone``).
    """

    def __repr__(self) -> str:  # Scrapy logs a failing signal handler by its repr: no address
        return "<ArchiveCatalog>"

    def __init__(self, config: CatalogConfig, ledger: CrawlLedger, stats: StatsCollector) -> None:
        self.config = config
        self.ledger = ledger
        self.stats = stats
        self.catalog: Catalog | None = None
        self.site = ""
        self.crawl_id = ""
        self.known: set[str] = set()
        self.due: dict[str, str] = {}  # article key -> URL, due for a revision
        # Article keys whose last answer was 404 or 410 -> True while not to be asked again
        # (their recheck interval not passed), False when this crawl asks them again.
        self.gone: dict[str, bool] = {}
        # ETag/Last-Modified of the spider's feeds, sitemaps and listings: as stored, and as
        # seen in this crawl (stored at the end only if the crawl lost nothing).
        self.validators: dict[str, tuple[str | None, str | None]] = {}
        self.seen_validators: dict[str, tuple[str | None, str | None]] = {}
        # Capture rows wait here and go to the catalog in batches (one transaction each):
        # a row per capture, one at a time, cost more than writing the WARC itself.
        self._rows: list[Capture] = []
        self._rows_lock = threading.Lock()
        self._flushed = time.monotonic()
        self.captured_keys: set[str] = set()
        self.seen_urls: set[str] = set()
        self.known_urls: set[bytes] = set()  # url_digest of the site's earlier responses
        self.sources: set[str] = set()
        self.this_crawl: dict[tuple[str, str], RevisitTarget] = {}  # (url, digest) -> response
        self._texts: dict[str, tuple[str, str, int]] = {}  # record id -> text of that capture
        self.location = ""  # the catalog's URL without its password, once open
        self.leased = False  # this crawl holds the site's lease
        # "<host>:<spool>" of a remote store's crawl: its articles' rows say where their
        # objects wait until they are stored (None: a local store, written at once).
        self.spool_place: str | None = None
        self.spool_id = ""
        self._renewal: Any = None  # the LoopingCall renewing it
        # New texts, committed a batch at a time (made at the first one).
        self.recorder: TextRecorder | None = None
        self.journal: TextJournal | None = None  # a local store's crawl: texts not committed
        self._uncommitted = 0  # texts whose commit failed (their journal stays)

    # -- the site's lease ---------------------------------------------------------------------
    async def take_lease(self, spider: Spider) -> str | None:
        """Open the catalog and take the site's lease: None when this crawl holds it, else
        one line saying who does (or that this scheduled start ran already)."""
        ledger = self.ledger
        self.site = spider.name
        self.crawl_id = ledger.crawl_id
        url = self.config.url or default_catalog_url(
            local_root(ledger.store), ledger.spool_dir, ledger.store.uri
        )
        self.location = without_password(url)
        refused: str | None = await maybe_deferred_to_future(deferToThread(self._take_lease, url))
        if refused is None:
            from twisted.internet.task import LoopingCall

            self._renewal = LoopingCall(self._renew)
            self._renewal.start(self.config.lease_ttl.total_seconds() / 3, now=False)
        return refused

    def _take_lease(self, url: str) -> str | None:
        self.catalog = Catalog(url)
        if self.ledger.remote:
            spool = self.ledger.spool_dir
            self.spool_id = spool_identity(spool)
            self.spool_place = f"{socket.gethostname()}:{spool}@{self.spool_id}"
        self.bind_store()
        result = self.catalog.take_lease(
            self.site,
            crawl_id=self.crawl_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            ttl=self.config.lease_ttl,
            start=self.config.scheduled_start,
            gone=_process_gone,
        )
        if not result.taken:
            return result.message()
        self.leased = True
        # Runs whose crawl stopped renewing its lease long ago (killed, machine lost): the
        # catalog marks them killed and logs each, as it logs a lease taken over.
        self.catalog.mark_dead_runs(self.config.lease_ttl)
        return None

    def bind_store(self) -> None:
        """The catalog describes this store (recorded at its first crawl) or no other:
        ``CatalogMismatch`` when it describes another."""
        assert self.catalog is not None
        store = self.ledger.store
        bound = self.catalog.store_binding()
        try:
            # Made at the store's first crawl, with a catalog that describes no store yet.
            store_id = store_identity(store, create=bound is None)
        except StoreError as exc:  # a remote store down (ARCHIVE_STORE_CHECK off): not known
            logger.warning("the store's identity could not be read (%s): not compared", exc)
            return
        self.catalog.check_store(store_id, store.uri, bound)
        if store_id is not None:
            self.catalog.bind_store(store_id, store.uri)

    def _renew(self) -> Any:
        def renew() -> bool:
            if self.catalog is None or not self.leased:
                return True
            self.flush()  # the rows of a quiet spell go in too
            return self.catalog.renew_lease(self.site, self.crawl_id, self.config.lease_ttl)

        def check(held: bool) -> None:
            if not held and self.leased:
                self.leased = False
                logger.error(
                    "%s: lost the site's lease (not renewed in time, taken over): stopping",
                    self.site,
                )
                self.ledger.close_spider(LEASE_LOST)

        def failed(failure: Any) -> None:  # a catalog that does not answer: tried again
            logger.warning("%s: the lease could not be renewed: %s", self.site, failure.value)

        return deferToThread(renew).addCallbacks(check, failed)

    def _release(self) -> None:
        if self._renewal is not None and self._renewal.running:
            from twisted.internet import reactor

            reactor.callFromThread(self._renewal.stop)
        if self.catalog is not None and self.leased:
            self.leased = False
            try:
                self.catalog.release_lease(self.site, self.crawl_id)
            except Exception as exc:  # a full disk, a catalog gone: it expires by itself
                logger.warning(
                    "%s: the site's lease could not be released (%s); it expires in %s",
                    self.site,
                    str(exc).splitlines()[0],
                    self.config.lease_ttl,
                )

    async def spider_opened(self, spider: Spider) -> None:
        ledger = self.ledger
        url = self.config.url or default_catalog_url(
            local_root(ledger.store), ledger.spool_dir, ledger.store.uri
        )
        sources = [
            *getattr(spider, "feeds", ()),
            *getattr(spider, "sitemaps", ()),
            *getattr(spider, "listings", ()),
        ]
        self.sources = set(sources)
        await maybe_deferred_to_future(
            deferToThread(self._open, url, sources, ledger.adopted_sidecars)
        )
        logger.info(
            "catalog %s: %d articles of %s known, %d due for revision, %d gone (404/410; "
            "%d of them asked again now)",
            self.location,
            len(self.known),
            self.site,
            len(self.due),
            len(self.gone),
            sum(1 for resting in self.gone.values() if not resting),
            extra={"spider": spider},
        )

    def _open(self, url: str, sources: list[str], adopted: list[dict[str, Any]]) -> None:
        if self.catalog is None:
            self.catalog = Catalog(url)
        for sidecar in adopted:
            self._record_adopted(sidecar)
        if not self.ledger.remote:
            self.adopt_pending()
            folder = self.ledger.spool_dir / PENDING_TEXTS / self.site
            self.journal = TextJournal(folder / f"{self.crawl_id}.keys")
        self.known = self.catalog.known_keys(self.site)
        self.known_urls = self.catalog.captured_urls(self.site)
        self._warn_older_story_keys()
        if not self.config.refresh:
            self.validators = self.catalog.get_validators(sources)
        now = datetime.now(UTC)
        # Gone until a recheck interval after its last 404/410; ARCHIVE_REFRESH asks them all.
        recheck = self.config.gone_recheck
        rested = iso(now - recheck)
        self.gone = {
            key: bool(recheck) and not self.config.refresh and at > rested
            for key, at in self.catalog.gone_keys(self.site).items()
        }
        if self.config.revision_ages:
            # An archived article the site removed is not due before its recheck either.
            self.due = {
                a.article_key: a.url
                for a in self.catalog.due_for_revision(self.site, now, self.config.revision_ages)
                if not self.gone.get(a.article_key)
            }

    def _warn_older_story_keys(self) -> None:
        """Say so when the site's texts carry story keys of another scheme than this code
        makes: new texts are not linked to those until ``newsarchive reindex`` remakes them."""
        from crawler.catalog.stories import latest_scheme
        from crawler.text.similar import SIGNATURE_VERSION

        assert self.catalog is not None
        try:
            scheme = latest_scheme(self.catalog, self.site)
        except Exception as exc:  # a look only: the crawl does not depend on it
            logger.debug("%s: the story keys' scheme was not read: %s", self.site, exc)
            return
        if scheme is not None and scheme != SIGNATURE_VERSION:
            logger.warning(
                "catalog %s: %s's texts carry story keys of the scheme %s, and this version "
                "makes %s: new texts are not linked to the same story in older texts until "
                "`newsarchive reindex` remakes their keys",
                self.location,
                self.site,
                scheme,
                SIGNATURE_VERSION,
            )

    def adopt_pending(self) -> None:
        """The texts killed crawls of this site wrote to the local store and may not have
        committed to the catalog (their journals): recorded now, from the store, once. Only
        the crawl holding the site's lease runs this, so no journal read is a live crawl's."""
        store = self.ledger.store
        folder = self.ledger.spool_dir / PENDING_TEXTS / self.site
        for path in sorted(folder.glob("*.keys")) if folder.is_dir() else []:
            if path.stem == self.crawl_id:
                continue
            keys = dict.fromkeys(path.read_text("utf-8", "surrogateescape").split("\n"))
            found = 0
            for key in filter(None, keys):
                try:
                    sidecar = json.loads(store.get_bytes(sidecar_key(key)))
                    sidecar[SPOOLED_TEXT] = store.get_bytes(key).decode("utf-8", "replace")
                except (OSError, StoreError, ValueError):
                    continue  # never written whole: no text of the archive
                if isinstance(sidecar, dict):
                    self._record_adopted(sidecar)
                    found += 1
            logger.info(
                "%d texts crawl %s wrote are recorded in the catalog now (if they were not)",
                found,
                path.stem,
            )
            path.unlink()

    def _record_adopted(self, sidecar: dict[str, Any]) -> None:
        """An article a killed crawl kept but may not have recorded: recorded now, once."""
        assert self.catalog is not None
        try:
            when = datetime.fromisoformat(str(sidecar.get("capture_time") or sidecar["crawl_time"]))
            self.catalog.record_text(
                TextRecord(
                    site=str(sidecar["site"]),
                    article_key=str(sidecar["article_id"]),
                    url=str(sidecar["url"]),
                    capture_time=iso(when),
                    text_digest=str(sidecar["text_digest"]),
                    text_key=str(sidecar["text_key"]),
                    title=sidecar.get("title"),
                    published=sidecar.get("published"),
                    body=sidecar.get(SPOOLED_TEXT),
                    facts=TextFacts.of_sidecar(sidecar),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("a sidecar left by a killed crawl was not recorded: %s", exc)

    @property
    def waits_in(self) -> str | None:
        """What an article row of this crawl says of where its objects wait, if anywhere."""
        return None if self.spool_place is None else f"{self.spool_place}#{self.crawl_id}"

    def text_written(self, text_key: str) -> None:
        """A new text is in the local store: journaled until the catalog commits it."""
        if self.journal is not None:
            try:
                self.journal.add(text_key)
            except OSError as exc:  # a full disk: the text is kept, the crawl stops on it
                logger.warning("%s: not journaled until committed: %s", text_key, exc)

    def record_new_text(self, record: TextRecord) -> Future[tuple[int, bool]]:
        """Record a new text with the crawl's other new texts (group commit, see
        :class:`TextRecorder`): its future is done once the catalog has it, and once
        committed, a text with story keys is linked to other sites' stories."""
        assert self.catalog is not None
        with self._rows_lock:
            if self.recorder is None:
                self.recorder = TextRecorder(
                    self.catalog, batch=GROUP_TEXTS, seconds=GROUP_SECONDS, link=self._link_story
                )
            recorder = self.recorder
        future = recorder.submit(record)
        future.add_done_callback(self._count_uncommitted)
        return future

    def _link_story(self, key: str, keys: StoryKeys) -> None:
        """Link a new text, committed with its story keys, to the same story on other sites.
        A failure loses no text: ``newsarchive reindex`` links it."""
        from crawler.access.stories import link_recorded

        assert self.catalog is not None
        try:
            link_recorded(self.catalog, key, keys)
        except Exception as exc:  # the links are an index: the archive is whole without them
            logger.warning("%s: not linked to other sites' stories (reindex will): %s", key, exc)

    def _count_uncommitted(self, future: Future[tuple[int, bool]]) -> None:
        if future.exception() is not None:
            with self._rows_lock:
                self._uncommitted += 1

    def close(self) -> None:
        if self.catalog is None:
            return
        try:
            if self.recorder is not None:
                self.recorder.close()  # the texts still waiting go in first
            if self.journal is not None:
                self.journal.close(committed=not self._uncommitted)
            self.flush()
            if self.seen_validators and self._lost_nothing():
                self.catalog.set_validators(self.seen_validators, iso(datetime.now(UTC)))
        except CatalogWriteError as exc:
            # A local catalog on a full disk, a shared one gone: a failed write like any
            # other (after the crawl stopped for one, the same cause again, not a new error).
            raise OSError(f"the catalog {self.location}: {exc}") from exc
        finally:
            self._release()

    def uploads_done(self) -> None:
        """Every upload of the crawl finished (or was spooled): the articles whose objects
        are all in the store now, this crawl's and those of earlier crawls of this spool the
        backlog drain sent, no longer say they wait."""
        if self.catalog is None:
            return
        try:
            if self.spool_place is not None:
                settled = self.catalog.settle_waits(
                    self.spool_id, waiting_crawls(self.ledger.spool_dir)
                )
                if settled:
                    logger.info("%d archived articles are in the store now", settled)
        except Exception as exc:  # the catalog gone: the rows still say where they wait
            logger.warning("the catalog could not be told what is stored now: %s", exc)
        finally:
            self.catalog.close()

    def _lost_nothing(self) -> bool:
        """Whether every article this crawl found was archived: only then may the next crawl
        be told "not modified" for the sources that listed them."""
        stats = self.stats
        if stats.get_value("finish_reason") != "finished":
            return False
        if stats.get_value("archive/articles/failed") or stats.get_value(
            "downloader/exception_count"
        ):
            return False
        return not any(
            k.startswith(("archive/skipped/download-error", "archive/skipped/http-status"))
            for k in stats.get_stats()
        )

    # -- decisions ----------------------------------------------------------------------------
    def wanted(self, article_key: str) -> bool:
        return self.config.refresh or article_key not in self.known or article_key in self.due

    def revisit_target(
        self, url: str, payload_digest: str, article_key: str | None = None
    ) -> RevisitTarget | None:
        if self.catalog is None:
            return None
        # Ask the database only where an earlier capture can exist: an archived article, a
        # URL already captured in this crawl or in an earlier one of the site (their digests
        # are read at the start), or one of the spider's sources. Any other page is new: no
        # query per page on the reactor thread.
        if article_key is not None:
            if article_key not in self.known and article_key not in self.captured_keys:
                return None
        elif (
            url not in self.seen_urls
            and url not in self.sources
            and url_digest(url) not in self.known_urls
        ):
            return None
        # This crawl's captures first: their rows may still wait for their batch.
        if (here := self.this_crawl.get((url, payload_digest))) is not None:
            return here
        earlier = self.catalog.payload_capture(url, payload_digest)
        if earlier is None:
            return None
        return RevisitTarget(
            earlier.record_id, earlier.url, earlier.warc_date or earlier.capture_time
        )

    # -- recording ----------------------------------------------------------------------------
    def captured(self, info: CaptureInfo, exchange: Exchange) -> None:
        key = exchange.article_key
        status = exchange.status
        # A challenge page is no capture of the page it stood in front of.
        challenge = bool(exchange.warc_fields and CHALLENGE_FIELD in exchange.warc_fields)
        record_type = CHALLENGE_RECORD if challenge else info.record_type

        def record(future: Future[list[RecordLocation]]) -> None:
            if future.exception() is not None or self.catalog is None:
                return  # the capture module counts and logs failed writes
            location = future.result()[0]
            self._queue(
                Capture(
                    record_id=info.record_id,
                    crawl_id=self.crawl_id,
                    site=self.site,
                    url=info.target_uri,
                    article_key=key,
                    capture_time=_catalog_time(info.date),
                    warc_date=info.date,
                    status=status,
                    record_type=record_type,
                    payload_digest=info.payload_digest,
                    warc_key=warc_key(self.site, location.filename),
                    warc_offset=location.offset,
                    warc_length=location.length,
                )
            )

        if key is not None:
            self.captured_keys.add(key)
        self.seen_urls.add(info.target_uri)
        if record_type == "response" and info.payload_digest:
            self.this_crawl.setdefault(
                (info.target_uri, info.payload_digest),
                RevisitTarget(info.record_id, info.target_uri, info.date),
            )
        info.future.add_done_callback(record)

    def _queue(self, row: Capture) -> None:
        # Rows go in by batch, and at least every FLUSH_SECONDS: a crawl killed now loses
        # the rows of its last seconds at most (the next crawl's recovery adds them).
        with self._rows_lock:
            self._rows.append(row)
            now = time.monotonic()
            if len(self._rows) < BATCH and now - self._flushed < FLUSH_SECONDS:
                return
            self._flushed = now
            rows, self._rows = self._rows, []
        self._flush(rows)

    def recovered_file(self, site: str, crawl_id: str, key: str, path: Path) -> None:
        """A WARC file a killed crawl left, repaired: its captures the catalog lacks (the rows
        that crawl had not written yet) are recorded now, pointing into the stored file."""
        if self.catalog is None:
            return
        from crawler.access.indexes import capture_of, is_capture
        from crawler.access.records import index_warc

        with path.open("rb") as fh:
            entries, _ = index_warc(fh, key)
        rows = [capture_of(e, site, crawl_id) for e in entries if is_capture(e)]
        added = self.catalog.add_captures(rows)
        logger.info(
            "%s (left by crawl %s): %d of its %d captures recorded now",
            key,
            crawl_id,
            added,
            len(rows),
        )

    def article(self, site: str, article_key: str) -> ArchivedArticle | None:
        return None if self.catalog is None else self.catalog.article(site, article_key)

    def capture_text(self, record_id: str, text_digest: str, text_key: str, version: int) -> None:
        """The text written for a capture: joins its row when the batch goes in."""
        with self._rows_lock:
            self._texts[record_id] = (text_digest, text_key, version)

    def _flush(self, rows: list[Capture]) -> None:
        if self.catalog is None:
            return
        with self._rows_lock:
            texts = dict(self._texts)
        done: set[str] = set()
        if rows:
            joined = []
            for row in rows:
                text = texts.pop(row.record_id, None)
                if text is not None:
                    row = dataclasses.replace(
                        row, text_digest=text[0], text_key=text[1], version=text[2]
                    )
                    done.add(row.record_id)
                joined.append(row)
            self.catalog.add_captures(joined)
        # Only the texts joined here are done: one that came for these rows after the copy
        # above joins them at the next flush (dropping it left the capture without its text).
        if texts:
            # Texts of captures recorded by an earlier batch; the rest wait for theirs.
            done |= self.catalog.set_capture_texts(texts)
        with self._rows_lock:
            for record_id in done:
                self._texts.pop(record_id, None)

    def flush(self) -> None:
        """Write the waiting capture rows now (at close; the pipeline before it reads)."""
        with self._rows_lock:
            rows, self._rows = self._rows, []
        self._flush(rows)


def when_done(future: Future[Any]) -> Any:
    """A Deferred fired on the reactor thread with a future's result (or error), however the
    thread that completes it."""
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    fired: Deferred[Any] = Deferred()

    def done(finished: Future[Any]) -> None:
        error = finished.exception()
        if error is not None:
            reactor.callFromThread(fired.errback, error)
        else:
            reactor.callFromThread(fired.callback, finished.result())

    future.add_done_callback(done)
    return fired


def _process_gone(lease: Lease) -> bool:
    """A holder on this host whose process no longer exists (killed -9, crashed): its
    lease is taken over now, not when it expires. Host names must tell machines apart."""
    if lease.host != socket.gethostname() or lease.pid <= 0 or lease.pid == os.getpid():
        return False
    try:
        os.kill(lease.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: alive
        return False
    return False


def _catalog_time(warc_date: str) -> str:
    # WARC-Date may carry microseconds; the catalog keeps seconds.
    return warc_date[:19] + "Z"


def catalog_mismatch(catalog_url: str, store: Any) -> str | None:
    """One line when the catalog at ``catalog_url`` describes another store than ``store``
    (checked before a crawl starts; a catalog not made yet describes none)."""
    if (
        catalog_url.startswith("sqlite:///")
        and not Path(catalog_url.removeprefix("sqlite:///")).exists()
    ):
        return None
    catalog = Catalog(catalog_url)
    try:
        if catalog.store_binding() is not None:
            catalog.check_store(store_identity(store, create=False), store.uri)
    except CatalogMismatch as exc:
        return str(exc)
    finally:
        catalog.close()
    return None
