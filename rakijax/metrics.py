"""Image quality metrics on magnitude images inside a mask, and g-factor summaries.

All image metrics compare magnitudes ``|x|`` against ``|ref|`` (complex input is
allowed) over the pixels of an optional boolean ``mask`` (default: all pixels):

* ``nmse = sum_m (|x| - |ref|)^2 / sum_m |ref|^2``;
* ``psnr = 10 log10( peak^2 / mse )``, ``peak = max_m |ref|``,
  ``mse = mean_m (|x| - |ref|)^2``;
* ``ssim``: Wang et al. 2004, Gaussian window (sigma 1.5, truncated at 3.5 sigma:
  11 x 11), ``K1 = 0.01``, ``K2 = 0.03``, ``L = max |ref| - min |ref|`` over the
  whole image (a mask inside a flat region would otherwise give ``L = 0``); local
  means/variances/covariance are Gaussian-weighted (population, not sample,
  moments), the map is computed on the whole image with symmetric (reflecting)
  edges and averaged over the mask.

References:
    Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from error
    visibility to structural similarity", IEEE TIP 13:600 (2004).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["nmse", "psnr", "ssim", "ssim_map", "gaussian_window", "gfactor_summary"]


def _prep(ref, x, mask):
    ref = jnp.abs(jnp.asarray(ref))
    x = jnp.abs(jnp.asarray(x))
    if ref.shape != x.shape:
        raise ValueError(f"reference {ref.shape} and image {x.shape} differ in shape")
    if mask is None:
        m = jnp.ones(ref.shape, bool)
    else:
        m = jnp.asarray(mask).astype(bool)
        if m.shape != ref.shape:
            raise ValueError(f"mask {m.shape} does not match the images {ref.shape}")
        if not isinstance(m, jax.core.Tracer) and not bool(jnp.any(m)):
            raise ValueError("mask selects no pixel")
    return ref, x, m


def nmse(ref, x, mask=None):
    """Normalised mean squared error ``||(|x| - |ref|)||^2 / ||ref||^2`` in the mask.

    Args:
        ref: reference image (..., Ny, Nx), real or complex.
        x: image to score, same shape.
        mask: optional boolean (same shape) selecting the pixels.

    Returns:
        Scalar (0 for a perfect match).
    """
    return _nmse(*_prep(ref, x, mask))


@jax.jit
def _nmse(ref, x, m):
    return jnp.sum(jnp.where(m, (x - ref) ** 2, 0)) / jnp.sum(jnp.where(m, ref**2, 0))


def psnr(ref, x, mask=None):
    """Peak signal-to-noise ratio in dB, ``10 log10(max_m |ref|^2 / mean_m (|x|-|ref|)^2)``."""
    return _psnr(*_prep(ref, x, mask))


@jax.jit
def _psnr(ref, x, m):
    peak = jnp.max(jnp.where(m, ref, -jnp.inf))
    mse = jnp.sum(jnp.where(m, (x - ref) ** 2, 0)) / jnp.sum(m)
    return 10.0 * jnp.log10(peak**2 / mse)


def gaussian_window(sigma: float = 1.5, truncate: float = 3.5) -> np.ndarray:
    """Normalised 1-D Gaussian of radius ``int(truncate*sigma + 0.5)`` (11 taps for sigma 1.5)."""
    r = int(truncate * sigma + 0.5)
    t = np.arange(-r, r + 1)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def _filter(img, g):
    r = (len(g) - 1) // 2
    g = jnp.asarray(g, img.dtype)
    pad = [(0, 0)] * (img.ndim - 2) + [(r, r), (r, r)]
    p = jnp.pad(img, pad, mode="symmetric")
    ny, nx = img.shape[-2:]
    out = sum(g[i] * p[..., i : i + ny, :] for i in range(len(g)))
    return sum(g[i] * out[..., :, i : i + nx] for i in range(len(g)))


def ssim_map(ref, x, *, data_range=None, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03):
    """Local SSIM map (Wang 2004) of the magnitudes, same shape as the images.

    ``SSIM = (2 mu_r mu_x + C1)(2 s_rx + C2) / ((mu_r^2 + mu_x^2 + C1)(s_r^2 + s_x^2 + C2))``
    with Gaussian-weighted local moments and ``C_i = (K_i L)^2``.
    """
    ref = jnp.abs(jnp.asarray(ref))
    x = jnp.abs(jnp.asarray(x))
    if ref.shape != x.shape:
        raise ValueError(f"reference {ref.shape} and image {x.shape} differ in shape")
    if data_range is None:
        data_range = jnp.max(ref) - jnp.min(ref)
    g = gaussian_window(sigma)
    mr, mx = _filter(ref, g), _filter(x, g)
    vr = _filter(ref * ref, g) - mr * mr
    vx = _filter(x * x, g) - mx * mx
    cov = _filter(ref * x, g) - mr * mx
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    return ((2 * mr * mx + c1) * (2 * cov + c2)) / ((mr**2 + mx**2 + c1) * (vr + vx + c2))


def ssim(ref, x, mask=None, *, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03):
    """Mean structural similarity (Wang 2004) of the magnitudes over the mask.

    The data range is ``max - min`` of ``|ref|`` over the whole image; the SSIM map
    uses the whole image (windows near the mask edge see pixels outside it) and is
    averaged over the mask.

    Args:
        ref: reference image (Ny, Nx), real or complex.
        x: image to score (Ny, Nx).
        mask: optional boolean (Ny, Nx).
        sigma, k1, k2: window width and stabilising constants of Wang 2004.

    Returns:
        Scalar in [-1, 1] (1 for identical images).
    """
    ref, x, m = _prep(ref, x, mask)
    if ref.ndim != 2:
        raise ValueError(f"ssim expects 2-D images (Ny, Nx), got {ref.shape}")
    return _ssim(ref, x, m, sigma, k1, k2)


@partial(jax.jit, static_argnums=(3,))
def _ssim(ref, x, m, sigma, k1, k2):
    s = ssim_map(ref, x, data_range=jnp.max(ref) - jnp.min(ref), sigma=sigma, k1=k1, k2=k2)
    return jnp.sum(jnp.where(m, s, 0)) / jnp.sum(m)


def gfactor_summary(g, mask=None) -> dict:
    """``{"gfactor_mean", "gfactor_p95", "gfactor_max"}`` of a g-factor map in the mask.

    The 95th percentile uses linear interpolation (``numpy.percentile`` default).
    """
    g = np.asarray(g, dtype=float)
    if mask is None:
        v = g.ravel()
    else:
        mask = np.asarray(mask, bool)
        if mask.shape != g.shape:
            raise ValueError(f"mask {mask.shape} does not match the g-factor map {g.shape}")
        v = g[mask]
    if v.size == 0:
        raise ValueError("mask selects no pixel")
    return {
        "gfactor_mean": float(v.mean()),
        "gfactor_p95": float(np.percentile(v, 95)),
        "gfactor_max": float(v.max()),
    }


def gfactor_comparison(g_reference, g_other, mask=None, *, replicas: int | None = None) -> dict:
    """How a g-factor map (e.g. Monte Carlo) compares with a reference map (e.g. analytic).

    Returns the other map's ``gfactor_mean``/``gfactor_max``, the mean and RMS of the
    relative difference ``(g_other - g_reference) / g_reference`` in the mask and, with
    ``replicas``, the relative standard deviation expected of a Monte Carlo g from that many
    replicas, ``1 / (2 sqrt(M))`` (the std of a sample standard deviation, halved by the
    square root in ``g``).
    """
    a, b = np.asarray(g_reference, float), np.asarray(g_other, float)
    m = np.ones(a.shape, bool) if mask is None else np.asarray(mask, bool)
    rel = (b[m] - a[m]) / a[m]
    out = {
        "gfactor_mean": float(b[m].mean()),
        "gfactor_max": float(b[m].max()),
        "mean_rel_difference_vs_analytic": float(rel.mean()),
        "rms_rel_difference_vs_analytic": float(np.sqrt(np.mean(rel**2))),
    }
    if replicas is not None:
        out.update(replicas=int(replicas), expected_rel_std=float(1 / (2 * np.sqrt(replicas))))
    return out
