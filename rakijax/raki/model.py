"""The RAKI network as an ``flax.nnx`` module built from a :class:`RakiConfig`."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from .. import kspace_net
from .config import RakiConfig
from .layers import ComplexConv

__all__ = ["Raki"]


class Raki(nnx.Module):
    """Complex RAKI: ``y = W_L * s_a(... s_a(W_1 * u))`` on the reduced grid.

    Channels ``Nc -> widths[0] -> ... -> (R-1)*Nc``; output channel
    ``(d-1)*Nc + c`` at reduced row ``j`` predicts coil ``c`` on line
    ``offset + R*j + d`` (Akcakaya 2019, complex form of Dawood 2024). No biases.
    The negative slope ``a`` is a call argument (traced), never a module attribute,
    so slope sweeps neither rebuild nor recompile the model.

    Args:
        config: architecture (widths, kernel sizes, param dtype).
        ncoils: number of coils ``Nc``.
        R: acceleration factor (>= 2).
        rngs: ``nnx.Rngs`` with a ``params`` stream (one draw: complex He init of
            every layer, see :func:`rakijax.raki.layers.complex_he_normal`).
        param_dtype: overrides ``config.param_dtype`` (default complex64 when both are None).
    """

    def __init__(self, config: RakiConfig, ncoils: int, R: int, *, rngs: nnx.Rngs, param_dtype=None):
        if int(R) != R or R < 2:
            raise ValueError(f"RAKI needs an acceleration R >= 2 (R-1 missing lines per period), got R={R}")
        if int(ncoils) != ncoils or ncoils < 1:
            raise ValueError(f"ncoils must be a positive integer, got {ncoils}")
        dtype = param_dtype or config.param_dtype or jnp.complex64
        self.R = int(R)
        self.ncoils = int(ncoils)
        shapes = config.kernel_shapes(ncoils, R)
        sizes = [math.prod(s) for s in shapes]
        # one PRNG draw for all layers (unit circular complex Gaussian), split per layer
        noise = jax.random.normal(rngs.params(), (sum(sizes),), jnp.dtype(dtype))
        offsets = np.cumsum([0] + sizes)
        self.layers = nnx.List([
            ComplexConv(s[1], s[0], s[2:], param_dtype=dtype, init_scale=config.init_scale,
                        noise=noise[offsets[i] : offsets[i + 1]].reshape(s))
            for i, s in enumerate(shapes)
        ])

    def __call__(self, u, slope, *, padding: str = "circular", dilation: int = 1):
        """Network output (..., (R-1)*Nc, Y', X') of the input ``u`` (..., Nc, Y, X).

        Args:
            u: reduced-grid k-space (``dilation=1``, circular) or the full-resolution
                ACS block (``dilation=R``, ``padding="valid"``).
            slope: negative slope ``a`` of the complex leaky ReLU (traced; 0..1).
            padding, dilation: see :func:`rakijax.kspace_net.conv`.
        """
        x = u
        n = len(self.layers)
        for l, layer in enumerate(self.layers):
            x = layer(x, padding=padding, dilation=dilation)
            if l < n - 1:
                x = kspace_net.clrelu(x, slope)
        return x

    def kernels(self) -> list:
        """The kernels ``[W_1, ..., W_L]`` (cout, cin, kh, kw) in the kspace_net format."""
        return [layer.kernel[...] for layer in self.layers]
