"""k-space kernels -> per-pixel image-space weights (Dawood 2024, section 2).

A reduced-grid kernel ``W`` (cout, cin, kh, kw) acts on the full grid as a
cross-correlation with taps at ``(sy, sx) = (R*(ty - ay), tx - ax)`` (dilation R
in ky). With the centred unitary FFT of :mod:`rakijax.fft`, a k-space shift
``k'[ky] = k[ky + s]`` multiplies the image by ``exp(-2 pi i s (r - N//2)/N)``, so

    Z(r) = W~(r) X(r),   W~(r)[o, i] = sum_t W[o, i, t] exp(-2 pi i (sy (ry - cy)/Ny + sx (rx - cx)/Nx))

per pixel (``cy = Ny//2``, ``cx = Nx//2``): the DFT of the zero-padded, dilated,
flipped kernel, evaluated separably. Placing the output channel group ``d`` on
line ``offset + R*j + d`` is a k-space shift by ``-d``: a per-pixel phase
``exp(+2 pi i d (ry - cy)/Ny)``.

On the zero-filled full grid (``Ny % R == 0``) a ky-dilated cross-correlation maps
regularly sampled k-space to regularly sampled k-space, so the whole reduced-grid
network is exact in image space, starting from the aliased coil images
``a = ifft2c(zero_filled)``.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np

from ..kspace_net import anchor, compose_linear

__all__ = ["kernel_image_weights", "shift_phase", "linear_unmixing"]


def _phase(shifts, n: int, dtype):
    r = np.arange(n) - n // 2
    return jnp.asarray(np.exp(-2j * np.pi * np.outer(shifts, r) / n), dtype)  # (taps, n)


def kernel_image_weights(w, shape: tuple[int, int], R: int = 1):
    """Per-pixel image-space weights of one reduced-grid kernel.

    Args:
        w: (cout, cin, kh, kw) complex kernel on the reduced grid.
        shape: full grid ``(Ny, Nx)``.
        R: ky dilation (acceleration factor).

    Returns:
        (cout, cin, Ny, Nx) complex: ``W~(r)`` with ``fft2c``-domain cross-correlation
        equal to ``ifft2c``-domain per-pixel product.
    """
    w = jnp.asarray(w)
    _, _, kh, kw = w.shape
    ny, nx = shape
    dtype = w.dtype if jnp.iscomplexobj(w) else jnp.complex64
    ey = _phase(R * (np.arange(kh) - anchor(kh)), ny, dtype)
    ex = _phase(np.arange(kw) - anchor(kw), nx, dtype)
    return jnp.einsum("oiyx,yY,xX->oiYX", w.astype(dtype), ey, ex)


def shift_phase(d: int, ny: int, dtype=jnp.complex64):
    """Image-space phase (Ny,) that moves k-space lines from ``ky`` to ``ky + d``."""
    return _phase(np.array([-d]), ny, dtype)[0]


def linear_unmixing(kernels: Sequence, shape: tuple[int, int], R: int, dtype=None):
    """Per-pixel reconstruction matrix ``G(r)`` (Nc, Nc, Ny, Nx) of a linear network.

    ``x(r) = G(r) a(r)`` with ``a = ifft2c(zero_filled)`` the aliased coil images and
    ``G(r) = I + sum_d exp(2 pi i d (ry-cy)/Ny) W~_d(r)`` where ``W~_d`` are the image
    weights of output group ``d`` of the composed kernel. Requires ``Ny % R == 0``.
    For GRAPPA this is the image-space GRAPPA operator (Breuer 2009).
    """
    ny, nx = shape
    if ny % R:
        raise ValueError(f"image-space weights need Ny divisible by R (Ny={ny}, R={R})")
    w = compose_linear(list(kernels)) if len(kernels) > 1 else jnp.asarray(kernels[0])
    if dtype is not None:
        w = w.astype(dtype)
    nc = w.shape[1]
    if w.shape[0] != (R - 1) * nc:
        raise ValueError(f"kernel has {w.shape[0]} outputs; expected (R-1)*Nc = {(R - 1) * nc}")
    wi = kernel_image_weights(w, shape, R)  # ((R-1)Nc, Nc, Ny, Nx)
    g = jnp.broadcast_to(jnp.eye(nc, dtype=wi.dtype)[:, :, None, None], (nc, nc, ny, nx))
    for d in range(1, R):
        g = g + shift_phase(d, ny, wi.dtype)[None, None, :, None] * wi[(d - 1) * nc : d * nc]
    return g
