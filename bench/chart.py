"""One PNG per bench run: throughput, CPU and peak RSS per workload (wpcdc beside Debezium),
and commit → Kafka latency percentiles. matplotlib is a bench-only dependency (extra ``bench``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WPCDC, DBZ, WPCDC_LIGHT = "#2b6cb0", "#c05621", "#90cdf4"


def chart(doc: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    w = doc["workloads"]
    names = [n for n in ("wp-bulk", "noise-heavy", "wp-editor") if "wpcdc" in w.get(n, {})]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    m = doc.get("machine", {})
    fig.suptitle(f"wpcdc vs Debezium {m.get('debezium', '')} — {m.get('cores')} cores, {m.get('cpu', '')[:40]}, "
                 f"run {doc.get('run')}", fontsize=11)

    def bars(ax: Any, key: str, title: str, fmt: str) -> None:
        xs = range(len(names))
        a = [w[n]["wpcdc"].get(key) or 0 for n in names]
        b = [(w[n].get("debezium") or {}).get(key) or 0 for n in names]
        ax.bar([x - 0.2 for x in xs], a, 0.4, label="wpcdc", color=WPCDC)
        ax.bar([x + 0.2 for x in xs], b, 0.4, label="Debezium", color=DBZ)
        for x, v in zip(xs, a):
            if v:
                ax.text(x - 0.2, v, fmt.format(v), ha="center", va="bottom", fontsize=8)
        for x, v in zip(xs, b):
            if v:
                ax.text(x + 0.2, v, fmt.format(v), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(list(xs), names)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)

    bars(axes[0][0], "relevant_rows_per_second", "relevant rows/s, binlog → committed in Kafka (higher is better)",
         "{:,.0f}")
    bars(axes[0][1], "cpu_seconds", "CPU seconds for the whole range (lower is better)", "{:.1f}")
    bars(axes[1][0], "peak_rss_mb", "peak RSS, MB (lower is better)", "{:.0f}")

    ax = axes[1][1]
    latency = w.get("latency", {})
    series = []
    if "wpcdc" in latency:
        series.append(("wpcdc, as configured", latency["wpcdc"].get("as_configured", {}), WPCDC_LIGHT))
        series.append((f"wpcdc beyond the {latency.get('window_seconds')} s window",
                       latency["wpcdc"].get("beyond_window", {}), WPCDC))
    if "debezium" in latency:
        series.append(("Debezium", latency["debezium"].get("as_configured", {}), DBZ))
    pcts = ("p50_ms", "p95_ms", "p99_ms")
    for i, (label, s, color) in enumerate(series):
        vals = [s.get(p) or 0 for p in pcts]
        xs = [k + (i - (len(series) - 1) / 2) * 0.27 for k in range(len(pcts))]
        ax.bar(xs, vals, 0.27, label=label, color=color)
        for x, v in zip(xs, vals):
            ax.text(x, v, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(pcts)), [p.split("_")[0] for p in pcts])
    ax.set_title(f"commit → committed in Kafka, ms, at {latency.get('rate_per_second', '?')} edits/s", fontsize=10)
    if series:
        ax.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
