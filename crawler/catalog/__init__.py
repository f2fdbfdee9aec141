"""The catalog: captures, text versions and the one place that decides a new version."""
