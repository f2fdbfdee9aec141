"""The generic extractor's learned block scorer (crawler/text/block_scorer.json) and its
training tool's pieces (bench/train_blocks.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from selectolax.lexbor import LexborHTMLParser

from bench import train_blocks
from crawler.text import generic

PARAGRAPH = (
    "The council voted on Tuesday to extend the night bus service to every district, after a "
    "year in which ridership on the two trial lines doubled, officials said."
)


def _page(html: str) -> tuple[generic._Page, list[int], list[generic._Block]]:
    body = LexborHTMLParser(html).body
    assert body is not None
    page, _, containers, chosen = generic.blocks_of(body, None)
    return page, containers, chosen


def test_the_shipped_scorer_is_small_and_reads_this_extractors_features() -> None:
    text = generic.SCORER_PATH.read_text(encoding="utf-8")
    assert len(text) < 8192
    data = json.loads(text)
    assert tuple(data["features"]) == generic.FEATURES
    scorer = generic.block_scorer()
    assert scorer.weights.shape == (len(generic.FEATURES),)


def test_a_scorer_of_other_features_is_refused() -> None:
    data = {"features": ["log_chars"], "weights": [1.0], "bias": 0.0, "add": 0.0}
    with pytest.raises(ValueError, match="features"):
        generic.BlockScorer.from_json(data)


def test_features_have_one_row_per_block() -> None:
    html = (
        "<html><body><nav><a href='/'>Home</a> <a href='/a'>About</a></nav>"
        f"<article><h1>Buses</h1><p>{PARAGRAPH}</p><p>{PARAGRAPH}</p></article>"
        "<footer>Imprint</footer></body></html>"
    )
    page, containers, chosen = _page(html)
    rows = generic.features(page, containers, chosen)
    assert rows.shape == (len(page.blocks), len(generic.FEATURES))
    column = dict(zip(generic.FEATURES, rows.T, strict=True))
    texts = [b.text for b in page.blocks]
    menu, paragraph = texts.index("Home About"), texts.index(PARAGRAPH)
    assert column["in_chrome"][menu] == 1 and column["in_chrome"][paragraph] == 0
    assert column["in_container"][paragraph] == 1 and column["in_container"][menu] == 0
    assert column["hand_chosen"][paragraph] == 1 and column["hand_chosen"][menu] == 0
    assert column["link_density"][menu] > 0.8


def test_a_scorer_decides_only_inside_the_containers() -> None:
    html = (
        f"<html><body><aside><p>{PARAGRAPH} Elsewhere.</p></aside>"
        f"<article><p>{PARAGRAPH}</p><p>{PARAGRAPH} Again.</p></article></body></html>"
    )
    page, containers, chosen = _page(html)
    rows = generic.features(page, containers, chosen)
    # A scorer that takes every block: still nothing from outside the article.
    everything = generic.BlockScorer(np.zeros(len(generic.FEATURES)), 1.0, 0.0)
    kept = [b.text for b in everything.choose(page, rows)]
    assert kept == [PARAGRAPH, f"{PARAGRAPH} Again."]
    # One that takes nothing drops the hand rules' blocks too.
    nothing = generic.BlockScorer(np.zeros(len(generic.FEATURES)), -1.0, 0.0)
    assert nothing.choose(page, rows) == []


def test_fit_learns_a_separable_rule() -> None:
    rng = np.random.default_rng(23)
    rows = rng.normal(size=(400, 3))
    labels = (rows[:, 0] - rows[:, 2] > 0).astype(np.float64)
    weights, bias = train_blocks.fit(rows, labels, np.ones(400), 1e-4)
    predicted = (rows @ weights + bias > 0).astype(np.float64)
    assert (predicted == labels).mean() > 0.97
    assert weights[0] > 0 > weights[2]


def test_readability_labels_need_the_words_around_a_short_line() -> None:
    page, _, _ = _page(
        "<html><body><div><a href='/'>Home</a></div>"
        f"<article><h2>What happened</h2><p>{PARAGRAPH}</p></article>"
        "<div>Completely unrelated words here</div></body></html>"
    )
    expected = f"What happened {PARAGRAPH} Go home now."
    labels = train_blocks._readability_labels(page.blocks, expected)
    by_text = {b.text: label for b, label in zip(page.blocks, labels, strict=True)}
    assert by_text["What happened"] == 1  # followed by the paragraph's words, as in the text
    assert by_text[PARAGRAPH] == 1
    assert by_text["Home"] == -1  # its word is in the text, not with its neighbours'
    assert by_text["Completely unrelated words here"] == 0


def test_trafilatura_labels_come_from_the_snippets() -> None:
    page, _, _ = _page(
        f"<html><body><article><p>{PARAGRAPH}</p><p>Share this story</p>"
        "<p>Nothing said of this one</p></article></body></html>"
    )
    gold = {"with": ["extend the night bus"], "without": ["Share this"]}
    labels = train_blocks._trafilatura_labels(page.blocks, gold)
    assert labels.tolist() == [1.0, 0.0, -1.0]


def test_the_rows_of_a_span_are_the_whole_pages_rows() -> None:
    menu = "".join(f"<li><a href='/{i}'>Section {i}</a></li>" for i in range(8))
    html = (
        f"<html><body><ul>{menu}</ul><div><p>{PARAGRAPH} Teaser.</p></div>"
        f"<article><h1>Buses</h1><p>{PARAGRAPH}</p><p>Short line</p><p>{PARAGRAPH} Two.</p>"
        f"</article><footer><p>Imprint</p><p>Privacy</p></footer></body></html>"
    )
    page, containers, chosen = _page(html)
    whole = generic.features(page, containers, chosen)
    first = min(page.first_block[c] for c in containers)
    end = max(page.end_block[c] for c in containers)
    assert 0 < first < end < len(page.blocks)
    rows = generic.features(page, containers, chosen, (first, end))
    np.testing.assert_array_equal(rows, whole[first:end])


def _sample(html: str, gold: dict[str, list[str]]) -> train_blocks.Sample:
    got = train_blocks._analyse(html)
    assert got is not None
    labels = train_blocks._trafilatura_labels(got[0].blocks, gold)
    return train_blocks._sample("trafilatura", "page.html", gold, got, labels)


def test_the_container_stage_extracts_the_hand_rules_choice_as_extract_main_does() -> None:
    menu = "".join(f"<li><a href='/{i}'>Section {i}</a></li>" for i in range(8))
    html = (
        f"<html><body><ul>{menu}</ul><div id='main'><article><h1>Buses</h1><p>{PARAGRAPH}</p>"
        f"<p>{PARAGRAPH} Two.</p><p>{PARAGRAPH} Three.</p></article></div>"
        f"<div id='other'><div><p>Elsewhere, a short note on the city's new trams.</p></div></div>"
        "</body></html>"
    )
    sample = _sample(html, {"with": ["extend the night bus"], "without": ["Section 3"]})
    sets, rows = train_blocks.candidates_of(sample, 12)
    assert sets[0] == sample.containers
    assert len({tuple(s) for s in sets}) == len(sets) > 1
    assert rows.shape == (len(sets), len(train_blocks.CANDIDATE_FEATURES))
    hand = rows[:, train_blocks.CANDIDATE_FEATURES.index("hand")]
    assert hand.tolist() == [1.0] + [0.0] * (len(sets) - 1)
    paragraphs = generic.extract_main(html, "https://example.org/a").paragraphs
    expected = train_blocks.score(sample, paragraphs)
    assert train_blocks._result(sample, sets[0], generic.block_scorer()) == expected


def test_the_conditional_logit_learns_which_candidate_extracts_best() -> None:
    rng = np.random.default_rng(23)
    groups = []
    for _ in range(60):
        rows = rng.normal(size=(4, 2))
        best = int(np.argmax(rows[:, 0]))
        groups.append((rows, np.eye(4)[best], 1.0))
    weights, _, _ = train_blocks.fit_logit(groups, 1e-4)
    assert weights[0] > 5 * abs(weights[1])


def test_the_fallback_stage_scores_the_extractors_own_fallbacks() -> None:
    aside = "Elsewhere, a short note on the city's new trams."
    html = (
        f"<html><body><div id='main'><article><h1>Buses</h1><p>{PARAGRAPH}</p>"
        f"<p>{PARAGRAPH} Two.</p><p>{PARAGRAPH} Three.</p></article></div>"
        f"<div id='other'><div><p>{aside}</p></div></div>"
        '<script type="application/ld+json">{"@type": "NewsArticle", '
        '"articleBody": "Line one.\\nLine two."}</script></body></html>'
    )
    sample = _sample(html, {"with": ["extend the night bus"], "without": ["new trams"]})
    plain = ["resiliparse's text"]
    got = train_blocks.fallbacks_of(sample, generic.block_scorer(), plain)
    assert len(got) == len(train_blocks.FALLBACKS)
    by_name = dict(zip(train_blocks.FALLBACKS, got, strict=True))
    assert by_name["resiliparse"] == plain
    # The extraction keeps to the article; the whole body as the container holds the box too.
    assert aside not in generic.extract_main(html, "https://example.org/a").paragraphs
    assert aside in by_name["body hand rules"]
    assert aside in by_name["wild"]
    assert by_name["json-ld"] == ["Line one.", "Line two."]


def test_a_rule_takes_a_longer_fallback_only_for_a_short_or_misplaced_extraction() -> None:
    short, long_ = ["Cookies: this site uses cookies."], [PARAGRAPH, PARAGRAPH]
    rows = np.array(
        [
            [train_blocks.choice_row(short, long_, 1.0)],  # short, the good text held
            [train_blocks.choice_row(long_, short, 1.0)],  # the fallback is shorter
            [train_blocks.choice_row(long_, long_ + long_, 0.0)],  # none of the good text held
        ]
    )
    column = dict(zip(train_blocks.CHOICE_FEATURES, rows[0, 0], strict=True))
    assert column["fallback_covered"] < 0.2 and column["extraction_covered"] < 0.5
    assert train_blocks.Rule(0, 100.0, 0.0, 0.0).applies(rows).tolist() == [True, False, False]
    assert train_blocks.Rule(0, 0.0, 0.0, 0.1).applies(rows).tolist() == [False, False, True]
    assert train_blocks.Rule(0, 0.0, 0.6, 0.0).applies(rows).tolist() == [True, False, True]


def test_the_fallback_figures_score_each_set_as_its_authors_do() -> None:
    # Two trafilatura pages (snippet counts, pooled) and one Readability page (its F1).
    results = {
        "trafilatura": np.array([[[1, 0, 1, 0], [2, 0, 0, 0]], [[2, 1, 0, 1], [0, 0, 2, 2]]]),
        "readability": np.array([[[1.0, 0.5, 0.6, 0.0], [1.0, 1.0, 1.0, 0.0]]]),
    }
    oof = train_blocks.OutOfFold(
        np.zeros(3, np.int64),
        {"trafilatura": np.array([0, 1]), "readability": np.array([2])},
        {k: v.astype(np.float64) for k, v in results.items()},
        np.zeros((3, 2)),
        np.zeros((3, 1, len(train_blocks.CHOICE_FEATURES))),
    )
    assert train_blocks._figures(oof, np.zeros(3, np.int64)) == pytest.approx((6 / 8, 0.6, 0.675))
    # The fallback on the first and last page: tp 4, fp 1, fn 0.
    assert train_blocks._figures(oof, np.array([1, 0, 1])) == pytest.approx((8 / 9, 1.0, 17 / 18))
