#!/usr/bin/env python3
"""Compare two newsarchive stores record for record, ignoring only what differs run to run.

Usage: compare_archives.py BEFORE_STORE AFTER_STORE   (exit 0 identical, 1 different, 2 usage)

Built to prove that a refactor leaves ``newsarchive demo --store DIR`` output unchanged. It
needs only the standard library and warcio, never the ``crawler`` package, so it keeps working
while that package is moved around.

What is compared:

- the normalized object keys of every kind (warc, text, index, wacz, reports, manifests);
- every WARC record of ``warc/**.warc.gz``, per site, matched as a multiset (record order and
  file boundaries are free): WARC headers, HTTP head of request/response/revisit records,
  payload digest and length, ``application/warc-fields`` blocks field by field, and the full
  content of conversion records; each store's block and payload digests are also verified;
- ``text/**.txt`` byte for byte; ``text/**.json`` sidecars as JSON;
- CDXJ lines (``index/**.cdxj``), Parquet row counts and columns (read from the footer),
  WACZ members, pages and datapackage; reports; manifests (object lists, text digests, and
  each object's size and SHA-256 checked against the store); catalog row counts per table.

What is normalized, and why (two runs of the same code differ in exactly these):

- WARC-Record-ID, WARC-Date, sidecar/report/manifest times: fresh UUIDs and clock readings;
  only their shape is checked.
- WARC-Concurrent-To, WARC-Refers-To, sidecar record ids and offsets, CDXJ offset/length, WACZ
  page ids: they name records by UUID or byte position, so they are resolved to the record
  they point at (type, URI, payload digest) and that is compared instead.
- WARC-Warcinfo-ID: names a record too; when it is the warcinfo that opens the record's own
  file it becomes "= warcinfo of its file" (file boundaries are free), else it is resolved.
- WARC-Refers-To-Date, sidecar capture_time, CDXJ timestamp: must equal the WARC-Date of the
  record they refer to; checked, then dropped.
- WARC-Block-Digest and Content-Length of a record whose block had to be normalized (a Date
  header, a challenge token, a cookie, a crawl id...): the normalized block is compared.
- HTTP ``Date`` response header: the loopback mirror sets it from the clock (the only header
  it derives from the clock: Last-Modified and ETag come from the saved routes).
- The mirror's ArvanCloud challenge (irna): a random token in the challenge page payload and
  in the ``__arcsjs``/``__arcsjsc`` request cookies; the token is masked, shape kept.
- warcinfo ``crawl-id`` (``<site>-<UTC time>-<random>``) and ``settings-digest`` (it covers
  ARCHIVE_PROXY, the mirror's random loopback port); object names holding the crawl id or the
  WARC file's UTC timestamp; the ``YYYY/MM/DD`` directories of keys (UTC date of the run).
- WARC-Page-ID of rendered pages and the ``page-id`` field of their metadata record (a random
  UUID per page): replaced by the page's URL; ``rendered-dom`` resolved like a record id.
- Sidecars: crawl_id, crawl_time, capture_time, conversion_record_id, metadata_record_id,
  text_key (date directories), warc.file/key (names), warc.offset/length/record_id and
  warc.rendered_dom_record_id (resolved); every other field is compared as is.
- Reports (also inside manifests): crawl_id, started, finished, duration_s, cpu_s, store,
  warc.files (names); manifests: crawl_id, created, store, and the objects' order, sizes and
  digests (those of texts are compared; the others change with the record bytes above).
- ``store`` in reports and manifests: where the crawl wrote (BEFORE and AFTER differ by design).
- Scheduling races (concurrent requests finish in any order): which feed, sitemap or listing
  finds an article first. This changes the request's ``Referer``, the order and number of
  ``discovered-via`` fields / sidecar ``discovery`` entries, a report's ``warc.bytes`` (the
  uncompressed record bytes), and, for an article linked under two URLs (almasirah: another
  host and slug), which URL is archived. These are checked for soundness (a Referer or
  discovery source must be a URL captured in the same store; entries for the same source
  must agree across the two stores; an article under another URL must match in everything
  else, payload digest and text included) and listed as tolerated variation
  (``--show-tolerated``), not counted as differences.

Not normalized, so expected equal: the warcinfo ``hostname`` and host part of WARC names
(compare runs made on the same machine), software and browser versions, every HTTP header but
``Date``, every payload but the challenge page.

Example:
  newsarchive demo --store /tmp/archive-before          # old code
  newsarchive demo --store /tmp/archive-after           # new code
  python scripts/compare_archives.py /tmp/archive-before /tmp/archive-after
"""

from __future__ import annotations

import argparse
import base64
import difflib
import hashlib
import json
import re
import sqlite3
import sys
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warcio.archiveiterator import ArchiveIterator

SIDES = ("BEFORE", "AFTER")
KINDS = ("warc", "text", "index", "wacz", "reports", "manifests")
SKIPPED_TOP = (".spool", ".catalog.sqlite")  # the spool, the catalog and its -wal/-shm files

UUID_ID = re.compile(r"<urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}>")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
WARC_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z")
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")
HTTP_DATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT"
)
CRAWL_ID = re.compile(r"[A-Za-z0-9_.-]+-\d{8}T\d{6}Z-[0-9a-f]{6}")
SETTINGS_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
CDX_TIME = re.compile(r"\d{14}")
STORE_URI = re.compile(r"(?:file|s3)://\S*|/\S*")

KEY_DATE_DIRS = re.compile(r"(?<=/)\d{4}/\d{2}/\d{2}(?=/)")
# The WARC time, and the crawl's token before the host (since names carry one).
KEY_WARC_TIME = re.compile(r"-\d{14}-(\d{5})-(?:[0-9a-f]{6}-)?")
KEY_CRAWL_ID = re.compile(r"-\d{8}T\d{6}Z-[0-9a-f]{6}")

CHALLENGE_MARK = b"arvancloud-challenge"
CHALLENGE_SALTED = re.compile(rb"\('[0-9a-f]{40}'\)")
CHALLENGE_TOKEN = re.compile(rb"'[0-9a-f]{12}'\+'[0-9a-f]{12}'")
COOKIE_TOKENS = (
    (re.compile(r"__arcsjs=[0-9a-f]{8}\b"), "__arcsjs=<answer>"),
    (re.compile(r"__arcsjsc=[0-9a-f]{24}\b"), "__arcsjsc=<token>"),
)

RACE = "<scheduling race: compared separately>"


def norm_key(key: str) -> str:
    """An object key or file name with the run's date, WARC timestamp and crawl id masked."""
    key = KEY_DATE_DIRS.sub("<date>", key)
    key = KEY_WARC_TIME.sub(r"-<time>-\1-", key)
    return KEY_CRAWL_ID.sub("-<crawl-id>", key)


def shape(value: Any, pattern: re.Pattern[str], label: str) -> Any:
    """``label`` when ``value`` has the expected shape, else the raw value (which then differs)."""
    if isinstance(value, str) and pattern.fullmatch(value):
        return label
    return value


def digest_ok(digest: str | None, data: bytes) -> bool:
    if not digest or ":" not in digest:
        return False
    algo, _, value = digest.partition(":")
    try:
        raw = hashlib.new(algo.replace("-", "").lower(), data).digest()
    except ValueError:
        return False
    return value.upper() == base64.b32encode(raw).decode() or value.lower() == raw.hex()


def sha1_b32(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


# ---------------------------------------------------------------------------------------------
# the report


@dataclass
class Report:
    limit: int
    counts: Counter[str] = field(default_factory=Counter)
    diffs: list[tuple[str, str, str]] = field(default_factory=list)
    tolerated: list[tuple[str, str, str]] = field(default_factory=list)

    def count(self, category: str, n: int = 1) -> None:
        self.counts[category] += n

    def differ(self, category: str, where: str, detail: str) -> None:
        self.diffs.append((category, where, detail))

    def tolerate(self, category: str, where: str, detail: str) -> None:
        """``detail`` starts with the kind of variation, up to the first colon."""
        self.tolerated.append((category, where, detail))

    def render(self, before: Path, after: Path, show_tolerated: bool) -> str:
        out = [f"compare_archives: {before} (BEFORE) vs {after} (AFTER)", "compared:"]
        for category, n in sorted(self.counts.items()):
            out.append(f"  {category:<24} {n}")
        if self.tolerated:
            kinds = Counter(detail.partition(":")[0] for _, _, detail in self.tolerated)
            out.append(
                f"tolerated run-to-run variation (scheduling races): {len(self.tolerated)} ("
                + ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
                + (")" if show_tolerated else "; --show-tolerated lists them)")
            )
            if show_tolerated:
                out.extend(_entry(*item) for item in self.tolerated)
        if self.diffs:
            out.append(f"differences: {len(self.diffs)}")
            out.extend(_entry(*item) for item in self.diffs[: self.limit])
            if len(self.diffs) > self.limit:
                out.append(f"  … and {len(self.diffs) - self.limit} more (--limit N)")
            out.append("DIFFERENT")
        else:
            out.append("identical")
        return "\n".join(out)


def _entry(category: str, where: str, detail: str) -> str:
    body = detail.replace("\n", "\n      ")
    return f"  [{category}] {where}\n      {body}"


# ---------------------------------------------------------------------------------------------
# WARC records


@dataclass
class Record:
    site: str
    key: str
    offset: int
    length: int
    type: str
    headers: list[tuple[str, str]]
    block: bytes
    head: bytes | None = None  # HTTP head (request/response/revisit), without the blank line
    payload: bytes = b""
    norm_payload: bytes = b""
    identity: str = ""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def id(self) -> str | None:
        return self.header("WARC-Record-ID")

    @property
    def uri(self) -> str:
        return self.header("WARC-Target-URI") or ""

    @property
    def date(self) -> str | None:
        return self.header("WARC-Date")

    @property
    def is_http(self) -> bool:
        return (self.header("Content-Type") or "").startswith("application/http")


def read_records(site: str, key: str, path: Path) -> Iterator[Record]:
    with path.open("rb") as fh:
        it = ArchiveIterator(fh, no_record_parse=True)
        for rec in it:
            block = rec.raw_stream.read()
            offset, length = it.get_record_offset(), it.get_record_length()
            record = Record(
                site=site,
                key=key,
                offset=offset,
                length=length,
                type=rec.rec_type,
                headers=list(rec.rec_headers.headers),
                block=block,
            )
            if record.is_http:
                head, sep, payload = block.partition(b"\r\n\r\n")
                record.head, record.payload = head, payload if sep else b""
            else:
                record.payload = block
            record.norm_payload = normalize_payload(record)
            yield record


def normalize_payload(record: Record) -> bytes:
    """The payload with the mirror's random challenge token masked (same length kept)."""
    payload = record.payload
    if record.type == "response" and CHALLENGE_MARK in payload:
        payload = CHALLENGE_SALTED.sub(b"('<salted-token>')", payload)
        payload = CHALLENGE_TOKEN.sub(b"'<token-a>'+'<token-b>'", payload)
    return payload


def parse_fields(block: bytes) -> list[tuple[str, str]]:
    """``application/warc-fields``: ``name: value`` lines."""
    fields = []
    for line in block.decode("utf-8", "replace").split("\r\n"):
        if line:
            name, _, value = line.partition(":")
            fields.append((name, value.strip()))
    return fields


def parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    pairs = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        pairs.append((name, value.strip()))
    return lines[0], pairs


@dataclass
class Canon:
    """A record (or other item) reduced to what must be equal, plus race-tolerant raw values."""

    where: str
    data: dict[str, Any]
    loose: dict[str, Any]
    alias: dict[str, Any] | None = None  # ``data`` with article URLs replaced (see Store.aliased)
    urls: list[str] = field(default_factory=list)  # the article URLs that were replaced

    @property
    def text(self) -> str:
        return json.dumps(self.data, sort_keys=True, ensure_ascii=False)

    @property
    def alias_text(self) -> str:
        return json.dumps(self.alias or self.data, sort_keys=True, ensure_ascii=False)


class Store:
    """One store directory, read once."""

    def __init__(self, root: Path, side: str, report: Report) -> None:
        self.root, self.side, self.report = root, side, report
        self.keys: dict[str, str] = {}  # normalized key -> key
        self.collisions: list[tuple[str, str, str]] = []
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_dir() or rel.parts[0].startswith(SKIPPED_TOP):
                continue
            key = rel.as_posix()
            nkey = norm_key(key)
            if nkey in self.keys:
                self.collisions.append((nkey, self.keys[nkey], key))
            self.keys[nkey] = key
        self.records: list[Record] = []
        for nkey, key in self.keys.items():
            if nkey.startswith("warc/") and (key.endswith(".warc.gz") or key.endswith(".warc")):
                site = key.split("/")[1]
                self.records.extend(read_records(site, key, root / key))
        self.by_id = {r.id: r for r in self.records if r.id}
        self.by_pos = {(Path(r.key).name, r.offset): r for r in self.records}
        self.by_page_hash = {
            hashlib.sha1(i.encode()).hexdigest()[:24]: r for i, r in self.by_id.items()
        }
        self.captured = {r.uri for r in self.records if r.type in ("response", "revisit")}
        self.pages: dict[str, str] = {}
        for r in self.records:
            page = r.header("WARC-Page-ID")
            if page and r.type == "response" and r.header("WARC-Resource-Type") == "document":
                self.pages[page] = r.uri
        for r in self.records:
            r.identity = self._identity(r)
        self.aliases: dict[str, str] = {}  # article URL (or its request URL) -> placeholder
        for r in self.records:
            fields = dict(parse_fields(r.block)) if r.type == "metadata" else {}
            if "article-id" in fields:
                name = f"<URL of article {fields.get('site', r.site)}/{fields['article-id']}>"
                for url in (r.uri, fields.get("request-url")):
                    if url:
                        self.aliases[url] = name
        self.share_aliases(self)
        self._check_digests()

    def share_aliases(self, other: Store) -> None:
        """Use the article URLs of both stores (each may know only the URL it archived)."""
        self.aliases = other.aliases = {**other.aliases, **self.aliases}
        for store in (self, other):
            store._alias_re = re.compile(
                r"(?:^|(?<=\s)|(?<=urn:text:))("
                + "|".join(re.escape(u) for u in sorted(self.aliases, key=len, reverse=True))
                + r")(?=$|\s)"
            )

    def aliased(self, data: Any, urls: list[str]) -> Any:
        """``data`` with each article URL replaced by a name for the article (URLs in ``urls``).

        The same article can be linked under two URLs (another host, another slug): which one
        the crawl fetches first, and so archives, is a scheduling race.
        """
        if not self.aliases:
            return data
        if isinstance(data, str):

            def sub(match: re.Match[str]) -> str:
                urls.append(match.group(1))
                return self.aliases[match.group(1)]

            return self._alias_re.sub(sub, data)
        if isinstance(data, list):
            return [self.aliased(x, urls) for x in data]
        if isinstance(data, dict):
            return {k: self.aliased(v, urls) for k, v in data.items()}
        return data

    def with_alias(self, canon: Canon, url: str | None = None) -> Canon:
        """Fill ``canon.alias``; ``url``: the item's own URL, whose host and path are masked too."""
        alias = self.aliased(canon.data, canon.urls)
        if url in self.aliases and isinstance(alias.get("http"), list):
            first, pairs = alias["http"]
            method, _, rest = first.partition(" ")
            _, _, version = rest.rpartition(" ")
            alias["http"] = [
                f"{method} {self.aliases[url]} {version}",
                [[k, self.aliases[url] if k.lower() == "host" else v] for k, v in pairs],
            ]
        if url in self.aliases and "urlkey" in alias:
            alias["urlkey"] = self.aliases[url]
            canon.urls.append(url)
        canon.alias = alias
        return canon

    # -- identities and references

    def _identity(self, r: Record) -> str:
        if r.type in ("response", "resource", "conversion"):
            return f"{r.type} {r.uri} {sha1_b32(r.norm_payload)}"
        if r.type == "metadata":
            fields = parse_fields(r.block)
            return f"metadata {r.uri} ({fields[0][0] if fields else 'empty'})"
        if r.type == "warcinfo":
            return f"warcinfo {norm_key(r.header('WARC-Filename') or '')}"
        return f"{r.type} {r.uri}"

    def ref(self, record_id: Any) -> str:
        target = self.by_id.get(record_id) if isinstance(record_id, str) else None
        if target is not None:
            return f"-> {target.identity}"
        return shape(record_id, UUID_ID, "<unresolved record id>")

    def page(self, page_id: str) -> str:
        if page_id in self.pages:
            return f"page of {self.pages[page_id]}"
        return shape(page_id, UUID, "<page id without document>")

    def error(self, where: str, detail: str) -> None:
        self.report.differ("integrity", f"{self.side} {where}", detail)

    def _check_digests(self) -> None:
        for r in self.records:
            where = f"{r.key}@{r.offset} {r.type} {r.uri}"
            self.report.count(f"warc digests ({self.side})")
            if not digest_ok(r.header("WARC-Block-Digest"), r.block):
                self.error(where, "WARC-Block-Digest does not match the block")
            payload_digest = r.header("WARC-Payload-Digest")
            if payload_digest and r.type != "revisit" and not digest_ok(payload_digest, r.payload):
                self.error(where, "WARC-Payload-Digest does not match the payload")

    # -- canonical records

    def canon(self, r: Record) -> Canon:
        loose: dict[str, Any] = {}
        block_normalized = False
        http = None
        fields = None
        if r.head is not None:
            first, pairs = parse_head(r.head)
            out = []
            for name, value in pairs:
                low = name.lower()
                new = value
                if low == "date" and r.type in ("response", "revisit"):
                    new = shape(value, HTTP_DATE, "<http-date>")
                elif low == "cookie":
                    for pattern, mask in COOKIE_TOKENS:
                        new = pattern.sub(mask, new)
                elif low == "referer" and value in self.captured:
                    new, loose["referer"] = "<a URL captured in this store>", value
                block_normalized |= new != value
                out.append([name, new])
            http = [first, out]
        elif (r.header("Content-Type") or "").startswith("application/warc-fields"):
            fields = []
            entries = []
            for name, value in parse_fields(r.block):
                new = self._field(name, value)
                if new is RACE:
                    parsed = _json_or_none(value)
                    if parsed is not None and self.discovery_ok(parsed):
                        entries.append(parsed)
                        if any(f[0] == name and f[1] == RACE for f in fields):
                            block_normalized = True
                            continue
                    else:
                        new = value
                block_normalized |= new != value
                fields.append([name, new])
            if entries:
                loose["discovery"] = entries
        payload_changed = r.norm_payload != r.payload
        block_normalized |= payload_changed
        warc = []
        for name, value in r.headers:
            warc.append(
                [name, self._warc_header(r, name, value, block_normalized, payload_changed)]
            )
        data: dict[str, Any] = {"type": r.type, "uri": r.uri, "warc": warc}
        if http is not None:
            data["http"] = http
        if fields is not None:
            data["fields"] = fields
        if r.type != "revisit" and (r.is_http or r.type in ("resource", "conversion")):
            data["payload"] = {"digest": sha1_b32(r.norm_payload), "length": len(r.payload)}
        if r.type == "conversion":
            data["text"] = r.payload.decode("utf-8", "replace")
        return self.with_alias(Canon(f"{r.site}: {r.type} {r.uri}", data, loose), r.uri)

    def _warc_header(
        self, r: Record, name: str, value: str, block_normalized: bool, payload_changed: bool
    ) -> str:
        low = name.lower()
        if low == "warc-record-id":
            return shape(value, UUID_ID, "<record id>")
        if low == "warc-date":
            return shape(value, WARC_DATE, "<warc-date>")
        if low in ("warc-concurrent-to", "warc-refers-to"):
            return self.ref(value)
        if low == "warc-warcinfo-id":
            # File boundaries are free, so only "the warcinfo opening this record's file".
            info = self.by_id.get(value)
            if (
                info is not None
                and info.type == "warcinfo"
                and (info.key, info.offset) == (r.key, 0)
            ):
                return "= warcinfo of its file"
            return self.ref(value)
        if low == "warc-refers-to-date":
            target = self.by_id.get(r.header("WARC-Refers-To") or "")
            return "= WARC-Date of WARC-Refers-To" if target and target.date == value else value
        if low == "warc-filename":
            return norm_key(value)
        if low == "warc-page-id":
            return self.page(value)
        if low in ("warc-block-digest", "content-length") and block_normalized:
            return "<of the normalized block>"
        if low == "warc-payload-digest":
            if r.type == "revisit":
                target = self.by_id.get(r.header("WARC-Refers-To") or "")
                if target and target.header("WARC-Payload-Digest") == value:
                    return "= payload digest of WARC-Refers-To"
            elif payload_changed:
                return "<of the normalized payload>"
        return value

    def _field(self, name: str, value: str) -> Any:
        if name == "crawl-id":
            return shape(value, CRAWL_ID, "<crawl-id>")
        if name == "settings-digest":
            return shape(value, SETTINGS_DIGEST, "<settings-digest>")
        if name == "page-id":
            return self.page(value)
        if name == "rendered-dom":
            return self.ref(value)
        if name == "discovered-via":
            return RACE
        return value

    def discovery_ok(self, entry: Any) -> bool:
        return isinstance(entry, dict) and entry.get("source") in self.captured

    # -- other objects

    def load_json(self, key: str) -> Any:
        return json.loads((self.root / key).read_text(encoding="utf-8"))


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# generic diffs


def json_diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in list(a) + [k for k in b if k not in a]:
            sub = f"{path}.{k}" if path else str(k)
            if k not in b:
                out.append(f"{sub}: only in BEFORE ({_short(a[k])})")
            elif k not in a:
                out.append(f"{sub}: only in AFTER ({_short(b[k])})")
            else:
                out.extend(json_diff(a[k], b[k], sub))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out.extend(json_diff(x, y, f"{path}[{i}]"))
        return out
    if a != b:
        return [f"{path or '(value)'}: {_short(a)} != {_short(b)}"]
    return []


def _short(value: Any, width: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def text_diff(a: str, b: str, lines: int = 12) -> str:
    diff = list(
        difflib.unified_diff(a.splitlines(), b.splitlines(), "BEFORE", "AFTER", n=1, lineterm="")
    )
    if not diff:
        return "(differ only in line endings or trailing newline)"
    shown = diff[2 : 2 + lines]
    more = len(diff) - 2 - len(shown)
    return "\n".join(s[:200] for s in shown) + (f"\n… {more} more diff lines" if more > 0 else "")


def discovery_compare(
    report: Report, category: str, where: str, a: list[Any] | None, b: list[Any] | None
) -> None:
    """Discovery entries of one article: same source must mean same details; the set may vary."""
    a, b = a or [], b or []
    if bool(a) != bool(b):
        report.differ(category, where, f"discovery entries: {len(a)} in BEFORE, {len(b)} in AFTER")
        return

    def keyed(entries: list[Any]) -> dict[str, Any]:
        return {json.dumps([e.get("via"), e.get("source")]): e for e in entries}

    ka, kb = keyed(a), keyed(b)
    for k in ka.keys() & kb.keys():
        if ka[k] != kb[k]:
            report.differ(
                category, where, f"discovery entry {k}: " + "; ".join(json_diff(ka[k], kb[k]))
            )
    only_a, only_b = sorted(ka.keys() - kb.keys()), sorted(kb.keys() - ka.keys())
    order_a = [k for k in keyed(a) if k in kb]
    order_b = [k for k in keyed(b) if k in ka]
    if only_a or only_b or order_a != order_b:
        report.tolerate(
            category,
            where,
            f"discovery: only in BEFORE {only_a}, only in AFTER {only_b}"
            + ("" if order_a == order_b else ", order differs"),
        )


def compare_loose(
    report: Report, category: str, where: str, a: dict[str, Any], b: dict[str, Any]
) -> None:
    if "discovery" in a or "discovery" in b:
        discovery_compare(report, category, where, a.get("discovery"), b.get("discovery"))
    for name in sorted((a.keys() | b.keys()) - {"discovery"}):
        if a.get(name) != b.get(name):
            report.tolerate(
                category, where, f"{name}: {_short(a.get(name))} vs {_short(b.get(name))}"
            )


def match_multiset(
    report: Report,
    category: str,
    a: Iterable[Canon],
    b: Iterable[Canon],
    group: Callable[[Canon], str],
) -> None:
    """Match canonical items order-independently; describe what is left over, paired by group."""
    by_text: dict[str, tuple[list[Canon], list[Canon]]] = defaultdict(lambda: ([], []))
    for item in a:
        by_text[item.text][0].append(item)
    for item in b:
        by_text[item.text][1].append(item)
    report.count(
        category,
        max(sum(len(x) for x, _ in by_text.values()), sum(len(y) for _, y in by_text.values())),
    )
    rest_a, rest_b = _pair_off(report, category, by_text.values())
    # second pass: the same article archived under another of its URLs
    by_alias: dict[str, tuple[list[Canon], list[Canon]]] = defaultdict(lambda: ([], []))
    for item in rest_a:
        by_alias[item.alias_text][0].append(item)
    for item in rest_b:
        by_alias[item.alias_text][1].append(item)
    rest_a, rest_b = _pair_off(report, category, by_alias.values(), aliased=True)
    left_a: dict[str, list[Canon]] = defaultdict(list)
    left_b: dict[str, list[Canon]] = defaultdict(list)
    for x in rest_a:
        left_a[group(x)].append(x)
    for y in rest_b:
        left_b[group(y)].append(y)
    for g in sorted(left_a.keys() | left_b.keys()):
        xs, ys = left_a.get(g, []), left_b.get(g, [])
        for x, y in zip(xs, ys, strict=False):
            report.differ(category, x.where, _fewest(describe, x, y))
        for x in xs[len(ys) :]:
            report.differ(category, x.where, "only in BEFORE")
        for y in ys[len(xs) :]:
            report.differ(category, y.where, "only in AFTER")


def _pair_off(
    report: Report,
    category: str,
    groups: Iterable[tuple[list[Canon], list[Canon]]],
    aliased: bool = False,
) -> tuple[list[Canon], list[Canon]]:
    """Pair equal items (race-tolerant values compared); return the unpaired ones."""
    rest_a: list[Canon] = []
    rest_b: list[Canon] = []
    for items_a, items_b in groups:
        la = sorted(items_a, key=lambda c: json.dumps(c.loose, sort_keys=True))
        lb = sorted(items_b, key=lambda c: json.dumps(c.loose, sort_keys=True))
        for x, y in zip(la, lb, strict=False):
            if aliased:
                report.tolerate(category, x.where, f"archived under another URL: {y.where}")
            compare_loose(report, category, x.where, x.loose, y.loose)
        rest_a.extend(la[len(lb) :])
        rest_b.extend(lb[len(la) :])
    return rest_a, rest_b


def _fewest(how: Callable[[Any, Any], str], x: Canon, y: Canon) -> str:
    """The description with the fewest lines: as archived, or with article URLs masked."""
    strict = how(x.data, y.data)
    if x.alias is None or y.alias is None:
        return strict
    masked = how(x.alias, y.alias)
    return masked if masked.count("\n") < strict.count("\n") else strict


def describe(a: dict[str, Any], b: dict[str, Any]) -> str:
    out = []
    if "text" in a and "text" in b and a["text"] != b["text"]:
        out.append("content:\n" + text_diff(a["text"], b["text"]))
        a, b = dict(a, text=None), dict(b, text=None)
    for part in ("warc", "http", "fields"):
        if isinstance(a.get(part), list) and isinstance(b.get(part), list) and a[part] != b[part]:
            xa, xb = a[part], b[part]
            if part == "http":
                if xa[0] != xb[0]:
                    out.append(f"http first line: {xa[0]!r} != {xb[0]!r}")
                xa, xb = xa[1], xb[1]
            out.append(f"{part} headers:\n" + text_diff(_lines(xa), _lines(xb)))
            a, b = dict(a, **{part: None}), dict(b, **{part: None})
    out.extend(json_diff(a, b))
    return "\n".join(out)


def _lines(pairs: list[list[str]]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in pairs)


# ---------------------------------------------------------------------------------------------
# per category


def compare_keys(report: Report, a: Store, b: Store) -> None:
    for store in (a, b):
        for nkey, first, second in store.collisions:
            store.error(nkey, f"two objects normalize to the same key: {first}, {second}")
    for kind in sorted({k.split("/")[0] for k in a.keys.keys() | b.keys.keys()}):
        ka = {k for k in a.keys if k.split("/")[0] == kind}
        kb = {k for k in b.keys if k.split("/")[0] == kind}
        report.count(f"object keys: {kind}", len(ka | kb))
        for k in sorted(ka - kb):
            report.differ("object keys", k, f"only in BEFORE ({a.keys[k]})")
        for k in sorted(kb - ka):
            report.differ("object keys", k, f"only in AFTER ({b.keys[k]})")


def compare_warc(report: Report, a: Store, b: Store) -> None:
    sites = sorted({r.site for r in a.records} | {r.site for r in b.records})
    for site in sites:
        ca = [a.canon(r) for r in a.records if r.site == site]
        cb = [b.canon(r) for r in b.records if r.site == site]
        match_multiset(
            report,
            f"warc records: {site}",
            ca,
            cb,
            lambda c: f"{c.data['type']} {(c.alias or c.data)['uri']}",
        )


def common(a: Store, b: Store, predicate: Callable[[str], bool]) -> list[str]:
    return sorted(k for k in a.keys.keys() & b.keys.keys() if predicate(k))


def compare_texts(report: Report, a: Store, b: Store) -> None:
    for nkey in common(a, b, lambda k: k.startswith("text/") and k.endswith(".txt")):
        report.count("texts (byte for byte)")
        da, db = (a.root / a.keys[nkey]).read_bytes(), (b.root / b.keys[nkey]).read_bytes()
        if da != db:
            detail = text_diff(da.decode("utf-8", "replace"), db.decode("utf-8", "replace"))
            report.differ("texts", nkey, f"{len(da)} vs {len(db)} bytes\n{detail}")


def sidecar_canon(store: Store, nkey: str) -> Canon:
    doc = store.load_json(store.keys[nkey])
    loose: dict[str, Any] = {}
    if not isinstance(doc, dict):
        return Canon(nkey, {"sidecar": doc}, loose)
    doc = dict(doc)
    warc = dict(doc.get("warc") or {})
    record = store.by_id.get(warc.get("record_id"))
    if "crawl_id" in doc:
        doc["crawl_id"] = shape(doc["crawl_id"], CRAWL_ID, "<crawl-id>")
    if "crawl_time" in doc:
        doc["crawl_time"] = shape(doc["crawl_time"], ISO_TIME, "<time>")
    if record is not None and doc.get("capture_time") == record.date:
        doc["capture_time"] = "= WARC-Date of warc.record_id"
    for name in ("conversion_record_id", "metadata_record_id"):
        if name in doc:
            doc[name] = store.ref(doc[name])
    if "text_key" in doc and isinstance(doc["text_key"], str):
        doc["text_key"] = norm_key(doc["text_key"])
    entries = doc.get("discovery")
    if isinstance(entries, list) and entries and all(store.discovery_ok(e) for e in entries):
        loose["discovery"], doc["discovery"] = entries, RACE
    if warc:
        if record is None:
            store.error(nkey, "sidecar warc.record_id names no record of the store")
        else:
            if (Path(record.key).name, record.offset, record.length, record.key) != (
                warc.get("file"),
                warc.get("offset"),
                warc.get("length"),
                warc.get("key"),
            ):
                store.error(nkey, "sidecar warc file/key/offset/length miss warc.record_id")
            for name in ("offset", "length"):
                warc[name] = f"<{name} of warc.record_id>"
        for name in ("file", "key"):
            if isinstance(warc.get(name), str):
                warc[name] = norm_key(warc[name])
        for name in [n for n in warc if n.endswith("record_id")]:
            warc[name] = store.ref(warc[name])
        doc["warc"] = warc
    return store.with_alias(Canon(nkey, doc, loose))


def compare_sidecars(report: Report, a: Store, b: Store) -> None:
    for nkey in common(a, b, lambda k: k.startswith("text/") and k.endswith(".json")):
        report.count("sidecars")
        ca, cb = sidecar_canon(a, nkey), sidecar_canon(b, nkey)
        if ca.data != cb.data and ca.alias == cb.alias:
            changes = json_diff(ca.data, cb.data)
            report.tolerate("sidecars", nkey, "archived under another URL: " + changes[0])
        elif ca.data != cb.data:
            report.differ(
                "sidecars", nkey, _fewest(lambda x, y: "\n".join(json_diff(x, y)), ca, cb)
            )
        compare_loose(report, "sidecars", nkey, ca.loose, cb.loose)


def cdx_canon(store: Store, line: str, where: str) -> Canon:
    urlkey, _, rest = line.partition(" ")
    stamp, _, blob = rest.partition(" ")
    doc = _json_or_none(blob)
    if not isinstance(doc, dict):
        return Canon(where, {"line": line}, {})
    doc = dict(doc)
    try:
        record = store.by_pos.get((doc.get("filename"), int(doc.get("offset", -1))))
    except (TypeError, ValueError):
        record = None
    if record is None or str(record.length) != str(doc.get("length")):
        store.error(where, f"CDXJ offset/length do not locate a record: {line[:200]}")
        record = next(  # the record it means, so that the line is still compared as a whole
            (
                r
                for r in store.records
                if Path(r.key).name == doc.get("filename")
                and r.uri == doc.get("url")
                and r.header("WARC-Payload-Digest") == doc.get("digest")
                and (r.type == "revisit") == (doc.get("mime") == "warc/revisit")
            ),
            None,
        )
    if record is not None:
        doc["offset"] = doc["length"] = f"-> {record.identity}"
        if doc.get("digest") == record.header("WARC-Payload-Digest") and "digest" in doc:
            doc["digest"] = "= WARC-Payload-Digest of that record"
        if record.date and re.sub(r"\D", "", record.date)[:14] == stamp:
            stamp = "= WARC-Date"
    stamp = shape(stamp, CDX_TIME, "<timestamp>")
    if isinstance(doc.get("filename"), str):
        doc["filename"] = norm_key(doc["filename"])
    data = {"urlkey": urlkey, "timestamp": stamp, "fields": doc}
    return store.with_alias(Canon(f"{where}: {urlkey}", data, {}), doc.get("url"))


def compare_cdxj_lines(report: Report, category: str, a: list[Canon], b: list[Canon]) -> None:
    match_multiset(report, category, a, b, lambda c: (c.alias or c.data)["urlkey"])


def cdxj_lines(store: Store, text: str, where: str) -> list[Canon]:
    return [cdx_canon(store, line, where) for line in text.splitlines() if line.strip()]


def compare_cdxj(report: Report, a: Store, b: Store) -> None:
    for nkey in common(a, b, lambda k: k.startswith("index/") and k.endswith(".cdxj")):
        la = cdxj_lines(a, (a.root / a.keys[nkey]).read_text(encoding="utf-8"), nkey)
        lb = cdxj_lines(b, (b.root / b.keys[nkey]).read_text(encoding="utf-8"), nkey)
        compare_cdxj_lines(report, "cdxj lines", la, lb)


# -- Parquet footer (Thrift compact protocol), enough for num_rows and the schema's names


class _Thrift:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def byte(self) -> int:
        self.pos += 1
        return self.data[self.pos - 1]

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, ctype: int) -> Any:
        if ctype in (1, 2):
            return ctype == 1
        if ctype == 3:
            return self.byte()
        if ctype in (4, 5, 6):
            return self.zigzag()
        if ctype == 7:
            self.pos += 8
            return None
        if ctype == 8:
            n = self.varint()
            self.pos += n
            return self.data[self.pos - n : self.pos]
        if ctype in (9, 10):
            head = self.byte()
            size, etype = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            return [self.byte() == 1 if etype in (1, 2) else self.value(etype) for _ in range(size)]
        if ctype == 11:
            size = self.varint()
            if size:
                kinds = self.byte()
                return [(self.value(kinds >> 4), self.value(kinds & 0x0F)) for _ in range(size)]
            return []
        if ctype == 12:
            return self.struct()
        raise ValueError(f"unknown thrift compact type {ctype}")

    def struct(self) -> dict[int, Any]:
        out: dict[int, Any] = {}
        last = 0
        while True:
            head = self.byte()
            if head == 0:
                return out
            delta, ctype = head >> 4, head & 0x0F
            last = last + delta if delta else self.zigzag()
            out[last] = self.value(ctype)


def parquet_summary(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    if len(data) < 12 or data[:4] != b"PAR1" or data[-4:] != b"PAR1":
        raise ValueError("not a Parquet file")
    size = int.from_bytes(data[-8:-4], "little")
    meta = _Thrift(data[-8 - size : -8]).struct()
    names = [el.get(4, b"").decode() for el in meta.get(2, [])[1:]]
    return {"rows": meta.get(3), "columns": names}


def compare_parquet(report: Report, a: Store, b: Store) -> None:
    for nkey in common(a, b, lambda k: k.endswith(".parquet")):
        report.count("parquet files (rows, columns)")
        try:
            sa = parquet_summary(a.root / a.keys[nkey])
            sb = parquet_summary(b.root / b.keys[nkey])
        except (ValueError, IndexError) as exc:
            report.differ("parquet", nkey, f"unreadable footer: {exc}")
            continue
        if sa != sb:
            report.differ("parquet", nkey, "\n".join(json_diff(sa, sb)))


WACZ_DROPPED = ("resources", "created")  # resources are compared by name and path only


def wacz_parts(store: Store, nkey: str) -> tuple[dict[str, Any], list[Canon], list[Canon]]:
    with zipfile.ZipFile(store.root / store.keys[nkey]) as z:
        names = z.namelist()
        summary: dict[str, Any] = {"members": sorted(norm_key(n) for n in names)}
        pages: list[Canon] = []
        if "pages/pages.jsonl" in names:
            for line in z.read("pages/pages.jsonl").decode("utf-8").splitlines():
                doc = _json_or_none(line)
                if isinstance(doc, dict) and "ts" in doc:
                    record = store.by_page_hash.get(doc.get("id"))
                    doc = dict(doc, id=f"-> {record.identity}" if record else doc.get("id"))
                    if record is not None and doc["ts"] == record.date:
                        doc["ts"] = "= WARC-Date of the page's record"
                pages.append(store.with_alias(Canon(f"{nkey} pages", {"page": doc}, {})))
        if "datapackage.json" in names:
            pack = json.loads(z.read("datapackage.json"))
            summary["datapackage"] = {
                "resources": sorted(
                    [norm_key(r.get("name", "")), norm_key(r.get("path", ""))]
                    for r in pack.get("resources", [])
                ),
                **{k: norm_key(str(v)) for k, v in pack.items() if k not in WACZ_DROPPED},
            }
        cdx = []
        if "indexes/index.cdx" in names:
            cdx = cdxj_lines(store, z.read("indexes/index.cdx").decode("utf-8"), f"{nkey} index")
    return summary, pages, cdx


def compare_wacz(report: Report, a: Store, b: Store) -> None:
    for nkey in common(a, b, lambda k: k.endswith(".wacz")):
        report.count("wacz files")
        sa, pa, ca = wacz_parts(a, nkey)
        sb, pb, cb = wacz_parts(b, nkey)
        if sa != sb:
            report.differ("wacz", nkey, "\n".join(json_diff(sa, sb)))
        match_multiset(report, "wacz pages", pa, pb, lambda c: c.where)
        compare_cdxj_lines(report, "wacz index lines", ca, cb)


REPORT_TIMES = ("started", "finished")
REPORT_SECONDS = ("duration_s", "cpu_s")


def report_canon(store: Store, doc: Any) -> tuple[Any, dict[str, Any]]:
    loose: dict[str, Any] = {}
    if not isinstance(doc, dict):
        return doc, loose
    doc = dict(doc)
    if "crawl_id" in doc:
        doc["crawl_id"] = shape(doc["crawl_id"], CRAWL_ID, "<crawl-id>")
    for name in REPORT_TIMES:
        if name in doc:
            doc[name] = shape(doc[name], ISO_TIME, "<time>")
    for name in REPORT_SECONDS:
        if isinstance(doc.get(name), (int, float)):
            doc[name] = "<seconds>"
    if "store" in doc:  # where the crawl wrote: BEFORE and AFTER are two places by design
        doc["store"] = shape(doc["store"], STORE_URI, "<store URI>")
    if isinstance(doc.get("warc"), dict):
        warc = dict(doc["warc"])
        if isinstance(warc.get("files"), list):
            warc["files"] = [norm_key(f) if isinstance(f, str) else f for f in warc["files"]]
        if isinstance(warc.get("bytes"), int):
            loose["warc.bytes"], warc["bytes"] = warc["bytes"], RACE
        doc["warc"] = warc
    return doc, loose


def compare_reports(report: Report, a: Store, b: Store) -> None:
    for nkey in common(a, b, lambda k: k.startswith("reports/") and k.endswith(".json")):
        report.count("reports")
        ra, la = report_canon(a, a.load_json(a.keys[nkey]))
        rb, lb = report_canon(b, b.load_json(b.keys[nkey]))
        if ra != rb:
            report.differ("reports", nkey, "\n".join(json_diff(ra, rb)))
        compare_loose(report, "reports", nkey, la, lb)


def manifest_canon(store: Store, nkey: str) -> tuple[Any, dict[str, Any]]:
    doc = store.load_json(store.keys[nkey])
    if not isinstance(doc, dict):
        return doc, {}
    doc = dict(doc)
    if "crawl_id" in doc:
        doc["crawl_id"] = shape(doc["crawl_id"], CRAWL_ID, "<crawl-id>")
    if "created" in doc:
        doc["created"] = shape(doc["created"], ISO_TIME, "<time>")
    if "store" in doc:  # where the crawl wrote: BEFORE and AFTER are two places by design
        doc["store"] = shape(doc["store"], STORE_URI, "<store URI>")
    loose: dict[str, Any] = {}
    if "report" in doc:
        doc["report"], loose = report_canon(store, doc["report"])
    objects = []
    for obj in doc.get("objects") or []:
        key = obj.get("key", "")
        path = store.root / key
        if not path.is_file():
            store.error(nkey, f"manifest object missing from the store: {key}")
        else:
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if len(data) != obj.get("size") or digest != obj.get("sha256"):
                store.error(nkey, f"manifest size/sha256 do not match the object: {key}")
        entry = {"key": norm_key(key)}
        if key.startswith("text/") and key.endswith(".txt"):
            entry.update(size=obj.get("size"), sha256=obj.get("sha256"))
        objects.append(entry)
    doc["objects"] = sorted(objects, key=lambda o: o["key"])
    return doc, loose


def compare_manifests(report: Report, a: Store, b: Store) -> None:
    for nkey in common(a, b, lambda k: k.startswith("manifests/") and k.endswith(".json")):
        report.count("manifests")
        ma, la = manifest_canon(a, nkey)
        mb, lb = manifest_canon(b, nkey)
        if ma != mb:
            report.differ("manifests", nkey, "\n".join(json_diff(ma, mb)))
        compare_loose(report, "manifests", nkey, la, lb)


def catalog_counts(root: Path) -> dict[str, int] | None:
    path = root / ".catalog.sqlite"
    if not path.is_file():
        return None
    # immutable: read without locking and without creating -wal/-shm files in the store
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in sorted(tables)}
    finally:
        con.close()


def compare_catalog(report: Report, a: Store, b: Store) -> None:
    ca, cb = catalog_counts(a.root), catalog_counts(b.root)
    if ca is None and cb is None:
        return
    report.count("catalog tables (row counts)", len((ca or {}).keys() | (cb or {}).keys()))
    if ca != cb:
        report.differ("catalog", ".catalog.sqlite", "\n".join(json_diff(ca, cb)))


def compare_other(report: Report, a: Store, b: Store) -> None:
    """Objects of no known kind: byte for byte."""
    known = (".warc.gz", ".warc", ".txt", ".json", ".cdxj", ".parquet", ".wacz")
    for nkey in common(a, b, lambda k: not k.endswith(known)):
        report.count("other objects (byte for byte)")
        if (a.root / a.keys[nkey]).read_bytes() != (b.root / b.keys[nkey]).read_bytes():
            report.differ("other objects", nkey, "content differs")


def compare(before: Path, after: Path, limit: int = 20) -> Report:
    report = Report(limit=limit)
    a, b = Store(before, SIDES[0], report), Store(after, SIDES[1], report)
    a.share_aliases(b)
    for step in (
        compare_keys,
        compare_warc,
        compare_texts,
        compare_sidecars,
        compare_cdxj,
        compare_parquet,
        compare_wacz,
        compare_reports,
        compare_manifests,
        compare_catalog,
        compare_other,
    ):
        step(report, a, b)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="compare_archives.py",
        description=(
            "Compare two newsarchive stores (as written by `newsarchive demo --store DIR`)\n"
            "record for record, ignoring only what differs between two runs of the same code\n"
            "(times, record ids, the crawl id, the mirror's challenge tokens, scheduling races).\n"
            "Exit 0 when identical, 1 when not, 2 on a usage error."
        ),
        epilog=(
            "example:\n"
            "  newsarchive demo --store /tmp/archive-before    # old code\n"
            "  newsarchive demo --store /tmp/archive-after     # new code\n"
            "  python scripts/compare_archives.py /tmp/archive-before /tmp/archive-after\n"
            "\nThe module docstring lists every normalization and why."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("before", type=Path, metavar="BEFORE_STORE")
    parser.add_argument("after", type=Path, metavar="AFTER_STORE")
    parser.add_argument("--limit", type=int, default=20, help="differences shown (default 20)")
    parser.add_argument(
        "--show-tolerated", action="store_true", help="list each tolerated run-to-run variation"
    )
    ns = parser.parse_args(argv)
    for path in (ns.before, ns.after):
        if not path.is_dir() or not any((path / kind).is_dir() for kind in KINDS):
            parser.print_usage(sys.stderr)
            print(f"compare_archives.py: error: not a store directory: {path}", file=sys.stderr)
            return 2
    if ns.limit < 0:
        parser.error("--limit must be >= 0")
    report = compare(ns.before, ns.after, limit=ns.limit)
    print(report.render(ns.before, ns.after, ns.show_tolerated))
    return 1 if report.diffs else 0


if __name__ == "__main__":
    sys.exit(main())
