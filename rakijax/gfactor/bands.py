"""Exact band coefficients of the reconstructed k-space noise covariance (MATH.md section 4).

The linearised network (:mod:`.linearise`) is a product of short convolutions and
pointwise factors, so the covariance ``K[(c,k),(c',k')]`` of the reconstructed
full-grid k-space is banded, and the image-space coil covariance is the
trigonometric polynomial

    Cov(r)[c, c'] = (1/N) sum_D exp(-2 pi i D.(r - N//2)/N) s_cc'(D),
    s_cc'(D)      = sum_k K[(c,k), (c',k+D)]                       (N = Ny*Nx)

whatever the activation coefficients do over k-space. This module computes
``s(D)`` exactly without anything of size ``N^2``:

1. **Local Jacobians** ``H(j, t)`` (C x cin) of the last hidden activation at reduced
   point ``j`` with respect to the (prewhitened) input sample at ``j + t``, ``t`` in
   the receptive field of the hidden layers (a box; layer kernels of any size). With
   the true derivative the input is the augmented ``n~ = [w; conj w]`` (``cin = 2 Nc``;
   every layer is complex-linear in ``n~``, activations ``[[alpha, beta],[beta, alpha]]``);
   frozen masks use ``cin = Nc``. ``Psi = L L^H`` is folded into the first layer.
2. ``V[(u,c),(t,a)] = H(u-t, t)[a,c]`` row chunk by row chunk (``chunk`` reduced rows),
   and the diagonal sums of its Gram matrix
   ``T(Delta) = sum_{t - t' = Delta} (V^T conj V)[t, t'] = sum_j E[dh(j) dh(j+Delta)^H]``:
   ``method="gram"``: one real GEMM on ``[Re V, Im V]`` per chunk (upper tap blocks only,
   Hermitian half); ``method="spectral"`` (default, ~3.7x fewer flops for 2x5 taps):
   ``T`` is a 2-D Laurent polynomial in the tap shift of ``(2Ty-1) x (2Tx-1)``
   coefficients, so it is recovered exactly from the Hermitian Grams of
   ``V~(z) = sum_t z^t V_t`` at that many roots of unity and a small inverse DFT.
   Each Hermitian Gram takes two real GEMMs, not three: with ``V~ = A + iB``,
   ``Q = A^T B`` and ``P = (A+B)^T (A+B)``, ``Re = P - Q - Q^T`` and ``Im = Q^T - Q``.
   With two hidden layers (the RAKI architecture) ``V`` is built tap by tap from the
   position-independent layer-1 Jacobian and the activation coefficients gathered at
   ``u - t``, in separate real and imaginary parts (one real GEMM per tap).
3. The shift-invariant last layer: ``S(Delta) = sum_{s,s'} W_L(s) T(Delta+s'-s) W_L(s')^H``.
4. Cross terms with the passed-through acquired lines from the column sums of ``V``;
   acquired/acquired is ``Y X Psi`` at ``Delta = 0``.
5. Block ``(d, d')`` at reduced offset ``Delta`` lands at ``D = (R Delta_y + d' - d, Delta_x)``.

Cost ``~ (Ny Nx / R) cin C^2 (2Ty-1)(2Tx-1)`` (spectral) plus building ``H``; memory
``O(chunk * Nx * cin * Ty * Tx * C)``. Requires ``Ny % R == 0`` (the reduced grid is
then periodic and the result exact); other sizes are refused.

References: Breuer et al. 2009 (GRAPPA g-factor); Dawood et al. 2024.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import kspace_net, validate
from . import jacobian
from ..sampling import Sampling
from .linearise import Linearisation

__all__ = ["Bands", "noise_bands", "band_extent", "METHODS"]

METHODS = ("spectral", "gram")


@dataclasses.dataclass(frozen=True)
class Bands:
    """Band coefficients ``s_cc'(D)`` of the reconstructed k-space covariance.

    Attributes:
        s: (Nc, Nc, 2*My+1, 2*Mx+1) complex; ``s[:, :, My + Dy, Mx + Dx] = s(Dy, Dx)``,
            per unit input noise covariance ``Psi``. ``s(-D) = s(D)^H``.
        extent: ``(My, Mx)`` (static).
        shape: full grid ``(Ny, Nx)`` (static).
        R: acceleration (static).
        mode: linearisation used (static).
    """

    s: jax.Array
    extent: tuple
    shape: tuple
    R: int
    mode: str


jax.tree_util.register_dataclass(Bands, data_fields=["s"], meta_fields=["extent", "shape", "R", "mode"])


def _rf(shapes):
    """Receptive-field box ``(loy, hiy, lox, hix)`` of the stacked kernels (offsets of the input),
    from :func:`rakijax.kspace_net.reach`."""
    above, below, left, right = kspace_net.reach(shapes)
    return -above, below, -left, right


def band_extent(kernel_shapes: Sequence[Sequence[int]], R: int):
    """Half-widths ``(My, Mx)`` of the k-space covariance band, derived from the kernels.

    ``s(D) = 0`` for ``|Dy| > My`` or ``|Dx| > Mx``. For the default RAKI kernels
    (2x5, 1x1, 1x5) this is ``(2R - 2, 8)``, i.e. ``(4R-3) x 17`` (MATH.md section 4).
    """
    shapes = [tuple(int(n) for n in s) for s in kernel_shapes]
    if R == 1:
        return 0, 0
    loy, hiy, lox, hix = _rf(shapes[:-1])
    ty, tx = hiy - loy + 1, hix - lox + 1
    ly, hy = kspace_net.tap_offsets(shapes[-1][-2])
    lx, hx = kspace_net.tap_offsets(shapes[-1][-1])
    esy, esx = ty - 1 + shapes[-1][-2] - 1, tx - 1 + shapes[-1][-1] - 1
    # cross terms acquired x predicted: Delta in -(RF + taps_L), D_y = R Delta_y + d', d' = 1..R-1
    c_lo, c_hi = -hiy - hy, -loy - ly
    cx = max(abs(-hix - hx), abs(-lox - lx))
    my = max(R * esy + R - 2, abs(R * c_lo + 1), abs(R * c_hi + R - 1))
    return my, max(esx, cx)


def _validate(kernels, lin: Linearisation, sampling: Sampling, psi):
    kernels = [jnp.asarray(w) for w in kernels]
    R = sampling.R
    validate.check_kernels(kernels, R)
    nc = kernels[0].shape[1]
    Y, X = lin.grid
    sampling.require_periodic(
        "exact g-factor maps",
        "the acquired lines are not periodic across the k-space wrap otherwise; crop or zero-pad ky to a multiple of R",
    )
    if Y != sampling.num_reduced:
        raise ValueError(f"linearisation grid {lin.grid} has {Y} rows but the sampling has {sampling.num_reduced} acquired lines")
    if lin.num_hidden != len(kernels) - 1:
        raise ValueError(f"linearisation has {lin.num_hidden} hidden layers but there are {len(kernels)} kernels")
    for l in range(lin.num_hidden):
        for c in lin.coefficients(l):
            if c.shape != (kernels[l].shape[0], Y, X):
                raise ValueError(f"hidden layer {l + 1} coefficients {c.shape} != {(kernels[l].shape[0], Y, X)}")
    if psi is not None:
        psi = jnp.asarray(psi)
        if psi.shape != (nc, nc):
            raise ValueError(f"noise covariance must be ({nc}, {nc}) for {nc} coils, got {psi.shape}")
    return kernels


def noise_bands(
    kernels: Sequence,
    lin: Linearisation,
    sampling: Sampling,
    psi=None,
    *,
    chunk: int = 8,
    method: str = "spectral",
) -> Bands:
    """Band coefficients ``s_cc'(D)`` of the reconstructed k-space noise covariance.

    Exact (no approximation beyond the linearisation ``lin``) for input noise of coil
    covariance ``psi`` on every acquired sample, independent across samples.

    Args:
        kernels: list of complex kernels ``(cout, cin, kh, kw)``, last one with
            ``(R-1)*Nc`` outputs (any number of layers >= 1, any kernel sizes).
        lin: :func:`~rakijax.gfactor.linearise.linearise` of the same kernels at the data.
        sampling: the sampling (``Ny % R == 0`` required).
        psi: (Nc, Nc) noise covariance (Hermitian positive definite), default identity.
        chunk: reduced-grid rows per chunk of ``V`` (bounds memory:
            ``~ chunk * Nx * cin * |RF| * C`` complex numbers).
        method: ``"spectral"`` (default) or ``"gram"`` (one real tap-blocked GEMM),
            both exact.

    Returns:
        :class:`Bands`.

    Raises:
        ValueError: ``Ny % R != 0``, inconsistent shapes, unknown method.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if int(chunk) < 1:
        raise ValueError(f"chunk must be a positive number of rows, got {chunk}")
    kernels = _validate(kernels, lin, sampling, psi)
    nc = kernels[0].shape[1]
    Y, X = lin.grid
    shape = (sampling.ny, X)
    R = sampling.R
    dtype = jnp.result_type(*kernels, *jax.tree_util.tree_leaves(lin), jnp.complex64)
    if not jnp.issubdtype(dtype, jnp.complexfloating):
        dtype = jnp.complex64
    psi = jnp.eye(nc, dtype=dtype) if psi is None else jnp.asarray(psi, dtype)
    extent = band_extent([w.shape for w in kernels], R)
    s = _bands(tuple(w.astype(dtype) for w in kernels), lin, psi, R=R, chunk=int(min(chunk, Y)), method=method, extent=extent)
    return Bands(s=s, extent=extent, shape=shape, R=R, mode=lin.mode)


# --------------------------------------------------------------------------- core


def _phases(n: int, dtype):
    """(n, 2n-1) roots-of-unity phases ``exp(2 pi i t k / (2n-1))``."""
    P = 2 * n - 1
    return np.exp(2j * np.pi * np.outer(np.arange(n), np.arange(P)) / P)


@partial(jax.jit, static_argnames=("R", "chunk", "method", "extent"))
def _bands(kernels, lin, psi, *, R, chunk, method, extent):
    mode = lin.mode
    Y, X = lin.grid
    nc = kernels[0].shape[1]
    dtype = psi.dtype
    rdt = jnp.real(psi).dtype
    L = jnp.linalg.cholesky(psi)
    Lfull = L if mode == "frozen" else jnp.concatenate([L, jnp.zeros_like(L)], axis=1)
    cin = Lfull.shape[1]
    My, Mx = extent
    s = jnp.zeros((nc, nc, 2 * My + 1, 2 * Mx + 1), dtype)
    s = s.at[:, :, My, Mx].add(Y * X * psi)  # acquired x acquired
    if R == 1:
        return s
    nh = len(kernels) - 1
    wl = kernels[-1]
    cout, C, khL, kwL = wl.shape

    if nh == 0:  # GRAPPA: the "hidden" state is the prewhitened input itself
        loy = hiy = lox = hix = 0
        Ty = Tx = 1
        Tb = (Y * X * (Lfull @ jnp.conj(Lfull).T))[None, None]  # (1, 1, Nc, Nc)
        HS = (Y * X * Lfull.T)[:, None, None, :]  # (cin, 1, 1, Nc)
    else:
        loy, hiy, lox, hix = _rf([w.shape for w in kernels[:-1]])
        Ty, Tx = hiy - loy + 1, hix - lox + 1
        U = chunk
        nchunks = -(-Y // U)
        J = U + Ty - 1
        if method == "spectral":
            Py, Px = 2 * Ty - 1, 2 * Tx - 1
            E = np.einsum("yk,xl->yxkl", _phases(Ty, None), _phases(Tx, None)).reshape(Ty * Tx, Py * Px).T  # (Z, T)
            Emat = tuple(jnp.asarray(np.block(b), rdt) for b in ([E.real, -E.imag], [E.imag, E.real], [E.real + E.imag, E.real - E.imag]))
            acc0 = (jnp.zeros((Py * Px, C, C), rdt), jnp.zeros((Py * Px, C, C), rdt))
        else:
            acc0 = tuple(jnp.zeros((2 * C, (Ty * Tx - t) * 2 * C), rdt) for t in range(Ty * Tx))
        hs0 = jnp.zeros((Ty * Tx, cin, C), dtype)

        def body(carry, i):
            acc, hs = carry
            u0 = i * U
            if nh == 2:  # the RAKI architecture: built tap by tap
                Vri = jacobian.input_jacobian_two_hidden(kernels, lin, Lfull, u0, U, nc, (loy, lox, Ty, Tx)).reshape(2, Ty * Tx, U, X, cin, C)
            else:
                P = jacobian.hidden_jacobian(kernels, lin, Lfull, u0 - hiy, J, nc)  # (J, X, cin, Ty, Tx, C)
                V = jnp.stack(
                    [jnp.roll(P[Ty - 1 - iy : Ty - 1 - iy + U, :, :, iy, ix], lox + ix, axis=1) for iy in range(Ty) for ix in range(Tx)]
                )  # (T, U, X, cin, C): V[t, u, x, c, a] = H(u - t, t)[a, c]
                Vri = jnp.stack([jnp.real(V), jnp.imag(V)])
            valid = (u0 + jnp.arange(U)) < Y
            Vri = Vri * valid[None, None, :, None, None, None].astype(rdt)
            hsr = jnp.sum(Vri, axis=(2, 3))
            hs = hs + jax.lax.complex(hsr[0], hsr[1])
            rows = U * X * cin
            hi = jax.lax.Precision.HIGHEST
            if method == "spectral":
                # [Re, Im, Re + Im] of V~(z_k) = sum_t z_k^t V_t as one real GEMM (3Z x 2T) @ (2T x rows*C);
                # the Hermitian Gram from two real GEMMs: Q = Re^T Im, P = (Re+Im)^T (Re+Im) = Re^T Re + Im^T Im + Q + Q^T
                # (three GEMMs, not one and slices: XLA:CPU runs the Grams of slices of one array ~2x slower)
                Vri = Vri.reshape(2 * Ty * Tx, rows * C)
                za, zb, zs = (jnp.matmul(e, Vri, precision=hi).reshape(-1, rows, C) for e in Emat)
                q = jnp.einsum("krA,krB->kAB", za, zb, precision=hi)
                p_ = jnp.einsum("krA,krB->kAB", zs, zs, precision=hi)
                acc = (acc[0] + p_, acc[1] + q)
            else:
                Vri = jnp.moveaxis(Vri, 0, -2).reshape(Ty * Tx, rows, 2 * C).transpose(1, 0, 2)
                acc = tuple(
                    a + jnp.matmul(Vri[:, t].T, Vri[:, t:].reshape(rows, -1), precision=hi)
                    for t, a in enumerate(acc)
                )
            return (acc, hs), None

        (acc, HS), _ = jax.lax.scan(body, (acc0, hs0), jnp.arange(nchunks))
        HS = jnp.transpose(HS.reshape(Ty, Tx, cin, C), (2, 0, 1, 3))  # (cin, Ty, Tx, C)

        def cplx(G):  # real Gram blocks [[rr, ri], [ir, ii]] -> sum V_a conj(V_b)
            rr, ri, ir, ii = G[..., :C, :C], G[..., :C, C:], G[..., C:, :C], G[..., C:, C:]
            return jax.lax.complex(rr + ii, ir - ri)

        if method == "spectral":
            pp, ri = acc
            sym = pp - ri - jnp.swapaxes(ri, -1, -2)  # Re^T Re + Im^T Im
            Th = jax.lax.complex(sym, jnp.swapaxes(ri, -1, -2) - ri)  # (Py*Px, C, C) at the roots of unity
            dy = np.arange(-(Ty - 1), Ty)
            dx = np.arange(-(Tx - 1), Tx)
            inv = np.einsum("ky,lx->klyx", np.exp(-2j * np.pi * np.outer(np.arange(Py), dy) / Py), np.exp(-2j * np.pi * np.outer(np.arange(Px), dx) / Px))
            inv = jnp.asarray(inv.reshape(Py * Px, Py, Px) / (Py * Px), dtype)
            Tb = jnp.einsum("kyx,kab->yxab", inv, Th)
        else:
            Tb = jnp.zeros((2 * Ty - 1, 2 * Tx - 1, C, C), dtype)
            T = Ty * Tx
            for t, a in enumerate(acc):
                blocks = a.reshape(2 * C, T - t, 2 * C)
                for k, t2 in enumerate(range(t, T)):
                    g = cplx(blocks[:, k, :])
                    (iy, ix), (jy, jx) = divmod(t, Tx), divmod(t2, Tx)
                    Tb = Tb.at[iy - jy + Ty - 1, ix - jx + Tx - 1].add(g)
                    if t2 != t:
                        Tb = Tb.at[jy - iy + Ty - 1, jx - ix + Tx - 1].add(jnp.conj(g).T)

    # --- push the last layer out: S(Delta) = sum_{s,s'} W(s) T(Delta + s' - s) W(s')^H
    Sy, Sx = 2 * Ty - 1 + 2 * (khL - 1), 2 * Tx - 1 + 2 * (kwL - 1)
    A = jnp.einsum("oaqr,yxab->qryxob", wl, Tb)
    Sb = jnp.zeros((Sy, Sx, cout, cout), dtype)
    for qy in range(khL):
        for qx in range(kwL):
            for py in range(khL):
                for px in range(kwL):
                    blk = jnp.einsum("yxob,pb->yxop", A[qy, qx], jnp.conj(wl[:, :, py, px]))
                    oy, ox = qy - py + khL - 1, qx - px + kwL - 1
                    Sb = Sb.at[oy : oy + 2 * Ty - 1, ox : ox + 2 * Tx - 1].add(blk)
    esy, esx = Ty - 1 + khL - 1, Tx - 1 + kwL - 1

    # --- cross terms: C0(Delta) = sum_j E[dn(j) dy(j + Delta)^H], Delta = -t - s
    Xc = jnp.einsum("nc,cyxa->yxna", Lfull, jnp.conj(HS))[::-1, ::-1]  # index Delta' + hi = -t + hi
    Cy, Cx = Ty + khL - 1, Tx + kwL - 1
    C0 = jnp.zeros((Cy, Cx, nc, cout), dtype)
    for qy in range(khL):
        for qx in range(kwL):
            blk = jnp.einsum("yxna,oa->yxno", Xc, jnp.conj(wl[:, :, qy, qx]))
            oy, ox = khL - 1 - qy, kwL - 1 - qx
            C0 = C0.at[oy : oy + Ty, ox : ox + Tx].add(blk)
    ly, hy = kspace_net.tap_offsets(khL)
    lx, hx = kspace_net.tap_offsets(kwL)
    c0y, c0x = -hiy - hy, -hix - hx  # Delta of index 0

    # --- assemble s(D), D = (R Delta_y + d' - d, Delta_x)
    ncy = Sy
    for d in range(1, R):
        for d2 in range(1, R):
            blk = jnp.transpose(Sb[:, :, (d - 1) * nc : d * nc, (d2 - 1) * nc : d2 * nc], (2, 3, 0, 1))
            y0 = My + R * (-esy) + d2 - d
            x0 = Mx - esx
            s = s.at[:, :, y0 : y0 + R * (ncy - 1) + 1 : R, x0 : x0 + Sx].add(blk)
    for d2 in range(1, R):
        blk = jnp.transpose(C0[:, :, :, (d2 - 1) * nc : d2 * nc], (2, 3, 0, 1))  # (n, c', Cy, Cx)
        y0 = My + R * c0y + d2
        x0 = Mx + c0x
        s = s.at[:, :, y0 : y0 + R * (Cy - 1) + 1 : R, x0 : x0 + Cx].add(blk)
        # mirror block (d2, 0): s(-D) = s(D)^H
        mir = jnp.conj(jnp.transpose(blk, (1, 0, 2, 3)))[:, :, ::-1, ::-1]
        y1 = 2 * My - (y0 + R * (Cy - 1))
        x1 = 2 * Mx - (x0 + Cx - 1)
        s = s.at[:, :, y1 : y1 + R * (Cy - 1) + 1 : R, x1 : x1 + Cx].add(mir)
    return s
