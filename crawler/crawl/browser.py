"""The crawl's browser handler, given its collaborators by the root.

Apart from crawl/handlers.py because it imports Playwright and scrapy-playwright: the plain
handler there imports this module when the crawl first needs its browser (a page to render, a
challenge to solve), so a crawl that renders nothing never loads them.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from crawler.constants import CHALLENGE_FIELD
from crawler.fetch.challenge import CHALLENGE_KIND, exchange_is_challenge
from crawler.fetch.chromium import RenderingDownloadHandler
from crawler.fetch.netguard import NetGuard, twisted_resolve

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.capture.exchange import CaptureInfo, Exchange
    from crawler.crawl.archive import ArchiveCrawl
    from crawler.fetch.render import RenderConfig, Renderers


class ArchiveRenderingHandler(RenderingDownloadHandler):
    """Chromium for the requests that ask to be rendered, archived in the crawl's capture."""

    def __init__(
        self,
        crawler: Crawler,
        root: ArchiveCrawl | None,
        render: RenderConfig,
        renderers: Renderers,
    ) -> None:
        if root is None:  # fetches, archives nothing
            super().__init__(crawler, renderers=renderers, render=render)
            return
        super().__init__(crawler, capture=root.capture_session, renderers=renderers, render=render)
        self.netguard = NetGuard(root.config.netguard, twisted_resolve, crawler.stats)

    def capture_exchange(self, exchange: Exchange) -> CaptureInfo | None:
        # A challenge page the browser met is marked as on the Scrapy path (crawl/capture.py).
        if exchange_is_challenge(exchange):
            fields = {**(exchange.warc_fields or {}), CHALLENGE_FIELD: CHALLENGE_KIND}
            exchange = dataclasses.replace(exchange, warc_fields=fields)
        return super().capture_exchange(exchange)
