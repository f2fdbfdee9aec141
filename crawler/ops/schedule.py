"""When each site is crawled: cron schedules from settings and the operator's schedule file.

A schedule file (TOML, ``ARCHIVE_SCHEDULE_FILE`` or ``newsarchive run --schedule``) overrides
the settings; every mistake in it is one line naming the file, the site and the key::

    [defaults]
    crawl = "0 */2 * * *"         # minute hour day month weekday (0 or 7 = Sunday)
    revisions = "30 */6 * * *"    # extra crawls for the revision re-fetches; "" = none
    jitter = 300                  # seconds
    time_limit = 10800            # seconds
    stale_after = "2d"

    [sites.irna]
    crawl = "*/30 * * * *"
    stale_after = "12h"

    [sites.president]
    enabled = false

    [sites.tdi.args]              # spider arguments
    max_articles = 50
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.triggers.cron import CronTrigger

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
SITE_KEYS = {"crawl", "revisions", "jitter", "time_limit", "stale_after", "enabled", "args"}
FILE_KEYS = {"defaults", "sites"}


class ScheduleError(ValueError):
    """A schedule that cannot be used; the message names where the mistake is."""


def parse_duration(value: object, what: str) -> timedelta:
    """``90m``, ``12h``, ``2d``, ``1w``, or seconds as a number."""
    match = _DURATION.match(str(value)) if not isinstance(value, bool) else None
    if match is None:
        raise ScheduleError(f"{what}: {value!r} is not a duration like 3600, 90m, 12h, 2d or 1w")
    return timedelta(seconds=float(match[1]) * _UNIT[match[2]])


def _weekdays(field_value: str) -> str:
    # Cron counts weekdays from Sunday = 0 (7 too); APScheduler 3 from Monday = 0: use names.
    return re.sub(r"\d+", lambda m: _WEEKDAYS[int(m[0])] if int(m[0]) < 8 else m[0], field_value)


def cron_trigger(expr: str, *, timezone: str, jitter: int | None, what: str) -> CronTrigger:
    """A 5-field crontab expression, or 6 fields with seconds first."""
    fields = expr.split()
    if len(fields) not in (5, 6):
        raise ScheduleError(
            f"{what}: {expr!r} has {len(fields)} fields; a cron expression has 5 "
            "(minute hour day month weekday) or 6 (second first)"
        )
    if len(fields) == 5:
        fields.insert(0, "0")
    second, minute, hour, day, month, weekday = fields
    try:
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_weekdays(weekday),
            timezone=timezone,
            jitter=jitter or None,
        )
    except (ValueError, LookupError) as exc:
        raise ScheduleError(f"{what}: bad cron expression {expr!r}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class SiteSchedule:
    site: str
    crawl: str
    revisions: str
    jitter: int
    time_limit: float
    stale_after: timedelta
    enabled: bool = True
    args: Mapping[str, str] = field(default_factory=dict)

    def triggers(self, timezone: str) -> dict[str, CronTrigger]:
        """The job kinds of this site ("crawl", "revisions") and their triggers."""
        found = {"crawl": self.crawl, "revisions": self.revisions}
        return {
            kind: cron_trigger(expr, timezone=timezone, jitter=self.jitter, what=self.site)
            for kind, expr in found.items()
            if expr
        }

    def next_run(self, now: datetime, timezone: str) -> tuple[datetime, str] | None:
        """The next start (without jitter) and its kind."""
        upcoming = []
        for kind, expr in (("crawl", self.crawl), ("revisions", self.revisions)):
            if expr:
                trigger = cron_trigger(expr, timezone=timezone, jitter=None, what=self.site)
                when = trigger.get_next_fire_time(None, now)
                if when is not None:
                    upcoming.append((when, kind))
        return min(upcoming) if upcoming else None


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    sites: tuple[SiteSchedule, ...]
    timezone: str = "UTC"
    grace: float = 120.0
    misfire_grace: int = 900
    max_running: int = 2
    check_interval: float = 600.0
    source: str = "settings"

    @classmethod
    def from_settings(
        cls, settings: BaseSettings, sites: Sequence[str], *, file: str | Path | None = None
    ) -> ScheduleConfig:
        """Defaults from settings, ``ARCHIVE_SCHEDULE`` per site, then the schedule file."""
        timezone = str(settings.get("ARCHIVE_SCHEDULE_TIMEZONE") or "UTC")
        defaults: dict[str, Any] = {
            "crawl": str(settings.get("ARCHIVE_SCHEDULE_CRON") or ""),
            "revisions": str(settings.get("ARCHIVE_SCHEDULE_REVISIONS_CRON") or ""),
            "jitter": settings.get("ARCHIVE_SCHEDULE_JITTER", 0),
            "time_limit": settings.get("ARCHIVE_SCHEDULE_TIME_LIMIT", 3 * 3600),
            "stale_after": settings.get("ARCHIVE_STATUS_STALE_AFTER", "2d"),
            "enabled": True,
            "args": {},
        }
        try:
            per_site: dict[str, Any] = dict(settings.getdict("ARCHIVE_SCHEDULE"))
        except ValueError as exc:
            raise ScheduleError(f"ARCHIVE_SCHEDULE must be a JSON object: {exc}") from exc
        per_site = {
            site: ({"crawl": entry} if isinstance(entry, str) else entry)
            for site, entry in per_site.items()
        }
        source = "settings"
        path = file or settings.get("ARCHIVE_SCHEDULE_FILE") or ""
        if path:
            source = str(path)
            file_defaults, file_sites = load_schedule_file(Path(path))
            defaults.update(file_defaults)
            for site, entry in file_sites.items():
                per_site[site] = {**per_site.get(site, {}), **entry}
        unknown = sorted(set(per_site) - set(sites))
        if unknown:
            raise ScheduleError(
                f"{source}: unknown site(s) {', '.join(unknown)} (sites: {', '.join(sites)})"
            )
        schedules = []
        for site in sites:
            entry = {**defaults, **per_site.get(site, {})}
            schedules.append(_site_schedule(site, entry, source, timezone))
        return cls(
            sites=tuple(schedules),
            timezone=timezone,
            grace=_seconds(settings.get("ARCHIVE_SCHEDULE_GRACE", 120), "ARCHIVE_SCHEDULE_GRACE"),
            misfire_grace=int(
                _seconds(
                    settings.get("ARCHIVE_SCHEDULE_MISFIRE_GRACE", 900),
                    "ARCHIVE_SCHEDULE_MISFIRE_GRACE",
                )
            ),
            max_running=_positive_int(
                settings.get("ARCHIVE_SCHEDULE_MAX_RUNNING", 2), "ARCHIVE_SCHEDULE_MAX_RUNNING"
            ),
            check_interval=_seconds(
                settings.get("ARCHIVE_STATUS_CHECK_INTERVAL", 600), "ARCHIVE_STATUS_CHECK_INTERVAL"
            ),
            source=source,
        )

    def site(self, name: str) -> SiteSchedule:
        for schedule in self.sites:
            if schedule.site == name:
                return schedule
        raise KeyError(name)


def load_schedule_file(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(defaults, per-site entries) of a schedule file, with its keys checked."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScheduleError(f"schedule file {path}: cannot read it: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ScheduleError(f"schedule file {path}: not UTF-8 text: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:  # its message gives the line and column
        raise ScheduleError(f"schedule file {path}: {exc}") from exc
    unknown = sorted(set(data) - FILE_KEYS)
    if unknown:
        raise ScheduleError(
            f"schedule file {path}: unknown table or key {', '.join(unknown)} "
            "(expected [defaults] and [sites.<site>])"
        )
    defaults = data.get("defaults", {})
    sites = data.get("sites", {})
    if not isinstance(defaults, dict) or not isinstance(sites, dict):
        raise ScheduleError(f"schedule file {path}: [defaults] and [sites] must be tables")
    _check_keys(defaults, f"schedule file {path}: [defaults]")
    for site, entry in sites.items():
        if not isinstance(entry, dict):
            raise ScheduleError(f"schedule file {path}: [sites.{site}] must be a table")
        _check_keys(entry, f"schedule file {path}: [sites.{site}]")
    return defaults, sites


def _check_keys(entry: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(entry) - SITE_KEYS)
    if unknown:
        raise ScheduleError(
            f"{where}: unknown key {', '.join(unknown)} (keys: {', '.join(sorted(SITE_KEYS))})"
        )


def _site_schedule(site: str, entry: Mapping[str, Any], source: str, tz: str) -> SiteSchedule:
    where = f"{source}: site {site}"
    for key in ("crawl", "revisions"):
        if not isinstance(entry[key], str):
            raise ScheduleError(f"{where}: {key} must be a cron expression in quotes")
    if not isinstance(entry["enabled"], bool):
        raise ScheduleError(f"{where}: enabled must be true or false")
    args = entry["args"]
    if not isinstance(args, Mapping) or any(isinstance(v, (dict, list)) for v in args.values()):
        raise ScheduleError(f"{where}: args must be a table of spider arguments (name = value)")
    schedule = SiteSchedule(
        site=site,
        crawl=entry["crawl"].strip(),
        revisions=entry["revisions"].strip(),
        jitter=int(_seconds(entry["jitter"], f"{where}: jitter")),
        time_limit=_seconds(entry["time_limit"], f"{where}: time_limit"),
        stale_after=parse_duration(entry["stale_after"], f"{where}: stale_after"),
        enabled=entry["enabled"],
        args={str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in args.items()},
    )
    if schedule.enabled and not schedule.crawl:
        raise ScheduleError(f"{where}: crawl is empty (set enabled = false to stop the site)")
    if schedule.time_limit <= 0:
        raise ScheduleError(f"{where}: time_limit must be more than 0 seconds")
    for kind, expr in (("crawl", schedule.crawl), ("revisions", schedule.revisions)):
        if expr:
            cron_trigger(expr, timezone=tz, jitter=None, what=f"{where}: {kind}")
    return schedule


def _seconds(value: object, what: str) -> float:
    return parse_duration(value, what).total_seconds()


def _positive_int(value: object, what: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise ScheduleError(f"{what} must be a whole number, got {value!r}") from None
    if number < 1:
        raise ScheduleError(f"{what} must be at least 1, got {number}")
    return number
