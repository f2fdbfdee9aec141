"""Scrapy project settings for newsarchive (``scrapy crawl <site>`` and ``newsarchive crawl``)."""

from __future__ import annotations

from crawler.util import keep_tldextract_offline

keep_tldextract_offline()

BOT_NAME = "newsarchive"
SPIDER_MODULES = ["spiders"]
NEWSPIDER_MODULE = "spiders"
# The spiders of spiders/ plus one generic spider per entry of the sources file.
SPIDER_LOADER_CLASS = "crawler.crawl.generic.SourcesSpiderLoader"

# The add-on wires in WARC capture, text writing and the crawl report (see settings/defaults.py).
ADDONS = {"crawler.crawl.addon.Addon": 0}

# Politeness: obey robots.txt, name ourselves and a contact, keep a per-host limit.
ROBOTSTXT_OBEY = True
USER_AGENT = "newsarchive/0.1 (+https://github.com/newsarchive/newsarchive; news archiving)"
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 4
DOWNLOAD_DELAY = 0.5
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 0.5
AUTOTHROTTLE_TARGET_CONCURRENCY = 2.0

# Limits on every download: 32 MiB body, 60 s.
DOWNLOAD_MAXSIZE = 32 * 1024 * 1024
DOWNLOAD_WARNSIZE = 8 * 1024 * 1024
DOWNLOAD_TIMEOUT = 60
# A truncated body is archived (marked WARC-Truncated) instead of being thrown away.
DOWNLOAD_FAIL_ON_DATALOSS = False
RETRY_TIMES = 2
REDIRECT_MAX_TIMES = 10

TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
FEED_EXPORT_ENCODING = "utf-8"
LOG_LEVEL = "INFO"
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False  # Scrapy 2.19 would open a control port in every crawl
