"""Article pipeline: extract the cleaned text, write .txt + .json sidecar and the WARC records."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self

from scrapy.exceptions import DropItem, NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from crawler.access.stories import link_text
from crawler.capture.exchange import CaptureInfo, article_records
from crawler.capture.session import CaptureSession
from crawler.catalog.db import Catalog, CatalogWriteError, TextFacts, decide_version, iso
from crawler.constants import (
    STATS_ARTICLES_FAILED,
    STATS_ARTICLES_FAILED_REASON,
    STATS_ARTICLES_NEW,
    STATS_ARTICLES_NO_TITLE,
    STATS_ARTICLES_REVISED,
    STATS_ARTICLES_UNCHANGED,
    STATS_TEXT_BYTES,
)
from crawler.crawl.archive import ArchiveCrawl
from crawler.crawl.catalog import ArchiveCatalog
from crawler.crawl.config import TextConfig
from crawler.crawl.items import ArticlePage
from crawler.crawl.ledger import CrawlLedger
from crawler.crawl.report import FailedUrl
from crawler.crawl.sidecar import text_sidecar
from crawler.layout import sidecar_key, text_key, warc_key
from crawler.text.extract import Article, ExtractionError, SiteRules, extract_article
from crawler.util import json_bytes

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


def _link_story(catalog: Catalog, key: str) -> None:
    """Link a new text to the same story on other sites. A failure loses no text: the text
    stays without story keys, and ``newsarchive reindex`` links it."""
    try:
        text_id = catalog.text_id(key)
        if text_id is not None:
            link_text(catalog, text_id)
    except Exception as exc:  # the links are an index: the archive is whole without them
        logger.warning("%s: not linked to other sites' stories (reindex will): %s", key, exc)


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

        return await maybe_deferred_to_future(
            deferToThreadPool(reactor, self._pool, self.archive_article, item, rules)
        )

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

    def archive_article(self, item: ArticlePage, rules: SiteRules | None) -> dict[str, Any]:
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
        if catalog_ext is not None:
            try:
                self._record(catalog_ext, item, sidecar, capture, version, key, date, text)
            except CatalogWriteError as exc:
                # A local catalog on a full disk, or a shared one gone: the text is kept (the
                # next crawl adopts what the catalog does not know), the crawl stops.
                ledger.storage_failed(
                    f"recording {key} in the catalog {catalog_ext.location}", OSError(str(exc))
                )
                raise self.fail(item, "storage-failed", str(exc)) from exc
        ledger.release(held)
        stats.inc_value(STATS_ARTICLES_NEW if current is None else STATS_ARTICLES_REVISED)
        if not article.title:
            stats.inc_value(STATS_ARTICLES_NO_TITLE)
        stats.inc_value(STATS_TEXT_BYTES, len(text))
        return sidecar

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
    ) -> None:
        """Record the text's version (``text``: a new text, which the search index gets)."""
        when = date[:19] + "Z" if capture is not None else iso(datetime.fromisoformat(date))
        catalog = catalog_ext.catalog
        assert catalog is not None
        _version, new = catalog.record_text(
            site=item.site,
            article_key=item.article_id,
            url=item.url,
            capture_time=when,
            text_digest=sidecar["text_digest"],
            text_key=key,
            title=sidecar["title"],
            published=sidecar["published"],
            waits_in=catalog_ext.waits_in,
            body=None if text is None else text.decode("utf-8", "replace"),
            facts=TextFacts.of_sidecar(sidecar),
        )
        if capture is not None:
            catalog_ext.capture_text(capture.record_id, sidecar["text_digest"], key, version)
        if new and text is not None:
            _link_story(catalog, key)

    def sidecar(
        self,
        item: ArticlePage,
        article: Article,
        text: bytes,
        ledger: CrawlLedger,
        rules: SiteRules | None = None,
    ) -> dict[str, Any]:
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
