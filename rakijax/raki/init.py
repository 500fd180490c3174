"""Data-dependent initialisation of RAKI: the last layer solved by regularised least squares.

The network output is linear in the last kernel ``W_L``: with the hidden features
``h = s_a(... s_a(W_1 * u))`` of the ACS block fixed, the training loss of
:mod:`rakijax.raki.acs_loss` is

    L(W_L) = 1/(2N) sum_{o, p} |sum_k W_L[o, k] F[k, p] - T[o, p]|^2,

with ``F`` (K, P) the complex im2col features of ``h`` for the last layer
(``K = kh_L * kw_L * widths[-1]``, tap-major as in :func:`rakijax.raki.acs_loss.im2col`)
at the ``P`` training positions and ``T`` ((R-1)Nc, P) the loss's own targets.
Its minimiser with a small ridge is

    W_L = T F^H (F F^H + lam I)^{-1},  lam = ridge * trace(F F^H) / K,

solved with a Cholesky factorisation of the Hermitian Gram (traceable, jit- and
vmap-friendly, any number of hidden layers and kernel sizes). The hidden layers
keep their random initialisation; the optimiser then starts at the best last
layer for them instead of a random one (``RakiConfig(init="lstsq")``).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from . import acs_loss

__all__ = ["last_layer_features", "lstsq_last_layer"]


def last_layer_features(kernels: Sequence, problem: acs_loss.AcsProblem, slope, kernel_shapes, R: int):
    """Complex features ``F`` (K, P) of the last layer and targets ``T`` (cout, P) of the loss.

    ``kernels[:-1]`` are the hidden kernels (the last one is not used). Column
    ``p`` is the training position (row, column) of the loss, row ``k`` is tap-major
    (``(ty*kw + tx)*C + c``, the order of :func:`acs_loss.block_matrix`'s columns).
    """
    z = acs_loss.gemm(acs_loss.block_matrix(kernels[0]), problem.patches)
    for w in kernels[1:-1]:
        z = jnp.where(z >= 0, z, slope * z)
        s = w.shape
        z = acs_loss.gemm(acs_loss.block_matrix(w), acs_loss.im2col(z, s[-2], s[-1], R))
    z = jnp.where(z >= 0, z, slope * z)
    kh, kw = kernel_shapes[-1][-2:]
    c = z.shape[0] // 2
    f = acs_loss.im2col(z, kh, kw, R)  # (taps*2C, H', W'), tap-major, [Re; Im] within a tap
    Q = problem.targets.shape[-2]
    f = f[:, :Q, :].reshape(kh * kw, 2, c, -1)
    F = jax.lax.complex(f[:, 0], f[:, 1]).reshape(kh * kw * c, -1)
    t = problem.targets
    co = t.shape[0] // 2
    T = jax.lax.complex(t[:co], t[co:]).reshape(co, -1)
    return F, T


def lstsq_last_layer(kernels: Sequence, problem: acs_loss.AcsProblem, slope, kernel_shapes, R: int, ridge,
                     weights=None):
    """The last kernel (cout, cin, kh, kw) minimising the ACS loss (plus a ridge) for the given hidden kernels.

    Args:
        kernels: current kernels ``[W_1, ..., W_L]`` (``W_L`` only gives the shape/dtype).
        problem: the :class:`acs_loss.AcsProblem` of the fit (same targets as the loss).
        slope: negative slope of the activations (traced).
        kernel_shapes: the kernel shapes (static).
        R: acceleration factor.
        ridge: relative Tikhonov weight, ``lam = ridge * mean(diag(F F^H))`` (traced, > 0).
        weights: optional (Q,) non-negative weights of the training rows (the loss's
            row weights, e.g. 0 for the rows a cross-validation fold holds out):
            the weighted least squares ``sum_p w_p |W F_p - T_p|^2 + lam |W|^2``.
    """
    F, T = last_layer_features(kernels, problem, slope, kernel_shapes, R)
    hi = jax.lax.Precision.HIGHEST
    Fw = F
    if weights is not None:  # columns are (row, column) positions, row-major
        Fw = F * jnp.repeat(jnp.asarray(weights, jnp.real(F).dtype), F.shape[1] // problem.targets.shape[-2])[None, :]
    G = jnp.matmul(Fw, jnp.conj(F).T, precision=hi)  # (K, K) Hermitian
    B = jnp.matmul(Fw, jnp.conj(T).T, precision=hi)  # (K, cout) = F T^H
    K = G.shape[0]
    lam = ridge * jnp.real(jnp.trace(G)) / K
    G = G + lam * jnp.eye(K, dtype=G.dtype)
    c = jax.scipy.linalg.cho_factor(G, lower=True)
    X = jax.scipy.linalg.cho_solve(c, B)  # (K, cout) = W^H
    co, ci, kh, kw = kernel_shapes[-1]
    W = jnp.conj(X).T.reshape(co, kh, kw, ci).transpose(0, 3, 1, 2)
    return W.astype(kernels[-1].dtype)
