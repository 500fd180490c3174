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
# # The image-space formalism (Dawood et al. 2024)
#
# A k-space convolution is a per-pixel product in image space, and an activation
# `s(z) = m . z` (mask `m = s(z)/z`) is a convolution in image space with the inverse FFT of `m`.
# So a trained RAKI network has an exact image-space form. With circular k-space edges the two
# agree to float precision.

# %%
# %matplotlib inline
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from dataclasses import replace

from rakijax.config import preset

from rakijax import raki
from rakijax.data.synthetic import brain_phantom
from rakijax.fft import ifft2c
from rakijax.image_space import ImageSpaceRaki, activation_masks, mask_statistics, plot_activation_kernels
from rakijax.sampling import make_sampling, undersample

print("JAX devices:", jax.devices())

# %% [markdown]
# ## Train a small RAKI network
# (The noise covariance of the phantom is ignored here for brevity; `rakijax.pipeline`
# prewhitens first.)

# %%
data = brain_phantom(48, 6, seed=0)
s = make_sampling(48, 3, 12)
zero_filled, u, acs = undersample(jnp.asarray(data.kspace), s)
slope = 0.25
tr = raki.train(acs, s, replace(preset("small").raki, widths=(16, 8), steps=200), slope, key=jax.random.PRNGKey(0))
print("final training loss", tr.losses[-1])

# %% [markdown]
# ## k-space inference vs image-space inference

# %%
x_k = ifft2c(raki.apply(tr.kernels, u, s, slope))
op = ImageSpaceRaki.from_kernels(tr.kernels, u, s, slope)
x_i = op(ifft2c(zero_filled))
rel = float(jnp.linalg.norm(x_i - x_k) / jnp.linalg.norm(x_k))
print(f"||x_image - x_kspace|| / ||x_kspace|| = {rel:.2e}")
rss = lambda x: np.sqrt(np.sum(np.abs(np.asarray(x)) ** 2, axis=0))  # noqa: E731
fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
axes[0].imshow(rss(x_k), cmap="gray"); axes[0].set_title("k-space inference")
axes[1].imshow(rss(x_i), cmap="gray"); axes[1].set_title("image-space inference")
im = axes[2].imshow(rss(x_i) - rss(x_k), cmap="RdBu_r"); axes[2].set_title("difference")
fig.colorbar(im, ax=axes[2])
plt.show()

# %% [markdown]
# ## Activation masks and their image-space kernels
# Top: `|m|` per hidden channel on the reduced grid. Bottom: the image-space kernel (log
# magnitude) — a dominant centre peak (the mean mask) on a weak background.

# %%
masks = activation_masks(tr.kernels, u, s, slope)
for row in mask_statistics(masks, s):
    print({k: round(v, 3) for k, v in row.items()})
fig = plot_activation_kernels(masks, s, layer=0, channels=range(4))
plt.show()
