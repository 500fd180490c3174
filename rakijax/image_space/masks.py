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

Both live in one pytree, :class:`ActivationMasks`, shared by the image-space operators
and the g-factor linearisation (:mod:`rakijax.gfactor.linearise`): its ``mode`` says which
linearisation :meth:`ActivationMasks.coefficients` returns (``"frozen"``: ``(m,)``;
``"true"``: ``(alpha, beta)``). Masks are computed by one k-space inference pass on the
reduced grid and live there (``(C_l, Y, X)`` per hidden layer). :func:`full_grid_masks` places them on
the zero-filled full grid (``Ny % R == 0``): the pre-activations vanish on the
lines that are not acquired, so any mask value is exact there; we use
``m = alpha = 1``, ``beta = 0`` (the derivative of a network whose input is zero on
those lines is never evaluated there either).

Reference: Dawood et al., "Image space formalism of convolutional neural networks
for k-space interpolation", MRM 2024 (arXiv 2402.17410).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp

from ..kspace_net import forward_hidden
from ..sampling import Sampling
from ..validate import check_reduced

__all__ = [
    "MODES",
    "ActivationMasks",
    "check_mode",
    "split_activation",
    "activation_masks",
    "masks_from_preactivations",
    "full_grid_masks",
    "place_on_full_grid",
]

MODES = ("true", "frozen")
"""The two linearisations: ``"true"`` derivative ``(alpha, beta)``, ``"frozen"`` masks ``m``."""

_FIELDS = {None: ("mask", "alpha", "beta"), "true": ("alpha", "beta"), "frozen": ("mask",)}


def check_mode(mode: str) -> str:
    """Return ``mode`` if it is one of :data:`MODES`, else raise ``ValueError``."""
    if mode not in MODES:
        raise ValueError(f"linearisation must be one of {MODES}, got {mode!r}")
    return mode


@dataclasses.dataclass(frozen=True)
class ActivationMasks:
    """Activation masks / widely-linear split of every hidden layer on one grid (a pytree).

    The one activation-linearisation type of rakijax: the image-space operators read
    ``mask`` (frozen) or ``alpha``/``beta`` (true derivative), the g-factor bands read
    :meth:`coefficients` of :attr:`mode`.

    Attributes:
        mask: tuple over hidden layers of complex ``(C_l, H, W)``: ``m = s_a(z)/z``
            (1 where ``z = 0``); empty when not held (``mode="true"`` linearisation).
        alpha: tuple of real ``(C_l, H, W)``: ``(s_r + s_i)/2``; empty when not held.
        beta: tuple of real ``(C_l, H, W)``: ``(s_r - s_i)/2``; empty when not held.
        grid: ``(H, W)`` (static): the reduced grid ``(Y, X)`` from
            :func:`activation_masks` or the full grid ``(Ny, Nx)`` from :func:`full_grid_masks`.
        mode: ``"true"`` or ``"frozen"`` (static): the linearisation :meth:`coefficients` returns.
    """

    mask: tuple = ()
    alpha: tuple = ()
    beta: tuple = ()
    grid: tuple = ()
    mode: str = "true"

    @property
    def num_hidden(self) -> int:
        return max(len(self.mask), len(self.alpha))

    def coefficients(self, l: int):
        """Coefficients of hidden layer ``l`` (0-based): ``(m,)`` (frozen) or ``(alpha, beta)`` (true)."""
        return (self.mask[l],) if self.mode == "frozen" else (self.alpha[l], self.beta[l])

    def require(self, *fields: str) -> None:
        """Raise ``ValueError`` unless every named field is held for every hidden layer."""
        for f in fields:
            if len(getattr(self, f)) != self.num_hidden:
                raise ValueError(f"these activation masks (mode={self.mode!r}) do not hold {f!r}; compute them with mode=None")

    @property
    def beta_fraction(self) -> float:
        """Fraction of hidden activations with ``beta != 0`` (NaN when ``beta`` is not held)."""
        if not self.beta:
            return float("nan")
        nz = sum(float(jnp.sum(b != 0)) for b in self.beta)
        return nz / sum(b.size for b in self.beta)


jax.tree_util.register_dataclass(ActivationMasks, data_fields=["mask", "alpha", "beta"], meta_fields=["grid", "mode"])


def split_activation(z, slope):
    """``(m, alpha, beta)`` of one pre-activation (elementwise).

    ``CLReLU_a(z) = m z = alpha z + beta conj(z)``: ``m`` is the (frozen) activation
    mask, ``(alpha, beta)`` the widely-linear derivative. Under ``jit`` unused outputs
    cost nothing.
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


def masks_from_preactivations(zs: Sequence, slope, *, grid: tuple | None = None, mode: str | None = None) -> ActivationMasks:
    """:class:`ActivationMasks` of a list of hidden pre-activations ``[z_1..z_{L-1}]``.

    Args:
        zs: hidden pre-activations ``(C_l, H, W)``.
        slope: negative slope of the complex leaky ReLU (may be traced).
        grid: ``(H, W)``; default from ``zs`` (required when ``zs`` is empty).
        mode: ``None`` keeps ``mask``, ``alpha`` and ``beta`` (labelled ``"true"``);
            ``"true"`` or ``"frozen"`` keeps only what that linearisation needs.
    """
    if grid is None:
        if not zs:
            raise ValueError("give grid=(H, W) when there are no hidden pre-activations")
        grid = zs[0].shape[-2:]
    parts = [split_activation(z, slope) for z in zs]
    keep = _FIELDS[mode if mode is None else check_mode(mode)]
    fields = {f: tuple(p[i] for p in parts) for i, f in enumerate(("mask", "alpha", "beta")) if f in keep}
    return ActivationMasks(**fields, grid=tuple(int(n) for n in grid), mode=mode or "true")


def activation_masks(kernels: Sequence, reduced, sampling: Sampling, slope, *, mode: str | None = None) -> ActivationMasks:
    """Activation masks of every hidden layer from a k-space inference pass.

    Runs :func:`rakijax.kspace_net.forward_hidden` (circular edges) on the reduced
    grid and, for each hidden pre-activation ``z_l`` (``l = 1..L-1``), returns

        m_l = s_a(z_l) / z_l,   alpha_l = (s_r + s_i)/2,   beta_l = (s_r - s_i)/2,

    so that ``s_a(z) = m z = alpha z + beta conj(z)`` exactly (up to the rounding of
    one complex division for ``m``). jit- and vmap-compatible (``slope`` may be traced).

    Args:
        kernels: list of complex kernels ``(cout, cin, kh, kw)`` (shared network format).
        reduced: reduced-grid k-space ``(Nc, Y, X)`` (complex).
        sampling: the sampling; ``reduced`` must have ``sampling.num_reduced`` rows.
        slope: negative slope ``a`` of the complex leaky ReLU (float, may be traced).
        mode: ``None`` (all of ``m``, ``alpha``, ``beta``), or ``"true"``/``"frozen"``
            for only the coefficients of that linearisation.

    Returns:
        :class:`ActivationMasks` on the reduced grid with ``L-1`` layers of ``(C_l, Y, X)``
        arrays (none for a one-layer network such as GRAPPA).

    Raises:
        ValueError: ``reduced`` not ``(Nc, Y, X)`` with ``Nc`` the kernels' input channels
            and ``Y`` the sampling's acquired lines, a broken kernel chain, unknown mode.
    """
    kernels = [jnp.asarray(k) for k in kernels]
    check_reduced(kernels, reduced, sampling)
    if mode is not None:
        check_mode(mode)
    return _masks_jit(kernels, jnp.asarray(reduced), slope, mode=mode)


@partial(jax.jit, static_argnames=("mode",))
def _masks_jit(kernels, reduced, slope, *, mode):
    zs = forward_hidden(kernels, reduced, slope, padding="circular")
    return masks_from_preactivations(zs[:-1], slope, grid=reduced.shape[-2:], mode=mode)


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
        mask=tuple(place_on_full_grid(m, sampling, 1) for m in masks.mask),
        alpha=tuple(place_on_full_grid(a, sampling, 1) for a in masks.alpha),
        beta=tuple(place_on_full_grid(b, sampling, 0) for b in masks.beta),
        grid=(sampling.ny, masks.grid[1]),
        mode=masks.mode,
    )
