"""``newsarchive deploy k8s``: the Kubernetes manifests, rendered from the daemon's schedule file.

The schedule file is read by ``ScheduleConfig`` as the daemon reads it, so every check of the
file applies, and nothing about when and how long a site crawls is copied by hand:

* ``--mode cronjobs``: a CronJob per enabled site on its crawl schedule, and a second one on its
  revision schedule unless every revision start is a crawl start already (then the crawl's
  CronJob does it: every crawl re-fetches the revisions that are due). Each crawl stops itself
  at the site's time limit (``--time-limit``); ``activeDeadlineSeconds`` is that limit, the
  grace to close and a minute for the pod to start: the backstop. A status CronJob reads the
  schedule file from a ConfigMap for the sites' staleness thresholds.
* ``--mode daemon``: a Deployment of N replicas running ``newsarchive run`` with the schedule
  file from a ConfigMap (N > 1 needs the catalog on PostgreSQL, where the site leases live).

A sources file (crawler/crawl/sources.py, found as the daemon finds it) is read and checked by
its loader, and ships in the same ConfigMap: the daemon, the status check and every crawl
(whose spider loader lists the sources) get it mounted and named in ``ARCHIVE_SOURCES_FILE``,
and each source is a site of the schedule like the built-in ones.

A crontab line means one thing to the daemon (APScheduler) and must mean the same to a CronJob
(Kubernetes' cron parser): the daemon's reading (Sunday as 7, ``fri-sun``) is written in terms a
CronJob takes, and what cannot be (seconds, ``last``, a day of the month and a weekday both set:
both must match for the daemon, either for a CronJob) is refused by name; the starts of both
readings are then compared.

The YAML is written here (comments, key order, a fixed layout), so the output is the same
bytes for the same input; ``tests/test_deploy.py`` checks the committed
``deploy/kubernetes/cronjobs.yaml`` against it.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from crawler.constants import EXIT_OK, EXIT_USAGE
from crawler.ops.schedule import ScheduleConfig, ScheduleError, SiteSchedule, cron_trigger
from crawler.util import without_password

NAMESPACE = "newsarchive"
# Every newsarchive container names this image; kustomization.yaml's images: maps it to a
# registry and tag, the one place they are written.
IMAGE = "newsarchive"
CONFIG_MAP = "newsarchive-config"
SECRET = "newsarchive-secrets"
SPOOL_CLAIM = "newsarchive-spool"
SPOOL_DIR = "/var/lib/newsarchive/spool"
SCHEDULE_MAP = "newsarchive-schedule"
SCHEDULE_DIR = "/etc/newsarchive"
SCHEDULE_KEY = "schedule.toml"
# The sources file (crawler/crawl/sources.py), beside the schedule in the same ConfigMap.
SOURCES_KEY = "sources.toml"
STATUS_CRON = "*/15 * * * *"
METRICS_PORT = 9410
# Kubernetes kills a stopping pod this long after ARCHIVE_SCHEDULE_GRACE (150 s by default).
STOP_SLACK = 30
# A Job's deadline counts from its start, image pull and scheduling included.
START_SLACK = 60
# Kubernetes' limit for a CronJob's name (its Jobs get a suffix of 11 characters).
CRONJOB_NAME_MAX = 52
MODES = ("cronjobs", "daemon")
OUT_FILES = {"cronjobs": "cronjobs.yaml", "daemon": "daemon.yaml"}
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_SITE = "newsarchive/site"
LABEL_SCHEDULE = "newsarchive/schedule"


class DeployError(ValueError):
    """Manifests that cannot be rendered; the message names the site, the key or the option."""


# --- Crontab lines as a CronJob reads them ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: Mapping[str, int]


_MONTHS = {
    n: i
    for i, n in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_DAYS = {n: i for i, n in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day", 1, 31, {}),
    _Field("month", 1, 12, _MONTHS),
    _Field("weekday", 0, 6, _DAYS),
)
_ITEM = re.compile(r"(\*|[a-z0-9]+)(?:-([a-z0-9]+))?(?:/([0-9]+))?\Z")
# The starts of both readings are compared from here (a Monday), over this many start days.
_COMPARED_FROM = datetime(2024, 1, 1, tzinfo=UTC)
_COMPARED_DAYS = 400
_COMPARED_YEARS = 8

Starts = tuple[frozenset[int], ...]  # minute, hour, day, month, weekday (0 = Sunday)


def _token(token: str, spec: _Field) -> int | None:
    return int(token) if token.isdigit() else spec.names.get(token)


def _values(text: str, spec: _Field, *, daemon: bool) -> frozenset[int] | None:
    """The values a plain crontab field selects (numbers, names, ``*``, ranges, steps, lists).

    ``daemon``: the daemon's reading, where a weekday 7, or a range ending on Sunday, is Sunday;
    else Kubernetes' (weekdays 0-6). None for anything else (``last``, ``1st mon``, ``L``…).
    """
    weekday = spec.name == "weekday"
    high = 7 if daemon and weekday else spec.high
    found: set[int] = set()
    for item in text.lower().split(","):
        match = _ITEM.match(item)
        if match is None:
            return None
        first, last, step = match.groups()
        if first == "*":
            if last is not None:
                return None
            start, end = spec.low, spec.high
        else:
            start_value = _token(first, spec)
            end_value = start_value if last is None else _token(last, spec)
            if start_value is None or end_value is None:
                return None
            start, end = start_value, end_value
            if daemon and weekday and last is not None and end == 0 < start:
                end = 7
            if last is None and step is not None:
                end = high  # N/S: from N to the last value
        every = int(step) if step is not None else 1
        if every < 1 or not spec.low <= start <= end <= high:
            return None
        found.update(range(start, end + 1, every))
    return frozenset(v % 7 for v in found) if weekday else frozenset(found)


def _compact(values: frozenset[int]) -> str:
    """``0,5,6`` as ``0,5,6``; ``1,2,3,4`` as ``1-4``."""
    runs: list[list[int]] = []
    for value in sorted(values):
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    parts = []
    for run in runs:
        if len(run) > 2:
            parts.append(f"{run[0]}-{run[-1]}")
        else:
            parts.extend(str(v) for v in run)
    return ",".join(parts)


def kube_schedule(expr: str, what: str) -> tuple[str, Starts]:
    """The CronJob schedule for a crontab line of the schedule file, and the values it selects.

    Raises DeployError when a CronJob cannot start when the daemon would.
    """
    fields = expr.split()
    if len(fields) == 6:
        second, *fields = fields
        if second != "0":
            raise DeployError(
                f"{what}: {expr!r} starts at second {second}: a Kubernetes CronJob starts on "
                "the minute (give 5 fields: minute hour day month weekday)"
            )
    if len(fields) != 5:
        raise DeployError(f"{what}: {expr!r} is no crontab line of 5 fields")
    written: list[str] = []
    starts: list[frozenset[int]] = []
    for text, spec in zip(fields, _FIELDS, strict=True):
        values = _values(text, spec, daemon=True)
        if not values:
            names = ", names" if spec.names else ""
            raise DeployError(
                f"{what}: {expr!r}: the {spec.name} {text!r} is no plain crontab field, which a "
                f"Kubernetes CronJob needs (numbers{names}, *, ranges a-b, steps /n, lists a,b)"
            )
        starts.append(values)
        if values == frozenset(range(spec.low, spec.high + 1)):
            written.append("*")
        elif _values(text, spec, daemon=False) == values:
            written.append(text)
        else:  # Sunday as 7, or a range over Sunday: the same days in Kubernetes' terms
            written.append(_compact(values))
    if written[2] != "*" and written[4] != "*":
        raise DeployError(
            f"{what}: {expr!r} sets both the day of the month and the weekday: the daemon "
            "starts when both match, a Kubernetes CronJob when either does (give one as *)"
        )
    _compare_starts(expr, tuple(starts), what)
    return " ".join(written), tuple(starts)


def _starts_on(starts: Starts, day: date) -> bool:
    _, _, days, months, weekdays = starts
    return day.day in days and day.month in months and day.isoweekday() % 7 in weekdays


def _compare_starts(expr: str, starts: Starts, what: str) -> None:
    """The daemon's starts (APScheduler) against the CronJob's (the values): the days of the
    first starts, then the times of the first day. Both readings in UTC: only the fields
    are compared here; the time zone is the CronJob's ``timeZone``."""
    trigger = cron_trigger(expr, timezone="UTC", jitter=None, what=what)
    horizon = (_COMPARED_FROM + timedelta(days=366 * _COMPARED_YEARS)).date()
    theirs: list[date] = []
    when = _COMPARED_FROM
    while len(theirs) < _COMPARED_DAYS:
        fire = trigger.get_next_fire_time(None, when)
        if fire is None or fire.date() >= horizon:
            break
        theirs.append(fire.date())
        when = datetime.combine(fire.date() + timedelta(days=1), time(), UTC)
    last = theirs[-1] if len(theirs) == _COMPARED_DAYS else horizon - timedelta(days=1)
    ours = [
        day
        for offset in range((last - _COMPARED_FROM.date()).days + 1)
        if _starts_on(starts, day := _COMPARED_FROM.date() + timedelta(days=offset))
    ]
    if ours != theirs:
        first = next((a, b) for a, b in zip([*theirs, None], [*ours, None], strict=False) if a != b)
        raise DeployError(
            f"{what}: {expr!r} reads differently for the daemon and for a Kubernetes CronJob "
            f"(the first start day that differs: the daemon's {first[0] or 'none'}, the "
            f"CronJob's {first[1] or 'none'}): write it with numbers, ranges, steps and lists"
        )
    if not theirs:
        return
    day_start = datetime.combine(theirs[0], time(), UTC)
    times: list[tuple[int, int]] = []
    fire = trigger.get_next_fire_time(None, day_start)
    while fire is not None and fire.date() == theirs[0]:
        times.append((fire.hour, fire.minute))
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    minutes, hours = starts[0], starts[1]
    if times != [(h, m) for h in sorted(hours) for m in sorted(minutes)]:
        raise DeployError(
            f"{what}: {expr!r} reads differently for the daemon and for a Kubernetes CronJob "
            "(the times of day): write it with numbers, ranges, steps and lists"
        )


def covers(crawl: Starts, revisions: Starts) -> bool:
    """Whether every start of ``revisions`` is a start of ``crawl`` too (field by field)."""
    return all(r <= c for c, r in zip(crawl, revisions, strict=True))


# --- The objects -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Note:
    """A mapping's value with a comment above its key in the YAML (why, not what)."""

    comment: str
    value: Any


def plain(value: Any) -> Any:
    """The objects without their comments, as a YAML parser reads them back."""
    if isinstance(value, Note):
        return plain(value.value)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _metadata(name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "labels": dict(labels)}


def _secret_env(*names: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": name}}}
        for name in names
    ]


def _value_env(values: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"name": name, "value": value} for name, value in values.items()]


def _pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def _image() -> Note:
    return Note("kustomization.yaml's images: sets the registry and tag", IMAGE)


@dataclass(frozen=True, slots=True)
class Fleet:
    """What the manifests are made of: the checked schedule, the schedule file's text and the
    sources file's (its entries are sites of the schedule like the built-in spiders)."""

    config: ScheduleConfig
    schedule_text: str | None  # None: the schedule comes from the settings alone
    sources_text: str | None = None  # None: no sources file

    def files(self) -> dict[str, str]:
        """The ConfigMap's data: the schedule file and the sources file, those there are."""
        data = {}
        if self.schedule_text is not None:
            data[SCHEDULE_KEY] = self.schedule_text
        if self.sources_text is not None:
            data[SOURCES_KEY] = self.sources_text
        return data

    def digest(self) -> str:
        """The ConfigMap's files hashed (the schedule's text alone where it is the only one)."""
        files = self.files()
        if list(files) == [SCHEDULE_KEY]:
            return hashlib.sha256(files[SCHEDULE_KEY].encode()).hexdigest()
        hashed = hashlib.sha256()
        for key, text in files.items():
            body = text.encode()
            hashed.update(f"{key}\0{len(body)}\0".encode() + body)
        return hashed.hexdigest()

    def sources_env(self) -> dict[str, str]:
        """``ARCHIVE_SOURCES_FILE`` where the sources file is mounted, if there is one."""
        if self.sources_text is None:
            return {}
        return {"ARCHIVE_SOURCES_FILE": f"{SCHEDULE_DIR}/{SOURCES_KEY}"}

    @property
    def grace(self) -> int:
        return math.ceil(self.config.grace)

    def schedule_env(self) -> dict[str, str]:
        """What the pods must read as the renderer did: the file, its time zone, the grace."""
        env = {"ARCHIVE_SCHEDULE_TIMEZONE": self.config.timezone}
        if self.schedule_text is not None:
            env["ARCHIVE_SCHEDULE_FILE"] = f"{SCHEDULE_DIR}/{SCHEDULE_KEY}"
        env.update(self.sources_env())
        env["ARCHIVE_SCHEDULE_GRACE"] = _seconds(self.config.grace)
        return env

    def schedule_map(self) -> dict[str, Any]:
        assert self.files()
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _metadata(SCHEDULE_MAP, {LABEL_NAME: "newsarchive"}),
            "data": self.files(),
        }

    def _volumes(
        self, *, schedule: bool, spool_read_only: bool = False
    ) -> tuple[list[Any], list[Any]]:
        """(volume mounts, volumes): the spool claim, and the ConfigMap's files if there are
        any (``schedule``: both; else the sources file alone, which every crawl reads)."""
        spool_mount: dict[str, Any] = {"name": "spool", "mountPath": SPOOL_DIR}
        if spool_read_only:
            spool_mount["readOnly"] = True
        mounts: list[Any] = [spool_mount]
        volumes: list[Any] = [
            {"name": "spool", "persistentVolumeClaim": {"claimName": SPOOL_CLAIM}}
        ]
        if schedule and self.files():
            mounts.append({"name": "schedule", "mountPath": SCHEDULE_DIR, "readOnly": True})
            volumes.append({"name": "schedule", "configMap": {"name": SCHEDULE_MAP}})
        elif self.sources_text is not None:
            mounts.append({"name": "sources", "mountPath": SCHEDULE_DIR, "readOnly": True})
            only = [{"key": SOURCES_KEY, "path": SOURCES_KEY}]
            volumes.append({"name": "sources", "configMap": {"name": SCHEDULE_MAP, "items": only}})
        return mounts, volumes

    def crawl_cronjob(self, site: SiteSchedule, kind: str, schedule: str) -> dict[str, Any]:
        name = cronjob_name(site.site, kind)
        labels = {LABEL_NAME: "newsarchive", LABEL_SITE: site.site, LABEL_SCHEDULE: kind}
        args = ["crawl", site.site, "--time-limit", _seconds(site.time_limit)]
        for arg, value in sorted(site.args.items()):
            args += ["-a", f"{arg}={value}"]
        # A crawl reads no schedule; the sources file, where there is one, names its spider.
        mounts, volumes = self._volumes(schedule=False)
        container = {
            "name": "crawl",
            "image": _image(),
            "args": args,
            "envFrom": [{"configMapRef": {"name": CONFIG_MAP}}],
            "env": _secret_env("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "ARCHIVE_CATALOG_URL")
            + _value_env(
                {**self.sources_env(), "ARCHIVE_SCHEDULE_GRACE": _seconds(self.config.grace)}
            ),
            "resources": {
                "requests": {"cpu": "500m", "memory": "512Mi"},
                "limits": {"memory": "2Gi"},
            },
            "securityContext": _container_security(),
            "volumeMounts": mounts,
        }
        deadline = math.ceil(site.time_limit) + self.grace + START_SLACK
        return {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": _metadata(name, labels),
            "spec": {
                "schedule": schedule,
                "timeZone": self.config.timezone,
                "concurrencyPolicy": Note(
                    "Never two crawls from this CronJob at once: a start while the last one "
                    "runs is skipped (the site's lease in the catalog covers the other ways a "
                    "crawl starts).",
                    "Forbid",
                ),
                "startingDeadlineSeconds": Note(
                    "A start missed by longer (the controller was down) is skipped, as the "
                    "daemon's ARCHIVE_SCHEDULE_MISFIRE_GRACE.",
                    self.config.misfire_grace,
                ),
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 5,
                "jobTemplate": {
                    "spec": {
                        "backoffLimit": 0,
                        "activeDeadlineSeconds": Note(
                            f"The crawl stops itself at its time limit ({_seconds(site.time_limit)}"
                            f" s); this is the backstop: the limit, the grace to close "
                            f"({_seconds(self.config.grace)} s) and {START_SLACK} s for the pod "
                            "to start.",
                            deadline,
                        ),
                        "template": {
                            "metadata": {"labels": labels},
                            "spec": {
                                "restartPolicy": "Never",
                                "terminationGracePeriodSeconds": Note(
                                    "Longer than the crawl needs to close its WARCs and upload "
                                    "after SIGTERM.",
                                    self.grace + STOP_SLACK,
                                ),
                                "securityContext": _pod_security(),
                                "containers": [container],
                                "volumes": volumes,
                            },
                        },
                    }
                },
            },
        }

    def status_cronjob(self) -> dict[str, Any]:
        mounts, volumes = self._volumes(schedule=True, spool_read_only=True)
        env = _secret_env("ARCHIVE_CATALOG_URL")
        if self.schedule_text is not None:
            env += _value_env(
                {
                    "ARCHIVE_SCHEDULE_FILE": f"{SCHEDULE_DIR}/{SCHEDULE_KEY}",
                    "ARCHIVE_SCHEDULE_TIMEZONE": self.config.timezone,
                }
            )
        env += _value_env(self.sources_env())
        security = _pod_security()
        del security["fsGroup"]  # it writes nothing
        return {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": _metadata("newsarchive-status", {LABEL_NAME: "newsarchive"}),
            "spec": {
                "schedule": Note(
                    "A failed Job of this CronJob is the alert: a site stale (no new article "
                    "for longer than its stale_after in the schedule file) or failing, or the "
                    "catalog not where the configuration points.",
                    STATUS_CRON,
                ),
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 1,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "spec": {
                        "backoffLimit": 0,
                        "activeDeadlineSeconds": 300,
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "securityContext": security,
                                "containers": [
                                    {
                                        "name": "status",
                                        "image": _image(),
                                        "args": ["status", "--check"],
                                        "envFrom": [{"configMapRef": {"name": CONFIG_MAP}}],
                                        "env": env,
                                        "securityContext": _container_security(),
                                        "volumeMounts": mounts,
                                    }
                                ],
                                "volumes": volumes,
                            }
                        },
                    }
                },
            },
        }

    def deployment(self, replicas: int) -> dict[str, Any]:
        assert self.schedule_text is not None
        labels = {LABEL_NAME: "newsarchive", LABEL_COMPONENT: "daemon"}
        mounts, volumes = self._volumes(schedule=True)
        running = self.config.max_running
        digest = self.digest()
        container = {
            "name": "daemon",
            "image": _image(),
            "args": ["run", "--metrics-port", str(METRICS_PORT)],
            "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
            "envFrom": [{"configMapRef": {"name": CONFIG_MAP}}],
            "env": _secret_env("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "ARCHIVE_CATALOG_URL")
            + _value_env(
                {
                    **self.schedule_env(),
                    "ARCHIVE_SCHEDULE_MAX_RUNNING": str(running),
                    "ARCHIVE_METRICS_ADDRESS": "0.0.0.0",
                }
            ),
            "resources": Note(
                f"Up to {running} crawls at once (ARCHIVE_SCHEDULE_MAX_RUNNING), each as a "
                "crawl's pod would get.",
                {
                    "requests": {"cpu": f"{500 * running}m", "memory": f"{512 * running}Mi"},
                    "limits": {"memory": f"{2 * running}Gi"},
                },
            ),
            "securityContext": _container_security(),
            "volumeMounts": mounts,
        }
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _metadata("newsarchive", labels),
            "spec": {
                "replicas": Note(
                    "Identical replicas: each due start runs on one of them (the site leases "
                    "in the shared PostgreSQL catalog), and a lost replica's sites run on the "
                    "others at their next start.",
                    replicas,
                ),
                "strategy": Note(
                    "One replica replaced at a time, never more daemons than replicas.",
                    {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
                    },
                ),
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {
                        "labels": labels,
                        "annotations": Note(
                            "The daemon reads its schedule and sources files at start: a "
                            "changed file rolls it.",
                            {"newsarchive/schedule-sha256": digest},
                        ),
                    },
                    "spec": {
                        "terminationGracePeriodSeconds": Note(
                            "Longer than the running crawls need to close their WARCs and "
                            "upload after SIGTERM.",
                            self.grace + STOP_SLACK,
                        ),
                        "securityContext": _pod_security(),
                        "containers": [container],
                        "volumes": volumes,
                    },
                },
            },
        }


def cronjob_name(site: str, kind: str) -> str:
    """``newsarchive-<site>``, ``newsarchive-<site>-revisions``: a valid Kubernetes name."""
    name = f"newsarchive-{site.lower().replace('_', '-')}"
    if kind != "crawl":
        name += f"-{kind}"
    if len(name) > CRONJOB_NAME_MAX or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
        raise DeployError(
            f"site {site}: {name!r} is no Kubernetes CronJob name (lower case letters, digits "
            f"and -, at most {CRONJOB_NAME_MAX} characters)"
        )
    return name


@dataclass(frozen=True, slots=True)
class Rendered:
    docs: list[dict[str, Any]]
    notes: list[str]  # header lines: what the reader of the file should know


def cronjobs(fleet: Fleet) -> Rendered:
    """The schedule ConfigMap, a CronJob per enabled site (and its revisions), the status one."""
    config = fleet.config
    docs: list[dict[str, Any]] = []
    if fleet.files():
        docs.append(fleet.schedule_map())
    folded, disabled = [], []
    for site in config.sites:
        if not site.enabled:
            disabled.append(site.site)
            continue
        where = f"{config.source}: site {site.site}"
        crawl, crawl_starts = kube_schedule(site.crawl, f"{where}: crawl")
        docs.append(fleet.crawl_cronjob(site, "crawl", crawl))
        if site.revisions:
            revisions, revision_starts = kube_schedule(site.revisions, f"{where}: revisions")
            if covers(crawl_starts, revision_starts):
                folded.append(site.site)
            else:
                docs.append(fleet.crawl_cronjob(site, "revisions", revisions))
    docs.append(fleet.status_cronjob())
    notes = ["newsarchive-<site>: `newsarchive crawl <site>` on the site's crawl schedule."]
    if any(doc["metadata"]["name"].endswith("-revisions") for doc in docs):
        notes += [
            "newsarchive-<site>-revisions: the same crawl on the site's revision schedule (extra",
            "starts for the revision re-fetches; every crawl makes those that are due).",
        ]
    if folded:
        notes.append(
            "No revisions CronJob where every revision start is a crawl start already: "
            + ", ".join(folded)
            + "."
        )
    if disabled:
        notes.append(f"Not scheduled (enabled = false): {', '.join(disabled)}.")
    if any(s.jitter for s in config.sites if s.enabled):
        notes.append(
            "A CronJob starts on the minute: the schedule's jitter applies to the daemon only."
        )
    notes.append(
        "newsarchive-status: `status --check` every 15 minutes; its failed Job is the alert."
    )
    return Rendered(docs, notes)


def daemon(fleet: Fleet, replicas: int) -> Rendered:
    """The schedule ConfigMap, the daemon's Deployment, the status CronJob."""
    docs = [fleet.schedule_map(), fleet.deployment(replicas), fleet.status_cronjob()]
    notes = [
        f"{replicas} replica(s) of `newsarchive run`, the schedule file from a ConfigMap; in",
        "kustomization.yaml's resources this file takes the place of cronjobs.yaml.",
        "newsarchive-status: `status --check` every 15 minutes; its failed Job is the alert.",
    ]
    return Rendered(docs, notes)


# --- YAML --------------------------------------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z/][A-Za-z0-9_./-]*\Z")
# Words a YAML 1.1 reader (Kubernetes') takes for a boolean or null when unquoted.
_RESERVED = frozenset(("y", "yes", "n", "no", "true", "false", "on", "off", "null"))
_FLOW_WIDTH = 100


def _raw_ok(char: str) -> bool:
    """A character written as it is inside quotes: printable, and no line break of YAML's."""
    code = ord(char)
    if char in '"\\':
        return False
    return (
        0x20 <= code <= 0x7E
        or (0xA0 <= code <= 0xD7FF and code not in (0x2028, 0x2029))
        or (0xE000 <= code <= 0xFFFD and code != 0xFEFF)
        or code >= 0x10000
    )


def _quoted(text: str) -> str:
    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t"}
    out = []
    for char in text:
        if _raw_ok(char):
            out.append(char)
        elif char in escapes:
            out.append(escapes[char])
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def scalar(value: Any) -> str:
    """One YAML scalar: plain where no YAML reader can take it for anything else, else quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if _PLAIN.match(value) and value.lower() not in _RESERVED:
            return value
        return _quoted(value)
    raise TypeError(f"no YAML scalar for {value!r}")


def _literal(text: str, column: int) -> list[str] | None:
    """A text of several lines as a literal block (``|2``), or None where quotes are safer."""
    body = text.rstrip("\n")
    trailing = len(text) - len(body)
    lines = body.split("\n")
    if (
        len(lines) < 2
        or not body.strip()
        or any(line != line.rstrip(" \t") for line in lines)
        or not all(_raw_ok(c) or c in '"\\\t' for line in lines for c in line)
    ):
        return None
    chomp = "-" if trailing == 0 else ("" if trailing == 1 else "+")
    pad = " " * (column + 2)
    return [f"|2{chomp}"] + [pad + line if line else "" for line in lines] + [""] * (trailing - 1)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int))


def _mapping(mapping: Mapping[str, Any], column: int) -> list[str]:
    lines: list[str] = []
    pad = " " * column
    for key, raw in mapping.items():
        value = raw
        if isinstance(raw, Note):
            lines += [f"{pad}# {line}" for line in _wrap(raw.comment, 96 - column)]
            value = raw.value
        head = f"{pad}{scalar(key)}:"
        if isinstance(value, str) and "\n" in value:
            block = _literal(value, column)
            if block is not None:
                lines.append(f"{head} {block[0]}")
                lines += block[1:]
                continue
        if _is_scalar(value):
            lines.append(f"{head} {scalar(value)}")
        elif isinstance(value, Mapping):
            lines += [f"{head} {{}}"] if not value else [head, *_mapping(value, column + 2)]
        elif isinstance(value, list):
            flow = _flow(value)
            if flow is not None and len(head) + 1 + len(flow) <= _FLOW_WIDTH:
                lines.append(f"{head} {flow}")
            else:
                lines += [head, *_sequence(value, column + 2)]
        else:
            raise TypeError(f"no YAML for {value!r}")
    return lines


def _flow(items: Sequence[Any]) -> str | None:
    """``["crawl", "tdi"]`` for a list of scalars (every string quoted), else None."""
    if items and not all(_is_scalar(i) for i in items):
        return None
    return "[" + ", ".join(_quoted(i) if isinstance(i, str) else scalar(i) for i in items) + "]"


def _sequence(items: Sequence[Any], column: int) -> list[str]:
    lines: list[str] = []
    pad = " " * column
    for item in items:
        if isinstance(item, Mapping) and item:
            if isinstance(next(iter(item.values())), Note):
                raise TypeError("a list item's first key has no comment")
            block = _mapping(item, column + 2)
            lines.append(f"{pad}- {block[0][column + 2 :]}")
            lines += block[1:]
        elif _is_scalar(item):
            lines.append(f"{pad}- {scalar(item)}")
        else:
            raise TypeError(f"no YAML list item for {item!r}")
    return lines


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def to_yaml(docs: Sequence[Mapping[str, Any]], header: Sequence[str] = ()) -> str:
    """Documents as one YAML stream, ``---`` between them, the header as comment lines."""
    parts = ["\n".join(f"# {line}".rstrip() for line in header)] if header else []
    body = "\n---\n".join("\n".join(_mapping(doc, 0)) for doc in docs)
    return "\n".join([*parts, body]) + "\n"


# --- The command -------------------------------------------------------------------------------

HELP_EXAMPLES = """\
examples:
  newsarchive deploy k8s --schedule deploy/schedule.toml.example
  newsarchive deploy k8s --schedule /etc/newsarchive/schedule.toml --out deploy/kubernetes
      a CronJob per site into deploy/kubernetes/cronjobs.yaml (kubectl apply -k deploy/kubernetes)
  newsarchive --env-file /etc/newsarchive/newsarchive.env deploy k8s --mode daemon \\
      --replicas 3 --out deploy/kubernetes
      3 daemon replicas into deploy/kubernetes/daemon.yaml (the catalog must be PostgreSQL)
"""


def add_deploy_command(sub: Any) -> None:
    """Register ``deploy k8s`` on the ``newsarchive`` subparsers."""
    from crawler.ops.common import settings_option

    deploy = sub.add_parser(
        "deploy",
        help="render the Kubernetes manifests from the schedule file",
        description="Render what runs the crawls from the schedule file the daemon reads.",
        epilog=HELP_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    targets = deploy.add_subparsers(dest="target", required=True, metavar="TARGET")
    k8s = targets.add_parser(
        "k8s",
        help="Kubernetes manifests: a CronJob per site, or the daemon's Deployment",
        description="Read the schedule file as the daemon does (--schedule, else "
        "ARCHIVE_SCHEDULE_FILE, else the ARCHIVE_SCHEDULE_* settings; every check of the file "
        "applies) and print the Kubernetes manifests as one YAML stream. --mode cronjobs: a "
        "CronJob per enabled site on its crawl schedule, one more on its revision schedule "
        "(unless its starts are crawl starts anyway), the site's time limit, spider arguments "
        "and the schedule's time zone, and the status CronJob. --mode daemon: a Deployment of "
        "--replicas daemons (`newsarchive run`) with the schedule file as a ConfigMap; more "
        "than one needs ARCHIVE_CATALOG_URL on PostgreSQL. A sources file (found as the daemon "
        "finds it: ARCHIVE_SOURCES_FILE, else sources.toml beside the schedule file, else "
        "./sources.toml) goes into the ConfigMap too, mounted in every pod that lists the "
        "spiders; its sources are sites like the built-in ones. The containers say `image: "
        "newsarchive`, which kustomization.yaml's images: maps. Exit 2 on a bad schedule or "
        "option, with one line saying why.",
        epilog=HELP_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    k8s.add_argument(
        "--mode",
        default="cronjobs",
        metavar="MODE",
        help="cronjobs (default): a CronJob per site; daemon: a Deployment of `newsarchive run`",
    )
    k8s.add_argument(
        "--schedule",
        default=None,
        metavar="FILE",
        help="the schedule file (TOML; default: ARCHIVE_SCHEDULE_FILE)",
    )
    k8s.add_argument(
        "--replicas",
        default="1",
        metavar="N",
        help="--mode daemon: identical daemons (default 1; more need a PostgreSQL catalog)",
    )
    k8s.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="write DIR/cronjobs.yaml or DIR/daemon.yaml instead of printing",
    )
    settings_option(k8s, "ARCHIVE_* setting, as the daemon would read it")
    k8s.set_defaults(func=cmd_deploy_k8s)


def _replicas(value: str, mode: str) -> int:
    try:
        replicas = int(value)
    except ValueError:
        replicas = 0
    if replicas < 1:
        raise DeployError(f"--replicas must be a whole number of at least 1, got {value!r}")
    if replicas > 1 and mode != "daemon":
        raise DeployError("--replicas is for --mode daemon (a CronJob runs one crawl per start)")
    return replicas


def _check_shared_catalog(settings: Any, replicas: int) -> None:
    url = str(settings.get("ARCHIVE_CATALOG_URL") or "")
    scheme = url.partition("://")[0].partition("+")[0] if "://" in url else ""
    if replicas > 1 and scheme != "postgresql":
        now = f"it is {without_password(url)!r}" if url else "it is unset (SQLite beside the spool)"
        raise DeployError(
            f"--replicas {replicas} needs one catalog on PostgreSQL shared by the replicas (their "
            "site leases live there): set ARCHIVE_CATALOG_URL=postgresql+psycopg://… in the "
            f"environment, --env-file or -s; {now}"
        )


def _check_args(config: ScheduleConfig) -> None:
    from crawler.crawl.spider import CrawlArgs

    for site in config.sites:
        try:
            CrawlArgs.check(site.args)
        except ValueError as exc:
            raise DeployError(f"{config.source}: site {site.site}: args: {exc}") from exc


def _comment_text(text: str) -> str:
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _command_line(ns: argparse.Namespace, mode: str, replicas: int) -> str:
    words = ["newsarchive"]
    if getattr(ns, "env_file", None):
        words += ["--env-file", ns.env_file]
    words += ["deploy", "k8s"]
    if mode != "cronjobs":
        words += ["--mode", mode]
    if replicas != 1:
        words += ["--replicas", str(replicas)]
    if ns.schedule:
        words += ["--schedule", ns.schedule]
    line = " ".join(shlex.quote(str(w)) for w in words)
    # A setting's value may be a credential: its name only.
    for pair in ns.settings:
        line += f" -s {shlex.quote(pair.partition('=')[0])}=…"
    return _comment_text(line)


def header(ns: argparse.Namespace, config: ScheduleConfig, mode: str, replicas: int) -> list[str]:
    if config.source == "settings":
        source = "the ARCHIVE_SCHEDULE_* settings (no schedule file)"
    elif ns.schedule:
        source = _comment_text(config.source)
    else:
        source = f"{_comment_text(config.source)} (ARCHIVE_SCHEDULE_FILE)"
    return [
        f"Generated by `{_command_line(ns, mode, replicas)}`",
        f"from {source}. Do not edit: change the schedule and run the command again.",
    ]


def read_sources(settings: Any, schedule: str | None) -> tuple[Path | None, list[str], str | None]:
    """(path, source names, text) of the sources file the daemon would read: as
    crawler/crawl/sources.py finds it (``ARCHIVE_SOURCES_FILE``, else beside the schedule
    file, here ``--schedule`` too, else ``./sources.toml``), each entry checked by its loader.
    (None, [], None): there is none."""
    from crawler.crawl.sources import SourcesError, load_sources, sources_file

    names = {
        "ARCHIVE_SOURCES_FILE": settings.get("ARCHIVE_SOURCES_FILE"),
        "ARCHIVE_SCHEDULE_FILE": schedule or settings.get("ARCHIVE_SCHEDULE_FILE"),
    }
    path, named = sources_file(names)
    if path is None:
        return None, [], None
    if named and not path.is_file():
        raise DeployError(
            f"ARCHIVE_SOURCES_FILE: {path} does not exist (`newsarchive sources add URL` makes it)"
        )
    try:
        entries = load_sources(path)
        text = path.read_text(encoding="utf-8")
    except SourcesError as exc:
        raise DeployError(str(exc)) from None
    except OSError as exc:
        raise DeployError(f"sources file {path}: cannot read it: {exc}") from None
    return path, [entry.name for entry in entries], text


def render(ns: argparse.Namespace) -> tuple[str, str]:
    """(the YAML, a one-line summary); raises DeployError or ScheduleError."""
    from crawler.ops.common import archive_settings
    from crawler.ops.sources import builtin_spiders

    mode = ns.mode
    if mode not in MODES:
        raise DeployError(f"--mode must be {' or '.join(MODES)}, got {mode!r}")
    replicas = _replicas(ns.replicas, mode)
    settings = archive_settings(ns.settings)
    sources_path, source_names, sources_text = read_sources(settings, ns.schedule)
    sites = builtin_spiders()
    for name in source_names:
        if name in sites:
            raise DeployError(
                f"sources file {sources_path}: [sources.{name}]: the name is a built-in "
                "spider's (choose another)"
            )
    if sources_path is not None:
        # The schedule reads the sources' own schedules from this file, as the pods will.
        settings = settings.copy()
        settings.set("ARCHIVE_SOURCES_FILE", str(sources_path), priority="cmdline")
    config = ScheduleConfig.from_settings(settings, sorted(sites + source_names), file=ns.schedule)
    _check_args(config)
    text = None
    if config.source != "settings":
        try:
            text = Path(config.source).read_text(encoding="utf-8")
        except OSError as exc:
            raise DeployError(f"schedule file {config.source}: cannot read it: {exc}") from exc
    fleet = Fleet(config, text, sources_text)
    if mode == "daemon":
        if text is None:
            raise DeployError(
                "--mode daemon needs a schedule file (--schedule FILE or ARCHIVE_SCHEDULE_FILE): "
                "the daemon's pods read it from a ConfigMap"
            )
        _check_shared_catalog(settings, replicas)
        rendered = daemon(fleet, replicas)
    else:
        rendered = cronjobs(fleet)
    lines = [*header(ns, config, mode, replicas), "", *rendered.notes]
    if sources_path is not None:
        lines.append(
            f"Sources file {_comment_text(str(sources_path))} in the ConfigMap, read by every "
            f"pod: {', '.join(source_names) or 'no source'}."
        )
    kinds: dict[str, int] = {}
    for doc in rendered.docs:
        kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
    summary = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    return to_yaml(rendered.docs, lines), summary


def cmd_deploy_k8s(ns: argparse.Namespace) -> int:
    try:
        text, summary = render(ns)
    except (DeployError, ScheduleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if ns.out is None:
        sys.stdout.write(text)
        return EXIT_OK
    path = Path(ns.out) / OUT_FILES[ns.mode]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"error: --out {ns.out}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {path}: {summary}")
    return EXIT_OK
