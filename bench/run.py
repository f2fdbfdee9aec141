"""Benchmark: the archiver's cost as ratios to plain Scrapy on the same pages, same machine.

    python -m bench.run                 # 2,000 synthetic pages, every mode
    python -m bench.run --pages 500 --modes plain capture

Starts the loopback mirror with synthetic 60–125 KB article pages in a process of its own (so
its CPU is not counted), then crawls the pages once per mode, each crawl in a fresh process:
full (WARC + text with site rules + sidecars + store), generic (the same with trafilatura
instead of site rules), capture (WARC only, text off), plain (Scrapy with our components off).
Prints pages/s, CPU ms per page (CPU s per 1,000 pages), peak RSS and the ratios to plain.
Targets: ../shared/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"capture": 1.5, "full": 2.5, "generic": 4.0}


def run_mode(mode: str, pages: int, proxy: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.crawl_once", mode, str(pages), proxy],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--modes", nargs="+", default=["plain", "capture", "full", "generic"])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    ns = parser.parse_args(argv)
    mirror = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crawler.mirror.server",
            "--port",
            "0",
            "--setup",
            "bench.synthetic:install",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert mirror.stdout is not None
        proxy = ""
        while not proxy:
            line = mirror.stdout.readline()
            if not line:
                raise SystemExit("the mirror did not start")
            if line.startswith("MIRROR_PROXY="):
                proxy = line.strip().split("=", 1)[1]
        results = {m: run_mode(m, ns.pages, proxy) for m in ns.modes}
    finally:
        mirror.terminate()
        mirror.wait(10)
    plain = results.get("plain")
    print(
        f"{'mode':8} {'pages':>6} {'pages/s':>8} {'CPU s/1k pages':>15} "
        f"{'peak RSS MB':>12} {'x plain CPU':>12} {'target':>7}"
    )
    for mode, r in results.items():
        ratio = r["cpu_ms_per_page"] / plain["cpu_ms_per_page"] if plain else float("nan")
        target = f"<= {TARGETS[mode]}" if mode in TARGETS else ""
        print(
            f"{mode:8} {r['pages']:6d} {r['pages_per_s']:8.1f} {r['cpu_ms_per_page']:15.2f} "
            f"{r['peak_rss_mb']:12.0f} {ratio:12.2f} {target:>7}"
        )
        r["ratio_cpu_to_plain"] = ratio
    if ns.json:
        ns.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
