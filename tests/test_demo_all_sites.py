"""The demo over all five mirrored sites: every sample exact, then a second run adds nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from warcio.archiveiterator import ArchiveIterator

from tests.conftest import DemoRun, data_dir, expected_text, run_demo

SITES = ("almasirah", "irna", "president", "presstv", "tdi")
SAMPLES = {  # expected file -> (site, metadata the sidecar must carry)
    "000_02c3192fcde76f36.txt": ("almasirah", {"tags": ["Iran", "Gaza"]}),
    "001_89df22862bce6eb6.txt": (
        "irna",
        {"article_id": "85859288", "published": "2025-06-11T19:16:00+03:30"},
    ),
    "002_93a6c316173974e2.txt": ("president", {}),
    "003_6cbe9dcc7c9c0c4b.txt": ("almasirah", {"tags": ["Iraq", "Iran", "Palestine", "Israel"]}),
    "004_2c00aa427ae8dd86.txt": ("tdi", {"authors": ["Maham Shabir"]}),
}
PUBLISHED_DAY = {"002_93a6c316173974e2.txt": "2025-06-12", "004_2c00aa427ae8dd86.txt": "2023-10-24"}


@dataclass
class Runs:
    store: Path
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    texts_after_first: set[str]


@pytest.fixture(scope="module")
def runs(demo_all_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    first = subprocess.CompletedProcess(
        ["newsarchive", "demo"], demo_all_run.returncode, demo_all_run.stdout, demo_all_run.stderr
    )
    # The session's demo store is shared: the second run goes into a copy of it.
    cwd = tmp_path_factory.mktemp("demo-again")
    store = cwd / "store"
    shutil.copytree(demo_all_run.store, store)
    texts = {p.relative_to(store).as_posix() for p in (store / "text").rglob("*.txt")}
    second = run_demo(cwd, "--store", str(store))
    yield Runs(store, first, second, texts)


def reports(store: Path) -> dict[str, list[dict[str, Any]]]:
    """Each site's crawl reports, oldest first."""
    out: dict[str, list[dict[str, Any]]] = {}
    for site in SITES:
        found = [json.loads(p.read_text()) for p in (store / "reports" / site).glob("*.json")]
        out[site] = sorted(found, key=lambda r: r["started"])
    return out


def test_first_run_archives_all_five_sites(runs: Runs) -> None:
    assert runs.first.returncode == 0, runs.first.stdout[-3000:] + runs.first.stderr[-3000:]
    for site in SITES:
        line = next(x for x in runs.first.stdout.splitlines() if x.startswith(f"{site} "))
        assert " ok " in line, line
    for site, (first, *_rest) in reports(runs.store).items():
        assert first["articles"]["new"] >= 3, site
        assert first["articles"]["failed"] == 0, (site, first["failures"]["urls"])


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_every_sample_text_is_exact_and_its_sidecar_has_the_metadata(
    runs: Runs, sample: str
) -> None:
    assert data_dir().is_dir()
    want = expected_text(sample)
    site, fields = SAMPLES[sample]
    matches = [p for p in (runs.store / "text" / site).rglob("*.txt") if p.read_bytes() == want]
    assert len(matches) == 1, f"{sample}: {len(matches)} identical texts under text/{site}/"
    sidecar = json.loads(matches[0].with_suffix(".json").read_text())
    assert sidecar["site"] == site
    for name, value in fields.items():
        assert sidecar[name] == value, (sample, name)
    if sample in PUBLISHED_DAY:
        assert sidecar["published"].startswith(PUBLISHED_DAY[sample])
    assert sidecar["warc"]["record_type"] == "response"
    assert sidecar["version"] == 1


def test_irna_photo_caption_is_metadata_not_body(runs: Runs) -> None:
    want = expected_text("001_89df22862bce6eb6.txt")
    [text] = [p for p in (runs.store / "text" / "irna").rglob("*.txt") if p.read_bytes() == want]
    sidecar = json.loads(text.with_suffix(".json").read_text())
    captions = [i["caption"] for i in sidecar["images"] if i.get("caption")]
    assert captions
    assert all(c.encode() not in want for c in captions)


def test_second_run_adds_nothing_and_fetches_no_article(runs: Runs) -> None:
    assert runs.second.returncode == 0, runs.second.stdout[-3000:] + runs.second.stderr[-3000:]
    texts = {p.relative_to(runs.store).as_posix() for p in (runs.store / "text").rglob("*.txt")}
    assert texts == runs.texts_after_first
    for site, found in reports(runs.store).items():
        assert len(found) == 2, site
        first, second = found
        assert second["articles"]["new"] == 0, site
        assert second["skipped"].get("already-archived", 0) == first["articles"]["new"], site
        # No article page in the second run's WARCs: feeds, sitemaps, listings, robots only.
        article_urls = set()
        for sidecar in (runs.store / "text" / site).rglob("*.json"):
            data = json.loads(sidecar.read_text())
            article_urls |= {data["url"], data["request_url"]}
        for key in second["warc"]["files"]:
            with (runs.store / key).open("rb") as fh:
                for rec in ArchiveIterator(fh):
                    if rec.rec_type in ("response", "revisit"):
                        uri = rec.rec_headers.get_header("WARC-Target-URI")
                        assert uri not in article_urls, (site, uri)
