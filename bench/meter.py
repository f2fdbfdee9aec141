"""The benchmark's meter: where the crawl ends and its crawl-end step begins, in one process.

Enabled first of all extensions, it is the first handler of ``spider_closed``: by then every
page is fetched and every item processed (Scrapy closes a spider only when idle), and what
follows is the crawl-end step (the project's WARC close, indexes, Parquet, WACZ, catalog,
report). There it takes the process's CPU time (user + sys, every thread) and its peak RSS so
far (the kernel's high-water mark, VmHWM), then resets the mark (``/proc/self/clear_refs``,
5), so the mark at exit is the crawl-end step's own peak. It also counts what reached the
crawl: bodies by Content-Encoding as they arrived, responses that came through a proxy or from
an address other than 127.0.0.1 (both must be 0).

With ``BENCH_TRACEMALLOC=FILE`` in the crawl's environment it also traces the crawl's Python
allocations (tracemalloc: slower, so not for the figures) and writes to FILE what grew from
the ``TRACE_FROM``-th response to the spider's close, by traceback: what the crawl holds per
page it fetched. ``BENCH_TRACE_SPAN=FROM,TO`` compares at those responses instead (0: the
crawl's start), e.g. what a crawl holds once its first pages are in flight.
"""

from __future__ import annotations

import os
import re
import resource
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Self

from scrapy import signals

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

_STATUS = Path("/proc/self/status")
TRACE_ENV = "BENCH_TRACEMALLOC"
TRACE_FROM = 300  # responses: the crawl's start-up allocations are behind it
# "FROM,TO" in the environment: compare at these responses instead (0: the crawl's start).
SPAN_ENV = "BENCH_TRACE_SPAN"


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


_TICKS = os.sysconf("SC_CLK_TCK")


def thread_cpu_s() -> dict[str, float]:
    """CPU (user + sys) of each live thread of this process, by its Python name with any
    ``-N`` suffix dropped (threads of one name summed), from /proc/self/task; threads Python
    did not start are "native"."""
    names = {t.native_id: re.sub(r"-\d+$", "", t.name) for t in threading.enumerate()}
    found: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        name = names.get(int(task.name), "native")
        try:
            # Fields after the command's closing parenthesis: utime and stime are the 12th and
            # 13th of them (the 14th and 15th of the line).
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # the thread ended meanwhile
            continue
        found[name] = found.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / _TICKS
    return found


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
    threads: dict[str, float] = field(default_factory=dict)


@dataclass
class BenchMeter:
    """Counts responses as they arrive; marks the moment the spider closes."""

    encodings: dict[str, int] = field(default_factory=dict)
    proxied: int = 0
    loopback: int = 0
    not_loopback: int = 0
    closed: Mark | None = None
    peak_reset: bool = False
    trace: Path | None = None
    responses: int = 0
    trace_from: int = TRACE_FROM
    trace_to: int | None = None
    _early: tracemalloc.Snapshot | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        meter = cls()
        if os.environ.get(TRACE_ENV):
            meter.trace = Path(os.environ[TRACE_ENV])
            tracemalloc.start(10)
            if os.environ.get(SPAN_ENV):
                start, end = os.environ[SPAN_ENV].split(",")
                meter.trace_from, meter.trace_to = int(start), int(end)
                if meter.trace_from == 0:
                    meter._early = tracemalloc.take_snapshot()
        crawler.signals.connect(meter.response_downloaded, signal=signals.response_downloaded)
        crawler.signals.connect(meter.response_received, signal=signals.response_received)
        crawler.signals.connect(meter.spider_closed, signal=signals.spider_closed)
        return meter

    def response_downloaded(self, response: Response) -> None:
        coding = (response.headers.get(b"Content-Encoding") or b"identity").decode("latin-1")
        self.encodings[coding] = self.encodings.get(coding, 0) + 1

    def response_received(self, response: Response, request: Request) -> None:
        self.responses += 1
        if self.trace is not None and self.responses == self.trace_from:
            self._early = tracemalloc.take_snapshot()
        if self.trace is not None and self._early is not None and self.responses == self.trace_to:
            self._write_trace(self.trace, self._early)
            self._early = None
        if request.meta.get("proxy"):
            self.proxied += 1
        if str(response.ip_address) == "127.0.0.1":
            self.loopback += 1
        else:  # another address, or one the download handler did not say
            self.not_loopback += 1

    def spider_closed(self) -> None:
        self.closed = Mark(time.perf_counter(), cpu_s(), rss_kib("VmHWM"), thread_cpu_s())
        if self.trace is not None and self._early is not None:
            self._write_trace(self.trace, self._early)
        self.peak_reset = reset_peak()

    def _write_trace(self, path: Path, early: tracemalloc.Snapshot) -> None:
        late = tracemalloc.take_snapshot()
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        lines = [
            f"traced now {current / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB; grown from "
            f"response {self.trace_from} to response {self.responses}, by traceback:"
        ]
        for stat in late.compare_to(early, "traceback")[:25]:
            lines.append(f"{stat.size_diff / 2**20:+8.2f} MiB {stat.count_diff:+8d} blocks")
            lines += [f"      {line}" for line in stat.traceback.format()[-10:]]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
