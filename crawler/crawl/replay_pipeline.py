"""The article pipeline of a crawl replayed from the archive: extract as live, write nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from scrapy.exceptions import NotConfigured

from crawler.crawl.archive import ArchiveCrawl
from crawler.crawl.config import TextConfig
from crawler.crawl.ledger import CrawlLedger
from crawler.crawl.pipeline import ArticlePipeline
from crawler.crawl.replay import ArchiveReplay
from crawler.text.extract import ExtractionError, SiteRules, extract_article

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from crawler.crawl.items import ArticlePage


class ReplayPipeline(ArticlePipeline):
    """The crawl's own extraction and sidecar fields (title, dates, text digest) for each
    article, compared with the archived text instead of written: no text, no sidecar, no
    WARC record, no catalog row. The add-on puts it in ``ArticlePipeline``'s place when the
    crawl replays the archive (``ARCHIVE_REPLAY_ENABLED``)."""

    def __repr__(self) -> str:  # Scrapy logs a failing signal handler by its repr: no address
        return "<ReplayPipeline>"

    def __init__(
        self, config: TextConfig, crawler: Crawler, ledger: CrawlLedger, replay: ArchiveReplay
    ) -> None:
        super().__init__(config, crawler, ledger)
        self.replay = replay

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        root = ArchiveCrawl.of(crawler)
        if root.replay is None or root.config.text is None:
            raise NotConfigured("not a replay of the archive (ARCHIVE_REPLAY_ENABLED is off)")
        return cls(root.config.text, crawler, root.ledger, root.replay)

    def archive_article(self, item: ArticlePage, rules: SiteRules | None) -> dict[str, Any]:
        try:
            article = extract_article(item.html, item.url, rules, mode=self.config.mode)
        except ExtractionError as exc:
            self.replay.failed(item.url, item.article_id, exc.reason, str(exc))
            raise self.fail(item, exc.reason, str(exc)) from exc
        text = article.text.encode("utf-8")
        sidecar = self.sidecar(item, article, text, self.ledger, rules)
        return self.replay.compare(item.url, item.article_id, sidecar, text)
