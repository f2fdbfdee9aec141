"""A store from its URI: a local directory or an S3 bucket and prefix."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from crawler.store.base import LocalStore, Store, StoreError
from crawler.store.s3 import S3Config, S3Store


def open_store(uri: str, options: Mapping[str, object] | None = None) -> Store:
    """A store from a URI: a plain path, ``file://`` URI or ``s3://bucket/prefix``.

    ``options`` are settings by name (Scrapy's ``AWS_*``, ``ARCHIVE_STORE_*``); only the S3
    back end reads them, and what they leave out boto3 finds in its own chain.
    """
    if not uri:
        raise StoreError("no store given: set ARCHIVE_STORE_URI / NEWSARCHIVE_STORE or --store")
    parts = urlsplit(uri)
    if parts.scheme in ("", "file") or (len(parts.scheme) == 1 and os.name == "nt"):
        if parts.scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise StoreError(f"file URI with a host is not supported: {uri!r}")
            return LocalStore(Path(unquote(parts.path)))
        return LocalStore(Path(uri))
    if parts.scheme == "s3":
        return S3Store(S3Config.from_uri(uri, options))
    raise StoreError(
        f"unsupported store URI scheme {parts.scheme!r} in {uri!r} "
        "(use a path, file:// or s3://bucket/prefix)"
    )
