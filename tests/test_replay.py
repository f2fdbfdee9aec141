"""The demo's WARC replays in pywb: original bytes (id_), gzip-encoded or not, and the CDX API."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.store.base import LocalStore
from tests.conftest import mirror_file, pywb_bin, require_program

pytestmark = pytest.mark.slow

HOST = "https://thediplomaticinsight.com"
GZIPPED = "iranian-fm-discusses-gaza-with-hamas-and-islamic-jihad-leaders"  # served gzip
CHUNKED = "tdi-hosts-roundtable-on-climate-diplomacy-in-islamabad"  # served chunked, identity
COLL = "coll"
# No proxy for our own loopback server, whatever the environment says.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Message
    body: bytes

    def header(self, name: str) -> list[str]:
        return self.headers.get_all(name) or []


def fetch(url: str, headers: dict[str, str] | None = None, timeout: float = 10) -> Reply:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with OPENER.open(request, timeout=timeout) as resp:
            return Reply(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.headers, exc.read())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def offline_env() -> dict[str, str]:
    """pywb's environment: anything it might fetch goes to a closed loopback port, not out."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    dead_end = "http://127.0.0.1:9"
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env[name] = dead_end
    env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


def sidecar(store: Path, slug: str) -> dict[str, Any]:
    [path] = sorted((store / "text" / "tdi").rglob(f"{slug}.json"))
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def timestamp(car: dict[str, Any]) -> str:
    return re.sub(r"\D", "", car["capture_time"])[:14]


def stored_payload(store: Path, car: dict[str, Any]) -> bytes:
    """The response payload as the WARC holds it, read through the sidecar's pointer."""
    warc = car["warc"]
    data = LocalStore(store).get_range(warc["key"], warc["offset"], warc["length"])
    payloads = [bytes(rec.raw_stream.read()) for rec in ArchiveIterator(io.BytesIO(data))]
    assert len(payloads) == 1
    return payloads[0]


@pytest.fixture(scope="module")
def wayback(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A pywb collection holding the demo's WARC files, served by `wayback` on loopback."""
    bindir = require_program(
        pywb_bin(),
        "pywb (wayback, wb-manager)",
        "./scripts/test installs it into .venv-pywb; or set NEWSARCHIVE_PYWB_BIN to the bin/ "
        "directory of a virtualenv with pywb",
    )
    # Only now, so that a machine without pywb skips without running the demo.
    demo_store: Path = request.getfixturevalue("demo_store")
    root = tmp_path_factory.mktemp("pywb")
    env = offline_env()
    warcs = sorted(str(p) for p in (demo_store / "warc").rglob("*.warc.gz"))
    assert warcs
    for args in (["init", COLL], ["add", COLL, *warcs]):
        proc = subprocess.run(
            [str(bindir / "wb-manager"), *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, f"wb-manager {args[0]}: {proc.stdout}{proc.stderr}"

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = root / "wayback.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(bindir / "wayback"), "--bind", "127.0.0.1", "--port", str(port), "--threads", "1"],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        probe = f"{base}/{COLL}/cdx?url={quote(f'{HOST}/robots.txt', safe='')}&output=json"
        while True:
            if server.poll() is not None:
                pytest.fail(f"wayback exited {server.returncode}: {log_path.read_text()}")
            try:
                if fetch(probe, timeout=2).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"wayback did not answer on {base} in 30 s: {log_path.read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def replay_url(base: str, ts: str, slug: str) -> str:
    return f"{base}/{COLL}/{ts}id_/{HOST}/{slug}/"


def memento_datetime(ts: str) -> str:
    return format_datetime(datetime.strptime(ts, "%Y%m%d%H%M%S").replace(tzinfo=UTC), usegmt=True)


def test_gzip_capture_replays_its_original_bytes(wayback: str, demo_store: Path) -> None:
    car = sidecar(demo_store, GZIPPED)
    ts = timestamp(car)
    reply = fetch(replay_url(wayback, ts, GZIPPED), {"Accept-Encoding": "gzip"})
    assert reply.status == 200
    assert reply.header("Memento-Datetime") == [memento_datetime(ts)]
    # A client that takes gzip gets the stored gzip bytes, framed as they were captured.
    assert reply.header("Content-Encoding") == ["gzip"]
    assert reply.body[:2] == b"\x1f\x8b"
    assert reply.body == stored_payload(demo_store, car)
    assert reply.header("Content-Length") == [str(len(reply.body))]
    assert gzip.decompress(reply.body) == mirror_file("tdi", f"{GZIPPED}.html")


def test_gzip_capture_replays_decoded_to_an_identity_client(wayback: str, demo_store: Path) -> None:
    ts = timestamp(sidecar(demo_store, GZIPPED))
    # urllib asks for "Accept-Encoding: identity": pywb decodes and says what it was.
    reply = fetch(replay_url(wayback, ts, GZIPPED))
    assert reply.status == 200
    assert reply.header("Content-Encoding") == []
    assert reply.header("X-Archive-Orig-Content-Encoding") == ["gzip"]
    assert reply.header("Content-Type") == ["text/html; charset=UTF-8"]
    assert reply.body == mirror_file("tdi", f"{GZIPPED}.html")


def test_chunked_capture_replays_its_original_bytes(wayback: str, demo_store: Path) -> None:
    ts = timestamp(sidecar(demo_store, CHUNKED))
    reply = fetch(replay_url(wayback, ts, CHUNKED), {"Accept-Encoding": "gzip"})
    page = mirror_file("tdi", f"{CHUNKED}.html")
    assert reply.status == 200
    assert reply.header("Memento-Datetime") == [memento_datetime(ts)]
    assert reply.header("Content-Encoding") == []
    # The stored head states the de-chunked length; pywb serves it as it is.
    assert reply.header("Content-Length") == [str(len(page))]
    assert reply.header("Transfer-Encoding") == []
    assert reply.header("X-Archive-Orig-Transfer-Encoding") == []
    assert reply.body == page


@pytest.mark.parametrize("slug", [GZIPPED, CHUNKED])
def test_cdx_api_lists_the_capture_with_our_digest(
    wayback: str, demo_store: Path, slug: str
) -> None:
    car = sidecar(demo_store, slug)
    reply = fetch(f"{wayback}/{COLL}/cdx?url={quote(car['url'], safe='')}&output=json")
    assert reply.status == 200
    entries = [json.loads(line) for line in reply.body.decode().splitlines()]
    [capture] = [e for e in entries if e.get("status") == "200"]
    assert capture["url"] == car["url"]
    assert capture["urlkey"] == f"com,thediplomaticinsight)/{slug}"
    assert capture["timestamp"] == timestamp(car)
    assert capture["mime"] == "text/html"
    # pywb's own indexer writes the base32 SHA-1 without the "sha1:" label.
    assert "sha1:" + capture["digest"] == car["payload_digest"]
    assert capture["filename"] == car["warc"]["file"]
    assert (int(capture["offset"]), int(capture["length"])) == (
        car["warc"]["offset"],
        car["warc"]["length"],
    )


def test_only_http_responses_are_captures_of_an_article_url(wayback: str, demo_store: Path) -> None:
    car = sidecar(demo_store, CHUNKED)
    reply = fetch(f"{wayback}/{COLL}/cdx?url={quote(car['url'], safe='')}&output=json")
    assert reply.status == 200
    entries = [json.loads(line) for line in reply.body.decode().splitlines()]
    assert [(e.get("status"), e["mime"]) for e in entries] == [("200", "text/html")]
