"""Analytic GRAPPA g-factor maps (Breuer 2009), per pixel at full resolution.

A linear reduced-grid network (GRAPPA) is, in image space, one ``Nc x Nc`` matrix
per pixel applied to the aliased coil images (:func:`rakijax.image_space.weights.linear_unmixing`):

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

from ..fft import ifft2c
from ..image_space.operator import complex_dtype
from ..image_space.weights import kernel_phases, linear_unmixing, output_phases
from ..kspace_net import apply_network, compose_linear
from ..sampling import Sampling
from ..validate import check_kernels, check_reduced
from .combine import combination_weights, combined_variance, gfactor_from_variance, noise_covariance
from .result import GFactorResult

__all__ = ["grappa_cov", "grappa_gfactor"]


def _dtype(kernels, *more):
    return complex_dtype(*[jnp.asarray(w).dtype for w in kernels], *more)


def grappa_cov(kernels: Sequence, sampling: Sampling, nx: int, *, psi=None):
    """Per-pixel coil covariance ``Cov(r) = G(r) Psi G(r)^H / R`` of a GRAPPA reconstruction.

    Args:
        kernels: ``[W]`` from :func:`rakijax.grappa.calibrate` (any linear kernel list).
            Ignored (may be empty) at ``R = 1``.
        sampling: the sampling pattern (``R``; ``Ny % R == 0``).
        nx: readout size ``Nx``.
        psi: (Nc, Nc) noise covariance of the acquired samples, default identity.
            At ``R = 1`` with no kernels give it so that ``Nc`` is known.

    Returns:
        (Nc, Nc, Ny, Nx) complex covariance per unit input noise (a fully sampled
        scan gives ``Psi``).

    Raises:
        ValueError: ``Ny % R != 0``, shapes that do not match.

    References:
        Breuer et al., MRM 62:739 (2009).
    """
    sampling.require_periodic("the analytic GRAPPA g-factor")
    kernels = [jnp.asarray(w) for w in kernels]
    shape = (sampling.ny, int(nx))
    if sampling.R == 1:
        if psi is None and not kernels:
            raise ValueError("at R=1 with no kernels give psi so that the number of coils is known")
        nc = kernels[0].shape[1] if kernels else jnp.shape(psi)[0]
        P = noise_covariance(psi, nc, _dtype(kernels, *([] if psi is None else [jnp.asarray(psi).dtype])))
        return jnp.broadcast_to(P[:, :, None, None], (nc, nc) + shape)
    check_kernels(kernels, sampling.R)
    nc = kernels[0].shape[1]
    dtype = _dtype(kernels, *([] if psi is None else [jnp.asarray(psi).dtype]))
    P = noise_covariance(psi, nc, dtype)
    G = _unmixing([w.astype(dtype) for w in kernels], sampling, shape[1])
    return _cov(G, P, sampling.R)


@partial(jax.jit, static_argnames=("sampling", "nx"))
def _unmixing(kernels, sampling, nx):
    return linear_unmixing(kernels, sampling, nx)


@partial(jax.jit, static_argnames=("R",))
def _cov(G, P, R):
    return jnp.einsum("abyx,bc,dcyx->adyx", G, P, jnp.conj(G)) / R


def grappa_gfactor(kernels: Sequence, reduced, sampling: Sampling, *, psi=None, p=None, return_cov: bool = False) -> GFactorResult:
    """Analytic GRAPPA g-factor map (Breuer 2009), the same result type as RAKI's.

    ``g(r) = sqrt(v^H Psi v / R) / (sqrt(p^H Psi p) sqrt(R))`` with ``v = G(r)^H p(r)``,
    i.e. ``sqrt(p^H Cov(r) p) / (sqrt(p^H Psi p) sqrt(R))`` without forming ``G`` or
    ``Cov``: ``v`` comes straight from the separable image-space kernel (cost
    ``(R-1) Nc^2 kh Ny Nx``, memory ``O((R-1) Nc kh Ny Nx)``). Same value as
    :func:`rakijax.gfactor.combine.gfactor_from_cov` on :func:`grappa_cov` (tested).
    Pixels where ``p`` vanishes get ``g = 0``.

    Args:
        kernels: ``[W]`` (ignored, may be empty, at ``R = 1``).
        reduced: acquired reduced-grid k-space (Nc, Y, Nx); only its shape is used when
            ``p`` is given.
        sampling: the sampling pattern (``Ny % R == 0``).
        psi: (Nc, Nc) noise covariance or ``None`` (identity).
        p: (Nc, Ny, Nx) combination weights; default ``x/RSS(x)`` of the GRAPPA
            reconstruction ``x = ifft2c(apply_network(kernels, reduced, sampling, 1))``.
        return_cov: also return the (Nc, Nc, Ny, Nx) covariance maps (:func:`grappa_cov`).

    Returns:
        :class:`~rakijax.gfactor.result.GFactorResult` with ``linearisation=None`` and
        ``bands=None``.

    Raises:
        ValueError: ``Ny % R != 0``, shapes that do not match.

    References:
        Breuer et al., MRM 62:739 (2009).
    """
    sampling.require_periodic("the analytic GRAPPA g-factor")
    reduced = jnp.asarray(reduced)
    kernels = [jnp.asarray(w) for w in kernels] if sampling.R > 1 else []
    check_reduced(kernels or None, reduced, sampling)
    nc, _, nx = reduced.shape
    if p is None:
        k = reduced if sampling.R == 1 else apply_network(kernels, reduced, sampling, 1.0)
        p = combination_weights(ifft2c(k))
    p = jnp.asarray(p)
    if p.shape != (nc, sampling.ny, nx):
        raise ValueError(f"combination weights {p.shape} do not match (Nc, Ny, Nx) = ({nc}, {sampling.ny}, {nx})")
    dtype = _dtype(kernels, p.dtype, *([] if psi is None else [jnp.asarray(psi).dtype]))
    P = noise_covariance(psi, nc, dtype)
    p = p.astype(dtype)
    if sampling.R == 1:
        g = gfactor_from_variance(combined_variance(P, p), p, P, 1)
    else:
        w = compose_linear(kernels) if len(kernels) > 1 else kernels[0]
        v = _unmixing_adjoint(w.astype(dtype), p, sampling.R)
        g = gfactor_from_variance(combined_variance(P, v) / sampling.R, p, P, sampling.R)
    cov = grappa_cov(kernels, sampling, nx, psi=P) if return_cov else None
    return GFactorResult(g=g, cov=cov, linearisation=None, p=p, bands=None)


@partial(jax.jit, static_argnames=("R",))
def _unmixing_adjoint(w, p, R):
    """``v(r) = G(r)^H p(r)`` without forming ``G`` (Nc x Nc per pixel).

    With ``G[(c), i](r) = delta_ci + sum_d ph_d(ry) W~[(d-1)Nc + c, i](r)`` and the
    separable ``W~[o, i](r) = sum_{y, x} W[o, i, y, x] ey[y, ry] ex[x, rx]``
    (:func:`rakijax.image_space.weights.kernel_phases`):

        v_i(r) = p_i(r) + sum_{o, y} E[o, y, ry] p_{c(o)}(r) B[o, i, y, rx],
        B = sum_x conj(W ex),  E[o, y, ry] = conj(ph_{d(o)}(ry) ey[y, ry])

    a batched (over ``rx``) matrix product of cost ``(R-1) Nc^2 kh Ny Nx``.
    """
    cout, nc, kh, kw = w.shape
    _, ny, nx = p.shape
    dt = w.dtype
    ey, ex = kernel_phases(kh, kw, (ny, nx), R, dt)  # (kh, Ny), (kw, Nx)
    ph = output_phases(R, ny, dt)  # (R-1, Ny)
    B = jnp.einsum("oiyx,xX->oiyX", jnp.conj(w), jnp.conj(ex))  # (cout, Nc, kh, Nx)
    E = jnp.conj(jnp.repeat(ph, nc, axis=0)[:, None, :] * ey[None])  # (cout, kh, Ny)
    pp = jnp.tile(p, (R - 1, 1, 1))  # (cout, Ny, Nx): channel (d-1)Nc + c holds p_c
    L = E[:, :, :, None] * pp[:, None]  # (cout, kh, Ny, Nx)
    return p + jnp.einsum("oyYX,oiyX->iYX", L, B, precision=jax.lax.Precision.HIGHEST)
