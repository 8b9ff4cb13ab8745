"""deploy/k8s: every kustomization renders and passes the offline validator, and the validator
catches broken manifests.

The validator (deploy/k8s/validate, Go) renders with the kustomize library and checks each object
with the Kubernetes API server's own decoding and validation code, the ServiceMonitor CRD's schema
and wpcdc's policy; nothing is fetched at run time. Its first build downloads Go modules (the Go
module proxy) and compiles for a minute or two; the binary is then cached under
~/.cache/wpcdc/, keyed by a hash of the validator's sources and the Go version.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
VALIDATOR_SRC = K8S / "validate"
GO = shutil.which("go")

# Everything under deploy/k8s that can be applied or copied: the kustomizations of the connectors,
# those of their Jobs, and the example Secret (not part of any kustomization, validated on its own).
CONNECTORS = ["base", "overlays/production", "overlays/fleet"]
JOBS = [f"overlays/jobs/{overlay}/{job}" for overlay in ("production", "fleet/site-a", "fleet/site-b")
        for job in ("backfill", "offsets")]
TARGETS = [*CONNECTORS, *JOBS, "base/secret.example.yaml"]
CONNECTOR_KINDS = {"ServiceAccount", "StatefulSet", "Service", "ServiceMonitor", "PodDisruptionBudget",
                   "NetworkPolicy", "ConfigMap"}

# The cold build (module downloads + compiling the API server's validation code) exceeds the
# suite's default 300 s on slow machines.
pytestmark = pytest.mark.timeout(1800)


def _go_version() -> str:
    assert GO is not None
    return subprocess.run([GO, "version"], check=True, capture_output=True, text=True).stdout.strip()


BUILD = ["build", "-trimpath", "-ldflags=-s -w"]


def _sources_hash() -> str:
    h = hashlib.sha256(_go_version().encode() + b"\0" + " ".join(BUILD).encode())
    for path in sorted(VALIDATOR_SRC.rglob("*")):
        if path.is_file() and path.suffix in {".go", ".mod", ".sum", ".yaml"}:
            h.update(b"\0" + path.relative_to(VALIDATOR_SRC).as_posix().encode() + b"\0")
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def validator() -> Path:
    """The validator binary, built once per source change."""
    if GO is None:
        message = "`go` is not installed: the deploy/k8s validator is a Go program (Go >= 1.26)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must validate the manifests, so it must have Go")
        pytest.skip(message)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wpcdc"
    binary = cache / f"k8s-validate-{_sources_hash()}"
    if binary.exists():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_name(f"{binary.name}.tmp{os.getpid()}")
    try:
        build = subprocess.run(
            [GO, *BUILD, "-o", str(tmp), "."],
            cwd=VALIDATOR_SRC, capture_output=True, text=True, timeout=1500,
        )
        if build.returncode != 0:
            pytest.fail(f"building deploy/k8s/validate failed:\n{build.stdout}{build.stderr}")
        tmp.replace(binary)  # atomic: concurrent sessions never run a half-written binary
    finally:
        tmp.unlink(missing_ok=True)
    for old in cache.glob("k8s-validate-*"):  # builds of older sources
        if old != binary and ".tmp" not in old.name:
            old.unlink(missing_ok=True)
    return binary


@pytest.fixture(scope="session")
def known_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The WPCDC_* variables `wpcdc stream` reads, straight from the click command."""
    from cdc.cli import main

    stream = main.commands["stream"]
    names = sorted({p.envvar for p in [*main.params, *stream.params] if isinstance(p.envvar, str)})
    assert "WPCDC_NAME" in names and "WPCDC_MYSQL_PASSWORD_FILE" in names
    path = tmp_path_factory.mktemp("k8s") / "wpcdc-env.txt"
    path.write_text("\n".join(names) + "\n")
    return path


def run(validator: Path, known_env: Path, root: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(validator), "-known-env", str(known_env), *targets],
        cwd=root, capture_output=True, text=True, timeout=120,
    )


def objects(output: str, target: str) -> list[tuple[str, str, str]]:
    """(status, kind, namespace/name) of each object line of one target."""
    out = []
    for m in re.finditer(rf"^(ok  |FAIL)  {re.escape(target)}: (\S+) (\S+) (\S+)$", output, re.MULTILINE):
        out.append((m.group(1).strip(), m.group(3), m.group(4)))
    return out


def test_every_kustomization_passes(validator: Path, known_env: Path) -> None:
    result = run(validator, known_env, K8S, *TARGETS)
    sys.stdout.write(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    for target in TARGETS:
        assert re.search(rf"^PASS  {re.escape(target)}: \d+ objects$", result.stdout, re.MULTILINE), target

    base = objects(result.stdout, "base")
    assert {kind for _, kind, _ in base} == CONNECTOR_KINDS
    assert all(status == "ok" for status, _, _ in base)
    # No Secret is ever rendered: the credentials are created out of band.
    for target in TARGETS[:-1]:
        assert "Secret" not in {kind for _, kind, _ in objects(result.stdout, target)}

    production = objects(result.stdout, "overlays/production")
    assert {ns.split("/")[0] for _, _, ns in production} == {"wpcdc"}
    assert {kind for _, kind, _ in production} == CONNECTOR_KINDS | {"PrometheusRule"}

    fleet = objects(result.stdout, "overlays/fleet")
    statefulsets = sorted(name for _, kind, name in fleet if kind == "StatefulSet")
    assert statefulsets == ["wpcdc-fleet/wpcdc-site-a", "wpcdc-fleet/wpcdc-site-b"]
    for kind in CONNECTOR_KINDS:  # one full set of objects per site
        assert sum(k == kind for _, k, _ in fleet) == 2, kind
    assert sum(k == "PrometheusRule" for _, k, _ in fleet) == 1  # the rules cover every site

    for target in JOBS:  # the Job alone, with the connector's own (unchanged) ConfigMap
        assert sorted(kind for _, kind, _ in objects(result.stdout, target)) == ["ConfigMap", "Job"], target


@dataclass(frozen=True)
class Breakage:
    id: str
    target: str   # what to validate, relative to the copy of deploy/k8s
    file: str     # what to break, relative to the copy of deploy/k8s
    pattern: str  # regular expression, must match in the file
    replace: str
    expect: str   # in the validator's output

    def __str__(self) -> str:
        return self.id


BREAKAGES = [
    # Stage 1: the Go API types, strictly.
    Breakage("unknown-field", "base", "base/statefulset.yaml", r"\n  replicas: 1\n", "\n  replicas: 1\n  replica: 1\n",
             'error: unknown field "spec.replica"'),
    Breakage("wrong-type", "base", "base/statefulset.yaml", r"\n  replicas: 1\n", '\n  replicas: "1"\n',
             "cannot unmarshal string into Go struct field StatefulSetSpec.spec.replicas of type int32"),
    Breakage("rule-unknown-field", "overlays/production", "monitoring/prometheusrule.yaml", r"\n( +)for: 5m\n",
             "\n\\1fore: 5m\n", 'unknown field "spec.groups[0].rules[0].fore"'),
    # Stage 2: the API server's validation, and the ServiceMonitor CRD's schema.
    Breakage("required-field", "base", "base/statefulset.yaml", r"\n +image: wpcdc .*\n", "\n",
             "error: spec.template.spec.containers[0].image: Required value"),
    Breakage("invalid-value", "overlays/production", "base/networkpolicy.yaml", r"port: 9404", "port: 94040",
             "error: spec.ingress[0].ports[0].port: Invalid value: 94040"),
    Breakage("crd-enum", "base", "base/servicemonitor.yaml", r"scheme: http\b", "scheme: htp",
             'error: spec.endpoints[0].scheme: Unsupported value: "htp"'),
    Breakage("crd-unknown-field", "base", "base/servicemonitor.yaml", r"\n      interval: 30s\n",
             "\n      intervall: 30s\n", 'error: unknown field "spec.endpoints[0].intervall"'),
    Breakage("unsupported-kind", "base", "base/kustomization.yaml", r"\n  - networkpolicy.yaml\n",
             "\n  - networkpolicy.yaml\n  - hpa.yaml\n",
             "error: this validator has no API validation for HorizontalPodAutoscaler.autoscaling"),
    # Stage 3: wpcdc's policy.
    Breakage("job-required-field", "overlays/jobs/production/backfill", "jobs/backfill/job.yaml",
             r"\n      restartPolicy: Never\n", "\n", "error: spec.template.spec.restartPolicy: Required value"),
    Breakage("no-memory-limit", "base", "base/statefulset.yaml", r"\n +limits:\n +memory: 512Mi\n", "\n",
             "error: spec.template.spec.containers[0].resources.limits.memory: not set"),
    Breakage("no-readiness-probe", "base", "base/statefulset.yaml",
             r"\n +readinessProbe:\n(?: {12}.*\n)+", "\n",
             "error: spec.template.spec.containers[0].readinessProbe: not set"),
    Breakage("runs-as-root", "base", "base/statefulset.yaml", r"runAsNonRoot: true", "runAsNonRoot: false",
             "error: spec.template.spec.containers[0]: runAsNonRoot must be true"),
    Breakage("two-replicas", "base", "base/statefulset.yaml", r"\n  replicas: 1\n", "\n  replicas: 2\n",
             "error: spec.replicas: 2; must be 1"),
    Breakage("parallel-pods", "base", "base/statefulset.yaml", r"podManagementPolicy: OrderedReady",
             "podManagementPolicy: Parallel", 'error: spec.podManagementPolicy: "Parallel"; must be OrderedReady'),
    Breakage("not-headless", "base", "base/service.yaml", r"\n  clusterIP: None\n", "\n",
             'error: spec.serviceName: Service "wpcdc" is not headless'),
    Breakage("deployment", "base", "base/statefulset.yaml",
             r"kind: StatefulSet\n((?:.*\n)*?)  serviceName: wpcdc\n((?:.*\n)*?)  podManagementPolicy: OrderedReady\n"
             r"  updateStrategy:\n    type: RollingUpdate\n",
             "kind: Deployment\n\\1\\2", "kind Deployment runs wpcdc: a node drain or a deleted pod starts the replacement"),
    Breakage("job-retries", "overlays/jobs/fleet/site-a/backfill", "jobs/backfill/job.yaml", r"backoffLimit: 0",
             "backoffLimit: 3", "error: spec.backoffLimit: must be 0"),
    Breakage("job-streams", "overlays/jobs/production/backfill", "jobs/backfill/job.yaml", r'args: \["backfill"\]',
             'args: ["stream"]', "a Job runs a one-off command (backfill, offsets, check, status), never `stream`"),
    Breakage("job-beside-connector", "overlays/jobs/production/backfill", "overlays/jobs/production/backfill/kustomization.yaml",
             r"\n  - (\.\./)+jobs/only-jobs\n", "\n",
             'connector name "www" (WPCDC_NAME) is used by 2 workloads (StatefulSet wpcdc/wpcdc, Job wpcdc/wpcdc-backfill)'),
    Breakage("no-target-labels", "overlays/fleet", "base/servicemonitor.yaml", r"\n  targetLabels:\n(    - .*\n)+", "\n",
             "spec.targetLabels: must include app.kubernetes.io/name"),
    Breakage("rule-selects-job", "overlays/fleet", "monitoring/prometheusrule.yaml",
             r'up\{app_kubernetes_io_name="wpcdc"\} == 0', 'up{job="wpcdc"} == 0',
             "(WpcdcDown).expr: selects by job"),
    Breakage("rule-without-runbook", "overlays/production", "monitoring/prometheusrule.yaml",
             r"\n +runbook_url: \S+#wpcdcdown\n", "\n", "(WpcdcDown).annotations.runbook_url: not set"),
    Breakage("password-in-env", "base", "base/statefulset.yaml", r"\n( +)envFrom:\n",
             "\n\\1env:\n\\1  - name: WPCDC_MYSQL_PASSWORD\n\\1    value: hunter2\n\\1envFrom:\n",
             "error: spec.template.spec.containers[0]: environment variable WPCDC_MYSQL_PASSWORD"),
    Breakage("password-in-configmap", "overlays/production", "overlays/production/kustomization.yaml",
             r"\n( +)- WPCDC_NAME=www\n", "\n\\1- WPCDC_NAME=www\n\\1- WPCDC_KAFKA_SASL_PASSWORD=hunter2\n",
             "error: data.WPCDC_KAFKA_SASL_PASSWORD: a credential in a ConfigMap"),
    Breakage("password-in-args", "base", "base/statefulset.yaml", r'args: \["stream"\]',
             'args: ["stream", "--mysql-password=hunter2"]', "passes a credential on the command line"),
    Breakage("real-secret-in-repo", "base/secret.example.yaml", "base/secret.example.yaml",
             r"mysql-password: CHANGE-ME-placeholder", "mysql-password: hunter2",
             "error: stringData.mysql-password: not a placeholder"),
    Breakage("unknown-option", "overlays/production", "overlays/production/kustomization.yaml",
             r"\n( +)- WPCDC_NAME=www\n", "\n\\1- WPCDC_NAME=www\n\\1- WPCDC_MYSQL_HOTS=db\n",
             "error: spec.template.spec.containers[0]: WPCDC_MYSQL_HOTS (from ConfigMap"),
    Breakage("pdb-blocks-drains", "base", "base/poddisruptionbudget.yaml", r"maxUnavailable: 1", "minAvailable: 1",
             "error: spec.minAvailable 1 with 1 replica(s) never allows an eviction"),
    Breakage("probe-wrong-port", "base", "base/kustomization.yaml", r"WPCDC_METRICS_PORT=9404", "WPCDC_METRICS_PORT=9405",
             "error: spec.template.spec.containers[0].ports: no containerPort 9405 (WPCDC_METRICS_PORT)"),
    Breakage("egress-blocks-kafka", "overlays/production", "base/networkpolicy.yaml", r"\n +- protocol: TCP\n +port: 9093\n",
             "\n", 'error: spec.egress: connector "www" cannot reach Kafka (WPCDC_KAFKA_BOOTSTRAP) on TCP port 9093'),
    Breakage("fleet-duplicate-name", "overlays/fleet", "overlays/fleet/site-b/kustomization.yaml",
             r"WPCDC_NAME=site-b", "WPCDC_NAME=site-a",
             'error: connector name "site-a" (WPCDC_NAME) is used by 2 workloads'),
    Breakage("fleet-shared-selector", "overlays/fleet", "overlays/fleet/site-b/kustomization.yaml",
             r"app.kubernetes.io/instance: site-b", "app.kubernetes.io/instance: site-a",
             "matches the pods of 2 workloads (wpcdc-site-a, wpcdc-site-b); each connector needs its own Service"),
]

HPA = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: wpcdc
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: StatefulSet, name: wpcdc}
  minReplicas: 1
  maxReplicas: 3
"""


@pytest.mark.parametrize("breakage", BREAKAGES, ids=str)
def test_validator_reports_broken_manifests(
    validator: Path, known_env: Path, tmp_path: Path, breakage: Breakage
) -> None:
    root = tmp_path / "k8s"
    shutil.copytree(K8S, root, ignore=shutil.ignore_patterns("validate"))
    (root / "base" / "hpa.yaml").write_text(HPA)  # only rendered where a breakage lists it
    path = root / breakage.file
    text, n = re.subn(breakage.pattern, breakage.replace, path.read_text())
    assert n > 0, f"{breakage.file}: {breakage.pattern!r} no longer matches; update the breakage"
    path.write_text(text)

    result = run(validator, known_env, root, breakage.target)
    assert result.returncode == 1, result.stdout + result.stderr
    assert breakage.expect in result.stdout, result.stdout + result.stderr
    assert re.search(rf"^FAIL  {re.escape(breakage.target)}: \d+ objects, \d+ problems$", result.stdout, re.MULTILINE)


def test_the_unbroken_copy_passes(validator: Path, known_env: Path, tmp_path: Path) -> None:
    """The breakages above fail because of what they change, not because of the copy."""
    root = tmp_path / "k8s"
    shutil.copytree(K8S, root, ignore=shutil.ignore_patterns("validate"))
    result = run(validator, known_env, root, *TARGETS)
    assert result.returncode == 0, result.stdout + result.stderr


def render(validator: Path, target: str, root: Path = K8S) -> list[dict[str, Any]]:
    """The objects of one kustomization, as `kubectl kustomize` renders them."""
    result = subprocess.run([str(validator), "-print", target], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_prometheus_selects_what_the_overlays_render(validator: Path) -> None:
    """kube-prometheus-stack picks ServiceMonitors and PrometheusRules by its release label: the
    fleet's were missing it, so nothing of theirs was scraped and no alert could fire. The rules
    select connectors by app_kubernetes_io_name, which the ServiceMonitor's targetLabels copies."""
    for target in ("overlays/production", "overlays/fleet"):
        monitoring = [o for o in render(validator, target) if o["kind"] in ("ServiceMonitor", "PrometheusRule")]
        assert {o["kind"] for o in monitoring} == {"ServiceMonitor", "PrometheusRule"}
        for o in monitoring:
            assert o["metadata"]["labels"].get("release") == "kube-prometheus-stack", (target, o["metadata"]["name"])
            if o["kind"] == "ServiceMonitor":
                assert "app.kubernetes.io/name" in o["spec"]["targetLabels"]
                assert o["metadata"]["labels"]["app.kubernetes.io/name"] == "wpcdc"


def test_the_alert_scenarios_use_the_fleet_s_label_sets(validator: Path) -> None:
    """tests/unit/test_alerts.py feeds promtool the labels the Prometheus Operator gives these
    targets: job and service are the Service's name, pod the StatefulSet's pod, container and
    endpoint those of the metrics port, and the ServiceMonitor's targetLabels from the Service."""
    from tests.unit.test_alerts import FLEET, PRODUCTION

    for target, sites in (("overlays/fleet", FLEET), ("overlays/production", (PRODUCTION,))):
        objs = render(validator, target)
        for site in sites:
            expected = site.target()
            (svc,) = [o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == expected["service"]]
            (sts,) = [o for o in objs if o["kind"] == "StatefulSet" and o["spec"]["serviceName"] == expected["service"]]
            (sm,) = [o for o in objs if o["kind"] == "ServiceMonitor"
                     and o["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()]
            assert svc["metadata"]["namespace"] == expected["namespace"]
            assert f"{sts['metadata']['name']}-0" == expected["pod"]
            (endpoint,) = sm["spec"]["endpoints"]
            (container,) = [c for c in _pod_spec(sts)["containers"] if any(p["name"] == endpoint["port"] for p in c["ports"])]
            assert (container["name"], endpoint["port"]) == (expected["container"], expected["endpoint"])
            for label in sm["spec"]["targetLabels"]:
                sanitized = re.sub(r"[^a-zA-Z0-9_]", "_", label)
                assert expected[sanitized] == svc["metadata"]["labels"][label], (site, label)
            assert "jobLabel" not in sm["spec"]  # job is the Service's name
            cm = next(o for o in objs if o["kind"] == "ConfigMap"
                      and o["metadata"]["name"] == container["envFrom"][0]["configMapRef"]["name"])
            assert cm["data"]["WPCDC_NAME"] == site.connector


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


@pytest.mark.parametrize("job", JOBS)
def test_a_job_runs_with_its_connector_s_settings(validator: Path, job: str) -> None:
    """Each Job takes the namespace, image, resources, ConfigMap (final hashed name), Secret,
    ServiceAccount and selector labels of the connector it replaces."""
    overlay = job.removeprefix("overlays/jobs/").rsplit("/", 1)[0]
    connector_objs = render(validator, f"overlays/{overlay}")
    (job_obj,) = [o for o in render(validator, job) if o["kind"] == "Job"]
    job_cm = [o for o in render(validator, job) if o["kind"] == "ConfigMap"]
    sts = [o for o in connector_objs if o["kind"] == "StatefulSet"]
    if overlay.startswith("fleet/"):
        sts = [o for o in sts if o["metadata"]["name"] == f"wpcdc-{overlay.split('/')[1]}"]
    (sts_obj,) = sts
    assert job_obj["metadata"]["namespace"] == sts_obj["metadata"]["namespace"]
    assert job_obj["metadata"]["name"] == f"{sts_obj['metadata']['name']}-{job.rsplit('/', 1)[1]}"
    conn, (run,) = _pod_spec(sts_obj)["containers"][0], _pod_spec(job_obj)["containers"]
    assert run["image"] == conn["image"] and run["resources"] == conn["resources"]
    assert run["envFrom"] == conn["envFrom"]
    assert _pod_spec(job_obj)["serviceAccountName"] == _pod_spec(sts_obj)["serviceAccountName"]
    assert _pod_spec(job_obj)["volumes"] == _pod_spec(sts_obj)["volumes"]
    assert run["volumeMounts"] == conn["volumeMounts"]
    # The connector's ConfigMap, byte for byte: applying the Job's kustomization changes nothing else.
    (cm,) = [o for o in connector_objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == conn["envFrom"][0]["configMapRef"]["name"]]
    assert job_cm == [cm]
    # The connector's selector labels: its NetworkPolicy applies to the Job's pod.
    selector = sts_obj["spec"]["selector"]["matchLabels"]
    labels = job_obj["spec"]["template"]["metadata"]["labels"]
    assert {k: labels.get(k) for k in selector} == selector
    assert labels["app.kubernetes.io/component"] != "connector"


def test_dockerfile_matches_the_manifests() -> None:
    """The manifests run as the image's user and probe the port the image exposes (the image's
    own structure: tests/unit/test_image.py)."""
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    instructions = [line for line in dockerfile.splitlines() if line and not line.startswith((" ", "#"))]
    assert 'ENTRYPOINT ["wpcdc"]' in instructions and 'CMD ["stream"]' in instructions
    assert "USER 10001:10001" in instructions
    assert "EXPOSE 9404" in instructions
    assert "PYTHONUNBUFFERED=1" in dockerfile
    for workload in ("base/statefulset.yaml", "jobs/backfill/job.yaml", "jobs/offsets/job.yaml"):
        text = (K8S / workload).read_text()
        assert "runAsUser: 10001" in text and "readOnlyRootFilesystem: true" in text, workload
    assert "containerPort: 9404" in (K8S / "base" / "statefulset.yaml").read_text()
    assert "WPCDC_METRICS_PORT=9404" in (K8S / "base" / "kustomization.yaml").read_text()
    ignored = (REPO / ".dockerignore").read_text().split()
    for path in (".git", ".venv", ".stack", "bench/results"):
        assert path in ignored
