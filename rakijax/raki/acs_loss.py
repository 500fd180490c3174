"""The RAKI training loss on the ACS block in a fast real form (one GEMM per layer).

Same function as running :func:`rakijax.kspace_net.forward` on the scaled ACS
block with ``padding="valid", dilation=R`` (see :mod:`rakijax.raki.train`), but
written for the CPU:

* **stacked real activations**: a complex activation ``z`` (C, H, W) is held as
  ``[Re z; Im z]`` (2C, H, W). The complex leaky ReLU acts on real and imaginary
  parts separately, so on the stack it is the plain leaky ReLU.
* **one real GEMM per layer**: a complex layer ``W = A + iB`` acts on the stack as
  the real block matrix ``[[A, -B], [B, A]]`` (2 cout, 2 cin) per tap; the taps are
  gathered into one contraction (im2col), so a layer is a single
  ``(2 cout, taps*2 cin) x (taps*2 cin, H*W)`` matrix product. On the 2-core CPU
  this ran 2.9x faster per step than per-tap complex einsums, and faster than the
  4-GEMM and 3-GEMM (Gauss) real forms (``benchmarks/results/raki_speed_cpu.md``).
* **constant first-layer patches**: the ACS does not change across steps, so the
  first layer's im2col patches (taps*2Nc, H1, W1) are built once (:func:`prepare`).

References: Akcakaya et al., MRM 2019 (RAKI); Dawood et al., MRM 2024.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from .. import kspace_net

__all__ = ["AcsProblem", "prepare", "loss", "forward_stacked", "im2col", "block_matrix", "gemm"]


class AcsProblem(NamedTuple):
    """Constant arrays of one training problem (built once, see :func:`prepare`).

    Attributes:
        patches: (kh1*kw1*2Nc, H1, W1) first-layer im2col patches of the scaled ACS
            block, tap-major (index ``(ty*kw1 + tx)*2Nc + part*Nc + coil``).
        targets: (2(R-1)Nc, Q, X') ``[Re t; Im t]`` of the targets of the valid
            output rows ``0..Q-1`` (the rows of :func:`rakijax.kspace_net.acs_pairs`
            are always this leading block: its condition is monotone in the row).
    """

    patches: jax.Array
    targets: jax.Array


def _stack(z):
    return jnp.concatenate([jnp.real(z), jnp.imag(z)], axis=-3)


def im2col(x, kh: int, kw: int, dilation: int):
    """(C, H, W) -> (kh*kw*C, H - dilation*(kh-1), W - kw + 1), tap-major."""
    H = x.shape[-2] - dilation * (kh - 1)
    W = x.shape[-1] - (kw - 1)
    if kh == kw == 1:
        return x
    return jnp.concatenate(
        [x[..., dilation * ty : dilation * ty + H, tx : tx + W] for ty in range(kh) for tx in range(kw)], axis=-3
    )


def block_matrix(w):
    """Complex kernel (cout, cin, kh, kw) -> real (2cout, kh*kw*2cin), matching :func:`im2col` of a stack."""
    a, b = jnp.real(w), jnp.imag(w)
    top = jnp.concatenate([a, -b], axis=1)  # rows for Re out: [A, -B] against [Re; Im]
    bot = jnp.concatenate([b, a], axis=1)  # rows for Im out: [B, A]
    m = jnp.concatenate([top, bot], axis=0)  # (2cout, 2cin, kh, kw)
    return m.transpose(0, 2, 3, 1).reshape(m.shape[0], -1)  # (2cout, kh*kw*2cin), tap-major


def gemm(m, p):
    """Real block matrix (O, K) applied to stacked patches (K, H, W) -> (O, H, W)."""
    return jnp.einsum("ok,kyx->oyx", m, p, precision=jax.lax.Precision.HIGHEST)


def prepare(x, kernel_shapes: Sequence[Sequence[int]], R: int) -> AcsProblem:
    """Constant arrays of the training problem on the (scaled) ACS block ``x`` (Nc, A, X)."""
    rows, targets = kspace_net.acs_pairs(x, kernel_shapes, R)
    assert (rows == range(len(rows))).all()  # a leading block (see AcsProblem)
    kh, kw = kernel_shapes[0][-2:]
    return AcsProblem(im2col(_stack(x), kh, kw, R), _stack(targets))


def forward_stacked(kernels: Sequence, patches, slope, kernel_shapes, R: int):
    """Stacked network output ``[Re y; Im y]`` (2 cout, H', W') from the first-layer patches."""
    z = gemm(block_matrix(kernels[0]), patches)
    for w, s in zip(kernels[1:], kernel_shapes[1:]):
        z = jnp.where(z >= 0, z, slope * z)  # complex leaky ReLU on [Re; Im]
        z = gemm(block_matrix(w), im2col(z, s[-2], s[-1], R))
    return z


def loss(kernels: Sequence, problem: AcsProblem, slope, kernel_shapes, R: int):
    """``L = 1/(2N) sum |y - t|^2`` over the ``N`` complex targets (= mean of the stacked squares)."""
    y = forward_stacked(kernels, problem.patches, slope, kernel_shapes, R)[:, : problem.targets.shape[-2], :]
    return jnp.mean((y - problem.targets) ** 2)
