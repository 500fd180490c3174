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

from .choose import CRITERIA
from .choose import DEFAULT_SLOPES
from .choose import AutoSlopeResult
from .choose import choose_slope
from .choose import estimate_figure
from .gaware import GAwareFits
from .gaware import g_aware_fits
from .terms import NoiseTerms
from .terms import heldout_error
from .terms import line_energies
from .terms import noise_terms
from .training import FOLD_KINDS
from .training import cv_train_kernels
from .training import cv_trainer
from .training import fold_masks

__all__ = [
    "CRITERIA",
    "DEFAULT_SLOPES",
    "FOLD_KINDS",
    "AutoSlopeResult",
    "GAwareFits",
    "NoiseTerms",
    "choose_slope",
    "cv_train_kernels",
    "cv_trainer",
    "estimate_figure",
    "fold_masks",
    "g_aware_fits",
    "heldout_error",
    "line_energies",
    "noise_terms",
]
