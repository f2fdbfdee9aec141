"""Names of every public surface: request meta keys, stats keys, settings prefixes."""

from __future__ import annotations

# Request/response meta keys.
META_DISCOVERY = "archive_discovery"  # list of dicts: how the URL was found (feed, sitemap…)
META_ARTICLE_KEY = "archive_article_key"  # canonical article key decided by the spider
META_CAPTURE = "archive_capture"  # CaptureInfo of the captured response (set by WarcCapture)
META_CONDITIONAL = "archive_conditional"  # True: send If-None-Match/If-Modified-Since if known
META_SKIP_CAPTURE = "archive_skip_capture"  # True: do not write this exchange to WARC
# (payload as received, Content-Encoding values, Content-Length) of an article response, kept
# from response_downloaded until the spider checks the payload is whole (crawl/spider.py).
META_WIRE_PAYLOAD = "archive_wire_payload"
# "feed", "sitemap" or "listing": a discovery request, whose failure is a failed source.
META_SOURCE = "archive_source"
# True: an article whose last answer was "gone" (GONE_STATUSES), asked again at its recheck.
META_GONE = "archive_gone"
# The answers that say an article URL is gone for good: 410 by definition, 404 as sites remove
# posts. Not 403 or 451 (a site blocking us, often all of it), nor 429 or 5xx (passing): the
# site's health must still see those every crawl.
GONE_STATUSES = (404, 410)

# Stats keys.
STATS_WARC_RECORDS = "archive/warc/records"
STATS_WARC_RECORDS_BY_TYPE = "archive/warc/records/{type}"
STATS_WARC_BYTES = "archive/warc/bytes"
STATS_WARC_FILES = "archive/warc/files"
STATS_WARC_ERRORS = "archive/warc/errors"
STATS_WARC_RECOVERED = "archive/warc/recovered_files"
STATS_WARC_TRUNCATED = "archive/warc/truncated"
STATS_ARTICLES_DISCOVERED = "archive/articles/discovered"  # distinct keys feeds etc. gave
STATS_ARTICLES_REQUESTED = "archive/articles/requested"  # article requests sent (fetch tried)
STATS_ARTICLES_NEW = "archive/articles/new"
STATS_ARTICLES_NO_TITLE = "archive/articles/no_title"  # archived, but no headline was found
STATS_ARTICLES_REVISED = "archive/articles/revised"  # a new text version of an archived article
STATS_ARTICLES_UNCHANGED = "archive/articles/unchanged"  # re-fetched, same text
STATS_ARTICLES_FAILED = "archive/articles/failed"
STATS_ARTICLES_FAILED_REASON = "archive/articles/failed/{reason}"
# A text far below the site's usual size: stored flagged beside, never a version (pipeline.py).
STATS_ARTICLES_DEGENERATE = "archive/articles/degenerate"
# A page whose decoding is suspect (mojibake, U+FFFD past the threshold): its sidecar says so.
STATS_TEXT_DECODING_SUSPECT = "archive/text/decoding_suspect"
STATS_SKIPPED = "archive/skipped/{reason}"
STATS_SOURCES_REQUESTED = "archive/sources/requested"  # feed, sitemap and listing requests sent
STATS_TEXT_BYTES = "archive/text/bytes"
STATS_STORE_OBJECTS = "archive/store/objects"
STATS_STORE_BYTES = "archive/store/bytes"
META_HTTP_REASON = "archive_http_reason"  # the reason phrase of the response's status line
META_HTTP_HEAD = "archive_http_head"  # the response head's raw lines (status line first)
META_RENDER = "archive_render"  # True: fetch this request in Chromium (crawler/fetch/render.py)
META_RENDER_READY = "archive_render_ready"  # CSS selector present once the page is rendered
STATS_RENDER_NOT_READY = "archive/render/not_ready"  # its selector never appeared: taken as is
META_CHALLENGE_SOLVES = "archive_challenge_solves"  # challenge solves behind this request
STATS_RENDER_PAGES = "archive/render/pages"  # pages rendered and archived
STATS_RENDER_TIMEOUT = "archive/render/timeout"  # pages abandoned at ARCHIVE_RENDER_PAGE_TIMEOUT
STATS_RENDER_RESOURCES = "archive/render/resources"  # network responses captured by the browser
STATS_CHALLENGE_SEEN = "archive/challenge/seen"  # challenge pages received
# The WARC field on the response (or revisit) record of a challenge page: kept as received,
# indexed apart (CDXJ key ``urn:challenge:<url>``), ``challenge`` in the catalog and Parquet.
CHALLENGE_FIELD = "WARC-Challenge"
CHALLENGE_RECORD = "challenge"  # record_type of a challenge capture in the catalog and Parquet
CHALLENGE_URI_PREFIX = "urn:challenge:"
STATS_CHALLENGE_SOLVED = "archive/challenge/solved"  # solved in the browser
STATS_CHALLENGE_FAILED = "archive/challenge/failed"  # could not be solved: request given up

# A crawl answered from the archive (``--from-archive``, crawler/fetch/archive.py).
STATS_REPLAY_RESPONSES = "archive/replay/responses"  # requests answered from the archive
STATS_REPLAY_RENDERED = "archive/replay/rendered"  # ... with the DOM a browser made of the page
STATS_REPLAY_NOT_RENDERED = "archive/replay/not_rendered"  # asked to render, no DOM archived
STATS_REPLAY_MISSED = "archive/replay/missed/{cause}"  # not answered: not-in-archive, archive-…
STATS_REPLAY_SAME = "archive/replay/articles/same"  # text identical to the archived version
STATS_REPLAY_DIFFER = "archive/replay/articles/differ"  # text differs from the archived one
STATS_REPLAY_UNARCHIVED = "archive/replay/articles/unarchived"  # no archived text to compare
STATS_ARTICLES_REPLAYED = "archive/articles/replayed"  # extracted in a replay (nothing written)
# A replay's finish reason when there is nothing to replay (no catalog, no capture, no crawl).
REPLAY_UNAVAILABLE = "replay-unavailable"

# Exit codes of every command: done, failed (a crawl or a site), bad usage or configuration.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
# The site's lease is held by another crawl (or its scheduled start ran elsewhere): not crawled.
EXIT_BUSY = 3
# A crawl's finish reason when it did not take the site's lease.
SITE_BUSY = "site-busy"
# A crawl's finish reason when its catalog describes another store.
CATALOG_MISMATCH = "catalog-mismatch"
