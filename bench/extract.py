"""Body-text extractors scored on the two public dev sets, as their authors score (issue 23).

    scripts/devsets --mirror /work/.mirror      # once: the pages into .devsets/
    python -m bench.extract                     # every extractor, both sets, both halves
    python -m bench.extract --only generic --half dev --misses generic
    python -m bench.extract --add mine=mypkg.mod:extract   # any extractor: f(html, url) -> str

**trafilatura's set** (``evaldata.json``: per page, snippets that must appear, "with", and
snippets that must not, "without"), scored exactly as trafilatura's ``tests/eval_common.py``
(``count_item``, ``ConfusionMatrix``) at the pinned commit: texts and snippets are
whitespace-normalised (``\\s+`` to one space, stripped); a "with" snippet found in the output
is a true positive, one missing a false negative; a "without" snippet found is a false
positive, one missing a true negative; no output (None, an exception) finds nothing. Counts are
summed over the pages, then precision = tp/(tp+fp), recall = tp/(tp+fn), accuracy =
(tp+tn)/all, F1 = 2tp/(2tp+fp+fn).

**Readability's set** (``<name>/expected.html``: the content Readability.js should return).
Its own test compares DOMs node by node, which only Readability passes; for text extractors
the established score (as in the article-extraction benchmarks) is token overlap: the text of
expected.html (lxml ``text_content``) and the extractor's output are casefolded and split into
tokens (runs of letters and digits; each Han, kana or other CJK character alone), and per page
precision = |pred ∩ gold| / |pred|, recall = |pred ∩ gold| / |gold| with ∩ the multiset
intersection, F1 their harmonic mean; an empty output scores 0 on all three. The figures are
the means over the pages (macro), as the benchmarks report them. No accuracy: there are no
negatives.

Every extractor gets the same str (the page's bytes decoded once, as the crawl's spider
decodes them, ``crawler.text.page.page_text``) and returns the body: for the project's
``extract_article`` the paragraphs without the headline, since trafilatura's ``extract`` gives
no headline either. They run interleaved, page by page, in an order shuffled afresh for each
page; pages/s is pages over the CPU time spent inside the extractor's call (the process's, so
other load on the machine does not count; "wall p/s" is the same by the clock, beside it, and
the ratio to trafilatura is by CPU). Each set is split in two by the sha256 of the page's
name (its file or directory name): an even first byte is the dev half (tune on it), an odd one
the held-out half (report it).

**The site-rule path** is timed too, on the mirror's article pages (``crawler/mirror/sites/``,
the pages each of the five spiders takes for an article, with that site's rules: what
``bench/reextract.py`` reads): pages/s of ``extract_article`` with the site's rules, and, on
the same pages, of the generic path (no rules) and trafilatura's default. No quality figure
there: the site rules' texts are the samples, checked byte for byte by the tests.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lxml import html as lxml_html

from crawler.text.page import page_text

Extractor = Callable[[str, str], "str | None"]
ROOT = Path(__file__).resolve().parent.parent
HALVES = ("dev", "held-out")


# --------------------------------------------------------------------------- extractors


def _trafilatura_default(html: str, url: str) -> str | None:
    import trafilatura

    return trafilatura.extract(html)


def _trafilatura_precision(html: str, url: str) -> str | None:
    import trafilatura

    return trafilatura.extract(html, favor_precision=True)


def _project(mode: str) -> Extractor:
    from crawler.text.extract import ExtractionError, extract_article

    def run(html: str, url: str) -> str | None:
        try:
            article = extract_article(html, url, None, mode=mode)
        except ExtractionError:
            return None
        # The body: paragraphs only (article mode's text starts with the headline).
        return "\n\n".join(article.paragraphs)

    return run


def _generic(html: str, url: str) -> str | None:
    from crawler.text.generic import extract_main

    return "\n\n".join(extract_main(html, url).paragraphs)


EXTRACTORS: dict[str, Callable[[], Extractor]] = {
    "trafilatura": lambda: _trafilatura_default,
    "trafilatura-precision": lambda: _trafilatura_precision,
    "project-article": lambda: _project("article"),
    "project-page": lambda: _project("page"),
    "generic": lambda: _generic,
}


def _load(spec: str) -> Extractor:
    module, _, name = spec.partition(":")
    function: Extractor = getattr(importlib.import_module(module), name)
    return function


# --------------------------------------------------------------------------- the sets


@dataclass(frozen=True)
class Page:
    name: str
    url: str
    html: str
    half: str
    gold: dict[str, list[str]] | Counter[str]  # trafilatura: with/without; readability: tokens


def half_of(name: str) -> str:
    return HALVES[hashlib.sha256(name.encode("utf-8")).digest()[0] % 2]


def _decode(path: Path) -> str:
    return page_text(path.read_bytes(), None)[0]


def trafilatura_pages(root: Path) -> list[Page]:
    evaldata = json.loads((root / "evaldata.json").read_text(encoding="utf-8"))
    pages = []
    for url, item in evaldata.items():
        name = item["file"]
        gold = {"with": item["with"], "without": item["without"]}
        pages.append(Page(name, url, _decode(root / "pages" / name), half_of(name), gold))
    return pages


_CJK = r"\u2e80-\u2fdf\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN_RE = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")


def tokens_in_order(text: str) -> list[str]:
    """A text's tokens as the score counts them (casefolded), in order."""
    return _TOKEN_RE.findall(text.casefold())


def tokens(text: str) -> Counter[str]:
    return Counter(tokens_in_order(text))


def readability_pages(root: Path) -> list[Page]:
    pages = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        # (UTF-8, without a charset of its own: read as bytes, lxml would take it for Latin-1.)
        expected = lxml_html.fromstring((folder / "expected.html").read_text(encoding="utf-8"))
        gold = tokens(expected.text_content())
        url = f"http://readability.invalid/{folder.name}/"
        html = _decode(folder / "source.html")
        pages.append(Page(folder.name, url, html, half_of(folder.name), gold))
    return pages


# --------------------------------------------------------------------------- scoring


def norm(text: str) -> str:
    """trafilatura's eval_common.norm."""
    return re.sub(r"\s+", " ", text).strip()


def count_item(gold: dict[str, list[str]], result: str | None) -> tuple[int, int, int, int]:
    """trafilatura's eval_common.count_item: (tp, fp, fn, tn) of one page."""
    if isinstance(result, str):
        resn = norm(result)
        tp = sum(1 for w in gold["with"] if norm(w) in resn)
        fp = sum(1 for w in gold["without"] if norm(w) in resn)
    else:
        tp = fp = 0
    return tp, fp, len(gold["with"]) - tp, len(gold["without"]) - fp


def overlap(gold: Counter[str], result: str | None) -> tuple[float, float, float]:
    predicted = tokens(result or "")
    common = sum((predicted & gold).values())
    if not common:
        return 0.0, 0.0, 0.0
    precision, recall = common / sum(predicted.values()), common / sum(gold.values())
    return precision, recall, 2 * precision * recall / (precision + recall)


@dataclass
class Score:
    pages: int = 0
    seconds: float = 0.0  # CPU time inside the extractor's calls
    wall: float = 0.0  # the clock's
    errors: int = 0
    empty: int = 0
    counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # tp fp fn tn
    sums: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # p r f1 (macro)

    @property
    def rate(self) -> float:
        return self.pages / self.seconds if self.seconds else 0.0

    def f1(self, snippets: bool) -> float:
        if snippets:
            tp, fp, fn, _ = self.counts
            return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        return self.sums[2] / (self.pages or 1)

    def row(self, snippets: bool) -> str:
        if snippets:
            tp, fp, fn, tn = self.counts
            p = tp / (tp + fp) if tp + fp else 0.0
            r = tp / (tp + fn) if tp + fn else 0.0
            acc = (tp + tn) / (tp + fp + fn + tn) if self.pages else 0.0
            f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
            figures = f"{p:6.3f} {r:6.3f} {f1:6.3f} {acc:6.3f}"
        else:
            n = self.pages or 1
            p, r, f1 = (s / n for s in self.sums)
            figures = f"{p:6.3f} {r:6.3f} {f1:6.3f}      -"
        rate = self.pages / self.seconds if self.seconds else 0.0
        wall = self.pages / self.wall if self.wall else 0.0
        return f"{figures} {rate:8.1f} {wall:8.1f} {self.empty:6d} {self.errors:6d}"


@dataclass
class Miss:
    page: str
    detail: str


def run(
    sets: dict[str, list[Page]],
    extractors: dict[str, Extractor],
    misses_of: str | None,
) -> tuple[dict[tuple[str, str, str], Score], list[Miss]]:
    scores: dict[tuple[str, str, str], Score] = {}
    misses: list[Miss] = []
    names = list(extractors)
    for set_name, pages in sets.items():
        for index, page in enumerate(pages):
            # A new order for each page (seeded by it): none always runs first, on cold
            # caches, nor always right after trafilatura (a rotation keeps each extractor's
            # neighbour, and the one after trafilatura found the caches flushed every time).
            order = names[:]
            random.Random(index).shuffle(order)
            for name in order:
                score = scores.setdefault((set_name, page.half, name), Score())
                start, cpu = time.perf_counter(), time.process_time()
                try:
                    result = extractors[name](page.html, page.url)
                except Exception as exc:  # a crash is a miss, as in trafilatura's evaluation
                    result = None
                    score.errors += 1
                    print(f"{name} failed on {page.name}: {exc!r}", file=sys.stderr)
                score.seconds += time.process_time() - cpu
                score.wall += time.perf_counter() - start
                score.pages += 1
                if not result or not result.strip():
                    score.empty += 1
                if isinstance(page.gold, Counter):
                    got = overlap(page.gold, result)
                    for i, value in enumerate(got):
                        score.sums[i] += value
                    if name == misses_of and got[2] < 0.9:
                        misses.append(Miss(page.name, f"P {got[0]:.2f} R {got[1]:.2f}"))
                else:
                    counts = count_item(page.gold, result)
                    for i, value in enumerate(counts):
                        score.counts[i] += value
                    if name == misses_of and (counts[1] or counts[2]):
                        text = norm(result or "")
                        lost = [w for w in page.gold["with"] if norm(w) not in text]
                        kept = [w for w in page.gold["without"] if norm(w) in text]
                        misses.append(Miss(page.name, f"missing {lost} kept {kept}"))
    return scores, misses


# --------------------------------------------------------------------------- the site-rule path


def mirror_speed(passes: int) -> None:
    """Pages/s of the site-rule path on the mirror's article pages, beside the generic path
    and trafilatura on the same pages (decoded once, as the spider decodes them)."""
    from bench.reextract import article_pages, site_rules
    from crawler.text.extract import SiteRules, extract_article

    pages = article_pages(site_rules())
    decoded = [(page_text(p.body, p.content_type)[0], p.url, p.rules) for p in pages]
    runs: dict[str, Callable[[str, str, SiteRules], object]] = {
        "site rules": lambda html, url, rules: extract_article(html, url, rules),
        "generic (no rules)": lambda html, url, rules: extract_article(html, url),
        "trafilatura": lambda html, url, rules: _trafilatura_default(html, url),
    }
    for html, url, rules in decoded[:1]:
        for function in runs.values():
            function(html, url, rules)  # warm up
    seconds = dict.fromkeys(runs, 0.0)
    wall = dict.fromkeys(runs, 0.0)
    names = list(runs)
    for round_ in range(passes):
        for index, (html, url, rules) in enumerate(decoded):
            order = names[:]
            random.Random(round_ * len(decoded) + index).shuffle(order)
            for name in order:
                start, cpu = time.perf_counter(), time.process_time()
                runs[name](html, url, rules)
                seconds[name] += time.process_time() - cpu
                wall[name] += time.perf_counter() - start
    sites = len({p.site for p in pages})
    count = len(decoded) * passes
    print(f"\nmirror article pages — {len(decoded)} pages of {sites} sites, {passes} passes")
    print(f"{'extractor':24} {'pages/s':>8} {'ms/page':>8} {'wall p/s':>8}")
    for name in names:
        print(
            f"{name:24} {count / seconds[name]:8.1f} {1000 * seconds[name] / count:8.2f} "
            f"{count / wall[name]:8.1f}"
        )


def report(scores: dict[tuple[str, str, str], Score], sets: dict[str, list[Page]]) -> None:
    names = list(dict.fromkeys(key[2] for key in scores))
    for set_name, pages in sets.items():
        snippets = set_name == "trafilatura"
        for half in HALVES:
            count = sum(1 for p in pages if p.half == half)
            if not count:
                continue
            how = "snippets, micro" if snippets else "tokens, macro"
            print(f"\n{set_name} — {half} half, {count} pages ({how})")
            print(
                f"{'extractor':24} {'P':>6} {'R':>6} {'F1':>6} {'acc':>6} {'pages/s':>8} "
                f"{'wall p/s':>8} {'empty':>6} {'errors':>6}"
            )
            for name in names:
                if score := scores.get((set_name, half, name)):
                    print(f"{name:24} {score.row(snippets)}")
            base = scores.get((set_name, half, "trafilatura"))
            if base is None:
                continue
            for name in names:
                score = scores.get((set_name, half, name))
                if name == "trafilatura" or score is None:
                    continue
                points = 100 * (score.f1(snippets) - base.f1(snippets))
                speed = score.rate / base.rate if base.rate else 0.0
                print(f"  {name} vs trafilatura: F1 {points:+.1f} points, {speed:.1f}x pages/s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Score body-text extractors on trafilatura's and Readability's dev sets.",
        epilog="example: python -m bench.extract --half dev --only generic trafilatura",
    )
    parser.add_argument(
        "--devsets",
        type=Path,
        default=ROOT / ".devsets",
        help="what scripts/devsets wrote (default: .devsets)",
    )
    parser.add_argument(
        "--set",
        choices=("trafilatura", "readability"),
        action="append",
        help="one set only (repeatable; default: both)",
    )
    parser.add_argument("--half", choices=HALVES, help="one half only (default: both)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(EXTRACTORS),
        metavar="NAME",
        help=f"these extractors only, of {', '.join(EXTRACTORS)}",
    )
    parser.add_argument(
        "--add",
        action="append",
        default=[],
        metavar="NAME=MODULE:FUNCTION",
        help="another extractor: FUNCTION(html: str, url: str) -> str | None",
    )
    parser.add_argument("--misses", metavar="NAME", help="list the pages NAME got wrong")
    parser.add_argument(
        "--mirror-passes",
        type=int,
        default=3,
        metavar="N",
        help="passes over the mirror's article pages for the site-rule speed (0: skip it)",
    )
    args = parser.parse_args(argv)

    if not (args.devsets / "trafilatura" / "evaldata.json").is_file():
        sys.exit(f"no dev sets in {args.devsets}: run scripts/devsets first")
    sets: dict[str, list[Page]] = {}
    for set_name in args.set or ["trafilatura", "readability"]:
        loader = trafilatura_pages if set_name == "trafilatura" else readability_pages
        pages = loader(args.devsets / set_name)
        sets[set_name] = [p for p in pages if args.half in (None, p.half)]
    extractors = {name: EXTRACTORS[name]() for name in args.only or EXTRACTORS}
    for spec in args.add:
        name, _, target = spec.partition("=")
        extractors[name] = _load(target)
    for name, extractor in list(extractors.items()):
        # Lazy imports and first-call set-up are not the extractor's per-page speed.
        try:
            extractor(
                "<html><body><p>Warm up the extractor.</p></body></html>", "http://x.invalid/"
            )
        except ImportError as exc:
            print(f"skipping {name}: {exc}", file=sys.stderr)
            del extractors[name]
    scores, misses = run(sets, extractors, args.misses)
    for miss in misses:
        print(f"{miss.page}: {miss.detail}")
    report(scores, sets)
    if args.mirror_passes > 0:
        mirror_speed(args.mirror_passes)


if __name__ == "__main__":
    main()
