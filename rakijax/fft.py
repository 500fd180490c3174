"""Centred unitary 2-D FFT over the last two axes (the only FFT in rakijax).

``fft2c(x) = fftshift(fft2(ifftshift(x), norm="ortho"))`` over axes ``(-2, -1)``.
Index ``N // 2`` holds the zero frequency (k-space) or the image centre, for odd
and even sizes alike. With this convention a circular shift of k-space by ``s``
lines, ``k'[ky] = k[ky + s]``, multiplies the image by
``exp(-2 pi i s (r - N//2) / N)``.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["fft2c", "ifft2c", "centred_frequencies"]

_AXES = (-2, -1)


def fft2c(x):
    """Centred, unitary 2-D DFT over the last two axes (image -> k-space)."""
    x = jnp.asarray(x)
    return jnp.fft.fftshift(jnp.fft.fft2(jnp.fft.ifftshift(x, axes=_AXES), norm="ortho"), axes=_AXES)


def ifft2c(k):
    """Centred, unitary inverse 2-D DFT over the last two axes (k-space -> image)."""
    k = jnp.asarray(k)
    return jnp.fft.fftshift(jnp.fft.ifft2(jnp.fft.ifftshift(k, axes=_AXES), norm="ortho"), axes=_AXES)


def centred_frequencies(n: int):
    """Centred integer index ``i - n//2`` for ``i = 0..n-1`` (k-space line or pixel position)."""
    return jnp.arange(n) - n // 2
