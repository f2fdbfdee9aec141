"""Extraction: HTML → article fields and cleaned text; pure functions, no I/O."""
