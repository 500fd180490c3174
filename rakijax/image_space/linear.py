"""Linear image-space operators for noise analysis (MATH.md section 3).

**Frozen masks** (Dawood 2024): with the activation masks fixed,
:class:`~rakijax.image_space.operator.ImageSpaceRaki` is complex-linear in the
aliased images, ``x = L a`` with ``L = P (W~_L K_{L-1} ... K_1 W~_1) + I``.
:func:`frozen_operator` returns it as a plain function (``jax.jvp``, ``jax.vjp``,
``jax.linear_transpose`` and ``jax.jacfwd(..., holomorphic=True)`` work on it) and
:func:`adjoint_operator` its explicit adjoint ``L^H``: per-pixel conjugate-transposed
weights, activation convolutions with the conjugate-reflected kernels ``J(K)``
(k-space product with ``conj(m)``), conjugated output phases, in reverse order.

**True derivative**: the real derivative of the complex leaky ReLU is widely linear,
``ds = alpha dz + beta conj(dz)`` (:mod:`rakijax.image_space.masks`). Conjugation in
k-space is ``J`` in image space (``ifft2c(conj k) = J(ifft2c k)``), so the derivative
of the reconstruction w.r.t. the aliased images is

    dH_l = K^alpha_l (*) dZ_l + K^beta_l (*) J(dZ_l),   dZ_l = W~_l dH_{l-1},

with ``K^alpha = ifft2c(alpha)/sqrt(N)``, ``K^beta = ifft2c(beta)/sqrt(N)`` of the
full-grid split (:class:`ImageSpaceDerivative`); it is R-linear (widely linear) in
``da`` and equals ``ifft2c`` of the ``jax.jvp`` of the k-space network.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp

from ..sampling import Sampling
from .masks import ActivationMasks, activation_masks
from .operator import (
    ImageSpaceRaki,
    circular_convolve,
    complex_dtype,
    conj_reflect,
    frozen_apply,
    image_parts,
    per_pixel_apply,
)
from .weights import output_phases, place_outputs

__all__ = [
    "frozen_adjoint",
    "frozen_operator",
    "adjoint_operator",
    "ImageSpaceDerivative",
    "true_derivative_operator",
]


_frozen_apply_jit = jax.jit(frozen_apply)


def frozen_adjoint(op: ImageSpaceRaki, b):
    """``L^H b`` for ``b`` (..., Nc, Ny, Nx): the adjoint of :func:`frozen_apply` (pure, jit-able).

    ``<L a, b> = <a, L^H b>`` with ``<u, v> = sum conj(u) v``.
    """
    R = op.R
    ny = op.shape[0]
    if R == 1:
        return b
    ph = jnp.conj(output_phases(R, ny, b.dtype))
    # adjoint of x = a + sum_d P_d y_d
    gy = jnp.concatenate([ph[d - 1][:, None] * b for d in range(1, R)], axis=-3)
    h = gy
    for l in range(len(op.weights) - 1, -1, -1):
        if l < op.num_hidden:
            h = circular_convolve(conj_reflect(op.act_kernels[l]), h)
        h = per_pixel_apply(jnp.conj(jnp.swapaxes(op.weights[l], 0, 1)), h)
    return b + h


_frozen_adjoint_jit = jax.jit(frozen_adjoint)


def frozen_operator(op: ImageSpaceRaki):
    """The frozen-mask image-space map as a function ``f(a) = L a`` (complex-linear).

    Works with ``jax.jvp``/``jax.vjp``/``jax.linear_transpose`` and
    ``jax.jacfwd(f, holomorphic=True)``. To ``jax.jit`` a function of your own that
    uses it, prefer :func:`frozen_apply` with ``op`` as an argument (so its arrays are
    not embedded as constants).
    """
    return functools.partial(_frozen_apply_jit, op)


def adjoint_operator(op: ImageSpaceRaki):
    """The explicit adjoint ``f^H(b) = L^H b`` of :func:`frozen_operator` (complex-linear)."""
    return functools.partial(_frozen_adjoint_jit, op)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ImageSpaceDerivative:
    """True (widely-linear) derivative of the image-space reconstruction w.r.t. the aliased images.

    ``dx = D(da)`` with ``dH_l = K^alpha_l (*) dZ_l + K^beta_l (*) J(dZ_l)`` (module
    docstring): R-linear, not complex-linear unless every ``beta = 0`` (slope 1).

    Attributes:
        weights: per-layer per-pixel weights as in :class:`ImageSpaceRaki`.
        alpha_kernels, beta_kernels: per hidden layer ``(C_l, Ny, Nx)`` image kernels.
        R, shape, num_coils: static.
    """

    weights: list
    alpha_kernels: list
    beta_kernels: list
    R: int = dataclasses.field(metadata=dict(static=True))
    shape: tuple = dataclasses.field(metadata=dict(static=True))
    num_coils: int = dataclasses.field(metadata=dict(static=True))

    def __call__(self, da):
        da = jnp.asarray(da)
        if da.ndim < 3 or da.shape[-3:] != (self.num_coils,) + tuple(self.shape):
            raise ValueError(f"perturbation must be (..., {self.num_coils}, {self.shape[0]}, {self.shape[1]}); got {da.shape}")
        return _derivative_jit(self, da.astype(self.weights[0].dtype))


def _derivative(op: ImageSpaceDerivative, da):
    h = da
    for l, wt in enumerate(op.weights):
        h = per_pixel_apply(wt, h)
        if l < len(op.alpha_kernels):
            h = circular_convolve(op.alpha_kernels[l], h) + circular_convolve(op.beta_kernels[l], conj_reflect(h))
    return place_outputs(da, h, op.R, op.num_coils)


_derivative_jit = jax.jit(_derivative)


def true_derivative_operator(
    kernels: Sequence, reduced, sampling: Sampling, slope, *, masks: ActivationMasks | None = None, dtype=None
):
    """Build :class:`ImageSpaceDerivative` at the reduced k-space ``reduced`` (Nc, Y, X).

    Args:
        kernels: list of ``(cout, cin, kh, kw)`` complex kernels.
        reduced: reduced-grid k-space at which the network is linearised.
        sampling: sampling pattern (``Ny % R == 0``).
        slope: negative slope of the complex leaky ReLU.
        masks: precomputed reduced-grid masks holding ``alpha``/``beta`` (else computed
            from ``reduced``).
        dtype: complex dtype (default the result type of ``reduced`` and the kernels).

    Raises:
        ValueError: ``Ny % R != 0`` or inconsistent kernels/shapes.
    """
    kernels = [jnp.asarray(k) for k in kernels]
    reduced = jnp.asarray(reduced)
    sampling.require_periodic("the exact image-space form")
    if masks is None:
        masks = activation_masks(kernels, reduced, sampling, slope, mode="true")
    if dtype is None:
        dtype = complex_dtype(reduced.dtype, *[k.dtype for k in kernels])
    weights, (ka, kb) = image_parts(kernels, masks, sampling, fields=("alpha", "beta"), dtype=dtype)
    return ImageSpaceDerivative(
        weights=weights, alpha_kernels=ka, beta_kernels=kb, R=sampling.R, shape=(sampling.ny, reduced.shape[-1]),
        num_coils=kernels[0].shape[1],
    )
