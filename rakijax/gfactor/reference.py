"""Ground truths for g-factor maps: dense ``jax.jacfwd`` and Monte Carlo pseudo-replicas.

Input noise is circular complex Gaussian with coil covariance ``Psi`` on every acquired
sample, independent across samples: ``n = L w`` with ``Psi = L L^H`` and ``E[w w^H] = I``.

* :func:`jacobian_cov` linearises a reconstruction function ``recon_fn`` (reduced grid
  (Nc, Y, X) -> coil images (Nc', Ny, Nx), complex) at ``reduced`` exactly with
  ``jax.jacfwd`` of the real/imaginary split (the reconstruction need not be
  holomorphic; widely linear responses ``A dn + B conj(dn)`` are captured) and returns
  the per-pixel coil covariance. Dense: memory ``~ 2 Nc Ny Nx x 2 Nc Y X`` numbers,
  small grids only.
* :func:`monte_carlo_variance` is the pseudo-replica variance of the k-space network
  itself (GRAPPA: slope 1): ``noise_scale * n`` is added to ``reduced`` (covariance
  ``noise_scale**2 Psi``), each replica is reconstructed by
  :func:`rakijax.kspace_net.apply_network` and the variance of the coil-combined image is
  divided by ``noise_scale**2`` (Robson 2008). Kernels, slope, ``psi``, ``p`` and the
  noise scale are traced: one compiled program per shape, whatever the numbers.
  :func:`pseudo_replica_variance` is the same estimator for any ``recon_fn`` (compiled
  once per function object and shape).

For a linear reconstruction the variance is unbiased for the analytic value with relative
standard deviation ``~ 1/sqrt(M)`` per pixel for circular noise in the combined image (up to
``sqrt(2/M)`` for improper, e.g. widely-linear, responses); the g-factor, a square root,
has half that: ``~ 1/(2 sqrt(M))``.

References: Robson et al. 2008 (pseudo-replica); Breuer et al. 2009 (GRAPPA g-factor).
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ..fft import ifft2c
from ..kspace_net import apply_network
from ..sampling import Sampling
from ..validate import check_reduced
from .combine import combine, noise_covariance

__all__ = ["jacobian_cov", "monte_carlo_variance", "pseudo_replica_variance", "dense_jacobian_bytes"]

log = logging.getLogger(__name__)


def _chol(psi, nc, dtype):
    """Cholesky factor ``L`` of the checked ``psi`` (identity for ``None``)."""
    return jnp.linalg.cholesky(noise_covariance(psi, nc, dtype))


def dense_jacobian_bytes(u_shape, out_shape, itemsize: int = 8) -> int:
    """Bytes of the dense real Jacobian that :func:`jacobian_cov` builds."""
    return int(2 * np.prod(out_shape)) * int(2 * np.prod(u_shape)) * itemsize


def jacobian_cov(recon_fn: Callable, reduced, psi=None):
    """Per-pixel coil covariance of the linear response of ``recon_fn`` at ``reduced``.

    ``Cov(r)[c, c'] = E[dx_c(r) conj(dx_c'(r))]`` for input noise ``n = L w`` on the
    acquired samples, computed as ``0.5 * Z Z^H`` per pixel with
    ``Z = d(Re x + i Im x) / d[Re w, Im w]`` from ``jax.jacfwd`` (each real
    component of ``w`` has variance 1/2).

    Args:
        recon_fn: ``reduced (Nc, Y, X) -> x (Nc', Ny, Nx)`` complex.
        reduced: acquired reduced-grid k-space (Nc, Y, X).
        psi: (Nc, Nc) noise covariance, default identity.

    Returns:
        (Nc', Nc', Ny, Nx) complex covariance per unit input noise.
    """
    u = jnp.asarray(reduced)
    L = _chol(psi, u.shape[0], u.dtype)

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


def _network_images(params, v, sampling: Sampling):
    """Coil images of the k-space network ``params = (kernels, slope)`` on the reduced grid ``v``."""
    if sampling.R == 1:
        return ifft2c(v)
    kernels, slope = params
    return ifft2c(apply_network(kernels, v, sampling, slope))


def _call(params, v, recon_fn):
    """``recon_fn(v)`` (``params`` None) or ``recon_fn(params, v)``: :func:`pseudo_replica_variance`'s
    function, static as the ``context``."""
    return recon_fn(v) if params is None else recon_fn(params, v)


@partial(jax.jit, static_argnames=("image_fn", "context"))
def _centre(image_fn, context, params, reduced, p):
    return combine(image_fn(params, reduced, context), p)


@partial(jax.jit, static_argnames=("image_fn", "context"))
def _moments(image_fn, context, params, reduced, chol, p, rho0, keys, weight, noise_scale):
    """Sums of ``d`` and ``|d|^2`` of ``d = rho(reduced + noise) - rho0`` over one chunk of replicas.

    ``weight`` (chunk,) is 1 for real replicas and 0 for the padding of a short last chunk,
    so every chunk has the same shape (one compiled program).
    """
    rdt = jnp.real(reduced).dtype

    def one(k, wgt):
        kr, ki = jax.random.split(k)
        w = (jax.random.normal(kr, reduced.shape, rdt) + 1j * jax.random.normal(ki, reduced.shape, rdt)) / np.sqrt(2.0)
        n = noise_scale * jnp.einsum("cd,dyx->cyx", chol, w.astype(reduced.dtype))
        return wgt * (combine(image_fn(params, reduced + n, context), p) - rho0)

    d = jax.vmap(one)(keys, weight.astype(rdt))
    return jnp.sum(d, axis=0), jnp.sum(jnp.abs(d) ** 2, axis=0)


def _replica_variance(image_fn, context, params, reduced, *, psi, p, key, replicas, noise_scale, chunk, progress):
    if int(replicas) < 2:
        raise ValueError(f"need at least 2 replicas, got {replicas}")
    if not noise_scale > 0:
        raise ValueError(f"noise_scale must be positive, got {noise_scale}")
    if int(chunk) < 1:
        raise ValueError(f"chunk must be a positive number of replicas, got {chunk}")
    m, chunk = int(replicas), int(min(chunk, replicas))
    reduced = jnp.asarray(reduced)
    p = jnp.asarray(p)
    chol = _chol(psi, reduced.shape[0], reduced.dtype)
    rdt = jnp.real(reduced).dtype
    scale = jnp.asarray(noise_scale, rdt)
    rho0 = _centre(image_fn, context, params, reduced, p)
    n_chunks = -(-m // chunk)
    keys = jax.random.split(key, m)
    pad = n_chunks * chunk - m
    if pad:  # a short last chunk: pad with repeated keys at weight 0 (same shape, no recompile)
        keys = jnp.concatenate([keys, keys[:pad]])
    weight = jnp.asarray(np.arange(n_chunks * chunk) < m)
    s1 = jnp.zeros(rho0.shape, rho0.dtype)
    s2 = jnp.zeros(rho0.shape, rdt)
    for i in tqdm(range(n_chunks), desc="Monte Carlo replicas", unit="chunk", disable=not progress):
        sl = slice(i * chunk, (i + 1) * chunk)
        a, b = _moments(image_fn, context, params, reduced, chol, p, rho0, keys[sl], weight[sl], scale)
        s1, s2 = s1 + a, s2 + b
    var = (s2 - jnp.abs(s1) ** 2 / m) / (m - 1)
    return var / scale**2


def monte_carlo_variance(
    kernels: Sequence,
    reduced,
    sampling: Sampling,
    slope,
    *,
    psi,
    p,
    key,
    replicas: int = 1000,
    noise_scale: float = 1.0,
    chunk: int = 100,
    progress: bool = False,
):
    """Pseudo-replica variance of the coil-combined k-space network reconstruction.

    Each replica adds noise of covariance ``noise_scale**2 Psi`` to the acquired samples
    ``reduced``, reconstructs ``x = ifft2c(apply_network(kernels, reduced + n, sampling,
    slope))`` (the actual nonlinear network; GRAPPA is slope 1) and combines
    ``rho = sum conj(p) x``. Kernels, ``slope``, ``psi``, ``p`` and ``noise_scale`` are
    traced: a second call with other numbers of the same shapes does not recompile.

    Args:
        kernels: the network (``[W]`` for GRAPPA); ignored at ``R = 1``.
        reduced: acquired reduced-grid k-space (Nc, Y, X).
        sampling: the sampling pattern.
        slope: negative slope of the complex leaky ReLU (1 for GRAPPA).
        psi: (Nc, Nc) noise covariance or ``None`` (identity).
        p: (Nc, Ny, Nx) coil-combination weights.
        key: PRNG key; replica ``i`` uses ``split(key, replicas)[i]`` so results do
            not depend on ``chunk``.
        replicas: number of replicas ``M >= 2``.
        noise_scale: noise standard deviation relative to ``Psi``; small values probe the
            linear response.
        chunk: replicas reconstructed per batched call (bounds memory).
        progress: show a tqdm progress bar.

    Returns:
        (Ny, Nx) sample variance of ``rho`` divided by ``noise_scale**2``
        (:func:`rakijax.gfactor.combine.gfactor_from_variance` turns it into ``g``).

    Raises:
        ValueError: shapes that do not match, ``replicas < 2``, ``noise_scale <= 0``, a bad ``psi``.
    """
    reduced = jnp.asarray(reduced)
    kernels = tuple(jnp.asarray(w) for w in kernels) if sampling.R > 1 else None
    check_reduced(kernels, reduced, sampling)
    params = None if kernels is None else (kernels, jnp.asarray(slope, jnp.real(reduced).dtype))
    return _replica_variance(
        _network_images, sampling, params, reduced, psi=psi, p=p, key=key, replicas=replicas,
        noise_scale=noise_scale, chunk=chunk, progress=progress,
    )


def pseudo_replica_variance(
    recon_fn: Callable,
    reduced,
    *,
    psi,
    p,
    key,
    replicas: int = 1000,
    noise_scale: float = 1.0,
    chunk: int = 100,
    progress: bool = False,
    params=None,
):
    """:func:`monte_carlo_variance` for any reconstruction ``recon_fn``.

    ``recon_fn`` maps the reduced grid (Nc, Y, X) to coil images (Nc', Ny, Nx) and is
    called under ``vmap``; it is a static argument of the compiled program (hashed), so
    reuse the same function object, or an equal hashable one, to avoid recompiling. With
    ``params`` (a pytree of arrays, traced) it is called as ``recon_fn(params, v)``: new
    kernels of the same shapes then reuse the compiled program. Other arguments as in
    :func:`monte_carlo_variance`.
    """
    return _replica_variance(
        _call, recon_fn, params, reduced, psi=psi, p=p, key=key, replicas=replicas,
        noise_scale=noise_scale, chunk=chunk, progress=progress,
    )
