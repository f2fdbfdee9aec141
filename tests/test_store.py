"""The local store: atomic writes, verification, key safety, listing, ranges."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from crawler.layout import safe_key_part
from crawler.store.base import LocalStore, StoreError, check_key
from crawler.store.uri import open_store


def test_put_bytes_and_read_back(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    obj = store.put_bytes("text/tdi/2025/06/11/a.txt", b"hello\n")
    assert obj.size == 6
    assert obj.sha256 == hashlib.sha256(b"hello\n").hexdigest()
    assert store.get_bytes("text/tdi/2025/06/11/a.txt") == b"hello\n"
    assert store.get_range("text/tdi/2025/06/11/a.txt", 1, 3) == b"ell"
    assert store.exists("text/tdi/2025/06/11/a.txt")
    assert not store.exists("text/tdi/2025/06/11/b.txt")


def test_put_file_move_removes_source_and_verifies(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    src = tmp_path / "x.warc.gz"
    src.write_bytes(b"\x1f\x8b" + b"z" * 5000)
    obj = store.put_file("warc/tdi/2025/06/11/x.warc.gz", src, move=True)
    assert not src.exists()
    assert obj.size == 5002
    assert (tmp_path / "s/warc/tdi/2025/06/11/x.warc.gz").read_bytes()[:2] == b"\x1f\x8b"


def test_put_file_copy_keeps_source(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    src = tmp_path / "y"
    src.write_bytes(b"abc")
    store.put_file("a/y", src)
    assert src.exists()
    assert store.get_bytes("a/y") == b"abc"


def test_list_skips_hidden_spool_and_temp_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("b/2.txt", b"2")
    store.put_bytes("a/1.txt", b"1")
    (tmp_path / ".spool").mkdir()
    (tmp_path / ".spool" / "open.warc.gz.open").write_bytes(b"x")
    (tmp_path / "a" / ".1.txt.tmp").write_bytes(b"x")
    assert list(store.list()) == ["a/1.txt", "b/2.txt"]
    assert list(store.list("b/")) == ["b/2.txt"]


@pytest.mark.parametrize(
    "key",
    ["", "/abs", "../up", "a/../../b", "a//b", "a/./b", "a\\b", "a/"],
)
def test_keys_cannot_escape_the_store(key: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        check_key(key)
    with pytest.raises(StoreError):
        LocalStore(tmp_path).put_bytes(key, b"x")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("iranian-fm-discusses-gaza", "iranian-fm-discusses-gaza"),
        ("../../etc/passwd", "etc-passwd"),
        ("a%2Fb", "a-b"),
        ("..", "_"),
        ("22nd-Ramadan-Lecture%2C-by", "22nd-Ramadan-Lecture--by"),
    ],
)
def test_safe_key_part(raw: str, expected: str) -> None:
    assert safe_key_part(raw) == expected


def test_open_store_uris(tmp_path: Path) -> None:
    assert open_store(str(tmp_path)).root == tmp_path.resolve()
    assert open_store(tmp_path.as_uri()).root == tmp_path.resolve()
    with pytest.raises(StoreError, match="unsupported store URI scheme"):
        open_store("ftp://example/x")
    with pytest.raises(StoreError, match="no store given"):
        open_store("")


def test_unwritable_store_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="not writable"):
        LocalStore(blocker / "sub").check_writable()
