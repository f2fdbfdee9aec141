"""The few helpers every layer shares: durations and their messages."""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object, what: str, *, unit_required: bool = False) -> timedelta:
    """``90m``, ``12h``, ``2d``, ``1w``, or seconds as a number (``unit_required``: not that).

    A ``ValueError`` that names ``what`` and says what is allowed.
    """
    match = _DURATION.match(str(value)) if not isinstance(value, bool) else None
    if match is None or (unit_required and not match[2]):
        examples = "90m, 1h, 1d or 7d" if unit_required else "3600, 90m, 12h, 2d or 1w"
        raise ValueError(f"{what}: {value!r} is not a duration like {examples}")
    return timedelta(seconds=float(match[1]) * _UNIT[match[2]])


def without_password(url: str) -> str:
    """A database URL fit for a log line or a message: the password, if any, masked."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def keep_tldextract_offline() -> None:
    """Never let tldextract download the public suffix list (unless the operator asks).

    Scrapy's cookie middleware asks tldextract for the public suffix list, which by default is
    downloaded from GitHub on first use: a request to a host the operator never named (and, in
    tests, a packet off loopback). The snapshot tldextract ships is enough to tell public
    suffixes; an operator who wants fresh lists sets the variable to URLs. tldextract reads
    it when the middleware's module is imported, so the settings module and the add-on call
    this before any middleware is loaded.
    """
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")


def json_bytes(data: Mapping[str, Any]) -> bytes:
    """A JSON object as the archive stores it (sidecars, backlogs, reports, manifests)."""
    return json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"


_TIME_OF_DAY = re.compile(r"\d{1,2}:\d{2}(:\d{2})?")


def date_precision(text: str | None) -> str | None:
    """How precise a date as a page wrote it is: "day" (no time of day), "minute" or
    "second"; None for no text."""
    if not text:
        return None
    match = _TIME_OF_DAY.search(text)
    if match is None:
        return "day"
    return "second" if match.group(1) else "minute"


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML file's table; a ``ValueError`` naming it (``what`` and path) when it cannot be
    read, is not UTF-8, or is no TOML (tomllib's message gives the line and column)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{what} {path}: cannot read it: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {path}: not UTF-8 text: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{what} {path}: {exc}") from exc
