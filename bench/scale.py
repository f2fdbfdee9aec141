"""Benchmark: the crawl-end step's peak memory as the crawl grows (issue 22, "memory flat").

    python -m bench.scale                          # 2,000, 20,000 and 100,000 captures
    python -m bench.scale --captures 2000 20000    # fewer sizes
    python -m bench.scale build DIR N              # only build a synthetic crawl of N captures
    python -m bench.scale end DIR                  # only run the crawl-end step on it (JSON line)
    python -m bench.scale end DIR --trace          # ... under tracemalloc: what it holds at its
                                                   # peak, by line, against its start (stderr)

``build`` writes what one page-mode crawl of N article pages leaves behind, into a local store
and its SQLite catalog, with the project's own record builder: WARC files (request, response,
conversion and metadata records per article, rolled over every 5,000 captures, some article
records in the file after their response's, as the writer thread places them), one text of
3–6 KB and its JSON sidecar per new article, the catalog's capture rows. One capture in ten is
an unchanged article: a revisit whose original lies in an earlier crawl's WARC (so the WACZ
copies originals) and whose text is the earlier crawl's. Bodies are small (2–3 KB): the WARCs
are streamed through the step, their size is not what this measures; the texts are realistic.

``end`` runs the real crawl-end step in a fresh process, as the crawl's ledger runs it:
``ArchiveIndexes.close`` (CDXJ per WARC, Parquet with texts, the WACZ with its originals, the
catalog's record locations), then the report and the manifest. Before it the process holds the
crawl's state (the ledger, whose list of what the crawl wrote is a file in the spool's scratch
folder); the peak is the kernel's high-water mark (VmHWM) reset at the step's start, so it is
the step's own peak RSS, printed beside the RSS the step started with.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections import deque
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from bench.synthetic import _WORDS

if TYPE_CHECKING:
    from crawler.crawl.ledger import CrawlLedger
    from crawler.store.base import Store

ROOT = Path(__file__).resolve().parents[1]
SITE = "bench"
CRAWL_ID = "bench-20250611T093000Z-000001"
EARLIER_ID = "bench-20250601T093000Z-000000"
PER_WARC = 5000
REVISIT_EVERY = 10
LAG = 25  # article records written this many captures after their response
TARGET_MIB = 400


def _member(data: bytes) -> bytes:
    """One record as its own gzip member (level 1: this is a fixture, not the archive)."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    return packer.compress(data) + packer.flush()


def _text(rng: random.Random, title: str) -> str:
    paragraphs = [title]
    size = len(title)
    target = rng.randint(3000, 6000)
    while size < target:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(40, 90))]
        paragraph = " ".join(words).capitalize() + "."
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    return "\n\n".join(paragraphs) + "\n"


class _Warcs:
    """WARC files of one crawl in the store, rolled over every ``PER_WARC`` captures."""

    def __init__(self, store: Path, crawl_id: str, stamp: str, objects: IO[str] | None) -> None:
        self.store = store
        self.crawl_id = crawl_id
        self.stamp = stamp
        self.objects = objects
        self.serial = 0
        self.fh: IO[bytes] | None = None
        self.key = ""
        self.digest = hashlib.sha256()

    def roll(self) -> None:
        from crawler.layout import warc_key

        self.close()
        name = f"{self.crawl_id}-{self.stamp}-{self.serial:05d}-bench.warc.gz"
        self.serial += 1
        self.key = warc_key(SITE, name)
        path = self.store / self.key
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = path.open("wb")
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> tuple[str, int, int]:
        assert self.fh is not None
        member = _member(data)
        offset = self.fh.tell()
        self.fh.write(member)
        self.digest.update(member)
        return self.key, offset, len(member)

    def close(self) -> None:
        if self.fh is not None:
            size = self.fh.tell()
            self.fh.close()
            self.fh = None
            _listed(self.objects, self.key, size, self.digest.hexdigest())


def _listed(objects: IO[str] | None, key: str, size: int, sha256: str) -> None:
    if objects is not None:
        objects.write(json.dumps([key, size, sha256]) + "\n")


def _put(store: Path, key: str, data: bytes, objects: IO[str] | None) -> None:
    path = store / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    _listed(objects, key, len(data), hashlib.sha256(data).hexdigest())


def build(work: Path, captures: int, per_warc: int = PER_WARC) -> None:
    """A synthetic store and catalog holding one crawl of ``captures`` article pages, its
    WARC files rolled over every ``per_warc`` captures."""
    from crawler.capture.records import RecordBuilder, build_request_head, format_warc_date
    from crawler.catalog.db import Capture, Catalog
    from crawler.layout import default_catalog_url, sidecar_key, text_key
    from crawler.text.extract import EXTRACTOR_VERSION

    store = work / "store"
    store.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(default_catalog_url(store, work / "spool"))
    builder = RecordBuilder()
    rng = random.Random(22)
    start = datetime(2025, 6, 11, 9, 30, tzinfo=UTC)
    earlier = datetime(2025, 6, 1, 9, 30, tzinfo=UTC)
    rows: list[Capture] = []
    earlier_rows: list[Capture] = []

    def flush_rows() -> None:
        if rows:
            catalog.add_captures(rows)
            rows.clear()
        if earlier_rows:
            catalog.add_captures(earlier_rows)
            earlier_rows.clear()

    with (work / "objects.jsonl").open("w") as objects:
        # The earlier crawl's objects are no objects of this crawl: not listed.
        old = _Warcs(store, EARLIER_ID, "20250601093000", objects=None)
        old.roll()
        warcs = _Warcs(store, CRAWL_ID, "20250611093000", objects)
        pending: deque[tuple[bytes, bytes]] = deque()
        for n in range(captures):
            if n % per_warc == 0:
                warcs.roll()
            url = f"https://bench.newsarchive.test/news/synthetic-article-{n:06d}.html"
            article = f"{n:06d}"
            moment = start + timedelta(milliseconds=40 * n)
            title = " ".join(rng.choice(_WORDS) for _ in range(8)).title()
            html = (
                f"<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}"
                f"</h1>{'<p>' + ' '.join(rng.choice(_WORDS) for _ in range(300)) + '</p>'}"
                "</body></html>"
            ).encode()
            head = (
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                + f"Content-Length: {len(html)}\r\n\r\n".encode()
            )
            request_head = build_request_head("GET", url, [(b"User-Agent", b"bench")])
            unchanged = n % REVISIT_EVERY == REVISIT_EVERY - 1
            if unchanged:
                # The earlier crawl's response, then this crawl's revisit of it.
                then = earlier + timedelta(milliseconds=40 * n)
                original = builder.response(target_uri=url, http_head=head, payload=html, date=then)
                key, offset, length = old.write(original.data)
                old_text = _text(rng, title).encode()
                old_key = text_key(SITE, article, format_warc_date(then))
                earlier_rows.append(
                    Capture(
                        original.record_id,
                        EARLIER_ID,
                        SITE,
                        url,
                        article,
                        format_warc_date(then)[:19] + "Z",
                        200,
                        "response",
                        original.payload_digest,
                        key,
                        offset,
                        length,
                        "sha256:" + hashlib.sha256(old_text).hexdigest(),
                        old_key,
                        1,
                        format_warc_date(then),
                    )
                )
                _put(store, old_key, old_text, None)
                _put(
                    store,
                    sidecar_key(old_key),
                    json.dumps(
                        {
                            "url": url,
                            "site": SITE,
                            "article_id": article,
                            "title": title,
                            "published": "2025-06-01T09:30:00+05:00",
                            "authors": ["Bench Writer"],
                            "language": "en",
                            "text_key": old_key,
                            "version": 1,
                        }
                    ).encode(),
                    None,
                )
                capture = builder.revisit(
                    target_uri=url,
                    http_head=head,
                    date=moment,
                    refers_to=original.record_id,
                    refers_to_target_uri=url,
                    refers_to_date=format_warc_date(then),
                    payload_digest=str(original.payload_digest),
                )
            else:
                capture = builder.response(
                    target_uri=url, http_head=head, payload=html, date=moment
                )
            request = builder.request(
                target_uri=url,
                http_head=request_head,
                date=moment,
                concurrent_to=capture.record_id,
            )
            key, offset, length = warcs.write(capture.data)
            warcs.write(request.data)
            date = format_warc_date(moment)
            row = Capture(
                capture.record_id,
                CRAWL_ID,
                SITE,
                url,
                article,
                date[:19] + "Z",
                200,
                capture.record_type,
                capture.payload_digest,
                key,
                offset,
                length,
                warc_date=date,
            )
            if unchanged:
                old_row = earlier_rows[-1]
                row = replace(
                    row, text_key=old_row.text_key, text_digest=old_row.text_digest, version=1
                )
            else:
                text = _text(rng, title).encode()
                tkey = text_key(SITE, article, date)
                conversion = builder.conversion(
                    target_uri="urn:text:" + url,
                    content=text,
                    refers_to=capture.record_id,
                    refers_to_target_uri=url,
                    refers_to_date=date,
                    date=moment,
                )
                meta = builder.metadata(
                    target_uri=url,
                    fields={"article-id": article, "site": SITE},
                    refers_to=capture.record_id,
                    date=moment,
                )
                pending.append((conversion.data, meta.data))
                digest = "sha256:" + hashlib.sha256(text).hexdigest()
                sidecar = {
                    "url": url,
                    "request_url": url,
                    "canonical_url": url,
                    "site": SITE,
                    "article_id": article,
                    "title": title,
                    "published": "2025-06-11T09:30:00+05:00",
                    "published_text": "2025-06-11T09:30:00+05:00",
                    "published_precision": "second",
                    "published_from": "page",
                    "modified": None,
                    "authors": ["Bench Writer"],
                    "section": "News",
                    "tags": ["bench", "synthetic"],
                    "language": "en",
                    "lead": text[:200].decode(),
                    "description": title,
                    "images": [],
                    "status": 200,
                    "encoding": "utf-8",
                    "crawl_id": CRAWL_ID,
                    "crawl_time": start.isoformat(),
                    "capture_time": date,
                    "payload_digest": capture.payload_digest,
                    "warc": {
                        "file": key.rsplit("/", 1)[-1],
                        "key": key,
                        "offset": offset,
                        "length": length,
                        "record_id": capture.record_id,
                        "record_type": capture.record_type,
                    },
                    "text_mode": "page",
                    "text_digest": digest,
                    "text_length": len(text),
                    "extractor": "resiliparse",
                    "extractor_version": EXTRACTOR_VERSION,
                    "rules_digest": None,
                    "warnings": [],
                    "discovery": [],
                    "version": 1,
                    "conversion_record_id": conversion.record_id,
                    "metadata_record_id": meta.record_id,
                    "text_key": tkey,
                }
                _put(store, tkey, text, objects)
                _put(store, sidecar_key(tkey), json.dumps(sidecar, indent=2).encode(), objects)
                row = replace(row, text_key=tkey, text_digest=digest, version=1)
            rows.append(row)
            while len(pending) > LAG:
                for data in pending.popleft():
                    warcs.write(data)
            if len(rows) >= 2000:
                flush_rows()
        while pending:
            for data in pending.popleft():
                warcs.write(data)
        warcs.close()
        old.close()
        flush_rows()
    catalog.close()
    (work / "crawl.json").write_text(json.dumps({"crawl_id": CRAWL_ID, "captures": captures}))


def crawl_end(work: Path, batch: int | None = None, store: Store | None = None) -> CrawlLedger:
    """The crawl-end step on the synthetic crawl in ``work`` as the crawl's ledger runs it:
    the indexes (``batch`` captures at a time; the setting's default without it), then the
    report and the manifest. ``store``: where the crawl's objects are (a copy of ``work``'s
    store, an S3 bucket); its catalog stays ``work``'s. Returns the ledger."""
    from crawler.crawl.config import IndexConfig, LedgerConfig
    from crawler.crawl.indexes import ArchiveIndexes
    from crawler.crawl.ledger import CrawlLedger
    from crawler.layout import default_catalog_url
    from crawler.store.base import LocalStore, StoredObject
    from settings import defaults

    info = json.loads((work / "crawl.json").read_text())
    store = store or LocalStore(work / "store")
    ledger = CrawlLedger(
        LedgerConfig(store.uri, work / "spool", info["crawl_id"], report=True), store
    )
    ledger.site = SITE
    # What the crawl's ledger holds when its spider closes: every object it wrote (listed in
    # its scratch folder as the crawl wrote them).
    with (work / "objects.jsonl").open() as fh:
        for line in fh:
            key, size, sha256 = json.loads(line)
            ledger.uploads.objects.append(StoredObject(key, size, sha256))
    ledger.spool_dir.mkdir(parents=True, exist_ok=True)
    catalog = default_catalog_url(work / "store", work / "spool")
    config = IndexConfig(True, catalog, batch or defaults.ARCHIVE_INDEX_BATCH)
    ledger.add_closer("indexes", ArchiveIndexes(config, ledger).close)
    return ledger


class _Tracer:
    """tracemalloc over the step: a snapshot at its start and one near its peak of traced
    memory (sampled once a second), compared by line on stderr. Python's own
    allocations only (not SQLite's, not Arrow's), and slower: its RSS is not the figure."""

    def __init__(self) -> None:
        import threading
        import tracemalloc

        tracemalloc.start(6)
        self.start = tracemalloc.take_snapshot()
        self.peak: tracemalloc.Snapshot | None = None
        self.best = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        import tracemalloc

        while not self.stop.wait(1.0):
            current, _ = tracemalloc.get_traced_memory()
            if current > self.best * 1.05:  # a snapshot costs: only on a real rise
                self.best = current
                self.peak = tracemalloc.take_snapshot()

    def report(self) -> dict[str, float]:
        import tracemalloc

        self.stop.set()
        self.thread.join()
        start_mib = sum(s.size for s in self.start.statistics("filename")) / 2**20
        _current, peak = tracemalloc.get_traced_memory()
        if self.peak is not None:
            print(
                f"traced at the step's start: {start_mib:.1f} MiB; near its peak:", file=sys.stderr
            )
            for stat in self.peak.compare_to(self.start, "traceback")[:12]:
                print(f"  {stat.size / 2**20:+7.1f} MiB {stat.count:>8} blocks", file=sys.stderr)
                for line in stat.traceback.format()[-6:]:
                    print(f"      {line}", file=sys.stderr)
        tracemalloc.stop()
        return {"traced_start_mib": start_mib, "traced_peak_mib": peak / 2**20}


def end(work: Path, trace: bool = False) -> dict[str, Any]:
    """The crawl-end step on the synthetic crawl in ``work``, in this process; its figures
    (``trace``: and what Python allocated, under tracemalloc, printed on stderr)."""
    from bench.meter import cpu_s, reset_peak, rss_kib

    info = json.loads((work / "crawl.json").read_text())
    ledger = crawl_end(work)
    tracer = _Tracer() if trace else None
    rss_start = rss_kib("VmRSS")
    if not reset_peak():
        raise SystemExit("bench: cannot reset the peak RSS (/proc/self/clear_refs)")
    t0, c0 = time.perf_counter(), cpu_s()
    ledger._close_blocking("finished")
    wall, cpu = time.perf_counter() - t0, cpu_s() - c0
    report = ledger.report or {}
    traced = tracer.report() if tracer is not None else {}
    return {
        **traced,
        "captures": info["captures"],
        "rss_start_mib": rss_start / 1024,
        "end_peak_mib": rss_kib("VmHWM") / 1024,
        "end_wall_s": wall,
        "end_cpu_s": cpu,
        "objects": len(ledger.objects),
        "notes": report.get("notes", []),
    }


def _run_end(work: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.scale", "end", str(work)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0 or not out.stdout.strip():
        raise SystemExit(f"bench: the crawl-end step failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["build"]:
        build(Path(args[1]), int(args[2]))
        return 0
    if args[:1] == ["end"]:
        print(json.dumps(end(Path(args[1]), trace="--trace" in args[2:])))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--captures", type=int, nargs="+", default=[2000, 20000, 100000])
    parser.add_argument("--keep", action="store_true", help="keep the synthetic crawls")
    ns = parser.parse_args(args)
    results = []
    for n in ns.captures:
        work = Path(tempfile.mkdtemp(prefix=f"newsarchive-scale-{n}-"))
        try:
            t0 = time.perf_counter()
            built = subprocess.run(
                [sys.executable, "-m", "bench.scale", "build", str(work), str(n)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if built.returncode != 0:
                raise SystemExit(f"bench: building {n} captures failed:\n{built.stderr[-3000:]}")
            load = os.getloadavg()[0]
            print(
                f"  built {n:,} captures in {time.perf_counter() - t0:.0f} s; load {load:.1f}",
                file=sys.stderr,
            )
            r = _run_end(work)
            r["load_before"] = load
            results.append(r)
            print(
                f"  {n:,}: crawl-end peak {r['end_peak_mib']:.0f} MiB "
                f"(started at {r['rss_start_mib']:.0f}), {r['end_wall_s']:.0f} s",
                file=sys.stderr,
            )
        finally:
            if not ns.keep:
                shutil.rmtree(work, ignore_errors=True)
            else:
                print(f"  kept {work}", file=sys.stderr)
    print(
        f"{'captures':>10} {'RSS at start':>13} {'crawl-end peak':>15} {'rise':>8} {'wall s':>7} "
        f"{'CPU s':>6} {'load':>5}"
    )
    for r in results:
        rise = r["end_peak_mib"] - r["rss_start_mib"]
        print(
            f"{r['captures']:>10,} {r['rss_start_mib']:>9.0f} MiB {r['end_peak_mib']:>11.0f} MiB "
            f"{rise:>4.0f} MiB {r['end_wall_s']:>7.1f} {r['end_cpu_s']:>6.1f} "
            f"{r['load_before']:>5.1f}"
        )
        for note in r["notes"]:
            print(f"    note: {note}")
    print(
        "RSS at start: the process with the crawl's state (its ledger; the list of every object "
        "it wrote is a file in the spool); rise: what the step itself adds"
    )
    over = [r for r in results if r["end_peak_mib"] * 1.048576 > TARGET_MIB]
    print(
        f"target: the crawl-end step's peak <= {TARGET_MIB} MB at every size: "
        + ("MISSED at " + ", ".join(f"{r['captures']:,}" for r in over) if over else "met")
    )
    if len(results) > 1:
        rises = [r["end_peak_mib"] - r["rss_start_mib"] for r in results]
        peaks = [r["end_peak_mib"] for r in results]
        print(
            f"from {results[0]['captures']:,} to {results[-1]['captures']:,} captures the "
            f"step's rise went {rises[0]:.0f} -> {rises[-1]:.0f} MiB and its peak "
            f"{peaks[0]:.0f} -> {peaks[-1]:.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
