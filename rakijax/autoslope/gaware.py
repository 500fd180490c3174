"""g-aware training: ACS loss + lambda * Hutchinson noise term (see :mod:`rakijax.autoslope`)."""

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
from ..pipeline import Prepared, prepare
from ..raki.train import validate_acs
from .training import cv_trainer

__all__ = ["GAwareFits", "g_aware_fits"]


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
