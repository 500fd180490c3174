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
# # Choosing RAKI's slope without a reference
#
# The negative slope of the complex leaky ReLU trades noise amplification (g-factor) against
# blurring, and the best slope depends on R and the number of ACS lines. A real, prospectively
# undersampled scan has no fully sampled reference to pick it with. `rakijax.autoslope.choose_slope`
# estimates the image error of every slope from what the scan has: K-fold cross-validation over
# the ACS rows for the interpolation error, and the exact g-map for the noise part
# (the derivation is in the module docstring). On the command line: `rakijax recon ... --slope auto`.
#
# Here the phantom *has* a reference, so the estimate can be compared with the true NMSE.

# %%
# %matplotlib inline
from dataclasses import replace

import numpy as np

from rakijax import pipeline
from rakijax.autoslope import choose_slope, estimate_figure
from rakijax.config import preset
from rakijax.data import brain_phantom

data = brain_phantom(48, 6, seed=0)
raki_cfg = replace(preset("small").raki, widths=(16, 8), steps=200)  # the notebooks' small network
cfg = pipeline.ReconConfig(method="raki", R=3, acs=12, raki=raki_cfg, gfactor="analytic", seed=0)

# %% [markdown]
# ## The estimate over the slope grid (all slopes x folds trained in one `vmap`)

# %%
auto = choose_slope(data, cfg, slopes=(0.0, 0.25, 0.5, 1.0), folds=3)
for row in auto.rows():
    print(f"slope {row['slope']:4.2f}  estimate {row['estimate']:.3e} +- {auto.spread[auto.slopes == row['slope']][0]:.1e}"
          f"  g mean {row['g_mean']:.2f}{'  <- chosen' if row['chosen'] else ''}")

# %% [markdown]
# ## Against the truth: the NMSE of each slope's full fit (the phantom's reference, read only here)

# %%
true_nmse = []
for i, a in enumerate(auto.slopes):
    res = pipeline.reconstruct(data, cfg.replace(slope=float(a), gfactor="none"), fit=auto.fit(i),
                               whitener=(auto.prepared.W, auto.prepared.L))
    true_nmse.append(res.metrics["nmse"])
print("true NMSE per slope:", np.round(true_nmse, 5), "-> oracle slope", auto.slopes[int(np.argmin(true_nmse))])
fig = estimate_figure(auto, true_nmse=true_nmse, title="48x48 phantom, 6 coils, R=3, 12 ACS")
display(fig)  # noqa: F821 (IPython)
