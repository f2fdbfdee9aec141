"""``newsarchive crawl SITE --from-archive``: the real spider answered from the archive's WARCs.

Nothing is fetched (every process of the replay runs with a guard that refuses any network
connection or name lookup, and its proxy is a closed port), nothing is written (the store's
files and the catalog's rows are the same after), the summary says how many texts differ from
the archived ones, and a WARC gone from the store or a corrupt record fails that one request,
named with its URL and cause. The source of the answers is tested on its own as well: which
capture answers a URL (redirects, revisits, rendered pages, challenges, a named crawl).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from scrapy import Request
from scrapy.http import HtmlResponse
from scrapy.utils.test import get_crawler

from crawler.access.records import digest_matches
from crawler.catalog.readonly import ReadOnlyCatalog
from crawler.crawl.replay import CatalogReplaySource, crawl_span, newest_crawl
from crawler.fetch.archive import (
    ARCHIVE_CORRUPT,
    NOT_IN_ARCHIVE,
    ArchivedAnswer,
    NotInArchive,
    ReplayDownloadHandler,
    ReplayMiss,
    make_response,
)
from tests.conftest import ROOT, SeaweedFS, s3_env
from tests.replay_helper import (
    SITES,
    DemoReplay,
    S3Recorder,
    archived_texts,
    guarded_env,
    replay,
    sha256_label,
    store_state,
)

MIRROR = ROOT / "crawler" / "mirror" / "sites"
# End to end over the all-sites demo's store (its crawl is shared with the other modules).
pytestmark = pytest.mark.slow


# -- the replay of every site (the session's demo_replay) ------------------------------------


def test_a_replay_opens_no_socket_and_writes_nothing(demo_replay: DemoReplay) -> None:
    run = demo_replay.run
    assert run.proc.returncode == 0, run.output
    assert run.attempts == [], "a replay tried the network"
    assert demo_replay.files_after == demo_replay.files_before  # the catalog file included
    assert demo_replay.rows_after == demo_replay.rows_before
    assert not (demo_replay.store / ".logs" / "replay").exists()  # its logs went elsewhere
    for site in SITES:
        report = run.report(site)
        assert report["replay"]["written"] is False
        assert report["warc"]["files"] == [] and report["warc"]["records"] == 0
        assert report["upload"]["pending"] == 0
        assert report["pages"]["responses"] == report["replay"]["pages"]["answered"] > 0
        assert report["log_file"].startswith(str(run.log_dir / "replay" / site))


def test_the_guard_of_those_processes_is_on(tmp_path: Path) -> None:
    """Without it, "no attempt recorded" would prove nothing."""
    env, socket_log = guarded_env(tmp_path)
    code = """
import socket, subprocess, sys
try:
    socket.socket().connect(("127.0.0.1", 9))
except ConnectionRefusedError as exc:
    print(exc)
subprocess.run([sys.executable, "-c", "import socket; socket.getaddrinfo('a.test', 80)"])
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert "test guard" in proc.stdout, proc.stderr
    lines = socket_log.read_text().splitlines()
    assert len(lines) == 2 and "connect" in lines[0] and "getaddrinfo 'a.test'" in lines[1]
    # The one address it may let through (an S3 store's): that one, and no other.
    with socket.socket() as store:
        store.bind(("127.0.0.1", 0))
        store.listen()
        port = store.getsockname()[1]
        env, socket_log = guarded_env(tmp_path / "allowing", allow=[("127.0.0.1", port)])
        code = f"""
import socket
socket.create_connection(("127.0.0.1", {port}), timeout=10).close()
print("store reached")
try:
    socket.create_connection(("127.0.0.1", {port + 1 if port < 65535 else port - 1}))
except ConnectionRefusedError as exc:
    print(exc)
"""
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
        )
    assert "store reached" in proc.stdout and "test guard" in proc.stdout, proc.stderr
    assert len(socket_log.read_text().splitlines()) == 1


def test_the_summary_says_how_many_texts_differ(demo_replay: DemoReplay) -> None:
    run = demo_replay.run
    total = 0
    for site in SITES:
        count = len(archived_texts(demo_replay.store, site))
        total += count
        assert re.match(
            rf"^{site} +ok +{count} articles replayed: {count} same text as archived, 0 differ",
            run.line(site),
        ), run.line(site)
    assert f"5 sites replayed: 5 ok; {total} articles, 0 texts differ" in run.proc.stdout


def test_a_selector_change_shows_as_the_texts_that_differ(
    demo_replay: DemoReplay, tmp_path: Path
) -> None:
    """The TDI spider without its "Also read:" rule, replayed: exactly the articles whose page
    has such a line differ, each said with what changed; the others are as archived."""
    run = replay(
        demo_replay.store,
        tmp_path,
        "tdi",
        settings={"SPIDER_MODULES": "tests.replay_spiders"},
    )
    assert run.proc.returncode == 0, run.output
    assert run.attempts == []
    changed = {p.stem for p in (MIRROR / "tdi").glob("*.html") if "Also read:" in p.read_text()}
    archived = set(archived_texts(demo_replay.store, "tdi"))
    assert changed and changed < archived
    report = run.report("tdi")
    differ = {e["article_id"] for e in report["replay"]["list"] if e["same"] is False}
    assert differ == changed
    assert report["replay"]["articles"]["same"] == len(archived - changed)
    line = run.line("tdi")
    assert f"{len(archived)} articles replayed: {len(archived - changed)} same text" in line
    assert f"{len(changed)} differ" in line
    assert f"{len(changed)} texts differ from the archived version:" in run.proc.stdout
    for entry in report["replay"]["list"]:
        if entry["same"] is False:
            assert re.search(r"\d+ words? added", entry["change"]), entry
            assert f"{entry['url']}: {entry['change']}" in run.proc.stdout


def test_write_makes_the_texts_that_differ_new_versions_through_reextract(
    demo_replay: DemoReplay, tmp_path: Path
) -> None:
    """``--write`` after the replay with TDI's "Also read:" rule dropped: exactly the articles
    whose text differs get their next version, with the text the replay made, reextract's
    provenance and checkpoints; the others are as they were; a second replay finds nothing
    that differs and writes nothing."""
    from crawler.layout import sidecar_key

    store = tmp_path / "store"
    shutil.copytree(demo_replay.store, store)
    texts_before = archived_texts(store, "tdi")
    versions_before = article_versions(store, "tdi")
    settings = {"SPIDER_MODULES": "tests.replay_spiders"}
    run = replay(store, tmp_path / "run", "tdi", "--write", settings=settings)
    assert run.proc.returncode == 0, run.output
    assert run.attempts == []
    report = run.report("tdi")
    differ = {e["article_id"]: e for e in report["replay"]["list"] if e["same"] is False}
    changed = {p.stem for p in (MIRROR / "tdi").glob("*.html") if "Also read:" in p.read_text()}
    assert set(differ) == changed
    assert f"tdi        write: {len(changed)} articles whose text differs" in run.proc.stdout
    assert f"{len(changed)} selected: {len(changed)} changed, 0 unchanged, 0 failed" in (
        run.proc.stdout
    )
    texts_after = archived_texts(store, "tdi")
    versions_after = article_versions(store, "tdi")
    assert set(texts_after) == set(texts_before)
    for key, text in texts_after.items():
        if key not in changed:
            assert (text, versions_after[key]) == (texts_before[key], versions_before[key])
            continue
        assert versions_after[key][0] == versions_before[key][0] + 1
        assert sha256_label(text) == differ[key]["text_digest"]  # the replay's own text
        car = json.loads((store / sidecar_key(versions_after[key][1])).read_text())
        assert car["warc"]["record_id"] == differ[key]["capture"]["record_id"]
        again = car["reextracted"]
        assert again["run_id"].startswith("tdi-reextract-")
        assert again["replaces"]["version"] == versions_before[key][0]
        assert again["replaces"]["text_key"] == versions_before[key][1]
        assert [r["record_type"] for r in again["records"]] == ["conversion", "metadata"]
    with sqlite3.connect(store / ".catalog.sqlite") as db:
        runs = db.execute("SELECT run_id, finished, selection FROM reextract_runs").fetchall()
        assert len(runs) == 1 and runs[0][1] is not None
        chosen = json.loads(runs[0][2])["record_ids"]
        assert sorted(chosen) == sorted(e["capture"]["record_id"] for e in differ.values())
        done = db.execute("SELECT outcome, COUNT(*) FROM reextract_done GROUP BY 1").fetchall()
        assert done == [("changed", len(changed))]
    assert (store / "manifests" / "tdi" / f"{runs[0][0]}.json").is_file()
    files = store_state(store)
    run = replay(store, tmp_path / "again", "tdi", "--write", settings=settings)
    assert run.proc.returncode == 0, run.output
    assert "tdi        write: no text differs from the archived one; nothing written" in (
        run.proc.stdout
    )
    assert store_state(store) == files


def article_versions(store: Path, site: str) -> dict[str, tuple[int, str]]:
    """Article key -> (version, text key) of its current text."""
    with sqlite3.connect(f"file:{store / '.catalog.sqlite'}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT article_key, version, text_key FROM articles WHERE site = ?", (site,)
        ).fetchall()
    return {str(key): (int(version), str(text_key)) for key, version, text_key in rows}


def test_a_missing_warc_or_a_corrupt_record_fails_only_that_request(
    demo_replay: DemoReplay, tmp_path: Path
) -> None:
    """One article's record corrupted in its WARC, another's WARC gone, a third never
    captured: each request fails with its URL and cause in the summary and the report;
    the crawl finishes and the other articles replay as archived."""
    store = tmp_path / "store"
    shutil.copytree(demo_replay.store, store)
    with sqlite3.connect(store / ".catalog.sqlite") as db:
        rows = db.execute(
            "SELECT url, warc_key, warc_offset, warc_length, article_key FROM captures "
            "WHERE site = 'tdi' AND record_type = 'response' AND status = 200 "
            "AND article_key IS NOT NULL ORDER BY url"
        ).fetchall()
        (corrupt, key, offset, length, _), (missing, *_), (gone, *_) = rows[:3]
        db.execute(
            "UPDATE captures SET warc_key = 'warc/tdi/gone.warc.gz' WHERE url = ?", (missing,)
        )
        gone_key = rows[2][4]
        db.execute("DELETE FROM captures WHERE url = ? OR article_key = ?", (gone, gone_key))
    warc = store / key
    data = bytearray(warc.read_bytes())
    for i in range(offset + length // 2, offset + length // 2 + 16):
        data[i] ^= 0xFF
    warc.write_bytes(bytes(data))

    run = replay(store, tmp_path / "run", "tdi")
    assert run.proc.returncode == 0, run.output
    assert run.attempts == []
    report = run.report("tdi")
    assert report["finish_reason"] == "finished"
    causes = {(f["url"], f["cause"]) for f in report["failures"]["urls"]}
    assert causes == {
        (corrupt, "archive-corrupt"),
        (missing, "archive-missing"),
        (gone, "not-in-archive"),
    }
    errors = {f["cause"]: f["error"] for f in report["failures"]["urls"]}
    assert (
        "warc/tdi/gone.warc.gz is in the catalog but not in the store" in errors["archive-missing"]
    )
    assert f"{key} at {offset}" in errors["archive-corrupt"]
    assert "is not in the archive" in errors["not-in-archive"]
    for url, cause in causes:
        assert f"fetch {cause}: {url}" in run.proc.stdout
    others = len(archived_texts(store, "tdi")) - 3
    assert report["replay"]["articles"]["same"] == others
    assert f"{others} articles replayed: {others} same text as archived" in run.line("tdi")


def test_a_replay_from_an_s3_store_reads_each_record_by_range(
    demo_replay: DemoReplay, seaweedfs: SeaweedFS, recorder: S3Recorder, tmp_path: Path
) -> None:
    """The archive in a SeaweedFS bucket: the replay reaches nothing but the store (the guard
    lets through its address alone), writes nothing there, and reads every record it answers
    with by one ranged GET, never a whole WARC object."""
    from crawler.store.uri import open_store

    bucket = seaweedfs.new_bucket()
    uri = f"s3://{bucket}/news"
    s3 = open_store(uri, seaweedfs.options())
    local = demo_replay.store
    for path in sorted(local.rglob("*")):
        rel = path.relative_to(local)
        if path.is_file() and not rel.parts[0].startswith("."):
            s3.put_file(rel.as_posix(), path)
    catalog = tmp_path / "catalog.sqlite"  # the catalog as a machine sharing the bucket has it
    with sqlite3.connect(local / ".catalog.sqlite") as src, sqlite3.connect(catalog) as dst:
        src.backup(dst)
    with sqlite3.connect(catalog) as db:
        sizes = {
            str(r[0]): int(r[1])
            for r in db.execute(
                "SELECT warc_key, MAX(warc_offset + warc_length) FROM captures GROUP BY 1"
            )
        }
    before = bucket_objects(seaweedfs, bucket)
    run = replay(
        uri,
        tmp_path,
        "tdi",
        settings={
            "ARCHIVE_CATALOG_URL": f"sqlite:///{catalog}",
            "ARCHIVE_STORE_S3_ADDRESSING_STYLE": "path",
            "ARCHIVE_SPOOL_DIR": str(tmp_path / "spool"),
        },
        base_env=s3_env(recorder.endpoint),
        allow=[("127.0.0.1", recorder.server_address[1])],
    )
    assert run.proc.returncode == 0, run.output
    assert run.attempts == [], "a replay reached past its store"
    report = run.report("tdi")
    archived = len(archived_texts(local, "tdi"))
    assert report["replay"]["store"].rstrip("/") == uri
    assert report["replay"]["articles"]["same"] == archived > 0
    assert report["replay"]["articles"]["differ"] == 0
    answered = report["replay"]["pages"]["answered"]
    with recorder.lock:
        seen = list(recorder.seen)
    assert {method for method, *_ in seen} <= {"GET", "HEAD"}, seen  # nothing written
    assert bucket_objects(seaweedfs, bucket) == before
    warc_gets = [
        (path, rng, size)
        for method, path, rng, size in seen
        if method == "GET" and "/warc/" in path
    ]
    print(
        f"\nS3 replay of tdi: {answered} responses answered by {len(warc_gets)} GETs of WARC "
        f"objects, every one ranged; {len(seen)} requests to the store in all"
    )
    assert len(warc_gets) == answered
    for path, rng, size in warc_gets:
        assert rng is not None and rng.startswith("bytes="), path
        key = path.split(f"/{bucket}/news/", 1)[-1]
        start, end = (int(x) for x in rng.removeprefix("bytes=").split("-"))
        assert size == end - start + 1 < sizes[key]


def bucket_objects(seaweedfs: SeaweedFS, bucket: str) -> dict[str, str]:
    pages = seaweedfs.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}


def test_a_replay_that_cannot_start_says_why_in_one_line(
    demo_replay: DemoReplay, tmp_path: Path
) -> None:
    def crawl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "crawler.ops.cli", "crawl", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
        )

    store = str(demo_replay.store)
    irna = newest_crawl_id(demo_replay.store, "irna")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = {
        ("tdi", "--from-archive", "--store", store, "--crawl-id", "tdi-nope"): (
            "error: tdi: cannot replay: the catalog sqlite:///"
        ),
        ("tdi", "--from-archive", "--store", store, "--crawl-id", irna): (
            f"error: tdi: cannot replay: crawl {irna} is a crawl of irna, not of tdi"
        ),
        ("tdi", "--from-archive", "--store", str(empty)): (
            "error: tdi: cannot replay: no catalog at "
        ),
        ("tdi", "--store", store, "--crawl-id", irna): "error: --crawl-id needs --from-archive",
        ("tdi", "--store", store, "--write"): "error: --write needs --from-archive",
    }
    for args, said in cases.items():
        proc = crawl(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stderr.startswith(said) and proc.stderr.count("\n") == 1, proc.stderr
    assert list(empty.iterdir()) == []  # no catalog made where there was none


def newest_crawl_id(store: Path, site: str) -> str:
    with sqlite3.connect(f"file:{store / '.catalog.sqlite'}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT crawl_id FROM captures WHERE site = ? ORDER BY capture_time DESC LIMIT 1",
            (site,),
        ).fetchone()
    return str(row[0])


# -- which capture answers: the source on its own --------------------------------------------


@pytest.fixture(scope="module")
def catalog(demo_replay: DemoReplay) -> Iterator[ReadOnlyCatalog]:
    found = ReadOnlyCatalog(f"sqlite:///{demo_replay.store / '.catalog.sqlite'}")
    yield found
    found.close()


def source(catalog: ReadOnlyCatalog, store: Path, site: str) -> CatalogReplaySource:
    from crawler.store.base import LocalStore

    return CatalogReplaySource(catalog, LocalStore(store), site, None)


def one(catalog: ReadOnlyCatalog, sql: str, *params: object) -> tuple[object, ...]:
    with catalog.engine.connect() as conn:
        row = conn.exec_driver_sql(sql, params).first()
    assert row is not None, sql
    return tuple(row)


def test_a_redirect_is_answered_as_the_3xx_it_was(
    catalog: ReadOnlyCatalog, demo_replay: DemoReplay
) -> None:
    (url,) = one(catalog, "SELECT url FROM captures WHERE site = 'tdi' AND status = 301")
    answer = source(catalog, demo_replay.store, "tdi").answer(str(url), render=False)
    assert answer.status == 301
    assert any(k.lower() == "location" for k, _v in answer.headers)


def test_a_revisit_is_answered_with_the_response_it_refers_to(
    catalog: ReadOnlyCatalog, demo_replay: DemoReplay
) -> None:
    url, digest = one(
        catalog,
        "SELECT c.url, c.payload_digest FROM captures c WHERE c.site = 'president' "
        "AND c.record_type = 'revisit' AND c.status = 200 AND c.capture_time = "
        "(SELECT max(capture_time) FROM captures WHERE url = c.url) LIMIT 1",
    )
    replayed = source(catalog, demo_replay.store, "president")
    answer = replayed.answer(str(url), render=False)
    assert answer.status == 200 and answer.body
    assert digest_matches(str(digest), answer.body)  # the original's payload, as received
    found = replayed.replayed(str(url))
    assert found is not None and found.record_type == "revisit"


def test_the_body_keeps_its_content_encoding_as_the_wire_gave_it(
    catalog: ReadOnlyCatalog, demo_replay: DemoReplay
) -> None:
    answer = source(catalog, demo_replay.store, "irna").answer(
        "https://en.irna.ir/rss", render=False
    )
    assert ("Content-Encoding", "gzip") in answer.headers
    assert gzip.decompress(answer.body).lstrip().startswith(b"<?xml")
    response = make_response(answer, Request(answer.url))
    assert response.headers.get(b"Content-Encoding") == b"gzip"  # Scrapy's middleware undoes it
    assert "replayed" in response.flags


def test_a_page_asked_to_render_is_answered_with_its_archived_dom(
    catalog: ReadOnlyCatalog, demo_replay: DemoReplay
) -> None:
    (url,) = one(
        catalog,
        "SELECT url FROM captures WHERE site = 'president' AND article_key IS NOT NULL "
        "AND text_key IS NOT NULL LIMIT 1",
    )
    replayed = source(catalog, demo_replay.store, "president")
    shell = replayed.answer(str(url), render=False)
    page = replayed.answer(str(url), render=True)
    assert page.rendered and not shell.rendered
    assert b"news-body" in page.body and b"news-body" not in shell.body
    assert ("Content-Type", "text/html; charset=utf-8") in page.headers
    response = make_response(page, Request(page.url))
    assert isinstance(response, HtmlResponse) and "rendered" in response.flags


def test_a_challenge_page_never_answers(catalog: ReadOnlyCatalog, demo_replay: DemoReplay) -> None:
    url, challenge = one(
        catalog, "SELECT url, record_id FROM captures WHERE record_type = 'challenge' LIMIT 1"
    )
    replayed = source(catalog, demo_replay.store, "irna")
    replayed.answer(str(url), render=False)
    found = replayed.replayed(str(url))
    assert found is not None and found.record_id != challenge and found.status == 200


def test_a_url_never_captured_is_a_named_miss(
    catalog: ReadOnlyCatalog, demo_replay: DemoReplay
) -> None:
    replayed = source(catalog, demo_replay.store, "tdi")
    with pytest.raises(NotInArchive) as raised:
        replayed.answer("https://thediplomaticinsight.com/never-published/", render=False)
    assert raised.value.cause == NOT_IN_ARCHIVE
    assert replayed.missed_by_cause == {NOT_IN_ARCHIVE: 1}
    assert replayed.missed[0]["url"] == "https://thediplomaticinsight.com/never-published/"


def test_a_named_crawl_answers_with_its_own_captures(
    catalog: ReadOnlyCatalog, demo_replay: DemoReplay
) -> None:
    from crawler.store.base import LocalStore

    span = newest_crawl(catalog, "tdi")
    assert span is not None and crawl_span(catalog, span.crawl_id) == span
    replayed = CatalogReplaySource(catalog, LocalStore(demo_replay.store), "tdi", span)
    url = "https://thediplomaticinsight.com/feed/"
    replayed.answer(url, render=False)
    found = replayed.replayed(url)
    assert found is not None and found.crawl_id == span.crawl_id


def test_a_record_that_is_not_the_one_the_catalog_names_is_corrupt(
    catalog: ReadOnlyCatalog, demo_replay: DemoReplay, tmp_path: Path
) -> None:
    """The catalog pointing at another record's bytes (the WARC rewritten, the row wrong):
    no text is made from bytes that are not the capture's."""
    from crawler.access.records import Location

    replayed = source(catalog, demo_replay.store, "tdi")
    url, key, offset, length = one(
        catalog,
        "SELECT url, warc_key, warc_offset, warc_length FROM captures WHERE site = 'tdi' "
        "AND status = 200 LIMIT 1",
    )
    where = Location("response", "<urn:uuid:other>", str(key), int(offset), int(length))
    with pytest.raises(ReplayMiss) as raised:
        replayed._read(str(url), where, target=str(url))
    assert raised.value.cause == ARCHIVE_CORRUPT
    assert "not <urn:uuid:other>" in str(raised.value)


# -- the handler and the response it builds ----------------------------------------------------


def test_the_response_keeps_every_header_line_and_a_cut_body_is_flagged() -> None:
    answer = ArchivedAnswer(
        url="https://example.test/a",
        status=200,
        headers=[
            ("Content-Type", "text/html"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
        ],
        body=b"<html><body>cut</body>",
        truncated=True,
        ip_address="192.0.2.7",
    )
    response = make_response(answer)
    assert response.headers.getlist(b"Set-Cookie") == [b"a=1", b"b=2"]
    assert "dataloss" in response.flags and "replayed" in response.flags
    assert isinstance(response, HtmlResponse)
    assert str(response.ip_address) == "192.0.2.7"


def test_the_handler_answers_no_other_method_than_get() -> None:
    class Never:
        def answer(self, url: str, *, render: bool, article_key: str | None = None) -> None:
            raise AssertionError("not asked")

    crawler = get_crawler()
    crawler.stats.open_spider()  # type: ignore[union-attr]
    handler = ReplayDownloadHandler(crawler, Never())  # type: ignore[arg-type]
    request = Request("https://example.test/form", method="POST")
    with pytest.raises(NotInArchive, match="only GET requests are archived"):
        asyncio.run(handler.download_request(request))
    assert crawler.stats.get_value("archive/replay/missed/not-in-archive") == 1  # type: ignore[union-attr]


# -- the settings of a replay ----------------------------------------------------------------


def test_a_replay_switches_off_everything_that_writes(tmp_path: Path) -> None:
    from crawler.crawl.config import ArchiveConfig
    from tests.test_settings_checked import crawl_settings

    config = ArchiveConfig.from_settings(
        crawl_settings(
            tmp_path, ARCHIVE_REPLAY_ENABLED="True", ARCHIVE_REPLAY_CRAWL_ID="tdi-20261207T1"
        )
    )
    assert config.replay is not None and config.replay.crawl_id == "tdi-20261207T1"
    assert (config.warc, config.catalog, config.index, config.render) == (None,) * 4
    assert config.text is not None and config.ledger.report is False


@pytest.mark.parametrize(
    ("values", "said"),
    [
        (
            {"ARCHIVE_REPLAY_CRAWL_ID": "tdi-20261207T1"},
            "ARCHIVE_REPLAY_CRAWL_ID is 'tdi-20261207T1' but ARCHIVE_REPLAY_ENABLED is off",
        ),
        (
            {"ARCHIVE_REPLAY_ENABLED": "True", "ARCHIVE_CATALOG_ENABLED": "False"},
            "ARCHIVE_REPLAY_ENABLED needs the catalog",
        ),
    ],
)
def test_a_replay_asked_wrongly_stops_at_start(
    values: dict[str, str], said: str, tmp_path: Path
) -> None:
    """A crawl id without the replay would otherwise fetch and archive for real."""
    from crawler.crawl.config import ArchiveConfig, ConfigError
    from tests.test_settings_checked import crawl_settings

    with pytest.raises(ConfigError) as raised:
        ArchiveConfig.from_settings(crawl_settings(tmp_path, **values))
    [message] = raised.value.errors
    assert message.startswith(said), message
