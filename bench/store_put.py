"""Per-object CPU cost of ``LocalStore.put_bytes``, as a crawl writes texts and sidecars.

    .venv/bin/python -m bench.store_put [--objects N] [--rounds R] [--against REV] [--spool]

Writes N fresh keys shaped like a crawl's (``text/<site>/<yyyy>/<mm>/<dd>/<slug>.txt`` and
``.json``, a few hundred per day directory) into a new store under a temporary directory,
and prints CPU and wall microseconds per object, median of R rounds. With ``--against REV``
the store module at that commit runs too, in turns with the current one (interleaved).
``--spool``: the same keys through the spool's ``Backlog.write_aside`` (a remote store's
texts and sidecars land there first) instead of a LocalStore.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import crawler.store.base
import crawler.store.spool


def _module_at(rev: str, name: str) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{rev}:crawler/store/{name}.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="store-put-")) / f"{name}_at_rev.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"{name}_at_rev", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _round(module: ModuleType, objects: int, spool: bool) -> tuple[float, float]:
    text = ("A paragraph of an article, long enough to look like one. " * 60).encode()
    sidecar = b'{"url": "https://example.org/a", "title": "A title", "words": 600}' * 4
    with tempfile.TemporaryDirectory(prefix="store-put-", dir="/tmp") as tmp:
        if spool:
            backlog = module.Backlog(Path(tmp) / "spool", "crawl-1", "s3://bucket/")
            put = backlog.write_aside
        else:
            put = module.LocalStore(Path(tmp) / "store").put_bytes
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(objects // 2):
            stem = f"text/site/2024/{1 + i // 3000 % 12:02d}/{1 + i // 300 % 28:02d}/slug-{i}"
            put(f"{stem}.txt", text)
            put(f"{stem}.json", sidecar)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu * 1e6 / objects, wall * 1e6 / objects


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", help="a git revision whose store module runs too")
    parser.add_argument("--spool", action="store_true", help="the spool's write_aside")
    args = parser.parse_args()
    name = "spool" if args.spool else "base"
    builds = {"now": crawler.store.spool if args.spool else crawler.store.base}
    if args.against:
        builds[args.against] = _module_at(args.against, name)
    figures: dict[str, list[tuple[float, float]]] = {build: [] for build in builds}
    for _ in range(args.rounds):
        # Interleaved, the order turned each round: each round runs every build.
        for build, module in sorted(builds.items(), reverse=len(figures["now"]) % 2 == 1):
            figures[build].append(_round(module, args.objects, args.spool))
    load = os.getloadavg()
    print(f"{args.objects} objects x {args.rounds} rounds, load {load[0]:.2f} {load[1]:.2f}")
    print(
        f"  through {'the spool (Backlog.write_aside)' if args.spool else 'LocalStore.put_bytes'}"
    )
    for build, rows in figures.items():
        cpu = statistics.median(r[0] for r in rows)
        wall = statistics.median(r[1] for r in rows)
        print(f"  {build:>12}: {cpu:7.1f} us CPU/object, {wall:7.1f} us wall/object (medians)")
    for build, rows in list(figures.items())[1:]:  # paired by round: less moved by load
        ratios = [n[0] / o[0] for n, o in zip(figures["now"], rows, strict=True)]
        print(
            f"  now / {build}: {statistics.median(ratios):.2f} of the CPU (median per round), "
            f"rounds {' '.join(f'{r:.2f}' for r in ratios)}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
