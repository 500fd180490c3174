"""Inspection of activation masks and their image-space kernels (figures return a Figure).

* :func:`mask_statistics` summarises the masks of a network at one slope:
  fraction of entries with ``m != 1`` (activation not the identity), mean ``|m|``,
  fraction with ``beta != 0`` (Re and Im in different ReLU regimes: the widely-linear
  part of the true derivative), and the centre energy fraction of the image-space
  kernels (``|K(c)|^2 / sum |K|^2``).
* :func:`plot_activation_kernels` shows, per hidden channel, the k-space mask ``|m|``
  on the reduced grid and the log magnitude of its image-space kernel
  ``K = ifft2c(m_full)/sqrt(N)``: a strong centre peak (the mean mask) on a weak
  background (the "autocorrelation"/centre pattern of Dawood 2024, Fig. 3).
* :func:`plot_mask_statistics` plots the statistics against the slope.

No ``plt.show()``; the caller saves or displays the Figure.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..sampling import Sampling
from .masks import ActivationMasks, full_grid_masks
from .operator import mask_image_kernel

__all__ = ["mask_statistics", "centre_energy_fraction", "plot_activation_kernels", "plot_mask_statistics"]


def centre_energy_fraction(kernel) -> np.ndarray:
    """``|K(c)|^2 / sum_r |K(r)|^2`` per leading index of image kernels (..., Ny, Nx)."""
    k = np.asarray(kernel)
    ny, nx = k.shape[-2:]
    e = np.abs(k) ** 2
    return e[..., ny // 2, nx // 2] / e.sum(axis=(-2, -1))


def mask_statistics(masks: ActivationMasks, sampling: Sampling | None = None) -> list[dict]:
    """Statistics of reduced-grid masks, one dict per hidden layer.

    Keys: ``frac_mask_not_one`` (entries with ``m != 1``), ``mean_abs_mask``
    (mean ``|m|``), ``frac_beta_nonzero``, ``frac_both_negative`` (``alpha = a``,
    ``beta = 0``: Re and Im both on the negative side), and, when ``sampling`` is
    given (``Ny % R == 0``), ``centre_energy`` (mean over channels of
    :func:`centre_energy_fraction` of the image kernels).

    At slope 1 every mask is exactly 1, so all fractions are 0 and ``centre_energy`` is 1.
    """
    masks.require("mask", "alpha", "beta")
    out = []
    full = full_grid_masks(masks, sampling) if sampling is not None else None
    for l in range(masks.num_hidden):
        m = np.asarray(masks.mask[l])
        a = np.asarray(masks.alpha[l])
        b = np.asarray(masks.beta[l])
        both_neg = (b == 0) & (a != 1)
        st = {
            "frac_mask_not_one": float(np.mean(m != 1)),
            "mean_abs_mask": float(np.mean(np.abs(m))),
            "frac_beta_nonzero": float(np.mean(b != 0)),
            "frac_both_negative": float(np.mean(both_neg)),
        }
        if full is not None:
            st["centre_energy"] = float(np.mean(centre_energy_fraction(mask_image_kernel(full.mask[l]))))
        out.append(st)
    return out


def plot_activation_kernels(
    masks: ActivationMasks,
    sampling: Sampling,
    *,
    layer: int = 0,
    channels: Sequence[int] | None = None,
    floor_db: float = -80.0,
):
    """Per hidden channel: the k-space mask ``|m|`` and the log magnitude of its image kernel.

    Args:
        masks: reduced-grid masks holding ``mask``
            (:func:`~rakijax.image_space.masks.activation_masks`).
        sampling: sampling pattern (``Ny % R == 0``) used to place them on the full grid.
        layer: hidden layer index (0-based).
        channels: channels to show (default the first ``min(6, C)``).
        floor_db: lower limit of the log-magnitude colour scale, in dB below the peak.

    Returns:
        matplotlib Figure with two rows: top ``|m|`` (reduced grid, ky x kx), bottom
        ``20 log10(|K| / max|K|)`` (full grid, image space, centre marked).
    """
    import matplotlib.pyplot as plt

    masks.require("mask")
    if not 0 <= layer < masks.num_hidden:
        raise ValueError(f"layer {layer} out of range: the network has {masks.num_hidden} hidden layers")
    m_red = np.asarray(masks.mask[layer])
    if channels is None:
        channels = list(range(min(6, m_red.shape[0])))
    full = np.asarray(full_grid_masks(masks, sampling).mask[layer])
    kern = np.asarray(mask_image_kernel(full[np.asarray(channels)]))
    ny, nx = kern.shape[-2:]
    n = len(channels)
    fig, axes = plt.subplots(2, n, figsize=(2.4 * n + 1.0, 5.0), squeeze=False, constrained_layout=True)
    for j, ch in enumerate(channels):
        ax = axes[0, j]
        im0 = ax.imshow(np.abs(m_red[ch]), cmap="viridis", vmin=0.0, vmax=max(1.0, float(np.abs(m_red[ch]).max())),
                        aspect="auto", interpolation="nearest")
        ax.set_title(f"ch {ch}: |mask| (k-space)", fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
        ax = axes[1, j]
        mag = np.abs(kern[j])
        db = 20 * np.log10(np.maximum(mag / max(mag.max(), 1e-300), 10 ** (floor_db / 20)))
        im1 = ax.imshow(db, cmap="magma", vmin=floor_db, vmax=0.0, aspect="auto", interpolation="nearest")
        ax.plot([nx // 2], [ny // 2], "c+", ms=6)
        ce = centre_energy_fraction(kern[j])
        ax.set_title(f"log|K| (image), centre {100 * ce:.0f}%", fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
    fig.colorbar(im0, ax=axes[0, :].tolist(), shrink=0.8, label="|m|")
    fig.colorbar(im1, ax=axes[1, :].tolist(), shrink=0.8, label="dB")
    fig.suptitle(f"hidden layer {layer + 1}: activation masks and image-space kernels")
    return fig


def plot_mask_statistics(slopes: Sequence[float], stats: Sequence[Sequence[Mapping]] | Sequence[Mapping]):
    """Mask statistics against the negative slope.

    Args:
        slopes: the slopes.
        stats: for each slope, :func:`mask_statistics` output (a list over hidden
            layers of dicts) or a single dict.

    Returns:
        matplotlib Figure, one panel per statistic, one line per hidden layer.
    """
    import matplotlib.pyplot as plt

    if len(slopes) != len(stats):
        raise ValueError(f"{len(slopes)} slopes but {len(stats)} statistics entries")
    stats = [[s] if isinstance(s, Mapping) else list(s) for s in stats]
    keys = [k for k in ("frac_mask_not_one", "mean_abs_mask", "frac_beta_nonzero", "frac_both_negative", "centre_energy")
            if all(k in d for s in stats for d in s)]
    nl = min(len(s) for s in stats)
    order = np.argsort(np.asarray(slopes, float))
    x = np.asarray(slopes, float)[order]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.0 * len(keys), 3.0), squeeze=False, constrained_layout=True)
    for i, k in enumerate(keys):
        ax = axes[0, i]
        for l in range(nl):
            ax.plot(x, [stats[j][l][k] for j in order], "o-", label=f"layer {l + 1}")
        ax.set_xlabel("negative slope a")
        ax.set_title(k.replace("_", " "), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    return fig
