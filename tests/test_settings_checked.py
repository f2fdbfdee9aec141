"""Every ARCHIVE_* setting is checked once, at start: a bad value is one line that names the
setting, the value given and what is allowed, and nothing is fetched.

``BAD`` holds a bad value for each setting in ``settings/defaults.py``; a new setting without
one fails ``test_every_setting_has_a_bad_value``. "crawl" settings are checked the way a crawl
checks them (``ArchiveConfig.from_settings``, ``check_settings``), "operator" settings the way
``newsarchive run --dry-run`` does (``ScheduleConfig.from_settings``, ``metrics_endpoint``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from scrapy.settings import Settings
from scrapy.utils.project import get_project_settings

from crawler.crawl.addon import Addon
from crawler.crawl.config import ArchiveConfig, ConfigError, check_settings
from crawler.logs import log_format
from crawler.ops.common import spider_names
from crawler.ops.daemon import metrics_endpoint
from crawler.ops.schedule import ScheduleConfig
from crawler.text import generic
from settings import defaults

ROOT = Path(__file__).resolve().parent.parent
CRAWL, OPERATOR = "crawl", "operator"
BOOL = r"true or false"
WHOLE = r"must be a whole number"
NUMBER = r"must be a number"
DURATION = r"is not a duration like 3600, 90m, 12h, 2d or 1w"


class Bad(NamedTuple):
    value: str  # "{tmp}" is the test's temporary directory
    allowed: str  # a regex the message must match: what the setting takes
    checker: str  # CRAWL or OPERATOR


BAD: dict[str, Bad] = {
    # run
    "ARCHIVE_CRAWL_ID": Bad("../etc", r"letters, digits, '\.', '_' or '-'", CRAWL),
    "ARCHIVE_PROXY": Bad("localhost:8080", r"http\(s\)://host:port URL", CRAWL),
    "ARCHIVE_REPORT_ENABLED": Bad("maybe", BOOL, CRAWL),
    # egress guard
    "ARCHIVE_NETGUARD_ENABLED": Bad("maybe", BOOL, CRAWL),
    "ARCHIVE_NETGUARD_ALLOW": Bad("10.0.0.0/33", r"networks in CIDR notation", CRAWL),
    # store
    "ARCHIVE_STORE_URI": Bad("ftp://x", r"a directory path, a file:// URI or s3://bucket", CRAWL),
    "ARCHIVE_SPOOL_DIR": Bad("{tmp}/a-file", r"must be a directory, or a path where one", CRAWL),
    "ARCHIVE_STORE_CHECK": Bad("maybe", BOOL, CRAWL),
    "ARCHIVE_STORE_S3_ADDRESSING_STYLE": Bad("sideways", r"one of auto, path, virtual", CRAWL),
    "ARCHIVE_STORE_MULTIPART_THRESHOLD": Bad("64MB", WHOLE, CRAWL),
    "ARCHIVE_STORE_MULTIPART_PART_SIZE": Bad("1024", r"at least 5242880", CRAWL),
    "ARCHIVE_STORE_CONCURRENCY": Bad("0", r"at least 1", CRAWL),
    "ARCHIVE_STORE_MAX_ATTEMPTS": Bad("many", WHOLE, CRAWL),
    "ARCHIVE_STORE_RETRY_AFTER": Bad("-1", r"at least 0", CRAWL),
    "ARCHIVE_STORE_KEEP_LOCAL": Bad("maybe", BOOL, CRAWL),
    # WARC
    "ARCHIVE_WARC_ENABLED": Bad("maybe", BOOL, CRAWL),
    "ARCHIVE_WARC_PREFIX": Bad("a/b", r"letters, digits", CRAWL),
    "ARCHIVE_WARC_MAX_SIZE": Bad("1GB", WHOLE, CRAWL),
    "ARCHIVE_WARC_MAX_AGE": Bad("1h", NUMBER, CRAWL),
    "ARCHIVE_WARC_COMPRESS_LEVEL": Bad("10", r"0 to 9", CRAWL),
    "ARCHIVE_WARC_OPERATOR": Bad("me\nyou", r"one line of text", CRAWL),
    # text
    "ARCHIVE_TEXT_ENABLED": Bad("maybe", BOOL, CRAWL),
    "ARCHIVE_TEXT_MODE": Bad("fancy", r"one of article, page", CRAWL),
    "ARCHIVE_TEXT_WORKERS": Bad("zero", WHOLE, CRAWL),
    "ARCHIVE_TEXT_DEGENERATE_RATIO": Bad("0", r"more than 0", CRAWL),
    "ARCHIVE_TEXT_DEGENERATE_MIN_CHARS": Bad("-1", r"at least 0", CRAWL),
    "ARCHIVE_TEXT_DEGENERATE_MIN_TEXTS": Bad("few", WHOLE, CRAWL),
    # catalog
    "ARCHIVE_CATALOG_ENABLED": Bad("maybe", BOOL, CRAWL),
    "ARCHIVE_CATALOG_URL": Bad("not a url", r"SQLAlchemy URL like postgresql\+psycopg://", CRAWL),
    "ARCHIVE_REVISION_AGES": Bad("1hour", r"not a duration like 90m, 1h, 1d or 7d", CRAWL),
    "ARCHIVE_REFRESH": Bad("maybe", BOOL, CRAWL),
    "ARCHIVE_GONE_RECHECK_DAYS": Bad("a week", WHOLE, CRAWL),
    # replay from the archive
    "ARCHIVE_REPLAY_ENABLED": Bad("maybe", BOOL, CRAWL),
    "ARCHIVE_REPLAY_CRAWL_ID": Bad("../etc", r"letters, digits, '\.', '_' or '-'", CRAWL),
    # indexes
    "ARCHIVE_INDEX_ENABLED": Bad("maybe", BOOL, CRAWL),
    "ARCHIVE_WACZ_ENABLED": Bad("maybe", BOOL, CRAWL),
    "ARCHIVE_INDEX_BATCH": Bad("many", WHOLE, CRAWL),
    # discovery, retries
    "ARCHIVE_DISCOVERY_WINDOW_DAYS": Bad("a month", WHOLE, CRAWL),
    "ARCHIVE_RETRY_BACKOFF": Bad("slow", NUMBER, CRAWL),
    "ARCHIVE_RETRY_MAX_WAIT": Bad("-5", r"at least 0", CRAWL),
    # rendering, challenges
    "ARCHIVE_RENDER_ENABLED": Bad("maybe", BOOL, CRAWL),
    "ARCHIVE_RENDER_EXECUTABLE": Bad("chromium", r"absolute path of the Chromium binary", CRAWL),
    "ARCHIVE_RENDER_PAGE_TIMEOUT": Bad("0", r"more than 0", CRAWL),
    "ARCHIVE_RENDER_IDLE": Bad("soon", NUMBER, CRAWL),
    "ARCHIVE_RENDER_MAX_PAGES": Bad("0", r"at least 1", CRAWL),
    "ARCHIVE_RENDER_MAX_CONTEXTS": Bad("two", WHOLE, CRAWL),
    "ARCHIVE_RENDER_CONTEXT_PAGES": Bad("1.5", WHOLE, CRAWL),
    "ARCHIVE_RENDER_BLOCK": Bad("pictures", r"known: .*image.*media", CRAWL),
    "ARCHIVE_RENDER_MAX_BODY": Bad("8MB", WHOLE, CRAWL),
    "ARCHIVE_RENDER_SCREENSHOT": Bad("maybe", BOOL, CRAWL),
    "ARCHIVE_RENDER_TRUSTED_SPKI": Bad("not-a-pin", r"base64 SHA-256 SPKI hashes", CRAWL),
    "ARCHIVE_CHALLENGE_TIMEOUT": Bad("0", r"more than 0", CRAWL),
    "ARCHIVE_CHALLENGE_MAX_SOLVES": Bad("none", WHOLE, CRAWL),
    # site health
    "ARCHIVE_HEALTH_MAX_FAILED_RATIO": Bad("1.5", r"0 to 1", CRAWL),
    "ARCHIVE_HEALTH_MIN_FAILED": Bad("-1", r"at least 0", CRAWL),
    # logs: every crawl reads it, the commands too (test_operator_commands_check_the_log_format)
    "ARCHIVE_LOG_FORMAT": Bad("xml", r"text or json", CRAWL),
    "ARCHIVE_LEASE_TTL": Bad("1s", r"at least 3s", CRAWL),
    "ARCHIVE_SCHEDULED_START": Bad("noon", r"a UTC time like", CRAWL),
    "ARCHIVE_CRAWL_LOG": Bad("files", r"one of file, stderr", CRAWL),
    "ARCHIVE_LOG_DIR": Bad("{tmp}/a-file", r"must be a directory, or a path where one", CRAWL),
    "ARCHIVE_LOG_KEEP": Bad("0", r"at least 1", CRAWL),
    # schedule, status, metrics: the daemon
    "ARCHIVE_SCHEDULE_CRON": Bad("every hour", r"a cron expression has 5", OPERATOR),
    "ARCHIVE_SCHEDULE_REVISIONS_CRON": Bad("61 * * * *", r"bad cron expression", OPERATOR),
    "ARCHIVE_SCHEDULE": Bad("not json", r"a JSON object like", OPERATOR),
    "ARCHIVE_SCHEDULE_FILE": Bad("{tmp}/nowhere.toml", r"TOML schedule file that exists", OPERATOR),
    "ARCHIVE_SOURCES_FILE": Bad("{tmp}/nowhere.toml", r"does not exist", OPERATOR),
    "ARCHIVE_SCHEDULE_JITTER": Bad("soon", DURATION, OPERATOR),
    "ARCHIVE_SCHEDULE_TIME_LIMIT": Bad("forever", DURATION, OPERATOR),
    "ARCHIVE_SCHEDULE_GRACE": Bad("later", DURATION, OPERATOR),
    "ARCHIVE_SCHEDULE_MISFIRE_GRACE": Bad("-5", DURATION, OPERATOR),
    "ARCHIVE_SCHEDULE_MAX_RUNNING": Bad("0", r"at least 1", OPERATOR),
    "ARCHIVE_SCHEDULE_TIMEZONE": Bad("Mars/Olympus", r"IANA time zone name", OPERATOR),
    "ARCHIVE_STATUS_STALE_AFTER": Bad("stale", DURATION, OPERATOR),
    "ARCHIVE_STATUS_CHECK_INTERVAL": Bad("0", r"more than 0 seconds", OPERATOR),
    "ARCHIVE_STATUS_MAX_FAILED_RUNS": Bad("0", r"must be at least 1", OPERATOR),
    "ARCHIVE_METRICS_PORT": Bad("http", WHOLE, OPERATOR),
    "ARCHIVE_METRICS_ADDRESS": Bad("nowhere", r"an IP address to listen on", OPERATOR),
}


def archive_names() -> set[str]:
    return {name for name in dir(defaults) if name.startswith("ARCHIVE_")}


def crawl_settings(tmp_path: Path, **values: Any) -> Settings:
    """The settings as a crawl builds them: project module, add-on defaults, ``-s`` pairs."""
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "settings")
    settings = get_project_settings()
    Addon().update_settings(settings)
    settings.set("ARCHIVE_STORE_URI", str(tmp_path / "store"), priority="cmdline")
    for name, value in values.items():
        settings.set(name, value, priority="cmdline")
    return settings


def operator_check(settings: Settings) -> None:
    """What ``newsarchive run --dry-run`` checks (crawler/ops/daemon.py, ``cmd_run``)."""
    log_format(settings.get("ARCHIVE_LOG_FORMAT"))
    ScheduleConfig.from_settings(settings, spider_names())
    metrics_endpoint(settings)


def bad_value(name: str, tmp_path: Path) -> str:
    (tmp_path / "a-file").write_text("not a directory")
    return BAD[name].value.replace("{tmp}", str(tmp_path))


def assert_clear(message: str, name: str, value: str) -> None:
    assert "\n" not in message, message
    assert name in message, message
    assert repr(value) in message or value in message, message
    assert re.search(BAD[name].allowed, message), message
    assert "Traceback" not in message and "invalid literal" not in message, message


def test_every_setting_has_a_bad_value() -> None:
    assert set(BAD) == archive_names()


def test_the_defaults_are_no_error(tmp_path: Path) -> None:
    settings = crawl_settings(tmp_path)
    config = ArchiveConfig.from_settings(settings)
    assert None not in (config.warc, config.text, config.catalog, config.index, config.render)
    assert check_settings(settings) == []
    operator_check(settings)


@pytest.mark.parametrize("name", sorted(n for n, b in BAD.items() if b.checker == CRAWL))
def test_a_bad_crawl_setting_stops_the_crawl_at_start(name: str, tmp_path: Path) -> None:
    value = bad_value(name, tmp_path)
    settings = crawl_settings(tmp_path, **{name: value})
    with pytest.raises(ConfigError) as raised:
        ArchiveConfig.from_settings(settings)
    assert len(raised.value.errors) == 1, raised.value.errors
    [message] = raised.value.errors
    assert_clear(message, name, value)
    assert check_settings(settings) == [message]  # the crawl entry prints exactly these


@pytest.mark.parametrize("name", sorted(n for n, b in BAD.items() if b.checker == OPERATOR))
def test_a_bad_operator_setting_stops_the_daemon_at_start(name: str, tmp_path: Path) -> None:
    value = bad_value(name, tmp_path)
    with pytest.raises(ValueError) as raised:  # ScheduleError is a ValueError
        operator_check(crawl_settings(tmp_path, **{name: value}))
    assert_clear(str(raised.value), name, value)


def test_operator_commands_check_the_log_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^ARCHIVE_LOG_FORMAT must be text or json, got 'xml'$"):
        operator_check(crawl_settings(tmp_path, ARCHIVE_LOG_FORMAT="xml"))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ARCHIVE_NETGUARD_ALLOW", 5),
        ("ARCHIVE_REVISION_AGES", 5),
        ("ARCHIVE_RENDER_BLOCK", 5),
        ("ARCHIVE_RENDER_TRUSTED_SPKI", 5),
        ("ARCHIVE_PROXY", 5),
        ("ARCHIVE_PROXY", "http://[::1"),
        ("ARCHIVE_PROXY", "http://proxy:99999"),
        ("ARCHIVE_STORE_URI", ""),
        ("ARCHIVE_STORE_URI", "s3://"),
        ("ARCHIVE_SPOOL_DIR", "{tmp}/a-file/below"),
        ("ARCHIVE_CATALOG_URL", "nosuchdialect://x"),
        ("ARCHIVE_TEXT_WORKERS", [1]),
    ],
)
def test_values_of_the_wrong_kind_are_named_too(name: str, value: Any, tmp_path: Path) -> None:
    """Not a bare TypeError or a library's message: the same one line, naming the setting."""
    if isinstance(value, str):
        (tmp_path / "a-file").write_text("x")
        value = value.replace("{tmp}", str(tmp_path))
    with pytest.raises(ConfigError) as raised:
        ArchiveConfig.from_settings(crawl_settings(tmp_path, **{name: value}))
    [message] = raised.value.errors
    assert message.startswith(name) and repr(value) in message and "\n" not in message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (5, "ARCHIVE_SCHEDULE must be a JSON object"),
        ('{"bbc": "* * * * *"}', "ARCHIVE_SCHEDULE: unknown site(s) bbc"),
        ('{"tdi": {"cron": "* * * * *"}}', "ARCHIVE_SCHEDULE: site tdi: unknown key cron"),
        ('{"tdi": 5}', "ARCHIVE_SCHEDULE: site tdi must be a cron expression or an object"),
        ('{"tdi": "0 25 * * *"}', "ARCHIVE_SCHEDULE: site tdi: crawl: bad cron expression"),
    ],
)
def test_per_site_schedules_name_the_setting(value: Any, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError) as raised:
        operator_check(crawl_settings(tmp_path, ARCHIVE_SCHEDULE=value))
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("switch", "name", "value"),
    [
        ("ARCHIVE_WARC_ENABLED", "ARCHIVE_WARC_MAX_SIZE", "1GB"),
        ("ARCHIVE_TEXT_ENABLED", "ARCHIVE_TEXT_WORKERS", "zero"),
        ("ARCHIVE_CATALOG_ENABLED", "ARCHIVE_REVISION_AGES", "1hour"),
        ("ARCHIVE_INDEX_ENABLED", "ARCHIVE_WACZ_ENABLED", "maybe"),
        ("ARCHIVE_RENDER_ENABLED", "ARCHIVE_RENDER_EXECUTABLE", "chromium"),
    ],
)
def test_a_component_switched_off_is_not_read(
    switch: str, name: str, value: str, tmp_path: Path
) -> None:
    """Off on purpose: its other settings are not read, so they cannot stop the crawl."""
    settings = crawl_settings(tmp_path, **{switch: False, name: value})
    assert check_settings(settings) == []


# -- end to end: `newsarchive crawl` and `newsarchive run --dry-run` -------------------------


def newsarchive(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command in a subprocess, this checkout on the path, no proxy that could reach out."""
    return subprocess.run(
        [sys.executable, "-m", "crawler.ops.cli", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            "ARCHIVE_TEXT_WORKERS=zero",
            "error: ARCHIVE_TEXT_WORKERS must be a whole number, got 'zero'",
        ),
        (
            "ARCHIVE_REVISION_AGES=1hour",
            "error: ARCHIVE_REVISION_AGES: '1hour' is not a duration like 90m, 1h, 1d or 7d",
        ),
        (
            "ARCHIVE_TEXT_MOD=page",
            "error: ARCHIVE_TEXT_MOD is not a newsarchive setting "
            "(did you mean ARCHIVE_TEXT_MODE?)",
        ),
    ],
)
def test_a_crawl_with_a_bad_setting_exits_2_with_one_line(
    setting: str, expected: str, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    # A proxy that answers nothing: were anything fetched, it would not leave this machine.
    proc = newsarchive(
        tmp_path, "crawl", "tdi", "--store", str(store), "--proxy", "http://127.0.0.1:9",
        "-s", setting,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [expected]
    assert not (store / "warc").exists() and not (store / "reports").exists()


def crawl_all(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    """``newsarchive crawl --all`` in this process: (its exit code checked) its error lines."""
    from crawler.ops.cli import main

    store = tmp_path / "store"
    given = " ".join(args)
    # --store and --proxy win over -s: left out when the setting under test is theirs.
    where = [] if "ARCHIVE_STORE_URI=" in given else ["--store", str(store)]
    proxy = [] if "ARCHIVE_PROXY=" in given else ["--proxy", "http://127.0.0.1:9"]
    code = main(["crawl", "--all", *where, *proxy, *args])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "crawling" not in out, "a site started"
    assert not (store / "warc").exists() and not (store / "reports").exists()
    return err.splitlines()


@pytest.mark.parametrize("name", sorted(n for n, b in BAD.items() if b.checker == CRAWL))
def test_a_bad_value_stops_crawl_all_before_any_site_with_one_line(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    value = bad_value(name, tmp_path)
    [line] = crawl_all(tmp_path, capsys, "-s", f"{name}={value}")
    assert line.startswith("error: ")
    assert_clear(line, name, value)


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_misspelt_name_stops_crawl_all_before_any_site_with_a_suggestion(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = name[:-1] if not name.endswith("S") else name[:-1] + "Z"
    typo = typo if typo not in BAD else name + "S"
    default = getattr(defaults, name)
    [line] = crawl_all(tmp_path, capsys, "-s", f"{typo}={default}")
    assert line == (f"error: {typo} is not a newsarchive setting (did you mean {name}?)"), line


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("max_article=3", "unknown spider argument 'max_article' (did you mean max_articles?)"),
        ("sinse=2025-01-01", "unknown spider argument 'sinse' (did you mean since?)"),
        ("since=yesterday", "since must be a date"),
        ("max_articles=0", "max_articles must be a positive integer"),
        ("refresh=maybe", "refresh must be true or false"),
    ],
)
def test_a_bad_spider_argument_stops_crawl_all_before_any_site(
    arg: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    [line] = crawl_all(tmp_path, capsys, "-a", arg)
    assert line.startswith("error: -a: ") and message in line, line


def test_a_bad_spider_argument_in_the_schedule_file_stops_the_daemon(tmp_path: Path) -> None:
    schedule = tmp_path / "schedule.toml"
    schedule.write_text('[sites.tdi]\ncrawl = "0 * * * *"\nargs = { max_article = "3" }\n')
    proc = newsarchive(
        tmp_path, "run", "--dry-run", "--store", str(tmp_path / "store"),
        "--schedule", str(schedule),
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: {schedule}: site tdi: args: unknown spider argument 'max_article' (did you "
        "mean max_articles?); the arguments are max_articles, since, until, refresh"
    ]


def test_the_time_limit_is_a_duration_as_in_the_schedule_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    [line] = crawl_all(tmp_path, capsys, "--time-limit", "2 hours")
    assert line == "error: --time-limit: '2 hours' is not a duration like 3600, 90m, 12h, 2d or 1w"


def test_the_daemon_with_a_bad_setting_exits_2_with_one_line(tmp_path: Path) -> None:
    proc = newsarchive(
        tmp_path, "run", "--dry-run", "--store", str(tmp_path / "store"),
        "-s", "ARCHIVE_SCHEDULE_JITTER=soon",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: ARCHIVE_SCHEDULE_JITTER: 'soon' is not a duration like 3600, 90m, 12h, 2d or 1w"
    ]
    assert proc.stdout == ""  # no plan printed


@pytest.fixture
def scorer_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Point the generic extractor at another block-scorer file (a broken install), and read
    the shipped one again afterwards."""

    def point(path: Path) -> None:
        monkeypatch.setattr(generic, "SCORER_PATH", path)
        generic.block_scorer.cache_clear()

    yield point
    monkeypatch.undo()
    generic.block_scorer.cache_clear()


@pytest.mark.parametrize("content", [None, "{not json", '{"features": ["log_chars"]}'])
def test_a_missing_or_broken_block_scorer_stops_a_text_crawl_at_start(
    content: str | None, scorer_at: Callable[[Path], None], tmp_path: Path
) -> None:
    path = tmp_path / "block_scorer.json"
    if content is not None:
        path.write_text(content)
    scorer_at(path)
    with pytest.raises(ConfigError) as raised:
        ArchiveConfig.from_settings(crawl_settings(tmp_path))
    [message] = raised.value.errors
    assert str(path) in message and "install it again" in message, message
    # Never the hand rules alone in silence, under the version that promises the scorer.
    page = "<html><body><article><p>" + "A sentence of the article. " * 20 + "</p></article>"
    with pytest.raises(ValueError, match="block scorer"):
        generic.extract_main(page, "http://site.test/a/1")
    # A crawl without text does not need it.
    config = ArchiveConfig.from_settings(crawl_settings(tmp_path, ARCHIVE_TEXT_ENABLED=False))
    assert config.text is None
