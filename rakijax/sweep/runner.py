"""Sweep runner: shards per point, resumable, local (this module) or Dask (:mod:`.dask`).

Every point writes its own *shard* ``DIR/shards/<id>.json`` (metrics row, device,
versions) plus ``<id>.npz`` (g map, reconstruction, training losses), each written
atomically (:func:`rakijax.runfolder.atomic_write`), so a shard exists completely or not at
all. ``<id>`` (:func:`rakijax.sweep.point_id`) hashes everything that determines the
point's result, so a rerun skips finished points: a crash or Ctrl-C loses nothing that
finished. A group with unfinished points is retrained *whole* (same vmap batch, hence
bit-identical kernels) and only its unfinished points are evaluated, so an
interrupted-and-resumed sweep gives the same table as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..results import environment
from ..runfolder import atomic_write
from .group import GroupFn, raki_group
from .spec import SHARD_VERSION, SweepPoint, SweepSpec, point_id

__all__ = ["write_shard", "finished_ids", "write_run_info", "run"]

log = logging.getLogger(__name__)


def write_shard(out: str | Path, spec: SweepSpec, point: SweepPoint, metrics: dict, arrays: dict | None,
                timings: dict | None = None, env: dict | None = None) -> str:
    """Write one point's shard atomically (arrays first, the JSON marks completion)."""
    pid = point_id(spec, point)
    d = Path(out) / "shards"
    if arrays and spec.save_arrays:
        arrs = {k: np.asarray(v) for k, v in arrays.items()}
        atomic_write(d / f"{pid}.npz", lambda f: np.savez_compressed(f, **arrs), mode="wb")
    record = {
        "point_id": pid,
        "params": point.params(),
        "input": point.input.identity(),
        "method": spec.method(),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "timings": timings or {},
        "environment": env or {},
        "shard_version": SHARD_VERSION,
    }
    atomic_write(d / f"{pid}.json", lambda f: json.dump(record, f, indent=1, sort_keys=True))
    return pid


def finished_ids(out: str | Path) -> set[str]:
    """Point ids with a complete shard in ``out``."""
    d = Path(out) / "shards"
    return {p.stem for p in d.glob("*.json")} if d.is_dir() else set()


def write_run_info(out: Path, spec: SweepSpec, runner: str) -> None:
    """Write ``sweep.json``: the spec, the runner, the environment and every point's id."""
    out.mkdir(parents=True, exist_ok=True)
    info = {"spec": spec.to_dict(), "runner": runner, "environment": environment(),
            "points": {point_id(spec, p): p.params() for p in spec.points()}}
    atomic_write(out / "sweep.json", lambda f: json.dump(info, f, indent=1, sort_keys=True))


# ----------------------------------------------------------------------------- local runner
def run(spec: SweepSpec, out: str | Path, *, group_fn: GroupFn | None = None, max_points: int | None = None,
        progress: bool = False) -> list[str]:
    """Run a sweep group by group on this process, skipping finished points.

    Args:
        spec: the grid.
        out: output folder (created); shards go to ``out/shards``.
        group_fn: ``group_fn(spec, group_points, todo_ids)`` yields
            ``(point, metrics, arrays)`` for the points whose id is in ``todo_ids``;
            default :func:`raki_group`.
        max_points: stop after writing this many shards (a controlled interruption).
        progress: tqdm bar over points.

    Returns:
        The ids of the shards written by this call.
    """
    out = Path(out)
    group_fn = group_fn or raki_group
    write_run_info(out, spec, "local")
    done = finished_ids(out)
    todo_total = sum(point_id(spec, p) not in done for p in spec.points())
    bar = None
    if progress:
        bar = tqdm(total=todo_total, desc=f"sweep {spec.name}")
    env = environment()
    written: list[str] = []
    try:
        for group in spec.groups():
            todo = frozenset(point_id(spec, p) for p in group) - done
            if not todo:
                continue
            t0 = time.perf_counter()
            for point, metrics, arrays in group_fn(spec, group, todo):
                t = {"point_s": time.perf_counter() - t0}  # the first point of a group includes its training
                written.append(write_shard(out, spec, point, metrics, arrays, t, env))
                t0 = time.perf_counter()
                if bar is not None:
                    bar.update(1)
                if max_points is not None and len(written) >= max_points:
                    log.info("stopping after %d points (max_points)", len(written))
                    return written
    finally:
        if bar is not None:
            bar.close()
    return written
