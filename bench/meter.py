"""The benchmark's meter: where the crawl ends and its crawl-end step begins, in one process.

Enabled first of all extensions, it is the first handler of ``spider_closed``: by then every
page is fetched and every item processed (Scrapy closes a spider only when idle), and what
follows is the crawl-end step (the project's WARC close, indexes, Parquet, WACZ, catalog,
report). There it takes the process's CPU time (user + sys, every thread) and its peak RSS so
far (the kernel's high-water mark, VmHWM), then resets the mark (``/proc/self/clear_refs``,
5), so the mark at exit is the crawl-end step's own peak. It also counts what reached the
crawl: bodies by Content-Encoding as they arrived, responses that came through a proxy or from
an address other than 127.0.0.1 (both must be 0).
"""

from __future__ import annotations

import re
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Self

from scrapy import signals

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

_STATUS = Path("/proc/self/status")


def rss_kib(field_name: str) -> int:
    """VmRSS or VmHWM of this process, KiB (0 where /proc does not say)."""
    try:
        found = re.search(rf"^{field_name}:\s+(\d+) kB", _STATUS.read_text(), re.M)
    except OSError:
        return 0
    return int(found.group(1)) if found else 0


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0+); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class Mark:
    wall: float
    cpu: float
    peak_kib: int


@dataclass
class BenchMeter:
    """Counts responses as they arrive; marks the moment the spider closes."""

    encodings: dict[str, int] = field(default_factory=dict)
    proxied: int = 0
    loopback: int = 0
    not_loopback: int = 0
    closed: Mark | None = None
    peak_reset: bool = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        meter = cls()
        crawler.signals.connect(meter.response_downloaded, signal=signals.response_downloaded)
        crawler.signals.connect(meter.response_received, signal=signals.response_received)
        crawler.signals.connect(meter.spider_closed, signal=signals.spider_closed)
        return meter

    def response_downloaded(self, response: Response) -> None:
        coding = response.headers.get(b"Content-Encoding", b"identity").decode("latin-1")
        self.encodings[coding] = self.encodings.get(coding, 0) + 1

    def response_received(self, response: Response, request: Request) -> None:
        if request.meta.get("proxy"):
            self.proxied += 1
        if str(response.ip_address) == "127.0.0.1":
            self.loopback += 1
        else:  # another address, or one the download handler did not say
            self.not_loopback += 1

    def spider_closed(self) -> None:
        self.closed = Mark(time.perf_counter(), cpu_s(), rss_kib("VmHWM"))
        self.peak_reset = reset_peak()
