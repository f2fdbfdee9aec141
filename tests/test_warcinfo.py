"""Every record names the warcinfo of its file, none is dated before it, extracts have one."""

from __future__ import annotations

import gzip
import io
import json
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from warcio.archiveiterator import ArchiveIterator

from crawler import __version__
from crawler.capture.records import (
    RecordBuilder,
    WarcRecord,
    build_request_head,
    build_response_head,
)
from crawler.capture.writer import WarcFileWriter
from crawler.ops.cli import main

START = datetime(2026, 11, 23, 13, 16, 36, tzinfo=UTC)


def warc_date(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def records_of(data: bytes) -> list[tuple[str, dict[str, str], bytes]]:
    """(type, WARC headers, raw bytes of the record's gzip member) of every record."""
    out = []
    it = ArchiveIterator(io.BytesIO(data), no_record_parse=True)
    for rec in it:
        headers = dict(rec.rec_headers.headers)
        rec.raw_stream.read()
        offset, length = it.get_record_offset(), it.get_record_length()
        out.append((rec.rec_type, headers, data[offset : offset + length]))
    return out


def check_file(data: bytes, name: str) -> int:
    """The warcinfo is first, every other record names it and none is dated before it."""
    records = records_of(data)
    kind, info, _ = records[0]
    assert kind == "warcinfo", name
    assert "WARC-Warcinfo-ID" not in info
    info_id, info_date = info["WARC-Record-ID"], warc_date(info["WARC-Date"])
    for kind, headers, _ in records[1:]:
        assert kind != "warcinfo", name
        assert headers["WARC-Warcinfo-ID"] == info_id, (name, headers["WARC-Record-ID"])
        assert warc_date(headers["WARC-Date"]) >= info_date, (name, headers)
    return len(records)


def test_demo_store_records_name_their_files_warcinfo_and_none_predates_it(
    demo_store: Path,
) -> None:
    paths = sorted(demo_store.glob("warc/**/*.warc.gz"))
    assert paths
    assert sum(check_file(path.read_bytes(), path.name) for path in paths) > len(paths)


def test_the_warcinfo_names_the_text_mode_the_texts_were_made_with(demo_store: Path) -> None:
    from warcio.archiveiterator import ArchiveIterator

    for path in sorted(demo_store.glob("warc/**/*.warc.gz")):
        with path.open("rb") as fh:
            first = next(iter(ArchiveIterator(fh)))
            assert first.rec_type == "warcinfo"
            assert b"\r\ntext-mode: article\r\n" in first.content_stream().read(), path


# -- rollover, with records dated before "now" --------------------------------------------------
class FakeTime:
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


def exchange(builder: RecordBuilder, n: int, date: datetime) -> list[WarcRecord]:
    url = f"https://thediplomaticinsight.com/news/{n}"
    body = f"<html><body>article {n}</body></html>".encode() * 20
    head = build_response_head("HTTP/1.1", 200, "OK", [(b"Content-Type", b"text/html")], len(body))
    response = builder.response(target_uri=url, http_head=head, payload=body, date=date)
    request = builder.request(
        target_uri=url,
        http_head=build_request_head("GET", url, []),
        date=date,
        concurrent_to=response.record_id,
    )
    return [response, request]


def test_rollover_never_leaves_a_record_dated_before_its_warcinfo(tmp_path: Path) -> None:
    time = FakeTime()
    builder = RecordBuilder(clock=time.clock)
    writer = WarcFileWriter(
        tmp_path,
        prefix="roll",
        hostname="h",
        builder=builder,
        warcinfo_fields={"software": "test"},
        max_size=500,  # tiny: a new file after every group
        clock=time.clock,
        monotonic=time.monotonic,
    )
    # Each request went out a while before it is written (its download latency); the
    # latencies vary, so a later write can hold an older record than the file before it.
    latencies = [3.0, 0.5, 8.0, 1.0, 0.0, 12.0, 2.0]
    written: dict[str, tuple[str, datetime]] = {}
    for n, latency in enumerate(latencies):
        time.advance(5.0)
        date = time.now - timedelta(seconds=latency)
        group = exchange(builder, n, date)
        for location, record in zip(writer.write_sync(group), group, strict=True):
            written[record.record_id] = (location.filename, date)
    paths = writer.close()
    assert len(paths) == len(latencies)

    seen = 0
    for path in paths:
        data = path.read_bytes()
        seen += check_file(data, path.name) - 1
        records = records_of(data)
        # Dated at opening (the clock), or as early as its first record's request time; the
        # first file as early as the writer (made when the crawl opens, before any request).
        if path == paths[0]:
            assert records[0][1]["WARC-Date"] < records[1][1]["WARC-Date"]
        else:
            assert records[0][1]["WARC-Date"] == records[1][1]["WARC-Date"]
        for _, headers, _ in records[1:]:
            assert written[headers["WARC-Record-ID"]][0] == path.name
    assert seen == len(written)


def test_a_record_older_than_the_current_warcinfo_starts_a_new_file(tmp_path: Path) -> None:
    time = FakeTime()
    builder = RecordBuilder(clock=time.clock)
    writer = WarcFileWriter(
        tmp_path,
        prefix="old",
        hostname="h",
        builder=builder,
        clock=time.clock,
        monotonic=time.monotonic,
    )
    first = writer.write_sync(exchange(builder, 1, START))
    time.advance(30)
    # A long download that started before the file was opened, written after it.
    late = writer.write_sync(exchange(builder, 2, START - timedelta(seconds=20)))
    time.advance(1)
    on_time = writer.write_sync(exchange(builder, 3, time.now - timedelta(seconds=0.5)))
    paths = writer.close()
    assert len(paths) == 2
    assert {loc.filename for loc in first} == {paths[0].name}
    assert {loc.filename for loc in late + on_time} == {paths[1].name}
    infos = [records_of(p.read_bytes())[0][1] for p in paths]
    assert infos[0]["WARC-Date"] == "2026-11-23T13:16:36Z"
    assert infos[1]["WARC-Date"] == "2026-11-23T13:16:16Z"
    for path in paths:
        check_file(path.read_bytes(), path.name)


def test_locations_point_at_the_records_with_their_warcinfo_id(tmp_path: Path) -> None:
    time = FakeTime()
    builder = RecordBuilder(clock=time.clock)
    writer = WarcFileWriter(tmp_path, prefix="loc", hostname="h", builder=builder, max_size=400)
    locations = []
    for n in range(4):
        locations += writer.write_sync(exchange(builder, n, START))
    paths = {p.name: p.read_bytes() for p in writer.close()}
    assert len(paths) == 4
    for loc in locations:
        data = paths[loc.filename]
        [(_, headers, raw)] = records_of(data[loc.offset : loc.offset + loc.length])
        assert headers["WARC-Record-ID"] == loc.record_id
        assert headers["WARC-Warcinfo-ID"] == records_of(data)[0][1]["WARC-Record-ID"]
        assert gzip.decompress(raw).startswith(b"WARC/1.1\r\n")


# -- extracts ---------------------------------------------------------------------------------
def cli(*args: str) -> tuple[int, bytes, str]:
    out = io.BytesIO()
    text = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    err = io.StringIO()
    with redirect_stdout(text), redirect_stderr(err):
        code = main(list(args))
    text.flush()
    return code, out.getvalue(), err.getvalue()


def warcinfo_fields(block: bytes) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for line in block.decode().split("\r\n"):
        if line:
            name, _, value = line.partition(": ")
            fields.setdefault(name, []).append(value)
    return fields


def store_members(demo_store: Path) -> dict[str, bytes]:
    """Record id -> the record's gzip member as stored."""
    out = {}
    for path in demo_store.glob("warc/**/*.warc.gz"):
        for _, headers, raw in records_of(path.read_bytes()):
            out[headers["WARC-Record-ID"]] = raw
    return out


def first_warcinfo(data: bytes) -> tuple[dict[str, str], dict[str, list[str]]]:
    record: Any = next(iter(ArchiveIterator(io.BytesIO(data))))
    assert record.rec_type == "warcinfo"
    return dict(record.rec_headers.headers), warcinfo_fields(record.content_stream().read())


def test_get_as_warc_starts_with_a_warcinfo_naming_store_and_query(
    demo_store: Path, tmp_path: Path
) -> None:
    car = json.loads(next(demo_store.glob("text/**/*.json")).read_text())
    out = tmp_path / "capture.warc.gz"
    code, _, err = cli(
        "get", car["url"], "--store", str(demo_store), "--as", "warc", "-o", str(out)
    )
    assert code == 0, err
    data = out.read_bytes()
    headers, fields = first_warcinfo(data)
    assert headers["WARC-Filename"] == "capture.warc.gz"
    assert fields["software"] == [f"newsarchive/{__version__}"]
    assert fields["source-store"] == [demo_store.resolve().as_uri()]
    [crawl_id] = fields["crawl-id"]
    assert crawl_id.startswith("tdi-")
    assert fields["query"][0].startswith(f"get {car['url']} ")
    # The rest: the capture's records, byte for byte as in the store.
    stored = store_members(demo_store)
    rest = records_of(data)[1:]
    assert rest[0][0] in ("response", "revisit")
    for _, record_headers, raw in rest:
        assert raw == stored[record_headers["WARC-Record-ID"]]


def test_export_as_warc_starts_with_a_warcinfo_naming_store_crawls_and_query(
    demo_store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export.warc.gz"
    code, _, err = cli(
        "export", "--site", "tdi", "--store", str(demo_store), "--format", "warc", str(out)
    )
    assert code == 0, err
    data = out.read_bytes()
    _, fields = first_warcinfo(data)
    assert fields["software"] == [f"newsarchive/{__version__}"]
    assert fields["source-store"] == [demo_store.resolve().as_uri()]
    assert fields["query"] == ["export --format warc --site tdi"]
    rest = records_of(data)[1:]
    assert rest and all(kind != "warcinfo" for kind, _, _ in rest)
    assert fields["crawl-id"] and all(c.startswith("tdi-") for c in fields["crawl-id"])
    stored = store_members(demo_store)
    for _, record_headers, raw in rest:
        assert raw == stored[record_headers["WARC-Record-ID"]]
