"""Step 3 of the pipeline: measure a reconstruction and analyse its noise.

* :func:`image_metrics`: NMSE, PSNR, SSIM of the combined image against the fully sampled
  reference in the object support (and NMSE over the whole image), and the high-frequency
  gain

      hf_gain = Re <k_ref, k_rec>_B / <k_ref, k_ref>_B ,   hf_loss = 1 - hf_gain,

  the least-squares amplitude of the reference k-space inside the reconstructed k-space
  over the band ``B`` of *interpolated lines outside the ACS block* (all coils and readout
  points; the reference is the noise-free k-space when the data carry it). Noise and
  aliasing residuals are uncorrelated with the reference and average out of the numerator,
  so ``hf_gain`` measures the attenuation of high spatial frequencies only: 1 = no contrast
  loss, < 1 = blurring (the Tikhonov-like side of a low negative slope; Dawood 2024).
* :func:`gfactor`: the g-factor map, ``g = sqrt(var_recon) / (sqrt(p^H Psi p) sqrt(R))``
  (DESIGN.md), computed in the work basis (covariance ``Psi_w``, weights ``p_w``):
  ``"analytic"`` (:meth:`rakijax.methods.Method.analytic_gfactor`: exact linear response),
  ``"montecarlo"`` (pseudo-replicas of the actual, possibly nonlinear, reconstruction with
  noise of covariance ``mc_noise_scale**2 Psi`` on the acquired samples; Robson 2008) or
  ``"autodiff"`` (dense ``jax.jacfwd`` of the reconstruction; small grids only).
* :func:`snr_map`: the SNR of the combined image in SNR units (Kellman & McVeigh 2005),
  ``SNR(r) = |rho(r)| / sqrt(var_recon(r))`` with ``var_recon = R g^2 p^H Psi p``: exact when
  ``Psi`` is the per-sample noise covariance of the data (a noise scan, or given).
* :func:`image_space_error`: ``||x_image_space - x_kspace|| / ||x_kspace||`` of the coil
  images (Dawood 2024: the two agree to float precision with circular k-space edges).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from .. import metrics as mt
from ..config import ReconConfig
from ..fft import ifft2c
from ..gfactor import GFactorResult, combined_variance, gfactor_from_cov, pseudo_replica_variance, gfactor_from_variance, jacobian_cov, monte_carlo_variance
from ..methods import Fit, Method
from ..sampling import Sampling
from ..sanity import check_reconstruction
from .prepare import Prepared, check_autodiff, rss, support_mask
from .reconstruct import Reconstruction

__all__ = ["Evaluation", "evaluate", "image_metrics", "hf_gain", "gfactor", "snr_map", "image_space_error", "KNOWN_NOISE"]

log = logging.getLogger(__name__)


def hf_gain(prep: Prepared, rec: Reconstruction) -> float:
    """``Re <k_ref, k_rec>_B / <k_ref, k_ref>_B`` over the interpolated lines outside the ACS."""
    band = ~prep.sampling.mask(include_acs=True)
    ref = prep.kspace_ref[:, band, :]
    return float(jnp.real(jnp.vdot(ref, rec.kspace[:, band, :])) / jnp.sum(jnp.abs(ref) ** 2))


def image_metrics(prep: Prepared, rec: Reconstruction) -> dict:
    """NMSE/PSNR/SSIM in the support, whole-image NMSE and ``hf_gain``/``hf_loss``.

    Empty without a fully sampled reference (accelerated input).
    """
    if prep.reference is None:
        return {}
    ref, img, sup = prep.reference, rec.image, prep.support
    m = {
        "nmse": float(mt.nmse(ref, img, sup)),
        "psnr": float(mt.psnr(ref, img, sup)),
        "ssim": float(mt.ssim(ref, img, sup)),
        "nmse_full_image": float(mt.nmse(ref, img)),
    }
    if prep.sampling.R > 1 and prep.kspace_ref is not None:
        gain = hf_gain(prep, rec)
        m.update(hf_gain=gain, hf_loss=1.0 - gain)
    return m


def gfactor(prep: Prepared, method: Method, kernels, rec: Reconstruction, cfg: ReconConfig,
            kind: str | None = None) -> GFactorResult:
    """g-factor map of a reconstruction (``kind`` defaults to ``cfg.gfactor``).

    Raises:
        ValueError: an unknown kind, or one that cannot run on this grid.
    """
    kind = kind or cfg.gfactor
    s, u, p_w = prep.sampling, prep.reduced, rec.p_work
    psi_w = jnp.asarray(prep.psi_work, u.dtype)
    if kind == "analytic":
        s.require_periodic("the analytic g-factor", "use the Monte Carlo g-factor or crop ky")
        return method.analytic_gfactor(kernels, u, s, psi=psi_w, p=p_w, linearisation=cfg.linearisation)
    if kind == "autodiff":
        check_autodiff(rec.kspace.shape, s.R, cfg.autodiff_max_gib, jnp.real(u).dtype.itemsize)
        cov = jacobian_cov(lambda v: ifft2c(method.apply(kernels, v, s)), u, psi_w)
        return GFactorResult(gfactor_from_cov(cov, p_w, psi_w, s.R), cov, None, p_w, None)
    if kind == "montecarlo" and rec.reinserted_acs:
        var = _replicas_with_acs(prep, method, kernels, rec, cfg, psi_w)
        return GFactorResult(gfactor_from_variance(var, p_w, psi_w, s.R), None, None, p_w, None)
    if kind == "montecarlo":
        var = monte_carlo_variance(
            kernels, u, s, method.slope, psi=psi_w, p=p_w, key=jax.random.PRNGKey(cfg.seed + 1),
            replicas=cfg.replicas, noise_scale=cfg.mc_noise_scale, chunk=cfg.mc_chunk, progress=cfg.progress,
        )
        return GFactorResult(gfactor_from_variance(var, p_w, psi_w, s.R), None, None, p_w, None)
    raise ValueError(f"g-factor method must be analytic, montecarlo or autodiff, got {kind!r}")


def _replicas_with_acs(prep: Prepared, method: Method, kernels, rec: Reconstruction, cfg: ReconConfig, psi_w):
    """Pseudo-replica variance of the actual output when the acquired ACS lines are reinserted:
    noise on the regular lines goes through the network, noise on the reinserted ACS-only
    lines goes straight to the output (Robson 2008, on the output as written). The kernels and
    the reinserted rows are traced: the slices of a volume share one compiled program."""
    s = prep.sampling
    extra = np.zeros(s.ny, bool)
    extra[s.acs_lines] = True
    extra &= np.asarray(prep.acquired_lines, bool) & ~s.mask(include_acs=False)
    rows = jnp.asarray(np.flatnonzero(extra))
    v0 = jnp.concatenate([prep.reduced, prep.zero_filled[:, rows]], axis=1)
    output = _OutputWithAcs(method, s, int(prep.reduced.shape[1]))
    return pseudo_replica_variance(output, v0, psi=psi_w, p=rec.p_work, key=jax.random.PRNGKey(cfg.seed + 1),
                                   replicas=cfg.replicas, noise_scale=cfg.mc_noise_scale, chunk=cfg.mc_chunk,
                                   progress=cfg.progress, params=(tuple(jnp.asarray(w) for w in kernels), rows))


@dataclass(frozen=True)
class _OutputWithAcs:
    """Coil images of the output as written from ``v = [reduced grid, reinserted ACS rows]``
    (hashable: a static part of the replica program)."""

    method: Method
    sampling: Sampling
    num_reduced: int

    def __call__(self, params, v):
        kernels, rows = params
        k = self.method.apply(list(kernels), v[:, : self.num_reduced], self.sampling)
        return ifft2c(k.at[:, rows, :].set(v[:, self.num_reduced :]))


def snr_map(prep: Prepared, rec: Reconstruction, g) -> np.ndarray:
    """SNR map in SNR units: ``|rho| / (g sqrt(R) sqrt(p^H Psi p))`` (0 where undefined)."""
    var_full = np.asarray(combined_variance(jnp.asarray(prep.psi_work, rec.p_work.dtype), rec.p_work))
    sd = np.asarray(g) * np.sqrt(prep.sampling.R * np.maximum(var_full, 0))
    return np.where(sd > 0, np.abs(rec.image) / np.where(sd > 0, sd, 1), 0.0)


def image_space_error(prep: Prepared, method: Method, kernels, rec: Reconstruction):
    """``(rel_error, rss_image)`` of the image-space reconstruction, or ``(None, None)`` when
    the image-space form is undefined (``Ny % R != 0``)."""
    if not prep.sampling.periodic:
        log.info("image-space form skipped: Ny=%d is not a multiple of R=%d", prep.sampling.ny, prep.sampling.R)
        return None, None
    x_img = method.image_space(kernels, prep.reduced, prep.sampling)
    x_k = ifft2c(rec.kspace_work)
    rel = float(jnp.linalg.norm(x_img - x_k) / jnp.linalg.norm(x_k))
    return rel, rss(prep.to_scanner(x_img))


#: noise covariances known well enough for an SNR map in SNR units
KNOWN_NOISE = ("given", "noise scan")


@dataclass
class Evaluation:
    """What :func:`evaluate` measures: ``metrics`` (JSON-able), the g-factor and SNR maps,
    the RSS of the image-space reconstruction and the support the summaries use."""

    metrics: dict
    gfactor: np.ndarray | None
    snr: np.ndarray | None
    image_space_recon: np.ndarray | None
    support: np.ndarray


def evaluate(prep: Prepared, method: Method, fit: Fit, rec: Reconstruction, cfg: ReconConfig) -> Evaluation:
    """Measure a reconstruction.

    ``metrics`` holds ``mode``, ``method``, ``R``, ``acs``, ``R_eff``, ``reinsert_acs``;
    ``nmse``, ``psnr``, ``ssim``, ``nmse_full_image``, ``hf_gain``, ``hf_loss`` (retrospective
    only); the ``gfactor_mean/p95/max`` in the support with ``gfactor_method`` and
    ``linearisation``; ``image_space_rel_error``; the noise covariance's source; ``timings``.
    The support is the data's, else the reference's (:func:`support_mask`), else the
    reconstruction's (accelerated input).
    """
    s = prep.sampling
    support = prep.support if prep.support is not None else support_mask(rec.image)
    timings = {method.timing_key: fit.seconds, "apply_s": rec.apply_s}
    rel, img_recon = image_space_error(prep, method, fit.kernels, rec)
    g = None
    if cfg.gfactor != "none":
        log.info("g-factor (%s) ...", cfg.gfactor)
        t0 = time.perf_counter()
        g = np.asarray(gfactor(prep, method, fit.kernels, rec, cfg).g)
        timings["gfactor_s"] = time.perf_counter() - t0
        log.info("g-factor (%s) in %.2f s", cfg.gfactor, timings["gfactor_s"])
    m: dict = {"mode": prep.mode, "method": method.name, "R": s.R, "acs": s.acs, "R_eff": float(s.R_eff),
               "reinsert_acs": bool(rec.reinserted_acs)}
    m.update(image_metrics(prep, rec))
    m.update({
        "gfactor_method": cfg.gfactor,
        "linearisation": cfg.linearisation if (method.name == "raki" and cfg.gfactor == "analytic") else None,
        "image_space_rel_error": rel,
        "noise_covariance": prep.psi_source,
        "prewhitened": bool(cfg.prewhiten),
        "support_pixels": int(support.sum()),
    })
    m.update(method.describe())
    if fit.losses is not None and len(fit.losses):
        m["final_loss"] = float(fit.losses[-1])
    snr = None
    if g is not None:
        m.update({k: float(v) for k, v in mt.gfactor_summary(g, support).items()})
        if cfg.gfactor == "montecarlo":
            m.update(replicas=cfg.replicas, mc_noise_scale=float(cfg.mc_noise_scale))
        if prep.psi_source in KNOWN_NOISE and prep.noise.trusted:
            snr = snr_map(prep, rec, g)
            m["snr_mean"] = float(np.mean(snr[support]))
        if rec.reinserted_acs:
            if cfg.gfactor != "montecarlo":
                m["gfactor_note"] = ("the analytic g-factor and SNR maps describe the interpolation (the network on "
                                     "every missing line); the reinserted ACS lines carry measured noise instead, "
                                     "which lowers the true g (most where the ACS block is a large part of k-space); "
                                     "--gfactor montecarlo measures the output as written")
        if not prep.noise.trusted:
            m["gfactor_warning"] = f"the g-factor map assumes white noise (psi untrusted): {prep.noise.reason}"
    warnings = list(prep.warnings)
    if s.R > 1:
        # max_outside off: at realistic SNR the background of a sound reconstruction holds its
        # amplified noise (R g^2 of the acquired noise), 1.0-1.5x the zero-filled input's outside
        # energy fraction on the 64-128 px phantom at R=4 (NMSE 3.5e-3): a false alarm
        warnings += check_reconstruction(prep.zero_filled, rec.kspace_work, s, acs_block=prep.acs_block,
                                         max_outside=np.inf, name=f"the {method.name.upper()} reconstruction")
    for w in warnings[len(prep.warnings):]:
        log.warning(w)
    m["noise"] = prep.noise.to_dict()
    m["warnings"] = warnings
    m["timings"] = timings
    return Evaluation(m, g, snr, img_recon, support)
