"""The rolling WARC writer: naming, .open files, rollover, groups, callbacks, errors."""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import itertools
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.cli import main as warcio_main

from crawler.capture import writer as warc_writer
from crawler.capture.records import (
    RecordBuilder,
    WarcRecord,
    build_request_head,
    build_response_head,
)
from crawler.capture.writer import RecordLocation, WarcFileWriter, WarcWriteError

REPO = Path(__file__).resolve().parents[1]
START = datetime(2026, 11, 23, 13, 16, 36, tzinfo=UTC)


class FakeTime:
    """Wall clock and monotonic clock moved by the test."""

    def __init__(self) -> None:
        self.now = START
        self.mono = 1000.0

    def clock(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def exchange(builder: RecordBuilder, n: int, payload: bytes | None = None) -> list[WarcRecord]:
    url = f"https://thediplomaticinsight.com/news/{n}?page=1"
    body = payload if payload is not None else f"<html><body>article {n}</body></html>".encode()
    response = builder.response(
        target_uri=url,
        http_head=build_response_head(
            "HTTP/1.1", 200, "OK", [(b"Content-Type", b"text/html")], len(body)
        ),
        payload=body,
        date=None,
    )
    request = builder.request(
        target_uri=url,
        http_head=build_request_head("GET", url, [(b"Accept", b"*/*")]),
        date=None,
        concurrent_to=response.record_id,
    )
    return [request, response]


def read_records(path: Path) -> list[tuple[str, dict[str, str], bytes]]:
    out = []
    with path.open("rb") as stream:
        for rec in ArchiveIterator(stream, no_record_parse=True):
            out.append((rec.rec_type, dict(rec.rec_headers.headers), rec.raw_stream.read()))
    return out


def with_warcinfo_id(data: bytes, warcinfo_id: str) -> bytes:
    """A record as built, with the line the writer adds: WARC-Warcinfo-ID after WARC-Date."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[3].startswith(b"WARC-Date: ")
    lines.insert(4, b"WARC-Warcinfo-ID: " + warcinfo_id.encode())
    return b"\r\n".join(lines) + sep + rest


def warcio_check(path: Path) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        warcio_main(["check", "-v", str(path)])
    return int(exited.value.code or 0), out.getvalue()


def member_at(path: Path, location: RecordLocation) -> bytes:
    """Decompress exactly the member a RecordLocation points at (and nothing more)."""
    with path.open("rb") as stream:
        stream.seek(location.offset)
        member = stream.read(location.length)
    inflater = zlib.decompressobj(31)
    data = inflater.decompress(member)
    assert inflater.eof and not inflater.unused_data
    return data


def test_naming_open_suffix_warcinfo_and_rename(tmp_path: Path, fake_time: FakeTime) -> None:
    builder = RecordBuilder(clock=fake_time.clock)
    writer = WarcFileWriter(
        tmp_path / "spool",
        prefix="tdi",
        hostname="crawler_01.example!",
        builder=builder,
        warcinfo_fields={"software": "newsarchive/0.1.0", "isPartOf": ["tdi", "crawl-7"]},
        clock=fake_time.clock,
        monotonic=fake_time.monotonic,
    )
    group = exchange(builder, 1)
    locations = writer.write_sync(group)

    name = "tdi-20261123131636-00000-crawler-01.example-.warc.gz"
    assert writer.current_path == tmp_path / "spool" / f"{name}.open"
    assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == [f"{name}.open"]
    assert [loc.filename for loc in locations] == [name, name]
    assert [loc.record_id for loc in locations] == [r.record_id for r in group]

    assert writer.close() == [tmp_path / "spool" / name]
    assert writer.current_path is None
    assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == [name]

    path = tmp_path / "spool" / name
    records = read_records(path)
    assert [r[0] for r in records] == ["warcinfo", "request", "response"]
    info_headers, info_block = records[0][1], records[0][2]
    assert info_headers["WARC-Filename"] == name
    assert info_headers["WARC-Date"] == "2026-11-23T13:16:36Z"
    assert info_block == (
        b"software: newsarchive/0.1.0\r\n"
        b"isPartOf: tdi\r\n"
        b"isPartOf: crawl-7\r\n"
        b"format: WARC File Format 1.1\r\n"
        b"conformsTo: https://iipc.github.io/warc-specifications/specifications/"
        b"warc-format/warc-1.1/\r\n"
    )
    info_id = info_headers["WARC-Record-ID"]
    assert "WARC-Warcinfo-ID" not in info_headers
    for location, record in zip(locations, group, strict=True):
        # The record as built, plus the id of its file's warcinfo, put in by the writer.
        assert member_at(path, location) == with_warcinfo_id(record.data, info_id)
    assert [r[1]["WARC-Warcinfo-ID"] for r in records[1:]] == [info_id, info_id]
    assert warcio_check(path)[0] == 0


def test_writer_that_wrote_nothing_creates_nothing(tmp_path: Path) -> None:
    writer = WarcFileWriter(tmp_path / "spool", prefix="tdi", hostname="h")
    writer.flush()
    assert writer.close() == []
    assert not (tmp_path / "spool").exists()
    assert writer.close() == []
    assert not any(t.name == "warc-writer-tdi" for t in threading.enumerate())


def test_every_record_is_its_own_gzip_member_and_locations_are_exact(tmp_path: Path) -> None:
    builder = RecordBuilder()
    writer = WarcFileWriter(tmp_path, prefix="m", hostname="h", compress_level=1)
    groups = [exchange(builder, n) for n in range(5)]
    locations = [loc for group in groups for loc in writer.write_sync(group)]
    [path] = writer.close()

    data = path.read_bytes()
    offsets = []
    pos = 0
    while pos < len(data):
        inflater = zlib.decompressobj(31)
        inflater.decompress(data[pos:])
        assert inflater.eof
        offsets.append(pos)
        pos = len(data) - len(inflater.unused_data)
    # warcinfo, then each record in its own member, back to back in order.
    assert offsets[1:] == [loc.offset for loc in locations]
    assert [loc.offset + loc.length for loc in locations] == [*offsets[2:], len(data)]
    records = [r for group in groups for r in group]
    info_id = read_records(path)[0][1]["WARC-Record-ID"]
    for location, record in zip(locations, records, strict=True):
        assert member_at(path, location) == with_warcinfo_id(record.data, info_id)
    assert gzip.decompress(data).count(b"WARC/1.1\r\n") == 11


MIRROR_PAGE = (
    REPO
    / "crawler/mirror/sites/tdi"
    / "iranian-fm-discusses-gaza-with-hamas-and-islamic-jihad-leaders.html"
)


@pytest.mark.parametrize("level", [0, 1, 2, 3, 6, 9])
def test_every_level_writes_members_warcio_reads_and_checks(tmp_path: Path, level: int) -> None:
    # 1-3 deflate with ISA-L, the rest with zlib: the same gzip format, read by everyone.
    page = MIRROR_PAGE.read_bytes()
    builder = RecordBuilder()
    groups = [exchange(builder, n, page) for n in range(3)]
    writer = WarcFileWriter(tmp_path, prefix="lvl", hostname="h", compress_level=level)
    locations = [loc for group in groups for loc in writer.write_sync(group)]
    [path] = writer.close()

    code, report = warcio_check(path)
    assert code == 0, report
    records = [r for group in groups for r in group]
    info_id = read_records(path)[0][1]["WARC-Record-ID"]
    for location, record in zip(locations, records, strict=True):
        assert member_at(path, location) == with_warcinfo_id(record.data, info_id)
    response_record = groups[0][1]  # the page's response (its request is first)
    [response] = [loc for loc in locations if loc.record_id == response_record.record_id]
    member = with_warcinfo_id(response_record.data, info_id)
    if level == 0:
        assert response.length > len(member)  # stored, not deflated
    else:
        # ISA-L's levels 1-3 keep zlib's ratio at the same level (a few per cent).
        assert response.length <= 1.05 * len(gzip.compress(member, level))
        assert response.length < len(member) / 3


def test_rollover_by_size_keeps_groups_whole(tmp_path: Path, fake_time: FakeTime) -> None:
    builder = RecordBuilder(clock=fake_time.clock)
    closed: list[tuple[Path, str]] = []
    writer = WarcFileWriter(
        tmp_path,
        prefix="size",
        hostname="h",
        builder=builder,
        max_size=3000,
        clock=fake_time.clock,
        monotonic=fake_time.monotonic,
        on_close=lambda p: closed.append((p, threading.current_thread().name)),
    )
    payload = os.urandom(1500)  # incompressible: each group is ~2 KB on disk
    groups = [[*exchange(builder, n, payload), *exchange(builder, 100 + n)] for n in range(5)]
    futures = [writer.write(group) for group in groups]
    locations = [f.result(timeout=10) for f in futures]
    paths = writer.close()

    assert len(paths) >= 2
    assert [p.name for p in paths] == [
        f"size-20261123131636-{i:05d}-h.warc.gz" for i in range(len(paths))
    ]
    assert [p for p, _ in closed] == paths
    assert {thread for _, thread in closed} == {"warc-writer-size"}
    assert not list(tmp_path.glob("*.open"))
    # Rollover happens only between groups: each group's four records share one file.
    per_file: dict[str, list[str]] = {}
    for group, locs in zip(groups, locations, strict=True):
        assert len({loc.filename for loc in locs}) == 1
        for a, b in itertools.pairwise(locs):
            assert b.offset == a.offset + a.length
        per_file.setdefault(locs[0].filename, []).extend(r.record_id for r in group)
    for path in paths:
        records = read_records(path)
        assert records[0][0] == "warcinfo"
        assert records[0][1]["WARC-Filename"] == path.name
        assert [r[1]["WARC-Record-ID"] for r in records[1:]] == per_file[path.name]
        info_id = records[0][1]["WARC-Record-ID"]
        assert {r[1]["WARC-Warcinfo-ID"] for r in records[1:]} == {info_id}
        assert warcio_check(path)[0] == 0
    # A file is closed once it reached max_size, never before.
    assert all(p.stat().st_size >= 3000 for p in paths[:-1])
    last_group_start = {}
    for locs in locations:
        last_group_start[locs[0].filename] = locs[0].offset
    assert all(offset < 3000 for offset in last_group_start.values())


def test_rollover_by_age(tmp_path: Path, fake_time: FakeTime) -> None:
    builder = RecordBuilder(clock=fake_time.clock)
    writer = WarcFileWriter(
        tmp_path,
        prefix="age",
        hostname="h",
        builder=builder,
        max_age=60.0,
        clock=fake_time.clock,
        monotonic=fake_time.monotonic,
    )
    first = writer.write_sync(exchange(builder, 1))
    fake_time.advance(59.5)
    second = writer.write_sync(exchange(builder, 2))
    fake_time.advance(0.5)
    assert writer.closed_files == []
    third = writer.write_sync(exchange(builder, 3))
    assert [p.name for p in writer.closed_files] == ["age-20261123131636-00000-h.warc.gz"]
    fake_time.advance(61)
    fourth = writer.write_sync(exchange(builder, 4))
    paths = writer.close()

    assert first[0].filename == second[0].filename == "age-20261123131636-00000-h.warc.gz"
    assert third[0].filename == "age-20261123131736-00001-h.warc.gz"
    assert fourth[0].filename == "age-20261123131837-00002-h.warc.gz"
    assert [p.name for p in paths] == [
        "age-20261123131636-00000-h.warc.gz",
        "age-20261123131736-00001-h.warc.gz",
        "age-20261123131837-00002-h.warc.gz",
    ]
    assert [len(read_records(p)) for p in paths] == [5, 3, 3]


def test_no_age_limit(tmp_path: Path, fake_time: FakeTime) -> None:
    writer = WarcFileWriter(
        tmp_path, prefix="noage", hostname="h", max_age=None, monotonic=fake_time.monotonic
    )
    builder = RecordBuilder()
    writer.write_sync(exchange(builder, 1))
    fake_time.advance(10 * 86400)
    writer.write_sync(exchange(builder, 2))
    assert len(writer.close()) == 1


def test_existing_names_are_never_overwritten(tmp_path: Path, fake_time: FakeTime) -> None:
    taken = tmp_path / "tdi-20261123131636-00000-h.warc.gz"
    taken.write_bytes(b"someone else's")
    (tmp_path / "tdi-20261123131636-00001-h.warc.gz.open").write_bytes(b"a crashed run's")
    writer = WarcFileWriter(tmp_path, prefix="tdi", hostname="h", clock=fake_time.clock)
    [location] = writer.write_sync(exchange(RecordBuilder(), 1)[:1])
    assert location.filename == "tdi-20261123131636-00002-h.warc.gz"
    writer.close()
    assert taken.read_bytes() == b"someone else's"


def test_groups_from_many_threads_stay_contiguous(tmp_path: Path) -> None:
    builder = RecordBuilder()
    writer = WarcFileWriter(tmp_path, prefix="mt", hostname="h", max_size=20_000)
    results: list[list[RecordLocation]] = []
    lock = threading.Lock()

    def produce(worker: int) -> None:
        for n in range(40):
            locations = writer.write(exchange(builder, worker * 1000 + n)).result(timeout=10)
            with lock:
                results.append(locations)

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    paths = writer.close()

    assert len(results) == 160
    assert len(paths) > 1
    total = 0
    for path in paths:
        records = read_records(path)
        assert records[0][0] == "warcinfo"
        pairs = records[1:]
        assert len(pairs) % 2 == 0
        for request, response in zip(pairs[::2], pairs[1::2], strict=True):
            assert request[0] == "request" and response[0] == "response"
            assert request[1]["WARC-Concurrent-To"] == response[1]["WARC-Record-ID"]
            assert request[1]["WARC-Target-URI"] == response[1]["WARC-Target-URI"]
        total += len(pairs)
    assert total == 320


def test_order_of_queued_groups_is_preserved(tmp_path: Path) -> None:
    builder = RecordBuilder()
    writer = WarcFileWriter(tmp_path, prefix="order", hostname="h")
    groups = [exchange(builder, n) for n in range(50)]
    futures = [writer.write(group) for group in groups]
    writer.flush()
    assert all(f.done() for f in futures)
    offsets = [loc.offset for f in futures for loc in f.result()]
    assert offsets == sorted(offsets)
    [path] = writer.close()
    ids = [r[1]["WARC-Record-ID"] for r in read_records(path)[1:]]
    assert ids == [r.record_id for group in groups for r in group]


def test_on_close_failure_is_logged_and_the_file_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(path: Path) -> None:
        raise KeyError(path.name)

    writer = WarcFileWriter(tmp_path, prefix="cb", hostname="h", on_close=explode)
    writer.write_sync(exchange(RecordBuilder(), 1))
    with caplog.at_level(logging.ERROR, logger="crawler.capture.writer"):
        [path] = writer.close()
    assert path.exists() and path.name.endswith(".warc.gz")
    assert "on_close callback failed" in caplog.text


def test_write_after_close_is_refused(tmp_path: Path) -> None:
    writer = WarcFileWriter(tmp_path, prefix="c", hostname="h")
    writer.write_sync(exchange(RecordBuilder(), 1))
    paths = writer.close()
    assert writer.close() == paths
    refused = writer.write(exchange(RecordBuilder(), 2))
    assert isinstance(refused.exception(timeout=0), WarcWriteError)
    assert "closed" in str(refused.exception())
    with pytest.raises(WarcWriteError, match="closed"):
        writer.write_sync(exchange(RecordBuilder(), 3))
    assert writer.closed_files == paths


def test_close_from_another_thread_finishes_queued_work(tmp_path: Path) -> None:
    builder = RecordBuilder()
    writer = WarcFileWriter(tmp_path, prefix="bg", hostname="h")
    futures = [writer.write(exchange(builder, n, os.urandom(20_000))) for n in range(30)]
    closer: list[list[Path]] = []
    t = threading.Thread(target=lambda: closer.append(writer.close()))
    t.start()
    t.join(timeout=20)
    assert all(f.done() and f.exception() is None for f in futures)
    [[path]] = closer
    assert len(read_records(path)) == 61


class FailingFile:
    """A real file whose write() fails once the budget is spent: half written, then ENOSPC."""

    def __init__(self, inner: io.FileIO, budget: list[int]) -> None:
        self._inner = inner
        self._budget = budget

    def write(self, data: Any) -> int:
        view = memoryview(data)
        if self._budget[0] <= 0:
            half = len(view) // 2
            self._inner.write(view[:half])
            raise OSError(errno.ENOSPC, "No space left on device")
        self._budget[0] -= 1
        written = self._inner.write(view)
        assert written is not None
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
def failing_after(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    budget = [1_000_000]
    real_open = warc_writer._open_exclusive
    monkeypatch.setattr(
        warc_writer, "_open_exclusive", lambda path: FailingFile(real_open(path), budget)
    )
    yield budget


def test_failed_write_surfaces_and_the_file_is_cut_back(
    tmp_path: Path, failing_after: list[int]
) -> None:
    builder = RecordBuilder()
    writer = WarcFileWriter(tmp_path, prefix="full", hostname="h")
    good = [writer.write_sync(exchange(builder, n)) for n in range(3)]
    assert writer.current_path is not None
    size_before = writer.current_path.stat().st_size

    failing_after[0] = 0
    bad = writer.write(exchange(builder, 99, os.urandom(5000)))
    error = bad.exception(timeout=10)
    assert isinstance(error, WarcWriteError)
    assert error.errno == errno.ENOSPC
    assert isinstance(error.__cause__, OSError)
    # The half-written member is gone: the file ends with the last complete group.
    assert writer.current_path.stat().st_size == size_before

    # Later writes fail fast, without touching the file.
    later = writer.write(exchange(builder, 100))
    assert isinstance(later.exception(timeout=1), WarcWriteError)
    with pytest.raises(WarcWriteError, match="earlier error"):
        writer.write_sync(exchange(builder, 101))
    with pytest.raises(WarcWriteError):
        writer.flush()

    [path] = writer.close()
    status, report = warcio_check(path)
    assert status == 0, report
    ids = [r[1]["WARC-Record-ID"] for r in read_records(path)[1:]]
    assert ids == [loc.record_id for locs in good for loc in locs]


def test_failure_while_opening_a_file_surfaces(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    writer = WarcFileWriter(blocker / "spool", prefix="x", hostname="h")
    future = writer.write(exchange(RecordBuilder(), 1))
    error = future.exception(timeout=10)
    assert isinstance(error, WarcWriteError)
    assert "cannot open" in str(error)
    assert writer.close() == []


def test_a_real_short_write_at_the_file_size_limit(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes the kernel stop a write part-way (EFBIG), like a full disk."""
    script = f"""
import json, os, resource, signal, sys
from pathlib import Path
sys.path.insert(0, {str(REPO)!r})
from crawler.capture.records import RecordBuilder
from crawler.capture.writer import WarcFileWriter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
builder = RecordBuilder()
writer = WarcFileWriter(Path({str(tmp_path)!r}), prefix="limit", hostname="h")
written, error = [], None
for n in range(100):
    future = writer.write([builder.resource(
        target_uri=f"urn:test:{{n}}", content=os.urandom(7000), content_type="x/y")])
    exc = future.exception()
    if exc is not None:
        error = exc
        break
    written.extend(loc.record_id for loc in future.result())
size = writer.current_path.stat().st_size
later = writer.write([builder.resource(
    target_uri="urn:test:late", content=b"", content_type="x/y")]).exception()
paths = writer.close()
print(json.dumps({{"errno": getattr(error, "errno", None), "type": type(error).__name__,
    "later": type(later).__name__, "size": size, "written": written,
    "paths": [str(p) for p in paths]}}))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["type"] == "WarcWriteError"
    assert result["errno"] == errno.EFBIG
    assert result["later"] == "WarcWriteError"
    assert result["size"] <= 100_000
    [path] = [Path(p) for p in result["paths"]]
    assert path.stat().st_size == result["size"]
    assert warcio_check(path)[0] == 0
    ids = [r[1]["WARC-Record-ID"] for r in read_records(path)[1:]]
    assert ids == result["written"]
    assert len(ids) >= 10


def test_argument_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="prefix"):
        WarcFileWriter(tmp_path, prefix="../evil")
    with pytest.raises(ValueError, match="max_size"):
        WarcFileWriter(tmp_path, prefix="x", max_size=0)
    with pytest.raises(ValueError, match="max_age"):
        WarcFileWriter(tmp_path, prefix="x", max_age=0)
    with pytest.raises(ValueError, match="compress_level"):
        WarcFileWriter(tmp_path, prefix="x", compress_level=10)


def test_default_hostname_is_sanitised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "box_7/ü")
    writer = WarcFileWriter(tmp_path, prefix="x")
    [location] = writer.write_sync(exchange(RecordBuilder(), 1)[:1])
    writer.close()
    assert location.filename.endswith("-box-7--.warc.gz")


def test_a_writer_behind_makes_its_callers_wait_instead_of_queueing_without_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past max_queued bytes of records not yet written, write() waits for the writer thread
    (the crawl's downloads with it); the writer itself never waits for itself."""
    builder = RecordBuilder()
    groups = [exchange(builder, n) for n in range(3)]
    size = max(sum(len(r.data) for r in group) for group in groups)
    writer = WarcFileWriter(tmp_path, prefix="m", hostname="h", max_queued=size + 1)
    go = threading.Event()
    original = writer._write_group

    def slow(records: Any) -> list[RecordLocation]:
        assert go.wait(10)
        return original(records)

    monkeypatch.setattr(writer, "_write_group", slow)
    first = writer.write(groups[0])  # queued: the writer holds it until `go`
    second_done = threading.Event()
    futures: list[Any] = []

    def caller() -> None:
        futures.append(writer.write(groups[1]))
        second_done.set()

    thread = threading.Thread(target=caller)
    thread.start()
    assert not second_done.wait(0.5), "the second group was queued past max_queued"
    assert writer._queued == sum(len(r.data) for r in groups[0])
    go.set()
    assert second_done.wait(10)
    thread.join()
    # A write from the writer's own thread (a future's callback) is taken at once.
    third: list[Any] = []
    first.result(10)
    futures[0].add_done_callback(lambda _f: third.append(writer.write(groups[2])))
    futures[0].result(10)
    third[0].result(10)
    [path] = writer.close()
    assert len(read_records(path)) == 1 + sum(len(group) for group in groups)
    assert writer._queued == 0
