"""Complex-valued layers of RAKI as ``flax.nnx`` modules.

The maths lives in :mod:`rakijax.kspace_net` (one definition shared with GRAPPA
and the image-space code); these modules only hold the trainable complex kernels.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from .. import kspace_net

__all__ = ["ComplexConv", "complex_leaky_relu", "complex_he_normal"]

#: Complex leaky ReLU ``LReLU_a(Re z) + i LReLU_a(Im z)`` (slope ``a`` may be traced).
complex_leaky_relu = kspace_net.clrelu


def complex_he_normal(key, shape, dtype=jnp.complex64, scale: float = 1.0):
    """Complex He (variance-scaling, fan-in) initialisation.

    ``w = scale * sqrt(2 / fan_in) * n`` with ``n`` circular complex Gaussian,
    ``E|n|^2 = 1`` (Re and Im each of variance 1/2), ``fan_in = cin*kh*kw``. Hence
    ``E|w|^2 = 2 scale^2 / fan_in``: each of Re and Im of a pre-activation gets
    the variance gain of He et al. 2015 for a (real) ReLU, the worst case
    (``a = 0``) of the complex leaky ReLU, which keeps activations from shrinking
    through the depth.

    Args:
        key: PRNG key.
        shape: ``(cout, cin, kh, kw)``.
        dtype: complex dtype of the result.
        scale: extra gain.
    """
    if not jnp.issubdtype(dtype, jnp.complexfloating):
        raise ValueError(f"complex parameters need a complex dtype, got {dtype}")
    fan_in = shape[1] * shape[2] * shape[3]
    return (scale * math.sqrt(2.0 / fan_in)) * jax.random.normal(key, shape, dtype)


class ComplexConv(nnx.Module):
    """Bias-free complex 2-D convolution (cross-correlation) on the reduced grid.

    ``(W * u)[o, j, x] = sum_{i,ty,tx} W[o,i,ty,tx] u[i, j + d*(ty-ay), x + tx - ax]``
    with anchor ``(k-1)//2`` and ky dilation ``d``; see :func:`rakijax.kspace_net.conv`.
    No bias, so that the network stays positively homogeneous and exactly linear
    at slope 1 (Dawood 2024).

    Args:
        in_features: input channels ``cin``.
        out_features: output channels ``cout``.
        kernel_size: ``(kh, kw)``.
        param_dtype: complex dtype of the kernel (complex64 default).
        init_scale: gain of :func:`complex_he_normal`.
        rngs: ``nnx.Rngs`` with a ``params`` stream (unused when ``noise`` is given).
        noise: optional unit circular complex Gaussian draw of the kernel's shape
            used instead of drawing from ``rngs`` (lets a model draw all layers in
            one PRNG call, which compiles much faster on CPU).

    Attributes:
        kernel: ``nnx.Param`` of shape ``(cout, cin, kh, kw)`` (OIHW), complex.
    """

    def __init__(self, in_features: int, out_features: int, kernel_size, *, param_dtype=jnp.complex64,
                 init_scale: float = 1.0, rngs: nnx.Rngs | None = None, noise=None):
        kh, kw = (int(k) for k in kernel_size)
        if min(in_features, out_features, kh, kw) < 1:
            raise ValueError(f"bad ComplexConv shape: cin={in_features}, cout={out_features}, kernel={kernel_size}")
        param_dtype = jnp.dtype(param_dtype)
        shape = (int(out_features), int(in_features), kh, kw)
        if noise is None:
            if rngs is None:
                raise ValueError("ComplexConv needs rngs (or a noise draw) to initialise its kernel")
            w = complex_he_normal(rngs.params(), shape, param_dtype, init_scale)
        else:
            if tuple(noise.shape) != shape:
                raise ValueError(f"noise has shape {tuple(noise.shape)}, the kernel {shape}")
            fan_in = shape[1] * shape[2] * shape[3]
            w = (init_scale * math.sqrt(2.0 / fan_in)) * jnp.asarray(noise).astype(param_dtype)
        self.kernel = nnx.Param(w)

    def __call__(self, x, *, padding: str = "circular", dilation: int = 1):
        """Apply to ``x`` (..., cin, H, W) -> (..., cout, H', W') (see kspace_net.conv)."""
        return kspace_net.conv(x, self.kernel[...], padding=padding, dilation=dilation)
