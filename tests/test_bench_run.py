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


def test_the_crawl_cpu_is_split_by_thread_and_the_ended_threads_are_the_rest() -> None:
    from bench.crawl_once import crawl_threads

    live = {"MainThread": 5.0, "catalog-texts": 1.5, "warc-writer-bench": 0.5}
    # 2 s before the crawl (imports, in the main thread); 10 s in all at the close.
    threads = crawl_threads(live, cpu=10.0, before=2.0)
    assert threads["MainThread"] == pytest.approx(3.0)
    assert threads["ended"] == pytest.approx(10.0 - 2.0 - 3.0 - 1.5 - 0.5)
    assert sum(threads.values()) == pytest.approx(10.0 - 2.0)


def test_thread_figures_are_grouped_and_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.thread_group("warc-writer-tdi") == "WARC writer"
    assert run.thread_group("PoolThread-twisted.internet.reactor") == "other"
    rules = crawl(9.0, 140, 0) | {
        "thread_cpu_s": {"MainThread": 3.0, "ended": 4.0, "catalog-texts": 1.5, "native": 0.5}
    }
    run.print_threads({("rules", "identity"): [rules]}, ["plain", "rules"], ["identity"])
    line = next(x for x in capsys.readouterr().out.splitlines() if run.LABELS["rules"] in x)
    assert line.split()[-5:] == ["3.00", "4.00", "1.50", "0.00", "0.50"]  # ms per page


def test_the_meter_reads_each_live_threads_cpu_by_its_python_name() -> None:
    import threading
    import time

    from bench.meter import thread_cpu_s

    done = threading.Event()
    ready = threading.Event()

    def spin() -> None:
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass
        ready.set()
        done.wait()

    worker = threading.Thread(target=spin, name="busy-7")
    worker.start()
    try:
        ready.wait(10)
        found = thread_cpu_s()
    finally:
        done.set()
        worker.join()
    assert found["busy"] >= 0.25  # the "-7" suffix dropped, its spin counted
    assert "MainThread" in found
