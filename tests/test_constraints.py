"""The install is the one the suite passed with: every dependency pyproject.toml names has its
tested version in constraints.txt (scripts/bootstrap and the Dockerfile install within it), and
that version is one pyproject.toml allows. A dependency added without a pin would float."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def _pins(name: str) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        package, sep, version = line.partition("==")
        assert sep, f"{name}: {line!r} is no exact pin"
        pins[canonicalize_name(package)] = Version(version)
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        names.extend(extra)
    return [Requirement(r) for r in names]


def test_every_dependency_is_pinned_to_a_version_pyproject_allows() -> None:
    pins = _pins("constraints.txt")
    requirements = _requirements()
    assert len(requirements) > 20
    for req in requirements:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in constraints.txt (refresh it: its header)"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {req.name} {pins[name]}, which pyproject.toml's "
            f"{req.specifier} refuses"
        )
        for extra in req.extras:  # psycopg[binary]: the extra's package is pinned too
            assert canonicalize_name(f"{req.name}-{extra}") in pins, f"{req.name}[{extra}]"


def test_pywb_is_pinned_in_its_own_file() -> None:
    pins = _pins("constraints-pywb.txt")
    assert Requirement("pywb>=2.8,<3").specifier.contains(pins["pywb"])
    assert "scrapy" not in pins  # pywb's venv holds pywb alone
