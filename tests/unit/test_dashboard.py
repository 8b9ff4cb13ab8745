"""deploy/grafana/wpcdc.json and the alerting rules name only metrics that exist.

Every metric a dashboard query or an alert expression names must be one the connector exports:
read from the prometheus_client registry that serves /metrics (cdc.metrics registers into it), so
the check follows the code. Outside wpcdc: `up` (Prometheus), kube-state-metrics' kube_* series,
and the process_* series of prometheus_client's default collectors (also in the registry).

"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY, generate_latest

import cdc.metrics  # noqa: F401 - registers wpcdc's metrics in REGISTRY

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "wpcdc.json"
RULES = REPO / "deploy" / "k8s" / "monitoring" / "wpcdc.rules.yaml"

EXTERNAL = re.compile(r"^(up|kube_[a-z_]+)$")
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "inf", "nan",
}


def exported() -> set[str]:
    """Every series name the registry can expose: from the families' types (a labelled metric
    with no child yet has no sample) and from the /metrics text itself."""
    names = set()
    for family in REGISTRY.collect():
        suffixes = {"counter": ["_total"], "info": ["_info"], "histogram": ["_bucket", "_sum", "_count"],
                    "summary": ["_sum", "_count", ""]}.get(family.type, [""])
        names |= {family.name + s for s in suffixes}
        names |= {s.name for s in family.samples}
    text = generate_latest(REGISTRY).decode()
    names |= set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[ {]", text, re.MULTILINE))
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)                 # strings (label values, regexes)
    expr = re.sub(r"\{[^}]*\}", " ", expr)                            # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)                           # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for m in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", expr):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def dashboard_exprs() -> list[str]:
    d = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"].removeprefix("label_values(").rsplit(",", 1)[0]
              for v in d["templating"]["list"] if v["type"] == "query"]
    return exprs


def rule_exprs() -> list[str]:
    return [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def used() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for where, exprs in (("dashboard", dashboard_exprs()), ("rules", rule_exprs())):
        for expr in exprs:
            for name in metric_names(expr):
                out.setdefault(name, set()).add(where)
    return out


def test_the_name_extraction() -> None:
    assert metric_names('histogram_quantile(0.99, sum by (service, le) (rate(a_bucket{x=~"$y"}[$__rate_interval])))') == {"a_bucket"}
    assert metric_names('(b{n="w"} == 0 and on (namespace, pod) c > 1) * on (pod) group_left (connector) max by (pod) (d)') == {"b", "c", "d"}
    assert metric_names('label_replace(max by (namespace) (e) >= 3, "service", "$1", "pod", "(.+)-[0-9]+")') == {"e"}


def test_every_query_names_an_exported_metric() -> None:
    names = exported()
    assert "wpcdc_checkpoint_age_seconds" in names and "wpcdc_events_total" in names and "wpcdc_info" in names
    unknown = {n: w for n, w in used().items() if n not in names and not EXTERNAL.match(n)}
    assert not unknown, f"names that cdc/metrics.py does not export: {unknown}"



def test_the_dashboard_selects_connectors_by_site() -> None:
    d = json.loads(DASHBOARD.read_text())
    assert {v["name"] for v in d["templating"]["list"]} == {"datasource", "namespace", "service"}
    for panel in d["panels"]:
        for target in panel.get("targets", []):
            assert 'service=~"$service"' in target["expr"], (panel["title"], target["expr"])
            assert "job=" not in target["expr"]
            assert target["datasource"]["uid"] == "${datasource}"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
