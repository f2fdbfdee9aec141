"""A crawl's report: the figures, the failed URLs, the site's health, and the log summary."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawler import __version__
from crawler.constants import (
    STATS_ARTICLES_DEGENERATE,
    STATS_ARTICLES_DISCOVERED,
    STATS_ARTICLES_REQUESTED,
    STATS_SOURCES_REQUESTED,
)
from crawler.layout import is_warc

if TYPE_CHECKING:
    # Types only: the spider imports this module for FailedUrl, and needs neither.
    from crawler.crawl.config import HealthConfig
    from crawler.store.base import StoredObject

# The report lists this many failed URLs; the rest are counted (``failures.not_listed``).
MAX_LISTED_FAILURES = 1000
MAX_ERROR_CHARS = 500
# Where a URL failed: a feed, sitemap or listing request (discovery); an article request
# (fetch); an article page rejected (parse); its text extraction (text); writing it (store).
STAGES = ("discovery", "fetch", "parse", "text", "store")


@dataclass(frozen=True, slots=True)
class FailedUrl:
    """One URL that gave nothing to archive: where (``stage``) and why (``cause``).

    ``cause``: ``http-<status>``, ``tls``, ``timeout``, ``dns``, ``connection``, ``proxy``,
    ``redirect-loop``, ``parse`` (a feed, sitemap or listing that did not parse),
    ``truncated`` (cut on the wire, shorter than its Content-Length, or a content coding that
    stops short), ``bad-content-coding`` (corrupt coded data, a failed checksum), ``not-html``,
    ``not-article``, the text extraction's reason (``empty-body``…), or ``degenerate`` (a text
    far below the site's usual size, kept under ``flagged/``, never a version; ``error`` says
    why and where). ``attempts``: how many times it was asked (retries included). ``gone``:
    an article whose last answer was 404 or 410, asked again at its recheck and gone still:
    listed, but no sign that the site broke.
    """

    url: str
    stage: str
    cause: str
    status: int | None = None
    error: str = ""
    attempts: int = 1
    gone: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "stage": self.stage,
            "cause": self.cause,
            "status": self.status,
            "error": self.error[:MAX_ERROR_CHARS],
            "attempts": self.attempts,
            "gone": self.gone,
        }


class FailureLog:
    """Every failure of a crawl, counted; the first ``limit`` listed. Thread-safe (the
    pipeline's threads add theirs)."""

    def __init__(self, limit: int = MAX_LISTED_FAILURES) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._listed: list[FailedUrl] = []
        self._counts: Counter[tuple[str, str]] = Counter()  # (stage, cause) -> failures
        self._gone: Counter[tuple[str, str]] = Counter()  # ... of those, still gone
        self._sources: set[str] = set()  # URLs of the failed feeds, sitemaps and listings

    def add(self, failure: FailedUrl) -> None:
        with self._lock:
            self._counts[failure.stage, failure.cause] += 1
            if failure.gone:
                self._gone[failure.stage, failure.cause] += 1
            if failure.stage == "discovery":
                self._sources.add(failure.url)
            if len(self._listed) < self.limit:
                self._listed.append(failure)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    @property
    def listed(self) -> list[FailedUrl]:
        with self._lock:
            return list(self._listed)

    @property
    def sources_failed(self) -> int:
        """How many distinct feeds, sitemaps and listings failed."""
        with self._lock:
            return len(self._sources)

    @property
    def still_gone(self) -> int:
        """How many articles gone at their last answer (404, 410) were asked again and are."""
        with self._lock:
            return sum(self._gone.values())

    def counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)

    def by_cause(self, stage: str) -> dict[str, int]:
        """Failures of one stage by cause."""
        return _sum_by(self.counts(), lambda s, c: c if s == stage else None)

    def of_articles(self, *, still_gone: bool = True) -> dict[str, int]:
        """Failures after discovery, by "stage cause" (``fetch http-503``, ``text empty-body``);
        without the articles still gone unless ``still_gone``."""
        counts = self.counts()
        if not still_gone:
            with self._lock:
                counts = dict(Counter(counts) - self._gone)
        return _sum_by(counts, lambda s, c: f"{s} {c}" if s != "discovery" else None)

    def report(self) -> dict[str, Any]:
        counts = self.counts()
        listed = self.listed
        total = sum(counts.values())
        by_stage = _sum_by(counts, lambda s, c: s)
        return {
            "total": total,
            "by_stage": {s: by_stage[s] for s in (*STAGES, *sorted(by_stage)) if s in by_stage},
            "by_cause": dict(sorted(_sum_by(counts, lambda s, c: c).items())),
            "urls": [f.as_dict() for f in listed],
            "not_listed": total - len(listed),
            # Articles gone (404, 410) at their last crawl too: not counted against the site.
            "still_gone": self.still_gone,
        }


def _sum_by(counts: Mapping[tuple[str, str], int], key: Any) -> dict[str, int]:
    out: Counter[str] = Counter()
    for (stage, cause), n in counts.items():
        name = key(stage, cause)
        if name is not None:
            out[name] += n
    return dict(out)


def count_list(counts: Mapping[str, int]) -> str:
    """``http-503: 4, empty-body: 3``: the largest first."""
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


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
    objects: Iterable[StoredObject] = ()  # read once, a file of them in a crawl
    pending: Sequence[str] = ()
    spool_dir: Path | None = None
    remote: bool = False
    failures: FailureLog = field(default_factory=FailureLog)
    notes: Sequence[str] = field(default_factory=list)
    refused: Sequence[str] = ()  # keys the store refused: they hold other bytes


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def site_health(
    stats: Mapping[str, Any],
    skipped: Mapping[str, int],
    failures: FailureLog,
    config: HealthConfig,
) -> dict[str, Any]:
    """Whether the site still yields articles, and what looks broken when it does not."""
    discovered = int(stats.get(STATS_ARTICLES_DISCOVERED, 0))
    # A replay writes nothing: the articles it extracted are what it gave.
    archived = sum(
        int(stats.get(f"archive/articles/{k}", 0))
        for k in ("new", "revised", "unchanged", "replayed")
    )
    sources = int(stats.get(STATS_SOURCES_REQUESTED, 0))
    sources_failed = failures.sources_failed
    source_causes = failures.by_cause("discovery")
    problems = []
    # Only spiders that discover (NewsSpider sets the count at start) can discover nothing.
    # A source that answered 304 (not modified since the last crawl) is working.
    if STATS_ARTICLES_DISCOVERED in stats and discovered == 0 and not skipped.get("not-modified"):
        if sources_failed:
            problems.append(
                f"discovered no article: {sources_failed} of {_plural(sources, 'source')} "
                f"failed ({count_list(source_causes)})"
            )
        else:
            problems.append("discovered no article: its feeds, sitemaps and listings gave none")
    elif sources and sources_failed >= sources:
        # Articles came only from the revisions due (or a source's partial answer).
        problems.append(
            f"every source failed: {sources_failed} of {_plural(sources, 'source')} "
            f"({count_list(source_causes)})"
        )
    # An article gone (404, 410) at its last crawl and asked again at its recheck, gone still,
    # is listed but neither asked nor failed here: a dead link a feed keeps listing is no sign
    # that the site broke. A URL never seen gone counts, as does a gone one now answering 503.
    still_gone = failures.still_gone
    article_causes = failures.of_articles(still_gone=False)
    # A page with an article's URL that is no article (a gallery, a video) is listed, but it
    # is the site's other content, asked again every crawl: no sign that the site broke.
    failed = sum(n for k, n in article_causes.items() if not k.endswith(" not-article"))
    requested = stats.get(STATS_ARTICLES_REQUESTED)
    asked = max(int(requested) - still_gone, 0) if requested is not None else 0
    if requested is not None and asked > 0 and archived == 0 and failed:
        problems.append(
            f"{_plural(asked, 'article')} requested, none archived ({count_list(article_causes)})"
        )
    elif requested is not None:
        if failed >= config.min_failed and failed > config.max_failed_ratio * asked:
            problems.append(
                f"{failed} of {asked} requested articles failed ({count_list(article_causes)})"
            )
    else:
        # A spider that requests its own way: only the pages that reached the pipeline.
        failed = int(stats.get("archive/articles/failed", 0))
        text_causes = failures.by_cause("text")
        if failed >= config.min_failed and failed > config.max_failed_ratio * (failed + archived):
            problems.append(
                f"{failed} of {failed + archived} article pages failed to parse "
                f"({count_list(text_causes)})"
            )
    return {
        "status": "error" if problems else "ok",
        "problems": problems,
        "sources": {"requested": sources, "failed": sources_failed},
        "sources_failed": dict(sorted(source_causes.items())),
        "still_gone": still_gone,
        "empty_body": int(stats.get("archive/articles/failed/empty-body", 0)),
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
    articles: dict[str, Any] = {
        "discovered": int(stats.get(STATS_ARTICLES_DISCOVERED, 0)),
        "requested": int(stats.get(STATS_ARTICLES_REQUESTED, 0)),
        "new": int(stats.get("archive/articles/new", 0)),
        "revised": int(stats.get("archive/articles/revised", 0)),
        "unchanged": int(stats.get("archive/articles/unchanged", 0)),
        "failed": int(stats.get("archive/articles/failed", 0)),
        "failed_by_reason": failed_reasons,
        # Texts far below the site's usual size: among the failed, kept under flagged/.
        "degenerate": int(stats.get(STATS_ARTICLES_DEGENERATE, 0)),
        "no_title": int(stats.get("archive/articles/no_title", 0)),
    }
    if "archive/articles/replayed" in stats:  # a replay of the archive: extracted, not written
        articles["replayed"] = int(stats["archive/articles/replayed"])
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
        "articles": articles,
        "failures": facts.failures.report(),
        "health": site_health(stats, skipped, facts.failures, facts.health),
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
            "refused": list(facts.refused),
        },
        "notes": list(facts.notes),
    }


def format_summary(report: dict[str, Any]) -> str:
    """The report in a few lines, for the log."""
    pages = report["pages"]
    statuses = ", ".join(f"{k}: {v}" for k, v in pages["by_status"].items()) or "none"
    arts = report["articles"]
    lines = [
        f"crawl {report['crawl_id']} ({report['site']}) {report['finish_reason']} "
        f"in {report['duration_s']:.1f}s",
        f"  pages: {pages['responses']} fetched ({statuses}), "
        f"{pages['download_errors']} download errors, {pages['bytes_received']:,} bytes",
        f"  articles: {arts['discovered']} discovered, {arts.get('requested', 0)} requested, "
        f"{arts['new']} new, "
        f"{arts['revised']} revised, {arts['unchanged']} unchanged, {arts['failed']} failed"
        + (
            f" ({', '.join(f'{k}: {v}' for k, v in arts['failed_by_reason'].items())})"
            if arts["failed_by_reason"]
            else ""
        ),
        f"  warc: {len(report['warc']['files'])} files, {report['warc']['records']} records, "
        f"{report['warc']['bytes']:,} bytes",
    ]
    replay = report.get("replay")
    if isinstance(replay, dict):  # a replay of the archive: compared, nothing written
        compared = replay["articles"]
        lines.append(
            f"  replay: {compared['extracted']} articles, {compared['same']} same text as "
            f"archived, {compared['differ']} differ, {compared['unarchived']} without an "
            f"archived text; {replay['missed']['total']} requests not answered from the archive"
        )
        lines += [f"    differs: {url}" for url in replay.get("differ", [])[:20]]
    failures = report.get("failures") or {}
    if failures.get("total"):
        lines.append(
            f"  failures: {failures['total']} by stage ({count_list(failures['by_stage'])}), "
            f"by cause ({count_list(failures['by_cause'])})"
            + (
                f"; {failures['still_gone']} gone at their last crawl too, not counted "
                "against the site"
                if failures.get("still_gone")
                else ""
            )
        )
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
