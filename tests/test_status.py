"""`newsarchive status`: last and next runs, freshness, backlog, stale alerts; metrics; logs."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crawler.catalog.db import Catalog, Run, TextRecord, iso
from crawler.layout import report_key, sqlite_url
from crawler.logs import JsonFormatter, log_format
from crawler.ops.cli import main
from crawler.ops.status import StoredReports
from crawler.store.base import LocalStore, StoredObject, StoreUnavailableError
from crawler.store.spool import Backlog
from tests.conftest import ROOT


def fill(store: Path, newest: dict[str, timedelta], runs: dict[str, str] | None = None) -> None:
    """Articles first captured ``newest[site]`` ago, and one run per site with its result."""
    now = datetime.now(UTC)
    store.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(sqlite_url(store / ".catalog.sqlite"))
    try:
        for site, age in newest.items():
            for n, extra in enumerate((timedelta(days=5), timedelta(0))):
                catalog.record_text(
                    TextRecord(
                        site=site,
                        article_key=f"{site}-{n}",
                        url=f"https://{site}.example/{n}",
                        capture_time=iso(now - age - extra),
                        text_digest=f"sha1:{n}",
                        text_key=f"text/{site}/{n}.txt",
                    )
                )
        for site, result in (runs or {}).items():
            catalog.finish_run(
                Run(
                    crawl_id=f"{site}-1",
                    site=site,
                    trigger="schedule",
                    started=iso(now - timedelta(minutes=30)),
                    finished=iso(now - timedelta(minutes=20)),
                    result=result,
                    exit_code=0 if result == "ok" else 1,
                    new_articles=3,
                    failure=None if result == "ok" else "discovered no article",
                )
            )
    finally:
        catalog.close()


def status(store: Path, *args: str) -> list[str]:
    return ["status", "--store", str(store), "-s", "ARCHIVE_LOG_FORMAT=text", *args]


def test_check_exits_1_when_a_site_is_stale_and_0_when_all_are_fresh(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "store"
    fill(store, {"tdi": timedelta(hours=1), "irna": timedelta(hours=30)}, {"tdi": "ok"})
    assert main(status(store, "--check", "-s", "ARCHIVE_STATUS_STALE_AFTER=2d")) == 0
    out = capsys.readouterr().out
    assert "STALE" not in out
    assert main(status(store, "--check", "-s", "ARCHIVE_STATUS_STALE_AFTER=1d")) == 1
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines() if "STALE" in line] == ["irna"]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["site irna is stale: no new article for 30h00m (threshold 24h00m)"]
    # Without --check the table is shown and the exit code stays 0.
    assert main(status(store, "-s", "ARCHIVE_STATUS_STALE_AFTER=1d")) == 0


def test_per_site_thresholds(tmp_path: Path) -> None:
    store = tmp_path / "store"
    fill(store, {"tdi": timedelta(hours=3), "irna": timedelta(hours=3)})
    per_site = json.dumps({"tdi": {"crawl": "0 * * * *", "stale_after": "2h"}})
    assert main(status(store, "--check", "--quiet", "-s", f"ARCHIVE_SCHEDULE={per_site}")) == 1
    per_site = json.dumps({"tdi": {"crawl": "0 * * * *", "stale_after": "4h"}})
    assert main(status(store, "--check", "--quiet", "-s", f"ARCHIVE_SCHEDULE={per_site}")) == 0


def test_a_site_that_only_failed_fails_the_check_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "store"
    fill(store, {"tdi": timedelta(hours=1)}, {"tdi": "ok", "president": "failed"})
    # Its first run is 30 minutes old, far within the threshold: failing all the same.
    assert main(status(store, "--check", "-s", "ARCHIVE_STATUS_STALE_AFTER=1d")) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [
        "site president has archived no article and its last run failed: discovered no article"
    ]


def test_a_site_without_articles_after_a_good_run_is_stale_once_its_first_run_is_old(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    fill(store, {}, {"president": "ok"})  # ran 30 minutes ago, archived nothing, no failure
    assert main(status(store, "--check", "-s", "ARCHIVE_STATUS_STALE_AFTER=1h")) == 0
    assert main(status(store, "--check", "-s", "ARCHIVE_STATUS_STALE_AFTER=10m")) == 1


def add_runs(store: Path, site: str, results: list[str]) -> None:
    """Runs of ``site``, oldest first, an hour apart, the newest ten minutes ago."""
    now = datetime.now(UTC)
    catalog = Catalog(sqlite_url(store / ".catalog.sqlite"))
    try:
        for n, result in enumerate(reversed(results)):
            started = now - timedelta(minutes=10 + 60 * n)
            catalog.finish_run(
                Run(
                    crawl_id=f"{site}-run-{n}",
                    site=site,
                    trigger="schedule",
                    started=iso(started),
                    finished=iso(started + timedelta(minutes=2)),
                    result=result,
                    exit_code=0 if result == "ok" else 1,
                    failure=None if result == "ok" else f"TLS error ({n})",
                )
            )
    finally:
        catalog.close()


def test_a_site_whose_latest_runs_all_failed_fails_the_check(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    fill(store, {"tdi": timedelta(hours=1)})  # fresh articles from before
    add_runs(store, "tdi", ["ok", "failed", "timeout"])
    assert main(status(store, "--check")) == 0  # two in a row: not yet (default 3)
    add_runs(store, "tdi", ["ok", "failed", "timeout", "failed"])
    capsys.readouterr()
    caplog.clear()
    assert main(status(store, "--check")) == 1
    assert "FAILING" in capsys.readouterr().out
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [
        "site tdi: its last 3 runs failed (ARCHIVE_STATUS_MAX_FAILED_RUNS 3); latest: TLS error (0)"
    ]
    assert main(status(store, "--check", "-s", "ARCHIVE_STATUS_MAX_FAILED_RUNS=4")) == 0


def test_a_dead_daemon_fails_the_check_and_a_live_or_retired_one_does_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "store"
    fill(store, {"tdi": timedelta(hours=1)}, {"tdi": "ok"})
    catalog = Catalog(sqlite_url(store / ".catalog.sqlite"))
    now = datetime.now(UTC)
    try:
        catalog.beat("worker-a", now - timedelta(minutes=2))
        catalog.beat("worker-old", now - timedelta(days=30))  # retired long ago
        assert main(status(store, "--check")) == 0
        catalog.beat("worker-a", now - timedelta(minutes=45))  # three 10-minute checks missed
        assert main(status(store, "--check")) == 1
        errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert errors == [
            "the daemon on worker-a last checked in 45m ago (it checks in every 10m): "
            "is it running?"
        ]
        # A slower check interval is configured: 45 minutes is within three of them.
        assert main(status(store, "--check", "-s", "ARCHIVE_STATUS_CHECK_INTERVAL=1200")) == 0
    finally:
        catalog.close()


def test_the_daemon_records_its_heartbeat_at_each_check(tmp_path: Path) -> None:
    from crawler.ops.daemon import Daemon
    from crawler.ops.schedule import ScheduleConfig
    from crawler.ops.status import read_catalog, record_heartbeat

    url = sqlite_url(tmp_path / "catalog.sqlite")
    beats: list[int] = []

    def heartbeat() -> None:
        beats.append(1)
        record_heartbeat(url, "this-host")

    daemon = Daemon(ScheduleConfig(sites=()), lambda *a, **k: None, heartbeat=heartbeat)  # type: ignore[arg-type]
    daemon.check_status()
    assert beats == [1]
    assert set(read_catalog(url).beats) == {"this-host"}


def test_a_store_with_no_catalog_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong --store (or nothing run yet) is no green "never run"."""
    store = tmp_path / "never"
    assert main(status(store, "--check")) == 1
    out = capsys.readouterr().out
    assert f"no catalog at sqlite:///{store}/.catalog.sqlite" in out
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith(f"no catalog at sqlite:///{store}/")
    assert not store.exists(), "status must not create the store or its catalog"
    # Without --check: the table and the line, exit 0.
    assert main(status(store)) == 0


def test_json_shows_last_run_next_run_freshness_and_backlog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    fill(store, {"tdi": timedelta(minutes=90)}, {"tdi": "failed"})
    backlog = Backlog(store / ".spool", "tdi-1", "s3://bucket/x")
    backlog.add_bytes(StoredObject("warc/tdi/a.warc.gz", 5, "0" * 64), b"12345")
    backlog.unlock()
    per_site = json.dumps({"president": {"enabled": False}})
    assert main(status(store, "--json", "-s", f"ARCHIVE_SCHEDULE={per_site}")) == 0
    data = json.loads(capsys.readouterr().out)
    tdi = next(s for s in data["sites"] if s["site"] == "tdi")
    assert tdi["last_run"]["result"] == "failed"
    assert tdi["last_run"]["failure"] == "discovered no article"
    assert tdi["last_run"]["new_articles"] == 3
    assert 90 * 60 - 5 <= tdi["freshness_s"] <= 90 * 60 + 60
    assert datetime.fromisoformat(tdi["next_run"]) > datetime.now(UTC)
    assert tdi["next_run_kind"] in ("crawl", "revisions")
    president = next(s for s in data["sites"] if s["site"] == "president")
    assert president["enabled"] is False and president["next_run"] is None
    assert data["upload_backlog"]["objects"] == 1 and data["upload_backlog"]["bytes"] == 5
    assert data["catalog"].endswith(".catalog.sqlite")


def test_metrics_text_for_a_textfile_collector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    fill(store, {"tdi": timedelta(hours=1), "irna": timedelta(days=3)})
    assert main(status(store, "--metrics")) == 0
    text = capsys.readouterr().out
    assert 'newsarchive_site_stale{site="irna"} 1.0' in text
    assert 'newsarchive_site_stale{site="tdi"} 0.0' in text
    line = next(
        x
        for x in text.splitlines()
        if x.startswith('newsarchive_site_freshness_seconds{site="tdi"}')
    )
    assert 3590 <= float(line.split()[-1]) <= 3700
    assert "newsarchive_upload_backlog_objects 0.0" in text
    assert "newsarchive_status_up 1.0" in text


def test_an_unreadable_catalog_is_one_line_and_exit_1(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "crawler.ops.cli",
            "status",
            "--check",
            "--store",
            str(tmp_path),
            "-s",
            "ARCHIVE_CATALOG_URL=postgresql+psycopg://nobody@127.0.0.1:1/none",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: catalog postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert "Traceback" not in proc.stderr


def test_json_log_lines() -> None:
    record = logging.LogRecord(
        "crawler.ops.daemon", logging.ERROR, __file__, 1, "site %s", ("tdi",), None
    )
    record.site = "tdi"
    record.crawl_id = "tdi-1"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "site tdi" and entry["level"] == "ERROR"
    assert entry["site"] == "tdi" and entry["crawl_id"] == "tdi-1"
    assert entry["logger"] == "crawler.ops.daemon"
    assert datetime.fromisoformat(entry["time"]).tzinfo is not None
    try:
        raise OSError("disk full")
    except OSError:
        record.exc_info = sys.exc_info()
    assert "OSError: disk full" in json.loads(JsonFormatter().format(record))["exception"]
    assert log_format("JSON") == "json"
    with pytest.raises(ValueError, match="text or json"):
        log_format("xml")


def test_a_crawl_logs_json_lines(tmp_path: Path) -> None:
    """ARCHIVE_LOG_FORMAT=json: Scrapy's own first lines are JSON too, with site and crawl id,
    in the crawl's log file or (ARCHIVE_CRAWL_LOG=stderr) on stderr; a bad value is one line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def crawl(site: str, *settings: str) -> subprocess.CompletedProcess[str]:
        pairs = [arg for setting in settings for arg in ("-s", setting)]
        return subprocess.run(
            [sys.executable, "-m", "crawler.crawl.runner", site, *pairs],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env=env,
        )

    def scrapy_lines(lines: list[str]) -> list[dict[str, Any]]:
        entries = [json.loads(line) for line in lines]
        assert all(e["site"] == "tdi" and e["crawl_id"].startswith("tdi-") for e in entries)
        return [e for e in entries if e["message"].startswith("Scrapy ")]

    # A crawl whose proxy answers nothing: it fails at once, after Scrapy's first lines.
    nowhere = ("ARCHIVE_PROXY=http://127.0.0.1:9", "RETRY_TIMES=0", "ARCHIVE_LOG_FORMAT=json")
    proc = crawl("tdi", *nowhere)
    assert proc.returncode == 1, proc.stderr
    [log] = (tmp_path / "archive" / ".logs" / "tdi").glob("*.log")
    assert scrapy_lines(log.read_text().splitlines())
    proc = crawl("tdi", *nowhere, "ARCHIVE_CRAWL_LOG=stderr")
    assert proc.returncode == 1
    assert scrapy_lines(proc.stderr.splitlines())
    unknown = crawl("no-such-site", "ARCHIVE_LOG_FORMAT=json")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: no spider named 'no-such-site'")
    assert len(unknown.stderr.splitlines()) == 1
    assert not (tmp_path / "archive" / ".logs" / "no-such-site").exists()
    bad = crawl("tdi", "ARCHIVE_LOG_FORMAT=xml")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: tdi: ARCHIVE_LOG_FORMAT must be text or json, got 'xml'"


@pytest.mark.parametrize("command", ["run", "status"])
def test_help_shows_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    from crawler.ops.cli import build_parser

    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"newsarchive {command}" in out.split("examples:", 1)[1]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_job_history_in_the_catalog(backend: str, tmp_path: Path, request: Any) -> None:
    url = (
        sqlite_url(tmp_path / "c.sqlite")
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    catalog = Catalog(url)
    try:
        site = f"site-{tmp_path.name[-12:]}"  # the PostgreSQL server is shared by the session
        first = Run(
            crawl_id=f"{site}-1", site=site, trigger="schedule", started="2026-11-23T10:00:00Z"
        )
        catalog.start_run(first)
        assert catalog.last_runs()[site].result == "running"
        catalog.finish_run(
            dataclasses.replace(
                first, finished="2026-11-23T10:05:00Z", result="ok", exit_code=0, new_articles=4
            )
        )
        late = Run(
            crawl_id=f"{site}-2",
            site=site,
            trigger="revisions",
            started="2026-11-23T11:00:00Z",
            finished="2026-11-23T11:01:00Z",
            result="failed",
            exit_code=1,
            failure="discovered no article",
        )
        catalog.finish_run(late)  # its start was never recorded: inserted whole
        last = catalog.last_runs()[site]
        assert (last.crawl_id, last.result, last.failure) == (late.crawl_id, "failed", late.failure)
        assert catalog.first_runs()[site] == "2026-11-23T10:00:00Z"
        assert [r.new_articles for r in catalog.runs(site)] == [None, 4]
        catalog.record_text(
            TextRecord(
                site=site,
                article_key="a",
                url="https://x.example/a",
                capture_time="2026-11-23T10:03:00Z",
                text_digest="sha1:x",
                text_key="text/a.txt",
            )
        )
        assert catalog.newest_articles()[site] == "2026-11-23T10:03:00Z"
    finally:
        catalog.close()


def store_report(store: Path, site: str, crawl_id: str, report: dict[str, Any]) -> None:
    LocalStore(store).put_bytes(report_key(site, crawl_id), json.dumps(report).encode())


def failed_url(n: int, stage: str, cause: str, status: int | None = None) -> dict[str, Any]:
    """An entry of a report's ``failures.urls``."""
    return {
        "url": f"https://tdi.example/{n}",
        "stage": stage,
        "cause": cause,
        "status": status,
        "error": "" if status else "certificate verify failed",
        "attempts": 3 if stage == "fetch" else 1,
    }


def test_status_names_the_urls_the_last_run_failed_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    fill(store, {"tdi": timedelta(hours=1), "irna": timedelta(hours=1)}, {"tdi": "failed"})
    urls = [
        failed_url(1, "discovery", "http-503", 503),
        failed_url(2, "discovery", "tls"),
        failed_url(3, "fetch", "http-429", 429),
        failed_url(4, "parse", "not-article"),
    ]
    report = {
        "crawl_id": "tdi-1",
        "failures": {
            "total": 5,
            "by_stage": {"discovery": 2, "fetch": 1, "parse": 2},
            "by_cause": {"http-503": 1, "http-429": 1, "tls": 1, "not-article": 2},
            "urls": urls,
            "not_listed": 1,
        },
    }
    store_report(store, "tdi", "tdi-1", report)
    # An ok run that failed on one URL is shown too.
    add_runs(store, "irna", ["ok"])
    one = {"total": 1, "by_stage": {"text": 1}, "by_cause": {"empty-body": 1}, "not_listed": 0}
    one["urls"] = [{**failed_url(9, "store", "disk", 507), "url": "https://irna.example/9"}]
    store_report(store, "irna", "irna-run-0", {"failures": one})
    assert main(status(store)) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    start = lines.index("tdi: last run failed: discovered no article; 5 URLs failed")
    assert lines[start + 1 : start + 5] == [
        "  discovery: https://tdi.example/1 (http-503)",
        "  discovery: https://tdi.example/2 (tls, certificate verify failed)",
        "  fetch: https://tdi.example/3 (http-429, after 3 attempts)",
        "  … and 2 more (newsarchive status --json has the report's list)",
    ]
    # A status the cause does not name is shown beside it.
    assert (
        "irna: last run ok; 1 URL failed\n  store: https://irna.example/9 (disk, HTTP 507)\n" in out
    )
    assert main(status(store, "--json")) == 0
    sites = {s["site"]: s for s in json.loads(capsys.readouterr().out)["sites"]}
    assert sites["tdi"]["last_failures"] == urls  # all the report lists
    assert sites["tdi"]["last_failures_total"] == 5
    assert [f["url"] for f in sites["irna"]["last_failures"]] == ["https://irna.example/9"]
    assert sites["president"]["last_failures"] == [] and sites["president"]["last_run"] is None


def test_status_reads_an_older_report_and_one_still_in_the_spool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reports before the failures block listed article failures only; a report the store has
    not taken yet waits in the spool's backlog."""
    store = tmp_path / "store"
    fill(store, {"tdi": timedelta(hours=1)}, {"tdi": "failed"})
    old = {
        "articles": {
            "failed": 2,
            "failures": [
                {"url": "https://tdi.example/a", "reason": "no_text", "detail": ""},
                {"url": "https://tdi.example/b", "reason": "parse", "detail": "bad\n date"},
            ],
        }
    }
    backlog = Backlog(store / ".spool", "tdi-1", LocalStore(store).uri)
    data = json.dumps(old).encode()
    backlog.add_bytes(StoredObject(report_key("tdi", "tdi-1"), len(data), "0" * 64), data)
    backlog.unlock()
    assert main(status(store)) == 0
    out = capsys.readouterr().out
    assert (
        "tdi: last run failed: discovered no article; 2 URLs failed\n"
        "  https://tdi.example/a (no_text)\n"
        "  https://tdi.example/b (parse, bad date)\n"
    ) in out
    assert "more" not in out
    assert main(status(store, "--json")) == 0
    [tdi] = [s for s in json.loads(capsys.readouterr().out)["sites"] if s["site"] == "tdi"]
    assert tdi["last_failures"][1] == {
        "url": "https://tdi.example/b",
        "stage": None,
        "cause": "parse",
        "status": None,
        "error": "bad\n date",
        "attempts": None,
    }


@pytest.mark.parametrize("report", [None, b"{not json", b"[1, 2]", b'{"failures": "x"}'])
def test_a_missing_or_unreadable_report_is_no_error(
    report: bytes | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    fill(store, {"tdi": timedelta(hours=1)}, {"tdi": "failed"})
    if report is not None:
        LocalStore(store).put_bytes(report_key("tdi", "tdi-1"), report)
    assert main(status(store, "--check")) == 0
    out = capsys.readouterr().out
    assert "tdi: last run failed: discovered no article\n" in out


def test_failures_are_not_read_for_a_remote_store_that_is_down(tmp_path: Path) -> None:
    """One failed read and the store is left alone: the next site does not wait again."""
    reader = StoredReports("s3://bucket/x", {"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, tmp_path)
    calls: list[str] = []

    class Down:
        def get_bytes(self, key: str) -> bytes:
            calls.append(key)
            raise StoreUnavailableError("read failed: connection refused")

    reader._store = Down()  # type: ignore[assignment]
    assert reader("tdi", "tdi-1") is None
    assert reader("irna", "irna-1") is None
    assert calls == [report_key("tdi", "tdi-1")]
    assert reader.options["ARCHIVE_STORE_MAX_ATTEMPTS"] == 1  # no retries for a quick look


def test_status_reads_the_daemons_configuration_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the env file the daemon's unit loads sets them: the store, the schedule file."""
    store = tmp_path / "store"
    fill(store, {"tdi": timedelta(hours=1)}, {"tdi": "ok"})
    backlog = Backlog(store / ".spool", "tdi-1", "s3://bucket/x")
    backlog.add_bytes(StoredObject("warc/tdi/a.warc.gz", 5, "0" * 64), b"12345")
    backlog.unlock()
    schedule = tmp_path / "schedule.toml"
    schedule.write_text(
        '[defaults]\ncrawl = "0 3 * * *"\nrevisions = ""\n'
        '[sites.tdi]\ncrawl = "17 5 * * *"\n[sites.irna]\nenabled = false\n'
    )
    monkeypatch.setenv("NEWSARCHIVE_STORE", str(store))
    monkeypatch.setenv("ARCHIVE_SCHEDULE_FILE", str(schedule))
    assert main(["status", "-s", "ARCHIVE_LOG_FORMAT=text"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line}
    assert " 05:17Z crawl " in rows["tdi"]
    assert " 03:00Z crawl " in rows["president"]
    assert rows["irna"].count("not scheduled") == 2  # the next run and the state
    assert f"upload backlog: 1 objects (5 bytes) in {store.resolve()}/.spool" in out
    assert f"schedule: {schedule}" in out
    assert main(["status", "--json", "-s", "ARCHIVE_LOG_FORMAT=text"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schedule"] == str(schedule)
    sites = {s["site"]: s for s in data["sites"]}
    assert datetime.fromisoformat(sites["tdi"]["next_run"]).strftime("%H:%M") == "05:17"
    assert sites["irna"]["enabled"] is False and sites["irna"]["next_run"] is None
    assert data["upload_backlog"]["objects"] == 1


def test_status_shows_the_leases_held_and_a_skipped_start_is_no_last_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    fill(store, {"tdi": timedelta(minutes=10)}, {"tdi": "ok"})
    catalog = Catalog(sqlite_url(store / ".catalog.sqlite"))
    try:
        now = datetime.now(UTC)
        # A later start that found the site's lease held: made by another crawl.
        catalog.finish_run(
            Run(
                crawl_id="tdi-2", site="tdi", trigger="schedule", started=iso(now),
                finished=iso(now), result="skipped", exit_code=3,
                failure="tdi: held by crawl tdi-9 on elsewhere (pid 7)",
            )
        )  # fmt: skip
        taken = catalog.take_lease(
            "tdi", crawl_id="tdi-9", host="elsewhere", pid=7, ttl=timedelta(minutes=2)
        )
        assert taken.taken
    finally:
        catalog.close()
    assert main(status(store, "--check")) == 0
    out = capsys.readouterr().out
    assert re.search(r"^tdi +\S+ ago +ok +3 ", out, re.M), out  # the run made, not the skip
    assert re.search(
        r"^crawling now: tdi by crawl tdi-9 on elsewhere \(pid 7\), lease renewed \S+, held "
        r"until \S+$",
        out,
        re.M,
    ), out
    assert main(status(store, "--json")) == 0
    [lease] = json.loads(capsys.readouterr().out)["leases"]
    assert (lease["site"], lease["crawl_id"], lease["held"]) == ("tdi", "tdi-9", True)
