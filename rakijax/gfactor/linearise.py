"""Linearisation of a RAKI network at the measured data (MATH.md section 3).

A RAKI network ``y = W_L * s(... s(W_1 * reduced))`` with the complex leaky ReLU

    s_a(z) = s_r Re z + i s_i Im z,   s_r = 1 if Re z >= 0 else a,   s_i likewise,

is linearised around the acquired reduced-grid k-space ``reduced`` in one of two ways,
both pointwise per hidden channel and reduced-grid point:

* ``"frozen"`` (Dawood 2024): the activation mask ``m = s_a(z)/z`` is frozen at the
  data, ``ds = m dz``. The network becomes the complex-linear operator
  ``W_L M_{L-1} ... M_1 W_1`` (the paper's image-space operator). ``m = 1`` where
  ``z = 0`` (any value is exact for the forward pass there).
* ``"true"`` (default): the exact real derivative of ``s_a``,
  ``ds = alpha dz + beta conj(dz)`` with the real coefficients
  ``alpha = (s_r + s_i)/2``, ``beta = (s_r - s_i)/2``. The response is widely
  linear, ``dy = A dn + B conj(dn)``; it is the small-noise (linear-response) limit
  of the nonlinear network's noise and what small-noise Monte Carlo converges to.

``m = alpha + beta conj(z)/z``, so both agree where ``beta = 0`` (Re z and Im z of
the same sign). The coefficients live on the reduced grid ``(C_l, Y, X)`` in the one
activation pytree of rakijax, :class:`rakijax.image_space.masks.ActivationMasks`
(``Linearisation`` here is the same class), holding only what ``mode`` needs.

References: Akcakaya et al. 2019 (RAKI); Dawood et al. 2024 (image-space formalism).
"""

from __future__ import annotations

from typing import Sequence

from ..image_space.masks import MODES, ActivationMasks, activation_masks, check_mode
from ..sampling import Sampling

__all__ = ["Linearisation", "linearise", "MODES"]

Linearisation = ActivationMasks
"""The linearisation coefficients: :class:`~rakijax.image_space.masks.ActivationMasks`."""


def linearise(kernels: Sequence, reduced, sampling: Sampling, slope, *, mode: str = "true") -> ActivationMasks:
    """Linearise the network ``kernels`` at the reduced-grid k-space ``reduced``.

    Runs one k-space inference pass (circular edges) and returns, for each hidden
    pre-activation ``z_l`` (``l = 1..L-1``),

    * ``mode="frozen"``: ``m_l = s_a(z_l)/z_l`` (complex; 1 where ``z_l = 0``);
    * ``mode="true"``: ``alpha_l = (s_r + s_i)/2`` and ``beta_l = (s_r - s_i)/2`` (real),
      so that ``d s_a = alpha dz + beta conj(dz)`` exactly.

    ``slope`` may be traced (one compiled program per shape and mode).

    Args:
        kernels: list of complex kernels ``(cout, cin, kh, kw)`` (shared network format).
        reduced: reduced-grid acquired k-space ``(Nc, Y, X)``, complex.
        sampling: the sampling (``Y = sampling.num_reduced``).
        slope: negative slope ``a`` of the complex leaky ReLU (real).
        mode: ``"true"`` (default) or ``"frozen"``.

    Returns:
        :class:`ActivationMasks` of that ``mode`` with ``L-1`` layers (none for a one-layer network).

    Raises:
        ValueError: unknown mode, ``reduced`` not ``(Nc, Y, X)`` matching the kernels and sampling.
    """
    return activation_masks(kernels, reduced, sampling, slope, mode=check_mode(mode))
