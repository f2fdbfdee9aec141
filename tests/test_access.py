"""Researcher access over a real demo of all five sites: indexes, snapshots, get, export,
reindex (local and S3), the CDX API against pywb's, and the browse page in Chromium."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.fetch.render import CHROMIUM_ARGS
from crawler.layout import default_catalog_url
from crawler.ops.cli import main
from crawler.store.base import LocalStore
from crawler.store.uri import open_store
from tests.conftest import (
    ROOT,
    DemoRun,
    SeaweedFS,
    expected_text,
    pywb_bin,
    require_program,
    s3_env,
    venv_program,
)

pytestmark = pytest.mark.slow

SITES = ("almasirah", "irna", "president", "presstv", "tdi")
SAMPLES = {
    "000_02c3192fcde76f36.txt": "almasirah",
    "001_89df22862bce6eb6.txt": "irna",
    "002_93a6c316173974e2.txt": "president",
    "003_6cbe9dcc7c9c0c4b.txt": "almasirah",
    "004_2c00aa427ae8dd86.txt": "tdi",
}
CHROMIUM = Path("/usr/bin/chromium")
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# pywb adds where it found a line and its access decision; the rest must be the same.
PYWB_ONLY = ("source", "source-coll", "access")


@dataclass
class Cli:
    code: int
    out: bytes
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def cli(*args: str) -> Cli:
    out = io.BytesIO()
    text = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    err = io.StringIO()
    with redirect_stdout(text), redirect_stderr(err):
        code = main(list(args))
    text.flush()
    return Cli(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def store(demo_all_run: DemoRun) -> Path:
    """The store of `newsarchive demo` of all five mirrored sites (shared by the session)."""
    run = demo_all_run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.store


def sample_sidecar(store: Path, sample: str) -> dict[str, Any]:
    want = expected_text(sample)
    site = SAMPLES[sample]
    [path] = [p for p in (store / "text" / site).rglob("*.txt") if p.read_bytes() == want]
    data: dict[str, Any] = json.loads(path.with_suffix(".json").read_text())
    return data


def alias(url: str) -> str:
    """Another URL of the same article: the site's other host, another slug."""
    if "english.masirahtv.net" in url:
        return url.replace("english.masirahtv.net", "english.almasirah.net.ye")
    if "english.almasirah.net/" in url:
        return url.replace("english.almasirah.net/", "english.masirahtv.net/")
    if "en.irna.ir/news/" in url:
        return url.rsplit("/", 1)[0] + "/a-different-slug"
    if "thediplomaticinsight.com" in url:
        return url.replace(
            "https://thediplomaticinsight.com", "https://www.thediplomaticinsight.com"
        )
    return url


def read_records(path: Path) -> list[tuple[str, Any, bytes]]:
    """(type, WARC headers, content) of every record in a WARC file."""
    with path.open("rb") as fh:
        return [(r.rec_type, r.rec_headers, r.content_stream().read()) for r in ArchiveIterator(fh)]


def manifest(store: Path, site: str) -> dict[str, Any]:
    [path] = sorted((store / "manifests" / site).glob("*.json"))
    data: dict[str, Any] = json.loads(path.read_text())
    return data


# ------------------------------------------------------------------ indexes in the store


def challenge_offsets(warc: Path) -> dict[int, str]:
    """Offsets of the records marked as challenge pages (WARC-Challenge), and the mark."""
    from warcio.archiveiterator import ArchiveIterator

    out = {}
    with warc.open("rb") as fh:
        records = ArchiveIterator(fh)
        for rec in records:
            mark = rec.rec_headers.get_header("WARC-Challenge")
            if mark and rec.rec_type in ("response", "revisit"):
                out[records.get_record_offset()] = mark
    return out


@pytest.mark.parametrize("site", SITES)
def test_each_crawl_stores_cdxj_parquet_and_wacz_listed_in_its_manifest(
    store: Path, site: str
) -> None:
    import duckdb

    found = manifest(store, site)
    crawl_id = found["crawl_id"]
    listed = {o["key"] for o in found["objects"]}
    warcs = sorted(k for k in listed if k.startswith("warc/"))
    assert warcs
    indexer = require_program(venv_program("cdxj-indexer"), "cdxj-indexer", "pip install -e .")
    for key in warcs:
        cdxj = "index/" + key.removeprefix("warc/").removesuffix(".warc.gz") + ".cdxj"
        assert cdxj in listed
        # Exactly what cdxj-indexer (pywb's format) writes for that file, sorted, but for a
        # challenge page (IRNA's): keyed urn:challenge:<url> and saying so, never a capture
        # of the page it stood in front of.
        reference = subprocess.run(
            [str(indexer), "--sort", str(store / key)], capture_output=True, text=True, check=True
        ).stdout
        challenges = challenge_offsets(store / key)
        expected = []
        for line in reference.splitlines(keepends=True):
            _urlkey, stamp, block = line.split(" ", 2)
            fields = json.loads(block)
            if int(fields["offset"]) in challenges:
                fields["challenge"] = challenges[int(fields["offset"])]
                line = f"urn:challenge:{fields['url']} {stamp} {json.dumps(fields)}\n"
            expected.append(line)
        assert (store / cdxj).read_text() == "".join(sorted(expected))
        if site == "irna":
            assert challenges, "the demo's IRNA crawl met no challenge"
    parquet = f"index/{site}/{crawl_id}.parquet"
    wacz = f"wacz/{site}/{crawl_id}.wacz"
    assert {parquet, wacz} <= listed
    rows = duckdb.sql(
        f"select record_type, text_key, text, len(records) as n "
        f"from read_parquet('{store / parquet}')"
    ).fetchall()
    responses = sum(
        1 for k in warcs for r in read_records(store / k) if r[0] in ("response", "revisit")
    )
    assert len(rows) == responses
    with_text = [r for r in rows if r[1]]
    assert len(with_text) == found["report"]["articles"]["new"]
    # Request, conversion (the text), metadata; a page rendered in Chromium (president.ir)
    # also its DOM, which the text refers to, and the page's rendering metadata.
    expected = 5 if site == "president" else 3
    for _type, key, text, linked in with_text:
        assert text.encode() == (store / key).read_bytes()
        assert linked == expected


def test_the_wacz_passes_wacz_validate(store: Path) -> None:
    wacz = require_program(venv_program("wacz"), "wacz (py-wacz)", "pip install -e '.[test]'")
    packages = sorted((store / "wacz").rglob("*.wacz"))
    assert len(packages) == len(SITES)
    # One is enough to prove the format (py-wacz takes seconds to start).
    for package in packages[-1:]:
        proc = subprocess.run(
            [str(wacz), "validate", "-f", str(package)], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Validation succeeded" in proc.stdout


# ------------------------------------------------------------------ snapshots, get


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_snapshots_and_get_text_of_every_sample_by_url_and_alias(store: Path, sample: str) -> None:
    car = sample_sidecar(store, sample)
    for ref in (car["url"], alias(car["url"]), f"{car['site']}:{car['article_id']}"):
        snap = cli("snapshots", ref, "--store", str(store), "--json")
        assert snap.code == 0, snap.err
        [capture] = [c for c in snap.json() if c["text_key"]]
        assert capture["record_id"] == car["warc"]["record_id"]
        assert capture["text_digest"] == car["text_digest"]
        assert capture["payload_digest"] == car["payload_digest"]
        got = cli("get", ref, "--store", str(store), "--as", "text")
        assert got.code == 0, got.err
        assert got.out == expected_text(sample)
    table = cli("snapshots", car["url"], "--store", str(store))
    assert f"{car['site']}:{car['article_id']}: " in table.out.decode()
    sidecar = cli("get", car["url"], "--store", str(store), "--as", "json").json()
    assert sidecar["text_digest"] == car["text_digest"]
    page = cli("get", car["url"], "--store", str(store), "--as", "html")
    assert page.code == 0
    assert car["title"].split()[0].encode() in page.out


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_get_as_warc_is_a_valid_warc_of_exactly_that_capture(
    store: Path, sample: str, tmp_path: Path
) -> None:
    car = sample_sidecar(store, sample)
    out = tmp_path / "capture.warc.gz"
    got = cli("get", car["url"], "--store", str(store), "--as", "warc", "-o", str(out))
    assert got.code == 0, got.err
    check = subprocess.run(
        [str(venv_program("warcio")), "check", str(out)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    found = read_records(out)
    # The extract says where it came from: a warcinfo first, naming the store and the query.
    assert found[0][0] == "warcinfo"
    info = found[0][2].decode()
    assert f"source-store: {store.as_uri()}" in info or str(store) in info, info
    records = {kind: (headers, content) for kind, headers, content in found[1:]}
    dom = car["warc"].get("rendered_dom_record_id")
    # A page rendered in Chromium (president.ir) brings the DOM its text was extracted from.
    kinds = ["conversion", "metadata", "request", "response", *(["resource"] if dom else [])]
    assert sorted(records) == sorted(kinds)
    if dom:
        assert records["resource"][0].get_header("WARC-Record-ID") == dom
        assert records["conversion"][0].get_header("WARC-Refers-To") == dom
    response = records["response"][0]
    assert response.get_header("WARC-Record-ID") == car["warc"]["record_id"]
    assert response.get_header("WARC-Payload-Digest") == car["payload_digest"]
    assert records["request"][0].get_header("WARC-Concurrent-To") == car["warc"]["record_id"]
    assert records["conversion"][1] == expected_text(sample)
    # Fetched by byte ranges: the small WARC is much smaller than the crawl's file.
    assert out.stat().st_size < (store / car["warc"]["key"]).stat().st_size / 2


# ------------------------------------------------------------------ export


def test_export_parquet_opens_in_duckdb_with_one_row_per_article(
    store: Path, tmp_path: Path
) -> None:
    import duckdb

    dest = tmp_path / "almasirah.parquet"
    done = cli(
        "export", "--site", "almasirah", "--format", "parquet", str(dest), "--store", str(store)
    )
    assert done.code == 0, done.err
    assert "exported 4 articles" in done.out.decode()
    rows = duckdb.sql(
        f"select article_key, url, title, tags, text, text_key, warc_key, warc_offset "
        f"from '{dest}' order by article_key"
    ).fetchall()
    texts = sorted((store / "text" / "almasirah").rglob("*.txt"))
    assert len(rows) == len(texts) == 4
    for key, _url, title, tags, text, text_key, _warc, offset in rows:
        assert text.encode() == (store / text_key).read_bytes()
        assert title and offset >= 0 and isinstance(tags, list), key
    sample = sample_sidecar(store, "003_6cbe9dcc7c9c0c4b.txt")
    [match] = [r for r in rows if r[0] == sample["article_id"]]
    assert match[3] == ["Iraq", "Iran", "Palestine", "Israel"]


def test_export_jsonl_text_and_warc(store: Path, tmp_path: Path) -> None:
    args = ("--site", "tdi", "--from", "2000", "--to", "2999-12", "--store", str(store))
    assert cli("export", *args, "--format", "jsonl", str(tmp_path / "t.jsonl")).code == 0
    lines = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert len(lines) == 6
    sample = sample_sidecar(store, "004_2c00aa427ae8dd86.txt")
    [line] = [x for x in lines if x["article_id"] == sample["article_id"]]
    assert line["text"].encode() == expected_text("004_2c00aa427ae8dd86.txt")
    assert line["authors"] == ["Maham Shabir"]
    assert cli("export", *args, "--format", "text", str(tmp_path / "texts")).code == 0
    assert len(list((tmp_path / "texts").rglob("*.txt"))) == 6
    assert cli("export", *args, "--format", "warc", str(tmp_path / "t.warc.gz")).code == 0
    check = subprocess.run([str(venv_program("warcio")), "check", str(tmp_path / "t.warc.gz")])
    assert check.returncode == 0
    kinds = [r[0] for r in read_records(tmp_path / "t.warc.gz")]
    assert kinds.count("response") == 6 and kinds.count("conversion") == 6
    assert kinds[0] == "warcinfo"
    none = cli(
        "export",
        "--site",
        "tdi",
        "--from",
        "2001",
        "--to",
        "2001",
        "--store",
        str(store),
        "--format",
        "jsonl",
        str(tmp_path / "none.jsonl"),
    )
    assert none.code == 1 and none.err.startswith("error: no archived article")


# ------------------------------------------------------------------ reindex


def answers(store_arg: str, catalog: str, refs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ref in refs:
        snap = cli("snapshots", ref, "--store", store_arg, "--catalog", catalog, "--json")
        text = cli("get", ref, "--store", store_arg, "--catalog", catalog, "--as", "text")
        warc = cli("get", ref, "--store", store_arg, "--catalog", catalog, "--as", "warc")
        assert snap.code == warc.code == 0, snap.err + warc.err
        # The extract's own warcinfo (its id and date are new each time) is left out.
        out[ref] = (snap.json(), text.code, text.out, text.err, _without_first_member(warc.out))
    return out


def _without_first_member(data: bytes) -> bytes:
    """A WARC's bytes after its first gzip member (the extract's warcinfo)."""
    inflater = zlib.decompressobj(31)
    inflater.decompress(data)
    assert inflater.eof
    return inflater.unused_data


def sample_refs(store: Path) -> list[str]:
    refs = [sample_sidecar(store, s)["url"] for s in sorted(SAMPLES)]
    return [*refs, "https://thediplomaticinsight.com/robots.txt"]


@pytest.fixture(scope="module")
def original(store: Path) -> dict[str, Any]:
    return answers(str(store), f"sqlite:///{store / '.catalog.sqlite'}", sample_refs(store))


@pytest.mark.parametrize("source", ["parquet", "warcs"])
def test_reindex_of_a_local_store_gives_the_same_answers(
    store: Path, original: dict[str, Any], tmp_path: Path, source: str
) -> None:
    copy = tmp_path / "store"
    shutil.copytree(store, copy, ignore=shutil.ignore_patterns(".catalog.sqlite*", ".spool"))
    if source == "warcs":
        # A crawl made before indexes were written: its WARC files are read instead.
        for path in (copy / "manifests").rglob("*.json"):
            data = json.loads(path.read_text())
            data["objects"] = [o for o in data["objects"] if not o["key"].startswith("index/")]
            path.write_text(json.dumps(data))
    catalog = f"sqlite:///{copy / '.catalog.sqlite'}"
    done = cli("reindex", "--store", str(copy), "--quiet")
    assert done.code == 0, done.err
    want = f"({5 if source == 'parquet' else 0} from their Parquet index"
    assert want in done.out.decode()
    assert answers(str(copy), catalog, sample_refs(store)) == original
    again = cli("reindex", "--store", str(copy), "--quiet")
    assert "(0 new)" in again.out.decode()


def test_reindex_from_an_s3_bucket_gives_the_same_answers(
    store: Path,
    original: dict[str, Any],
    seaweedfs: SeaweedFS,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = seaweedfs.new_bucket()
    remote = open_store(f"s3://{bucket}/news", seaweedfs.options())
    for key in LocalStore(store).list():
        remote.put_file(key, store / key)
    for name, value in s3_env(seaweedfs.endpoint).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("ARCHIVE_STORE_S3_ADDRESSING_STYLE", "path")
    monkeypatch.setenv("ARCHIVE_SPOOL_DIR", str(tmp_path / "spool"))
    uri = f"s3://{bucket}/news"
    # No catalog yet on this machine: said in one line, and none is made by a read.
    empty = cli("get", sample_refs(store)[0], "--store", uri)
    assert empty.code == 2 and "run `newsarchive reindex" in empty.err
    assert not (tmp_path / "spool").exists()
    done = cli("reindex", "--store", uri, "--quiet")
    assert done.code == 0, done.err
    # One catalog per remote store, beside the spool.
    catalog = default_catalog_url(None, tmp_path / "spool", uri)
    assert catalog.startswith(f"sqlite:///{tmp_path / 'spool'}/catalog-{bucket}-")
    assert answers(uri, catalog, sample_refs(store)) == original


# ------------------------------------------------------------------ bad input


def test_serve_on_a_busy_port_is_one_line(store: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        got = cli("serve", "--store", str(store), "--port", str(port))
    assert got.code == 1
    assert got.err.splitlines() == [
        f"error: cannot listen on http://127.0.0.1:{port}/: Address already in use (--port)"
    ]


def test_bad_input_is_one_line_and_a_non_zero_exit(store: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [  # data the archive lacks: 1; a value that cannot be meant: 2 (usage)
        (("snapshots", "https://unknown.example/x"), "no capture of", 1),
        (("get", "https://unknown.example/x"), "no capture of", 1),
        (("snapshots", "tdi:world-polio-day-2023", "--from", "June 2025"), "unparseable date", 2),
        (("get", "tdi:world-polio-day-2023", "--at", "2025-02-30"), "unparseable date", 2),
        (("snapshots", "--site", "tdi", "--to", "9999"), "out of range", 2),
    ]
    for args, message, code in cases:
        got = cli(*args, "--store", str(store))
        assert got.code == code, args
        assert got.err.count("\n") == 1 and message in got.err, got.err
    no_manifests = cli("reindex", "--store", str(empty))
    assert no_manifests.code == 1 and no_manifests.err.count("\n") == 1
    assert "no manifests" in no_manifests.err
    missing = cli("snapshots", "x", "--store", str(tmp_path / "nothing-here"))
    assert missing.code == 2 and missing.err.count("\n") == 1
    # A read command on a directory without a catalog writes nothing into it.
    untouched = tmp_path / "untouched"
    untouched.mkdir()
    bare = cli("snapshots", "--site", "tdi", "--store", str(untouched))
    assert bare.code == 2 and "no catalog at" in bare.err and "reindex" in bare.err
    assert sorted(p.name for p in untouched.iterdir()) == []


# ------------------------------------------------------------------ serve


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"exited {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            with OPENER.open(url, timeout=2):
                return
        except (OSError, urllib.error.URLError):
            if time.monotonic() > deadline:
                pytest.fail(f"{url} did not answer: {log.read_text()[-3000:]}")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def service(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    program = venv_program("newsarchive")
    cmd = [str(program)] if program else [sys.executable, "-m", "crawler.ops.cli"]
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [*cmd, "serve", "--store", str(store), "--port", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(base + "/", proc, log)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def pywb_wayback(cdxj_files: Iterable[Path], root: Path) -> Iterator[str]:
    """pywb's `wayback` on loopback, these CDXJ files the indexes of its collection "coll"."""
    from tests.test_replay import offline_env

    bindir = require_program(pywb_bin(), "pywb", "set NEWSARCHIVE_PYWB_BIN (see test_replay)")
    indexes = root / "collections" / "coll" / "indexes"
    indexes.mkdir(parents=True)
    (root / "collections" / "coll" / "archive").mkdir()
    for path in cdxj_files:
        shutil.copy(path, indexes / path.name)
    port = free_port()
    log = root / "wayback.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [str(bindir / "wayback"), "--bind", "127.0.0.1", "--port", str(port), "--threads", "1"],
            cwd=root,
            env=offline_env(),
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}/coll"
    try:
        wait_for(base + "/cdx?url=example.com", proc, log)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def pywb_cdx(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """pywb's `wayback` with our CDXJ files as a collection's indexes."""
    cdxj_files = sorted((store / "index").rglob("*.cdxj"))
    with pywb_wayback(cdxj_files, tmp_path_factory.mktemp("pywb-cdx")) as base:
        yield base


TDI_ROBOTS = "thediplomaticinsight.com/robots.txt"
POLIO = "https://thediplomaticinsight.com/world-polio-day-2023/"
CDX_QUERIES: list[dict[str, Any]] = [
    {"url": TDI_ROBOTS},
    {"url": TDI_ROBOTS, "output": "json"},
    {"url": POLIO, "output": "json"},
    {"url": "thediplomaticinsight.com/", "matchType": "prefix", "output": "json", "limit": "3"},
    {"url": "thediplomaticinsight.com", "matchType": "host", "output": "json"},
    {"url": "*.presstv.ir", "output": "json"},
    {"url": "presstv.ir", "matchType": "domain", "output": "json", "filter": "mime:html"},
    {
        "url": "thediplomaticinsight.com",
        "matchType": "domain",
        "output": "json",
        "filter": ["!mime:warc/revisit", "~status:2.."],
    },
    {"url": "en.irna.ir/*", "output": "json", "filter": "=status:200", "sort": "reverse"},
    {"url": "en.irna.ir/*", "from": "2000", "to": "2001", "output": "json"},
    {"url": "en.irna.ir/*", "from": "2000", "to": "2999"},
    {"url": "https://unknown.example/", "output": "json"},
    # Output modes and field lists.
    {"url": TDI_ROBOTS, "output": "cdxj"},
    {"url": TDI_ROBOTS, "output": "text"},
    {"url": "president.ir/*", "output": "text", "limit": "4"},
    {"url": TDI_ROBOTS, "fl": "urlkey,timestamp,status"},
    {"url": TDI_ROBOTS, "fl": "status,bogus"},
    {"url": TDI_ROBOTS, "output": "json", "fl": "timestamp,status,urlkey"},
    {"url": TDI_ROBOTS, "output": "json", "fields": "url,digest"},
    {"url": TDI_ROBOTS, "output": "json", "fl": "url", "fields": "mime"},
    {"url": TDI_ROBOTS, "output": "text", "fl": "urlkey,timestamp,url,mime,bogus"},
    {"url": "en.irna.ir/*", "output": "text", "fl": "timestamp,status,length", "limit": "5"},
    {"url": TDI_ROBOTS, "output": "link"},
    {"url": TDI_ROBOTS, "output": "link", "fl": "url"},
    {"url": "president.ir/*", "output": "link", "sort": "reverse", "limit": "5"},
    {"url": "https://unknown.example/", "output": "link"},
    # Limits and order.
    {"url": TDI_ROBOTS, "limit": "-1"},
    {"url": TDI_ROBOTS, "limit": "-2", "output": "json"},
    {"url": TDI_ROBOTS, "limit": "0"},
    {"url": TDI_ROBOTS, "limit": "1", "output": "json"},
    {"url": TDI_ROBOTS, "sort": "reverse", "limit": "2"},
    {"url": TDI_ROBOTS, "sort": "reverse", "limit": "1", "output": "json"},
    {"url": TDI_ROBOTS, "sort": "reverse", "limit": "0"},
    {"url": TDI_ROBOTS, "reverse": "1", "fl": "timestamp,status"},
    {"url": TDI_ROBOTS, "reverse": "0", "fl": "timestamp,status"},
    {"url": "president.ir/*", "sort": "reverse", "limit": "4", "output": "json"},
    # Nearest first.
    {"url": TDI_ROBOTS, "closest": "2000", "sort": "closest", "output": "json"},
    {"url": TDI_ROBOTS, "closest": "2999", "sort": "closest", "output": "json"},
    {"url": "president.ir/*", "closest": "2999", "fl": "urlkey,timestamp", "limit": "6"},
    {"url": "president.ir/*", "closest": "now", "sort": "closest", "limit": "3"},
    {"url": TDI_ROBOTS, "sort": "closest", "fl": "timestamp,status"},
    {"url": TDI_ROBOTS, "closest": "2999", "sort": "reverse", "fl": "timestamp,status"},
    {"url": TDI_ROBOTS, "closest": "2000", "limit": "0"},
    {"url": TDI_ROBOTS, "closest": "not-a-time", "output": "json"},
    # matchType and url forms.
    {"url": "*.thediplomaticinsight.com", "matchType": "host", "output": "json"},
    {"url": "thediplomaticinsight.com/*", "matchType": "exact", "output": "json"},
    {"url": "ir", "matchType": "domain", "fl": "urlkey,timestamp", "output": "json"},
    {"url": "president.ir/content/", "matchType": "prefix", "fl": "urlkey,timestamp"},
    {"url": "president.ir/content/js/site.min.js?", "matchType": "prefix", "fl": "urlkey"},
    {"url": "thediplomaticinsight.com/robots.txt", "matchType": "host", "limit": "5"},
    {"url": "thediplomaticinsight.com", "matchType": "domain", "limit": "3", "output": "json"},
    {"url": "https://www.thediplomaticinsight.com/robots.txt", "output": "json"},
    {"url": "THEDIPLOMATICINSIGHT.COM/robots.txt", "fl": "url,status"},
    {"url": ["presstv.ir/*", TDI_ROBOTS], "output": "json"},
    {"url": TDI_ROBOTS, "limit": "", "filter": "", "matchType": "", "output": "", "fl": ""},
    # The other parameters pywb reads.
    {"url": "president.ir/*", "collapseTime": "10", "fl": "urlkey,timestamp,status"},
    {"url": "president.ir/*", "collapseTime": "4", "output": "json"},
    {"url": TDI_ROBOTS, "resolveRevisits": "true", "output": "json"},
    {"url": TDI_ROBOTS, "resolveRevisits": "1", "output": "text"},
    {"url": TDI_ROBOTS, "from": "2000-01", "fl": "timestamp"},
    {"url": TDI_ROBOTS, "to": "2000-01-01", "fl": "timestamp"},
    {"url": TDI_ROBOTS, "from_ts": "2999", "fl": "timestamp"},
    {"url": TDI_ROBOTS, "from": "19991231235959999", "fl": "timestamp"},
    {"url": TDI_ROBOTS, "content_type": "text/plain", "filter": "status:301"},
    {"url": TDI_ROBOTS, "filter": "revisit", "output": "json"},
    {"url": TDI_ROBOTS, "filter": "~.*www", "output": "json"},
    {"url": TDI_ROBOTS, "filter": ["statuscode:301", "!=mimetype:text/plain"]},
    {"url": TDI_ROBOTS, "filter": "~urlkey:com,thediplomaticinsight\\)/robots", "fl": "url"},
    {"url": TDI_ROBOTS, "filter": "s:475", "fl": "length"},
    {"url": TDI_ROBOTS, "showNumPages": "true", "filter": "status:301", "limit": "1"},
    {"url": TDI_ROBOTS, "page": "1", "pageSize": "1", "fl": "status"},
    {"url": TDI_ROBOTS, "page": "x", "showPagedIndex": "true", "output": "json"},
    # Nothing found: pywb's fuzzy match (its catch-all rule) answers instead.
    {"url": POLIO + "?utm_source=x", "output": "json"},
    {"url": POLIO + "?utm_source=x", "output": "json", "allowFuzzy": "0"},
    {"url": TDI_ROBOTS + "?_=123", "fl": "url,is_fuzzy"},
    {"url": "https://" + TDI_ROBOTS + "?x=1", "output": "text"},
    {"url": "https://president.ir/Content/js/site.min.js?v=2099", "fl": "url,is_fuzzy"},
    {"url": "president.ir/Content/js/site.min.js?v=2099", "output": "json"},
    {"url": "https://president.ir/Content/js/site.min.js?v=2099", "limit": "2", "sort": "reverse"},
    {"url": TDI_ROBOTS, "filter": "status:999", "output": "json"},
    {"url": TDI_ROBOTS + "?_=1", "closest": "2000", "sort": "reverse", "output": "link"},
    # Errors: pywb's JSON body.
    {},
    {"url": ""},
    {"output": "json"},
    {"url": TDI_ROBOTS, "limit": "abc"},
    {"url": TDI_ROBOTS, "limit": "1.5", "output": "json"},
    {"url": TDI_ROBOTS, "filter": "~url:("},
    {"url": "https://unknown.example/", "filter": "!~("},
    {"url": TDI_ROBOTS, "matchType": "bogus"},
    {"url": TDI_ROBOTS, "output": "bogus"},
    {"output": "xml"},
    {"url": TDI_ROBOTS, "collapseTime": "x"},
    {"url": TDI_ROBOTS, "sort": "reverse", "limit": "-1"},
    {"url": "http://[::1", "output": "json"},
]


def busiest_url(store: Path) -> tuple[str, list[str]]:
    """The URL captured most often in the store, and its capture times."""
    times: dict[str, list[str]] = {}
    for path in (store / "index").rglob("*.cdxj"):
        for line in path.read_text().splitlines():
            _, timestamp, rest = line.split(" ", 2)
            times.setdefault(json.loads(rest)["url"], []).append(timestamp)
    url = max(sorted(times), key=lambda u: len(times[u]))
    return url, sorted(times[url])


@dataclass
class CdxReply:
    status: int
    content_type: str
    lines: list[Any]


def cdx_raw(base: str, query: dict[str, Any]) -> tuple[int, str, bytes]:
    """Status, content type and body of a CDX query, errors included."""
    url = f"{base}/cdx?{urlencode(query, doseq=True)}"
    try:
        with OPENER.open(url, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def _without_pywb_fields(entry: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in entry.items() if k not in PYWB_ONLY]


def cdx_answer(base: str, query: dict[str, Any]) -> CdxReply:
    return cdx_reply(query, *cdx_raw(base, query))


def cdx_reply(query: dict[str, Any], status: int, content_type: str, body: bytes) -> CdxReply:
    """A CDX answer with pywb's own fields taken out (in order: the key order counts too)."""
    text = body.decode()
    if status != 200:
        return CdxReply(status, content_type, [json.loads(text)])
    output = query.get("output") or "cdxj"
    lines: list[Any] = []
    for line in text.splitlines():
        if output == "json":
            lines.append(_without_pywb_fields(json.loads(line)))
        elif output == "link":
            lines.append(line.replace('; collection="coll"', ""))
        elif output == "text":
            # pywb's source, source-coll and access are values of the line like the others.
            pywb = ("coll", "allow")
            words = line.split(" ")
            lines.append([w for w in words if w not in pywb and not w.startswith("coll/indexes/")])
        else:
            urlkey, timestamp, rest = line.split(" ", 2)
            lines.append([urlkey, timestamp, *_without_pywb_fields(json.loads(rest))])
    return CdxReply(status, content_type, lines)


def test_serve_cdx_api_answers_as_pywb_does(service: str, pywb_cdx: str, store: Path) -> None:
    url, times = busiest_url(store)
    middle = times[len(times) // 2]
    queries = [
        *CDX_QUERIES,
        {"url": url, "closest": middle, "sort": "closest", "output": "json"},
        {"url": url, "closest": middle, "limit": "3", "fl": "timestamp,offset"},
        {"url": url, "closest": middle[:10], "output": "link"},
        {"url": url, "from": middle, "to": times[-1], "fl": "timestamp,offset"},
        {"url": url, "to": middle, "sort": "reverse", "fl": "timestamp,offset"},
    ]
    differ, nonempty, errors = [], 0, 0
    for query in queries:
        ours, theirs = cdx_answer(service, query), cdx_answer(pywb_cdx, query)
        if theirs.status == 500:
            # pywb's handler fails on these inputs; the request is the wrong one: 400, same body.
            assert theirs.lines[0]["message"].startswith("Internal Error: "), query
            theirs.status = 400
        if ours != theirs:
            differ.append(f"{query}\n  ours:  {ours}\n  pywb:  {theirs}")
        nonempty += theirs.status == 200 and bool(theirs.lines)
        errors += theirs.status != 200
    assert not differ, f"{len(differ)} of {len(queries)} differ:\n" + "\n".join(differ)
    assert len(times) >= 3 and nonempty >= 60 and errors >= 12


def test_serve_gives_text_sidecar_and_warc_and_nothing_to_write(service: str, store: Path) -> None:
    car = sample_sidecar(store, "001_89df22862bce6eb6.txt")
    ident = car["warc"]["record_id"].removeprefix("<urn:uuid:").removesuffix(">")
    with OPENER.open(f"{service}/text/{ident}") as resp:
        assert resp.read() == expected_text("001_89df22862bce6eb6.txt")
    with OPENER.open(f"{service}/sidecar/{ident}") as resp:
        assert json.loads(resp.read())["text_digest"] == car["text_digest"]
    with OPENER.open(f"{service}/warc/{ident}") as resp:
        kinds = [r.rec_type for r in ArchiveIterator(io.BytesIO(resp.read()))]
    assert kinds[0] == "warcinfo"
    assert sorted(kinds[1:]) == ["conversion", "metadata", "request", "response"]
    for method in ("POST", "PUT", "DELETE"):
        request = urllib.request.Request(f"{service}/text/{ident}", data=b"x", method=method)
        with pytest.raises(urllib.error.HTTPError) as info:
            OPENER.open(request)
        assert info.value.code == 501
        info.value.close()


def test_browse_page_in_chromium_lists_the_articles_and_opens_one(
    service: str, store: Path
) -> None:
    require_program(CHROMIUM if CHROMIUM.exists() else None, "Chromium", "apt-get install chromium")
    from playwright.sync_api import sync_playwright

    car = sample_sidecar(store, "004_2c00aa427ae8dd86.txt")
    expected = expected_text("004_2c00aa427ae8dd86.txt").decode().strip().split("\n\n")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=list(CHROMIUM_ARGS),
        )
        try:
            page = browser.new_page()
            page.goto(service + "/")
            sites = page.locator("ul.sites a").all_inner_texts()
            assert sites == sorted(SITES)
            page.click("text=tdi")
            page.locator("ul.days a").first.click()
            titles = page.locator("ul.articles a.article").all_inner_texts()
            assert len(titles) == 6
            assert car["title"] in titles
            page.click(f"text={car['title']}")
            assert page.locator("article h1").inner_text() == car["title"]
            paragraphs = page.locator("div.text p").all_inner_texts()
            assert paragraphs == expected[1:]
            meta = page.locator("table.meta").inner_text()
            assert "Maham Shabir" in meta
            links = page.locator("p.links a").all_inner_texts()
            assert links[:4] == ["text", "sidecar", "WARC records", "archived page"]
            with page.expect_navigation():
                page.click("p.links a >> text=text")
            assert page.inner_text("body").strip() == "\n\n".join(expected)
        finally:
            browser.close()
