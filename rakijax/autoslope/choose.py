"""Choosing the slope per scan: :func:`choose_slope` and its figure (see :mod:`rakijax.autoslope`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import kspace_net
from ..config import ReconConfig
from ..data.container import KSpaceData
from ..methods import Fit, Raki
from ..pipeline import Prepared, apply, prepare
from ..raki.train import validate_acs
from .terms import heldout_error, line_energies, noise_terms
from .training import cv_trainer, fold_masks

__all__ = ["CRITERIA", "DEFAULT_SLOPES", "AutoSlopeResult", "choose_slope", "estimate_figure"]


#: what :func:`choose_slope` minimises
CRITERIA = ("coil", "image")

#: the slope grid of the paper's sweep
DEFAULT_SLOPES = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


@dataclass
class AutoSlopeResult:
    """What :func:`choose_slope` returns (per slope arrays have the slope grid's length ``S``).

    Attributes:
        slope: the chosen slope (smallest ``estimate``); ``index`` its position in ``slopes``.
        criterion: ``"coil"`` or ``"image"``, which estimate was minimised.
        slopes: (S,) the grid.
        estimate: (S,) the criterion's estimate (mean over folds) of the NMSE vs the noise-free
            data over the whole FOV; ``spread`` (S,) its standard deviation over the folds;
            ``estimate_folds`` (S, K).
        interp: (S,) the interpolation part ``(rho_in S_A + rho_k S_O) / S`` (mean over folds);
            ``noise`` (S,) the criterion's noise part (``tr s(0) / S`` or ``sum_r V(r) / (2 S)``).
        image_estimate: (S,) the RSS image's estimate ``(rho_in S_A + rho_k S_O + sum_r V / 2) / S``;
            ``coil_estimate`` (S,) the coil images' ``(rho_in S_A + rho_k S_O + tr s(0)) / S``.
        rel_interp: (S, K) relative interpolation error ``rho_k`` at the held-out ACS targets;
            ``rel_insample`` (S,) the full fit's on its own ACS rows (``rho_in``).
        cv_error: (S, K) held-out error per point minus the target noise (``eps_k``);
            ``nu`` (S,) the propagated noise per predicted point from the g-map.
        g_mean: (S,) mean g in ``support`` (or over the image); ``g``: (S, Ny, Nx) the maps.
        kernels: per slope, the full-ACS fit's kernels (work basis); ``losses`` (S, steps).
        folds: K; ``seconds``: wall time (training, g-maps).
        prepared: the :class:`~rakijax.pipeline.Prepared` slice (its work basis).
    """

    slope: float
    index: int
    criterion: str
    slopes: np.ndarray
    estimate: np.ndarray
    spread: np.ndarray
    estimate_folds: np.ndarray
    interp: np.ndarray
    noise: np.ndarray
    image_estimate: np.ndarray
    coil_estimate: np.ndarray
    rel_interp: np.ndarray
    rel_insample: np.ndarray
    cv_error: np.ndarray
    nu: np.ndarray
    g_mean: np.ndarray
    g: np.ndarray
    kernels: list
    losses: np.ndarray
    folds: int
    seconds: dict
    prepared: Prepared = field(repr=False)

    def fit(self, i: int | None = None) -> Fit:
        """The full-ACS fit of slope ``i`` (default: the chosen one) as a
        :class:`~rakijax.methods.Fit`, for ``pipeline.reconstruct(..., fit=...)`` (no refit)."""
        i = self.index if i is None else int(i)
        return Fit([jnp.asarray(w) for w in self.kernels[i]], self.losses[i], self.seconds.get("train_s", 0.0))

    def rows(self) -> list[dict]:
        """One table row per slope."""
        return [
            {"slope": float(a), "estimate": float(e), "spread": float(s), "interp": float(b), "noise": float(n),
             "image_estimate": float(m), "coil_estimate": float(c), "g_mean": float(g), "chosen": i == self.index}
            for i, (a, e, s, b, n, m, c, g) in enumerate(zip(self.slopes, self.estimate, self.spread, self.interp,
                                                             self.noise, self.image_estimate, self.coil_estimate,
                                                             self.g_mean))
        ]

    def to_dict(self) -> dict:
        """JSON-friendly summary (for ``metrics.json``)."""
        return {"slope": float(self.slope), "criterion": self.criterion, "folds": int(self.folds), "curve": self.rows(),
                "seconds": {k: float(v) for k, v in self.seconds.items()}}


def choose_slope(data: KSpaceData | Prepared, cfg: ReconConfig, slopes: Sequence[float] = DEFAULT_SLOPES,
                 folds: int = 4, *, fold_kind: str = "interleaved", criterion: str = "coil",
                 reinsert_acs: bool | None = None, support=None) -> AutoSlopeResult:
    """Choose the RAKI slope of one slice by the reference-free error estimate (module docstring).

    Trains, in one ``vmap``, ``len(slopes) * (folds + 1)`` networks (``cfg.raki``, seed
    ``cfg.seed``, one initialisation for all): per slope ``folds`` cross-validation fits and
    the full-ACS fit; computes each full fit's exact g-map (``cfg.linearisation``) and the
    estimate; picks the slope with the smallest mean estimate. The reference image, if any,
    is never read.

    Args:
        data: a slice (:class:`~rakijax.data.KSpaceData`; prepared with ``crop_ky`` so that
            ``R`` divides ``Ny``) or a :class:`~rakijax.pipeline.Prepared` one.
        cfg: the configuration (``cfg.slope`` is ignored).
        slopes: the slope grid (values in [0, 1]).
        folds: ``K`` folds of ACS training rows (>= 2).
        fold_kind: ``"contiguous"`` or ``"interleaved"`` (:func:`fold_masks`).
        criterion: ``"coil"`` (default: the coil-image error, ``coil_estimate``) or ``"image"``
            (the RSS image's, ``image_estimate``; adds assumption A5). On the phantom study
            (``benchmarks/results/auto_slope_cpu.md``: 120x120, R 4-6, 24/40 ACS) ``"coil"``
            picked a slope within 10% of the oracle's NMSE in 6 of 6 cases, ``"image"`` in 5 of 6
            (5 and 4 of 6 in an earlier run with a last-iterate trainer).
        reinsert_acs: whether the reconstruction will put the ACS lines back (they are then
            not predicted); default as the pipeline (on for accelerated input).
        support: (Ny, Nx) bool where ``g_mean`` is taken (default the prepared support, else all).

    Returns:
        :class:`AutoSlopeResult`.

    Raises:
        ValueError: R < 2, ``Ny % R != 0`` (the exact g-map needs it), too few ACS rows for
            ``folds``, a non-Adam optimiser, slopes outside [0, 1].
    """
    slopes_a = np.asarray([float(a) for a in slopes])
    if slopes_a.size < 1 or np.any((slopes_a < 0) | (slopes_a > 1)):
        raise ValueError(f"slopes must be values in [0, 1], got {list(slopes)}")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    prep = data if isinstance(data, Prepared) else prepare(data, cfg, crop_ky=True)
    s, acs = prep.sampling, prep.acs_block
    if s.R < 2:
        raise ValueError(f"slope selection needs R >= 2, got R={s.R}")
    s.require_periodic("automatic slope selection (exact g-map)", "crop ky (prepare(..., crop_ky=True))")
    validate_acs(acs, s, cfg.raki)
    nc, ny, nx = prep.zero_filled.shape
    shapes = cfg.raki.kernel_shapes(nc, s.R)
    rows, _ = kspace_net.acs_pairs(acs, shapes, s.R)
    W = fold_masks(len(rows), folds, fold_kind)  # (K+1, rows)
    S, F = slopes_a.size, W.shape[0]
    real = jnp.real(acs).dtype
    t0 = time.perf_counter()
    kern_b, loss_b = cv_trainer(s, cfg.raki)(
        acs, jnp.asarray(np.repeat(slopes_a, F), real), jnp.asarray(np.tile(W, (S, 1)), real),
        jnp.stack([jax.random.PRNGKey(cfg.seed)] * (S * F)), jnp.zeros(S * F, real))
    kern_b = [jax.block_until_ready(w) for w in kern_b]
    train_s = time.perf_counter() - t0

    psi_w = jnp.asarray(prep.psi_work, prep.reduced.dtype)
    # energies in the scanner's coil basis, the units of the combined image rho and of V(r)
    Lm = np.asarray(prep.L)
    tau = float(np.real(np.trace(Lm @ np.asarray(prep.psi_work) @ Lm.conj().T)))
    reinsert = (prep.mode == "accelerated") if reinsert_acs is None else bool(reinsert_acs)
    acq = s.mask(include_acs=False)
    in_acs = np.zeros(ny, bool)
    in_acs[s.acs_lines] = True
    energy = line_energies(prep.to_scanner(prep.zero_filled), prep.acquired_lines, tau)
    S_out = float(energy[~acq & ~in_acs].sum())  # predicted lines outside the ACS block
    S_acs = 0.0 if reinsert else float(energy[~acq & in_acs].sum())  # predicted ACS lines (in-sample)
    S_tot = float(energy.sum())
    sup = prep.support if support is None else np.asarray(support, bool)

    t1 = time.perf_counter()
    est_f, rel_f, cv_f, coil_f, interp_f = (np.zeros((S, folds)) for _ in range(5))
    noise, noise_coil, nu, gmean, rel_in = np.zeros(S), np.zeros(S), np.zeros(S), np.zeros(S), np.zeros(S)
    gmaps, kernels, losses = [], [], []
    all_rows = np.ones(len(rows), bool)
    for i, a in enumerate(slopes_a):
        full = [w[i * F + folds] for w in kern_b]
        kernels.append([np.asarray(w) for w in full])
        losses.append(np.asarray(loss_b[i * F + folds]))
        rec = apply(prep, Raki(cfg.raki, float(a)), full)
        nt = noise_terms(full, prep.reduced, s, float(a), psi=psi_w, p=rec.p_work, L=Lm,
                         linearisation=cfg.linearisation)
        g, tr_s0 = nt.g, nt.total
        nu[i] = nt.nu
        noise[i] = nt.V.sum() / (2 * S_tot)  # the RSS sees the in-phase half
        noise_coil[i] = tr_s0 / S_tot
        gmaps.append(g.astype(np.float32))
        gmean[i] = float(np.mean(g[sup])) if sup is not None else float(np.mean(g))
        err, tgt, _ = heldout_error(full, acs, s, float(a), all_rows, L=Lm)  # in-sample (the ACS region)
        rel_in[i] = max(err - tau - nu[i], 0.0) / max(tgt - tau, np.finfo(float).tiny)
        for k in range(folds):
            fk = [w[i * F + k] for w in kern_b]
            err, tgt, _ = heldout_error(fk, acs, s, float(a), W[k] == 0, L=Lm)
            eps, sigma = err - tau, max(tgt - tau, np.finfo(float).tiny)
            cv_f[i, k] = eps
            rel_f[i, k] = max(eps - nu[i], 0.0) / sigma
            interp_f[i, k] = (rel_in[i] * S_acs + rel_f[i, k] * S_out) / S_tot
            est_f[i, k] = interp_f[i, k] + noise[i]
            coil_f[i, k] = interp_f[i, k] + tr_s0 / S_tot
    image_est, coil_est = est_f.mean(axis=1), coil_f.mean(axis=1)
    use = coil_f if criterion == "coil" else est_f
    idx = int(np.argmin(use.mean(axis=1)))
    return AutoSlopeResult(
        slope=float(slopes_a[idx]), index=idx, criterion=criterion, slopes=slopes_a, estimate=use.mean(axis=1),
        spread=use.std(axis=1, ddof=1), estimate_folds=use, interp=interp_f.mean(axis=1),
        noise=noise_coil if criterion == "coil" else noise, image_estimate=image_est, coil_estimate=coil_est,
        rel_interp=rel_f, rel_insample=rel_in, cv_error=cv_f, nu=nu, g_mean=gmean, g=np.stack(gmaps), kernels=kernels,
        losses=np.stack(losses), folds=int(folds),
        seconds={"train_s": train_s, "estimate_s": time.perf_counter() - t1}, prepared=prep,
    )


def estimate_figure(result: AutoSlopeResult, *, true_nmse: Sequence[float] | None = None, title: str = ""):
    """Figure of the estimate curve over the slopes: estimate +- fold spread, its interpolation
    and noise parts, the chosen slope, and (when given) the true NMSE on a second axis."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 3.6))
    ax = fig.add_subplot(111)
    a = result.slopes
    ax.errorbar(a, result.estimate, yerr=result.spread, marker="o", capsize=3, label="estimate (mean +- sd over folds)")
    ax.plot(a, result.interp, "--", marker=".", label="interpolation part (CV)")
    ax.plot(a, result.noise, ":", marker=".", label=f"noise part (exact g; {result.criterion})")
    ax.axvline(result.slope, color="k", lw=0.8, label=f"chosen slope {result.slope:g}")
    ax.set_xlabel("negative slope a")
    ax.set_ylabel(f"estimated NMSE vs noise-free ({result.criterion})")
    ax.set_yscale("log")
    if true_nmse is not None:
        ax2 = ax.twinx()
        ax2.plot(a, np.asarray(true_nmse), color="tab:red", marker="s", label="true NMSE (reference)")
        ax2.set_ylabel("true NMSE", color="tab:red")
        ax2.set_yscale("log")
        i = int(np.argmin(true_nmse))
        ax2.axvline(a[i], color="tab:red", lw=0.8, ls="--")
        ax2.legend(loc="upper right", fontsize=7)
    ax.legend(loc="upper left", fontsize=7)
    ax.set_title(title or f"automatic slope ({result.folds}-fold ACS cross-validation)", fontsize=9)
    fig.tight_layout()
    return fig
