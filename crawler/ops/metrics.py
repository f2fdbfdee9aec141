"""Prometheus metrics: crawl counters from the daemon, freshness and backlog read when scraped."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from crawler.ops.jobs import CrawlOutcome
    from crawler.ops.status import Status

logger = logging.getLogger(__name__)


class StatusCollector(Collector):
    """Per-site freshness and staleness and the upload backlog, from ``collect_status``.

    Read at scrape time (cached for ``ttl`` seconds) so the numbers are as fresh as the catalog.
    """

    def __init__(self, source: Callable[[], Status], ttl: float = 15.0) -> None:
        self.source = source
        self.ttl = ttl
        self._cached: tuple[float, Status] | None = None
        self._lock = threading.Lock()

    def status(self) -> Status | None:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > self.ttl:
                try:
                    self._cached = (time.monotonic(), self.source())
                except Exception:  # a scrape must answer even when the catalog is down
                    logger.exception("metrics: status unavailable")
                    return None
            return self._cached[1]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = self.status()
        up = GaugeMetricFamily(
            "newsarchive_status_up", "1 when the catalog and the spool could be read"
        )
        up.add_metric([], 0 if status is None else 1)
        yield up
        if status is None:
            return
        yield from status_metrics(status)


def status_metrics(status: Status) -> Iterator[GaugeMetricFamily]:
    fresh = GaugeMetricFamily(
        "newsarchive_site_freshness_seconds",
        "Seconds since the site's newest article was first captured",
        labels=["site"],
    )
    stale = GaugeMetricFamily(
        "newsarchive_site_stale",
        "1 when the site has had no new article for longer than its threshold",
        labels=["site"],
    )
    threshold = GaugeMetricFamily(
        "newsarchive_site_stale_after_seconds", "The site's staleness threshold", labels=["site"]
    )
    for site in status.sites:
        age = site.freshness(status.checked)
        if age is not None:
            fresh.add_metric([site.site], age.total_seconds())
        stale.add_metric([site.site], 1 if site.stale else 0)
        threshold.add_metric([site.site], site.stale_after.total_seconds())
    yield fresh
    yield stale
    yield threshold
    backlog = GaugeMetricFamily(
        "newsarchive_upload_backlog_objects", "Objects waiting in the spool for the store"
    )
    backlog.add_metric([], status.backlog_objects)
    yield backlog
    size = GaugeMetricFamily(
        "newsarchive_upload_backlog_bytes", "Bytes waiting in the spool for the store"
    )
    size.add_metric([], status.backlog_bytes)
    yield size


def render_status(status: Status) -> str:
    """One status in the Prometheus text format (for a textfile collector in cron mode)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(lambda: status, ttl=0))
    return generate_latest(registry).decode()


class Metrics:
    """The daemon's metrics; ``serve`` exposes them over HTTP."""

    def __init__(self, status_source: Callable[[], Status] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.crawls = Counter(
            "newsarchive_crawls", "Crawls finished, by result", ["site", "result"], registry=r
        )
        self.failures = Counter(
            "newsarchive_crawl_failures", "Crawls that did not end ok", ["site"], registry=r
        )
        self.skipped = Counter(
            "newsarchive_crawls_skipped",
            "Scheduled starts skipped because a crawl of the site was still running",
            ["site"],
            registry=r,
        )
        self.pages = Counter("newsarchive_pages", "Pages fetched", ["site"], registry=r)
        self.articles = Counter(
            "newsarchive_articles", "Articles archived, by kind", ["site", "kind"], registry=r
        )
        self.bytes = Counter("newsarchive_warc_bytes", "WARC bytes written", ["site"], registry=r)
        self.running = Gauge(
            "newsarchive_crawl_running", "1 while a crawl of the site runs", ["site"], registry=r
        )
        self.duration = Gauge(
            "newsarchive_crawl_last_duration_seconds",
            "Duration of the site's last crawl",
            ["site"],
            registry=r,
        )
        self.last_end = Gauge(
            "newsarchive_crawl_last_end_timestamp_seconds",
            "When the site's last crawl ended, by result",
            ["site", "result"],
            registry=r,
        )
        self.status_collector: StatusCollector | None = None
        if status_source is not None:
            self.status_collector = StatusCollector(status_source)
            r.register(self.status_collector)
        self._server: Any = None

    def started(self, site: str) -> None:
        self.running.labels(site).set(1)

    def skip(self, site: str) -> None:
        self.skipped.labels(site).inc()

    def finished(self, outcome: CrawlOutcome) -> None:
        site = outcome.site
        self.running.labels(site).set(0)
        self.crawls.labels(site, outcome.result).inc()
        if not outcome.ok:
            self.failures.labels(site).inc()
        self.duration.labels(site).set((outcome.finished - outcome.started).total_seconds())
        self.last_end.labels(site, outcome.result).set(outcome.finished.timestamp())
        report = outcome.report or {}
        self.pages.labels(site).inc(report.get("pages", {}).get("responses", 0))
        for kind in ("new", "revised", "unchanged", "failed"):
            self.articles.labels(site, kind).inc(report.get("articles", {}).get(kind, 0))
        self.bytes.labels(site).inc(report.get("warc", {}).get("bytes", 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, port: int, address: str) -> int:
        """Serve /metrics on a thread; the port actually bound (``port`` 0 is not allowed)."""
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        self._server = server
        return int(server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
