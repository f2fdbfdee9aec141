"""The fetch components of a crawl, each given its config and collaborators by the root.

Scrapy builds download handlers and middlewares itself, from their paths; these subclasses
take what they need from the composition root (``ArchiveCrawl``: the settings parsed once at
the start, the capture session, the crawl's one browser) and hand it to the fetch layer's
constructors, which know nothing of the crawl. Without the add-on's root (a project that names
a fetch component on its own) the fetch layer reads its settings itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

from scrapy.exceptions import NotConfigured

from crawler.crawl.archive import ArchiveCrawl
from crawler.fetch import archive, middlewares, render
from crawler.fetch.challenge import ChallengeConfig
from crawler.fetch.challenge import ChallengeMiddleware as _ChallengeMiddleware
from crawler.fetch.download import ArchiveHTTP11DownloadHandler
from crawler.fetch.netguard import NetGuard, twisted_resolve

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

    from crawler.fetch.chromium import RenderingDownloadHandler


def _root(crawler: Crawler) -> ArchiveCrawl | None:
    try:
        return ArchiveCrawl.of(crawler)
    except NotConfigured:
        return None


class ArchiveDownloadHandler(ArchiveHTTP11DownloadHandler):
    """Our HTTP/1.1 handler; the requests that ask to be rendered go to the crawl's browser
    handler (crawl/browser.py), built on the first of them or the first challenge to solve:
    only then are Playwright and scrapy-playwright imported."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self._root = _root(crawler)
        self._browser: RenderingDownloadHandler | None = None
        if self._root is None:  # fetches, archives nothing
            self.renderers = render.Renderers()
            self.render = render.RenderConfig.from_settings(crawler.settings)
        else:
            config = self._root.config
            self.renderers = self._root.renderers
            # Parsed once at the crawl's start; read here only when rendering is off (a
            # challenge is still solved in the browser).
            self.render = config.render or render.RenderConfig.from_settings(crawler.settings)
            self.netguard = NetGuard(config.netguard, twisted_resolve, crawler.stats)
        self.renderers.offer(self._make_browser)

    def _make_browser(self) -> RenderingDownloadHandler:
        from crawler.crawl.browser import ArchiveRenderingHandler

        self._browser = ArchiveRenderingHandler(
            self._crawler, self._root, self.render, self.renderers
        )
        return self._browser

    async def download_request(self, request: Request) -> Response:
        if request.meta.get("playwright"):
            browser = self.renderers.browser()
            assert browser is not None  # offered in __init__
            rendered: Response = await browser.download_request(request)
            return rendered
        return await super().download_request(request)

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            if self._browser is not None:  # Scrapy knows only this handler: its browser too
                browser, self._browser = self._browser, None
                await browser.close()


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
