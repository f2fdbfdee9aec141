"""The generic extractor's every output, as digests, to prove a speed-up changed none (issue 23).

    python -m bench.generic_golden --save /tmp/generic-golden.json   # before a change
    python -m bench.generic_golden --check /tmp/generic-golden.json  # after it: every page equal
    python -m bench.generic_golden --time 3                          # CPU seconds per pass
    python -m bench.generic_golden --time 3 --against 2a46df1        # beside an older version

The pages: both dev sets (``.devsets``, decoded as ``bench/extract.py`` decodes them), every
HTML file of the mirror's sites (``crawler/mirror/sites/*/``) and the synthetic bench's article
and listing pages (``bench/synthetic.py``). A page's digest is the sha256 of the whole
:class:`~crawler.text.generic.GenericResult`'s repr: title, paragraphs, date, language,
description, container label, warnings and the page's head (every meta tag, link, JSON-LD
block, h1 and title), so any change to any field shows.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.extract import ROOT, readability_pages, trafilatura_pages
from bench.synthetic import article_page, listing_page
from crawler.text.generic import extract_main
from crawler.text.page import page_text

SYNTHETIC_ARTICLES = 200
SYNTHETIC_LISTINGS = 10


def pages() -> list[tuple[str, str, str]]:
    """(name, url, html) of every page, in a fixed order."""
    out: list[tuple[str, str, str]] = []
    devsets = ROOT / ".devsets"
    out += [(f"traf/{p.name}", p.url, p.html) for p in trafilatura_pages(devsets / "trafilatura")]
    out += [(f"read/{p.name}", p.url, p.html) for p in readability_pages(devsets / "readability")]
    for path in sorted((ROOT / "crawler" / "mirror" / "sites").glob("*/**/*.html")):
        name = str(path.relative_to(ROOT))
        out.append((name, f"http://mirror.invalid/{name}", page_text(path.read_bytes(), None)[0]))
    for n in range(SYNTHETIC_ARTICLES):
        html = page_text(article_page(n), None)[0]
        out.append((f"synthetic/article-{n}", f"http://synthetic.invalid/{n}", html))
    for i in range(SYNTHETIC_LISTINGS):
        articles = range(i * 50, i * 50 + 50)
        html = page_text(listing_page(i, articles), None)[0]
        out.append((f"synthetic/listing-{i}", f"http://synthetic.invalid/l{i}", html))
    return out


def digest(html: str, url: str) -> str:
    return hashlib.sha256(repr(extract_main(html, url)).encode("utf-8")).hexdigest()


def _at(rev: str) -> Callable[[str, str], object]:
    """extract_main of crawler/text/generic.py as it was at a commit."""
    source = subprocess.run(
        ["git", "show", f"{rev}:crawler/text/generic.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path("/tmp") / f"generic_at_{rev}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"generic_at_{rev}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    function: Callable[[str, str], object] = module.extract_main
    return function


def timed(every: list[tuple[str, str, str]], passes: int, against: str | None) -> None:
    """CPU time of each version over every page, page by page in turns (one after the other
    in an order that alternates), so the machine's load weighs on both alike."""
    runs: dict[str, Callable[[str, str], object]] = {"now": extract_main}
    if against:
        runs[against] = _at(against)
    for function in runs.values():
        for _, url, html in every[:3]:
            function(html, url)  # warm up
    for round_ in range(passes):
        seconds = dict.fromkeys(runs, 0.0)
        names = list(runs)
        for index, (_, url, html) in enumerate(every):
            for name in names if index % 2 else reversed(names):
                cpu = time.process_time()
                runs[name](html, url)
                seconds[name] += time.process_time() - cpu
        print(
            f"pass {round_ + 1}, {len(every)} pages: "
            + ", ".join(
                f"{name} {seconds[name]:.3f} s CPU = {len(every) / seconds[name]:.1f} pages/s"
                for name in names
            )
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", type=Path, help="write every page's digest to this file")
    group.add_argument("--check", type=Path, help="compare every page's digest with this file")
    group.add_argument("--time", type=int, metavar="PASSES", help="CPU time of extract_main")
    parser.add_argument(
        "--against", metavar="REV", help="with --time: interleaved with generic.py at this commit"
    )
    args = parser.parse_args(argv)
    every = pages()
    if args.time:
        timed(every, args.time, args.against)
        return 0
    digests = {name: digest(html, url) for name, url, html in every}
    if args.save:
        args.save.write_text(json.dumps(digests, indent=0), encoding="utf-8")
        print(f"{len(digests)} pages saved to {args.save}")
        return 0
    golden: dict[str, str] = json.loads(args.check.read_text(encoding="utf-8"))
    differ = [name for name in golden if digests.get(name) != golden[name]]
    missing = set(digests) ^ set(golden)
    for name in differ[:20]:
        print(f"DIFFERS: {name}")
    print(f"{len(golden)} pages compared, {len(differ)} differ, {len(missing)} not in both")
    return 1 if differ or missing else 0


if __name__ == "__main__":
    sys.exit(main())
