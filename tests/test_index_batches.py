"""The crawl-end indexes are built in bounded batches, and batches change nothing in them.

One synthetic crawl (bench/scale.py: the project's own record builder, a local store and its
SQLite catalog; 60 article pages over three WARC files, some article records in the file after
their response's, one page in ten an unchanged article whose original is an earlier crawl's)
is closed twice: once 7 captures at a time, once in one batch. The CDXJ files, the catalog's
record locations and the package's index and pages are the same bytes; the capture table has
the same rows, in one row group against nine.
"""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import zipfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from bench.scale import build, crawl_end
from crawler.access.scratch import SortedLines
from tests.conftest import SeaweedFS

CAPTURES = 60


def _closed(base: Path, work: Path, batch: int) -> Path:
    shutil.copytree(base, work)
    ledger = crawl_end(work, batch)
    ledger._close_blocking("finished")
    assert ledger.report is not None and not ledger.report["notes"]
    return work / "store"


@pytest.fixture(scope="module")
def closed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("crawl") / "base"
    build(base, CAPTURES, per_warc=25)
    root = tmp_path_factory.mktemp("closed")
    return {
        "base": base,
        "small": _closed(base, root / "small", 7),
        "one": _closed(base, root / "one", 10_000),
    }


def test_a_crawl_in_an_s3_bucket_gets_the_same_indexes(
    closed: dict[str, Path], seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    """Texts, sidecars and WARCs read back from the bucket (ranged reads, many at once)."""
    from crawler.store.uri import open_store

    work = tmp_path / "s3"
    shutil.copytree(closed["base"], work)
    local = work / "store"
    store = open_store(f"s3://{seaweedfs.new_bucket()}/archive", seaweedfs.options())
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        if not path.name.startswith("."):  # the catalog is no object
            store.put_file(str(path.relative_to(local)), path)
    ledger = crawl_end(work, 7, store)
    ledger._close_blocking("finished")
    assert ledger.report is not None and not ledger.report["notes"]
    one = closed["one"]
    (parquet,) = one.glob("index/**/*.parquet")
    rows = pq.read_table(io.BytesIO(store.get_bytes(str(parquet.relative_to(one))))).to_pylist()
    assert rows == pq.read_table(parquet).to_pylist()
    for key, data in _files(one, "index/**/*.cdxj").items():
        assert store.get_bytes(key) == data
    (wacz,) = one.glob("wacz/**/*.wacz")
    package = zipfile.ZipFile(io.BytesIO(store.get_bytes(str(wacz.relative_to(one)))))
    for name in ("indexes/index.cdx", "pages/pages.jsonl"):
        assert package.read(name) == _wacz(one).read(name)


def _files(store: Path, pattern: str) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.glob(pattern))}


def _wacz(store: Path) -> zipfile.ZipFile:
    (path,) = store.glob("wacz/**/*.wacz")
    return zipfile.ZipFile(path)


def _linked(store: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(store / ".catalog.sqlite") as db:
        return sorted(db.execute("SELECT * FROM capture_records").fetchall())


def test_batches_give_the_capture_table_row_groups_and_the_same_rows(
    closed: dict[str, Path],
) -> None:
    (small,) = closed["small"].glob("index/**/*.parquet")
    (one,) = closed["one"].glob("index/**/*.parquet")
    assert pq.ParquetFile(small).num_row_groups == 9  # 60 captures, 7 at a time
    assert pq.ParquetFile(one).num_row_groups == 1
    rows = pq.read_table(small).to_pylist()
    assert rows == pq.read_table(one).to_pylist()
    assert len(rows) == CAPTURES
    # Every capture has its text: a new article its own, an unchanged one the earlier crawl's.
    assert all(r["text"] and r["title"] for r in rows)
    revisits = [r for r in rows if r["record_type"] == "revisit"]
    assert len(revisits) == CAPTURES // 10
    assert all(r["version"] == 1 and r["text_key"].startswith("text/") for r in revisits)
    # Each new article's request, conversion and metadata records, one WARC or the next.
    new = [r for r in rows if r["record_type"] == "response"]
    assert {tuple(sorted(x["record_type"] for x in r["records"])) for r in new} == {
        ("conversion", "metadata", "request")
    }
    assert any(r["warc_key"] != x["warc_key"] for r in new for x in r["records"])


def test_batches_give_the_same_cdxj_record_locations_and_package(
    closed: dict[str, Path],
) -> None:
    small, one = closed["small"], closed["one"]
    cdxj = _files(small, "index/**/*.cdxj")
    assert len(cdxj) == 3
    assert cdxj == _files(one, "index/**/*.cdxj")
    for data in cdxj.values():  # each sorted, though 7 lines at most were sorted at once
        lines = data.decode().splitlines()
        assert len(lines) > 7 and lines == sorted(lines)
    assert _linked(small) == _linked(one)
    assert len(_linked(small)) == 3 * (CAPTURES - CAPTURES // 10) + CAPTURES // 10
    a, b = _wacz(small), _wacz(one)
    assert a.namelist() == b.namelist()
    assert any(n.endswith("-originals.warc.gz") for n in a.namelist())
    for name in a.namelist():
        if not name.startswith("datapackage"):
            assert a.read(name) == b.read(name), name
    index = a.read("indexes/index.cdx").decode().splitlines()
    assert index == sorted(index)
    assert sum(1 for line in index if '"originals/' in line or "-originals.warc.gz" in line) == (
        CAPTURES // 10
    )
    pages = [json.loads(x) for x in io.BytesIO(a.read("pages/pages.jsonl"))]
    assert pages[0]["format"] == "json-pages-1.0"
    assert len(pages) == 1 + CAPTURES and all(p["text"] for p in pages[1:])


def test_the_manifest_written_object_by_object_is_the_json_of_all_of_them(
    closed: dict[str, Path],
) -> None:
    from crawler.util import json_bytes

    (path,) = closed["small"].glob("manifests/**/*.json")
    data = path.read_bytes()
    manifest = json.loads(data)
    assert json_bytes(manifest) == data  # the archive's JSON, byte for byte
    listed = {o["key"] for o in manifest["objects"]}
    # WARCs and their CDXJ, texts and sidecars, the Parquet table, the WACZ, the report
    assert len(listed) == len(manifest["objects"]) == 3 + 3 + 2 * 54 + 3
    assert {k.split("/")[0] for k in listed} == {"warc", "text", "index", "wacz", "reports"}
    assert manifest["report"]["crawl_id"] == manifest["crawl_id"]


def test_the_scratch_files_are_gone(closed: dict[str, Path]) -> None:
    for store in (closed["small"], closed["one"]):
        spool = store.parent / "spool"
        assert spool.is_dir()
        assert not [p for p in spool.rglob("*") if p.is_file()]


def test_sorted_lines_in_runs_sort_as_sorted_does(tmp_path: Path) -> None:
    import random

    rng = random.Random(5)
    lines = [f"{rng.choice('abc')}{rng.randint(0, 999)} {i}\n" for i in range(100)]
    runs = SortedLines(tmp_path, 9)
    for line in lines:
        runs.add(line)
    assert len(list(tmp_path.iterdir())) == 11  # 100 lines, 9 in memory at most
    out = io.StringIO()
    runs.write_to(out)
    runs.close()
    assert out.getvalue() == "".join(sorted(lines))
    assert not list(tmp_path.iterdir())
