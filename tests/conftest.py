"""Shared fixtures: the shared/ folder, external programs, and one demo run for many tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def shared_dir() -> Path:
    """The project's shared/ folder, beside the repository root (CI has it there too)."""
    path = ROOT.parent / "shared"
    if not (path / "samples" / "expected").is_dir():
        pytest.fail(f"shared/ with samples/expected/ not found at {path}", pytrace=False)
    return path


def expected_text(name: str) -> bytes:
    return (shared_dir() / "samples" / "expected" / name).read_bytes()


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


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """`newsarchive demo --sites tdi` once, in a fresh directory with its default store."""
    cwd = tmp_path_factory.mktemp("demo")
    cli = venv_program("newsarchive")
    cmd = [str(cli)] if cli else [sys.executable, "-m", "crawler.cli"]
    proc = subprocess.run(
        [*cmd, "demo", "--sites", "tdi"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    yield DemoRun(cwd, cwd / "archive-demo", proc.returncode, proc.stdout, proc.stderr)


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


def mirror_file(site: str, name: str) -> bytes:
    """A saved page of the loopback mirror, as the mirror serves it (before any encoding)."""
    return (ROOT / "crawler" / "mirror" / "sites" / site / name).read_bytes()
