"""A crawl's figures, rewritten each second to a file the ``newsarchive`` command shows live.

The command runs each crawl in a process of its own and cannot see its stats; it reads this
small JSON file instead (written whole, then renamed, so a reader never sees half of it).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy import signals

from crawler.constants import STATS_ARTICLES_DISCOVERED

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

# Stats key -> progress field.
FIELDS = {
    "downloader/response_count": "pages",
    "downloader/exception_count": "download_errors",
    STATS_ARTICLES_DISCOVERED: "discovered",
    "archive/articles/new": "new",
    "archive/articles/revised": "revised",
    "archive/articles/unchanged": "unchanged",
    "archive/articles/failed": "failed",
    "archive/warc/bytes": "warc_bytes",
    # A replay of the archive: texts as archived, and those that differ.
    "archive/replay/articles/same": "same",
    "archive/replay/articles/differ": "differ",
}


class ProgressWriter:
    def __repr__(self) -> str:  # Scrapy logs a failing signal handler by its repr: no address
        return "<ProgressWriter>"

    def __init__(
        self, crawler: Crawler, path: Path, log_file: Path | None, interval: float = 1.0
    ) -> None:
        self.crawler = crawler
        self.path = path
        self.log_file = log_file
        self.interval = interval
        self._t0 = time.monotonic()
        self._loop: Any = None
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    def spider_opened(self, spider: Spider) -> None:
        from twisted.internet.task import LoopingCall

        self._t0 = time.monotonic()
        self._loop = LoopingCall(self.write, "running")
        self._loop.start(self.interval, now=True)

    def spider_closed(self, spider: Spider, reason: str) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self.write("closing")

    def figures(self) -> dict[str, Any]:
        stats = self.crawler.stats
        values = stats.get_stats() if stats is not None else {}
        out: dict[str, Any] = {name: int(values.get(key, 0)) for key, name in FIELDS.items()}
        out["elapsed_s"] = round(time.monotonic() - self._t0, 1)
        out["log_file"] = str(self.log_file) if self.log_file is not None else None
        return out

    def write(self, state: str) -> None:
        data = {"state": state, **self.figures()}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:  # the command's view only: the crawl goes on
            logger.debug("progress file %s not written: %s", self.path, exc)
