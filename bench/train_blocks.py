"""Train the generic extractor's block scorer on the dev halves of the two public sets (issue 23).

    python -m bench.train_blocks                 # cross-validate, then write the scorer
    python -m bench.train_blocks --cv-only       # the cross-validated figures only
    python -m bench.train_blocks --folds 5 --seed 23 --l2 1.0
    python -m bench.train_blocks --containers    # an experiment: learn the container's choice
    python -m bench.train_blocks --fallback      # an experiment: a fallback for failed extractions

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

``--fallback`` asks whether another extraction of the page should stand in for the generic
one when that is short or failed (trafilatura falls back so), and writes nothing. Each dev
page is extracted as extract_main would with the block scorer of the fold that holds it back,
and so are its FALLBACKS: resiliparse's main-content text (page mode's), the hand rules over
the whole body (the <body> as the only container), the block scorer over the whole body, the
page's good paragraphs outside chrome (generic._wild) and the JSON-LD articleBody. A Rule
takes one when it is longer and the extraction is short (under ``chars``), or under a share
of its length, or the containers hold little of the page's good text; a learnt choice is a
logistic regression of CHOICE_FEATURES (both lengths, the paragraphs, that share, how far
the two texts' tokens agree) on whether the fallback scores better, weighted by how much.
The rule's thresholds, the choice's L2 and margin are chosen on the other folds (the most
cautious within TIE of the best); "gated" takes the fallback only where the extraction is
under ``--gate-chars`` or its containers hold under ``--gate-held`` of the good text: the
pages where the extractor would parse the page again.

What it found (seed 23, 5 folds; issue 23): the generic extraction 0.9494 and 0.9807 (mean
0.9651); the best of it and all fallbacks per page (a ceiling no choice can pass) 0.9703 and
0.9885 (mean 0.9794); per fallback, the better of it and the extraction: resiliparse 0.9608
and 0.9875, the page's good paragraphs 0.9589 and 0.9811, the block scorer over the body
0.9549 and 0.9812, the hand rules over it 0.9534 and 0.9813, JSON-LD 0.9503 and 0.9807. Most
of that ceiling is one snippet either way on pages both extract well (resiliparse scores
better on 53 pages, worse on 331). The rules score at best 0.9498 and 0.9807 (resiliparse
under 100 characters); the learnt choice of resiliparse (L2 0.01, 0.1 or 1, chosen per fold)
0.9505 and 0.9843, gated at 500 characters or 0.2 of the good text (32 of 591 pages) 0.9511
and 0.9843 (mean 0.9677, +0.26 points), taking it on 4 pages; the other fallbacks' choices at
best 0.9498 and 0.9807. Seed 7 alike (extraction 0.9483 and 0.9809; ceiling 0.9691 and
0.9883; the gated choice of resiliparse 0.9500 and 0.9845, +0.27, on 7 pages; the rules at
best 0.9489 and 0.9809). The Readability set's +0.36 is one page (js-link-replacement, three
words, of which the extraction finds two): without it the mean gains +0.08 (+0.09 with seed
7). The pages it recovers on trafilatura's set are failures: a cookie notice, or a line for
logged-in readers, taken for the body (gnaur.wordpress, gelbe-liste; with seed 7 also chip.de
and archive.ordnungsrausch). Resiliparse takes about a third of extract_main's time per page;
gated, it would add 1.7% (32 of 591 dev pages). Not adopted: without that one page the mean
gains less than the 0.2 points asked, and the choice learnt on all dev pages (L2 0.01, margin
1) would take resiliparse's text on 37 of the 344 mirror and synthetic pages that
bench.generic_golden reads (75 gated): 404 pages, section fronts and picture or video items,
where it gives the listing's headlines or the page's heading instead of the short text found.
The dev sets hold few short bodies, so the choice learns that a longer text is better.
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
from crawler.text.extract import _page_paragraphs

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
    html: str = ""  # the page itself (the --fallback stage's resiliparse reads it)


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
        html = _decode(root / "pages" / name)
        got = _analyse(html)
        if got is None:
            continue
        labels = _trafilatura_labels(got[0].blocks, gold)
        samples.append(_sample("trafilatura", name, gold, got, labels, html))
    root = devsets / "readability"
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if half_of(folder.name) != "dev":
            continue  # never opened
        expected = lxml_html.fromstring((folder / "expected.html").read_text(encoding="utf-8"))
        text = expected.text_content()
        html = _decode(folder / "source.html")
        got = _analyse(html)
        if got is None:
            continue
        labels = _readability_labels(got[0].blocks, text)
        samples.append(_sample("readability", folder.name, tokens(text), got, labels, html))
    return samples


def _sample(
    set_name: str,
    name: str,
    gold: dict[str, list[str]] | Counter[str],
    got: Analysis,
    labels: Array,
    html: str = "",
) -> Sample:
    page, title, ld, containers, chosen, rows = got
    chars = np.array([b.chars for b in page.blocks], np.float64)
    weights = np.where(labels >= 0, np.sqrt(chars), 0.0)
    if weights.sum() > 0:
        weights /= weights.sum()
    hand = generic.body_paragraphs(page, chosen, title, ld)
    return Sample(
        set_name, name, gold, page, title, ld, hand, containers, rows, labels, weights, html
    )


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


# --------------------------------------------------------------------------- fallback
# The --fallback stage (an experiment, see the module's docstring): it writes nothing.

# Other extractions of a page that could stand in for the generic extractor's.
FALLBACKS = ("resiliparse", "body hand rules", "body scorer", "wild", "json-ld")


def fallbacks_of(sample: Sample, scorer: generic.BlockScorer, plain: list[str]) -> list[list[str]]:
    """The page's FALLBACKS' paragraphs (``plain``: resiliparse's main-content text of it)."""
    page, title, ld = sample.page, sample.title, sample.ld
    whole = [0]  # the <body>, the walk's first element, as the only container
    hand = generic._select(page, whole, title)
    free = scorer.choose(page, generic.features(page, whole, hand))
    return [
        plain,
        generic.body_paragraphs(page, hand, title, ld),
        generic.body_paragraphs(page, free, title, ld),
        generic._wild(page, title),
        generic._ld_body(ld),
    ]


def _held(sample: Sample) -> float:
    """The share of the page's good text (outside chrome) that the containers hold."""
    page = sample.page
    good = np.array(
        [
            b.chars * (b.kind == generic._GOOD and page.nearest_chrome[b.owner] < 0)
            for b in page.blocks
        ],
        np.float64,
    )
    held = sum(good[page.first_block[c] : page.end_block[c]].sum() for c in sample.containers)
    return float(held / max(good.sum(), 1.0))


# What a choice reads of a page and one fallback: the characters of the generic extraction
# and of the fallback, their ratio, the extraction's paragraphs, the share of the page's good
# text its containers hold, and how far the two texts agree (the share of the fallback's
# tokens the extraction has, and of the extraction's the fallback has).
CHOICE_FEATURES = (
    "log_chars",
    "log_fallback_chars",
    "log_ratio",
    "log_paragraphs",
    "held",
    "fallback_covered",
    "extraction_covered",
)


def choice_row(current: list[str], other: list[str], held: float) -> Array:
    """The CHOICE_FEATURES of the generic extraction ``current`` and a fallback ``other``."""
    mine, theirs = tokens("\n".join(current)), tokens("\n".join(other))
    common = sum((mine & theirs).values())
    chars, other_chars = sum(map(len, current)), sum(map(len, other))
    return np.array(
        [
            np.log1p(chars),
            np.log1p(other_chars),
            np.log1p(other_chars) - np.log1p(chars),
            np.log1p(len(current)),
            held,
            common / max(sum(theirs.values()), 1),
            common / max(sum(mine.values()), 1),
        ]
    )


@dataclass
class OutOfFold:
    """Each dev page extracted, and its FALLBACKS, with the block scorer of the fold that
    holds it back: the results (0: the generic extraction, k: FALLBACKS[k - 1]) and each
    fallback's CHOICE_FEATURES."""

    fold_of: np.ndarray[Any, np.dtype[np.int64]]
    where: dict[str, np.ndarray[Any, np.dtype[np.int64]]]  # each set's pages
    results: dict[str, Array]  # per set: its page, the extraction, the page's score
    quality: Array  # page, extraction: the page's F1
    rows: Array  # page, fallback, CHOICE_FEATURES


def out_of_fold(samples: list[Sample], folds: int, seed: int, l2: float) -> OutOfFold:
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    fold_of = np.zeros(len(samples), np.int64)
    for n, index in enumerate(order):
        fold_of[index] = n % folds
    plain = [_page_paragraphs(s.html) if s.html else [] for s in samples]
    results: list[list[Result]] = [[] for _ in samples]
    rows = np.zeros((len(samples), len(FALLBACKS), len(CHOICE_FEATURES)))
    for fold in range(folds):
        weights, bias = fit(*stack([s for i, s in enumerate(samples) if fold_of[i] != fold]), l2)
        scorer = generic.BlockScorer(weights, bias + SCORER_SETTING[0], SCORER_SETTING[1])
        for i, s in enumerate(samples):
            if fold_of[i] != fold:
                continue
            current = generic.body_paragraphs(s.page, scorer.choose(s.page, s.rows), s.title, s.ld)
            others = fallbacks_of(s, scorer, plain[i])
            results[i] = [score(s, p) for p in (current, *others)]
            held = _held(s)
            rows[i] = [choice_row(current, other, held) for other in others]
    where = {name: np.array([i for i, s in enumerate(samples) if s.set == name]) for name in SETS}
    by_set = {name: np.array([results[i] for i in where[name]], np.float64) for name in SETS}
    quality = np.array([[_quality(r) for r in res] for res in results])
    return OutOfFold(fold_of, where, by_set, quality, rows)


def _figures(
    oof: OutOfFold, picks: np.ndarray[Any, np.dtype[np.int64]], only: Any = None
) -> tuple[float, ...]:
    """Each set's F1 and their mean when each page takes the extraction ``picks`` says (0:
    the generic one), over the pages ``only`` marks (all by default)."""
    line = []
    for set_name in SETS:
        pages = oof.where[set_name]
        keep = np.ones(len(pages), bool) if only is None else only[pages]
        got = oof.results[set_name][np.flatnonzero(keep), picks[pages][keep]]
        if set_name == SETS[0]:
            tp, fp, fn, _ = got.sum(axis=0)
            line.append(float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0)
        else:
            line.append(float(got[:, 2].mean()) if len(got) else 0.0)
    return (*line, sum(line) / 2)


@dataclass(frozen=True)
class Rule:
    """Take FALLBACKS[fallback] instead of the generic extraction when it is longer and the
    extraction is under ``chars`` characters, or under ``share`` of its length, or the
    containers hold under ``held`` of the page's good text."""

    fallback: int
    chars: float
    share: float
    held: float

    def applies(self, rows: Array) -> Array:
        """Per page (its fallbacks' CHOICE_FEATURES), whether the rule takes the fallback."""
        mine = np.expm1(rows[:, self.fallback, 0])
        other = np.expm1(rows[:, self.fallback, 1])
        return (other > mine) & (
            (mine < self.chars)
            | (mine < self.share * other)
            | (rows[:, self.fallback, 4] < self.held)
        )


RULE_CHARS = (0.0, 100.0, 250.0, 500.0, 1000.0, 2000.0)
RULE_SHARES = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7)
RULE_HELD = (0.0, 0.1, 0.2, 0.3, 0.5)


def _cautious(options: list[Any], means: list[float], taken: list[int]) -> Any:
    """The option taking the fallback on the fewest pages within TIE of the best mean."""
    top = max(means)
    near = [k for k, mean in enumerate(means) if mean >= top - TIE]
    return options[min(near, key=lambda k: taken[k])]


def cross_validate_rules(
    oof: OutOfFold, fallbacks: list[int]
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Each page's pick by the Rule chosen on the other folds' pages (among rules taking
    one of ``fallbacks``)."""
    rules = [
        Rule(k, chars, share, held)
        for k in fallbacks
        for chars in RULE_CHARS
        for share in RULE_SHARES
        for held in RULE_HELD
    ]
    applied = [np.where(r.applies(oof.rows), r.fallback + 1, 0) for r in rules]
    picks = np.zeros(len(oof.fold_of), np.int64)
    for fold in range(int(oof.fold_of.max()) + 1):
        train = oof.fold_of != fold
        means = [_figures(oof, a, train)[2] for a in applied]
        taken = [int((a[train] > 0).sum()) for a in applied]
        rule = _cautious(rules, means, taken)
        picks[~train] = np.where(rule.applies(oof.rows[~train]), rule.fallback + 1, 0)
    return picks


CHOICE_MARGINS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)


def cross_validate_choice(
    oof: OutOfFold, fallback: int, l2s: list[float], gate: Array
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Each page's pick by a logistic regression of CHOICE_FEATURES learnt on the other folds'
    pages (whether the fallback scores better, weighted by how much), taking the fallback
    past a margin; the L2 and the margin chosen on those pages (the most cautious within TIE
    of the best). It takes the fallback on the pages ``gate`` marks only (those the extractor
    would compute it for), and learns from all."""
    rows = oof.rows[:, fallback]
    gain = oof.quality[:, fallback + 1] - oof.quality[:, 0]
    per_page = np.zeros(len(gain))
    for set_name in SETS:
        per_page[oof.where[set_name]] = 1 / len(oof.where[set_name])
    picks = np.zeros(len(gain), np.int64)
    for fold in range(int(oof.fold_of.max()) + 1):
        train = oof.fold_of != fold
        # (A page where the two extract alike teaches nothing.)
        learn = train & (np.abs(gain) > 1e-9)
        options, means, taken = [], [], []
        for l2 in l2s:
            weights, bias = fit(
                rows[learn],
                (gain[learn] > 0).astype(np.float64),
                np.abs(gain[learn]) * per_page[learn],
                l2,
            )
            odds = rows @ weights + bias
            for margin in CHOICE_MARGINS:
                applied = np.where(gate & (odds > margin), fallback + 1, 0)
                options.append(applied)
                means.append(_figures(oof, applied, train)[2])
                taken.append(int((applied[train] > 0).sum()))
        chosen = _cautious(options, means, taken)
        picks[~train] = chosen[~train]
    return picks


def fallback_main(args: argparse.Namespace, samples: list[Sample]) -> None:
    oof = out_of_fold(samples, args.folds, args.seed, args.l2)
    n = len(oof.fold_of)
    figures: dict[str, tuple[float, ...]] = {}
    taken: dict[str, int] = {}

    def show(label: str, picks: np.ndarray[Any, np.dtype[np.int64]]) -> None:
        figures[label] = _figures(oof, picks)
        taken[label] = int((picks > 0).sum())

    show("generic extraction", np.zeros(n, np.int64))
    for k, name in enumerate(FALLBACKS):
        show(f"{name} alone", np.full(n, k + 1))
        show(f"{name} ceiling", np.where(oof.quality[:, k + 1] > oof.quality[:, 0], k + 1, 0))
    show("best of all (ceiling)", np.argmax(oof.quality, axis=1))
    show("rule, any fallback", cross_validate_rules(oof, list(range(len(FALLBACKS)))))
    for k, name in enumerate(FALLBACKS):
        show(f"rule, {name}", cross_validate_rules(oof, [k]))
    # The gate: the pages on which the extractor would compute a fallback at all.
    chars = np.expm1(oof.rows[:, 0, 0])
    gate = (chars < args.gate_chars) | (oof.rows[:, 0, 4] < args.gate_held)
    for l2s in [[l2] for l2 in args.choice_l2s] + [args.choice_l2s]:
        for k, name in enumerate(FALLBACKS[:4]):
            label = f"choice {name}, l2 {'/'.join(map(str, l2s))}"
            show(label, cross_validate_choice(oof, k, l2s, np.ones(n, bool)))
            show(f"{label}, gated", cross_validate_choice(oof, k, l2s, gate))
    print(
        f"\n{args.folds}-fold cross-validated F1 of a fallback for the generic extraction on "
        f"the dev halves (seed {args.seed}; gate: under {args.gate_chars:g} characters or "
        f"{args.gate_held:g} of the good text held, {int(gate.sum())} of {n} pages)"
    )
    print(f"{'':44} {'trafilatura':>12} {'readability':>12} {'mean':>8} {'taken':>6}")
    for label, line in figures.items():
        print(f"{label:44} {line[0]:12.4f} {line[1]:12.4f} {line[2]:8.4f} {taken[label]:6}")


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
    fallback = parser.add_argument_group(
        "fallback (an experiment, issue 23)",
        "example: python -m bench.train_blocks --fallback --choice-l2s 0.1",
    )
    fallback.add_argument(
        "--fallback",
        action="store_true",
        help="cross-validate a fallback for short or failed generic extractions instead "
        "(writes nothing)",
    )
    fallback.add_argument(
        "--choice-l2s",
        type=float,
        nargs="+",
        default=[0.01, 0.1, 1.0],
        help="the L2s of the learnt choice of a fallback",
    )
    fallback.add_argument(
        "--gate-chars",
        type=float,
        default=500.0,
        help="the gated choice takes the fallback only where the extraction is shorter than this",
    )
    fallback.add_argument(
        "--gate-held",
        type=float,
        default=0.2,
        help="... or whose containers hold less than this share of the page's good text",
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
    if args.fallback:
        fallback_main(args, samples)
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
