"""Schedules: settings, per-site overrides, the operator's TOML file, and its clear errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from scrapy.settings import Settings

from crawler.ops.schedule import ScheduleConfig, ScheduleError, cron_trigger, parse_duration
from settings import defaults

SITES = ["almasirah", "irna", "tdi"]


def settings(**values: object) -> Settings:
    base = {k: getattr(defaults, k) for k in dir(defaults) if k.startswith("ARCHIVE_")}
    return Settings({**base, **values})


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "schedule.toml"
    path.write_text(text)
    return path


def test_defaults_apply_to_every_site() -> None:
    config = ScheduleConfig.from_settings(settings(), SITES)
    assert [s.site for s in config.sites] == SITES
    tdi = config.site("tdi")
    assert (tdi.crawl, tdi.revisions) == ("0 */2 * * *", "30 */6 * * *")
    assert tdi.jitter == 300 and tdi.time_limit == 3 * 3600
    assert tdi.stale_after == timedelta(days=2)
    assert config.grace == 120 and config.max_running == 2


def test_settings_then_file_override_per_site(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[defaults]
jitter = 0
stale_after = "12h"

[sites.irna]
crawl = "*/30 * * * *"
stale_after = "6h"

[sites.almasirah]
enabled = false

[sites.tdi.args]
max_articles = 50
refresh = true
""",
    )
    config = ScheduleConfig.from_settings(
        settings(ARCHIVE_SCHEDULE={"irna": "0 * * * *", "tdi": {"revisions": ""}}),
        SITES,
        file=path,
    )
    irna, tdi = config.site("irna"), config.site("tdi")
    assert irna.crawl == "*/30 * * * *"  # the file beats ARCHIVE_SCHEDULE
    assert irna.stale_after == timedelta(hours=6) and tdi.stale_after == timedelta(hours=12)
    assert tdi.revisions == ""  # from ARCHIVE_SCHEDULE, the file said nothing of it
    assert dict(tdi.args) == {"max_articles": "50", "refresh": "true"}
    assert not config.site("almasirah").enabled
    assert irna.jitter == 0
    assert set(tdi.triggers("UTC")) == {"crawl"}
    assert config.source == str(path)


def test_environment_json_for_per_site_schedules() -> None:
    config = ScheduleConfig.from_settings(settings(ARCHIVE_SCHEDULE='{"tdi": "15 * * * *"}'), SITES)
    assert config.site("tdi").crawl == "15 * * * *"


def test_cron_weekdays_count_from_sunday_and_seconds_are_allowed() -> None:
    friday = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a Friday
    sunday = cron_trigger("0 3 * * 0", timezone="UTC", jitter=None, what="t")
    assert sunday.get_next_fire_time(None, friday) == datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    seven = cron_trigger("0 3 * * 7", timezone="UTC", jitter=None, what="t")
    assert seven.get_next_fire_time(None, friday) == datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    weekdays = cron_trigger("0 3 * * 1-5", timezone="UTC", jitter=None, what="t")
    assert weekdays.get_next_fire_time(None, friday) == datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    every_5s = cron_trigger("*/5 * * * * *", timezone="UTC", jitter=None, what="t")
    start = datetime(2026, 11, 20, 12, 0, 1, tzinfo=UTC)
    assert every_5s.get_next_fire_time(None, start) == datetime(2026, 11, 20, 12, 0, 5, tzinfo=UTC)


def test_six_fields_are_read_with_seconds_first_and_said_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # "every 2 hours" written Quartz-style with a leading 0 or year-last style is easy to get
    # wrong: the reading is logged once, field by field.
    trigger = cron_trigger("0 */2 * * * *", timezone="UTC", jitter=None, what="tdi crawl")
    start = datetime(2026, 11, 20, 12, 0, 30, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, start) == datetime(2026, 11, 20, 12, 2, tzinfo=UTC)
    cron_trigger("0 */2 * * * *", timezone="UTC", jitter=None, what="tdi crawl")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "tdi crawl: '0 */2 * * * *' has 6 fields, read with seconds first: second 0, minute "
        "*/2, hour *, day *, month *, weekday * (give 5 fields for a crontab line)"
    ]
    cron_trigger("0 */2 * * *", timezone="UTC", jitter=None, what="tdi crawl")
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1


def test_next_run_is_the_earlier_of_crawl_and_revisions() -> None:
    config = ScheduleConfig.from_settings(settings(), SITES)
    now = datetime(2026, 11, 20, 5, 10, tzinfo=UTC)
    assert config.site("tdi").next_run(now, "UTC") == (
        datetime(2026, 11, 20, 6, 0, tzinfo=UTC),
        "crawl",
    )
    now = datetime(2026, 11, 20, 6, 10, tzinfo=UTC)
    assert config.site("tdi").next_run(now, "UTC") == (
        datetime(2026, 11, 20, 6, 30, tzinfo=UTC),
        "revisions",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sites.irna\ncrawl = 1", "line 1"),
        ('[sites.irna]\ncrawl = "61 * * * *"', "site irna: crawl: bad cron expression"),
        ('[sites.irna]\ncrawl = "* * *"', "site irna: crawl: '* * *' has 3 fields"),
        ("[sites.irna]\ncrawl = 5", "site irna: crawl must be a cron expression in quotes"),
        ('[sites.irna]\nstale_after = "soon"', "site irna: stale_after: 'soon' is not a duration"),
        ("[sites.irna]\ncron = '0 * * * *'", "[sites.irna]: unknown key cron"),
        ('[sites.bbc]\ncrawl = "0 * * * *"', "unknown site(s) bbc"),
        ("[site.irna]\nenabled = false", "unknown table or key site"),
        ("[sites.irna]\nenabled = 'no'", "site irna: enabled must be true or false"),
        ('[sites.irna]\ncrawl = ""', "site irna: crawl is empty"),
        ("[defaults]\ntime_limit = 0", "time_limit must be more than 0"),
        ("[sites.irna]\nargs = 3", "args must be a table"),
    ],
)
def test_schedule_file_errors_name_the_place(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScheduleError) as exc:
        ScheduleConfig.from_settings(settings(), SITES, file=path)
    assert message in str(exc.value)
    assert str(path) in str(exc.value)


def test_bad_settings_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ScheduleError, match="ARCHIVE_SCHEDULE_MAX_RUNNING must be at least 1"):
        ScheduleConfig.from_settings(settings(ARCHIVE_SCHEDULE_MAX_RUNNING=0), SITES)
    with pytest.raises(ScheduleError, match="ARCHIVE_SCHEDULE_GRACE"):
        ScheduleConfig.from_settings(settings(ARCHIVE_SCHEDULE_GRACE="long"), SITES)
    with pytest.raises(ScheduleError, match="cannot read it"):
        ScheduleConfig.from_settings(settings(), SITES, file=tmp_path / "missing.toml")
    with pytest.raises(ScheduleError, match="site tdi: crawl: bad cron expression"):
        ScheduleConfig.from_settings(settings(ARCHIVE_SCHEDULE={"tdi": "0 25 * * *"}), SITES)


def test_durations() -> None:
    assert parse_duration("90m", "x") == timedelta(minutes=90)
    assert parse_duration(3600, "x") == timedelta(hours=1)
    assert parse_duration("1.5d", "x") == timedelta(hours=36)
    with pytest.raises(ScheduleError, match="x: '2 days'"):
        parse_duration("2 days", "x")


def test_run_dry_run_prints_the_plan_and_rejects_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from crawler.ops.cli import main

    good = write(tmp_path, '[sites.tdi]\ncrawl = "5 4 * * *"\n[sites.irna]\nenabled = false\n')
    assert main(["run", "--dry-run", "--schedule", str(good), "--store", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "tdi        crawl '5 4 * * *'" in out
    assert "irna       disabled" in out
    bad = tmp_path / "bad.toml"
    bad.write_text('[sites.tdi]\ncrawl = "5 4 * *"\n')
    assert main(["run", "--dry-run", "--schedule", str(bad), "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "site tdi: crawl" in err and len(err.splitlines()) == 1
