"""bench.run's figures: a mode of the --against tree is summed and printed beside this tree's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import run


def crawl(cpu_s: float, peak: float, round_: int) -> dict[str, Any]:
    return {
        "pages": 1000,
        "crawl_cpu_s": cpu_s,
        "end_cpu_s": 1.0,
        "crawl_wall_s": 10.0,
        "crawl_peak_mib": peak,
        "end_peak_mib": peak + 50,
        "round": round_,
    }


def test_against_figures_are_paired_by_round(capsys: pytest.CaptureFixture[str]) -> None:
    results = {
        ("plain", "identity"): [crawl(2.0, 96, 0), crawl(2.2, 96, 1)],
        ("rules", "identity"): [crawl(9.0, 140, 0), crawl(9.9, 142, 1)],
        ("rules" + run.AGAINST, "identity"): [crawl(10.0, 155, 0), crawl(9.0, 160, 1)],
    }
    summary = run.summarize(results, rounds=2)
    # Each tree's ratio to plain Scrapy comes from its own crawls of the same round.
    assert summary[("rules", "identity")]["x_plain"] == pytest.approx((4.5 + 4.5) / 2)
    assert summary[("rules" + run.AGAINST, "identity")]["x_plain"] == pytest.approx(
        (5.0 + 9.0 / 2.2) / 2
    )
    run.print_against(results, ["plain", "rules"], ["identity"], Path("/tmp/old"))
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if run.LABELS["rules"] in x)
    assert "9.45 vs   9.50 ms/page" in line
    assert "peak  141 vs  158 MiB" in line
    assert "140/155, 142/160 MiB" in line
    assert run.LABELS["plain"] not in out  # no --against crawls of plain Scrapy


def test_an_against_row_is_labelled_as_such() -> None:
    assert run.label("rules") == run.LABELS["rules"]
    assert "against" in run.label("rules" + run.AGAINST)
