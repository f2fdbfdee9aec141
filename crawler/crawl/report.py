"""A crawl's report: the figures, the site's health, and the summary on the terminal."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crawler import __version__
from crawler.crawl.config import HealthConfig
from crawler.layout import is_warc
from crawler.store.base import StoredObject


@dataclass(frozen=True, slots=True)
class CrawlFacts:
    """What the report says of the crawl besides its stats."""

    crawl_id: str
    site: str
    store_uri: str
    started: datetime
    t0: float  # time.monotonic() at the start
    cpu0: float  # time.process_time() at the start
    health: HealthConfig
    objects: Sequence[StoredObject] = ()
    pending: Sequence[str] = ()
    spool_dir: Path | None = None
    remote: bool = False
    failures: Sequence[Mapping[str, str]] = ()
    notes: Sequence[str] = field(default_factory=list)


_SOURCE_SKIPS = ("bad-feed", "bad-sitemap", "bad-listing")


def site_health(
    stats: Mapping[str, Any],
    skipped: Mapping[str, int],
    failed_reasons: Mapping[str, int],
    config: HealthConfig,
) -> dict[str, Any]:
    """Whether the site still yields articles, and what looks broken when it does not."""
    discovered = int(stats.get("archive/articles/discovered", 0))
    failed = int(stats.get("archive/articles/failed", 0))
    done = failed + sum(
        int(stats.get(f"archive/articles/{k}", 0)) for k in ("new", "revised", "unchanged")
    )
    problems = []
    # Only spiders that discover (NewsSpider sets the count at start) can discover nothing.
    # A source that answered 304 (not modified since the last crawl) is working.
    if (
        "archive/articles/discovered" in stats
        and discovered == 0
        and not skipped.get("not-modified")
    ):
        problems.append("discovered no article: its feeds, sitemaps and listings gave none")
    if failed >= config.min_failed and failed > config.max_failed_ratio * done:
        problems.append(
            f"{failed} of {done} article pages failed to parse "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(failed_reasons.items()))})"
        )
    return {
        "status": "error" if problems else "ok",
        "problems": problems,
        "sources_failed": {k: v for k, v in skipped.items() if k in _SOURCE_SKIPS},
        "empty_body": failed_reasons.get("empty-body", 0),
        "no_title": int(stats.get("archive/articles/no_title", 0)),
    }


def build_report(facts: CrawlFacts, stats: Mapping[str, Any], reason: str) -> dict[str, Any]:
    """The crawl's report: what it fetched, archived, skipped and failed, from its stats."""
    by_status: dict[str, int] = {}
    for key, value in stats.items():
        if key.startswith("downloader/response_status_count/"):
            by_status[key.rsplit("/", 1)[1]] = int(value)
    skipped = {
        key.split("/", 2)[2]: int(value)
        for key, value in stats.items()
        if key.startswith("archive/skipped/")
    }
    # Requests to hosts outside allowed_domains (links, redirects): dropped by Scrapy.
    if offsite := int(stats.get("offsite/filtered", 0)):
        skipped["offsite"] = offsite
    failed_reasons = {
        key.rsplit("/", 1)[1]: int(value)
        for key, value in stats.items()
        if key.startswith("archive/articles/failed/")
    }
    warc_files = sorted(o.key for o in facts.objects if is_warc(o.key))
    finished = datetime.now(UTC)
    return {
        "crawl_id": facts.crawl_id,
        "site": facts.site,
        "software": f"newsarchive/{__version__}",
        "store": facts.store_uri,
        "started": facts.started.isoformat(),
        "finished": finished.isoformat(),
        "duration_s": round(time.monotonic() - facts.t0, 3),
        "cpu_s": round(time.process_time() - facts.cpu0, 3),
        "finish_reason": reason,
        "pages": {
            "requests": int(stats.get("downloader/request_count", 0)),
            "responses": int(stats.get("downloader/response_count", 0)),
            "by_status": dict(sorted(by_status.items())),
            "bytes_received": int(stats.get("downloader/response_bytes", 0)),
            "download_errors": int(stats.get("downloader/exception_count", 0)),
        },
        "articles": {
            "discovered": int(stats.get("archive/articles/discovered", 0)),
            "new": int(stats.get("archive/articles/new", 0)),
            "revised": int(stats.get("archive/articles/revised", 0)),
            "unchanged": int(stats.get("archive/articles/unchanged", 0)),
            "failed": int(stats.get("archive/articles/failed", 0)),
            "failed_by_reason": failed_reasons,
            "no_title": int(stats.get("archive/articles/no_title", 0)),
            "failures": list(facts.failures),
        },
        "health": site_health(stats, skipped, failed_reasons, facts.health),
        "skipped": skipped,
        "warc": {
            "files": warc_files,
            "records": int(stats.get("archive/warc/records", 0)),
            "bytes": int(stats.get("archive/warc/bytes", 0)),
            "recovered_files": int(stats.get("archive/warc/recovered_files", 0)),
            "errors": int(stats.get("archive/warc/errors", 0)),
        },
        "text": {"bytes": int(stats.get("archive/text/bytes", 0))},
        "errors": {
            "log_errors": int(stats.get("log_count/ERROR", 0)),
            "spider_exceptions": int(stats.get("spider_exceptions/count", 0)),
        },
        "upload": {
            "pending": len(facts.pending),
            "spool": str(facts.spool_dir) if facts.remote else None,
        },
        "notes": list(facts.notes),
    }


def format_summary(report: dict[str, Any]) -> str:
    pages = report["pages"]
    statuses = ", ".join(f"{k}: {v}" for k, v in pages["by_status"].items()) or "none"
    arts = report["articles"]
    lines = [
        f"crawl {report['crawl_id']} ({report['site']}) {report['finish_reason']} "
        f"in {report['duration_s']:.1f}s",
        f"  pages: {pages['responses']} fetched ({statuses}), "
        f"{pages['download_errors']} download errors, {pages['bytes_received']:,} bytes",
        f"  articles: {arts['discovered']} discovered, {arts['new']} new, "
        f"{arts['revised']} revised, {arts['unchanged']} unchanged, {arts['failed']} failed"
        + (
            f" ({', '.join(f'{k}: {v}' for k, v in arts['failed_by_reason'].items())})"
            if arts["failed_by_reason"]
            else ""
        ),
        f"  warc: {len(report['warc']['files'])} files, {report['warc']['records']} records, "
        f"{report['warc']['bytes']:,} bytes",
    ]
    pending = report.get("upload", {}).get("pending", 0)
    if pending:
        lines.append(
            f"  upload: {pending} objects pending in {report['upload']['spool']} "
            "(the next crawl or `newsarchive upload` sends them)"
        )
    if report["skipped"]:
        lines.append(
            "  skipped: " + ", ".join(f"{k}: {v}" for k, v in sorted(report["skipped"].items()))
        )
    return "\n".join(lines)
