"""GRAPPA application in k-space (circular edges) and its image-space form.

k-space: the kernel runs on the reduced grid of acquired lines with circular
(periodic) edges and the predicted lines are interleaved with the acquired ones
(:func:`rakijax.kspace_net.apply_network` with slope 1), so that the result equals
the image-space application

    x(r) = G(r) a(r),   a = ifft2c(zero_filled)

with the per-pixel unmixing matrices ``G(r)`` of
:func:`rakijax.image_space.weights.linear_unmixing` to float precision when
``Ny % R == 0``.

References:
    Griswold et al., MRM 47:1202 (2002); Breuer et al., MRM 62:739 (2009)
    (image-space GRAPPA weights).
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp

from ..kspace_net import apply_network
from ..sampling import Sampling, undersample
from ..validate import check_reduced
from .calibrate import calibrate

__all__ = ["apply", "reconstruct"]


@partial(jax.jit, static_argnames=("sampling",))
def _apply(kernels, reduced, sampling: Sampling):
    return apply_network(kernels, reduced, sampling, 1.0)


def apply(kernels: Sequence, reduced, sampling: Sampling):
    """Full k-space from the regularly acquired lines with a GRAPPA kernel.

    Args:
        kernels: ``[W]`` from :func:`calibrate` (any linear kspace_net kernel list
            works). Ignored at ``R = 1``.
        reduced: (Nc, Y, Nx) or (..., Nc, Y, Nx) acquired lines
            (:func:`rakijax.sampling.undersample`).
        sampling: the sampling pattern.

    Returns:
        (..., Nc, Ny, Nx) reconstructed k-space; the acquired lines are passed through.

    Raises:
        ValueError: shapes that do not match the kernel or the sampling.
    """
    reduced = jnp.asarray(reduced)
    kernels = [jnp.asarray(w) for w in kernels] if sampling.R > 1 else None
    check_reduced(kernels, reduced, sampling, batch=True)
    if sampling.R == 1:
        return reduced
    if not jnp.iscomplexobj(reduced):
        reduced = reduced.astype(jnp.result_type(reduced.dtype, jnp.complex64))
    return _apply(kernels, reduced, sampling)


def reconstruct(kspace_full, sampling: Sampling, **kw):
    """Retrospective GRAPPA: undersample, calibrate on the ACS, apply.

    Args:
        kspace_full: (Nc, Ny, Nx) fully sampled k-space.
        sampling: the sampling pattern (``R >= 2``, ACS lines).
        **kw: passed to :func:`calibrate` (``kernel``, ``lamda``).

    Returns:
        ``(kspace_recon, kernels)``: (Nc, Ny, Nx) reconstruction and ``[W]``.
    """
    kspace_full = jnp.asarray(kspace_full)
    if kspace_full.ndim != 3:
        raise ValueError(f"kspace_full must be (Nc, Ny, Nx), got shape {kspace_full.shape}")
    _, reduced, acs = undersample(kspace_full, sampling)
    kernels = calibrate(acs, sampling, **kw)
    return apply(kernels, reduced, sampling), kernels
