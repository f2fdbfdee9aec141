"""The image: built from the Dockerfile with podman, `newsarchive demo` run inside, WARCs valid.

No registry is reachable, so the base is made with debootstrap (tests/container.py); the build
and the run use the host's network (the demo's mirror is on loopback inside the container).
About 3–4 minutes from nothing; the debootstrap tarball is cached under ~/.cache/newsarchive.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from tests.conftest import IN_CI
from tests.container import IMAGE_TAG, Podman, build_image, programs_missing, run_demo

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]
SITES = ("almasirah", "irna", "president", "presstv", "tdi")


@dataclass
class Built:
    podman: Podman
    workdir: Path
    log: Path


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    missing = programs_missing()
    if missing:
        message = f"{', '.join(missing)} not found (./scripts/bootstrap --test installs them)"
        if IN_CI:
            pytest.fail(message + "; CI must not skip the container test", pytrace=False)
        pytest.skip(message)
    # The build log and the demo's output stay in pytest's tmp; podman's own store (files of
    # other owners, overlay mounts) goes in a directory of its own that podman empties itself.
    workdir = tmp_path_factory.mktemp("container")
    podman = Podman(Path(tempfile.mkdtemp(prefix="newsarchive-podman-")))
    podman.configure()
    log = workdir / "build.log"
    try:
        try:
            build_image(podman, log)
        except (RuntimeError, OSError) as exc:
            pytest.fail(f"{exc}\n(full log: {log})", pytrace=False)
        yield Built(podman, workdir, log)
    finally:
        podman.cleanup()


def test_image_runs_as_non_root_with_the_daemon_and_a_healthcheck(image: Built) -> None:
    inspect = image.podman.run(["image", "inspect", IMAGE_TAG], timeout=60)
    assert inspect.returncode == 0, inspect.stderr
    [data] = json.loads(inspect.stdout)
    conf = data["Config"]
    assert conf["User"] not in ("", "0", "root") and not conf["User"].startswith("0:")
    assert conf["Entrypoint"][-1] == "newsarchive"
    assert conf["Cmd"] == ["run"]
    health = conf.get("Healthcheck") or data.get("Healthcheck") or {}  # podman: top level
    assert "status" in health.get("Test", []) and "--check" in health.get("Test", [])
    # Chromium and the library Playwright's driver needs are in the image.
    found = image.podman.run(
        [
            "run",
            "--rm",
            "--entrypoint",
            "sh",
            IMAGE_TAG,
            "-c",
            "command -v chromium; id -u; ldconfig -p | grep -c 'libatomic.so.1 '",
        ],
        timeout=120,
    )
    assert found.returncode == 0, found.stdout + found.stderr
    chromium, uid, libatomic = found.stdout.split()
    assert (chromium, libatomic) == ("/usr/bin/chromium", "1") and uid != "0"
    plan = image.podman.run(["run", "--rm", IMAGE_TAG, "run", "--dry-run"], timeout=120)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert all(re.search(rf"^  {site} +crawl ", plan.stdout, re.M) for site in SITES)


def test_demo_inside_the_image_writes_valid_warcs(image: Built) -> None:
    out = image.workdir / "out"
    result = run_demo(image.podman, out, image.log)
    assert result.returncode == 0, f"demo in the container failed:\n{result.stdout}"
    store = out / "archive"
    for site in SITES:
        warcs = sorted((store / "warc" / site).rglob("*.warc.gz"))
        assert warcs, f"no WARC of {site}"
        for path in warcs:
            with path.open("rb") as fh:
                records = list(ArchiveIterator(fh, check_digests=True))
            assert records[0].rec_type == "warcinfo"
            assert any(r.rec_type == "response" for r in records)
    assert not list(store.rglob("*.open"))
    assert len(list((store / "reports").rglob("*.json"))) == len(SITES)
    # The status of that store, from inside the image: every site fresh.
    status = image.podman.run(
        [
            "run",
            "--rm",
            "--network",
            "host",
            "--volume",
            f"{out}:/out",
            IMAGE_TAG,
            "status",
            "--check",
            "--store",
            "/out/archive",
        ],
        timeout=120,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert re.search(r"^tdi +\S+ ago +ok +6 ", status.stdout, re.M), status.stdout
