"""The command line: help with examples, clear usage errors, `scrapy crawl` from the repo root."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.crawl.runner import crawl_failed
from crawler.mirror.routes import Route
from crawler.mirror.server import MirrorServer
from crawler.ops.cli import build_parser, main
from crawler.options import parse_pairs

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", [[], ["crawl"], ["demo"]])
def test_help_shows_an_example(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "newsarchive " in out.split("examples:", 1)[1]


def test_unknown_site_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crawl", "no-such-site"]) == 2
    err = capsys.readouterr().err
    assert "unknown site(s) no-such-site" in err
    assert "tdi" in err  # the known sites are named


def test_crawl_needs_sites_or_all(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crawl"]) == 2
    assert "--all" in capsys.readouterr().err
    assert main(["crawl", "tdi", "--all"]) == 2


def test_bad_jobs_and_pairs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crawl", "tdi", "--jobs", "0"]) == 2
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        parse_pairs(["novalue"], "-s")
    assert exited.value.code == 2  # a usage error, as argparse's own
    assert capsys.readouterr().err == "error: -s must be NAME=VALUE, got 'novalue'\n"
    assert parse_pairs(["A=1", "B=x=y"], "-s") == {"A": "1", "B": "x=y"}


def test_crawl_failed_reasons() -> None:
    ok = {
        "finish_reason": "finished",
        "pages": {"responses": 3, "download_errors": 0},
        "warc": {"errors": 0},
        "errors": {"spider_exceptions": 0},
    }
    assert crawl_failed(ok) is None
    assert crawl_failed(None) is not None
    assert "shutdown" in str(crawl_failed({**ok, "finish_reason": "shutdown"}))
    assert "WARC" in str(crawl_failed({**ok, "warc": {"errors": 2}}))
    assert "spider" in str(crawl_failed({**ok, "errors": {"spider_exceptions": 1}}))
    no_pages = {**ok, "pages": {"responses": 0, "download_errors": 12}}
    assert crawl_failed(no_pages) == "no page could be fetched (12 download errors)"


def test_bad_settings_stop_a_crawl_before_it_starts(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "crawler.crawl.runner",
            "tdi",
            "-s",
            "ARCHIVE_WARC_MAX_SIZE=1GB",
            "-s",
            "ARCHIVE_TEXT_MODE=fancy",
            "-s",
            f"ARCHIVE_STORE_URI={tmp_path / 's'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2
    assert "ARCHIVE_WARC_MAX_SIZE must be a whole number, got '1GB'" in proc.stderr
    assert "ARCHIVE_TEXT_MODE must be one of" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "s" / "warc").exists()  # nothing was crawled


def test_demo_rejects_an_unusable_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["demo", "--store", str(blocker / "sub")]) == 2
    assert "not writable" in capsys.readouterr().err


@pytest.fixture(scope="module")
def mirror() -> Iterator[MirrorServer]:
    with MirrorServer() as server:
        yield server


def test_scrapy_crawl_from_the_repository_root(mirror: MirrorServer, tmp_path: Path) -> None:
    """`scrapy crawl tdi` with the project settings found through scrapy.cfg."""
    store = tmp_path / "store"
    env = {k: v for k, v in os.environ.items() if k != "SCRAPY_SETTINGS_MODULE"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scrapy",
            "crawl",
            "tdi",
            "-s",
            f"ARCHIVE_PROXY={mirror.proxy_url}",
            "-s",
            f"ARCHIVE_STORE_URI={store}",
            "-s",
            "DOWNLOAD_DELAY=0",
            "-s",
            "AUTOTHROTTLE_ENABLED=False",
            "-s",
            "LOG_LEVEL=INFO",
            "-s",
            "ARCHIVE_DISCOVERY_WINDOW_DAYS=0",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = list((store / "reports" / "tdi").glob("*.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["articles"]["new"] >= 6
    assert report["articles"]["failed"] == 0
    assert "articles: " in proc.stderr  # the human summary is logged at the end
    # scrapy crawl's own lines say whose they are too, from the spider's opening on.
    assert re.search(
        r"^\S+Z INFO \[tdi tdi-\S+\] scrapy\.core\.engine: Spider closed \(finished\)$",
        proc.stderr,
        re.M,
    ), proc.stderr[-2000:]


def test_crawl_command_runs_each_site_in_a_process(mirror: MirrorServer, tmp_path: Path) -> None:
    store = tmp_path / "store"
    proc = subprocess.run(
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
            "LOG_LEVEL=WARNING",
            "-s",
            "ARCHIVE_DISCOVERY_WINDOW_DAYS=0",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("tdi "))
    assert " ok " in line
    assert "new articles, 0 failed" in line


def test_a_site_that_yields_nothing_fails_by_name(tmp_path: Path) -> None:
    """Feed and sitemap answering 500: the crawl discovers nothing and exits 1, naming the site."""
    with MirrorServer() as broken:
        for url in (
            "https://thediplomaticinsight.com/feed/",
            "https://thediplomaticinsight.com/wp-sitemap.xml",
        ):
            broken.add_route(Route(url=url, status=500))
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "crawler.ops.cli",
                "crawl",
                "tdi",
                "--store",
                str(tmp_path / "s"),
                "--proxy",
                broken.proxy_url,
                "-s",
                "DOWNLOAD_DELAY=0",
                "-s",
                "RETRY_TIMES=0",
                "-s",
                "LOG_LEVEL=INFO",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    assert proc.returncode == 1, proc.stdout + proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("tdi "))
    assert "FAILED" in line
    assert "discovered no article" in line
    # The crawl's ERROR lines reach the terminal, each saying whose it is.
    assert re.search(
        r"^\S+Z ERROR \[tdi tdi-\S+\] crawler\.crawl\.ledger: site tdi: discovered no article",
        proc.stderr,
        re.M,
    ), proc.stderr
    [report_path] = (tmp_path / "s" / "reports" / "tdi").glob("*.json")
    health = json.loads(report_path.read_text())["health"]
    assert health["status"] == "error"


def test_the_mirror_command_prints_what_a_crawl_needs_to_run_offline(tmp_path: Path) -> None:
    """`newsarchive mirror`, then the crawl command it prints, as an operator would run it."""
    import shlex
    import signal

    from tests.crawl_helper import crawl_env

    with subprocess.Popen(
        [sys.executable, "-m", "crawler.ops.cli", "mirror", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=crawl_env(),
        cwd=tmp_path,
    ) as mirror:
        assert mirror.stdout is not None and mirror.stderr is not None
        try:
            first = mirror.stdout.readline()
            assert first.startswith("mirror of ") and "Ctrl-C stops it" in first, first
            crawl_line = mirror.stdout.readline().strip()
            assert crawl_line.startswith("newsarchive crawl tdi --proxy http://127.0.0.1:")
            args = shlex.split(crawl_line)[1:]
            store = tmp_path / "store"
            done = subprocess.run(
                [sys.executable, "-m", "crawler.ops.cli", *args, "--store", str(store)],
                capture_output=True,
                text=True,
                env=crawl_env(),
                cwd=tmp_path,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr[-3000:]
            assert len(list((store / "text" / "tdi").rglob("*.txt"))) == 6
        finally:
            mirror.send_signal(signal.SIGTERM)
            _, errors = mirror.communicate(timeout=20)
        assert mirror.returncode == 0, errors
