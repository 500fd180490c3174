"""Step 1 of the pipeline: from a multi-coil slice to the work basis and the reduced grid.

:func:`prepare` resolves everything a reconstruction needs before any calibration:

1. **Sampling** (:func:`rakijax.data.acquired`): retrospective mode (fully sampled input;
   ``cfg.R``/``cfg.acs`` define the pattern) or accelerated mode (the pattern, R, offset and
   ACS block are detected from the data and checked against ``cfg.R``/``cfg.acs``).
2. **Noise covariance** ``Psi`` (:func:`rakijax.noise_trust.estimate_noise`): ``data.psi`` when
   known, else from the noise scan ``data.noise``, else from the image background, but only
   from samples shown to be noise (Gaussian, white, stationary, above round-off); otherwise
   the identity, and the estimate is marked untrusted with a one-line reason (noise-free or
   denoised data). Its source, trust and condition number are recorded; the input's
   physics is checked first (:func:`rakijax.sanity.check_kspace`).
3. **Work basis** (``cfg.prewhiten``, default on): with the whitening matrix ``W``
   (``W Psi W^H = I``) and ``L = W^{-1}`` the k-space is whitened, ``k_w = W k`` (noise
   covariance ``I``), calibrated and reconstructed there, and mapped back, ``k = L k_w``.
   The whitening is guarded (:func:`rakijax.noise.whitening`: eigenvalues below
   ``lambda_max / 1e3`` are floored, so no near-null direction is amplified by more than
   ~32x), and ``Psi_w = W Psi W^H`` is used as it is (``I`` unless floored).
   The map back is linear, so the noise analysis stays exact: the combined image
   ``rho = sum_c conj(p_c) x_c = sum_c conj((L^H p)_c) x_w,c``, so every g-factor is computed
   in the work basis with covariance ``Psi_w = I`` and weights ``p_w = L^H p``. Without
   prewhitening ``W = L = I`` and ``Psi_w = Psi``.
4. **Reference and support**: the RSS of the fully sampled input's coil images (retrospective
   mode only) and the object support for metrics (``data.support`` or :func:`support_mask`).

References: Pruessmann 2001 / Kellman 2005 (noise prewhitening).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from ..noise import whitening
from ..noise_trust import NoiseEstimate, estimate_noise
from ..sanity import check_kspace, check_noise
from ..config import ReconConfig
from ..data.acquired import acquired
from ..data.container import KSpaceData
from ..fft import ifft2c
from ..gfactor.reference import dense_jacobian_bytes
from ..sampling import Sampling, make_sampling
from ..validate import check_finite

__all__ = ["Prepared", "prepare", "check_feasible", "support_mask", "rss", "autodiff_bytes", "check_autodiff", "ky_crop"]

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A slice ready for calibration (arrays in the work basis unless said otherwise).

    Attributes:
        sampling: the :class:`~rakijax.sampling.Sampling`.
        mode: ``"retrospective"`` (fully sampled input undersampled here) or ``"accelerated"``.
        zero_filled: (Nc, Ny, Nx) acquired lines (regular and ACS), zeros elsewhere.
        acquired_lines: (Ny,) bool, the lines present in ``zero_filled``.
        reduced: (Nc, Y, Nx) the regularly acquired lines (the network input).
        acs_block: (Nc, acs, Nx) the ACS lines.
        W, L: (Nc, Nc) whitening matrix and its inverse (identity without prewhitening).
        psi: (Nc, Nc) noise covariance in the scanner's coil basis; ``psi_source`` where from.
        psi_work: (Nc, Nc) noise covariance in the work basis (``I`` when prewhitened).
        reference: (Ny, Nx) RSS of the fully sampled input (scanner basis), or ``None``.
        kspace_ref: (Nc, Ny, Nx) scanner-basis k-space for ``hf_gain`` (the noise-free
            k-space when the data carry it, else the fully sampled input), or ``None``.
        support: (Ny, Nx) bool, where metrics and g summaries are taken (``None`` for
            accelerated input without one: then taken from the reconstruction).
        noise: the :class:`~rakijax.noise_trust.NoiseEstimate` (source, trust, condition, reason).
        warnings: one-line warnings about the input and its noise (logged, and recorded in
            ``metrics.json``).
    """

    sampling: Sampling
    mode: str
    zero_filled: jax.Array
    reduced: jax.Array
    acs_block: jax.Array
    acquired_lines: np.ndarray
    W: np.ndarray
    L: np.ndarray
    psi: np.ndarray
    psi_source: str
    psi_work: np.ndarray
    reference: np.ndarray | None
    kspace_ref: jax.Array | None
    support: np.ndarray | None
    noise: NoiseEstimate
    warnings: list[str]

    def to_scanner(self, x):
        """Map coil-axis (-3) data from the work basis to the scanner's, ``L x``."""
        return mix(self.L, x)


def rss(x, axis: int = -3) -> np.ndarray:
    """Root-sum-of-squares over the coil axis."""
    return np.sqrt(np.sum(np.abs(np.asarray(x)) ** 2, axis=axis))


def mix(M, x):
    """``M`` (Nc, Nc) applied along the coil axis (-3) of ``x`` (..., Nc, Ny, Nx)."""
    x = jnp.asarray(x)
    return jnp.einsum("cd,...dyx->...cyx", jnp.asarray(M, x.dtype), x)


def support_mask(reference, frac: float = 0.1) -> np.ndarray:
    """Object support from a magnitude image (used when the data carries none).

    ``reference > frac * percentile_99(reference)``, then a binary closing
    (3x3, 2 iterations) and hole filling, so that dark structures inside the
    object (CSF, vessels) stay in the support and the noise-only background is out.

    Raises:
        ValueError: the image is empty.
    """
    ref = np.asarray(reference, dtype=float)
    m = ref > frac * np.percentile(ref, 99)
    m = ndimage.binary_closing(m, structure=np.ones((3, 3)), iterations=2)
    m = ndimage.binary_fill_holes(m)
    if not m.any():
        raise ValueError("the reference image is empty: no object support found")
    return m


def autodiff_bytes(nc: int, ny: int, nx: int, R: int, itemsize: int = 8) -> int:
    """Peak memory estimate (bytes) of ``gfactor="autodiff"``.

    The dense real Jacobian ``d[Re x, Im x] / d[Re n, Im n]`` has
    ``(2 Nc Ny Nx) x (2 Nc Y Nx)`` entries (``Y = ceil(Ny/R)`` acquired lines), and the
    per-pixel contraction holds a complex copy of it: peak about twice the Jacobian.
    """
    Y = len(range(0, ny, R))
    return 2 * dense_jacobian_bytes((nc, Y, nx), (nc, ny, nx), itemsize)


def ky_crop(ny: int, R: int) -> tuple[int, int]:
    """Rows ``lo:hi`` of the largest ky window with ``R | (hi - lo)`` that keeps line ``ny//2`` central.

    The exact (analytic) g-factor needs ``Ny % R == 0``; for e.g. ``Ny = 256, R = 5`` this
    drops the outermost k-space line (``lo = 1, hi = 256``): the highest spatial frequency, a
    negligible part of the signal energy, and the centre line stays at ``(hi - lo)//2``.
    """
    e = ny % R
    lo = ny // 2 - (ny - e) // 2
    return lo, ny - (e - lo)


def check_feasible(shape, cfg: ReconConfig, itemsize: int | None = None, *, sampling: Sampling | None = None,
                   calibrate: bool = True) -> Sampling:
    """Cheap up-front checks of a reconstruction of k-space ``shape`` (Nc, Ny, Nx).

    Validates the sampling (``sampling``, else ``cfg.R``/``cfg.acs``), that ``R > 1`` has
    ACS lines, that an analytic g-factor is defined (``Ny % R == 0``) and that an autodiff
    g-factor fits in ``cfg.autodiff_max_gib``; :func:`prepare` calls it before any heavy work.

    Returns:
        The :class:`~rakijax.sampling.Sampling`.

    Raises:
        ValueError: naming the problem and the sizes.
    """
    if len(shape) != 3:
        raise ValueError(f"k-space must be (coil, ky, kx), got shape {tuple(shape)}")
    nc, ny, nx = (int(n) for n in shape)
    if sampling is None:
        if cfg.R is None or cfg.acs is None:
            raise ValueError("a fully sampled input needs the acceleration R and the number of ACS lines")
        sampling = make_sampling(ny, cfg.R, cfg.acs, cfg.offset)
    if calibrate and sampling.R > 1 and sampling.acs == 0:
        raise ValueError(f"R={sampling.R} needs ACS lines for calibration, got acs=0")
    if cfg.gfactor == "analytic":
        sampling.require_periodic("the analytic g-factor", "use the Monte Carlo g-factor or crop ky")
    if cfg.gfactor == "autodiff":
        check_autodiff((nc, ny, nx), sampling.R, cfg.autodiff_max_gib,
                       itemsize or (8 if jax.config.jax_enable_x64 else 4))
    return sampling


def check_autodiff(shape, R: int, max_gib: float, itemsize: int) -> None:
    """Refuse an autodiff g-factor of coil k-space ``shape`` (Nc, Ny, Nx) above ``max_gib``.

    Raises:
        ValueError: naming the size, the limit and the alternatives.
    """
    nc, ny, nx = shape
    need = autodiff_bytes(nc, ny, nx, R, itemsize=itemsize)
    if need > max_gib * 2**30:
        raise ValueError(
            f"autodiff refused: the dense Jacobian of a {nc}-coil {ny}x{nx} reconstruction at R={R} needs about "
            f"{need / 2**30:.1f} GiB (limit {max_gib:g} GiB); it grows as (Nc*Ny*Nx)^2/R: use the analytic "
            "(exact, banded) or the Monte Carlo g-factor"
        )


def _work_basis(est: NoiseEstimate, prewhiten: bool, warnings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(W, L)``: guarded whitening of the estimate (``W Psi W^H = I`` unless floored), or identity."""
    nc = est.psi.shape[0]
    if not prewhiten:
        return np.eye(nc, dtype=np.complex128), np.eye(nc, dtype=np.complex128)
    wh = whitening(est.psi)
    if wh.message():
        warnings.append(wh.message())
    return np.asarray(wh.W, np.complex128), np.asarray(wh.W_inv, np.complex128)


def prepare(data: KSpaceData, cfg: ReconConfig, *, crop_ky: bool = False, whitener=None,
            calibrate: bool = True) -> Prepared:
    """Resolve sampling, noise, work basis, reduced grid, reference and support of a slice.

    Args:
        data: :class:`~rakijax.data.KSpaceData`: fully sampled (retrospective mode, undersampled
            here by ``cfg.R``/``cfg.acs``) or accelerated (``data.sampled``; the pattern is
            detected and checked against ``cfg.R``/``cfg.acs`` when they are given).
        cfg: the :class:`~rakijax.config.ReconConfig`.
        crop_ky: crop ky to the largest centred window that ``R`` divides (:func:`ky_crop`)
            when it does not (sweeps use it so the analytic g-factor is defined).
        whitener: ``(W, L)`` to use instead of the one derived from this slice's noise
            (re-applying saved kernels, which act on their own scan's work basis).
        calibrate: False when no calibration follows (saved kernels): accelerated data
            without ACS lines are then accepted.

    Raises:
        ValueError: bad data (rank, NaN/Inf), sampling (R, ACS, pattern), psi shape, or a
            g-factor method that cannot run on this grid.
    """
    if not isinstance(data, KSpaceData):
        raise ValueError(f"data must be a KSpaceData, got {type(data).__name__}")
    check_finite(np.asarray(data.kspace))
    nc, ny, nx = data.kspace.shape
    if crop_ky and not data.accelerated and cfg.R and ny % cfg.R:
        lo, hi = ky_crop(ny, cfg.R)
        log.info("cropping ky %d -> %d lines (rows %d:%d) so that R=%d divides Ny", ny, hi - lo, lo, hi, cfg.R)
        crop = lambda a: None if a is None else np.asarray(a)[..., lo:hi, :]  # noqa: E731
        data = data.with_(kspace=crop(data.kspace), clean=crop(data.clean), maps=crop(data.maps), support=None)
        ny = hi - lo
    acq = acquired(data, R=cfg.R, acs=cfg.acs, offset=cfg.offset, require_acs=calibrate)
    sampling = check_feasible(data.kspace.shape, cfg, sampling=acq.sampling, calibrate=calibrate)
    dtype = jnp.complex128 if jax.config.jax_enable_x64 else jnp.complex64

    warnings = check_kspace(data.kspace, sampling.R, name=str(data.meta.get("source", "k-space")))
    from_scan = data.noise is not None and data.meta.get("psi_source") == "noise scan"
    est = estimate_noise(data.kspace, data.noise, None if from_scan else data.psi)
    warnings += check_noise(est)
    psi = np.asarray(est.psi, np.complex128)
    if psi.shape != (nc, nc):
        raise ValueError(f"noise covariance must be ({nc}, {nc}) for {nc} coils, got {psi.shape}")
    W, L = whitener if whitener is not None else _work_basis(est, cfg.prewhiten, warnings)
    psi_work = W @ psi @ W.conj().T  # = I up to round-off when this slice's psi was whitened unfloored
    for w in warnings:
        log.warning(w)

    to_work = lambda a: mix(W, jnp.asarray(a, dtype))  # noqa: E731
    reference = kspace_ref = None
    if acq.reference is not None:
        kj = jnp.asarray(acq.reference, dtype)
        reference = rss(ifft2c(kj))
        kspace_ref = jnp.asarray(data.clean, dtype) if data.clean is not None else kj
    support = data.support
    if support is None and reference is not None:
        support = support_mask(reference)
    if support is not None and np.shape(support) != (ny, nx):
        raise ValueError(f"support mask must be ({ny}, {nx}), got {np.shape(support)}")
    return Prepared(sampling, acq.mode, to_work(acq.kspace), to_work(acq.reduced), to_work(acq.acs_block),
                    acq.acquired_lines, W, L, psi, est.source, psi_work, reference, kspace_ref,
                    None if support is None else np.asarray(support, bool), est, warnings)
