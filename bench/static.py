"""The benchmark's web server: Debian's nginx serving static files on 127.0.0.1, nothing between.

Two listeners on one document root: one answers with the files as they are (identity bodies),
the other with their pre-compressed ``.gz`` copies (``gzip_static always``: ``Content-Encoding:
gzip`` whatever the request accepts). HTML goes out as ``text/html; charset=utf-8``, as
WordPress sends it. nginx runs in a process of its own (one worker, no access log), so the
crawl process's CPU time is the crawl's alone. Install it with ``apt-get install nginx-light``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ENCODINGS = ("identity", "gzip")

CONFIG = """\
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    types {{ text/html html; text/plain txt; }}
    default_type application/octet-stream;
    charset utf-8;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    keepalive_timeout 120s;
    client_body_temp_path {work}/tmp/body;
    proxy_temp_path {work}/tmp/proxy;
    fastcgi_temp_path {work}/tmp/fastcgi;
    uwsgi_temp_path {work}/tmp/uwsgi;
    scgi_temp_path {work}/tmp/scgi;
    server {{
        listen 127.0.0.1:{identity};
        root {root};
        gzip off;
        gzip_static off;
    }}
    server {{
        listen 127.0.0.1:{gzip};
        root {root};
        gzip off;
        gzip_static always;
    }}
}}
"""


@dataclass(frozen=True)
class StaticServer:
    """Where the running server answers: ``base[encoding]`` is ``http://127.0.0.1:PORT``."""

    pid: int
    version: str
    base: dict[str, str]


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise SystemExit(
            "bench: nginx is not installed; `apt-get install nginx-light` (Debian's package) "
            "gives the static server the benchmark measures against"
        )
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bench: nginx exited: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError):  # not listening yet: try again
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        time.sleep(0.05)
    raise SystemExit(f"bench: nginx did not listen on 127.0.0.1:{port} within 10 s")


@contextlib.contextmanager
def serve(root: Path, work: Path) -> Iterator[StaticServer]:
    """Run nginx on ``root`` until the block ends (``root``'s parents must let anyone in)."""
    binary = nginx_binary()
    version = subprocess.run(
        [binary, "-v"], capture_output=True, text=True, check=False
    ).stderr.strip()
    ports = {"identity": _free_port(), "gzip": _free_port()}
    (work / "tmp").mkdir(parents=True, exist_ok=True)
    conf = work / "nginx.conf"
    conf.write_text(CONFIG.format(work=work, root=root, **ports))
    # As root nginx's worker runs as nobody: the tree must be readable by anyone.
    for path in (work, root, *root.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    log = work / "error.log"
    process = subprocess.Popen(
        [binary, "-p", str(work), "-c", str(conf), "-e", str(log)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for port in ports.values():
            _wait_listening(port, process, log)
        yield StaticServer(
            pid=process.pid,
            version=version,
            base={enc: f"http://127.0.0.1:{port}" for enc, port in ports.items()},
        )
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT)  # graceful: lets the worker exit first
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
