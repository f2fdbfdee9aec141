"""Train the generic extractor's block scorer on the dev halves of the two public sets (issue 23).

    python -m bench.train_blocks                 # cross-validate, then write the scorer
    python -m bench.train_blocks --cv-only       # the cross-validated figures only
    python -m bench.train_blocks --folds 5 --seed 23 --l2 1.0

Only the **dev half** of each set is read (bench.extract's split, by the sha256 of the page's
name): a held-out page is never opened here. Each page goes through the generic extractor's
own walk (crawler.text.generic.blocks_of), and each block gets the features the extractor
computes at run time (crawler.text.generic.features) and, where the set says, a label:

- Readability's set: a block is the body's when its tokens (bench.extract.tokens, in order)
  occur as one run in the tokens of expected.html's text (a block of fewer than 8 tokens:
  with the 3 tokens before or after it on the page); it is not when fewer than half of its
  tokens occur there at all; otherwise it is left out (unlabelled).
- trafilatura's set: a block holding a "with" snippet (whitespace-normalised), or held whole
  by one (20 characters or more), is the body's; one holding a "without" snippet, or held
  whole by one, is not; every other block is left out.

The model is a logistic regression (numpy, Newton's method, L2 on the standardised features),
each page's labelled blocks weighted to sum to one page, each block by the square root of its
characters (the scores count tokens and snippets, not blocks). Pages are split into k folds by
a seeded shuffle; for each fold the model learns on the others and the held-back pages are
extracted with it and scored as bench.extract scores them, beside the hand rules' figures on
the same pages. The scorer decides only inside the hand rules' containers: it drops a block
the hand rules chose when its score is below the threshold, and adds another when it is
above the threshold plus a margin (never furniture; a link line or short line only between
the chosen blocks). The threshold's offset and the margin are chosen on the cross-validated
figures: the most cautious setting within 0.05 points of the best mean of the two sets. The
scorer learnt on all dev pages is written to crawler/text/block_scorer.json.

Its run that made the shipped scorer (seed 23, 5 folds, l2 0.001): hand rules 0.9448
(trafilatura set) and 0.9787 (Readability set), the scorer at offset -0.5, margin 2.0:
0.9494 and 0.9807.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from lxml import html as lxml_html

from bench.extract import (
    ROOT,
    _decode,
    count_item,
    half_of,
    norm,
    overlap,
    tokens,
    tokens_in_order,
)
from crawler.text import generic

Array = np.ndarray[Any, np.dtype[np.float64]]


@dataclass
class Sample:
    set: str
    name: str
    gold: dict[str, list[str]] | Counter[str]
    page: Any  # generic._Page
    title: str | None
    ld: list[dict[str, Any]]
    hand: list[str]  # the hand rules' paragraphs
    rows: Array
    labels: Array  # 1, 0, or -1 (unlabelled)
    weights: Array


def _analyse(html: str) -> tuple[Any, str | None, list[dict[str, Any]], list[Any], Array] | None:
    """What extract_main computes of a page, to the block features."""
    tree, _head, _meta, ld, title = generic.parse(html)
    body = tree.body
    if body is None:
        return None
    page, _, containers, chosen = generic.blocks_of(body, title)
    if not page.blocks:
        return None
    rows = generic.features(page, containers, chosen)
    return page, title, ld, chosen, rows


def _token_run(text: str) -> str:
    return " " + " ".join(tokens_in_order(text)) + " "


def _readability_labels(blocks: list[Any], expected: str) -> Array:
    gold_run = _token_run(expected)
    gold_set = set(gold_run.split())
    labels = np.full(len(blocks), -1.0)
    runs = [tokens_in_order(block.text) for block in blocks]
    for k, words in enumerate(runs):
        if not words:
            continue
        if len(words) >= _CONTEXT_WORDS:
            found = " " + " ".join(words) + " " in gold_run
        else:
            # A short line ("Home", "Share") occurs in most texts by chance: it is the body's
            # when it occurs there with the words of the line before or after it.
            before = next((r[-_CONTEXT:] for r in reversed(runs[:k]) if r), [])
            after = next((r[:_CONTEXT] for r in runs[k + 1 :] if r), [])
            found = any(
                " " + " ".join(run) + " " in gold_run
                for run in ((*before, *words), (*words, *after))
                if len(run) > len(words)
            )
        if found:
            labels[k] = 1.0
        elif sum(w in gold_set for w in words) < 0.5 * len(words):
            labels[k] = 0.0
    return labels


_CONTEXT_WORDS = 8
_CONTEXT = 3


def _trafilatura_labels(blocks: list[Any], gold: dict[str, list[str]]) -> Array:
    labels = np.full(len(blocks), -1.0)
    with_ = [norm(w) for w in gold["with"] if norm(w)]
    without = [norm(w) for w in gold["without"] if norm(w)]
    for k, block in enumerate(blocks):
        text = norm(block.text)
        if len(text) < 1:
            continue

        def held(snippets: list[str], text: str = text) -> bool:
            return any(s in text or (len(text) >= 20 and text in s) for s in snippets)

        if held(with_):
            labels[k] = 1.0
        elif held(without):
            labels[k] = 0.0
    return labels


def load(devsets: Path) -> list[Sample]:
    samples: list[Sample] = []
    root = devsets / "trafilatura"
    evaldata = json.loads((root / "evaldata.json").read_text(encoding="utf-8"))
    for item in evaldata.values():
        name = item["file"]
        if half_of(name) != "dev":
            continue  # never opened
        gold = {"with": item["with"], "without": item["without"]}
        got = _analyse(_decode(root / "pages" / name))
        if got is None:
            continue
        labels = _trafilatura_labels(got[0].blocks, gold)
        samples.append(_sample("trafilatura", name, gold, got, labels))
    root = devsets / "readability"
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if half_of(folder.name) != "dev":
            continue  # never opened
        expected = lxml_html.fromstring((folder / "expected.html").read_text(encoding="utf-8"))
        text = expected.text_content()
        got = _analyse(_decode(folder / "source.html"))
        if got is None:
            continue
        labels = _readability_labels(got[0].blocks, text)
        samples.append(_sample("readability", folder.name, tokens(text), got, labels))
    return samples


def _sample(
    set_name: str,
    name: str,
    gold: dict[str, list[str]] | Counter[str],
    got: tuple[Any, str | None, list[dict[str, Any]], list[Any], Array],
    labels: Array,
) -> Sample:
    page, title, ld, chosen, rows = got
    chars = np.array([b.chars for b in page.blocks], np.float64)
    weights = np.where(labels >= 0, np.sqrt(chars), 0.0)
    if weights.sum() > 0:
        weights /= weights.sum()
    hand = generic.body_paragraphs(page, chosen, title, ld)
    return Sample(set_name, name, gold, page, title, ld, hand, rows, labels, weights)


# --------------------------------------------------------------------------- the model


def fit(rows: Array, labels: Array, weights: Array, l2: float) -> tuple[Array, float]:
    """Weighted L2 logistic regression by Newton's method, on standardised features; the
    weights and bias returned apply to the raw features."""
    mean = np.average(rows, axis=0, weights=weights)
    std = np.sqrt(np.average((rows - mean) ** 2, axis=0, weights=weights))
    std[std < 1e-9] = 1.0
    x = np.column_stack((np.ones(len(rows)), (rows - mean) / std))
    w = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[0] = 0.0
    total = weights.sum()
    for _ in range(50):
        p = 1 / (1 + np.exp(-(x @ w)))
        grad = x.T @ (weights * (p - labels)) / total + penalty * w
        hess = (x.T * (weights * p * (1 - p))) @ x / total + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    raw = w[1:] / std
    return raw, float(w[0] - (raw * mean).sum())


def stack(samples: list[Sample]) -> tuple[Array, Array, Array]:
    rows, labels, weights = [], [], []
    per_set = Counter(s.set for s in samples)
    for s in samples:
        keep = s.labels >= 0
        rows.append(s.rows[keep])
        labels.append(s.labels[keep])
        # Each set weighs as much as the other, each page of a set alike.
        weights.append(s.weights[keep] / per_set[s.set])
    return np.vstack(rows), np.concatenate(labels), np.concatenate(weights)


def extract(sample: Sample, weights: Array, bias: float, add: float) -> list[str]:
    scorer = generic.BlockScorer(weights, bias, add)
    chosen = scorer.choose(sample.page, sample.rows)
    return generic.body_paragraphs(sample.page, chosen, sample.title, sample.ld)


@dataclass
class Tally:
    counts: np.ndarray[Any, np.dtype[np.int64]]
    sums: Array
    pages: int = 0

    @classmethod
    def new(cls) -> Tally:
        return cls(np.zeros(4, np.int64), np.zeros(3))

    def add(self, sample: Sample, paragraphs: list[str]) -> None:
        text = "\n\n".join(paragraphs)
        self.pages += 1
        if isinstance(sample.gold, Counter):
            self.sums += overlap(sample.gold, text)
        else:
            self.counts += count_item(sample.gold, text)

    def f1(self, set_name: str) -> float:
        if set_name == "trafilatura":
            tp, fp, fn, _ = self.counts
            return float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0
        return float(self.sums[2] / max(self.pages, 1))


SETS = ("trafilatura", "readability")
TIE = 0.0005


Setting = tuple[float, float]  # the bias's offset, the margin to add a block


def cross_validate(
    samples: list[Sample], folds: int, seed: int, l2: float, settings: list[Setting]
) -> tuple[dict[str, Tally], dict[Setting, dict[str, Tally]]]:
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    fold_of = {index: n % folds for n, index in enumerate(order)}
    hand = {s: Tally.new() for s in SETS}
    model = {o: {s: Tally.new() for s in SETS} for o in settings}
    for fold in range(folds):
        train = [s for i, s in enumerate(samples) if fold_of[i] != fold]
        test = [s for i, s in enumerate(samples) if fold_of[i] == fold]
        weights, bias = fit(*stack(train), l2)
        for sample in test:
            hand[sample.set].add(sample, sample.hand)
            for offset, add in settings:
                paragraphs = extract(sample, weights, bias + offset, add)
                model[offset, add][sample.set].add(sample, paragraphs)
    return hand, model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Learn the generic extractor's block scorer on the dev halves.",
        epilog="example: python -m bench.train_blocks --cv-only --folds 5",
    )
    parser.add_argument("--devsets", type=Path, default=ROOT / ".devsets")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--l2", type=float, default=1e-3, help="L2 on standardised weights")
    parser.add_argument(
        "--offsets",
        type=float,
        nargs="+",
        default=[-1.0, -0.5, 0.0, 0.5, 1.0],
        help="bias offsets (thresholds) cross-validated; the best is shipped",
    )
    parser.add_argument(
        "--adds",
        type=float,
        nargs="+",
        default=[0.0, 1.0, 2.0, 3.0, 99.0],
        help="margins over the threshold for a block the hand rules left out (99: none)",
    )
    parser.add_argument(
        "--drop",
        nargs="+",
        default=[],
        choices=generic.FEATURES,
        metavar="FEATURE",
        help="features the model may not read (their weights are 0)",
    )
    parser.add_argument("--cv-only", action="store_true", help="write no scorer")
    parser.add_argument("--out", type=Path, default=generic.SCORER_PATH)
    args = parser.parse_args(argv)

    samples = load(args.devsets)
    for name in args.drop:
        for sample in samples:
            sample.rows[:, generic.FEATURES.index(name)] = 0.0
    labelled = Counter(s.set for s in samples for _ in range(int((s.labels >= 0).sum())))
    positive = Counter(s.set for s in samples for _ in range(int((s.labels == 1).sum())))
    for set_name in SETS:
        pages = sum(1 for s in samples if s.set == set_name)
        print(
            f"{set_name}: {pages} dev pages, {labelled[set_name]} labelled blocks "
            f"({positive[set_name]} body)"
        )
    settings = [(offset, add) for offset in args.offsets for add in args.adds]
    hand, model = cross_validate(samples, args.folds, args.seed, args.l2, settings)
    print(f"\n{args.folds}-fold cross-validated F1 on the dev halves (seed {args.seed})")
    print(f"{'':22} {'trafilatura':>12} {'readability':>12} {'mean':>8}")
    line = [hand[s].f1(s) for s in SETS]
    print(f"{'hand rules':22} {line[0]:12.4f} {line[1]:12.4f} {sum(line) / 2:8.4f}")
    means = {}
    for setting, tallies in model.items():
        line = [tallies[s].f1(s) for s in SETS]
        means[setting] = mean = sum(line) / 2
        label = f"model {setting[0]:+.2f} add {setting[1]:.1f}"
        print(f"{label:22} {line[0]:12.4f} {line[1]:12.4f} {mean:8.4f}")
    # The most cautious setting (the largest margin to add a block, then the highest
    # threshold) within TIE of the best mean: the differences below it are a snippet or two.
    top = max(means.values())
    near = [setting for setting, mean in means.items() if mean >= top - TIE]
    best = max(near, key=lambda setting: (setting[1], setting[0]))
    print(f"best: offset {best[0]:+.2f}, add {best[1]:.1f}")
    if args.cv_only:
        return
    weights, bias = fit(*stack(samples), args.l2)
    width = max(map(len, generic.FEATURES))
    for name, weight in zip(generic.FEATURES, weights, strict=True):
        print(f"  {name:{width}} {weight:+8.3f}")
    data = {
        "about": (
            "Block scorer of crawler.text.generic, learnt by bench/train_blocks.py on the dev "
            f"halves (seed {args.seed}, l2 {args.l2}, offset {best[0]:+.2f}, add {best[1]})"
        ),
        "features": list(generic.FEATURES),
        "weights": [round(float(w), 6) for w in weights],
        "bias": round(bias + best[0], 6),
        "add": best[1],
        "dev_digest": hashlib.sha256(
            "".join(sorted(f"{s.set}/{s.name}" for s in samples)).encode()
        ).hexdigest()[:16],
    }
    args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
