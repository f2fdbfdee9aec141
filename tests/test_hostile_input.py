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
    LATIN,
    LISTING_PAGES,
    OTHER,
    PERSIAN,
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


def _case(name: str) -> str:
    [case] = [c for c in CASES if c.name == name]
    return case.url


def _failure(hostile: HostileRun, name: str) -> dict[str, object]:
    [failure] = [f for f in hostile.report["failures"]["urls"] if f["url"] == _case(name)]
    return dict(failure)


@pytest.mark.parametrize(
    ("name", "cause", "error"),
    [
        # The coded stream stops short though every byte the server sent came.
        ("z-gzip-stream-cut", "truncated", "gzip: the stream ends before its last member"),
        ("z-deflate-stream-cut", "truncated", "deflate: the stream ends before its last block"),
        ("z-br-stream-cut", "truncated", "br: the stream ends before its last block"),
        ("z-gzip-cut-after-headline", "truncated", "gzip: the stream ends before"),
        ("z-gzip-corrupt", "bad-content-coding", "gzip: Error -3"),
        ("z-gzip-bad-crc", "bad-content-coding", "incorrect data check"),
        # Cut on the wire: shorter than its Content-Length.
        ("size-length-lies", "truncated", ""),
        ("z-gzip-truncated", "truncated", ""),
    ],
)
def test_a_truncated_response_never_makes_a_text(
    hostile: HostileRun, name: str, cause: str, error: str
) -> None:
    url = _case(name)
    assert hostile.sidecar_of(url) is None
    assert url not in {f["url"] for f in hostile.flagged()}
    failure = _failure(hostile, name)
    assert (failure["stage"], failure["cause"], failure["status"]) == ("parse", cause, 200)
    assert error in str(failure["error"])
    assert f"Skipped {url} ({cause}, HTTP 200)" in hostile.result.stderr


def test_a_degenerate_text_is_kept_flagged_never_a_version(hostile: HostileRun) -> None:
    url = _case("tiny-body")
    assert hostile.sidecar_of(url) is None  # no version under text/
    [flagged] = [f for f in hostile.flagged() if f["url"] == url]
    assert flagged["quality"] == "degenerate"
    assert flagged["version"] is None
    assert flagged["quality_reason"].startswith("body of 12 characters, below 20: the floor")
    key = flagged["text_key"]
    assert key.startswith("flagged/hostile/") and key.endswith(".txt")
    assert (hostile.store / key).read_text(encoding="utf-8") == "Hostile input\n\n11 June 2025\n"
    failure = _failure(hostile, "tiny-body")
    assert (failure["stage"], failure["cause"]) == ("text", "degenerate")
    assert f"kept as {key}" in str(failure["error"])
    articles = hostile.report["articles"]
    assert articles["degenerate"] == 1
    assert articles["failed_by_reason"]["degenerate"] == 1
    # Every sidecar of a version says its text is ok.
    assert {s["quality"] for s in hostile.sidecars()} == {"ok"}


def test_the_decoding_is_on_record(hostile: HostileRun) -> None:
    def decoding(name: str) -> dict[str, object]:
        sidecar = hostile.sidecar_of(_case(name))
        assert sidecar is not None, name
        assert sidecar["encoding"] == sidecar["decoding"]["name"]
        return dict(sidecar["decoding"])

    def text(name: str) -> str:
        found = hostile.text_of(_case(name))
        assert found is not None, name
        return found

    # Arabic windows-1256 labelled UTF-8: the page's own <meta> reads it.
    got = decoding("cs-1256-label-utf8")
    assert (got["name"], got["source"], got["header"], got["meta"]) == (
        "cp1256",
        "meta",
        "utf-8",
        "cp1256",  # Python's name for the <meta>'s windows-1256
    )
    assert ARABIC in text("cs-1256-label-utf8")
    # Persian UTF-8 labelled windows-1256: the bytes are UTF-8.
    got = decoding("cs-persian-utf8-label-1256")
    assert (got["name"], got["source"], got["header"]) == ("utf-8", "detected", "windows-1256")
    assert PERSIAN in text("cs-persian-utf8-label-1256")
    assert not got["suspect"]
    # An ordinary page: the header's charset, nothing to say.
    got = decoding("header-flood")
    assert got == {
        "name": "utf-8",
        "source": "header",
        "header": "utf-8",
        "meta": None,
        "replacement_chars": 0,
        "nul_dropped": 0,
        "mojibake": False,
        "mojibake_reason": None,
        "repaired": 0,
        "suspect": False,
    }
    # NULs dropped and counted; the stray byte does not turn the page into mojibake.
    got = decoding("nul-utf8-stray-byte")
    assert (got["name"], got["nul_dropped"], got["replacement_chars"]) == ("utf-8", 4, 1)
    assert LATIN + " and more" in text("nul-utf8-stray-byte")
    assert "Ã" not in text("nul-utf8-stray-byte")
    assert decoding("nul-in-text")["nul_dropped"] == 2
    assert decoding("nul-arabic-stray-byte")["name"] == "utf-8"
    # A Latin-1 label the bytes cannot disprove is followed, and the result marked.
    got = decoding("cs-1256-label-latin1")
    assert (got["name"], got["mojibake"], got["suspect"]) == ("cp1252", True, True)
    sidecar = hostile.sidecar_of(_case("cs-1256-label-latin1"))
    assert sidecar is not None
    assert any("mojibake" in w for w in sidecar["warnings"])
    assert got["mojibake_reason"] == "mess" and got["repaired"] == 0
    # UTF-8 encoded twice: repaired, on record, in the warnings and the suspect count.
    for name, words in (("cs-double-utf8-arabic", ARABIC), ("cs-double-utf8-persian", PERSIAN)):
        got = decoding(name)
        assert (got["name"], got["mojibake"], got["mojibake_reason"], got["suspect"]) == (
            "utf-8",
            True,
            "double-utf8",
            True,
        )
        assert got["repaired"] == 2 * sum(1 for c in words if not c.isascii())
        assert words in text(name) and "Ø" not in text(name)
        sidecar = hostile.sidecar_of(_case(name))
        assert sidecar is not None
        assert any("UTF-8 encoded twice" in w for w in sidecar["warnings"])
    assert hostile.result.stats["archive/text/decoding_suspect"] >= 3


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
