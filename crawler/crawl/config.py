"""Every ARCHIVE_* setting of a crawl, parsed and checked once, when the crawl starts.

``ArchiveConfig.from_settings`` reads each component's settings into its frozen config and
collects every mistake, each one line that names the setting, the value given and what is
allowed; the composition root (``crawler/crawl/archive.py``) hands each component its config.
A component switched off (``*_ENABLED``) is not configured and its other settings are not
read; a value that cannot be read never switches anything off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from crawler.capture.session import WarcConfig
from crawler.catalog.db import DEFAULT_REVISION_AGES
from crawler.fetch.challenge import ChallengeConfig
from crawler.fetch.middlewares import ProxyConfig, RetryConfig
from crawler.fetch.netguard import NetGuardConfig
from crawler.fetch.render import RenderConfig
from crawler.logs import CRAWL_LOG_MODES, log_format
from crawler.options import (
    archive_defaults,
    setting_bool,
    setting_choice,
    setting_float,
    setting_int,
)
from crawler.store.base import LocalStore, Store, StoreError, store_options
from crawler.store.s3 import S3Config
from crawler.store.uri import open_store
from crawler.text.extract import TEXT_MODES
from crawler.text.generic import block_scorer
from crawler.text.quality import TextLimits
from crawler.util import parse_duration, without_password

_T = TypeVar("_T")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Settings that change what lands in the archive; their digest goes into warcinfo.
DIGESTED_SETTINGS = (
    "USER_AGENT",
    "ROBOTSTXT_OBEY",
    "DOWNLOAD_MAXSIZE",
    "DOWNLOAD_TIMEOUT",
    "DOWNLOAD_FAIL_ON_DATALOSS",
    "REDIRECT_MAX_TIMES",
    "RETRY_TIMES",
    "ARCHIVE_WARC_MAX_SIZE",
    "ARCHIVE_WARC_MAX_AGE",
    "ARCHIVE_WARC_COMPRESS_LEVEL",
    "ARCHIVE_TEXT_MODE",
    "ARCHIVE_PROXY",
)


class ConfigError(ValueError):
    """The crawl cannot start: ``errors`` lists every bad setting, one sentence each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("newsarchive cannot start: " + "; ".join(errors))
        self.errors = errors


def _name(settings: Any, name: str, *, empty_ok: bool = True) -> str:
    value = str(settings.get(name) or "")
    if value and not _SAFE_NAME.match(value):
        raise ValueError(
            f"{name} must be letters, digits, '.', '_' or '-' (it names files), got {value!r}"
        )
    if not value and not empty_ok:
        raise ValueError(f"{name} must not be empty")
    return value


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    store_uri: str
    spool_dir: Path | None
    crawl_id: str
    report: bool
    store_options: Mapping[str, object] = field(default_factory=dict)
    keep_local: bool = False
    retry_after: float = 60.0

    @classmethod
    def from_settings(cls, settings: Any) -> LedgerConfig:
        store_uri = checked_store_uri(settings)
        spool = _spool_dir(settings)
        # The store's numbers, for a local store too (an S3 URI given later must not fail).
        setting_int(settings, "ARCHIVE_STORE_CONCURRENCY", minimum=1)
        setting_int(settings, "ARCHIVE_STORE_MAX_ATTEMPTS", minimum=1)
        setting_int(settings, "ARCHIVE_STORE_MULTIPART_THRESHOLD", minimum=1)
        setting_int(settings, "ARCHIVE_STORE_MULTIPART_PART_SIZE", minimum=5 * 1024 * 1024)
        setting_choice(settings, "ARCHIVE_STORE_S3_ADDRESSING_STYLE", ("auto", "path", "virtual"))
        setting_bool(settings, "ARCHIVE_STORE_CHECK")
        return cls(
            store_uri=store_uri,
            spool_dir=spool,
            crawl_id=_name(settings, "ARCHIVE_CRAWL_ID"),
            report=setting_bool(settings, "ARCHIVE_REPORT_ENABLED"),
            store_options=store_options(settings),
            keep_local=setting_bool(settings, "ARCHIVE_STORE_KEEP_LOCAL"),
            retry_after=setting_float(settings, "ARCHIVE_STORE_RETRY_AFTER", minimum=0),
        )


_STORE_WANTED = "a directory path, a file:// URI or s3://bucket/prefix"


def checked_store_uri(settings: Any) -> str:
    """``ARCHIVE_STORE_URI`` if it names a store (read only: the store itself is not opened)."""
    raw = settings.get("ARCHIVE_STORE_URI")
    uri = raw if isinstance(raw, str) else ""
    if not uri:
        raise ValueError(
            f"ARCHIVE_STORE_URI must be {_STORE_WANTED} (or NEWSARCHIVE_STORE, --store), "
            f"got {raw!r}"
        )
    try:
        parts = urlsplit(uri)
    except ValueError:  # a malformed [IPv6] host
        raise ValueError(f"ARCHIVE_STORE_URI must be {_STORE_WANTED}, got {uri!r}") from None
    scheme = parts.scheme
    if scheme == "" or (len(scheme) == 1 and os.name == "nt"):
        return uri
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(
                f"ARCHIVE_STORE_URI must be {_STORE_WANTED} (a file:// URI without a host), "
                f"got {uri!r}"
            )
        return uri
    if scheme == "s3":
        try:
            S3Config.from_uri(uri)  # the bucket and prefix; the options are checked apart
        except StoreError as exc:
            raise ValueError(
                f"ARCHIVE_STORE_URI must be {_STORE_WANTED}, got {uri!r} ({exc})"
            ) from None
        return uri
    raise ValueError(f"ARCHIVE_STORE_URI must be {_STORE_WANTED}, got {uri!r}")


def _spool_dir(settings: Any) -> Path | None:
    """``ARCHIVE_SPOOL_DIR``: "" for the default place, else a directory or where one can go."""
    raw = settings.get("ARCHIVE_SPOOL_DIR") or ""
    wanted = "a directory, or a path where one can be made ('' = the default place)"
    if not isinstance(raw, (str, os.PathLike)) or _CONTROL.search(str(raw)):
        raise ValueError(f"ARCHIVE_SPOOL_DIR must be {wanted}, got {raw!r}")
    if not raw:
        return None
    path = Path(raw).expanduser()
    for place in (path, *path.parents):
        if place.is_dir():
            break
        if place.exists() or place.is_symlink():  # a file, a socket, a dangling link ...
            what = "a file" if place.is_file() else "not a directory"
            at = "" if place == path else f" at {place}"
            raise ValueError(f"ARCHIVE_SPOOL_DIR must be {wanted}, got {str(raw)!r} ({what}{at})")
    return path


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """When a crawl of a site counts as broken (an ERROR and a non-zero exit)."""

    max_failed_ratio: float = 0.5
    min_failed: int = 3

    @classmethod
    def from_settings(cls, settings: Any) -> HealthConfig:
        return cls(
            setting_float(settings, "ARCHIVE_HEALTH_MAX_FAILED_RATIO", minimum=0, maximum=1),
            setting_int(settings, "ARCHIVE_HEALTH_MIN_FAILED", minimum=0),
        )


def warc_config(settings: Any) -> WarcConfig:
    max_size = setting_int(settings, "ARCHIVE_WARC_MAX_SIZE", minimum=1)
    max_age = setting_float(settings, "ARCHIVE_WARC_MAX_AGE", minimum=0)
    level = setting_int(settings, "ARCHIVE_WARC_COMPRESS_LEVEL", minimum=0, maximum=9)
    operator = str(settings.get("ARCHIVE_WARC_OPERATOR") or "")
    if _CONTROL.search(operator):
        raise ValueError(f"ARCHIVE_WARC_OPERATOR must be one line of text, got {operator!r}")
    digest_src = json.dumps(
        {k: settings.get(k) for k in DIGESTED_SETTINGS}, sort_keys=True, default=str
    )
    return WarcConfig(
        prefix=_name(settings, "ARCHIVE_WARC_PREFIX"),
        max_size=max_size,
        max_age=max_age or None,
        compress_level=level,
        operator=operator,
        robots_obey=setting_bool(settings, "ROBOTSTXT_OBEY"),
        settings_digest="sha256:" + hashlib.sha256(digest_src.encode()).hexdigest(),
        # How the conversion records' text was made: a researcher reading the WARC alone can
        # tell an article-mode text from a page-mode one.
        info=(("text-mode", setting_choice(settings, "ARCHIVE_TEXT_MODE", TEXT_MODES)),),
    )


@dataclass(frozen=True, slots=True)
class TextConfig:
    mode: str
    workers: int
    # The degenerate-text guard (crawler/text/quality.py): every value checked, none turns it off.
    limits: TextLimits = field(default_factory=TextLimits)

    @classmethod
    def from_settings(cls, settings: Any) -> TextConfig:
        block_scorer()  # the generic extractor's learned part: a broken install stops here
        return cls(
            mode=setting_choice(settings, "ARCHIVE_TEXT_MODE", TEXT_MODES),
            workers=setting_int(settings, "ARCHIVE_TEXT_WORKERS", minimum=1),
            limits=TextLimits(
                ratio=setting_float(
                    settings, "ARCHIVE_TEXT_DEGENERATE_RATIO", above=0.0, maximum=1.0
                ),
                min_chars=setting_int(settings, "ARCHIVE_TEXT_DEGENERATE_MIN_CHARS", minimum=0),
                min_texts=setting_int(settings, "ARCHIVE_TEXT_DEGENERATE_MIN_TEXTS", minimum=1),
            ),
        )


def parse_ages(value: Any) -> tuple[timedelta, ...]:
    """ "1h,1d,7d" (or a list) as ascending timedeltas; "" or "0" switches revisions off."""
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    elif value in (None, 0) and not isinstance(value, bool):
        items = []
    else:
        raise ValueError(
            f'ARCHIVE_REVISION_AGES must be durations like 1h,1d,7d ("" or 0 = none), got {value!r}'
        )
    if items in ([], ["0"]):
        return ()
    return tuple(
        sorted(parse_duration(i, "ARCHIVE_REVISION_AGES", unit_required=True) for i in items)
    )


@dataclass(frozen=True, slots=True)
class CatalogConfig:
    url: str
    revision_ages: tuple[timedelta, ...]
    refresh: bool
    lease_ttl: timedelta = timedelta(minutes=2)
    scheduled_start: str | None = None
    # An article whose last answer was 404 or 410 is not asked again for this long (0: every
    # crawl asks it again); asked again and still gone, it does not count against the site.
    gone_recheck: timedelta = timedelta(days=7)

    @classmethod
    def from_settings(cls, settings: Any) -> CatalogConfig:
        raw_ages = settings.get("ARCHIVE_REVISION_AGES")
        url = str(settings.get("ARCHIVE_CATALOG_URL") or "")
        if url:
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError, NoSuchModuleError

            try:
                make_url(url).get_dialect()
            except (ArgumentError, NoSuchModuleError):
                raise ValueError(
                    "ARCHIVE_CATALOG_URL must be an SQLAlchemy URL like "
                    "postgresql+psycopg://user@host/db or sqlite:///path, got "
                    f"{without_password(url)!r}"
                ) from None
        raw_ttl = settings.get("ARCHIVE_LEASE_TTL")
        ttl = parse_duration(str(raw_ttl or ""), "ARCHIVE_LEASE_TTL")
        if ttl < timedelta(seconds=3):
            raise ValueError(f"ARCHIVE_LEASE_TTL must be at least 3s, got {raw_ttl!r}")
        start = str(settings.get("ARCHIVE_SCHEDULED_START") or "").strip()
        if start and not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", start):
            raise ValueError(
                "ARCHIVE_SCHEDULED_START must be a UTC time like 2026-12-07T12:00:00Z, "
                f"got {start!r}"
            )
        return cls(
            url=url,
            revision_ages=DEFAULT_REVISION_AGES if raw_ages is None else parse_ages(raw_ages),
            refresh=setting_bool(settings, "ARCHIVE_REFRESH"),
            lease_ttl=ttl,
            scheduled_start=start or None,
            gone_recheck=timedelta(
                days=setting_int(settings, "ARCHIVE_GONE_RECHECK_DAYS", minimum=0, maximum=3650)
            ),
        )


@dataclass(frozen=True, slots=True)
class IndexConfig:
    wacz: bool
    catalog_url: str | None  # None: the catalog is off; "": its default place
    batch: int = 500  # captures per step of the crawl-end indexes (a Parquet row group)

    @classmethod
    def from_settings(cls, settings: Any) -> IndexConfig:
        catalog_url = None
        if setting_bool(settings, "ARCHIVE_CATALOG_ENABLED"):
            catalog_url = str(settings.get("ARCHIVE_CATALOG_URL") or "")
        return cls(
            setting_bool(settings, "ARCHIVE_WACZ_ENABLED"),
            catalog_url,
            setting_int(settings, "ARCHIVE_INDEX_BATCH", minimum=1),
        )


@dataclass(frozen=True, slots=True)
class CrawlLogConfig:
    """Where a crawl's log goes (ARCHIVE_CRAWL_LOG, ARCHIVE_LOG_DIR, ARCHIVE_LOG_KEEP)."""

    mode: str  # file | stderr
    directory: Path | None  # None: beside the spool (``crawler.layout.log_dir_for``)
    keep: int

    @classmethod
    def from_settings(cls, settings: Any) -> CrawlLogConfig:
        mode = setting_choice(settings, "ARCHIVE_CRAWL_LOG", CRAWL_LOG_MODES)
        keep = setting_int(settings, "ARCHIVE_LOG_KEEP", minimum=1)
        configured = str(settings.get("ARCHIVE_LOG_DIR") or "").strip()
        directory = Path(configured).expanduser() if configured else None
        if directory is not None and directory.exists() and not directory.is_dir():
            raise ValueError(
                f"ARCHIVE_LOG_DIR must be a directory, or a path where one can be made, "
                f"got {configured!r} (a file)"
            )
        return cls(mode, directory, keep)


@dataclass(frozen=True, slots=True)
class ReplayConfig:
    """A crawl answered from the archive (``--from-archive``): which captures, which catalog."""

    crawl_id: str | None  # None: each URL's latest capture
    catalog_url: str  # "": the store's own catalog (as a crawl finds it)

    @classmethod
    def from_settings(cls, settings: Any) -> ReplayConfig:
        if not setting_bool(settings, "ARCHIVE_CATALOG_ENABLED"):
            raise ValueError(
                "ARCHIVE_REPLAY_ENABLED needs the catalog (it says where each capture lies), "
                "but ARCHIVE_CATALOG_ENABLED is off"
            )
        crawl_id = _name(settings, "ARCHIVE_REPLAY_CRAWL_ID")
        return cls(crawl_id or None, str(settings.get("ARCHIVE_CATALOG_URL") or ""))


def replay_requested(settings: Any) -> bool:
    """Whether these settings replay the archive (a value that cannot be read: no; the
    configuration check names it)."""
    try:
        return setting_bool(settings, "ARCHIVE_REPLAY_ENABLED")
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class ArchiveConfig:
    """The whole crawl's configuration; None for a component switched off."""

    ledger: LedgerConfig
    health: HealthConfig
    warc: WarcConfig | None
    text: TextConfig | None
    catalog: CatalogConfig | None
    index: IndexConfig | None
    render: RenderConfig | None
    netguard: NetGuardConfig
    retry: RetryConfig
    challenge: ChallengeConfig
    proxy: ProxyConfig
    discovery_window_days: int
    log_format: str
    log: CrawlLogConfig
    # A replay of the archive: then nothing is written (no WARC, catalog, indexes, report in
    # the store) and nothing is rendered, the text is only compared.
    replay: ReplayConfig | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> ArchiveConfig:
        """Parse everything; ``ConfigError`` lists every bad setting at once."""
        errors: list[str] = []

        def read(parse: Callable[[Any], _T]) -> _T | None:
            try:
                return parse(settings)
            except ValueError as exc:
                errors.append(str(exc))
                return None

        def switched(name: str, parse: Callable[[Any], _T]) -> _T | None:
            try:
                enabled = setting_bool(settings, name)
            except ValueError as exc:
                errors.append(str(exc))
                return None
            return read(parse) if enabled else None

        unknown = unknown_settings(settings)
        errors.extend(unknown)
        ledger = read(LedgerConfig.from_settings)
        health = read(HealthConfig.from_settings)
        warc = switched("ARCHIVE_WARC_ENABLED", warc_config)
        text = switched("ARCHIVE_TEXT_ENABLED", TextConfig.from_settings)
        catalog = switched("ARCHIVE_CATALOG_ENABLED", CatalogConfig.from_settings)
        index = switched("ARCHIVE_INDEX_ENABLED", IndexConfig.from_settings)
        render = switched("ARCHIVE_RENDER_ENABLED", RenderConfig.from_settings)
        netguard = read(NetGuardConfig.from_settings)
        retry = read(RetryConfig.from_settings)
        challenge = read(ChallengeConfig.from_settings)
        proxy = read(ProxyConfig.from_settings)
        window = read(lambda s: setting_int(s, "ARCHIVE_DISCOVERY_WINDOW_DAYS", minimum=0))
        fmt = read(lambda s: log_format(s.get("ARCHIVE_LOG_FORMAT")))
        log = read(CrawlLogConfig.from_settings)
        replay = switched("ARCHIVE_REPLAY_ENABLED", ReplayConfig.from_settings)
        wanted = str(settings.get("ARCHIVE_REPLAY_CRAWL_ID") or "")
        # Else a crawl the operator meant as a replay would fetch and archive for real.
        if (
            not replay_requested(settings)
            and wanted
            and read(lambda s: _name(s, "ARCHIVE_REPLAY_CRAWL_ID")) is not None
        ):
            errors.append(
                f"ARCHIVE_REPLAY_CRAWL_ID is {wanted!r} but ARCHIVE_REPLAY_ENABLED is off "
                "(`newsarchive crawl SITE --from-archive --crawl-id ID` replays a crawl)"
            )
        if replay is not None:
            # Checked above all the same; a replay writes, renders and indexes nothing.
            warc = catalog = index = render = None
            text = read(TextConfig.from_settings)
            if ledger is not None:
                ledger = dataclasses.replace(ledger, report=False)
        if errors:  # one line each: a switch read by two components is named once
            raise ConfigError(list(dict.fromkeys(errors)))
        assert ledger and health and netguard and retry and challenge and proxy and fmt
        assert window is not None and log is not None
        return cls(
            ledger=ledger,
            health=health,
            warc=warc,
            text=text,
            catalog=catalog,
            index=index,
            render=render,
            netguard=netguard,
            retry=retry,
            challenge=challenge,
            proxy=proxy,
            discovery_window_days=window,
            log_format=fmt,
            log=log,
            replay=replay,
        )


def unknown_settings(settings: Any) -> list[str]:
    """``ARCHIVE_*`` names that no component reads (a typo would otherwise go unnoticed)."""
    known = archive_defaults()
    names = settings.keys() if hasattr(settings, "keys") else settings.attributes.keys()
    errors = []
    for name in sorted(n for n in names if str(n).startswith("ARCHIVE_") and n not in known):
        close = _closest(name, known)
        hint = f" (did you mean {close}?)" if close else ""
        errors.append(f"{name} is not a newsarchive setting{hint}")
    return errors


def _closest(name: str, known: Mapping[str, Any]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name, list(known), n=1, cutoff=0.8)
    return found[0] if found else None


def checked_config(settings: Any) -> tuple[ArchiveConfig, Store]:
    """Every setting parsed and the store opened and checked, once, before a crawl starts.

    The store is checked for real (bucket, credentials, write permission) unless
    ``ARCHIVE_STORE_CHECK`` is off for a remote store (crawl now, ``newsarchive upload`` later).
    ``ConfigError`` lists every problem, each a sentence.
    """
    errors: list[str] = []
    config: ArchiveConfig | None = None
    store: Store | None = None
    try:
        config = ArchiveConfig.from_settings(settings)
    except ConfigError as exc:
        errors.extend(exc.errors)
    try:
        uri = checked_store_uri(settings)
    except ValueError:  # reported above, by name
        raise ConfigError(errors) from None
    try:
        store = open_store(uri, store_options(settings))
        check = True
        with contextlib.suppress(ValueError):  # a bad value is reported above
            check = setting_bool(settings, "ARCHIVE_STORE_CHECK")
        if replay_requested(settings):
            # Read only: no probe written (a read-only copy of an archive replays too).
            if isinstance(store, LocalStore) and not store.root.is_dir():
                raise StoreError(f"no archive at {store.uri}: nothing to replay")
        elif isinstance(store, LocalStore) or check:
            store.check_writable()
    except StoreError as exc:
        errors.insert(0, str(exc))
    if errors:
        raise ConfigError(errors)
    assert config is not None and store is not None
    return config, store


def check_settings(settings: Any) -> list[str]:
    """Every configuration error of the archive, each a sentence; empty when fine."""
    try:
        checked_config(settings)
    except ConfigError as exc:
        return exc.errors
    return []
