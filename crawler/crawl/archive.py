"""The composition root of a crawl: one parse of the settings, every component built here.

``ArchiveCrawl`` is the one archive extension the add-on enables. It parses every ARCHIVE_*
setting once (``ArchiveConfig``; a bad value stops the crawl before it starts), opens the
store and builds the crawl's components, handing each its collaborators in its constructor:
the ledger's bookkeeping is the capture's sink, the catalog is the capture's revisit lookup and
listener, the indexes read through both. Scrapy builds the pipeline and middlewares itself;
their ``from_crawler`` takes what they need from here (``ArchiveCrawl.of(crawler)``).
"""

from __future__ import annotations

import gc
import logging
import socket
from typing import TYPE_CHECKING, Self

from scrapy import signals
from scrapy.exceptions import NotConfigured

from crawler import __version__
from crawler.capture.session import CaptureSession
from crawler.catalog.db import CatalogMismatch
from crawler.constants import CATALOG_MISMATCH, REPLAY_UNAVAILABLE
from crawler.crawl.capture import WarcCapture
from crawler.crawl.catalog import ArchiveCatalog
from crawler.crawl.config import ArchiveConfig, checked_config
from crawler.crawl.indexes import ArchiveIndexes
from crawler.crawl.ledger import CrawlLedger, new_crawl_id
from crawler.crawl.replay import ArchiveReplay
from crawler.crawl.spider import NewsSpider
from crawler.fetch.render import Renderers
from crawler.logs import ContextFilter, formatter
from crawler.store.base import Store
from crawler.store.uri import open_store

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler

    from crawler.capture.exchange import CaptureListener

logger = logging.getLogger(__name__)


class ArchiveCrawl:
    """Builds and wires one crawl's archive components; connects them to Scrapy's signals."""

    def __repr__(self) -> str:  # Scrapy logs a failing signal handler by its repr: no address
        return "<ArchiveCrawl>"

    def __init__(
        self,
        config: ArchiveConfig,
        crawler: Crawler,
        store: Store | None = None,
        *,
        hostname: str | None = None,
    ) -> None:
        self.config = config
        self.crawler = crawler
        stats = crawler.stats
        assert stats is not None
        store = store or open_store(config.ledger.store_uri, config.ledger.store_options)
        self.ledger = CrawlLedger(config.ledger, store, crawler, health=config.health)
        self.catalog: ArchiveCatalog | None = None
        if config.catalog is not None:
            self.catalog = ArchiveCatalog(config.catalog, self.ledger, stats)
        self.capture_session: CaptureSession | None = None
        self.capture: WarcCapture | None = None
        if config.warc is not None:
            listeners: list[CaptureListener] = []
            if self.catalog is not None:
                listeners.append(self.catalog.captured)
            self.capture_session = CaptureSession(
                config.warc,
                self.ledger,
                stats,
                hostname=hostname or socket.gethostname(),
                user_agent=str(crawler.settings.get("USER_AGENT") or ""),
                software=f"newsarchive/{__version__} (scrapy, warcio-compatible writer)",
                revisit_lookup=None if self.catalog is None else self.catalog.revisit_target,
                listeners=listeners,
                recovered=() if self.catalog is None else (self.catalog.recovered_file,),
            )
            self.capture = WarcCapture(self.capture_session, self.ledger)
        # The crawl's one browser, shared by the download handlers and the challenge solver.
        self.renderers = Renderers()
        self.indexes: ArchiveIndexes | None = None
        if config.index is not None:
            self.indexes = ArchiveIndexes(config.index, self.ledger, self.catalog)
        # A replay of the archive (``--from-archive``): the config switched off everything
        # that writes; the replay answers the requests and lists what the texts became.
        self.replay: ArchiveReplay | None = None
        if config.replay is not None:
            self.replay = ArchiveReplay(
                config.replay,
                store,
                self.ledger,
                stats,
                window_days=config.discovery_window_days,
            )
            self.ledger.add_section("replay", self.replay.section)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        # Not NotConfigured: a crawl that cannot archive must not run at all. Every setting
        # and the store itself (reachable, writable) are checked here, once, before anything.
        config, store = checked_config(crawler.settings)
        root = cls(config, crawler, store)
        crawler.signals.connect(root.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(root.ledger.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(root.thaw_startup, signal=signals.spider_closed)
        if root.capture is not None:
            crawler.signals.connect(
                root.capture.response_downloaded, signal=signals.response_downloaded
            )
        return root

    def name_log_lines(self) -> None:
        """Every log line of the crawl says whose it is, ``scrapy crawl``'s too: Scrapy's own
        root handler gets the site and crawl id filter and the one line format (the
        ``newsarchive`` commands install handlers that have them already)."""
        site = str(getattr(self.crawler.spidercls, "name", "") or "")
        ledger = self.ledger
        if not ledger.crawl_id:
            ledger.crawl_id = new_crawl_id(site or "crawl")
        for handler in logging.root.handlers:
            if any(isinstance(f, ContextFilter) for f in handler.filters):
                continue
            handler.addFilter(ContextFilter(site, ledger.crawl_id))
            handler.setFormatter(formatter(self.config.log_format))

    @staticmethod
    def of(crawler: Crawler) -> ArchiveCrawl:
        """The crawl's root, for the components Scrapy builds itself (pipeline, middlewares)."""
        root = crawler.get_extension(ArchiveCrawl) if crawler.extensions is not None else None
        if root is None:
            raise NotConfigured("the newsarchive add-on is not enabled (ADDONS)")
        return root

    async def spider_opened(self, spider: Spider) -> None:
        """Open everything in order; closers run in the order they are added here."""
        try:
            await self._open(spider)
        finally:
            self.freeze_startup()

    @staticmethod
    def freeze_startup() -> None:
        """Everything made so far (modules, settings, the catalog's known keys) lives as long
        as the crawl: moved out of the collector's generations (``gc.freeze``), so the full
        collections that each page's allocations set off no longer walk it. They were 40 % of
        the capture's CPU on the reactor thread (py-spy, issue 22). Undone at spider close."""
        gc.collect()  # what start-up left as garbage goes now, not frozen
        gc.freeze()

    @staticmethod
    def thaw_startup() -> None:
        """The start-up's objects are collected as usual again (a test runs many crawls)."""
        gc.unfreeze()

    async def _open(self, spider: Spider) -> None:
        ledger = self.ledger
        # Scrapy installs its root handler again after the extensions are made: named here.
        self.name_log_lines()
        if self.replay is not None:
            await self._replay_opened(spider)
            return
        ledger.spider_opened(spider)
        if self.catalog is not None:
            # Last of all: the rows of what is stored now stop saying where it waits.
            ledger.add_finisher(self.catalog.uploads_done)
            # One crawl of a site at a time on every machine sharing the catalog: a crawl that
            # cannot take the site's lease opens nothing, stores nothing and closes now.
            try:
                refused = await self.catalog.take_lease(spider)
            except CatalogMismatch as exc:
                # Pointed at another store's catalog: it would say "archived" of articles
                # this store does not hold. Nothing is crawled.
                ledger.refuse(str(exc), reason=CATALOG_MISMATCH)
                return
            if refused is not None:
                if isinstance(spider, NewsSpider):
                    spider.crawl_refused = refused
                ledger.refuse(refused)
                return
        if isinstance(spider, NewsSpider):
            # Every URL the spider gives up on is listed in the crawl report.
            spider.on_failure = ledger.add_failure
        # What earlier crawls left in the spool goes up beside this crawl, and the texts a
        # killed crawl kept are known before the catalog opens.
        ledger.upload_backlog(spider)
        if self.capture is not None:
            ledger.add_closer("warc", self.capture.close)
            await self.capture.spider_opened(spider)
        # The indexes read the last WARC file (stored by the capture's closer) and flush the
        # catalog's waiting rows before the catalog closes.
        if self.indexes is not None:
            ledger.add_closer("indexes", self.indexes.close)
        if self.catalog is not None:
            await self.catalog.spider_opened(spider)
            ledger.add_closer("catalog", self.catalog.close)
            if isinstance(spider, NewsSpider):
                # The spider asks before it requests an article (and before max_articles).
                spider.use_catalog(
                    self.catalog.wanted, sorted(self.catalog.due.items()), self.catalog.gone
                )

    async def _replay_opened(self, spider: Spider) -> None:
        """A replay takes no lease and opens no spool: it reads the catalog and the store."""
        assert self.replay is not None
        ledger = self.ledger
        ledger.spider_opened(spider, writes=False)
        ledger.add_closer("replay", self.replay.close)
        problem = await self.replay.spider_opened(spider)
        if problem is not None:
            if isinstance(spider, NewsSpider):
                spider.crawl_refused = problem  # its start() then requests nothing
            ledger.refuse(problem, reason=REPLAY_UNAVAILABLE)
            return
        if isinstance(spider, NewsSpider):
            spider.on_failure = ledger.add_failure
