"""Researcher access at scale: 1,000,000 synthetic captures in the catalog.

Prints URL lookup latency (p50/p99) through the catalog, a one-site one-month export rate
(rows/s, MB/s) in Parquet and JSONL, and the same URL lookups through pywb's CDX server on a
CDXJ of the same captures (``--pywb-bin``, default ``$NEWSARCHIVE_PYWB_BIN``) and through
``newsarchive serve``'s CDX index in process.

    python -m bench.access [--captures 1000000] [--lookups 2000] [--pywb-bin /tmp/vpywb/bin]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import surt

from crawler.access.export import export
from crawler.access.query import Archive
from crawler.access.serve import CdxIndex
from crawler.catalog.db import Catalog
from crawler.catalog.db import captures as captures_table
from crawler.layout import sqlite_url
from crawler.store.base import LocalStore

SITES = ("almasirah", "irna", "president", "presstv", "tdi")
START = datetime(2025, 1, 1, tzinfo=UTC)
TEXT = ("Paragraph of a synthetic article about talks between delegations. " * 40).strip()


def article_url(site: str, n: int) -> str:
    return f"https://{site}.bench.test/news/{n}/synthetic-article-{n}"


def fill(catalog: Catalog, count: int, seed: int = 7) -> list[tuple[str, str, str, int]]:
    """``count`` captures: articles with ~5 captures each over 12 months, bulk-inserted."""
    rng = random.Random(seed)
    articles = max(1, count // 5)
    rows = []
    for i in range(count):
        n = i % articles
        site = SITES[n % len(SITES)]
        first = START + timedelta(seconds=(n * 7919) % (365 * 86400))
        when = first + timedelta(hours=(i // articles) * 24 + rng.randint(0, 3))
        version = 1 + (i // articles) // 2
        stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        day = stamp[:10].replace("-", "/")
        text_key = f"text/{site}/{day}/{n}.v{version}.txt" if version > 1 else None
        text_key = text_key or f"text/{site}/{day}/{n}.txt"
        rows.append(
            (
                f"<urn:uuid:{i:08x}-0000-4000-8000-{n:012x}>",
                f"{site}-bench",
                site,
                article_url(site, n),
                str(n),
                stamp,
                stamp[:19] + ".000000Z",
                200,
                "response",
                f"sha1:{i:032X}",
                f"warc/{site}/{day}/{site}-bench-{i // 5000:05d}.warc.gz",
                (i % 5000) * 20000,
                19000,
                f"sha256:{n:064x}",
                text_key,
                version,
            )
        )
    # Bulk load: indexes dropped first and built once at the end (as for any bulk import).
    for index in captures_table.indexes:
        index.drop(catalog.engine)
    raw = catalog.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.executemany(
            "INSERT INTO captures (record_id, crawl_id, site, url, article_key, capture_time,"
            " warc_date, status, record_type, payload_digest, warc_key, warc_offset,"
            " warc_length, text_digest, text_key, version) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        raw.commit()
    finally:
        raw.close()
    for index in captures_table.indexes:
        index.create(catalog.engine)
    return [(r[2], r[3], r[5], r[11]) for r in rows]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(calls: list[str], run: object) -> list[float]:
    out = []
    for url in calls:
        t0 = time.perf_counter()
        run(url)  # type: ignore[operator]
        out.append((time.perf_counter() - t0) * 1000)
    return out


def report(label: str, ms: list[float]) -> None:
    print(
        f"{label:42} p50 {percentile(ms, 0.5):7.2f} ms   p99 {percentile(ms, 0.99):7.2f} ms   "
        f"mean {statistics.fmean(ms):7.2f} ms"
    )


def write_month_files(store: Path, catalog: Catalog, site: str, since: str, until: str) -> int:
    """Texts and sidecars of the exported month (the only ones an export reads)."""
    written = 0
    with catalog.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT DISTINCT text_key, url, article_key FROM captures WHERE site = ? AND"
            " capture_time >= ? AND capture_time < ?",
            (site, since, until),
        ).fetchall()
    for text_key, url, key in rows:
        path = store / text_key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"Synthetic article {key}\n\n{TEXT}\n")
        sidecar = {
            "url": url,
            "site": site,
            "article_id": key,
            "title": f"Synthetic {key}",
            "published": "2025-06-01T10:00:00+00:00",
            "authors": ["Bench"],
            "tags": ["bench"],
            "language": "en",
            "text_key": text_key,
        }
        path.with_suffix(".json").write_text(json.dumps(sidecar))
        written += 1
    return written


def cdxj_of(captures: list[tuple[str, str, str, int]], path: Path) -> None:
    lines = []
    for site, url, stamp, offset in captures:
        fields = {
            "url": url,
            "mime": "text/html",
            "status": "200",
            "digest": "sha1:AAAA",
            "length": "19000",
            "offset": str(offset),
            "filename": f"{site}-bench.warc.gz",
        }
        ts = stamp.replace("-", "").replace(":", "").replace("T", "")[:14]
        lines.append(f"{surt.surt(url)} {ts} {json.dumps(fields)}\n")
    lines.sort()
    path.write_text("".join(lines))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pywb_lookups(bindir: Path, cdxj: Path, urls: list[str], root: Path) -> list[float] | None:
    indexes = root / "collections" / "bench" / "indexes"
    indexes.mkdir(parents=True)
    (root / "collections" / "bench" / "archive").mkdir()
    os.replace(cdxj, indexes / "index.cdxj")
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env[name] = "http://127.0.0.1:9"  # anything pywb fetches goes nowhere
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost"
    port = free_port()
    log = (root / "wayback.log").open("wb")
    proc = subprocess.Popen(
        [str(bindir / "wayback"), "--bind", "127.0.0.1", "--port", str(port), "--threads", "1"],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    base = f"http://127.0.0.1:{port}/bench/cdx?output=json&url="
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                opener.open(base + quote(urls[0], safe=""), timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    print("pywb did not start: see", root / "wayback.log")
                    return None
                time.sleep(0.3)

        def lookup(url: str) -> None:
            with opener.open(base + quote(url, safe=""), timeout=30) as resp:
                assert resp.read().count(b"\n") >= 1

        return timed(urls, lookup)
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captures", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--pywb-bin", default=os.environ.get("NEWSARCHIVE_PYWB_BIN"))
    ns = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-access-") as tmp:
        root = Path(tmp)
        store = root / "store"
        store.mkdir()
        catalog = Catalog(sqlite_url(store / ".catalog.sqlite"))
        t0 = time.perf_counter()
        captures = fill(catalog, ns.captures)
        fill_s = time.perf_counter() - t0
        print(
            f"catalog: {ns.captures:,} captures inserted in {fill_s:.1f}s "
            f"({ns.captures / fill_s:,.0f} rows/s)"
        )
        archive = Archive(LocalStore(store), catalog)
        rng = random.Random(11)
        urls = [rng.choice(captures)[1] for _ in range(ns.lookups)]
        report("URL lookup, catalog (snapshots)", timed(urls, archive.snapshots))

        since, until = "2025-06-01T00:00:00Z", "2025-07-01T00:00:00Z"
        files = write_month_files(store, catalog, "irna", since, until)
        for fmt, dest in (("parquet", root / "irna.parquet"), ("jsonl", root / "irna.jsonl")):
            summary = export(archive, "irna", since, until, fmt, dest)
            print(
                f"export irna 2025-06 as {fmt:8} {summary.rows:,} rows ({files:,} texts) in "
                f"{summary.seconds:.2f}s: {summary.rows / summary.seconds:,.0f} rows/s, "
                f"{summary.bytes / 1e6 / summary.seconds:.1f} MB/s of text, "
                f"{dest.stat().st_size / 1e6:.1f} MB written"
            )

        cdxj = root / "bench.cdxj"
        t0 = time.perf_counter()
        cdxj_of(captures, cdxj)
        print(
            f"CDXJ of the same captures: {cdxj.stat().st_size / 1e6:.0f} MB in "
            f"{time.perf_counter() - t0:.1f}s"
        )
        index = CdxIndex(cdxj.read_text().splitlines(keepends=True))
        report(
            "URL lookup, serve's CDX index (in process)",
            timed(urls, lambda u: list(index.query({"url": [u]}))),
        )
        if ns.pywb_bin and (Path(ns.pywb_bin) / "wayback").exists():
            ms = pywb_lookups(Path(ns.pywb_bin), cdxj, urls, root / "pywb")
            if ms is not None:
                report("URL lookup, pywb CDX server (HTTP)", ms)
        else:
            print("pywb: not run (give --pywb-bin or set NEWSARCHIVE_PYWB_BIN)")
        catalog.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
