"""scripts/compare_archives.py on tiny synthetic stores: what it ignores and what it catches."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "compare_archives.py"
URL = "https://news.example.test/article/1"
SOURCE = "https://news.example.test/feed.xml"
PAGE = b"<html><head><title>One</title></head><body><p>First paragraph.</p></body></html>\n"
TEXT = "One\n\nFirst paragraph.\n"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compare_archives", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


compare_archives = load_script()


def record_id() -> str:
    return f"<urn:uuid:{uuid.uuid4()}>"


def make_store(
    root: Path,
    *,
    date: str = "2026-01-02T03:04:05.123456Z",
    text: str = TEXT,
    page: bytes = PAGE,
) -> Path:
    """A one-article store shaped like the demo's: WARC records, text, sidecar, manifest.

    Every call draws new record ids and a new crawl id, as a crawl does.
    """
    day, clock = date[:10].replace("-", ""), date[11:19].replace(":", "")
    crawl_id = f"demo-{day}T{clock}Z-{uuid.uuid4().hex[:6]}"
    dirs = f"{date[:4]}/{date[5:7]}/{date[8:10]}"
    name = f"demo-{day}{clock}-00000-host.warc.gz"
    warc_key, text_key = f"warc/demo/{dirs}/{name}", f"text/demo/{dirs}/1.txt"
    http_date = "Fri, 02 Jan 2026 03:04:05 GMT"  # the mirror's Date header: from the clock
    kinds = ("info", "feed", "response", "request", "conversion", "meta")
    ids = {kind: record_id() for kind in kinds}
    discovery = {"via": "feed", "source": SOURCE, "published": None, "title": "One"}
    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=True, warc_version="WARC/1.1")
    positions: dict[str, tuple[int, int]] = {}

    def write(kind: str, rec_type: str, uri: str, payload: bytes, **headers: Any) -> None:
        http = headers.pop("http", None)
        if kind != "info":  # every record names the warcinfo of its file, as the writer's do
            headers["WARC-Warcinfo-ID"] = ids["info"]
        record = writer.create_warc_record(
            uri,
            rec_type,
            payload=io.BytesIO(payload),
            length=len(payload),  # known: warcio then needs no (unclosed) temporary file
            warc_content_type=headers.pop("content_type", ""),
            warc_headers_dict={"WARC-Record-ID": ids[kind], "WARC-Date": date, **headers},
            http_headers=http,
        )
        start = buffer.tell()
        writer.write_record(record)
        positions[kind] = (start, buffer.tell() - start)

    def response_head(body: bytes) -> StatusAndHeaders:
        pairs = [("Date", http_date), ("Content-Length", str(len(body)))]
        return StatusAndHeaders("200 OK", pairs, protocol="HTTP/1.1")

    info = f"software: newsarchive/0.1.0\r\ncrawl-id: {crawl_id}\r\n".encode()
    write(
        "info",
        "warcinfo",
        "",
        info,
        content_type="application/warc-fields",
        **{"WARC-Filename": name},
    )
    write("feed", "response", SOURCE, b"<rss/>", http=response_head(b"<rss/>"))
    write("response", "response", URL, page, http=response_head(page))
    request_head = StatusAndHeaders(
        "GET /article/1 HTTP/1.1",
        [("Host", "news.example.test"), ("Referer", SOURCE)],
        is_http_request=True,
    )
    concurrent = {"WARC-Concurrent-To": ids["response"]}
    write("request", "request", URL, b"", http=request_head, **concurrent)
    refers = {"WARC-Refers-To": ids["response"]}
    write(
        "conversion",
        "conversion",
        f"urn:text:{URL}",
        text.encode(),
        content_type="text/plain; charset=utf-8",
        **refers,
        **{"WARC-Refers-To-Date": date},
    )
    fields = f"article-id: 1\r\nsite: demo\r\ndiscovered-via: {json.dumps(discovery)}\r\n"
    write(
        "meta", "metadata", URL, fields.encode(), content_type="application/warc-fields", **refers
    )
    put(root, warc_key, buffer.getvalue())
    put(root, text_key, text.encode())
    offset, length = positions["response"]
    sidecar = {
        "url": URL,
        "site": "demo",
        "article_id": "1",
        "title": "One",
        "crawl_id": crawl_id,
        "crawl_time": date.replace("Z", "+00:00"),
        "capture_time": date,
        "warc": {
            "file": name,
            "key": warc_key,
            "offset": offset,
            "length": length,
            "record_id": ids["response"],
            "record_type": "response",
        },
        "discovery": [discovery],
        "conversion_record_id": ids["conversion"],
        "metadata_record_id": ids["meta"],
        "text_key": text_key,
    }
    put(root, text_key.replace(".txt", ".json"), json.dumps(sidecar, indent=2).encode())
    objects = []
    for key in (text_key, text_key.replace(".txt", ".json"), warc_key):
        data = (root / key).read_bytes()
        objects.append({"key": key, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    manifest = {"crawl_id": crawl_id, "site": "demo", "created": date, "objects": objects}
    put(root, f"manifests/demo/{crawl_id}.json", json.dumps(manifest).encode())
    return root


def put(root: Path, key: str, data: bytes) -> None:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def run(before: Path, after: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = compare_archives.main([str(before), str(after)])
    return code, capsys.readouterr().out


def test_identical_stores_compare_equal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = make_store(tmp_path / "before")
    after = make_store(tmp_path / "after")
    code, out = run(before, after, capsys)
    assert code == 0, out
    assert out.rstrip().endswith("identical")
    assert "warc records: demo" in out
    assert "texts (byte for byte)    1" in out


def test_other_dates_and_record_ids_only_compare_equal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # another day, another time: other keys, WARC-Dates, record ids, crawl id, offsets
    before = make_store(tmp_path / "before", date="2026-01-02T03:04:05.123456Z")
    after = make_store(tmp_path / "after", date="2026-02-03T23:59:58.000001Z")
    code, out = run(before, after, capsys)
    assert code == 0, out
    assert "differences" not in out


def test_changed_text_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = make_store(tmp_path / "before")
    after = make_store(tmp_path / "after", text="One\n\nFirst paragraph!\n")
    code, out = run(before, after, capsys)
    assert code == 1
    assert "[texts] text/demo/<date>/1.txt" in out
    assert "+First paragraph!" in out
    assert "[warc records: demo] demo: conversion urn:text:" + URL in out
    assert out.rstrip().endswith("DIFFERENT")


def test_changed_payload_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = make_store(tmp_path / "before")
    after = make_store(tmp_path / "after", page=PAGE.replace(b"First", b"first"))
    code, out = run(before, after, capsys)
    assert code == 1
    assert f"[warc records: demo] demo: response {URL}" in out
    assert "payload.digest" in out


def test_changed_sidecar_field_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = make_store(tmp_path / "before")
    after = make_store(tmp_path / "after")
    sidecar = next(after.glob("text/demo/*/*/*/1.json"))
    doc = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps(dict(doc, title="Two")))  # the manifest's digest goes stale
    code, out = run(before, after, capsys)
    assert code == 1
    assert '[sidecars] text/demo/<date>/1.json\n      title: "One" != "Two"' in out


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = make_store(tmp_path / "store")
    assert compare_archives.main([str(store), str(tmp_path / "missing")]) == 2
    assert "not a store directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        compare_archives.main([str(store)])
    assert exit_info.value.code == 2


def test_help_shows_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        compare_archives.main(["--help"])
    assert exit_info.value.code == 0
    assert "compare_archives.py /tmp/archive-before /tmp/archive-after" in capsys.readouterr().out


def test_keys_lose_their_run_date_time_and_crawl_id() -> None:
    norm = compare_archives.norm_key
    assert norm("warc/tdi/2026/12/06/tdi-20261206203704-00000-vm.warc.gz") == (
        "warc/tdi/<date>/tdi-<time>-00000-vm.warc.gz"
    )
    assert norm("warc/tdi/2026/12/06/tdi-20261206203704-00000-89e6d0-vm.warc.gz") == (
        "warc/tdi/<date>/tdi-<time>-00000-vm.warc.gz"
    )
    assert norm("manifests/tdi/tdi-20261206T203703Z-89e6d0.json") == (
        "manifests/tdi/tdi-<crawl-id>.json"
    )
    assert norm("text/tdi/2026/12/06/world-polio-day-2023.txt") == (
        "text/tdi/<date>/world-polio-day-2023.txt"
    )
