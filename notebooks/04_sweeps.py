# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Sweeps: slope x R x ACS, resumable, local or on Dask
#
# A `SweepSpec` declares the grid. Points with the same input, R and ACS are trained together
# with `jax.vmap` (one compilation for all slopes and seeds); each point writes its own shard,
# so an interrupted sweep resumes where it stopped. `collect` writes a tidy table
# (`table.csv`: one row per point and metric) and figures. The same spec can be a TOML file:
#
# ```toml
# slopes = [0, 0.25, 0.5, 1]
# R = [3, 4]
# acs = [12]
# [raki]
# widths = [16, 8]
# steps = 200
# [[inputs]]
# phantom = { n = 48, ncoils = 6 }
# ```
# and run with `rakijax sweep run spec.toml --out DIR [--workers 4 | --scheduler ADDR]`.

# %%
# %matplotlib inline
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from rakijax import sweep

spec = sweep.SweepSpec.from_dict({
    "slopes": [0.0, 0.25, 0.5, 1.0], "R": [3], "acs": [12], "seeds": [0],
    "inputs": [{"phantom": {"n": 48, "ncoils": 6, "seed": 0}}],
    "raki": {"widths": [16, 8], "steps": 200},
})
out = Path(tempfile.mkdtemp()) / "sweep"
for group in spec.groups():
    print([p.params() for p in group])

# %% [markdown]
# Run two points only (as if interrupted), then resume: finished points are skipped.

# %%
print("first run wrote", len(sweep.run(spec, out, max_points=2)), "points")
print("resume wrote", len(sweep.run(spec, out)), "points")
rows = sweep.collect(out)
print((out / "summary.md").read_text())

# %% [markdown]
# The tidy table (first rows) and the metrics against the slope. `hf_loss` is the
# high-frequency contrast loss (0 = none; larger = more blurring).

# %%
print((out / "table.csv").read_text().splitlines()[:6])
fig = sweep.plot_slope(rows)
fig

# %% [markdown]
# On a cluster: `sweep.run_dask(spec, out, workers=4)` (a
# local Dask cluster) or `run_dask(spec, out, scheduler="tcp://host:8786")`; see
# `experiments/README.md` for SLURM with dask-jobqueue.
