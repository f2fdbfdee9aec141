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

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.triggers.cron import CronTrigger

from crawler import util

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
SITE_KEYS = {"crawl", "revisions", "jitter", "time_limit", "stale_after", "enabled", "args"}
FILE_KEYS = {"defaults", "sites"}


class ScheduleError(ValueError):
    """A schedule that cannot be used; the message names where the mistake is."""


def parse_duration(value: object, what: str) -> timedelta:
    """``90m``, ``12h``, ``2d``, ``1w``, or seconds as a number (``crawler.util``'s rule)."""
    try:
        return util.parse_duration(value, what)
    except ValueError as exc:
        raise ScheduleError(str(exc)) from None


def _weekdays(field_value: str) -> str:
    # Cron counts weekdays from Sunday = 0 (7 too); APScheduler 3 from Monday = 0: use names.
    return re.sub(r"\d+", lambda m: _WEEKDAYS[int(m[0])] if int(m[0]) < 8 else m[0], field_value)


logger = logging.getLogger(__name__)

_SIX_FIELDS_TOLD: set[str] = set()  # 6-field expressions already explained in this process


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
    elif expr not in _SIX_FIELDS_TOLD:
        # Some crons put the year last, Quartz puts seconds first: say which reading holds.
        _SIX_FIELDS_TOLD.add(expr)
        logger.warning(
            "%s: %r has 6 fields, read with seconds first: second %s, minute %s, hour %s, "
            "day %s, month %s, weekday %s (give 5 fields for a crontab line)",
            what,
            expr,
            *fields,
        )
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

    def due_start(
        self, kind: str, now: datetime, timezone: str, lookback: float
    ) -> datetime | None:
        """The latest start of ``kind`` at or before ``now`` (without jitter), within
        ``lookback`` seconds: the start a scheduled crawl is running, the same on every
        replica of the daemon (their lease in the catalog lets one of them run it)."""
        expr = self.crawl if kind == "crawl" else self.revisions
        if not expr:
            return None
        trigger = cron_trigger(expr, timezone=timezone, jitter=None, what=self.site)
        found = None
        when = trigger.get_next_fire_time(None, now - timedelta(seconds=lookback))
        while when is not None and when <= now:
            found = when
            when = trigger.get_next_fire_time(when, when + timedelta(microseconds=1))
        return found

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
    max_failed_runs: int = 3

    @classmethod
    def from_settings(
        cls, settings: BaseSettings, sites: Sequence[str], *, file: str | Path | None = None
    ) -> ScheduleConfig:
        """Defaults from settings, ``ARCHIVE_SCHEDULE`` per site, then the schedule file.

        Each setting is checked by its own name first, so a mistake is one line naming the
        setting (or the schedule file and its key), the value and what is allowed.
        """
        timezone = _timezone(settings.get("ARCHIVE_SCHEDULE_TIMEZONE"))
        defaults: dict[str, Any] = {
            "crawl": _cron_setting(settings, "ARCHIVE_SCHEDULE_CRON", timezone),
            "revisions": _cron_setting(settings, "ARCHIVE_SCHEDULE_REVISIONS_CRON", timezone),
            "jitter": settings.get("ARCHIVE_SCHEDULE_JITTER", 0),
            "time_limit": settings.get("ARCHIVE_SCHEDULE_TIME_LIMIT", 3 * 3600),
            "stale_after": settings.get("ARCHIVE_STATUS_STALE_AFTER", "2d"),
            "enabled": True,
            "args": {},
        }
        _seconds(defaults["jitter"], "ARCHIVE_SCHEDULE_JITTER")
        _more_than_zero(defaults["time_limit"], "ARCHIVE_SCHEDULE_TIME_LIMIT")
        parse_duration(defaults["stale_after"], "ARCHIVE_STATUS_STALE_AFTER")
        grace = _seconds(settings.get("ARCHIVE_SCHEDULE_GRACE", 120), "ARCHIVE_SCHEDULE_GRACE")
        misfire_grace = int(
            _seconds(
                settings.get("ARCHIVE_SCHEDULE_MISFIRE_GRACE", 900),
                "ARCHIVE_SCHEDULE_MISFIRE_GRACE",
            )
        )
        max_running = _positive_int(
            settings.get("ARCHIVE_SCHEDULE_MAX_RUNNING", 2), "ARCHIVE_SCHEDULE_MAX_RUNNING"
        )
        check_interval = _more_than_zero(
            settings.get("ARCHIVE_STATUS_CHECK_INTERVAL", 600), "ARCHIVE_STATUS_CHECK_INTERVAL"
        )
        max_failed_runs = _positive_int(
            settings.get("ARCHIVE_STATUS_MAX_FAILED_RUNS", 3), "ARCHIVE_STATUS_MAX_FAILED_RUNS"
        )
        per_site = _per_site_setting(settings.get("ARCHIVE_SCHEDULE"), sites)
        for site, cron in _source_schedules(settings, sites, timezone).items():
            # A source's own schedule (sources file): below ARCHIVE_SCHEDULE and the file.
            per_site.setdefault(site, {}).setdefault("crawl", cron)
        for site, entry in per_site.items():  # checked before the file can override it
            _site_schedule(
                site, {**defaults, **entry}, "ARCHIVE_SCHEDULE", timezone, complete=False
            )
        source = "settings"
        path = file or _schedule_file_setting(settings.get("ARCHIVE_SCHEDULE_FILE"))
        if path:
            source = str(path)
            try:
                file_defaults, file_sites = load_schedule_file(Path(path))
            except ScheduleError as exc:
                if file:  # --schedule: the message names the file
                    raise
                raise ScheduleError(f"ARCHIVE_SCHEDULE_FILE: {exc}") from exc
            defaults.update(file_defaults)
            unknown = sorted(set(file_sites) - set(sites))
            if unknown:
                raise ScheduleError(
                    f"{source}: unknown site(s) {', '.join(unknown)} (sites: {', '.join(sites)})"
                )
            for site, entry in file_sites.items():
                per_site[site] = {**per_site.get(site, {}), **entry}
        schedules = []
        for site in sites:
            entry = {**defaults, **per_site.get(site, {})}
            where = source
            if not path:
                where = "ARCHIVE_SCHEDULE" if site in per_site else "ARCHIVE_SCHEDULE_CRON"
            schedules.append(_site_schedule(site, entry, where, timezone))
        return cls(
            sites=tuple(schedules),
            timezone=timezone,
            grace=grace,
            misfire_grace=misfire_grace,
            max_running=max_running,
            check_interval=check_interval,
            source=source,
            max_failed_runs=max_failed_runs,
        )

    def site(self, name: str) -> SiteSchedule:
        for schedule in self.sites:
            if schedule.site == name:
                return schedule
        raise KeyError(name)


def load_schedule_file(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(defaults, per-site entries) of a schedule file, with its keys checked."""
    try:
        data = util.read_toml(path, "schedule file")
    except ValueError as exc:
        raise ScheduleError(str(exc)) from exc
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


def _site_schedule(
    site: str, entry: Mapping[str, Any], source: str, tz: str, *, complete: bool = True
) -> SiteSchedule:
    """One site's schedule; ``complete=False``: only each value (a later layer may add one)."""
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
    if complete and schedule.enabled and not schedule.crawl:
        raise ScheduleError(f"{where}: crawl is empty (set enabled = false to stop the site)")
    if schedule.time_limit <= 0:
        raise ScheduleError(f"{where}: time_limit must be more than 0 seconds")
    for kind, expr in (("crawl", schedule.crawl), ("revisions", schedule.revisions)):
        if expr:
            cron_trigger(expr, timezone=tz, jitter=None, what=f"{where}: {kind}")
    return schedule


def _seconds(value: object, what: str) -> float:
    return parse_duration(value, what).total_seconds()


def _more_than_zero(value: object, what: str) -> float:
    seconds = _seconds(value, what)
    if seconds <= 0:
        raise ScheduleError(f"{what} must be more than 0 seconds, got {value!r}")
    return seconds


def _positive_int(value: object, what: str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        number = int(str(value))
    except ValueError:
        raise ScheduleError(f"{what} must be a whole number, got {value!r}") from None
    if number < 1:
        raise ScheduleError(f"{what} must be at least 1, got {value!r}")
    return number


def _timezone(value: object) -> str:
    """``ARCHIVE_SCHEDULE_TIMEZONE``: an IANA name APScheduler knows; "" or None is UTC."""
    from apscheduler.util import astimezone

    name = "UTC" if value is None or value == "" else value
    try:
        if not isinstance(name, str):
            raise ValueError(name)
        astimezone(name)
    except (LookupError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise ScheduleError(
            "ARCHIVE_SCHEDULE_TIMEZONE must be an IANA time zone name like UTC or "
            f"Europe/Berlin, got {value!r}"
        ) from None
    return name


def _cron_setting(settings: BaseSettings, name: str, timezone: str) -> str:
    """A cron expression setting ("" allowed: none), checked under its own name."""
    value = settings.get(name)
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise ScheduleError(f"{name} must be a cron expression in quotes, got {value!r}")
    if value.strip():
        cron_trigger(value, timezone=timezone, jitter=None, what=name)
    return value.strip()


def _per_site_setting(value: object, sites: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``ARCHIVE_SCHEDULE``: {site: cron} or {site: {key: value}}, as JSON in the environment."""
    wanted = 'a JSON object like {"irna": "*/30 * * * *"} or {"irna": {"enabled": false}}'
    raw = value
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError as exc:
            raise ScheduleError(f"ARCHIVE_SCHEDULE must be {wanted}, got {raw!r} ({exc})") from None
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ScheduleError(f"ARCHIVE_SCHEDULE must be {wanted}, got {raw!r}")
    unknown = sorted(str(site) for site in value if site not in sites)
    if unknown:
        raise ScheduleError(
            f"ARCHIVE_SCHEDULE: unknown site(s) {', '.join(unknown)} (sites: {', '.join(sites)})"
        )
    out: dict[str, dict[str, Any]] = {}
    for site, entry in value.items():
        if isinstance(entry, str):
            entry = {"crawl": entry}
        if not isinstance(entry, Mapping):
            raise ScheduleError(
                f"ARCHIVE_SCHEDULE: site {site} must be a cron expression or an object of "
                f"{', '.join(sorted(SITE_KEYS))}, got {entry!r}"
            )
        _check_keys(entry, f"ARCHIVE_SCHEDULE: site {site}")
        out[str(site)] = dict(entry)
    return out


def _source_schedules(settings: BaseSettings, sites: Sequence[str], tz: str) -> dict[str, str]:
    """``schedule`` of each configured source (crawler/crawl/sources.py), checked."""
    from crawler.crawl.sources import SourcesError, configured_sources

    try:
        entries = configured_sources(settings)
    except SourcesError as exc:
        raise ScheduleError(str(exc)) from None
    found = {}
    for entry in entries:
        if entry.schedule and entry.name in sites:
            what = f"sources file: [sources.{entry.name}] schedule"
            cron_trigger(entry.schedule, timezone=tz, jitter=None, what=what)
            found[entry.name] = entry.schedule
    return found


def _schedule_file_setting(value: object) -> str:
    """``ARCHIVE_SCHEDULE_FILE``: "" for none, else a file that is there."""
    if value is None or value == "":
        return ""
    if not isinstance(value, (str, Path)) or not Path(value).expanduser().is_file():
        raise ScheduleError(
            "ARCHIVE_SCHEDULE_FILE must be a TOML schedule file that exists (or be empty), "
            f"got {value!r}"
        )
    return str(Path(value).expanduser())
