"""``newsarchive reextract`` (issue 21) on copies of the all-sites demo store, local and S3.

TDI's rules are changed to drop subheadings (tests/reextract_runner.py gives the command those
rules by argument): exactly the TDI articles with subheadings get a second version, with its
provenance; a second run changes nothing; a run killed at its most delicate points resumes to
the state of one clean run; ``reindex`` from the store alone finds the same versions; bad
records are counted and named, never written from. On SeaweedFS every WARC read is a ranged
GET, counted by a recording proxy in front of it.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.text.extract import EXTRACTOR_VERSION, SiteRules, extract_article, rules_digest
from tests.conftest import ROOT, SeaweedFS, s3_env
from tests.reextract_runner import KILL_ENV, changed_tdi
from tests.replay_helper import S3Recorder

pytestmark = pytest.mark.slow

MIRROR = ROOT / "crawler" / "mirror" / "sites" / "tdi"
TDI = "https://thediplomaticinsight.com/{}/"


# -- helpers ------------------------------------------------------------------------------------
def copy_store(source: Path, target: Path) -> Path:
    """The demo store with its catalog; its logs and spool stay. The catalog is copied by
    SQLite's backup, which reads through its WAL: copying the ``-wal`` file itself failed now
    and then, a connection to the demo's catalog closing meanwhile (which deletes it)."""
    ignore = shutil.ignore_patterns(".logs", ".spool", ".catalog.sqlite*")
    shutil.copytree(source, target, ignore=ignore)
    src, dst = (
        sqlite3.connect(source / ".catalog.sqlite"),
        sqlite3.connect(target / ".catalog.sqlite"),
    )
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return target


def reextract(
    store: str | Path,
    *args: str,
    kill: str | None = None,
    env: dict[str, str] | None = None,
    rules: str = "changed",
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    """The runner (TDI's changed rules) in a process of its own: its exit and JSON summary."""
    environ = {**(env or os.environ), "PYTHONPATH": str(ROOT)}
    environ.pop(KILL_ENV, None)
    if kill:
        environ[KILL_ENV] = kill
    if rules == "spiders":
        environ["REEXTRACT_RULES"] = "spiders"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.reextract_runner", "--store", str(store), "--json", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=240,
    )
    summary = None
    if proc.returncode in (0, 1) and proc.stdout.strip():
        summary = json.loads(proc.stdout)
    return proc, summary


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crawler.ops.cli", *args],
        cwd=ROOT,
        env={**(env or os.environ), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=240,
    )


def tdi_texts(catalog: Path) -> dict[str, str]:
    """TDI article key -> its current text key, from a catalog."""
    with sqlite3.connect(catalog) as db:
        rows = db.execute("SELECT article_key, text_key FROM articles WHERE site = 'tdi'")
        return dict(rows.fetchall())


def tdi_rules() -> tuple[SiteRules, SiteRules]:
    """TDI's rules as the spider has them, and as the runner changes them."""
    from spiders.tdi import TdiSpider

    return TdiSpider.rules, changed_tdi(TdiSpider.rules)


def expected_changes(catalog: Path) -> set[str]:
    """The TDI articles whose text the changed rules change, found on the mirror's pages (the
    very bytes the demo archived) without the command."""
    base, changed = tdi_rules()
    found = set()
    for key in tdi_texts(catalog):
        html = (MIRROR / f"{key}.html").read_bytes()
        url = TDI.format(key)
        if extract_article(html, url, base).text != extract_article(html, url, changed).text:
            found.add(key)
    return found


def state(catalog: Path) -> dict[str, Any]:
    """What a run leaves in a catalog: every article's current version, every text version
    (with the extraction that made it), and each capture's text."""
    with sqlite3.connect(catalog) as db:
        return {
            "articles": db.execute(
                "SELECT site, article_key, version, text_key, text_digest FROM articles "
                "ORDER BY 1, 2"
            ).fetchall(),
            "texts": db.execute(
                "SELECT text_key, site, article_key, version, text_digest, extractor_version, "
                "rules_digest FROM texts ORDER BY 1"
            ).fetchall(),
            "captures": db.execute(
                "SELECT record_id, text_key, text_digest, version FROM captures "
                "WHERE text_key IS NOT NULL ORDER BY 1"
            ).fetchall(),
        }


def text_objects(store: Path) -> dict[str, bytes]:
    return {
        p.relative_to(store).as_posix(): p.read_bytes()
        for p in sorted((store / "text").rglob("*.txt"))
    }


def run_records(warcs: list[bytes]) -> list[tuple[str, dict[str, str], bytes]]:
    """(type, WARC headers, content) of every record of these WARC files."""
    out = []
    for data in warcs:
        for record in ArchiveIterator(io.BytesIO(data)):
            headers = dict(record.rec_headers.headers)
            out.append((record.rec_type, headers, record.content_stream().read()))
    return out


# -- decoding as the crawl decodes ----------------------------------------------------------------
ARABIC = "<p>\u0627\u0644\u0633\u0644\u0627\u0645 \u0639\u0644\u064a\u0643\u0645</p>"


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (
            f"<html><p>caf\u00e9 {ARABIC}</p></html>".encode(),
            {"Content-Type": "text/html; charset=utf-8"},
        ),
        (b"<html><p>plain ascii</p></html>", {"Content-Type": "text/html"}),
        (
            f'<html><head><meta charset="windows-1256"></head>{ARABIC}</html>'.encode("cp1256"),
            {"Content-Type": "text/html"},
        ),
        # A server's wrong label: Arabic windows-1256 bytes sent as utf-8.
        (
            f'<html><head><meta charset="windows-1256"></head>{ARABIC}</html>'.encode("cp1256"),
            {"Content-Type": "text/html; charset=utf-8"},
        ),
        (
            b"\xef\xbb\xbf<html><p>caf\xc3\xa9</p></html>",
            {"Content-Type": "text/html; charset=latin-1"},
        ),
        (b"<html><p>caf\xe9 na\xefve \x93quoted\x94</p></html>", {"Content-Type": "text/html"}),
    ],
)
@pytest.mark.parametrize("coding", ["", "gzip", "deflate", "br", "gzip, br", "zstd", "x-unknown"])
def test_payload_is_decoded_as_the_crawl_decodes_it(
    body: bytes, headers: dict[str, str], coding: str
) -> None:
    """Content codings undone and the text decoded exactly as Scrapy's compression middleware,
    TextResponse and the spider's page_text give the crawl its ArticlePage.html."""
    import brotli
    from scrapy.downloadermiddlewares.httpcompression import HttpCompressionMiddleware
    from scrapy.http import HtmlResponse, Request
    from scrapy.utils.test import get_crawler

    from crawler.crawl.spider import page_text as spider_page_text
    from crawler.text.page import page_text, undo_content_coding

    try:
        from compression import zstd  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from backports import zstd  # type: ignore[no-redef,import-not-found,unused-ignore]

    wire = body
    for step in [c.strip() for c in coding.split(",") if c.strip()]:
        if step == "gzip":
            wire = gzip.compress(wire)
        elif step == "deflate":
            wire = zlib.compress(wire)
        elif step == "br":
            wire = brotli.compress(wire)
        elif step == "zstd":
            wire = zstd.compress(wire)
    sent = dict(headers, **({"Content-Encoding": coding} if coding else {}))
    request = Request("https://example.org/article")
    middleware = HttpCompressionMiddleware.from_crawler(get_crawler())
    response = middleware.process_response(
        request, HtmlResponse(request.url, body=wire, headers=sent, request=request)
    )
    ours_body, _left = undo_content_coding(wire, [coding] if coding else [])
    assert ours_body == response.body
    assert page_text(ours_body, headers["Content-Type"]) == spider_page_text(response)


def test_a_whole_gzip_member_is_inflated_at_once_as_scrapy_inflates_it() -> None:
    """The worker's fast path (one whole gzip member, by ISA-L) gives Scrapy's own bytes, and
    declines every payload where Scrapy's reading could differ (several members, bytes after
    the member, a cut or corrupt stream): those go to ``undo_content_coding``."""
    from scrapy.downloadermiddlewares.httpcompression import HttpCompressionMiddleware
    from scrapy.http import HtmlResponse, Request
    from scrapy.utils.test import get_crawler

    from crawler.crawl.reextract_worker import _one_gzip_member

    middleware = HttpCompressionMiddleware.from_crawler(get_crawler())
    request = Request("https://example.org/article")

    def scrapy_body(wire: bytes) -> bytes:
        sent = {"Content-Type": "text/html", "Content-Encoding": "gzip"}
        response = HtmlResponse(request.url, body=wire, headers=sent, request=request)
        return middleware.process_response(request, response).body

    for body in (b"", b"<p>caf\xc3\xa9</p>" * 5000, bytes(range(256)) * 400):
        for level in (1, 6, 9):
            wire = gzip.compress(body, level)
            assert _one_gzip_member(wire) == scrapy_body(wire) == body
    member = gzip.compress(b"<p>one</p>" * 100)
    corrupt = bytearray(member)
    corrupt[-8] ^= 1  # its CRC
    for wire in (member + member, member + b"\0\0", member[:-5], bytes(corrupt), b"<p>no gzip"):
        assert _one_gzip_member(wire) is None, wire[-12:]


def test_checkpoints_replace_only_a_writing_row_and_count_outcomes(tmp_path: Path) -> None:
    """A decision is inserted (a second one of the same record refused by the table's key);
    a record named in ``replace`` has its ``writing`` row replaced; the counts are SQL's."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import IntegrityError

    from crawler.catalog.checkpoints import Checkpoints, DoneRow

    points = Checkpoints(create_engine(f"sqlite:///{tmp_path / 'c.sqlite'}"))
    at = "2026-12-07T00:00:00Z"
    points.put([DoneRow("r", "a", "unchanged", at), DoneRow("r", "b", "writing", at)])
    points.put([DoneRow("r", "b", "changed", at, text_key="t/b.v2.txt", version=2)], replace={"b"})
    assert points.counts("r") == {"unchanged": 1, "changed": 1}
    assert set(points.done(["r"], "changed")) == {"b"}
    with pytest.raises(IntegrityError):
        points.put([DoneRow("r", "a", "failed", at, reason="x")])
    assert points.done(["r"])["a"].outcome == "unchanged"  # the refused batch left nothing


# -- a local store --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def expected(demo_all_store: Path) -> set[str]:
    found = expected_changes(demo_all_store / ".catalog.sqlite")
    # The rule change touches some TDI articles and leaves others as they were.
    assert found and found != set(tdi_texts(demo_all_store / ".catalog.sqlite"))
    return found


@pytest.fixture(scope="module")
def clean_run(demo_all_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One clean run over a copy of the demo store, and what it printed."""
    store = copy_store(demo_all_store, tmp_path_factory.mktemp("clean") / "store")
    before = text_objects(store)
    proc, summary = reextract(store, "--workers", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert summary is not None
    return store, summary, before


def test_exactly_the_changed_articles_get_a_new_version_with_provenance(
    clean_run: Any, expected: set[str]
) -> None:
    store, summary, before = clean_run
    catalog = store / ".catalog.sqlite"
    changed = {c["article_key"] for c in summary["changes"]}
    assert {c["site"] for c in summary["changes"]} == {"tdi"}
    assert changed == expected
    assert summary["changed"] == len(expected)
    assert summary["failed"] == 0
    assert summary["unchanged"] == summary["selected"] - len(expected)
    # Every article with a captured text, one record read for each, by range.
    with sqlite3.connect(catalog) as db:
        [(articles,)] = db.execute(
            "SELECT COUNT(DISTINCT site || ':' || article_key) FROM captures "
            "WHERE text_key IS NOT NULL"
        ).fetchall()
    assert summary["ranged_reads"] == summary["selected"] == articles
    run_id = summary["runs"]["tdi"]
    assert run_id.startswith("tdi-reextract-")
    after = text_objects(store)
    # The old texts untouched, one new text per changed article, nothing else.
    assert {k: v for k, v in after.items() if k in before} == before
    new_keys = sorted(set(after) - set(before))
    assert [k.rsplit("/", 1)[-1] for k in new_keys] == sorted(f"{k}.v2.txt" for k in expected)
    base, rules = tdi_rules()
    [manifest_key] = summary["manifests"]
    manifest = json.loads((store / manifest_key).read_text())
    listed = {o["key"] for o in manifest["objects"]}
    warcs = sorted(k for k in listed if k.startswith("warc/"))
    assert len(warcs) == 1 and run_id in warcs[0]
    records = run_records([(store / k).read_bytes() for k in warcs])
    assert records[0][0] == "warcinfo"
    for key in expected:
        text_key = tdi_texts(catalog)[key]
        assert text_key.endswith(f"/{key}.v2.txt")
        text = (store / text_key).read_text()
        html = (MIRROR / f"{key}.html").read_bytes()
        assert text == extract_article(html, TDI.format(key), rules).text
        v1 = json.loads((store / text_key.replace(".v2.txt", ".json")).read_text())
        car = json.loads((store / text_key.replace(".txt", ".json")).read_text())
        again = car["reextracted"]
        assert again["run_id"] == run_id
        assert again["extractor_version"] == car["extractor_version"] == EXTRACTOR_VERSION
        assert again["rules_digest"] == car["rules_digest"] == rules_digest(rules)
        assert again["rules_digest"] != rules_digest(base)
        assert again["source"]["record_id"] == v1["warc"]["record_id"]
        assert again["source"]["warc_key"] == v1["warc"]["key"]
        assert (again["source"]["offset"], again["source"]["length"]) == (
            v1["warc"]["offset"],
            v1["warc"]["length"],
        )
        assert again["replaces"] == {
            "version": 1,
            "text_key": v1["text_key"],
            "text_digest": v1["text_digest"],
        }
        assert car["version"] == 2 and car["previous_version"] == again["replaces"]
        # The sidecar as the crawl writes it: every field of the first version's is there.
        assert set(v1) <= set(car)
        assert car["title"] == v1["title"] and car["discovery"] == v1["discovery"]
        assert {text_key, text_key.replace(".txt", ".json")} <= listed
        # Its conversion record, in the run's own WARC, refers to the response it came from.
        [conversion] = [
            r
            for r in records
            if r[0] == "conversion" and r[1]["WARC-Target-URI"].endswith(f"/{key}/")
        ]
        assert conversion[1]["WARC-Record-ID"] == car["conversion_record_id"]
        assert conversion[1]["WARC-Refers-To"] == v1["warc"]["record_id"]
        assert conversion[1]["WARC-Target-URI"] == "urn:text:" + TDI.format(key)
        assert conversion[2].decode() == text
    assert {r[0] for r in records} == {"warcinfo", "conversion", "metadata"}
    # The views: CDXJ, Parquet, and a WACZ whose pages hold the new texts.
    assert any(k.startswith("index/tdi/") and k.endswith(".parquet") for k in listed)
    assert any(k.endswith(".cdxj") for k in listed)
    [wacz] = [k for k in listed if k.endswith(".wacz")]
    with zipfile.ZipFile(store / wacz) as package:
        pages = [json.loads(line) for line in package.read("pages/pages.jsonl").splitlines()]
        index = package.read("indexes/index.cdx").decode()
    texts = {p["url"]: p.get("text") for p in pages[1:]}
    assert set(texts) == {TDI.format(k) for k in expected}
    for key in expected:
        assert texts[TDI.format(key)] == (store / tdi_texts(catalog)[key]).read_text()
        assert TDI.format(key) in index  # the response it replays is in the package
    # The catalog: the version, its words for search, the extraction that made it.
    with sqlite3.connect(catalog) as db:
        rows = db.execute(
            "SELECT article_key, version, extractor_version, rules_digest FROM texts "
            "WHERE site = 'tdi' AND version = 2"
        ).fetchall()
        assert {r[0] for r in rows} == expected
        assert {(r[1], r[2], r[3]) for r in rows} == {(2, EXTRACTOR_VERSION, rules_digest(rules))}
        [(finished,)] = db.execute(
            "SELECT finished FROM reextract_runs WHERE run_id = ?", (run_id,)
        ).fetchall()
        assert finished is not None


def test_the_researcher_commands_see_the_new_version(clean_run: Any, expected: set[str]) -> None:
    store, _summary, _before = clean_run
    key = sorted(expected)[0]
    new_text = (store / tdi_texts(store / ".catalog.sqlite")[key]).read_text()
    got = cli("get", f"tdi:{key}", "--as", "text", "--store", str(store))
    assert got.returncode == 0, got.stderr
    assert got.stdout == new_text
    diff = cli("diff", f"tdi:{key}", "--store", str(store))
    assert diff.returncode == 0, diff.stderr
    assert f"tdi:{key}: v1 " in diff.stdout and "-> v2 " in diff.stdout
    search = cli("search", new_text.split()[0], "--site", "tdi", "--json", "--store", str(store))
    assert search.returncode == 0, search.stderr
    assert any(
        hit.get("version") == 2
        for hit in (json.loads(line) for line in search.stdout.splitlines() if line.strip())
    )
    out = store.parent / "tdi.jsonl"
    export = cli("export", "--site", "tdi", str(out), "--store", str(store))
    assert export.returncode == 0, export.stderr
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    [row] = [r for r in exported if r["article_id"] == key]
    assert row["text"] == new_text and row["version"] == 2


def test_a_second_run_changes_nothing_and_reindex_finds_the_same_versions(
    clean_run: Any, tmp_path: Path
) -> None:
    store, summary, _before = clean_run
    before = text_objects(store)
    proc, again = reextract(store, "--workers", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert again is not None
    assert again["changed"] == 0 and again["failed"] == 0
    assert again["unchanged"] == summary["selected"]
    assert again["runs"]["tdi"] != summary["runs"]["tdi"]  # a new run: the first one finished
    assert text_objects(store) == before
    # The store alone gives the same catalog.
    fresh = tmp_path / "fresh.sqlite"
    rebuilt = cli("reindex", "--store", str(store), "--catalog", f"sqlite:///{fresh}", "--quiet")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert state(fresh) == state(store / ".catalog.sqlite")


def test_a_killed_run_resumes_to_the_state_of_a_clean_one(
    demo_all_store: Path, clean_run: Any, tmp_path: Path
) -> None:
    clean_store, clean_summary, _before = clean_run
    store = copy_store(demo_all_store, tmp_path / "store")
    run_ids = set()
    # Killed: after five records are decided (their checkpoint rows not yet written); then
    # after the first new version is recorded (its capture row and checkpoint not yet); then
    # after the next one's conversion record is written (nothing else yet); then left to
    # finish. (TDI's WARC file is read last: every start reaches its kill point.)
    for kill in ("records:5", "recorded:1", "warc-written:1", None):
        proc, summary = reextract(store, "--workers", "2", kill=kill)
        if kill:
            assert proc.returncode == -signal.SIGKILL, (kill, proc.stderr[-2000:])
            continue
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert summary is not None
        run_ids.add(summary["runs"]["tdi"])
        assert summary["runs"]["tdi"] in summary["resumed"]
        assert summary["skipped"] > 0  # what the killed starts decided was not done again
    catalog = store / ".catalog.sqlite"
    assert state(catalog) == state(clean_store / ".catalog.sqlite")
    assert text_objects(store) == text_objects(clean_store)
    with sqlite3.connect(catalog) as db:
        # One run of TDI for the four starts, finished; no version recorded twice.
        runs = db.execute("SELECT run_id, finished FROM reextract_runs WHERE site = 'tdi'")
        [(run_id, finished)] = runs.fetchall()
        assert run_ids == {run_id} and finished is not None
        assert (
            db.execute(
                "SELECT COUNT(*) FROM texts GROUP BY site, article_key, version HAVING COUNT(*) > 1"
            ).fetchall()
            == []
        )
    # Each new text has one conversion record in the run's WARC files, however many starts.
    [manifest_key] = [
        p.relative_to(store).as_posix() for p in (store / "manifests" / "tdi").glob("*reextract*")
    ]
    manifest = json.loads((store / manifest_key).read_text())
    warcs = [o["key"] for o in manifest["objects"] if o["key"].startswith("warc/")]
    records = run_records([(store / k).read_bytes() for k in warcs])
    refers = [r[1]["WARC-Refers-To"] for r in records if r[0] == "conversion"]
    assert len(refers) == len(set(refers)) == clean_summary["changed"]
    assert not list((store / ".spool").rglob("*.warc.gz*"))  # stored, nothing left behind


def test_a_run_left_on_another_host_is_named_not_taken_over(
    demo_all_store: Path, clean_run: Any, tmp_path: Path
) -> None:
    """A run another host started (its row names that host) is never taken over behind its
    back: with nothing written yet, only ``--resume RUN_ID`` takes it; once it has written a
    version, whose conversion record waits in that host's spool, not even that (one line
    naming the run and the host, nothing changed). Where its spool is, it resumes as ever."""
    store = copy_store(demo_all_store, tmp_path / "store")
    catalog = store / ".catalog.sqlite"

    def started_on_host_a(site: str) -> str:
        with sqlite3.connect(catalog) as db:
            db.execute(
                "UPDATE reextract_runs SET host = 'host-a', pid = 4242 WHERE site = ?", (site,)
            )
            [run_id] = db.execute(
                "SELECT run_id FROM reextract_runs WHERE site = ? AND finished IS NULL", (site,)
            ).fetchone()
        return str(run_id)

    # Almasirah's rules are today's: its run writes nothing.
    proc, _ = reextract(store, "--site", "almasirah", "--workers", "1", kill="records:1")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    run_id = started_on_host_a("almasirah")
    proc, _ = reextract(store, "--site", "almasirah", "--workers", "1")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert (
        f"the run {run_id} of this selection is unfinished on host host-a (pid 4242, started "
        in proc.stderr
    )
    assert f"or here with --resume {run_id} if it is no longer running there" in proc.stderr
    proc, summary = reextract(store, "--resume", run_id, "--workers", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert summary is not None and summary["resumed"] == [run_id]
    # TDI's run, killed after its first new version is recorded, as if on host A.
    proc, _ = reextract(store, "--site", "tdi", "--workers", "1", kill="recorded:1")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    run_id = started_on_host_a("tdi")
    [spool] = [p for p in store.rglob(run_id) if p.is_dir()]
    elsewhere = tmp_path / "host-a-spool"
    spool.rename(elsewhere)  # as if on host A's disk
    before = (state(catalog), text_objects(store))
    for args in (("--site", "tdi"), ("--resume", run_id)):
        proc, _ = reextract(store, "--workers", "1", *args)
        assert proc.returncode == 2, (args, proc.stderr[-2000:])
        assert proc.stderr.count("\n") == 1, proc.stderr
        assert (
            f"the run {run_id} of this selection was started on host host-a (pid 4242"
            in proc.stderr
        )
        assert "left 1 new versions whose WARC records wait in that host's spool" in proc.stderr
        assert f"resume it there (newsarchive reextract --resume {run_id})" in proc.stderr
        assert (state(catalog), text_objects(store)) == before
    elsewhere.rename(spool)  # a spool both hosts share
    proc, summary = reextract(store, "--site", "tdi", "--workers", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert summary is not None and summary["resumed"] == [run_id]
    clean_store = clean_run[0]
    assert state(catalog) == state(clean_store / ".catalog.sqlite")
    assert text_objects(store) == text_objects(clean_store)


def test_a_digest_mismatch_a_corrupt_record_and_a_missing_warc_are_counted_and_named(
    demo_all_store: Path, expected: set[str], tmp_path: Path
) -> None:
    store = copy_store(demo_all_store, tmp_path / "store")
    catalog = store / ".catalog.sqlite"
    victim = sorted(expected)[0]  # an article the new rules would change
    with sqlite3.connect(catalog) as db:
        record_id, key, offset, length = db.execute(
            "SELECT record_id, warc_key, warc_offset, warc_length FROM captures "
            "WHERE site = 'tdi' AND article_key = ? AND text_key IS NOT NULL",
            (victim,),
        ).fetchone()
        # The same record with one payload byte changed (its digest header kept): bit rot.
        member = (store / key).read_bytes()[offset : offset + length]
        raw = bytearray(gzip.decompress(member))
        raw[-10] ^= 0x01
        tampered = "warc/tdi/2026/01/01/tdi-20260101000000-00000-tampered-host.warc.gz"
        (store / tampered).parent.mkdir(parents=True, exist_ok=True)
        data = gzip.compress(bytes(raw))
        (store / tampered).write_bytes(data)
        db.execute(
            "UPDATE captures SET warc_key = ?, warc_offset = 0, warc_length = ? "
            "WHERE record_id = ?",
            (tampered, len(data), record_id),
        )
        # A presstv capture whose catalog place is one byte off: no record there.
        db.execute(
            "UPDATE captures SET warc_offset = warc_offset + 1 WHERE record_id = ("
            "SELECT record_id FROM captures WHERE site = 'presstv' AND text_key IS NOT NULL "
            "ORDER BY article_key LIMIT 1)"
        )
        [irna_warc] = {
            r[0] for r in db.execute("SELECT warc_key FROM captures WHERE site = 'irna'")
        }
    (store / irna_warc).unlink()
    before = text_objects(store)
    proc, summary = reextract(store, "--workers", "2")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert summary is not None
    by_reason = summary["failed_by_reason"]
    assert by_reason == {"digest-mismatch": 1, "corrupt-record": 1, "missing-warc": 4}
    failures = {
        (f["reason"], f["site"], f["article_key"]): f["detail"] for f in summary["failures"]
    }
    assert tampered in failures[("digest-mismatch", "tdi", victim)]
    assert all(
        detail == irna_warc for (reason, site, _k), detail in failures.items() if site == "irna"
    )
    # Nothing written from bytes that failed their digest; the rest went ahead.
    assert victim not in {c["article_key"] for c in summary["changes"]}
    assert {c["article_key"] for c in summary["changes"]} == expected - {victim}
    new = set(text_objects(store)) - set(before)
    assert not any(victim in k or k.startswith("text/irna/") for k in new)
    assert tdi_texts(catalog)[victim].endswith(f"/{victim}.txt")  # still version 1
    # The summary a person reads names each, with the key.
    text = subprocess.run(
        [sys.executable, "-m", "tests.reextract_runner", "--store", str(store), "--workers", "1"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=240,
    ).stdout
    assert f"digest-mismatch  tdi:{victim}" in text and tampered in text
    assert "missing-warc     irna:" in text and irna_warc in text
    assert "failed [corrupt-record: 1" in text


def test_a_remade_text_far_below_the_sites_usual_size_is_no_version(
    demo_all_store: Path, expected: set[str], tmp_path: Path
) -> None:
    # The crawl's degenerate-text rule, with a floor no TDI article reaches: every text the
    # changed rules remake is refused by name, and each article keeps the version it had.
    store = copy_store(demo_all_store, tmp_path / "store")
    catalog = store / ".catalog.sqlite"
    before = state(catalog)
    texts_before = text_objects(store)
    floor = "ARCHIVE_TEXT_DEGENERATE_MIN_CHARS=1000000"
    proc, summary = reextract(store, "--site", "tdi", "-s", floor)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert summary is not None
    assert summary["failed_by_reason"] == {"degenerate": len(expected)}
    assert summary["changes"] == []
    refused = {f["article_key"]: f["detail"] for f in summary["failures"]}
    assert set(refused) == expected
    assert all("below 1000000" in detail for detail in refused.values())
    assert state(catalog)["articles"] == before["articles"]
    assert state(catalog)["texts"] == before["texts"]
    assert not set(text_objects(store)) - set(texts_before)
    # A typo in the rule's setting is one line, not a guard switched off.
    proc, summary = reextract(store, "--site", "tdi", "-s", "ARCHIVE_TEXT_DEGENERATE_RATIO=0")
    assert proc.returncode == 2 and summary is None
    assert "ARCHIVE_TEXT_DEGENERATE_RATIO" in proc.stderr and "Traceback" not in proc.stderr


def test_selection_options_and_bad_options(
    clean_run: Any, expected: set[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from crawler.ops.reextract import main
    from tests.reextract_runner import changed_rules

    store, summary, _before = clean_run
    rules = changed_rules()

    def run(*args: str) -> tuple[int, dict[str, Any] | None, str]:
        capsys.readouterr()
        try:
            code = main(["--store", str(store), "--workers", "1", *args], rules)
        except SystemExit as exc:  # argparse's own usage errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        found = json.loads(out) if code in (0, 1) and "--json" in args else None
        return code, found, err

    code, out, _err = run(
        "--dry-run", "--json", "--site", "tdi", "--url-prefix", "thediplomaticinsight.com/world"
    )
    assert code == 0 and out is not None and out["selected"] == 1  # world-polio-day-2023
    # Shards split the work with no overlap and nothing left out.
    selected = []
    for shard in ("1/2", "2/2"):
        code, out, _err = run("--dry-run", "--json", "--shard", shard)
        assert out is not None
        selected.append(out["selected"])
    assert sum(selected) == summary["selected"] and all(selected)
    # Every text here was made by today's extractor, the crawl's as the remade ones.
    code, out, _err = run("--dry-run", "--json", "--extractor-below", str(EXTRACTOR_VERSION))
    assert out is not None and out["selected"] == 0
    code, out, _err = run("--dry-run", "--json", "--extractor-below", str(EXTRACTOR_VERSION + 1))
    assert out is not None and out["selected"] == summary["selected"]
    for args, said in [
        (["--shard", "3/2"], "--shard"),
        (["--workers", "0"], "--workers"),
        (["--site", "nope"], "unknown site 'nope'"),
        (["--resume", "tdi-reextract-x", "--site", "tdi"], "--resume finishes a run"),
        (["--resume", "tdi-reextract-x"], "no reextract run 'tdi-reextract-x'"),
        (["--resume", summary["runs"]["tdi"]], "finished at"),
        (["--crawl-id", "tdi-none"], "no crawl 'tdi-none'"),
        (["--from", "2026-13"], "unparseable date"),
        (["--from", "2026-06", "--to", "2026-05"], "is not before"),
        (["-s", "ARCHIVE_TEXT_MODE=pages"], "ARCHIVE_TEXT_MODE must be one of"),
    ]:
        code, _out, err = run(*args)
        assert code == 2, (args, err)
        assert said in err and len(err.strip().splitlines()) == 1, (args, err)
    helped = cli("reextract", "--help")
    assert helped.returncode == 0 and "examples:" in helped.stdout and "--dry-run" in helped.stdout


def test_a_dry_run_shows_word_diffs_and_writes_nothing(
    demo_all_store: Path, expected: set[str], tmp_path: Path
) -> None:
    store = copy_store(demo_all_store, tmp_path / "store")
    before = (text_objects(store), state(store / ".catalog.sqlite"))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.reextract_runner", "--store", str(store), "--dry-run"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    for key in expected:
        assert f"tdi:{key}  v1 -> v2" in proc.stdout
    assert "[-" in proc.stdout  # the subheadings, removed
    assert f"{len(expected)} would change" in proc.stdout
    assert (text_objects(store), state(store / ".catalog.sqlite")) == before
    assert not list((store / "manifests").rglob("*reextract*"))
    with sqlite3.connect(store / ".catalog.sqlite") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        if "reextract_runs" in tables:
            assert db.execute("SELECT COUNT(*) FROM reextract_runs").fetchone() == (0,)
        # Texts recorded before extractor versions were: version 0 to --extractor-below.
        db.execute("UPDATE texts SET extractor_version = NULL WHERE site = 'tdi'")
    proc, out = reextract(store, "--dry-run", "--extractor-below", "1", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert out is not None and out["selected"] == len(tdi_texts(store / ".catalog.sqlite"))
    assert {c["article_key"] for c in out["changes"]} == expected


# -- an S3 store ----------------------------------------------------------------------------------
def test_on_s3_every_warc_read_is_a_ranged_get(
    demo_all_store: Path,
    expected: set[str],
    clean_run: Any,
    seaweedfs: SeaweedFS,
    recorder: S3Recorder,
    tmp_path: Path,
) -> None:
    from crawler.store.uri import open_store

    bucket = seaweedfs.new_bucket()
    uri = f"s3://{bucket}/news"
    s3 = open_store(uri, seaweedfs.options())
    for path in sorted(demo_all_store.rglob("*")):
        rel = path.relative_to(demo_all_store)
        if path.is_file() and not rel.parts[0].startswith("."):
            s3.put_file(rel.as_posix(), path)
    # The demo's catalog, as a machine that shares the bucket would have it.
    catalog = tmp_path / "catalog.sqlite"
    with (
        sqlite3.connect(demo_all_store / ".catalog.sqlite") as src,
        sqlite3.connect(catalog) as dst,
    ):
        src.backup(dst)
    with sqlite3.connect(catalog) as db:
        [gone] = {
            r[0] for r in db.execute("SELECT warc_key FROM captures WHERE site = 'almasirah'")
        }
        sizes = {
            r[0]: int(r[1])
            for r in db.execute(
                "SELECT warc_key, MAX(warc_offset + warc_length) FROM captures GROUP BY 1"
            )
        }
    env = {
        **s3_env(recorder.endpoint),
        "ARCHIVE_SPOOL_DIR": str(tmp_path / "spool"),
        "ARCHIVE_STORE_S3_ADDRESSING_STYLE": "path",
    }
    args = ("--catalog", f"sqlite:///{catalog}", "--workers", "2")
    # Killed once after its first new version is recorded, then left to finish.
    proc, _ = reextract(uri, *args, env=env, kill="recorded:1")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    recorder.seen.clear()
    proc, summary = reextract(uri, *args, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert summary is not None and summary["failed"] == 0
    assert {c["article_key"] for c in summary["changes"]} == expected
    # Every WARC object was read by ranges, never whole: one GET per record this start read
    # (the killed one read the others), and one per response copied into the run's WACZ.
    warc_gets = [
        (path, rng, size)
        for method, path, rng, size in recorder.seen
        if method == "GET" and "/warc/" in path
    ]
    print(
        f"\nS3: {len(warc_gets)} GETs of WARC objects, every one ranged "
        f"({summary['ranged_reads']} records re-extracted, {summary['bytes_read']} bytes; "
        f"{len(expected)} responses copied into the WACZ); "
        f"{summary['skipped']} records decided by the killed start"
    )
    assert summary["ranged_reads"] == summary["selected"] - summary["skipped"]
    assert len(warc_gets) == summary["ranged_reads"] + len(expected)
    for path, rng, size in warc_gets:
        assert rng is not None and rng.startswith("bytes="), path
        key = path.split(f"/{bucket}/news/", 1)[-1]
        start, end = (int(x) for x in rng.removeprefix("bytes=").split("-"))
        assert size == end - start + 1 < sizes[key]
    # The end state is the local clean run's: same versions, same texts.
    clean_store = clean_run[0]
    ours, theirs = state(catalog), state(clean_store / ".catalog.sqlite")
    assert ours["articles"] == theirs["articles"]
    assert ours["texts"] == theirs["texts"]
    for key in expected:
        text_key = tdi_texts(catalog)[key]
        assert s3.get_bytes(text_key) == (clean_store / text_key).read_bytes()
    # The store alone gives the same catalog.
    fresh = tmp_path / "fresh.sqlite"
    direct = {**s3_env(seaweedfs.endpoint), "ARCHIVE_SPOOL_DIR": str(tmp_path / "spool")}
    rebuilt = cli(
        "reindex", "--store", uri, "--catalog", f"sqlite:///{fresh}", "--quiet", env=direct
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert state(fresh) == state(catalog)
    # A second run changes nothing; a WARC object gone is counted and named, never a crash.
    seaweedfs.client().delete_object(Bucket=bucket, Key=f"news/{gone}")
    recorder.seen.clear()
    proc, again = reextract(uri, *args, env=env)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert again is not None and again["changed"] == 0
    assert again["failed_by_reason"] == {"object-gone": 4}
    assert {f["detail"] for f in again["failures"]} == {gone}
    asked = [p for m, p, _r, _s in recorder.seen if m == "GET" and p.endswith(gone)]
    assert len(asked) == 1  # the file's other records were not asked for again


# -- a PostgreSQL catalog -------------------------------------------------------------------------
def test_on_a_postgresql_catalog_the_same_versions(
    demo_all_store: Path, expected: set[str], clean_run: Any, fresh_pg: str, tmp_path: Path
) -> None:
    """The selection's window query, the checkpoints and the versions on the shared kind of
    catalog: the same end state as the clean run on SQLite."""
    from sqlalchemy import create_engine, text

    store = copy_store(demo_all_store, tmp_path / "store")
    rebuilt = cli("reindex", "--store", str(store), "--catalog", fresh_pg, "--quiet")
    assert rebuilt.returncode == 0, rebuilt.stderr
    proc, summary = reextract(store, "--catalog", fresh_pg, "--workers", "2", kill="recorded:1")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    proc, summary = reextract(store, "--catalog", fresh_pg, "--workers", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert summary is not None and {c["article_key"] for c in summary["changes"]} == expected
    engine = create_engine(fresh_pg)
    try:
        with engine.connect() as conn:
            texts = conn.execute(
                text(
                    "SELECT text_key, site, article_key, version, text_digest, "
                    "extractor_version, rules_digest FROM texts ORDER BY 1"
                )
            ).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in texts] == state(clean_run[0] / ".catalog.sqlite")["texts"]
