"""What a crawl no longer loads or holds for its memory (issue 22) keeps what it stood for:
the MinHash permutations are numpy's, Scrapy's remote control is off only while switched off."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scrapy.settings import Settings
from scrapy.utils.conf import build_component_list
from scrapy.utils.python import global_object_name

from crawler.crawl.addon import REMOTE_CONTROL, SCRAPER_SLOT_MAX_ACTIVE_SIZE
from crawler.text import similar
from tests.crawl_helper import addon_settings


def extensions(settings: Settings) -> list[str]:
    """The extensions a crawl with these settings builds, by import path (as Scrapy lists them)."""
    built = build_component_list(settings.get_component_priority_dict_with_base("EXTENSIONS"))
    return [c if isinstance(c, str) else global_object_name(c) for c in built]


def test_the_permutations_are_numpys_randomstate_draws() -> None:
    # Stored signatures and band keys were made with these: they must not change.
    gen = np.random.RandomState(similar.SEED)
    a = gen.randint(0, 1 << 63, similar.NUM_PERM, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = gen.randint(0, 1 << 64, similar.NUM_PERM, dtype=np.uint64)
    ours_a, ours_b = similar._permutations()
    assert ours_a.dtype == ours_b.dtype == np.uint64
    assert ours_a.tolist() == a.tolist()
    assert ours_b.tolist() == b.tolist()


def test_other_seeds_draw_as_numpy_does_too() -> None:
    # A bound whose mask rejects draws (10**18: 13 % of them) takes the same path as numpy's.
    bounds = [1 << 63, 1 << 64, 10**18] * 20
    for seed in (0, 7, 2**32 - 1):
        gen = similar._mersenne_twister(seed)
        ours = [similar._randint_u64(gen, high) for high in bounds]
        ref = np.random.RandomState(seed)
        assert ours == [int(ref.randint(0, high, dtype=np.uint64)) for high in bounds]
    with pytest.raises(ValueError, match="past 2"):
        similar._randint_u64(similar._mersenne_twister(1), 3)


def python_prints(code: str) -> str:
    """What ``code`` prints in a fresh interpreter (nothing imported before it)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_a_signature_needs_no_numpy_random() -> None:
    code = (
        "import sys\n"
        "from crawler.text import similar\n"
        "sig = similar.signature('one two three four five six seven eight nine ten')\n"
        "assert sig.size > 0\n"
        "print(sorted(m for m in sys.modules if m.startswith(('numpy.random', 'numpy.typing'))))"
    )
    assert python_prints(code) == "[]"


def test_the_addon_holds_fewer_responses_and_a_project_value_wins() -> None:
    default = Settings().getint("SCRAPER_SLOT_MAX_ACTIVE_SIZE")
    assert addon_settings().getint("SCRAPER_SLOT_MAX_ACTIVE_SIZE") == SCRAPER_SLOT_MAX_ACTIVE_SIZE
    assert default > SCRAPER_SLOT_MAX_ACTIVE_SIZE
    project = addon_settings(SCRAPER_SLOT_MAX_ACTIVE_SIZE=default)
    assert project.getint("SCRAPER_SLOT_MAX_ACTIVE_SIZE") == default


def test_the_addon_leaves_scrapys_remote_control_out_while_it_is_off() -> None:
    assert REMOTE_CONTROL in extensions(Settings())  # Scrapy's default list has it
    assert REMOTE_CONTROL not in extensions(addon_settings())  # settings/ switch it off
    assert REMOTE_CONTROL in extensions(addon_settings(REMOTE_CONTROL_ENABLED=True))
    # A project naming it itself keeps its own entry (Scrapy then asks the setting).
    named = addon_settings(EXTENSIONS={REMOTE_CONTROL: 5})
    assert named.getdict("EXTENSIONS")[REMOTE_CONTROL] == 5
    # A value that is no boolean is left to Scrapy's own check, as without the add-on.
    assert REMOTE_CONTROL in extensions(addon_settings(REMOTE_CONTROL_ENABLED="perhaps"))


def test_a_crawl_is_set_up_without_importing_aiohttp() -> None:
    code = (
        "import sys\n"
        "from scrapy.utils.test import get_crawler\n"
        "addon = {'crawler.crawl.addon.Addon': 0}\n"
        "settings = {'ADDONS': addon, 'REMOTE_CONTROL_ENABLED': False}\n"
        "crawler = get_crawler(settings_dict=settings)\n"
        "from scrapy.extension import ExtensionManager\n"
        "names = ExtensionManager._get_mwlist_from_settings(crawler.settings)\n"
        "assert 'crawler.crawl.archive.ArchiveCrawl' in str(names), names\n"
        "print('aiohttp' in sys.modules)"
    )
    assert python_prints(code) == "False"
