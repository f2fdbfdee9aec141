"""The archive's settings as every command sees them, without Scrapy.

One order, for a crawl (through the add-on) and for the commands that only read the archive:
the defaults in ``settings/defaults.py``, then the project module ``settings``, then the
environment (``ARCHIVE_*`` names and ``NEWSARCHIVE_STORE``), then ``-s NAME=VALUE``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

ENV_ALIASES = {"NEWSARCHIVE_STORE": "ARCHIVE_STORE_URI"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def archive_defaults() -> dict[str, Any]:
    """Every ``ARCHIVE_*`` setting with its default (``settings/defaults.py``)."""
    from settings import defaults

    return {k: getattr(defaults, k) for k in dir(defaults) if k.startswith("ARCHIVE_")}


def environment_overrides(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The settings the environment sets: ``ARCHIVE_*`` names and their aliases."""
    environ = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for env_name, setting in ENV_ALIASES.items():
        if environ.get(env_name):
            out[setting] = environ[env_name]
    for name in archive_defaults():
        if name in environ:
            out[name] = environ[name]
    return out


def parse_pairs(pairs: Sequence[str], what: str) -> dict[str, str]:
    """``NAME=VALUE`` pairs of a repeated command-line option (``-s``, ``-a``)."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            # A usage error, as argparse's own: one line and exit 2.
            print(f"error: {what} must be NAME=VALUE, got {pair!r}", file=sys.stderr)
            raise SystemExit(2)
        out[name] = value
    return out


class Options(Mapping[str, Any]):
    """Read-only settings with Scrapy's typed getters (``getbool``, ``getint`` …)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def getbool(self, name: str, default: bool = False) -> bool:
        value = self.get(name, default)
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"{name} must be true or false (1/0), got {value!r}")

    def getint(self, name: str, default: int = 0) -> int:
        return int(self.get(name, default))

    def getfloat(self, name: str, default: float = 0.0) -> float:
        return float(self.get(name, default))

    def getdict(self, name: str) -> dict[str, Any]:
        value = self.get(name) or {}
        return dict(json.loads(value) if isinstance(value, str) else value)


def load_options(pairs: Sequence[str] = (), *, module: str = "settings") -> Options:
    """The settings a crawl would see, read without Scrapy (for the researcher's commands)."""
    import importlib

    values: dict[str, Any] = archive_defaults()
    project = importlib.import_module(module)
    values.update({k: getattr(project, k) for k in dir(project) if k.isupper()})
    values.update(environment_overrides())
    values.update(parse_pairs(pairs, "-s"))
    return Options(values)


# -- typed reads that name the setting -------------------------------------------------------
# Scrapy's getters raise "invalid literal for int() with base 10: 'zero'"; these say which
# setting, the value given and what is allowed. They read any settings object with ``get``.
def setting_bool(settings: Any, name: str) -> bool:
    value = settings.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{name} must be true or false (1/0, yes/no, on/off), got {value!r}")


def setting_int(
    settings: Any, name: str, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    value = settings.get(name)
    try:
        if isinstance(value, bool) or value is None:
            raise ValueError(value)
        number = int(value) if not isinstance(value, float) or value.is_integer() else None
        if number is None:
            raise ValueError(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    _check_range(name, value, number, minimum, maximum)
    return number


def setting_float(
    settings: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
) -> float:
    value = settings.get(name)
    try:
        if isinstance(value, bool) or value is None:
            raise ValueError(value)
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if above is not None and not number > above:
        raise ValueError(f"{name} must be more than {_num(above)}, got {value!r}")
    _check_range(name, value, number, minimum, maximum)
    return number


def _check_range(
    name: str, value: object, number: float, minimum: float | None, maximum: float | None
) -> None:
    if minimum is not None and maximum is not None and not minimum <= number <= maximum:
        raise ValueError(f"{name} must be {_num(minimum)} to {_num(maximum)}, got {value!r}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be at least {_num(minimum)}, got {value!r}")
    if maximum is not None and number > maximum:
        raise ValueError(f"{name} must be at most {_num(maximum)}, got {value!r}")


def _num(bound: float) -> str:
    """A bound as people write it: 5242880, not 5.24288e+06; 0.5 stays 0.5."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def setting_choice(settings: Any, name: str, choices: Sequence[str]) -> str:
    value = settings.get(name)
    text = str(value if value is not None else "")
    if text not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return text


def positive_arg(value: str) -> int:
    """An argparse type: a whole number of at least 1 (``--limit``, ``--threads``, versions)."""
    number = not_negative_arg(value)
    if number == 0:
        raise argparse.ArgumentTypeError(f"a positive whole number, not {value!r}")
    return number


def not_negative_arg(value: str) -> int:
    """An argparse type: a whole number of at least 0 (``--offset``)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number, not {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"a whole number of 0 or more, not {value!r}")
    return number
