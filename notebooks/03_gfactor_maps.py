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
# # g-factor maps: analytic vs Monte Carlo
#
# The analytic g-factor of RAKI is the exact noise amplification of the network's linear
# response (the banded covariance of MATH.md §4), computed at full resolution. Monte Carlo
# pseudo-replicas (Robson 2008) of the nonlinear network approach it as the added noise gets
# small; at the data's own noise level they can be lower (activations flip under noise).

# %%
# %matplotlib inline
import jax
import matplotlib.pyplot as plt
import numpy as np
from dataclasses import replace

from rakijax.config import preset

from rakijax import pipeline
from rakijax.data.synthetic import brain_phantom

print("JAX devices:", jax.devices())

# %%
data = brain_phantom(48, 6, seed=0)
cfg = pipeline.ReconConfig(method="raki", R=3, acs=12, slope=0.25, gfactor="analytic",
                           raki=replace(preset("small").raki, widths=(16, 8), steps=200), replicas=100, mc_chunk=50)
res = pipeline.reconstruct(data, cfg)
g_true = res.gfactor
g_frozen = pipeline.gfactor_map(res, "analytic", linearisation="frozen").g
g_mc_small = pipeline.gfactor_map(res, "montecarlo", mc_noise_scale=0.01).g
g_mc = pipeline.gfactor_map(res, "montecarlo", mc_noise_scale=1.0).g
sup = res.support
for name, g in [("analytic (true)", g_true), ("analytic (frozen)", g_frozen),
                ("MC, noise x0.01", g_mc_small), ("MC, noise x1", g_mc)]:
    print(f"{name:18s} mean {np.mean(g[sup]):.3f}  p95 {np.percentile(g[sup], 95):.3f}")
print("Monte Carlo relative standard error ~", 1 / (2 * np.sqrt(cfg.replicas)))

# %%
fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
vmax = np.percentile(g_true[sup], 99.5)
for ax, (name, g) in zip(axes, [("analytic true", g_true), ("analytic frozen", g_frozen),
                                ("MC x0.01", g_mc_small), ("MC x1", g_mc)]):
    im = ax.imshow(np.where(sup, g, np.nan), cmap="inferno", vmin=1, vmax=vmax)
    ax.set_title(name)
fig.colorbar(im, ax=axes.tolist())
plt.show()

# %% [markdown]
# Per-pixel scatter of Monte Carlo against the analytic map.

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
for ax, (name, g) in zip(axes, [("MC x0.01", g_mc_small), ("MC x1", g_mc)]):
    a, b = np.asarray(g_true)[sup], np.asarray(g)[sup]
    ax.plot(a, b, ".", ms=2, alpha=0.5)
    ax.plot([a.min(), a.max()], [a.min(), a.max()], "k--")
    ax.set_xlabel("analytic g (true derivative)")
    ax.set_ylabel(name)
    ax.set_title(f"r = {np.corrcoef(a, b)[0, 1]:.3f}")
plt.show()
