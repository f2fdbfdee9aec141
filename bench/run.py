"""Benchmark: the archiver's cost as ratios to plain Scrapy and to the naive build, same pages.

    python -m bench.run                          # 2,000 pages, every mode, both encodings, 3 rounds
    python -m bench.run --pages 500 --rounds 1 --modes plain naive capture --encodings gzip

Writes synthetic 60–125 KB article pages (bench/synthetic.py) and their listing pages as static
files, each beside its gzip copy, and serves them with Debian's nginx on 127.0.0.1 in a process
of its own (bench/static.py): one port with identity bodies, one with pre-compressed gzip
bodies. Every crawl runs in a fresh process straight against nginx (no proxy, its URLs are
http://127.0.0.1:PORT/...) and follows the same links: 2,000 articles from 40 listing pages,
plus robots.txt. Modes (bench/crawl_once.py): plain Scrapy; the same with CONCURRENT_ITEMS 8,
as the project's add-on sets it (its ratios are printed too, beside the targets' baseline);
plain Scrapy plus a naive warcio extension;
the naive one plus trafilatura in the callback; and the project's crawl with the add-on off,
capture only, site-rule text, generic text and page mode, each writing a real archive.

Rounds are interleaved: each round runs every mode once per encoding, the mode order rotated
from round to round. Per crawl: CPU (user + sys of the crawl process, every thread) from the
start of the crawl to the moment the spider closes, per page; pages/s over the same span; the
crawl-end step's CPU (WARC close, indexes, Parquet, WACZ, catalog, report) apart; the peak RSS
until the spider closes and the crawl-end step's own peak (bench/meter.py). Printed: medians
over the rounds; each ratio is the median of the per-round ratios (a mode against plain Scrapy
or the naive build in the same round and encoding). Targets: issue 22 and
../shared/PERFORMANCE.md, each marked met or MISSED.

``--against TREE`` runs the project's modes of another source tree too (e.g. the commit before a
change: ``git archive REV | tar -x -C TREE``), each right beside the same mode of this tree in
every round (which of the two goes first turns from round to round), and prints the two side
by side: crawl CPU per page and peak RSS, and their per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.crawl_once import MODES, PROJECT_MODES
from bench.static import ENCODINGS, serve
from bench.synthetic import PER_LISTING, write_site

ROOT = Path(__file__).resolve().parents[1]

LABELS = {
    "plain": "plain Scrapy",
    "plain-tuned": "plain Scrapy, CONCURRENT_ITEMS 8",
    "naive": "plain + naive warcio extension",
    "naive-text": "naive + trafilatura callback",
    "addon-off": "newsarchive, add-on off",
    "capture": "newsarchive capture (WARC, no text)",
    "rules": "newsarchive site-rule text + capture",
    "generic": "newsarchive generic text + capture",
    "page": "newsarchive page mode + capture",
}
# Crawl CPU per page as a multiple of plain Scrapy's (issue 22).
TARGETS = {"capture": 1.3, "rules": 2.0, "page": 1.6, "generic": 3.0}
TARGET_NAMES = {
    "capture": "capture only",
    "rules": "site-rule text + capture",
    "page": "page mode",
    "generic": "generic text",
}
TEXT_MODES = ("rules", "generic", "page")
ARCHIVE_MODES = ("capture", "rules", "generic", "page")
RSS_TARGET_MIB = 150
RSS_TARGET_PAGES = 2000
# Over a whole page-mode crawl of this size, its crawl-end step included (issue 22).
WHOLE_TARGET_MB = 400
WHOLE_TARGET_PAGES = 20000
WHOLE_MODE = "page"


def child_env() -> dict[str, str]:
    """This environment without anything that would change a crawl: proxies, the project's
    settings from the environment, a Scrapy settings module."""
    drop = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    return {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in drop
        and not k.startswith(("ARCHIVE_", "NEWSARCHIVE_", "SCRAPY_", "AWS_"))
    }


AGAINST = "@against"  # a mode of the --against tree: "capture@against"


def label(mode: str) -> str:
    return "  the same, --against tree" if mode.endswith(AGAINST) else LABELS[mode]


def run_crawl(mode: str, listings: list[str], work: Path, tree: Path = ROOT) -> dict[str, Any]:
    """One crawl in a fresh process, with the modules of the source tree ``tree``; its JSON
    line, plus the whole process's CPU (os.wait4)."""
    work.mkdir(parents=True)
    out, err = work / "stdout", work / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.crawl_once", mode, ",".join(listings), str(work)],
            cwd=tree,  # first on sys.path: its crawler/ and bench/ are the ones imported
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
        _pid, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    lines = out.read_text().strip().splitlines()
    if process.returncode != 0 or not lines:
        tail = err.read_text(errors="replace")[-3000:]
        raise SystemExit(f"bench: the {mode} crawl failed (exit {process.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["process_cpu_s"] = usage.ru_utime + usage.ru_stime
    return result


def rotated(items: list[str], by: int) -> list[str]:
    by %= len(items) or 1
    return items[by:] + items[:by]


def checks(
    r: dict[str, Any], mode: str, encoding: str, expect_pages: int, articles: int
) -> list[str]:
    """What must hold for a crawl's figures to count: every page, directly, as served."""
    bad = []
    if r["pages"] != expect_pages:
        bad.append(f"{r['pages']} responses, not {expect_pages}")
    if r["proxied"] or r["not_loopback"]:
        bad.append(f"{r['proxied']} via a proxy, {r['not_loopback']} not from 127.0.0.1")
    gzipped = r["encodings"].get("gzip", 0)
    want = expect_pages - 1 if encoding == "gzip" else 0  # robots.txt has no .gz
    if gzipped != want:
        bad.append(f"{gzipped} gzip bodies, not {want}")
    if mode in TEXT_MODES and r["articles_new"] != articles:
        bad.append(f"{r['articles_new']} articles archived, not {articles}")
    if mode in (*ARCHIVE_MODES, "naive", "naive-text") and r["warc_records"] < 2 * r["pages"]:
        bad.append(f"{r['warc_records']} WARC records for {r['pages']} responses")
    if r["netguard_refused"] or r["errors"]:
        bad.append(f"refused {r['netguard_refused']}, errors {r['errors']}")
    return bad


def per_page(r: dict[str, Any]) -> dict[str, float]:
    n = r["pages"] or 1
    return {
        "crawl_ms": 1000 * r["crawl_cpu_s"] / n,
        "end_ms": 1000 * r["end_cpu_s"] / n,
        "all_ms": 1000 * (r["crawl_cpu_s"] + r["end_cpu_s"]) / n,
        "pages_s": r["pages"] / r["crawl_wall_s"] if r["crawl_wall_s"] else 0.0,
        "crawl_peak": r["crawl_peak_mib"],
        "end_peak": r["end_peak_mib"] if r["end_peak_mib"] is not None else float("nan"),
    }


def summarize(
    results: dict[tuple[str, str], list[dict[str, Any]]], rounds: int
) -> dict[tuple[str, str], dict[str, Any]]:
    """Medians per mode and encoding, and the median of per-round ratios to the baselines."""
    summary: dict[tuple[str, str], dict[str, Any]] = {}
    for (mode, enc), runs in results.items():
        figures = [per_page(r) for r in runs]
        row: dict[str, Any] = {k: statistics.median(f[k] for f in figures) for k in figures[0]}
        row["crawl_ms_range"] = (
            min(f["crawl_ms"] for f in figures),
            max(f["crawl_ms"] for f in figures),
        )
        for base, key in (
            ("plain", "x_plain"),
            ("plain-tuned", "x_tuned"),
            ("naive", "x_naive"),
            ("naive-text", "x_naive_text"),
        ):
            ratios, all_ratios = [], []
            for i in range(rounds):
                other = results.get((base, enc))
                if not other or i >= len(other) or i >= len(runs):
                    continue
                mine, theirs = per_page(runs[i]), per_page(other[i])
                ratios.append(mine["crawl_ms"] / theirs["crawl_ms"])
                all_ratios.append(mine["all_ms"] / theirs["all_ms"])
            row[key] = statistics.median(ratios) if ratios else float("nan")
            row[key + "_range"] = (min(ratios), max(ratios)) if ratios else None
            row[key + "_all"] = statistics.median(all_ratios) if all_ratios else float("nan")
        summary[(mode, enc)] = row
    return summary


def fmt(value: float, spec: str) -> str:
    """``value`` formatted, or a dash as wide for NaN (not measured in this run)."""
    if value == value:
        return format(value, spec)
    return format("—", ">" + spec.split(".")[0])


def print_tables(
    summary: dict[tuple[str, str], dict[str, Any]],
    modes: list[str],
    encodings: list[str],
    header: str,
) -> None:
    for enc in encodings:
        print(f"\n{enc} bodies: {header}")
        print(
            f"{'':38}{'crawl CPU ms/page':>21} {'pages/s':>8} "
            f"{'x plain':>8} {'x plain':>8} {'x naive':>8} {'x naive':>8}  {'crawl-end':>9} "
            f"{'x plain':>8}  {'peak RSS MiB':>16}"
        )
        print(
            f"{'mode':38}{'median (min-max)':>21} {'':>8} "
            f"{'Scrapy':>8} {'CI 8':>8} {'WARC':>8} {'+traf':>8}  {'ms/page':>9} "
            f"{'all CPU':>8}  {'crawl':>7} {'end step':>8}"
        )
        for mode in modes:
            row = summary.get((mode, enc))
            if row is None:
                continue
            low, high = row["crawl_ms_range"]
            print(
                f"{label(mode):38}{row['crawl_ms']:7.2f} ({low:5.2f}-{high:5.2f}) "
                f"{row['pages_s']:8.0f} {fmt(row['x_plain'], '8.2f')} "
                f"{fmt(row['x_tuned'], '8.2f')} "
                f"{fmt(row['x_naive'], '8.2f')} {fmt(row['x_naive_text'], '8.2f')}  "
                f"{row['end_ms']:9.2f} {fmt(row['x_plain_all'], '8.2f')}  "
                f"{row['crawl_peak']:7.0f} {fmt(row['end_peak'], '8.0f')}"
            )


def print_targets(
    summary: dict[tuple[str, str], dict[str, Any]], encodings: list[str], pages: int
) -> int:
    """Each target beside its figure, met or MISSED; returns how many were missed."""
    missed = 0
    print(
        "\nTargets (issue 22, ../shared/PERFORMANCE.md): crawl CPU per page against plain Scrapy "
        "in the same round (median of the rounds; in brackets with the crawl-end step; in square "
        "brackets against plain Scrapy with the add-on's CONCURRENT_ITEMS 8, not a target)"
    )
    for mode, limit in TARGETS.items():
        cells = []
        for enc in encodings:
            row = summary.get((mode, enc))
            if row is None or row["x_plain"] != row["x_plain"]:
                cells.append(f"{enc}: not measured")
                continue
            ok = row["x_plain"] <= limit
            missed += not ok
            tuned = row["x_tuned"]
            cells.append(
                f"{enc} {row['x_plain']:.2f}x ({row['x_plain_all']:.2f}x) "
                f"{'met' if ok else 'MISSED'}"
                + (f" [{tuned:.2f}x plain with CI 8]" if tuned == tuned else "")
            )
        print(f"  {TARGET_NAMES[mode] + f' <= {limit}x':34} " + "   ".join(cells))
    if any((mode, enc) in summary for mode in TEXT_MODES for enc in encodings):
        print("  ahead of the naive build (x naive WARC + trafilatura < 1):")
    for mode in TEXT_MODES:
        cells = []
        for enc in encodings:
            row = summary.get((mode, enc))
            if row is None or row["x_naive_text"] != row["x_naive_text"]:
                continue
            ok = row["x_naive_text"] < 1
            missed += not ok
            cells.append(f"{enc} {row['x_naive_text']:.2f}x {'met' if ok else 'MISSED'}")
        if cells:
            print(f"    {LABELS[mode]:36} " + "   ".join(cells))
    scale = "" if pages == RSS_TARGET_PAGES else f" (this run: {pages:,} articles)"
    print(f"  peak RSS <= {RSS_TARGET_MIB} MiB while crawling {RSS_TARGET_PAGES:,} pages{scale}:")
    for mode in ARCHIVE_MODES:
        cells = []
        for enc in encodings:
            row = summary.get((mode, enc))
            if row is None:
                continue
            ok = row["crawl_peak"] <= RSS_TARGET_MIB
            missed += not ok
            cells.append(f"{enc} {row['crawl_peak']:.0f} MiB {'met' if ok else 'MISSED'}")
        if cells:
            print(f"    {LABELS[mode]:36} " + "   ".join(cells))
    if pages >= WHOLE_TARGET_PAGES and any((WHOLE_MODE, enc) in summary for enc in encodings):
        print(f"  peak RSS <= {WHOLE_TARGET_MB} MB over a whole {pages:,}-page page-mode crawl:")
        for enc in encodings:
            row = summary.get((WHOLE_MODE, enc))
            if row is None:
                continue
            peak = max(row["crawl_peak"], row["end_peak"]) * 1.048576  # MiB to MB
            ok = peak <= WHOLE_TARGET_MB
            missed += not ok
            print(
                f"    {LABELS[WHOLE_MODE]:36} {enc} {peak:.0f} MB "
                f"(crawl {row['crawl_peak']:.0f} MiB, crawl-end step {row['end_peak']:.0f} MiB) "
                f"{'met' if ok else 'MISSED'}"
            )
    else:
        print(
            f"  not measured here: <= {WHOLE_TARGET_MB} MB over a {WHOLE_TARGET_PAGES:,}-page "
            "page-mode crawl with its crawl-end step (--pages 20000 --modes page)"
        )
    print(
        "  the crawl-end step's peak at 2,000, 20,000 and 100,000 captures: python -m bench.scale"
    )
    return missed


def print_against(
    results: dict[tuple[str, str], list[dict[str, Any]]],
    modes: list[str],
    encodings: list[str],
    against: Path,
) -> None:
    """This tree's crawls beside the --against tree's, round by round (paired: less moved by
    the machine's load than either median)."""
    print(
        f"\nThis tree against {against}: crawl CPU ms/page and the crawl's peak RSS MiB, "
        "medians, and the median of the per-round ratios (this / against)"
    )
    for mode in modes:
        for enc in encodings:
            now, then = results.get((mode, enc)), results.get((mode + AGAINST, enc))
            if not now or not then:
                continue
            pairs = [(per_page(a), per_page(b)) for a, b in zip(now, then, strict=False)]
            cpu = statistics.median(a["crawl_ms"] / b["crawl_ms"] for a, b in pairs)
            rss = statistics.median(a["crawl_peak"] / b["crawl_peak"] for a, b in pairs)
            print(
                f"  {LABELS[mode]:38} {enc:8} "
                f"{statistics.median(a['crawl_ms'] for a, _ in pairs):6.2f} vs "
                f"{statistics.median(b['crawl_ms'] for _, b in pairs):6.2f} ms/page ({cpu:.2f}x), "
                f"peak {statistics.median(a['crawl_peak'] for a, _ in pairs):4.0f} vs "
                f"{statistics.median(b['crawl_peak'] for _, b in pairs):4.0f} MiB ({rss:.2f}x); "
                "per round: "
                + ", ".join(f"{a['crawl_peak']:.0f}/{b['crawl_peak']:.0f}" for a, b in pairs)
                + " MiB"
            )


# A thread's name → the column it is summed into (the WARC writer is named for its spider).
THREAD_GROUPS = (
    ("MainThread", "main"),
    ("ended", "text pool"),
    ("catalog-texts", "catalog"),
    ("warc-writer", "WARC writer"),
)


def thread_group(name: str) -> str:
    for prefix, group in THREAD_GROUPS:
        if name.startswith(prefix):
            return group
    return "other"


def print_threads(
    results: dict[tuple[str, str], list[dict[str, Any]]], modes: list[str], encodings: list[str]
) -> None:
    """Each mode's crawl CPU by thread, ms per page (medians of the rounds): where the CPU
    over plain Scrapy goes. Threads are read from /proc at the spider's close; the text pool's
    threads have ended by then and are the rest of the process's CPU."""
    groups = [group for _prefix, group in THREAD_GROUPS] + ["other"]
    print(
        "\nCrawl CPU by thread, ms/page (medians of the rounds; main: the reactor, the spider "
        "and capture; text pool: the threads that ended before the spider's close, the text "
        "pipeline's; catalog: texts' group commits and story links; other: Scrapy's thread "
        "pool, native threads):"
    )
    print(f"  {'mode':38} {'enc':8} " + " ".join(f"{g:>11}" for g in groups))
    for mode in modes:
        for enc in encodings:
            runs = [r for r in results.get((mode, enc), []) if r.get("thread_cpu_s")]
            if not runs:
                continue
            per_run = []
            for r in runs:
                sums = dict.fromkeys(groups, 0.0)
                for name, cpu in r["thread_cpu_s"].items():
                    sums[thread_group(name)] += 1000 * cpu / (r["pages"] or 1)
                per_run.append(sums)
            print(
                f"  {label(mode):38} {enc:8} "
                + " ".join(f"{statistics.median(s[g] for s in per_run):11.2f}" for g in groups)
            )


def describe_machine() -> str:
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    versions = []
    for name in ("scrapy", "warcio", "trafilatura", "resiliparse"):
        try:
            from importlib.metadata import version

            versions.append(f"{name} {version(name)}")
        except Exception:  # a missing package: named as missing
            versions.append(f"{name} missing")
    return (
        f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{', '.join(versions)}; newsarchive {commit or '?'} at the start "
        "(the working tree, with what others had not committed yet)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=2000, help="articles (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--encodings", nargs="+", default=list(ENCODINGS), choices=ENCODINGS)
    parser.add_argument("--json", type=Path, help="also write every crawl's figures here")
    parser.add_argument("--keep", action="store_true", help="keep the pages and archives")
    parser.add_argument(
        "--against",
        type=Path,
        metavar="TREE",
        help="a source tree whose project modes run too, beside this one's (before/after)",
    )
    ns = parser.parse_args(argv)
    against = ns.against.resolve() if ns.against else None
    if against is not None and not (against / "bench" / "crawl_once.py").is_file():
        parser.error(f"--against {ns.against}: no bench/crawl_once.py there")
    modes = [m for m in MODES if m in ns.modes]
    encodings = [e for e in ENCODINGS if e in ns.encodings]
    machine = describe_machine()  # the commit the crawls start from
    work = Path(tempfile.mkdtemp(prefix="newsarchive-bench-"))
    work.chmod(0o755)  # nginx's worker (nobody, under root) reads the pages below it
    started = time.time()
    loads: list[float] = []
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    problems: list[str] = []
    try:
        listing_paths = write_site(work / "site", ns.pages)
        expect = ns.pages + len(listing_paths) + 1  # robots.txt
        with serve(work / "site", work / "nginx") as server:
            print(
                f"bench: {ns.pages:,} articles, {len(listing_paths)} listings, {server.version} "
                f"on {', '.join(server.base.values())}; {ns.rounds} rounds of "
                f"{len(modes)} modes x {len(encodings)} encodings",
                file=sys.stderr,
            )
            for rnd in range(ns.rounds):
                order = rotated(modes, rnd * max(1, len(modes) // max(ns.rounds, 1)))
                encs = encodings if rnd % 2 == 0 else encodings[::-1]
                for mode in order:
                    trees = [(mode, ROOT)]
                    if against is not None and mode in PROJECT_MODES:
                        trees.append((mode + AGAINST, against))
                        trees = trees if rnd % 2 == 0 else trees[::-1]
                    for (name, tree), enc in [(t, e) for t in trees for e in encs]:
                        loads.append(os.getloadavg()[0])
                        where = work / "crawls" / f"{rnd}-{name}-{enc}"
                        listings = [server.base[enc] + p for p in listing_paths]
                        r = run_crawl(mode, listings, where, tree)
                        r.update(mode=name, encoding=enc, round=rnd, load_before=loads[-1])
                        for problem in checks(r, mode, enc, expect, ns.pages):
                            problems.append(f"round {rnd + 1} {name} {enc}: {problem}")
                        results.setdefault((name, enc), []).append(r)
                        f = per_page(r)
                        print(
                            f"  round {rnd + 1}/{ns.rounds} {name:10} {enc:8} "
                            f"{f['crawl_ms']:6.2f} ms/page {f['pages_s']:5.0f} pages/s "
                            f"+end {f['end_ms']:5.2f} ms/page, peak {f['crawl_peak']:4.0f}/"
                            f"{fmt(f['end_peak'], '.0f')} MiB, load {loads[-1]:.1f}",
                            file=sys.stderr,
                        )
                        if not ns.keep:
                            shutil.rmtree(where, ignore_errors=True)
    finally:
        if not ns.keep:
            shutil.rmtree(work, ignore_errors=True)
    summary = summarize(results, ns.rounds)
    listings = -(-ns.pages // PER_LISTING)
    print(machine)
    print(
        f"{ns.pages:,} synthetic articles of 60–125 KB + {listings} listing pages + robots.txt "
        f"= {expect:,} responses per crawl, from nginx on 127.0.0.1 (no proxy); "
        f"{ns.rounds} interleaved rounds, {time.time() - started:.0f} s in all; "
        f"1-min load average before each crawl {min(loads):.1f}–{max(loads):.1f} "
        "(a shared 2-core machine: other engineers' test runs may overlap this one; absolute "
        "figures move by up to ±25 % from run to run, the ratios within a round much less)"
    )
    shown = [m for mode in modes for m in (mode, mode + AGAINST)]
    print_tables(
        summary,
        shown,
        encodings,
        "CPU = user+sys of the crawl process from crawl start to spider close; "
        f"medians of {ns.rounds}",
    )
    print_threads(results, shown, encodings)
    missed = print_targets(summary, encodings, ns.pages)
    if against is not None:
        print_against(results, modes, encodings, against)
    print(f"\n{missed} target(s) missed." if missed else "\nEvery target met.")
    if problems:
        print("\nCHECKS FAILED (these crawls' figures do not count):")
        for p in problems:
            print(f"  {p}")
    if ns.json:
        ns.json.write_text(
            json.dumps({f"{m} {e}": runs for (m, e), runs in results.items()}, indent=2)
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
