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


def scaling_chart(doc: dict[str, Any], path: Path) -> Path | None:
    """wp-bulk at 0.5×, 1× and 2× its size (workload ``wp-bulk-scaling``): throughput, CPU per
    row and peak RSS against the size of the range. Flat lines: cost per row and memory do not
    grow with the backlog."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    runs = doc["workloads"].get("wp-bulk-scaling", {}).get("runs", {})
    points = sorted(((r["relevant_rows"], r["wpcdc"]) for r in runs.values()
                     if "relevant_rows" in r and "relevant_rows_per_second" in r.get("wpcdc", {})),
                    key=lambda p: p[0])
    if not points:
        return None
    xs = [p[0] for p in points]
    panels = (
        ("relevant_rows_per_second", "relevant rows/s (flat is good)", "{:,.0f}"),
        ("relevant_rows_per_cpu_second", "relevant rows per CPU second, drain", "{:,.0f}"),
        ("peak_rss_mb", "peak RSS, MB (flat is good)", "{:.0f}"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    m = doc.get("machine", {})
    fig.suptitle(f"wpcdc over wp-bulk at 0.5×, 1× and 2× its size — {m.get('cores')} cores, run {doc.get('run')}",
                 fontsize=11)
    for ax, (key, title, fmt) in zip(axes, panels):
        ys = [p[1].get(key) or 0 for p in points]
        ax.plot(xs, ys, marker="o", color=WPCDC)
        for x, y in zip(xs, ys):
            ax.annotate(fmt.format(y), (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
        ax.set_ylim(0, max(ys) * 1.25 if max(ys) else 1)
        ax.set_xticks(xs, [f"{x / 1000:,.0f}k" for x in xs])
        ax.set_xlim(0, max(xs) * 1.1)
        ax.set_xlabel("relevant rows in the range")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
