"""Incremental crawling: the catalog records every capture and decides what is fetched again."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
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
    Lease,
    TextFacts,
    iso,
    url_digest,
)
from crawler.constants import CHALLENGE_FIELD, CHALLENGE_RECORD
from crawler.crawl.config import CatalogConfig
from crawler.crawl.ledger import CrawlLedger
from crawler.layout import default_catalog_url, warc_key
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


class ArchiveCatalog:
    """Keeps the catalog for one crawl: records captures, offers revisits, knows what is new.

    An article already archived is not requested again unless it is due for a revision (an
    age from ``ARCHIVE_REVISION_AGES`` passed since its first capture and it was not checked
    since) or the crawl runs with ``ARCHIVE_REFRESH`` (or the spider argument ``refresh``).
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
            "catalog %s: %d articles of %s known, %d due for revision",
            self.location,
            len(self.known),
            self.site,
            len(self.due),
            extra={"spider": spider},
        )

    def _open(self, url: str, sources: list[str], adopted: list[dict[str, Any]]) -> None:
        if self.catalog is None:
            self.catalog = Catalog(url)
        for sidecar in adopted:
            self._record_adopted(sidecar)
        self.known = self.catalog.known_keys(self.site)
        self.known_urls = self.catalog.captured_urls(self.site)
        if not self.config.refresh:
            self.validators = self.catalog.get_validators(sources)
        if self.config.revision_ages:
            now = datetime.now(UTC)
            self.due = {
                a.article_key: a.url
                for a in self.catalog.due_for_revision(self.site, now, self.config.revision_ages)
            }

    def _record_adopted(self, sidecar: dict[str, Any]) -> None:
        """An article a killed crawl kept but may not have recorded: recorded now, once."""
        assert self.catalog is not None
        try:
            when = datetime.fromisoformat(str(sidecar.get("capture_time") or sidecar["crawl_time"]))
            self.catalog.record_text(
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
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("a sidecar left by a killed crawl was not recorded: %s", exc)

    @property
    def waits_in(self) -> str | None:
        """What an article row of this crawl says of where its objects wait, if anywhere."""
        return None if self.spool_place is None else f"{self.spool_place}#{self.crawl_id}"

    def close(self) -> None:
        if self.catalog is None:
            return
        try:
            self.flush()
            if self.seen_validators and self._lost_nothing():
                self.catalog.set_validators(self.seen_validators, iso(datetime.now(UTC)))
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
