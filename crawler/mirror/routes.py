"""Route model and loader for the loopback mirror of the source sites.

A mirrored site is a directory ``crawler/mirror/sites/<site>/`` holding ``routes.json`` and the
body files it names. ``routes.json`` is one JSON object::

    {
      "hosts": ["thediplomaticinsight.com", "www.thediplomaticinsight.com"],
      "headers": {"Server": "nginx"},
      "http_redirect": true,
      "not_found": {"file": "404.html", "content_type": "text/html; charset=UTF-8"},
      "routes": [
        {"url": "https://thediplomaticinsight.com/feed/",
         "file": "feed.xml",
         "content_type": "application/rss+xml; charset=UTF-8",
         "encoding": "gzip"},
        {"url": "https://thediplomaticinsight.com/robots.txt",
         "body": "User-agent: *\\nDisallow: /wp-admin/\\n"},
        {"url": "https://thediplomaticinsight.com/old/",
         "redirect": "https://thediplomaticinsight.com/new/"}
      ]
    }

Site keys (all optional except ``routes``):

``routes``
    List of route objects (below).
``hosts``
    Host names the site answers for. The hosts of all route URLs are added automatically; list
    more here so that unknown paths on them get the site's 404 rather than 502.
``headers``
    Headers added to every response for the site's hosts (404s included); a route's own
    ``headers`` win over these. Object ``{"Name": "value"}`` or list ``[["Name", "value"], ...]``.
``http_redirect``
    ``true``: any ``http://`` request to the site's hosts that matches no route is answered with
    ``301`` to the same URL on ``https://`` (what most news sites do).
``not_found``
    A route object without ``url`` used as the 404 page (``status`` defaults to 404). Without it the
    mirror answers a generic, real-looking HTML 404 page.
``challenge``
    Answer requests without valid cookies with an ArvanCloud-style cookie challenge first:
    ``{"ttl": 3600, "max_uses": 0}`` (see ``crawler.mirror.challenge``).
``comment`` and any key starting with ``_``
    Ignored, for notes. Any other unknown key, in the site or in a route, is an error.

Route keys:

``url`` (required)
    Absolute ``http``/``https`` URL the route answers, including the query string. Matching is
    exact after normalising only the scheme and host case, default ports (``:80``/``:443``), an
    empty path (``/``), dropping the fragment, and percent-encoding (UTF-8) any non-ASCII
    character. Trailing slashes and query order are significant.
``file`` / ``body``
    Body: a file path relative to the site directory (must stay inside it), or inline text sent as
    UTF-8. At most one of them; neither means an empty body (or a small HTML page for
    redirects and errors).
``status``, ``reason``
    Status code (default 200, or 301 with ``redirect``) and reason phrase (default: standard).
``content_type``
    Content-Type header. Default: guessed from the file's extension (else the URL path's
    extension, else ``text/html``), without a charset parameter: give the full value to send one.
``headers``
    Extra response headers, object or list of pairs (a list allows repeated names such as
    ``Set-Cookie``). ``Content-Length``, ``Transfer-Encoding`` and ``Connection`` are set by the
    mirror and rejected here. A ``Content-Encoding`` header here means the body file is already
    encoded: it is sent as is, whatever the request accepts.
``encoding``
    ``"gzip"``, ``"br"``, ``"deflate"`` (zlib stream, as RFC 9110 defines it) or ``null``: encode
    the body on the fly (cached) and send ``Content-Encoding``, only if the request's
    ``Accept-Encoding`` allows it (q-values and ``*`` honoured), like a real server. ``Vary:
    Accept-Encoding`` is always sent for such a route.
``force``
    ``true``: apply ``encoding`` even when the request does not accept it.
``chunked``
    ``true``: send with ``Transfer-Encoding: chunked`` instead of ``Content-Length``.
``chunk_size``
    Bytes per chunk for ``chunked`` and ``trickle`` (default 4096).
``redirect``
    Location to redirect to (absolute or relative, sent as is); status defaults to 301.
``delay``
    Seconds to wait before the response starts (slow server).
``trickle``
    Seconds to wait between chunks of ``chunk_size`` bytes (slow body), chunked or not.
``truncate``
    Send the framing of the full body (its ``Content-Length``, or chunked) but only the first N
    bytes of the (encoded) body, then close the connection.
``fail_times``, ``fail_status``, ``fail_headers``
    Answer ``fail_status`` (default 500) with ``fail_headers`` (e.g. ``{"Retry-After": "1"}``) to
    the first N requests for the URL, then answer normally. The count is kept per mirror server
    and URL.

Responses always carry ``Date`` and ``Content-Type``; an empty body with a status of 300 or more
is replaced by a small nginx-style HTML page. Static routes are encoded once (gzip level 6,
brotli quality 11) and cached; handler responses are encoded per request at fast levels (gzip 1,
brotli 4).

In Python, ``MirrorResponse`` carries the same fields for dynamic pages (see
``MirrorServer.add_handler``; ``body`` is bytes, ``headers`` a mapping or a sequence of pairs) and
``Route`` is a ``MirrorResponse`` with a ``url``::

    server.add_route(Route(url="https://news.example.test/x", body=b"...", encoding="gzip"))
"""

from __future__ import annotations

import json
import logging
import mimetypes
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from crawler.mirror.messages import (
    RESERVED_HEADERS,
    HeaderItems,
    MirrorResponse,
    RouteError,
    header_items,
)

logger = logging.getLogger(__name__)

SITES_DIR = Path(__file__).resolve().parent / "sites"
ROUTES_FILE = "routes.json"
_CONTENT_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".xml": "application/xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".json": "application/json",
    ".txt": "text/plain",
    ".js": "application/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".gz": "application/gzip",
    ".pdf": "application/pdf",
}


@dataclass(frozen=True, kw_only=True)
class Route(MirrorResponse):
    """A static response for one exact URL."""

    url: str
    source: Path | None = field(default=None, compare=False)  # body file it was loaded from

    def __post_init__(self) -> None:
        super().__post_init__()
        normalize_url(self.url)  # validates


@dataclass(frozen=True)
class Site:
    """One mirrored site as loaded from its directory."""

    name: str
    hosts: frozenset[str]
    routes: tuple[Route, ...]
    headers: HeaderItems = ()
    http_redirect: bool = False
    not_found: MirrorResponse | None = None
    challenge: Any = None  # crawler.mirror.challenge.ArvanChallenge


def reason_phrase(status: int) -> str:
    """The standard reason phrase for a status code."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def normalize_host(host: str) -> str:
    """Lower-case a host name and encode it to its ASCII (IDNA) form."""
    host = host.strip().rstrip(".").lower()
    if host.startswith("[") and host.endswith("]"):
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise RouteError(f"bad host name {host!r}") from exc


def normalize_url(url: str) -> str:
    """Normalise a URL for route matching (see the module doc for exactly what changes)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise RouteError(f"bad URL {url!r}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise RouteError(f"route URLs must be absolute http(s) URLs, got {url!r}")
    host = normalize_host(parts.hostname)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    if port is not None and port != (443 if scheme == "https" else 80):
        host = f"{host}:{port}"
    # Only what a client must escape anyway: raw non-ASCII, spaces and controls.
    safe = "".join(chr(c) for c in range(0x21, 0x7F))
    path = quote(parts.path or "/", safe=safe)
    query = quote(parts.query, safe=safe)
    return urlunsplit((scheme, host, path, query, ""))


def url_host(url: str) -> str:
    """The normalised host name (no port) of an absolute URL."""
    hostname = urlsplit(url).hostname
    if not hostname:
        raise RouteError(f"no host in {url!r}")
    return normalize_host(hostname)


def guess_content_type(*names: str) -> str:
    """Guess a Content-Type from the first name with a known extension, else text/html."""
    for name in names:
        suffix = PurePosixPath(name).suffix.lower()
        if not suffix:
            continue
        if suffix in _CONTENT_TYPES:
            return _CONTENT_TYPES[suffix]
        guessed, _ = mimetypes.guess_type(f"x{suffix}", strict=False)
        if guessed:
            return guessed
    return "text/html"


_RESPONSE_KEYS = frozenset(
    {
        "file",
        "body",
        "status",
        "reason",
        "content_type",
        "headers",
        "encoding",
        "force",
        "chunked",
        "chunk_size",
        "redirect",
        "delay",
        "trickle",
        "truncate",
        "fail_times",
        "fail_status",
        "fail_headers",
    }
)
_SITE_KEYS = frozenset({"routes", "hosts", "headers", "http_redirect", "not_found", "challenge"})


def _is_note(key: str) -> bool:
    return key == "comment" or key.startswith("_")


def _check(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise RouteError(f"{where}: {message}")


def _headers_from_json(value: Any, where: str) -> HeaderItems:
    if isinstance(value, dict):
        return header_items(value)
    _check(isinstance(value, list), where, "headers must be an object or a list of pairs")
    pairs: list[tuple[str, str]] = []
    for pair in value:
        _check(isinstance(pair, list) and len(pair) == 2, where, f"bad header pair {pair!r}")
        pairs.append((pair[0], pair[1]))
    return header_items(pairs)


def _response_kwargs(raw: Mapping[str, Any], site_dir: Path, where: str) -> dict[str, Any]:
    """Turn one JSON route object (without ``url``) into MirrorResponse keyword arguments."""
    kwargs: dict[str, Any] = {}
    _check(not ("file" in raw and "body" in raw), where, "give 'file' or 'body', not both")
    if "file" in raw:
        _check(isinstance(raw["file"], str), where, "'file' must be a string")
        path = (site_dir / raw["file"]).resolve()
        _check(path.is_relative_to(site_dir.resolve()), where, "'file' escapes the site dir")
        try:
            kwargs["body"] = path.read_bytes()
        except OSError as exc:
            raise RouteError(f"{where}: cannot read {path}: {exc}") from exc
        kwargs["source"] = path
    elif "body" in raw:
        _check(isinstance(raw["body"], str), where, "'body' must be a string")
        kwargs["body"] = raw["body"].encode("utf-8")
    types: dict[str, tuple[type, ...]] = {
        "status": (int,),
        "reason": (str,),
        "content_type": (str,),
        "encoding": (str, type(None)),
        "force": (bool,),
        "chunked": (bool,),
        "chunk_size": (int,),
        "redirect": (str,),
        "delay": (int, float),
        "trickle": (int, float),
        "truncate": (int,),
        "fail_times": (int,),
        "fail_status": (int,),
    }
    for key, allowed in types.items():
        if key in raw:
            value = raw[key]
            ok = isinstance(value, allowed) and (bool not in allowed) == (type(value) is not bool)
            _check(ok, where, f"{key!r} has the wrong type: {value!r}")
            kwargs[key] = value
    for key in ("delay", "trickle"):
        if key in kwargs:
            kwargs[key] = float(kwargs[key])
    if "headers" in raw:
        kwargs["headers"] = _headers_from_json(raw["headers"], where)
    if "fail_headers" in raw:
        kwargs["fail_headers"] = _headers_from_json(raw["fail_headers"], where)
    return kwargs


def _route_from_json(raw: Any, site_dir: Path, where: str) -> Route:
    _check(isinstance(raw, dict), where, "a route must be an object")
    unknown = {k for k in raw if not _is_note(k)} - _RESPONSE_KEYS - {"url"}
    _check(not unknown, where, f"unknown keys {sorted(unknown)}")
    _check(isinstance(raw.get("url"), str), where, "'url' (string) is required")
    kwargs = _response_kwargs(raw, site_dir, where)
    try:
        return Route(url=raw["url"], **kwargs)
    except RouteError as exc:
        raise RouteError(f"{where}: {exc}") from exc


def load_site(site_dir: Path) -> Site:
    """Load and validate one site directory; raises RouteError naming the offending route."""
    site_dir = Path(site_dir)
    routes_path = site_dir / ROUTES_FILE
    try:
        raw = json.loads(routes_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RouteError(f"{routes_path}: {exc}") from exc
    where = str(routes_path)
    _check(isinstance(raw, dict), where, "top level must be an object")
    unknown = {k for k in raw if not _is_note(k)} - _SITE_KEYS
    _check(not unknown, where, f"unknown keys {sorted(unknown)}")
    _check(isinstance(raw.get("routes"), list), where, "'routes' (list) is required")
    routes = tuple(
        _route_from_json(
            item,
            site_dir,
            f"{where} route #{i} ({item.get('url') if isinstance(item, dict) else item!r})",
        )
        for i, item in enumerate(raw["routes"])
    )
    hosts_raw = raw.get("hosts", [])
    _check(
        isinstance(hosts_raw, list) and all(isinstance(h, str) for h in hosts_raw),
        where,
        "'hosts' must be a list of strings",
    )
    hosts = {normalize_host(h) for h in hosts_raw} | {url_host(r.url) for r in routes}
    headers = _headers_from_json(raw.get("headers", {}), where)
    for name, _ in headers:
        _check(name.lower() not in RESERVED_HEADERS, where, f"header {name!r} is set by the mirror")
    http_redirect = raw.get("http_redirect", False)
    _check(isinstance(http_redirect, bool), where, "'http_redirect' must be true or false")
    not_found: MirrorResponse | None = None
    if "not_found" in raw:
        nf_where = f"{where} not_found"
        nf_raw = raw["not_found"]
        _check(isinstance(nf_raw, dict), nf_where, "must be an object")
        nf_unknown = {k for k in nf_raw if not _is_note(k)} - _RESPONSE_KEYS
        _check(not nf_unknown, nf_where, f"unknown keys {sorted(nf_unknown)}")
        kwargs = _response_kwargs(nf_raw, site_dir, nf_where)
        kwargs.pop("source", None)
        if "content_type" not in kwargs:
            kwargs["content_type"] = guess_content_type(nf_raw.get("file", ""))
        kwargs.setdefault("status", 404)
        try:
            not_found = MirrorResponse(**kwargs)
        except RouteError as exc:
            raise RouteError(f"{nf_where}: {exc}") from exc
    challenge = None
    if "challenge" in raw:
        from crawler.mirror.challenge import ArvanChallenge

        challenge = ArvanChallenge.from_json(raw["challenge"], where)
    seen: set[str] = set()
    for route in routes:
        key = normalize_url(route.url)
        if key in seen:
            logger.warning("%s: duplicate route for %s, the last one wins", where, key)
        seen.add(key)
    return Site(
        name=site_dir.name,
        hosts=frozenset(hosts),
        routes=routes,
        headers=headers,
        http_redirect=http_redirect,
        not_found=not_found,
        challenge=challenge,
    )


def default_site_dirs() -> list[Path]:
    """Every directory under ``crawler/mirror/sites/`` that has a routes.json, sorted."""
    if not SITES_DIR.is_dir():
        return []
    return sorted(p for p in SITES_DIR.iterdir() if (p / ROUTES_FILE).is_file())


def load_sites(site_dirs: Iterable[Path] | None = None) -> list[Site]:
    """Load the given site directories (default: all of ``default_site_dirs()``)."""
    dirs = default_site_dirs() if site_dirs is None else [Path(d) for d in site_dirs]
    return [load_site(d) for d in dirs]


def main(argv: Sequence[str] | None = None) -> int:
    """Validate site directories and print what each serves (for people writing routes.json)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m crawler.mirror.routes",
        description="Check mirrored sites' routes.json files.",
        epilog="example: python -m crawler.mirror.routes crawler/mirror/sites/tdi",
    )
    parser.add_argument("sites", nargs="*", type=Path, help="site dirs (default: all)")
    args = parser.parse_args(argv)
    try:
        sites = load_sites(args.sites or None)
    except RouteError as exc:
        print(f"error: {exc}")
        return 1
    for site in sites:
        size = sum(len(r.body) for r in site.routes)
        print(f"{site.name}: {len(site.routes)} routes, {size} bytes, hosts {sorted(site.hosts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
