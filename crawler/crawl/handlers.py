"""The fetch components of a crawl, each given its config and collaborators by the root.

Scrapy builds download handlers and middlewares itself, from their paths; these subclasses
take what they need from the composition root (``ArchiveCrawl``: the settings parsed once at
the start, the capture session, the crawl's one browser) and hand it to the fetch layer's
constructors, which know nothing of the crawl. Without the add-on's root (a project that names
a fetch component on its own) the fetch layer reads its settings itself.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Self

from scrapy.exceptions import NotConfigured

from crawler.constants import CHALLENGE_FIELD
from crawler.crawl.archive import ArchiveCrawl
from crawler.fetch import archive, middlewares, render
from crawler.fetch.challenge import CHALLENGE_KIND, ChallengeConfig, exchange_is_challenge
from crawler.fetch.challenge import ChallengeMiddleware as _ChallengeMiddleware
from crawler.fetch.netguard import NetGuard, twisted_resolve

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.capture.exchange import CaptureInfo, Exchange


def _root(crawler: Crawler) -> ArchiveCrawl | None:
    try:
        return ArchiveCrawl.of(crawler)
    except NotConfigured:
        return None


class ArchiveDownloadHandler(render.RenderingDownloadHandler):
    """Chromium for the requests that ask to be rendered, our HTTP/1.1 handler for the rest."""

    def __init__(self, crawler: Crawler) -> None:
        root = _root(crawler)
        if root is None:  # fetches, archives nothing
            super().__init__(crawler)
            return
        super().__init__(
            crawler,
            capture=root.capture_session,
            renderers=root.renderers,
            render=root.config.render,
        )
        self.netguard = NetGuard(root.config.netguard, twisted_resolve, crawler.stats)

    def capture_exchange(self, exchange: Exchange) -> CaptureInfo | None:
        # A challenge page the browser met is marked as on the Scrapy path (crawl/capture.py).
        if exchange_is_challenge(exchange):
            fields = {**(exchange.warc_fields or {}), CHALLENGE_FIELD: CHALLENGE_KIND}
            exchange = dataclasses.replace(exchange, warc_fields=fields)
        return super().capture_exchange(exchange)


class ReplayDownloadHandler(archive.ReplayDownloadHandler):
    """Every request answered from the archive, for a crawl replayed from it (the add-on
    installs it for every scheme when ``ARCHIVE_REPLAY_ENABLED`` is on)."""

    def __init__(self, crawler: Crawler) -> None:
        root = _root(crawler)
        if root is None or root.replay is None:
            raise NotConfigured("not a replay of the archive (ARCHIVE_REPLAY_ENABLED is off)")
        super().__init__(crawler, _OpenedSource(root))


class _OpenedSource:
    """The replay's source, which exists once the spider opened (Scrapy builds download
    handlers before that)."""

    def __init__(self, root: ArchiveCrawl) -> None:
        self.root = root

    def answer(
        self, url: str, *, render: bool, article_key: str | None = None
    ) -> archive.ArchivedAnswer:
        replay = self.root.replay
        if replay is None or replay.source is None:
            raise archive.NotInArchive(f"{url}: no archive is open to replay from")
        return replay.source.answer(url, render=render, article_key=article_key)


class ChallengeMiddleware(_ChallengeMiddleware):
    """Solves challenges in the crawl's one browser."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        root = _root(crawler)
        if root is None:
            config = ChallengeConfig.from_settings(crawler.settings)
            return cls(crawler, config.timeout, config.max_solves, render.Renderers())
        config = root.config.challenge
        return cls(crawler, config.timeout, config.max_solves, root.renderers)


class RenderMiddleware(render.RenderMiddleware):
    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        root = _root(crawler)
        if root is None:
            return super().from_crawler(crawler)
        if root.config.render is None:
            raise NotConfigured("ARCHIVE_RENDER_ENABLED is off")
        return cls(root.config.render)


class ArchiveProxyMiddleware(middlewares.ArchiveProxyMiddleware):
    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        root = _root(crawler)
        if root is None:
            return super().from_crawler(crawler)
        if not root.config.proxy.proxy:
            raise NotConfigured("ARCHIVE_PROXY is not set")
        return cls(root.config.proxy.proxy)


class RetryAfterMiddleware(middlewares.RetryAfterMiddleware):
    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        root = _root(crawler)
        middleware = cls(crawler.settings, None if root is None else root.config.retry)
        middleware.crawler = crawler
        return middleware
