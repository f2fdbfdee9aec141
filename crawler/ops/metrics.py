"""Prometheus metrics: crawl counters from the daemon, freshness and backlog read when scraped."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, start_http_server

from crawler.ops.status import Status, StatusCollector

if TYPE_CHECKING:
    from crawler.ops.jobs import CrawlOutcome

logger = logging.getLogger(__name__)


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
        if outcome.result == "skipped":  # its lease was held: another replica runs the start
            self.skip(site)
            return
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
