"""`newsarchive serve` for a team (issue 25): a hostile regular expression or a thousand idle
connections freeze nothing, a CDX answer reads only what it gives, and access is guarded
(authentication, a Host allowlist, credentials withheld from records, access rules with embargo
dates on every route). Over one crawl of the TDI mirror, a request record carrying a cookie."""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import http.client
import io
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from crawler.access.cdx import (
    MAX_FILTER_LENGTH,
    CdxBudgetExceeded,
    CdxIndex,
    CdxOptions,
)
from crawler.access.cdxfiles import FileSource, MemorySource, StoreIndexFiles
from crawler.access.guard import Credentials, hash_password, hash_token, host_name
from crawler.access.query import AccessError
from crawler.access.rules import AccessRules, RulesError
from crawler.access.serve import without_credentials
from crawler.mirror.routes import Route
from crawler.mirror.server import MirrorServer
from crawler.store.base import LocalStore
from tests.conftest import ROOT, venv_program
from tests.test_diff_versions import SITE_DIR, crawl

TDI = "https://thediplomaticinsight.com/"
ARTICLE = TDI + "president-of-pakistan-stands-with-palestine-calls-for-un-action/"
COOKIE = "session=s3cret-value"
HOSTILE = "~url:(.*)*X"
PASSWORD = "correct horse battery"
TOKEN = "tok-" + "x" * 40


# ------------------------------------------------------------------ the store and the server


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One crawl of the TDI mirror, whose robots.txt and home page set a cookie: the crawler
    sends it back, so its request records carry ``Cookie:``."""
    tmp = tmp_path_factory.mktemp("hardening")
    store = tmp / "store"
    with MirrorServer(sites=[SITE_DIR]) as mirror:
        for name, url in (("robots.txt", TDI + "robots.txt"), ("index.html", TDI)):
            mirror.add_route(
                Route(
                    url=url,
                    body=(SITE_DIR / name).read_bytes(),
                    content_type="text/plain" if name.endswith(".txt") else "text/html",
                    headers=(("Set-Cookie", f"{COOKIE}; Path=/"),),
                )
            )
        crawl(mirror, store, tmp / "1.json")
    return store


@dataclass
class Server:
    base: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def request(
        self,
        path: str,
        headers: dict[str, str] | None = None,
        method: str = "GET",
        timeout: float = 10,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def status(self, path: str, headers: dict[str, str] | None = None) -> int:
        return self.request(path, headers)[0]

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _command() -> list[str]:
    program = venv_program("newsarchive")
    return [str(program)] if program else [sys.executable, "-m", "crawler.ops.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **extra}
    env.pop("NEWSARCHIVE_SERVE_AUTH", None)
    env.update(extra)
    return env


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def serving(
    store: Path,
    log: Path,
    *args: str,
    ready: dict[str, str] | None = None,
    sigint_ignored: bool = False,
    **env: str,
) -> Iterator[Server]:
    port = free_port()
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [*_command(), "serve", "--store", str(store), "--port", str(port), *args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=_env(**env),
            # As a shell without job control starts `serve &`: SIGINT inherited ignored.
            preexec_fn=_ignore_sigint if sigint_ignored else None,
        )
    server = Server(f"http://127.0.0.1:{port}", port, proc, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"serve exited {proc.returncode}: {server.text()[-3000:]}")
            try:
                if server.status("/", ready) == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"serve did not answer: {server.text()[-3000:]}")
            time.sleep(0.1)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert "Traceback" not in server.text(), server.text()[-3000:]


@pytest.fixture(scope="module")
def plain(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(store, tmp_path_factory.mktemp("plain") / "serve.log") as server:
        yield server


def captures_of(store: Path) -> list[dict[str, Any]]:
    import sqlite3

    with contextlib.closing(sqlite3.connect(store / ".catalog.sqlite")) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("select * from captures order by id").fetchall()
    return [dict(r) for r in rows]


def ident(record_id: str) -> str:
    return record_id.removeprefix("<urn:uuid:").removesuffix(">")


def article_capture(store: Path) -> dict[str, Any]:
    return next(
        c
        for c in captures_of(store)
        if c["url"] == ARTICLE and c["text_key"] and c["record_type"] == "response"
    )


def cdx(**query: Any) -> str:
    return "/cdx?" + urlencode(query, doseq=True)


# ------------------------------------------------------------------ a request cannot freeze it


def test_a_backtracking_filter_freezes_nothing(plain: Server) -> None:
    """pywb's Python regex would spend ages on (.*)*X over these URLs; RE2 answers at once,
    a filter past the length limit is refused, and fifty other requests answer within a
    second while they run."""
    hostile = [
        cdx(url="thediplomaticinsight.com", matchType="domain", filter=HOSTILE),
        cdx(url="thediplomaticinsight.com/*", filter="~url:" + "(.*)*" * 60 + "X"),
    ]
    ordinary = [
        cdx(url=TDI + "robots.txt", output="json"),
        "/",
        cdx(url=ARTICLE, fl="timestamp,status"),
        "/site/tdi",
        cdx(url="thediplomaticinsight.com/*", limit="3"),
    ]
    start = threading.Barrier(52)

    def timed(path: str) -> tuple[str, int, float, bytes]:
        start.wait()
        began = time.monotonic()
        status, _, body = plain.request(path, timeout=30)
        return path, status, time.monotonic() - began, body

    with ThreadPoolExecutor(52) as pool:
        futures = [pool.submit(timed, p) for p in hostile]
        futures += [pool.submit(timed, ordinary[n % len(ordinary)]) for n in range(50)]
        results = [f.result() for f in futures]
    (_, s1, t1, b1), (_, s2, t2, b2) = results[:2]
    assert s1 == 200 and b1 == b"" and t1 < 2, (s1, t1, b1[:200])
    assert s2 == 400 and t2 < 2
    assert json.loads(b2) == {
        "message": f"a filter of {6 + 5 * 60} characters: at most {MAX_FILTER_LENGTH}"
    }
    slow = [(p, s, round(t, 3)) for p, s, t, _ in results[2:] if s != 200 or t >= 1.0]
    assert not slow, slow


def test_a_thousand_idle_connections_leave_room(store: Path, tmp_path: Path) -> None:
    """Idle sockets hold a descriptor each, no thread: a new request still answers at once,
    and the idle ones are closed after --idle-timeout."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    idle = 1000 if limit == resource.RLIM_INFINITY else min(1000, limit - 100)
    if idle < 1000:
        print(f"descriptor limit {limit}: {idle} idle connections instead of 1000")
    with serving(store, tmp_path / "serve.log", "--idle-timeout", "3") as server:
        sockets: list[socket.socket] = []
        try:
            for _ in range(idle):
                sockets.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
            time.sleep(0.5)  # accepted, every one
            began = time.monotonic()
            assert server.status(cdx(url=TDI + "robots.txt")) == 200
            assert server.status("/") == 200
            assert time.monotonic() - began < 1.0
            # The idle ones are closed by the server (read gives EOF) after the timeout.
            sample = sockets[:: max(1, idle // 20)]
            deadline = time.monotonic() + 15
            closed = 0
            for sock in sample:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                with contextlib.suppress(OSError):  # a reset is a close too
                    if sock.recv(1) == b"":
                        closed += 1
                        continue
                closed += 1 if time.monotonic() < deadline else 0
            assert closed == len(sample)
        finally:
            for sock in sockets:
                sock.close()


def test_sigterm_stops_it_cleanly(store: Path, tmp_path: Path) -> None:
    with serving(store, tmp_path / "serve.log") as server:
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(10) == 0
    with serving(store, tmp_path / "serve2.log") as server:
        server.proc.send_signal(signal.SIGINT)
        assert server.proc.wait(10) == 0
    # Started in the background of a script (SIGINT ignored), `kill -INT` still stops it.
    with serving(store, tmp_path / "serve3.log", sigint_ignored=True) as server:
        server.proc.send_signal(signal.SIGINT)
        assert server.proc.wait(10) == 0


# ------------------------------------------------------------------ bounded CDX answers


def synthetic_lines(count: int, hosts: int = 50) -> list[str]:
    """Sorted CDXJ lines of made-up captures, as the crawls write them."""
    lines = []
    for n in range(count):
        host = f"com,example{n % hosts:03d})"
        path = f"/news/{n // hosts:07d}"
        url = f"https://example{n % hosts:03d}.com{path}"
        fields = {
            "url": url,
            "mime": "text/html",
            "status": "200",
            "digest": f"sha1:{n:032d}",
            "length": "1000",
            "offset": str(n * 1000),
            "filename": "synthetic.warc.gz",
        }
        lines.append(f"{host}{path} 2025{n % 12 + 1:02d}01000000 {json.dumps(fields)}")
    lines.sort()
    return lines


def test_a_file_is_read_as_the_same_lines_in_memory(tmp_path: Path) -> None:
    rng = random.Random(25)
    for trial in range(12):
        lines = sorted(
            f"com,ex{rng.randint(0, 30)})/{'p' * rng.randint(0, 9000 if trial % 4 == 0 else 40)}"
            f' 2020 {{"n": {i}}}'
            for i in range(rng.choice([0, 1, 3, 200, 2000]))
        )
        path = tmp_path / f"{trial}.cdxj"
        path.write_text("".join(f"{line}\n" for line in lines))
        on_disk = FileSource(path, path.name, block_bytes=rng.choice([64, 4096]))
        in_memory = MemorySource(lines, path.name)
        assert on_disk.bounds() == in_memory.bounds()
        for _ in range(40):
            a = f"com,ex{rng.randint(0, 35)})/" + "p" * rng.randint(0, 3)
            b = f"com,ex{rng.randint(0, 35)})/"
            low, high = min(a, b), max(a, b) + "~"
            assert list(on_disk.lines_in(low, high)) == list(in_memory.lines_in(low, high))
        firsts = [block.first for block in on_disk.blocks()]
        assert firsts == sorted(firsts) and set(firsts) <= set(lines)


def test_paged_answers_cover_the_whole_answer_once() -> None:
    lines = synthetic_lines(3000, hosts=3)
    plain = CdxIndex(lines[::2], lines[1::2])
    paged = CdxIndex(lines[::2], lines[1::2], options=CdxOptions(paged=True), block_lines=100)
    query = {"url": "example001.com", "matchType": "host", "output": "json"}
    info = json.loads(paged.answer(urlencode({**query, "showNumPages": "true"})).body)
    assert info["pageSize"] == 10 and info["pages"] >= 2 and info["blocks"] > 10
    got: list[str] = []
    for page in range(info["pages"]):
        found = paged.answer(urlencode({**query, "page": page, "limit": 0}))
        assert found.status == 200
        got += found.body.decode().splitlines()
    whole = plain.answer(urlencode({**query, "limit": 0})).body.decode().splitlines()
    assert len(whole) == 1000 and sorted(got) == sorted(whole)
    index = paged.answer(urlencode({**query, "showPagedIndex": "true", "page": 0}))
    blocks = [json.loads(line) for line in index.body.decode().splitlines()]
    assert blocks and set(blocks[0]) == {"urlkey", "part", "offset", "length", "lineno"}
    beyond = paged.answer(urlencode({**query, "page": info["pages"]}))
    assert beyond.status == 400
    assert json.loads(beyond.body)["message"] == (
        f"Page {info['pages']} invalid: First Page is 0, Last Page is {info['pages'] - 1}"
    )
    bad = paged.answer(urlencode({**query, "pageSize": "x"}))
    assert json.loads(bad.body) == {"message": "Invalid value for pageSize= param: x"}
    # Unpaged (the default), page= changes nothing, as pywb over plain CDXJ files.
    assert plain.answer(urlencode({**query, "page": 1, "limit": 0})).body.decode().splitlines() == (
        whole
    )


def test_a_query_past_its_budget_is_refused_or_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    import crawler.access.cdx as cdx_module

    lines = synthetic_lines(6000, hosts=1)
    index = CdxIndex(lines, options=CdxOptions(budget=1.0))
    clock = iter(itertools_count(0.0, 0.001))  # every look at the clock: 1 ms later
    monkeypatch.setattr(cdx_module.time, "monotonic", lambda: next(clock))
    # Nothing sent yet when the budget runs out (sorting for sort=reverse): a 400.
    refused = index.answer(urlencode({"url": "example000.com/*", "sort": "reverse"}))
    assert refused.status == 400
    assert "ran past its budget of 1 s" in json.loads(refused.body)["message"]
    # Past the first bytes: the stream is cut.
    answer = index.stream(urlencode({"url": "example000.com/*", "limit": "0"}))
    assert answer.status == 200
    taken = []
    with pytest.raises(CdxBudgetExceeded):
        for chunk in answer.chunks:
            taken.append(chunk)
    assert taken and len(b"".join(taken).splitlines()) < len(lines)


def itertools_count(start: float, step: float) -> Iterator[float]:
    value = start
    while True:
        yield value
        value += step


def test_filters_and_limits_are_bounded() -> None:
    index = CdxIndex(synthetic_lines(100))

    def message(**query: str) -> str:
        found = index.answer(urlencode(query))
        assert found.status == 400, found.body
        text: str = json.loads(found.body)["message"]
        return text

    many = urlencode({"url": "example001.com/*", "filter": ["status:200"] * 17}, doseq=True)
    assert json.loads(index.answer(many).body)["message"] == "17 filters: at most 16"
    assert "no lookaround" in message(url="example001.com/*", filter="~url:(?=x)")
    assert "at most 10000 lines are sorted" in message(
        url="example001.com/*", sort="reverse", limit="20000"
    )
    assert message(url="x" * 9000) == "url is 9000 characters long: at most 8192"
    # RE2 matches as Python's re does, from the start.
    found = index.answer(urlencode({"url": "example001.com/*", "filter": "~url:https://ex"}))
    assert found.status == 200 and found.body.count(b"\n") == 2


def test_new_index_files_are_seen_without_a_restart(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    lines = synthetic_lines(20, hosts=2)
    (tmp_path / "index" / "a").mkdir(parents=True)
    (tmp_path / "index" / "a" / "one.cdxj").write_text(lines[0] + "\n")
    now = [0.0]
    files = StoreIndexFiles(store, refresh=5, clock=lambda: now[0])
    index = CdxIndex(sources=files)
    query = {"url": "example000.com/*"}
    assert len(index.query(query)) == 1
    (tmp_path / "index" / "b").mkdir()
    (tmp_path / "index" / "b" / "two.cdxj").write_text("".join(f"{x}\n" for x in lines[1:]))
    assert len(index.query(query)) == 1  # listed again at most every 5 s
    now[0] = 5.0
    assert len(index.query(query)) == 10
    assert {s.site for s in files()} == {"a", "b"}
    (tmp_path / "index" / "b" / "two.cdxj").unlink()
    now[0] = 10.0
    assert len(index.query(query)) == 1


# ------------------------------------------------------------------ bad input, one line


def test_bad_requests_are_one_line_that_names_the_problem(plain: Server, store: Path) -> None:
    for query, said in (
        ({"url": "x", "limit": "abc"}, "invalid literal for int()"),
        ({"url": "x", "filter": "~url:("}, "missing ), unterminated subpattern"),
        ({"limit": "1"}, 'The "url" param is required'),
    ):
        status, headers, body = plain.request(cdx(**query))
        assert status == 400 and headers["content-type"] == "application/json; charset=utf-8"
        assert said in json.loads(body)["message"]
    status, headers, body = plain.request("/nothing/here")
    assert status == 404 and b"/nothing/here" in body
    assert "server" not in headers
    status, _, body = plain.request("/capture/" + "0" * 8 + "-0000-0000-0000-" + "0" * 12)
    assert status == 404 and str(store).encode() not in body
    huge = plain.request("/cdx?url=" + "a" * 70_000)
    assert huge[0] in (400, 431)
    assert plain.request("/", method="DELETE")[0] == 501


def test_a_missing_object_is_a_404_that_names_no_path(store: Path, tmp_path: Path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    capture = article_capture(copy)
    (copy / capture["text_key"]).unlink()
    with serving(copy, tmp_path / "serve.log") as server:
        status, _, body = server.request(f"/text/{ident(capture['record_id'])}")
        assert status == 404 and b"not in the store" in body
        assert str(copy).encode() not in body and b"file://" not in body


def test_a_port_out_of_range_is_one_line(store: Path) -> None:
    proc = subprocess.run(
        [*_command(), "serve", "--store", str(store), "--port", "99999"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert proc.returncode == 2
    assert "a port is 0 to 65535" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------------ who may read


def test_authentication_on_and_off(plain: Server, store: Path, tmp_path: Path) -> None:
    assert plain.status("/") == 200  # off: loopback, as before
    auth = tmp_path / "team.auth"
    made = subprocess.run(
        [*_command(), "serve", "--hash-password", "alice"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    auth.write_text(made.stdout + f"# a token\nci:{hash_token(TOKEN)}\n")
    basic = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    wrong = "Basic " + base64.b64encode(b"alice:nope-nope-nope").decode()
    with serving(store, tmp_path / "serve.log", "--auth-file", str(auth),
                 ready={"Authorization": basic}) as server:  # fmt: skip
        status, headers, _ = server.request("/")
        assert status == 401 and headers["www-authenticate"].startswith("Basic realm=")
        assert server.status("/", {"Authorization": wrong}) == 401
        assert server.status("/", {"Authorization": basic}) == 200
        assert server.status("/site/tdi", {"Authorization": f"Bearer {TOKEN}"}) == 200
        assert server.status("/", {"Authorization": "Bearer not-the-token"}) == 401
        status, headers, body = server.request(cdx(url=TDI))
        assert status == 401 and "message" in json.loads(body)
        assert server.status(cdx(url=TDI), {"Authorization": f"Bearer {TOKEN}"}) == 200
    # The same lines from the environment.
    with serving(store, tmp_path / "serve2.log", ready={"Authorization": f"Bearer {TOKEN}"},
                 NEWSARCHIVE_SERVE_AUTH=f"ci:{hash_token(TOKEN)}") as server:  # fmt: skip
        assert server.status("/") == 401
    # Remote without credentials: refused before anything listens.
    proc = subprocess.run(
        [*_command(), "serve", "--store", str(store), "--host", "0.0.0.0", "--allow-remote"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "--auth-file" in proc.stderr and not proc.stdout


@contextlib.contextmanager
def patch_scrypt(replacement: Any) -> Iterator[None]:
    """hashlib.scrypt counted for one check (the guard calls it through hashlib)."""
    real = hashlib.scrypt
    hashlib.scrypt = replacement  # type: ignore[assignment]
    try:
        yield
    finally:
        hashlib.scrypt = real


def test_credentials_are_hashed_and_checked() -> None:
    line = "alice:" + hash_password(PASSWORD, salt=b"0" * 16)
    found = Credentials.parse([line, f"ci:{hash_token(TOKEN)}"], "test")
    basic = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert found.check(basic) == "alice" and found.check(basic) == "alice"  # cached
    assert found.check(f"Bearer {TOKEN}") == "ci"
    assert found.check("Basic " + base64.b64encode(f"x:{TOKEN}".encode()).decode()) == "ci"
    assert found.check("Basic !!") is None and found.check(None) is None
    assert PASSWORD not in line
    with pytest.raises(Exception, match="line 1"):
        Credentials.parse(["alice:plaintext"], "test")
    env = Credentials.load(None, {"NEWSARCHIVE_SERVE_AUTH": f"ci:{hash_token(TOKEN)}"})
    assert env is not None and env.check(f"Bearer {TOKEN}") == "ci"
    assert Credentials.load(None, {}) is None
    # A name not in the file costs the same scrypt work as a wrong password: the refusals'
    # times do not tell which names exist.
    calls: list[int] = []
    real = hashlib.scrypt

    def counting(*args: object, **kwargs: object) -> bytes:
        calls.append(int(kwargs["n"]))  # type: ignore[call-overload]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    fresh = Credentials.parse([line], "test")
    for user in ("alice", "mallory"):
        with patch_scrypt(counting):
            assert (
                fresh.check("Basic " + base64.b64encode(f"{user}:nope".encode()).decode()) is None
            )
    assert len(calls) == 2 and calls[0] == calls[1]


def test_a_wrong_host_is_refused(plain: Server, store: Path, tmp_path: Path) -> None:
    for host in ("evil.example", "evil.example:80", "127.0.0.1.evil.example"):
        status, _, body = plain.request("/", {"Host": host})
        assert status == 400 and b"Host" in body, host
    for host in (f"127.0.0.1:{plain.port}", f"localhost:{plain.port}", "localhost"):
        assert plain.status("/", {"Host": host}) == 200, host
    assert host_name("[::1]:8080") == "::1" and host_name("Example.ORG.") == "example.org"
    with serving(store, tmp_path / "serve.log", "--allowed-host", "archive.example") as server:
        assert server.status("/", {"Host": "archive.example:8080"}) == 200
        assert server.status("/", {"Host": "evil.example"}) == 400


def test_cookies_are_withheld_from_served_records(
    plain: Server, store: Path, tmp_path: Path
) -> None:
    from warcio.archiveiterator import ArchiveIterator

    capture = article_capture(store)
    path = f"/warc/{ident(capture['record_id'])}"
    status, _, raw = plain.request(path)
    assert status == 200 and COOKIE.encode() in gzip.decompress(raw)  # as captured, by default
    with serving(store, tmp_path / "serve.log", "--withhold-credentials") as server:
        status, _, served = server.request(path)
        text = gzip.decompress(served)
        assert status == 200 and COOKIE.encode() not in text and b"\r\nCookie:" not in text
        kinds = []
        for record in ArchiveIterator(io.BytesIO(served), check_digests=True):
            record.content_stream().read()
            assert record.digest_checker.passed is not False, record.digest_checker.problems
            kinds.append(record.rec_type)
            if record.rec_type == "request":
                assert record.rec_headers.get_header("WARC-Withheld-Headers") == "Cookie"
                assert record.http_headers.get_header("User-Agent")
            if record.rec_type == "warcinfo":
                info = record.content_stream().read()
                assert str(store).encode() not in info
        assert kinds[:3] == ["warcinfo", "response", "request"]
        [wacz] = (store / "wacz" / "tdi").glob("*.wacz")
        assert server.status(f"/wacz/tdi/{wacz.name}") == 403
    # A record that cannot be read cannot be told free of credentials: it is not served.
    with pytest.raises(AccessError, match="cannot be read"):
        without_credentials(b"not a warc", set())


# ------------------------------------------------------------------ access rules


def _fake_replaywebpage(root: Path) -> Path:
    app = root / "rwp"
    app.mkdir()
    for name in ("index.html", "ui.js", "sw.js"):
        (app / name).write_text("/* stand-in */")
    return app


def test_an_access_rule_withholds_a_url_prefix_on_every_route(store: Path, tmp_path: Path) -> None:
    capture = article_capture(store)
    other = next(
        c
        for c in captures_of(store)
        if c["text_key"] and c["url"] != ARTICLE and c["record_type"] == "response"
    )
    crawl_id = capture["crawl_id"]
    rules = tmp_path / "access.txt"
    rules.write_text("# nothing withheld yet\n")
    app = _fake_replaywebpage(tmp_path)
    args = ("--access-file", str(rules), "--replaywebpage", str(app))
    with serving(store, tmp_path / "serve.log", *args) as server:
        own = ident(capture["record_id"])
        assert server.status(f"/capture/{own}") == 200
        rules.write_text(f"block {ARTICLE}\n")  # a takedown, no restart
        time.sleep(2.5)
        for kind in ("capture", "text", "sidecar", "warc", "html"):
            status, _, body = server.request(f"/{kind}/{own}")
            assert status == 451 and b"withheld" in body, kind
        assert server.status(f"/{'capture'}/{ident(other['record_id'])}") == 200
        assert server.request(cdx(url=ARTICLE))[2] == b""
        listed = server.request(cdx(url="thediplomaticinsight.com/*", fl="url"))[2].decode()
        assert ARTICLE not in listed and other["url"] in listed
        search = server.request("/search?" + urlencode({"q": "Pakistan"}))[2].decode()
        assert "/capture/" + own not in search
        day = capture["capture_time"][:10]
        listing = server.request(f"/site/tdi/captured/{day}")[2].decode()
        assert own not in listing and ident(other["record_id"]) in listing
        assert server.status(f"/wacz/tdi/{crawl_id}.wacz") == 451
        replay = f"/replay/tdi/{crawl_id}?" + urlencode({"url": other["url"]})
        assert server.status(replay) == 451  # its WACZ holds the withheld capture
        assert (
            "class=wacz" not in server.request(f"/capture/{ident(other['record_id'])}")[2].decode()
        )
        # The rule lifted: everything is back.
        rules.write_text(f"allow {ARTICLE}\n")
        time.sleep(2.5)
        assert server.status(f"/capture/{own}") == 200
        assert server.status(f"/wacz/tdi/{crawl_id}.wacz") == 200
        assert ARTICLE.encode() in server.request(cdx(url=ARTICLE, fl="url"))[2]


def test_an_embargo_ends_on_its_day(store: Path, tmp_path: Path) -> None:
    capture = article_capture(store)
    rules = tmp_path / "access.txt"
    rules.write_text(
        "block site:tdi until 2999-01-01\nblock https://example.org/ until 2000-01-01\n"
    )
    with serving(store, tmp_path / "serve.log", "--access-file", str(rules)) as server:
        status, _, body = server.request(f"/text/{ident(capture['record_id'])}")
        assert status == 451 and b"until 2999-01-01" in body
        assert server.request(cdx(url=ARTICLE))[2] == b""
    today = [date(2025, 12, 31)]
    found = AccessRules.parse("block site:tdi until 2026-01-01\nallow https://x.org/ok\n", "t")
    found.today = lambda: today[0]
    assert found.withheld(ARTICLE, "tdi") is not None
    today[0] = date(2026, 1, 1)
    assert found.withheld(ARTICLE, "tdi") is None
    with pytest.raises(RulesError, match="line 1"):
        AccessRules.parse("allow site:tdi until 2026-01-01", "t")


def test_rules_pick_the_most_specific_target() -> None:
    rules = AccessRules.parse(
        "\n".join(
            (
                "block *.example.org",
                "allow https://example.org/public/",
                "block https://example.org/public/secret",
                "block com,example)/photo",
                "block site:irna",
                "allow https://en.irna.ir/news/1/",
            )
        ),
        "t",
    )
    cases = {
        ("https://www.example.org/x", None): True,
        ("https://example.org/public/a", None): False,
        ("https://example.org/public/secret?x=1", None): True,
        ("https://example.org/public/secrets", None): False,
        ("http://example.com/photos/1", None): True,
        ("http://example.com/other", None): False,
        ("https://en.irna.ir/news/2/", "irna"): True,
        ("https://en.irna.ir/news/1", "irna"): False,
        ("https://en.irna.ir/news/1/", None): False,
    }
    assert {k: rules.withheld(*k) is not None for k in cases} == cases
