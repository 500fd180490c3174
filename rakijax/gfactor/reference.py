"""Ground truths for g-factor maps: dense ``jax.jacfwd`` and Monte Carlo pseudo-replicas.

Both take a reconstruction function ``recon_fn`` that maps the acquired reduced-grid
k-space ``u`` (Nc, Y, X) complex to reconstructed coil images (Nc, Ny, Nx) complex,
and input noise that is circular complex Gaussian with coil covariance ``Psi`` on
every acquired sample, independent across samples: ``n = L w`` with
``Psi = L L^H`` and ``E[w w^H] = I``.

* :func:`jacobian_cov` linearises ``recon_fn`` at ``u`` exactly with ``jax.jacfwd``
  of the real/imaginary split (the reconstruction need not be holomorphic; widely
  linear responses ``A dn + B conj(dn)`` are captured) and returns the per-pixel coil
  covariance. Dense: memory ``~ 2 Nc Ny Nx x 2 Nc Y X`` numbers, small grids only.
* :func:`monte_carlo_variance` adds ``noise_scale * n`` to ``u`` (covariance
  ``noise_scale**2 Psi``), reconstructs each replica and returns the variance of the
  coil-combined image divided by ``noise_scale**2`` (Robson 2008). For a linear
  reconstruction it is unbiased for the analytic value with relative standard
  deviation ``~ 1/sqrt(M)`` per pixel (the g-factor, a square root: ``~ 1/(2 sqrt(M))``).

References: Robson et al. 2008 (pseudo-replica); Breuer et al. 2009 (GRAPPA g-factor).
"""

from __future__ import annotations

import logging
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .combine import combine, combined_variance

__all__ = ["jacobian_cov", "monte_carlo_variance", "gfactor_from_variance", "dense_jacobian_bytes"]

log = logging.getLogger(__name__)


def _chol(psi, nc, dtype):
    if psi is None:
        return jnp.eye(nc, dtype=dtype)
    psi = jnp.asarray(psi, dtype)
    if psi.shape != (nc, nc):
        raise ValueError(f"noise covariance must be ({nc}, {nc}) for {nc} coils, got {psi.shape}")
    return jnp.linalg.cholesky(psi)


def dense_jacobian_bytes(u_shape, out_shape, itemsize: int = 8) -> int:
    """Bytes of the dense real Jacobian that :func:`jacobian_cov` builds."""
    return int(2 * np.prod(out_shape)) * int(2 * np.prod(u_shape)) * itemsize


def jacobian_cov(recon_fn: Callable, u, psi=None):
    """Per-pixel coil covariance of the linear response of ``recon_fn`` at ``u``.

    ``Cov(r)[c, c'] = E[dx_c(r) conj(dx_c'(r))]`` for input noise ``n = L w`` on the
    acquired samples, computed as ``0.5 * Z Z^H`` per pixel with
    ``Z = d(Re x + i Im x) / d[Re w, Im w]`` from ``jax.jacfwd`` (each real
    component of ``w`` has variance 1/2).

    Args:
        recon_fn: ``u (Nc, Y, X) -> x (Nc', Ny, Nx)`` complex.
        u: acquired reduced-grid k-space (Nc, Y, X).
        psi: (Nc, Nc) noise covariance, default identity.

    Returns:
        (Nc', Nc', Ny, Nx) complex covariance per unit input noise.
    """
    u = jnp.asarray(u)
    nc = u.shape[0]
    L = _chol(psi, nc, u.dtype)

    def real_fn(w):
        wr, wi = w
        n = jnp.einsum("cd,dyx->cyx", L, jax.lax.complex(wr, wi))
        x = recon_fn(u + n)
        return jnp.real(x), jnp.imag(x)

    zero = jnp.zeros(u.shape, jnp.real(u).dtype)
    jr, ji = jax.jacfwd(real_fn)((zero, zero))  # each: tuple over (wr, wi) of (Nc', Ny, Nx, Nc, Y, X)
    z = jnp.concatenate(
        [(jr[k] + 1j * ji[k]).reshape(jr[k].shape[:3] + (-1,)) for k in range(2)], axis=-1
    )  # (Nc', Ny, Nx, 2K)
    return 0.5 * jnp.einsum("cyxk,dyxk->cdyx", z, jnp.conj(z))


def monte_carlo_variance(
    recon_fn: Callable,
    u,
    psi,
    p,
    *,
    key,
    replicas: int = 1000,
    noise_scale: float = 1.0,
    chunk: int = 100,
    progress: bool = False,
):
    """Pseudo-replica variance of the coil-combined image, per unit input noise.

    Args:
        recon_fn: ``u (Nc, Y, X) -> x (Nc', Ny, Nx)``; called under ``vmap``.
        u: acquired reduced-grid k-space (Nc, Y, X).
        psi: (Nc, Nc) noise covariance or ``None`` (identity).
        p: (Nc', Ny, Nx) coil-combination weights (``rho = sum conj(p) x``).
        key: PRNG key; replica ``i`` uses ``split(key, replicas)[i]`` so results do
            not depend on ``chunk``.
        replicas: number of replicas ``M >= 2``.
        noise_scale: noise standard deviation relative to ``Psi`` (covariance
            ``noise_scale**2 Psi``); small values probe the linear response.
        chunk: replicas reconstructed per batched call (bounds memory).
        progress: show a tqdm progress bar.

    Returns:
        (Ny, Nx) sample variance of ``rho`` divided by ``noise_scale**2``.
    """
    if replicas < 2:
        raise ValueError(f"need at least 2 replicas, got {replicas}")
    if not noise_scale > 0:
        raise ValueError(f"noise_scale must be positive, got {noise_scale}")
    u = jnp.asarray(u)
    nc = u.shape[0]
    L = _chol(psi, nc, u.dtype)
    rdt = jnp.real(u).dtype
    rho0 = combine(recon_fn(u), p)
    keys = jax.random.split(key, replicas)

    @jax.jit
    def batch(ks):
        def one(k):
            kr, ki = jax.random.split(k)
            w = (jax.random.normal(kr, u.shape, rdt) + 1j * jax.random.normal(ki, u.shape, rdt)) / np.sqrt(2.0)
            n = noise_scale * jnp.einsum("cd,dyx->cyx", L, w.astype(u.dtype))
            return combine(recon_fn(u + n), p) - rho0

        d = jax.vmap(one)(ks)
        return jnp.sum(d, axis=0), jnp.sum(jnp.abs(d) ** 2, axis=0)

    s1 = jnp.zeros(rho0.shape, rho0.dtype)
    s2 = jnp.zeros(rho0.shape, rdt)
    starts = range(0, replicas, chunk)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="Monte Carlo replicas", unit="chunk")
    for i in starts:
        a, b = batch(keys[i : i + chunk])  # a shorter last chunk compiles once more
        s1, s2 = s1 + a, s2 + b
    m = replicas
    var = (s2 - jnp.abs(s1) ** 2 / m) / (m - 1)
    return var / noise_scale**2


def gfactor_from_variance(var, p, psi, R: float):
    """``g = sqrt(var) / (sqrt(p^H Psi p) sqrt(R))``; ``psi`` None means identity."""
    if psi is None:
        psi = jnp.eye(p.shape[0], dtype=p.dtype)
    var_full = combined_variance(psi, p)
    ok = var_full > 0
    return jnp.where(ok, jnp.sqrt(jnp.maximum(var, 0)) / jnp.sqrt(jnp.where(ok, var_full, 1) * R), 0.0)
