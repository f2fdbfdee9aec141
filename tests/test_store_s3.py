"""The S3 store: the exact calls (Stubber), then for real against SeaweedFS on loopback."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from crawler.store.base import STORE_ID_KEY, StoreError
from crawler.store.s3 import (
    MiB,
    S3Config,
    S3Store,
    StoreConflictError,
    b64_sha256,
    composite_sha256,
)
from crawler.store.uri import open_store
from tests.conftest import (
    ROOT,
    S3_ADMIN,
    S3_READER,
    SeaweedFS,
    s3_env,
    venv_program,
)
from tests.seaweed import free_ports

BUCKET = "bkt"


@pytest.fixture(autouse=True)
def _no_aws_surprises(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials, profile or endpoint from the developer's environment; no EC2 metadata."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    return b64_sha256(hashlib.sha256(data).digest())


# ------------------------------------------------------------------ configuration


def test_s3_uri_and_options_are_parsed_into_a_config() -> None:
    config = S3Config.from_uri(
        "s3://archive/news/v1/",
        {
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "AWS_REGION_NAME": "eu-central-1",
            "AWS_SECRET_ACCESS_KEY": "top-secret-value",
            "ARCHIVE_STORE_S3_ADDRESSING_STYLE": "PATH",
            "ARCHIVE_STORE_MULTIPART_THRESHOLD": "1000",
        },
    )
    assert (config.bucket, config.prefix) == ("archive", "news/v1/")
    assert (config.endpoint_url, config.region, config.addressing_style) == (
        "http://127.0.0.1:9",
        "eu-central-1",
        "path",
    )
    assert config.multipart_threshold == 1000
    assert "top-secret-value" not in repr(config)
    store = open_store("s3://archive", {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert isinstance(store, S3Store)
    assert store.uri == "s3://archive/"
    assert store.local_path("a/b") is None


@pytest.mark.parametrize(
    ("uri", "options", "message"),
    [
        ("s3://", {}, "not an S3 store URI"),
        ("s3://b/../x", {}, "invalid object key"),
        ("s3://bkt/p?x=1", {}, "no query"),
        ("s3://bkt/p", {"ARCHIVE_STORE_S3_ADDRESSING_STYLE": "dns"}, "ADDRESSING_STYLE"),
        ("s3://bkt/p", {"ARCHIVE_STORE_MULTIPART_PART_SIZE": "1024"}, "PART_SIZE"),
        ("s3://bkt/p", {"ARCHIVE_STORE_MAX_ATTEMPTS": "many"}, "whole number"),
    ],
)
def test_bad_s3_configuration_is_a_clear_error(
    uri: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(StoreError, match=message):
        S3Config.from_uri(uri, options)


# ------------------------------------------------------------------ unit: the exact calls


@pytest.fixture
def stubbed() -> Iterator[tuple[S3Store, Stubber]]:
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="not-a-real-secret",
    )
    # One part in flight at a time, so the calls reach the stub in order.
    config = S3Config(
        bucket=BUCKET, prefix="pre/", multipart_threshold=12 * MiB, part_size=5 * MiB, concurrency=1
    )
    store = S3Store(config, client=client)
    with Stubber(client) as stubber:
        yield store, stubber
        stubber.assert_no_pending_responses()


def _head(key: str) -> dict[str, Any]:
    return {"Bucket": BUCKET, "Key": key, "ChecksumMode": "ENABLED"}


def _not_found(stubber: Stubber, key: str) -> None:
    stubber.add_client_error(
        "head_object",
        service_error_code="404",
        http_status_code=404,
        expected_params=_head(key),
    )


def _found(stubber: Stubber, key: str, data: bytes, checksum: str | None = None) -> None:
    response: dict[str, Any] = {"ContentLength": len(data), "Metadata": {"sha256": sha(data)}}
    if checksum:
        response["ChecksumSHA256"] = checksum
    stubber.add_response("head_object", response, _head(key))


def test_small_put_is_one_conditional_request_verified_by_the_servers_checksum(
    stubbed: tuple[S3Store, Stubber],
) -> None:
    store, stubber = stubbed
    data = b"article text\n"
    # No HEAD before (the conditional PUT finds an existing object) and none after: the
    # server computed the same SHA-256 from the bytes it stored.
    stubber.add_response(
        "put_object",
        {"ETag": '"e"', "ChecksumSHA256": b64(data)},
        {
            "Bucket": BUCKET,
            "Key": "pre/text/a.txt",
            "Body": ANY,
            "ChecksumSHA256": b64(data),
            "IfNoneMatch": "*",
            "Metadata": {"sha256": sha(data)},
        },
    )
    obj = store.put_bytes("text/a.txt", data)
    assert (obj.key, obj.size, obj.sha256) == ("text/a.txt", len(data), sha(data))


def test_a_server_that_reports_no_checksum_is_checked_with_a_head(
    stubbed: tuple[S3Store, Stubber],
) -> None:
    store, stubber = stubbed
    stubber.add_response("put_object", {"ETag": '"e"'}, None)
    _found(stubber, "pre/k", b"ours")
    assert store.put_bytes("k", b"ours").sha256 == sha(b"ours")


def test_identical_large_object_already_stored_is_not_sent_again(
    stubbed: tuple[S3Store, Stubber], tmp_path: Path
) -> None:
    store, stubber = stubbed
    path = tmp_path / "big"
    path.write_bytes(b"s" * (12 * MiB))
    _found(stubber, "pre/big", path.read_bytes())
    # No create_multipart_upload queued: the Stubber fails on any call not expected.
    assert store.put_file("big", path).size == 12 * MiB


def test_different_large_object_under_the_key_is_never_replaced(
    stubbed: tuple[S3Store, Stubber], tmp_path: Path
) -> None:
    store, stubber = stubbed
    path = tmp_path / "big"
    path.write_bytes(b"n" * (12 * MiB))
    _found(stubber, "pre/big", b"old bytes")
    with pytest.raises(StoreConflictError, match=r"s3://bkt/pre/big already exists"):
        store.put_file("big", path, move=True)
    assert path.exists()


def test_412_from_the_conditional_put_names_the_key(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error(
        "put_object", service_error_code="PreconditionFailed", http_status_code=412
    )
    _found(stubber, "pre/warc/x.warc.gz", b"written by another crawl")
    with pytest.raises(StoreConflictError, match=r"pre/warc/x\.warc\.gz already exists"):
        store.put_bytes("warc/x.warc.gz", b"ours")


def test_412_for_our_own_bytes_is_success(stubbed: tuple[S3Store, Stubber]) -> None:
    """A retried PUT whose first attempt landed (or a re-upload): the object holds our bytes."""
    store, stubber = stubbed
    stubber.add_client_error(
        "put_object", service_error_code="PreconditionFailed", http_status_code=412
    )
    _found(stubber, "pre/k", b"ours")
    assert store.put_bytes("k", b"ours").size == 4


def test_verification_failure_is_an_error(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_response("put_object", {"ETag": '"e"'}, None)
    stubber.add_response("head_object", {"ContentLength": 3, "Metadata": {"sha256": sha(b"x")}})
    with pytest.raises(StoreError, match="verification of s3://bkt/pre/k failed: size 3 != 1"):
        store.put_bytes("k", b"x")


def test_multipart_above_the_threshold_with_a_sha256_per_part(
    stubbed: tuple[S3Store, Stubber], tmp_path: Path
) -> None:
    store, stubber = stubbed
    data = os.urandom(12 * MiB + 100)
    parts = [data[: 5 * MiB], data[5 * MiB : 10 * MiB], data[10 * MiB :]]
    path = tmp_path / "big.warc.gz"
    path.write_bytes(data)
    key = "pre/warc/big.warc.gz"
    _not_found(stubber, key)
    stubber.add_response(
        "create_multipart_upload",
        {"UploadId": "u1"},
        {
            "Bucket": BUCKET,
            "Key": key,
            "ChecksumAlgorithm": "SHA256",
            "Metadata": {"sha256": sha(data)},
        },
    )
    for number, part in enumerate(parts, 1):
        # botocore hashes the part as it sends it (a trailer); the server checks and reports it.
        stubber.add_response(
            "upload_part",
            {"ETag": f'"p{number}"', "ChecksumSHA256": b64(part)},
            {
                "Bucket": BUCKET,
                "Key": key,
                "UploadId": "u1",
                "PartNumber": number,
                "Body": ANY,
                "ChecksumAlgorithm": "SHA256",
            },
        )
    stubber.add_response(
        "complete_multipart_upload",
        {},
        {
            "Bucket": BUCKET,
            "Key": key,
            "UploadId": "u1",
            "IfNoneMatch": "*",
            "MultipartUpload": {
                "Parts": [
                    {"PartNumber": n, "ETag": f'"p{n}"', "ChecksumSHA256": b64(p)}
                    for n, p in enumerate(parts, 1)
                ]
            },
        },
    )
    composite = composite_sha256([hashlib.sha256(p).digest() for p in parts])
    _found(stubber, key, data, composite)
    obj = store.put_file("warc/big.warc.gz", path, move=True)
    assert obj.sha256 == sha(data)
    assert not path.exists()


def test_a_failed_multipart_upload_is_aborted(
    stubbed: tuple[S3Store, Stubber], tmp_path: Path
) -> None:
    store, stubber = stubbed
    path = tmp_path / "big"
    path.write_bytes(b"z" * (12 * MiB))
    _not_found(stubber, "pre/big")
    stubber.add_response("create_multipart_upload", {"UploadId": "u2"})
    stubber.add_client_error("upload_part", service_error_code="BadDigest", http_status_code=400)
    stubber.add_response(
        "abort_multipart_upload", {}, {"Bucket": BUCKET, "Key": "pre/big", "UploadId": "u2"}
    )
    with pytest.raises(StoreError, match="BadDigest"):
        store.put_file("big", path, move=True)
    assert path.exists(), "the local file is kept when the upload failed"


def test_a_file_that_changed_since_its_writer_hashed_it_is_not_stored(
    stubbed: tuple[S3Store, Stubber], tmp_path: Path
) -> None:
    """With the writer's digest there is no reading pass first: the bytes sent are checked."""
    store, stubber = stubbed
    path = tmp_path / "big"
    path.write_bytes(b"w" * (12 * MiB))
    written = sha(b"v" * (12 * MiB))  # what the writer wrote before the disk changed it
    _not_found(stubber, "pre/big")
    stubber.add_response(
        "create_multipart_upload",
        {"UploadId": "u3"},
        {
            "Bucket": BUCKET,
            "Key": "pre/big",
            "ChecksumAlgorithm": "SHA256",
            "Metadata": {"sha256": written},
        },
    )
    for number in (1, 2, 3):
        stubber.add_response(
            "upload_part", {"ETag": f'"p{number}"', "ChecksumSHA256": b64(b"p")}, None
        )
    stubber.add_response(
        "abort_multipart_upload", {}, {"Bucket": BUCKET, "Key": "pre/big", "UploadId": "u3"}
    )
    with pytest.raises(StoreError, match="changed since it was written"):
        store.put_file("big", path, move=True, sha256=written)
    assert path.exists()


# ------------------------------------------------------------------ integration: SeaweedFS


@pytest.fixture
def s3store(seaweedfs: SeaweedFS) -> S3Store:
    bucket = seaweedfs.new_bucket()
    options = {**seaweedfs.options(), "ARCHIVE_STORE_MULTIPART_THRESHOLD": 6 * MiB}
    options["ARCHIVE_STORE_MULTIPART_PART_SIZE"] = 5 * MiB
    store = open_store(f"s3://{bucket}/archive", options)
    assert isinstance(store, S3Store)
    return store


def test_put_get_range_list_exists_for_real(s3store: S3Store, tmp_path: Path) -> None:
    s3store.check_writable()
    obj = s3store.put_bytes("text/tdi/2025/06/11/a.txt", b"hello\n")
    assert obj.sha256 == sha(b"hello\n")
    assert s3store.get_bytes("text/tdi/2025/06/11/a.txt") == b"hello\n"
    assert s3store.get_range("text/tdi/2025/06/11/a.txt", 1, 3) == b"ell"
    assert s3store.exists("text/tdi/2025/06/11/a.txt")
    assert not s3store.exists("text/tdi/2025/06/11/b.txt")
    src = tmp_path / "x.warc.gz"
    src.write_bytes(b"\x1f\x8b" + b"w" * 5000)
    s3store.put_file("warc/tdi/x.warc.gz", src, move=True)
    assert not src.exists()
    assert list(s3store.list()) == ["text/tdi/2025/06/11/a.txt", "warc/tdi/x.warc.gz"]
    assert list(s3store.list("warc/")) == ["warc/tdi/x.warc.gz"]
    # Under the prefix, nowhere else; the write probe leaves nothing behind.
    raw = s3store.client.list_objects_v2(Bucket=s3store.bucket)
    assert sorted(o["Key"] for o in raw["Contents"]) == [
        "archive/text/tdi/2025/06/11/a.txt",
        "archive/warc/tdi/x.warc.gz",
    ]
    with pytest.raises(FileNotFoundError):
        s3store.get_bytes("nope")
    with pytest.raises(StoreError, match="invalid object key"):
        s3store.put_bytes("../escape", b"x")


def test_seaweedfs_enforces_if_none_match_and_checksums(s3store: S3Store) -> None:
    """What the store relies on, checked against the real server."""
    s3store.put_bytes("k", b"first")
    # Same bytes again: skipped after a HEAD.
    assert s3store.put_bytes("k", b"first").size == 5
    with pytest.raises(StoreConflictError, match="already exists with different content"):
        s3store.put_bytes("k", b"second")
    client = s3store.client
    # The server itself refuses to replace (412) and refuses a wrong checksum (BadDigest).
    with pytest.raises(client.exceptions.ClientError, match="PreconditionFailed"):
        client.put_object(Bucket=s3store.bucket, Key="archive/k", Body=b"x", IfNoneMatch="*")
    with pytest.raises(client.exceptions.ClientError, match="BadDigest"):
        client.put_object(
            Bucket=s3store.bucket, Key="archive/bad", Body=b"xyz", ChecksumSHA256=b64(b"abc")
        )
    assert s3store.get_bytes("k") == b"first"


def test_multipart_upload_for_real_reports_the_composite_checksum(
    s3store: S3Store, tmp_path: Path
) -> None:
    data = os.urandom(11 * MiB)
    path = tmp_path / "big.warc.gz"
    path.write_bytes(data)
    obj = s3store.put_file("warc/big.warc.gz", path)
    assert (obj.size, obj.sha256) == (len(data), sha(data))
    head = s3store.client.head_object(
        Bucket=s3store.bucket, Key="archive/warc/big.warc.gz", ChecksumMode="ENABLED"
    )
    parts = [data[: 5 * MiB], data[5 * MiB : 10 * MiB], data[10 * MiB :]]
    assert head["ChecksumSHA256"] == composite_sha256([hashlib.sha256(p).digest() for p in parts])
    assert head["Metadata"]["sha256"] == sha(data)
    assert s3store.get_range("warc/big.warc.gz", 10 * MiB, 10) == data[10 * MiB : 10 * MiB + 10]
    # Re-uploading after a crash: a no-op.
    s3store.put_file("warc/big.warc.gz", path)
    assert not s3store.client.list_multipart_uploads(Bucket=s3store.bucket).get("Uploads")


def test_preflight_names_bucket_and_endpoint_never_the_secret(seaweedfs: SeaweedFS) -> None:
    bucket = seaweedfs.new_bucket()
    wrong = (S3_ADMIN[0], "wrong-secret-5d1c0f")
    cases = [
        (f"s3://{bucket}-missing/p", seaweedfs.options(), "does not exist"),
        (f"s3://{bucket}/p", seaweedfs.options(wrong), "credentials rejected"),
        (f"s3://{bucket}/p", seaweedfs.options(S3_READER), "is not writable"),
    ]
    for uri, options, message in cases:
        store = open_store(uri, options)
        with pytest.raises(StoreError, match=message) as caught:
            store.check_writable()
        text = str(caught.value)
        assert bucket in text and seaweedfs.endpoint in text, text
        for secret in (S3_ADMIN[1], S3_READER[1], wrong[1]):
            assert secret not in text


# ------------------------------------------------------------------ the commands


def _cli() -> list[str]:
    cli = venv_program("newsarchive")
    return [str(cli)] if cli else [sys.executable, "-m", "crawler.ops.cli"]


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _verify_manifests(seaweedfs: SeaweedFS, bucket: str, prefix: str) -> dict[str, Any]:
    """Every object of the one manifest exists with the recorded size and SHA-256."""
    client = seaweedfs.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    [manifest_key] = [k for k in keys if k.startswith(f"{prefix}/manifests/")]
    manifest: dict[str, Any] = json.loads(
        client.get_object(Bucket=bucket, Key=manifest_key)["Body"].read()
    )
    assert manifest["objects"], "empty manifest"
    listed = {f"{prefix}/{o['key']}" for o in manifest["objects"]}
    # Every object but the manifest itself and the store's identity (no crawl's object).
    assert listed == set(keys) - {manifest_key, f"{prefix}/{STORE_ID_KEY}"}
    for obj in manifest["objects"]:
        body = client.get_object(Bucket=bucket, Key=f"{prefix}/{obj['key']}")["Body"].read()
        assert (len(body), sha(body)) == (obj["size"], obj["sha256"]), obj["key"]
    return manifest


def _spool_files(spool: Path) -> list[Path]:
    """Files waiting in the spool (the catalog of a remote store's crawls lives there too)."""
    return [
        p
        for p in spool.rglob("*")
        if p.is_file() and p.name not in (".lock", ".spool-id") and not p.name.startswith("catalog")
    ]


def test_demo_into_s3_every_manifest_object_is_verified_and_the_spool_is_empty(
    seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    bucket = seaweedfs.new_bucket()
    spool = tmp_path / "spool"
    env = {**s3_env(seaweedfs.endpoint), "ARCHIVE_SPOOL_DIR": str(spool)}
    # The secret as a Scrapy setting this time: it reaches the crawl, never its log.
    del env["AWS_SECRET_ACCESS_KEY"], env["AWS_ACCESS_KEY_ID"]
    cmd = [*_cli(), "demo", "--store", f"s3://{bucket}/demo", "--sites", "tdi"]
    cmd += ["-s", f"AWS_ACCESS_KEY_ID={S3_ADMIN[0]}", "-s", f"AWS_SECRET_ACCESS_KEY={S3_ADMIN[1]}"]
    proc = _run(cmd, env, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert S3_ADMIN[1] not in proc.stdout + proc.stderr
    assert f"store: s3://{bucket}/demo/" in proc.stdout
    manifest = _verify_manifests(seaweedfs, bucket, "demo")
    assert any(o["key"].startswith("warc/tdi/") for o in manifest["objects"])
    assert manifest["report"]["upload"]["pending"] == 0
    assert _spool_files(spool) == []
    # Beside the spool only the crawl's log, which names no secret either.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs", "spool"]
    [log] = (tmp_path / "logs" / "tdi").glob("tdi-*.log")
    assert "Spider closed (finished)" in log.read_text()
    assert S3_ADMIN[1] not in log.read_text()


def test_wrong_secret_fails_before_any_fetch_without_the_secret(
    seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    bucket = seaweedfs.new_bucket()
    secret = "wrong-secret-key-8c2f9e"
    env = s3_env(seaweedfs.endpoint, (S3_ADMIN[0], secret))
    env["ARCHIVE_SPOOL_DIR"] = str(tmp_path / "spool")
    [dead] = free_ports(1)
    # A proxy nobody listens on: even a crawl that went ahead could reach nothing.
    runner = [sys.executable, "-m", "crawler.crawl.runner", "tdi", "-s"]
    for cmd in (
        [
            *runner,
            f"ARCHIVE_STORE_URI=s3://{bucket}/x",
            "-s",
            f"ARCHIVE_PROXY=http://127.0.0.1:{dead}",
        ],
        [*_cli(), "demo", "--store", f"s3://{bucket}/x", "--sites", "tdi"],
    ):
        proc = _run(cmd, env, ROOT)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stderr.startswith("error: "), proc.stderr
        assert bucket in proc.stderr and seaweedfs.endpoint in proc.stderr, proc.stderr
        assert "credentials rejected" in proc.stderr
        assert secret not in proc.stdout + proc.stderr
        assert "Crawled" not in proc.stderr and "mirror of" not in proc.stdout


def test_outage_crawl_completes_locally_then_upload_drains_the_backlog(
    seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    bucket = seaweedfs.new_bucket()
    spool = tmp_path / "spool"
    [dead] = free_ports(1)
    down = {**s3_env(f"http://127.0.0.1:{dead}"), "ARCHIVE_SPOOL_DIR": str(spool)}
    proc = _run(
        [
            *_cli(),
            "demo",
            "--store",
            f"s3://{bucket}/out",
            "--sites",
            "tdi",
            "-s",
            "ARCHIVE_STORE_CHECK=False",
            "-s",
            "ARCHIVE_STORE_MAX_ATTEMPTS=1",
        ],
        down,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "pending upload:" in proc.stdout
    [listing] = sorted((spool / "pending").glob("*.json"))
    backlog = json.loads(listing.read_text())
    keys = [e["key"] for e in backlog["objects"]]
    assert keys[-1].startswith("manifests/tdi/"), "the manifest goes last"
    assert any(k.startswith("warc/tdi/") for k in keys)
    assert not seaweedfs.client().list_objects_v2(Bucket=bucket).get("Contents")

    # Still down: nothing lost, exit 1.
    proc = _run([*_cli(), "upload"], down, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert listing.exists()

    up = {**s3_env(seaweedfs.endpoint), "ARCHIVE_SPOOL_DIR": str(spool)}
    proc = _run([*_cli(), "upload"], up, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"[{len(keys)}/{len(keys)}] uploaded" in proc.stdout
    assert f"uploaded {len(keys)} objects" in proc.stdout
    manifest = _verify_manifests(seaweedfs, bucket, "out")
    assert manifest["report"]["upload"]["pending"] > 0
    assert _spool_files(spool) == []
    # Nothing left: a second run has nothing to do.
    proc = _run([*_cli(), "upload"], up, tmp_path)
    assert proc.returncode == 0 and "nothing to upload" in proc.stdout


def test_archive_run_spools_during_an_outage_and_the_next_run_uploads_first(
    seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    from crawler.crawl.config import LedgerConfig
    from crawler.crawl.ledger import CrawlLedger

    bucket = seaweedfs.new_bucket()
    spool = tmp_path / "spool"
    [dead] = free_ports(1)
    uri = f"s3://{bucket}/run"
    down = open_store(uri, {**seaweedfs.options(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{dead}"})
    config = LedgerConfig(store_uri=uri, spool_dir=spool, crawl_id="tdi-1", report=True)
    run = CrawlLedger(config, down)
    run.site = "tdi"
    warc = tmp_path / "a.warc.gz"
    warc.write_bytes(b"\x1f\x8bwarc")
    run.put_file("warc/tdi/a.warc.gz", warc, move=True)
    run.put_bytes("text/tdi/a.txt", b"text")
    assert not warc.exists(), "moved into the backlog"
    assert run.pending == ["warc/tdi/a.warc.gz", "text/tdi/a.txt"]
    assert len(run.notes) == 1 and "cannot be reached" in run.notes[0]
    run._close_blocking("finished")  # what spider_closed runs in its thread
    assert run.pending[-1] == "manifests/tdi/tdi-1.json"
    assert run.report is not None and run.report["upload"]["pending"] == 4

    up = open_store(uri, seaweedfs.options())
    config2 = LedgerConfig(uri, spool, "tdi-2", True, keep_local=True)
    nxt = CrawlLedger(config2, up)
    nxt.drain()
    assert sorted(up.list()) == [
        "manifests/tdi/tdi-1.json",
        "reports/tdi/tdi-1.json",
        "text/tdi/a.txt",
        "warc/tdi/a.warc.gz",
    ]
    assert up.get_bytes("warc/tdi/a.warc.gz") == b"\x1f\x8bwarc"
    assert not (spool / "pending" / "tdi-1.json").exists()
    # ARCHIVE_STORE_KEEP_LOCAL: verified copies kept out of the way, never uploaded again.
    assert (spool / "kept" / "warc" / "tdi" / "a.warc.gz").read_bytes() == b"\x1f\x8bwarc"
    assert not list((spool / "pending").rglob("*.warc.gz"))


def test_killed_mid_upload_then_rerun_leaves_one_whole_object(
    s3store: S3Store, tmp_path: Path
) -> None:
    """Killed mid-multipart: parts, no object. Killed after upload, before unlink: a no-op."""
    client, bucket = s3store.client, s3store.bucket
    data = os.urandom(7 * MiB)
    path = tmp_path / "tdi-20261123000000-00000-h.warc.gz"
    path.write_bytes(data)
    full = "archive/warc/tdi/" + path.name
    # What a crawl killed between two parts leaves behind.
    upload = client.create_multipart_upload(Bucket=bucket, Key=full, ChecksumAlgorithm="SHA256")
    client.upload_part(
        Bucket=bucket,
        Key=full,
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=data[: 5 * MiB],
        ChecksumSHA256=b64(data[: 5 * MiB]),
    )
    assert not s3store.exists("warc/tdi/" + path.name), "a part is not an object"
    # The re-run uploads the file whole; killed again before removing the local copy ...
    s3store.put_file("warc/tdi/" + path.name, path, move=False)
    # ... and the next re-run finds the same bytes: skipped, local copy removed.
    obj = s3store.put_file("warc/tdi/" + path.name, path, move=True)
    assert not path.exists()
    assert (obj.size, obj.sha256) == (len(data), sha(data))
    assert list(s3store.list("warc/")) == ["warc/tdi/" + path.name]
    assert s3store.get_bytes("warc/tdi/" + path.name) == data


def test_a_conflict_mid_crawl_keeps_the_bytes_and_is_not_an_outage(
    s3store: S3Store, tmp_path: Path
) -> None:
    from crawler.crawl.config import LedgerConfig
    from crawler.crawl.ledger import CrawlLedger

    s3store.put_bytes("text/tdi/a.txt", b"someone else's")
    config = LedgerConfig(s3store.uri, tmp_path / "spool", "tdi-3", report=False)
    run = CrawlLedger(config, s3store)
    run.put_bytes("text/tdi/a.txt", b"ours")
    assert run.pending == ["text/tdi/a.txt"]
    assert "already exists with different content" in run.notes[0]
    assert (tmp_path / "spool/pending/tdi-3/text/tdi/a.txt").read_bytes() == b"ours"
    run.put_bytes("text/tdi/b.txt", b"next")  # the store is still used
    assert s3store.get_bytes("text/tdi/b.txt") == b"next"
    assert s3store.get_bytes("text/tdi/a.txt") == b"someone else's"
    run._close_blocking("finished")  # releases the backlog's lock


def test_the_next_crawl_uploads_the_backlog_first(seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    from crawler.crawl.config import LedgerConfig
    from crawler.crawl.ledger import CrawlLedger

    bucket = seaweedfs.new_bucket()
    spool = tmp_path / "spool"
    uri = f"s3://{bucket}/next"
    [dead] = free_ports(1)
    down = open_store(uri, {**seaweedfs.options(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{dead}"})
    run = CrawlLedger(LedgerConfig(uri, spool, "tdi-0", report=True), down)
    run.site = "tdi"
    run.put_bytes("text/tdi/2020/01/01/old.txt", b"from the outage")
    run._close_blocking("finished")
    assert len(run.pending) == 3  # text, report, manifest

    env = {**s3_env(seaweedfs.endpoint), "ARCHIVE_SPOOL_DIR": str(spool)}
    proc = _run([*_cli(), "demo", "--store", uri, "--sites", "tdi"], env, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [log] = (tmp_path / "logs" / "tdi").glob("tdi-*.log")  # beside the spool
    assert "backlog of earlier crawls: 3 objects uploaded, 0 not (named above)" in log.read_text()
    store = open_store(uri, seaweedfs.options())
    assert store.get_bytes("text/tdi/2020/01/01/old.txt") == b"from the outage"
    old = json.loads(store.get_bytes("manifests/tdi/tdi-0.json"))
    assert [o["key"] for o in old["objects"]] == [
        "text/tdi/2020/01/01/old.txt",
        "reports/tdi/tdi-0.json",
    ]
    assert _spool_files(spool) == []


def test_queued_texts_upload_on_worker_threads_verified_and_listed_in_the_manifest(
    s3store: S3Store, tmp_path: Path
) -> None:
    from crawler.crawl.config import LedgerConfig
    from crawler.crawl.ledger import CrawlLedger

    spool = tmp_path / "spool"
    run = CrawlLedger(LedgerConfig(s3store.uri, spool, "tdi-q", report=True), s3store)
    run.site = "tdi"
    texts = {f"text/tdi/2025/06/11/{n}.txt": f"article {n}\n".encode() * 50 for n in range(60)}
    for key, data in texts.items():
        obj = run.queue_bytes(key, data)
        assert (obj.size, obj.sha256) == (len(data), sha(data))
    run._close_blocking("finished")
    for key, data in texts.items():
        assert s3store.get_bytes(key) == data
    manifest = json.loads(s3store.get_bytes("manifests/tdi/tdi-q.json"))
    listed = {o["key"]: (o["size"], o["sha256"]) for o in manifest["objects"]}
    assert {k: listed[k] for k in texts} == {k: (len(d), sha(d)) for k, d in texts.items()}
    assert run.pending == [] and manifest["report"]["upload"]["pending"] == 0
    assert _spool_files(spool) == [], "the spool copies go once the store has them"


def test_queued_texts_during_an_outage_wait_in_the_backlog_then_go_up(
    seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    from crawler.crawl.config import LedgerConfig
    from crawler.crawl.ledger import CrawlLedger
    from crawler.store.spool import drain_backlog

    bucket = seaweedfs.new_bucket()
    spool, uri = tmp_path / "spool", f"s3://{bucket}/q"
    [dead] = free_ports(1)
    down = open_store(uri, {**seaweedfs.options(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{dead}"})
    run = CrawlLedger(LedgerConfig(uri, spool, "tdi-down", report=True), down)
    run.site = "tdi"
    for n in range(5):
        run.queue_bytes(f"text/tdi/{n}.txt", b"x" * n)
    run._close_blocking("finished")
    # The first upload found the store down; the rest went straight to the backlog.
    assert sorted(run.pending[:5]) == [f"text/tdi/{n}.txt" for n in range(5)]
    assert run.pending[-1] == "manifests/tdi/tdi-down.json"
    up = open_store(uri, seaweedfs.options())
    uploaded, failed = drain_backlog(up, spool)
    assert failed == [] and len(uploaded) == 7
    assert [up.get_bytes(f"text/tdi/{n}.txt") for n in range(5)] == [b"x" * n for n in range(5)]
    assert _spool_files(spool) == []


def test_files_a_killed_crawl_left_unlisted_are_adopted_by_the_next_drain(
    s3store: S3Store, tmp_path: Path
) -> None:
    """Killed with texts on their way up, and after an upload but before the list was saved."""
    from crawler.store.base import StoredObject
    from crawler.store.spool import Backlog, drain_backlog

    spool = tmp_path / "spool"
    killed = Backlog(spool, "tdi-killed", s3store.uri)
    for n in range(3):
        killed.write_aside(f"text/tdi/{n}.txt", f"in flight {n}".encode())
    gone = b"uploaded just before the kill"
    path = killed.write_aside("text/tdi/gone.txt", gone)
    killed.add_spooled(StoredObject("text/tdi/gone.txt", len(gone), sha(gone)), path)
    s3store.put_file("text/tdi/gone.txt", path, move=True)
    # A write cut by the kill before its rename: not an object.
    (spool / "pending/tdi-killed/text/tdi/.3.txt.tmp").write_bytes(b"half-writ")
    killed.unlock()  # what the kill does to the lock

    uploaded, failed = drain_backlog(s3store, spool)
    assert failed == []
    assert sorted(o.key for o in uploaded) == [
        "text/tdi/0.txt",
        "text/tdi/1.txt",
        "text/tdi/2.txt",
        "text/tdi/gone.txt",
    ]
    assert [s3store.get_bytes(f"text/tdi/{n}.txt") for n in range(3)] == [
        f"in flight {n}".encode() for n in range(3)
    ]
    assert not (spool / "pending" / "tdi-killed.json").exists()
    assert not (spool / "pending" / "tdi-killed").exists()


def test_a_killed_crawls_file_the_store_holds_other_bytes_for_is_set_aside_not_retried(
    s3store: S3Store, tmp_path: Path
) -> None:
    """Machine A killed with a new text in its spool, unrecorded; machine B archived the same
    text under the same key meanwhile (its sidecar names its own capture). A's drain must not
    leave the sidecar pending forever (its crawl's rows would say they wait there): it moves to
    ``refused/``, named; a real conflict (another text) is told apart as an error."""
    from crawler.store.spool import Backlog, drain_backlog, pending_backlogs

    def sidecar(crawl: str, digest: str) -> bytes:
        return json.dumps({"text_key": "text/tdi/a.txt", "text_digest": digest,
                           "crawl_id": crawl}).encode()  # fmt: skip

    s3store.put_bytes("text/tdi/a.txt", b"the text")
    s3store.put_bytes("text/tdi/a.json", sidecar("tdi-b", "sha1:same"))
    s3store.put_bytes("text/tdi/c.json", sidecar("tdi-b", "sha1:theirs"))
    spool = tmp_path / "spool"
    killed = Backlog(spool, "tdi-a", s3store.uri)
    killed.write_aside("text/tdi/a.txt", b"the text")
    killed.write_aside("text/tdi/a.json", sidecar("tdi-a", "sha1:same"))
    killed.write_aside("text/tdi/c.json", sidecar("tdi-a", "sha1:ours"))
    killed.write_aside("text/tdi/d.txt", b"only ours")
    killed.unlock()

    uploaded, failed = drain_backlog(s3store, spool)
    assert sorted(o.key for o in uploaded) == ["text/tdi/a.txt", "text/tdi/d.txt"]
    [same, other] = sorted(failed)
    assert same.startswith("text/tdi/a.json: archived by crawl tdi-b already")
    assert other.startswith("text/tdi/c.json:") and "different content" in other
    # Nothing lost, nothing left waiting: both kept aside, the backlog gone, the store as it was.
    assert json.loads((spool / "refused/text/tdi/a.json").read_bytes())["crawl_id"] == "tdi-a"
    kept = json.loads((spool / "refused/text/tdi/c.json").read_bytes())
    assert kept["text_digest"] == "sha1:ours"
    assert pending_backlogs(spool) == []
    assert json.loads(s3store.get_bytes("text/tdi/a.json"))["crawl_id"] == "tdi-b"
    assert drain_backlog(s3store, spool) == ([], [])


def test_a_live_crawls_files_on_their_way_up_are_not_touched(
    s3store: S3Store, tmp_path: Path
) -> None:
    from crawler.store.spool import Backlog, drain_backlog

    spool = tmp_path / "spool"
    live = Backlog(spool, "tdi-live", s3store.uri)
    live.write_aside("text/tdi/live.txt", b"being uploaded by its own crawl")
    assert drain_backlog(s3store, spool) == ([], [])
    assert not s3store.exists("text/tdi/live.txt")
    assert (spool / "pending/tdi-live/text/tdi/live.txt").exists()
    live.unlock()


def test_an_article_a_killed_crawl_kept_but_never_recorded_is_recorded_before_crawling(
    s3store: S3Store, tmp_path: Path
) -> None:
    """Killed between spooling a text and recording it: the next crawl must not archive it again."""
    from scrapy.utils.test import get_crawler

    from crawler.catalog.db import Catalog
    from crawler.catalog.search import SearchQuery, search
    from crawler.crawl.catalog import ArchiveCatalog
    from crawler.crawl.config import CatalogConfig, LedgerConfig
    from crawler.crawl.ledger import CrawlLedger
    from crawler.store.spool import SPOOLED_TEXT, Backlog, adopt_leftovers

    spool = tmp_path / "spool"
    killed = Backlog(spool, "tdi-killed", s3store.uri)
    sidecar = {
        "url": "https://thediplomaticinsight.com/a-story/",
        "site": "tdi",
        "article_id": "a-story",
        "capture_time": "2026-11-23T10:00:00Z",
        "text_digest": "sha256:" + sha(b"text"),
        "text_key": "text/tdi/2026/11/23/a-story.txt",
        "title": "A story",
        "published": None,
    }
    killed.write_aside("text/tdi/2026/11/23/a-story.txt", b"text")
    killed.write_aside("text/tdi/2026/11/23/a-story.json", json.dumps(sidecar).encode())
    killed.unlock()

    adopted = adopt_leftovers(spool, s3store.uri, skip="tdi-next")
    # The sidecar, and its text for the catalog's search index (read before the drain takes it).
    assert adopted == [{**sidecar, SPOOLED_TEXT: "text"}]
    assert len(Backlog.load(spool / "pending/tdi-killed.json").entries) == 2
    crawler = get_crawler()
    assert crawler.stats is not None
    run = CrawlLedger(LedgerConfig(s3store.uri, spool, "tdi-next", report=False), s3store, crawler)
    catalog_config = CatalogConfig(url="", revision_ages=(), refresh=False)
    ext = ArchiveCatalog(catalog_config, run, crawler.stats)
    ext.site = "tdi"
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    ext._open(url, [], adopted)
    assert ext.known == {"a-story"}
    article = Catalog(url).article("tdi", "a-story")
    assert article is not None and article.text_key == sidecar["text_key"]
    assert [h.article_key for h in search(Catalog(url), SearchQuery("text"))] == ["a-story"]


def test_a_fresh_bucket_gets_its_own_catalog_and_every_article(
    seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    """The default catalog of an S3 store is one per store: a demo into one bucket, then into a
    fresh one, archives every article into both (not "0 new: archived" — elsewhere)."""
    env = {**s3_env(seaweedfs.endpoint), "ARCHIVE_SPOOL_DIR": str(tmp_path / "spool")}
    client = seaweedfs.client()
    for bucket in (seaweedfs.new_bucket(), seaweedfs.new_bucket()):
        proc = _run(
            [*_cli(), "demo", "--store", f"s3://{bucket}/d", "--sites", "tdi"], env, tmp_path
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert re.search(r"^tdi +ok +6 new articles", proc.stdout, re.M), proc.stdout
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert len([k for k in keys if k.endswith(".txt")]) == 6
    assert len(list((tmp_path / "spool").glob("catalog-*.sqlite"))) == 2
