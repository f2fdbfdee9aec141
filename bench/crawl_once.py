"""One benchmark crawl in this process; prints a JSON line with its figures.

    python -m bench.crawl_once MODE LISTING_URLS WORKDIR

``LISTING_URLS``: the static server's listing pages, comma-separated (the crawl's start URLs).
Every mode runs with the same Scrapy settings (32 requests at once, no delay, robots.txt
obeyed, no proxy middleware) and differs only in what it adds:

* ``plain``: plain Scrapy, a spider that follows the listings' article links and does nothing
  with the bodies (bench/baseline.py);
* ``plain-tuned``: the same with ``CONCURRENT_ITEMS`` as the newsarchive add-on sets it (8, not
  Scrapy's 100): the project's own crawls have it, so its ratios are also given against this;
* ``naive``: the same with a naive warcio extension (bench/naive_warc.py);
* ``naive-text``: the naive one with ``trafilatura.extract`` in the article callback;
* ``addon-off``: the project's spider (``NewsSpider``) with the newsarchive add-on off;
* ``capture``: the project's crawl, WARC on, text off;
* ``rules``: the project's crawl, WARC and text with site rules (TDI's), article mode;
* ``generic``: the same without site rules (the generic extractor);
* ``page``: page mode (resiliparse main content), with the site rules' metadata.

The project's modes write a real archive (WARC, texts, sidecars, catalog, CDXJ, Parquet, WACZ,
report) into ``WORKDIR/store``. Nothing of the project is imported by the plain modes, so
their memory is Scrapy's. Figures (bench/meter.py): the crawl from ``crawl()`` to the first
``spider_closed`` handler, and the crawl-end step from there to the end of ``start()``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

PLAIN_MODES = ("plain", "plain-tuned", "naive", "naive-text")
# What crawler/crawl/addon.py sets (not imported: the plain modes load nothing of the project).
TUNED = {"CONCURRENT_ITEMS": 8}
PROJECT_MODES = ("addon-off", "capture", "rules", "generic", "page")
MODES = PLAIN_MODES + PROJECT_MODES
# In the crawl's environment: a file to write the names of the modules it loaded into.
MODULES_ENV = "BENCH_MODULES"

# The same for every mode: what differs is only what each mode adds.
COMMON: dict[str, Any] = {
    "BOT_NAME": "bench",
    "ROBOTSTXT_OBEY": True,
    "CONCURRENT_REQUESTS": 32,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 32,
    "DOWNLOAD_DELAY": 0,
    "AUTOTHROTTLE_ENABLED": False,
    # Direct connections only: no proxy from the environment either.
    "HTTPPROXY_ENABLED": False,
    "TELNETCONSOLE_ENABLED": False,
    "REMOTE_CONTROL_ENABLED": False,
    "LOG_LEVEL": "WARNING",
    "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
    # First of all extensions: its spider_closed handler runs before any other.
    "EXTENSIONS": {"bench.meter.BenchMeter": -1000},
}


def mode_settings(mode: str, work: Path) -> tuple[dict[str, Any], type[Any]]:
    """The settings and the spider class of one mode."""
    settings = {**COMMON, "EXTENSIONS": dict(COMMON["EXTENSIONS"]), "ADDONS": {}}
    if mode in PLAIN_MODES:
        from bench.baseline import PlainSpider, TrafilaturaSpider

        if mode == "plain-tuned":
            settings.update(TUNED)
        elif mode != "plain":
            settings["EXTENSIONS"]["bench.naive_warc.NaiveWarcWriter"] = 500
            settings["BENCH_NAIVE_WARC"] = str(work / "naive.warc.gz")
        return settings, TrafilaturaSpider if mode == "naive-text" else PlainSpider
    from bench.news_spider import BenchNewsSpider, GenericBenchSpider

    spider = GenericBenchSpider if mode == "generic" else BenchNewsSpider
    if mode == "addon-off":
        return settings, spider
    settings["ADDONS"] = {"crawler.crawl.addon.Addon": 0}
    settings.update(
        {
            "ARCHIVE_STORE_URI": str(work / "store"),
            # The static server is on loopback, which the egress guard refuses unless allowed.
            "ARCHIVE_NETGUARD_ALLOW": "127.0.0.1/32",
            "ARCHIVE_TEXT_ENABLED": mode != "capture",
            "ARCHIVE_TEXT_MODE": "page" if mode == "page" else "article",
        }
    )
    return settings, spider


def crawl_threads(live: dict[str, float], cpu: float, before: float) -> dict[str, float]:
    """The crawl's CPU by thread: each thread alive at the spider's close (the main thread
    less the CPU the process spent before the crawl started, nearly all of it the main
    thread's imports), and the threads that ended before the close together (a pipeline's
    pool, stopped as the spider closes) as ``ended``."""
    threads = dict(live)
    if "MainThread" in threads:
        threads["MainThread"] = max(threads["MainThread"] - before, 0.0)
    threads["ended"] = max(cpu - before - sum(threads.values()), 0.0)
    return threads


def main() -> None:
    mode, listings, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    if mode not in MODES:
        raise SystemExit(f"mode must be one of {', '.join(MODES)}")
    from bench.meter import BenchMeter, cpu_s, rss_kib

    settings, spidercls = mode_settings(mode, work)
    from scrapy.crawler import CrawlerProcess

    process = CrawlerProcess(settings)
    crawler = process.create_crawler(spidercls)
    rss_start = rss_kib("VmRSS")
    t0, c0 = time.perf_counter(), cpu_s()
    process.crawl(crawler, listings=listings)
    process.start()
    t2, c2 = time.perf_counter(), cpu_s()
    if os.environ.get(MODULES_ENV):
        # The modules the crawl loaded, in the order they were first imported.
        Path(os.environ[MODULES_ENV]).write_text("\n".join(sys.modules) + "\n", encoding="utf-8")
    meter = crawler.get_extension(BenchMeter) if crawler.extensions is not None else None
    if meter is None or meter.closed is None:
        raise SystemExit("bench: the crawl never closed its spider")
    mark = meter.closed
    stats = crawler.stats.get_stats() if crawler.stats else {}
    records = int(stats.get("archive/warc/records", 0))
    if mode in ("naive", "naive-text"):
        from bench.naive_warc import NaiveWarcWriter

        records = crawler.get_extension(NaiveWarcWriter).records
    n = int(stats.get("downloader/response_count", 0))
    errors = {k: v for k, v in stats.items() if "exception_type_count" in k or "/failed" in k}
    print(
        json.dumps(
            {
                "mode": mode,
                "pages": n,
                "crawl_wall_s": mark.wall - t0,
                "crawl_cpu_s": mark.cpu - c0,
                "thread_cpu_s": crawl_threads(mark.threads, mark.cpu, c0),
                "end_wall_s": t2 - mark.wall,
                "end_cpu_s": c2 - mark.cpu,
                "rss_start_mib": rss_start / 1024,
                "crawl_peak_mib": mark.peak_kib / 1024,
                # After the reset at the mark: the crawl-end step's own peak.
                "end_peak_mib": rss_kib("VmHWM") / 1024 if meter.peak_reset else None,
                "encodings": meter.encodings,
                "proxied": meter.proxied,
                "loopback": meter.loopback,
                "not_loopback": meter.not_loopback,
                "items": int(stats.get("item_scraped_count", 0)),
                "articles_new": int(stats.get("archive/articles/new", 0)),
                "warc_records": records,
                "netguard_refused": int(stats.get("archive/netguard/refused", 0)),
                "finish_reason": stats.get("finish_reason"),
                "errors": errors,
            }
        )
    )


if __name__ == "__main__":
    main()
