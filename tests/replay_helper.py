"""Crawls replayed from the archive in tests: the command run with a guard on every socket.

``replay`` runs ``newsarchive crawl ... --from-archive`` in a subprocess whose Python (and the
crawl processes it starts) cannot open a network connection nor look a name up: a
``sitecustomize`` on its path records each attempt in a file and refuses it. The requests are
also sent through a proxy on a closed loopback port, so an attempt the guard missed fails too.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.conftest import ROOT, venv_program

SITES = ("almasirah", "irna", "president", "presstv", "tdi")
# The crawls against the loopback mirror request old articles: no discovery window.
REPLAY_SETTINGS = {"ARCHIVE_DISCOVERY_WINDOW_DAYS": "0"}

_GUARD = '''"""Test guard: no network connection nor name lookup, here or in a child."""
import os
import socket

_LOG = os.environ["NEWSARCHIVE_TEST_SOCKET_LOG"]
# The one address a process may reach (an S3 store on loopback), "host:port"; none if unset.
_ALLOWED = {
    (host, int(port))
    for host, _, port in (
        a.rpartition(":") for a in os.environ.get("NEWSARCHIVE_TEST_SOCKET_ALLOW", "").split()
    )
}
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def _refuse(what):
    with open(_LOG, "a", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()} {what}\\n")
    raise ConnectionRefusedError(f"test guard: no network in a replay ({what})")


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and tuple(address[:2]) not in _ALLOWED:
        _refuse(f"connect {address!r}")
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and tuple(address[:2]) not in _ALLOWED:
        _refuse(f"connect_ex {address!r}")
    return _connect_ex(self, address)


def getaddrinfo(host, port=None, *args, **kwargs):
    if (host, port) not in _ALLOWED:
        _refuse(f"getaddrinfo {host!r}")
    return _getaddrinfo(host, port, *args, **kwargs)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.getaddrinfo = getaddrinfo
'''


@dataclass
class Replay:
    proc: subprocess.CompletedProcess[str]
    log_dir: Path
    socket_log: Path

    @property
    def attempts(self) -> list[str]:
        """Every connection or name lookup the guard refused (none, in a replay)."""
        if not self.socket_log.exists():
            return []
        return self.socket_log.read_text(encoding="utf-8").splitlines()

    def report(self, site: str) -> dict[str, Any]:
        """The site's newest replay report (beside its log: the store gets nothing)."""
        found = sorted((self.log_dir / "replay" / site).glob("*.json"))
        assert found, f"no replay report of {site} in {self.log_dir}\n{self.output}"
        newest = max(found, key=lambda p: p.stat().st_mtime)
        data: dict[str, Any] = json.loads(newest.read_text(encoding="utf-8"))
        return data

    @property
    def output(self) -> str:
        return f"--- stdout\n{self.proc.stdout[-4000:]}\n--- stderr\n{self.proc.stderr[-4000:]}"

    def line(self, site: str) -> str:
        """The site's summary line (the one scripts read)."""
        return next(x for x in self.proc.stdout.splitlines() if x.startswith(f"{site} "))


@dataclass
class DemoReplay:
    """Every site of the all-sites demo replayed once, and its store before and after."""

    store: Path
    run: Replay
    files_before: dict[str, str]
    files_after: dict[str, str]
    rows_before: dict[str, int]
    rows_after: dict[str, int]


def replay_demo(demo_store: Path, work: Path) -> DemoReplay:
    """``crawl --all --from-archive`` over a copy of the demo's store (the session's own store
    stays as it is for the other tests)."""
    import shutil

    store = work / "store"
    shutil.copytree(demo_store, store)
    files, rows = store_state(store), catalog_rows(store)
    run = replay(store, work, "--all", "--jobs", str(len(SITES)))
    return DemoReplay(store, run, files, store_state(store), rows, catalog_rows(store))


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def guarded_env(
    work: Path,
    pythonpath: Iterable[Path] = (),
    *,
    base: Mapping[str, str] | None = None,
    allow: Iterable[tuple[str, int]] = (),
) -> tuple[dict[str, str], Path]:
    """The environment of a process (and its children) that cannot reach the network (but
    the addresses ``allow`` names: an S3 store's), and the file where each attempt is
    recorded."""
    guard = work / "guard"
    guard.mkdir(parents=True, exist_ok=True)
    (guard / "sitecustomize.py").write_text(_GUARD, encoding="utf-8")
    socket_log = work / "sockets.log"
    path = os.pathsep.join(str(p) for p in (guard, *pythonpath, ROOT))
    env = {
        **(os.environ if base is None else base),
        "PYTHONPATH": path,
        "NEWSARCHIVE_TEST_SOCKET_LOG": str(socket_log),
        "NEWSARCHIVE_TEST_SOCKET_ALLOW": " ".join(f"{h}:{p}" for h, p in allow),
    }
    return env, socket_log


def replay(
    store: Path | str,
    work: Path,
    *args: str,
    settings: dict[str, str] | None = None,
    pythonpath: Iterable[Path] = (),
    base_env: Mapping[str, str] | None = None,
    allow: Iterable[tuple[str, int]] = (),
) -> Replay:
    """``newsarchive crawl ARGS --from-archive --store STORE`` with the socket guard on
    (``allow``: the addresses it lets through, an S3 store's; ``base_env``: the environment
    it starts from)."""
    env, socket_log = guarded_env(work, pythonpath, base=base_env, allow=allow)
    log_dir = work / "logs"
    cli = venv_program("newsarchive")
    cmd = [str(cli)] if cli else [sys.executable, "-m", "crawler.ops.cli"]
    cmd += ["crawl", *args, "--from-archive", "--store", str(store)]
    cmd += ["--proxy", f"http://127.0.0.1:{closed_port()}", "--progress", "0"]
    given = {**REPLAY_SETTINGS, "ARCHIVE_LOG_DIR": str(log_dir), **(settings or {})}
    for name, value in given.items():
        cmd += ["-s", f"{name}={value}"]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300, env=env)
    return Replay(proc, log_dir, socket_log)


def store_state(store: Path) -> dict[str, str]:
    """Every file of the store by SHA-256, but the logs and SQLite's -wal/-shm companions
    (which hold no data: a reader in WAL mode may leave them)."""
    state = {}
    for path in sorted(store.rglob("*")):
        rel = path.relative_to(store).as_posix()
        if not path.is_file() or rel.startswith(".logs/") or rel.endswith(("-wal", "-shm")):
            continue
        state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def catalog_rows(store: Path) -> dict[str, int]:
    """Rows per table of the store's SQLite catalog, read only."""
    uri = f"file:{store / '.catalog.sqlite'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


def archived_texts(store: Path, site: str) -> dict[str, bytes]:
    """Article key -> the bytes of its archived text (its current version)."""
    uri = f"file:{store / '.catalog.sqlite'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        rows = conn.execute(
            "SELECT article_key, text_key FROM articles WHERE site = ?", (site,)
        ).fetchall()
    return {key: (store / text_key).read_bytes() for key, text_key in rows}


def sha256_label(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- an S3 store seen from outside --------------------------------------------------------------
class S3Recorder(ThreadingHTTPServer):
    """A loopback proxy in front of SeaweedFS that notes every request it forwards."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.seen: list[tuple[str, str, str | None, int]] = []
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: S3Recorder

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                chunk = self.rfile.read(size + 2)[:size]
                if not size:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    return out
                out += chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else None

    def _forward(self) -> None:
        body = self._body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding",)}
        if body is not None:
            headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=60)
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        with self.server.lock:
            self.server.seen.append(
                (
                    self.command,
                    unquote(urlsplit(self.path).path),
                    self.headers.get("Range"),
                    len(data),
                )
            )
        self.send_response(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() in ("transfer-encoding", "connection"):
                continue
            if name.lower() == "content-length" and self.command != "HEAD":
                continue
            self.send_header(name, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self.end_headers()
        upstream.close()

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _forward
