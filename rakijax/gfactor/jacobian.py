"""Local Jacobians of the linearised RAKI network, for the exact noise bands (:mod:`.bands`).

``H(j, t)`` is the Jacobian of the last hidden activation at reduced point ``j`` with
respect to the (prewhitened, with the true derivative augmented ``[w; conj w]``) input
sample at ``j + t``, ``t`` in the receptive field of the hidden layers. Two builders:
:func:`hidden_jacobian` (any number of hidden layers, output-indexed) and
:func:`input_jacobian_two_hidden` (two hidden layers, input-indexed ``V_t(u) = H(u - t, t)``,
tap by tap, real and imaginary parts apart: the fast path for the RAKI architecture).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from .. import kspace_net

__all__ = ["hidden_jacobian", "input_jacobian_two_hidden"]


def _act(coefs, Z, mode, nc):
    """Linearised activation on a tap-indexed Jacobian ``Z`` (J, X, cin, Ty, Tx, C)."""
    if mode == "frozen":
        (m,) = coefs  # (J, X, C)
        return m[:, :, None, None, None, :] * Z
    al, be = coefs
    sw = jnp.concatenate([Z[:, :, nc:], Z[:, :, :nc]], axis=2)
    return al[:, :, None, None, None, :] * Z + be[:, :, None, None, None, :] * jnp.conj(sw)


def _rows(c, start, J):
    """Rows ``start..start+J-1`` (mod Y) of a coefficient map (C, Y, X) -> (J, X, C)."""
    Y = c.shape[1]
    idx = (start + jnp.arange(J)) % Y
    return jnp.transpose(jnp.take(c, idx, axis=1), (1, 2, 0))


def _place(a, oy, ox, ty, tx, axis=-3):
    """Zero-pad the tap axes (``axis``, ``axis+1``) into a (ty, tx) box at offset (oy, ox)."""
    axis = axis % a.ndim
    pad = [(0, 0)] * a.ndim
    pad[axis] = (oy, ty - oy - a.shape[axis])
    pad[axis + 1] = (ox, tx - ox - a.shape[axis + 1])
    return jnp.pad(a, pad)


def _rgemm_complex(lhs_re, lhs_im, rhs):
    """``(lhs_re + i lhs_im) @ rhs`` as real GEMMs (``lhs_im`` None: real left operand)."""
    rr, ri = jnp.real(rhs), jnp.imag(rhs)
    dot = partial(jnp.matmul, precision=jax.lax.Precision.HIGHEST)
    if lhs_im is None:
        both = dot(lhs_re, jnp.concatenate([rr, ri], axis=-1))
        n = rr.shape[-1]
        return jax.lax.complex(both[..., :n], both[..., n:])
    n = rr.shape[-1]
    top = dot(jnp.concatenate([lhs_re, lhs_im], axis=-1), jnp.concatenate([jnp.concatenate([rr, ri], -1), jnp.concatenate([-ri, rr], -1)], 0))
    return jax.lax.complex(top[..., :n], top[..., n:])


def hidden_jacobian(kernels, lin, Lfull, start, J, nc):
    """``H(j, t)`` of the last hidden activation for rows ``start..start+J-1``.

    Returns (J, X, cin, Ty, Tx, C) with ``[j, x, c, iy, ix, a] = dh_a(j, x) / dn~_c(j + t)``,
    ``t = (loy + iy, lox + ix)``.
    """
    mode = lin.mode
    nh = len(kernels) - 1
    X = lin.grid[1]
    cin = Lfull.shape[1]
    # row starts of every hidden layer (backwards from the last one)
    starts, Js = [0] * nh, [0] * nh
    starts[-1], Js[-1] = start, J
    for l in range(nh - 1, 0, -1):  # layer l+1 (0-based l) reads layer l rows j + s
        kh = kernels[l].shape[2]
        starts[l - 1] = starts[l] + kspace_net.tap_offsets(kh)[0]
        Js[l - 1] = Js[l] + kh - 1
    coefs = [tuple(_rows(c, starts[l], Js[l]) for c in lin.coefficients(l)) for l in range(nh)]

    w1 = kernels[0]
    Z1 = jnp.einsum("abyx,bc->yxac", w1, Lfull)  # (Ty1, Tx1, C1, cin), j-independent
    if nh == 1:
        Z = jnp.broadcast_to(jnp.transpose(Z1, (3, 0, 1, 2))[None, None], (J, X) + (cin,) + Z1.shape[:2] + Z1.shape[2:3])
        return _act(coefs[0], Z, mode, nc)

    # layer 2 from the j-independent layer-1 Jacobian: one GEMM over (tap s, channel b)
    w2 = kernels[1]
    c2, c1, kh2, kw2 = w2.shape
    ty1, tx1 = Z1.shape[:2]
    ty2, tx2 = ty1 + kh2 - 1, tx1 + kw2 - 1
    ax2 = (kw2 - 1) // 2
    # Z1s[qy, qx, iy2, ix2, b, c] = Z1 at tap t - s
    Z1s = jnp.stack([jnp.stack([_place(Z1, qy, qx, ty2, tx2, axis=0) for qx in range(kw2)]) for qy in range(kh2)])

    def kmat(z1s):  # K[(qy,qx,b), (c, iy2, ix2, a)]
        K = jnp.einsum("abyx,yxijbc->yxbcija", w2, z1s)
        return K.reshape(kh2 * kw2 * c1, -1)

    J2 = Js[1]
    if mode == "frozen":
        (m1,) = coefs[0]
        g = _gathered_rows(m1, J2, kh2, kw2, ax2)
        Z2 = _rgemm_complex(jnp.real(g), jnp.imag(g), kmat(Z1s))
    else:
        al1, be1 = coefs[0]
        half = nc
        KA = kmat(Z1s[..., :half])  # Z1 = [W1 L, 0]: alpha part feeds the w columns
        KB = kmat(jnp.conj(Z1s[..., :half]))  # beta part feeds the conj(w) columns
        ZA = _rgemm_complex(_gathered_rows(al1, J2, kh2, kw2, ax2), None, KA).reshape(J2 * X, half, -1)
        ZB = _rgemm_complex(_gathered_rows(be1, J2, kh2, kw2, ax2), None, KB).reshape(J2 * X, half, -1)
        Z2 = jnp.concatenate([ZA, ZB], axis=1)
    Z = Z2.reshape(J2, X, cin, ty2, tx2, c2)
    P = _act(coefs[1], Z, mode, nc)

    # layers 3..L-1: Z_{l+1}(j, t) = sum_s W(s) P_l(j + s, t - s)
    for l in range(2, nh):
        w = kernels[l]
        co, ci, kh, kw = w.shape
        Jl = Js[l]
        ty, tx = P.shape[3] + kh - 1, P.shape[4] + kw - 1
        ax = (kw - 1) // 2
        Z = 0
        for qy in range(kh):
            for qx in range(kw):
                sh = jnp.roll(P[qy : qy + Jl], -(qx - ax), axis=1)
                sh = _place(sh, qy, qx, ty, tx)
                Z = Z + jnp.einsum("ab,jxcyzb->jxcyza", w[:, :, qy, qx], sh)
        P = _act(coefs[l], Z, mode, nc)
    return P


def _tap_taken(c, rows0, U, shift):
    """``c[:, rows0 + u, x - shift]`` for ``u < U`` (rows mod Y, x mod X) -> (U * X, C)."""
    Y = c.shape[1]
    idx = (rows0 + jnp.arange(U)) % Y
    g = jnp.roll(jnp.take(c, idx, axis=1), shift, axis=2)  # (C, U, X)
    return jnp.transpose(g, (1, 2, 0)).reshape(-1, c.shape[0])


def input_jacobian_two_hidden(kernels, lin, Lfull, u0, U, nc, box):
    """``V[t, (u, x, c), a] = H(u - t, t)[a, c]`` for two hidden layers, tap by tap.

    The input-indexed Jacobian of the last hidden activation built directly, one
    real GEMM per tap ``t`` of the receptive field (the layer-1 Jacobian is
    position-independent, so only the activation coefficients are gathered at the
    positions ``u - t``): no intermediate ``(J, X, cin, Ty, Tx, C)`` array, no
    shifted copies of it, and real and imaginary parts kept apart for the real
    GEMMs that follow. Returns (2, Ty*Tx, U*X, cin, C) real: ``[Re V, Im V]``.
    """
    loy, lox, Ty, Tx = box
    mode = lin.mode
    w1, w2 = kernels[0], kernels[1]
    c2, c1, kh2, kw2 = w2.shape
    lo2 = kspace_net.tap_offsets(kh2)[0]
    ax2 = (kw2 - 1) // 2
    Z1 = jnp.einsum("abyx,bc->yxac", w1, Lfull[:, :nc])  # (ty1, tx1, C1, Nc): the w columns
    ty1, tx1 = Z1.shape[:2]
    co1, co2 = lin.coefficients(0), lin.coefficients(1)
    dot = partial(jnp.matmul, precision=jax.lax.Precision.HIGHEST)
    n = nc * c2
    re, im = [], []
    for iy in range(Ty):
        for ix in range(Tx):
            ty, tx = loy + iy, lox + ix
            qs = [(qy, qx) for qy in range(kh2) for qx in range(kw2) if 0 <= iy - qy < ty1 and 0 <= ix - qx < tx1]
            # K[(q, b), (c, a)] = W2(q)[a, b] Z1(t - q)[b, c]; conj=True: Z1 conjugated (the conj(w) columns)
            kmat = lambda conj: jnp.concatenate(  # noqa: E731
                [jnp.einsum("ab,bc->bca", w2[:, :, qy, qx], jnp.conj(Z1[iy - qy, ix - qx]) if conj else Z1[iy - qy, ix - qx])
                 for qy, qx in qs]).reshape(len(qs) * c1, n)
            K = kmat(False)
            take1 = lambda c: jnp.concatenate([_tap_taken(c, u0 - ty + lo2 + qy, U, tx - (qx - ax2)) for qy, qx in qs], axis=1)
            take2 = lambda c: _tap_taken(c, u0 - ty, U, tx)[:, None, :]  # (U*X, 1, C2)
            split = lambda both: (both[:, :n].reshape(-1, nc, c2), both[:, n:].reshape(-1, nc, c2))
            if mode == "frozen":
                (m1,), (m2,) = co1, co2
                g = take1(m1)
                Kr, Ki = jnp.real(K), jnp.imag(K)
                # (gr + i gi)(Kr + i Ki) as one real GEMM -> [Re | Im]
                zr, zi = split(dot(jnp.concatenate([jnp.real(g), jnp.imag(g)], 1), jnp.concatenate([jnp.concatenate([Kr, Ki], 1), jnp.concatenate([-Ki, Kr], 1)], 0)))
                m = take2(m2)
                mr, mi = jnp.real(m), jnp.imag(m)
                re.append(mr * zr - mi * zi)
                im.append(mr * zi + mi * zr)
            else:
                (al1, be1), (al2, be2) = co1, co2
                KB = kmat(True)
                # ZA = alpha1 . (W2 Z1), ZB = beta1 . (W2 conj Z1) with real alpha1, beta1: [Re | Im] by real GEMMs
                ar, ai = split(dot(take1(al1), jnp.concatenate([jnp.real(K), jnp.imag(K)], 1)))
                br, bi = split(dot(take1(be1), jnp.concatenate([jnp.real(KB), jnp.imag(KB)], 1)))
                a2, b2 = take2(al2), take2(be2)
                # H_w = a2 ZA + b2 conj(ZB);  H_conj(w) = a2 ZB + b2 conj(ZA)
                re.append(jnp.concatenate([a2 * ar + b2 * br, a2 * br + b2 * ar], axis=1))
                im.append(jnp.concatenate([a2 * ai - b2 * bi, a2 * bi - b2 * ai], axis=1))
    return jnp.stack([jnp.stack(re), jnp.stack(im)])


def _gathered_rows(c, J, kh, kw, ax):
    """``c[j + qy, x + qx - ax, b]`` for ``j < J`` -> (J*X, kh*kw*C) (c is (J+kh-1, X, C))."""
    X, C = c.shape[1], c.shape[2]
    g = jnp.stack(
        [jnp.stack([jnp.roll(c[qy : qy + J], -(qx - ax), axis=1) for qx in range(kw)], axis=2) for qy in range(kh)],
        axis=2,
    )  # (J, X, kh, kw, C)
    return g.reshape(J * X, kh * kw * C)
