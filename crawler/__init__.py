"""newsarchive: scheduled scraping and archiving of news sites."""

import os

__version__ = "0.1.0"

# Scrapy's cookie middleware asks tldextract for the public suffix list, which by default
# downloads it from GitHub on first use: a request to a host the operator never named (and,
# in tests, a packet off loopback). The snapshot tldextract ships is enough to tell public
# suffixes; an operator who wants fresh lists can set the variable to URLs.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
