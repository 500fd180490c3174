"""Figures: functions that return a :class:`matplotlib.figure.Figure` (never shown).

All figures are built on the Agg canvas (no display, no ``plt.show``); save them
with :func:`rakijax.results.save_figure` or ``fig.savefig``. Images are shown
with ``ky`` vertical and ``kx`` horizontal, in the array layout of the library.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = [
    "reconstruction_figure",
    "gfactor_figure",
    "gfactor_comparison_figure",
    "image_kspace_figure",
    "loss_figure",
]


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), layout="constrained")


def _show(ax, img, title, vmin=None, vmax=None, cmap="gray"):
    im = ax.imshow(np.asarray(img), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def reconstruction_figure(reference, recons: Mapping[str, np.ndarray], *, support=None,
                          error_scale: float = 10.0, metrics: Mapping[str, Mapping] | None = None):
    """Reference | reconstructions (top row) and their errors x ``error_scale`` (bottom).

    Args:
        reference: (Ny, Nx) magnitude reference (RSS of the fully sampled data).
        recons: ``{label: (Ny, Nx) magnitude}``, e.g. ``{"GRAPPA": ..., "RAKI": ...}``.
        support: optional (Ny, Nx) bool; errors are shown inside it only.
        error_scale: magnification of ``|recon - reference|`` (same grey scale as the images).
        metrics: optional ``{label: {"nmse": .., "psnr": .., "ssim": ..}}`` shown in titles.
    """
    ref = np.abs(np.asarray(reference))
    vmax = float(np.percentile(ref, 99.5))
    n = len(recons) + 1
    fig = _figure(2.6 * n, 5.4)
    axes = fig.subplots(2, n, squeeze=False)
    _show(axes[0, 0], ref, "reference (fully sampled RSS)", 0, vmax)
    axes[1, 0].axis("off")
    for i, (label, img) in enumerate(recons.items(), start=1):
        img = np.abs(np.asarray(img))
        title = label
        if metrics and label in metrics:
            m = metrics[label]
            title += f"\nNMSE {m.get('nmse', np.nan):.2e}  PSNR {m.get('psnr', np.nan):.1f} dB"
        _show(axes[0, i], img, title, 0, vmax)
        err = np.abs(img - ref) * error_scale
        if support is not None:
            err = np.where(support, err, 0)
        _show(axes[1, i], err, f"|error| x{error_scale:g}", 0, vmax)
    return fig


def gfactor_figure(g, *, support=None, title: str = "g-factor", vmax: float | None = None):
    """One g-factor map with a colour bar (outside the support shown as 0)."""
    g = np.asarray(g, dtype=float)
    if support is not None:
        g = np.where(support, g, np.nan)
    if vmax is None:
        vmax = float(np.nanpercentile(g, 99.5)) if np.isfinite(g).any() else 1.0
    fig = _figure(4.2, 3.8)
    ax = fig.subplots()
    sub = g[np.isfinite(g)]
    stats = f"\nmean {sub.mean():.3f}  max {sub.max():.3f}" if sub.size else ""
    im = _show(ax, g, title + stats, 1.0 if vmax > 1 else None, vmax, cmap="inferno")
    fig.colorbar(im, ax=ax, shrink=0.85, label="g")
    return fig


def gfactor_comparison_figure(rows: Mapping[str, tuple], *, support=None,
                              labels: Sequence[str] = ("analytic", "Monte Carlo")):
    """Side-by-side g-factor maps per method: analytic | Monte Carlo | difference.

    Every map shares one colour scale (``[1, max]`` over all maps), and every
    difference map one symmetric scale, so the methods compare at a glance.

    Args:
        rows: ``{method label: (g_analytic, g_montecarlo)}``, each (Ny, Nx).
        support: optional (Ny, Nx) bool mask; outside it is blank.
        labels: column titles of the two maps.
    """
    def masked(a):
        a = np.asarray(a, dtype=float)
        return np.where(support, a, np.nan) if support is not None else a

    rows = {k: (masked(a), masked(b)) for k, (a, b) in rows.items()}
    allg = np.concatenate([np.ravel(m) for pair in rows.values() for m in pair])
    allg = allg[np.isfinite(allg)]
    vmax = float(np.percentile(allg, 99.5)) if allg.size else 2.0
    vmin = min(1.0, float(np.percentile(allg, 0.5))) if allg.size else 0.0
    diffs = [b - a for a, b in rows.values()]
    dmax = max((float(np.nanpercentile(np.abs(d), 99.5)) for d in diffs if np.isfinite(d).any()), default=0.1) or 0.1
    fig = _figure(9.6, 3.0 * len(rows))
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for i, ((name, (a, b)), d) in enumerate(zip(rows.items(), diffs)):
        ma, mb = np.nanmean(a), np.nanmean(b)
        im = _show(axes[i, 0], a, f"{name}: {labels[0]} (mean {ma:.3f})", vmin, vmax, cmap="inferno")
        _show(axes[i, 1], b, f"{name}: {labels[1]} (mean {mb:.3f})", vmin, vmax, cmap="inferno")
        imd = _show(axes[i, 2], d, f"{labels[1]} - {labels[0]} (mean {np.nanmean(d):+.3f})", -dmax, dmax, cmap="RdBu_r")
        fig.colorbar(im, ax=axes[i, :2].tolist(), shrink=0.85, label="g")
        fig.colorbar(imd, ax=axes[i, 2], shrink=0.85, label="difference")
    return fig


def image_kspace_figure(kspace_recon, image_recon, *, label: str = "RAKI", rel_error: float | None = None):
    """k-space reconstruction | image-space reconstruction | their difference (own scale).

    Args:
        kspace_recon: (Ny, Nx) magnitude of the k-space (convolutional) reconstruction.
        image_recon: (Ny, Nx) magnitude of the image-space (per-pixel + mask
            convolution) reconstruction of the same network.
        label: method name for the titles.
        rel_error: ``||x_image - x_kspace|| / ||x_kspace||`` of the coil images, shown.
    """
    a = np.abs(np.asarray(kspace_recon))
    b = np.abs(np.asarray(image_recon))
    vmax = float(np.percentile(a, 99.5))
    d = b - a
    dmax = float(np.abs(d).max()) or 1.0
    fig = _figure(10.0, 3.6)
    axes = fig.subplots(1, 3)
    _show(axes[0], a, f"{label}: k-space inference", 0, vmax)
    _show(axes[1], b, f"{label}: image-space inference", 0, vmax)
    extra = f"\ncoil-image rel. error {rel_error:.1e}" if rel_error is not None else ""
    im = _show(axes[2], d, f"image - k-space (max {dmax:.1e}){extra}", -dmax, dmax, cmap="RdBu_r")
    fig.colorbar(im, ax=axes[2], shrink=0.85)
    return fig


def loss_figure(losses: Mapping[str, Sequence[float]] | Sequence[float], *, title: str = "RAKI training loss"):
    """Training loss curve(s) on a log scale (``{label: losses}`` or one sequence)."""
    if not isinstance(losses, Mapping):
        losses = {"loss": losses}
    fig = _figure(5.0, 3.4)
    ax = fig.subplots()
    for label, l in losses.items():
        l = np.asarray(l, dtype=float)
        ax.semilogy(np.arange(1, l.size + 1), l, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("ACS loss (MSE)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    if len(losses) > 1:
        ax.legend(fontsize=8)
    return fig
