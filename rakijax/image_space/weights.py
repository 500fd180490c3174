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

This module is the one home of these phases: the per-pixel weights of a kernel
(:func:`kernel_image_weights`, stored with a size-1 axis where the kernel has one tap,
exact because the phase is then constant), the output placement
(:func:`output_phases`, :func:`place_outputs`) and the composed linear unmixing
matrices (:func:`linear_unmixing`).
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np

from ..kspace_net import anchor, compose_linear
from ..sampling import Sampling
from ..validate import check_kernels

__all__ = ["kernel_phases", "kernel_image_weights", "shift_phase", "output_phases", "place_outputs", "linear_unmixing"]


def _phase(shifts, n: int, dtype):
    r = np.arange(n) - n // 2
    return jnp.asarray(np.exp(-2j * np.pi * np.outer(shifts, r) / n), dtype)  # (taps, n)


def kernel_phases(kh: int, kw: int, shape: tuple[int, int], R: int, dtype=jnp.complex64):
    """Separable tap phases ``(ey (kh, Ny), ex (kw, Nx))`` of a ``kh x kw`` kernel.

    ``W~(r)[o, i] = sum_{y, x} W[o, i, y, x] ey[y, ry] ex[x, rx]`` with
    ``ey[y] = exp(-2 pi i R (y - ay)(ry - cy)/Ny)``, ``ex[x] = exp(-2 pi i (x - ax)(rx - cx)/Nx)``.
    """
    ny, nx = shape
    return _phase(R * (np.arange(kh) - anchor(kh)), ny, dtype), _phase(np.arange(kw) - anchor(kw), nx, dtype)


def kernel_image_weights(w, shape: tuple[int, int], R: int = 1):
    """Per-pixel image-space weights of one reduced-grid kernel.

    Args:
        w: (cout, cin, kh, kw) complex kernel on the reduced grid.
        shape: full grid ``(Ny, Nx)``.
        R: ky dilation (acceleration factor).

    Returns:
        ``W~(r)`` (cout, cin, Ny|1, Nx|1) complex, with a size-1 axis where the kernel
        has one tap along it (its phase is then constant: exact, and it saves memory;
        broadcast to ``(cout, cin, Ny, Nx)`` for the full form). The ``fft2c``-domain
        cross-correlation equals the ``ifft2c``-domain per-pixel product.
    """
    w = jnp.asarray(w)
    _, _, kh, kw = w.shape
    ny, nx = shape
    dtype = w.dtype if jnp.iscomplexobj(w) else jnp.complex64
    ey, ex = kernel_phases(kh, kw, (1 if kh == 1 else ny, 1 if kw == 1 else nx), R, dtype)
    return jnp.einsum("oiyx,yY,xX->oiYX", w.astype(dtype), ey, ex)


def shift_phase(d: int, ny: int, dtype=jnp.complex64):
    """Image-space phase (Ny,) that moves k-space lines from ``ky`` to ``ky + d``."""
    return _phase(np.array([-d]), ny, dtype)[0]


def output_phases(R: int, ny: int, dtype=jnp.complex64):
    """(R-1, Ny) phases placing output group ``d`` on line ``ky + d`` (``d = 1..R-1``)."""
    return jnp.stack([shift_phase(d, ny, dtype) for d in range(1, R)]) if R > 1 else jnp.zeros((0, ny), dtype)


def place_outputs(a, y, R: int, nc: int):
    """``x = a + sum_d phase_d * y_d``: the acquired images plus the shifted output groups.

    Args:
        a: (..., Nc, Ny, Nx) aliased coil images (the acquired lines, passed through).
        y: (..., (R-1)*Nc, Ny, Nx) network output in image space.
        R: acceleration; ``nc``: coils.
    """
    ph = output_phases(R, a.shape[-2], y.dtype)
    x = a
    for d in range(1, R):
        x = x + ph[d - 1][:, None] * y[..., (d - 1) * nc : d * nc, :, :]
    return x


def linear_unmixing(kernels: Sequence, sampling: Sampling, nx: int, *, dtype=None):
    """Per-pixel reconstruction matrix ``G(r)`` (Nc, Nc, Ny, Nx) of a linear network.

    ``x(r) = G(r) a(r)`` with ``a = ifft2c(zero_filled)`` the aliased coil images and
    ``G(r) = I + sum_d exp(2 pi i d (ry-cy)/Ny) W~_d(r)`` where ``W~_d`` are the image
    weights of output group ``d`` of the composed kernel. For GRAPPA this is the
    image-space GRAPPA operator (Breuer 2009).

    Args:
        kernels: a linear kernel chain (GRAPPA ``[W]``, or a RAKI network at slope 1).
        sampling: the sampling (``Ny % R == 0``, ``R >= 2``).
        nx: readout size ``Nx``.
        dtype: complex dtype (default the kernels').

    Raises:
        ValueError: ``Ny % R != 0`` or a kernel chain that does not predict ``(R-1)*Nc`` lines.
    """
    sampling.require_periodic("image-space weights")
    R, ny = sampling.R, sampling.ny
    check_kernels(kernels, R)
    w = compose_linear(list(kernels)) if len(kernels) > 1 else jnp.asarray(kernels[0])
    if dtype is not None:
        w = w.astype(dtype)
    nc = w.shape[1]
    wi = kernel_image_weights(w, (ny, nx), R)  # ((R-1)Nc, Nc, Ny|1, Nx|1)
    g = jnp.broadcast_to(jnp.eye(nc, dtype=wi.dtype)[:, :, None, None], (nc, nc, ny, nx))
    for d in range(1, R):
        g = g + shift_phase(d, ny, wi.dtype)[None, None, :, None] * wi[(d - 1) * nc : d * nc]
    return g
