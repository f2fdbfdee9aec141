"""One crawl of one site as a subprocess: time limit, graceful stop, and its row in the catalog.

The crawl runs ``python -m crawler.crawl.runner SITE`` in a session of its own, so a Ctrl-C at the
terminal reaches only the parent, which sends the crawl one SIGTERM (Scrapy then closes the
spider: WARCs closed, uploads done, report written). A crawl still running ``grace`` seconds
later is killed with its whole process group (browsers included).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crawler.catalog.db import Catalog, Run, iso
from crawler.constants import EXIT_BUSY, EXIT_FAILED, EXIT_OK
from crawler.crawl.runner import crawl_failed

logger = logging.getLogger(__name__)

CREDENTIAL_SETTINGS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
TRIGGER_COMMAND = "command"  # newsarchive crawl / demo
TRIGGER_SCHEDULE = "schedule"  # the daemon's crawl schedule
TRIGGER_REVISIONS = "revisions"  # the daemon's revision schedule


@dataclass(frozen=True, slots=True)
class CrawlRequest:
    site: str
    settings: Mapping[str, str] = field(default_factory=dict)
    spider_args: Mapping[str, str] = field(default_factory=dict)
    trigger: str = TRIGGER_COMMAND
    time_limit: float | None = None
    grace: float = 120.0
    # The crawl's log goes to its file; lines at this level and above to stderr too
    # ("NONE": none). The daemon's stderr (journald, docker logs) gets the crawls' errors.
    terminal_level: str = "ERROR"


@dataclass(frozen=True, slots=True)
class CrawlOutcome:
    site: str
    crawl_id: str
    trigger: str
    started: datetime
    finished: datetime
    exit_code: int
    result: str  # ok | failed | timeout | stopped | killed | skipped (the site's lease was held)
    failure: str | None
    report: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return self.result == "ok"

    def run_row(self) -> Run:
        report = self.report or {}
        articles = report.get("articles", {})
        return Run(
            crawl_id=self.crawl_id,
            site=self.site,
            trigger=self.trigger,
            host=socket.gethostname(),
            started=iso(self.started),
            finished=iso(self.finished),
            result=self.result,
            exit_code=self.exit_code,
            new_articles=articles.get("new"),
            revised_articles=articles.get("revised"),
            pages=report.get("pages", {}).get("responses"),
            warc_bytes=report.get("warc", {}).get("bytes"),
            pending_uploads=report.get("upload", {}).get("pending"),
            failure=self.failure,
        )


def split_credentials(settings: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(settings for the command line, environment for the crawl).

    Credentials go to the crawl through its environment (boto3 reads them there): a command
    line is visible to every user in ``ps``, and Scrapy logs the settings it was given.
    """
    overrides = dict(settings)
    env = dict(os.environ)
    for name in CREDENTIAL_SETTINGS:
        if name in overrides:
            env[name] = overrides.pop(name)
    return overrides, env


def new_crawl_id(site: str) -> str:
    from crawler.crawl.ledger import new_crawl_id as make

    return make(site)


class CrawlProcess:
    """A crawl subprocess. ``poll()`` enforces the time limit and the kill after the grace."""

    def __init__(
        self, request: CrawlRequest, report_file: Path, progress_file: Path | None = None
    ) -> None:
        self.request = request
        self.report_file = report_file
        self.progress_file = progress_file
        self.crawl_id = request.settings.get("ARCHIVE_CRAWL_ID") or new_crawl_id(request.site)
        self.started = datetime.now(UTC)
        self._t0 = time.monotonic()
        self._proc: subprocess.Popen[bytes] | None = None
        self._term_at: float | None = None
        self._killed = False
        self._why_stopped: str | None = None  # "timeout" | "stopped"

    def command(self) -> tuple[list[str], dict[str, str]]:
        overrides, env = split_credentials(self.request.settings)
        overrides["ARCHIVE_CRAWL_ID"] = self.crawl_id
        cmd = [sys.executable, "-m", "crawler.crawl.runner", self.request.site]
        cmd += ["--report-file", str(self.report_file)]
        cmd += ["--terminal-level", self.request.terminal_level]
        if self.progress_file is not None:
            cmd += ["--progress-file", str(self.progress_file)]
        cmd += [x for k, v in overrides.items() for x in ("-s", f"{k}={v}")]
        cmd += [x for k, v in self.request.spider_args.items() for x in ("-a", f"{k}={v}")]
        return cmd, env

    def start(self) -> None:
        cmd, env = self.command()
        self.started = datetime.now(UTC)
        self._t0 = time.monotonic()
        self._proc = subprocess.Popen(cmd, env=env, start_new_session=True)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def stop(self, why: str = "stopped") -> None:
        """One SIGTERM: Scrapy closes the spider cleanly; a second signal would not."""
        if self._proc is None or self._proc.poll() is not None or self._term_at is not None:
            return
        self._why_stopped = why
        self._term_at = time.monotonic()
        logger.info(
            "crawl %s of %s: %s, SIGTERM sent (killed if still running in %.0fs)",
            self.crawl_id,
            self.request.site,
            "time limit reached" if why == "timeout" else "stopping",
            self.request.grace,
            extra={"site": self.request.site, "crawl_id": self.crawl_id},
        )
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._killed = True
        logger.error(
            "crawl %s of %s: still running %.0fs after SIGTERM: killed (its open WARC is "
            "recovered by the next crawl)",
            self.crawl_id,
            self.request.site,
            time.monotonic() - (self._term_at or time.monotonic()),
            extra={"site": self.request.site, "crawl_id": self.crawl_id},
        )
        self._signal(signal.SIGKILL, group=True)

    def _signal(self, signum: int, *, group: bool = False) -> None:
        assert self._proc is not None
        try:
            if group:
                os.killpg(self._proc.pid, signum)
            else:
                self._proc.send_signal(signum)
        except ProcessLookupError:  # it ended meanwhile
            pass

    def poll(self) -> int | None:
        """The exit code once ended; meanwhile applies the time limit and the grace."""
        assert self._proc is not None, "start() first"
        code = self._proc.poll()
        if code is not None:
            return code
        now = time.monotonic()
        limit = self.request.time_limit
        if self._term_at is None and limit is not None and now - self._t0 >= limit:
            self.stop("timeout")
        elif self._term_at is not None and now - self._term_at >= self.request.grace:
            self.kill()
        return None

    def wait(self, stop: threading.Event | None = None, tick: float = 0.2) -> CrawlOutcome:
        """Block until the crawl ends; ``stop`` being set sends it the SIGTERM."""
        while self.poll() is None:
            if stop is not None and stop.is_set():
                self.stop()
            time.sleep(tick)
        return self.outcome()

    def outcome(self) -> CrawlOutcome:
        assert self._proc is not None and self._proc.returncode is not None
        code = self._proc.returncode
        report: dict[str, Any] | None = None
        if self.report_file.exists():
            try:
                report = json.loads(self.report_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                logger.warning("unreadable crawl report %s: %s", self.report_file, exc)
        result, failure = self._classify(code, report)
        return CrawlOutcome(
            site=self.request.site,
            crawl_id=self.crawl_id,
            trigger=self.request.trigger,
            started=self.started,
            finished=datetime.now(UTC),
            exit_code=code,
            result=result,
            failure=failure,
            report=report,
        )

    def _classify(self, code: int, report: dict[str, Any] | None) -> tuple[str, str | None]:
        grace = self.request.grace
        if code == EXIT_OK and report is not None and report.get("finish_reason") == "finished":
            # The SIGTERM met a crawl that had already done its work (it was writing its
            # report): its own record says finished, and the run's must not say otherwise.
            return "ok", None
        if self._killed:
            return "killed", f"killed: still running {grace:.0f}s after SIGTERM"
        if self._why_stopped == "timeout":
            return "timeout", f"time limit of {self.request.time_limit:.0f}s reached: stopped"
        if self._why_stopped == "stopped":
            return "stopped", "stopped at shutdown"
        if code == EXIT_OK:
            return "ok", None
        if code == EXIT_BUSY:
            notes = (report or {}).get("notes") or ["the site's lease is held by another crawl"]
            return "skipped", str(notes[0])
        if code < 0:
            return "failed", f"ended by signal {signal.Signals(-code).name}"
        if report is None:
            return "failed", f"exit {code} without a crawl report (see its log)"
        return "failed", crawl_failed(report) or f"exit {code}"


def exit_code_of(outcome: CrawlOutcome) -> int:
    if outcome.ok:
        return EXIT_OK
    if outcome.result == "skipped":
        return EXIT_BUSY
    return outcome.exit_code if outcome.exit_code in (1, 2) else EXIT_FAILED


class RunRecorder:
    """Writes the job history to the catalog; a catalog that fails is logged, never fatal."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._catalog: Catalog | None = None
        self._lock = threading.Lock()

    def _open(self) -> Catalog:
        if self._catalog is None:
            if self.url.startswith("sqlite:///"):
                # A local store's directory appears with its first crawl; the history first.
                Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self._catalog = Catalog(self.url)
        return self._catalog

    def started(self, process: CrawlProcess) -> None:
        row = Run(
            crawl_id=process.crawl_id,
            site=process.request.site,
            trigger=process.request.trigger,
            host=socket.gethostname(),
            started=iso(process.started),
        )
        self._write("start", row)

    def finished(self, outcome: CrawlOutcome) -> None:
        self._write("finish", outcome.run_row())

    def _write(self, what: str, row: Run) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self._lock:
                catalog = self._open()
                if what == "start":
                    catalog.start_run(row)
                else:
                    catalog.finish_run(row)
        except (SQLAlchemyError, OSError, ValueError) as exc:
            logger.warning("job history: cannot record the %s of %s: %s", what, row.crawl_id, exc)

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None
