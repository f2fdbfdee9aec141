"""Hostile and broken input: every case of tests/hostile_cases.py in one crawl, each accounted for.

Figures: ``python -m tests.hostile_cases --summary``.
"""

from __future__ import annotations

import collections
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.crawl.spider import NewsSpider
from tests.crawl_helper import ROOT
from tests.hostile_cases import (
    ARABIC,
    CASES,
    LISTING_PAGES,
    OTHER,
    SECRET_FILE,
    SECRET_MARK,
    H,
    HostileRun,
    corrupt_warcs,
    crashed,
    outcomes,
    private_requests,
    run_hostile,
    secret_leaks,
    summary,
)

MB = 1024 * 1024


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileRun]:
    yield run_hostile(tmp_path_factory.mktemp("hostile"))


def test_there_are_at_least_100_distinct_cases() -> None:
    assert len(CASES) >= 100
    assert len({c.name for c in CASES}) == len(CASES)
    assert len({c.url for c in CASES if c.kind != "link"}) == len(
        [c for c in CASES if c.kind != "link"]
    )


def test_the_crawl_does_not_crash(hostile: HostileRun) -> None:
    result = hostile.result
    assert not crashed(hostile), result.stderr[-3000:]
    assert result.exit_code == 0  # nothing here is a site failure: the good articles came through
    assert result.report["health"]["status"] == "ok"
    assert result.report["warc"]["errors"] == 0
    assert "spider_exceptions/count" not in result.stats


def test_every_case_has_its_outcome(hostile: HostileRun) -> None:
    seen = outcomes(hostile)
    wrong = {c.name: (c.expect, seen[c.name]) for c in CASES if seen[c.name] != c.expect}
    assert wrong == {}


def test_the_run_report_counts_every_case(hostile: HostileRun) -> None:
    report = hostile.report
    expected: collections.Counter[str] = collections.Counter()
    for case in CASES:
        kind, _, reason = case.expect.partition(":")
        if kind in ("skip", "source"):
            expected[reason] += 1
        elif kind == "offsite":
            expected["offsite"] += 1
    skipped: collections.Counter[str] = collections.Counter()
    for key, count in report["skipped"].items():
        skipped[key.split("/")[0]] += count
    # The endless sitemap chain is cut at the depth limit: one counted skip.
    assert skipped.pop("sitemap-too-deep") == 1
    assert skipped == expected
    failed = collections.Counter(c.reason for c in CASES if c.expect.startswith("failed:"))
    assert report["articles"]["failed_by_reason"] == dict(failed)
    archived = [c for c in CASES if c.expect == "archived"]
    assert report["articles"]["new"] == len(archived)


def test_archived_texts_hold_their_content(hostile: HostileRun) -> None:
    for case in CASES:
        if case.expect != "archived" or case.contains is None:
            continue
        text = hostile.text_of(case.url)
        assert text is not None, case.name
        assert case.contains in text, case.name
        if case.contains == ARABIC:
            assert "\ufffd" not in text, case.name
        assert "\0" not in text, case.name


def test_private_addresses_other_hosts_and_files_are_never_requested(hostile: HostileRun) -> None:
    assert private_requests(hostile) == []
    hosts = {r.host for r in hostile.requests if r.method != "CONNECT"}
    assert OTHER not in hosts
    assert hosts == {"hostile.example.test"}
    offsite = [c for c in CASES if c.expect == "offsite"]
    assert hostile.report["skipped"]["offsite"] == len(offsite)


def test_no_local_file_is_read(hostile: HostileRun) -> None:
    # The mark must really be in the file, or this test proves nothing.
    assert SECRET_MARK in Path(SECRET_FILE).read_text()
    assert secret_leaks(hostile) == []


def test_bombs_and_oversized_bodies_are_bounded(hostile: HostileRun) -> None:
    log = hostile.result.stderr
    for name in ("bomb-gzip", "bomb-deflate", "bomb-br", "feed-gzip-bomb", "sm-deflate-bomb"):
        [case] = [c for c in CASES if c.name == name]
        assert f"Ignored response <200 {case.url}> because its body" in log, name
        assert "exceeded DOWNLOAD_MAXSIZE (33554432 B) during decompression" in log
    assert "Skipped sitemap https://hostile.example.test/src/sitemap/sm-gzip-bomb-body/" in log
    # A body over the limit is cut off, by its Content-Length or as it streams.
    assert "Expected to receive 34603041 bytes which is larger than download max size" in log
    assert "Received 33570808 bytes which is larger than download max size" in log
    # Three 1 GiB bombs (and a 256 MiB one) at once: the crawl never held one whole.
    assert hostile.result.stats["hostile/max_rss_kb"] * 1024 < 1024 * MB


def test_endless_sources_are_bounded(hostile: HostileRun) -> None:
    asked = collections.Counter(r.url for r in hostile.requests if r.method == "GET")
    listing = [u for u in asked if u.startswith(f"{H}/src/list/")]
    assert len(listing) == LISTING_PAGES
    chain = [u for u in asked if u.startswith(f"{H}/src/chain/")]
    assert len(chain) == NewsSpider.sitemap_max_depth + 1
    redirects = [u for u in asked if u.startswith(f"{H}/news/redir-chain-")]
    assert len(redirects) == 11  # the first request and REDIRECT_MAX_TIMES (10) hops
    assert all(asked[u] == 1 for u in redirects)
    for case in CASES:
        if case.name.startswith("retry-flood-"):
            assert asked[case.url] == 3, case.name  # the first try and RETRY_TIMES (2)
    for name in ("retry-after-huge", "retry-after-huger", "retry-after-far-date"):
        assert asked[f"{H}/news/{name}/"] == 1, name  # a wait past the limit: given up at once
    assert hostile.result.stats["archive/retry/gave_up_long_wait"] == 3


def test_slow_responses_time_out(hostile: HostileRun) -> None:
    log = hostile.result.stderr
    for name in ("slowloris-body", "slowloris-chunked", "slowloris-head"):
        assert f"Skipped {H}/news/{name}/ (download-error/DownloadTimeoutError)" in log
    assert hostile.seconds < 90


def test_every_warc_passes_warcio_check(hostile: HostileRun) -> None:
    records, files, problems = corrupt_warcs(hostile)
    assert problems == []
    assert files >= 1
    assert records >= len(CASES)


def test_the_summary_has_the_figures(hostile: HostileRun) -> None:
    figures = summary(hostile)
    assert figures["hostile inputs tried"] == len(CASES)
    assert figures["crawls crashed"] == 0
    assert figures["records corrupt"] == 0
    assert figures["cases not as expected"] == 0
    assert figures["_wrong"] == {}


def test_the_summary_command_has_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.hostile_cases", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert "example: python -m tests.hostile_cases --summary" in proc.stdout
