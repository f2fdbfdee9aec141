"""Object store interface and its local-directory back end (knows nothing of Scrapy)."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from crawler.layout import key_is_safe

_CHUNK = 1024 * 1024
_DIRS_REMEMBERED = 4096  # directories a LocalStore remembers as checked (then forgets all)
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


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


def check_key(key: str) -> str:
    """Reject keys that could escape the store's root or prefix."""
    if not key_is_safe(key):
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


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, then close it (no buffer object: no fstat, lseek or
    isatty calls, as ``open`` makes for each file)."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def file_digest(path: Path, sha256: str | None = None) -> tuple[int, str]:
    """Size and SHA-256 of a file: the digest its writer computed, or read and hashed now."""
    return (path.stat().st_size, sha256) if sha256 else sha256_file(path)


class LocalStore:
    """A directory as an object store: keys are relative paths, writes are atomic renames."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.uri = self.root.as_uri()
        self._root = str(self.root)
        # Directories put_bytes checked to lie inside the root (and made): their (st_dev,
        # st_ino) then. The same inode at the same path (one lstat) needs no new check; a
        # directory replaced, removed or swapped for a link is checked (resolved) again.
        self._dirs: dict[str, tuple[int, int]] = {}
        self._names = itertools.count()

    def _path(self, key: str) -> Path:
        """The key's file, refused (StoreError) when it or a directory on the way is a link
        that leads out of the root: the store never reads or writes outside it."""
        path = self.root.joinpath(*check_key(key).split("/"))
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError) as exc:  # a link loop
            raise StoreError(f"{key} cannot be resolved in {self.uri}: {exc}") from None
        if not resolved.is_relative_to(self.root):
            raise StoreError(f"{key} leads out of the store {self.uri} (a link): refused")
        return path

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
        if self._same_or_conflict(key, target, size, digest):
            if move:
                path.unlink()
            return StoredObject(key, size, digest)
        if move:
            try:
                self._publish(path, target, key, size, digest)
            except StoreError:
                raise
            except OSError:
                # Another file system (or none with hard links): copy through a temporary
                # name, then drop the source.
                self._copy_atomic(path, target, key)
            path.unlink()
        else:
            self._copy_atomic(path, target, key)
        stored_size, stored_digest = sha256_file(target)
        if (stored_size, stored_digest) != (size, digest):
            raise StoreError(f"verification failed for {key}: {stored_digest} != {digest}")
        return StoredObject(key, size, digest)

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        """Write ``data`` under a temporary name in the key's directory, then link it to the
        key: a reader never sees a partial object, and the link fails (then the bytes held
        are compared) when the key exists, so an object is never replaced. No fsync (as
        ever: the crawl's durability points are the WARC and the catalog)."""
        directory, name = self._directory(check_key(key))
        digest = hashlib.sha256(data).hexdigest()
        try:
            tmp = self._write_aside(directory, name, data)
        except FileNotFoundError:  # the directory went after it was checked: once more
            self._dirs.pop(directory, None)
            directory, name = self._directory(key)
            tmp = self._write_aside(directory, name, data)
        try:
            self._publish(tmp, f"{directory}/{name}", key, len(data), digest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return StoredObject(key, len(data), digest)

    def _directory(self, key: str) -> tuple[str, str]:
        """The key's directory (made when missing, refused when a link leads out of the
        root) and the key's name in it."""
        parent, _, name = key.rpartition("/")
        directory = f"{self._root}/{parent}" if parent else self._root
        known = self._dirs.get(directory)
        if known is not None:
            try:
                st = os.lstat(directory)
            except FileNotFoundError:
                pass
            else:
                if stat.S_ISDIR(st.st_mode) and (st.st_dev, st.st_ino) == known:
                    return directory, name
            self._dirs.pop(directory, None)
        self._path(key)  # the whole key resolved inside the root, before anything is made
        Path(directory).mkdir(parents=True, exist_ok=True)
        self._path(key)  # and after: nothing swapped a link in meanwhile
        st = os.lstat(directory)
        if stat.S_ISDIR(st.st_mode):  # a link to a directory of the store is checked each time
            if len(self._dirs) >= _DIRS_REMEMBERED:
                self._dirs.clear()
            self._dirs[directory] = (st.st_dev, st.st_ino)
        return directory, name

    def _write_aside(self, directory: str, name: str, data: bytes) -> str:
        """``data`` in a new hidden file of ``directory`` (made with O_EXCL); its path."""
        while True:
            tmp = f"{directory}/.{name}.{os.getpid()}.{next(self._names)}"
            try:
                fd = os.open(tmp, _TMP_FLAGS, 0o600)
                break
            except FileExistsError:  # left by a killed process of the same id: another name
                continue
        try:
            write_all(fd, data)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return tmp

    def _same_or_conflict(self, key: str, target: Path, size: int, digest: str) -> bool:
        """True when ``key`` holds these bytes already; StoreConflictError when it holds others
        (as S3 with ``If-None-Match: *``: an object is never replaced)."""
        try:
            held = sha256_file(target)
        except FileNotFoundError:
            return False
        if held == (size, digest):
            return True
        raise StoreConflictError(
            f"{key} already holds other bytes in {self.uri} (sha256 {held[1][:16]}…, "
            f"not {digest[:16]}…): an object is never replaced"
        )

    def _publish(
        self, source: str | Path, target: str | Path, key: str, size: int, digest: str
    ) -> None:
        """``source`` linked as ``target``, never over an object another writer made: when
        ``target`` exists, it must hold these bytes (StoreConflictError when it holds others).
        An entry that exists yet cannot be read (a dangling link) is a StoreError, never a
        silent success; an entry gone between the link and the check is linked again."""
        for _ in range(2):
            try:
                os.link(source, target)
                return
            except FileExistsError:
                # Compared through _path: a link out of the store is refused, not read.
                if self._same_or_conflict(key, self._path(key), size, digest):
                    return
        raise StoreError(f"{key} cannot be published in {self.uri}: a dangling entry")

    def _copy_atomic(self, source: Path, target: Path, key: str) -> None:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out, _CHUNK)
            size, digest = sha256_file(Path(tmp))
            self._publish(Path(tmp), target, key, size, digest)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes from ``offset``; a negative offset or length, or a range
        that does not lie within the object, is a StoreError (never "the rest of the file")."""
        if offset < 0 or length < 0:
            raise StoreError(f"{key}: no range at offset {offset} of length {length}")
        with self._path(key).open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if offset + length > size:
                raise StoreError(f"{key}: the range {offset}+{length} lies beyond its {size} bytes")
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
                if not key.startswith(prefix):
                    continue
                if not Path(dirpath, name).resolve().is_relative_to(self.root):
                    continue  # a link out of the store is no object of it
                yield key

    def local_path(self, key: str) -> Path | None:
        return self._path(key)


# Settings the store reads (Scrapy's AWS_* and ours); boto3's own chain fills what is unset.
STORE_OPTIONS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_REGION_NAME",
    "AWS_PROFILE",
    "ARCHIVE_STORE_S3_ADDRESSING_STYLE",
    "ARCHIVE_STORE_MULTIPART_THRESHOLD",
    "ARCHIVE_STORE_MULTIPART_PART_SIZE",
    "ARCHIVE_STORE_MAX_ATTEMPTS",
    "ARCHIVE_STORE_CONCURRENCY",
)


def store_options(settings: Any) -> dict[str, object]:
    """The store's settings (Scrapy settings or any mapping with ``get``) that are set."""
    return {name: settings.get(name) for name in STORE_OPTIONS if settings.get(name) is not None}


def local_root(store: Store) -> Path | None:
    """The directory of a local store; None for a remote one."""
    return store.root if isinstance(store, LocalStore) else None


STORE_ID_KEY = "newsarchive-store.json"  # the store's identity, written by its first crawl


def store_identity(store: Store, *, create: bool) -> str | None:
    """The id this store holds from its first crawl (made now when ``create``); None when
    it has none. A catalog records the id of the store it describes and refuses another."""
    import json
    import uuid
    from datetime import UTC, datetime

    def read() -> str | None:
        if not store.exists(STORE_ID_KEY):
            return None
        try:
            value = json.loads(store.get_bytes(STORE_ID_KEY))["id"]
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"{STORE_ID_KEY} in {store.uri} is not a store identity: {exc}"
            ) from None
        return str(value)

    found = read()
    if found is not None or not create:
        return found
    body = {"id": uuid.uuid4().hex, "created": datetime.now(UTC).isoformat(), "uri": store.uri}
    with contextlib.suppress(StoreConflictError):  # another crawl made it first: its id it is
        store.put_bytes(STORE_ID_KEY, json.dumps(body).encode("utf-8"))
    return read()
