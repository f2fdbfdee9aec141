"""`newsarchive verify`: every object the store's manifests list is there, of its size and
SHA-256, and every record of every WARC passes its block and payload digests.

Each object is read once, front to back: the SHA-256 is taken of the same bytes the WARC
records are checked in (a local file read as it is, an S3 object in ranged GETs).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from crawler.access.records import CHUNK, object_size, open_object, record_problems
from crawler.constants import EXIT_FAILED, EXIT_OK
from crawler.layout import MANIFEST_PREFIX, is_warc
from crawler.store.base import Store

MISSING = "missing"
SIZE = "size"
SHA256 = "sha256"
RECORD = "record"
MANIFEST = "manifest"


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # MISSING, SIZE, SHA256, RECORD or MANIFEST
    key: str
    detail: str

    def line(self) -> str:
        return f"{self.kind}: {self.key}: {self.detail}"


@dataclass
class VerifySummary:
    manifests: int = 0
    objects: int = 0
    bytes: int = 0
    records: int = 0
    problems: list[Problem] = field(default_factory=list)

    def count(self) -> None:
        self.records += 1

    def line(self) -> str:
        bad = len({p.key for p in self.problems})
        return (
            f"verified {self.objects} objects ({self.bytes / 1e6:.1f} MB) of {self.manifests} "
            f"manifests, {self.records} WARC records: "
            + (f"{bad} objects corrupt or missing" if bad else "all intact")
        )


class _Hashing(io.RawIOBase):
    """A stream that hashes what is read through it and counts it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        self.sha.update(data)
        self.size += len(data)
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.raw.read(CHUNK):
            pass  # readinto hashes; the loop only reaches the end

    def rest(self) -> None:
        while self.read(CHUNK):
            pass


def manifest_objects(
    store: Store, sites: list[str], crawl: str | None, summary: VerifySummary
) -> Iterator[dict[str, Any]]:
    """The objects the chosen manifests list (key, size, sha256), each once."""
    seen: set[str] = set()
    for key in sorted(k for k in store.list(MANIFEST_PREFIX) if k.endswith(".json")):
        try:
            manifest = json.loads(store.get_bytes(key))
            site, crawl_id = str(manifest["site"]), str(manifest["crawl_id"])
            objects = [dict(o) for o in manifest["objects"]]
        except (ValueError, KeyError, TypeError) as exc:
            summary.problems.append(Problem(MANIFEST, key, f"unreadable manifest: {exc}"))
            continue
        if (sites and site not in sites) or (crawl and crawl_id != crawl):
            continue
        summary.manifests += 1
        for obj in objects:
            if str(obj.get("key")) not in seen:
                seen.add(str(obj.get("key")))
                yield obj


def verify_object(store: Store, obj: dict[str, Any], summary: VerifySummary) -> list[Problem]:
    key = str(obj.get("key", ""))
    size = obj.get("size")
    sha = str(obj.get("sha256") or "")
    try:
        found = object_size(store, key)
    except FileNotFoundError:
        found = None
    if found is None:
        return [Problem(MISSING, key, "listed in its manifest, not in the store")]
    problems: list[Problem] = []
    if size is not None and int(size) != found:
        problems.append(Problem(SIZE, key, f"{found} bytes, its manifest says {size}"))
    with open_object(store, key, found) as raw:
        stream = _Hashing(raw)
        if is_warc(key):
            buffered = io.BufferedReader(stream, CHUNK)
            for offset, record_id, what in record_problems(buffered, on_record=summary.count):
                problems.append(Problem(RECORD, key, f"record {record_id} at {offset}: {what}"))
            stream.drain()  # an unreadable record ends the check, not the hash
        else:
            stream.rest()
    summary.bytes += stream.size
    if sha and stream.sha.hexdigest() != sha:
        problems.append(
            Problem(SHA256, key, f"sha256 {stream.sha.hexdigest()[:16]}…, not {sha[:16]}…")
        )
    return problems


def verify(
    store: Store,
    *,
    sites: list[str] | None = None,
    crawl: str | None = None,
    report: Callable[[Problem], None] | None = None,
) -> VerifySummary:
    summary = VerifySummary()
    for obj in manifest_objects(store, sites or [], crawl, summary):
        summary.objects += 1
        for problem in verify_object(store, obj, summary):
            summary.problems.append(problem)
            if report is not None:
                report(problem)
    return summary


def cmd_verify(ns: argparse.Namespace) -> int:
    # The command line's store opener and --site parser, given by add_command (no import loop).
    _site_names: Callable[[list[str] | None], list[str]] = ns.site_names
    _settings, store = ns.open_store(ns)

    def report(problem: Problem) -> None:
        print(problem.line(), flush=True)

    summary = verify(store, sites=_site_names(ns.site), crawl=ns.crawl, report=report)
    if summary.manifests == 0:
        which = " of that --site/--crawl" if ns.site or ns.crawl else ""
        print(f"error: no manifest{which} in {store.uri}: nothing to verify", file=sys.stderr)
        return EXIT_FAILED
    for problem in summary.problems:
        if problem.kind == MANIFEST:
            print(problem.line())
    print(summary.line())
    return EXIT_FAILED if summary.problems else EXIT_OK


def add_command(
    sub: Any,
    run: Callable[..., Any],
    common: Callable[..., None],
    open_store: Callable[[argparse.Namespace], tuple[Any, Store]],
    site_names: Callable[[list[str] | None], list[str]],
) -> None:
    ver = sub.add_parser(
        "verify",
        help="check every stored object against its manifest and every WARC record's digests",
        description="Read every object the store's manifests list, once each: present, of the "
        "size and SHA-256 the manifest gives, and for a WARC every record's block and payload "
        "digests. Every corrupt or missing object is named, one line each, then a summary; "
        "exit 1 if any.",
        epilog="examples:\n  newsarchive verify --store /var/lib/newsarchive\n"
        "  newsarchive verify --site irna --crawl irna-20250612T140000Z-3fa9c1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ver.add_argument(
        "--site", action="append", default=None, help="only this site (again, or a comma list)"
    )
    ver.add_argument("--crawl", default=None, help="only this crawl id")
    common(ver)
    ver.set_defaults(func=run(cmd_verify), open_store=open_store, site_names=site_names)
