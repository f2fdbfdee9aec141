"""The HTTP server under ``newsarchive serve``: waitress, in this process.

Waitress because it is a maintained pure-Python WSGI server that runs in-process with no
compiler and no event loop to adopt: our handlers are blocking code (SQLAlchemy, the store),
which WSGI runs as written. One thread reads and writes every socket (poll); requests run on a
fixed pool of worker threads; an idle connection costs a socket, not a thread, and is closed
after ``idle_timeout``; the listen backlog is the kernel's maximum, at least 1024; on SIGINT or
SIGTERM it stops accepting, lets running requests finish (5 s at most) and exits.
"""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)

_SOMAXCONN = Path("/proc/sys/net/core/somaxconn")
# Descriptors kept for what is not a connection: index files, the catalog, logs, the store.
_RESERVED_FDS = 128


@dataclass(frozen=True)
class ServerConfig:
    """How many requests run at once, how long an idle connection stays, how big a request
    may be."""

    threads: int = 8
    idle_timeout: int = 30
    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 64 * 1024  # GET only: a body is never read

    def __post_init__(self) -> None:
        if not 1 <= self.threads <= 256:
            raise ValueError(f"threads must be 1 to 256, not {self.threads}")
        if not 1 <= self.idle_timeout <= 3600:
            raise ValueError(f"idle timeout must be 1 to 3600 seconds, not {self.idle_timeout}")


def listen_backlog() -> int:
    """The kernel's cap on a listen queue (``somaxconn``), and never below 1024."""
    try:
        kernel = int(_SOMAXCONN.read_text().strip())
    except (OSError, ValueError):
        kernel = 0
    return max(1024, min(kernel, 65535))


def raise_fd_limit() -> int:
    """The soft limit on open descriptors raised to the hard one (65536 at most): each
    connection holds one. Returns the soft limit in force."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux
        return 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:
            logger.debug("descriptor limit stays at %d: %s", soft, exc)
    return int(soft) if soft != resource.RLIM_INFINITY else 65536


class _Stop(SystemExit):
    """Raised in the main thread by SIGTERM, as SIGINT raises KeyboardInterrupt: waitress's
    loop lets both through its handlers, stops its threads and returns."""


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to the address (OSError when it cannot be had, nothing left open)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def create(app: Callable[..., Any], host: str, port: int, config: ServerConfig) -> Any:
    """A bound waitress server for ``app`` (OSError when the address cannot be had)."""
    from waitress.server import create_server

    sock = bind(host, port)
    fds = raise_fd_limit()
    # waitress stops accepting at connection_limit; the rest wait in the backlog.
    limit = max(64, fds - _RESERVED_FDS - config.threads)
    # Each request is logged by the app; waitress's queue warnings say only that all
    # threads are busy, once per queued request.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    try:
        return create_server(
            app,
            sockets=[sock],
            threads=config.threads,
            backlog=listen_backlog(),
            connection_limit=limit,
            channel_timeout=config.idle_timeout,
            cleanup_interval=max(1, min(10, config.idle_timeout // 2)),
            asyncore_use_poll=True,  # select() cannot watch a descriptor above 1023
            ident="",  # no Server header, no version anywhere
            expose_tracebacks=False,
            max_request_header_size=config.max_header_bytes,
            max_request_body_size=config.max_body_bytes,
            clear_untrusted_proxy_headers=True,
        )
    except BaseException:
        sock.close()
        raise


def bound_port(server: Any) -> int:
    return int(server.effective_port)


def run(server: Any) -> None:
    """Serve until SIGINT or SIGTERM, then stop accepting, finish what runs, close."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop(signal.Signals(signum).name)

    # SIGINT too: a process started in the background of a shell without job control (a
    # script's `serve &`, a CI runner) inherits SIGINT ignored, and Ctrl-C or `kill -INT`
    # would then never stop it.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()  # returns on SIGINT or SIGTERM, having stopped its threads
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        close(server)


def close(server: Any) -> None:
    from waitress import wasyncore

    server.task_dispatcher.shutdown(timeout=1)
    wasyncore.close_all(server._map)
