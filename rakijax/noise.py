"""Receiver noise: covariance estimates, Cholesky prewhitening, complex Gaussian draws.

Model: thermal noise on every k-space sample is circular complex Gaussian,
independent between samples, with coil covariance ``Psi = E[n n^H]`` (Nc x Nc,
Hermitian positive definite). With the unitary FFT of :mod:`rakijax.fft` the
same ``Psi`` describes the noise of every coil-image pixel.

Prewhitening (Pruessmann 2001; Roemer 1990): with the Cholesky factor
``Psi = L L^H`` the whitening matrix ``W = L^{-1}`` gives ``W Psi W^H = I``, so
``W k`` has identity coil covariance and downstream code may take ``Psi = I``.

Trust (:func:`estimate_noise`): a covariance is only estimated from data shown to
be noise. With no noise scan, the candidate region is the image background outside
the object (the smoothed RSS image thresholded, holes filled, dilated; the four
corners if that leaves too few pixels), and its samples must pass the tests of
circular complex Gaussian, spatially white, stationary noise (see
:func:`noise_statistics`); otherwise the estimate is refused (``trusted=False``,
``psi = I``) with a one-line reason. Noise-free, simulated or denoised data (whose
"background" holds round-off or Gibbs ringing) are refused this way.

Whitening that cannot blow up (:func:`whitening`): the eigenvalues of ``Psi`` are
floored at ``lambda_max / max_condition`` before the Cholesky factor is taken, so a
near-null direction is amplified at most ``sqrt(max_condition)`` times relative to
the strongest one (32x at the default ``1e3``; receive arrays have condition numbers
of ~10-100); the floor and the condition number are reported. For a well-conditioned
``Psi`` the whitening is exact. The guard limits the damage, the trust test prevents
it: on a noise-free phantom whose corner "psi" has condition 8.5e6, RAKI (R=4) reached
NMSE 129 with plain Cholesky whitening, 0.17 / 0.024 / 0.006 with the floor at
1e4 / 1e3 / 1e2, and 0.004 without whitening (what a refused estimate gives).

References: Roemer et al. 1990 (NMR phased array); Pruessmann et al. 2001 (SENSE
noise); Kellman & McVeigh 2005 (SNR units, noise covariance estimation).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .fft import ifft2c
from .validate import check_finite, validate_psi

__all__ = [
    "NoiseEstimate",
    "Whitening",
    "estimate_noise",
    "noise_statistics",
    "noise_region",
    "whitening",
    "estimate_psi",
    "estimate_psi_from_kspace",
    "background_mask",
    "whitening_matrix",
    "prewhiten",
    "complex_normal",
]


log = logging.getLogger(__name__)

#: default largest condition number of Psi used as is (see :func:`whitening`).
MAX_CONDITION = 1e3


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def estimate_psi(noise, *, demean: bool = True):
    """Unbiased sample covariance of a noise scan.

    ``Psi_hat = (1/(S - 1)) sum_s (n_s - nbar)(n_s - nbar)^H`` (``demean=True``), or
    ``(1/S) sum_s n_s n_s^H`` for known zero-mean noise (``demean=False``); both are
    unbiased. Each entry has relative standard error about ``1/sqrt(S)``.

    Args:
        noise: (Nc, S) complex noise-only samples (coil axis first).
        demean: subtract the per-coil sample mean (costs one degree of freedom).

    Returns:
        (Nc, Nc) Hermitian covariance estimate.

    Raises:
        ValueError: not rank 2, fewer than 2 samples, NaN/Inf.
    """
    n = jnp.asarray(noise)
    if n.ndim != 2:
        raise ValueError(f"noise must have shape (Nc, S), got {n.shape}")
    s = n.shape[1]
    if s < 2:
        raise ValueError(f"need at least 2 noise samples per coil to estimate a covariance, got S={s} (shape {n.shape})")
    if _is_concrete(n):
        check_finite(np.asarray(n), "noise")
    return _sample_cov(n, demean)


@partial(jax.jit, static_argnums=1)
def _sample_cov(n, demean):
    s = n.shape[1]
    if demean:
        n = n - jnp.mean(n, axis=1, keepdims=True)
    psi = (n @ jnp.conj(n).T) / (s - 1 if demean else s)
    return 0.5 * (psi + jnp.conj(psi).T)


def background_mask(shape: tuple[int, int], fraction: float = 0.125) -> np.ndarray:
    """The four image corners, each ``round(fraction*Ny) x round(fraction*Nx)`` pixels (at least 1x1).

    The default background region of :func:`estimate_psi_from_kspace`: in a fully
    sampled (alias-free) image of a head centred in the field of view the corners
    hold no signal.
    """
    ny, nx = shape
    cy = max(1, int(round(fraction * ny)))
    cx = max(1, int(round(fraction * nx)))
    m = np.zeros((ny, nx), dtype=bool)
    m[:cy, :cx] = m[:cy, -cx:] = m[-cy:, :cx] = m[-cy:, -cx:] = True
    return m


def estimate_psi_from_kspace(kspace, *, mask=None, fraction: float = 0.125, demean: bool = True):
    """Noise covariance from the signal-free background of fully sampled k-space.

    The coil images ``x = ifft2c(k)`` are formed and the covariance of the pixels in
    the background region is estimated with :func:`estimate_psi`. Because the FFT is
    unitary, image-pixel noise has the same covariance ``Psi`` as k-space samples.
    Default region: the four image corners (:func:`background_mask` with
    ``fraction``), which hold no signal for a head centred in an alias-free field of
    view; pass ``mask`` to choose another signal-free region. Residual signal in the
    region biases the estimate upwards.

    Args:
        kspace: (Nc, Ny, Nx) fully sampled complex k-space.
        mask: optional (Ny, Nx) bool, True on signal-free pixels.
        fraction: corner size as a fraction of each image side (default region).
        demean: subtract the per-coil mean of the background pixels.

    Returns:
        (Nc, Nc) covariance estimate.

    Raises:
        ValueError: wrong rank, mask shape mismatch, fewer than 2 background pixels.
    """
    k = jnp.asarray(kspace)
    if k.ndim != 3:
        raise ValueError(f"k-space must have shape (Nc, Ny, Nx), got {k.shape}")
    nc, ny, nx = k.shape
    if mask is None:
        if not 0 < fraction <= 0.5:
            raise ValueError(f"fraction must be in (0, 0.5], got {fraction}")
        mask = background_mask((ny, nx), fraction)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (ny, nx):
        raise ValueError(f"background mask must have shape (Ny, Nx) = {(ny, nx)}, got {mask.shape}")
    if mask.sum() < 2:
        raise ValueError(f"background mask selects {int(mask.sum())} pixel(s); need at least 2")
    x = jax.jit(ifft2c)(k).reshape(nc, ny * nx)
    return estimate_psi(x[:, np.flatnonzero(mask)], demean=demean)


@dataclass(frozen=True)
class Whitening:
    """A guarded whitening: ``W`` (lower triangular), its inverse and what the guard did.

    Attributes:
        W: (Nc, Nc) ``L^{-1}`` with ``Psi_f = L L^H``, ``Psi_f`` = ``Psi`` with its
            eigenvalues floored at ``floor``; ``W Psi W^H = I`` exactly when nothing
            was floored, ``<= I`` (conservative) otherwise.
        W_inv: (Nc, Nc) ``L`` (un-whitening).
        condition: ``lambda_max / lambda_min`` of the given ``Psi`` (``inf`` if singular).
        floored: number of eigenvalues raised to the floor (0: exact whitening).
        floor: the eigenvalue floor ``lambda_max / max_condition``.
        max_condition: the guard used.
    """

    W: np.ndarray
    W_inv: np.ndarray
    condition: float
    floored: int
    floor: float
    max_condition: float

    @property
    def max_gain(self) -> float:
        """Largest amplitude gain of ``W`` relative to the strongest direction, ``sqrt(lambda_max / lambda_used_min)``."""
        return float(np.sqrt(min(self.condition, self.max_condition)))

    def message(self) -> str:
        """One line for the log / metrics, empty when the whitening is exact."""
        if not self.floored:
            return ""
        return (f"noise covariance psi is ill-conditioned (condition number {self.condition:.3g} > "
                f"{self.max_condition:.3g}): {self.floored} eigenvalue(s) floored at lambda_max/"
                f"{self.max_condition:.3g}, so whitening amplifies no direction more than {self.max_gain:.3g}x")


def _condition(ev) -> float:
    ev = np.asarray(ev, dtype=float)
    if ev[-1] <= 0:
        return float("inf")
    return float(ev[-1] / ev[0]) if ev[0] > 0 else float("inf")


def whitening(psi, *, max_condition: float = MAX_CONDITION) -> Whitening:
    """Whitening matrix of ``Psi`` guarded against ill-conditioning (concrete arrays).

    With ``Psi = U diag(lambda) U^H``, every ``lambda_i < lambda_max / max_condition``
    is raised to that floor (``Psi_f``); ``W = L^{-1}``, ``Psi_f = L L^H`` (Cholesky).
    So ``||W v|| / ||W u|| <= sqrt(max_condition)`` for unit vectors (no direction is
    amplified more than ``sqrt(max_condition)`` times relative to the strongest), and
    ``W Psi W^H = I`` exactly when ``cond(Psi) <= max_condition``. An estimated ``Psi``
    whose smallest eigenvalues are round-off or Gibbs ringing (noise-free data) can
    thus no longer amplify near-null coil combinations by 1e3 or more.

    Args:
        psi: (Nc, Nc) Hermitian positive semi-definite noise covariance.
        max_condition: largest condition number used as is (>= 1).

    Returns:
        :class:`Whitening` (``W``, ``W_inv``, condition number, how many eigenvalues were floored).

    Raises:
        ValueError: psi not square/Hermitian/PSD/finite, or zero.
    """
    if not max_condition >= 1:
        raise ValueError(f"max_condition must be >= 1, got {max_condition!r}")
    p = validate_psi(np.asarray(psi))
    p = 0.5 * (p + p.conj().T)
    ev, U = np.linalg.eigh(p)
    if not ev[-1] > 0:
        raise ValueError("noise covariance psi is zero (no noise power in any coil); cannot whiten")
    cond = _condition(ev)
    floor = float(ev[-1] / max_condition)
    low = ev < floor
    floored = int(low.sum())
    pf = p if not floored else (U * np.maximum(ev, floor)) @ U.conj().T
    dtype = np.result_type(p.dtype, np.complex64)
    W = np.linalg.inv(np.linalg.cholesky(np.asarray(pf, dtype=dtype)))  # numpy: exact dtype, no x64 switch
    if not np.all(np.isfinite(W)):  # Cholesky of a floored, still numerically singular psi
        raise ValueError(f"noise covariance psi could not be whitened (condition number {cond:.3g})")
    return Whitening(W=W, W_inv=np.linalg.inv(W), condition=cond, floored=floored, floor=floor,
                     max_condition=float(max_condition))


def whitening_matrix(psi, *, max_condition: float = MAX_CONDITION):
    """Whitening matrix ``W = L^{-1}`` with ``Psi = L L^H`` (Cholesky), so ``W Psi W^H = I``.

    Guarded (see :func:`whitening`): eigenvalues below ``lambda_max / max_condition``
    are floored first (logged as a warning), so no coil combination is amplified more
    than ``sqrt(max_condition)`` times relative to the strongest; exact otherwise.
    Under ``jit`` (traced ``psi``) the same floor is applied without the warning.

    Args:
        psi: (Nc, Nc) Hermitian positive semi-definite noise covariance.
        max_condition: largest condition number used as is.

    Returns:
        (Nc, Nc) lower-triangular ``L^{-1}``.

    Raises:
        ValueError: psi not square, not Hermitian, not positive semi-definite, or zero.
    """
    p = jnp.asarray(psi)
    if p.ndim != 2 or p.shape[0] != p.shape[1]:
        raise ValueError(f"noise covariance psi must be a square (Nc, Nc) matrix, got shape {p.shape}")
    if _is_concrete(p):
        w = whitening(np.asarray(p), max_condition=max_condition)
        if w.floored:
            log.warning("%s", w.message())
        return jnp.asarray(w.W)
    if not jnp.iscomplexobj(p):
        p = p.astype(jnp.result_type(p.dtype, jnp.complex64))
    return _inv_cholesky(_floor_eigs(p, max_condition))


@jax.jit
def _floor_eigs(p, max_condition):
    p = 0.5 * (p + jnp.conj(p).T)
    ev, U = jnp.linalg.eigh(p)
    floor = ev[-1] / max_condition
    pf = (U * jnp.maximum(ev, floor)) @ jnp.conj(U).T
    return jnp.where(ev[0] < floor, pf, p)


@jax.jit
def _inv_cholesky(p):
    L = jnp.linalg.cholesky(0.5 * (p + jnp.conj(p).T))
    eye = jnp.eye(p.shape[0], dtype=L.dtype)
    return jax.scipy.linalg.solve_triangular(L, eye, lower=True)


def prewhiten(kspace, psi, *, axis: int = -3):
    """Whitened data ``W k`` along the coil axis, ``W = whitening_matrix(psi)``.

    The result has coil noise covariance ``I``; the signal is mixed accordingly
    (coil sensitivities become ``W S``).

    Args:
        kspace: (..., Nc, Ny, Nx) data (coil axis ``axis``; use ``axis=0`` for a
            (Nc, S) noise scan).
        psi: (Nc, Nc) noise covariance.
        axis: the coil axis of ``kspace``.

    Returns:
        Array of the shape of ``kspace``.
    """
    k = jnp.asarray(kspace)
    W = whitening_matrix(psi)
    if k.shape[axis] != W.shape[0]:
        raise ValueError(f"data have {k.shape[axis]} coils on axis {axis} (shape {k.shape}) but psi is {W.shape}")
    return _apply_coil_matrix(W, k, axis % k.ndim)


@partial(jax.jit, static_argnums=2)
def _apply_coil_matrix(W, k, axis):
    k = jnp.moveaxis(k, axis, -1)
    out = jnp.einsum("ij,...j->...i", W.astype(jnp.result_type(W, k)), k)
    return jnp.moveaxis(out, -1, axis)


def complex_normal(key, shape, psi=None, *, axis: int = -3, dtype=None):
    """Circular complex Gaussian draws with coil covariance ``E[n n^H] = Psi``.

    ``n = L z`` along ``axis``, ``z = (a + i b)/sqrt(2)``, ``a, b ~ N(0, I)``
    independent, ``Psi = L L^H``; so ``E[n n^H] = Psi`` and ``E[n n^T] = 0``.
    Different positions along the other axes are independent.

    Args:
        key: jax PRNG key.
        shape: output shape; ``shape[axis] = Nc`` when ``psi`` is given.
        psi: (Nc, Nc) covariance, or None for identity (unit variance per entry).
        axis: coil axis (default -3: (..., Nc, Ny, Nx); use 0 for a (Nc, S) scan).
        dtype: complex dtype; default complex128 under x64, else complex64
            (or psi's complex dtype).

    Returns:
        Complex array of ``shape``.
    """
    shape = tuple(int(s) for s in shape)
    if dtype is None:
        dtype = jnp.asarray(psi).dtype if psi is not None and jnp.iscomplexobj(jnp.asarray(psi)) else jnp.complex128
    dtype = jax.dtypes.canonicalize_dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.complexfloating):
        raise ValueError(f"dtype must be complex, got {dtype}")
    if psi is not None:
        p = jnp.asarray(psi)
        if p.ndim != 2 or p.shape[0] != p.shape[1]:
            raise ValueError(f"noise covariance psi must be a square (Nc, Nc) matrix, got shape {p.shape}")
        if len(shape) == 0 or shape[axis] != p.shape[0]:
            raise ValueError(f"shape {shape} must have Nc={p.shape[0]} entries on the coil axis {axis}")
        if _is_concrete(p):
            validate_psi(np.asarray(p))
    return _complex_normal(key, psi, shape, axis % max(len(shape), 1), np.dtype(dtype))


@partial(jax.jit, static_argnums=(2, 3, 4))
def _complex_normal(key, psi, shape, axis, dtype):
    rdtype = jnp.finfo(dtype).dtype
    ka, kb = jax.random.split(key)
    z = (jax.random.normal(ka, shape, rdtype) + 1j * jax.random.normal(kb, shape, rdtype)) / np.sqrt(2.0)
    z = z.astype(dtype)
    if psi is None:
        return z
    p = jnp.asarray(psi)
    # Cholesky of a PSD matrix; a tiny diagonal load keeps singular (rank-deficient) psi usable.
    pc = 0.5 * (p + jnp.conj(p).T).astype(dtype)
    eps = jnp.finfo(rdtype).eps * jnp.maximum(jnp.max(jnp.abs(jnp.diag(pc))), jnp.finfo(rdtype).tiny)
    L = jnp.linalg.cholesky(pc + 10 * eps * jnp.eye(p.shape[0], dtype=dtype))
    z = jnp.moveaxis(z, axis, -1)
    n = jnp.einsum("ij,...j->...i", L, z)
    return jnp.moveaxis(n, -1, axis)


# ----------------------------------------------------------------------------- trust


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
        max_condition: largest condition number trusted (see :func:`whitening`).
        min_relative_rms: below this background RMS relative to the object's, the
            data are taken to be noise-free.

    Returns:
        :class:`NoiseEstimate`.

    Raises:
        ValueError: nothing to estimate from, or malformed arrays (wrong rank, NaN/Inf).
    """
    def conditioned(p, source, st, samples, why_ok):
        ev = np.linalg.eigvalsh(0.5 * (p + p.conj().T))
        cond = _condition(ev)
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
            return NoiseEstimate(np.eye(nc, dtype=complex), "identity", False, _condition(ev),
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
    cond = _condition(np.linalg.eigvalsh(0.5 * (p + p.conj().T)))
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
