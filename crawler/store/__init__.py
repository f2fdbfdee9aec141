"""Stores: one interface, a local directory and S3; the spool and its backlog; no Scrapy."""
