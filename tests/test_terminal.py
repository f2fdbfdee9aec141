"""What an operator sees: a quiet terminal with progress and a summary that explains its numbers,
each crawl's whole log in its own file with the site and crawl id on every line, ``check``
(``crawl --dry-run``) and ``--env-file``."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crawler.logs import prune_logs, timestamp
from crawler.mirror.server import MirrorServer
from crawler.ops.cli import load_env_file, main
from crawler.ops.terminal import Terminal, explain

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
    r"\[tdi (tdi-\d{8}T\d{6}Z-[0-9a-f]{6})\] \S+: "
)


@pytest.fixture(scope="module")
def mirror() -> Iterator[MirrorServer]:
    with MirrorServer() as server:
        yield server


def crawl(
    mirror: MirrorServer, store: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "crawler.ops.cli",
            "crawl",
            "tdi",
            "--store",
            str(store),
            "--proxy",
            mirror.proxy_url,
            "-s",
            "DOWNLOAD_DELAY=0",
            "-s",
            "AUTOTHROTTLE_ENABLED=False",
            *args,
        ],
        cwd=store.parent,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def crawl_logs(store: Path) -> list[Path]:
    return sorted((store / ".logs" / "tdi").glob("tdi-*.log"))


def test_a_default_crawl_prints_no_scrapy_log_and_a_summary_that_explains_it(
    mirror: MirrorServer, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    first = crawl(mirror, store, "-s", "ARCHIVE_DISCOVERY_WINDOW_DAYS=0", "--progress", "0.3")
    assert first.returncode == 0, first.stdout + first.stderr[-3000:]
    out = first.stdout.splitlines()
    assert re.fullmatch(r"crawling tdi \(crawl tdi-\S+\) \.\.\.", out[0]), out
    assert re.fullmatch(r"tdi +ok +6 new articles, 0 failed, \d+ pages, 1 WARC file, \S+s", out[-2])
    assert out[-1].strip() == "6 discovered: 6 new"
    # Not on a terminal: a plain progress line now and then (here every 0.3 s), no live line.
    assert any(re.fullmatch(r"  tdi: \d+ pages \([\d.]+/s\), \d+ new, .*", x) for x in out), out
    assert "\r" not in first.stdout
    # Scrapy's log and its stats dump are in the crawl's log file, not on the terminal.
    assert first.stderr == ""
    for noise in ("Dumping Scrapy stats", "[scrapy", "Overridden settings"):
        assert noise not in first.stdout
    [log] = crawl_logs(store)
    assert "Dumping Scrapy stats" in log.read_text()

    again = crawl(mirror, store, "-s", "ARCHIVE_DISCOVERY_WINDOW_DAYS=0")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.splitlines()[-1].strip() == "6 discovered: 6 already archived"

    # The saved pages are older than the default 30-day window: the summary says what to do.
    window = crawl(mirror, tmp_path / "other")
    assert window.returncode == 0, window.stderr[-3000:]
    assert re.search(
        r"^ +6 discovered: 6 older than the 30-day window \(use -a since=YYYY-MM-DD",
        window.stdout,
        re.M,
    ), window.stdout


def test_quiet_prints_nothing_on_success_and_verbose_prints_the_whole_log(
    mirror: MirrorServer, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    quiet = crawl(mirror, store, "-q", "-s", "ARCHIVE_DISCOVERY_WINDOW_DAYS=0")
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert (quiet.stdout, quiet.stderr) == ("", "")
    verbose = crawl(mirror, store, "-v", "-s", "ARCHIVE_DISCOVERY_WINDOW_DAYS=0")
    assert verbose.returncode == 0
    assert "Dumping Scrapy stats" in verbose.stderr
    assert "tdi        ok" in verbose.stdout
    # --log-level is checked like any input, before anything starts.
    bad = crawl(mirror, store, "--log-level", "LOUD")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "error: --log-level must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got 'LOUD'"
    )


def test_every_line_of_a_crawl_log_says_whose_it_is(mirror: MirrorServer, tmp_path: Path) -> None:
    store = tmp_path / "store"
    proc = crawl(mirror, store, "-s", "ARCHIVE_DISCOVERY_WINDOW_DAYS=0", "--log-level", "DEBUG")
    assert proc.returncode == 0, proc.stderr[-3000:]
    [log] = crawl_logs(store)
    crawl_id = log.stem
    headed = [line for line in log.read_text().splitlines() if LINE.match(line)]
    assert len(headed) > 30
    assert {LINE.match(line).group(2) for line in headed} == {crawl_id}  # type: ignore[union-attr]
    assert any(" DEBUG [tdi " in line for line in headed)  # --log-level reached the crawl
    # Lines that do not start with a timestamp only continue a message (Scrapy's dumps).
    for line in log.read_text().splitlines():
        if re.match(r"^\d{4}-\d\d-\d\d[ T]", line):
            assert LINE.match(line), line
    assert "object at 0x" not in log.read_text()

    as_json = crawl(
        mirror, tmp_path / "json", "-s", "ARCHIVE_DISCOVERY_WINDOW_DAYS=0", "-s",
        "ARCHIVE_LOG_FORMAT=json",
    )  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr[-3000:]
    [log] = crawl_logs(tmp_path / "json")
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(entries) > 15
    for entry in entries:
        assert entry["site"] == "tdi" and entry["crawl_id"] == log.stem, entry
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
        assert "object at 0x" not in json.dumps(entry)


def test_crawl_logs_are_kept_to_the_newest_per_site(tmp_path: Path) -> None:
    for n in range(5):
        path = tmp_path / f"tdi-{n}.log"
        path.write_text(str(n))
        os.utime(path, (1000 + n, 1000 + n))
    assert prune_logs(tmp_path, 2) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tdi-3.log", "tdi-4.log"]
    assert timestamp(0.5) == "1970-01-01T00:00:00.500Z"


# ------------------------------------------------------------------ the terminal itself


def report(**articles: int) -> dict[str, Any]:
    arts = {"discovered": 0, "new": 0, "revised": 0, "unchanged": 0, "failed": 0, **articles}
    return {
        "articles": arts,
        "pages": {"responses": 10},
        "warc": {"files": ["a.warc.gz"]},
        "duration_s": 1.5,
        "skipped": {},
        "upload": {"pending": 0},
        "notes": [],
    }


def test_the_summary_names_what_waits_and_what_failed() -> None:
    r = report(discovered=20, new=3, failed=5)
    r["skipped"] = {"already-archived": 10, "outside-window": 2, "max-articles": 0}
    r["upload"] = {"pending": 18, "spool": "/var/spool/na"}
    r["failures"] = {
        "total": 5,
        "by_cause": {"http-503": 4, "empty-body": 1},
        "urls": [
            {"url": f"https://x.test/a/{n}", "stage": "fetch", "cause": "http-503",
             "status": 503, "attempts": 3}
            for n in range(4)
        ] + [{"url": "https://x.test/a/9", "stage": "text", "cause": "empty-body",
              "status": 200, "attempts": 1}],
    }  # fmt: skip
    lines = explain(r, window_days=30, since_given=False)
    assert lines[0] == (
        "20 discovered: 3 new, 5 failed, 10 already archived, 2 older than the 30-day window "
        "(use -a since=YYYY-MM-DD to reach further)"
    )
    assert lines[1] == "5 failures (empty-body: 1, http-503: 4):"
    assert lines[2] == "  fetch 503 http-503: https://x.test/a/0 (3 attempts)"
    assert lines[5] == "  … and 2 more in the crawl report"
    assert lines[6] == (
        "18 objects wait for the store in /var/spool/na: `newsarchive upload` sends them "
        "(so does the next crawl)"
    )
    since = explain(r, window_days=30, since_given=True)
    assert "2 outside since/until" in since[0]


def test_the_summary_says_what_is_gone_and_what_is_gone_still() -> None:
    r = report(discovered=15, new=0)
    # One dead link skipped before its recheck, another asked again: gone still.
    r["skipped"] = {"already-archived": 13, "gone": 1, "http-status": 1}
    r["failures"] = {
        "total": 1,
        "by_cause": {"http-410": 1},
        "urls": [{"url": "https://x.test/a/2", "stage": "fetch", "cause": "http-410",
                  "status": 410, "attempts": 1, "gone": True}],
    }  # fmt: skip
    lines = explain(r, window_days=30, since_given=False)
    assert lines[0] == (
        "15 discovered: 13 already archived, "
        "1 gone (404 or 410 last time; asked again after ARCHIVE_GONE_RECHECK_DAYS), "
        "1 not fetched or not archived (http-status: 1)"
    )
    assert lines[2] == (
        "  fetch 410 http-410: https://x.test/a/2 (gone last time too: not held against the site)"
    )


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_progress_line_is_live_and_cleared_before_the_summary(
    tmp_path: Path,
) -> None:
    out = FakeTTY()
    progress = tmp_path / "tdi.progress"
    term = Terminal(out=out, window_days=0)
    assert term.tty
    term.started("tdi", "tdi-1", progress)
    progress.write_text(json.dumps({"pages": 7, "new": 2, "revised": 0, "failed": 1}))
    term.tick()
    term.tick()
    text = out.getvalue()
    assert text.count("\r\x1b[K") == 2
    assert text.endswith("tdi: 7 pages") is False and "tdi: 7 pages (" in text
    assert "2 new, 0 revised, 1 failed" in text
    term.finished("tdi", True, report(discovered=2, new=2), 1.5, None)
    after = out.getvalue()[len(text) :]
    assert after.startswith("\r\x1b[K")  # the live line gone before the summary
    assert "tdi        ok      2 new articles" in after
    # Quiet: nothing for a site that is ok, the whole summary for one that failed.
    quiet = io.StringIO()
    term = Terminal("quiet", out=quiet)
    term.started("tdi", "tdi-2")
    term.tick()
    term.finished("tdi", True, report(new=1), 1.0, None)
    term.total()
    assert quiet.getvalue() == ""
    term.finished("irna", False, None, 2.0, "ended by signal SIGKILL", log_file="/l/irna.log")
    assert quiet.getvalue().splitlines() == [
        "irna       FAILED  after 2.0s: ended by signal SIGKILL",
        "           log: /l/irna.log",
    ]


# ------------------------------------------------------------------ check, --env-file


def test_check_prints_the_plan_and_fails_on_each_kind_of_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    assert main(["check", "tdi", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert f"store:    {store.as_uri()} (writable)" in out
    assert "(none yet: the first crawl makes it)" in out
    assert "  tdi        would crawl 1 feed, 1 sitemap" in out
    assert out.rstrip().endswith("ok: a crawl would start")

    assert main(["check", "tdi", "--store", str(store), "-s", "ARCHIVE_TEXT_MOD=page"]) == 2
    err = capsys.readouterr().err
    assert "ARCHIVE_TEXT_MOD is not a newsarchive setting (did you mean ARCHIVE_TEXT_MODE?)" in err

    down = "postgresql://reader:hunter2@127.0.0.1:9/archive"
    assert main(["crawl", "tdi", "--dry-run", "--store", str(store), "-s",
                 f"ARCHIVE_CATALOG_URL={down}"]) == 1  # fmt: skip
    out = capsys.readouterr().out
    assert "catalog:  postgresql://reader:***@127.0.0.1:9/archive: does not answer" in out
    assert "hunter2" not in out
    assert not list(store.glob("**/*.warc.gz"))  # a dry run crawls nothing


def test_env_file_gives_the_commands_the_daemons_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "from-env-file"
    env = tmp_path / "env"
    env.write_text(
        f"# the daemon's environment\nexport ARCHIVE_STORE_URI='{store}'\n\n"
        "ARCHIVE_TEXT_MODE=page\nNEWSARCHIVE_TEST_KEPT=from-file\n"
    )
    monkeypatch.delenv("ARCHIVE_STORE_URI", raising=False)
    monkeypatch.delenv("ARCHIVE_TEXT_MODE", raising=False)
    monkeypatch.setenv("NEWSARCHIVE_TEST_KEPT", "already-set")
    for name in ("ARCHIVE_STORE_URI", "ARCHIVE_TEXT_MODE"):
        monkeypatch.setenv(name, "x")  # registered for monkeypatch to restore ...
        monkeypatch.delenv(name)  # ... and unset for the test
    assert main(["--env-file", str(env), "check", "tdi"]) == 0
    out = capsys.readouterr().out
    assert f"store:    {store.as_uri()} (writable)" in out
    assert "text:     page mode" in out
    assert os.environ["NEWSARCHIVE_TEST_KEPT"] == "already-set"  # the environment wins

    bad = tmp_path / "bad"
    bad.write_text("ARCHIVE_STORE_URI\n")
    assert main(["--env-file", str(bad), "check", "tdi"]) == 2
    assert "line 1 is not NAME=VALUE" in capsys.readouterr().err
    assert main(["--env-file", str(tmp_path / "missing"), "check", "tdi"]) == 2
    assert load_env_file(env)["ARCHIVE_TEXT_MODE"] == "page"


def test_progress_figures_are_written_while_the_crawl_runs(
    mirror: MirrorServer, tmp_path: Path
) -> None:
    """The runner's progress file: the figures the terminal shows, rewritten each second."""
    progress = tmp_path / "p.json"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "crawler.crawl.runner", "tdi", "--progress-file", str(progress),
         "-s", f"ARCHIVE_PROXY={mirror.proxy_url}", "-s", f"ARCHIVE_STORE_URI={tmp_path / 's'}",
         "-s", "ARCHIVE_DISCOVERY_WINDOW_DAYS=0", "-s", "DOWNLOAD_DELAY=0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(progress.read_text())
    assert figures["state"] == "closing"
    assert figures["new"] == 6 and figures["discovered"] == 6 and figures["pages"] >= 7
    assert 0 < figures["elapsed_s"] < time.monotonic() - started
    assert Path(figures["log_file"]).is_file()
