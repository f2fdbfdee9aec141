"""Profile one benchmark crawl with py-spy: where the crawl process's CPU goes, by function.

    python -m bench.profile_crawl rules --pages 400 --out /tmp/prof
    python -m bench.profile_crawl page --pages 400 --out /tmp/prof --rate 200

Writes the synthetic site (bench/synthetic.py), serves it with nginx (bench/static.py), and
runs ``bench.crawl_once MODE`` under ``py-spy record --native --idle --threads --format raw``
(py-spy from PyPI: ``pip install py-spy``). Prints the crawl's own JSON line, then the top
functions by self samples and by inclusive samples (every thread, idle samples apart), and the
threads' shares. The raw folded stacks stay in ``OUT/MODE.raw`` for further sums.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.run import ROOT, child_env
from bench.static import serve
from bench.synthetic import write_site

_IDLE = re.compile(
    r"\b(epoll_wait|select|poll|wait|sem_wait|pthread_cond_(timed)?wait|acquire|"
    r"_wait_for_tstate_lock|futex|take_gil|PyThread_acquire_lock_timed)\b"
)


def frame_name(frame: str) -> str:
    """``func (file:line)`` → ``func (file)``: samples summed over a function's lines."""
    return re.sub(r":\d+\)$", ")", frame)


def summarize(raw: Path, top: int) -> None:
    self_count: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        threads[frames[0]] += n
        if frames:
            self_count[frame_name(frames[-1])] += n
        for f in {frame_name(f) for f in frames[1:]}:
            incl[f] += n
    print(f"\n{total} samples")
    print("\nthreads:")
    for name, n in threads.most_common(12):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("\nself:")
    for name, n in self_count.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("\ninclusive:")
    for name, n in incl.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode")
    parser.add_argument("--pages", type=int, default=400)
    parser.add_argument("--encoding", default="identity", choices=("identity", "gzip"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/newsarchive-profile"))
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--no-idle", action="store_true", help="leave idle samples out")
    ns = parser.parse_args()
    ns.out.mkdir(parents=True, exist_ok=True)
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    work = Path(tempfile.mkdtemp(prefix="newsarchive-profile-"))
    work.chmod(0o755)
    raw = ns.out / f"{ns.mode}.raw"
    try:
        listing_paths = write_site(work / "site", ns.pages)
        with serve(work / "site", work / "nginx") as server:
            listings = ",".join(server.base[ns.encoding] + p for p in listing_paths)
            crawl = work / "crawl"
            crawl.mkdir()
            cmd = [
                pyspy,
                "record",
                "--native",
                "--threads",
                "--format",
                "raw",
                "--rate",
                str(ns.rate),
                "-o",
                str(raw),
            ]
            if not ns.no_idle:
                cmd.append("--idle")
            cmd += ["--", sys.executable, "-m", "bench.crawl_once", ns.mode, listings, str(crawl)]
            done = subprocess.run(cmd, cwd=ROOT, env=child_env(), capture_output=True, text=True)
            lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
            if done.returncode != 0 or not lines:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            r = json.loads(lines[-1])
            n = r["pages"] or 1
            print(
                f"{ns.mode}: {r['pages']} pages, crawl {1000 * r['crawl_cpu_s'] / n:.2f} ms "
                f"CPU/page (under py-spy), end {1000 * r['end_cpu_s'] / n:.2f} ms/page"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summarize(raw, ns.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
