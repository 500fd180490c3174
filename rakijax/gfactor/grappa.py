"""Analytic GRAPPA g-factor maps (Breuer 2009), per pixel at full resolution.

A linear reduced-grid network (GRAPPA) is, in image space, one ``Nc x Nc`` matrix
per pixel applied to the aliased coil images (:func:`rakijax.grappa.image_weights`):

    x(r) = G(r) a(r),   a = ifft2c(zero_filled).

Noise ``n`` of coil covariance ``Psi`` on each of the ``N/R`` acquired samples
(``N = Ny*Nx``), independent across samples, gives aliased images of per-pixel
coil covariance ``Psi/R`` under the unitary inverse FFT, so

    Cov(r) = G(r) Psi G(r)^H / R

and with the combination weights ``p`` (DESIGN.md)

    g(r) = sqrt(p^H Cov(r) p) / ( sqrt(p^H Psi p) * sqrt(R) ).

At ``R = 1`` (nothing to reconstruct) ``G = I``, ``Cov = Psi`` and ``g = 1``.
Requires ``Ny % R == 0`` (the reduced grid is then exactly periodic).

References:
    Breuer et al., "General formulation for quantitative G-factor calculation in
    GRAPPA reconstructions", MRM 62:739 (2009).
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp

import numpy as np

from ..image_space.weights import linear_unmixing, shift_phase
from ..kspace_net import anchor, compose_linear
from ..sampling import Sampling
from .combine import combined_variance

__all__ = ["grappa_cov", "grappa_gfactor"]


def _check(kernels, sampling: Sampling, shape, psi):
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2:
        raise ValueError(f"shape must be (Ny, Nx), got {shape}")
    ny, nx = shape
    R = sampling.R
    if ny != sampling.ny:
        raise ValueError(f"shape {shape} has Ny={ny} but the sampling has Ny={sampling.ny}")
    if ny % R:
        raise ValueError(
            f"the analytic GRAPPA g-factor needs Ny divisible by R (Ny={ny}, R={R}): the reduced grid "
            "is then periodic and the image-space form exact; crop or zero-pad ky to a multiple of R"
        )
    kernels = [jnp.asarray(w) for w in kernels]
    if R > 1:
        if not kernels:
            raise ValueError(f"need a kernel list at R={R}, got an empty one")
        if kernels[-1].shape[0] != (R - 1) * kernels[0].shape[1]:
            raise ValueError(
                f"kernels {[tuple(w.shape) for w in kernels]} do not predict (R-1)*Nc channels at R={R}"
            )
    return kernels, shape


def _psi(psi, nc, dtype):
    if psi is None:
        return jnp.eye(nc, dtype=dtype)
    psi = jnp.asarray(psi)
    if psi.shape != (nc, nc):
        raise ValueError(f"noise covariance must be ({nc}, {nc}) for {nc} coils, got {psi.shape}")
    return psi.astype(dtype)


def _dtype(kernels, default=None):
    dts = [jnp.asarray(w).dtype for w in kernels] + ([default] if default is not None else [])
    dt = jnp.result_type(*dts) if dts else jnp.complex64
    return jnp.result_type(dt, jnp.complex64)


@partial(jax.jit, static_argnames=("shape", "R"))
def _unmixing(kernels, shape, R):
    return linear_unmixing(kernels, shape, R)


def _unmix(kernels, shape, R, nc, dtype):
    if R == 1:
        return jnp.broadcast_to(jnp.eye(nc, dtype=dtype)[:, :, None, None], (nc, nc) + shape)
    return _unmixing([w.astype(dtype) for w in kernels], shape, R)


def grappa_cov(kernels: Sequence, sampling: Sampling, shape: tuple[int, int], psi=None):
    """Per-pixel coil covariance ``Cov(r) = G(r) Psi G(r)^H / R`` of a GRAPPA reconstruction.

    Args:
        kernels: ``[W]`` from :func:`rakijax.grappa.calibrate` (any linear kernel list).
            Ignored (may be empty) at ``R = 1``.
        sampling: the sampling pattern (``R``; ``Ny % R == 0``).
        shape: ``(Ny, Nx)`` of the full grid.
        psi: (Nc, Nc) noise covariance of the acquired samples, default identity.
            At ``R = 1`` give it (or ``None`` with ``kernels`` holding one kernel) so
            that ``Nc`` is known.

    Returns:
        (Nc, Nc, Ny, Nx) complex covariance per unit input noise (a fully sampled
        scan gives ``Psi``).

    Raises:
        ValueError: ``Ny % R != 0``, shapes that do not match.

    References:
        Breuer et al., MRM 62:739 (2009).
    """
    kernels, shape = _check(kernels, sampling, shape, psi)
    nc = _ncoils(kernels, psi)
    dtype = _dtype(kernels, None if psi is None else jnp.asarray(psi).dtype)
    P = _psi(psi, nc, dtype)
    G = _unmix(kernels, shape, sampling.R, nc, dtype)
    return _cov(G, P, sampling.R)


@partial(jax.jit, static_argnames=("R",))
def _cov(G, P, R):
    return jnp.einsum("abyx,bc,dcyx->adyx", G, P, jnp.conj(G)) / R


def _ncoils(kernels, psi):
    if kernels:
        return kernels[0].shape[1]
    if psi is None:
        raise ValueError("at R=1 with no kernels give psi so that the number of coils is known")
    return jnp.asarray(psi).shape[0]


def grappa_gfactor(kernels: Sequence, sampling: Sampling, shape: tuple[int, int], psi, p):
    """Analytic GRAPPA g-factor map.

    ``g(r) = sqrt(v^H Psi v / R) / (sqrt(p^H Psi p) sqrt(R))`` with ``v = G(r)^H p(r)``,
    i.e. ``sqrt(p^H Cov(r) p) / (sqrt(p^H Psi p) sqrt(R))`` without forming ``G`` or
    ``Cov``: ``v`` comes straight from the separable image-space kernel (cost
    ``(R-1) Nc^2 kh Ny Nx``, memory ``O((R-1) Nc kh Ny Nx)``). Same value as
    :func:`rakijax.gfactor.combine.gfactor_from_cov` on :func:`grappa_cov` (tested).
    Pixels where ``p`` vanishes get ``g = 0``.

    Args:
        kernels: ``[W]`` (ignored at ``R = 1``).
        sampling: the sampling pattern (``Ny % R == 0``).
        shape: ``(Ny, Nx)``.
        psi: (Nc, Nc) noise covariance or ``None`` (identity).
        p: (Nc, Ny, Nx) combination weights
            (:func:`rakijax.gfactor.combine.combination_weights`).

    Returns:
        (Ny, Nx) real g-factor map.

    Raises:
        ValueError: ``Ny % R != 0``, shapes that do not match.

    References:
        Breuer et al., MRM 62:739 (2009).
    """
    kernels, shape = _check(kernels, sampling, shape, psi)
    p = jnp.asarray(p)
    nc = p.shape[0]
    if p.shape != (nc,) + shape or (kernels and kernels[0].shape[1] != nc):
        raise ValueError(
            f"combination weights {p.shape} do not match (Nc, Ny, Nx) = "
            f"({kernels[0].shape[1] if kernels else nc}, {shape[0]}, {shape[1]})"
        )
    dtype = _dtype(kernels, jnp.result_type(p.dtype, *([] if psi is None else [jnp.asarray(psi).dtype])))
    P = _psi(psi, nc, dtype)
    p = p.astype(dtype)
    if sampling.R == 1:
        return _gfactor(p, P, p, 1)
    w = compose_linear(kernels) if len(kernels) > 1 else kernels[0]
    v = _unmixing_adjoint(w.astype(dtype), p, sampling.R)
    return _gfactor(v, P, p, sampling.R)


@partial(jax.jit, static_argnames=("R",))
def _unmixing_adjoint(w, p, R):
    """``v(r) = G(r)^H p(r)`` without forming ``G`` (Nc x Nc per pixel).

    With ``G[(c), i](r) = delta_ci + sum_d ph_d(ry) W~[(d-1)Nc + c, i](r)`` and the
    separable ``W~[o, i](r) = sum_{y, x} W[o, i, y, x] ey[y, ry] ex[x, rx]``
    (:func:`rakijax.image_space.weights.kernel_image_weights`):

        v_i(r) = p_i(r) + sum_{o, y} E[o, y, ry] p_{c(o)}(r) B[o, i, y, rx],
        B = sum_x conj(W ex),  E[o, y, ry] = conj(ph_{d(o)}(ry) ey[y, ry])

    a batched (over ``rx``) matrix product of cost ``(R-1) Nc^2 kh Ny Nx``.
    """
    cout, nc, kh, kw = w.shape
    _, ny, nx = p.shape
    dt = w.dtype
    ey = jnp.asarray(_phase(R * (np.arange(kh) - anchor(kh)), ny), dt)  # (kh, Ny)
    ex = jnp.asarray(_phase(np.arange(kw) - anchor(kw), nx), dt)  # (kw, Nx)
    ph = jnp.stack([shift_phase(d, ny, dt) for d in range(1, R)])  # (R-1, Ny)
    B = jnp.einsum("oiyx,xX->oiyX", jnp.conj(w), jnp.conj(ex))  # (cout, Nc, kh, Nx)
    E = jnp.conj(jnp.repeat(ph, nc, axis=0)[:, None, :] * ey[None])  # (cout, kh, Ny)
    pp = jnp.tile(p, (R - 1, 1, 1))  # (cout, Ny, Nx): channel (d-1)Nc + c holds p_c
    L = E[:, :, :, None] * pp[:, None]  # (cout, kh, Ny, Nx)
    return p + jnp.einsum("oyYX,oiyX->iYX", L, B, precision=jax.lax.Precision.HIGHEST)


def _phase(shifts, n):
    r = np.arange(n) - n // 2
    return np.exp(-2j * np.pi * np.outer(shifts, r) / n)


@partial(jax.jit, static_argnames=("R",))
def _gfactor(v, P, p, R):
    var_recon = combined_variance(P, v) / R
    var_full = combined_variance(P, p)
    ok = var_full > 0
    return jnp.where(ok, jnp.sqrt(jnp.maximum(var_recon, 0)) / jnp.sqrt(jnp.where(ok, var_full, 1) * R), 0.0)
