"""Coil combination and g-factor from per-pixel coil covariance (DESIGN.md).

``rho(r) = sum_c conj(p_c(r)) x_c(r)``; by default ``p = x / RSS(x)`` of the
reconstructed coil images (so ``rho = RSS``), or ``p = S / ||S||`` for given
sensitivity maps ``S``. The noise variance of ``rho`` is ``p^H Cov(r) p`` and

    g(r) = sqrt(p^H Cov(r) p) / ( sqrt(p^H Psi p) * sqrt(R) )

with ``Cov(r)`` the reconstruction's coil covariance per unit input noise
covariance ``Psi`` on the acquired samples (a fully sampled scan has ``Cov = Psi``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..validate import validate_psi

__all__ = ["combination_weights", "combine", "combined_variance", "gfactor_from_variance", "gfactor_from_cov", "noise_covariance"]


def combination_weights(x, maps=None):
    """Per-pixel unit-norm combination weights ``p`` (Nc, Ny, Nx).

    Args:
        x: reconstructed coil images (Nc, Ny, Nx).
        maps: optional sensitivity maps (Nc, Ny, Nx); default uses ``x`` itself.

    Returns:
        ``p`` with ``sum_c |p_c|^2 = 1`` where the norm is non-zero (0 elsewhere).
    """
    v = jnp.asarray(x if maps is None else maps)
    nrm = jnp.sqrt(jnp.sum(jnp.abs(v) ** 2, axis=-3, keepdims=True))
    return jnp.where(nrm > 0, v / jnp.where(nrm > 0, nrm, 1), 0)


def combine(x, p):
    """``rho = sum_c conj(p_c) x_c`` (equals RSS for ``p = x/RSS``)."""
    return jnp.sum(jnp.conj(p) * x, axis=-3)


def combined_variance(cov, p):
    """``p^H Cov(r) p`` per pixel; ``cov`` is (Nc, Nc, Ny, Nx) or (Nc, Nc) (shared by all pixels)."""
    cov = jnp.asarray(cov)
    if cov.ndim == 2:
        return jnp.real(jnp.einsum("cyx,cd,dyx->yx", jnp.conj(p), cov, p))
    return jnp.real(jnp.einsum("cyx,cdyx,dyx->yx", jnp.conj(p), cov, p))


def gfactor_from_variance(var, p, psi, R: float):
    """The g formula: ``g = sqrt(var) / (sqrt(p^H Psi p) sqrt(R))`` (DESIGN.md).

    The one home of ``g`` in rakijax: the analytic maps (RAKI, GRAPPA), the dense
    autodiff covariance and the Monte Carlo variance all end here.

    Args:
        var: (Ny, Nx) noise variance of the coil-combined reconstruction per unit input noise.
        p: (Nc, Ny, Nx) combination weights.
        psi: (Nc, Nc) input noise covariance, or ``None`` (identity).
        R: acceleration factor.

    Returns:
        (Ny, Nx) real g-factor map; 0 where ``p^H Psi p`` vanishes.
    """
    p = jnp.asarray(p)
    psi = jnp.eye(p.shape[0], dtype=p.dtype) if psi is None else jnp.asarray(psi)
    var_full = combined_variance(psi, p)
    ok = var_full > 0
    return jnp.where(ok, jnp.sqrt(jnp.maximum(var, 0)) / jnp.sqrt(jnp.where(ok, var_full, 1) * R), 0.0)


def gfactor_from_cov(cov, p, psi, R: float):
    """g-factor map from the reconstruction coil covariance ``cov`` (Nc, Nc, Ny, Nx).

    :func:`gfactor_from_variance` of ``p^H Cov(r) p``; pixels where ``p`` vanishes get ``g = 0``.
    """
    return gfactor_from_variance(combined_variance(cov, p), p, psi, R)


def noise_covariance(psi, nc: int, dtype):
    """``psi`` as a (Nc, Nc) array of ``dtype`` (identity for ``None``), checked.

    Concrete input goes through :func:`rakijax.validate.validate_psi` (square, ``Nc``
    coils, finite, Hermitian, PSD); a traced ``psi`` (under ``jit``/``vmap``) is checked
    for its shape only.

    Raises:
        ValueError: the checks above, naming the shapes.
    """
    if psi is None:
        return jnp.eye(nc, dtype=dtype)
    if isinstance(psi, jax.core.Tracer):
        if psi.shape != (nc, nc):
            raise ValueError(f"noise covariance psi has shape {psi.shape} but the data have Nc={nc} coils")
        return psi.astype(dtype)
    return jnp.asarray(validate_psi(psi, nc), dtype)
