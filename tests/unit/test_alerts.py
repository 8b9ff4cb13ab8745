"""deploy/k8s/monitoring: the alerting rules, checked and run against scenarios with promtool.

Each scenario feeds the series a fleet really has (the label sets the Prometheus Operator gives the
fleet overlay's targets: job = the Service's name, namespace, pod, the ServiceMonitor's target
labels; test_k8s_manifests.py checks them against the rendered manifests) and lists the alerts
that must be firing at some moments. Every other alert of the rules is added as "must not fire"
at each of those moments, so a scenario proves both that its alerts fire and that nothing else
does. promtool compares annotations too: the scenarios run on a copy of the rules without them
(`promtool check rules` checks their templates on the real file). Alertmanager's inhibit rules
(alertmanager.yaml) cannot be tested by promtool: what they silence still fires here.

promtool comes from Debian's `prometheus` package (2.42; deploy/local/deps.sh installs it, service
disabled); `promtool test rules` runs the scenarios in a second or two. WPCDC_PROMTOOL names
another one, e.g. a Prometheus 3 promtool built with `go install
github.com/prometheus/prometheus/cmd/promtool@v0.316.0` (3.x selects ranges left-open; the
scenarios keep clear of the edges and pass with both).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "k8s" / "monitoring"
RULES = MONITORING / "wpcdc.rules.yaml"
OPERATIONS = REPO / "docs" / "operations.md"
PROMTOOL = os.environ.get("WPCDC_PROMTOOL") or shutil.which("promtool")
RUNBOOK = "https://github.com/wpcdc/wpcdc/blob/main/docs/operations.md#"


def load_rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


ALERTS = {r["alert"]: r for r in load_rules() if "alert" in r}


@pytest.fixture(scope="module")
def promtool() -> str:
    if PROMTOOL is None:
        message = "promtool is not installed (Debian's `prometheus` package; make deps installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must test the alerting rules")
        pytest.skip(message)
    return PROMTOOL


# ------------------------------------------------------------------------------- label sets


@dataclass(frozen=True)
class Site:
    """One connector as Prometheus sees it through its ServiceMonitor."""

    namespace: str
    service: str     # the Service, the StatefulSet and job (the Prometheus Operator's default)
    connector: str   # WPCDC_NAME, in wpcdc_info
    instance: str    # the app.kubernetes.io/instance label: the site
    ip: str

    @property
    def pod(self) -> str:
        return f"{self.service}-0"

    def target(self) -> dict[str, str]:
        return {
            "job": self.service, "namespace": self.namespace, "service": self.service, "pod": self.pod,
            "container": "wpcdc", "endpoint": "metrics", "instance": f"{self.ip}:9404",
            "app_kubernetes_io_name": "wpcdc", "app_kubernetes_io_instance": self.instance,
        }

    def ksm(self) -> dict[str, str]:
        """What kube-state-metrics series of this pod carry (kube-prometheus-stack, honorLabels)."""
        return {"job": "kube-state-metrics", "namespace": self.namespace, "instance": "10.42.9.9:8080",
                "service": "kube-prometheus-stack-kube-state-metrics", "endpoint": "http"}


SITE_A = Site("wpcdc-fleet", "wpcdc-site-a", "site-a", "site-a", "10.42.0.11")
SITE_B = Site("wpcdc-fleet", "wpcdc-site-b", "site-b", "site-b", "10.42.1.12")
PRODUCTION = Site("wpcdc", "wpcdc", "www", "wordpress", "10.42.2.13")
FLEET = (SITE_A, SITE_B)


def selector(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def healthy(site: Site, **changes: str) -> dict[str, tuple[dict[str, str], str]]:
    """A connector streaming normally (values for 3 hours, one sample a minute), then `changes`.

    Keys are a metric name, optionally with `{label="value"}`; a change replaces the values of
    that series (`None`-like "_" leaves it out).
    """
    t = site.target()
    series = {
        "up": (t, "1x180"),
        "process_start_time_seconds": (t, "1700000000x180"),
        'wpcdc_info{version="0.1.0"}': (t | {"connector": site.connector}, "1x180"),
        "wpcdc_ready": (t, "1x180"),
        "wpcdc_stalled": (t, "0x180"),
        "wpcdc_source_connected": (t, "1x180"),
        "wpcdc_sink_connected": (t, "1x180"),
        "wpcdc_checkpoint_age_seconds": (t, "3x180"),   # the keepalive rewrites it every 5 s
        "wpcdc_source_lag_seconds": (t, "1x180"),
        'wpcdc_kafka_errors_total{operation="write"}': (t, "0x180"),
        'wpcdc_kafka_errors_total{operation="checkpoint"}': (t, "0x180"),
        'wpcdc_reconnects_total{cause="mysql"}': (t, "0x180"),
        'wpcdc_reconnects_total{cause="kafka"}': (t, "0x180"),
        "wpcdc_binlog_server_files": (t, "5x180"),
        "wpcdc_binlog_checkpoint_files_behind": (t, "4x180"),   # in the newest of 5 files
        "wpcdc_binlog_retention_seconds_left": (t, "604800x180"),  # a week: expire_logs_days=7
        "wpcdc_assembler_pending_bytes": (t, "1000000x180"),
        "wpcdc_assembler_pending_limit_bytes": (t, "67108864x180"),
        'kube_pod_container_status_restarts_total{container="wpcdc"}': (
            site.ksm() | {"pod": site.pod, "uid": f"uid-{site.pod}"}, "0x180"),
        'kube_pod_status_phase{phase="Running"}': (site.ksm() | {"pod": site.pod, "uid": f"uid-{site.pod}"}, "1x180"),
        'kube_pod_status_phase{phase="Pending"}': (site.ksm() | {"pod": site.pod, "uid": f"uid-{site.pod}"}, "0x180"),
        'kube_pod_status_phase{phase="Unknown"}': (site.ksm() | {"pod": site.pod, "uid": f"uid-{site.pod}"}, "0x180"),
        'kube_pod_owner{owner_kind="StatefulSet"}': (
            site.ksm() | {"pod": site.pod, "uid": f"uid-{site.pod}", "owner_name": site.service,
                          "owner_is_controller": "true"}, "1x180"),
        "kube_statefulset_replicas": (site.ksm() | {"statefulset": site.service}, "1x180"),
    }
    for key, values in changes.items():
        assert key in series or key.startswith(("kube_", "wpcdc_")), key
        ksm = site.ksm() | {"pod": site.pod, "uid": f"uid-{site.pod}"}
        labels = series[key][0] if key in series else ksm if key.startswith("kube_pod") else site.ksm() if key.startswith("kube_") else t
        series[key] = (labels, values)
    return series


def input_series(*sites: dict[str, tuple[dict[str, str], str]]) -> list[dict[str, str]]:
    out = []
    for site in sites:
        for key, (labels, values) in site.items():
            if values == "_":
                continue
            name, _, extra = key.partition("{")
            extra_labels = dict(re.findall(r'(\w+)="([^"]*)"', extra))
            out.append({"series": selector(name, labels | extra_labels), "values": values})
    return out


def ramp(start: float, step: float, first: int, last: int = 180, before: str = "") -> str:
    """`before` up to minute first-1, then start, start+step, ... up to minute `last`."""
    sign = "+" if step >= 0 else "-"
    return f"{before} {start}{sign}{abs(step)}x{last - first}".strip()


# ------------------------------------------------------------------------ expected alerts


def fired(alert: str, site: Site | None = None, **labels: str) -> dict[str, str]:
    """The labels `alert` fires with for `site`: the target's and the connector's for alerts on
    the connector's own metrics; namespace, pod and service for those on kube-state-metrics."""
    severity = ALERTS[alert]["labels"]["severity"]
    if site is None:
        return {"severity": severity, **labels}
    if alert in {"WpcdcCrashLooping", "WpcdcPodNotRunning"}:
        return {"namespace": site.namespace, "pod": site.pod, "service": site.service, "severity": severity}
    if alert == "WpcdcScaledToZero":
        return {"namespace": site.namespace, "statefulset": site.service, "service": site.service,
                "severity": severity}
    if alert == "WpcdcDown":
        return site.target() | {"severity": severity}
    return site.target() | {"connector": site.connector, "severity": severity}


@dataclass
class Scenario:
    name: str
    series: list[dict[str, str]]
    # eval time (minutes) -> the alerts firing then, as (alert name, labels)
    expect: dict[int, list[tuple[str, dict[str, str]]]] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name

    def promtool_test(self) -> dict[str, Any]:
        tests = []
        for minute, firing in sorted(self.expect.items()):
            for alert in ALERTS:
                exp = [{"exp_labels": labels} for name, labels in firing if name == alert]
                tests.append({"eval_time": f"{minute}m", "alertname": alert, "exp_alerts": exp})
        return {"name": self.name, "interval": "1m", "input_series": self.series, "alert_rule_test": tests}


def at(site: Site, *alerts: str) -> list[tuple[str, dict[str, str]]]:
    return [(a, fired(a, site)) for a in alerts]


# MySQL stops at minute 10 for site-a, an idle site: no new rows, so the old lag gauge read 0.
# The connector retries every 30 s; the lag is measured from the server's clock, the checkpoint
# is no longer rewritten (no session).
MYSQL_DOWN = healthy(
    SITE_A,
    wpcdc_source_connected="1x10 0x170",
    wpcdc_ready="1x10 0x170",
    wpcdc_source_lag_seconds=ramp(60, 60, 11, before="1x10"),
    wpcdc_checkpoint_age_seconds=ramp(60, 60, 11, before="3x10"),
    **{'wpcdc_reconnects_total{cause="mysql"}': ramp(2, 2, 11, before="0x10")},
)

# Kafka, shared by the fleet, is down from minute 10 for every site.
KAFKA_DOWN = [
    healthy(
        site,
        wpcdc_sink_connected="1x10 0x170",
        wpcdc_ready="1x10 0x170",
        wpcdc_checkpoint_age_seconds=ramp(60, 60, 11, before="3x10"),
        wpcdc_source_lag_seconds=ramp(60, 60, 11, before="1x10"),
        **{'wpcdc_kafka_errors_total{operation="write"}': ramp(2, 2, 11, before="0x10"),
           'wpcdc_reconnects_total{cause="kafka"}': ramp(2, 2, 11, before="0x10")},
    )
    for site in FLEET
]

# A broker rolling restart at minutes 20 to 24: every producer loses its partition leaders a few
# times, writes fail and sessions restart; each is back within a minute.
ROLLING_RESTART = [
    healthy(
        site,
        wpcdc_sink_connected="1x20 0 1 0 1x157",
        wpcdc_ready="1x20 0 1 0 1x157",
        wpcdc_checkpoint_age_seconds="3x20 40 70 40 3x157",
        **{'wpcdc_kafka_errors_total{operation="write"}': "0x19 1 2 3 4 5 5x155",
           'wpcdc_reconnects_total{cause="kafka"}': "0x19 1 2 3 4 4x156"},
    )
    for site in FLEET
]


def gone_after(series: dict[str, tuple[dict[str, str], str]], minute: int,
               prefixes: tuple[str, ...] = ("wpcdc_", "process_")) -> dict[str, tuple[dict[str, str], str]]:
    """The target stops answering after `minute`: Prometheus marks its series stale."""
    for key, (labels, values) in list(series.items()):
        if key.startswith(prefixes):
            series[key] = (labels, f"{values.split('x')[0]}x{minute} stale")
    return series


def crash_loop() -> dict[str, tuple[dict[str, str], str]]:
    """site-a exits fatally from minute 10 (exit 21, say): restarts after 10 s, 20 s, 40 s ... then
    every 5 minutes (CrashLoopBackOff), each life long enough for one scrape. While it is down
    the scrape fails: up is 0 and its other series are stale."""
    lives = {11, 12, 14, 17, 22, 27, 32, 37, 42, 47, 52, 57, 62, 67, 72, 77}

    def per_minute(value: Any, dead: str = "stale") -> str:
        return " ".join(str(value(m)) if m < 10 or m in lives else dead for m in range(181))

    series = healthy(SITE_A)
    for key, (labels, values) in series.items():
        if key.startswith(("wpcdc_", "process_")):
            constant = values.split("x")[0]
            series[key] = (labels, per_minute(lambda m, c=constant: c))
    labels = SITE_A.target()
    series["up"] = (labels, per_minute(lambda m: 1, dead="0"))
    series["process_start_time_seconds"] = (labels, per_minute(lambda m: 1700000000 + 60 * max(m, 0) * (m >= 10)))
    series["wpcdc_ready"] = (labels, per_minute(lambda m: int(m < 10)))
    key = 'kube_pod_container_status_restarts_total{container="wpcdc"}'
    series[key] = (series[key][0], " ".join(str(sum(1 for life in lives if life <= m)) for m in range(181)))
    return series


# site-b's node stops answering at minute 10: its scrapes fail, and the pod, deleted by the node
# lifecycle controller at minute 12, stays Terminating: the StatefulSet creates no replacement
# while it exists.
NODE_LOST = gone_after(healthy(SITE_B, **{
    'kube_pod_status_phase{phase="Running"}': "1x11 0x169",
    'kube_pod_status_phase{phase="Unknown"}': "0x11 1x169",
    "kube_pod_deletion_timestamp": "_x11 720x169",
}, up="1x10 0x170"), 10)

# The production connector far behind on a server that keeps binlogs for a day: it delivers, but
# the file its checkpoint needs is purged in 2 h 10 min, then less and less. site-b's server keeps
# one binlog file (files_behind 0 is normal there); site-a's has no time-based expiry (no
# retention_seconds_left) and its checkpoint is in the oldest of 4 files.
PURGE_SOON = [
    healthy(
        PRODUCTION,
        wpcdc_source_lag_seconds=ramp(72000, 0, 0),
        wpcdc_binlog_retention_seconds_left=ramp(7800, -60, 0),
        wpcdc_binlog_server_files="24x180",
        wpcdc_binlog_checkpoint_files_behind="0x180",
    ),
    healthy(SITE_B, wpcdc_binlog_server_files="1x180", wpcdc_binlog_checkpoint_files_behind="0x180"),
    healthy(
        SITE_A,
        wpcdc_binlog_retention_seconds_left="_",
        wpcdc_binlog_server_files="4x180",
        wpcdc_binlog_checkpoint_files_behind="0x180",
    ),
]

# Scaled to 0 at minute 10 for a backfill Job that runs until minute 40, then forgotten.
SCALED_DOWN = gone_after(healthy(
    PRODUCTION,
    up="1x10 stale",
    kube_statefulset_replicas="1x10 0x170",
    **{'kube_job_status_active{job_name="wpcdc-backfill"}': "_x10 1x30 0x140"},
), 10, ("wpcdc_", "process_", "kube_pod_"))

SCENARIOS = [
    Scenario("a healthy fleet and a production connector", input_series(*(healthy(s) for s in (*FLEET, PRODUCTION))),
             {10: [], 60: [], 170: []}),
    Scenario("MySQL down on an idle site", input_series(MYSQL_DOWN, healthy(SITE_B)), {
        8: [],
        18: at(SITE_A, "WpcdcSourceUnreachable"),
        40: at(SITE_A, "WpcdcSourceUnreachable", "WpcdcNotReady", "WpcdcReconnecting", "WpcdcNotDelivering",
               "WpcdcBehindSource"),
    }),
    Scenario("Kafka down for the whole fleet", input_series(*KAFKA_DOWN), {
        14: [],
        18: [*at(SITE_A, "WpcdcKafkaUnreachable"), *at(SITE_B, "WpcdcKafkaUnreachable")],
        45: [a for s in FLEET for a in at(s, "WpcdcKafkaUnreachable", "WpcdcKafkaErrors", "WpcdcReconnecting",
                                            "WpcdcNotReady", "WpcdcNotDelivering", "WpcdcBehindSource")],
    }),
    Scenario("a broker rolling restart", input_series(*ROLLING_RESTART), {m: [] for m in (21, 24, 30, 38, 45, 60)}),
    Scenario("a fatal exit: crash loop", input_series(crash_loop(), healthy(SITE_B)), {
        9: [],
        40: at(SITE_A, "WpcdcCrashLooping"),
        75: at(SITE_A, "WpcdcCrashLooping"),
    }),
    Scenario("a node that stopped answering", input_series(healthy(SITE_A), NODE_LOST), {
        12: [],
        16: at(SITE_B, "WpcdcDown"),
        40: at(SITE_B, "WpcdcDown", "WpcdcPodNotRunning"),
    }),
    Scenario("binlog about to be purged", input_series(*PURGE_SOON), {
        4: [],
        20: at(PRODUCTION, "WpcdcBinlogPurgeImminent", "WpcdcBinlogRetentionLow", "WpcdcBehindSource",
               "WpcdcBinlogCheckpointOnOldestFile") + at(SITE_A, "WpcdcBinlogCheckpointOnOldestFile"),
    }),
    Scenario("scaled to 0 for a Job, and left there", input_series(SCALED_DOWN, healthy(SITE_A)), {
        30: [],
        90: [],
        110: at(PRODUCTION, "WpcdcScaledToZero"),
    }),
    Scenario("no connector scraped at all", input_series({
        'kube_statefulset_replicas{statefulset="other"}': ({"namespace": "x"}, "1x180"),
    }), {
        10: [],
        20: [("WpcdcAbsent", fired("WpcdcAbsent", None, app_kubernetes_io_name="wpcdc"))],
    }),
    Scenario("a stalled stream", input_series(healthy(
        SITE_A,
        wpcdc_stalled="0x10 1x170",
        wpcdc_ready="1x10 0x170",
        wpcdc_checkpoint_age_seconds=ramp(60, 60, 11, before="3x10"),
        wpcdc_source_lag_seconds=ramp(60, 60, 11, before="1x10"),
    ), healthy(SITE_B, wpcdc_assembler_pending_bytes="1000000x10 60000000x170")), {
        13: [],
        18: at(SITE_A, "WpcdcStalled"),
        40: at(SITE_A, "WpcdcStalled", "WpcdcNotReady", "WpcdcNotDelivering", "WpcdcBehindSource")
        + at(SITE_B, "WpcdcPendingNearLimit"),
    }),
]


# ---------------------------------------------------------------------------------- tests


def test_promtool_checks_the_rules(promtool: str) -> None:
    for path in (RULES,):
        result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheusrule_is_the_rules_file() -> None:
    result = subprocess.run(["python3", str(MONITORING / "prometheusrule.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    resource = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert resource["spec"] == yaml.safe_load(RULES.read_text())


def test_every_alert_says_how_urgent_and_links_its_runbook() -> None:
    anchors = {github_anchor(h) for h in re.findall(r"^#+ (.+)$", OPERATIONS.read_text(), re.MULTILINE)}
    for name, rule in ALERTS.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        url = rule["annotations"]["runbook_url"]
        assert url.startswith(RUNBOOK), (name, url)
        assert url.removeprefix(RUNBOOK) in anchors, f"{name}: docs/operations.md has no heading for {url}"
        assert rule["annotations"]["summary"], name
        assert not re.search(r'\bjob\s*[=!]~?\s*"', rule["expr"]), f"{name} selects by job"
        if name not in {"WpcdcAbsent"}:  # every alert names the site it is about
            assert "namespace" in rule["annotations"]["summary"] and "service" in rule["annotations"]["summary"], name
    # Error rates never page on a burst: a `for:` of at least 15 minutes.
    for name in ("WpcdcKafkaErrors", "WpcdcReconnecting"):
        assert ALERTS[name]["for"] in {"15m", "20m", "30m"}, name


def test_the_alertmanager_snippet_names_real_alerts() -> None:
    """Inhibition cannot be tested by promtool; at least every name it matches exists, it never
    inhibits a page, and it matches on the labels every alert of a connector carries."""
    config = yaml.safe_load((MONITORING / "alertmanager.yaml").read_text())
    for rule in config["inhibit_rules"]:
        (source,) = rule["source_matchers"]
        (target,) = rule["target_matchers"]
        for matcher in (source, target):
            names = re.fullmatch(r'alertname\s*=~?\s*"([^"]+)"', matcher).group(1).split("|")
            assert set(names) <= set(ALERTS), matcher
        for name in re.fullmatch(r'alertname\s*=~?\s*"([^"]+)"', target).group(1).split("|"):
            assert ALERTS[name]["labels"]["severity"] == "warning", f"{name} pages: never inhibit a page"
        assert rule["equal"] == ["namespace", "service"]
    for scenario in SCENARIOS:  # the labels inhibition matches on are on every alert of a site
        for firing in scenario.expect.values():
            for name, labels in firing:
                if name != "WpcdcAbsent":
                    assert {"namespace", "service"} <= set(labels), (scenario.name, name)


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_the_scenarios_cover_every_alert() -> None:
    fired_somewhere = {name for s in SCENARIOS for firing in s.expect.values() for name, _ in firing}
    assert fired_somewhere == set(ALERTS), set(ALERTS) ^ fired_somewhere


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_alerts_fire_in_their_scenario_and_nowhere_else(promtool: str, tmp_path: Path, scenario: Scenario) -> None:
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    test = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [scenario.promtool_test()]}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run([promtool, "test", "rules", "test.yaml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_runbooks_links_resolve() -> None:
    """The runbooks link each other; a renamed heading must not leave a dead link."""
    text = OPERATIONS.read_text()
    anchors = {github_anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}
    assert set(re.findall(r"\]\(#([^)]+)\)", text)) <= anchors
