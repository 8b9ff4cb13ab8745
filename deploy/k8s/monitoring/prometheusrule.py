#!/usr/bin/env python3
"""Write prometheusrule.yaml from wpcdc.rules.yaml: the same rules, as a PrometheusRule.

    python3 deploy/k8s/monitoring/prometheusrule.py          # rewrite it (`make rules`)
    python3 deploy/k8s/monitoring/prometheusrule.py --check  # exit 1 if it is out of date

The rules file is the source (promtool reads it as it is); the PrometheusRule's spec is that file,
comments included, indented under `spec:`. Standard library only.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RULES = HERE / "wpcdc.rules.yaml"
TARGET = HERE / "prometheusrule.yaml"

HEADER = """\
# GENERATED from wpcdc.rules.yaml by prometheusrule.py (`make rules`): edit that file instead.
# The Prometheus Operator loads these rules into every Prometheus whose ruleSelector matches the
# labels below (kube-prometheus-stack: release, added by ../components/kube-prometheus-stack) and
# whose ruleNamespaceSelector includes this namespace. One copy per Prometheus is enough: the
# rules cover every connector it scrapes, whatever their namespace.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: wpcdc
  labels:
    app.kubernetes.io/name: wpcdc
    app.kubernetes.io/component: alerting
spec:
"""


def render() -> str:
    body = RULES.read_text()
    lines = body.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    indented = ["  " + line if line else "" for line in lines[start:]]
    return HEADER + "\n".join(indented) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv[1:] == ["--check"]:
        if TARGET.read_text() != text:
            print(f"{TARGET} is out of date with {RULES.name}: run `make rules`", file=sys.stderr)
            return 1
        return 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
