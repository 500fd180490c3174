"""RAKI k-space inference on the full grid (jit-compiled) and a one-call reconstruction."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .. import kspace_net
from ..sampling import Sampling, undersample
from ..validate import check_slope
from .config import RakiConfig
from .train import train

__all__ = ["apply", "reconstruct"]


@functools.partial(jax.jit, static_argnames=("sampling",))
def _apply_jit(kernels, reduced, slope, sampling):
    return kspace_net.apply_network(kernels, reduced, sampling, slope)


def apply(kernels, reduced, sampling: Sampling, slope=0.5):
    """Fill the missing lines of regularly undersampled k-space with a RAKI network.

    ``y = forward(kernels, reduced, a)`` with circular edges on the reduced grid,
    interleaved with the acquired lines (kept exactly as measured) by
    :func:`rakijax.kspace_net.assemble`; any ``Ny`` (the last partial period of
    ``Ny % R != 0`` is handled there), odd or even sizes. jit-compiled with the
    sampling static and the slope traced: new slopes do not recompile.

    Args:
        kernels: list of complex kernels (cout, cin, kh, kw), e.g. ``TrainResult.kernels``.
        reduced: (Nc, Y, Nx) acquired lines (the reduced grid, ``Y = sampling.num_reduced``).
        sampling: the sampling pattern.
        slope: negative slope used in training (0..1).

    Returns:
        (Nc, Ny, Nx) reconstructed k-space (jax array).

    Raises:
        ValueError: shapes of kernels / reduced / sampling disagree, bad slope.
    """
    check_slope(slope)
    kernels = [jnp.asarray(w) for w in kernels]
    reduced = jnp.asarray(reduced)
    if reduced.ndim != 3:
        raise ValueError(f"reduced k-space must be (coil, Y, kx), got shape {reduced.shape}")
    nc, Y, _ = reduced.shape
    if Y != sampling.num_reduced:
        raise ValueError(f"reduced k-space has {Y} rows but {sampling} has {sampling.num_reduced} acquired lines")
    if not kernels or kernels[0].ndim != 4 or kernels[0].shape[1] != nc:
        raise ValueError(f"first kernel {kernels[0].shape if kernels else None} does not take {nc} coils")
    if kernels[-1].shape[0] != (sampling.R - 1) * nc:
        raise ValueError(
            f"last kernel has {kernels[-1].shape[0]} outputs, need (R-1)*Nc = {(sampling.R - 1) * nc} at R={sampling.R}"
        )
    real = jnp.real(reduced).dtype
    return _apply_jit(kernels, reduced, jnp.asarray(slope, real), sampling)


def reconstruct(kspace_full, sampling: Sampling, config: RakiConfig | None = None, slope=0.5, *, key,
                progress: bool = False):
    """Retrospective RAKI reconstruction: undersample, train on the ACS, infer.

    Args:
        kspace_full: (Nc, Ny, Nx) fully sampled k-space.
        sampling: the sampling pattern (``sampling.ny == Ny``).
        config: :class:`RakiConfig` (default ``RakiConfig()``).
        slope: negative slope (0..1).
        key: PRNG key for the initialisation.
        progress: tqdm progress bar during training.

    Returns:
        ``(kspace, result)``: (Nc, Ny, Nx) reconstructed k-space and the :class:`TrainResult`.
    """
    k = np.asarray(kspace_full) if not isinstance(kspace_full, jax.Array) else kspace_full
    if k.ndim != 3:
        raise ValueError(f"k-space must be (coil, ky, kx), got shape {k.shape}")
    if k.shape[-2] != sampling.ny:
        raise ValueError(f"k-space has {k.shape[-2]} ky lines but the sampling expects {sampling.ny}")
    _, reduced, acs = undersample(k, sampling)
    result = train(acs, sampling, config, slope, key=key, progress=progress)
    return apply(result.kernels, reduced, sampling, slope), result
