"""Every newsarchive setting with its default, grouped by component.

The add-on (``crawler.crawl.addon.Addon``) applies these at the "addon" priority, so the project
settings module, the spider's ``custom_settings``, ``-s NAME=VALUE`` and the environment
(a variable with the setting's exact name, e.g. ``ARCHIVE_WARC_MAX_SIZE=500000000``) all win
over them. ``NEWSARCHIVE_STORE`` is accepted as the environment name of ``ARCHIVE_STORE_URI``.
"""

from __future__ import annotations

# --- Run: one crawl of one site -------------------------------------------------------------
# Crawl id used in object keys and reports; empty = "<site>-<UTC time>-<random>".
ARCHIVE_CRAWL_ID = ""
# Route every request through this HTTP proxy (the loopback mirror in tests and the demo).
# Empty = direct connections (or Scrapy's own proxy handling from the environment).
ARCHIVE_PROXY = ""
# Write the JSON crawl report and the manifest into the store at crawl end.
ARCHIVE_REPORT_ENABLED = True

# --- Egress guard (crawler/fetch/netguard.py): no requests to the crawler's own network ----------
# A request (each redirect hop is one) whose connection would go to a private, shared, loopback,
# link-local (169.254.169.254 too), unique-local, multicast, unspecified or reserved address is
# refused before any connection: counted (archive/netguard/refused/<kind>) and a skip in the run
# report. Direct: the host's resolved address is checked. Through a proxy: the crawler connects
# only to the proxy; the one named by ARCHIVE_PROXY is trusted (the operator chose it: the
# loopback mirror in tests and the demo), any other is checked; the target's IP literals and
# "localhost" names are refused, and its other names are resolved by the proxy, which must refuse
# private addresses itself. Chromium's requests are checked the same way (its own name lookups
# may differ from ours: a name that changes its answer in between is not caught).
ARCHIVE_NETGUARD_ENABLED = True
# Networks (CIDR, comma-separated) that may be reached all the same, e.g. "10.20.0.0/16".
ARCHIVE_NETGUARD_ALLOW = ""

# --- Store: where everything lands ----------------------------------------------------------
# A local directory (path or file:// URI) or "s3://bucket/prefix" (any S3-compatible server).
# S3 credentials, endpoint and region come from boto3's own chain (AWS_ENDPOINT_URL,
# AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment, instance roles) or
# from Scrapy's settings AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
# AWS_ENDPOINT_URL, AWS_REGION_NAME. Never put a secret in a file of the repository.
ARCHIVE_STORE_URI = "./archive"
# Where WARC files are written while open and where objects wait for a remote store;
# empty = "<store>/.spool" for a local store, "$XDG_CACHE_HOME/newsarchive/spool"
# (~/.cache/newsarchive/spool) for S3.
ARCHIVE_SPOOL_DIR = ""
# Check the store before crawling (bucket exists, credentials work, the key may write).
# Off: crawl without the store and send the backlog later with `newsarchive upload`.
ARCHIVE_STORE_CHECK = True
# S3 addressing: "auto", "path" (MinIO, SeaweedFS, Ceph) or "virtual" (bucket in the host name).
ARCHIVE_STORE_S3_ADDRESSING_STYLE = "auto"
# Files from this size (bytes) upload in parts, each with its own SHA-256 checksum.
ARCHIVE_STORE_MULTIPART_THRESHOLD = 64 * 1024 * 1024
# Size of one part (at least 5 MiB; doubled as needed to stay within 10,000 parts).
ARCHIVE_STORE_MULTIPART_PART_SIZE = 8 * 1024 * 1024
# Parts of one file uploaded at once (each held in memory while it uploads), and texts and
# sidecars uploaded at once. 10, as boto3's upload_file.
ARCHIVE_STORE_CONCURRENCY = 10
# Attempts per request (botocore "standard" retries: exponential backoff on throttling, 5xx
# and connection errors).
ARCHIVE_STORE_MAX_ATTEMPTS = 5
# After a failed upload, send objects straight to the spool for this many seconds instead of
# waiting out the retries on each one; the store is tried again afterwards.
ARCHIVE_STORE_RETRY_AFTER = 60
# Keep a local copy of every uploaded spool file under "<spool>/kept/" (S3 only).
ARCHIVE_STORE_KEEP_LOCAL = False

# --- WARC capture ----------------------------------------------------------------------------
ARCHIVE_WARC_ENABLED = True
# File name prefix; empty = the spider's name.
ARCHIVE_WARC_PREFIX = ""
# Roll over to a new file past this many bytes (compressed) ...
ARCHIVE_WARC_MAX_SIZE = 1_000_000_000
# ... or when the open file is older than this many seconds (0 = never by age).
ARCHIVE_WARC_MAX_AGE = 3600
# gzip level of each record's member, on zlib's 0-9 scale: 1-3 deflate with ISA-L (zlib's
# ratio at that level for 2-5x less CPU: at 2, files ~15 % larger than zlib's 6 for a tenth of
# its CPU), 4-9 with zlib (6 is zlib's default), 0 stores uncompressed.
ARCHIVE_WARC_COMPRESS_LEVEL = 2
# Who runs this crawler: written into every warcinfo record (a URL or an e-mail address).
ARCHIVE_WARC_OPERATOR = ""

# --- Text: cleaned article text + JSON sidecar -----------------------------------------------
ARCHIVE_TEXT_ENABLED = True
# "article" (headline + body paragraphs, no chrome) or "page" (resiliparse main-content style).
ARCHIVE_TEXT_MODE = "article"
# Threads extracting text. Extraction is CPU-bound Python: more threads than one mostly add
# lock contention (measured: 2 threads, no faster; 10 threads, +65 % CPU per page).
ARCHIVE_TEXT_WORKERS = 1
# The degenerate-text guard: a text whose body (paragraphs under the headline, in characters)
# is below RATIO times the median body of the site's latest 200 texts (once it has MIN_TEXTS
# of them), or below MIN_CHARS on any site, is stored flagged beside the article's versions
# (flagged/<site>/…, "quality": "degenerate" in its sidecar), never as a version; the crawl
# report lists it. See crawler/text/quality.py.
ARCHIVE_TEXT_DEGENERATE_RATIO = 0.05
ARCHIVE_TEXT_DEGENERATE_MIN_CHARS = 20
ARCHIVE_TEXT_DEGENERATE_MIN_TEXTS = 20

# --- Catalog and incremental crawling ---------------------------------------------------------
# Record every capture and each article's text versions; skip articles already archived.
ARCHIVE_CATALOG_ENABLED = True
# Any SQLAlchemy URL (postgresql+psycopg://user@host/db when machines share one); empty =
# SQLite in "<store>/.catalog.sqlite" for a local store, beside the spool for S3.
ARCHIVE_CATALOG_URL = ""
# Ages after the first capture at which an article is fetched again to catch edits.
# "" or "0" = never.
ARCHIVE_REVISION_AGES = "1h,1d,7d"
# Every crawl first takes its site's lease in the catalog (one crawl of a site at a time, on
# any machine sharing the catalog) and renews it every third of this; a lease not renewed
# for this long (its crawl was killed, its machine lost) is taken over by the next crawl.
ARCHIVE_LEASE_TTL = "2m"
# Set by the daemon: the scheduled start (UTC, ISO) a crawl runs. A start already taken by a
# crawl on any replica of the daemon is not run again. Empty = no scheduled start.
ARCHIVE_SCHEDULED_START = ""
# Fetch every discovered article again, archived or not (the spider argument refresh=1 too).
ARCHIVE_REFRESH = False
# An article URL whose last answer was 404 or 410 (a dead link a feed or sitemap keeps
# listing) is not requested again for this many days, counted as skipped "gone"; asked again
# after that and still gone, it is listed in the report but not counted against the site's
# health (a new URL that 404s still is). 0 = ask it again every crawl.
ARCHIVE_GONE_RECHECK_DAYS = 7

# --- Indexes for researchers (crawler/access/indexes.py), written at crawl end --------------
# A CDXJ per WARC (index/<site>/Y/M/D/<name>.cdxj), a Parquet capture index per crawl
# (index/<site>/<crawl-id>.parquet), and each capture's records located in the catalog.
ARCHIVE_INDEX_ENABLED = True
# Also a WACZ package per crawl (wacz/<site>/<crawl-id>.wacz) for ReplayWeb.page; it holds a
# copy of the crawl's WARC files, so it doubles what the crawl stores.
ARCHIVE_WACZ_ENABLED = True
# Captures the crawl-end step holds at once (their rows, texts and CDXJ lines; a Parquet row
# group each): its memory stays the same whatever the crawl's size. Everything else waits on
# disk, in a scratch file in the spool.
ARCHIVE_INDEX_BATCH = 500

# --- Replay: a crawl answered from the archive (`newsarchive crawl SITE --from-archive`) ---------
# The real spider (discovery, parsing, text) with a download handler that answers every request
# from the archive's WARCs (through the catalog) instead of the network: nothing is fetched and
# nothing is written, no WARC, text, catalog row or store object; the crawl's report compares
# each article's text with the archived version. What someone changing selectors runs first.
ARCHIVE_REPLAY_ENABLED = False
# The crawl whose captures answer ("" = each URL's latest capture). A URL that crawl did not
# fetch is answered by its last capture before it: the archive as that crawl left it.
ARCHIVE_REPLAY_CRAWL_ID = ""

# --- Discovery ---------------------------------------------------------------------------------
# Articles whose feed or sitemap date is older than this many days are not requested unless
# the spider argument since= says otherwise (0 = no window: walk everything discovered).
ARCHIVE_DISCOVERY_WINDOW_DAYS = 30

# --- Retries -------------------------------------------------------------------------------------
# Retries wait what Retry-After asks (429, 503), else ARCHIVE_RETRY_BACKOFF seconds doubled at
# each attempt; a wait longer than ARCHIVE_RETRY_MAX_WAIT seconds gives up (counted).
ARCHIVE_RETRY_BACKOFF = 1.0
ARCHIVE_RETRY_MAX_WAIT = 120

# --- Rendering: pages fetched in Chromium (crawler/fetch/render.py, scrapy-playwright) -----------
# A spider renders its listing and article pages when its class sets render_pages = True; any
# request does with meta {"archive_render": True}. Everything else is fetched plainly. Off: no
# page is rendered (they are all fetched plainly).
ARCHIVE_RENDER_ENABLED = True
# The Chromium binary (Debian's package: apt-get install chromium). Playwright's own browser
# download is not used. Only started once a page is rendered.
ARCHIVE_RENDER_EXECUTABLE = "/usr/bin/chromium"
# Seconds a page may take to load (its load event); a slower page is abandoned, counted
# (archive/render/timeout, and a skip in the crawl report), and the crawl goes on.
ARCHIVE_RENDER_PAGE_TIMEOUT = 30
# After the load event, wait until no request has been open for this many seconds (scripts
# that fetch the content), within the same page timeout.
ARCHIVE_RENDER_IDLE = 0.3
# Pages open at once (PLAYWRIGHT_MAX_PAGES_PER_CONTEXT, when that is not set itself) ...
ARCHIVE_RENDER_MAX_PAGES = 4
# ... browser contexts at once (PLAYWRIGHT_MAX_CONTEXTS, likewise) ...
ARCHIVE_RENDER_MAX_CONTEXTS = 2
# ... and a fresh context after this many pages: cache and memory of a long crawl do not grow.
ARCHIVE_RENDER_CONTEXT_PAGES = 100
# Resource types the browser does not fetch, comma-separated (Playwright's names: image, media,
# font, stylesheet, script, xhr, fetch, ...). PLAYWRIGHT_ABORT_REQUEST is honoured as well.
ARCHIVE_RENDER_BLOCK = "media"
# The browser's egress proxy cuts a response body past this many bytes, on the wire or once its
# gzip/deflate/br coding is undone (a decompression bomb never reaches Chromium whole): what came
# is archived, marked WARC-Truncated: length, and counted (archive/egress/truncated).
ARCHIVE_RENDER_MAX_BODY = 8 * 1024 * 1024
# Also archive a full-page PNG screenshot of each rendered page (a resource record).
ARCHIVE_RENDER_SCREENSHOT = False
# Base64 SHA-256 SPKI hashes (comma-separated) of the only certificates the browser's egress
# proxy accepts upstream instead of the system's CAs: only for the loopback mirror (tests, demo),
# refused unless ARCHIVE_PROXY is on loopback. Certificate errors are never ignored otherwise
# (Chromium itself trusts only its crawl's egress proxy).
ARCHIVE_RENDER_TRUSTED_SPKI = ""
# Seconds the browser may take to solve a site's cookie challenge (crawler/fetch/challenge.py).
ARCHIVE_CHALLENGE_TIMEOUT = 20
# A request answered by a challenge again right after a solve is given up after this many solves.
ARCHIVE_CHALLENGE_MAX_SOLVES = 2

# --- Site health ---------------------------------------------------------------------------------
# A crawl that discovers no article is an error (ERROR log, exit 1); so is one where more than
# this share of the article pages failed to parse, once at least ARCHIVE_HEALTH_MIN_FAILED did.
ARCHIVE_HEALTH_MAX_FAILED_RATIO = 0.5
ARCHIVE_HEALTH_MIN_FAILED = 3

# --- Schedule: the daemon (`newsarchive run`) --------------------------------------------------
# When each site is crawled: a cron expression, 5 fields (minute hour day month weekday, weekday
# 0 or 7 = Sunday) or 6 with seconds first. ARCHIVE_SCHEDULE overrides it per site, and an
# operator's TOML file (ARCHIVE_SCHEDULE_FILE, see deploy/schedule.toml.example) overrides both.
ARCHIVE_SCHEDULE_CRON = "0 */2 * * *"
# Extra crawls to catch article edits (revision ages, ARCHIVE_REVISION_AGES). Every crawl
# fetches the articles due for a revision first; feeds and sitemaps are conditional requests, so
# a crawl between the regular ones costs little besides the revisions. "" = no extra crawls.
ARCHIVE_SCHEDULE_REVISIONS_CRON = "30 */6 * * *"
# Per site: {"irna": "*/30 * * * *"} or {"irna": {"crawl": "...", "revisions": "",
# "stale_after": "12h", "enabled": false, "args": {"max_articles": "50"}}} (JSON in the env).
ARCHIVE_SCHEDULE: dict[str, object] = {}
# Operator-editable schedule file (TOML); "" = none.
ARCHIVE_SCHEDULE_FILE = ""
# News sources run by the generic spider (crawler/crawl/sources.py): a TOML file of
# [sources.<name>] tables, written by `newsarchive sources add URL`. Empty = "sources.toml"
# beside ARCHIVE_SCHEDULE_FILE when that is set, else ./sources.toml when it exists. A file
# named here must exist; every entry is checked before any crawl starts.
ARCHIVE_SOURCES_FILE = ""
# Each start is moved by up to this many seconds at random (spreads load on the sites).
ARCHIVE_SCHEDULE_JITTER = 300
# A crawl running longer than this many seconds is stopped (SIGTERM, SIGKILL after the grace).
ARCHIVE_SCHEDULE_TIME_LIMIT = 3 * 3600
# Seconds a stopped crawl gets to close its WARCs and upload before it is killed (time limit,
# daemon shutdown). Keep it below the stop timeout of the service manager (compose, k8s, systemd).
ARCHIVE_SCHEDULE_GRACE = 120
# A start missed by up to this many seconds (daemon busy or asleep) still runs, once: missed
# starts are coalesced, never piled up.
ARCHIVE_SCHEDULE_MISFIRE_GRACE = 900
# Crawls of different sites running at once (a site never runs twice at once).
ARCHIVE_SCHEDULE_MAX_RUNNING = 2
# Time zone of the cron expressions.
ARCHIVE_SCHEDULE_TIMEZONE = "UTC"

# --- Status, alerts, metrics, logs ---------------------------------------------------------------
# A site is stale (ERROR log, `newsarchive status --check` exits 1, metric newsarchive_site_stale)
# when its newest article is older than this: 90m, 12h, 2d, 1w. Per site in ARCHIVE_SCHEDULE or
# the schedule file ("stale_after").
ARCHIVE_STATUS_STALE_AFTER = "2d"
# Seconds between the daemon's staleness checks (each stale site is logged as an ERROR). The
# daemon records a heartbeat in the catalog at each; `status --check` fails when a daemon's is
# older than three intervals (plus a minute).
ARCHIVE_STATUS_CHECK_INTERVAL = 600
# `status --check` fails for a site whose latest this many runs all failed (also an ERROR in the
# daemon's checks). A site that never archived an article fails at its first failed run.
ARCHIVE_STATUS_MAX_FAILED_RUNS = 3
# Prometheus metrics from the daemon on this port (0 = off), on this address.
ARCHIVE_METRICS_PORT = 0
ARCHIVE_METRICS_ADDRESS = "127.0.0.1"
# "text" or "json" (one JSON object per line) for the daemon, the commands and every crawl.
ARCHIVE_LOG_FORMAT = "text"
# Each crawl's whole log (Scrapy's lines included): "file" = its own file,
# <log dir>/<site>/<crawl id>.log, with only its problems on the terminal (or the daemon's
# stderr); "stderr" = all of it to stderr (one stream for journald or a container's log).
ARCHIVE_CRAWL_LOG = "file"
# The crawl logs' directory; empty = "<store>/.logs" for a local store, else "logs" beside the
# spool (~/.cache/newsarchive/logs).
ARCHIVE_LOG_DIR = ""
# Crawl logs kept per site (the newest); older ones are deleted as each crawl starts.
ARCHIVE_LOG_KEEP = 50
