"""Researcher access: per-crawl indexes, queries, exports, reindexing, the HTTP service."""
