"""Is it noise? Testing a candidate noise region before its covariance is trusted.

The noise model of :mod:`rakijax.noise` (circular complex Gaussian, white, stationary)
is only assumed for samples shown to follow it. :func:`estimate_noise` takes, in order,
a given ``Psi``, a noise-only scan, or the image background outside the object
(:func:`noise_region`), and tests the candidate samples with :func:`noise_statistics`
(kurtosis of ``|n|^2`` (2 for complex Gaussian noise), real/imaginary balance, neighbour
correlation, power near vs far from the object, level above round-off). A candidate that
fails is refused: ``psi = I`` and ``trusted = False`` with a one-line reason, so a g-factor
map is never reported from a garbage covariance without saying so. Noise-free, simulated
or denoised data (whose background holds round-off or Gibbs ringing) are refused this way.

References: Kellman & McVeigh 2005 (SNR units, noise covariance estimation).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from .fft import ifft2c
from .noise import MAX_CONDITION, background_mask, condition_number, estimate_psi
from .validate import check_finite, validate_psi

__all__ = ["NoiseEstimate", "estimate_noise", "noise_statistics", "noise_region"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class NoiseEstimate:
    """The noise covariance to use, where it came from and whether it can be trusted.

    Attributes:
        psi: (Nc, Nc) covariance to use: the given one, the noise scan's or the
            k-space background's estimate; the identity when nothing could be shown
            to be noise (``source == "identity"``).
        source: ``"given"``, ``"noise scan"``, ``"k-space background"`` or ``"identity"``.
        trusted: the samples passed the noise tests and ``psi`` is positive definite
            with condition number ``<= max_condition``; g-factor and SNR maps built on
            an untrusted estimate must say so.
        condition: condition number of the examined covariance (the rejected
            candidate's when ``source == "identity"``; ``inf`` if singular).
        reason: one line: why it is trusted, or why not and what to do.
        stats: test statistics (:func:`noise_statistics`) and their tolerances.
        samples: number of noise samples per coil the estimate rests on.
    """

    psi: np.ndarray
    source: str
    trusted: bool
    condition: float
    reason: str
    stats: dict = field(default_factory=dict)
    samples: int = 0

    def to_dict(self) -> dict:
        """JSON-friendly summary (no array) for ``metrics.json``."""
        def num(v):
            if isinstance(v, (list, tuple)):
                return [str(a) for a in v]
            v = float(v)
            return v if np.isfinite(v) else None

        return {"source": self.source, "trusted": bool(self.trusted), "condition": num(self.condition),
                "reason": self.reason, "samples": int(self.samples),
                "stats": {k: num(v) for k, v in self.stats.items()}}

    def require(self) -> "NoiseEstimate":
        """``self`` if trusted, else ``ValueError(reason)`` (for callers that refuse)."""
        if not self.trusted:
            raise ValueError(self.reason)
        return self


def _smooth(a, size):
    from scipy.ndimage import uniform_filter

    return uniform_filter(a, size=size, mode="nearest")


def noise_region(images, *, threshold: float = 0.04, min_pixels: int | None = None) -> np.ndarray:
    """Candidate noise region: the image background outside the (dilated) object.

    The RSS image is smoothed (box of ``max(3, min(Ny, Nx)//16)`` pixels), thresholded
    at ``floor + threshold (p99 - floor)`` (``floor``: its 5th percentile), holes are
    filled and the object dilated by ``max(2, min(Ny, Nx)//32)`` pixels; the rest is
    the candidate. When that leaves fewer than ``min_pixels`` (default
    ``max(64, 10 Nc)``) pixels, the four corners (:func:`background_mask`) are the
    candidate. The region is chosen from a smoothed image, so it hardly depends on
    the noise values themselves (no selection bias); whether it *is* noise is tested
    by :func:`noise_statistics`.

    Args:
        images: (Nc, Ny, Nx) complex coil images.
        threshold: object threshold, fraction of the smoothed image's range.
        min_pixels: smallest acceptable region.

    Returns:
        (Ny, Nx) bool, True on candidate noise pixels.
    """
    from scipy.ndimage import binary_dilation, binary_fill_holes

    x = np.asarray(images)
    nc, ny, nx = x.shape
    rss = np.sqrt(np.sum(np.abs(x) ** 2, axis=0))
    sm = _smooth(rss, max(3, min(ny, nx) // 16))
    lo, hi = np.percentile(sm, 5), np.percentile(sm, 99)
    obj = binary_fill_holes(sm > lo + threshold * (hi - lo))
    obj = binary_dilation(obj, iterations=max(2, min(ny, nx) // 32))
    cand = ~obj
    if min_pixels is None:
        min_pixels = max(64, 10 * nc)
    if cand.sum() < min_pixels:
        cand = background_mask((ny, nx), 0.125)
    return cand


# tolerances of the tests (H0: circular complex Gaussian, white, stationary noise); the
# sampling spread under H0 is added (k / sqrt(S)), the constant covers mild departures of
# real scanner noise (readout filter roll-off, quantisation).
_TOL = {"kurtosis": 0.3, "circularity": 0.08, "correlation": 0.2, "near_far": 0.35}


def noise_statistics(samples, mask=None, *, signal_power: float | None = None) -> dict:
    """Statistics of candidate noise samples against circular complex Gaussian white noise.

    For zero-mean circular complex Gaussian noise ``z`` (each coil):

    * ``kurtosis = E|z|^4 / (E|z|^2)^2 = 2`` (``|z|^2`` is exponential); signal
      leakage or a power that varies across the region (a mixture) gives ``> 2``;
    * ``circularity = |E z^2| / E|z|^2 = 0`` (real and imaginary parts balanced
      and uncorrelated); a real-valued object's ringing seen through a coil phase gives ~1;
    * ``correlation``: lag-1 spatial autocorrelation ``|sum z_p conj(z_{p+1})| /
      sum |z_p|^2`` along ky and kx (the larger), 0 for white noise; Gibbs ringing
      alternates in sign (close to -1), leaked smooth signal is close to +1;
    * ``near_far``: power of the half of the region nearer the object over the
      farther half, 1 for stationary noise, large when the power is signal decaying
      away from the object;
    * ``relative_rms``: RMS of the samples over the object's RMS (``signal_power``);
      round-off level (< 1e-5) means there is no noise at all.

    The statistics are averaged over coils (weighted by coil power). Each is
    compared with its tolerance (``_TOL`` plus ``5/sqrt(S)``, the sampling spread under H0).

    Args:
        samples: (Nc, Ny, Nx) coil images with ``mask`` (Ny, Nx) the candidate region,
            or (Nc, S) samples (noise scan; no spatial tests) with ``mask=None``.
        mask: candidate region of the images.
        signal_power: mean ``|x|^2`` per coil of the object, for ``relative_rms``.

    Returns:
        dict of the statistics, their tolerances (``*_tol``) and ``failed`` (list of names).
    """
    x = np.asarray(samples)
    spatial = mask is not None
    if spatial:
        mask = np.asarray(mask, bool)
        z = x[:, mask]
    else:
        z = x
    nc, s = z.shape
    z = z - z.mean(axis=1, keepdims=True)
    p2 = np.mean(np.abs(z) ** 2, axis=1)
    w = p2 / max(p2.sum(), np.finfo(float).tiny)
    safe = np.where(p2 > 0, p2, 1.0)
    st: dict = {"samples": int(s)}
    st["kurtosis"] = float(np.sum(w * np.mean(np.abs(z) ** 4, axis=1) / safe**2))
    st["circularity"] = float(np.sum(w * np.abs(np.mean(z**2, axis=1)) / safe))
    spread = 5.0 / np.sqrt(max(s, 1))
    st["kurtosis_tol"] = _TOL["kurtosis"] + 5 * np.sqrt(20.0 / max(s, 1))  # var(|z|^4)/sigma^8 = 20
    st["circularity_tol"] = _TOL["circularity"] + spread
    failed = []
    if abs(st["kurtosis"] - 2.0) > st["kurtosis_tol"]:
        failed.append("kurtosis")
    if st["circularity"] > st["circularity_tol"]:
        failed.append("circularity")
    if spatial:
        from scipy.ndimage import distance_transform_edt

        xm = x - np.where(mask, x, 0).sum(axis=(1, 2), keepdims=True) / max(mask.sum(), 1)
        cors, npairs = [], 0
        for ax in (1, 2):
            a = np.take(xm, np.arange(xm.shape[ax] - 1), axis=ax)
            b = np.take(xm, np.arange(1, xm.shape[ax]), axis=ax)
            both = np.take(mask, np.arange(mask.shape[ax - 1] - 1), axis=ax - 1) & np.take(
                mask, np.arange(1, mask.shape[ax - 1]), axis=ax - 1)
            n = int(both.sum())
            if n >= 16:
                num = np.abs(np.sum(a[:, both] * np.conj(b[:, both])))
                den = 0.5 * (np.sum(np.abs(a[:, both]) ** 2) + np.sum(np.abs(b[:, both]) ** 2))
                cors.append(num / den if den > 0 else 0.0)
                npairs = max(npairs, n)
        st["correlation"] = float(max(cors)) if cors else float("nan")
        st["correlation_tol"] = _TOL["correlation"] + 5.0 / np.sqrt(max(npairs, 1))
        if cors and st["correlation"] > st["correlation_tol"]:
            failed.append("correlation")
        d = distance_transform_edt(mask)  # distance from the nearest non-region (object) pixel
        dm = d[mask]
        med = np.median(dm)
        near, far = dm <= med, dm > med
        pw = np.sum(np.abs(z) ** 2, axis=0)
        if near.sum() >= 8 and far.sum() >= 8:
            st["near_far"] = float(pw[near].mean() / max(pw[far].mean(), np.finfo(float).tiny))
            st["near_far_tol"] = _TOL["near_far"] + 5.0 * np.sqrt(2.0 / min(near.sum(), far.sum()))
            if st["near_far"] - 1.0 > st["near_far_tol"]:
                failed.append("near_far")
    if signal_power is not None and signal_power > 0:
        st["relative_rms"] = float(np.sqrt(p2.mean() / signal_power))
    st["failed"] = failed
    return st


_HINT = "give a noise-only scan (noise key) or psi"

_WHAT = {
    "kurtosis": lambda st: f"kurtosis {st['kurtosis']:.2f} (Gaussian: 2)",
    "circularity": lambda st: f"real/imag imbalance {st['circularity']:.2f} (noise: 0)",
    "correlation": lambda st: f"neighbour correlation {st['correlation']:.2f} (white: 0)",
    "near_far": lambda st: f"power near/far from the object {st['near_far']:.2f} (noise: 1)",
}


def _fmt_fail(st) -> str:
    return ", ".join(_WHAT[f](st) for f in st["failed"])


def _sampled_images(k):
    """Coil images of the acquired part of k-space, and a note on what was used.

    All-zero k-space rows/columns at the edges (zero padding, partial Fourier) are
    cropped; if rows inside are missing (accelerated data), the regular rows with the
    most common spacing are kept (an image of FOV/R).
    """
    nz_rows = np.flatnonzero(np.any(k != 0, axis=(0, 2)))
    nz_cols = np.flatnonzero(np.any(k != 0, axis=(0, 1)))
    k = k[:, nz_rows[0] : nz_rows[-1] + 1, nz_cols[0] : nz_cols[-1] + 1]
    rows = nz_rows - nz_rows[0]
    note = ""
    if len(rows) < k.shape[1]:
        step = int(np.bincount(np.diff(rows)).argmax())
        start = int(rows[0])
        reg = np.arange(start, k.shape[1], step)
        reg = reg[np.isin(reg, rows)]
        k = k[:, reg]
        note = f" (accelerated data: the FOV/{step} image of the regular lines)"
    with jax.enable_x64(np.asarray(k).dtype == np.complex128):
        x = np.asarray(jax.jit(ifft2c)(jnp.asarray(k)))
    return x, note


def estimate_noise(kspace=None, noise=None, psi=None, *, mask=None, max_condition: float = MAX_CONDITION,
                   min_relative_rms: float = 1e-5) -> NoiseEstimate:
    """The noise covariance, from the most direct source, tested before it is trusted.

    Order: ``psi`` given (trusted if positive definite and condition number
    ``<= max_condition``); a noise-only scan ``noise`` (its samples must pass the
    Gaussian tests of :func:`noise_statistics` and hold power); else the image
    background of ``kspace`` (:func:`noise_region`, or ``mask``), whose pixels must
    pass all tests of :func:`noise_statistics` (Gaussian, circular, white,
    stationary, above round-off). A candidate that fails is refused: the result is
    ``psi = I``, ``source = "identity"``, ``trusted = False`` and ``reason`` names the
    failed tests and what to do. Noise-free or denoised data (the background holds
    zeros, round-off or Gibbs ringing) are refused this way.

    Args:
        kspace: (Nc, Ny, Nx) complex k-space (fully sampled, or accelerated with
            zero lines), or (slices, Nc, Ny, Nx) (each slice tested, psi pooled);
            needed unless ``psi`` or ``noise`` is given.
        noise: (Nc, S) complex noise-only samples, or None.
        psi: (Nc, Nc) covariance, or None.
        mask: (Ny, Nx) bool region known to be noise (skips :func:`noise_region`;
            still tested).
        max_condition: largest condition number trusted (see :func:`rakijax.noise.whitening`).
        min_relative_rms: below this background RMS relative to the object's, the
            data are taken to be noise-free.

    Returns:
        :class:`NoiseEstimate`.

    Raises:
        ValueError: nothing to estimate from, or malformed arrays (wrong rank, NaN/Inf).
    """
    def conditioned(p, source, st, samples, why_ok):
        ev = np.linalg.eigvalsh(0.5 * (p + p.conj().T))
        cond = condition_number(ev)
        if not cond <= max_condition:
            reason = (f"noise covariance psi ({source}) is ill-conditioned: condition number {cond:.3g} > "
                      f"{max_condition:.3g}; whitening floors its smallest eigenvalues and g-factor maps from it "
                      f"are not reliable")
            return NoiseEstimate(p, source, False, cond, reason, st, samples)
        return NoiseEstimate(p, source, True, cond, f"{why_ok}; condition number {cond:.3g}", st, samples)

    if psi is not None:
        p = validate_psi(np.asarray(psi))
        return conditioned(p, "given", {}, 0, "noise covariance psi given")
    if noise is not None:
        n = np.asarray(noise)
        if n.ndim != 2 or n.shape[1] < 2:
            raise ValueError(f"noise scan must have shape (Nc, S) with S >= 2, got {n.shape}")
        check_finite(n, "noise scan")
        nc = n.shape[0]
        st = noise_statistics(n)
        if not np.any(n - n.mean(axis=1, keepdims=True)):
            return NoiseEstimate(np.eye(nc, dtype=complex), "identity", False, float("inf"),
                                 f"the noise scan ({nc}x{n.shape[1]}) is constant (all zero?): no noise to "
                                 f"estimate psi from; using psi = I", st, n.shape[1])
        p = np.asarray(estimate_psi(n), dtype=np.result_type(n.dtype, np.complex64))
        if st["failed"]:
            ev = np.linalg.eigvalsh(p)
            return NoiseEstimate(np.eye(nc, dtype=complex), "identity", False, condition_number(ev),
                                 f"the noise scan is not Gaussian noise ({_fmt_fail(st)}); using psi = I; "
                                 f"check the noise key", st, n.shape[1])
        return conditioned(p, "noise scan", st, n.shape[1], f"from a noise scan of {n.shape[1]} samples per coil")
    if kspace is None:
        raise ValueError("estimate_noise needs kspace, a noise scan or psi")
    k = np.asarray(kspace)
    if k.ndim == 4:  # slices: every slice's background must pass; psi pooled over them
        parts = [estimate_noise(ks, mask=mask, max_condition=max_condition, min_relative_rms=min_relative_rms)
                 for ks in k]
        bad = [i for i, e in enumerate(parts) if not e.trusted]
        if bad:
            e = parts[bad[0]]
            return NoiseEstimate(e.psi, e.source, False, e.condition,
                                 f"slice {bad[0]} ({len(bad)} of {len(parts)} slices refused): {e.reason}", e.stats, e.samples)
        s = sum(e.samples for e in parts)
        p = sum(e.samples * e.psi for e in parts) / s
        return conditioned(p, "k-space background", parts[0].stats, s,
                           f"estimated from the image background of {len(parts)} slices, which passed the noise tests")
    if k.ndim != 3:
        raise ValueError(f"k-space must have shape (Nc, Ny, Nx) or (slices, Nc, Ny, Nx), got {k.shape}")
    check_finite(k, "k-space")
    nc = k.shape[0]
    if not np.any(k):
        raise ValueError(f"k-space of shape {k.shape} is all zero: nothing to reconstruct or estimate noise from")
    x, note = _sampled_images(k)
    if mask is None:
        region = noise_region(x)
    else:
        region = np.asarray(mask, bool)
        if region.shape != x.shape[1:]:
            raise ValueError(f"noise mask must have shape (Ny, Nx) = {x.shape[1:]}, got {region.shape}")
    where = f"the image background{note} ({int(region.sum())} px)"
    if region.sum() < max(16, 2 * nc):
        return NoiseEstimate(np.eye(nc, dtype=complex), "identity", False, float("inf"),
                             f"{where} is too small to estimate a {nc}x{nc} noise covariance; using psi = I; "
                             f"{_HINT}", {}, int(region.sum()))
    obj = ~region
    sig = float(np.mean(np.abs(x[:, obj]) ** 2)) if obj.any() else float(np.mean(np.abs(x) ** 2))
    st = noise_statistics(x, region, signal_power=sig)
    p = np.asarray(estimate_psi(x[:, region]))
    cond = condition_number(np.linalg.eigvalsh(0.5 * (p + p.conj().T)))
    st["candidate_condition"] = cond
    s = int(region.sum())
    if st.get("relative_rms", 1.0) < min_relative_rms:
        return NoiseEstimate(np.eye(nc, dtype=complex), "identity", False, cond,
                             f"no noise in {where}: its RMS is {st['relative_rms']:.1e} of the object's (round-off); "
                             f"the data look noise-free or denoised, so psi = I and g-factor/SNR maps assume white "
                             f"uncorrelated coil noise; {_HINT}", st, s)
    if st["failed"]:
        return NoiseEstimate(np.eye(nc, dtype=complex), "identity", False, cond,
                             f"{where} is not noise: {_fmt_fail(st)}; candidate psi condition number {cond:.3g}; "
                             f"the data look noise-free, denoised or filtered, so psi = I and g-factor/SNR maps "
                             f"assume white uncorrelated coil noise; {_HINT}", st, s)
    return conditioned(p, "k-space background", st, s, f"estimated from {where}, which passed the noise tests")
