"""Article pipeline: extract the cleaned text, write .txt + .json sidecar and the WARC records."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self

from scrapy.exceptions import DropItem, NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from crawler.capture.exchange import CaptureInfo, article_records
from crawler.capture.session import CaptureSession
from crawler.catalog.db import (
    CatalogWriteError,
    StoryKeys,
    TextFacts,
    TextRecord,
    decide_version,
    iso,
)
from crawler.constants import (
    STATS_ARTICLES_DEGENERATE,
    STATS_ARTICLES_FAILED,
    STATS_ARTICLES_FAILED_REASON,
    STATS_ARTICLES_NEW,
    STATS_ARTICLES_NO_TITLE,
    STATS_ARTICLES_REVISED,
    STATS_ARTICLES_UNCHANGED,
    STATS_TEXT_BYTES,
    STATS_TEXT_DECODING_SUSPECT,
)
from crawler.crawl.archive import ArchiveCrawl
from crawler.crawl.catalog import ArchiveCatalog, when_done
from crawler.crawl.config import TextConfig
from crawler.crawl.items import ArticlePage
from crawler.crawl.ledger import CrawlLedger
from crawler.crawl.report import FailedUrl
from crawler.crawl.sidecar import text_sidecar
from crawler.layout import flagged_text_key, sidecar_key, text_key, warc_key
from crawler.text.extract import Article, ExtractionError, SiteRules, extract_article
from crawler.text.quality import DEGENERATE, DegenerateGuard
from crawler.util import json_bytes

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


def _story_keys(key: str, body: str) -> StoryKeys | None:
    """A new text's story keys, stored with its version (one commit for both); None if they
    cannot be made: the text is recorded without them, and ``newsarchive reindex`` links it."""
    # Imported at the first text: numpy and the MinHash, which a crawl without text (or a
    # refused one) never needs.
    try:
        from crawler.access.stories import story_keys

        return story_keys(body)
    except Exception as exc:  # the links are an index: the archive is whole without them
        logger.warning("%s: not linked to other sites' stories (reindex will): %s", key, exc)
        return None


class ArticlePipeline:
    """Turns an ``ArticlePage`` into archived text, sidecar and WARC conversion/metadata records.

    Extraction and writing ledger in a worker thread; a page that is not an article (no body,
    not HTML) is dropped with a counted reason and listed in the crawl report.
    """

    def __repr__(self) -> str:  # Scrapy logs a failing signal handler by its repr: no address
        return "<ArticlePipeline>"

    def __init__(
        self,
        config: TextConfig,
        crawler: Crawler,
        ledger: CrawlLedger,
        capture: CaptureSession | None = None,
        catalog: ArchiveCatalog | None = None,
    ) -> None:
        self.config = config
        self.crawler = crawler
        self.ledger = ledger
        self.capture = capture
        self.catalog = catalog
        # A pool of its own: extraction is CPU-bound Python, and on Twisted's shared 10-thread
        # pool the threads fight over the GIL (+65 % CPU per page measured with 10 vs 1).
        self._pool = ThreadPool(minthreads=1, maxthreads=config.workers, name="archive-text")
        # The degenerate-text rule with each site's usual size, from the catalog once.
        self.guard = DegenerateGuard(config.limits, self._text_lengths)

    def open_spider(self) -> None:
        from twisted.internet import reactor

        self._pool.start()
        # Its threads are no daemons: a crawl stopped before its spider closes (SIGTERM while
        # it opens) must still stop them, or the process never exits. Twisted's own pool is
        # stopped the same way.
        reactor.addSystemEventTrigger("during", "shutdown", self._stop_pool)  # type: ignore[arg-type]

    def close_spider(self) -> None:
        self._stop_pool()

    def _stop_pool(self) -> None:
        if self._pool.started:
            self._pool.stop()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        root = ArchiveCrawl.of(crawler)
        if root.config.text is None:
            raise NotConfigured("ARCHIVE_TEXT_ENABLED is off")
        return cls(root.config.text, crawler, root.ledger, root.capture_session, root.catalog)

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, ArticlePage):
            return item
        spider = self.crawler.spider
        rules: SiteRules | None = getattr(spider, "rules", None)
        from twisted.internet import reactor

        done = await maybe_deferred_to_future(
            deferToThreadPool(reactor, self._pool, self.archive_or_fail, item, rules)
        )
        if isinstance(done, Future):  # a new text waiting for its group commit
            done = await maybe_deferred_to_future(when_done(done))
        return done

    def archive_or_fail(
        self, item: ArticlePage, rules: SiteRules | None
    ) -> dict[str, Any] | Future[dict[str, Any]]:
        """:meth:`archive_article`, with any error it did not expect counted and named as the
        article's failure (``internal-error``, the exception, the URL): the report and the
        site's health see it, where Scrapy alone would only log it and the crawl would end
        "ok" with nothing archived. Its text, if already kept, is adopted by the next crawl."""
        try:
            return self.archive_article(item, rules)
        except DropItem:
            raise
        except Exception as exc:
            logger.error("%s: archiving the article failed", item.url, exc_info=True)
            raise self.fail(item, "internal-error", f"{type(exc).__name__}: {exc}") from exc

    def fail(self, item: ArticlePage, reason: str, detail: str) -> DropItem:
        stats = self.crawler.stats
        assert stats is not None
        stats.inc_value(STATS_ARTICLES_FAILED)
        stats.inc_value(STATS_ARTICLES_FAILED_REASON.format(reason=reason))
        # Writing failed (the WARC, the spool, the catalog): the page itself was fine.
        stage = "store" if reason in ("warc-write-failed", "storage-failed") else "text"
        self.ledger.add_failure(
            FailedUrl(item.url, stage, reason, status=item.status, error=detail)
        )
        return DropItem(f"article not archived ({reason}): {item.url} {detail}".rstrip())

    def archive_article(
        self, item: ArticlePage, rules: SiteRules | None
    ) -> dict[str, Any] | Future[dict[str, Any]]:
        """The article's archived sidecar, or its future while the catalog's group commit
        of its text is to come."""
        ledger = self.ledger
        capture_session = self.capture
        catalog_ext = self.catalog
        try:
            article = extract_article(item.html, item.url, rules, mode=self.config.mode)
        except ExtractionError as exc:
            raise self.fail(item, exc.reason, str(exc)) from exc
        text = article.text.encode("utf-8")
        capture: CaptureInfo | None = item.capture
        sidecar = self.sidecar(item, article, text, ledger, rules)
        location = None
        if capture is not None:
            try:
                location = capture.location()
            except Exception as exc:
                raise self.fail(item, "warc-write-failed", str(exc)) from exc
            sidecar["capture_time"] = capture.date
            sidecar["payload_digest"] = capture.payload_digest
            sidecar["warc"] = {
                "file": location.filename,
                "key": warc_key(item.site, location.filename),
                "offset": location.offset,
                "length": location.length,
                "record_id": location.record_id,
                "record_type": capture.record_type,
            }
            if capture.rendered_dom is not None:
                sidecar["warc"]["rendered_dom_record_id"] = capture.rendered_dom
        date = sidecar.get("capture_time") or sidecar["crawl_time"]
        if catalog_ext is not None and catalog_ext.catalog is None:
            catalog_ext = None  # switched on but not open: nothing to record into
        flaw = self.guard.check(item.site, article)
        if flaw is not None:
            raise self.keep_degenerate(item, sidecar, text, date, flaw)
        current = None
        if catalog_ext is not None and item.article_id in catalog_ext.known:
            # Only an article the catalog had at the start can have an archived version.
            current = catalog_ext.article(item.site, item.article_id)
        decision = decide_version(current, sidecar["text_digest"])
        stats = self.crawler.stats
        assert stats is not None
        if catalog_ext is not None and current is not None and not decision.new:
            # The same text as the archived version: only the check is recorded (the WARC has
            # the new capture, as a revisit when the payload is identical too).
            self._record(
                catalog_ext,
                item,
                sidecar,
                capture,
                current.version,
                current.text_key,
                date,
                None,
            )
            stats.inc_value(STATS_ARTICLES_UNCHANGED)
            return {
                "url": item.url,
                "article_id": item.article_id,
                "unchanged": True,
                "version": current.version,
                "text_key": current.text_key,
            }
        version = decision.version
        sidecar["version"] = version
        if current is not None:
            sidecar["previous_version"] = {
                "version": current.version,
                "text_key": current.text_key,
                "text_digest": current.text_digest,
            }
        if capture is not None and capture_session is not None and capture_session.writer:
            records = article_records(
                capture_session.builder, capture, text, self.metadata_fields(item)
            )
            capture_session.submit(records)
            sidecar["conversion_record_id"] = records[0].record_id
            sidecar["metadata_record_id"] = records[1].record_id
        key = text_key(item.site, item.article_id, date, version)
        sidecar["text_key"] = key
        # Text and sidecar safe in the spool (or the store) first, then the catalog: an article
        # counts as archived once its text is kept; only then do they go up to a remote store.
        if catalog_ext is not None:
            # Journaled before it is written: a kill from here on leaves the key for the next
            # crawl to adopt (a key whose text never landed whole is passed over then).
            catalog_ext.text_written(key)
        try:
            held = [
                ledger.queue_bytes(key, text, hold=True),
                ledger.queue_bytes(sidecar_key(key), json_bytes(sidecar), hold=True),
            ]
        except OSError as exc:
            # Disk full or read-only: nothing more can be kept, the crawl stops.
            where = f"the spool {ledger.spool_dir}" if ledger.remote else ledger.store.uri
            ledger.storage_failed(f"writing {key} into {where}", exc)
            raise self.fail(item, "storage-failed", str(exc)) from exc

        def archived() -> dict[str, Any]:  # the catalog has the text (if there is one)
            ledger.release(held)
            stats.inc_value(STATS_ARTICLES_NEW if current is None else STATS_ARTICLES_REVISED)
            if not article.title:
                stats.inc_value(STATS_ARTICLES_NO_TITLE)
            stats.inc_value(STATS_TEXT_BYTES, len(text))
            return sidecar

        if catalog_ext is not None:
            try:
                recording = self._record(
                    catalog_ext, item, sidecar, capture, version, key, date, text
                )
            except CatalogWriteError as exc:
                raise self.catalog_failed(item, catalog_ext, key, exc) from exc
            if recording is not None:
                return self.after_commit(recording, item, catalog_ext, key, archived)
        return archived()

    def catalog_failed(
        self, item: ArticlePage, catalog_ext: ArchiveCatalog, key: str, exc: Exception
    ) -> DropItem:
        """A local catalog on a full disk, or a shared one gone: the text is kept (the next
        crawl adopts what the catalog does not know), the crawl stops."""
        self.ledger.storage_failed(
            f"recording {key} in the catalog {catalog_ext.location}", OSError(str(exc))
        )
        return self.fail(item, "storage-failed", str(exc))

    def after_commit(
        self,
        recording: Future[tuple[int, bool]],
        item: ArticlePage,
        catalog_ext: ArchiveCatalog,
        key: str,
        archived: Callable[[], dict[str, Any]],
    ) -> Future[dict[str, Any]]:
        """The article's sidecar once its text's batch is committed (its held files released
        then, as ``archive_or_fail`` would fail it if the write failed)."""
        result: Future[dict[str, Any]] = Future()

        def finish(done: Future[tuple[int, bool]]) -> None:
            try:
                try:
                    done.result()
                except CatalogWriteError as exc:
                    raise self.catalog_failed(item, catalog_ext, key, exc) from exc
                result.set_result(archived())
            except DropItem as exc:
                result.set_exception(exc)
            except Exception as exc:
                logger.error("%s: archiving the article failed", item.url, exc_info=True)
                failed = self.fail(item, "internal-error", f"{type(exc).__name__}: {exc}")
                result.set_exception(failed)

        recording.add_done_callback(finish)
        return result

    def _text_lengths(self, site: str, limit: int) -> list[int]:
        """The body lengths of the site's latest texts (the guard's usual size), if the
        catalog is open; a catalog gone is a LookupError: the floor still holds."""
        catalog = self.catalog.catalog if self.catalog is not None else None
        if catalog is None:
            return []
        try:
            return catalog.text_lengths(site, limit)
        except CatalogWriteError as exc:
            raise LookupError(str(exc)) from exc

    def keep_degenerate(
        self, item: ArticlePage, sidecar: dict[str, Any], text: bytes, date: str, flaw: str
    ) -> DropItem:
        """A degenerate text: kept under ``flagged/`` with its sidecar (``quality``:
        ``degenerate``), never a version, no conversion record, nothing in the catalog's
        texts (search, export, get and diff never see it, and the article stays due, so the
        next crawl fetches it again); counted and listed in the report as ``degenerate``."""
        ledger = self.ledger
        key = flagged_text_key(item.site, item.article_id, date, ledger.crawl_id)
        sidecar.update(quality=DEGENERATE, quality_reason=flaw, version=None, text_key=key)
        try:
            ledger.queue_bytes(key, text)
            ledger.queue_bytes(sidecar_key(key), json_bytes(sidecar))
        except OSError as exc:
            where = f"the spool {ledger.spool_dir}" if ledger.remote else ledger.store.uri
            ledger.storage_failed(f"writing {key} into {where}", exc)
            return self.fail(item, "storage-failed", str(exc))
        stats = self.crawler.stats
        assert stats is not None
        stats.inc_value(STATS_ARTICLES_DEGENERATE)
        return self.fail(item, DEGENERATE, f"{flaw}; kept as {key}")

    @staticmethod
    def _record(
        catalog_ext: ArchiveCatalog,
        item: ArticlePage,
        sidecar: dict[str, Any],
        capture: CaptureInfo | None,
        version: int,
        key: str,
        date: str,
        text: bytes | None,
    ) -> Future[tuple[int, bool]] | None:
        """Record the text's version (``text``: a new text, which the search index gets, and
        which is committed with others: its future, done once it is in the catalog)."""
        when = date[:19] + "Z" if capture is not None else iso(datetime.fromisoformat(date))
        catalog = catalog_ext.catalog
        assert catalog is not None
        body = None if text is None else text.decode("utf-8", "replace")
        keys = None if body is None else _story_keys(key, body)
        record = TextRecord(
            site=item.site,
            article_key=item.article_id,
            url=item.url,
            capture_time=when,
            text_digest=sidecar["text_digest"],
            text_key=key,
            title=sidecar["title"],
            published=sidecar["published"],
            waits_in=catalog_ext.waits_in,
            body=body,
            facts=TextFacts.of_sidecar(sidecar),
            story_keys=keys,
        )
        if body is None:
            catalog.record_text(record)
            if capture is not None:
                catalog_ext.capture_text(capture.record_id, sidecar["text_digest"], key, version)
            return None
        recording = catalog_ext.record_new_text(record)
        if capture is not None:
            record_id, digest = capture.record_id, sidecar["text_digest"]

            def joined(done: Future[tuple[int, bool]]) -> None:
                if done.exception() is None:
                    catalog_ext.capture_text(record_id, digest, key, version)

            recording.add_done_callback(joined)
        return recording

    def sidecar(
        self,
        item: ArticlePage,
        article: Article,
        text: bytes,
        ledger: CrawlLedger,
        rules: SiteRules | None = None,
    ) -> dict[str, Any]:
        if item.decoding is not None and item.decoding.suspect:
            stats = self.crawler.stats
            assert stats is not None
            stats.inc_value(STATS_TEXT_DECODING_SUSPECT)
        return text_sidecar(
            article,
            text,
            url=item.url,
            request_url=item.request_url,
            site=item.site,
            article_id=item.article_id,
            status=item.status,
            encoding=item.encoding,
            discovery=item.discovery,
            crawl_id=ledger.crawl_id,
            crawl_time=ledger.started_at.isoformat(),
            text_mode=self.config.mode,
            rules=rules,
            decoding=item.decoding,
        )

    @staticmethod
    def metadata_fields(item: ArticlePage) -> dict[str, str | list[str]]:
        fields: dict[str, str | list[str]] = {
            "article-id": item.article_id,
            "site": item.site,
        }
        if item.request_url != item.url:
            fields["request-url"] = item.request_url
        via = [json.dumps(d, ensure_ascii=False, sort_keys=True) for d in item.discovery]
        if via:
            fields["discovered-via"] = via
        return fields
