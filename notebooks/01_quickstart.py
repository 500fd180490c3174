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
# # Quick start: load -> reconstruct -> look
#
# rakijax reconstructs regularly undersampled multi-coil k-space with GRAPPA or complex RAKI,
# and computes exact g-factor maps. This notebook uses the built-in brain phantom at a small
# size so that it runs in seconds on a CPU; swap in `rakijax.data.load("file.h5")` for your data
# (fastMRI HDF5, BART .cfl, .npy/.npz with layout `(coil, ky, kx)`).

# %%
# %matplotlib inline
import jax
import matplotlib.pyplot as plt
import numpy as np
from dataclasses import replace

from rakijax.config import preset

from rakijax import pipeline, plotting
from rakijax.data.synthetic import brain_phantom

print("JAX backend:", jax.default_backend(), jax.devices())

# %% [markdown]
# ## Load
# A fully sampled 48 x 48 phantom with 6 coils, its noise covariance `psi`, coil maps and
# object support. Arrays are `(coil, ky, kx)`; `ky` is the undersampled axis.

# %%
data = brain_phantom(48, 6, seed=0)
print(data)
fig, axes = plt.subplots(1, 2, figsize=(7, 3.5))
axes[0].imshow(data.rss(), cmap="gray")
axes[0].set_title("RSS of the fully sampled coil images")
axes[1].imshow(np.log(np.abs(data.kspace[0]) + 1e-3), cmap="gray")
axes[1].set_title("log |k-space|, coil 0")
plt.show()

# %% [markdown]
# ## Reconstruct
# `ReconConfig` is a frozen dataclass. R = 3 with 12 ACS lines; RAKI uses a small network
# (hidden widths 16 and 8, 200 Adam steps at the small preset's learning rate) so the notebook stays fast.

# %%
raki_cfg = replace(preset("small").raki, widths=(16, 8), steps=200)  # the small preset: lr 1e-2
results = {}
for method in ("grappa", "raki"):
    cfg = pipeline.ReconConfig(method=method, R=3, acs=12, slope=0.5, gfactor="analytic", raki=raki_cfg, seed=0)
    results[method] = pipeline.reconstruct(data, cfg)
    m = results[method].metrics
    print(f"{method:6s}  NMSE {m['nmse']:.2e}  PSNR {m['psnr']:.1f} dB  SSIM {m['ssim']:.3f}  "
          f"mean g {m['gfactor_mean']:.3f}  image-space rel. error {m['image_space_rel_error']:.1e}")

# %% [markdown]
# ## Look
# Reconstructions and errors (x10), then the g-factor maps (analytic, linear response).

# %%
res = results["raki"]
fig = plotting.reconstruction_figure(
    res.reference, {k.upper(): r.recon for k, r in results.items()}, support=res.support,
    metrics={k.upper(): r.metrics for k, r in results.items()})
fig

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
for ax, (k, r) in zip(axes, results.items()):
    im = ax.imshow(np.where(r.support, r.gfactor, np.nan), cmap="inferno")
    ax.set_title(f"{k.upper()} g-factor (mean {r.metrics['gfactor_mean']:.3f})")
    fig.colorbar(im, ax=ax)
plt.show()
