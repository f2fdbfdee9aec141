"""End to end: `newsarchive demo` crawls the loopback mirror of TDI; every output is checked."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import subprocess
import sys
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.store.base import STORE_ID_KEY, LocalStore
from tests.conftest import ROOT, DemoRun, expected_text, mirror_file

SITE = "tdi"
HOST = "https://thediplomaticinsight.com"
SAMPLE_004 = "iranian-fm-discusses-gaza-with-hamas-and-islamic-jihad-leaders"
CHUNKED = "tdi-hosts-roundtable-on-climate-diplomacy-in-islamabad"
# The six posts of the mirror (routes.json): five in the feed, one only in the post sitemap.
ARTICLES = frozenset(
    {
        SAMPLE_004,
        CHUNKED,
        "world-polio-day-2023",
        "zambia-independence-day-2023",
        "president-of-pakistan-stands-with-palestine-calls-for-un-action",
        "iran-calls-for-oic-sanctions-on-israel-amid-gaza-crisis",
    }
)
ROUTES: list[dict[str, Any]] = json.loads(
    (ROOT / "crawler" / "mirror" / "sites" / SITE / "routes.json").read_text()
)["routes"]
T = TypeVar("T")
# <prefix>-<time>-<serial>-<crawl token>-<host>: the token tells two crawls' files apart.
WARC_NAME = re.compile(
    r"^tdi-(\d{4})(\d{2})(\d{2})\d{6}-\d{5}-[0-9a-f]{6}-[A-Za-z0-9._-]+\.warc\.gz$"
)


# ------------------------------------------------------------------ reading the store


def b32_sha1(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def http_fields(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    """First line and header fields of an HTTP head (CRLF lines, no folding)."""
    first, *rest = head.decode("latin-1").split("\r\n")
    fields = []
    for line in rest:
        if line:
            name, _, value = line.partition(":")
            fields.append((name, value.strip()))
    return first, fields


def field_values(fields: list[tuple[str, str]], name: str) -> list[str]:
    return [v for n, v in fields if n.lower() == name.lower()]


@dataclass(frozen=True)
class Record:
    """One WARC record: where it is, its WARC header, and its block split as stored."""

    path: Path
    offset: int
    length: int
    type: str
    version: str
    warc: dict[str, str]
    block: bytes
    first_line: str  # request or status line ("" for non-HTTP records)
    http: list[tuple[str, str]]
    payload: bytes  # the block after the HTTP head, or the whole block

    def get(self, name: str) -> str | None:
        return self.warc.get(name.lower())

    def http_header(self, name: str) -> list[str]:
        return field_values(self.http, name)


def read_warc(path: Path) -> list[Record]:
    """Every record through warcio, and each block again from its own gzip member."""
    data = path.read_bytes()
    records: list[Record] = []
    with path.open("rb") as stream:
        it = ArchiveIterator(stream)
        for rec in it:
            warcio_payload = rec.raw_stream.read()
            it.read_to_end(rec)
            offset, length = it.get_record_offset(), it.get_record_length()
            warc = {k.lower(): v for k, v in rec.rec_headers.headers}
            assert len(warc) == len(rec.rec_headers.headers), "repeated WARC header"
            member = gzip.decompress(data[offset : offset + length])
            warc_head, sep, rest = member.partition(b"\r\n\r\n")
            assert sep, f"{path.name}@{offset}: no end of WARC header"
            size = int(warc["content-length"])
            block, trailer = rest[:size], rest[size:]
            assert trailer == b"\r\n\r\n", f"{path.name}@{offset}: bad record end {trailer!r}"
            first_line, payload = "", block
            http: list[tuple[str, str]] = []
            if rec.rec_type in ("request", "response"):
                http_head, sep, payload = block.partition(b"\r\n\r\n")
                assert sep, f"{path.name}@{offset}: no end of HTTP head"
                first_line, http = http_fields(http_head)
                assert payload == warcio_payload, f"{path.name}@{offset}: warcio reads another body"
            records.append(
                Record(
                    path=path,
                    offset=offset,
                    length=length,
                    type=rec.rec_type,
                    version=rec.rec_headers.protocol,
                    warc=warc,
                    block=block,
                    first_line=first_line,
                    http=http,
                    payload=payload,
                )
            )
            assert warc_head.startswith(b"WARC/1.1\r\n")
    return records


def warc_files(store: Path) -> list[Path]:
    return sorted((store / "warc").rglob("*.warc.gz"))


def sidecars(store: Path) -> dict[str, dict[str, Any]]:
    """Sidecars by article id."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted((store / "text").rglob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        out[data["article_id"]] = data
    return out


def only(items: list[T], what: str) -> T:
    assert len(items) == 1, f"expected exactly one {what}, found {len(items)}: {items!r}"
    return items[0]


def route(url: str) -> dict[str, Any]:
    return only([r for r in ROUTES if r["url"] == url], f"mirror route {url}")


@pytest.fixture(scope="module")
def records(demo_store: Path) -> list[Record]:
    files = warc_files(demo_store)
    assert files, f"no WARC file in {demo_store}"
    return [rec for path in files for rec in read_warc(path)]


@pytest.fixture(scope="module")
def by_id(records: list[Record]) -> dict[str, Record]:
    ids = [r.get("WARC-Record-ID") for r in records]
    assert len(set(ids)) == len(ids), "repeated WARC-Record-ID"
    return {r.warc["warc-record-id"]: r for r in records}


@pytest.fixture(scope="module")
def articles(demo_store: Path) -> dict[str, dict[str, Any]]:
    found = sidecars(demo_store)
    assert set(found) == ARTICLES
    return found


@pytest.fixture(scope="module")
def report(demo_store: Path) -> dict[str, Any]:
    path = only(sorted((demo_store / "reports" / SITE).glob("*.json")), "crawl report")
    data: dict[str, Any] = json.loads(path.read_text())
    assert path.name == f"{data['crawl_id']}.json"
    return data


def responses(records: list[Record], url: str) -> list[Record]:
    return [r for r in records if r.type == "response" and r.get("WARC-Target-URI") == url]


# ------------------------------------------------------------------ 1. the command


def test_demo_exits_zero_and_names_every_output(demo_run: DemoRun, demo_store: Path) -> None:
    assert demo_run.returncode == 0
    assert demo_store == demo_run.cwd / "archive-demo"
    # Nothing but the store lands in the working directory.
    assert sorted(p.name for p in demo_run.cwd.iterdir()) == ["archive-demo"]
    out = demo_run.stdout
    assert f"store: {demo_store.resolve().as_uri()}\n" in out
    assert re.search(r"^tdi\s+ok\s+6 new articles, 0 failed, \d+ pages, 1 WARC file,", out, re.M)

    listed: dict[str, list[Path]] = {}
    label = None
    for line in out.splitlines():
        heading = re.fullmatch(r"([a-zA-Z ]+) \((\d+)\):", line)
        if heading:
            label = heading.group(1)
            listed[label] = []
        elif label and line.startswith("  ") and not line.startswith("  …"):
            listed[label].append(Path(line.strip()))
        else:
            label = None
    root = demo_store.resolve()
    expected = {
        "WARC files": sorted(root.glob("warc/tdi/*/*/*/*.warc.gz")),
        "article texts": sorted(root.glob("text/tdi/*/*/*/*.txt")),
        "article sidecars": sorted(root.glob("text/tdi/*/*/*/*.json")),
        "crawl reports": sorted(root.glob("reports/tdi/*.json")),
        "manifests": sorted(root.glob("manifests/tdi/*.json")),
    }
    assert set(listed) == set(expected)
    for kind, paths in expected.items():
        assert paths, f"no {kind} in the store"
        assert sorted(listed[kind]) == paths, kind
        assert all(p.is_file() for p in listed[kind]), kind
        assert re.search(rf"^{kind} \({len(paths)}\):$", out, re.M), kind
    assert len(expected["article texts"]) == len(ARTICLES)


# ------------------------------------------------------------------ 2. WARC files


def test_warc_files_are_valid_warc_1_1_one_gzip_member_per_record(
    demo_store: Path, records: list[Record], report: dict[str, Any]
) -> None:
    files = warc_files(demo_store)
    warcio = Path(sys.executable).parent / "warcio"
    check = subprocess.run(
        [str(warcio), "check", "-v", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    revisits = sum(r.type == "revisit" for r in records)
    # A revisit's payload is in the record it refers to: warcio cannot check it there.
    assert check.stdout.count("digest pass") == len(records) - revisits, check.stdout
    assert check.stdout.count("not checked (revisit)") == revisits
    assert "fail" not in check.stdout

    for path in files:
        match = WARC_NAME.match(path.name)
        assert match, path.name
        assert path.parent.relative_to(demo_store).as_posix() == "warc/tdi/{}/{}/{}".format(
            *match.groups()
        )
        in_file = [r for r in records if r.path == path]
        assert in_file[0].type == "warcinfo"
        assert [r.type for r in in_file].count("warcinfo") == 1
        info = dict(line.split(": ", 1) for line in in_file[0].block.decode().splitlines())
        assert info["software"].startswith("newsarchive/")
        assert info["spider"] == SITE
        assert info["crawl-id"] == report["crawl_id"]
        assert info["robots"] == "obey"
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", info["settings-digest"])
        assert info["format"] == "WARC File Format 1.1"
        assert in_file[0].get("WARC-Filename") == path.name

        # Walk the gzip members: one per record, at the offsets warcio reports.
        data = path.read_bytes()
        members: list[tuple[int, int]] = []
        pos = 0
        while pos < len(data):
            inflate = zlib.decompressobj(31)
            inflate.decompress(data[pos:])
            assert inflate.eof, f"{path.name}: gzip member at {pos} is cut"
            end = len(data) - len(inflate.unused_data)
            members.append((pos, end - pos))
            pos = end
        assert members == [(r.offset, r.length) for r in in_file]

    assert {r.version for r in records} == {"WARC/1.1"}
    types = Counter(r.type for r in records)
    assert types["response"] + types.pop("revisit", 0) == report["pages"]["responses"]
    types.pop("response")
    assert types == {
        "warcinfo": len(files),
        "request": report["pages"]["responses"],
        "conversion": len(ARTICLES),
        "metadata": len(ARTICLES),
    }


# ------------------------------------------------------------------ 3. HTTP exchanges


def test_a_payload_fetched_twice_is_a_revisit_of_the_first(
    records: list[Record], by_id: dict[str, Record]
) -> None:
    """www's robots.txt redirects to the bare host's, already fetched: the same payload again."""
    revisits = [r for r in records if r.type == "revisit"]
    assert [r.get("WARC-Target-URI") for r in revisits] == [
        "https://thediplomaticinsight.com/robots.txt"
    ]
    for rev in revisits:
        first = by_id[rev.warc["warc-refers-to"]]
        assert first.type == "response"
        assert first.get("WARC-Target-URI") == rev.get("WARC-Refers-To-Target-URI")
        assert first.get("WARC-Date") == rev.get("WARC-Refers-To-Date")
        assert first.get("WARC-Payload-Digest") == rev.get("WARC-Payload-Digest")
        assert rev.get("WARC-Profile").endswith("/revisit/identical-payload-digest")


def test_every_response_has_exactly_one_request_and_vice_versa(
    records: list[Record], by_id: dict[str, Record]
) -> None:
    requests = [r for r in records if r.type == "request"]
    resps = [r for r in records if r.type in ("response", "revisit")]
    assert resps
    linked = Counter(r.get("WARC-Concurrent-To") for r in requests)
    for resp in resps:
        assert linked[resp.get("WARC-Record-ID")] == 1, resp.get("WARC-Target-URI")
    for req in requests:
        target = by_id[req.warc["warc-concurrent-to"]]
        assert target.type in ("response", "revisit")
        assert target.get("WARC-Target-URI") == req.get("WARC-Target-URI")
    assert len(requests) == len(resps)


def test_request_records_keep_the_request_line_and_headers_sent(records: list[Record]) -> None:
    info = dict(
        line.split(": ", 1) for line in records[0].block.decode().splitlines() if ": " in line
    )
    user_agent = info["http-header-user-agent"]
    assert user_agent.startswith("newsarchive/")
    requests = [r for r in records if r.type == "request"]
    for req in requests:
        url = req.warc["warc-target-uri"]
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        assert req.first_line == f"GET {target} HTTP/1.1", url
        assert req.http[0] == ("Host", parts.netloc), url
        assert req.http_header("User-Agent") == [user_agent], url
        assert "gzip" in only(req.http_header("Accept-Encoding"), "Accept-Encoding"), url
        assert req.payload == b""
    first_lines = {r.first_line for r in requests}
    assert f"GET /{SAMPLE_004}/ HTTP/1.1" in first_lines
    assert "GET /robots.txt HTTP/1.1" in first_lines
    # The tdi spider never follows the ?p= shortlinks of the Link headers, so no URL of the demo
    # has a query: the loop above checks path and query, the demo only exercises the path.


def test_exchanges_captured_include_robots_feed_sitemaps_redirect_and_articles(
    records: list[Record],
) -> None:
    statuses = {(r.warc["warc-target-uri"], r.first_line) for r in records if r.type == "response"}
    ok = "HTTP/1.1 200 OK"
    for path in ("robots.txt", "feed/", "wp-sitemap.xml", "wp-sitemap-posts-post-1.xml"):
        assert (f"{HOST}/{path}", ok) in statuses, path
    for slug in ARTICLES:
        assert (f"{HOST}/{slug}/", ok) in statuses, slug
    # The feed names the old www host for one post: a 301, with its real reason phrase.
    moved = only(
        responses(records, "https://www.thediplomaticinsight.com/world-polio-day-2023/"), "301"
    )
    assert moved.first_line == "HTTP/1.1 301 Moved Permanently"
    assert moved.http_header("Location") == [f"{HOST}/world-polio-day-2023/"]
    # Every request of the demo went through the mirror's proxy, whose address is not the site's.
    assert all(r.get("WARC-IP-Address") is None for r in records), "proxy address recorded"

    # Every 200 of a saved file holds that file as the mirror served it.
    for rec in records:
        if rec.type != "response" or not rec.first_line.endswith(" 200 OK"):
            continue
        served = route(rec.warc["warc-target-uri"])
        body = rec.payload
        if served.get("encoding") == "gzip":
            body = gzip.decompress(body)
        assert body == mirror_file(SITE, served["file"]), rec.warc["warc-target-uri"]


@pytest.mark.parametrize("url", [f"{HOST}/{SAMPLE_004}/", f"{HOST}/feed/"])
def test_gzip_encoded_response_is_stored_as_received(records: list[Record], url: str) -> None:
    rec = responses(records, url)[0]
    assert rec.http_header("Content-Encoding") == ["gzip"]
    assert rec.payload[:2] == b"\x1f\x8b"
    assert rec.http_header("Content-Length") == [str(len(rec.payload))]
    assert gzip.decompress(rec.payload) == mirror_file(SITE, route(url)["file"])


def test_chunked_response_is_stored_dechunked_with_its_length(records: list[Record]) -> None:
    assert route(f"{HOST}/{CHUNKED}/").get("chunked") is True
    rec = only(responses(records, f"{HOST}/{CHUNKED}/"), "chunked response")
    assert rec.http_header("Transfer-Encoding") == []
    assert rec.http_header("Content-Encoding") == []
    assert rec.http_header("Content-Length") == [str(len(rec.payload))]
    assert rec.payload == mirror_file(SITE, f"{CHUNKED}.html")


def test_block_and_payload_digests_verify(records: list[Record]) -> None:
    for rec in records:
        where = f"{rec.type} {rec.get('WARC-Target-URI')}"
        assert rec.get("WARC-Block-Digest") == b32_sha1(rec.block), where
        if rec.type == "response":
            assert rec.get("WARC-Payload-Digest") == b32_sha1(rec.payload), where


# ------------------------------------------------------------------ 4-5. text and sidecars


def test_sample_004_text_equals_the_expected_sample(
    demo_store: Path, articles: dict[str, dict[str, Any]]
) -> None:
    key = articles[SAMPLE_004]["text_key"]
    assert key.startswith("text/tdi/") and key.endswith(f"/{SAMPLE_004}.txt")
    assert (demo_store / key).read_bytes() == expected_text("004_2c00aa427ae8dd86.txt")


def test_sidecars_point_at_their_warc_records(
    demo_store: Path,
    articles: dict[str, dict[str, Any]],
    records: list[Record],
    by_id: dict[str, Record],
) -> None:
    store = LocalStore(demo_store)
    sample = articles[SAMPLE_004]
    assert sample["authors"] == ["Maham Shabir"]
    assert sample["published"].startswith("2023-10-24")
    assert sample["title"] == "Iranian FM discusses Gaza with Hamas and Islamic Jihad leaders"

    for article_id, car in articles.items():
        assert car["site"] == SITE
        assert car["url"] == f"{HOST}/{article_id}/"
        warc = car["warc"]
        assert store.exists(warc["key"])
        assert warc["key"].rsplit("/", 1)[1] == warc["file"]
        data = store.get_range(warc["key"], warc["offset"], warc["length"])
        inflate = zlib.decompressobj(31)
        inflate.decompress(data)
        assert inflate.eof and inflate.unused_data == b"", "not exactly one gzip member"
        [rec] = list(ArchiveIterator(io.BytesIO(data)))
        assert rec.rec_type == "response"
        assert rec.rec_headers.get_header("WARC-Record-ID") == warc["record_id"]
        assert rec.rec_headers.get_header("WARC-Target-URI") == car["url"]
        response = by_id[warc["record_id"]]
        assert car["payload_digest"] == response.get("WARC-Payload-Digest")
        assert car["payload_digest"] == b32_sha1(response.payload)
        assert car["capture_time"] == response.get("WARC-Date")

        text = (demo_store / car["text_key"]).read_bytes()
        assert car["text_digest"] == "sha256:" + sha256(text)
        assert car["text_length"] == len(text)

        refer = [r for r in records if r.get("WARC-Refers-To") == warc["record_id"]]
        conversion = only([r for r in refer if r.type == "conversion"], "conversion")
        assert conversion.get("WARC-Record-ID") == car["conversion_record_id"]
        # Not the page's URL, so replay tools never take the text for a capture of the page.
        assert conversion.get("WARC-Target-URI") == "urn:text:" + car["url"]
        assert conversion.get("WARC-Refers-To-Target-URI") == car["url"]
        assert conversion.get("WARC-Refers-To-Date") == car["capture_time"]
        assert conversion.block == text
        metadata = only([r for r in refer if r.type == "metadata"], "metadata")
        assert metadata.get("WARC-Record-ID") == car["metadata_record_id"]
        _, fields = http_fields(b"-\r\n" + metadata.block)
        assert field_values(fields, "article-id") == [article_id]
        via = [json.loads(v) for v in field_values(fields, "discovered-via")]
        assert via == car["discovery"]
        assert all(
            d["source"] in (f"{HOST}/feed/", f"{HOST}/wp-sitemap-posts-post-1.xml") for d in via
        )
        if car["request_url"] != car["url"]:
            assert field_values(fields, "request-url") == [car["request_url"]]

    discovered = {(d["via"], d["source"]) for d in sample["discovery"]}
    assert ("feed", f"{HOST}/feed/") in discovered
    only_in_sitemap = articles["iran-calls-for-oic-sanctions-on-israel-amid-gaza-crisis"]
    assert [d["via"] for d in only_in_sitemap["discovery"]] == ["sitemap"]


# ------------------------------------------------------------------ 6-7. manifest and report


def test_manifest_lists_every_object_with_size_and_sha256(
    demo_store: Path, report: dict[str, Any]
) -> None:
    path = only(sorted((demo_store / "manifests" / SITE).glob("*.json")), "manifest")
    manifest = json.loads(path.read_text())
    assert manifest["crawl_id"] == report["crawl_id"]
    assert path.name == f"{manifest['crawl_id']}.json"
    listed = {o["key"]: o for o in manifest["objects"]}
    assert len(listed) == len(manifest["objects"]), "an object listed twice"
    # Every object but the manifest itself and the store's identity (no crawl's object).
    stored = set(LocalStore(demo_store).list()) - {path.relative_to(demo_store).as_posix()}
    assert set(listed) == stored - {STORE_ID_KEY}
    assert STORE_ID_KEY in stored
    for key, obj in listed.items():
        data = (demo_store / key).read_bytes()
        assert (obj["size"], obj["sha256"]) == (len(data), sha256(data)), key
    assert manifest["report"] == report
    assert manifest["report"]["articles"]["new"] >= 6
    assert manifest["report"]["articles"]["failed"] == 0
    assert manifest["report"]["finish_reason"] == "finished"
    assert not [p for p in (demo_store / ".spool").rglob("*") if p.name.endswith(".open")]


def test_run_report_counts_pages_bytes_and_warc_files(
    demo_store: Path, report: dict[str, Any], records: list[Record]
) -> None:
    resps = [r for r in records if r.type == "response"]
    revisits = [r for r in records if r.type == "revisit"]
    pages = report["pages"]
    assert pages["by_status"]["200"] >= 1 + len(ARTICLES)
    assert pages["by_status"]["301"] >= 1
    assert sum(pages["by_status"].values()) == pages["responses"] == len(resps) + len(revisits)
    assert pages["download_errors"] == 0
    assert pages["bytes_received"] >= sum(len(r.payload) for r in resps)
    files = sorted(p.relative_to(demo_store).as_posix() for p in warc_files(demo_store))
    assert report["warc"]["files"] == files
    assert report["warc"]["records"] == sum(r.type != "warcinfo" for r in records)
    assert report["warc"]["errors"] == 0
    assert isinstance(report["duration_s"], float) and report["duration_s"] > 0
    assert report["articles"]["new"] == len(ARTICLES)
    assert report["site"] == SITE


# ------------------------------------------------------------------ 8. CDXJ index


def test_cdxj_indexer_lists_every_capture_at_the_sidecar_offsets(
    demo_store: Path, articles: dict[str, dict[str, Any]], records: list[Record]
) -> None:
    indexer = Path(sys.executable).parent / "cdxj-indexer"
    proc = subprocess.run(
        [str(indexer), *map(str, warc_files(demo_store))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    index = []
    for line in proc.stdout.splitlines():
        urlkey, timestamp, fields = line.split(" ", 2)
        index.append((urlkey, timestamp, json.loads(fields)))
    indexed = {(e[2]["filename"], int(e[2]["offset"]), int(e[2]["length"])) for e in index}
    for rec in records:
        if rec.type == "response":
            assert (rec.path.name, rec.offset, rec.length) in indexed, rec.get("WARC-Target-URI")
    for article_id, car in articles.items():
        urlkey, timestamp, entry = only(
            [e for e in index if e[2]["url"] == car["url"] and e[2].get("status") == "200"],
            f"capture of {car['url']}",
        )
        assert urlkey == f"com,thediplomaticinsight)/{article_id}"
        assert timestamp == re.sub(r"\D", "", car["capture_time"])[:14]
        assert entry["mime"] == "text/html"
        assert entry["digest"] == car["payload_digest"]
        assert entry["filename"] == car["warc"]["file"]
        assert (int(entry["offset"]), int(entry["length"])) == (
            car["warc"]["offset"],
            car["warc"]["length"],
        )
