"""Re-extraction throughput (issue 21): records re-extracted per second per core by
``newsarchive reextract``'s engine, as a ratio to the extractor alone on the same HTML in
memory (goal >= 0.9), and two workers against one (goal >= 1.7x on a 2-core machine).

Two workloads, each printed under its name:

- ``mirror``: the mirror's article pages of every site (about 30 KB, the size of the pages
  saved for the tests), each with its site's rules, stored as the mirror serves them (its
  Content-Encoding kept, as a crawl keeps it);
- ``synthetic``: ``bench/synthetic.py``'s articles (60-125 KB of HTML, the size of a real
  news page with its head, menus and related links; TDI's theme and rules), stored gzipped
  as the mirror serves them.

For each, a synthetic archive is made first: ``--records`` (``--synthetic-records``)
responses cycling through the pages, in one WARC file per site, with their captures and
current texts in a SQLite catalog. The texts are what today's rules make, so a run reads,
checks and extracts every record and changes none: the common case of a run over an archive.
Each round times the extractor alone (``extract_article`` over the decoded pages, already in
memory), then the engine with one worker (in this process: reading by byte range, inflating
the WARC member, the digest check, undoing the content coding, decoding, extraction and the
catalog's checks and checkpoints, one core), then with two (a process pool; this process
writes). The best round of each is kept, so load from elsewhere counts least; by CPU time
too, which the machine's other load changes least. Beside those, the median of each round's
own ratios (the engine against the extractor timed next to it), which drift in the machine's
load between rounds does not tilt either way.

``--steps`` prints instead where a record's CPU goes in the one-worker engine: each step of
the worker alone over every record (reading, the WARC record's inflating and headers, the
payload digest, the content coding, decoding, extraction of each record's own page and of the
same few pages again as the extractor-alone figure does, the text digest), the whole worker,
the parent's side (a run whose records come back already extracted) and the whole run.

    python -m bench.reextract [--records 6000] [--synthetic-records 2000] [--rounds 3]
                              [--workload mirror|synthetic|both] [--steps]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawler.text.extract import ExtractionError, SiteRules, extract_article
from crawler.text.page import page_text

if TYPE_CHECKING:
    from crawler.catalog.db import Catalog
    from crawler.store.base import LocalStore

# The writing side is imported where it is used: the pool's processes import this module as
# their main, and should pay for the extractor only, as they do under `newsarchive`.

MIRROR = Path(__file__).resolve().parent.parent / "crawler" / "mirror" / "sites"
SITES = ("almasirah", "irna", "president", "presstv", "tdi")


@dataclass(frozen=True)
class Page:
    site: str
    url: str
    key: str
    body: bytes
    content_type: str
    rules: SiteRules
    encoding: str | None = None  # the Content-Encoding the payload is stored with

    def payload(self) -> bytes:
        """The body as the server sends it (and the crawl archives it)."""
        if self.encoding == "gzip":
            return gzip.compress(self.body, compresslevel=6, mtime=0)  # as the mirror does
        return self.body


def site_rules() -> dict[str, SiteRules]:
    from crawler.ops.reextract import spider_rules

    return spider_rules()


def article_pages(rules: dict[str, SiteRules]) -> list[Page]:
    """The mirror's pages each site's spider takes for articles and its rules extract."""
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "settings")
    from scrapy.spiderloader import get_spider_loader
    from scrapy.utils.project import get_project_settings

    loader = get_spider_loader(get_project_settings())
    pages = []
    for site in SITES:
        spider = loader.load(site)()
        routes = json.loads((MIRROR / site / "routes.json").read_text())["routes"]
        for route in routes:
            if not str(route.get("file", "")).endswith(".html"):
                continue
            key = spider.article_key(route["url"])
            if not key:
                continue
            body = (MIRROR / site / route["file"]).read_bytes()
            kind = str(route.get("content_type") or "text/html; charset=utf-8")
            try:
                article = extract_article(page_text(body, kind)[0], route["url"], rules[site])
            except ExtractionError:
                continue  # a page only a browser renders: no text in its response
            coding = route.get("encoding")
            if article.extractor == "rules" and coding in (None, "gzip"):
                pages.append(Page(site, route["url"], key, body, kind, rules[site], coding))
    return pages


def synthetic_pages(rules: dict[str, SiteRules], count: int = 24) -> list[Page]:
    """``bench/synthetic.py``'s articles (60-125 KB), TDI's rules, gzipped as served."""
    from bench.synthetic import article_page, article_url

    return [
        Page(
            "tdi",
            article_url(n),
            f"synthetic-{n:06d}",
            article_page(n),
            "text/html; charset=UTF-8",
            rules["tdi"],
            "gzip",
        )
        for n in range(count)
    ]


def build(root: Path, pages: list[Page], count: int) -> tuple[LocalStore, Catalog]:
    """``count`` archived responses with their captures and texts."""
    from crawler.capture.records import RecordBuilder, build_response_head
    from crawler.capture.writer import WarcFileWriter
    from crawler.catalog.db import Capture, Catalog, TextRecord, iso
    from crawler.layout import sqlite_url, text_key, warc_key
    from crawler.store.base import LocalStore

    store = LocalStore(root)
    catalog = Catalog(sqlite_url(root / ".catalog.sqlite"))
    now = datetime.now(UTC)
    builder = RecordBuilder()
    writers: dict[str, WarcFileWriter] = {}
    rows = []
    payloads: dict[str, bytes] = {}
    texts: dict[str, tuple[str, str]] = {}  # url: text digest, extractor
    for n in range(count):
        page = pages[n % len(pages)]
        directory = (
            root / warc_key(page.site, f"{page.site}-{now:%Y%m%d%H%M%S}-00000-x").rsplit("/", 1)[0]
        )
        writer = writers.get(page.site) or writers.setdefault(
            page.site,
            WarcFileWriter(directory, prefix=page.site, crawl_tag="bench", max_age=None),
        )
        payload = payloads.get(page.url) or payloads.setdefault(page.url, page.payload())
        lines = [(b"Content-Type", page.content_type.encode())]
        if page.encoding:
            lines.append((b"Content-Encoding", page.encoding.encode()))
        head = build_response_head("HTTP/1.1", 200, "OK", lines, len(payload))
        record = builder.response(target_uri=page.url, http_head=head, payload=payload, date=now)
        [place] = writer.write_sync([record])
        article_key = f"{page.key}-{n}"
        if page.url not in texts:
            text = extract_article(page_text(page.body, page.content_type)[0], page.url, page.rules)
            assert text.extractor == "rules", page.url
            texts[page.url] = (
                "sha256:" + hashlib.sha256(text.text.encode()).hexdigest(),
                text.extractor,
            )
        digest = texts[page.url][0]
        key = text_key(page.site, article_key, iso(now))
        rows.append(
            Capture(
                record_id=record.record_id,
                crawl_id=f"{page.site}-bench",
                site=page.site,
                url=page.url,
                article_key=article_key,
                capture_time=iso(now),
                status=200,
                record_type="response",
                payload_digest=record.payload_digest,
                warc_key=warc_key(page.site, place.filename),
                warc_offset=place.offset,
                warc_length=place.length,
                text_digest=digest,
                text_key=key,
                version=1,
                warc_date=now.isoformat(),
            )
        )
        catalog.record_text(
            TextRecord(
                site=page.site,
                article_key=article_key,
                url=page.url,
                capture_time=iso(now),
                text_digest=digest,
                text_key=key,
            )
        )
    for writer in writers.values():
        writer.close()
    catalog.add_captures(rows)
    return store, catalog


def extractor_rate(pages: list[Page], count: int) -> tuple[float, float]:
    """Records per second of ``extract_article`` alone on the same decoded pages: by the
    clock, and by this process's CPU time (what the machine's other load does not change)."""
    decoded = [page_text(p.body, p.content_type)[0] for p in pages]
    wall, cpu = time.perf_counter(), time.process_time()
    for n in range(count):
        page = pages[n % len(pages)]
        extract_article(decoded[n % len(pages)], page.url, page.rules)
    return count / (time.perf_counter() - wall), count / (time.process_time() - cpu)


def engine_rate(
    store: LocalStore, catalog: Catalog, rules: dict[str, SiteRules], workers: int
) -> tuple[float, float, list[float]]:
    """Records per second of a whole run, by the clock and by this process's CPU time (one
    worker: all of it), and the CPU microseconds a record each pool process spent on its tasks
    (two workers)."""
    from crawler.crawl.reextract import Reextractor, Selection

    engine = Reextractor(store, catalog, rules, workers=workers)
    wall, cpu = time.perf_counter(), time.process_time()
    summary = engine.run(Selection())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert summary.failed == 0 and summary.changed == 0, summary.counts()
    pool = sorted(s * 1e6 / summary.done for s in engine.worker_cpu.values())
    return summary.done / wall, summary.done / cpu, pool


def cpu_bound(one_cpu: float, parent_cpu: float, pool: list[float]) -> float:
    """The most two cores could give two workers over one by the CPU each process took:
    one worker's CPU a record over the longer of the busiest pool process and half of all
    (the parent's share too), in microseconds a record. What the clock shows only on an
    otherwise idle machine."""
    parent = 1e6 / parent_cpu
    return (1e6 / one_cpu) / max(max(pool, default=0.0), (parent + sum(pool)) / 2)


def measure(
    name: str, pages: list[Page], rules: dict[str, SiteRules], records: int, rounds: int
) -> dict[str, float]:
    """One workload's rounds; the best of each figure."""
    sizes = sorted(len(p.body) for p in pages)
    stored = sum(len(p.payload()) for p in pages) / len(pages)
    print(
        f"\n[{name}] {len(pages)} article pages of {len({p.site for p in pages})} sites, "
        f"{sizes[0] / 1e3:.0f}-{sizes[-1] / 1e3:.0f} KB of HTML (mean "
        f"{sum(sizes) / len(sizes) / 1e3:.0f} KB, {stored / 1e3:.0f} KB as stored), "
        f"{records} records",
        flush=True,
    )
    best = dict.fromkeys(("extractor", "one", "two", "extractor_cpu", "one_cpu", "two_bound"), 0.0)
    best["load"] = 0.0
    paired: dict[str, list[float]] = {"ratio": [], "ratio_cpu": [], "speedup": []}
    with tempfile.TemporaryDirectory(prefix="newsarchive-bench-reextract-") as tmp:
        t0 = time.perf_counter()
        store, catalog = build(Path(tmp), pages, records)
        print(f"[{name}] archive made in {time.perf_counter() - t0:.1f}s", flush=True)
        for round_ in range(1, rounds + 1):
            extractor, extractor_cpu = extractor_rate(pages, records)
            one, one_cpu, _pool = engine_rate(store, catalog, rules, 1)
            two, two_cpu, pool = engine_rate(store, catalog, rules, 2)
            bound = cpu_bound(one_cpu, two_cpu, pool)
            found = {
                "extractor": extractor,
                "one": one,
                "two": two,
                "extractor_cpu": extractor_cpu,
                "one_cpu": one_cpu,
                "two_bound": bound,
            }
            print(
                f"[{name}] round {round_}: extractor alone {extractor:.1f} records/s "
                f"({extractor_cpu:.1f} per CPU second), reextract 1 worker {one:.1f}/s "
                f"({one_cpu:.1f} per CPU second), 2 workers {two:.1f}/s (CPU a record: this "
                f"process {1e6 / two_cpu:.0f} us, its pool {' + '.join(f'{u:.0f}' for u in pool)}"
                f" us: at most {bound:.2f}x one worker on two cores); load "
                f"{os.getloadavg()[0]:.1f}",
                flush=True,
            )
            best = {k: max(best[k], v) for k, v in found.items()} | {
                "load": max(best["load"], os.getloadavg()[0])
            }
            # Each round's own ratios: the engine against the extractor timed beside it.
            paired["ratio"].append(one / extractor)
            paired["ratio_cpu"].append(one_cpu / extractor_cpu)
            paired["speedup"].append(two / one)
        catalog.close()
    return best | {f"median_{k}": statistics.median(v) for k, v in paired.items()}


def steps(
    name: str, pages: list[Page], rules: dict[str, SiteRules], records: int, rounds: int
) -> str:
    """Where a record's CPU goes in the one-worker engine: each step of the worker over every
    record in turn (its inputs made beforehand), the least CPU of ``rounds``, against the
    whole worker and the whole run; the parent's share is a run whose records come back
    already extracted."""
    import hashlib as _hashlib

    from crawler.crawl import reextract_worker as worker
    from crawler.crawl.reextract import Reextractor, Selection, select_items
    from crawler.text.page import undo_content_coding

    def cpu(label: str, run: Callable[[], object]) -> tuple[str, Callable[[], object]]:
        return label, run

    def header(record: Any, name: str) -> list[str]:
        return [v for k, v in record.http if k.lower() == name]

    def sha1_checked(record: Any) -> bool:
        """The check as the worker makes it: the label read as a number, the digest's too."""
        number = worker._sha1_label_value(record.headers.get("warc-payload-digest", ""))
        return number == int.from_bytes(_hashlib.sha1(record.payload).digest())

    def uncoded(record: Any) -> bytes:
        codings = header(record, "content-encoding")
        body = worker._one_gzip_member(record.payload) if worker._is_gzip(codings) else None
        return body if body is not None else undo_content_coding(record.payload, codings)[0]

    with tempfile.TemporaryDirectory(prefix="newsarchive-bench-reextract-") as tmp:
        store, catalog = build(Path(tmp), pages, records)
        engine = Reextractor(store, catalog, rules, workers=1)
        tasks = engine._tasks(select_items(catalog, Selection()), set())
        todo = [r for t in tasks for r in t.records]
        files = {key: (Path(tmp) / key).open("rb") for key in {r.read.warc_key for r in todo}}

        def read_all() -> list[bytes]:
            out = []
            for r in todo:
                handle = files[r.read.warc_key]
                handle.seek(r.read.offset)
                out.append(handle.read(r.read.length))
            return out

        data = read_all()
        parsed = [worker._parse_record(d) for d in data]
        bodies = [uncoded(p) for p in parsed]
        kinds = [(header(p, "content-type") or [""])[-1] or None for p in parsed]
        # Each record's own page, as the engine has it (not the same few strings again).
        htmls = [page_text(b, k)[0] for b, k in zip(bodies, kinds, strict=True)]
        by_url = {p.url: page_text(p.body, p.content_type)[0] for p in pages}
        shared = [by_url[r.url] for r in todo]

        def extract_all(sources: list[str]) -> list[Any]:
            return [
                extract_article(h, r.url, rules.get(r.site))
                for h, r in zip(sources, todo, strict=True)
            ]

        def decode_all() -> list[tuple[str, str]]:
            return [page_text(b, k) for b, k in zip(bodies, kinds, strict=True)]

        articles = extract_all(htmls)
        reader = worker.RecordReader(store, rules, "article")
        answers = {t.records[0].record_id: reader.group(t) for t in tasks}

        class Replayed(Reextractor):
            def _dispatch(self, tasks: Any, take: Any, workers: Any = None) -> None:
                for task in tasks:
                    for got in answers[task.records[0].record_id]:
                        take(got)

        figures = [
            cpu("read (seek and read)", read_all),
            cpu("WARC record (inflate, headers)", lambda: [worker._parse_record(d) for d in data]),
            cpu("payload digest (SHA-1)", lambda: [sha1_checked(p) for p in parsed]),
            cpu("content coding undone", lambda: [uncoded(p) for p in parsed]),
            cpu("decoding (page_text)", decode_all),
            cpu("extraction, each record's page", lambda: extract_all(htmls)),
            cpu("extraction, the same pages again", lambda: extract_all(shared)),
            cpu(
                "text digest (SHA-256)",
                lambda: [_hashlib.sha256(a.text.encode()).hexdigest() for a in articles],
            ),
            cpu("worker, whole (RecordReader.group)", lambda: [reader.group(t) for t in tasks]),
            cpu(
                "parent (run, records pre-extracted)",
                lambda: Replayed(store, catalog, rules).run(Selection()),
            ),
            cpu("run, one worker", lambda: Reextractor(store, catalog, rules).run(Selection())),
        ]
        # Rounds interleaved: each step once a round, its least CPU kept.
        best = dict.fromkeys((label for label, _run in figures), float("inf"))
        for _ in range(rounds):
            for label, run in figures:
                start = time.process_time()
                run()
                best[label] = min(best[label], (time.process_time() - start) * 1e6 / records)
        for handle in files.values():
            handle.close()
        catalog.close()
    lines = [f"[{name}] CPU a record, each step alone over {records} records (least of {rounds})"]
    lines += [f"[{name}]   {label:38s} {us:8.1f} us" for label, us in best.items()]
    found = list(best.values())
    parts = sum(found[:6]) + best["text digest (SHA-256)"]
    lines.append(
        f"[{name}]   steps' sum {parts:.1f} us; the worker beyond them "
        f"{best['worker, whole (RecordReader.group)'] - parts:.1f} us; load "
        f"{os.getloadavg()[0]:.1f}"
    )
    return "\n".join(lines)


def report(name: str, best: dict[str, float]) -> str:
    ratio = best["one"] / best["extractor"]
    ratio_cpu = best["one_cpu"] / best["extractor_cpu"]
    speedup = best["two"] / best["one"]
    cores = os.cpu_count() or 1
    busy = (
        f"\n[{name}] load reached {best['load']:.1f} on {cores} cores: the records/s figures "
        "and their ratios mix in other processes' work; read the CPU-time ratio"
        if best["load"] > cores / 2
        else ""
    )
    return (
        f"[{name}] extractor alone: {best['extractor']:.1f} records/s (one core, HTML in "
        f"memory), {1e3 / best['extractor_cpu']:.2f} ms of CPU a record\n"
        f"[{name}] reextract, 1 worker: {best['one']:.1f} records/s per core = {ratio:.2f} of "
        f"the extractor alone (goal >= 0.9); by CPU time {ratio_cpu:.2f} "
        f"({1e3 / best['one_cpu']:.2f} ms a record)\n"
        f"[{name}] reextract, 2 workers: {best['two']:.1f} records/s ({best['two'] / 2:.1f} "
        f"per core) = {speedup:.2f}x one worker (goal >= 1.7x); by the CPU each process took, "
        f"at most {best['two_bound']:.2f}x on two otherwise idle cores\n"
        f"[{name}] median of the rounds' own ratios (each round's engine against the extractor "
        f"timed beside it): 1 worker {best['median_ratio']:.2f} of the extractor alone, by CPU "
        f"time {best['median_ratio_cpu']:.2f}; 2 workers {best['median_speedup']:.2f}x one" + busy
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=6000, help="mirror workload records")
    parser.add_argument(
        "--synthetic-records", type=int, default=2000, help="synthetic workload records"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workload", choices=("mirror", "synthetic", "both"), default="both")
    parser.add_argument(
        "--steps",
        action="store_true",
        help="instead: where a record's CPU goes, step by step (one worker)",
    )
    args = parser.parse_args(argv)
    rules = site_rules()
    print(f"{os.cpu_count()} cores; load {os.getloadavg()[0]:.1f} at start")
    if args.steps:
        if args.workload in ("mirror", "both"):
            print(steps("mirror", article_pages(rules), rules, args.records, args.rounds))
        if args.workload in ("synthetic", "both"):
            pages = synthetic_pages(rules)
            print(steps("synthetic", pages, rules, args.synthetic_records, args.rounds))
        return 0
    results = []
    if args.workload in ("mirror", "both"):
        best = measure("mirror", article_pages(rules), rules, args.records, args.rounds)
        results.append(report("mirror", best))
    if args.workload in ("synthetic", "both"):
        best = measure(
            "synthetic", synthetic_pages(rules), rules, args.synthetic_records, args.rounds
        )
        results.append(report("synthetic", best))
    print("\n" + "\n".join(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
