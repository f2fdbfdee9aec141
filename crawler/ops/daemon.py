"""The scheduler daemon, ``newsarchive run``: APScheduler 3 starts each site's crawls on cron.

Each crawl is a subprocess (a Twisted reactor cannot restart) with a time limit. A site never
runs twice at once: each job has ``max_instances=1`` and ``coalesce=True`` (missed starts run
once, never pile up), and a start of a site that is still running, from its other schedule, is
skipped. SIGTERM or SIGINT: no new crawls, one SIGTERM to each running crawl (Scrapy closes its
WARCs and uploads), a kill only after the grace period; exit 0.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import logging
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from crawler.ops.jobs import (
    TRIGGER_REVISIONS,
    TRIGGER_SCHEDULE,
    CrawlOutcome,
    CrawlProcess,
    CrawlRequest,
    RunRecorder,
    new_crawl_id,
)
from crawler.ops.metrics import Metrics
from crawler.ops.schedule import ScheduleConfig
from crawler.ops.status import Status, span

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_KILLED = 1
EXIT_USAGE = 2
OUTCOMES_KEPT = 1000  # crawl outcomes the daemon keeps in memory (the catalog keeps them all)
# Once stale, a site is logged again at ERROR at most this often (seconds).
STALE_REPEAT = 3600

RunCrawl = Callable[[CrawlRequest, threading.Event], CrawlOutcome]


def subprocess_crawls(recorder: RunRecorder | None, workdir: Path) -> RunCrawl:
    """The real ``run_crawl``: a subprocess per crawl, its start and end in the job history."""

    def run(request: CrawlRequest, stop: threading.Event) -> CrawlOutcome:
        crawl = CrawlProcess(request, workdir / f"{request.site}-{time.monotonic_ns()}.json")
        crawl.start()
        if recorder is not None:
            recorder.started(crawl)
        try:
            outcome = crawl.wait(stop)
        finally:
            crawl.report_file.unlink(missing_ok=True)
        if recorder is not None:
            recorder.finished(outcome)
        return outcome

    return run


class Daemon:
    """Schedules the sites' crawls; ``run_crawl`` does one crawl (a fake one in unit tests)."""

    def __init__(
        self,
        config: ScheduleConfig,
        run_crawl: RunCrawl,
        *,
        crawl_settings: Mapping[str, str] | None = None,
        metrics: Metrics | None = None,
        status: Callable[[], Status] | None = None,
        heartbeat: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.run_crawl = run_crawl
        self.crawl_settings = dict(crawl_settings or {})
        self.metrics = metrics
        self.status = status
        self.heartbeat = heartbeat
        self.stopping = threading.Event()
        # The latest outcomes only: a daemon runs for months (its memory stays flat).
        self.outcomes: collections.deque[CrawlOutcome] = collections.deque(maxlen=OUTCOMES_KEPT)
        self._running: dict[str, str] = {}  # site -> kind of the crawl running
        self._immediate: set[str] = set()  # sites started by run_now: no scheduled start
        self._lock = threading.Lock()
        self._stale_logged: dict[str, float] = {}
        self.scheduler = self._build_scheduler()

    def _build_scheduler(self) -> BackgroundScheduler:
        scheduler = BackgroundScheduler(
            executors={
                "default": ThreadPoolExecutor(self.config.max_running),
                "checks": ThreadPoolExecutor(1),
            },
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": self.config.misfire_grace,
            },
            timezone=self.config.timezone,
        )
        for schedule in self.config.sites:
            if not schedule.enabled:
                continue
            for kind, trigger in schedule.triggers(self.config.timezone).items():
                scheduler.add_job(
                    self.run_site,
                    trigger,
                    args=(schedule.site, kind),
                    id=f"{schedule.site}:{kind}",
                    name=f"{kind} {schedule.site}",
                )
        if self.status is not None:
            scheduler.add_job(
                self.check_status,
                IntervalTrigger(seconds=self.config.check_interval),
                id="status",
                name="staleness check",
                executor="checks",
                next_run_time=datetime.now(UTC),
            )
        return scheduler

    def running(self) -> dict[str, str]:
        with self._lock:
            return dict(self._running)

    def run_now(self) -> None:
        """Every enabled site once, now (then on its schedule)."""
        now = datetime.now(UTC)
        for schedule in self.config.sites:
            if schedule.enabled:
                with self._lock:
                    self._immediate.add(schedule.site)
                self.scheduler.modify_job(f"{schedule.site}:crawl", next_run_time=now)

    def run_site(self, site: str, kind: str = "crawl") -> CrawlOutcome | None:
        """One scheduled start of a site: skipped while the site runs or the daemon stops."""
        if self.stopping.is_set():
            # A start that falls while the daemon shuts down: said, and counted as skipped.
            logger.info(
                "%s: %s start not made: the daemon is stopping",
                site,
                kind,
                extra={"site": site, "kind": kind},
            )
            if self.metrics is not None:
                self.metrics.skip(site)
            return None
        with self._lock:
            if site in self._running:
                logger.warning(
                    "%s: %s start skipped: a %s crawl of the site is still running",
                    site,
                    kind,
                    self._running[site],
                    extra={"site": site},
                )
                if self.metrics is not None:
                    self.metrics.skip(site)
                return None
            self._running[site] = kind
        schedule = self.config.site(site)
        # The crawl's id from here: every line of the daemon about this crawl names it.
        crawl_id = new_crawl_id(site)
        settings = {**self.crawl_settings, "ARCHIVE_CRAWL_ID": crawl_id}
        if start := self._scheduled_start(site, kind):
            # The same on every replica of this daemon: the site's lease lets one run it.
            settings["ARCHIVE_SCHEDULED_START"] = start
        request = CrawlRequest(
            site,
            settings=settings,
            spider_args=schedule.args,
            trigger=TRIGGER_REVISIONS if kind == "revisions" else TRIGGER_SCHEDULE,
            time_limit=schedule.time_limit,
            grace=self.config.grace,
        )
        logger.info(
            "%s: crawl %s starting (%s schedule)",
            site,
            crawl_id,
            kind,
            extra={"site": site, "crawl_id": crawl_id, "kind": kind},
        )
        if self.metrics is not None:
            self.metrics.started(site)
        try:
            outcome = self.run_crawl(request, self.stopping)
        except Exception:  # one broken start must not take the daemon and its schedule down
            logger.exception(
                "%s: crawl %s could not run",
                site,
                crawl_id,
                extra={"site": site, "crawl_id": crawl_id},
            )
            if self.metrics is not None:
                self.metrics.running.labels(site).set(0)
            return None
        finally:
            with self._lock:
                self._running.pop(site, None)
        self._log_outcome(outcome)
        with self._lock:
            self.outcomes.append(outcome)
        if self.metrics is not None:
            self.metrics.finished(outcome)
        return outcome

    def _scheduled_start(self, site: str, kind: str) -> str | None:
        """The due start this run is (UTC, seconds), or None for a start made by --now."""
        with self._lock:
            if site in self._immediate:
                self._immediate.discard(site)
                return None
        schedule = self.config.site(site)
        lookback = self.config.misfire_grace + schedule.jitter + 60
        due = schedule.due_start(kind, datetime.now(UTC), self.config.timezone, lookback)
        return None if due is None else due.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _log_outcome(self, outcome: CrawlOutcome) -> None:
        report = outcome.report or {}
        articles = report.get("articles", {})
        extra = {"site": outcome.site, "crawl_id": outcome.crawl_id}
        took = (outcome.finished - outcome.started).total_seconds()
        if outcome.ok:
            logger.info(
                "%s: crawl %s ok in %.0fs: %d new articles, %d revised, %d pages",
                outcome.site,
                outcome.crawl_id,
                took,
                articles.get("new", 0),
                articles.get("revised", 0),
                report.get("pages", {}).get("responses", 0),
                extra=extra,
            )
        elif outcome.result == "skipped":
            logger.info(
                "%s: crawl %s not made: %s",
                outcome.site,
                outcome.crawl_id,
                outcome.failure,
                extra=extra,
            )
        elif outcome.result == "stopped":
            logger.info("%s: crawl %s stopped cleanly", outcome.site, outcome.crawl_id, extra=extra)
        else:
            log = report.get("log_file")
            logger.error(
                "%s: crawl %s %s after %.0fs: %s%s",
                outcome.site,
                outcome.crawl_id,
                outcome.result,
                took,
                outcome.failure,
                f" (its log: {log})" if log else "",
                extra=extra,
            )

    def check_status(self) -> None:
        """Record the daemon's heartbeat; log each site's problem (stale, failing) at ERROR,
        again every hour while it lasts."""
        if self.heartbeat is not None:
            try:
                self.heartbeat()
            except Exception:  # a catalog outage must not stop the checks or the daemon
                logger.exception("recording the daemon's heartbeat failed")
        if self.status is None:
            return
        try:
            status = self.status()
        except Exception:
            logger.exception("status check failed")
            return
        now = time.monotonic()
        for site in status.sites:
            problems = site.problems(status.checked)
            if not problems:
                self._stale_logged.pop(site.site, None)
                continue
            last = self._stale_logged.get(site.site)
            if last is None or now - last >= STALE_REPEAT:
                self._stale_logged[site.site] = now
                for problem in problems:
                    logger.error("%s", problem, extra={"site": site.site})

    # ---------------------------------------------------------------- running

    def start(self) -> None:
        self.scheduler.start()
        for job in self.scheduler.get_jobs():
            when = job.next_run_time
            logger.info(
                "scheduled: %s, next %s",
                job.name,
                when.astimezone(UTC).isoformat() if when else "never",
            )

    def stop(self) -> int:
        """No new crawls; running ones get a SIGTERM and the grace. 0 unless one was killed."""
        self.stopping.set()
        running = self.running()
        if running:
            logger.info(
                "stopping: no new crawls; %d running (%s) get up to %s to close their WARCs "
                "and upload",
                len(running),
                ", ".join(sorted(running)),
                span_seconds(self.config.grace),
            )
        else:
            logger.info("stopping: no crawl running")
        self.scheduler.shutdown(wait=True)  # the jobs end their crawls (grace, then kill)
        killed = [o for o in self.outcomes if o.result == "killed"]
        logger.info("stopped%s", f" ({len(killed)} crawls killed)" if killed else "")
        return EXIT_KILLED if killed else EXIT_OK

    def run_forever(self, stop: threading.Event | None = None) -> int:
        """Start, wait for SIGTERM/SIGINT (or ``stop``), then stop gracefully."""
        stop = stop or threading.Event()

        def on_signal(signum: int, _frame: object) -> None:
            if stop.is_set():
                logger.warning("%s again: still stopping", signal.Signals(signum).name)
                return
            logger.info("%s received", signal.Signals(signum).name)
            stop.set()
            self.stopping.set()  # at once: crawl threads send their SIGTERM now

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, on_signal)
        self.start()
        while not stop.wait(1.0):
            pass
        return self.stop()


def span_seconds(seconds: float) -> str:
    return span(timedelta(seconds=seconds))


# ------------------------------------------------------------------ command line


def cmd_run(ns: argparse.Namespace) -> int:
    from crawler.crawl.config import check_settings
    from crawler.crawl.runner import locations
    from crawler.crawl.spider import CrawlArgs
    from crawler.ops.common import command_settings, spider_names
    from crawler.ops.schedule import ScheduleError
    from crawler.ops.status import collect_status, forget_heartbeat, record_heartbeat
    from crawler.store.base import StoreError

    try:
        settings, overrides = command_settings(ns)
        known = spider_names()
        config = ScheduleConfig.from_settings(settings, known, file=ns.schedule)
        port, address = metrics_endpoint(settings, ns.metrics_port)
        where = locations(settings)
    except (ScheduleError, StoreError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # The crawls' own settings and each site's spider arguments, checked now rather than by
    # every scheduled crawl in turn.
    errors = check_settings(settings)
    for schedule in config.sites:
        try:
            CrawlArgs.check(schedule.args)
        except ValueError as exc:
            errors.append(f"{config.source}: site {schedule.site}: args: {exc}")
    if errors:
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if ns.sites:
        unknown = [s for s in ns.sites if s not in known]
        if unknown:
            print(f"error: unknown site(s) {', '.join(unknown)}", file=sys.stderr)
            return EXIT_USAGE
        config = dataclasses.replace(
            config, sites=tuple(s for s in config.sites if s.site in ns.sites)
        )
    if ns.dry_run:
        print(format_plan(config))
        return EXIT_OK

    def status() -> Status:
        return collect_status(config, where.catalog_url, where.spool)

    def heartbeat() -> None:
        if where.catalog_url:
            record_heartbeat(where.catalog_url, socket.gethostname())

    metrics = Metrics(status)
    if port:
        try:
            bound = metrics.serve(port, address)
        except OSError as exc:
            print(f"error: metrics port {address}:{port}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        logger.info("metrics on http://%s:%d/metrics", address, bound)
    recorder = RunRecorder(where.catalog_url) if where.catalog_url else None
    logger.info(
        "newsarchive daemon: %d sites from %s, store %s, up to %d crawls at once",
        sum(s.enabled for s in config.sites),
        config.source,
        where.store_uri,
        config.max_running,
    )
    with tempfile.TemporaryDirectory(prefix="newsarchive-daemon-") as tmp:
        daemon = Daemon(
            config,
            subprocess_crawls(recorder, Path(tmp)),
            crawl_settings=overrides,
            metrics=metrics,
            status=status,
            heartbeat=heartbeat,
        )
        if ns.now:
            daemon.run_now()
        try:
            code = daemon.run_forever()
        finally:
            metrics.close()
            if recorder is not None:
                recorder.close()
        if where.catalog_url and code == EXIT_OK:
            # Stopped cleanly (a rollout replaced it, an operator stopped it): not a dead
            # daemon that status --check should wait for.
            try:
                forget_heartbeat(where.catalog_url, socket.gethostname())
            except Exception as exc:  # the catalog gone: status sees an old heartbeat
                logger.warning("the daemon's heartbeat could not be removed: %s", exc)
        return code


def metrics_endpoint(settings: Any, port: int | None = None) -> tuple[int, str]:
    """The metrics server's port (``--metrics-port`` or ``ARCHIVE_METRICS_PORT``, 0 = off) and
    address (``ARCHIVE_METRICS_ADDRESS``); a bad value is a ``ValueError`` that names it.
    """
    import ipaddress

    from crawler.options import setting_int

    if port is None:
        port = setting_int(settings, "ARCHIVE_METRICS_PORT", minimum=0, maximum=65535)
    elif not 0 <= port <= 65535:
        raise ValueError(f"--metrics-port must be 0 to 65535, got {port}")
    raw = settings.get("ARCHIVE_METRICS_ADDRESS")
    address = "127.0.0.1" if raw is None or raw == "" else raw
    try:
        if not isinstance(address, str):
            raise ValueError(address)
        if address != "localhost":
            ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(
            "ARCHIVE_METRICS_ADDRESS must be an IP address to listen on (127.0.0.1, 0.0.0.0, "
            f"::) or localhost, got {raw!r}"
        ) from None
    return port, address


def format_plan(config: ScheduleConfig) -> str:
    now = datetime.now(UTC)
    lines = [f"schedule from {config.source} (times {config.timezone}):"]
    for s in config.sites:
        if not s.enabled:
            lines.append(f"  {s.site:10} disabled")
            continue
        upcoming = s.next_run(now, config.timezone)
        nxt = f"{upcoming[0]:%Y-%m-%d %H:%M:%S %Z} ({upcoming[1]})" if upcoming else "never"
        args = " ".join(f"-a {k}={v}" for k, v in s.args.items())
        lines.append(
            f"  {s.site:10} crawl {s.crawl!r}, revisions {s.revisions or '(none)'!r}, "
            f"jitter {s.jitter}s, limit {span_seconds(s.time_limit)}, stale after "
            f"{span_seconds(s.stale_after.total_seconds())}; next {nxt}"
            + (f"; {args}" if args else "")
        )
    return "\n".join(lines)


def add_commands(sub: Any) -> None:
    """Register ``run`` and ``status`` on the ``newsarchive`` subparsers."""
    from crawler.ops.common import settings_option
    from crawler.ops.status import add_status_command

    run = sub.add_parser(
        "run",
        help="the scheduler daemon: every site on its cron schedule until SIGTERM",
        description="Crawl every site on its schedule (ARCHIVE_SCHEDULE_CRON, ARCHIVE_SCHEDULE, "
        "or a schedule file), each crawl in its own process with a time limit, never two of "
        "one site at once. SIGTERM or SIGINT: no new crawls, running ones close their WARCs "
        "and upload within ARCHIVE_SCHEDULE_GRACE seconds, exit 0.",
        epilog="examples:\n  newsarchive run\n  newsarchive run --schedule /etc/newsarchive/"
        "schedule.toml --metrics-port 9410\n  newsarchive run --dry-run      check the schedule "
        "and show the next runs\n  newsarchive run --now --sites tdi irna",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--store", default=None, help="store URI or path (as for crawl)")
    run.add_argument("--schedule", default=None, help="schedule file (TOML; see deploy/)")
    run.add_argument("--sites", nargs="*", default=None, help="only these sites")
    run.add_argument("--now", action="store_true", help="crawl every site once at start too")
    run.add_argument("--dry-run", action="store_true", help="check the schedule, print it, exit")
    run.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port"
    )
    run.add_argument("--proxy", default=None, help="send every request through this proxy")
    settings_option(run, "Scrapy or ARCHIVE_* setting, passed on to every crawl")
    run.set_defaults(func=cmd_run)
    add_status_command(sub, settings_option)
