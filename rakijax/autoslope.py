"""Choose the RAKI negative slope per scan without a reference: ACS cross-validation + exact g.

The slope ``a`` of the complex leaky ReLU trades noise amplification (g-factor) against
interpolation error (blurring, residual aliasing), and the best slope depends on the
scan (R, ACS width, SNR). :func:`choose_slope` estimates the image error of a RAKI fit for
a grid of slopes from what a real scan has -- the ACS block, the undersampled data and the
noise covariance -- and picks the smallest estimate. All fits of a call (every slope, every
fold, and the full fit) are trained together in one ``jax.vmap`` (:func:`cv_trainer`).

Use (one slice; ``--slope auto`` of the command line)::

    res = choose_slope(data, cfg)                 # KSpaceData or a pipeline.Prepared slice
    out = pipeline.reconstruct(data, cfg.replace(slope=res.slope), fit=res.fit(),
                               whitener=(res.prepared.W, res.prepared.L))   # no refit
    metrics["auto_slope"] = res.to_dict()         # curve, spread, criterion, timings
    save_figure(estimate_figure(res), "auto_slope.png")

Derivation
----------
The fits act in the work basis (prewhitened, ``rakijax.pipeline.prepare``); every energy
below is taken in the scanner's coil basis (``x = L x_w``), the units of the combined image
``rho``: input noise covariance ``Psi = L Psi_w L^H`` there, ``tau = tr Psi`` the noise
energy of one k-space point summed over coils. The reconstruction ``x`` (coil k-space on the full grid) has
acquired lines ``u = s + n`` passed through and predicted lines ``y = f_W(u)`` on the set
``P`` of predicted lines (all missing lines; the ACS lines too unless they are reinserted).
Its error against the noise-free k-space ``s`` (coil-summed, over the full grid) is

    E = sum_{k in P} |y_k - s_k|^2 + sum_{k acquired} |n_k|^2
      = B + N,     B = sum_{k in P} |E_n[y_k] - s_k|^2   (interpolation error, "bias"),
                   N = sum_k Var(x_k)                    (noise, small-noise linear response)

and the unitary FFT makes ``E`` the coil-image error energy (Parseval).

**Noise part (exact g-map).** The exact banded map (:func:`rakijax.gfactor.raki_gfactor`,
MATH.md 4) gives the per-pixel coil covariance ``Cov(r)`` of the linearised network; the
combined image ``rho = sum_c conj(p_c) x_c`` has noise variance

    V(r) = p(r)^H Cov(r) p(r) = sigma_full(r)^2 g(r)^2 R,     sigma_full(r)^2 = p^H Psi p,

(the definition of ``g``, DESIGN.md). The image the NMSE scores is the magnitude (RSS)
``|rho|``, whose error is to first order the in-phase part ``Re(p^H dx)``: for circular
noise it carries half the variance, so ``N_rho = sum_r V(r) / 2``. The band coefficient at
``D = 0`` is ``s(0) = sum_k K_kk = sum_r Cov(r)``, so the mean noise energy of one
*predicted* k-space point is ``nu = (tr s(0) - n_acq tau) / n_pred`` (``n_acq``,
``n_pred``: acquired and predicted points on the grid).

**Interpolation part (K-fold cross-validation over ACS rows).** Training row ``q`` of the
ACS (:func:`rakijax.kspace_net.acs_pairs`) has source lines ``q + R*ty`` and targets
``t_q = s_q + n_q`` on the ``R-1`` lines between. Split the rows into ``K`` folds ``F_k``
(default interleaved, ``q % K == k``; or contiguous blocks), fit ``W^(-k)`` on the other
rows (same recipe, same initialisation) and predict the held-out targets,
``e_q = f_{W^(-k)}(src_q) - t_q``. If the fit does not depend on ``n_q`` (assumption A1:
the held-out target lines still enter the fit as sources, or as targets of another
output phase, of neighbouring training rows; an ``O(1/rows)`` effect, checked on the
phantom in the tests),

    E|e_q|^2 = E|f(src_q) - s_q|^2 + tau = (b_q + nu_q) + tau,

so ``eps_k = mean_{q in F_k} |e_q|^2 - tau`` estimates the mean prediction error per point
at the held-out ACS targets against the noise-free k-space: interpolation error ``b`` plus
propagated noise ``nu``. With the noise per predicted point from the g-map (assumption
A2: the output noise of a predicted point does not depend on where it is in k-space; exact
for GRAPPA) and the signal energy of the held-out targets ``sigma_k = mean |t_q|^2 - tau``,
the *relative* out-of-sample interpolation error is

    rho_k = (eps_k - nu) / sigma_k.

The predicted lines split in two:

* outside the ACS block (signal energy ``S_O``) the network meets rows it was not trained
  on: assumption A3, the relative error there is the held-out one, ``B_O = rho_k S_O``;
* inside the ACS block (``S_A``; only when the ACS lines are not reinserted, as in
  retrospective studies) the reconstruction predicts exactly the rows the full fit was
  trained on, from the same samples: in-sample, ``B_A = rho_in S_A`` with ``rho_in`` the
  full fit's relative residual on its ACS rows (minus ``tau`` and ``nu``; optimistic by
  the fit's share of the target noise).

On the 120x120 phantom (R=4, 24 ACS, 8 coils, interleaved folds) ``rho_k S_O`` matched the
true interpolation error outside the ACS (the noise-free reconstruction's) within 2% at
slopes 0, 0.25, 0.5, 0.75, 22% low at 0.1 and 60% low (but 1e-4 of the energy) at 1, while
applying the held-out ``rho_k`` to the ACS lines overstated the error there 10-40x (the
centre rows are unlike any other, and in-sample in the reconstruction).
Line signal energies are ``sum_{c,x} |k|^2 - X tau`` on the sampled lines, interpolated
log-linearly over the missing ones (A4; 3% low outside the ACS on the phantom).

**Estimate.** With ``S`` the total signal energy (all lines) and assumption A5 (the
interpolation error of the coil images lies along the combination direction ``p`` and in
phase with the image, as a blurred coil image ``S_c (rho * h)`` does; Cauchy-Schwarz makes
this an upper bound), the estimated NMSE of the RSS image against the noise-free one, over
the whole FOV, is

    nmse_hat_k = (rho_in S_A + rho_k S_O + sum_r V(r) / 2) / S,   estimate = mean_k nmse_hat_k,

its spread the standard deviation over the folds. ``coil_estimate`` is the coil-space
version, ``(rho_in S_A + rho_k S_O + tr s(0)) / S`` (noise in every coil direction, full
complex variance, no A5); :func:`choose_slope` minimises it by default (``criterion="coil"``).
The NMSE against a *noisy* fully sampled reference adds the
reference's own noise on the predicted lines, the same for every slope.

References: Akcakaya 2019 (RAKI); Dawood 2024 (slope trade-off); Breuer 2009 / Robson
2008 (g-factor, pseudo-replicas); Stone 1974 (cross-validation).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from . import kspace_net
from .config import ReconConfig
from .data.container import KSpaceData
from .gfactor import combined_variance, raki_gfactor
from .methods import Fit, Raki
from .pipeline import Prepared, apply, prepare
from .raki import Raki as RakiNet
from .raki import acs_loss
from .raki.config import RakiConfig
from .raki.train import param_dtype_for, validate_acs
from .sampling import Sampling

__all__ = [
    "DEFAULT_SLOPES",
    "AutoSlopeResult",
    "fold_masks",
    "cv_train_kernels",
    "cv_trainer",
    "heldout_error",
    "NoiseTerms",
    "noise_terms",
    "line_energies",
    "choose_slope",
    "GAwareFits",
    "g_aware_fits",
    "estimate_figure",
]

#: what :func:`choose_slope` minimises
CRITERIA = ("coil", "image")

#: the slope grid of the paper's sweep
DEFAULT_SLOPES = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


FOLD_KINDS = ("contiguous", "interleaved")


def fold_masks(n_rows: int, folds: int, kind: str = "contiguous") -> np.ndarray:
    """``(folds + 1, n_rows)`` float training weights: row ``k < folds`` leaves out fold ``k``
    of the ACS training rows, the last row trains on all rows. ``kind="contiguous"``: fold
    ``k`` is the k-th of ``folds`` contiguous blocks of rows; ``"interleaved"``: the rows
    ``q`` with ``q % folds == k``.

    Raises:
        ValueError: fewer than 2 folds, fewer rows than folds, an unknown kind.
    """
    if folds < 2 or n_rows < folds:
        raise ValueError(f"need 2 <= folds <= training rows, got folds={folds} for {n_rows} ACS training rows")
    if kind not in FOLD_KINDS:
        raise ValueError(f"fold kind must be one of {FOLD_KINDS}, got {kind!r}")
    w = np.ones((folds + 1, n_rows))
    if kind == "interleaved":
        for k in range(folds):
            w[k, k::folds] = 0.0
        return w
    edges = np.linspace(0, n_rows, folds + 1).round().astype(int)
    for k in range(folds):
        w[k, edges[k] : edges[k + 1]] = 0.0
    return w


def _weighted_loss(kernels, problem, slope, weights, shapes, R):
    """``sum_q w_q sum |y - t|^2 / (sum_q w_q * entries per row)`` (the mean of
    :func:`rakijax.raki.acs_loss.loss` when every ``w_q = 1``)."""
    y = acs_loss.forward_stacked(kernels, problem.patches, slope, shapes, R)[:, : problem.targets.shape[-2], :]
    r2 = jnp.sum((y - problem.targets) ** 2, axis=(0, 2))  # per row
    per_row = problem.targets.shape[0] * problem.targets.shape[2]
    return jnp.sum(weights * r2) / (jnp.sum(weights) * per_row)


def _noise_penalty(kernels, problem, slope, weights, shapes, R, key, sigma, probes, acs_shape):
    """Hutchinson estimate of the weighted mean ``|J n|^2`` (stacked real form, the normalisation
    of :func:`_weighted_loss`) of the linear response ``J`` at the ACS rows to input noise
    ``n ~ CN(0, sigma^2 I)`` on every ACS sample; ``probes`` noise draws per call."""
    Q = problem.targets.shape[-2]
    per_row = problem.targets.shape[0] * problem.targets.shape[2]
    f = lambda P: acs_loss.forward_stacked(kernels, P, slope, shapes, R)  # noqa: E731
    total = 0.0
    for k in jax.random.split(key, probes):
        a, b = jax.random.normal(k, (2,) + tuple(acs_shape), jnp.real(problem.patches).dtype)
        n = jax.lax.complex(a, b) * (sigma / jnp.sqrt(2.0))
        dP = acs_loss.prepare(n, shapes, R).patches
        dy = jax.jvp(f, (problem.patches,), (dP,))[1][:, :Q, :]
        total = total + jnp.sum(weights * jnp.sum(dy**2, axis=(0, 2))) / (jnp.sum(weights) * per_row)
    return total / probes


@functools.partial(jax.jit, static_argnames=("R", "config", "probes"))
def _cv_train_jit(acs_block, slope, weights, key, lr, noise_weight, *, R, config, probes=0):
    ncoils = acs_block.shape[-3]
    dtype = param_dtype_for(acs_block.dtype, config)
    acs = jnp.asarray(acs_block).astype(dtype)
    x = acs / jnp.max(jnp.abs(acs))
    shapes = config.kernel_shapes(ncoils, R)
    problem = acs_loss.prepare(x, shapes, R)
    kernels = RakiNet(config, ncoils, R, rngs=nnx.Rngs(params=key), param_dtype=dtype).kernels()
    opt = optax.adam(lr, b1=config.b1, b2=config.b2, eps=config.eps)
    state = opt.init(kernels)
    losses = jnp.zeros(config.steps, jnp.real(x).dtype)
    shapes = [tuple(s) for s in shapes]

    sigma = 1.0 / jnp.max(jnp.abs(acs))  # unit (whitened) noise in the scaled units
    acs_shape = x.shape

    def total_loss(params, i):
        loss = _weighted_loss(params, problem, slope, weights, shapes, R)
        if probes:
            pk = jax.random.fold_in(jax.random.fold_in(key, 7919), i)
            loss = loss + noise_weight * _noise_penalty(params, problem, slope, weights, shapes, R, pk, sigma, probes,
                                                        acs_shape)
        return loss

    def body(i, carry):
        params, state, best, best_loss, losses = carry
        loss, g = jax.value_and_grad(total_loss)(params, i)
        g = jax.tree.map(jnp.conj, g)  # as rakijax.raki.train: descend along dL/du + i dL/dv
        updates, state = opt.update(g, state, params)
        better = loss < best_loss  # as rakijax.raki.train: keep the lowest-loss iterate (NaN never wins)
        best = jax.tree.map(lambda b, p: jnp.where(better, p, b), best, params)
        best_loss = jnp.where(better, loss, best_loss)
        return optax.apply_updates(params, updates), state, best, best_loss, losses.at[i].set(loss.astype(losses.dtype))

    carry = (kernels, state, kernels, jnp.asarray(jnp.inf, losses.dtype), losses)
    _, _, best, _, losses = jax.lax.fori_loop(0, config.steps, body, carry)
    return list(best), losses


def cv_train_kernels(acs_block, sampling: Sampling, config: RakiConfig, slope, weights, key, noise_weight=0.0,
                     probes: int = 0):
    """:func:`rakijax.raki.train_kernels` (Adam recipe: scaling, initialisation, conjugated
    gradients, the lowest-loss iterate) with a per-training-row weight on the loss and an
    optional noise term; pure and ``vmap``-able.

    Args:
        acs_block: (Nc, A, X) ACS lines.
        sampling: the sampling (static; only ``R``).
        config: :class:`RakiConfig` with ``optimizer="adam"``.
        slope: negative slope (traced).
        weights: (rows,) weights of the ACS training rows (0 leaves a row out).
        key: PRNG key of the initialisation.

        noise_weight: ``lambda`` of the g-aware loss (traced; used when ``probes > 0``):
            ``ACS loss + lambda * noise term``, the noise term the mean squared linear
            response of the predicted ACS points to unit (whitened) input noise, in the
            loss's units (a Hutchinson estimate with ``probes`` fresh noise draws per step
            through ``jax.jvp``; unbiased for the exact mean ``|J n|^2``).
        probes: noise draws per step (static); 0 = plain ACS loss.

    Returns:
        ``(kernels, losses)`` as :func:`~rakijax.raki.train_kernels`; with all weights 1 and
        ``probes=0`` the same numbers up to float rounding.
    """
    if config.optimizer != "adam":
        raise ValueError(f"cross-validated training supports optimizer='adam', got {config.optimizer!r}")
    static = dataclasses.replace(config, learning_rate=1.0, log_every=1)
    return _cv_train_jit(acs_block, slope, weights, key, config.learning_rate, noise_weight, R=int(sampling.R),
                         config=static, probes=int(probes))


@functools.lru_cache(maxsize=16)
def cv_trainer(sampling: Sampling, config: RakiConfig, probes: int = 0):
    """``f(acs_block, slopes (B,), weights (B, rows), keys (B,), noise_weights (B,)) -> (kernels (B, ...),
    losses (B, steps))``: ``jit(vmap(cv_train_kernels))``, one compilation per shape (as
    :func:`rakijax.sweep.batched_trainer`)."""

    def one(acs_block, slope, weights, key, noise_weight):
        return cv_train_kernels(acs_block, sampling, config, slope, weights, key, noise_weight, probes)

    return jax.jit(jax.vmap(one, in_axes=(None, 0, 0, 0, 0)))


def heldout_error(kernels, acs_block, sampling: Sampling, slope, rows_mask, L=None) -> tuple[float, float, int]:
    """Held-out prediction error of a fit on the ACS rows where ``rows_mask`` is true.

    ``L`` (Nc, Nc) maps the coils of predictions and targets before the energies are taken
    (the work basis back to the scanner's, :meth:`rakijax.pipeline.Prepared.to_scanner`).

    Returns:
        ``(mean_err, mean_target, n)``: mean over the held-out target points of the
        coil-summed ``|f(src) - t|^2`` and ``|t|^2`` (per k-space point), and the number of
        points. ``kernels`` act on the unscaled data (positively homogeneous network).
    """
    shapes = [tuple(w.shape) for w in kernels]
    rows, targets = kspace_net.acs_pairs(acs_block, shapes, sampling.R)
    y = kspace_net.forward(kernels, acs_block, slope, padding="valid", dilation=sampling.R)[:, rows, :]
    nc = acs_block.shape[-3]
    R = sampling.R
    sel = np.asarray(rows_mask, bool)
    # (R-1)*Nc channels -> (R-1, Nc, rows, X'), coils mixed by L, summed per point
    split = lambda a: a.reshape(R - 1, nc, *a.shape[1:])[:, :, sel, :]  # noqa: E731
    mix = (lambda a: a) if L is None else (lambda a: jnp.einsum("cd,edyx->ecyx", jnp.asarray(L, a.dtype), a))  # noqa: E731
    d, t = mix(split(y - targets)), mix(split(targets))
    err = jnp.sum(jnp.abs(d) ** 2, axis=1)
    tgt = jnp.sum(jnp.abs(t) ** 2, axis=1)
    return float(jnp.mean(err)), float(jnp.mean(tgt)), int(err.size)


@dataclass
class NoiseTerms:
    """Noise of a reconstruction from its exact g-map (:func:`noise_terms`).

    Attributes:
        g: (Ny, Nx) g-factor map.
        V: (Ny, Nx) noise variance of the combined image, ``sigma_full^2 g^2 R``.
        total: ``tr s(0) = sum_r tr Cov(r)``, the coil-summed noise energy of the whole
            reconstructed k-space (= image), in the basis ``L`` maps to.
        nu: mean coil-summed noise variance of one predicted k-space point,
            ``(total - n_acq tr Psi) / n_pred``.
    """

    g: np.ndarray
    V: np.ndarray
    total: float
    nu: float


def noise_terms(kernels, reduced, sampling: Sampling, slope, *, psi, p, L=None, linearisation: str = "true") -> NoiseTerms:
    """Exact noise terms of a fit (small-noise linear response; module docstring).

    Args:
        kernels, reduced, sampling, slope: the fit and the acquired reduced grid (work basis).
        psi: (Nc, Nc) input noise covariance in the work basis.
        p: (Nc, Ny, Nx) combination weights in the work basis (``p_w``).
        L: (Nc, Nc) work basis -> scanner basis for ``total``/``nu`` (default identity).
        linearisation: ``"true"`` or ``"frozen"``.
    """
    psi = jnp.asarray(psi)
    gr = raki_gfactor(kernels, reduced, sampling, slope, psi=psi, p=p, linearisation=linearisation)
    g = np.asarray(gr.g)
    V = np.asarray(combined_variance(psi, p)) * g**2 * sampling.R  # sigma_full^2 g^2 R
    Lm = np.eye(psi.shape[0]) if L is None else np.asarray(L)
    my, mx = gr.bands.extent
    total = float(np.real(np.trace(Lm @ np.asarray(gr.bands.s[:, :, my, mx]) @ Lm.conj().T)))
    nx = reduced.shape[-1]
    n_acq = sampling.num_reduced * nx
    n_pred = (sampling.ny - sampling.num_reduced) * nx
    tau = float(np.real(np.trace(Lm @ np.asarray(psi) @ Lm.conj().T)))
    return NoiseTerms(g, V, total, max((total - n_acq * tau) / n_pred, 0.0))


def line_energies(zero_filled, lines: np.ndarray, tau: float) -> np.ndarray:
    """(Ny,) signal energy per ky line: ``sum_{c,x} |k|^2 - X tau`` on the sampled ``lines``,
    interpolated log-linearly (in the line index) over the others and held constant beyond the first
    and last sampled line (floored at a tiny positive value)."""
    k = np.asarray(zero_filled)
    ny, nx = k.shape[-2:]
    e = np.sum(np.abs(k) ** 2, axis=(0, 2)) - nx * tau
    have = np.flatnonzero(lines)
    floor = max(1e-12 * float(np.max(np.abs(e[have]))), np.finfo(float).tiny)
    le = np.log(np.maximum(e[have], floor))
    return np.where(lines, np.maximum(e, floor), np.exp(np.interp(np.arange(ny), have, le)))


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


@dataclass
class GAwareFits:
    """Fits of :func:`g_aware_fits`: ``slopes``, ``noise_weights`` (B,) per fit, ``kernels`` (list of B
    kernel lists, work basis), ``losses`` (B, steps), ``seconds``, and the ``prepared`` slice."""

    slopes: np.ndarray
    noise_weights: np.ndarray
    kernels: list
    losses: np.ndarray
    seconds: float
    prepared: Prepared = field(repr=False)


def g_aware_fits(data: KSpaceData | Prepared, cfg: ReconConfig, slopes: Sequence[float],
                 noise_weights: Sequence[float], *, probes: int = 2) -> GAwareFits:
    """g-aware RAKI training: every ``(slope, lambda)`` pair fitted in one ``vmap`` with the loss
    ``ACS loss + lambda * noise term`` (:func:`cv_train_kernels`; all ACS rows, seed ``cfg.seed``).

    The noise term is the mean squared linear response (the true, widely-linear derivative,
    through ``jax.jvp``) of the predicted ACS points to white unit input noise in the work
    basis, so ``lambda = 1`` weighs one unit of propagated noise energy like one unit of
    ACS error energy; it is proportional to the mean ``g^2`` at the ACS rows.

    Returns:
        :class:`GAwareFits` (fit ``b`` is ``slopes[b // len(noise_weights)]``,
        ``noise_weights[b % len(noise_weights)]``).
    """
    prep = data if isinstance(data, Prepared) else prepare(data, cfg, crop_ky=True)
    s, acs = prep.sampling, prep.acs_block
    validate_acs(acs, s, cfg.raki)
    a = np.repeat(np.asarray(slopes, float), len(noise_weights))
    lam = np.tile(np.asarray(noise_weights, float), len(slopes))
    rows, _ = kspace_net.acs_pairs(acs, cfg.raki.kernel_shapes(acs.shape[0], s.R), s.R)
    real = jnp.real(acs).dtype
    t0 = time.perf_counter()
    kb, lb = cv_trainer(s, cfg.raki, int(probes))(
        acs, jnp.asarray(a, real), jnp.ones((a.size, len(rows)), real),
        jnp.stack([jax.random.PRNGKey(cfg.seed)] * a.size), jnp.asarray(lam, real))
    kb = [jax.block_until_ready(w) for w in kb]
    kernels = [[np.asarray(w[b]) for w in kb] for b in range(a.size)]
    return GAwareFits(a, lam, kernels, np.asarray(lb), time.perf_counter() - t0, prep)


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
