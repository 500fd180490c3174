"""Linearisation of a RAKI network at the measured data (MATH.md section 3).

A RAKI network ``y = W_L * s(... s(W_1 * u))`` with the complex leaky ReLU

    s_a(z) = s_r Re z + i s_i Im z,   s_r = 1 if Re z >= 0 else a,   s_i likewise,

is linearised around the acquired reduced-grid k-space ``u`` in one of two ways,
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
the same sign). The coefficients live on the reduced grid ``(C_l, Y, X)``.

References: Akcakaya et al. 2019 (RAKI); Dawood et al. 2024 (image-space formalism).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp

from ..image_space.masks import split_activation
from ..kspace_net import forward_hidden

__all__ = ["Linearisation", "linearise", "MODES"]

MODES = ("true", "frozen")


@dataclasses.dataclass(frozen=True)
class Linearisation:
    """Per hidden layer linearisation coefficients on the reduced grid (a pytree).

    Attributes:
        mode: ``"true"`` or ``"frozen"`` (static).
        grid: reduced grid ``(Y, X)`` (static).
        mask: frozen mode: tuple over hidden layers of complex ``(C_l, Y, X)``
            masks ``m = s(z)/z``; empty in true mode.
        alpha: true mode: tuple of real ``(C_l, Y, X)``; empty in frozen mode.
        beta: true mode: tuple of real ``(C_l, Y, X)``; empty in frozen mode.
    """

    mode: str
    grid: tuple
    mask: tuple = ()
    alpha: tuple = ()
    beta: tuple = ()

    @property
    def num_hidden(self) -> int:
        return len(self.mask) if self.mode == "frozen" else len(self.alpha)

    def coefficients(self, l: int):
        """Coefficients of hidden layer ``l`` (0-based): ``(m,)`` or ``(alpha, beta)``."""
        return (self.mask[l],) if self.mode == "frozen" else (self.alpha[l], self.beta[l])

    @property
    def beta_fraction(self) -> float:
        """Fraction of hidden activations with ``beta != 0`` (true mode; NaN otherwise)."""
        if self.mode != "true" or not self.beta:
            return float("nan")
        nz = sum(float(jnp.sum(b != 0)) for b in self.beta)
        tot = sum(b.size for b in self.beta)
        return nz / tot


jax.tree_util.register_dataclass(
    Linearisation, data_fields=["mask", "alpha", "beta"], meta_fields=["mode", "grid"]
)


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"linearisation must be one of {MODES}, got {mode!r}")
    return mode


def linearise(kernels: Sequence, u, slope, *, mode: str = "true") -> Linearisation:
    """Linearise the network ``kernels`` at the reduced-grid k-space ``u``.

    Runs one k-space inference pass (circular edges, :func:`forward_hidden`) and
    returns, for each hidden pre-activation ``z_l`` (``l = 1..L-1``),

    * ``mode="frozen"``: ``m_l = s_a(z_l)/z_l`` (complex; 1 where ``z_l = 0``);
    * ``mode="true"``: ``alpha_l = (s_r + s_i)/2`` and ``beta_l = (s_r - s_i)/2`` (real),
      so that ``d s_a = alpha dz + beta conj(dz)`` exactly.

    jit-compatible (``slope`` may be traced; ``mode`` is static).

    Args:
        kernels: list of complex kernels ``(cout, cin, kh, kw)`` (shared network format).
        u: reduced-grid acquired k-space ``(Nc, Y, X)``, complex.
        slope: negative slope ``a`` of the complex leaky ReLU (real).
        mode: ``"true"`` (default) or ``"frozen"``.

    Returns:
        :class:`Linearisation` with ``L-1`` layers (none for a one-layer network).

    Raises:
        ValueError: unknown mode, ``u`` not 3-D or with the wrong number of coils.
    """
    _check_mode(mode)
    u = jnp.asarray(u)
    if u.ndim != 3:
        raise ValueError(f"u must be reduced-grid k-space (Nc, Y, X), got shape {u.shape}")
    if not kernels:
        raise ValueError("need at least one kernel")
    if kernels[0].shape[1] != u.shape[0]:
        raise ValueError(f"u has {u.shape[0]} coils but the first kernel {tuple(kernels[0].shape)} expects {kernels[0].shape[1]}")
    return _linearise(tuple(jnp.asarray(w) for w in kernels), u, slope, mode=mode)


@partial(jax.jit, static_argnames=("mode",))
def _linearise(kernels, u, slope, *, mode):
    zs = forward_hidden(list(kernels), u, slope)[:-1]
    grid = tuple(int(n) for n in u.shape[-2:])
    if mode == "frozen":
        return Linearisation(mode=mode, grid=grid, mask=tuple(split_activation(z, slope)[0] for z in zs))
    parts = [split_activation(z, slope) for z in zs]
    return Linearisation(mode=mode, grid=grid, alpha=tuple(p[1] for p in parts), beta=tuple(p[2] for p in parts))
