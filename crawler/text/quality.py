"""Degenerate texts: a body far below its site's usual size is no article's text (issue 23).

A page that parsed but gave a headline and a date and nothing under them (the start of a
truncated page, an error page in the article's template, a layout the rules no longer fit)
must not become an article's text. The crawl (``crawl/pipeline.py``) asks :func:`degenerate`
of every text it makes, with the limits of ``ARCHIVE_TEXT_DEGENERATE_*`` and the site's usual
size from the catalog (:meth:`UsualSize.of` over the body lengths of the site's latest texts,
``Catalog.text_lengths``); anything else that makes texts (reextract) asks the same function
with the same inputs. Pure: no catalog, no I/O.

The rule: a text is degenerate when its body (the paragraphs under the headline, in
characters) is shorter than ``min_chars``, or, once the site has at least ``min_texts``
texts, shorter than ``ratio`` times their median. The median of the latest texts, not the
mean: one huge page or a run of short ones moves it little. With fewer texts (a new site)
the median says too little and only the floor applies.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from crawler.text.extract import Article

logger = logging.getLogger(__name__)

DEGENERATE: Final = "degenerate"  # the sidecar's ``quality`` of a flagged text ("ok" otherwise)
USUAL_SAMPLE: Final = 200  # the site's latest texts its usual size is taken over


@dataclass(frozen=True, slots=True)
class TextLimits:
    """The thresholds: ``ARCHIVE_TEXT_DEGENERATE_RATIO``, ``…_MIN_CHARS``, ``…_MIN_TEXTS``."""

    ratio: float = 0.05  # of the site's median body: below it, degenerate
    min_chars: int = 20  # body characters below which a text is degenerate on any site
    min_texts: int = 20  # texts a site needs before its median counts

    def __post_init__(self) -> None:
        if not 0 < self.ratio <= 1:
            raise ValueError(f"ratio must be more than 0 and at most 1, got {self.ratio!r}")
        if self.min_chars < 0 or self.min_texts < 1:
            raise ValueError("min_chars must be at least 0 and min_texts at least 1")


@dataclass(frozen=True, slots=True)
class UsualSize:
    """A site's usual body size: the median over its latest texts (None: too few of them)."""

    median: int | None
    texts: int

    @classmethod
    def of(cls, lengths: Sequence[int], limits: TextLimits) -> UsualSize:
        """From the body lengths of the site's latest texts (``Catalog.text_lengths``)."""
        if len(lengths) < limits.min_texts:
            return cls(None, len(lengths))
        return cls(int(statistics.median(lengths)), len(lengths))

    def threshold(self, limits: TextLimits) -> int:
        """Body characters below which a text of this site is degenerate."""
        if self.median is None:
            return limits.min_chars
        return max(limits.min_chars, math.ceil(limits.ratio * self.median))


def body_chars(article: Article) -> int:
    """Characters of the article's body: its paragraphs, without the headline."""
    return sum(len(p) for p in article.paragraphs)


def degenerate(article: Article, usual: UsualSize, limits: TextLimits) -> str | None:
    """Why the text is degenerate (one line, for the sidecar and the report), or None."""
    chars = body_chars(article)
    threshold = usual.threshold(limits)
    if chars >= threshold:
        return None
    if usual.median is None:
        why = f"the floor for a site with fewer than {limits.min_texts} texts ({usual.texts})"
    else:
        why = (
            f"{limits.ratio:g} of the site's usual {usual.median} "
            f"(median of its latest {usual.texts} texts)"
        )
    return f"body of {chars} characters, below {threshold}: {why}"


class DegenerateGuard:
    """:func:`degenerate` with each site's usual size, asked once per site of ``lengths``
    (``Catalog.text_lengths``: the body lengths of the site's latest texts; None, or a call
    that raises ``LookupError``: no catalog to ask, the floor only). Thread-safe. A run judges
    all its texts by the measure it first took: the texts it adds do not move it."""

    def __init__(
        self, limits: TextLimits, lengths: Callable[[str, int], Sequence[int]] | None
    ) -> None:
        self.limits = limits
        self._lengths = lengths
        self._usual: dict[str, UsualSize] = {}
        self._lock = threading.Lock()

    def usual(self, site: str) -> UsualSize:
        with self._lock:
            found = self._usual.get(site)
            if found is not None:
                return found
            lengths: Sequence[int] = ()
            if self._lengths is not None:
                try:
                    lengths = self._lengths(site, USUAL_SAMPLE)
                except LookupError as exc:
                    logger.warning("%s: the site's usual text size is unknown: %s", site, exc)
            found = self._usual[site] = UsualSize.of(lengths, self.limits)
            logger.info(
                "%s: a text under %d body characters is degenerate (%s)",
                site,
                found.threshold(self.limits),
                f"median {found.median} of {found.texts} texts"
                if found.median is not None
                else f"the floor: {found.texts} texts in the catalog",
            )
            return found

    def check(self, site: str, article: Article) -> str | None:
        """Why ``article`` (a text of ``site``) is degenerate, or None."""
        return degenerate(article, self.usual(site), self.limits)
