"""Integrity on the way out: corrupt records refused by get/export and named by verify, links
out of a local store refused, ranges outside an object refused, outputs kept."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.store.base import LocalStore, StoreError

ROOT = Path(__file__).resolve().parents[1]
ARTICLE = "tdi:world-polio-day-2023"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crawler.ops.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )


@pytest.fixture
def store(demo_all_store: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(demo_all_store, copy, symlinks=True)
    return copy


def capture_of(store: Path) -> dict[str, object]:
    done = cli("get", ARTICLE, "--as", "json", "--store", str(store), cwd=store.parent)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout)["capture"])


def test_a_flipped_byte_is_refused_by_get_counted_by_export_named_by_verify(store: Path) -> None:
    capture = capture_of(store)
    key = str(capture["warc_key"])
    path = store / key
    data = bytearray(path.read_bytes())
    data[int(str(capture["warc_offset"])) + int(str(capture["warc_length"])) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    out = store.parent / "one.warc.gz"

    got = cli(
        "get", ARTICLE, "--as", "warc", "-o", str(out), "--store", str(store), cwd=store.parent
    )
    assert got.returncode == 1
    assert str(capture["record_id"]) in got.stderr and key in got.stderr
    assert "Traceback" not in got.stderr and not out.exists()

    dest = store.parent / "tdi.warc.gz"
    exp = cli("export", "--site", "tdi", str(dest), "--store", str(store), cwd=store.parent)
    assert exp.returncode == 1, exp.stdout + exp.stderr
    assert "1 corrupt, skipped" in exp.stdout
    assert str(capture["record_id"]) in exp.stderr

    ver = cli("verify", "--store", str(store), cwd=store.parent)
    assert ver.returncode == 1
    assert f"record: {key}" in ver.stdout and f"sha256: {key}" in ver.stdout
    assert "1 objects corrupt or missing" in ver.stdout


def test_verify_names_a_deleted_object_and_passes_an_intact_store(store: Path) -> None:
    ok = cli("verify", "--store", str(store), "--site", "tdi", cwd=store.parent)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "all intact" in ok.stdout
    manifest = next((store / "manifests" / "tdi").glob("*.json"))
    gone = next(o["key"] for o in json.loads(manifest.read_text())["objects"] if "text" in o["key"])
    (store / gone).unlink()
    bad = cli("verify", "--store", str(store), cwd=store.parent)
    assert bad.returncode == 1
    assert f"missing: {gone}" in bad.stdout
    # reindex names it too (into a catalog of its own), and rebuilds the rest.
    again = cli(
        "reindex",
        "--store",
        str(store),
        "--quiet",
        "--catalog",
        f"sqlite:///{store.parent / 'other.sqlite'}",
        cwd=store.parent,
    )
    assert again.returncode == 0, again.stderr
    assert f"missing: {gone} (listed by manifests/tdi/" in again.stderr
    assert "1 objects the manifests list are not in the store" in again.stdout


def test_a_link_out_of_the_store_is_refused(store: Path) -> None:
    text = store / next(
        o["key"]
        for m in (store / "manifests" / "tdi").glob("*.json")
        for o in json.loads(m.read_text())["objects"]
        if o["key"].endswith("world-polio-day-2023.txt")
    )
    text.unlink()
    text.symlink_to("/etc/passwd")
    got = cli("get", ARTICLE, "--as", "text", "--store", str(store), cwd=store.parent)
    assert got.returncode == 1
    assert "root:" not in got.stdout
    assert "leads out of the store" in got.stderr
    local = LocalStore(store)
    key = text.relative_to(store).as_posix()
    with pytest.raises(StoreError):
        local.get_bytes(key)
    assert key not in set(local.list("text/"))


def test_a_range_outside_the_object_is_an_error(tmp_path: Path) -> None:
    local = LocalStore(tmp_path)
    local.put_bytes("a/b.bin", b"0123456789")
    assert local.get_range("a/b.bin", 2, 3) == b"234"
    for offset, length in ((0, -1), (-1, 2), (5, 6)):
        with pytest.raises(StoreError):
            local.get_range("a/b.bin", offset, length)


def test_an_existing_output_is_kept_without_force(store: Path) -> None:
    dest = store.parent / "kept.jsonl"
    dest.write_text("mine\n")
    exp = cli("export", "--site", "tdi", str(dest), "--store", str(store), cwd=store.parent)
    assert exp.returncode == 2 and "Traceback" not in exp.stderr
    assert dest.read_text() == "mine\n"
