"""The one reconstruction path: prepare -> reconstruct -> evaluate.

Every door into rakijax (the ``rakijax`` command, sweeps, experiments, notebooks) runs
this path, so a metric added here reaches all of them:

1. :func:`prepare` (:mod:`.prepare`): sampling, noise covariance, prewhitened work basis,
   reduced grid, reference and support;
2. :func:`calibrate` and :func:`apply` (:mod:`.reconstruct`): a method object
   (:mod:`rakijax.methods`: GRAPPA or RAKI) fits its kernels on the ACS and reconstructs;
3. :func:`evaluate` (:mod:`.evaluate`): image metrics against the reference, the
   image-space form's agreement with k-space, and the g-factor map.

:func:`reconstruct` chains the three for one slice. A sweep runs the same steps, only
its calibration is a batched (``vmap``) training of many slopes at once
(:mod:`rakijax.sweep`).

References: Griswold 2002 (GRAPPA); Akcakaya 2019 (RAKI); Breuer 2009 (GRAPPA g-factor);
Robson 2008 (pseudo-replicas); Dawood 2024 (image-space formalism).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..config import ReconConfig
from ..data.container import KSpaceData
from ..gfactor import GFactorResult
from ..methods import Fit, Method, method_for
from ..sampling import Sampling
from .evaluate import Evaluation, evaluate, gfactor, hf_gain, image_metrics, snr_map
from .prepare import Prepared, autodiff_bytes, check_feasible, ky_crop, prepare, rss, support_mask
from .reconstruct import Reconstruction, apply, calibrate

__all__ = [
    "ReconConfig",
    "ReconResult",
    "Prepared",
    "Reconstruction",
    "prepare",
    "calibrate",
    "apply",
    "evaluate",
    "Evaluation",
    "snr_map",
    "reconstruct",
    "gfactor_map",
    "image_metrics",
    "hf_gain",
    "check_feasible",
    "support_mask",
    "rss",
    "ky_crop",
    "autodiff_bytes",
]

log = logging.getLogger(__name__)


@dataclass
class ReconResult:
    """What :func:`reconstruct` returns (numpy arrays in the scanner's coil basis).

    Attributes:
        reference: (Ny, Nx) RSS of the fully sampled input (``None`` for accelerated input).
        recon: (Ny, Nx) coil-combined reconstruction ``rho = sum conj(p) x`` (= RSS).
        recon_kspace: (Nc, Ny, Nx) reconstructed coil k-space.
        coil_images: (Nc, Ny, Nx) reconstructed coil images.
        gfactor: (Ny, Nx) g-factor map, or ``None``.
        snr: (Ny, Nx) SNR map in SNR units when the noise is known (noise scan or given), or ``None``.
        mask: (Ny,) bool, the sampled ky lines (regular lines and ACS).
        support: (Ny, Nx) bool, where metrics and g summaries are taken.
        image_space_recon: (Ny, Nx) RSS of the image-space reconstruction (or ``None``).
        metrics: see :func:`evaluate`.
        timings: seconds per step.
        kernels: the kernels (work basis), list of (cout, cin, kh, kw) arrays.
        losses: RAKI training loss curve (or ``None``).
        sampling: the :class:`~rakijax.sampling.Sampling`.
        config: the :class:`~rakijax.config.ReconConfig`.
        psi: (Nc, Nc) noise covariance (scanner basis).
        prepared, method, reconstruction: the pipeline's intermediate objects (for
            further noise analysis, :func:`gfactor_map`).
    """

    reference: np.ndarray | None
    recon: np.ndarray
    recon_kspace: np.ndarray
    coil_images: np.ndarray
    gfactor: np.ndarray | None
    snr: np.ndarray | None
    mask: np.ndarray
    support: np.ndarray
    image_space_recon: np.ndarray | None
    metrics: dict
    timings: dict
    kernels: list
    losses: np.ndarray | None
    sampling: Sampling
    config: ReconConfig
    psi: np.ndarray
    prepared: Prepared = field(repr=False)
    method: Method = field(repr=False)
    reconstruction: Reconstruction = field(repr=False)


def reconstruct(data: KSpaceData, cfg: ReconConfig, *, method: Method | None = None, fit: Fit | None = None,
                whitener=None) -> ReconResult:
    """Reconstruct one slice and analyse it: :func:`prepare`, :func:`calibrate`,
    :func:`apply`, :func:`evaluate`.

    Args:
        data: :class:`~rakijax.data.KSpaceData`, fully sampled (retrospective) or accelerated.
        cfg: the :class:`~rakijax.config.ReconConfig`.
        method: the method object; default :func:`rakijax.methods.method_for` ``(cfg)``.
        fit: kernels fitted before (``rakijax apply``): no calibration, the same path after it.
        whitener: ``(W, L)`` of the scan the ``fit`` came from (its kernels act on that
            work basis); default: this slice's own prewhitening.

    Raises:
        ValueError: bad data (rank, NaN/Inf), sampling (R, ACS), or a g-factor method that
            cannot run on this grid.
    """
    if not isinstance(cfg, ReconConfig):
        raise ValueError(f"cfg must be a ReconConfig, got {type(cfg).__name__}")
    method = method or method_for(cfg)
    prep = prepare(data, cfg, whitener=whitener, calibrate=fit is None)
    s = prep.sampling
    nc, ny, nx = prep.zero_filled.shape
    if fit is None:
        log.info("%s: calibrating on %d ACS lines (R=%d, %d coils, %dx%d)", method.name.upper(), s.acs, s.R, nc, ny, nx)
        fit = calibrate(prep, method, seed=cfg.seed, progress=cfg.progress)
    reinsert = cfg.reinsert_acs if cfg.reinsert_acs is not None else prep.mode == "accelerated"
    rec = apply(prep, method, fit.kernels, reinsert_acs=reinsert)
    log.info("%s: applied in %.2f s", method.name.upper(), rec.apply_s)
    ev = evaluate(prep, method, fit, rec, cfg)
    return ReconResult(
        reference=None if prep.reference is None else np.asarray(prep.reference),
        recon=rec.image,
        recon_kspace=np.asarray(rec.kspace),
        coil_images=np.asarray(rec.coil_images),
        gfactor=ev.gfactor,
        snr=ev.snr,
        mask=s.mask(include_acs=True),
        support=ev.support,
        image_space_recon=None if ev.image_space_recon is None else np.asarray(ev.image_space_recon),
        metrics=ev.metrics,
        timings=ev.metrics["timings"],
        kernels=[np.asarray(w) for w in fit.kernels],
        losses=fit.losses,
        sampling=s,
        config=cfg,
        psi=prep.psi,
        prepared=prep,
        method=method,
        reconstruction=rec,
    )


def gfactor_map(result: ReconResult, kind: str | None = None, **overrides) -> GFactorResult:
    """Another g-factor map of a finished reconstruction (e.g. Monte Carlo beside analytic).

    Args:
        result: a :class:`ReconResult` from :func:`reconstruct`.
        kind: ``"analytic"``, ``"montecarlo"`` or ``"autodiff"``; default ``config.gfactor``.
        **overrides: :class:`~rakijax.config.ReconConfig` fields to change (``replicas``,
            ``mc_noise_scale``, ``linearisation``, ``seed``, ...).

    Returns:
        The :class:`~rakijax.gfactor.GFactorResult` (``.g`` is the (Ny, Nx) map).
    """
    cfg = result.config.replace(**overrides)
    kind = kind or cfg.gfactor
    if kind == "none":
        raise ValueError("g-factor method must be analytic, montecarlo or autodiff, got 'none'")
    return gfactor(result.prepared, result.method, result.kernels, result.reconstruction, cfg, kind)
