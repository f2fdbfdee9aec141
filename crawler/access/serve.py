"""``newsarchive serve``: a read-only HTTP service over the catalog and the store.

GET only: at ``/cdx``, a CDX API answering as pywb's does from the CDXJ indexes in the store
(``url``, ``matchType``, ``from``, ``to``, ``filter``, ``closest``, ``sort``, ``limit``,
``collapseTime``, ``resolveRevisits``, ``fl``, ``output=cdxj|json|text|link``, errors as pywb's
JSON: see ``crawler.access.cdx``); one capture's text, sidecar, WARC records and archived HTML;
and a browse page (site, date, article). Bound to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import html
import ipaddress
import json
import logging
import re
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from crawler.access.cdx import CdxIndex
from crawler.access.query import AccessError, Archive
from crawler.catalog.db import Capture

logger = logging.getLogger(__name__)

_UUID = re.compile(r"^[0-9a-fA-F-]{36}$")
# Archived pages are someone else's HTML: no script, no form, no plugin runs from our origin.
_SANDBOX = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"


# -- pages ---------------------------------------------------------------------------------------
def _page(title: str, body: str) -> bytes:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>body{{font:16px/1.5 sans-serif;"
        "max-width:50em;margin:2em auto;padding:0 1em}td,th{padding:.2em .6em;"
        "text-align:left;vertical-align:top}.text p{margin:0 0 1em}</style></head><body>"
        f"<nav><a href='/'>newsarchive</a></nav>{body}</body></html>"
    ).encode()


def short_id(record_id: str) -> str:
    return record_id.removeprefix("<urn:uuid:").removesuffix(">")


def capture_path(capture: Capture, kind: str = "capture") -> str:
    return f"/{kind}/{short_id(capture.record_id)}"


class Handler(BaseHTTPRequestHandler):
    server: ArchiveServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        params = parse_qs(parts.query, keep_blank_values=True)
        segments = [s for s in parts.path.split("/") if s]
        try:
            self.route(segments, params)
        except AccessError as exc:
            self.send(HTTPStatus.NOT_FOUND, str(exc).encode() + b"\n", "text/plain; charset=utf-8")
        except BrokenPipeError:
            pass

    def route(self, segments: list[str], params: dict[str, list[str]]) -> None:
        archive = self.server.archive
        if not segments:
            return self.html_page("newsarchive", self.sites_body())
        head, rest = segments[0], segments[1:]
        if head == "cdx":
            return self.cdx()
        if head == "site" and len(rest) == 1:
            return self.html_page(rest[0], self.days_body(rest[0]))
        if head == "site" and len(rest) == 2:
            return self.html_page(f"{rest[0]} {rest[1]}", self.day_body(rest[0], rest[1]))
        if head in ("capture", "text", "sidecar", "warc", "html") and len(rest) == 1:
            capture = self.capture(rest[0])
            if head == "capture":
                return self.html_page(capture.url, self.capture_body(capture))
            if head == "text":
                return self.send(HTTPStatus.OK, archive.text(capture), "text/plain; charset=utf-8")
            if head == "sidecar":
                data = json.dumps(archive.sidecar(capture), indent=2, ensure_ascii=False)
                return self.send(HTTPStatus.OK, data.encode(), "application/json")
            if head == "warc":
                return self.send(
                    HTTPStatus.OK,
                    archive.warc(capture),
                    "application/warc",
                    {"Content-Disposition": f'attachment; filename="{rest[0]}.warc.gz"'},
                )
            text, content_type = archive.html(capture)
            return self.send(
                HTTPStatus.OK,
                text.encode("utf-8"),
                re.sub(r"charset=[^;]+", "charset=utf-8", content_type)
                if "charset=" in content_type
                else content_type + "; charset=utf-8",
                {"Content-Security-Policy": _SANDBOX},
            )
        raise AccessError(f"no such page: {self.path}")

    # -- helpers ---------------------------------------------------------------------------------
    def send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def html_page(self, title: str, body: str) -> None:
        self.send(
            HTTPStatus.OK,
            _page(title, body),
            "text/html; charset=utf-8",
            {"Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'"},
        )

    def capture(self, ident: str) -> Capture:
        if not _UUID.match(ident):
            raise AccessError(f"not a record id: {ident}")
        found = self.server.archive.by_record_id(f"<urn:uuid:{ident}>")
        if found is None:
            raise AccessError(f"no capture with the record id {ident}")
        return found

    def cdx(self) -> None:
        answer = self.server.cdx.answer(urlsplit(self.path).query)
        self.send(HTTPStatus(answer.status), answer.body, answer.content_type)

    def sites_body(self) -> str:
        rows = "".join(
            f"<li><a href='/site/{quote(site)}'>{html.escape(site)}</a> ({count} articles)</li>"
            for site, count in self.server.archive.sites()
        )
        return f"<h1>Sites</h1><ul class=sites>{rows or '<li>nothing archived yet</li>'}</ul>"

    def days_body(self, site: str) -> str:
        rows = "".join(
            f"<li><a href='/site/{quote(site)}/{day}'>{day}</a> ({count} captures)</li>"
            for day, count in self.server.archive.days(site)
        )
        if not rows:
            raise AccessError(f"no article of the site {site!r} in the catalog")
        return f"<h1>{html.escape(site)}</h1><ul class=days>{rows}</ul>"

    def day_body(self, site: str, day: str) -> str:
        archive = self.server.archive
        items = []
        for capture in archive.articles_on(site, day):
            article = archive.catalog.article(site, capture.article_key or "")
            title = (article.title if article else None) or capture.url
            items.append(
                f"<li><a class=article href='{capture_path(capture)}'>{html.escape(title)}</a> "
                f"<small>{capture.capture_time} v{capture.version}</small></li>"
            )
        if not items:
            raise AccessError(f"no article of {site!r} captured on {day}")
        return f"<h1>{html.escape(site)}: {day}</h1><ul class=articles>{''.join(items)}</ul>"

    def capture_body(self, capture: Capture) -> str:
        archive = self.server.archive
        links = [
            f"<a href='{capture_path(capture, 'warc')}'>WARC records</a>",
            f"<a href='{capture_path(capture, 'html')}'>archived page</a>",
        ]
        if self.server.replay:
            ts = re.sub(r"\D", "", capture.capture_time)[:14]
            target = f"{self.server.replay}/{ts}/{capture.url}"
            links.append(f"<a href='{html.escape(target)}'>replay</a>")
        meta = [("url", capture.url), ("captured", capture.capture_time)]
        text_html = "<p>No text was archived for this capture.</p>"
        title = capture.url
        if capture.text_key:
            car = archive.sidecar(capture)
            title = car.get("title") or title
            for name in ("published", "modified", "authors", "section", "tags", "language"):
                value = car.get(name)
                if value:
                    meta.append((name, ", ".join(value) if isinstance(value, list) else str(value)))
            meta += [
                ("version", str(capture.version)),
                ("text digest", str(capture.text_digest)),
                ("payload digest", str(capture.payload_digest)),
                ("WARC", f"{capture.warc_key} @ {capture.warc_offset} (+{capture.warc_length})"),
            ]
            paragraphs = archive.text(capture).decode("utf-8").split("\n\n")
            text_html = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs[1:] if p.strip())
            links[:0] = [
                f"<a href='{capture_path(capture, 'text')}'>text</a>",
                f"<a href='{capture_path(capture, 'sidecar')}'>sidecar</a>",
            ]
        table = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in meta
        )
        return (
            f"<article><h1>{html.escape(title)}</h1><table class=meta>{table}</table>"
            f"<p class=links>{' · '.join(links)}</p><div class=text>{text_html}</div></article>"
        )


class ArchiveServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], archive: Archive, replay: str | None) -> None:
        super().__init__(address, Handler)
        self.archive = archive
        self.replay = replay.rstrip("/") if replay else None
        self.cdx = CdxIndex.from_store(archive)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, *, allow_remote: bool) -> None:
    """A non-loopback address needs ``allow_remote`` (``--allow-remote``), and is logged."""
    if is_loopback(host):
        return
    if not allow_remote:
        raise AccessError(
            f"--host {host} would serve the archive beyond this machine: "
            "add --allow-remote to mean it"
        )
    logger.warning("serving on %s: the archive is readable from the network, unauthenticated", host)


def serve(
    archive: Archive,
    host: str,
    port: int,
    *,
    replay: str | None = None,
    allow_remote: bool = False,
) -> None:
    check_bind(host, allow_remote=allow_remote)
    try:
        server = ArchiveServer((host, port), archive, replay)
    except OSError as exc:  # the port is taken, or not ours to take
        raise AccessError(
            f"cannot listen on http://{host}:{port}/: {exc.strerror or exc} (--port)"
        ) from None
    bound_port = server.server_address[1]
    print(f"serving {archive.store.uri} on http://{host}:{bound_port}/ (read-only)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
