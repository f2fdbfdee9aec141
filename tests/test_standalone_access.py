"""The researcher side stands alone: `newsarchive snapshots/get/export/serve` on the demo's
store, each in a Python where Scrapy, Twisted, Playwright and the spiders cannot be imported
(tests/no_scrapy.py), and none of them even tries to import them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import ROOT, DemoRun, expected_text

HOOK = "tests/no_scrapy.py"
SAMPLE = "004_2c00aa427ae8dd86.txt"  # the TDI sample: in the session's `demo --sites tdi`
BLOCKED = {"scrapy", "twisted", "scrapy_playwright", "playwright", "spiders"}
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
SERVING = re.compile(rb"serving \S+ on http://127\.0\.0\.1:(\d+)/")


def blocked_env(report: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "NO_SCRAPY_REPORT": str(report)}


def run_blocked(report: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """`newsarchive ARGS...` through the import hook, in the repository root."""
    return subprocess.run(
        [sys.executable, HOOK, *args],
        cwd=ROOT,
        capture_output=True,
        timeout=180,
        env=blocked_env(report),
    )


def refused(report: Path) -> list[str]:
    """The modules the hook refused, in order; the hook creates the file when it starts."""
    assert report.is_file(), f"the hook did not run: no {report}"
    return report.read_text().split()


def assert_standalone(proc: subprocess.CompletedProcess[bytes], report: Path) -> None:
    """Nothing tried to import the crawl side, and the command succeeded."""
    err = proc.stderr.decode(errors="replace")[-6000:]
    assert refused(report) == [], f"refused imports (chains on stderr):\n{err}"
    assert proc.returncode == 0, f"exit {proc.returncode}\n{err}"


@pytest.fixture(scope="module")
def sample(demo_run: DemoRun, demo_store: Path) -> dict[str, Any]:
    """The sidecar of the TDI sample in the demo's store, found by its text."""
    want = expected_text(SAMPLE)
    texts = sorted((demo_store / "text" / "tdi").rglob("*.txt"))
    found = [p for p in texts if p.read_bytes() == want]
    if len(found) != 1:
        pytest.fail(
            f"the demo's store has {len(found)} texts equal to sample {SAMPLE} "
            f"(of {len(texts)} TDI texts)\n--- demo stderr\n{demo_run.stderr[-3000:]}",
            pytrace=False,
        )
    data: dict[str, Any] = json.loads(found[0].with_suffix(".json").read_text())
    return data


def test_hook_refuses_the_crawl_side_that_is_installed(tmp_path: Path) -> None:
    """The selftest exits 3 only if each blocked package is installed and yet refused."""
    report = tmp_path / "refused.txt"
    proc = run_blocked(report, "--selftest")
    assert proc.returncode == 3, proc.stdout.decode() + proc.stderr.decode()
    assert set(refused(report)) == BLOCKED


@pytest.mark.slow
def test_snapshots_without_scrapy(demo_store: Path, sample: dict[str, Any], tmp_path: Path) -> None:
    """`snapshots URL` lists the sample's capture, as a table and as JSON."""
    report = tmp_path / "refused.txt"
    table = run_blocked(report, "snapshots", sample["url"], "--store", str(demo_store))
    assert_standalone(table, report)
    assert sample["url"] in table.stdout.decode()
    assert f"tdi:{sample['article_id']}: " in table.stdout.decode()
    found = run_blocked(report, "snapshots", sample["url"], "--store", str(demo_store), "--json")
    assert_standalone(found, report)
    [capture] = [c for c in json.loads(found.stdout) if c["text_key"]]
    assert capture["record_id"] == sample["warc"]["record_id"]
    assert capture["text_digest"] == sample["text_digest"]


@pytest.mark.slow
def test_get_text_without_scrapy(demo_store: Path, sample: dict[str, Any], tmp_path: Path) -> None:
    """`get URL --as text` prints exactly the sample's expected text."""
    report = tmp_path / "refused.txt"
    got = run_blocked(report, "get", sample["url"], "--as", "text", "--store", str(demo_store))
    assert_standalone(got, report)
    assert got.stdout == expected_text(SAMPLE)
    assert got.stdout == (demo_store / sample["text_key"]).read_bytes()


@pytest.mark.slow
def test_export_jsonl_without_scrapy(
    demo_store: Path, sample: dict[str, Any], tmp_path: Path
) -> None:
    """`export --site tdi --format jsonl` writes one line per TDI article, with its text."""
    report = tmp_path / "refused.txt"
    dest = tmp_path / "tdi.jsonl"
    args = ("export", "--site", "tdi", "--format", "jsonl", str(dest), "--store", str(demo_store))
    done = run_blocked(report, *args)
    assert_standalone(done, report)
    texts = list((demo_store / "text" / "tdi").rglob("*.txt"))
    assert f"exported {len(texts)} articles" in done.stdout.decode()
    lines = [json.loads(x) for x in dest.read_text().splitlines()]
    assert len(lines) == len(texts) == 6
    [line] = [x for x in lines if x["article_id"] == sample["article_id"]]
    assert line["text"].encode() == expected_text(SAMPLE)


def wait_for_port(proc: subprocess.Popen[bytes], out: Path, err: Path) -> int:
    """The port `serve --port 0` bound, from the line it prints once it listens."""
    deadline = time.monotonic() + 90
    while True:
        if found := SERVING.search(out.read_bytes()):
            return int(found.group(1))
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(
                f"serve did not start (exit {proc.poll()}):\n"
                f"{out.read_text()[-2000:]}\n{err.read_text()[-6000:]}",
                pytrace=False,
            )
        time.sleep(0.2)


@pytest.mark.slow
def test_serve_without_scrapy(demo_store: Path, sample: dict[str, Any], tmp_path: Path) -> None:
    """`serve` answers the browse page and a CDX query, and stops cleanly on Ctrl-C."""
    report = tmp_path / "refused.txt"
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, HOOK, "serve", "--store", str(demo_store), "--port", "0"],
            cwd=ROOT,
            stdout=stdout,
            stderr=stderr,
            env=blocked_env(report),
        )
    try:
        base = f"http://127.0.0.1:{wait_for_port(proc, out, err)}"
        with OPENER.open(base + "/", timeout=10) as resp:
            assert resp.status == 200
            assert "<a href='/site/tdi'>tdi</a> (6 articles)" in resp.read().decode()
        query = urlencode({"url": sample["url"], "output": "json"})
        with OPENER.open(f"{base}/cdx?{query}", timeout=10) as resp:
            assert resp.status == 200
            entries = [json.loads(x) for x in resp.read().decode().splitlines()]
        assert sample["url"] in {e["url"] for e in entries}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0, err.read_text()[-6000:]
    except (OSError, urllib.error.URLError) as exc:
        pytest.fail(f"{exc}\n{err.read_text()[-6000:]}", pytrace=False)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert refused(report) == [], f"refused imports (chains on stderr):\n{err.read_text()}"
