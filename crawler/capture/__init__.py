"""WARC records, the rolling writer, exchange → records; no Scrapy, no site, no store."""
