"""The WACZ of each crawl: headers a range reader trusts, pages with text, revisits resolved.

Issue 17. ReplayWeb.page reads a member's data at ``header_offset + 30 + name + extra`` with
the extra length of the central directory; a crawl's package must replay on its own, so the
originals of its revisits from earlier crawls travel in it.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import struct
import subprocess
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.access.indexes import pages_jsonl, write_wacz
from crawler.mirror.server import MirrorServer
from tests.conftest import require_program, venv_program
from tests.crawl_helper import CrawlResult, run_crawl

SITE_DIR = Path(__file__).resolve().parent.parent / "crawler" / "mirror" / "sites" / "tdi"
LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # the 30 bytes before a member's name


# ------------------------------------------------------------------ helpers


def local_extra(path: Path, info: zipfile.ZipInfo) -> tuple[int, bytes]:
    """The local header's extra length, and the first bytes where a reader finds the data."""
    with path.open("rb") as fh:
        fh.seek(info.header_offset)
        fields = LOCAL_HEADER.unpack(fh.read(LOCAL_HEADER.size))
        assert fields[0] == b"PK\x03\x04"
        name_len, extra_len = fields[9], fields[10]
        # Where a reader that trusts the central directory's extra length starts reading.
        fh.seek(info.header_offset + LOCAL_HEADER.size + name_len + len(info.extra))
        return extra_len, fh.read(2)


def assert_headers_agree(path: Path) -> int:
    """Every member: local and central extra lengths equal; WARCs stored, start on a record."""
    warcs = 0
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            extra_len, first = local_extra(path, info)
            assert extra_len == len(info.extra), info.filename
            if info.filename.startswith("archive/"):
                assert info.compress_type == zipfile.ZIP_STORED, info.filename
                assert first == b"\x1f\x8b", info.filename
                warcs += 1
            assert zf.read(info) is not None  # zipfile's CRC check
    return warcs


def records(data: bytes) -> list[Any]:
    return list(ArchiveIterator(io.BytesIO(data)))


def fake_warc(n: int, size: int) -> bytes:
    """Gzip members (one per 'record') of about ``size`` bytes, incompressible."""
    out = b""
    i = 0
    while len(out) < size:
        body = os.urandom(max(64, min(4096, size - len(out))))
        out += gzip.compress(b"WARC/1.1\r\nrecord %d-%d\r\n\r\n" % (n, i) + body)
        i += 1
    return out


def cdxj_timestamps(cdxj: str) -> set[tuple[str, str]]:
    found = set()
    for line in cdxj.splitlines():
        _surt, ts, data = line.split(" ", 2)
        found.add((json.loads(data)["url"], ts))
    return found


def fourteen(ts: str) -> str:
    return "".join(c for c in ts if c.isdigit())[:14]


# ------------------------------------------------------------------ ZIP headers (no crawl)


@pytest.mark.parametrize("limit", [None, 3000])
def test_local_header_extra_matches_the_central_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int | None
) -> None:
    """With zipfile's ZIP64 limit lowered, the members cross it as a > 2 GiB package would.

    The sizes: one below limit/1.05, one between limit/1.05 and the limit (zipfile gives the
    local header a ZIP64 field, the central directory none), one above it; the later members
    lie past the limit (the central directory's ZIP64 field then holds their offset).
    """
    if limit is not None:
        monkeypatch.setattr(zipfile, "ZIP64_LIMIT", limit)
    warcs = {f"warc/x/{i}.warc.gz": fake_warc(i, s) for i, s in enumerate((1500, 2900, 5000))}
    if limit is not None:
        sizes = [len(v) for v in warcs.values()]
        assert sizes[0] * 1.05 < limit < sizes[2]
        assert sizes[1] <= limit < sizes[1] * 1.05

    @contextmanager
    def opener(key: str) -> Iterator[IO[bytes]]:
        yield io.BytesIO(warcs[key])

    path = tmp_path / "x.wacz"
    write_wacz(path, list(warcs), opener, "", b"", "t", {k: len(v) for k, v in warcs.items()})
    assert assert_headers_agree(path) == 3
    with zipfile.ZipFile(path) as zf:
        for key, data in warcs.items():
            info = zf.getinfo("archive/" + key.rsplit("/", 1)[-1])
            assert zf.read(info) == data
            # A reader that trusts the central directory gets the member's exact bytes.
            start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
            with path.open("rb") as fh:
                fh.seek(start)
                assert fh.read(info.compress_size) == data
        if limit is not None:
            assert any(len(i.extra) for i in zf.infolist())  # the limit was crossed
    # Sizes unknown: measured through the opener.
    write_wacz(tmp_path / "y.wacz", list(warcs), opener, "", b"", "t")
    assert assert_headers_agree(tmp_path / "y.wacz") == 3


def test_pages_without_articles_list_the_html_pages_answered_200() -> None:
    rows = [
        {"record_id": "<a>", "record_type": "response", "status": 200, "url": "https://s/",
         "warc_date": "2025-01-01T00:00:00Z", "article_key": None, "text_key": None},
        {"record_id": "<b>", "record_type": "revisit", "status": 200, "url": "https://s/feed",
         "warc_date": "2025-01-01T00:00:01Z", "article_key": None, "text_key": None},
        {"record_id": "<c>", "record_type": "response", "status": 404, "url": "https://s/x",
         "warc_date": "2025-01-01T00:00:02Z", "article_key": None, "text_key": None},
    ]  # fmt: skip
    mimes = {"<a>": "text/html", "<b>": "application/rss+xml", "<c>": "text/html"}
    lines = [json.loads(x) for x in pages_jsonl(rows, mimes).splitlines()]
    assert lines[0]["format"] == "json-pages-1.0"
    assert [p["url"] for p in lines[1:]] == ["https://s/"]
    # With an article, the articles only, and their text.
    rows.append(
        {"record_id": "<d>", "record_type": "revisit", "status": 200, "url": "https://s/a",
         "warc_date": "2025-01-01T00:00:03Z", "article_key": "a", "text_key": "text/s/a.txt",
         "title": "A", "text": "Body of a."}
    )  # fmt: skip
    lines = [json.loads(x) for x in pages_jsonl(rows, mimes).splitlines()]
    assert [(p["url"], p["title"], p["text"]) for p in lines[1:]] == [
        ("https://s/a", "A", "Body of a.")
    ]


# ------------------------------------------------------------------ two crawls, nothing changed


def crawl(mirror: MirrorServer, store: Path, out: Path, **settings: str) -> CrawlResult:
    result = run_crawl(
        "spiders.tdi:TdiSpider",
        out,
        settings={
            "ARCHIVE_PROXY": mirror.proxy_url,
            "ARCHIVE_STORE_URI": str(store),
            "ARCHIVE_CATALOG_ENABLED": "True",
            "ARCHIVE_REVISION_AGES": "1h,1d,7d",
            **settings,
        },
    )
    assert result.exit_code == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def two_crawls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """The store after two crawls of the TDI mirror, the second refetching everything."""
    tmp = tmp_path_factory.mktemp("wacz")
    store = tmp / "store"
    with MirrorServer(sites=[SITE_DIR]) as mirror:
        first = crawl(mirror, store, tmp / "1.json")
        assert first.report["articles"]["new"] == 6
        second = crawl(mirror, store, tmp / "2.json", ARCHIVE_REFRESH="True")
        assert second.report["articles"]["unchanged"] == 6
    packages = sorted((store / "wacz" / "tdi").glob("*.wacz"))
    assert len(packages) == 2
    return store, packages


def test_every_package_has_headers_a_range_reader_trusts(
    two_crawls: tuple[Path, list[Path]],
) -> None:
    _store, packages = two_crawls
    for package in packages:
        assert assert_headers_agree(package) >= 1


def test_second_crawl_package_holds_the_originals_of_its_revisits(
    two_crawls: tuple[Path, list[Path]],
) -> None:
    _store, packages = two_crawls
    second = packages[-1]
    crawl_id = second.name.removesuffix(".wacz")
    with zipfile.ZipFile(second) as zf:
        names = zf.namelist()
        originals = f"archive/{crawl_id}-originals.warc.gz"
        assert originals in names
        found = [r for n in names if n.startswith("archive/") for r in records(zf.read(n))]
        cdxj = zf.read("indexes/index.cdx").decode()
        copied = records(zf.read(originals))
    by_id = {r.rec_headers.get_header("WARC-Record-ID"): r for r in found}
    revisits = [r for r in found if r.rec_type == "revisit"]
    assert len(revisits) >= 6  # the six unchanged articles at least
    for rev in revisits:
        target = rev.rec_headers.get_header("WARC-Refers-To")
        assert target in by_id, rev.rec_headers.get_header("WARC-Target-URI")
        original = by_id[target]
        assert original.rec_type == "response"
        assert original.rec_headers.get_header("WARC-Target-URI") == rev.rec_headers.get_header(
            "WARC-Refers-To-Target-URI"
        )
        assert original.rec_headers.get_header("WARC-Date") == rev.rec_headers.get_header(
            "WARC-Refers-To-Date"
        )
        assert original.rec_headers.get_header("WARC-Payload-Digest") == rev.rec_headers.get_header(
            "WARC-Payload-Digest"
        )
    # Only responses, each once, and each one a revisit of this crawl needs.
    assert {r.rec_type for r in copied} == {"response"}
    wanted = {r.rec_headers.get_header("WARC-Refers-To") for r in revisits}
    ids = [r.rec_headers.get_header("WARC-Record-ID") for r in copied]
    assert len(ids) == len(set(ids)) and set(ids) <= wanted
    # The copies are indexed: a replay tool finds them by URL and time.
    indexed = cdxj_timestamps(cdxj)
    for rec in copied:
        url = rec.rec_headers.get_header("WARC-Target-URI")
        assert (url, fourteen(rec.rec_headers.get_header("WARC-Date"))) in indexed
    assert f'"filename": "{crawl_id}-originals.warc.gz"' in cdxj


def test_pages_list_every_article_with_its_text_and_a_cdxj_line(
    two_crawls: tuple[Path, list[Path]],
) -> None:
    store, packages = two_crawls
    texts = {p.read_text() for p in (store / "text" / "tdi").rglob("*.txt")}
    assert len(texts) == 6
    for package in packages:
        with zipfile.ZipFile(package) as zf:
            lines = [json.loads(x) for x in zf.read("pages/pages.jsonl").splitlines()]
            indexed = cdxj_timestamps(zf.read("indexes/index.cdx").decode())
        header, pages = lines[0], lines[1:]
        assert header["format"] == "json-pages-1.0"
        assert len(pages) == 6, package.name  # the second crawl's unchanged articles too
        assert {p["text"] for p in pages} == texts
        for page in pages:
            assert page["title"] and page["title"] != page["url"]
            # browsertrix-crawler's form: ISO 8601, milliseconds, UTC.
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", page["ts"])
            assert (page["url"], fourteen(page["ts"])) in indexed


def test_second_crawl_package_passes_wacz_validate(two_crawls: tuple[Path, list[Path]]) -> None:
    wacz = require_program(venv_program("wacz"), "wacz (py-wacz)", "pip install -e '.[test]'")
    _store, packages = two_crawls
    proc = subprocess.run(
        [str(wacz), "validate", "-f", str(packages[-1])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation succeeded" in proc.stdout


# ------------------------------------------------------------------ replaying the second package


def unchanged_article(store: Path, package: Path) -> tuple[str, str]:
    """An article the second crawl wrote as a revisit: its URL and a sentence of its body."""
    from tests.test_replayweb import Article, sentence

    with zipfile.ZipFile(package) as zf:
        found = [r for n in zf.namelist() if n.startswith("archive/") for r in records(zf.read(n))]
    revisited = {
        r.rec_headers.get_header("WARC-Target-URI") for r in found if r.rec_type == "revisit"
    }
    for sidecar in sorted((store / "text" / "tdi").rglob("*.json")):
        meta = json.loads(sidecar.read_text())
        if meta["url"] in revisited:
            text = sidecar.with_suffix(".txt").read_text()
            body = text.split("\n\n", 1)[1]
            return meta["url"], sentence(Article(meta["url"], meta["title"], body))
    raise AssertionError("no article of the second crawl is a revisit")


@pytest.mark.slow
def test_a_revisit_replays_from_the_second_package_alone_in_pywb(
    two_crawls: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    from tests.test_render import wayback_server
    from tests.test_replay import fetch

    store, packages = two_crawls
    second = packages[-1]
    url, expect = unchanged_article(store, second)
    # Only the second crawl's package: its WARCs and the originals it carries.
    warcs = []
    with zipfile.ZipFile(second) as zf:
        for name in zf.namelist():
            if name.startswith("archive/"):
                warcs.append(tmp_path / Path(name).name)
                warcs[-1].write_bytes(zf.read(name))
    (tmp_path / "pywb").mkdir()
    with wayback_server(warcs, tmp_path / "pywb") as base:
        rows = [
            json.loads(line)
            for line in fetch(f"{base}/coll/cdx?url={url}&output=json").body.decode().splitlines()
            if line.strip()
        ]
        [revisit] = [r for r in rows if r.get("mime") == "warc/revisit"]
        reply = fetch(f"{base}/coll/{revisit['timestamp']}id_/{url}")
    assert reply.status == 200
    body = reply.body
    if (reply.headers.get("Content-Encoding") or "").lower() == "gzip":
        body = gzip.decompress(body)
    # The archived page itself, resolved from the revisit to the original the package carries.
    import html

    page = html.unescape(re.sub(r"<[^>]+>", " ", body.decode("utf-8", "replace")))
    assert " ".join(expect.split()) in " ".join(page.split())


@pytest.mark.slow
def test_a_revisit_replays_from_the_second_package_alone_in_replayweb(
    two_crawls: tuple[Path, list[Path]], rwp: Any
) -> None:
    store, packages = two_crawls
    second = packages[-1]
    url, expect = unchanged_article(store, second)
    text = rwp.replay_text(rwp.add(second), url, expect, timeout=45)
    assert " ".join(expect.split()) in " ".join(text.split())
