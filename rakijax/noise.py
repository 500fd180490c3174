"""Receiver noise: covariance estimates, Cholesky prewhitening, complex Gaussian draws.

Model: thermal noise on every k-space sample is circular complex Gaussian,
independent between samples, with coil covariance ``Psi = E[n n^H]`` (Nc x Nc,
Hermitian positive definite). With the unitary FFT of :mod:`rakijax.fft` the
same ``Psi`` describes the noise of every coil-image pixel.

Prewhitening (Pruessmann 2001; Roemer 1990): with the Cholesky factor
``Psi = L L^H`` the whitening matrix ``W = L^{-1}`` gives ``W Psi W^H = I``, so
``W k`` has identity coil covariance and downstream code may take ``Psi = I``.

References: Roemer et al. 1990 (NMR phased array); Pruessmann et al. 2001 (SENSE
noise); Kellman & McVeigh 2005 (SNR units, noise covariance estimation).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .validate import check_finite, validate_psi

__all__ = [
    "estimate_psi",
    "estimate_psi_from_kspace",
    "background_mask",
    "whitening_matrix",
    "prewhiten",
    "complex_normal",
]


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def estimate_psi(noise, *, demean: bool = True):
    """Unbiased sample covariance of a noise scan.

    ``Psi_hat = (1/(S - 1)) sum_s (n_s - nbar)(n_s - nbar)^H`` (``demean=True``), or
    ``(1/S) sum_s n_s n_s^H`` for known zero-mean noise (``demean=False``); both are
    unbiased. Each entry has relative standard error about ``1/sqrt(S)``.

    Args:
        noise: (Nc, S) complex noise-only samples (coil axis first).
        demean: subtract the per-coil sample mean (costs one degree of freedom).

    Returns:
        (Nc, Nc) Hermitian covariance estimate.

    Raises:
        ValueError: not rank 2, fewer than 2 samples, NaN/Inf.
    """
    n = jnp.asarray(noise)
    if n.ndim != 2:
        raise ValueError(f"noise must have shape (Nc, S), got {n.shape}")
    s = n.shape[1]
    if s < 2:
        raise ValueError(f"need at least 2 noise samples per coil to estimate a covariance, got S={s} (shape {n.shape})")
    if _is_concrete(n):
        check_finite(np.asarray(n), "noise")
    return _sample_cov(n, demean)


@partial(jax.jit, static_argnums=1)
def _sample_cov(n, demean):
    s = n.shape[1]
    if demean:
        n = n - jnp.mean(n, axis=1, keepdims=True)
    psi = (n @ jnp.conj(n).T) / (s - 1 if demean else s)
    return 0.5 * (psi + jnp.conj(psi).T)


def background_mask(shape: tuple[int, int], fraction: float = 0.125) -> np.ndarray:
    """The four image corners, each ``round(fraction*Ny) x round(fraction*Nx)`` pixels (at least 1x1).

    The default background region of :func:`estimate_psi_from_kspace`: in a fully
    sampled (alias-free) image of a head centred in the field of view the corners
    hold no signal.
    """
    ny, nx = shape
    cy = max(1, int(round(fraction * ny)))
    cx = max(1, int(round(fraction * nx)))
    m = np.zeros((ny, nx), dtype=bool)
    m[:cy, :cx] = m[:cy, -cx:] = m[-cy:, :cx] = m[-cy:, -cx:] = True
    return m


def estimate_psi_from_kspace(kspace, *, mask=None, fraction: float = 0.125, demean: bool = True):
    """Noise covariance from the signal-free background of fully sampled k-space.

    The coil images ``x = ifft2c(k)`` are formed and the covariance of the pixels in
    the background region is estimated with :func:`estimate_psi`. Because the FFT is
    unitary, image-pixel noise has the same covariance ``Psi`` as k-space samples.
    Default region: the four image corners (:func:`background_mask` with
    ``fraction``), which hold no signal for a head centred in an alias-free field of
    view; pass ``mask`` to choose another signal-free region. Residual signal in the
    region biases the estimate upwards.

    Args:
        kspace: (Nc, Ny, Nx) fully sampled complex k-space.
        mask: optional (Ny, Nx) bool, True on signal-free pixels.
        fraction: corner size as a fraction of each image side (default region).
        demean: subtract the per-coil mean of the background pixels.

    Returns:
        (Nc, Nc) covariance estimate.

    Raises:
        ValueError: wrong rank, mask shape mismatch, fewer than 2 background pixels.
    """
    from .fft import ifft2c

    k = jnp.asarray(kspace)
    if k.ndim != 3:
        raise ValueError(f"k-space must have shape (Nc, Ny, Nx), got {k.shape}")
    nc, ny, nx = k.shape
    if mask is None:
        if not 0 < fraction <= 0.5:
            raise ValueError(f"fraction must be in (0, 0.5], got {fraction}")
        mask = background_mask((ny, nx), fraction)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (ny, nx):
        raise ValueError(f"background mask must have shape (Ny, Nx) = {(ny, nx)}, got {mask.shape}")
    if mask.sum() < 2:
        raise ValueError(f"background mask selects {int(mask.sum())} pixel(s); need at least 2")
    x = jax.jit(ifft2c)(k).reshape(nc, ny * nx)
    return estimate_psi(x[:, np.flatnonzero(mask)], demean=demean)


def whitening_matrix(psi):
    """Whitening matrix ``W = L^{-1}`` with ``Psi = L L^H`` (Cholesky), so ``W Psi W^H = I``.

    Args:
        psi: (Nc, Nc) Hermitian positive definite noise covariance.

    Returns:
        (Nc, Nc) lower-triangular ``L^{-1}``.

    Raises:
        ValueError: psi not square, not Hermitian or not positive definite.
    """
    p = jnp.asarray(psi)
    if p.ndim != 2 or p.shape[0] != p.shape[1]:
        raise ValueError(f"noise covariance psi must be a square (Nc, Nc) matrix, got shape {p.shape}")
    if _is_concrete(p):
        pn = validate_psi(np.asarray(p))
        if np.linalg.eigvalsh(pn)[0] <= 0:
            raise ValueError("noise covariance psi is singular (not positive definite); cannot whiten")
    if not jnp.iscomplexobj(p):
        p = p.astype(jnp.result_type(p.dtype, jnp.complex64))
    return _inv_cholesky(p)


@jax.jit
def _inv_cholesky(p):
    L = jnp.linalg.cholesky(0.5 * (p + jnp.conj(p).T))
    eye = jnp.eye(p.shape[0], dtype=L.dtype)
    return jax.scipy.linalg.solve_triangular(L, eye, lower=True)


def prewhiten(kspace, psi, *, axis: int = -3):
    """Whitened data ``W k`` along the coil axis, ``W = whitening_matrix(psi)``.

    The result has coil noise covariance ``I``; the signal is mixed accordingly
    (coil sensitivities become ``W S``).

    Args:
        kspace: (..., Nc, Ny, Nx) data (coil axis ``axis``; use ``axis=0`` for a
            (Nc, S) noise scan).
        psi: (Nc, Nc) noise covariance.
        axis: the coil axis of ``kspace``.

    Returns:
        Array of the shape of ``kspace``.
    """
    k = jnp.asarray(kspace)
    W = whitening_matrix(psi)
    if k.shape[axis] != W.shape[0]:
        raise ValueError(f"data have {k.shape[axis]} coils on axis {axis} (shape {k.shape}) but psi is {W.shape}")
    return _apply_coil_matrix(W, k, axis % k.ndim)


@partial(jax.jit, static_argnums=2)
def _apply_coil_matrix(W, k, axis):
    k = jnp.moveaxis(k, axis, -1)
    out = jnp.einsum("ij,...j->...i", W.astype(jnp.result_type(W, k)), k)
    return jnp.moveaxis(out, -1, axis)


def complex_normal(key, shape, psi=None, *, axis: int = -3, dtype=None):
    """Circular complex Gaussian draws with coil covariance ``E[n n^H] = Psi``.

    ``n = L z`` along ``axis``, ``z = (a + i b)/sqrt(2)``, ``a, b ~ N(0, I)``
    independent, ``Psi = L L^H``; so ``E[n n^H] = Psi`` and ``E[n n^T] = 0``.
    Different positions along the other axes are independent.

    Args:
        key: jax PRNG key.
        shape: output shape; ``shape[axis] = Nc`` when ``psi`` is given.
        psi: (Nc, Nc) covariance, or None for identity (unit variance per entry).
        axis: coil axis (default -3: (..., Nc, Ny, Nx); use 0 for a (Nc, S) scan).
        dtype: complex dtype; default complex128 under x64, else complex64
            (or psi's complex dtype).

    Returns:
        Complex array of ``shape``.
    """
    shape = tuple(int(s) for s in shape)
    if dtype is None:
        dtype = jnp.asarray(psi).dtype if psi is not None and jnp.iscomplexobj(jnp.asarray(psi)) else jnp.complex128
    dtype = jax.dtypes.canonicalize_dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.complexfloating):
        raise ValueError(f"dtype must be complex, got {dtype}")
    if psi is not None:
        p = jnp.asarray(psi)
        if p.ndim != 2 or p.shape[0] != p.shape[1]:
            raise ValueError(f"noise covariance psi must be a square (Nc, Nc) matrix, got shape {p.shape}")
        if len(shape) == 0 or shape[axis] != p.shape[0]:
            raise ValueError(f"shape {shape} must have Nc={p.shape[0]} entries on the coil axis {axis}")
        if _is_concrete(p):
            validate_psi(np.asarray(p))
    return _complex_normal(key, psi, shape, axis % max(len(shape), 1), np.dtype(dtype))


@partial(jax.jit, static_argnums=(2, 3, 4))
def _complex_normal(key, psi, shape, axis, dtype):
    rdtype = jnp.finfo(dtype).dtype
    ka, kb = jax.random.split(key)
    z = (jax.random.normal(ka, shape, rdtype) + 1j * jax.random.normal(kb, shape, rdtype)) / np.sqrt(2.0)
    z = z.astype(dtype)
    if psi is None:
        return z
    p = jnp.asarray(psi)
    # Cholesky of a PSD matrix; a tiny diagonal load keeps singular (rank-deficient) psi usable.
    pc = 0.5 * (p + jnp.conj(p).T).astype(dtype)
    eps = jnp.finfo(rdtype).eps * jnp.maximum(jnp.max(jnp.abs(jnp.diag(pc))), jnp.finfo(rdtype).tiny)
    L = jnp.linalg.cholesky(pc + 10 * eps * jnp.eye(p.shape[0], dtype=dtype))
    z = jnp.moveaxis(z, axis, -1)
    n = jnp.einsum("ij,...j->...i", L, z)
    return jnp.moveaxis(n, -1, axis)
