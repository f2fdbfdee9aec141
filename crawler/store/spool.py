"""The spool's backlog: what the store did not take yet, kept until it does (no Scrapy)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from crawler.layout import is_sidecar
from crawler.store.base import (
    Store,
    StoreConflictError,
    StoredObject,
    StoreError,
    StoreUnavailableError,
    check_key,
    sha256_file,
    write_all,
)
from crawler.store.scratch import clean_dead_scratch

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


class Backlog:
    """What the store did not take during one crawl, kept in the spool until it does.

    Files live under ``<spool>/pending/<crawl-id>/<key>``, listed in order (the manifest last)
    in ``<spool>/pending/<crawl-id>.json`` with their size and SHA-256. A lock file beside the
    list keeps two processes (a crawl and ``newsarchive upload``) off the same backlog.

    The same directory holds a live crawl's texts and sidecars on their way up ("in flight",
    not listed). Every file lands there whole (written aside, then renamed), so a file a
    killed crawl left unlisted is adopted by the next drain rather than forgotten, and the
    list may be saved lazily (at most once a second while a crawl adds to it).
    """

    def __init__(self, spool: Path, crawl_id: str, store_uri: str) -> None:
        self.spool = spool
        self.crawl_id = crawl_id
        self.store_uri = store_uri
        self.dir = spool / "pending"
        self.list_path = self.dir / f"{crawl_id}.json"
        self.files = self.dir / crawl_id
        # The listed objects by key, in the list's order: a crawl during a long outage lists
        # tens of thousands, each added, asked after and removed in constant time.
        self._entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._lock_fh: IO[bytes] | None = None
        self._saved_at = 0.0
        self._unsaved = False
        # What write_aside knows already, so as not to ask the file system for each file: the
        # list exists (written or seen since the lock was taken; forgotten when save removes
        # it) and directories it made (made again if removed meanwhile).
        self._listed = False
        self._dirs: set[Path] = set()

    @classmethod
    def load(cls, list_path: Path) -> Backlog:
        data = json.loads(list_path.read_text(encoding="utf-8"))
        backlog = cls(list_path.parent.parent, str(data["crawl_id"]), str(data["store"]))
        backlog._entries = {str(e["key"]): e for e in data["objects"]}
        return backlog

    @property
    def entries(self) -> list[dict[str, Any]]:
        """The listed objects (key, path under the spool, size, SHA-256), in order; a copy."""
        return list(self._entries.values())

    @property
    def count(self) -> int:
        return len(self._entries)

    def holds(self, key: str) -> bool:
        return key in self._entries

    def discard(self, key: str) -> None:
        """``key`` off the list (the store has it); saved lazily."""
        with self._lock:
            self._entries.pop(key, None)
            self.save(lazy=True)

    def lock(self) -> bool:
        """Take the backlog's lock without waiting; False when another process holds it."""
        if self._lock_fh is not None:
            return True
        self.dir.mkdir(parents=True, exist_ok=True)
        fh = (self.dir / f"{self.crawl_id}.lock").open("ab")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        self._lock_fh = fh
        return True

    def unlock(self) -> None:
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    def path_of(self, key: str) -> Path:
        return self.files.joinpath(*check_key(key).split("/"))

    def add_file(self, obj: StoredObject, path: Path, *, move: bool) -> None:
        target = self.path_of(obj.key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if move:
            os.replace(path, target)
        else:
            tmp = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        self._add(obj, target)

    def add_bytes(self, obj: StoredObject, data: bytes, *, lazy: bool = False) -> None:
        self._add(obj, self.write_aside(obj.key, data), lazy=lazy)

    def write_aside(self, key: str, data: bytes) -> Path:
        """Put bytes in the backlog's directory, whole or not at all, without listing them."""
        target = self.path_of(key)
        with self._lock:
            self.lock()
            if not self._listed:
                if not self.list_path.exists():
                    # The list names the store: a drain must know where unlisted files belong.
                    self._write_list()
                self._listed = True
        parent = target.parent
        if parent not in self._dirs:
            parent.mkdir(parents=True, exist_ok=True)
            if len(self._dirs) >= 4096:
                self._dirs.clear()
            self._dirs.add(parent)
        tmp = target.with_name(f".{target.name}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileNotFoundError:  # the directory went since: made again
            parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, flags, 0o666)
        write_all(fd, data)
        os.replace(tmp, target)
        return target

    def add_spooled(self, obj: StoredObject, target: Path, *, lazy: bool = False) -> None:
        """List a file already in the backlog's directory (written by ``write_aside``)."""
        self._add(obj, target, lazy=lazy)

    def _add(self, obj: StoredObject, target: Path, *, lazy: bool = False) -> None:
        with self._lock:
            self.lock()
            self._entries.pop(obj.key, None)  # listed again: last
            self._entries[obj.key] = {
                "key": obj.key,
                "path": target.relative_to(self.spool).as_posix(),
                "size": obj.size,
                "sha256": obj.sha256,
            }
            self.save(lazy=lazy)

    def unlisted(self) -> list[Path]:
        """Whole files in the directory that the list does not name (in flight, or orphaned)."""
        if not self.files.is_dir():
            return []
        listed = {str(e["path"]) for e in self._entries.values()}
        return [
            path
            for path in sorted(self.files.rglob("*"))
            if path.is_file()
            and not path.name.startswith(".")
            and path.relative_to(self.spool).as_posix() not in listed
        ]

    @property
    def waiting(self) -> int:
        """Objects waiting for the store: listed ones and whole unlisted files."""
        return len(self._entries) + len(self.unlisted())

    def adopt_unlisted(self) -> int:
        """List the files a killed crawl left in the directory unlisted; they go up first."""
        adopted = []
        for path in self.unlisted():
            rel = path.relative_to(self.spool).as_posix()
            size, digest = sha256_file(path)
            key = path.relative_to(self.files).as_posix()
            adopted.append({"key": key, "path": rel, "size": size, "sha256": digest})
        if adopted:
            logger.warning(
                "backlog %s: %d files a killed crawl left on their way up are listed now",
                self.crawl_id,
                len(adopted),
            )
            with self._lock:
                listed = {str(e["key"]): e for e in adopted}
                listed.update((k, e) for k, e in self._entries.items() if k not in listed)
                self._entries = listed
                self.save()
        return len(adopted)

    def save(self, *, lazy: bool = False) -> None:
        """Write the list (``lazy``: unless written less than a second ago; ``flush`` later)."""
        if lazy and time.monotonic() - self._saved_at < 1.0:
            self._unsaved = True
            return
        self._unsaved = False
        self._saved_at = time.monotonic()
        if not self._entries and not self._has_files():
            self.list_path.unlink(missing_ok=True)
            shutil.rmtree(self.files, ignore_errors=True)
            self._listed = False
            self._dirs.clear()
            (self.dir / f"{self.crawl_id}.lock").unlink(missing_ok=True)
            return
        self._write_list()

    def flush(self) -> None:
        """Save the list now (or remove the backlog if nothing is left in it)."""
        with self._lock:
            self.save()

    def _has_files(self) -> bool:
        return self.files.is_dir() and any(
            not p.name.startswith(".") for p in self.files.rglob("*") if p.is_file()
        )

    def _write_list(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        # One object a line, each by json's C encoder (an indented dump of a long list is
        # json's Python encoder: rewritten each second during an outage, it cost a third of a
        # core at 20,000 objects).
        head = json.dumps({"crawl_id": self.crawl_id, "store": self.store_uri})
        lines = ",\n".join(json.dumps(e, ensure_ascii=False) for e in self._entries.values())
        objects = f"[\n{lines}\n]" if lines else "[]"
        body = f'{head[:-1]}, "objects": {objects}}}\n'
        tmp = self.list_path.with_name(f".{self.list_path.name}.tmp")
        tmp.write_bytes(body.encode("utf-8"))
        os.replace(tmp, self.list_path)


def pending_backlogs(spool: Path) -> list[Path]:
    pending = spool / "pending"
    return sorted(pending.glob("*.json")) if pending.is_dir() else []


def spool_identity(spool: Path) -> str:
    """The spool's own id (``<spool>/.spool-id``, made once): one spool on a shared volume is
    the same spool for every machine that mounts it, two local ones at one path are not."""
    import uuid

    path = spool / ".spool-id"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        spool.mkdir(parents=True, exist_ok=True)
        made = spool / f".spool-id.{uuid.uuid4().hex}"
        made.write_text(uuid.uuid4().hex, encoding="utf-8")
        try:
            os.link(made, path)  # the first one made wins
        except FileExistsError:
            pass
        finally:
            made.unlink()
        return path.read_text(encoding="utf-8").strip()


def waiting_crawls(spool: Path) -> set[str]:
    """The crawl ids whose objects still wait in this spool: a backlog list left, or WARC
    files in their spool dir (``warc/<site>/<crawl id>/``: open, or closed and not stored;
    a killed crawl's are repaired and stored by the next crawl on this spool)."""
    waiting = {path.stem for path in pending_backlogs(spool)}
    warc = spool / "warc"
    if warc.is_dir():
        for crawl_dir in warc.glob("*/*"):
            if crawl_dir.is_dir() and any(p.name != ".lock" for p in crawl_dir.iterdir()):
                waiting.add(crawl_dir.name)
    return waiting


# The key under which an adopted sidecar carries its text (not a sidecar field: never stored).
SPOOLED_TEXT = "_spooled_text"


def adopt_leftovers(spool: Path, store_uri: str, skip: str) -> list[dict[str, Any]]:
    """List what killed crawls left unlisted in their backlogs; their sidecars, parsed, each
    with its text under ``SPOOLED_TEXT`` when the spool still holds it."""
    sidecars: list[dict[str, Any]] = []
    for list_path in pending_backlogs(spool):
        try:
            backlog = Backlog.load(list_path)
        except (OSError, ValueError, KeyError):
            continue  # reported by the drain
        if backlog.crawl_id == skip or backlog.store_uri != store_uri or not backlog.lock():
            continue
        try:
            backlog.adopt_unlisted()
            paths = {str(entry["key"]): spool / str(entry["path"]) for entry in backlog.entries}
            for key, path in paths.items():
                if not is_sidecar(key):
                    continue
                try:
                    data = json.loads(path.read_bytes())
                except (OSError, ValueError) as exc:
                    logger.warning("%s: unreadable sidecar in the spool: %s", key, exc)
                    continue
                if not isinstance(data, dict):
                    continue
                # The text itself, for the catalog's search index (read now: the drain
                # removes it once stored).
                text_path = paths.get(str(data.get("text_key")))
                if text_path is not None:
                    with contextlib.suppress(OSError):
                        data[SPOOLED_TEXT] = text_path.read_text("utf-8", "replace")
                sidecars.append(data)
        finally:
            backlog.unlock()
    return sidecars


def drain_backlog(
    store: Store,
    spool: Path,
    *,
    keep_local: bool = False,
    skip: str = "",
    progress: Progress | None = None,
) -> tuple[list[StoredObject], list[str]]:
    """Upload every backlog in the spool meant for this store: (uploaded, failure messages).

    Each object is uploaded, verified against the size and SHA-256 recorded when it was
    spooled, and only then removed locally (kept under ``<spool>/kept/`` with keep_local).
    The scratch folders of dead crawls (killed in their crawl-end step) are removed first.
    """
    uploaded: list[StoredObject] = []
    failed: list[str] = []
    clean_dead_scratch(spool)
    for list_path in pending_backlogs(spool):
        try:
            backlog = Backlog.load(list_path)
        except (OSError, ValueError, KeyError) as exc:
            failed.append(f"{list_path}: unreadable backlog list ({exc})")
            continue
        if backlog.crawl_id == skip or backlog.store_uri != store.uri:
            continue
        if not backlog.lock():
            logger.info("backlog %s is being uploaded by another process", backlog.crawl_id)
            continue
        try:
            backlog.adopt_unlisted()
            for entry in backlog.entries:  # a copy: entries go as they are stored
                key, path = str(entry["key"]), spool / str(entry["path"])
                try:
                    obj = _upload_spooled(store, spool, key, path, entry, keep_local)
                except StoreConflictError as exc:
                    # Never uploadable: kept aside, off the list, so the rest of the crawl's
                    # objects can settle (its rows stop saying they wait here).
                    failed.append(_set_aside_refused(store, spool, key, path, exc))
                    if progress is not None:
                        progress(f"refused  {key}: {exc}")
                    backlog.discard(key)
                    continue
                except (StoreError, OSError) as exc:
                    logger.warning("backlog %s: %s not uploaded: %s", backlog.crawl_id, key, exc)
                    failed.append(f"{key}: {exc}")
                    if progress is not None:
                        progress(f"failed   {key}: {exc}")
                    if isinstance(exc, StoreUnavailableError):
                        # The store is down: the rest waits too, no point retrying each one.
                        return uploaded, failed
                    continue
                uploaded.append(obj)
                backlog.discard(key)
                if progress is not None:
                    progress(f"uploaded {key} ({obj.size:,} bytes, sha256 {obj.sha256[:12]}…)")
        finally:
            backlog.flush()
            backlog.unlock()
    return uploaded, failed


def _upload_spooled(
    store: Store, spool: Path, key: str, path: Path, entry: Mapping[str, Any], keep_local: bool
) -> StoredObject:
    if not path.exists():
        # Uploaded and removed just before a kill, the list not yet saved: the store has it.
        stored = store.head(key)
        if stored is not None and (stored.size, stored.sha256) == (entry["size"], entry["sha256"]):
            return stored
    size, digest = sha256_file(path)
    if (size, digest) != (entry["size"], entry["sha256"]):
        raise StoreError(
            f"spooled file {path} changed since the crawl ({size} bytes, sha256 {digest}; "
            f"recorded {entry['size']} bytes, sha256 {entry['sha256']}): not uploaded"
        )
    # The digest just checked: the store need not read the file once more to get it.
    obj = store.put_file(key, path, move=not keep_local, sha256=digest)
    if keep_local:
        move_aside(spool, "kept", key, path)
    return obj


def _set_aside_refused(
    store: Store, spool: Path, key: str, path: Path, exc: StoreConflictError
) -> str:
    """The store holds other bytes under ``key``: the spooled file moves to
    ``<spool>/refused/<key>`` (kept, named in the log) and the failure message is returned.

    A crawl killed before its catalog knew of a new text, then taken over by another machine
    that archived the same text under the same key, leaves such a file: its sidecar differs
    from the stored one only in the capture it names, and that capture is in its WARC and
    the catalog. Said apart (as a warning) from a real conflict (an error)."""
    same = is_sidecar(key) and _same_text(store, key, path)
    kept = aside_path(spool, "refused", key)
    with contextlib.suppress(FileNotFoundError):
        move_aside(spool, "refused", key, path)
    if same:
        logger.warning(
            "%s: the store holds this text's sidecar from another crawl (%s); ours is kept in %s",
            key,
            same,
            kept,
        )
        return f"{key}: archived by crawl {same} already; this copy kept in {kept}"
    logger.error("%s: refused by the store, kept in %s: %s", key, kept, exc)
    return f"{key}: {exc}; kept in {kept}"


def _same_text(store: Store, key: str, path: Path) -> str:
    """The crawl id of the stored sidecar at ``key`` when it names the same text as the one
    at ``path`` (same text key and digest); "" otherwise."""
    try:
        ours = json.loads(path.read_bytes())
        theirs = json.loads(store.get_bytes(key))
    except (OSError, ValueError, StoreError):
        return ""
    if not isinstance(ours, dict) or not isinstance(theirs, dict):
        return ""
    fields = ("text_key", "text_digest")
    if any(not ours.get(f) or ours.get(f) != theirs.get(f) for f in fields):
        return ""
    return str(theirs.get("crawl_id") or "unknown")


def aside_path(spool: Path, folder: str, key: str) -> Path:
    """Where a spooled object set aside lies: ``<spool>/<folder>/<key>`` (folder ``kept``:
    stored and kept locally; ``refused``: the store holds other bytes under its key)."""
    return spool.joinpath(folder, *key.split("/"))


def move_aside(spool: Path, folder: str, key: str, path: Path) -> Path:
    """Move the spooled file ``path`` to :func:`aside_path`; where it lies now."""
    target = aside_path(spool, folder, key)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)
    return target
