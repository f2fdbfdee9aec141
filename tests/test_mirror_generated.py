"""The mirror's generated sources are what their generator writes: the committed pages are
there to be read, never edited by hand (an edit would be lost at the next generation, and a
generator change not re-run would test pages nobody generates)."""

from __future__ import annotations

import json

import pytest

from crawler.mirror.generate_sources import SITES
from crawler.mirror.routes import SITES_DIR


@pytest.mark.parametrize("name", sorted(SITES))
def test_committed_pages_are_the_generators_output(name: str) -> None:
    site = SITES[name]()
    folder = SITES_DIR / name
    committed = {p.name for p in folder.iterdir() if p.name != "routes.json"}
    assert committed == set(site.files), "run: python -m crawler.mirror.generate_sources"
    for file, text in site.files.items():
        assert (folder / file).read_text(encoding="utf-8") == text, (
            f"{name}/{file} differs from its generator: python -m crawler.mirror.generate_sources"
        )
    routes = json.loads((folder / "routes.json").read_text(encoding="utf-8"))
    assert routes["routes"] == json.loads(json.dumps(site.routes))
    assert routes["hosts"] == site.hosts
