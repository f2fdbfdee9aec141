"""``newsarchive serve``: a read-only HTTP service over the catalog and the store.

GET only: at ``/cdx``, a CDX API answering as pywb's does from the CDXJ indexes in the store
(``url``, ``matchType``, ``from``, ``to``, ``filter``, ``closest``, ``sort``, ``limit``,
``collapseTime``, ``resolveRevisits``, ``fl``, ``output=cdxj|json|text|link``, errors as pywb's
JSON: see ``crawler.access.cdx``); one capture's text, sidecar, WARC records and archived HTML;
a crawl's WACZ, by byte range; and pages for a reader: full-text search (``/search``), each
site's articles by publication day and by capture day, an article with its captures, its text
versions and their word diffs (``/diff``) and the same story on other sites, and, given the
unpacked ReplayWeb.page (``--replaywebpage``), a replay of the page that runs its own scripts
from the crawl's WACZ. Bound to 127.0.0.1 unless told otherwise.

A WSGI application (``ArchiveApp``) under waitress (``crawler.access.httpd``). Before any page:
the ``Host`` must be one this server answers to (else 400), the credentials must hold when
authentication is on (else 401), the method must be GET or HEAD (else 501). Every answer to bad
input is a 400 or 404 that says what is wrong (pywb's JSON at ``/cdx``); the store's place and
the server's software are named nowhere. Access rules (``crawler.access.rules``) leave the
captures they withhold out of every page, the CDX API and the search hits, and answer 451 for
one asked by its id, its WACZ and its replay.
"""

from __future__ import annotations

import html
import io
import ipaddress
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from threading import Lock
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from sqlalchemy import and_, func, select
from sqlalchemy.exc import OperationalError

from crawler.access import httpd
from crawler.access.cdx import CdxError, CdxIndex, CdxOptions
from crawler.access.guard import Credentials, allowed_hosts, hash_password, host_allowed
from crawler.access.query import AccessError, Archive, BadInput, publication_day
from crawler.access.records import extract_warcinfo, read_records
from crawler.access.research import Version, marked, site_list, text_versions, version_text
from crawler.access.rules import AccessRules, Rule, RulesFile
from crawler.access.table import capture_of
from crawler.catalog.db import Capture, captures, texts
from crawler.catalog.search import Hit, SearchError, SearchQuery, search
from crawler.catalog.stories import article_links
from crawler.constants import CHALLENGE_RECORD
from crawler.layout import key_is_safe, wacz_key
from crawler.store.base import StoreError
from crawler.text.diff import render_html, summary, word_diff

logger = logging.getLogger(__name__)

_UUID = re.compile(r"^[0-9a-fA-F-]{36}$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A site or crawl id as the archive names them (crawl_token, safe_key_part): nothing else
# reaches a store key.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,159}$")
_TIMESTAMP = re.compile(r"^\d{14}$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
PER_PAGE = 20
# Consecutive versions whose changes the article page counts (each is a word diff); older
# pairs are linked without their count.
DIFF_SUMMARIES = 10
_CHUNK = 1 << 20
UNDATED = "undated"
# Archived pages are someone else's HTML: no script, no form, no plugin runs from our origin.
_SANDBOX = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
# Our own pages: no script at all, forms only to ourselves.
_PAGE_CSP = "default-src 'self'; style-src 'unsafe-inline'; form-action 'self'"
# ReplayWeb.page's pages: its scripts and service worker from here, the frames, blobs and
# workers it makes. The archived page runs inside its frame, answered by its service worker
# from the WACZ alone (the worker gives that content its own policy).
_REPLAY_CSP = (
    "default-src 'self'; script-src 'self'; worker-src 'self' blob:; frame-src 'self' blob:; "
    "child-src 'self' blob:; connect-src 'self' blob: data:; img-src 'self' data: blob:; "
    "media-src 'self' data: blob:; font-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "form-action 'self'; base-uri 'self'"
)
# What of the replaywebpage package is served: the app, its worker and the files they load.
_APP_FILES = frozenset({"index.html", "ui.js", "sw.js"})
_APP_DIRS = ("adblock/", "ruffle/")
_APP_TYPES = {
    ".js": "application/javascript; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".gz": "application/octet-stream",
}
_STYLE = (
    "body{font:16px/1.5 sans-serif;max-width:50em;margin:2em auto;padding:0 1em}"
    "td,th{padding:.2em .6em;text-align:left;vertical-align:top}.text p{margin:0 0 1em}"
    "nav{display:flex;gap:1em;align-items:center;flex-wrap:wrap}nav form{margin:0}"
    "mark{background:#ff6}del{background:#fdd}ins{background:#dfd;text-decoration:none}"
    ".elided{color:#777}.current{font-weight:bold}small{color:#555}"
    "form.search label{margin-right:.8em;white-space:nowrap}"
)


# Request headers a served WARC can withhold (--withhold-credentials): the crawler's own.
WITHHELD_HEADERS = ("cookie", "authorization", "proxy-authorization")
WITHHELD_FIELD = "WARC-Withheld-Headers"


class BadRequest(AccessError):
    """A request that cannot be answered as asked: a 400 page that says why."""


class Withheld(AccessError):
    """What the access rules (or --withhold-credentials) keep back: a 451 or 403 that says so."""

    def __init__(self, message: str, status: int = 451) -> None:
        super().__init__(message)
        self.status = status


def withheld_message(what: str, rule: Rule) -> str:
    until = f" until {rule.until.isoformat()}" if rule.until else ""
    return f"{what} is withheld by the archive's access rules{until}"


class RangeNotSatisfiable(ValueError):
    """A byte range that lies beyond the object."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One ``Range: bytes=…`` as (start, end exclusive), or None for the whole object (no
    header, or one this server does not take: several ranges, another unit, bad syntax)."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or not (match[1] or match[2]):
        return None
    if match[1]:
        start = int(match[1])
        if match[2] and int(match[2]) < start:
            return None  # "bytes=9-3" is no range at all: it is ignored
        if start >= size:
            raise RangeNotSatisfiable(header)
        end = int(match[2]) + 1 if match[2] else size
        return start, min(end, size)
    suffix = int(match[2])
    if suffix == 0 or size == 0:
        raise RangeNotSatisfiable(header)
    return max(size - suffix, 0), size


# -- pages ---------------------------------------------------------------------------------------
def _esc(value: object) -> str:
    return html.escape(str(value))


def _nav(query: str = "") -> str:
    return (
        "<nav><a href='/'>newsarchive</a>"
        "<form class=searchbox action='/search' method=get role=search>"
        f"<input type=search name=q value='{_esc(query)}' aria-label='search the archived texts' "
        "placeholder='words, &quot;a phrase&quot;, -not'> <button>search</button></form></nav>"
    )


def _page(title: str, body: str, query: str = "") -> bytes:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"{_nav(query)}{body}</body></html>"
    ).encode()


def short_id(record_id: str) -> str:
    return record_id.removeprefix("<urn:uuid:").removesuffix(">")


def capture_path(capture: Capture, kind: str = "capture") -> str:
    return f"/{kind}/{short_id(capture.record_id)}"


def _seg(value: str) -> str:
    return quote(value, safe="")


def diff_path(site: str, article_key: str, old: int | None = None, new: int | None = None) -> str:
    path = f"/diff/{_seg(site)}/{_seg(article_key)}"
    query = {k: str(v) for k, v in (("from", old), ("to", new)) if v is not None}
    return path + ("?" + urlencode(query) if query else "")


def wacz_path(site: str, crawl_id: str) -> str:
    return f"/wacz/{_seg(site)}/{_seg(crawl_id)}.wacz"


def replay_path(capture: Capture) -> str:
    ts = re.sub(r"\D", "", capture.capture_time)[:14]
    query = urlencode({"url": capture.url, "ts": ts})
    return f"/replay/{_seg(capture.site)}/{_seg(capture.crawl_id)}?{query}"


def _is_web_url(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https")


def _live_link(url: str) -> str:
    """The original URL as a link out of the archive, said to be one (no referrer sent)."""
    if not _is_web_url(url):
        return _esc(url)
    return (
        f"<a class=live href='{_esc(url)}' rel='noreferrer noopener'>{_esc(url)}</a> "
        "<small>(live site)</small>"
    )


@dataclass(frozen=True, slots=True)
class Listed:
    """An article as a listing shows it: its latest text version and the capture to open."""

    site: str
    article_key: str
    version: int
    title: str | None
    url: str
    published_date: str | None
    capture: Capture | None


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: Iterable[bytes] = ()


class _Headers:
    """A request's headers from its WSGI environ, by their HTTP names."""

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self.environ = environ

    def get(self, name: str) -> str | None:
        value = self.environ.get("HTTP_" + name.upper().replace("-", "_"))
        return None if value is None else str(value)


class Handler:
    """One request: ``handle`` routes it and leaves its answer in ``response``."""

    def __init__(self, app: ArchiveApp, environ: Mapping[str, Any]) -> None:
        self.app = app
        self.command = str(environ.get("REQUEST_METHOD", "GET"))
        # The request target as sent: a %2F inside a segment stays in its segment.
        raw = str(environ.get("REQUEST_URI") or "")
        if not raw.startswith("/"):
            raw = quote(str(environ.get("PATH_INFO", "/")))
            if environ.get("QUERY_STRING"):
                raw += "?" + str(environ["QUERY_STRING"])
        self.path = raw
        self.headers = _Headers(environ)
        self.response = Response(500, [])

    def handle(self) -> None:
        parts = urlsplit(self.path)
        params = parse_qs(parts.query, keep_blank_values=True)
        segments = [unquote(s) for s in parts.path.split("/") if s]
        try:
            self.route(segments, params)
        except (BadRequest, BadInput) as exc:
            body = f"<h1>Bad request</h1><p class=error>{_esc(self.app.public(str(exc)))}</p>"
            self.html_page("bad request", body, 400, query=_param(params, "q"))
        except Withheld as exc:
            self.text(exc.status, self.app.public(str(exc)))
        except AccessError as exc:
            self.text(HTTPStatus.NOT_FOUND, self.app.public(str(exc)))
        except FileNotFoundError:
            self.text(HTTPStatus.NOT_FOUND, "the catalog names an object the store does not hold")
        except OperationalError as exc:  # the query budget (Catalog.bound_queries), or the DB
            logger.warning("%s: the catalog query stopped: %s", self.path, str(exc).split("\n")[0])
            self.text(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "the catalog query took longer than this server allows (or the catalog failed): "
                "narrow it, or try again",
            )
        except (StoreError, OSError) as exc:
            logger.warning("%s: the store could not be read: %s", self.path, exc)
            self.text(HTTPStatus.SERVICE_UNAVAILABLE, "the store could not be read; try again")

    def text(self, status: HTTPStatus | int, message: str) -> None:
        self.send(status, message.encode() + b"\n", "text/plain; charset=utf-8")

    def route(self, segments: list[str], params: dict[str, list[str]]) -> None:
        archive = self.app.archive
        if not segments:
            return self.html_page("newsarchive", self.sites_body())
        head, rest = segments[0], segments[1:]
        if head == "cdx":
            return self.cdx()
        if head == "search" and not rest:
            return self.search_page(params)
        if head == "site" and rest:
            return self.site_route(rest[0], rest[1:])
        if head == "diff" and len(rest) == 2:
            return self.diff_page(rest[0], rest[1], params)
        if head == "wacz" and len(rest) == 2 and rest[1].endswith(".wacz"):
            return self.wacz(rest[0], rest[1].removesuffix(".wacz"))
        if self.app.replaywebpage is not None:
            if head == "ui.js" and not rest:
                return self.app_file(["ui.js"])
            if head == "replay":
                return self.replay_route(rest, params)
        if head in ("capture", "text", "sidecar", "warc", "html") and len(rest) == 1:
            capture = self.capture(rest[0])
            if head == "warc":
                return self.warc(capture, rest[0])
            if head == "capture":
                return self.html_page(capture.url, self.capture_body(capture))
            if head == "text":
                return self.send(HTTPStatus.OK, archive.text(capture), "text/plain; charset=utf-8")
            if head == "sidecar":
                data = json.dumps(archive.sidecar(capture), indent=2, ensure_ascii=False)
                return self.send(HTTPStatus.OK, data.encode(), "application/json")
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

    def site_route(self, site: str, rest: list[str]) -> None:
        if not rest:
            return self.html_page(site, self.site_body(site))
        if rest == ["captured"]:
            return self.html_page(f"{site}: captured", self.capture_days_body(site))
        if len(rest) == 2 and rest[0] == "captured" and _DAY.match(rest[1]):
            return self.html_page(f"{site} {rest[1]}", self.day_body(site, rest[1]))
        if len(rest) == 1 and (rest[0] == UNDATED or _DAY.match(rest[0])):
            day = None if rest[0] == UNDATED else rest[0]
            return self.html_page(f"{site} {rest[0]}", self.published_body(site, day))
        raise AccessError(f"no such page: {self.path}")

    # -- helpers ---------------------------------------------------------------------------------
    def send(
        self,
        status: HTTPStatus | int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        fields = [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("X-Content-Type-Options", "nosniff"),
            *(headers or {}).items(),
        ]
        self.response = Response(int(status), fields, () if self.command == "HEAD" else [body])

    def stream(
        self,
        status: HTTPStatus | int,
        chunks: Iterable[bytes],
        headers: Sequence[tuple[str, str]],
    ) -> None:
        """An answer whose body is made as it is sent (no Content-Length unless given)."""
        fields = [("X-Content-Type-Options", "nosniff"), *headers]
        self.response = Response(int(status), fields, () if self.command == "HEAD" else chunks)

    def html_page(self, title: str, body: str, status: int = 200, query: str = "") -> None:
        self.send(
            status,
            _page(title, body, query),
            "text/html; charset=utf-8",
            {"Content-Security-Policy": _PAGE_CSP},
        )

    def capture(self, ident: str) -> Capture:
        if not _UUID.match(ident):
            raise AccessError(f"not a record id: {ident}")
        found = self.app.archive.by_record_id(f"<urn:uuid:{ident}>")
        if found is None:
            raise AccessError(f"no capture with the record id {ident}")
        rule = self.app.withheld(found.url, found.site)
        if rule is not None:
            raise Withheld(withheld_message(f"the capture {ident}", rule))
        return found

    def cdx(self) -> None:
        answer = self.app.cdx.stream(urlsplit(self.path).query)
        headers = [("Content-Type", answer.content_type)]
        if answer.size is not None:
            headers.append(("Content-Length", str(answer.size)))
        self.stream(answer.status, _cut_quietly(answer.chunks), headers)

    def warc(self, capture: Capture, ident: str) -> None:
        """The capture's records after a warcinfo that says what they are (and, with
        --withhold-credentials, that the request's credentials were taken out)."""
        archive = self.app.archive
        records = [
            read_records(archive.store, [location]) for location in archive.locations(capture)
        ]
        withheld: set[str] = set()
        if self.app.withhold_credentials:
            records = [without_credentials(data, withheld) for data in records]
        note = (
            f"; the request's {', '.join(sorted(withheld))} header withheld (the record says "
            f"so in {WITHHELD_FIELD}, its block digest is of what is served)"
            if withheld
            else ", copied unchanged from the store"
        )
        info = extract_warcinfo(
            "capture.warc.gz",
            store_uri="",
            crawl_ids=[capture.crawl_id],
            query=f"record {capture.record_id}",
            description=f"the capture of {capture.url} at {capture.capture_time} (site "
            f"{capture.site}): its {capture.record_type} record, then its request, metadata "
            f"and conversion records{note}",
        )
        self.send(
            HTTPStatus.OK,
            info + b"".join(records),
            "application/warc",
            {"Content-Disposition": f'attachment; filename="{ident}.warc.gz"'},
        )

    # -- catalog look-ups ------------------------------------------------------------------------
    def captures_of_texts(self, text_keys: Iterable[str]) -> dict[str, Capture]:
        """The latest capture carrying each text (a challenge page never counts)."""
        keys = sorted(set(text_keys))
        found: dict[str, Capture] = {}
        if not keys:
            return found
        c = captures.c
        query = (
            select(captures)
            .where(c.text_key.in_(keys), c.record_type != CHALLENGE_RECORD)
            .order_by(c.capture_time, c.id)
        )
        with self.app.archive.catalog.engine.connect() as conn:
            for row in conn.execute(query).mappings():
                item = capture_of(row)
                found[str(item.text_key)] = item
        return found

    def latest_capture(self, site: str, article_key: str) -> Capture | None:
        """The article's latest capture with text."""
        c = captures.c
        query = (
            select(captures)
            .where(
                c.site == site,
                c.article_key == article_key,
                c.text_key.is_not(None),
                c.record_type != CHALLENGE_RECORD,
            )
            .order_by(c.capture_time.desc(), c.id.desc())
            .limit(1)
        )
        with self.app.archive.catalog.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else capture_of(row)

    def crawl_of_site(self, site: str, crawl_id: str) -> bool:
        c = captures.c
        query = select(c.id).where(c.site == site, c.crawl_id == crawl_id).limit(1)
        with self.app.archive.catalog.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def _latest_versions(self, site: str) -> Any:
        """Each article's latest text version of ``site``, as a subquery."""
        t = texts.c
        return (
            select(t.article_key, func.max(t.version).label("latest"))
            .where(t.site == site)
            .group_by(t.article_key)
            .subquery()
        )

    def published_days(self, site: str) -> list[tuple[str | None, int]]:
        """Publication days of the site's articles (their latest version), newest first, and
        the undated ones (None) last."""
        t = texts.c
        latest = self._latest_versions(site)
        query = (
            select(t.published_date, func.count())
            .join(
                latest,
                and_(t.article_key == latest.c.article_key, t.version == latest.c.latest),
            )
            .where(t.site == site)
            .group_by(t.published_date)
        )
        with self.app.archive.catalog.engine.connect() as conn:
            rows = [(r[0], int(r[1])) for r in conn.execute(query)]
        dated = sorted((r for r in rows if r[0]), reverse=True)
        return dated + [r for r in rows if not r[0]]

    def published_on(self, site: str, day: str | None) -> list[Listed]:
        t = texts.c
        latest = self._latest_versions(site)
        query = (
            select(t.article_key, t.version, t.title, t.url, t.text_key, t.published_date)
            .join(
                latest,
                and_(t.article_key == latest.c.article_key, t.version == latest.c.latest),
            )
            .where(
                t.site == site,
                t.published_date.is_(None) if day is None else t.published_date == day,
            )
            .order_by(t.published_at.desc(), t.title, t.article_key)
        )
        with self.app.archive.catalog.engine.connect() as conn:
            rows = [r for r in conn.execute(query).all() if self.app.visible(r.url, site)]
        found = self.captures_of_texts(r.text_key for r in rows)
        return [
            Listed(
                site,
                r.article_key,
                int(r.version),
                r.title,
                r.url,
                r.published_date,
                found.get(r.text_key),
            )
            for r in rows
        ]

    # -- browse pages ----------------------------------------------------------------------------
    def sites_body(self) -> str:
        rows = "".join(
            f"<li><a href='/site/{_seg(site)}'>{html.escape(site)}</a> ({count} articles)</li>"
            for site, count in self.app.archive.sites()
        )
        return f"<h1>Sites</h1><ul class=sites>{rows or '<li>nothing archived yet</li>'}</ul>"

    def site_body(self, site: str) -> str:
        published = self.published_days(site)
        captured = self.app.archive.days(site)
        if not published and not captured:
            raise AccessError(f"no article of the site {site!r} in the catalog")
        items = "".join(
            f"<li><a href='/site/{_seg(site)}/{day or UNDATED}'>{day or UNDATED}</a> "
            f"({count} article{'s' if count != 1 else ''})</li>"
            for day, count in published
        )
        search = (
            "<form class=search action='/search' method=get>"
            f"<input type=hidden name=site value='{_esc(site)}'>"
            f"<input type=search name=q aria-label='search {_esc(site)}' "
            f"placeholder='search {_esc(site)}'> <button>search this site</button></form>"
        )
        return (
            f"<h1>{html.escape(site)}</h1>{search}"
            "<h2>By publication date</h2>"
            "<p><small>Each article once, by the date its latest text version gives.</small></p>"
            f"<ul class=published>{items or '<li>no text recorded for search yet</li>'}</ul>"
            f"<h2>By capture date</h2>{self._capture_days(site, captured)}"
        )

    def _capture_days(self, site: str, days: Sequence[tuple[str, int]]) -> str:
        rows = "".join(
            f"<li><a href='/site/{_seg(site)}/captured/{day}'>{day}</a> ({count} captures)</li>"
            for day, count in days
        )
        return f"<ul class=days>{rows}</ul>"

    def capture_days_body(self, site: str) -> str:
        days = self.app.archive.days(site)
        if not days:
            raise AccessError(f"no article of the site {site!r} in the catalog")
        return (
            f"<h1><a href='/site/{_seg(site)}'>{html.escape(site)}</a>: by capture date</h1>"
            f"{self._capture_days(site, days)}"
        )

    def published_body(self, site: str, day: str | None) -> str:
        listed = self.published_on(site, day)
        if not listed:
            hint = ""
            if day is not None and self.app.archive.articles_on(site, day):
                hint = f": see what was captured that day, /site/{site}/captured/{day}"
            raise AccessError(f"no article of {site!r} published on {day or UNDATED}{hint}")
        items = []
        for item in listed:
            title = html.escape(item.title or item.url)
            link = (
                f"<a class=article href='{capture_path(item.capture)}'>{title}</a>"
                if item.capture
                else title
            )
            versions = f" v{item.version}" if item.version > 1 else ""
            items.append(f"<li>{link} <small>{_esc(item.url)}{versions}</small></li>")
        heading = "undated" if day is None else f"published {day}"
        return (
            f"<h1><a href='/site/{_seg(site)}'>{html.escape(site)}</a>: {heading}</h1>"
            f"<ul class=articles>{''.join(items)}</ul>"
        )

    def day_body(self, site: str, day: str) -> str:
        archive = self.app.archive
        items = []
        for capture in archive.articles_on(site, day):
            if not self.app.visible(capture.url, capture.site):
                continue
            article = archive.catalog.article(site, capture.article_key or "")
            title = (article.title if article else None) or capture.url
            items.append(
                f"<li><a class=article href='{capture_path(capture)}'>{html.escape(title)}</a> "
                f"<small>{capture.capture_time} v{capture.version}</small></li>"
            )
        if not items:
            raise AccessError(f"no article of {site!r} captured on {day}")
        return (
            f"<h1><a href='/site/{_seg(site)}'>{html.escape(site)}</a>: captured {day}</h1>"
            f"<ul class=articles>{''.join(items)}</ul>"
        )

    # -- search ----------------------------------------------------------------------------------
    def search_page(self, params: dict[str, list[str]]) -> None:
        archive = self.app.archive
        q = _param(params, "q")
        try:
            number = int(_param(params, "page") or "1")
        except ValueError:
            raise BadRequest(
                f"page must be a whole number, not {_param(params, 'page')!r}"
            ) from None
        if not 1 <= number <= 1_000_000:
            raise BadRequest(f"page must be at least 1, not {number}")
        form = self.search_form(params)
        if not q.strip():
            body = (
                form + '<p>Words must all occur; "a phrase" in quotes; -word excludes; a OR b.</p>'
            )
            return self.html_page("search", body, query=q)
        try:
            query = SearchQuery(
                text=q,
                sites=site_list(archive, [s for s in params.get("site", []) if s.strip()]),
                published_from=publication_day(_param(params, "published_from") or None),
                published_until=publication_day(_param(params, "published_to") or None, end=True),
                language=_param(params, "language").strip() or None,
                limit=PER_PAGE + 1,
                offset=(number - 1) * PER_PAGE,
            )
            hits = search(archive.catalog, query)
        except (AccessError, SearchError) as exc:
            raise BadRequest(str(exc)) from None
        more, hits = len(hits) > PER_PAGE, hits[:PER_PAGE]
        hits = [hit for hit in hits if self.app.visible(hit.url, hit.site)]
        if not hits:
            if archive.catalog.texts_count() == 0:
                note = (
                    "The catalog has no text in its search index (made by an older newsarchive):"
                    " run newsarchive reindex once."
                )
            else:
                note = f"No archived text matches {q!r}" + (" on this page." if number > 1 else ".")
            return self.html_page("search", f"{form}<p class=summary>{_esc(note)}</p>", query=q)
        found = self.captures_of_texts(h.text_key for h in hits)
        first = query.offset + 1
        items = "".join(self._hit(hit, found.get(hit.text_key)) for hit in hits)
        pages = []
        if number > 1:
            pages.append(f"<a rel=prev href='{_esc(_with_page(params, number - 1))}'>previous</a>")
        if more:
            pages.append(f"<a rel=next href='{_esc(_with_page(params, number + 1))}'>next</a>")
        body = (
            f"{form}<p class=summary>articles {first}–{query.offset + len(hits)} matching "
            f"<q>{_esc(q)}</q>, best first</p><ol class=hits start={first}>{items}</ol>"
            f"<p class=pages>{' · '.join(pages)}</p>"
        )
        return self.html_page(f"search: {q}", body, query=q)

    def _hit(self, hit: Hit, capture: Capture | None) -> str:
        title = html.escape(hit.title or hit.url)
        link = f"<a class=title href='{capture_path(capture)}'>{title}</a>" if capture else title
        return (
            f"<li class=hit>{link}<br><span class=site>{_esc(hit.site)}</span> · "
            f"<span class=published>{_esc(hit.published_date or UNDATED)}</span> · "
            f"<small>{_esc(hit.url)} (v{hit.version}, captured {_esc(hit.captured)})</small>"
            f"<p class=snippet>{marked(hit.snippet, 'html')}</p></li>"
        )

    def search_form(self, params: dict[str, list[str]]) -> str:
        chosen = [n.strip() for s in params.get("site", []) for n in s.split(",") if n.strip()]
        one = chosen[0] if len(chosen) == 1 else None
        options = "".join(
            f"<option value='{_esc(site)}'{' selected' if site == one else ''}>"
            f"{_esc(site)}</option>"
            for site, _count in self.app.archive.sites()
        )
        if len(chosen) > 1:  # several sites from a link: kept when the form is sent again
            both = ",".join(dict.fromkeys(chosen))
            options = f"<option value='{_esc(both)}' selected>{_esc(both)}</option>" + options

        def box(name: str, label: str, placeholder: str, size: int = 10) -> str:
            return (
                f"<label>{label} <input name={name} size={size} placeholder='{placeholder}' "
                f"value='{_esc(_param(params, name))}'></label>"
            )

        return (
            "<h1>Search</h1><form class=search action='/search' method=get>"
            f"<p><input type=search name=q size=40 value='{_esc(_param(params, 'q'))}' "
            "aria-label='words'> <button>search</button></p><p>"
            f"<label>site <select name=site><option value=''>every site</option>{options}"
            "</select></label>"
            + box("published_from", "published from", "2025-06")
            + box("published_to", "to", "2025-06-30")
            + box("language", "language", "en", 4)
            + "</p></form>"
        )

    # -- one article -------------------------------------------------------------------------------
    def capture_body(self, capture: Capture) -> str:
        archive = self.app.archive
        links = [
            f"<a href='{capture_path(capture, 'warc')}'>WARC records</a>",
            f"<a href='{capture_path(capture, 'html')}'>archived page</a>",
        ]
        if self.app.replay:
            ts = re.sub(r"\D", "", capture.capture_time)[:14]
            target = f"{self.app.replay}/{ts}/{capture.url}"
            links.append(f"<a href='{html.escape(target)}'>replay</a>")
        if self.app.wacz_served(capture.site, capture.crawl_id):
            if self.app.replaywebpage is not None and _is_web_url(capture.url):
                links.append(
                    f"<a class=replay href='{_esc(replay_path(capture))}'>"
                    "replay (runs the page's scripts from the archive)</a>"
                )
            links.append(
                f"<a class=wacz href='{wacz_path(capture.site, capture.crawl_id)}' download>"
                "WACZ of the crawl</a>"
            )
        meta = [("url", _live_link(capture.url)), ("captured", _esc(capture.capture_time))]
        text_html = "<p>No text was archived for this capture.</p>"
        title = capture.url
        if capture.text_key:
            car = archive.sidecar(capture)
            title = car.get("title") or title
            for name in ("published", "modified", "authors", "section", "tags", "language"):
                value = car.get(name)
                if value:
                    shown = ", ".join(value) if isinstance(value, list) else str(value)
                    meta.append((name, _esc(shown)))
            meta += [
                (name, _esc(value))
                for name, value in (
                    ("version", str(capture.version)),
                    ("text digest", str(capture.text_digest)),
                    ("payload digest", str(capture.payload_digest)),
                    (
                        "WARC",
                        f"{capture.warc_key} @ {capture.warc_offset} (+{capture.warc_length})",
                    ),
                    ("crawl", capture.crawl_id),
                )
            ]
            paragraphs = archive.text(capture).decode("utf-8").split("\n\n")
            text_html = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs[1:] if p.strip())
            links[:0] = [
                f"<a href='{capture_path(capture, 'text')}'>text</a>",
                f"<a href='{capture_path(capture, 'sidecar')}'>sidecar</a>",
            ]
        table = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in meta)
        sections = [self.captures_section(capture)]
        if capture.article_key:
            sections += [
                self.versions_section(capture.site, capture.article_key, capture),
                self.coverage_section(capture.site, capture.article_key),
            ]
        return (
            f"<article><h1>{html.escape(title)}</h1><table class=meta>{table}</table>"
            f"<p class=links>{' · '.join(links)}</p><div class=text>{text_html}</div></article>"
            + "".join(sections)
        )

    def captures_section(self, capture: Capture) -> str:
        catalog = self.app.archive.catalog
        if capture.article_key:
            found = catalog.captures(site=capture.site, article_key=capture.article_key)
            what = "this article"
        else:
            found = (c for c in catalog.captures(url=capture.url) if c.article_key is None)
            what = "this URL"
        rows = []
        for item in found:
            if not self.app.visible(item.url, item.site):
                continue
            current = item.record_id == capture.record_id
            rows.append(
                f"<tr{' class=current' if current else ''}>"
                f"<td><a href='{capture_path(item)}'>{_esc(item.capture_time)}</a></td>"
                f"<td>{item.status}</td><td>{_esc(item.record_type)}</td>"
                f"<td>{'v' + str(item.version) if item.version else ''}</td>"
                f"<td><small>{_esc(item.url)}</small></td></tr>"
            )
        return (
            f"<section><h2>Captures of {what}</h2><table class=captures><tr><th>captured</th>"
            "<th>status</th><th>record</th><th>text</th><th>URL</th></tr>"
            f"{''.join(rows)}</table></section>"
        )

    def versions_section(self, site: str, article_key: str, capture: Capture) -> str:
        archive = self.app.archive
        versions = text_versions(archive, site, article_key)
        if not versions:
            return ""
        found = self.captures_of_texts(v.text_key for v in versions)
        summed = {v.version for v in versions[-DIFF_SUMMARIES:]}
        items = []
        previous: Version | None = None
        for version in versions:
            label = f"v{version.version}, captured {_esc(version.captured)}"
            opened = found.get(version.text_key)
            item = f"<a href='{capture_path(opened)}'>{label}</a>" if opened else label
            if version.text_key == capture.text_key:
                item = f"<span class=current>{item}</span> (this capture)"
            if previous is not None:
                change = "changes"
                if version.version in summed:
                    ops = word_diff(version_text(archive, previous), version_text(archive, version))
                    change = summary(ops)
                path = diff_path(site, article_key, previous.version, version.version)
                item += (
                    f" — from v{previous.version}: <a class=diff href='{_esc(path)}'>"
                    f"{_esc(change)}</a>"
                )
            items.append(f"<li>{item}</li>")
            previous = version
        return f"<section><h2>Text versions</h2><ul class=versions>{''.join(items)}</ul></section>"

    def coverage_section(self, site: str, article_key: str) -> str:
        links = [
            link
            for link in article_links(self.app.archive.catalog, site, article_key)
            if self.app.visible(link.other.url, link.other.site)
        ]
        if not links:
            return (
                "<section><h2>Other coverage</h2><p class=coverage>No article of another site is "
                "linked to this one.</p></section>"
            )
        items = []
        for link in links:
            other = link.other
            title = html.escape(other.title or other.url)
            opened = self.latest_capture(other.site, other.article_key)
            shown = f"<a href='{capture_path(opened)}'>{title}</a>" if opened else title
            items.append(
                f"<li>{shown} <small><span class=site>{_esc(other.site)}</span> · "
                f"{_esc(other.published_date or UNDATED)} · {_esc(link.kind)} "
                f"({link.score:.2f})</small></li>"
            )
        return (
            "<section><h2>Other coverage</h2><p><small>The same story on other sites: a "
            "republication, a near-duplicate or the same event.</small></p>"
            f"<ul class=coverage>{''.join(items)}</ul></section>"
        )

    def diff_page(self, site: str, article_key: str, params: dict[str, list[str]]) -> None:
        archive = self.app.archive
        versions = text_versions(archive, site, article_key)
        if not versions:
            raise AccessError(f"no archived text of {site}:{article_key}")
        old_n, new_n = _version_param(params, "from"), _version_param(params, "to")
        article = f"{site}:{article_key}"
        for version in versions:
            rule = self.app.withheld(version.url, site)
            if rule is not None:
                raise Withheld(withheld_message(f"the article {site}:{article_key}", rule))
        found = self.captures_of_texts(v.text_key for v in versions)
        latest = found.get(versions[-1].text_key)
        back = f"<a href='{capture_path(latest)}'>{_esc(article)}</a>" if latest else _esc(article)
        if len(versions) == 1 and old_n is None and new_n is None:
            only = versions[0].captured
            body = f"<h1>{back}</h1><p>One text version only (v1, captured {_esc(only)}).</p>"
            return self.html_page(f"diff {article}", body)
        old = _pick(versions, old_n, -2, "from")
        new = _pick(versions, new_n, -1, "to")
        ops = word_diff(version_text(archive, old), version_text(archive, new))
        whole = _param(params, "context") == "all"
        shown = render_html(ops, context=None if whole else 1)
        sides = []
        for version in (old, new):
            opened = found.get(version.text_key)
            label = f"v{version.version} (captured {_esc(version.captured)})"
            sides.append(f"<a href='{capture_path(opened)}'>{label}</a>" if opened else label)
        other = (
            f"<a href='{_esc(diff_path(site, article_key, old.version, new.version))}'>"
            "only the changes</a>"
            if whole
            else f"<a href='{_esc(diff_path(site, article_key, old.version, new.version))}"
            "&amp;context=all'>the whole text</a>"
        )
        body = (
            f"<h1>{back}: what changed</h1><p class=summary>{sides[0]} → {sides[1]}: "
            f"{_esc(summary(ops))}</p><p>{other}</p>"
            f"<div class='diff text'>{shown or '<p>No changes.</p>'}</div>"
        )
        return self.html_page(f"diff {article} v{old.version} v{new.version}", body)

    # -- the crawl's package, and its replay --------------------------------------------------
    def wacz(self, site: str, crawl_id: str) -> None:
        """The crawl's WACZ from the store, whole or by range: only a crawl the catalog knows
        for that site, and the key only from the layout."""
        if not (_NAME.match(site) and _NAME.match(crawl_id)):
            raise AccessError(f"no such WACZ: {site}/{crawl_id}")
        if not self.crawl_of_site(site, crawl_id):
            raise AccessError(f"no crawl {crawl_id!r} of {site!r} in the catalog")
        self.app.check_wacz(site, crawl_id)
        key = wacz_key(site, crawl_id)
        size = self.app.object_size(key) if key_is_safe(key) else None
        if size is None:
            raise AccessError(f"no WACZ of the crawl {crawl_id} in the store")
        try:
            wanted = parse_range(self.headers.get("Range"), size)
        except RangeNotSatisfiable:
            self.send(
                HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                b"",
                "text/plain",
                {"Content-Range": f"bytes */{size}"},
            )
            return
        start, end = wanted or (0, size)
        headers = [
            ("Content-Type", "application/wacz+zip"),
            ("Content-Length", str(end - start)),
            ("Accept-Ranges", "bytes"),
            ("Content-Disposition", f'attachment; filename="{crawl_id}.wacz"'),
        ]
        if wanted:
            headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
        store = self.app.archive.store

        def chunks() -> Iterator[bytes]:
            for offset in range(start, end, _CHUNK):
                yield store.get_range(key, offset, min(_CHUNK, end - offset))

        self.stream(HTTPStatus.PARTIAL_CONTENT if wanted else HTTPStatus.OK, chunks(), headers)

    def replay_route(self, rest: list[str], params: dict[str, list[str]]) -> None:
        if len(rest) == 2 and _NAME.match(rest[0]) and _NAME.match(rest[1]):
            site, crawl_id = rest
            if self.crawl_of_site(site, crawl_id):
                return self.replay_page(site, crawl_id, params)
        return self.app_file(rest or ["index.html"])

    def replay_page(self, site: str, crawl_id: str, params: dict[str, list[str]]) -> None:
        url, ts = _param(params, "url"), _param(params, "ts")
        if not _is_web_url(url):
            raise BadRequest(f"url= must be the http(s) URL of a page of the crawl, not {url!r}")
        if ts and not _TIMESTAMP.match(ts):
            raise BadRequest(f"ts= must be 14 digits (YYYYMMDDhhmmss), not {ts!r}")
        rule = self.app.withheld(url, site)
        if rule is not None:
            raise Withheld(withheld_message(url, rule))
        self.app.check_wacz(site, crawl_id)
        if not self.app.has_wacz(site, crawl_id):
            raise AccessError(f"no WACZ of the crawl {crawl_id} in the store")
        attributes = {
            "source": wacz_path(site, crawl_id),
            "url": url,
            "replaybase": "/replay/",
            **({"ts": ts} if ts else {}),
        }
        element = " ".join(f"{name}='{_esc(value)}'" for name, value in attributes.items())
        page = (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>replay: {_esc(url)}</title><script src='/ui.js'></script>"
            f"<style>{_STYLE}body{{max-width:none;margin:0;padding:0 1em}}"
            "replay-web-page{display:block;height:calc(100vh - 5em)}</style></head><body>"
            f"{_nav()}<p><small>{_esc(url)} from the crawl {_esc(crawl_id)}, replayed by "
            "ReplayWeb.page from the archive alone: the page's own scripts run, and nothing it "
            f"asks for leaves this server.</small></p><replay-web-page {element}>"
            "</replay-web-page></body></html>"
        )
        self.send(
            HTTPStatus.OK,
            page.encode(),
            "text/html; charset=utf-8",
            {"Content-Security-Policy": _REPLAY_CSP},
        )

    def app_file(self, parts: list[str]) -> None:
        """A file of the replaywebpage package: the app, its service worker, their assets."""
        root = self.app.replaywebpage
        rel = "/".join(parts)
        if (
            root is None
            or any(p in ("", ".", "..") or "/" in p or "\\" in p for p in parts)
            or not (rel in _APP_FILES or rel.startswith(_APP_DIRS))
        ):
            raise AccessError(f"no such page: {self.path}")
        target = (root / rel).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise AccessError(f"no such page: {self.path}")
        kind = _APP_TYPES.get(target.suffix, "application/octet-stream")
        self.send(
            HTTPStatus.OK,
            target.read_bytes(),
            kind,
            {"Content-Security-Policy": _REPLAY_CSP, "Cache-Control": "no-cache"},
        )


def _param(params: dict[str, list[str]], name: str) -> str:
    values = params.get(name)
    return values[0] if values else ""


def _with_page(params: dict[str, list[str]], number: int) -> str:
    pairs = [(k, v) for k, values in params.items() if k != "page" for v in values]
    return "/search?" + urlencode([*pairs, ("page", str(number))])


def _version_param(params: dict[str, list[str]], name: str) -> int | None:
    value = _param(params, name)
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise BadRequest(f"{name}= must be a version number (1, 2, …), not {value!r}")
    return int(value)


def _pick(versions: list[Version], number: int | None, default: int, what: str) -> Version:
    if number is None:
        return versions[default]
    for version in versions:
        if version.version == number:
            return version
    have = ", ".join(str(v.version) for v in versions)
    raise AccessError(f"{what}={number}: the article has the versions {have}")


def without_credentials(data: bytes, withheld: set[str]) -> bytes:
    """One record's bytes (a gzip member) as served: a request record without its Cookie,
    Authorization and Proxy-Authorization headers, marked in ``WARC-Withheld-Headers`` and
    given the block digest of what is left; any other record unchanged. The names taken out
    are added to ``withheld``."""
    from warcio.exceptions import ArchiveLoadFailed

    try:
        return _without_credentials(data, withheld)
    except (ArchiveLoadFailed, ValueError, OSError, EOFError) as exc:
        # Unreadable, so it cannot be told free of credentials: not served.
        raise AccessError(f"a record of this capture cannot be read ({exc})") from None


def _without_credentials(data: bytes, withheld: set[str]) -> bytes:
    from warcio.archiveiterator import ArchiveIterator
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    for record in ArchiveIterator(io.BytesIO(data)):
        http = record.http_headers
        if record.rec_type != "request" or http is None:
            return data
        names = [name for name, _ in http.headers if name.lower() in WITHHELD_HEADERS]
        if not names:
            return data
        body = record.content_stream().read()
        kept = [(n, v) for n, v in http.headers if n.lower() not in WITHHELD_HEADERS]
        http_headers = StatusAndHeaders(http.statusline, kept, protocol=http.protocol)
        dropped = ("content-length", "warc-block-digest", WITHHELD_FIELD.lower())
        fields = [(n, v) for n, v in record.rec_headers.headers if n.lower() not in dropped]
        fields.append((WITHHELD_FIELD, ", ".join(dict.fromkeys(names))))
        warc_headers = StatusAndHeaders("", fields, protocol=record.rec_headers.protocol)
        out = io.BytesIO()
        writer = WARCWriter(out, gzip=True, warc_version=record.rec_headers.protocol)
        rewritten = writer.create_warc_record(
            record.rec_headers.get_header("WARC-Target-URI") or "",
            "request",
            payload=io.BytesIO(body),
            length=len(body),
            warc_headers=warc_headers,
            http_headers=http_headers,
        )
        writer.write_record(rewritten)
        withheld.update(dict.fromkeys(names))
        return out.getvalue()
    return data


def _cut_quietly(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """A CDX answer's chunks; one that runs out of its budget after its first bytes went out
    is cut (the connection closes before the last chunk, which a client sees as an error),
    said in one line of the log."""
    try:
        yield from chunks
    except CdxError as exc:
        logger.warning("a CDX answer was cut: %s", exc)
        raise _AnswerCut(str(exc)) from None


class _AnswerCut(Exception):
    """Raised into waitress to drop a connection mid-answer (logged in one line, no trace)."""


class _QuietCut(logging.Filter):
    """waitress logs an exception from an answer with its traceback: not for a cut answer."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], _AnswerCut):
            record.exc_info = None
            record.exc_text = None
            record.msg, record.args = "answer cut: %s", (record.getMessage(),)
        return True


logging.getLogger("waitress").addFilter(_QuietCut())


@dataclass
class Access:
    """Who may read, under which names, and what is withheld from them."""

    credentials: Credentials | None = None
    hosts: frozenset[str] = frozenset({"localhost", "127.0.0.1", "::1"})
    rules: RulesFile | None = None
    withhold_credentials: bool = False
    cdx: CdxOptions = field(default_factory=CdxOptions)


class ArchiveApp:
    """The WSGI application of ``serve``: the archive, the CDX index and the access checks."""

    def __init__(
        self,
        archive: Archive,
        replay: str | None = None,
        replaywebpage: Path | None = None,
        access: Access | None = None,
        cdx: CdxIndex | None = None,
    ) -> None:
        self.archive = archive
        self.replay = replay.rstrip("/") if replay else None
        self.replaywebpage = replaywebpage.resolve() if replaywebpage else None
        self.access = access or Access()
        self.withhold_credentials = self.access.withhold_credentials
        self.cdx = cdx or CdxIndex.from_store(archive.store, options=self.access.cdx)
        if self.access.rules is not None:
            self.cdx.hidden = self._hidden_line
        # Stored objects are never replaced: a size once read stays true.
        self._sizes: dict[str, int | None] = {}
        self._crawls: dict[tuple[str, str, int, str], Rule | None] = {}
        self._lock = Lock()
        root = getattr(archive.store, "root", None)
        private = {archive.store.uri, str(root) if root is not None else ""}
        self._private = sorted((p for p in private if p), key=len, reverse=True)

    # -- WSGI ------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        started = time.monotonic()
        response = self.respond(environ)
        phrase = HTTPStatus(response.status).phrase if response.status in _STATUSES else ""
        start_response(f"{response.status} {phrase}".rstrip(), response.headers)
        logger.info(
            "%s %s %s %d %.0f ms",
            environ.get("REMOTE_ADDR", "-"),
            environ.get("REQUEST_METHOD"),
            environ.get("REQUEST_URI") or environ.get("PATH_INFO"),
            response.status,
            (time.monotonic() - started) * 1000,
        )
        return response.body

    def respond(self, environ: Mapping[str, Any]) -> Response:
        path = str(environ.get("PATH_INFO") or "/")
        if not host_allowed(environ.get("HTTP_HOST"), self.access.hosts):
            return self.refusal(
                400, path, "this server does not answer for that Host (see --allowed-host)"
            )
        credentials = self.access.credentials
        if credentials is not None and credentials.check(environ.get("HTTP_AUTHORIZATION")) is None:
            refused = self.refusal(
                401, path, "authentication required: HTTP basic, or a bearer token"
            )
            refused.headers.append(
                ("WWW-Authenticate", 'Basic realm="newsarchive", charset="UTF-8"')
            )
            return refused
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            refused = self.refusal(501, path, "only GET and HEAD: this server is read-only")
            refused.headers.append(("Allow", "GET, HEAD"))
            return refused
        handler = Handler(self, environ)
        try:
            handler.handle()
        except Exception:  # a fault of ours, not of the request: a 500 that names nothing
            logger.exception("%s: failed", handler.path)
            return self.refusal(500, path, "internal error: the server's log says more")
        return handler.response

    def refusal(self, status: int, path: str, message: str) -> Response:
        if path == "/cdx" or path.startswith("/cdx/"):
            body, kind = (
                json.dumps({"message": message}).encode(),
                "application/json; charset=utf-8",
            )
        else:
            body, kind = message.encode() + b"\n", "text/plain; charset=utf-8"
        headers = [
            ("Content-Type", kind),
            ("Content-Length", str(len(body))),
            ("X-Content-Type-Options", "nosniff"),
        ]
        return Response(status, headers, [body])

    def public(self, message: str) -> str:
        """A message as a client may read it: the store's place is not named."""
        for private in self._private:
            message = message.replace(private, "the store")
        return message

    # -- access rules ----------------------------------------------------------------------------
    def rules(self) -> AccessRules | None:
        return self.access.rules.current() if self.access.rules is not None else None

    def withheld(self, url: str, site: str | None) -> Rule | None:
        rules = self.rules()
        return rules.withheld(url, site) if rules else None

    def visible(self, url: str, site: str | None) -> bool:
        return self.withheld(url, site) is None

    def _hidden_line(self, urlkey: str, site: str | None) -> bool:
        rules = self.rules()
        return bool(rules) and rules is not None and rules.withheld_key(urlkey, site) is not None

    def check_wacz(self, site: str, crawl_id: str) -> None:
        """A crawl's WACZ holds all its captures, as captured: none may be withheld."""
        if self.withhold_credentials:
            raise Withheld(
                "the crawl's WACZ holds its request records as captured, credentials included, "
                "which this server withholds (--withhold-credentials)",
                403,
            )
        rule = self.crawl_withheld(site, crawl_id)
        if rule is not None:
            raise Withheld(withheld_message(f"a capture of the crawl {crawl_id}", rule))

    def crawl_withheld(self, site: str, crawl_id: str) -> Rule | None:
        rules = self.rules()
        if not rules:
            return None
        today = datetime.now(UTC).date().isoformat()
        key = (site, crawl_id, id(rules), today)
        with self._lock:
            if key in self._crawls:
                return self._crawls[key]
        c = captures.c
        query = select(c.url).where(c.site == site, c.crawl_id == crawl_id).distinct()
        found = None
        with self.archive.catalog.engine.connect() as conn:
            for (url,) in conn.execute(query):
                found = rules.withheld(url, site)
                if found is not None:
                    break
        with self._lock:
            self._crawls[key] = found
        return found

    def wacz_served(self, site: str, crawl_id: str) -> bool:
        if self.withhold_credentials or self.crawl_withheld(site, crawl_id) is not None:
            return False
        return self.has_wacz(site, crawl_id)

    # -- the store -------------------------------------------------------------------------------
    def object_size(self, key: str) -> int | None:
        """The size of a stored object, None when the store lacks it."""
        with self._lock:
            if key in self._sizes:
                return self._sizes[key]
        store = self.archive.store
        path = store.local_path(key)
        if path is not None:
            size = path.stat().st_size if path.is_file() else None
        else:
            head = store.head(key)
            size = None if head is None else head.size
        with self._lock:
            if size is not None:
                self._sizes[key] = size
        return size

    def has_wacz(self, site: str, crawl_id: str) -> bool:
        key = wacz_key(site, crawl_id)
        return key_is_safe(key) and self.object_size(key) is not None


_STATUSES = {int(s) for s in HTTPStatus}


def check_replaywebpage(path: str | Path) -> Path:
    """The unpacked npm package ``replaywebpage`` (``--replaywebpage``): it must hold the app."""
    root = Path(path).expanduser()
    missing = [name for name in sorted(_APP_FILES) if not (root / name).is_file()]
    if missing:
        raise AccessError(
            f"--replaywebpage {path}: no ReplayWeb.page there ({', '.join(missing)} missing); "
            "give the directory of the unpacked npm package replaywebpage "
            "(npm pack replaywebpage; tar xzf replaywebpage-*.tgz: its package/ directory)"
        )
    return root.resolve()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, *, allow_remote: bool, authenticated: bool = False) -> None:
    """A non-loopback address needs ``allow_remote`` (``--allow-remote``), and is logged."""
    if is_loopback(host):
        return
    if not allow_remote:
        raise AccessError(
            f"--host {host} would serve the archive beyond this machine: "
            "add --allow-remote to mean it"
        )
    logger.warning(
        "serving on %s: the archive is readable from the network%s",
        host,
        "" if authenticated else ", unauthenticated",
    )


def access_options(
    host: str,
    *,
    allow_remote: bool = False,
    auth_file: str | None = None,
    no_auth: bool = False,
    allowed_host: Sequence[str] = (),
    access_file: str | None = None,
    withhold_credentials: bool = False,
    cdx_paged: bool = False,
    cdx_budget: float | None = 10.0,
) -> Access:
    """What ``serve``'s options say about access, checked before anything is opened."""
    credentials = Credentials.load(auth_file)
    if credentials is not None and no_auth:
        raise AccessError(
            "--no-auth, but credentials are given (--auth-file or $NEWSARCHIVE_SERVE_AUTH)"
        )
    if allow_remote and not is_loopback(host) and credentials is None and not no_auth:
        raise AccessError(
            f"--host {host} --allow-remote serves the archive to the network: give --auth-file "
            "FILE (or set $NEWSARCHIVE_SERVE_AUTH) for who may read, or --no-auth to let anyone "
            "who reaches it read"
        )
    names = list(allowed_host)
    try:
        if ipaddress.ip_address(host.strip("[]")).is_unspecified:
            import socket

            names += [socket.gethostname(), socket.getfqdn()]
    except ValueError:
        pass
    try:
        cdx = CdxOptions(paged=cdx_paged, budget=cdx_budget)
    except ValueError as exc:
        raise AccessError(f"--cdx-budget: {exc}") from None
    return Access(
        credentials=credentials,
        hosts=allowed_hosts(host, names),
        rules=RulesFile(access_file) if access_file else None,
        withhold_credentials=withhold_credentials,
        cdx=cdx,
    )


def hash_password_line(name: str, secret: str) -> str:
    """The credentials file's line for a password (``serve --hash-password``)."""
    hashed = hash_password(secret)
    return f"{name}:{hashed}" if name else hashed


def serve(
    archive: Archive,
    host: str,
    port: int,
    *,
    replay: str | None = None,
    replaywebpage: str | Path | None = None,
    allow_remote: bool = False,
    access: Access | None = None,
    server: httpd.ServerConfig | None = None,
) -> None:
    access = access or Access(hosts=allowed_hosts(host))
    check_bind(host, allow_remote=allow_remote, authenticated=access.credentials is not None)
    unpacked = check_replaywebpage(replaywebpage) if replaywebpage else None
    app = ArchiveApp(archive, replay, unpacked, access)
    try:
        running = httpd.create(app, host, port, server or httpd.ServerConfig())
    except OSError as exc:  # the port is taken, or not ours to take
        raise AccessError(
            f"cannot listen on http://{host}:{port}/: {exc.strerror or exc} (--port)"
        ) from None
    shown = f"[{host}]" if ":" in host else host
    print(
        f"serving {archive.store.uri} on http://{shown}:{httpd.bound_port(running)}/ (read-only"
        + (", authenticated" if access.credentials else "")
        + (", access rules" if access.rules else "")
        + ")",
        flush=True,
    )
    try:
        httpd.run(running)
    finally:
        closer = getattr(app.cdx.sources, "close", None)
        if closer is not None:
            closer()
