"""Activation masks of the complex leaky ReLU (Dawood 2024; MATH.md sections 2-3).

For a hidden pre-activation ``z = x + i y`` the complex leaky ReLU is

    s_a(z) = s_r x + i s_i y,   s_r = 1 if x >= 0 else a,   s_i = 1 if y >= 0 else a

(the same ``>= 0`` convention as :func:`rakijax.kspace_net.clrelu`). Two exact
rewritings of it are used:

* the **activation mask** ``m = s_a(z) / z = alpha + beta conj(z)/z`` (complex, and
  exactly ``1`` or ``a`` where Re z and Im z are on the same side), so ``s_a(z) = m z``
  pointwise in k-space and, in image space, a circular convolution with the
  inverse FFT of ``m`` (:mod:`rakijax.image_space.operator`). Where ``z = 0`` the
  mask is undefined; we set ``m = 1`` there (any value is exact since ``z = 0``);
* the **widely-linear split** ``s_a(z) = alpha z + beta conj(z)`` with the real
  coefficients ``alpha = (s_r + s_i)/2``, ``beta = (s_r - s_i)/2``. Since ``alpha``
  and ``beta`` are piecewise constant, the true (real) derivative of ``s_a`` is
  ``ds = alpha dz + beta conj(dz)`` (MATH.md section 3); ``m = alpha + beta conj(z)/z``.

Masks are computed by one k-space inference pass on the reduced grid and live
there (``(C_l, Y, X)`` per hidden layer). :func:`full_grid_masks` places them on
the zero-filled full grid (``Ny % R == 0``): the pre-activations vanish on the
lines that are not acquired, so any mask value is exact there; we use
``m = alpha = 1``, ``beta = 0`` (the derivative of a network whose input is zero on
those lines is never evaluated there either).

Reference: Dawood et al., "Image space formalism of convolutional neural networks
for k-space interpolation", MRM 2024 (arXiv 2402.17410).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp

from ..kspace_net import forward_hidden
from ..sampling import Sampling

__all__ = [
    "ActivationMasks",
    "split_activation",
    "activation_masks",
    "masks_from_preactivations",
    "full_grid_masks",
    "place_on_full_grid",
]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ActivationMasks:
    """Per hidden layer activation masks on one grid (a pytree of lists of arrays).

    Attributes:
        mask: list over hidden layers of complex ``(C_l, H, W)``: ``m = s_a(z)/z``
            (1 where ``z = 0``).
        alpha: list of real ``(C_l, H, W)``: ``(s_r + s_i)/2``.
        beta: list of real ``(C_l, H, W)``: ``(s_r - s_i)/2``.

    ``H, W`` is the reduced grid ``(Y, X)`` from :func:`activation_masks` or the
    full grid ``(Ny, Nx)`` from :func:`full_grid_masks`.
    """

    mask: list
    alpha: list
    beta: list

    @property
    def num_hidden(self) -> int:
        return len(self.mask)


def split_activation(z, slope):
    """``(m, alpha, beta)`` of one pre-activation (elementwise).

    ``CLReLU_a(z) = m z = alpha z + beta conj(z)``: ``m`` is the (frozen) activation
    mask, ``(alpha, beta)`` the widely-linear derivative. The one definition shared by
    the image-space operator and the g-factor linearisation
    (:mod:`rakijax.gfactor.linearise`); under ``jit`` unused outputs cost nothing.
    """
    re, im = jnp.real(z), jnp.imag(z)
    slope = jnp.asarray(slope, re.dtype)
    one = jnp.ones((), re.dtype)
    s_r = jnp.where(re >= 0, one, slope)
    s_i = jnp.where(im >= 0, one, slope)
    alpha = 0.5 * (s_r + s_i)
    beta = 0.5 * (s_r - s_i)
    # m = alpha + beta conj(z)/z: exactly alpha (1 or a) where Re z and Im z are on the
    # same side, and exactly 1 where z = 0
    nz = z != 0
    safe = jnp.where(nz, z, jnp.ones((), z.dtype))
    mask = jnp.where(beta != 0, alpha + beta * (jnp.conj(safe) / safe), alpha.astype(z.dtype))
    return mask, alpha, beta


def masks_from_preactivations(zs: Sequence, slope) -> ActivationMasks:
    """Masks and widely-linear split of a list of hidden pre-activations ``[z_1..z_{L-1}]``."""
    parts = [split_activation(z, slope) for z in zs]
    return ActivationMasks(
        mask=[p[0] for p in parts], alpha=[p[1] for p in parts], beta=[p[2] for p in parts]
    )


def activation_masks(kernels: Sequence, u, slope, sampling: Sampling | None = None) -> ActivationMasks:
    """Activation masks of every hidden layer from a k-space inference pass.

    Runs :func:`rakijax.kspace_net.forward_hidden` (circular edges) on the reduced
    grid and, for each hidden pre-activation ``z_l`` (``l = 1..L-1``), returns

        m_l = s_a(z_l) / z_l,   alpha_l = (s_r + s_i)/2,   beta_l = (s_r - s_i)/2,

    so that ``s_a(z) = m z = alpha z + beta conj(z)`` exactly (up to the rounding of
    one complex division for ``m``). jit- and vmap-compatible (``slope`` may be traced).

    Args:
        kernels: list of complex kernels ``(cout, cin, kh, kw)`` (shared network format).
        u: reduced-grid k-space ``(Nc, Y, X)`` (complex).
        slope: negative slope ``a`` of the complex leaky ReLU (float, may be traced).
        sampling: optional; when given, ``u`` must have ``sampling.num_reduced`` rows.

    Returns:
        :class:`ActivationMasks` with lists of length ``L-1`` of ``(C_l, Y, X)`` arrays
        (empty lists for a one-layer network such as GRAPPA).

    Raises:
        ValueError: ``u`` not ``(Nc, Y, X)`` with ``Nc`` the kernels' input channels,
            or its row count disagrees with ``sampling``.
    """
    kernels = list(kernels)
    u = jnp.asarray(u)
    _check_input(kernels, u, sampling)
    return _masks_jit([jnp.asarray(k) for k in kernels], jnp.asarray(u), slope)


@jax.jit
def _masks_jit(kernels, u, slope):
    zs = forward_hidden(kernels, u, slope, padding="circular")
    return masks_from_preactivations(zs[:-1], slope)


def _check_input(kernels, u, sampling):
    if not kernels:
        raise ValueError("need at least one kernel")
    if u.ndim != 3:
        raise ValueError(f"reduced k-space must be (Nc, Y, X); got shape {u.shape}")
    if u.shape[0] != kernels[0].shape[1]:
        raise ValueError(
            f"reduced k-space has {u.shape[0]} coils but the first kernel {kernels[0].shape} expects {kernels[0].shape[1]}"
        )
    if sampling is not None and u.shape[1] != sampling.num_reduced:
        raise ValueError(
            f"reduced k-space has {u.shape[1]} rows but the sampling (Ny={sampling.ny}, R={sampling.R}, "
            f"offset={sampling.offset}) has {sampling.num_reduced} acquired lines"
        )


def place_on_full_grid(x, sampling: Sampling, fill):
    """Place reduced-grid rows ``(..., Y, X)`` on lines ``offset + R*j`` of the full grid.

    Lines that are not acquired get ``fill``. Requires ``Ny % R == 0``.
    """
    sampling.require_periodic("the exact image-space form")
    if x.shape[-2] != sampling.num_reduced:
        raise ValueError(f"array has {x.shape[-2]} rows; the sampling has {sampling.num_reduced} acquired lines")
    shape = x.shape[:-2] + (sampling.ny, x.shape[-1])
    full = jnp.full(shape, fill, x.dtype)
    return full.at[..., sampling.offset :: sampling.R, :].set(x)


def full_grid_masks(masks: ActivationMasks, sampling: Sampling) -> ActivationMasks:
    """Reduced-grid masks placed on the zero-filled full grid ``(C_l, Ny, Nx)``.

    Acquired lines ``offset + R*j`` get the reduced row ``j``; all other lines get
    ``m = alpha = 1``, ``beta = 0`` (exact: the pre-activations are zero there).

    Raises:
        ValueError: ``Ny % R != 0`` (no exact full-grid form) or row count mismatch.
    """
    return ActivationMasks(
        mask=[place_on_full_grid(m, sampling, 1) for m in masks.mask],
        alpha=[place_on_full_grid(a, sampling, 1) for a in masks.alpha],
        beta=[place_on_full_grid(b, sampling, 0) for b in masks.beta],
    )
