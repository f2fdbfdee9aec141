"""Object store interface and its local-directory back end (knows nothing of Scrapy)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import unquote, urlsplit

_CHUNK = 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # NUL ends a C path; the rest breaks logs and lists


class StoreError(OSError):
    """The store cannot be used (bad URI, unwritable directory, key outside the store)."""


class StoreConflictError(StoreError):
    """The key already holds different bytes: the store never replaces an object."""


class StoreUnavailableError(StoreError):
    """The store could not be reached or refused the request (after retries)."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    sha256: str


class Store(Protocol):
    """What the archive needs from object storage: put, verify, read, list."""

    uri: str

    def put_file(
        self, key: str, path: Path, *, move: bool = False, sha256: str | None = None
    ) -> StoredObject: ...

    def put_bytes(self, key: str, data: bytes) -> StoredObject: ...

    def get_bytes(self, key: str) -> bytes: ...

    def get_range(self, key: str, offset: int, length: int) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def head(self, key: str) -> StoredObject | None: ...

    def list(self, prefix: str = "") -> Iterator[str]: ...

    def local_path(self, key: str) -> Path | None: ...

    def check_writable(self) -> None: ...


def safe_key_part(value: str, *, max_length: int = 120) -> str:
    """One path segment from untrusted input (a slug, an id): no separators, never dots only."""
    cleaned = _UNSAFE.sub("-", unquote(value)).strip("-.")
    return cleaned[:max_length] or "_"


def check_key(key: str) -> str:
    """Reject keys that could escape the store's root or prefix."""
    path = PurePosixPath(key)
    if (
        not key
        or key.startswith("/")
        or "\\" in key
        or _CONTROL.search(key)
        or any(p in ("", ".", "..") for p in path.parts)
    ):
        raise StoreError(f"invalid object key {key!r}")
    if path.parts != tuple(key.split("/")):
        raise StoreError(f"invalid object key {key!r}")
    return key


def sha256_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def file_digest(path: Path, sha256: str | None = None) -> tuple[int, str]:
    """Size and SHA-256 of a file: the digest its writer computed, or read and hashed now."""
    return (path.stat().st_size, sha256) if sha256 else sha256_file(path)


class LocalStore:
    """A directory as an object store: keys are relative paths, writes are atomic renames."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.uri = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-"):
                pass
        except OSError as exc:
            raise StoreError(f"store {self.uri} is not writable: {exc.strerror or exc}") from exc

    def put_file(
        self, key: str, path: Path, *, move: bool = False, sha256: str | None = None
    ) -> StoredObject:
        """Store a file; the stored copy is hashed and must match ``sha256`` (from its writer)."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        size, digest = file_digest(path, sha256)
        if move:
            try:
                os.replace(path, target)
            except OSError:
                # Another file system: copy through a temporary name, then drop the source.
                self._copy_atomic(path, target)
                path.unlink()
        else:
            self._copy_atomic(path, target)
        stored_size, stored_digest = sha256_file(target)
        if (stored_size, stored_digest) != (size, digest):
            raise StoreError(f"verification failed for {key}: {stored_digest} != {digest}")
        return StoredObject(key, size, digest)

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return StoredObject(key, len(data), hashlib.sha256(data).hexdigest())

    def _copy_atomic(self, source: Path, target: Path) -> None:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out, _CHUNK)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        with self._path(key).open("rb") as fh:
            fh.seek(offset)
            return fh.read(length)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def head(self, key: str) -> StoredObject | None:
        """Size and SHA-256 of a stored object (hashed: a directory keeps no metadata)."""
        path = self._path(key)
        if not path.is_file():
            return None
        size, digest = sha256_file(path)
        return StoredObject(key, size, digest)

    def list(self, prefix: str = "") -> Iterator[str]:
        if not self.root.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(self.root):
            # Hidden entries (the spool, temporary files) are not objects.
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key

    def local_path(self, key: str) -> Path | None:
        return self._path(key)


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
        from crawler.store.s3 import S3Config, S3Store

        return S3Store(S3Config.from_uri(uri, options))
    raise StoreError(
        f"unsupported store URI scheme {parts.scheme!r} in {uri!r} "
        "(use a path, file:// or s3://bucket/prefix)"
    )
