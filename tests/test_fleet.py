"""Many workers, one archive: real processes on one PostgreSQL catalog and one SeaweedFS bucket,
each "machine" with its own spool. A site is crawled by one of them at a time (its lease in the
catalog), and a scheduled start runs on one replica of the daemon only."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from crawler.mirror.server import MirrorServer
from tests.conftest import ROOT, SeaweedFS, s3_env

SITES = ("tdi", "irna")


@pytest.fixture(scope="module")
def mirror() -> Iterator[MirrorServer]:
    with MirrorServer() as server:
        yield server


def machine_env(seaweedfs: SeaweedFS, spool: Path) -> dict[str, str]:
    env = {**os.environ, **s3_env(seaweedfs.endpoint), "PYTHONPATH": str(ROOT)}
    env["ARCHIVE_SPOOL_DIR"] = str(spool)
    return env


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    except (ProgrammingError, OperationalError):  # no table yet: no crawl opened the catalog
        return []
    finally:
        engine.dispose()


def pending(spool: Path) -> list[Path]:
    """Objects waiting in a spool for the store (not its catalog, logs or lock)."""
    return [
        p
        for p in spool.rglob("*")
        if p.is_file() and p.name not in (".lock", ".spool-id") and not p.name.startswith("catalog")
    ]


def test_two_crawls_of_one_site_started_together_one_crawls(
    mirror: MirrorServer, seaweedfs: SeaweedFS, fresh_pg: str, tmp_path: Path
) -> None:
    bucket = seaweedfs.new_bucket()
    procs = []
    for machine in ("a", "b"):
        cmd = [sys.executable, "-m", "crawler.ops.cli", "crawl", "tdi"]
        cmd += ["--store", f"s3://{bucket}/news", "--proxy", mirror.proxy_url]
        # A pause between requests: the first crawl holds the site while the second opens.
        for setting in ("DOWNLOAD_DELAY=0.3", "ARCHIVE_DISCOVERY_WINDOW_DAYS=0"):
            cmd += ["-s", setting]
        cmd += ["-s", f"ARCHIVE_CATALOG_URL={fresh_pg}"]
        env = machine_env(seaweedfs, tmp_path / machine / "spool")
        procs.append(
            subprocess.Popen(
                cmd,
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outs = [p.communicate(timeout=180) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 3], outs
    busy_out = next(o for p, o in zip(procs, outs, strict=True) if p.returncode == 3)[0]
    assert re.search(r"^tdi +busy +tdi: held by crawl tdi-\S+ on \S+ \(pid \d+\)", busy_out, re.M)
    # One crawl's captures only: every article page captured once, nothing stuck anywhere.
    captured = rows(
        fresh_pg,
        "SELECT article_key, count(*) FROM captures WHERE article_key IS NOT NULL "
        "AND record_type = 'response' AND status = 200 GROUP BY article_key",
    )
    assert len(captured) == 6 and all(n == 1 for _, n in captured), captured
    assert [pending(tmp_path / m / "spool") for m in ("a", "b")] == [[], []]
    keys = [o["Key"] for o in seaweedfs.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert len([k for k in keys if k.endswith(".txt")]) == 6
    assert len([k for k in keys if k.startswith("news/reports/")]) == 1  # the busy one stored none
    # The lease is released at the end, not left to expire.
    [(site, released)] = rows(fresh_pg, "SELECT site, released FROM site_leases")
    assert site == "tdi" and released is not None


def test_two_daemons_with_one_schedule_run_each_start_once(
    mirror: MirrorServer, seaweedfs: SeaweedFS, fresh_pg: str, tmp_path: Path
) -> None:
    bucket = seaweedfs.new_bucket()
    schedule = tmp_path / "schedule.toml"
    # Every 10 s (a six-field cron, seconds first: warned, and meant here).
    schedule.write_text(
        '[defaults]\ncrawl = "*/10 * * * * *"\nrevisions = ""\njitter = 0\n'
        "[sites.almasirah]\nenabled = false\n[sites.president]\nenabled = false\n"
        "[sites.presstv]\nenabled = false\n"
    )
    daemons = []
    for machine in ("a", "b"):
        cmd = [sys.executable, "-m", "crawler.ops.cli", "run", "--schedule", str(schedule)]
        cmd += ["--store", f"s3://{bucket}/news", "--proxy", mirror.proxy_url]
        for setting in (
            "DOWNLOAD_DELAY=0",
            "ARCHIVE_DISCOVERY_WINDOW_DAYS=0",
            f"ARCHIVE_CATALOG_URL={fresh_pg}",
            "ARCHIVE_STATUS_CHECK_INTERVAL=3600",
        ):
            cmd += ["-s", setting]
        env = machine_env(seaweedfs, tmp_path / machine / "spool")
        with (tmp_path / f"{machine}.log").open("wb") as log:
            daemons.append(
                subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = rows(fresh_pg, "SELECT site, result FROM runs WHERE result = 'ok'")
            counted = Counter(site for site, _ in done)
            if counted["tdi"] >= 2 and counted["irna"] >= 2:
                break
            assert all(d.poll() is None for d in daemons), "a daemon exited"
            time.sleep(0.5)
        else:
            logs = "\n".join((tmp_path / f"{m}.log").read_text()[-3000:] for m in "ab")
            pytest.fail(f"two starts per site were not run in 120 s\n{logs}")
    finally:
        for d in daemons:
            d.send_signal(signal.SIGTERM)
        for d in daemons:
            assert d.wait(60) == 0
    runs = rows(fresh_pg, "SELECT site, result, host, crawl_id FROM runs ORDER BY started")
    # Each due start ran once: on one daemon, the other's attempt skipped (or never made). A
    # start is the schedule's time in the crawl id (site-YYYYmmddTHHMMSSZ-suffix); a crawl of
    # 8-13 s on a 10 s schedule may finish a third start of one site before the other's second.
    ok = Counter(
        (site, crawl_id.split("-")[1]) for site, result, _, crawl_id in runs if result == "ok"
    )
    assert all(n == 1 for n in ok.values()), runs
    assert Counter(site for site, _start in ok) >= Counter({"tdi": 2, "irna": 2}), runs
    # (a start the test's SIGTERM met ends "stopped")
    assert {result for _, result, _, _ in runs} <= {"ok", "skipped", "stopped"}, runs
    # Every archived article captured once (pages that are no article, a gallery, are asked
    # again by each start: they have no text).
    captured = rows(
        fresh_pg,
        "SELECT article_key, count(*) FROM captures WHERE text_key IS NOT NULL "
        "AND record_type = 'response' GROUP BY article_key",
    )
    assert len(captured) >= 10 and all(n == 1 for _, n in captured), captured
    assert [pending(tmp_path / m / "spool") for m in ("a", "b")] == [[], []]


def test_an_object_the_store_refuses_fails_the_crawl_by_name(
    mirror: MirrorServer, tmp_path: Path
) -> None:
    """A second crawl that does not know the first's articles (its catalog lost) writes their
    sidecars again, different bytes under the same keys: the store refuses each, and the crawl
    says so and fails, instead of parking them in its spool for good."""
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "crawler.ops.cli", "crawl", "tdi", "--store", str(store)]
    cmd += ["--proxy", mirror.proxy_url, "-s", "ARCHIVE_DISCOVERY_WINDOW_DAYS=0"]
    cmd += ["-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=False"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr[-3000:]
    (store / ".catalog.sqlite").unlink()
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1, again.stdout + again.stderr[-3000:]
    assert re.search(
        r"^tdi +FAILED .*\(6 objects refused by the store \(their keys hold other bytes; kept in "
        r"the spool\): text/tdi/\S+\.json",
        again.stdout,
        re.M,
    ), again.stdout
    report = max((store / "reports" / "tdi").glob("*.json"), key=lambda p: p.stat().st_mtime)
    refused = json.loads(report.read_text())["upload"]["refused"]
    assert len(refused) == 6 and all(k.startswith("text/tdi/") for k in refused)
    # Nothing lost: the refused bytes wait beside the store, by key.
    assert all((store / ".spool" / "refused" / key).is_file() for key in refused)


def test_a_catalog_pointed_at_another_store_is_refused_by_name(
    mirror: MirrorServer, tmp_path: Path
) -> None:
    catalog = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def crawl(store: Path, *how: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", *how, "tdi", "-s", f"ARCHIVE_STORE_URI={store}"]
        cmd += ["-s", f"ARCHIVE_PROXY={mirror.proxy_url}", "-s", f"ARCHIVE_CATALOG_URL={catalog}"]
        cmd += ["-s", "ARCHIVE_DISCOVERY_WINDOW_DAYS=0", "-s", "DOWNLOAD_DELAY=0"]
        cmd += ["-s", "AUTOTHROTTLE_ENABLED=False"]
        return subprocess.run(
            cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )

    first = crawl(tmp_path / "a", "crawler.ops.cli", "crawl")
    assert first.returncode == 0, first.stdout + first.stderr[-3000:]
    identity = json.loads((tmp_path / "a" / "newsarchive-store.json").read_text())["id"]
    wrong = (
        f"the catalog {catalog} describes the store {(tmp_path / 'a').as_uri()} (id {identity}), "
        f"not {(tmp_path / 'b').as_uri()} (id "
    )
    # Checked once before any site starts ...
    refused = crawl(tmp_path / "b", "crawler.ops.cli", "crawl")
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"error: {wrong}none yet): give this store its own catalog")
    assert len(refused.stderr.splitlines()) == 1
    assert not (tmp_path / "b" / "warc").exists()
    # ... and by the crawl itself (scrapy crawl, the runner), which fetches nothing either.
    direct = crawl(tmp_path / "b", "crawler.crawl.runner")
    assert direct.returncode == 2
    [line] = direct.stderr.splitlines()
    assert "ERROR [tdi tdi-" in line and f"not crawled: {wrong}none yet)" in line
    assert not (tmp_path / "b" / "warc").exists() and not (tmp_path / "b" / "text").exists()
    # The researchers' commands refuse it too.
    get = subprocess.run(
        [sys.executable, "-m", "crawler.ops.cli", "snapshots", "https://thediplomaticinsight.com/",
         "--store", str(tmp_path / "b"), "--catalog", catalog],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert get.returncode == 2 and wrong in get.stderr, get.stderr


def test_archived_means_stored_or_a_row_says_where_it_waits(
    mirror: MirrorServer, seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    """Machine A's crawl is killed (-9) with its WARC in its spool; machine B crawls the site
    from its own spool at once (the lease of a process gone is taken over). No article the
    catalog calls archived lacks its text or WARC in the bucket without its row naming A's
    spool; A's next crawl repairs and stores the WARC, the rows say so, and every capture of
    every stored WARC has its row (rows go in as the crawl goes, the repair adds the rest)."""
    from crawler.access.records import CAPTURE_TYPES

    bucket = seaweedfs.new_bucket()
    catalog = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    client = seaweedfs.client()

    def machine(name: str, *extra: str) -> tuple[list[str], dict[str, str]]:
        cmd = [sys.executable, "-m", "crawler.ops.cli", "crawl", "tdi"]
        cmd += ["--store", f"s3://{bucket}/news", "--proxy", mirror.proxy_url]
        for setting in (
            "ARCHIVE_DISCOVERY_WINDOW_DAYS=0",
            f"ARCHIVE_CATALOG_URL={catalog}",
            "AUTOTHROTTLE_ENABLED=False",
        ):
            cmd += ["-s", setting]
        extra = extra or ("-s", "DOWNLOAD_DELAY=0")
        return [*cmd, *extra], machine_env(seaweedfs, tmp_path / name / "spool")

    def in_bucket() -> set[str]:
        found = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {o["Key"].removeprefix("news/") for o in found}

    def unaccounted() -> list[str]:
        """Archived articles whose text or WARC is not in the bucket and whose row does not
        say where they wait."""
        stored = in_bucket()
        out = []
        for key, text_key, waits in rows(
            catalog, "SELECT article_key, text_key, waits_in FROM articles"
        ):
            warcs = {w for (w,) in rows(catalog, "SELECT warc_key FROM captures WHERE "
                                        f"text_key = '{text_key}'")}  # fmt: skip
            if (text_key not in stored or not warcs <= stored) and not waits:
                out.append(str(key))
        return out

    cmd, env = machine("a", "-s", "DOWNLOAD_DELAY=0.5")
    first = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(rows(catalog, "SELECT 1 FROM articles")) >= 2:
                break
            time.sleep(0.1)
        else:
            pytest.fail("machine A archived nothing in 60 s")
        subprocess.run(["pkill", "-KILL", "-f", f"crawler.crawl.runner tdi .*{bucket}"], check=True)
        first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    waiting = rows(catalog, "SELECT waits_in FROM articles WHERE waits_in IS NOT NULL")
    assert waiting and all("/a/spool@" in str(w) for (w,) in waiting)
    assert unaccounted() == []

    cmd, env = machine("b")  # another machine: its lease taken over, its own spool
    b = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert b.returncode == 0, b.stdout + b.stderr[-3000:]
    assert unaccounted() == []
    status = subprocess.run(
        [sys.executable, "-m", "crawler.ops.cli", "status", "--store", f"s3://{bucket}/news",
         "-s", f"ARCHIVE_CATALOG_URL={catalog}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert re.search(
        r"^waiting for the store: \d+ archived articles in the spool \S+/a/spool",
        status.stdout,
        re.M,
    ), status.stdout

    cmd, env = machine("a")  # A again: the killed crawl's WARC repaired and stored
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr[-3000:]
    assert rows(catalog, "SELECT waits_in FROM articles WHERE waits_in IS NOT NULL") == []
    assert unaccounted() == []
    # Killed between spooling a new text and recording it, A left a sidecar B wrote its own of
    # (B archived the same text under the same key): set aside, named, and the text is stored.
    refused = tmp_path / "a" / "spool" / "refused"
    for kept in (p for p in refused.rglob("*") if p.is_file()):
        key = kept.relative_to(refused).as_posix()
        assert key in in_bucket() and json.loads(kept.read_text())["text_key"] in in_bucket()
        logs = "".join(p.read_text() for p in (tmp_path / "a" / "logs").rglob("*.log"))
        assert f"{key}: the store holds this text's sidecar from another crawl" in logs
    # No run is left running: the command saw its crawl die ("failed", ended by SIGKILL), or,
    # had the command died with it, the takeover of its lease marked it "killed".
    results = sorted(r for (r,) in rows(catalog, "SELECT result FROM runs"))
    assert results[1:] == ["ok", "ok"] and results[0] in ("failed", "killed"), results
    recorded = {r for (r,) in rows(catalog, "SELECT record_id FROM captures")}
    import io

    from crawler.access.records import index_warc

    for key in sorted(k for k in in_bucket() if k.endswith(".warc.gz")):
        body = client.get_object(Bucket=bucket, Key=f"news/{key}")["Body"].read()
        entries, _ = index_warc(io.BytesIO(body), key)
        assert {e.record_id for e in entries if e.record_type in CAPTURE_TYPES} <= recorded, key
