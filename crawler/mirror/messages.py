"""What the mirror answers: a response with its optional faults (the routes' building block)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ENCODINGS = frozenset({"gzip", "br", "deflate"})
DEFAULT_CHUNK_SIZE = 4096
# Framing is the mirror's job: a route that set these would desynchronise the connection.
RESERVED_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})

HeadersLike = Mapping[str, str] | Sequence[tuple[str, str]]
HeaderItems = tuple[tuple[str, str], ...]


class RouteError(ValueError):
    """A route or site definition is invalid."""


def header_items(headers: HeadersLike) -> HeaderItems:
    """Return headers as a tuple of (name, value) pairs, validating names and values."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: list[tuple[str, str]] = []
    for pair in pairs:
        if len(pair) != 2:
            raise RouteError(f"header must be a (name, value) pair, got {pair!r}")
        name, value = pair
        if not isinstance(name, str) or not isinstance(value, str):
            raise RouteError(f"header name and value must be strings, got {pair!r}")
        if not name or any(c in name for c in " \t\r\n:") or any(c in value for c in "\r\n"):
            raise RouteError(f"invalid header {name!r}: {value!r}")
        out.append((name, value))
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class MirrorResponse:
    """What the mirror answers, with the optional fault fields described in the module doc."""

    body: bytes = b""
    status: int | None = None
    reason: str | None = None
    headers: HeadersLike = ()
    content_type: str | None = None
    encoding: str | None = None
    force: bool = False
    chunked: bool = False
    chunk_size: int = DEFAULT_CHUNK_SIZE
    redirect: str | None = None
    delay: float = 0.0
    trickle: float = 0.0
    truncate: int | None = None
    fail_times: int = 0
    fail_status: int = 500
    fail_headers: HeadersLike = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", header_items(self.headers))
        object.__setattr__(self, "fail_headers", header_items(self.fail_headers))
        for name, _ in (*self.header_items, *self.fail_header_items):
            if name.lower() in RESERVED_HEADERS:
                raise RouteError(f"header {name!r} is set by the mirror, not by a route")
        if self.status is not None and not 100 <= self.status <= 999:
            raise RouteError(f"bad status {self.status!r}")
        if not 100 <= self.fail_status <= 999:
            raise RouteError(f"bad fail_status {self.fail_status!r}")
        if self.encoding is not None and self.encoding not in ENCODINGS:
            raise RouteError(f"encoding must be one of {sorted(ENCODINGS)} or null")
        if self.chunk_size < 1:
            raise RouteError("chunk_size must be positive")
        if self.delay < 0 or self.trickle < 0:
            raise RouteError("delay and trickle must not be negative")
        if self.truncate is not None and self.truncate < 0:
            raise RouteError("truncate must not be negative")
        if self.fail_times < 0:
            raise RouteError("fail_times must not be negative")
        if self.redirect is not None and any(c in self.redirect for c in "\r\n"):
            raise RouteError(f"bad redirect {self.redirect!r}")

    @property
    def header_items(self) -> HeaderItems:
        """The extra headers as (name, value) pairs."""
        headers = self.headers
        return headers if isinstance(headers, tuple) else header_items(headers)

    @property
    def fail_header_items(self) -> HeaderItems:
        """The headers of the injected failures as (name, value) pairs."""
        headers = self.fail_headers
        return headers if isinstance(headers, tuple) else header_items(headers)

    @property
    def effective_status(self) -> int:
        """The status sent: explicit, else 301 for a redirect, else 200."""
        if self.status is not None:
            return self.status
        return 301 if self.redirect is not None else 200
