"""The CDX API of ``serve`` over a large index: latency and peak memory.

Writes synthetic CDXJ lines (sorted, in ``--files`` files, as crawls write them, one per WARC)
into a temporary store's ``index/``, then, in a fresh process per size so that its peak RSS is
the answering alone, answers through ``CdxIndex.from_store`` (the store's files read in place,
``--cdx-paged`` as ``serve`` gives it):

- ``limit=1`` for an exact URL and for a URL prefix, random ones: p50, p99, max;
- a paged full answer: ``showNumPages`` for a domain holding every line, then every page of it
  (``pageSize`` default, ``limit=0``, JSON lines), the lines counted;
- the process's peak RSS.

    python -m bench.cdx [--sizes 100000,1000000] [--files 10] [--rounds 300]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

HOSTS = 200


def line(n: int) -> str:
    host = n % HOSTS
    path = f"/news/{n // HOSTS:08d}/a-long-enough-slug-for-a-news-article-{n % 7919}"
    fields = {
        "url": f"https://www.example{host:04d}.com{path}/",
        "mime": "text/html",
        "status": "200",
        "digest": f"sha1:{n:032X}",
        "length": str(20_000 + n % 5000),
        "offset": str(n * 21_000),
        "filename": f"bench-{n % 97:05d}.warc.gz",
    }
    stamp = f"2025{n % 12 + 1:02d}{n % 28 + 1:02d}{n % 24:02d}0000"
    return f"com,example{host:04d}){path} {stamp} {json.dumps(fields)}\n"


def write_store(root: Path, size: int, files: int) -> None:
    """``size`` lines in ``files`` sorted files under ``root/index/bench/...``."""
    folder = root / "index" / "bench" / "2025" / "01" / "01"
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(files):
        lines = sorted(line(n) for n in range(number, size, files))
        (folder / f"bench-{number:03d}.cdxj").write_text("".join(lines), encoding="utf-8")


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM: ru_maxrss would count the parent's before exec)."""
    for field in Path("/proc/self/status").read_text().splitlines():
        if field.startswith("VmHWM:"):
            return int(field.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(root: Path, size: int, rounds: int) -> dict[str, object]:
    from crawler.access.cdx import CdxIndex, CdxOptions
    from crawler.store.base import LocalStore

    started = peak_rss_mib()
    index = CdxIndex.from_store(LocalStore(root), options=CdxOptions(paged=True, budget=None))
    rng = random.Random(25)

    def timed(query: dict[str, object]) -> tuple[float, bytes]:
        began = time.perf_counter()
        answer = index.answer(urlencode(query))
        took = time.perf_counter() - began
        assert answer.status == 200, answer.body[:300]
        return took, answer.body

    exact, prefix = [], []
    for _ in range(rounds):
        n = rng.randrange(size)
        url = json.loads(line(n).split(" ", 2)[2])["url"]
        took, body = timed({"url": url, "limit": 1})
        assert body, url
        exact.append(took)
        took, body = timed({"url": url.rsplit("/", 3)[0] + "/*", "limit": 1, "output": "json"})
        assert body
        prefix.append(took)
    whole = {"url": "com", "matchType": "domain", "output": "json", "limit": 0}
    began = time.perf_counter()
    info = json.loads(index.answer(urlencode({**whole, "showNumPages": "true"})).body)
    lines = 0
    for page in range(info["pages"]):
        lines += timed({**whole, "page": page})[1].count(b"\n")
    paged = time.perf_counter() - began
    assert lines == size, (lines, size)

    def ms(values: list[float], q: float) -> float:
        return round(statistics.quantiles(values, n=100)[int(q) - 1] * 1000, 3)

    return {
        "lines": size,
        "limit1_exact_ms": {"p50": ms(exact, 50), "p99": ms(exact, 99)},
        "limit1_prefix_ms": {"p50": ms(prefix, 50), "p99": ms(prefix, 99)},
        "limit1_max_ms": round(max(exact + prefix) * 1000, 3),
        "paged_full_answer": {
            "pages": info["pages"],
            "blocks": info["blocks"],
            "seconds": round(paged, 2),
            "lines_per_second": round(size / paged),
        },
        "rss_mib_at_start": round(started, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--measure", metavar="ROOT", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.size, args.rounds)))
        return
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-cdx-") as tmp:
            began = time.perf_counter()
            write_store(Path(tmp), size, args.files)
            made = time.perf_counter() - began
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.cdx",
                    "--measure",
                    tmp,
                    "--size",
                    str(size),
                    "--rounds",
                    str(args.rounds),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            found = json.loads(out.stdout)
            index_bytes = sum(p.stat().st_size for p in Path(tmp).rglob("*.cdxj"))
            found["index_mib"] = round(index_bytes / 2**20, 1)
            results.append(found)
            print(
                f"{size:>9,} lines in {args.files} files ({found['index_mib']} MiB, written in "
                f"{made:.1f} s): limit=1 p50 {found['limit1_exact_ms']['p50']} ms exact, "
                f"{found['limit1_prefix_ms']['p50']} ms prefix (p99 "
                f"{found['limit1_exact_ms']['p99']} / {found['limit1_prefix_ms']['p99']} ms); "
                f"paged full answer {found['paged_full_answer']['pages']} pages in "
                f"{found['paged_full_answer']['seconds']} s; peak RSS "
                f"{found['peak_rss_mib']} MiB (at start {found['rss_mib_at_start']})",
                flush=True,
            )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
