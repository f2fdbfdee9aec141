"""SeaweedFS `weed mini` on loopback only: one launcher for the tests and the benchmark.

The flags that keep it on this machine (bind to 127.0.0.1, telemetry off: it would report to
the internet) and the free ports for every server it opens live here once.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
)  # fmt: skip


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 now (all held at once, so they differ)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def start_weed(
    weed: Path, workdir: Path, identities: dict[str, Any]
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `weed mini` with data and log under ``workdir``; the process and its S3 endpoint."""
    config = workdir / "identities.json"
    config.write_text(json.dumps(identities))
    ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True))
    (workdir / "data").mkdir()
    cmd = [
        str(weed),
        "mini",
        f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={config}",
        "-admin.ui=false",
        "-webdav=false",
        "-master.telemetry=false",  # it would report to the internet
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    with (workdir / "weed.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    return proc, f"http://127.0.0.1:{ports['s3.port']}"


def admin(name: str, key: tuple[str, str], actions: tuple[str, ...] = ()) -> dict[str, Any]:
    """One identity of `weed`'s S3 config (an admin unless ``actions`` says otherwise)."""
    allowed = actions or ("Admin", "Read", "Write", "List", "Tagging")
    return {
        "name": name,
        "credentials": [{"accessKey": key[0], "secretKey": key[1]}],
        "actions": list(allowed),
    }


@contextmanager
def running_weed(
    weed: Path,
    workdir: Path,
    identities: list[dict[str, Any]],
    ready: Callable[[str], object],
    timeout: float = 30.0,
) -> Iterator[str]:
    """`weed mini` started, ``ready(endpoint)`` retried until it passes, stopped at the end.

    Yields the S3 endpoint; raises RuntimeError with the log's tail if it does not come up.
    """
    proc, endpoint = start_weed(weed, workdir, {"identities": identities})
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                tail = (workdir / "weed.log").read_text()[-3000:]
                raise RuntimeError(f"weed mini exited {proc.returncode}: {tail}")
            try:
                ready(endpoint)
                break
            except Exception:  # not listening yet, or still starting its filer
                if time.monotonic() > deadline:
                    tail = (workdir / "weed.log").read_text()[-3000:]
                    raise RuntimeError(f"weed mini not ready in {timeout:.0f} s: {tail}") from None
                time.sleep(0.2)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
