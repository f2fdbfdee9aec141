"""An error the article pipeline did not expect is the article's failure, named and counted:
never a page Scrapy only logs while the crawl ends "ok" with nothing archived (a container
without numpy once did exactly that: every text raised ModuleNotFoundError in the pipeline,
and the status said ok, 0 new, 0 failed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from scrapy.exceptions import DropItem
from scrapy.statscollectors import MemoryStatsCollector

from crawler.crawl.config import TextConfig
from crawler.crawl.items import ArticlePage
from crawler.crawl.pipeline import ArticlePipeline
from crawler.crawl.report import FailedUrl
from crawler.text.quality import TextLimits

DATA = Path(__file__).resolve().parent.parent / "crawler" / "mirror" / "sites" / "tdi"
URL = "https://thediplomaticinsight.com/world-polio-day-2023/"


@dataclass
class Ledger:
    """The pipeline's ledger, as far as a failing article reaches it."""

    crawl_id: str = "tdi-20261207T000000Z-000000"
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    failures: list[FailedUrl] = field(default_factory=list)

    def add_failure(self, failure: FailedUrl) -> None:
        self.failures.append(failure)


class ExplodingCatalog:
    """A catalog extension whose every question fails in a way nobody planned for."""

    @property
    def catalog(self) -> Any:
        raise RuntimeError("the catalog's driver broke")


def page() -> ArticlePage:
    html = (DATA / "world-polio-day-2023.html").read_text(encoding="utf-8")
    return ArticlePage(URL, "tdi", "world-polio-day-2023", html, "utf-8", 200, URL, [])


def pipeline(catalog: Any) -> tuple[ArticlePipeline, Ledger, MemoryStatsCollector]:
    from scrapy.settings import Settings

    crawler = SimpleNamespace(stats=None, spider=None, settings=Settings())
    stats = MemoryStatsCollector(crawler)  # type: ignore[arg-type]
    crawler.stats = stats
    ledger = Ledger()
    config = TextConfig(mode="article", workers=1, limits=TextLimits())
    made = ArticlePipeline(config, crawler, ledger, None, catalog)  # type: ignore[arg-type]
    return made, ledger, stats


def test_an_unexpected_error_is_the_articles_named_failure() -> None:
    made, ledger, stats = pipeline(ExplodingCatalog())
    with pytest.raises(DropItem, match="internal-error"):
        made.archive_or_fail(page(), None)
    [failure] = ledger.failures
    assert (failure.url, failure.stage, failure.cause) == (URL, "text", "internal-error")
    assert failure.error == "RuntimeError: the catalog's driver broke"
    assert stats.get_value("archive/articles/failed") == 1
    assert stats.get_value("archive/articles/failed/internal-error") == 1


def test_a_failure_the_pipeline_knows_keeps_its_own_cause() -> None:
    made, ledger, _stats = pipeline(None)
    item = page()
    item.html = "<html><body><nav>Home</nav></body></html>"
    with pytest.raises(DropItem) as raised:
        made.archive_or_fail(item, None)
    assert "internal-error" not in str(raised.value)
    [failure] = ledger.failures
    assert failure.cause != "internal-error"
