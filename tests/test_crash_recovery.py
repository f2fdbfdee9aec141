"""A crawl killed with SIGKILL mid-write leaves files that the next start repairs.

Afterwards every file passes ``warcio check`` and every complete record is still there.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import gzip
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from scrapy import Spider
from scrapy.utils.test import get_crawler
from warcio.archiveiterator import ArchiveIterator

from crawler.capture.records import RecordBuilder, build_response_head
from crawler.capture.session import CaptureSession
from crawler.capture.writer import WarcFileWriter, recover_open_files
from crawler.crawl.addon import Addon
from crawler.crawl.archive import ArchiveCrawl
from crawler.mirror.messages import MirrorResponse
from crawler.mirror.server import MirrorRequest, MirrorServer, Route
from tests.conftest import SeaweedFS, s3_env
from tests.crawl_helper import SLOW_HOST, CrawlResult, crawl_env, run_crawl, start_crawl

H = f"https://{SLOW_HOST}"
ARTICLES = 200
ARTICLE_SIZE = 50_000
SITE = "slowsite"
WARCIO = Path(sys.executable).parent / "warcio"
_READ = 64 * 1024


# ------------------------------------------------------------------ the slow site


@functools.lru_cache(maxsize=ARTICLES)
def article_html(number: int) -> bytes:
    rng = random.Random(number)
    words = ["minister", "summit", "peace", "talks", "aid", "border", "trade", "envoy", "vote"]
    paragraphs: list[str] = []
    size = 0
    while size < ARTICLE_SIZE:
        paragraph = " ".join(rng.choice(words) for _ in range(80)) + f" {rng.random()}."
        paragraphs.append(f"<p>{paragraph}</p>")
        size += len(paragraph) + 7
    return (
        f"<html><head><title>Article {number}</title></head><body><h1>Article {number}</h1>"
        f"<div class='story'>{''.join(paragraphs)}</div></body></html>"
    ).encode()


def serve_article(request: MirrorRequest) -> MirrorResponse | None:
    number = request.path.strip("/").split("/")[-1]
    if not number.isdigit() or int(number) >= ARTICLES:
        return None
    # About 0.15 s per article: the crawl of all of them lasts several seconds.
    return MirrorResponse(
        body=article_html(int(number)),
        content_type="text/html; charset=utf-8",
        trickle=0.012,
    )


@pytest.fixture(scope="module")
def mirror() -> Iterator[MirrorServer]:
    with MirrorServer(sites=[]) as server:
        server.add_route(
            Route(
                url=f"{H}/robots.txt", body=b"User-agent: *\nAllow: /\n", content_type="text/plain"
            )
        )
        urls = "".join(f"<url><loc>{H}/a/{n}/</loc></url>" for n in range(ARTICLES))
        server.add_route(
            Route(
                url=f"{H}/sitemap.xml",
                body=(
                    '<?xml version="1.0" encoding="UTF-8"?><urlset '
                    f'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
                ).encode(),
                content_type="application/xml",
            )
        )
        server.add_handler(SLOW_HOST, "/a/", serve_article)
        yield server


# ------------------------------------------------------------------ reading WARC files


@dataclass(frozen=True)
class Complete:
    ids: list[str]  # WARC-Record-ID of each complete record, in file order
    end: int  # offset just past the last of them


def complete_records(data: bytes) -> Complete:
    """The complete records at the start of ``data``, found without the product's code.

    A gzip member counts if it decompresses to its end and holds one whole record: a WARC
    head, exactly Content-Length bytes of block, then CRLF CRLF.
    """
    view = memoryview(data)
    ids: list[str] = []
    end = 0
    while end < len(data):
        inflater = zlib.decompressobj(31)
        out: list[bytes] = []
        pos = end
        try:
            while not inflater.eof and pos < len(data):
                chunk = view[pos : pos + _READ]
                out.append(inflater.decompress(chunk))
                pos += len(chunk)
        except zlib.error:
            break
        if not inflater.eof:
            break
        record = b"".join(out)
        head, sep, rest = record.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        if not sep or not lines[0].startswith(b"WARC/"):
            break
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        length = fields.get(b"content-length", b"")
        if not length.isdigit() or rest != rest[: int(length)] + b"\r\n\r\n":
            break
        ids.append(fields[b"warc-record-id"].decode())
        end = pos - len(inflater.unused_data)
    return Complete(ids, end)


def record_ids(path: Path) -> list[str]:
    with path.open("rb") as stream:
        return [
            record.rec_headers.get_header("WARC-Record-ID")
            for record in ArchiveIterator(stream, no_record_parse=True)
        ]


def warcio_check(path: Path) -> None:
    proc = subprocess.run(
        [str(WARCIO), "check", "-v", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def open_files(spool: Path) -> list[Path]:
    return sorted(spool.rglob("*.warc.gz.open"))


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


# ------------------------------------------------------------------ torn tails


def big_record_member() -> bytes:
    payload = random.Random(1).randbytes(30_000)
    record = RecordBuilder().response(
        target_uri=f"{H}/a/torn/",
        http_head=build_response_head("HTTP/1.1", 200, "OK", [], len(payload)),
        payload=payload,
    )
    return gzip.compress(record.data, mtime=0)


def torn_member() -> bytes:
    """A write cut half-way through one gzip member."""
    member = big_record_member()
    return member[: len(member) // 2]


def member_with_a_cut_record() -> bytes:
    """A whole gzip member holding a record cut short, then garbage."""
    record = gzip.decompress(big_record_member())
    return gzip.compress(record[: len(record) - 500], mtime=0) + b"\x1f\x8b\x08garbage"


def recovering_capture(store: Path) -> CaptureSession:
    """A crawl's capture session in this process, to run its start-up recovery by hand."""
    crawler = get_crawler(Spider, {"ADDONS": {Addon: 0}, "ARCHIVE_STORE_URI": str(store)})
    session = ArchiveCrawl.of(crawler).capture_session
    assert session is not None
    return session


# ------------------------------------------------------------------ kill, then recover


@dataclass(frozen=True)
class KillPoint:
    records: int  # kill once the open file holds this many complete records
    tail: Callable[[], bytes] | None  # bytes of a torn write appended after the kill


KILL_POINTS = {
    "first-records": KillPoint(3, None),
    "mid-crawl-torn-member": KillPoint(40, torn_member),
    "late-cut-record": KillPoint(150, member_with_a_cut_record),
}


@dataclass
class Killed:
    snapshot: bytes  # the .open file as the killed crawl left it (plus any torn tail)
    name: str  # its final name (without .open)
    complete: Complete
    crawl_dir: Path


def kill_a_crawl(mirror: MirrorServer, work: Path, store: Path, point: KillPoint) -> Killed:
    spool = store / ".spool"
    proc = start_crawl(
        "SlowSiteSpider",
        work / "killed.json",
        settings={"ARCHIVE_STORE_URI": str(store), "ARCHIVE_PROXY": mirror.proxy_url},
    )
    try:

        def enough_records() -> bool:
            found = open_files(spool)
            return bool(found) and len(complete_records(found[0].read_bytes()).ids) >= point.records

        wait_for(enough_records, 60, f"{point.records} records in the open WARC file")
        [path] = open_files(spool)
        # The live crawl holds its spool dir lock and its file's lock: recovery by another
        # crawl (or by hand) must leave both alone.
        before = path.stat().st_size
        assert recover_open_files(path.parent) == []
        assert recovering_capture(store).recover(spool / "warc") == 0
        assert path.exists()
        assert path.stat().st_size >= before
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (work / "killed.json").exists()  # it really died mid-crawl
    if point.tail is not None:
        with path.open("ab") as fh:
            fh.write(point.tail())
    snapshot = path.read_bytes()
    complete = complete_records(snapshot)
    assert len(complete.ids) >= point.records
    if point.tail is not None:
        assert complete.end < len(snapshot)
    return Killed(snapshot, path.name.removesuffix(".open"), complete, path.parent)


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS.values(), ids=KILL_POINTS.keys())
def test_a_killed_crawl_is_repaired_by_the_next_one(
    mirror: MirrorServer, tmp_path: Path, point: KillPoint
) -> None:
    store = tmp_path / "store"
    killed = kill_a_crawl(mirror, tmp_path, store, point)

    result: CrawlResult = run_crawl(
        "SlowSiteSpider",
        tmp_path / "next.json",
        settings={"ARCHIVE_STORE_URI": str(store), "ARCHIVE_PROXY": mirror.proxy_url},
        spider_args={"max_articles": "2"},
    )
    assert result.exit_code == 0, result.stderr[-3000:]
    report = result.report
    assert report["finish_reason"] == "finished"
    assert report["warc"]["recovered_files"] == 1
    ymd = killed.name.split("-")[1]
    key = f"warc/{SITE}/{ymd[:4]}/{ymd[4:6]}/{ymd[6:8]}/{killed.name}"
    recovered = store / key
    assert recovered.is_file()
    # Cut right after the last complete record, nothing else changed ...
    assert recovered.read_bytes() == killed.snapshot[: killed.complete.end]
    # ... a valid WARC file holding exactly the complete records counted before.
    warcio_check(recovered)
    assert record_ids(recovered) == killed.complete.ids

    assert not open_files(store / ".spool")
    assert not killed.crawl_dir.exists()
    assert key in report["warc"]["files"]
    manifest = json.loads((store / f"manifests/{SITE}/{report['crawl_id']}.json").read_text())
    listed = {o["key"] for o in manifest["objects"]}
    assert key in listed
    # The second crawl's own files are whole too.
    for own in report["warc"]["files"]:
        warcio_check(store / own)
    assert len(report["warc"]["files"]) == 2


def test_recovery_leaves_a_live_crawls_files_alone(tmp_path: Path) -> None:
    store = tmp_path / "store"
    root = store / ".spool" / "warc"
    live = root / SITE / "slowsite-live-crawl"
    live.mkdir(parents=True)
    # A live crawl holds its spool dir's lock for the whole crawl (as WarcCapture does) ...
    lock = (live / ".lock").open("wb")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    # ... and its writer holds the open file.
    writer = WarcFileWriter(live, prefix=SITE, hostname="h", warcinfo_fields={"x": "y"})
    builder = RecordBuilder()
    payload = b"<html>live</html>"
    head = build_response_head("HTTP/1.1", 200, "OK", [], len(payload))
    writer.write_sync([builder.response(target_uri=f"{H}/a/1/", http_head=head, payload=payload)])
    open_path = writer.current_path
    assert open_path is not None
    # A file it has just closed and not yet stored, and bytes it is writing right now.
    shutil.copy(open_path, live / "slowsite-20261123131636-00099-h.warc.gz")
    with open_path.open("ab") as fh:
        fh.write(torn_member())
    files_before = {p.name: p.read_bytes() for p in live.iterdir()}
    try:
        capture = recovering_capture(store)
        assert capture.recover(root) == 0
        assert {p.name: p.read_bytes() for p in live.iterdir()} == files_before
        assert not (store / "warc").exists()

        # Without the dir lock the writer's own lock still protects the open file.
        lock.close()
        assert recover_open_files(live) == []
        assert open_path.read_bytes() == files_before[open_path.name]
    finally:
        lock.close()
        writer.close()


# ------------------------------------------------------------------ killed mid-upload to S3


class ThrottledRelay:
    """A TCP relay to the S3 server that sends requests slowly and knows when one is mid-way.

    A request counts as in flight from its first bytes until the server's answer starts.
    """

    def __init__(self, upstream: int, rate: float = 300_000) -> None:
        self.upstream = upstream
        self.rate = rate
        self.started = 0
        self.in_flight = 0
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        """The store goes away: no new connections, open ones cut."""
        self._server.close()
        with self._lock:
            socks, self._socks = self._socks, []
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            with self._lock:
                self._socks += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, to_server: bool) -> None:
        try:
            while chunk := src.recv(16 * 1024):
                with self._lock:
                    if to_server and chunk.startswith((b"PUT ", b"POST ")):
                        self.started += 1
                        self.in_flight += 1
                    elif not to_server and chunk.startswith(b"HTTP/1.1 "):
                        self.in_flight = max(0, self.in_flight - 1)
                if to_server:
                    time.sleep(len(chunk) / self.rate)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            src.close()  # each socket is the source of one pump


@pytest.mark.slow
def test_a_crawl_killed_mid_upload_to_s3_loses_and_duplicates_nothing(
    mirror: MirrorServer, seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    bucket = seaweedfs.new_bucket()
    spool = tmp_path / "spool"
    settings = {
        "ARCHIVE_STORE_URI": f"s3://{bucket}/k",
        "ARCHIVE_PROXY": mirror.proxy_url,
        "ARCHIVE_SPOOL_DIR": str(spool),
        # Files close (and go up) while the crawl runs, not only at its end.
        "ARCHIVE_WARC_MAX_SIZE": "300000",
        "CONCURRENT_REQUESTS_PER_DOMAIN": "16",
    }
    aws = {k: v for k, v in s3_env(seaweedfs.endpoint).items() if k.startswith("AWS_")}
    relay = ThrottledRelay(int(seaweedfs.endpoint.rsplit(":", 1)[1]))
    proc = start_crawl(
        "SlowSiteSpider",
        tmp_path / "killed.json",
        settings=settings,
        env={**aws, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{relay.port}"},
    )
    try:
        wait_for(lambda: relay.started >= 10 and relay.in_flight >= 1, 90, "uploads under way")
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        relay.close()
    assert not (tmp_path / "killed.json").exists()

    result = run_crawl("SlowSiteSpider", tmp_path / "next.json", settings=settings, env=aws)
    assert result.exit_code == 0, result.stderr[-3000:]
    assert "files a killed crawl left on their way up are listed now" in result.stderr

    client = seaweedfs.client()
    keys = [
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    ]
    # No partial object: each holds exactly the bytes its SHA-256 metadata names.
    for key in keys:
        got = client.get_object(Bucket=bucket, Key=key)
        body = got["Body"].read()
        assert hashlib.sha256(body).hexdigest() == got["Metadata"]["sha256"], key
    # Every article archived exactly once: one text and one sidecar each, no second version.
    texts = [k for k in keys if k.startswith(f"k/text/{SITE}/") and k.endswith(".txt")]
    sidecars = [k for k in keys if k.startswith(f"k/text/{SITE}/") and k.endswith(".json")]
    assert sorted(Path(k).name for k in texts) == sorted(f"{n}.txt" for n in range(ARTICLES))
    assert len(sidecars) == ARTICLES
    # Every article's response is in a valid WARC in the store.
    archived: set[str] = set()
    for key in (k for k in keys if k.endswith(".warc.gz")):
        local = tmp_path / Path(key).name
        local.write_bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        warcio_check(local)
        with local.open("rb") as stream:
            for record in ArchiveIterator(stream):
                if record.rec_type == "response":
                    archived.add(record.rec_headers.get_header("WARC-Target-URI"))
    assert {f"{H}/a/{n}/" for n in range(ARTICLES)} <= archived
    # Nothing left behind locally.
    left = [p for p in (spool / "pending").rglob("*") if p.is_file() and p.suffix != ".lock"]
    assert not left, (left, [x for x in result.stderr.splitlines() if "WARNING" in x][-20:])
    assert not list(spool.rglob("*.warc.gz*"))


@pytest.mark.slow
def test_the_store_stopping_mid_crawl_loses_nothing_and_upload_sends_the_backlog(
    mirror: MirrorServer, seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    bucket = seaweedfs.new_bucket()
    spool = tmp_path / "spool"
    relay = ThrottledRelay(int(seaweedfs.endpoint.rsplit(":", 1)[1]), rate=10_000_000)
    aws = {k: v for k, v in s3_env(seaweedfs.endpoint).items() if k.startswith("AWS_")}
    settings = {
        "ARCHIVE_STORE_URI": f"s3://{bucket}/out",
        "ARCHIVE_PROXY": mirror.proxy_url,
        "ARCHIVE_SPOOL_DIR": str(spool),
        "ARCHIVE_WARC_MAX_SIZE": "300000",
        "ARCHIVE_STORE_MAX_ATTEMPTS": "1",
        "CONCURRENT_REQUESTS_PER_DOMAIN": "16",
    }
    out = tmp_path / "crawl.json"
    proc = start_crawl(
        "SlowSiteSpider",
        out,
        settings=settings,
        spider_args={"max_articles": "60"},
        env={**aws, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{relay.port}"},
    )
    try:
        wait_for(lambda: relay.started >= 10, 90, "the first uploads")
        relay.close()  # the store stops answering mid-crawl
        assert proc.wait(120) == 0, out.with_suffix(".log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    report = json.loads(out.read_text())["report"]
    assert report["upload"]["pending"] > 0
    assert any(n.startswith("store unavailable") for n in report["notes"])
    assert report["articles"]["new"] == 60

    cli = [sys.executable, "-m", "crawler.ops.cli", "upload", "--spool", str(spool)]
    env = {**crawl_env(), **aws}
    proc2 = subprocess.run(cli, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc2.returncode == 0, proc2.stdout[-3000:] + proc2.stderr[-3000:]
    assert "0 failed, 0 still pending" in proc2.stdout
    client = seaweedfs.client()
    manifest = json.loads(
        client.get_object(Bucket=bucket, Key=f"out/manifests/{SITE}/{report['crawl_id']}.json")[
            "Body"
        ].read()
    )
    for obj in manifest["objects"]:
        body = client.get_object(Bucket=bucket, Key=f"out/{obj['key']}")["Body"].read()
        assert (len(body), hashlib.sha256(body).hexdigest()) == (obj["size"], obj["sha256"])
    texts = [o for o in manifest["objects"] if o["key"].endswith(".txt")]
    assert len(texts) == 60
    assert not [p for p in (spool / "pending").rglob("*") if p.is_file()]
