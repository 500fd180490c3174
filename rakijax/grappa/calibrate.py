"""GRAPPA calibration: Tikhonov-regularised least squares on the ACS block.

GRAPPA (Griswold 2002) predicts every missing line from a small neighbourhood of
acquired lines with one shift-invariant complex kernel per missing-line offset.
In rakijax the kernel is a one-layer reduced-grid network in the shared
:mod:`rakijax.kspace_net` format: ``W`` (cout, cin, kh, kw) with
``cout = (R-1)*Nc``, ``cin = Nc``, anchor ``((kh-1)//2, (kw-1)//2)``; output channel
``(d-1)*Nc + c`` at reduced row ``j`` predicts coil ``c`` on line
``offset + R*j + d``.

Calibration uses every ky position of the full-resolution ACS block: the kernel's
ky taps are dilated by ``R`` (the geometry of
``kspace_net.forward(..., padding="valid", dilation=R)``). For output row ``q`` and
column ``x`` of that valid pass the source vector is

    s[(i, ty, tx)] = acs[i, q + R*ty, x + tx]

and the targets are the ACS lines ``q + R*ay + d`` at column ``x + ax``
(:func:`rakijax.kspace_net.acs_pairs`). Stacking all ``M`` positions gives
``S`` (M, Nc*kh*kw) and ``T`` (M, (R-1)*Nc); the kernel solves

    min_w ||S w - T||^2 + lam ||w||^2,    lam = lamda * trace(S^H S) / n

(``n = Nc*kh*kw``: ``lamda`` is relative to the mean eigenvalue of ``S^H S``, so it
does not depend on the data's scale), in closed form through the normal equations
``(S^H S + lam I) w = S^H T`` (Cholesky, complex).

References:
    Griswold et al., "Generalized autocalibrating partially parallel
    acquisitions (GRAPPA)", MRM 47:1202 (2002).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..kspace_net import acs_pairs, min_acs_lines, reach
from ..sampling import Sampling
from ..validate import check_finite, check_sampling

__all__ = ["calibrate", "source_matrix"]


def source_matrix(acs_block, R: int, kernel: tuple[int, int]):
    """Calibration source matrix ``S`` (M, Nc*kh*kw) of the ACS block.

    Row ``(q, x)`` (valid output row ``q`` of the dilated pass, column ``x``) holds
    ``acs[i, q + R*ty, x + tx]`` in the column order ``(i, ty, tx)`` (C order), so
    that a solution ``w`` reshapes to ``W[o] = w[:, o].reshape(Nc, kh, kw)``. Only
    the rows that :func:`rakijax.kspace_net.acs_pairs` keeps are included.

    Args:
        acs_block: (Nc, A, Nx) complex ACS lines.
        R: acceleration factor (ky dilation).
        kernel: ``(kh, kw)``.

    Returns:
        ``(S, T)``: (M, Nc*kh*kw) sources and (M, (R-1)*Nc) targets, rows ordered
        ``(q, x)`` in C order.
    """
    kh, kw = kernel
    nc = acs_block.shape[0]
    shapes = [((R - 1) * nc, nc, kh, kw)]
    rows, targets = acs_pairs(acs_block, shapes, R)  # targets ((R-1)Nc, Q, Xv)
    xv = targets.shape[-1]
    q = jnp.asarray(rows)
    cols = []
    for ty in range(kh):
        for tx in range(kw):
            cols.append(acs_block[:, q + R * ty, tx : tx + xv])  # (Nc, Q, Xv)
    src = jnp.stack(cols, axis=1)  # (Nc, kh*kw, Q, Xv)
    S = src.reshape(nc * kh * kw, -1).T
    T = targets.reshape(targets.shape[0], -1).T
    return S, T


@partial(jax.jit, static_argnames=("R", "kernel"))
def _solve(acs_block, lamda, R: int, kernel: tuple[int, int]):
    S, T = source_matrix(acs_block, R, kernel)
    n = S.shape[1]
    AhA = S.conj().T @ S
    AhA = 0.5 * (AhA + AhA.conj().T)
    lam = lamda * jnp.real(jnp.trace(AhA)) / n
    AhT = S.conj().T @ T
    # Cholesky of the Hermitian positive definite regularised normal matrix.
    L = jnp.linalg.cholesky(AhA + lam * jnp.eye(n, dtype=AhA.dtype))
    z = jax.scipy.linalg.solve_triangular(L, AhT, lower=True)
    w = jax.scipy.linalg.solve_triangular(L.conj().T, z, lower=False)  # (n, cout)
    nc = acs_block.shape[0]
    kh, kw = kernel
    return w.T.reshape(w.shape[1], nc, kh, kw)


def calibrate(acs_block, sampling: Sampling, *, kernel: tuple[int, int] = (2, 5), lamda=1e-4):
    """Calibrate a GRAPPA kernel on the ACS block.

    Solves ``(S^H S + lam I) w = S^H T`` with ``lam = lamda * trace(S^H S)/n`` (see the
    module docstring for ``S``, ``T`` and the geometry).

    Args:
        acs_block: (Nc, A, Nx) complex, fully sampled contiguous ACS lines
            (``A = sampling.acs``).
        sampling: the sampling pattern; gives ``R`` (integer >= 2).
        kernel: ``(kh, kw)``: acquired lines in ky x columns in kx (default 2 x 5).
        lamda: relative Tikhonov weight (>= 0, may be traced, e.g. vmapped).

    Returns:
        ``[W]``: a list with one complex kernel ``W`` ((R-1)*Nc, Nc, kh, kw) in the
        :mod:`rakijax.kspace_net` format (apply it with :func:`rakijax.grappa.apply`).
        The dtype follows ``acs_block`` (complex64 for real/complex64 input).

    Raises:
        ValueError: wrong rank, non-finite values, ``R < 2``, a kernel size below 1,
            too few ACS lines for the kernel reach at ``R``, or an ACS block whose
            line count differs from ``sampling.acs``.
        TypeError: ``sampling`` is not a :class:`~rakijax.sampling.Sampling`.

    References:
        Griswold et al., MRM 47:1202 (2002).
    """
    check_sampling(sampling)
    R = sampling.R
    if R < 2:
        raise ValueError(
            f"GRAPPA calibration needs R >= 2 (got R={R}); at R=1 no line is missing and the "
            "acquired k-space is the reconstruction"
        )
    kernel = tuple(int(k) for k in kernel)
    if len(kernel) != 2 or min(kernel) < 1:
        raise ValueError(f"kernel must be (kh, kw) with kh, kw >= 1, got {kernel}")
    if not isinstance(acs_block, (np.ndarray, jax.Array)):
        acs_block = np.asarray(acs_block)
    if acs_block.ndim != 3:
        raise ValueError(f"acs_block must be (Nc, A, Nx), got shape {tuple(acs_block.shape)}")
    nc, A, nx = acs_block.shape
    if sampling.acs != A:
        raise ValueError(f"acs_block {tuple(acs_block.shape)} has {A} lines but the sampling has acs={sampling.acs}")
    shapes = [((R - 1) * nc, nc) + kernel]
    need = min_acs_lines(shapes, R)
    if A < need:
        raise ValueError(
            f"too few ACS lines: {A} < {need} needed for a {kernel[0]}x{kernel[1]} kernel at R={R} "
            f"(acs_block shape {tuple(acs_block.shape)})"
        )
    _, _, left, right = reach(shapes)
    if nx < left + right + 1:
        raise ValueError(f"readout of {nx} columns is narrower than the kernel width {kernel[1]}")
    if not isinstance(acs_block, jax.core.Tracer):
        check_finite(acs_block, "acs_block")
    lam = jnp.asarray(lamda)
    if lam.ndim != 0:
        raise ValueError(f"lamda must be a scalar, got shape {lam.shape}")
    if not isinstance(lamda, jax.core.Tracer) and float(lam) < 0:
        raise ValueError(f"lamda must be >= 0, got {lamda}")
    x = jnp.asarray(acs_block)
    if not jnp.iscomplexobj(x):
        x = x.astype(jnp.complex64 if x.dtype != jnp.float64 else jnp.complex128)
    lam = lam.astype(x.real.dtype)
    return [_solve(x, lam, R, kernel)]
