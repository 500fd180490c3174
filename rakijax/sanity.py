"""Plausibility checks with one-line messages: refuse what is physically wrong, warn about what is odd.

Every check returns a list of one-line warnings (strings, empty when all is well) and
raises ``ValueError`` with a one-line message for a *refusal*. The policy per case:

======================================================  =========  ==========================================
case                                                    outcome    why
======================================================  =========  ==========================================
integer dtype (int16 raw, uint8 pictures)               refuse     k-space is complex floating point
real floating-point k-space, or complex with Im == 0    refuse     real k-space = Hermitian-symmetric image:
                                                                   magnitude or real part loaded by mistake
NaN / Inf samples                                       refuse     nothing downstream is defined
all-zero or constant data                               refuse     no image in it
"coil" axis longer than ky or kx                        refuse     a layout mix-up, e.g. MATLAB (kx, ky, coil)
                                                                   read as (coil, ky, kx): reorder the axes
one coil with R > 1                                     refuse     one coil cannot unfold R aliases
fewer coils than R                                      warning    under-determined unfolding, g >> 1
a dead (all-zero) coil among others                     warning    its noise covariance row is zero
energy not at the k-space centre                        warning    uncentred (fftshift) or images, not k-space
untrusted / ill-conditioned noise estimate              warning    g-factor and SNR maps are then not reliable
reconstruction implausible (collapse)                   warning    the work is done; say it loudly, keep it
======================================================  =========  ==========================================

The reconstruction check (:func:`check_reconstruction`) is reference-free: it compares
the energy of the interpolated lines with the energy interpolated from the acquired
lines beside them, measures how much of the zero-filled input's aliasing is left
outside the object (the object found from the alias-free low-resolution ACS image),
and that the acquired lines were kept; with a reference (the fully sampled data, or a
second method's reconstruction such as GRAPPA's) it also checks the NMSE.

The memory estimate before the work is in :mod:`rakijax.memory`.
"""

from __future__ import annotations

import math

import numpy as np

from .fft import ifft2c
from .metrics import nmse
from .noise_trust import noise_region

__all__ = [
    "check_kspace",
    "check_noise",
    "check_reconstruction",
]


def _shape(k) -> str:
    return "x".join(str(int(n)) for n in np.shape(k))


def check_kspace(kspace, R: int = 1, *, name: str = "k-space") -> list[str]:
    """Refuse physically wrong k-space, warn about odd k-space.

    Args:
        kspace: (..., Nc, Ny, Nx) k-space (leading slice axes allowed); missing lines
            of accelerated data are zeros.
        R: acceleration factor of the planned (or given) undersampling.
        name: what to call the data in the messages (e.g. the file name).

    Returns:
        One-line warnings (empty when nothing is odd).

    Raises:
        ValueError: one line naming the problem and the fix (see the module table).
    """
    k = np.asarray(kspace)
    if k.dtype.kind in "biu":
        raise ValueError(
            f"{name} has integer dtype {k.dtype} (shape {_shape(k)}): k-space is complex floating point; "
            "this looks like images or unconverted raw integers, not complex k-space"
        )
    if k.dtype.kind not in "fc":
        raise ValueError(f"{name} has non-numeric dtype {k.dtype}: expected complex k-space")
    if k.ndim < 3:
        raise ValueError(
            f"{name} has shape {k.shape}: need (coil, ky, kx); for one coil add a leading axis of length 1"
        )
    if k.dtype.kind == "f":
        raise ValueError(
            f"{name} is real-valued ({k.dtype}, shape {_shape(k)}): MRI k-space is complex; real k-space "
            "means a Hermitian-symmetric image, i.e. magnitudes or only the real part were saved"
        )
    if not np.all(np.isfinite(k)):
        bad = int(k.size - np.count_nonzero(np.isfinite(k)))
        raise ValueError(f"{name} contains {bad} NaN/Inf value(s) (shape {_shape(k)})")
    if not np.any(k):
        raise ValueError(f"{name} is all zero (shape {_shape(k)}): there is no image in it")
    flat = k.reshape(-1)
    if np.all(flat == flat[0]):
        raise ValueError(f"{name} is constant (every sample equals {flat[0]:.4g}, shape {_shape(k)}): no image in it")
    if not np.any(k.imag):
        raise ValueError(
            f"{name} is complex but every imaginary part is zero (shape {_shape(k)}): real-valued k-space "
            "means magnitudes or only the real part were saved"
        )
    nc, ny, nx = k.shape[-3:]
    if nc > ny or nc > nx:
        raise ValueError(
            f"{name} of shape {_shape(k)} read as (coil, ky, kx) has {nc} coils but only {ny} ky and {nx} kx "
            f"samples: the axes are in another order (e.g. MATLAB's (kx, ky, coil)); reorder them "
            "(--axes on the command line, axes= in rakijax.data.load)"
        )
    if nc == 1 and R > 1:
        raise ValueError(
            f"{name} has one coil but R={R}: parallel imaging needs several coils to unfold R aliases; "
            "use R=1 or multi-coil data"
        )
    warn: list[str] = []
    if 1 < nc < R:
        warn.append(f"{name}: only {nc} coils at R={R}: unfolding {R} aliases from fewer coils is under-determined; "
                    "expect residual aliasing and g-factors far above 1")
    coil_power = np.sum(np.abs(k.reshape(-1, nc, ny, nx)) ** 2, axis=(0, 2, 3))
    dead = np.flatnonzero(coil_power == 0)
    if len(dead) and nc > 1:
        warn.append(f"{name}: coil(s) {', '.join(map(str, dead[:8]))} of {nc} are all zero (dead channels): "
                    "drop them; their noise covariance is singular")
    e = np.sum(np.abs(k.reshape(-1, nc, ny, nx)) ** 2, axis=(0, 1))
    cy, cx = max(1, ny // 8), max(1, nx // 8)
    central = e[ny // 2 - cy : ny // 2 + cy + 1, nx // 2 - cx : nx // 2 + cx + 1].sum() / e.sum()
    iy, ix = np.unravel_index(int(np.argmax(e)), e.shape)
    if min(ny, nx) >= 16 and central < 0.25:
        where = f"its largest sample is at (ky, kx) = ({iy}, {ix}), not near the centre ({ny // 2}, {nx // 2})"
        hint = ("k-space looks uncentred (apply fftshift)" if min(iy, ny - 1 - iy) <= cy and min(ix, nx - 1 - ix) <= cx
                else "these may be images rather than k-space")
        warn.append(f"{name}: only {central:.0%} of the energy lies in the central quarter of k-space; {where}: {hint}")
    return warn


def check_noise(estimate, *, max_condition: float = 300.0, min_samples: int = 100) -> list[str]:
    """Warnings about a :class:`rakijax.noise_trust.NoiseEstimate` for the log, ``metrics.json`` and figures.

    Args:
        estimate: the noise estimate used.
        max_condition: above this (but below the whitening guard) a note on conditioning.
        min_samples: fewer samples per coil than this make psi entries uncertain by > 10%.

    Returns:
        One-line warnings (empty for a trusted, well-conditioned, well-sampled estimate).
    """
    warn: list[str] = []
    if not estimate.trusted:
        warn.append(f"noise covariance not trusted: {estimate.reason}; g-factor/SNR maps use psi from "
                    f"'{estimate.source}' and are not reliable noise measurements")
        return warn
    if estimate.condition > max_condition:
        warn.append(f"noise covariance psi ({estimate.source}) has condition number {estimate.condition:.3g}: "
                    "some coil combinations are nearly noise-free; check for duplicated or combined channels")
    if estimate.source in ("noise scan", "k-space background") and 0 < estimate.samples < min_samples:
        warn.append(f"noise covariance from only {estimate.samples} samples per coil ({estimate.source}): "
                    f"its entries are uncertain by about {1 / math.sqrt(estimate.samples):.0%}")
    return warn


# ----------------------------------------------------------------------------- reconstruction


def _images(k):

    import jax

    with jax.enable_x64(np.asarray(k).dtype == np.complex128):
        return np.asarray(jax.jit(ifft2c)(np.asarray(k)))


def _line_energy_ratio(zero_filled, recon, acquired):
    """Median over interpolated lines of log10(energy / energy interpolated from the acquired lines)."""
    e_rec = np.sum(np.abs(recon) ** 2, axis=(0, 2))
    e_acq = np.sum(np.abs(zero_filled) ** 2, axis=(0, 2))
    ny = e_rec.shape[0]
    acq = np.flatnonzero(acquired)
    miss = np.flatnonzero(~acquired)
    tiny = np.finfo(float).tiny
    if len(acq) < 2 or not len(miss):
        return float("nan")
    # log-linear interpolation between the acquired neighbours (circular in ky)
    ext = np.concatenate([acq - ny, acq, acq + ny])
    loge = np.log10(np.maximum(np.concatenate([e_acq[acq]] * 3), tiny))
    pred = np.interp(miss, ext, loge)
    return float(np.median(np.log10(np.maximum(e_rec[miss], tiny)) - pred))


def _outside_fraction(x, outside):
    p = np.sum(np.abs(x) ** 2, axis=0)
    return float(p[outside].sum() / max(p.sum(), np.finfo(float).tiny))


def _aliasing(zf, rec, acs, sampling):
    """``(ghost, outside)`` ratios of the reconstruction to the zero-filled input (NaN: no background).

    Outside the object (from the alias-free low-resolution ACS image, :func:`noise_region`),
    the power ``P(r) = sum_c |x_c(r)|^2`` is regressed on ``[1, G(r)]`` with the ghost
    template ``G(r) = sum_{j=1}^{R-1} T(r - j Ny/R)``, ``T`` the low-resolution power: the
    slope is the strength of the FOV/R ghosts, the intercept absorbs noise (so noise, even
    amplified, does not count as aliasing). ``ghost`` = slope(recon) / slope(zero-filled);
    ``outside`` = outside energy fraction (recon) / (zero-filled).
    """
    low = np.zeros_like(rec)
    low[:, sampling.acs_start : sampling.acs_start + acs.shape[1]] = acs
    xl = _images(low)
    out = noise_region(xl, min_pixels=0)
    if out.mean() < 0.05:
        return float("nan"), float("nan")
    T = np.sum(np.abs(xl) ** 2, axis=0)
    ny = rec.shape[1]
    tmpl = sum(np.roll(T, j * ny // sampling.R, axis=0) for j in range(1, sampling.R))[out]
    A = np.stack([np.ones_like(tmpl), tmpl], axis=1)
    x_rec, x_zf = _images(rec), _images(zf)

    def slope(x):
        return np.linalg.lstsq(A, np.sum(np.abs(x) ** 2, axis=0)[out], rcond=None)[0][1]

    s_zf = slope(x_zf)
    ghost = float(slope(x_rec) / s_zf) if s_zf > 0 else float("nan")
    f_zf = _outside_fraction(x_zf, out)
    outside = _outside_fraction(x_rec, out) / f_zf if f_zf > 0 else float("nan")
    return ghost, outside


#: smallest ky size for the aliasing-ghost measure of :func:`check_reconstruction`
MIN_GHOST_LINES = 64


def check_reconstruction(zero_filled, recon_kspace, sampling, *, acs_block=None, reference=None,
                         reference_label: str = "the reference", max_ghost: float = 0.15, max_outside: float = 1.0,
                         max_energy_decades: float = 1.0, max_nmse: float = 0.1,
                         name: str = "reconstruction") -> list[str]:
    """Reference-free plausibility of a reconstruction (catches a collapsed RAKI).

    Measures (coil k-space, summed over coils):

    * **line energy**: the median, over interpolated lines, of ``log10(E_line /
      E_pred)`` with ``E_pred`` interpolated log-linearly from the acquired lines beside
      it; a sound reconstruction is within a fraction of a decade, a collapse to zeros
      or to amplified garbage is off by decades (``> max_energy_decades``);
    * **residual aliasing** (with ``acs_block``): outside the object (found from the
      alias-free low-resolution image of the ACS, dilated) the strength of the FOV/R
      ghosts of the object, relative to the zero-filled input's (1 by definition; a
      sound reconstruction ~0, noise does not count, see :func:`_aliasing`):
      ``> max_ghost`` (0.15: 39% of the ghost amplitude) warns; and the energy outside
      the object relative to the zero-filled input's: ``> max_outside`` (1: more than the
      input with all its aliasing) warns (garbage that is not ghost-shaped; very noisy
      data with strong noise amplification may also trigger it);
    * **data consistency**: the acquired lines are kept (relative change ``< 1e-3``);
    * **reference** (optional): ``NMSE = ||x - x_ref||^2 / ||x_ref||^2`` of the RSS
      images above ``max_nmse`` (a reference is the fully sampled data, or another
      method's reconstruction of the same data such as GRAPPA's).

    Args:
        zero_filled: (Nc, Ny, Nx) the regularly acquired lines on the full grid, zeros elsewhere
            (:func:`rakijax.sampling.undersample`).
        recon_kspace: (Nc, Ny, Nx) reconstructed k-space (same coil basis).
        sampling: the :class:`~rakijax.sampling.Sampling`.
        acs_block: optional (Nc, acs, Nx) ACS lines (for the object support).
        reference: optional (Nc, Ny, Nx) reference k-space.
        reference_label: how to call the reference in the message.
        max_ghost, max_outside, max_energy_decades, max_nmse: warning thresholds.
        name: how to call the reconstruction in the messages (e.g. "RAKI").

    Returns:
        One-line warnings; also ``[]`` when a measure does not apply (R = 1, no ACS,
        an object that leaves no background, fewer than :data:`MIN_GHOST_LINES` ky lines:
        the ghost template from the low-resolution ACS image is then too blurred to
        separate ghosts from the object's edge; a sound 24x24 GRAPPA showed "55%").
    """
    zf = np.asarray(zero_filled)
    rec = np.asarray(recon_kspace)
    if zf.shape != rec.shape or zf.ndim != 3:
        raise ValueError(f"zero_filled {zf.shape} and recon_kspace {rec.shape} must both be (Nc, Ny, Nx)")
    if zf.shape[1] != sampling.ny:
        raise ValueError(f"k-space has {zf.shape[1]} ky lines but the sampling expects {sampling.ny}")
    warn: list[str] = []
    if not np.all(np.isfinite(rec)):
        return [f"{name}: the reconstruction contains NaN/Inf values: it diverged"]
    acquired = sampling.mask(include_acs=False)
    if sampling.R == 1:
        return warn
    if not np.any(rec):
        return [f"{name}: the reconstruction is all zero"]
    a = zf[:, acquired]
    change = np.linalg.norm(rec[:, acquired] - a) / max(np.linalg.norm(a), np.finfo(float).tiny)
    if change > 1e-3:
        warn.append(f"{name}: the acquired lines changed by {change:.1e} (relative): not data-consistent")
    dec = _line_energy_ratio(zf, rec, acquired)
    if np.isfinite(dec) and abs(dec) > max_energy_decades:
        what = "too little (close to the zero-filled input)" if dec < 0 else "too much (amplified garbage)"
        warn.append(f"{name}: the interpolated lines hold {10 ** dec:.2g}x the energy expected from the acquired "
                    f"lines beside them, {what}: implausible reconstruction at R={sampling.R}")
    if acs_block is not None and np.shape(acs_block)[1] > 0 and sampling.ny >= MIN_GHOST_LINES:
        ghost, outside = _aliasing(zf, rec, np.asarray(acs_block), sampling)
        if np.isfinite(ghost) and ghost > max_ghost:
            warn.append(f"{name}: {math.sqrt(ghost):.0%} of the zero-filled input's FOV/{sampling.R} aliasing ghosts "
                        "(amplitude) remain outside the object: the reconstruction failed to unfold, do not use it")
        if np.isfinite(outside) and outside > max_outside:
            warn.append(f"{name}: {outside:.2g}x the image energy of the zero-filled input outside the object "
                        "(aliasing, garbage or strongly amplified noise): implausible reconstruction, do not use it")
    if reference is not None:

        ref = np.sqrt(np.sum(np.abs(_images(np.asarray(reference))) ** 2, axis=0))
        x = np.sqrt(np.sum(np.abs(_images(rec)) ** 2, axis=0))
        e = float(nmse(ref, x))
        if e > max_nmse:
            warn.append(f"{name}: NMSE {e:.3g} against {reference_label} (> {max_nmse:g}): the reconstruction "
                        "failed")
    return warn
