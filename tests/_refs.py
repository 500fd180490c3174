"""Independent references shared by several test modules (not collected by pytest)."""

import jax.numpy as jnp

from rakijax.fft import ifft2c
from rakijax.kspace_net import assemble, clrelu, conv, forward_hidden


def frozen_recon(kernels, u, slope, s):
    """The paper's frozen-mask linear operator ``v -> coil images``, written independently of
    rakijax.gfactor and rakijax.image_space: masks ``clrelu(z)/z`` from one k-space pass at ``u``."""
    zs = forward_hidden(kernels, u, slope)[:-1]
    ms = [jnp.where(z != 0, clrelu(z, slope) / jnp.where(z != 0, z, 1), 1) for z in zs]

    def f(v):
        h = v
        for l, w in enumerate(kernels):
            h = conv(h, w)
            if l < len(kernels) - 1:
                h = ms[l] * h
        return ifft2c(assemble(v, h, s))

    return f
