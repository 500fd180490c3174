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
import time
from dataclasses import dataclass, field

import numpy as np

from .. import metrics as mt
from ..config import ReconConfig
from ..data.container import KSpaceData
from ..gfactor import GFactorResult
from ..methods import Fit, Method, method_for
from ..sampling import Sampling
from .evaluate import gfactor, hf_gain, image_metrics, image_space_error
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


def evaluate(prep: Prepared, method: Method, fit: Fit, rec: Reconstruction, cfg: ReconConfig) -> tuple[dict, np.ndarray | None, np.ndarray | None]:
    """Metrics of a reconstruction: ``(metrics, g map or None, image-space RSS or None)``.

    ``metrics`` holds ``mode``, ``method``, ``R``, ``acs``, ``R_eff``; ``nmse``, ``psnr``,
    ``ssim``, ``nmse_full_image``, ``hf_gain``, ``hf_loss`` (retrospective only); the
    ``gfactor_mean/p95/max`` in the support with ``gfactor_method`` and ``linearisation``;
    ``image_space_rel_error``; the noise covariance's source; ``timings`` (seconds).
    """
    s = prep.sampling
    timings = {method.timing_key: fit.seconds, "apply_s": rec.apply_s}
    rel, img_recon = image_space_error(prep, method, fit.kernels, rec)
    g = None
    if cfg.gfactor != "none":
        log.info("g-factor (%s) ...", cfg.gfactor)
        t0 = time.perf_counter()
        g = np.asarray(gfactor(prep, method, fit.kernels, rec, cfg).g)
        timings["gfactor_s"] = time.perf_counter() - t0
        log.info("g-factor (%s) in %.2f s", cfg.gfactor, timings["gfactor_s"])
    m: dict = {"mode": prep.mode, "method": method.name, "R": s.R, "acs": s.acs, "R_eff": float(s.R_eff)}
    m.update(image_metrics(prep, rec))
    m.update({
        "gfactor_method": cfg.gfactor,
        "linearisation": cfg.linearisation if (method.name == "raki" and cfg.gfactor == "analytic") else None,
        "image_space_rel_error": rel,
        "noise_covariance": prep.psi_source,
        "prewhitened": bool(cfg.prewhiten),
        "support_pixels": int(prep.support.sum()),
    })
    m.update(method.describe())
    if fit.losses is not None and len(fit.losses):
        m["final_loss"] = float(fit.losses[-1])
    if g is not None:
        m.update({k: float(v) for k, v in mt.gfactor_summary(g, prep.support).items()})
        if cfg.gfactor == "montecarlo":
            m.update(replicas=cfg.replicas, mc_noise_scale=float(cfg.mc_noise_scale))
    m["timings"] = timings
    return m, g, img_recon


def reconstruct(data: KSpaceData, cfg: ReconConfig, *, method: Method | None = None) -> ReconResult:
    """Reconstruct one slice and analyse it: :func:`prepare`, :func:`calibrate`,
    :func:`apply`, :func:`evaluate`.

    Args:
        data: :class:`~rakijax.data.KSpaceData` with fully sampled ``kspace`` (Nc, Ny, Nx).
        cfg: the :class:`~rakijax.config.ReconConfig`.
        method: the method object; default :func:`rakijax.methods.method_for` ``(cfg)``.

    Raises:
        ValueError: bad data (rank, NaN/Inf), sampling (R, ACS), or a g-factor method that
            cannot run on this grid.
    """
    if not isinstance(cfg, ReconConfig):
        raise ValueError(f"cfg must be a ReconConfig, got {type(cfg).__name__}")
    method = method or method_for(cfg)
    prep = prepare(data, cfg)
    s = prep.sampling
    nc, ny, nx = prep.zero_filled.shape
    log.info("%s: calibrating on %d ACS lines (R=%d, %d coils, %dx%d)", method.name.upper(), s.acs, s.R, nc, ny, nx)
    fit = calibrate(prep, method, seed=cfg.seed, progress=cfg.progress)
    rec = apply(prep, method, fit.kernels)
    log.info("%s: applied in %.2f s", method.name.upper(), rec.apply_s)
    metrics, g, img_recon = evaluate(prep, method, fit, rec, cfg)
    return ReconResult(
        reference=None if prep.reference is None else np.asarray(prep.reference),
        recon=rec.image,
        recon_kspace=np.asarray(rec.kspace),
        coil_images=np.asarray(rec.coil_images),
        gfactor=g,
        mask=s.mask(include_acs=True),
        support=prep.support,
        image_space_recon=None if img_recon is None else np.asarray(img_recon),
        metrics=metrics,
        timings=metrics["timings"],
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
