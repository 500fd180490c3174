"""The reduced-grid k-space network shared by GRAPPA and RAKI (pure functions).

A k-space interpolation network is a list of complex kernels
``[W_1, ..., W_L]``, ``W_l`` of shape ``(cout, cin, kh, kw)`` (OIHW), acting on the
*reduced grid* ``u`` (coil, Y, X) of regularly acquired lines as multichannel
cross-correlations with the complex leaky ReLU between layers:

    z_1 = W_1 * u,  z_{l+1} = W_{l+1} * s_a(z_l),  y = z_L

    (W * u)[o, j, x] = sum_{i, ty, tx} W[o, i, ty, tx] u[i, j + ty - ay, x + tx - ax]

with anchors ``ay = (kh-1)//2``, ``ax = (kw-1)//2`` (a 2-row kernel reads rows
``j`` and ``j+1``). Indices wrap (circular edges) for inference on the whole grid;
training on the ACS uses the valid part only, on the full-resolution ACS block with
the ky taps dilated by ``R``.

Output channel ``(d-1)*Nc + c`` at reduced row ``j`` predicts coil ``c`` on line
``offset + R*j + d``, ``d = 1..R-1`` (the lines between two acquired ones).
GRAPPA is the one-layer case (``L = 1``); slope ``a = 1`` makes any RAKI linear.

References: Griswold 2002 (GRAPPA); Akcakaya 2019 (RAKI); Dawood 2024.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .sampling import Sampling
from .validate import check_reduced

__all__ = [
    "anchor",
    "tap_offsets",
    "clrelu",
    "conv",
    "forward",
    "forward_hidden",
    "assemble",
    "apply_network",
    "reach",
    "acs_pairs",
    "compose_linear",
    "min_acs_lines",
]

def anchor(k: int) -> int:
    """Anchor tap of a kernel of size ``k``: ``(k-1)//2``."""
    return (k - 1) // 2


def tap_offsets(k: int) -> tuple[int, int]:
    """Offsets ``(lo, hi) = (-anchor(k), k - 1 - anchor(k))`` of the first and last tap of a size-``k`` kernel."""
    a = anchor(k)
    return -a, k - 1 - a


def clrelu(z, slope):
    """Complex leaky ReLU ``LReLU_a(Re z) + i LReLU_a(Im z)`` (slope ``a`` may be traced)."""
    re, im = jnp.real(z), jnp.imag(z)
    re = jnp.where(re >= 0, re, slope * re)
    im = jnp.where(im >= 0, im, slope * im)
    return jax.lax.complex(re, im)


def conv(u, w, *, padding: str = "circular", dilation: int = 1):
    """Multichannel complex cross-correlation with the anchor convention.

    Args:
        u: input (..., cin, H, W), complex.
        w: kernel (cout, cin, kh, kw), complex.
        padding: ``"circular"`` (output on the whole grid, indices wrap) or
            ``"valid"`` (output row ``q`` is anchored at input row ``q + dilation*ay``).
        dilation: spacing of the ky taps (``R`` on the full ACS block, 1 on the reduced grid).

    Returns:
        (..., cout, H', W') with ``H' = H`` (circular) or ``H - dilation*(kh-1)`` (valid).
    """
    cout, cin, kh, kw = w.shape
    if u.shape[-3] != cin:
        raise ValueError(f"input has {u.shape[-3]} channels but the kernel expects {cin} (kernel {w.shape}, input {u.shape})")
    dtype = jnp.result_type(u.dtype, w.dtype)
    x, w = jnp.asarray(u, dtype), jnp.asarray(w, dtype)
    if padding == "circular":
        ay, ax = anchor(kh), anchor(kw)
        pad = [(0, 0)] * (x.ndim - 2) + [(dilation * ay, dilation * (kh - 1 - ay)), (ax, kw - 1 - ax)]
        x = jnp.pad(x, pad, mode="wrap")
    elif padding != "valid":
        raise ValueError(f"padding must be 'circular' or 'valid', got {padding!r}")
    H = x.shape[-2] - dilation * (kh - 1)
    W = x.shape[-1] - (kw - 1)
    if H < 1 or W < 1:
        raise ValueError(f"input {u.shape} is smaller than the kernel reach {w.shape} (dilation {dilation})")
    # One small GEMM per tap (shifted einsums): compiles much faster than a complex
    # conv_general_dilated in complex128 and runs as fast on CPU.
    y = None
    for ty in range(kh):
        for tx in range(kw):
            xs = x[..., dilation * ty : dilation * ty + H, tx : tx + W]
            t = jnp.einsum("oi,...iyx->...oyx", w[:, :, ty, tx], xs, precision=jax.lax.Precision.HIGHEST)
            y = t if y is None else y + t
    return y


def forward_hidden(kernels: Sequence, u, slope, *, padding: str = "circular", dilation: int = 1):
    """Run the network and return every pre-activation ``[z_1, ..., z_L]`` (``z_L = y``)."""
    zs = []
    x = u
    for l, w in enumerate(kernels):
        z = conv(x, w, padding=padding, dilation=dilation)
        zs.append(z)
        if l < len(kernels) - 1:
            x = clrelu(z, slope)
    return zs


def forward(kernels: Sequence, u, slope, *, padding: str = "circular", dilation: int = 1):
    """Network output ``y`` (..., (R-1)*Nc, Y, X) of the kernels on ``u``."""
    return forward_hidden(kernels, u, slope, padding=padding, dilation=dilation)[-1]


def assemble(u, y, sampling: Sampling):
    """Full k-space from the acquired reduced grid ``u`` and the predictions ``y``.

    Line ``offset + R*j`` gets ``u[:, j]``; line ``(offset + R*j + d) mod Ny`` gets
    ``y[(d-1)*Nc:d*Nc, j]``. For ``Ny % R != 0`` the last (partial) period is handled
    by dropping predictions that fall beyond the last line; lines before ``offset``
    are then predicted from the wrapped last block (approximate geometry at the very
    k-space edge, documented; exact image-space/g-factor analysis refuses this case).

    Args:
        u: (..., Nc, Y, X) regularly acquired lines.
        y: (..., (R-1)*Nc, Y, X) network output.
        sampling: the sampling pattern (gives Ny, R, offset).

    Returns:
        (..., Nc, Ny, X) reconstructed k-space.
    """
    R, off, ny = sampling.R, sampling.offset, sampling.ny
    nc, Y, X = u.shape[-3:]
    if y.shape[-3] != (R - 1) * nc or y.shape[-2:] != (Y, X):
        raise ValueError(f"network output {y.shape} does not match input {u.shape} at R={R}")
    blocks = [u] + [y[..., (d - 1) * nc : d * nc, :, :] for d in range(1, R)]
    full = jnp.stack(blocks, axis=-2)  # (..., Nc, Y, R, X): row R*j + d is line off + R*j + d
    full = full.reshape(full.shape[:-4] + (nc, Y * R, X))
    src = _line_sources(ny, off, Y * R)
    out = full[..., np.maximum(src, 0), :]
    if (src < 0).any():  # lines no block reaches (only for Ny % R != 0 with a large offset)
        out = out * jnp.asarray(src >= 0)[:, None]
    return out


def _line_sources(ny: int, off: int, n: int) -> np.ndarray:
    """For each full-grid line, the first assembled row ``i`` with ``(off + i) % ny == line``, or -1."""
    src = np.full(ny, -1, dtype=int)
    for i in range(n):
        l = (off + i) % ny
        if src[l] < 0:
            src[l] = i
    return src


def apply_network(kernels: Sequence, reduced, sampling: Sampling, slope=1.0):
    """k-space inference: full k-space from the reduced grid (circular edges).

    Args:
        kernels: the kernel chain; the last predicts ``(R-1)*Nc`` channels.
        reduced: (..., Nc, Y, X) acquired lines (``Y = sampling.num_reduced``).
        sampling: the sampling pattern.
        slope: negative slope of the complex leaky ReLU (may be traced; 1 = linear).

    Returns:
        (..., Nc, Ny, X) reconstructed k-space.

    Raises:
        ValueError: kernels, reduced grid and sampling that do not fit together.
    """
    check_reduced(kernels, reduced, sampling, batch=True)
    y = forward(kernels, reduced, slope, padding="circular")
    return assemble(reduced, y, sampling)


def reach(kernel_shapes: Sequence[Sequence[int]]):
    """Receptive field of the network in reduced-grid taps.

    Returns:
        ``(above, below, left, right)``: rows above/below the anchor row and
        columns left/right of the anchor column that the output depends on.
    """
    above = -sum(tap_offsets(s[-2])[0] for s in kernel_shapes)
    below = sum(tap_offsets(s[-2])[1] for s in kernel_shapes)
    left = -sum(tap_offsets(s[-1])[0] for s in kernel_shapes)
    right = sum(tap_offsets(s[-1])[1] for s in kernel_shapes)
    return above, below, left, right


def min_acs_lines(kernel_shapes, R: int) -> int:
    """Smallest ACS block (full-grid lines) that holds one training row."""
    above, below, _, _ = reach(kernel_shapes)
    return max(R * (above + below) + 1, R * above + R)


def acs_pairs(acs_block, kernel_shapes, R: int):
    """Training targets on the ACS block for the valid, ky-dilated forward pass.

    The network run with ``padding="valid", dilation=R`` on the ACS block (Nc, A, X)
    gives output row ``q`` anchored at ACS row ``q + R*above`` and column
    ``i + left``; its channel ``(d-1)*Nc + c`` predicts ACS row ``q + R*above + d``.

    Returns:
        ``(rows, targets)``: the valid output rows to use (1-D int array) and the
        targets (..., (R-1)*Nc, len(rows), X - left - right).
    """
    above, below, left, right = reach(kernel_shapes)
    A, X = acs_block.shape[-2:]
    n_out = A - R * (above + below)
    rows = np.array([q for q in range(max(n_out, 0)) if q + R * above + R - 1 < A], dtype=int)
    if rows.size == 0:
        raise ValueError(f"too few ACS lines: {A} lines hold no training row at R={R} (need >= {min_acs_lines(kernel_shapes, R)})")
    cols = slice(left, X - right)
    tgt = [acs_block[..., :, rows + R * above + d, cols] for d in range(1, R)]
    return rows, jnp.concatenate(tgt, axis=-3)


def compose_linear(kernels: Sequence):
    """Compose a linear network (slope 1) into one equivalent reduced-grid kernel.

    The composition of cross-correlations is a cross-correlation whose kernel is
    the full 2-D convolution of the kernels; the anchor of the result is the sum of
    anchors. To keep the result within the anchor convention the composed kernel is
    zero-padded so that its anchor is ``(kh-1)//2``.

    Returns:
        (cout, cin, KH, KW) complex kernel.
    """
    w = kernels[0]
    ay, ax = anchor(w.shape[2]), anchor(w.shape[3])
    for v in kernels[1:]:
        co, ci, vh, vw = v.shape
        _, _, wh, ww = w.shape
        out = jnp.zeros((co, w.shape[1], wh + vh - 1, ww + vw - 1), jnp.result_type(w, v))
        for sy in range(vh):
            for sx in range(vw):
                out = out.at[:, :, sy : sy + wh, sx : sx + ww].add(jnp.einsum("om,mijk->oijk", v[:, :, sy, sx], w))
        w = out
        ay, ax = ay + anchor(vh), ax + anchor(vw)
    # pad so that the anchor sits at (kh-1)//2
    return _recentre(w, ay, ax)


def _recentre(w, ay, ax):
    kh, kw = w.shape[2:]
    # need ay == (KH-1)//2 after padding rows at the top (pt) or bottom (pb)
    pt = pb = pl = pr = 0
    while anchor(kh + pt + pb) != ay + pt:
        if anchor(kh + pt + pb) > ay + pt:
            pt += 1
        else:
            pb += 1
    while anchor(kw + pl + pr) != ax + pl:
        if anchor(kw + pl + pr) > ax + pl:
            pl += 1
        else:
            pr += 1
    return jnp.pad(w, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
