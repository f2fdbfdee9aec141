"""The S3 back end of the store: verified, idempotent, conditional uploads (no Scrapy here).

Every upload carries the SHA-256 of its bytes: a single PUT sends ``x-amz-checksum-sha256``
of the whole object, a multipart upload one on every part, and the server rejects bytes that
do not match. The local SHA-256 is also stored as ``x-amz-meta-sha256``; after the upload a
HEAD compares size, metadata and the server's checksum. Writes are conditional
(``If-None-Match: *``): an object is never replaced. A key that already holds the same bytes
(same size and ``sha256`` metadata) is skipped, so re-uploading after a crash is a no-op.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import secrets
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from crawler.store.base import (
    StoreConflictError,
    StoredObject,
    StoreError,
    StoreUnavailableError,
    check_key,
    file_digest,
)

__all__ = ["S3Config", "S3Store", "StoreConflictError", "StoreUnavailableError"]

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
DEFAULT_MULTIPART_THRESHOLD = 64 * MiB
DEFAULT_PART_SIZE = 8 * MiB
MIN_PART_SIZE = 5 * MiB
DEFAULT_CONCURRENCY = 10  # as boto3's upload_file
DEFAULT_MAX_ATTEMPTS = 5
MAX_PARTS = 10_000
_ADDRESSING = ("auto", "path", "virtual")
_META_SHA256 = "sha256"


def _option(options: Mapping[str, object], name: str) -> str | None:
    value = options.get(name)
    if value is None or value == "":
        return None
    return str(value)


def _int_option(options: Mapping[str, object], name: str, default: int) -> int:
    raw = options.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(str(raw))
    except ValueError as exc:
        raise StoreError(f"{name} must be a whole number, got {raw!r}") from exc


@dataclass(frozen=True, slots=True)
class S3Config:
    """Where and how to reach the bucket; credentials left out are found by boto3's chain."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: str = "auto"
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD
    part_size: int = DEFAULT_PART_SIZE
    concurrency: int = DEFAULT_CONCURRENCY
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    connect_timeout: float = 10.0
    read_timeout: float = 60.0

    @classmethod
    def from_uri(cls, uri: str, options: Mapping[str, object] | None = None) -> S3Config:
        """``s3://bucket/prefix`` plus Scrapy's ``AWS_*`` and our ``ARCHIVE_STORE_*`` options."""
        opts = options or {}
        parts = urlsplit(uri)
        if parts.scheme != "s3" or not parts.netloc:
            raise StoreError(f"not an S3 store URI (want s3://bucket/prefix): {uri!r}")
        if parts.query or parts.fragment or "@" in parts.netloc:
            raise StoreError(f"an S3 store URI has no query, fragment or user: {uri!r}")
        prefix = parts.path.strip("/")
        if prefix:
            check_key(prefix)
            prefix += "/"
        style = (_option(opts, "ARCHIVE_STORE_S3_ADDRESSING_STYLE") or "auto").lower()
        if style not in _ADDRESSING:
            raise StoreError(
                f"ARCHIVE_STORE_S3_ADDRESSING_STYLE must be one of {', '.join(_ADDRESSING)}, "
                f"got {style!r}"
            )
        threshold = _int_option(
            opts, "ARCHIVE_STORE_MULTIPART_THRESHOLD", DEFAULT_MULTIPART_THRESHOLD
        )
        part_size = _int_option(opts, "ARCHIVE_STORE_MULTIPART_PART_SIZE", DEFAULT_PART_SIZE)
        attempts = _int_option(opts, "ARCHIVE_STORE_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS)
        concurrency = _int_option(opts, "ARCHIVE_STORE_CONCURRENCY", DEFAULT_CONCURRENCY)
        if part_size < MIN_PART_SIZE:
            raise StoreError(f"ARCHIVE_STORE_MULTIPART_PART_SIZE must be >= {MIN_PART_SIZE}")
        if threshold < 1 or attempts < 1 or concurrency < 1:
            raise StoreError(
                "ARCHIVE_STORE_MULTIPART_THRESHOLD, ARCHIVE_STORE_MAX_ATTEMPTS and "
                "ARCHIVE_STORE_CONCURRENCY must be at least 1"
            )
        return cls(
            bucket=parts.netloc,
            prefix=prefix,
            endpoint_url=_option(opts, "AWS_ENDPOINT_URL"),
            region=_option(opts, "AWS_REGION_NAME"),
            addressing_style=style,
            profile=_option(opts, "AWS_PROFILE"),
            access_key_id=_option(opts, "AWS_ACCESS_KEY_ID"),
            secret_access_key=_option(opts, "AWS_SECRET_ACCESS_KEY"),
            session_token=_option(opts, "AWS_SESSION_TOKEN"),
            multipart_threshold=threshold,
            part_size=part_size,
            concurrency=concurrency,
            max_attempts=attempts,
        )

    def make_client(self) -> Any:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError

        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise StoreError(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are settings to give together "
                "(or leave both to the environment / profile)"
            )
        try:
            session = boto3.session.Session(profile_name=self.profile)
        except BotoCoreError as exc:
            raise StoreError(f"S3 profile {self.profile!r}: {exc}") from exc
        config = Config(
            retries={"mode": "standard", "max_attempts": self.max_attempts},
            s3={"addressing_style": self.addressing_style},
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_pool_connections=max(10, self.concurrency * 2),
        )
        try:
            return session.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                aws_access_key_id=self.access_key_id,
                aws_secret_access_key=self.secret_access_key,
                aws_session_token=self.session_token,
                config=config,
            )
        except (BotoCoreError, ValueError) as exc:
            # PartialCredentialsError, ProfileNotFound, a malformed endpoint URL: no secrets.
            raise StoreError(f"S3 client for bucket {self.bucket!r}: {exc}") from exc


def b64_sha256(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def composite_sha256(part_digests: list[bytes]) -> str:
    """S3's COMPOSITE checksum of a multipart object: SHA-256 of the parts' digests, "-N"."""
    return f"{b64_sha256(hashlib.sha256(b''.join(part_digests)).digest())}-{len(part_digests)}"


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status:
            return str(status)
    return type(exc).__name__


class S3Store:
    """An S3 bucket (any S3-compatible server) under a key prefix, same layout as LocalStore."""

    def __init__(self, config: S3Config, client: Any | None = None) -> None:
        self.config = config
        self.bucket = config.bucket
        self.prefix = config.prefix
        self.uri = f"s3://{config.bucket}/{config.prefix}"
        self.client: Any = client if client is not None else config.make_client()

    @property
    def endpoint(self) -> str:
        return str(getattr(self.client.meta, "endpoint_url", None) or "the default AWS endpoint")

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _describe(self, exc: Exception) -> str:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import NoCredentialsError

        code = _error_code(exc)
        where = f"bucket {self.bucket!r} at {self.endpoint}"
        if isinstance(exc, NoCredentialsError):
            return f"{where}: no credentials found (set AWS_ACCESS_KEY_ID/AWS_PROFILE)"
        if isinstance(exc, BotoConnectionError):
            return f"{where} cannot be reached ({type(exc).__name__})"
        if code in ("404", "NoSuchBucket"):
            return f"{where} does not exist"
        if code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "403"):
            return f"{where}: credentials rejected ({code}): check the access key and secret"
        if code == "AccessDenied":
            return f"{where}: access denied (the key may be read-only)"
        return f"{where}: {code}"

    def _fail(self, what: str, key: str, exc: Exception) -> StoreUnavailableError:
        return StoreUnavailableError(f"{what} {self.uri}{key} failed: {self._describe(exc)}")

    # -- preflight -----------------------------------------------------------------------------
    def check_writable(self) -> None:
        """Bucket exists, credentials work, the key may write: fail now, not after a crawl."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"store {self.uri}: {self._describe(exc)}") from exc
        probe = f"{self.prefix}.newsarchive-probe/{secrets.token_hex(8)}"
        try:
            self.client.put_object(Bucket=self.bucket, Key=probe, Body=b"", IfNoneMatch="*")
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"store {self.uri} is not writable: {self._describe(exc)}") from exc
        try:
            self.client.delete_object(Bucket=self.bucket, Key=probe)
        except (BotoCoreError, ClientError) as exc:
            # A key that may write but not delete is enough for an archive (never deletes).
            logger.debug("could not remove probe %s: %s", probe, _error_code(exc))

    # -- writing -------------------------------------------------------------------------------
    def put_file(
        self, key: str, path: Path, *, move: bool = False, sha256: str | None = None
    ) -> StoredObject:
        """Upload a file; ``sha256`` (from its writer) spares a reading pass and is checked.

        With a known digest the bytes are hashed as they are sent and the upload is refused
        (multipart aborted, or the single PUT rejected by the server's checksum) if the file
        no longer matches what its writer wrote.
        """
        size, digest = file_digest(path, sha256)
        with path.open("rb") as fh:
            obj = self._put(key, fh, size, digest)
        if move:
            path.unlink()
        return obj

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        digest = hashlib.sha256(data).hexdigest()
        return self._put(key, io.BytesIO(data), len(data), digest)

    def _head(self, full_key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            head: dict[str, Any] = self.client.head_object(
                Bucket=self.bucket, Key=full_key, ChecksumMode="ENABLED"
            )
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return head

    def _same(self, head: dict[str, Any], size: int, digest: str) -> bool:
        meta = head.get("Metadata") or {}
        return int(head.get("ContentLength", -1)) == size and meta.get(_META_SHA256) == digest

    def _put(self, key: str, body: IO[bytes], size: int, digest: str) -> StoredObject:
        from botocore.exceptions import BotoCoreError, ClientError

        full = self._key(key)
        try:
            if size >= self.config.multipart_threshold:
                # A HEAD first: re-sending a gigabyte only to learn it is there costs more.
                head = self._head(full)
                if head is not None:
                    if self._same(head, size, digest):
                        logger.debug("%s already stored with the same bytes: skipped", full)
                        return StoredObject(key, size, digest)
                    raise self._conflict(key, head, size, digest)
                expected = self._put_multipart(full, body, size, digest)
                head = self._head(full)
            else:
                # One round trip: the conditional PUT finds an existing object (412), and a
                # server that reports the SHA-256 it computed has verified the bytes.
                expected, reported = self._put_single(full, body, digest)
                if reported == expected:
                    return StoredObject(key, size, digest)
                head = self._head(full)
        except ClientError as exc:
            if _error_code(exc) in ("PreconditionFailed", "412"):
                # Written by someone else since our HEAD (or by our own retried request).
                head = self._head(full)
                if head is not None and self._same(head, size, digest):
                    return StoredObject(key, size, digest)
                raise self._conflict(key, head, size, digest) from exc
            raise self._fail("upload of", key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("upload of", key, exc) from exc
        self._verify(key, head, size, digest, expected)
        return StoredObject(key, size, digest)

    def _conflict(
        self, key: str, head: dict[str, Any] | None, size: int, digest: str
    ) -> StoreConflictError:
        found = "unknown content"
        if head is not None:
            meta = head.get("Metadata") or {}
            found = f"{head.get('ContentLength')} bytes, sha256 {meta.get(_META_SHA256, '?')}"
        return StoreConflictError(
            f"{self.uri}{key} already exists with different content ({found}; ours: "
            f"{size} bytes, sha256 {digest}): not replaced"
        )

    def _verify(
        self, key: str, head: dict[str, Any] | None, size: int, digest: str, expected: str
    ) -> None:
        if head is None:
            raise StoreUnavailableError(f"{self.uri}{key} is missing right after its upload")
        problems = []
        if int(head.get("ContentLength", -1)) != size:
            problems.append(f"size {head.get('ContentLength')} != {size}")
        if (head.get("Metadata") or {}).get(_META_SHA256) != digest:
            problems.append("sha256 metadata differs")
        reported = head.get("ChecksumSHA256")
        # Servers that keep no checksum report none; what they report must match.
        if reported and reported != expected:
            problems.append(f"server checksum {reported} != {expected}")
        if problems:
            raise StoreError(f"verification of {self.uri}{key} failed: {'; '.join(problems)}")

    def _put_single(self, full: str, body: IO[bytes], digest: str) -> tuple[str, str | None]:
        """PUT with our SHA-256: (checksum sent, checksum the server reports, if any)."""
        checksum = b64_sha256(bytes.fromhex(digest))
        response = self.client.put_object(
            Bucket=self.bucket,
            Key=full,
            Body=body,
            ChecksumSHA256=checksum,
            IfNoneMatch="*",
            Metadata={_META_SHA256: digest},
        )
        reported = response.get("ChecksumSHA256")
        if reported and reported != checksum:
            raise StoreError(f"server stored {full} with checksum {reported}, sent {checksum}")
        return checksum, reported

    def _part_size(self, size: int) -> int:
        part = self.config.part_size
        while part * MAX_PARTS < size:
            part *= 2
        return part

    def _put_multipart(self, full: str, body: IO[bytes], size: int, digest: str) -> str:
        part_size = self._part_size(size)
        count = max(1, -(-size // part_size))
        upload = self.client.create_multipart_upload(
            Bucket=self.bucket,
            Key=full,
            ChecksumAlgorithm="SHA256",
            Metadata={_META_SHA256: digest},
        )
        upload_id = upload["UploadId"]
        digests: list[bytes] = [b""] * count
        etags: list[str] = [""] * count

        def send(index: int, data: bytes) -> None:
            # botocore computes the part's SHA-256 as it streams it and sends it as a trailer
            # (no second hashing pass for a signed payload); the server checks it.
            response = self.client.upload_part(
                Bucket=self.bucket,
                Key=full,
                UploadId=upload_id,
                PartNumber=index + 1,
                Body=data,
                ChecksumAlgorithm="SHA256",
            )
            reported = response.get("ChecksumSHA256")
            if not reported:
                raise StoreError(f"the server kept no SHA-256 for part {index + 1} of {full}")
            digests[index] = base64.b64decode(reported)
            etags[index] = response["ETag"]

        # The bytes sent must be the bytes whose digest goes into the metadata.
        whole = hashlib.sha256()
        try:
            # At most `concurrency` parts in memory: read one, submit, wait when the window is full.
            with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
                pending = []
                for index in range(count):
                    data = body.read(part_size)
                    whole.update(data)
                    pending.append(pool.submit(send, index, data))
                    if len(pending) >= self.config.concurrency:
                        pending.pop(0).result()
                for future in pending:
                    future.result()
            if whole.hexdigest() != digest:
                raise StoreError(
                    f"{full}: the file changed since it was written (sha256 "
                    f"{whole.hexdigest()}, expected {digest}): upload aborted"
                )
            parts = [
                {"PartNumber": i + 1, "ETag": etags[i], "ChecksumSHA256": b64_sha256(digests[i])}
                for i in range(count)
            ]
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=full,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except BaseException:
            self._abort(full, upload_id)
            raise
        return composite_sha256(digests)

    def _abort(self, full: str, upload_id: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
        except (BotoCoreError, ClientError) as exc:
            # Parts left behind are not an object; a lifecycle rule removes them.
            logger.warning("could not abort the upload of %s: %s", full, _error_code(exc))

    # -- reading -------------------------------------------------------------------------------
    def _get(self, key: str, **extra: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key), **extra)
            data: bytes = response["Body"].read()
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey"):
                raise FileNotFoundError(f"{self.uri}{key}") from exc
            raise self._fail("read of", key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("read of", key, exc) from exc
        return data

    def get_bytes(self, key: str) -> bytes:
        return self._get(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes from ``offset`` (one ranged GET); a negative offset or
        length, or a range not within the object, is a StoreError, as in the local store."""
        if offset < 0 or length < 0:
            raise StoreError(f"{key}: no range at offset {offset} of length {length}")
        if length == 0:
            return b""
        data = self._get(key, Range=f"bytes={offset}-{offset + length - 1}")
        if len(data) != length:
            raise StoreError(
                f"{key}: the range {offset}+{length} lies beyond the object ({len(data)} bytes "
                "of it answered)"
            )
        return data

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._head(self._key(key)) is not None
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("HEAD of", key, exc) from exc

    def head(self, key: str) -> StoredObject | None:
        """Size and recorded SHA-256 of a stored object (sha256 "" when it has none)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self._head(self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("HEAD of", key, exc) from exc
        if head is None:
            return None
        meta = head.get("Metadata") or {}
        return StoredObject(key, int(head["ContentLength"]), str(meta.get(_META_SHA256, "")))

    def list(self, prefix: str = "") -> Iterator[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    key = str(item["Key"])[len(self.prefix) :]
                    # Hidden entries (the write probe) are not objects, as in LocalStore.
                    if key and not any(p.startswith(".") for p in key.split("/")):
                        yield key
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("listing of", prefix, exc) from exc

    def local_path(self, key: str) -> Path | None:
        return None
