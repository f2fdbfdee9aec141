"""Downloading: the handler, the address guard, the challenge solver, middlewares, rendering."""
