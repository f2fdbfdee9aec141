"""Every store key and local file name the archive uses, built in one place.

The store layout is the same under a local directory and an S3 prefix::

    warc/<site>/<YYYY>/<MM>/<DD>/<prefix>-<YYYYmmddHHMMSS>-<serial>-<host>.warc.gz
    text/<site>/<YYYY>/<MM>/<DD>/<article-id>[.v<N>].txt   (+ .json, the sidecar)
    flagged/<site>/<YYYY>/<MM>/<DD>/<article-id>.<HHMMSS>-<token>.txt   (+ .json): degenerate
    index/<site>/<YYYY>/<MM>/<DD>/<warc name>.cdxj           index/<site>/<crawl-id>.parquet
    wacz/<site>/<crawl-id>.wacz
    reports/<site>/<crawl-id>.json                          manifests/<site>/<crawl-id>.json
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

WARC_PREFIX = "warc/"
TEXT_PREFIX = "text/"
FLAGGED_PREFIX = "flagged/"  # degenerate texts: kept, never an article's version
INDEX_PREFIX = "index/"
WACZ_PREFIX = "wacz/"
REPORT_PREFIX = "reports/"
MANIFEST_PREFIX = "manifests/"
WARC_GZ_SUFFIX = ".warc.gz"
OPEN_SUFFIX = ".open"  # a WARC file still being written

_FILE_TS = re.compile(r"-(\d{4})(\d{2})(\d{2})\d{6}-\d{5}-")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # NUL ends a C path; the rest breaks logs and lists


def safe_key_part(value: str, *, max_length: int = 120) -> str:
    """One path segment from untrusted input (a slug, an id): no separators, never dots only."""
    cleaned = _UNSAFE.sub("-", unquote(value)).strip("-.")
    return cleaned[:max_length] or "_"


def key_is_safe(key: str) -> bool:
    """Whether a key stays inside the store's root or prefix (no ``..``, no absolute path)."""
    path = PurePosixPath(key)
    return not (
        not key
        or key.startswith("/")
        or "\\" in key
        or _CONTROL.search(key)
        or any(p in ("", ".", "..") for p in path.parts)
        or path.parts != tuple(key.split("/"))
    )


def crawl_token(crawl_id: str) -> str:
    """Six hex digits unique to a crawl: its id's random tail, else a digest of the id.

    In every WARC file name (``<prefix>-<time>-<serial>-<token>-<host>``), so two crawls of a
    site on one host in the same second never choose the same name.
    """
    tail = crawl_id.rsplit("-", 1)[-1]
    if len(tail) == 6 and all(c in "0123456789abcdef" for c in tail):
        return tail
    return hashlib.sha256(crawl_id.encode("utf-8")).hexdigest()[:6]


def warc_file_name(prefix: str, when: datetime, serial: int, hostname: str) -> str:
    stamp = when.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    return f"{prefix}-{stamp}-{serial:05d}-{hostname}{WARC_GZ_SUFFIX}"


def warc_key(site: str, filename: str) -> str:
    """``warc/<site>/Y/M/D/<filename>``, dated by the time in the file's name."""
    match = _FILE_TS.search(filename)
    if match:
        yyyy, mm, dd = match.groups()
    else:
        now = datetime.now(UTC)
        yyyy, mm, dd = f"{now:%Y}", f"{now:%m}", f"{now:%d}"
    return f"{WARC_PREFIX}{site}/{yyyy}/{mm}/{dd}/{filename}"


def text_key(site: str, article_id: str, capture_date: str, version: int = 1) -> str:
    """Version 1 is ``<id>.txt``, later versions ``<id>.v<N>.txt``, under the capture's date."""
    yyyy, mm, dd = capture_date[:4], capture_date[5:7], capture_date[8:10]
    suffix = "" if version == 1 else f".v{version}"
    return f"{TEXT_PREFIX}{site}/{yyyy}/{mm}/{dd}/{safe_key_part(article_id)}{suffix}.txt"


def flagged_text_key(site: str, article_id: str, capture_date: str, crawl_id: str) -> str:
    """A degenerate text (crawler/text/quality.py), kept beside the article's versions and
    never one of them: outside ``text/``, which reindex and a killed crawl's adoption read as
    versions. The capture's time and the crawl's token keep two crawls' names apart."""
    yyyy, mm, dd = capture_date[:4], capture_date[5:7], capture_date[8:10]
    stamp = "".join(c for c in capture_date[11:19] if c.isdigit())
    name = f"{safe_key_part(article_id)}.{stamp}-{crawl_token(crawl_id)}"
    return f"{FLAGGED_PREFIX}{site}/{yyyy}/{mm}/{dd}/{name}.txt"


def sidecar_key(text: str) -> str:
    """The JSON sidecar beside a text: ``….txt`` -> ``….json``."""
    return text.removesuffix(".txt") + ".json"


def cdxj_key(warc: str) -> str:
    """``warc/<site>/Y/M/D/<name>.warc.gz`` -> ``index/<site>/Y/M/D/<name>.cdxj``."""
    rest = warc.removeprefix(WARC_PREFIX)
    return INDEX_PREFIX + rest.removesuffix(".gz").removesuffix(".warc") + ".cdxj"


def parquet_key(site: str, crawl_id: str) -> str:
    return f"{INDEX_PREFIX}{site}/{crawl_id}.parquet"


def wacz_key(site: str, crawl_id: str) -> str:
    return f"{WACZ_PREFIX}{site}/{crawl_id}.wacz"


def report_key(site: str, crawl_id: str) -> str:
    return f"{REPORT_PREFIX}{site}/{crawl_id}.json"


def manifest_key(site: str, crawl_id: str) -> str:
    return f"{MANIFEST_PREFIX}{site}/{crawl_id}.json"


def is_warc(key: str) -> bool:
    return key.startswith(WARC_PREFIX) and key.endswith((WARC_GZ_SUFFIX, ".warc"))


def is_text(key: str) -> bool:
    return key.startswith(TEXT_PREFIX) and key.endswith(".txt")


def is_sidecar(key: str) -> bool:
    return key.startswith(TEXT_PREFIX) and key.endswith(".json")


# -- local files -------------------------------------------------------------------------------
def default_spool_dir() -> Path:
    """Where a remote store's files wait: ``$XDG_CACHE_HOME/newsarchive/spool``."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "newsarchive" / "spool"


def spool_dir_for(local_root: Path | None, configured: Path | None) -> Path:
    """The spool: as configured, else ``<root>/.spool`` of a local store, else the cache's."""
    if configured is not None:
        return configured
    return local_root / ".spool" if local_root is not None else default_spool_dir()


def log_dir_for(local_root: Path | None, spool: Path, configured: Path | None = None) -> Path:
    """Crawl logs: as configured, else ``<root>/.logs`` of a local store, else beside the spool."""
    if configured is not None:
        return configured
    return local_root / ".logs" if local_root is not None else spool.parent / "logs"


def crawl_log_file(log_dir: Path, site: str, crawl_id: str) -> Path:
    """One crawl's whole log (Scrapy's lines included)."""
    return log_dir / site / f"{crawl_id}.log"


def replay_log_dir(log_dir: Path, site: str) -> Path:
    """A site's replays of the archive: their logs and reports, apart from its crawls' logs
    (pruned apart too, so replays never push a crawl's log out)."""
    return log_dir / "replay" / site


def warc_spool_dir(spool: Path, site: str, crawl_id: str) -> Path:
    """A crawl's open and closed WARC files before they are stored."""
    return spool / "warc" / site / crawl_id


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def default_catalog_url(local_root: Path | None, spool: Path, store_uri: str = "") -> str:
    """SQLite under a local store (hidden, so it is no object), else one per remote store
    beside the spool: ``catalog-<bucket>-<digest of the store URI>.sqlite``, never one file
    for every bucket (a catalog that says "archived" of articles another store holds)."""
    if local_root is not None:
        return sqlite_url(local_root / ".catalog.sqlite")
    if not store_uri:
        return sqlite_url(spool / "catalog.sqlite")
    bucket = re.sub(r"[^A-Za-z0-9._-]+", "_", store_uri.split("://", 1)[-1].split("/", 1)[0])
    digest = hashlib.sha256(store_uri.rstrip("/").encode("utf-8")).hexdigest()[:12]
    return sqlite_url(spool / f"catalog-{bucket[:40]}-{digest}.sqlite")
