"""The spool's backlog list: order, re-listing, removal and its file, at any length."""

from __future__ import annotations

import json
from pathlib import Path

from crawler.store.base import StoredObject
from crawler.store.spool import Backlog


def obj(key: str, data: bytes = b"x") -> StoredObject:
    import hashlib

    return StoredObject(key, len(data), hashlib.sha256(data).hexdigest())


def test_a_key_listed_again_moves_last_and_is_listed_once(tmp_path: Path) -> None:
    backlog = Backlog(tmp_path, "tdi-1", "s3://b/news/")
    for key in ("text/a.txt", "text/b.txt", "manifests/m.json"):
        backlog.add_bytes(obj(key), b"x")
    backlog.add_bytes(obj("text/a.txt", b"again"), b"again")
    assert [e["key"] for e in backlog.entries] == ["text/b.txt", "manifests/m.json", "text/a.txt"]
    assert backlog.count == 3 and backlog.holds("text/a.txt") and not backlog.holds("text/c.txt")
    saved = json.loads(backlog.list_path.read_text(encoding="utf-8"))
    assert (saved["crawl_id"], saved["store"]) == ("tdi-1", "s3://b/news/")
    assert [e["key"] for e in saved["objects"]] == [e["key"] for e in backlog.entries]
    assert saved["objects"][-1]["size"] == 5
    loaded = Backlog.load(backlog.list_path)
    assert loaded.entries == backlog.entries
    backlog.unlock()


def test_discarded_keys_leave_the_list_and_the_last_one_the_backlog(tmp_path: Path) -> None:
    backlog = Backlog(tmp_path, "tdi-1", "s3://b/news/")
    keys = [f"text/{n}.txt" for n in range(5)]
    for key in keys:
        backlog.add_bytes(obj(key), b"x")
    for key in keys[:3]:
        backlog.path_of(key).unlink()  # uploaded: the drain removes the file, then the entry
        backlog.discard(key)
    backlog.flush()
    assert [e["key"] for e in Backlog.load(backlog.list_path).entries] == keys[3:]
    for key in keys[3:]:
        backlog.path_of(key).unlink()
        backlog.discard(key)
    backlog.flush()
    assert not backlog.list_path.exists() and not backlog.files.exists()
    backlog.unlock()


def test_unlisted_files_are_adopted_first_and_a_listed_key_keeps_one_entry(tmp_path: Path) -> None:
    killed = Backlog(tmp_path, "tdi-1", "s3://b/news/")
    killed.add_bytes(obj("text/listed.txt"), b"x")
    killed.write_aside("text/unlisted.txt", b"in flight")
    killed.flush()
    killed.unlock()
    again = Backlog.load(killed.list_path)
    assert again.adopt_unlisted() == 1
    assert [e["key"] for e in again.entries] == ["text/unlisted.txt", "text/listed.txt"]
    assert again.adopt_unlisted() == 0
    assert [e["key"] for e in Backlog.load(killed.list_path).entries] == [
        "text/unlisted.txt",
        "text/listed.txt",
    ]
