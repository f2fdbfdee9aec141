"""A crawl's object list on disk, and the scratch folder a crawl killed in its crawl-end step
leaves in the spool: removed by the next crawl, never while its crawl lives (issue 22).

The killed crawl is a real process (the crawl-end step of bench/scale's synthetic crawl, which
SIGKILLs itself once its record table is linked); the live one is another real process that
holds its scratch folder as a crawl does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.scale import CRAWL_ID, build, crawl_end
from crawler.crawl.config import LedgerConfig
from crawler.crawl.ledger import CrawlLedger, manifest_json
from crawler.store.base import LocalStore, StoredObject
from crawler.store.scratch import (
    CrawlScratch,
    ObjectLog,
    clean_dead_scratch,
    scratch_root,
)
from crawler.store.spool import drain_backlog
from crawler.util import json_bytes

ROOT = Path(__file__).resolve().parents[1]

# The crawl-end step of the synthetic crawl in argv[1], killed (SIGKILL) by its own hand once
# its scratch SQLite holds every record and its CDXJ runs are written.
_KILLED_IN_CRAWL_END = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from crawler.access.scratch import RecordTable
    from bench.scale import crawl_end

    def link(self):
        os.kill(os.getpid(), signal.SIGKILL)

    RecordTable.link = link
    crawl_end(Path(sys.argv[1]), 7)._close_blocking("finished")
    """
)

# A crawl that holds its scratch folder (argv[1] the spool, argv[2] its id) until told to stop.
_LIVE_CRAWL = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from crawler.store.scratch import CrawlScratch

    folder = CrawlScratch(Path(sys.argv[1]), sys.argv[2]).open()
    (folder / "objects.jsonl").write_text("[]\\n")
    print("holding", flush=True)
    sys.stdin.read()
    """
)


def _python(code: str, *args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        text=True,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_the_object_list_reads_back_in_order_what_was_listed_when_read(tmp_path: Path) -> None:
    scratch = CrawlScratch(tmp_path, "c-1")
    log = ObjectLog(lambda: scratch)
    assert len(log) == 0 and list(log) == [] and not (tmp_path / ".scratch").exists()
    written = [StoredObject(f"text/s/{n}é.txt", n, f"{n:064x}") for n in range(5)]
    for n, obj in enumerate(written):
        log.append(obj, pending=n == 3)
    reading = log.entries()
    first = next(reading)
    log.append(StoredObject("late", 1, "0" * 64))  # after the reading began: not in it
    assert [first, *reading] == [(o, n == 3) for n, o in enumerate(written)]
    assert list(log)[-1].key == "late" and len(log) == 6
    on_disk = tmp_path / ".scratch" / "c-1" / "objects.jsonl"
    assert len(on_disk.read_text(encoding="utf-8").splitlines()) == 6
    log.close()
    assert len(log) == 6
    with pytest.raises(ValueError, match="closed"):
        log.append(StoredObject("after", 1, "0" * 64))
    scratch.remove()
    assert not on_disk.parent.exists()


def test_a_list_the_disk_refuses_is_kept_in_memory_whole(tmp_path: Path) -> None:
    blocker = tmp_path / "spool"
    blocker.write_text("a file where the spool should be\n")
    log = ObjectLog(lambda: CrawlScratch(blocker, "c-3"))
    written = [StoredObject(f"k/{n}", n, "cd" * 32) for n in range(600)]
    for obj in written:
        log.append(obj)  # the 256th cannot be written: no error, kept
    assert list(log) == written and len(log) == 600
    log.close()


def test_the_manifest_read_from_the_list_is_the_json_of_the_list(tmp_path: Path) -> None:
    head = {"crawl_id": "c-2", "site": "s"}
    report = {"notes": ["a"], "upload": {"pending": 0}}
    for n in (0, 1, 3):
        scratch = CrawlScratch(tmp_path, f"m-{n}")
        log = ObjectLog(lambda scratch=scratch: scratch)  # type: ignore[misc]
        objects = [StoredObject(f"k/{i}", i, "ab" * 32) for i in range(n)]
        for obj in objects:
            log.append(obj)
        text = "".join(manifest_json(head, log, report))
        expected = {**head, "objects": [_item(o) for o in objects]}
        assert text.encode() == json_bytes({**expected, "report": report})
        log.close()
        scratch.remove()


def _item(obj: StoredObject) -> dict[str, object]:
    return {"key": obj.key, "size": obj.size, "sha256": obj.sha256}


def test_a_folder_held_in_this_process_is_not_a_dead_crawls(tmp_path: Path) -> None:
    live = CrawlScratch(tmp_path, "live")
    folder = live.open()
    (folder / "objects.jsonl").write_text("x")
    dead = scratch_root(tmp_path) / "dead"
    (dead / "index").mkdir(parents=True)  # no lock file at all: nobody holds it
    (dead / "index" / "records.sqlite").write_bytes(b"x")
    assert clean_dead_scratch(tmp_path) == [dead]
    assert (folder / "objects.jsonl").read_text() == "x" and not dead.exists()
    live.remove()
    assert not folder.exists()
    assert clean_dead_scratch(tmp_path) == []


def test_a_crawl_killed_in_its_crawl_end_leaves_a_folder_the_next_crawl_removes(
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    build(work, 40, per_warc=20)
    spool = work / "spool"
    killed = _python(_KILLED_IN_CRAWL_END, str(work))
    _out, err = killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL, err[-2000:]
    left = scratch_root(spool) / CRAWL_ID
    # Its object list, its record table and its sorted CDXJ runs.
    names = {p.name for p in left.rglob("*") if p.is_file()}
    assert {"objects.jsonl", "records.sqlite", ".lock"} <= names, names
    # Every object the synthetic crawl wrote (what it listed after them may still have been
    # in the file's buffer: the list is scratch, rebuilt by no one).
    listed = [json.loads(line)[0] for line in (work / "objects.jsonl").read_text().splitlines()]
    on_disk = [json.loads(line)[0] for line in (left / "objects.jsonl").read_text().splitlines()]
    assert on_disk[: len(listed)] == listed

    # Another crawl on the same spool, alive, in another process.
    live = _python(_LIVE_CRAWL, str(spool), "other-crawl", stdin=subprocess.PIPE)
    try:
        assert live.stdout is not None and live.stdout.readline() == "holding\n"
        held = scratch_root(spool) / "other-crawl"

        # The next crawl on the spool: its start cleans the spool.
        from scrapy import Spider

        store = LocalStore(work / "store")
        nxt = CrawlLedger(LedgerConfig(store.uri, spool, "bench-next", report=True), store)
        nxt.spider_opened(Spider("bench"))
        assert not left.exists(), "the dead crawl's scratch is gone"
        assert (held / "objects.jsonl").read_text() == "[]\n", "the live one's is not touched"
        nxt._close_blocking("finished")
        assert not (scratch_root(spool) / "bench-next").exists()

        # The killed crawl-end, run again, ends as crawls do.
        ledger = crawl_end(work, 7)
        ledger._close_blocking("finished")
        assert ledger.report is not None and not ledger.report["notes"]
        manifest = json.loads(store.get_bytes(f"manifests/bench/{CRAWL_ID}.json"))
        assert len(manifest["objects"]) == len(ledger.objects) == len(listed) + 2 + 3

        # The backlog drain (``newsarchive upload``) leaves the live one alone too ...
        drain_backlog(store, spool)
        assert held.is_dir()
    finally:
        live.communicate(timeout=30)  # its stdin closed: it ends
    # ... and removes it once its crawl is dead.
    drain_backlog(store, spool)
    assert not held.exists()
    assert not [p for p in spool.rglob("*") if p.is_file()]


def test_a_killed_crawls_folder_is_removed_even_when_its_lock_file_is_gone(
    tmp_path: Path,
) -> None:
    """A folder whose lock file was never made (killed between mkdir and open)."""
    leftover = scratch_root(tmp_path) / "half"
    leftover.mkdir(parents=True)
    assert clean_dead_scratch(tmp_path) == [leftover]
    assert os.listdir(scratch_root(tmp_path)) == []
