"""A selector change to replay: the TDI spider without its rule that drops "Also read:" lines.

``-s SPIDER_MODULES=tests.replay_spiders`` makes a crawl (or a replay) use it under the name
``tdi``: the articles whose page has such a line get a text that differs from the archived one.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from crawler.text.extract import SiteRules
from spiders.tdi import RULES
from spiders.tdi import TdiSpider as _TdiSpider


class TdiSpider(_TdiSpider):
    rules: ClassVar[SiteRules] = dataclasses.replace(RULES, drop_text=())
