"""What ``crawler.text.byline`` costs per page, by CPU time, beside the parse it shares.

Over the mirror's HTML pages and, when ``scripts/devsets`` has made them, the dev sets' pages
(``.devsets/``): the lexbor parse alone, then ``byline_authors`` and ``page_tags`` on the
parsed tree (``byline``: one walk for both). Rounds are interleaved; the best round is
printed with the machine's load.

    python -m bench.byline [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from selectolax.lexbor import LexborHTMLParser

from crawler.text.byline import byline

ROOT = Path(__file__).resolve().parent.parent


def _pages() -> dict[str, list[str]]:
    sets = {"mirror": sorted((ROOT / "crawler" / "mirror" / "sites").glob("*/*.html"))}
    devsets = ROOT / ".devsets"
    if devsets.is_dir():
        sets["dev sets"] = sorted(devsets.glob("trafilatura/pages/*")) + sorted(
            devsets.glob("readability/*/source.html")
        )
    return {
        name: [p.read_bytes().decode("utf-8", "replace") for p in paths]
        for name, paths in sets.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for name, pages in _pages().items():
            start = time.process_time()
            trees = [LexborHTMLParser(html) for html in pages]
            parsed = time.process_time()
            for tree in trees:
                byline(tree)
            done = time.process_time()
            for step, took in (("parse", parsed - start), ("authors + tags", done - parsed)):
                per_page = took / len(pages) * 1e6
                best[name, step] = min(best.get((name, step), per_page), per_page)
    print(f"load average {os.getloadavg()[0]:.2f} (1 min); best of {args.rounds}, CPU time")
    for (name, step), took in best.items():
        print(f"  {name:9s} {step:15s} {took:9.0f} us per page")


if __name__ == "__main__":
    main()
