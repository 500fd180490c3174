"""Sweep tables and figures: merge the shards of a run folder into one tidy table.

:func:`collect` writes ``table.csv`` (tidy: one row per point and metric, columns
``point_id, input, R, acs, slope, seed, metric, value``), ``summary.md`` (one row per
point), ``timings.csv`` and ``sweep_slope.png`` (metrics vs slope per R/ACS).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from matplotlib.figure import Figure

from ..results import save_figure
from ..runfolder import atomic_write
from .group import METRICS

__all__ = ["TABLE_COLUMNS", "collect", "read_table", "wide", "summary_markdown", "plot_slope"]

#: columns of ``table.csv``.
TABLE_COLUMNS = ("point_id", "input", "R", "acs", "slope", "seed", "metric", "value")


def _sort_key(row: dict):
    return (row["input"], int(row["R"]), int(row["acs"]), float(row["slope"]), int(row["seed"]), row["metric"])


def collect(out: str | Path, *, figures: bool = True) -> list[dict]:
    """Merge the shards of ``out`` into ``table.csv``, ``summary.md`` and figures.

    Returns:
        The tidy rows (dicts with the :data:`TABLE_COLUMNS`), sorted by
        input, R, acs, slope, seed, metric.
    """
    out = Path(out)
    records = []
    for f in sorted((out / "shards").glob("*.json")):
        records.append(json.loads(f.read_text()))
    rows = []
    for rec in records:
        for metric, value in rec["metrics"].items():
            rows.append({"point_id": rec["point_id"], **rec["params"], "metric": metric, "value": float(value)})
    rows.sort(key=_sort_key)

    def _write_csv(f):
        w = csv.writer(f, lineterminator="\n")
        w.writerow(TABLE_COLUMNS)
        for r in rows:
            w.writerow([r["point_id"], r["input"], r["R"], r["acs"], repr(float(r["slope"])), r["seed"], r["metric"],
                        repr(float(r["value"]))])

    atomic_write(out / "table.csv", _write_csv)
    atomic_write(out / "summary.md", lambda f: f.write(summary_markdown(rows)))
    timings = sorted(((r["params"]["input"], r["params"]["R"], r["params"]["acs"], r["params"]["slope"],
                       r["params"]["seed"], r["timings"].get("point_s", float("nan"))) for r in records))
    atomic_write(out / "timings.csv", lambda f: f.write(
        "input,R,acs,slope,seed,point_s\n" + "".join(",".join(map(str, t)) + "\n" for t in timings)))
    if figures and rows:
        fig = plot_slope(rows)
        save_figure(fig, out / "sweep_slope.png", dpi=100)
    return rows


def read_table(path: str | Path) -> list[dict]:
    """Read a ``table.csv`` written by :func:`collect` back into typed rows."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["R"], r["acs"], r["seed"] = int(r["R"]), int(r["acs"]), int(r["seed"])
        r["slope"], r["value"] = float(r["slope"]), float(r["value"])
    return rows


def wide(rows: Iterable[dict]) -> list[dict]:
    """One dict per point (params + every metric) from tidy rows."""
    pts: dict[str, dict] = {}
    for r in rows:
        d = pts.setdefault(r["point_id"], {k: r[k] for k in ("input", "R", "acs", "slope", "seed")})
        d[r["metric"]] = r["value"]
    return sorted(pts.values(), key=lambda d: (d["input"], d["R"], d["acs"], d["slope"], d["seed"]))


def summary_markdown(rows: Iterable[dict]) -> str:
    """Markdown table, one row per point."""
    w = wide(rows)
    if not w:
        return "(no finished points)\n"
    metrics = [m for m in METRICS if any(m in d for d in w)]
    metrics += sorted({k for d in w for k in d} - set(metrics) - {"input", "R", "acs", "slope", "seed"})
    head = ["input", "R", "acs", "slope", "seed"] + metrics
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in w:
        cells = [str(d[k]) for k in head[:5]] + [f"{d[m]:.4g}" if m in d else "" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_slope(rows: Iterable[dict], metrics: Sequence[str] = ("gfactor_mean", "gfactor_p95", "nmse", "hf_loss")):
    """Metrics vs slope, one line per (input, R, ACS), mean over seeds (+- std)."""
    w = wide(rows)
    metrics = [m for m in metrics if any(m in d for d in w)] or sorted({k for d in w for k in d} - {"input", "R", "acs", "slope", "seed"})[:4]
    fig = Figure(figsize=(4 * len(metrics), 3.4), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    curves = sorted({(d["input"], d["R"], d["acs"]) for d in w})
    for ax, m in zip(axes, metrics):
        for c in curves:
            sl = sorted({d["slope"] for d in w if (d["input"], d["R"], d["acs"]) == c})
            vals = [[d[m] for d in w if (d["input"], d["R"], d["acs"]) == c and d["slope"] == s and m in d] for s in sl]
            mean = [np.mean(v) if v else np.nan for v in vals]
            std = [np.std(v) if v else np.nan for v in vals]
            lab = f"R={c[1]} ACS={c[2]}" + (f" {c[0]}" if len({x[0] for x in curves}) > 1 else "")
            ax.errorbar(sl, mean, yerr=std, marker="o", ms=3, capsize=2, label=lab)
        ax.set_xlabel("negative slope a")
        ax.set_title(m)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return fig
