"""Run a sweep on a Dask cluster (optional extra: ``pip install rakijax[dask]``).

One Dask task per shape group (input, R, ACS): the worker trains the group with
vmap and returns the finished points' rows and arrays; the client writes each
shard atomically as its group completes (:func:`rakijax.sweep.runner.write_shard`), so
workers need no shared file system, and the resume logic is that of the local
runner (finished points are skipped, unfinished groups retrained whole).

The cluster is either an existing scheduler (``scheduler="tcp://host:8786"``,
e.g. one started by ``dask-jobqueue`` on SLURM, see ``experiments/README.md``)
or a :class:`dask.distributed.LocalCluster` with ``workers`` workers. Dask is
imported only here.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..jit_cache import enable_persistent_cache
from ..results import environment
from .group import GroupFn, raki_group
from .runner import finished_ids, write_run_info, write_shard
from .spec import SweepSpec, point_id

__all__ = ["run_dask", "run_group"]

log = logging.getLogger(__name__)


def run_group(spec: SweepSpec, group, todo: frozenset, group_fn: GroupFn | None = None):
    """Dask task: evaluate a group's todo points; returns ``[(point, metrics, arrays, timings, env)]``."""
    group_fn = group_fn or raki_group
    enable_persistent_cache()  # each worker process compiles a shape once per machine
    env = environment()
    out = []
    t0 = time.perf_counter()
    for point, metrics, arrays in group_fn(spec, group, todo):
        out.append((point, metrics, arrays, {"point_s": time.perf_counter() - t0}, env))
        t0 = time.perf_counter()
    return out


def run_dask(spec: SweepSpec, out: str | Path, *, scheduler: str | None = None, workers: int = 2,
             threads_per_worker: int = 1, processes: bool = True, group_fn: GroupFn | None = None,
             max_points: int | None = None, client=None) -> list[str]:
    """Run the unfinished groups of a sweep as Dask tasks; write shards as groups finish.

    Args:
        spec: the grid.
        out: output folder (on the client's file system).
        scheduler: address of a running scheduler; if ``None`` and no ``client``,
            a LocalCluster is started (and closed at the end).
        workers, threads_per_worker, processes: LocalCluster settings.
        group_fn: as in :func:`rakijax.sweep.run` (must be importable on the workers).
        max_points: stop (cancelling the remaining tasks) once this many shards are written.
        client: an existing :class:`dask.distributed.Client` to use.

    Returns:
        The ids of the shards written by this call.

    Raises:
        The first task error, after every other finished group has been written.
    """
    from dask.distributed import Client, LocalCluster, as_completed

    out = Path(out)
    write_run_info(out, spec, "dask")
    done = finished_ids(out)
    jobs = []
    for group in spec.groups():
        todo = frozenset(point_id(spec, p) for p in group) - done
        if todo:
            jobs.append((group, todo))
    written: list[str] = []
    if not jobs:
        return written
    cluster = None
    own_client = client is None
    if client is None:
        if scheduler is None:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker,
                                   processes=processes, dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(scheduler)
    error = None
    try:
        futures = [client.submit(run_group, spec, group, todo, group_fn, pure=False) for group, todo in jobs]
        for fut in as_completed(futures):
            try:
                results = fut.result()
            except Exception as e:  # keep writing the other groups, raise at the end
                log.error("sweep group failed: %r", e)
                error = error or e
                continue
            for point, metrics, arrays, timings, env in results:
                written.append(write_shard(out, spec, point, metrics, arrays, timings, env))
                if max_points is not None and len(written) >= max_points:
                    for f in futures:
                        f.cancel()
                    return written
    finally:
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()
    if error is not None:
        raise error
    return written
