"""Each spider run on WARCs captured from the loopback mirror, through the replay from the archive.

The all-sites demo crawls the mirror once into a store (the session's ``demo_all_store``);
``newsarchive crawl --all --from-archive`` then runs the five real spiders again with every
response taken from those WARCs (``demo_replay``, one replay of every site). A selector change
is thus checked against archived responses as well as against the mirror's pages: the replay
must find the articles the crawl archived and make byte-identical texts, the user's samples
included. No WARC is checked in: the fixtures make them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import expected_text
from tests.replay_helper import SITES, DemoReplay, archived_texts, sha256_label
from tests.test_demo_all_sites import SAMPLES

# End to end over the all-sites demo's store (its crawl is shared with the other modules).
pytestmark = pytest.mark.slow


def _articles(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["article_id"]: entry for entry in report["replay"]["list"]}


@pytest.mark.parametrize("site", SITES)
def test_the_replay_finds_the_articles_the_crawl_archived(
    demo_replay: DemoReplay, site: str
) -> None:
    run = demo_replay.run
    assert run.proc.returncode == 0, run.output
    report = run.report(site)
    assert report["finish_reason"] == "finished"
    archived = archived_texts(demo_replay.store, site)
    assert len(archived) >= 3, site
    assert set(_articles(report)) == set(archived), site
    # Every request of the spider was answered from the archive: none missed, none failed.
    assert report["replay"]["missed"]["total"] == 0, report["replay"]["missed"]
    assert report["articles"]["failed"] == 0, report["failures"]["urls"]
    assert report["replay"]["articles"]["extracted"] == len(archived)


@pytest.mark.parametrize("site", SITES)
def test_the_replayed_texts_are_byte_identical_to_the_archived_ones(
    demo_replay: DemoReplay, site: str
) -> None:
    articles = _articles(demo_replay.run.report(site))
    for key, text in archived_texts(demo_replay.store, site).items():
        entry = articles[key]
        assert entry["text_digest"] == sha256_label(text), (site, key)
        assert entry["text_length"] == len(text), (site, key)
        assert entry["same"] is True, (site, key)
        assert entry["archived"]["text_digest"] == sha256_label(text)


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_the_replay_makes_every_sample_text_exactly(demo_replay: DemoReplay, sample: str) -> None:
    site, _fields = SAMPLES[sample]
    digests = {e["text_digest"] for e in demo_replay.run.report(site)["replay"]["list"]}
    assert sha256_label(expected_text(sample)) in digests, sample


def test_rendered_pages_are_replayed_with_the_dom_the_browser_made(
    demo_replay: DemoReplay,
) -> None:
    """president.ir is a script-built site: its pages were rendered in Chromium, and the
    replay answers them with the archived DOM instead of the empty shell (no browser runs)."""
    report = demo_replay.run.report("president")
    pages = report["replay"]["pages"]
    assert pages["rendered"] >= len(archived_texts(demo_replay.store, "president"))
    assert pages["not_rendered"] == 0
    for entry in report["replay"]["list"]:
        assert entry["capture"]["rendered"] is True, entry["url"]


def test_irna_is_replayed_behind_its_cookie_challenge(demo_replay: DemoReplay) -> None:
    """The challenge page the crawl met is in the archive, kept apart: the replay answers with
    the page it stood in front of, and nothing asks a browser to solve anything."""
    report = demo_replay.run.report("irna")
    assert report["replay"]["articles"]["same"] == len(archived_texts(demo_replay.store, "irna"))
    log = Path(report["log_file"]).read_text(encoding="utf-8")
    assert "Solved the cookie challenge" in _crawl_log(demo_replay, "irna")  # live, it was
    assert "challenge" not in log.lower()  # no challenge middleware, none met, none solved


def _crawl_log(demo_replay: DemoReplay, site: str) -> str:
    """The demo crawl's own log of the site."""
    [log] = (demo_replay.store / ".logs" / site).glob("*.log")
    return log.read_text(encoding="utf-8")
