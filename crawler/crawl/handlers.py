"""The fetch components that share the crawl's browser and capture, wired by the root.

Scrapy builds download handlers and middlewares itself, from their paths; these subclasses
take their collaborators from the composition root (``ArchiveCrawl``) and pass them to the
fetch layer's constructors, which know nothing of the crawl.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

from scrapy.exceptions import NotConfigured

from crawler.crawl.archive import ArchiveCrawl
from crawler.fetch.challenge import ChallengeConfig
from crawler.fetch.challenge import ChallengeMiddleware as _ChallengeMiddleware
from crawler.fetch.render import Renderers, RenderingDownloadHandler

if TYPE_CHECKING:
    from scrapy.crawler import Crawler


def _root(crawler: Crawler) -> ArchiveCrawl | None:
    try:
        return ArchiveCrawl.of(crawler)
    except NotConfigured:
        return None  # the handler used without the add-on: fetches, archives nothing


class ArchiveDownloadHandler(RenderingDownloadHandler):
    """Chromium for the requests that ask to be rendered, our HTTP/1.1 handler for the rest."""

    def __init__(self, crawler: Crawler) -> None:
        root = _root(crawler)
        super().__init__(
            crawler,
            capture=root.capture_session if root is not None else None,
            renderers=root.renderers if root is not None else Renderers(),
        )


class ChallengeMiddleware(_ChallengeMiddleware):
    """Solves challenges in the crawl's one browser."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        config = ChallengeConfig.from_settings(crawler.settings)
        root = _root(crawler)
        renderers = root.renderers if root is not None else Renderers()
        return cls(crawler, config.timeout, config.max_solves, renderers)
