"""Kills, store faults, a full disk and an unwritable store (issue 8, items 1, 2 and 5).

The fast cases run in the normal suite; ``-m hardening`` runs the long randomized one
(``python -m tests.hardening`` does the same outside pytest).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from crawler.capture.writer import recover_open_files
from tests.conftest import SeaweedFS
from tests.crawl_helper import ROOT, crawl_command, crawl_env
from tests.hardening import SPIDER, Campaign, GrowingSite, Lane, check_lane, summary
from tests.test_crash_recovery import complete_records, warcio_check

SEED = 20261123


@pytest.fixture(scope="module")
def campaign(
    seaweedfs: SeaweedFS, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Campaign, dict[str, Any]]:
    """Two kills and one store fault with a fixed seed (about 35 s)."""
    run = Campaign(tmp_path_factory.mktemp("hardening"), seaweedfs, SEED, per_round=6)
    return run, run.run(kills=2, faults=1)


def test_killed_and_faulted_crawls_lose_corrupt_and_duplicate_nothing(
    campaign: tuple[Campaign, dict[str, Any]],
) -> None:
    run, result = campaign
    text = summary(result)
    assert result["kills"] == 2, text
    assert result["faults"] == 1, text
    figures = result["figures"]
    assert figures.clean, figures.describe()
    # The check saw the whole archive: every offered article, in both stores.
    assert figures.texts == 2 * result["articles"]
    assert figures.warc_records > 4 * result["articles"]
    assert {r.lane for r in run.rounds} == {"local", "s3"}


def test_the_check_finds_damage(campaign: tuple[Campaign, dict[str, Any]], tmp_path: Path) -> None:
    """The checks can fail: a torn WARC, a second text, a catalog row gone are all found."""
    run, _ = campaign
    lane = run.lanes["local"]
    store = tmp_path / "store"
    shutil.copytree(Path(lane.store_uri), store)
    damaged = Lane("copy", tmp_path, str(store), store / ".spool", store / ".catalog.sqlite", {})
    warc = sorted(store.glob("warc/**/*.warc.gz"))[-1]
    warc.write_bytes(warc.read_bytes()[:-100])
    [first] = [t for t in store.glob("text/**/0.txt")]
    shutil.copy(first, first.with_name("0.v2.txt"))
    db = sqlite3.connect(damaged.catalog)
    with db:
        db.execute("DELETE FROM articles WHERE article_key = '1'")
        db.execute("UPDATE captures SET text_key = NULL WHERE article_key = '1'")
    db.close()

    figures = check_lane(damaged, run.site.urls())
    assert any(warc.name in c for c in figures.corrupt), figures.describe()
    assert any("article 0:" in d for d in figures.duplicated), figures.describe()
    assert any("/1.txt: in the store, not in the catalog" in p for p in figures.problems)
    assert any("0.v2.txt: no sidecar" in x for x in figures.lost), figures.describe()


@pytest.mark.hardening
@pytest.mark.slow
@pytest.mark.timeout(1800)  # about 6 minutes; the suite's 300 s per test is for the rest
def test_twenty_kills_and_ten_store_faults(seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    """The long run: ``pytest -m hardening -s`` prints the summary (about 6 minutes)."""
    seed = int(os.environ.get("HARDENING_SEED", "8"))
    result = Campaign(tmp_path, seaweedfs, seed).run(kills=20, faults=10)
    print("\n" + summary(result))
    assert (result["kills"], result["faults"]) == (20, 10)
    assert result["figures"].clean, result["figures"].describe()


# ------------------------------------------------------------------ disk full, unwritable store


def _tmpfs(path: Path, size: str) -> bool:
    """A small tmpfs at ``path`` (needs root); False where it cannot be mounted."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return done.returncode == 0


def _file_size_limit(limit: int) -> Any:
    def limit_writes() -> None:
        # Writes past the limit fail with EFBIG, as a full disk fails them with ENOSPC.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_writes


def _crawl(out: Path, settings: dict[str, str], preexec: Any = None) -> tuple[int, str]:
    log = out.with_suffix(".log")
    with log.open("wb") as err:
        proc = subprocess.run(
            crawl_command(SPIDER, out, settings=settings),
            cwd=ROOT,
            env=crawl_env(),
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=preexec,
            timeout=120,
        )
    return proc.returncode, log.read_text(errors="replace")


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A crawl of 60 articles into a local store on a 1 MB disk (or under a file size limit)."""
    work = tmp_path_factory.mktemp("full-disk")
    disk = work / "disk"
    disk.mkdir()
    mounted = _tmpfs(disk, "1m")
    try:
        with GrowingSite() as site:
            site.offered = 60
            code, log = _crawl(
                work / "crawl.json",
                {"ARCHIVE_STORE_URI": str(disk / "store"), "ARCHIVE_PROXY": site.proxy_url},
                None if mounted else _file_size_limit(400_000),
            )
            served = site.served
        # Look at what the crawl left on a disk with room again.
        kept = work / "kept"
        shutil.copytree(disk / "store", kept)
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=False)
    return {"code": code, "log": log, "store": kept, "served": served, "mounted": mounted}


def test_a_full_disk_fails_the_crawl_with_a_clear_message_and_no_corrupt_file(
    full_disk: dict[str, Any],
) -> None:
    store: Path = full_disk["store"]
    assert full_disk["code"] != 0, full_disk["log"][-3000:]
    # The OS says the disk is full; SQLite, when the catalog's write is the one that fails,
    # says it in its own words.
    reasons = (
        ("No space left on device", "database or disk is full")
        if full_disk["mounted"]
        else ("File too large", "database or disk is full")
    )
    lines = [
        x for x in full_disk["log"].splitlines() if "ERROR" in x and any(r in x for r in reasons)
    ]
    assert lines, full_disk["log"][-3000:]
    # One line that says what failed and where.
    assert any(str(store.parent / "disk") in x for x in lines), lines[:3]
    # Every closed WARC file is whole ...
    for warc in store.rglob("*.warc.gz"):
        warcio_check(warc)
    # ... and every open one is cut back to its complete records by the next start.
    for path in sorted(store.rglob("*.warc.gz.open")):
        complete = complete_records(path.read_bytes())
        [result] = recover_open_files(path.parent)
        warcio_check(result.path)
        assert result.records_kept == len(complete.ids) > 0
    # Texts that were stored are whole: each matches its sidecar.
    for sidecar in store.rglob("text/**/*.json"):
        meta = json.loads(sidecar.read_text())
        text = sidecar.with_suffix(".txt")
        if text.exists():
            assert meta["text_digest"] == "sha256:" + hashlib.sha256(text.read_bytes()).hexdigest()


def test_a_full_disk_stops_the_crawl(full_disk: dict[str, Any]) -> None:
    assert full_disk["served"] < 60
    errors = [x for x in full_disk["log"].splitlines() if re.search(r"Z ERROR \[|\] ERROR: ", x)]
    assert len(errors) <= 3, "\n".join(errors[:10])


def test_an_unwritable_store_stops_the_crawl_before_it_starts(tmp_path: Path) -> None:
    # Root ignores permissions: a file where the store's parent directory should be.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file, not a directory\n")
    store = blocker / "store"
    with GrowingSite() as site:
        site.offered = 5
        code, log = _crawl(
            tmp_path / "crawl.json",
            {"ARCHIVE_STORE_URI": str(store), "ARCHIVE_PROXY": site.proxy_url},
        )
        assert site.served == 0
    assert code != 0
    # One message (Scrapy's traceback repeats it) naming the store and why.
    message = f"newsarchive cannot start: store {store.as_uri()} is not writable: Not a directory"
    errors = [x for x in log.splitlines() if "Error: newsarchive cannot start" in x]
    lines = {x[x.index("newsarchive cannot start") :] for x in errors}
    assert lines == {message}, lines
    assert not list(tmp_path.rglob("*.warc.gz*"))
