"""Train the generic extractor's block scorer on the dev halves of the two public sets (issue 23).

    python -m bench.train_blocks                 # cross-validate, then write the scorer
    python -m bench.train_blocks --cv-only       # the cross-validated figures only
    python -m bench.train_blocks --folds 5 --seed 23 --l2 1.0
    python -m bench.train_blocks --containers    # an experiment: learn the container's choice

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

``--containers`` asks whether a model could choose the body's container better than the hand
rules (generic._choose) do, and writes nothing. A page's candidates are the hand rules'
containers and up to ``--candidates`` others: the elements the hand rules could have chosen
(no leaf block, not inside chrome, a positive value), the most valuable first, each with the
siblings generic._with_siblings adds to it. In each fold every candidate of every page is
extracted as extract_main would extract it (generic._select, then the fold's block scorer at
the shipped setting) and scored; a model of cheap features of the candidates
(CANDIDATE_FEATURES: text, good text, links, value, tag and name hints, depth and overlap
against the hand rules' choice, whether it is theirs; with ``--scorer-mass``, how much of the
text the block scorer calls body it holds) learns on the other folds which candidate extracts
best, a conditional logit over each page's candidates or (``--pairwise``) a logistic regression
of each candidate against the hand rules' choice. It leaves their choice only when its score is
past a margin above theirs.

What it found (seed 23, 5 folds, l2 0.001 for the block scorer; issue 23): the hand rules'
containers score 0.9494 and 0.9807, and the best of each page's candidates (up to 12 more;
a ceiling no choice among them can pass) 0.9626 and 0.9820: only 38 trafilatura and 11
Readability dev pages have a better candidate (with the scorer learnt on all of them), the
trafilatura pages mostly by one snippet. No learnt choice beat the
hand rules. The conditional logit (margins 0 to 3) at l2 0.001 overfits (0.935 and 0.951), at
0.01 scores 0.9459-0.9478 and 0.9802-0.9807, at 0.1 and 1 (with or without the scorer's mass)
at best what the hand rules score, leaving them for few pages or none; the pairwise model at
l2 0.001 at best 0.9494 and 0.9801, at 0.1 leaves them for one page. Seed 7 alike (hand rules
0.9483 and 0.9809, ceiling 0.9610 and 0.9818, the choice at l2 0.1 at best 0.9482 and 0.9809).
The hand rules' constants of the choice (generic._BODY_BONUS to _SIBLING_PARAGRAPH), each
moved one step either way in a one-off run, moved the mean by -0.21 to +0.03 points.
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
    containers: list[int]  # the hand rules' containers
    rows: Array
    labels: Array  # 1, 0, or -1 (unlabelled)
    weights: Array


def _analyse(html: str) -> Analysis | None:
    """What extract_main computes of a page, to the block features."""
    tree, _head, _meta, ld, title = generic.parse(html)
    body = tree.body
    if body is None:
        return None
    page, _, containers, chosen = generic.blocks_of(body, title)
    if not page.blocks:
        return None
    rows = generic.features(page, containers, chosen)
    return page, title, ld, containers, chosen, rows


# (page, title, JSON-LD items, containers, the hand rules' blocks, the blocks' features)
Analysis = tuple[Any, str | None, list[dict[str, Any]], list[int], list[Any], Array]


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
    got: Analysis,
    labels: Array,
) -> Sample:
    page, title, ld, containers, chosen, rows = got
    chars = np.array([b.chars for b in page.blocks], np.float64)
    weights = np.where(labels >= 0, np.sqrt(chars), 0.0)
    if weights.sum() > 0:
        weights /= weights.sum()
    hand = generic.body_paragraphs(page, chosen, title, ld)
    return Sample(set_name, name, gold, page, title, ld, hand, containers, rows, labels, weights)


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


# One page's score: count_item's (tp, fp, fn, tn) or overlap's (p, r, f1).
Result = tuple[float, ...]


def score(sample: Sample, paragraphs: list[str]) -> Result:
    text = "\n\n".join(paragraphs)
    if isinstance(sample.gold, Counter):
        return overlap(sample.gold, text)
    return count_item(sample.gold, text)


@dataclass
class Tally:
    counts: np.ndarray[Any, np.dtype[np.int64]]
    sums: Array
    pages: int = 0

    @classmethod
    def new(cls) -> Tally:
        return cls(np.zeros(4, np.int64), np.zeros(3))

    def add(self, sample: Sample, paragraphs: list[str]) -> None:
        self.add_result(sample, score(sample, paragraphs))

    def add_result(self, sample: Sample, result: Result) -> None:
        self.pages += 1
        if isinstance(sample.gold, Counter):
            self.sums += np.asarray(result)
        else:
            self.counts += np.asarray(result, np.int64)

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


# --------------------------------------------------------------------------- containers
# The --containers stage (an experiment, see the module's docstring): it writes nothing.

# What the choice reads of a candidate (the hand rules' containers are candidate 0).
CANDIDATE_FEATURES = (
    "hand",
    "log_chars",
    "good_share_of_page",
    "good_share",
    "link_density",
    "bad_share",
    "log_value_vs_hand",
    "value_share",
    "bodyish",
    "article_body",
    "tag_article",
    "tag_main",
    "tag_body",
    "tag_section",
    "tag_table",
    "in_article",
    "depth_vs_hand",
    "above_hand",
    "below_hand",
    "log_siblings",
    "overlap_hand",
    "log_blocks",
)
# With --scorer-mass: the share of the page's text that the block scorer (reading the hand
# rules' containers) calls body that the candidate holds, and the share of its own text it
# calls body.
MASS_FEATURES = ("scorer_mass_of_page", "scorer_mass_share")
# The shipped block scorer's setting (offset and margin), for the fold's scorer.
SCORER_SETTING = (-0.5, 2.0)


def candidates_of(sample: Sample, most: int) -> tuple[list[list[int]], Array]:
    """The page's candidate containers (the hand rules' first) and their features."""
    page = sample.page
    hand = sample.containers
    blocks = page.blocks
    chars = np.array([b.chars for b in blocks], np.float64)
    kinds = np.array([b.kind for b in blocks])
    sums = {
        name: np.concatenate(([0.0], np.cumsum(values)))
        for name, values in (
            ("chars", chars),
            ("links", np.array([b.link_chars for b in blocks], np.float64)),
            ("good", chars * (kinds == generic._GOOD)),
            ("bad", chars * (kinds == generic._BAD)),
        )
    }
    first, end, value = page.first_block, page.end_block, page.value

    def total(name: str, elements: list[int]) -> float:
        return float(sum(sums[name][end[e]] - sums[name][first[e]] for e in elements))

    eligible = sorted(
        (
            i
            for i in range(1, len(page.tags))
            if page.tags[i] not in generic._LEAF_BLOCKS
            and page.nearest_chrome[i] < 0
            and value[i] > 0
        ),
        key=lambda i: -value[i],
    )
    sets = [list(hand)]
    seen = {tuple(hand)}
    for i in eligible:
        if len(sets) > most:
            break
        got = generic._with_siblings(page, i)
        if tuple(got) not in seen:
            seen.add(tuple(got))
            sets.append(got)
    page_good = max(float(sums["good"][-1]), 1.0)
    top_value = max([value[i] for i in eligible] + [1.0])
    hand_main = max(hand, key=lambda e: value[e])
    hand_value = max(value[hand_main], 1.0)
    in_hand = np.zeros(len(blocks), bool)
    for e in hand:
        in_hand[first[e] : end[e]] = True
    rows = np.zeros((len(sets), len(CANDIDATE_FEATURES)))
    for k, elements in enumerate(sets):
        main = max(elements, key=lambda e: value[e])
        size = max(total("chars", elements), 1.0)
        tag = page.tags[main]
        mine = np.zeros(len(blocks), bool)
        for e in elements:
            mine[first[e] : end[e]] = True
        either = max(float(chars[mine | in_hand].sum()), 1.0)
        above = k > 0 and first[main] <= first[hand_main] and end[main] >= end[hand_main]
        below = k > 0 and first[hand_main] <= first[main] and end[hand_main] >= end[main]
        rows[k] = (
            k == 0,
            np.log1p(size),
            total("good", elements) / page_good,
            total("good", elements) / size,
            total("links", elements) / size,
            total("bad", elements) / size,
            np.clip(np.log(max(value[main], 1.0) / hand_value), -3, 3),
            value[main] / top_value,
            page.bodyish[main],
            page.article_body[main],
            tag == "article",
            tag == "main",
            tag == "body",
            tag == "section",
            tag in ("table", "tbody", "td"),
            page.inside[main],
            np.clip(page.depth[main] - page.depth[hand_main], -5, 5) / 5,
            above,
            below,
            np.log(len(elements)),
            float(chars[mine & in_hand].sum()) / either,
            np.log1p(sum(end[e] - first[e] for e in elements)),
        )
    return sets, rows


def _scorer_mass(sample: Sample, sets: list[list[int]], weights: Array, bias: float) -> Array:
    """The MASS_FEATURES of each candidate."""
    page = sample.page
    chars = np.array([b.chars for b in page.blocks], np.float64)
    body = chars / (1 + np.exp(-(sample.rows @ weights + bias)))
    body_sums = np.concatenate(([0.0], np.cumsum(body)))
    char_sums = np.concatenate(([0.0], np.cumsum(chars)))
    out = np.zeros((len(sets), len(MASS_FEATURES)))
    for k, elements in enumerate(sets):
        spans = [(page.first_block[e], page.end_block[e]) for e in elements]
        mine = sum(body_sums[b] - body_sums[a] for a, b in spans)
        size = sum(char_sums[b] - char_sums[a] for a, b in spans)
        out[k] = mine / max(body_sums[-1], 1.0), mine / max(size, 1.0)
    return out


def _result(sample: Sample, containers: list[int], scorer: generic.BlockScorer) -> Result:
    """The page extracted from these containers as extract_main would, and scored."""
    page = sample.page
    chosen = generic._select(page, containers, sample.title)
    chosen = scorer.choose(page, generic.features(page, containers, chosen))
    return score(sample, generic.body_paragraphs(page, chosen, sample.title, sample.ld))


def _quality(result: Result) -> float:
    """A page's F1 (count_item's: 1 when the page has no snippet either way)."""
    if len(result) == 3:
        return float(result[2])
    tp, fp, fn, _ = result
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def fit_logit(groups: list[tuple[Array, Array, float]], l2: float) -> tuple[Array, Array, Array]:
    """A conditional logit over each page's candidates (rows, target distribution, weight):
    the weights on the standardised features, and the means and spreads to standardise."""
    everything = np.vstack([rows for rows, _, _ in groups])
    mean = everything.mean(axis=0)
    std = everything.std(axis=0)
    std[std < 1e-9] = 1.0
    xs = [(rows - mean) / std for rows, _, _ in groups]
    page_weights = np.array([weight for _, _, weight in groups])
    page_weights /= page_weights.sum()

    w = np.zeros(everything.shape[1])
    # Newton's method, as fit's: the gradient and Hessian of the weighted cross-entropy.
    for _ in range(50):
        grad = 2 * l2 * w
        hess = np.diag(np.full(len(w), 2 * l2 + 1e-9))
        for x, (_, target, _), weight in zip(xs, groups, page_weights, strict=True):
            s = x @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            grad += weight * (x.T @ (p - target))
            mean_x = x.T @ p
            hess += weight * ((x.T * p) @ x - np.outer(mean_x, mean_x))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w, mean, std


def cross_validate_containers(
    samples: list[Sample],
    folds: int,
    seed: int,
    l2: float,
    choice: Choice,
) -> tuple[dict[str, dict[str, Tally]], Counter[str]]:
    """The tallies of the hand rules' containers, of the best candidate of each page (the
    ceiling of any choice among them), and of the learnt choice at each margin; and how many
    pages per set the learnt choice (at margin 0) gives another container."""
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    fold_of = {index: n % folds for n, index in enumerate(order)}
    base = [candidates_of(s, choice.candidates) for s in samples]
    for _, candidate_rows in base:
        for k, name in enumerate(CANDIDATE_FEATURES):
            if choice.keep and name not in choice.keep:
                candidate_rows[:, k] = 0.0
    labels = ["hand rules' containers", "best candidate (ceiling)"]
    labels += [f"choice, margin {m:+.1f}" for m in choice.margins]
    tallies = {label: {s: Tally.new() for s in SETS} for label in labels}
    differ = Counter[str]()
    for fold in range(folds):
        train = [i for i in range(len(samples)) if fold_of[i] != fold]
        weights, bias = fit(*stack([samples[i] for i in train]), l2)
        scorer = generic.BlockScorer(weights, bias + SCORER_SETTING[0], SCORER_SETTING[1])
        rows = [c[1] for c in base]
        if choice.scorer_mass:
            rows = [
                np.column_stack((c[1], _scorer_mass(s, c[0], weights, bias)))
                for s, c in zip(samples, base, strict=True)
            ]
        results = [
            [_result(s, els, scorer) for els in c[0]] for s, c in zip(samples, base, strict=True)
        ]
        quality = [np.array([_quality(r) for r in res]) for res in results]
        per_set = Counter(samples[i].set for i in train)
        if choice.pairwise:
            # Each other candidate against the hand rules' containers: better or worse,
            # weighted by how much (a tie teaches nothing).
            gains = [quality[i][1:] - quality[i][0] for i in train]
            w, b = fit(
                np.vstack([rows[i][1:] for i in train]),
                np.concatenate([(g > 0).astype(np.float64) for g in gains]),
                np.concatenate(
                    [np.abs(g) / per_set[samples[i].set] for i, g in zip(train, gains, strict=True)]
                ),
                choice.l2,
            )
            mean, std = np.zeros(len(w)), np.ones(len(w))
        else:
            # The target: evenly the candidates that extract best; a page where all extract
            # alike is left out, and each weighs by how much its candidates differ.
            groups = [
                (rows[i], (q >= q.max() - 1e-9) / (q >= q.max() - 1e-9).sum(), weight)
                for i in train
                if (weight := ((q := quality[i]).max() - q.min()) / per_set[samples[i].set]) > 1e-9
            ]
            w, mean, std = fit_logit(groups, choice.l2)
            b = 0.0
        for i, s in enumerate(samples):
            if fold_of[i] != fold:
                continue
            res = results[i]
            tallies[labels[0]][s.set].add_result(s, res[0])
            tallies[labels[1]][s.set].add_result(s, res[int(np.argmax(quality[i]))])
            score = ((rows[i] - mean) / std) @ w + b
            if choice.pairwise:
                score[0] = 0.0  # (the others' scores are log-odds of beating it)
            best = int(np.argmax(score))
            differ[s.set] += best != 0
            for label, margin in zip(labels[2:], choice.margins, strict=True):
                pick = best if score[best] - score[0] > margin else 0
                tallies[label][s.set].add_result(s, res[pick])
    return tallies, differ


@dataclass(frozen=True)
class Choice:
    """How the --containers stage learns its choice."""

    candidates: int = 12
    l2: float = 0.1
    margins: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 3.0)
    pairwise: bool = False
    scorer_mass: bool = False
    keep: tuple[str, ...] = ()


def containers_main(args: argparse.Namespace, samples: list[Sample]) -> None:
    choice = Choice(
        args.candidates,
        args.choice_l2,
        tuple(args.margins),
        args.pairwise,
        args.scorer_mass,
        tuple(args.choice_keep or ()),
    )
    tallies, differ = cross_validate_containers(samples, args.folds, args.seed, args.l2, choice)
    print(
        f"\n{args.folds}-fold cross-validated F1 of the container choice on the dev halves "
        f"(seed {args.seed}; {'pairwise' if choice.pairwise else 'conditional logit'}, "
        f"l2 {choice.l2}, up to {choice.candidates} more candidates per page"
        f"{', scorer mass' if choice.scorer_mass else ''})"
    )
    print(f"{'':26} {'trafilatura':>12} {'readability':>12} {'mean':>8}")
    for label, by_set in tallies.items():
        line = [by_set[s].f1(s) for s in SETS]
        print(f"{label:26} {line[0]:12.4f} {line[1]:12.4f} {sum(line) / 2:8.4f}")
    print("pages given another container at margin 0:", ", ".join(f"{s} {differ[s]}" for s in SETS))


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
    stage = parser.add_argument_group(
        "containers (an experiment, issue 23)",
        "example: python -m bench.train_blocks --containers --pairwise --scorer-mass",
    )
    stage.add_argument(
        "--containers",
        action="store_true",
        help="cross-validate a learnt choice of the body's container instead (writes nothing)",
    )
    stage.add_argument(
        "--candidates",
        type=int,
        default=Choice.candidates,
        help="candidates per page past the hand rules'",
    )
    stage.add_argument("--choice-l2", type=float, default=Choice.l2, help="the choice's L2")
    stage.add_argument(
        "--margins",
        type=float,
        nargs="+",
        default=list(Choice.margins),
        help="how far a candidate's score must pass the hand rules' containers' to be chosen",
    )
    stage.add_argument(
        "--pairwise",
        action="store_true",
        help="learn each candidate against the hand rules' containers (a logistic regression), "
        "not a conditional logit over the page's candidates",
    )
    stage.add_argument(
        "--scorer-mass", action="store_true", help="add the block scorer's MASS_FEATURES"
    )
    stage.add_argument(
        "--choice-keep",
        nargs="+",
        choices=CANDIDATE_FEATURES,
        metavar="FEATURE",
        help="the only candidate features the choice may read (default: all)",
    )
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
    if args.containers:
        containers_main(args, samples)
        return
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
