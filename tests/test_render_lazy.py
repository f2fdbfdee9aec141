"""A crawl that renders nothing never imports Playwright or scrapy-playwright (issue 22).

They cost about 11 MiB of a crawl's peak RSS; the browser handler (crawler/fetch/chromium.py)
is built, and they are imported, only for the first page to render or challenge to solve.
The crawls run in a subprocess (tests/crawl_helper.py) with the spiders below, which count at
spider close which of the two modules the crawl process had loaded.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from crawler.mirror.routes import SITES_DIR
from crawler.mirror.server import MirrorServer
from spiders.president import PresidentSpider
from spiders.tdi import TdiSpider
from tests.conftest import CHROMIUM, require_program
from tests.crawl_helper import CrawlResult, mirror_settings, run_crawl

MODULES = ("playwright", "scrapy_playwright")


class _CountsModules:
    crawler: Any

    def closed(self, reason: str) -> None:
        for name in MODULES:
            self.crawler.stats.set_value(f"test/loaded/{name}", int(name in sys.modules))


class TdiCountsModules(_CountsModules, TdiSpider):
    pass


class PresidentCountsModules(_CountsModules, PresidentSpider):
    pass


def crawl(site: str, spider: str, work: Path) -> CrawlResult:
    with MirrorServer([SITES_DIR / site]) as mirror:
        result = run_crawl(
            f"tests.test_render_lazy:{spider}",
            work / "result.json",
            settings={"ARCHIVE_STORE_URI": str(work / "store"), **mirror_settings(mirror)},
            timeout=120,
        )
    assert result.exit_code == 0, result.stderr[-3000:]
    return result


def test_a_crawl_that_renders_nothing_never_imports_playwright(tmp_path: Path) -> None:
    result = crawl("tdi", "TdiCountsModules", tmp_path)
    assert result.stats["archive/articles/new"] > 0
    assert "archive/render/pages" not in result.stats
    for name in MODULES:
        assert result.stats[f"test/loaded/{name}"] == 0, name


def test_a_crawl_that_renders_loads_them_and_renders(tmp_path: Path) -> None:
    require_program(CHROMIUM, "Chromium", "apt-get install chromium")
    result = crawl("president", "PresidentCountsModules", tmp_path)
    assert result.stats["archive/render/pages"] > 0
    for name in MODULES:
        assert result.stats[f"test/loaded/{name}"] == 1, name
