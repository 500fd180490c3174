"""Frozen-mask linear operator, its adjoint, and the true (widely-linear) derivative.

References: dot-product test, jax.linear_transpose, jax.jvp/vjp/jacfwd of the operator,
jax.jvp of the k-space network (kspace_net.apply_network) for the true derivative.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rakijax.fft import ifft2c
from rakijax.image_space import (
    ImageSpaceRaki,
    adjoint_operator,
    frozen_apply,
    frozen_operator,
    place_on_full_grid,
    true_derivative_operator,
)
from rakijax.kspace_net import apply_network
from rakijax.sampling import make_sampling, undersample

from _props import assert_adjoint, assert_linear, assert_not_complex_linear


def _c(rng, *shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def _setup(R=3, ny=21, nx=10, nc=4, slope=0.4, seed=0):
    # same shapes as the R = 3 case of test_image_space.py so compiled programs are shared
    rng = np.random.default_rng(seed)
    ks = [_c(rng, 8, nc, 2, 5), _c(rng, 6, 8, 1, 1), _c(rng, (R - 1) * nc, 6, 1, 5)]
    s = make_sampling(ny, R, 2 * R + 2)
    zf, u, _ = undersample(_c(rng, nc, ny, nx), s)
    return rng, ks, s, jnp.asarray(zf), jnp.asarray(u), ImageSpaceRaki.from_kernels(ks, u, s, slope)


_apply_network = jax.jit(apply_network, static_argnums=2)


def _rel(x, y):
    return float(jnp.linalg.norm(x - y) / jnp.linalg.norm(y))


@pytest.mark.parametrize("R,ny,nx", [(3, 21, 10), (4, 16, 9)])
def test_adjoint_dot_product(R, ny, nx):
    rng, ks, s, zf, u, op = _setup(R, ny, nx)
    f, fh = frozen_operator(op), adjoint_operator(op)
    # float64 rounding of a few FFTs/einsums, relative to |f a| |b|
    assert_adjoint(f, fh, (4, ny, nx), (4, ny, nx), rng=rng, rtol=1e-12, trials=3)
    assert_linear(fh, (4, ny, nx), rng=rng, rtol=1e-12)
    b = jnp.asarray(_c(rng, 4, ny, nx))
    # explicit adjoint == conj(T(conj b)) with T from jax.linear_transpose
    a0 = jnp.zeros((4, ny, nx), complex)
    (tb,) = jax.linear_transpose(f, a0)(jnp.conj(b))
    assert _rel(fh(b), jnp.conj(tb)) <= 1e-12


def test_frozen_operator_is_linear_and_autodiff_works():
    rng, ks, s, zf, u, op = _setup()
    f = frozen_operator(op)
    shape = zf.shape
    a, b = jnp.asarray(_c(rng, *shape)), jnp.asarray(_c(rng, *shape))
    assert_linear(f, shape, rng=rng, rtol=1e-12)  # complex linearity
    # frozen at u's masks: on u's own aliased images it is the nonlinear network
    assert _rel(f(ifft2c(zf)), ifft2c(_apply_network(ks, u, s, 0.4))) <= 1e-12
    # jvp: tangent output == f(tangent); vjp == transpose
    _, t = jax.jvp(f, (a,), (b,))
    assert _rel(t, f(b)) <= 1e-12
    _, vjp = jax.vjp(f, a)
    (v,) = vjp(b)
    assert _rel(v, jnp.conj(adjoint_operator(op)(jnp.conj(b)))) <= 1e-12
    # holomorphic jacfwd on a tiny grid: the dense matrix applied to a == f(a)
    J = jax.jacfwd(f, holomorphic=True)(a)
    assert J.shape == shape + shape
    assert _rel(jnp.einsum("abcdef,def->abc", J, b), f(b)) <= 1e-12
    # jit with the operator as an argument
    assert _rel(jax.jit(frozen_apply)(op, b), f(b)) <= 1e-15


@pytest.mark.parametrize("R,ny,nx,slope", [(3, 21, 10, 0.4), (4, 16, 9, 0.0), (3, 21, 10, 1.0)])
def test_true_derivative_equals_kspace_jvp(R, ny, nx, slope):
    rng, ks, s, zf, u, _ = _setup(R, ny, nx, slope=slope, seed=R)
    D = true_derivative_operator(ks, u, s, slope)
    kfun = lambda v: _apply_network(ks, v, s, slope)
    for _ in range(2):
        du = jnp.asarray(_c(rng, *u.shape))
        _, t = jax.jvp(kfun, (u,), (du,))  # autodiff of the k-space network (R-linear tangent)
        dx = D(ifft2c(place_on_full_grid(du, s, 0)))
        assert _rel(dx, ifft2c(t)) <= 1e-12
    da = jnp.asarray(_c(rng, *zf.shape))
    frozen = frozen_operator(ImageSpaceRaki.from_kernels(ks, u, s, slope))(da)
    assert_linear(D, zf.shape, rng=rng, rtol=1e-12, complex_scalars=False)  # R-linear always
    if slope == 1.0:  # beta == 0: both linearisations coincide
        assert _rel(D(da), frozen) <= 1e-12
        assert_linear(D, zf.shape, rng=rng, rtol=1e-12)
    else:  # widely linear: D(i da) != i D(da), and it differs from the frozen masks
        assert_not_complex_linear(D, zf.shape, rng=rng, min_rel=1e-3)
        assert _rel(D(da), frozen) > 1e-3
    with pytest.raises(ValueError, match="perturbation must be"):
        D(da[:2])
