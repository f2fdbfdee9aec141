"""Build and run the image with podman on this machine, with no registry in reach.

The base image is made here: ``debootstrap --variant=minbase bookworm`` from the Debian mirror
the host's apt uses, with bookworm-updates and bookworm-security in its sources and the host's
extra CA certificates (``/usr/local/share/ca-certificates``) added, so HTTPS from ``RUN`` steps
works where a local CA sits in the path. That is test set-up only: the Dockerfile knows nothing
of it. podman gets a private configuration (runc, ulimits this machine allows, overlay storage
in a temporary directory) through ``CONTAINERS_CONF`` and ``CONTAINERS_STORAGE_CONF``.

``python -m tests.container`` builds the image and runs the demo in it, printing each step.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
BASE_TAG = "localhost/newsarchive-base:bookworm"
IMAGE_TAG = "localhost/newsarchive:test"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY = "http://deb.debian.org/debian-security"
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "newsarchive"


def programs_missing() -> list[str]:
    return [p for p in ("podman", "runc", "debootstrap") if shutil.which(p) is None]


def apt_mirrors() -> tuple[str, str]:
    """(Debian mirror, security mirror) from the host's apt sources, deb822 or one-line."""
    uris: list[str] = []
    sources = Path("/etc/apt")
    files = [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file() or path.suffix not in (".list", ".sources"):
            continue
        text = path.read_text(errors="replace")
        uris += re.findall(r"^URIs:\s*(\S+)", text, flags=re.M)
        uris += re.findall(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, flags=re.M)
    uris = [u.rstrip("/") for u in uris if u.startswith(("http://", "https://"))]
    main = next((u for u in uris if u.endswith("/debian")), DEFAULT_MIRROR)
    security = next((u for u in uris if u.endswith("/debian-security")), DEFAULT_SECURITY)
    return main, security


@dataclass(frozen=True)
class Podman:
    """podman with a private configuration and store under ``workdir``."""

    workdir: Path

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["CONTAINERS_CONF"] = str(self.workdir / "containers.conf")
        env["CONTAINERS_STORAGE_CONF"] = str(self.workdir / "storage.conf")
        env["CONTAINERS_REGISTRIES_CONF"] = str(self.workdir / "registries.conf")
        env["TMPDIR"] = str(self.workdir / "tmp")
        return env

    def configure(self) -> None:
        """Write the private configuration (creates the work directory)."""
        (self.workdir / "tmp").mkdir(parents=True, exist_ok=True)
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        nofile = min(hard if hard != resource.RLIM_INFINITY else 1048576, 1048576)
        # crun refuses this machine's mixed cgroup layout; runc copes.
        (self.workdir / "containers.conf").write_text(
            "[containers]\n"
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc=32768:32768"]\n'
            "[engine]\n"
            'runtime = "runc"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'tmp_dir = "{self.workdir / "tmp"}"\n'
        )
        (self.workdir / "storage.conf").write_text(
            "[storage]\n"
            'driver = "overlay"\n'
            f'graphroot = "{self.workdir / "graph"}"\n'
            f'runroot = "{self.workdir / "run"}"\n'
        )
        # No registry is reachable: no short-name search anywhere.
        (self.workdir / "registries.conf").write_text(
            'unqualified-search-registries = []\nshort-name-mode = "disabled"\n'
        )

    def run(
        self, args: Sequence[str], *, timeout: float, log: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        cmd = ["podman", *args]
        if log is None:
            return subprocess.run(
                cmd, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
            )
        with log.open("a") as out:
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            proc = subprocess.run(
                cmd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
        return subprocess.CompletedProcess(cmd, proc.returncode, log.read_text()[-6000:], "")

    def cleanup(self) -> None:
        # Overlay mounts and files owned by sub-uids: podman itself removes its store.
        self.run(["system", "reset", "--force"], timeout=120)
        shutil.rmtree(self.workdir, ignore_errors=True)


def base_tarball(log: Path) -> Path:
    """The debootstrapped root file system as a tar, cached under ~/.cache (keyed by mirror)."""
    main, security = apt_mirrors()
    ca_files = sorted(EXTRA_CA_DIR.glob("*.crt")) if EXTRA_CA_DIR.is_dir() else []
    key = hashlib.sha256(
        "\n".join([SUITE, main, security, *(p.read_text() for p in ca_files)]).encode()
    ).hexdigest()[:16]
    tarball = CACHE_DIR / f"base-{SUITE}-minbase-{key}.tar"
    if tarball.exists():
        return tarball
    with tempfile.TemporaryDirectory(prefix="newsarchive-debootstrap-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        with log.open("a") as out:
            out.write(f"$ debootstrap --variant=minbase {SUITE} {rootfs} {main}\n")
            out.flush()
            subprocess.run(
                ["debootstrap", "--variant=minbase", SUITE, str(rootfs), main],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=900,
            )
        (rootfs / "etc/apt/sources.list").write_text(
            f"deb {main} {SUITE} main\n"
            f"deb {main} {SUITE}-updates main\n"
            f"deb {security} {SUITE}-security main\n"
        )
        # The host's locally added CAs: update-ca-certificates (run when the image installs
        # ca-certificates) adds them to the bundle, and pip is pointed at that bundle.
        local_ca = rootfs / "usr/local/share/ca-certificates"
        local_ca.mkdir(parents=True, exist_ok=True)
        for path in ca_files:
            shutil.copy(path, local_ca / path.name)
        pip_conf = "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n"
        (rootfs / "etc/pip.conf").write_text(pip_conf)
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True)
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".tmp")
        with tarfile.open(partial, "w") as tar:
            tar.add(rootfs, arcname=".")
        os.replace(partial, tarball)
    return tarball


def build_image(podman: Podman, log: Path) -> None:
    tarball = base_tarball(log)
    step = podman.run(
        ["import", "--change", 'CMD ["/bin/bash"]', str(tarball), BASE_TAG],
        timeout=300,
        log=log,
    )
    if step.returncode:
        raise RuntimeError(f"podman import failed:\n{step.stdout}")
    step = podman.run(
        [
            "build",
            "--format",
            "docker",  # OCI images have no HEALTHCHECK
            "--network",
            "host",
            "--build-arg",
            f"BASE={BASE_TAG}",
            "--tag",
            IMAGE_TAG,
            "--file",
            str(ROOT / "Dockerfile"),
            str(ROOT),
        ],
        timeout=1500,
        log=log,
    )
    if step.returncode:
        raise RuntimeError(f"podman build failed:\n{step.stdout}")


def run_demo(podman: Podman, out: Path, log: Path) -> subprocess.CompletedProcess[str]:
    """``newsarchive demo`` inside the image, its store on a host directory."""
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o777)  # the image's non-root user writes here
    return podman.run(
        [
            "run",
            "--rm",
            "--network",
            "host",
            "--volume",
            f"{out}:/out",
            IMAGE_TAG,
            "demo",
            "--store",
            "/out/archive",
        ],
        timeout=600,
        log=log,
    )


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="newsarchive-container-"))
    podman = Podman(work / "podman")
    podman.configure()
    log = work / "build.log"
    started = time.monotonic()
    try:
        build_image(podman, log)
        print(f"built {IMAGE_TAG} in {time.monotonic() - started:.0f}s", flush=True)
        result = run_demo(podman, work / "out", log)
        print(result.stdout[-3000:])
        print(f"demo exit {result.returncode}; output in {work / 'out'}; log {log}")
        return result.returncode
    finally:
        if os.environ.get("KEEP_PODMAN") != "1":
            podman.cleanup()


if __name__ == "__main__":
    sys.exit(main())
