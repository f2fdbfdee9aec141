"""LocalStore.put_bytes keeps its promises with the directories it remembers as checked."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from crawler.store.base import LocalStore, StoreConflictError, StoreError


def test_same_bytes_again_pass_and_other_bytes_conflict(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    store.put_bytes("text/a/1.txt", b"one")
    store.put_bytes("text/a/1.txt", b"one")
    with pytest.raises(StoreConflictError):
        store.put_bytes("text/a/1.txt", b"two")
    assert store.get_bytes("text/a/1.txt") == b"one"
    assert sorted(p.name for p in (tmp_path / "s" / "text" / "a").iterdir()) == ["1.txt"]


def test_a_remembered_directory_swapped_for_a_link_out_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store = LocalStore(tmp_path / "s")
    store.put_bytes("text/a/1.txt", b"one")  # text/a is now remembered as checked
    shutil.rmtree(tmp_path / "s" / "text" / "a")
    (tmp_path / "s" / "text" / "a").symlink_to(outside)
    with pytest.raises(StoreError, match="leads out of the store"):
        store.put_bytes("text/a/2.txt", b"two")
    shutil.rmtree(tmp_path / "s" / "text")
    (tmp_path / "s" / "text").symlink_to(outside)  # a directory higher up
    outside.joinpath("a").mkdir()
    with pytest.raises(StoreError, match="leads out of the store"):
        store.put_bytes("text/a/3.txt", b"three")
    assert list(outside.rglob("*")) == [outside / "a"]


def test_a_key_that_is_a_link_out_is_neither_replaced_nor_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"secret")
    store = LocalStore(tmp_path / "s")
    store.put_bytes("text/a/1.txt", b"one")
    (tmp_path / "s" / "text" / "a" / "2.txt").symlink_to(secret)
    with pytest.raises(StoreError, match="leads out of the store"):
        store.put_bytes("text/a/2.txt", b"secret")
    assert secret.read_bytes() == b"secret"
    (tmp_path / "s" / "text" / "a" / "3.txt").symlink_to(tmp_path / "s" / "gone")
    with pytest.raises(StoreError, match="dangling"):
        store.put_bytes("text/a/3.txt", b"three")


def test_a_removed_directory_is_made_again(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    store.put_bytes("text/a/1.txt", b"one")
    shutil.rmtree(tmp_path / "s" / "text")
    store.put_bytes("text/a/2.txt", b"two")
    assert store.get_bytes("text/a/2.txt") == b"two"
    assert list(store.list()) == ["text/a/2.txt"]


def test_a_link_to_a_directory_inside_the_store_is_followed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    store.put_bytes("real/1.txt", b"one")
    os.symlink(tmp_path / "s" / "real", tmp_path / "s" / "alias")
    store.put_bytes("alias/2.txt", b"two")
    store.put_bytes("alias/3.txt", b"three")
    assert (tmp_path / "s" / "real" / "3.txt").read_bytes() == b"three"
    assert not [p for p in (tmp_path / "s").rglob(".*")]  # no temporary file left


def test_put_file_keeps_put_bytes_promises(tmp_path: Path) -> None:
    """Moved or copied, a file never replaces an object, and a dangling entry at its key is an
    error (it once recursed without end when moved, and raised FileNotFoundError copied)."""
    store = LocalStore(tmp_path / "s")
    source = tmp_path / "one"
    for move in (False, True):
        source.write_bytes(b"one")
        store.put_file("text/a/1.txt", source, move=move)
        assert source.exists() is not move
    source.write_bytes(b"two")
    for move in (False, True):
        with pytest.raises(StoreConflictError):
            store.put_file("text/a/1.txt", source, move=move)
        assert source.read_bytes() == b"two", "a refused file stays where it was"
    assert store.get_bytes("text/a/1.txt") == b"one"
    (tmp_path / "s" / "text" / "a" / "3.txt").symlink_to(tmp_path / "s" / "gone")
    for move in (False, True):
        with pytest.raises(StoreError, match="dangling"):
            store.put_file("text/a/3.txt", source, move=move)
        assert source.read_bytes() == b"two"
    assert not [p for p in (tmp_path / "s").rglob(".*")]  # no temporary file left
