"""Linking a text to the same story on other sites, as it is recorded (the crawl) or rebuilt
(``reindex``): its story keys stored, its candidates found in the catalog, each candidate
decided on the two texts by crawler.text.similar, the links kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from crawler.catalog.db import Catalog, StoryKeys
from crawler.catalog.stories import (
    StoryText,
    candidates,
    forget_keys,
    put_keys,
    put_link,
    story_text,
    story_text_of_key,
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


def story_keys(body: str) -> StoryKeys:
    """A text's story keys, for ``Catalog.record_text`` to store with its version: those of
    the body as the catalog keeps it (without NUL), as :func:`link_text` and reindex make them."""
    body = body.replace("\x00", "")
    bands = similar.bands(similar.signature(body))
    return StoryKeys(bands, similar.name_keys(body), similar.SIGNATURE_VERSION)


def link_text(catalog: Catalog, text_id: int) -> int:
    """Store a text's story keys and link it to the texts of other sites that tell the same
    story; the number of links made."""
    text = story_text(catalog, text_id)
    if text is None:
        return 0
    keys = story_keys(text.body)
    put_keys(catalog, text, keys.bands, keys.names, keys.scheme)
    return _link(catalog, text, keys)


def link_recorded(catalog: Catalog, text_key: str, keys: StoryKeys) -> int:
    """Link a text that ``record_text`` stored with these story keys (they were committed
    with its version, so of two texts recorded at once the second to look finds the first);
    the number of links made. If linking fails, the text is marked unkeyed (if the catalog
    still answers), so that ``reindex`` links it to the texts recorded before it."""
    try:
        text = story_text_of_key(catalog, text_key)
        return 0 if text is None else _link(catalog, text, keys)
    except Exception:
        try:
            forget_keys(catalog, text_key)
        except Exception as exc:  # the first failure is the one to report
            logger.debug("%s: not marked unkeyed either: %s", text_key, exc)
        raise


def _link(catalog: Catalog, text: StoryText, keys: StoryKeys) -> int:
    found = candidates(
        catalog,
        text,
        keys.bands,
        keys.names,
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
