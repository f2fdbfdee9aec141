"""Recovery of .warc.gz.open files left by a killed crawl: cut to the last complete record."""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import os
import random
import signal
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.cli import main as warcio_main

from crawler.capture.records import (
    RecordBuilder,
    WarcRecord,
    build_request_head,
    build_response_head,
)
from crawler.capture.writer import RecoveryResult, WarcFileWriter, recover_open_files

REPO = Path(__file__).resolve().parents[1]
NAME = "tdi-20261123131636-00000-h.warc.gz"


def warcio_check(path: Path) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        warcio_main(["check", "-v", str(path)])
    return int(exited.value.code or 0), out.getvalue()


def record_ids(path: Path) -> list[str]:
    with path.open("rb") as stream:
        return [
            rec.rec_headers.get_header("WARC-Record-ID")
            for rec in ArchiveIterator(stream, no_record_parse=True)
        ]


def exchange(builder: RecordBuilder, url: str, payload: bytes) -> list[WarcRecord]:
    response = builder.response(
        target_uri=url,
        http_head=build_response_head(
            "HTTP/1.1", 200, "OK", [(b"Content-Type", b"text/html")], len(payload)
        ),
        payload=payload,
        date=None,
    )
    request = builder.request(
        target_uri=url,
        http_head=build_request_head("GET", url, []),
        date=None,
        concurrent_to=response.record_id,
    )
    return [request, response]


@dataclass
class Sample:
    data: bytes
    ends: list[int]  # offset just past each member, warcinfo first
    ids: list[str]  # record id of each member


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    """A file with a big incompressible record, one inflating past 1 MiB, small ones last."""
    rng = random.Random(7)
    builder = RecordBuilder()
    directory = tmp_path_factory.mktemp("sample")
    writer = WarcFileWriter(
        directory,
        prefix="tdi",
        hostname="h",
        clock=lambda: datetime(2026, 11, 23, 13, 16, 36, tzinfo=UTC),
    )
    groups = [
        exchange(builder, "https://e.example/big", rng.randbytes(150_000)),
        exchange(builder, "https://e.example/zeros", b"\0" * 1_500_000),
        exchange(builder, "https://e.example/a", b"<p>" + rng.randbytes(900) + b"</p>"),
        exchange(builder, "https://e.example/b", b"<p>" + rng.randbytes(2500) + b"</p>"),
    ]
    locations = [loc for group in groups for loc in writer.write_sync(group)]
    [path] = writer.close()
    data = path.read_bytes()
    assert path.name == NAME
    return Sample(
        data=data,
        ends=[locations[0].offset] + [loc.offset + loc.length for loc in locations],
        ids=record_ids(path),
    )


def recover_bytes(directory: Path, data: bytes) -> list[RecoveryResult]:
    directory.mkdir()
    (directory / f"{NAME}.open").write_bytes(data)
    return recover_open_files(directory)


def assert_recovered(directory: Path, sample: Sample, cut: int, tail: bytes = b"") -> None:
    results = recover_bytes(directory, sample.data[:cut] + tail)
    complete = [end for end in sample.ends if end <= cut]
    assert not (directory / f"{NAME}.open").exists()
    if not complete:
        assert results == []
        assert list(directory.iterdir()) == []
        return
    good_end = complete[-1]
    path = directory / NAME
    assert results == [
        RecoveryResult(path=path, records_kept=len(complete), bytes_cut=cut + len(tail) - good_end)
    ]
    assert path.read_bytes() == sample.data[:good_end]
    assert record_ids(path) == sample.ids[: len(complete)]


def test_cut_points_across_the_last_members(tmp_path: Path, sample: Sample) -> None:
    start = sample.ends[-4]
    cuts = set(range(start, len(sample.data) + 1, 61))
    cuts |= {end + delta for end in sample.ends[-4:] for delta in (-1, 0, 1)}
    cuts = {c for c in cuts if c <= len(sample.data)}
    for n, cut in enumerate(sorted(cuts)):
        assert_recovered(tmp_path / f"cut{n}", sample, cut)
    assert len(cuts) > 50
    status, report = warcio_check(tmp_path / f"cut{len(cuts) - 2}" / NAME)
    assert status == 0, report


def test_cut_points_in_big_members_and_the_header(tmp_path: Path, sample: Sample) -> None:
    cuts = [0, 1, 9, 10, 40, sample.ends[0] // 2, sample.ends[0] - 8]
    cuts += [sample.ends[1] + k * 20_011 for k in range(1, 8)]  # inside the 150 KB member
    cuts += [sample.ends[3] + 17, sample.ends[4] - 9]  # the member inflating to 1.5 MB
    for n, cut in enumerate(cuts):
        assert_recovered(tmp_path / f"cut{n}", sample, cut)


@pytest.mark.parametrize(
    "tail",
    [
        b"garbage after the last record",
        os.urandom(3000),
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"not deflate data" * 10,
        gzip.compress(b"a complete gzip member that is no WARC record"),
        gzip.compress(
            b"WARC/1.1\r\nWARC-Type: resource\r\nContent-Length: 10\r\n\r\nshort\r\n\r\n"
        ),
        gzip.compress(b"WARC/1.1\r\nWARC-Type: resource\r\nContent-Length: 5\r\n\r\nshort"),
        gzip.compress(b"WARC/1.1\r\nContent-Length: 5\r\n\r\nshort\r\n\r\n"),
        gzip.compress(b"WARC/1.1\r\nWARC-Type: resource\r\nContent-Length: 2\r\n\r\nshort\r\n\r\n"),
        gzip.compress(b"WARC/1.1\r\nWARC-Type: resource\r\nContent-Length: x\r\n\r\n\r\n\r\n"),
        gzip.compress(b"WARC/1.1\r\nWARC-Type: resource\r\nContent-Length: 0\r\n\r\n\r\n\r\n")[:-3],
        gzip.compress(b"WARC/1.1\r\nWARC-Type: resource\r\nContent-Length: 5\r\n\r\nshortXXXX"),
        b"\0" * 4096,
    ],
    ids=[
        "text",
        "random",
        "gzip-header-then-junk",
        "gzip-member-not-warc",
        "content-length-too-long",
        "no-record-end",
        "no-warc-type",
        "content-length-too-short",
        "content-length-not-a-number",
        "member-cut-in-trailer",
        "bad-record-end",
        "zeros",
    ],
)
def test_garbage_tails_are_cut(tmp_path: Path, sample: Sample, tail: bytes) -> None:
    for n, cut in enumerate((len(sample.data), sample.ends[-2], sample.ends[-1] - 100)):
        assert_recovered(tmp_path / f"cut{n}", sample, cut, tail)


def test_a_complete_file_is_only_renamed(tmp_path: Path, sample: Sample) -> None:
    [result] = recover_bytes(tmp_path / "d", sample.data)
    assert result.records_kept == len(sample.ends) == 9
    assert result.bytes_cut == 0
    assert result.path.read_bytes() == sample.data


def test_empty_and_garbage_only_files_are_removed(tmp_path: Path) -> None:
    (tmp_path / "a.warc.gz.open").write_bytes(b"")
    (tmp_path / "b.warc.gz.open").write_bytes(b"<html>not a warc</html>")
    (tmp_path / "c.warc.gz.open").write_bytes(gzip.compress(b"WARC/1.1\r\nWARC-Type: x\r\n"))
    (tmp_path / "notes.open").write_bytes(b"not ours")
    (tmp_path / "done.warc.gz").write_bytes(b"not touched")
    assert recover_open_files(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done.warc.gz", "notes.open"]
    assert recover_open_files(tmp_path / "missing") == []


def test_several_files_and_on_close(tmp_path: Path, sample: Sample) -> None:
    names = [NAME.replace("00000", f"{i:05d}") for i in range(3)]
    for i, name in enumerate(names):
        (tmp_path / f"{name}.open").write_bytes(sample.data[: sample.ends[-2 - i] + 5])
    closed: list[Path] = []
    results = recover_open_files(tmp_path, on_close=closed.append)
    assert [r.path.name for r in results] == names
    assert closed == [r.path for r in results]
    assert [r.records_kept for r in results] == [8, 7, 6]
    assert all(r.bytes_cut == 5 for r in results)


def test_on_close_failure_is_logged(
    tmp_path: Path, sample: Sample, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / f"{NAME}.open").write_bytes(sample.data)

    def explode(path: Path) -> None:
        raise OSError("upload queue unavailable")

    with caplog.at_level(logging.ERROR, logger="crawler.capture.writer"):
        [result] = recover_open_files(tmp_path, on_close=explode)
    assert result.path.exists()
    assert "on_close callback failed" in caplog.text


def test_an_existing_final_name_is_never_overwritten(
    tmp_path: Path, sample: Sample, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / NAME).write_bytes(b"someone else's")
    (tmp_path / f"{NAME}.open").write_bytes(sample.data + b"junk")
    with caplog.at_level(logging.ERROR, logger="crawler.capture.writer"):
        assert recover_open_files(tmp_path) == []
    assert (tmp_path / NAME).read_bytes() == b"someone else's"
    assert (tmp_path / f"{NAME}.open").read_bytes() == sample.data + b"junk"
    assert "already exists" in caplog.text


def test_a_file_held_by_a_live_writer_is_left_alone(tmp_path: Path) -> None:
    builder = RecordBuilder()
    writer = WarcFileWriter(tmp_path, prefix="live", hostname="h")
    writer.write_sync(exchange(builder, "https://e.example/", b"x"))
    open_path = writer.current_path
    assert open_path is not None
    assert recover_open_files(tmp_path) == []
    assert open_path.exists()
    writer.write_sync(exchange(builder, "https://e.example/2", b"y"))
    [path] = writer.close()
    assert len(record_ids(path)) == 5


def test_recovery_memory_is_bounded(tmp_path: Path) -> None:
    """A record inflating to 24 MB is checked without holding it in memory."""
    builder = RecordBuilder()
    writer = WarcFileWriter(tmp_path, prefix="mem", hostname="h")
    writer.write_sync(exchange(builder, "https://e.example/huge", b"\0" * 24_000_000))
    assert writer.current_path is not None
    data = writer.current_path.read_bytes()
    writer.close()
    directory = tmp_path / "crashed"
    directory.mkdir()
    (directory / "mem-x.warc.gz.open").write_bytes(data + b"tail")
    del data
    tracemalloc.start()
    try:
        [result] = recover_open_files(directory)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.records_kept == 3
    assert result.bytes_cut == 4
    assert peak < 4_000_000, peak


KILL_SCRIPT = """
import os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from crawler.capture.records import RecordBuilder, build_request_head, build_response_head
from crawler.capture.writer import WarcFileWriter
builder = RecordBuilder()
writer = WarcFileWriter(Path(sys.argv[1]), prefix="killed", hostname="h", compress_level=1)
n = 0
while True:
    payload = os.urandom(30_000 + n % 5000)
    url = f"https://e.example/{n}"
    head = build_response_head("HTTP/1.1", 200, "OK", [], len(payload))
    response = builder.response(target_uri=url, http_head=head, payload=payload)
    request = builder.request(
        target_uri=url, http_head=build_request_head("GET", url, []),
        concurrent_to=response.record_id)
    future = writer.write([request, response])
    if n == 0:
        future.result()
        print("ready", flush=True)
    n += 1
"""


@pytest.mark.slow
def test_recovery_after_sigkill(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(tmp_path), str(REPO)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL, stderr.decode()
    [open_file] = tmp_path.glob("*.warc.gz.open")
    size = open_file.stat().st_size

    [result] = recover_open_files(tmp_path)
    assert result.path == tmp_path / open_file.name.removesuffix(".open")
    assert result.records_kept > 3
    assert result.path.stat().st_size == size - result.bytes_cut
    status, report = warcio_check(result.path)
    assert status == 0, report
    assert report.count("digest pass") == result.records_kept
    with result.path.open("rb") as stream:
        types = [rec.rec_type for rec in ArchiveIterator(stream)]
    assert len(types) == result.records_kept
    assert types[0] == "warcinfo"
    assert set(types[1:]) == {"request", "response"}
