"""Sweeps over negative slope x R x ACS x seed x input, resumable and shardable.

* :mod:`.spec` - the grid (:class:`SweepSpec`, from TOML/JSON, a dict or flags) and point ids;
* :mod:`.group` - one shape group: batched (vmap) training, then the pipeline's evaluation;
* :mod:`.runner` - shards per point and the local runner (:func:`run`), resumable;
* :mod:`.cluster` - the same on a Dask cluster (:func:`run_dask`; optional ``dask`` extra);
* :mod:`.tables` - :func:`collect`: ``table.csv``, ``summary.md``, ``sweep_slope.png``.

The command line is ``rakijax sweep {run,collect,plan}`` (:mod:`rakijax.cli`); the TOML
layout is documented in ``experiments/README.md``.

References: Akcakaya 2019 (RAKI); Dawood 2024 (image-space formalism, slope trade-off).
"""

from .cluster import run_dask
from .group import METRICS
from .group import batched_trainer
from .group import raki_group
from .runner import finished_ids
from .runner import run
from .runner import write_shard
from .spec import InputSpec
from .spec import SweepPoint
from .spec import SweepSpec
from .spec import load_spec
from .spec import point_id
from .spec import read_spec_file
from .tables import TABLE_COLUMNS
from .tables import collect
from .tables import plot_slope
from .tables import read_table
from .tables import summary_markdown
from .tables import wide

__all__ = [
    "InputSpec",
    "METRICS",
    "SweepPoint",
    "SweepSpec",
    "TABLE_COLUMNS",
    "batched_trainer",
    "collect",
    "finished_ids",
    "load_spec",
    "plot_slope",
    "point_id",
    "raki_group",
    "read_spec_file",
    "read_table",
    "run",
    "run_dask",
    "summary_markdown",
    "wide",
    "write_shard",
]
