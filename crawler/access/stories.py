"""Linking a text to the same story on other sites, as it is recorded (the crawl) or rebuilt
(``reindex``): its story keys stored, its candidates found in the catalog, each candidate
decided on the two texts by crawler.text.similar, the links kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from crawler.catalog.db import Catalog
from crawler.catalog.stories import (
    StoryText,
    candidates,
    put_keys,
    put_link,
    story_text,
    unkeyed,
)
from crawler.text import similar

logger = logging.getLogger(__name__)


def _published(text: StoryText) -> datetime | None:
    """The moment, or for a date-only value its day at noon UTC (within half a day of any
    zone's reading of it)."""
    value = text.published_at or (text.published_date and text.published_date + "T12:00:00Z")
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def link_text(catalog: Catalog, text_id: int) -> int:
    """Store a text's story keys and link it to the texts of other sites that tell the same
    story; the number of links made."""
    text = story_text(catalog, text_id)
    if text is None:
        return 0
    bands = similar.bands(similar.signature(text.body))
    names = similar.name_keys(text.body)
    put_keys(catalog, text, bands, names, similar.SIGNATURE_VERSION)
    found = candidates(
        catalog,
        text,
        bands,
        names,
        min_names=similar.SAME_EVENT_NAMES,
        days=similar.SAME_EVENT_DAYS,
    )
    made = 0
    for other in found:
        link = similar.link_kind(
            text.body,
            other.body,
            a_site=text.site,
            b_site=other.site,
            a_published=_published(text),
            b_published=_published(other),
        )
        if link is not None and put_link(catalog, text.id, other.id, link.kind, link.score):
            made += 1
    return made


def link_all(catalog: Catalog, progress: Callable[[int, int], None] | None = None) -> int:
    """Link every text whose story keys are missing or of an older scheme (``reindex``)."""
    todo = unkeyed(catalog, similar.SIGNATURE_VERSION)
    made = 0
    for done, text_id in enumerate(todo, 1):
        made += link_text(catalog, text_id)
        if progress is not None:
            progress(done, len(todo))
    return made
