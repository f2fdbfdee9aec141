"""Crawls replayed from the archive in tests: the command run with a guard on every socket.

``replay`` runs ``newsarchive crawl ... --from-archive`` in a subprocess whose Python (and the
crawl processes it starts) cannot open a network connection nor look a name up: a
``sitecustomize`` on its path records each attempt in a file and refuses it. The requests are
also sent through a proxy on a closed loopback port, so an attempt the guard missed fails too.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, venv_program

SITES = ("almasirah", "irna", "president", "presstv", "tdi")
# The crawls against the loopback mirror request old articles: no discovery window.
REPLAY_SETTINGS = {"ARCHIVE_DISCOVERY_WINDOW_DAYS": "0"}

_GUARD = '''"""Test guard: no network connection nor name lookup, here or in a child."""
import os
import socket

_LOG = os.environ["NEWSARCHIVE_TEST_SOCKET_LOG"]
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _refuse(what):
    with open(_LOG, "a", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()} {what}\\n")
    raise ConnectionRefusedError(f"test guard: no network in a replay ({what})")


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse(f"connect {address!r}")
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse(f"connect_ex {address!r}")
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    _refuse(f"getaddrinfo {host!r}")


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


def guarded_env(work: Path, pythonpath: Iterable[Path] = ()) -> tuple[dict[str, str], Path]:
    """The environment of a process (and its children) that cannot reach the network, and
    the file where each attempt is recorded."""
    guard = work / "guard"
    guard.mkdir(parents=True, exist_ok=True)
    (guard / "sitecustomize.py").write_text(_GUARD, encoding="utf-8")
    socket_log = work / "sockets.log"
    path = os.pathsep.join(str(p) for p in (guard, *pythonpath, ROOT))
    env = {**os.environ, "PYTHONPATH": path, "NEWSARCHIVE_TEST_SOCKET_LOG": str(socket_log)}
    return env, socket_log


def replay(
    store: Path,
    work: Path,
    *args: str,
    settings: dict[str, str] | None = None,
    pythonpath: Iterable[Path] = (),
) -> Replay:
    """``newsarchive crawl ARGS --from-archive --store STORE`` with the socket guard on."""
    env, socket_log = guarded_env(work, pythonpath)
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
