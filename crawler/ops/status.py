"""What ran, what runs next, what is wrong: ``newsarchive status`` and the daemon's checks.

Freshness is the time since a site's newest article was first captured (the catalog). A site
is stale when that exceeds its threshold (``stale_after``); a site with no article at all is
stale once its first recorded run is older than the threshold. A site is failing when its
latest ``ARCHIVE_STATUS_MAX_FAILED_RUNS`` runs all failed, or at once when its last run failed
and it never archived an article. Beyond the sites: no catalog where the configuration says
(the store is elsewhere, or nothing ran), and a daemon whose heartbeat in the catalog is older
than three check intervals. ``status --check`` exits 1 on any of them; never-run and
unscheduled (``enabled = false``) sites are no alerts by themselves.

The URLs the last run of a site failed on come from its run report in the store (or in the
spool while the store has not taken it yet); a report that is missing or unreadable is no
problem: the runs table's own ``failure`` says why the run failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from crawler.catalog.db import Catalog, Lease, Run
from crawler.ops.schedule import ScheduleConfig
from crawler.store.base import Store
from crawler.util import without_password

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_STALE = 1
EXIT_USAGE = 2

SHOWN_FAILURES = 3  # failed URLs per site in the text output (--json has all of them)
ReportReader = Callable[[str, str], Mapping[str, Any] | None]  # (site, crawl_id) -> the report


@dataclass(frozen=True, slots=True)
class Failure:
    """One URL a run failed on, as its report lists it."""

    url: str
    stage: str | None = None
    cause: str | None = None
    status: int | None = None
    error: str | None = None
    attempts: int | None = None

    def describe(self) -> str:
        why = [self.cause] if self.cause else []
        if self.status and str(self.status) not in (self.cause or ""):  # not "http-503" twice
            why.append(f"HTTP {self.status}")
        if self.error:
            error = " ".join(self.error.split())
            why.append(error if len(error) <= 100 else error[:99] + "…")
        if self.attempts and self.attempts > 1:
            why.append(f"after {self.attempts} attempts")
        stage = f"{self.stage}: " if self.stage else ""
        return f"{stage}{self.url}" + (f" ({', '.join(why)})" if why else "")

    def as_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "stage": self.stage,
            "cause": self.cause,
            "status": self.status,
            "error": self.error,
            "attempts": self.attempts,
        }


def report_failures(report: Mapping[str, Any]) -> tuple[tuple[Failure, ...], int]:
    """The failed URLs a run report lists, and how many failed in all (listed or not).

    Reads both shapes: ``failures: {total, urls: [{url, stage, cause, status, error,
    attempts}], not_listed}`` and the older ``articles: {failures: [{url, reason, detail}]}``.
    """
    block = report.get("failures")
    if isinstance(block, Mapping):
        listed = tuple(
            Failure(
                url=str(entry["url"]),
                stage=_text(entry.get("stage")),
                cause=_text(entry.get("cause")),
                status=_number(entry.get("status")),
                error=_text(entry.get("error")),
                attempts=_number(entry.get("attempts")),
            )
            for entry in _entries(block.get("urls"))
        )
        total = _number(block.get("total"))
        if total is None:
            total = len(listed) + (_number(block.get("not_listed")) or 0)
        return listed, max(total, len(listed))
    articles = report.get("articles")
    if not isinstance(articles, Mapping):
        return (), 0
    listed = tuple(
        Failure(
            url=str(entry["url"]),
            cause=_text(entry.get("reason")),
            error=_text(entry.get("detail")),
        )
        for entry in _entries(articles.get("failures"))
    )
    return listed, max(_number(articles.get("failed")) or 0, len(listed))


def _entries(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [e for e in value if isinstance(e, Mapping) and e.get("url")]


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _number(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return int(value)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class SiteStatus:
    site: str
    enabled: bool
    stale_after: timedelta
    last_run: Run | None = None
    next_run: datetime | None = None
    next_kind: str | None = None
    newest_article: datetime | None = None
    first_run: datetime | None = None
    stale: bool = False
    failed_in_a_row: int = 0
    last_failure: str | None = None
    max_failed_runs: int = 3
    failures: tuple[Failure, ...] = ()  # the URLs the last run failed on (its report's list)
    failures_total: int = 0  # how many it failed on, those the report did not list included

    def freshness(self, now: datetime) -> timedelta | None:
        return None if self.newest_article is None else now - self.newest_article

    @property
    def failing(self) -> bool:
        if not self.enabled or self.failed_in_a_row == 0:
            return False
        return self.failed_in_a_row >= self.max_failed_runs or self.newest_article is None

    def problems(self, now: datetime) -> list[str]:
        """What is wrong with the site (empty when nothing is)."""
        found = []
        if self.stale:
            found.append(str(self.problem(now)))
        if self.failing:
            why = self.last_failure or "failed"
            if self.newest_article is None:
                found.append(
                    f"site {self.site} has archived no article and its last run failed: {why}"
                )
            else:
                found.append(
                    f"site {self.site}: its last {self.failed_in_a_row} runs failed "
                    f"(ARCHIVE_STATUS_MAX_FAILED_RUNS {self.max_failed_runs}); latest: {why}"
                )
        return found

    @property
    def running(self) -> bool:
        return self.last_run is not None and self.last_run.result == "running"

    def problem(self, now: datetime) -> str | None:
        if not self.stale:
            return None
        age = self.freshness(now)
        if age is None:
            assert self.first_run is not None
            return (
                f"site {self.site} is stale: no article archived since its first run "
                f"{ago(now - self.first_run)} (threshold {span(self.stale_after)})"
            )
        return (
            f"site {self.site} is stale: no new article for {span(age)} "
            f"(threshold {span(self.stale_after)})"
        )

    def as_json(self, now: datetime) -> dict[str, Any]:
        age = self.freshness(now)
        run = self.last_run
        return {
            "site": self.site,
            "enabled": self.enabled,
            "last_run": None
            if run is None
            else {
                "crawl_id": run.crawl_id,
                "trigger": run.trigger,
                "started": run.started,
                "finished": run.finished,
                "result": run.result,
                "exit_code": run.exit_code,
                "new_articles": run.new_articles,
                "revised_articles": run.revised_articles,
                "pages": run.pages,
                "failure": run.failure,
            },
            "next_run": None if self.next_run is None else self.next_run.isoformat(),
            "next_run_kind": self.next_kind,
            "newest_article": None
            if self.newest_article is None
            else self.newest_article.isoformat(),
            "freshness_s": None if age is None else round(age.total_seconds()),
            "stale_after_s": round(self.stale_after.total_seconds()),
            "stale": self.stale,
            "failed_in_a_row": self.failed_in_a_row,
            "failing": self.failing,
            "last_failures": [f.as_json() for f in self.failures],
            "last_failures_total": self.failures_total,
            "problems": self.problems(now),
        }


@dataclass(frozen=True, slots=True)
class Status:
    checked: datetime
    sites: tuple[SiteStatus, ...]
    backlog_objects: int = 0
    backlog_bytes: int = 0
    spool: str = ""
    catalog: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    catalog_found: bool = True
    daemons: tuple[tuple[str, datetime], ...] = ()  # (host, last heartbeat)
    check_interval: timedelta = timedelta(minutes=10)  # how often a daemon checks in
    schedule: str = "settings"  # the schedule file read, or "settings"
    leases: tuple[Lease, ...] = ()
    waiting: dict[str, int] = field(default_factory=dict)  # "<host>:<spool>" -> articles

    def held(self) -> list[Lease]:
        """The leases held now: the crawls running, on any machine sharing the catalog."""
        return [lease for lease in self.leases if lease.live(self.checked)]

    @property
    def daemon_max_age(self) -> timedelta:
        """A daemon is overdue after three missed check-ins (and a minute's slack)."""
        return 3 * self.check_interval + timedelta(minutes=1)

    @property
    def stale(self) -> list[SiteStatus]:
        return [s for s in self.sites if s.stale]

    def dead_daemons(self) -> list[tuple[str, timedelta]]:
        """Daemons whose heartbeat is overdue (those silent for a week count as retired)."""
        out = []
        for host, beat in self.daemons:
            age = self.checked - beat
            if self.daemon_max_age < age < RETIRED:
                out.append((host, age))
        return out

    def problems(self) -> list[str]:
        """Everything ``status --check`` fails on, one line each."""
        found = []
        if not self.catalog_found:
            found.append(
                f"no catalog at {self.catalog}: nothing has run with this store and catalog, "
                "or they are elsewhere (--store, ARCHIVE_STORE_URI, ARCHIVE_CATALOG_URL)"
            )
        for host, age in self.dead_daemons():
            found.append(
                f"the daemon on {host} last checked in {ago(age)} "
                f"(it checks in every {span(self.check_interval)}): is it running?"
            )
        for site in self.sites:
            found.extend(site.problems(self.checked))
        return found

    def as_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked.isoformat(),
            "catalog": self.catalog,
            "schedule": self.schedule,
            "sites": [s.as_json(self.checked) for s in self.sites],
            "upload_backlog": {
                "objects": self.backlog_objects,
                "bytes": self.backlog_bytes,
                "spool": self.spool,
            },
            "stale": [s.site for s in self.stale],
            "failing": [s.site for s in self.sites if s.failing],
            "daemons": {host: beat.isoformat() for host, beat in self.daemons},
            "leases": [
                {
                    "site": lease.site,
                    "crawl_id": lease.crawl_id,
                    "host": lease.host,
                    "pid": lease.pid,
                    "heartbeat": lease.heartbeat,
                    "expires": lease.expires,
                    "held": lease.live(self.checked),
                    "last_start": lease.last_start,
                }
                for lease in self.leases
            ],
            "waiting_for_the_store": dict(self.waiting),
            "problems": self.problems(),
            "notes": list(self.notes),
        }


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


RETIRED = timedelta(days=7)  # a daemon silent this long is taken as retired, not dead


@dataclass(frozen=True, slots=True)
class CatalogFacts:
    last: dict[str, Run] = field(default_factory=dict)
    first: dict[str, str] = field(default_factory=dict)
    newest: dict[str, str] = field(default_factory=dict)
    streaks: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    beats: dict[str, str] = field(default_factory=dict)
    found: bool = True
    leases: tuple[Lease, ...] = ()  # the sites' leases: who crawls each now, or did last
    waiting: dict[str, int] = field(default_factory=dict)  # spool -> articles not stored yet


def read_catalog(url: str | None, max_failed_runs: int = 3) -> CatalogFacts:
    """What the catalog says per site, and the daemons' heartbeats.

    A SQLite catalog that does not exist is not created: ``found`` is False.
    """
    if url is None:
        return CatalogFacts()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return CatalogFacts(found=False)
    catalog = Catalog(url)
    try:
        return CatalogFacts(
            last=catalog.last_runs(),
            first=catalog.first_runs(),
            newest=catalog.newest_articles(),
            streaks=catalog.failed_streaks(max_failed_runs),
            beats=catalog.heartbeats(),
            leases=tuple(catalog.leases()),
            waiting=catalog.waiting(),
        )
    finally:
        catalog.close()


def forget_heartbeat(url: str, host: str) -> None:
    """The daemon stopped cleanly: ``status --check`` does not wait for it to check in."""
    catalog = Catalog(url)
    try:
        catalog.forget_beat(host)
    finally:
        catalog.close()


def record_heartbeat(url: str, host: str) -> None:
    """The daemon checks in (each status check): ``status --check`` sees it alive."""
    catalog = Catalog(url)
    try:
        catalog.beat(host, datetime.now(UTC))
    finally:
        catalog.close()


def upload_backlog(spool: Path) -> tuple[int, int]:
    """(objects, bytes) waiting in the spool for the store."""
    from crawler.store.spool import Backlog, pending_backlogs

    objects = size = 0
    for path in pending_backlogs(spool):
        try:
            entries = Backlog.load(path).entries
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("unreadable backlog list %s: %s", path, exc)
            continue
        objects += len(entries)
        size += sum(int(e.get("size", 0)) for e in entries)
    return objects, size


class StoredReports:
    """Run reports by (site, crawl id): the spool's copy waiting for the store, else the store's.

    Anything missing or unreadable is None (logged at DEBUG): the report only adds detail.
    A store that fails once (down, no credentials) is not asked again, and is asked without
    retries: ``status`` is a quick look, and a health check's time is short.
    """

    def __init__(self, store_uri: str, options: Mapping[str, object], spool: Path) -> None:
        self.store_uri = store_uri
        self.options = {**options, "ARCHIVE_STORE_MAX_ATTEMPTS": 1}
        self.spool = spool
        self._store: Store | None = None
        self._store_down = False

    def __call__(self, site: str, crawl_id: str) -> Mapping[str, Any] | None:
        from crawler.layout import report_key
        from crawler.store.spool import Backlog

        key = report_key(site, crawl_id)
        try:
            spooled = Backlog(self.spool, crawl_id, self.store_uri).path_of(key)
            if spooled.is_file():
                data = spooled.read_bytes()
            elif self._store_down:
                return None
            else:
                data = self.fetch(key)
            report = json.loads(data)
        except (OSError, ValueError) as exc:  # StoreError is an OSError; ValueError: bad JSON
            logger.debug("no readable report %s: %s", key, exc)
            return None
        return report if isinstance(report, Mapping) else None

    def fetch(self, key: str) -> bytes:
        try:
            return self.store().get_bytes(key)
        except FileNotFoundError:
            raise
        except OSError:
            self._store_down = True
            raise

    def store(self) -> Store:
        from crawler.store.uri import open_store

        if self._store is None:
            self._store = open_store(self.store_uri, self.options)
        return self._store


def collect_status(
    config: ScheduleConfig,
    catalog_url: str | None,
    spool: Path,
    now: datetime | None = None,
    reports: ReportReader | None = None,
) -> Status:
    """Every site's status (reads the catalog and the spool; raises SQLAlchemyError).

    With ``reports``, the failed URLs of each site's last finished run are read from its
    report (the daemon's metrics leave it out: a scrape reads no store).
    """
    now = now or datetime.now(UTC)
    facts = read_catalog(catalog_url, config.max_failed_runs)
    last, first, newest = facts.last, facts.first, facts.newest
    sites = []
    for schedule in config.sites:
        run = last.get(schedule.site)
        failures: tuple[Failure, ...] = ()
        failures_total = 0
        if reports is not None and run is not None and run.result != "running":
            report = reports(schedule.site, run.crawl_id)
            if report is not None:
                failures, failures_total = report_failures(report)
        upcoming = schedule.next_run(now, config.timezone) if schedule.enabled else None
        newest_at = _time(newest.get(schedule.site))
        first_at = _time(first.get(schedule.site))
        if not schedule.enabled:
            stale = False
        elif newest_at is not None:
            stale = now - newest_at > schedule.stale_after
        else:
            stale = first_at is not None and now - first_at > schedule.stale_after
        sites.append(
            SiteStatus(
                site=schedule.site,
                enabled=schedule.enabled,
                stale_after=schedule.stale_after,
                last_run=run,
                next_run=upcoming[0] if upcoming else None,
                next_kind=upcoming[1] if upcoming else None,
                newest_article=newest_at,
                first_run=first_at,
                stale=stale,
                failed_in_a_row=facts.streaks.get(schedule.site, (0, None))[0],
                last_failure=facts.streaks.get(schedule.site, (0, None))[1],
                max_failed_runs=config.max_failed_runs,
                failures=failures,
                failures_total=failures_total,
            )
        )
    objects, size = upload_backlog(spool)
    return Status(
        checked=now,
        sites=tuple(sites),
        backlog_objects=objects,
        backlog_bytes=size,
        spool=str(spool),
        catalog=_safe_url(catalog_url),
        catalog_found=facts.found,
        daemons=tuple((host, _parse_beat(beat)) for host, beat in sorted(facts.beats.items())),
        check_interval=timedelta(seconds=config.check_interval),
        schedule=config.source,
        leases=facts.leases,
        waiting=facts.waiting,
    )


def _parse_beat(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _safe_url(url: str | None) -> str | None:
    """The catalog URL without a password."""
    return None if url is None else without_password(url)


def span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600}h"


def ago(delta: timedelta) -> str:
    return f"{span(delta)} ago"


def format_status(status: Status) -> str:
    now = status.checked
    rows = [("site", "last run", "result", "new", "next run", "newest article", "state")]
    for s in status.sites:
        run = s.last_run
        started = _time(run.started) if run else None
        next_run = (
            f"{s.next_run.astimezone(UTC):%Y-%m-%d %H:%M}Z {s.next_kind}"
            if s.next_run
            else ("not scheduled" if not s.enabled else "-")
        )
        age = s.freshness(now)
        if s.failing:
            state = "FAILING"
        elif s.stale:
            state = "STALE"
        elif not s.enabled:
            state = "not scheduled"
        else:
            state = "never run" if run is None else "ok"
        rows.append(
            (
                s.site,
                ago(now - started) if started else "never",
                "-" if run is None else run.result,
                "-" if run is None or run.new_articles is None else str(run.new_articles),
                next_run,
                "none yet" if age is None else ago(age),
                state,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for s in status.sites:
        lines.extend(last_run_lines(s))
    lines.append(
        f"upload backlog: {status.backlog_objects} objects ({status.backlog_bytes:,} bytes) "
        f"in {status.spool}"
    )
    lines.append(f"catalog: {status.catalog or 'off'}")
    lines.append(
        f"schedule: {status.schedule}"
        if status.schedule != "settings"
        else "schedule: ARCHIVE_SCHEDULE_CRON / ARCHIVE_SCHEDULE (no schedule file)"
    )
    for host, beat in status.daemons:
        lines.append(f"daemon on {host}: last checked in {ago(now - beat)}")
    for place, count in sorted(status.waiting.items()):
        lines.append(
            f"waiting for the store: {count} archived articles in the spool {place} "
            "(`newsarchive upload` there sends them)"
        )
    for lease in status.held():
        lines.append(
            f"crawling now: {lease.site} by {lease.describe()}, lease renewed "
            f"{lease.heartbeat}, held until {lease.expires}"
        )
    if not status.catalog_found:
        lines.append(f"no catalog at {status.catalog}: nothing has run with this store yet")
    return "\n".join(lines)


def last_run_lines(site: SiteStatus) -> list[str]:
    """Why the last run failed and the first URLs it failed on (none when all went well)."""
    run = site.last_run
    if run is None or (not run.failure and not site.failures_total):
        return []
    head = f"{site.site}: last run {run.result}"
    if run.failure:
        head += f": {run.failure}"
    if site.failures_total:
        count = site.failures_total
        head += f"; {count} URL{'s' if count != 1 else ''} failed"
    lines = [head]
    lines.extend(f"  {f.describe()}" for f in site.failures[:SHOWN_FAILURES])
    more = site.failures_total - min(len(site.failures), SHOWN_FAILURES)
    if more > 0:
        lines.append(f"  … and {more} more (newsarchive status --json has the report's list)")
    return lines


def add_status_command(sub: Any, settings_option: Any) -> None:
    status = sub.add_parser(
        "status",
        help="per site: last run, next run, freshness, upload backlog; --check for monitors",
        description="Per site: the last run (when, result, new articles, the URLs it failed "
        "on), the next run from the daemon's schedule (ARCHIVE_SCHEDULE_FILE, or 'not "
        "scheduled'), the time since the newest article (freshness) and the upload backlog. "
        "A site with no new article for longer than its threshold (ARCHIVE_STATUS_STALE_AFTER, "
        "or stale_after in the schedule) is stale; a site whose latest runs failed "
        "(ARCHIVE_STATUS_MAX_FAILED_RUNS, or its only run when it never archived anything) is "
        "failing; a daemon whose heartbeat is overdue, or no catalog where the configuration "
        "points, is a problem too: an ERROR line each, and with --check exit 1.",
        epilog="examples:\n  newsarchive status\n  newsarchive status --json\n"
        "  newsarchive status --check --quiet      exit 1 on any problem (monitors)\n"
        "  newsarchive status --metrics > /var/lib/node_exporter/newsarchive.prom",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("--store", default=None, help="store URI or path (as for crawl)")
    status.add_argument("--schedule", default=None, help="schedule file (TOML)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument(
        "--metrics", action="store_true", help="Prometheus text format (freshness, staleness)"
    )
    status.add_argument(
        "--check",
        action="store_true",
        help="exit 1 on any problem: a site stale or failing, no catalog, a daemon not alive",
    )
    status.add_argument("--quiet", action="store_true", help="print only problems")
    settings_option(status, "Scrapy or ARCHIVE_* setting")
    status.set_defaults(func=cmd_status)


def cmd_status(ns: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from crawler.crawl.runner import locations
    from crawler.ops.common import command_settings
    from crawler.ops.schedule import ScheduleError
    from crawler.store.base import StoreError, store_options

    try:
        settings, _ = command_settings(ns)
        config = ScheduleConfig.from_settings(settings, _sites(), file=ns.schedule)
        where = locations(settings)
    except (ScheduleError, StoreError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    reports = StoredReports(
        str(settings.get("ARCHIVE_STORE_URI") or ""), store_options(settings), where.spool
    )
    try:
        status = collect_status(config, where.catalog_url, where.spool, reports=reports)
    except SQLAlchemyError as exc:
        print(f"error: catalog {_safe_url(where.catalog_url)} unreadable: {exc}", file=sys.stderr)
        return EXIT_STALE
    problems = status.problems()
    for problem in problems:
        logger.error("%s", problem)
    if ns.metrics:
        sys.stdout.write(render_status(status))
    elif ns.json:
        print(json.dumps(status.as_json(), indent=2))
    elif not ns.quiet:
        print(format_status(status))
    return EXIT_STALE if ns.check and problems else EXIT_OK


def _sites() -> list[str]:
    from crawler.ops.common import spider_names

    return spider_names()


# -- Prometheus: the same status as metrics (the daemon serves them, `status --metrics`) ---
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
    failing = GaugeMetricFamily(
        "newsarchive_site_failed_runs_in_a_row",
        "How many of the site's latest runs failed in a row",
        labels=["site"],
    )
    for site in status.sites:
        age = site.freshness(status.checked)
        if age is not None:
            fresh.add_metric([site.site], age.total_seconds())
        stale.add_metric([site.site], 1 if site.stale else 0)
        threshold.add_metric([site.site], site.stale_after.total_seconds())
        failing.add_metric([site.site], site.failed_in_a_row)
    yield fresh
    yield stale
    yield threshold
    yield failing
    beats = GaugeMetricFamily(
        "newsarchive_daemon_heartbeat_age_seconds",
        "Seconds since each daemon last checked in",
        labels=["host"],
    )
    for host, beat in status.daemons:
        beats.add_metric([host], (status.checked - beat).total_seconds())
    yield beats
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
