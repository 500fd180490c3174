"""Activation masks and the image-space operator against independent references.

References: k-space inference (kspace_net.apply_network / forward_hidden), jax.jacfwd of
clrelu on the real/imag split, direct circular convolution sums, numpy FFT identities,
and the closed form at slope 1 (linear_unmixing of the composed kernel).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rakijax.fft import fft2c, ifft2c
from rakijax.image_space import (
    ImageSpaceRaki,
    activation_masks,
    aliased_images,
    circular_convolve,
    conj_reflect,
    full_grid_masks,
    image_space_apply,
    linear_unmixing,
    mask_image_kernel,
    mask_statistics,
    plot_activation_kernels,
    plot_mask_statistics,
)
from rakijax.kspace_net import apply_network, clrelu, forward_hidden
from rakijax.sampling import make_sampling, undersample

from _props import assert_adjoint, assert_linear, no_recompile


def _c(rng, *shape, dtype=np.complex128):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def _net(rng, nc, R, hidden, dtype=np.complex128):
    """Random complex kernels Nc -> 8 (2x5) [-> 6 (1x1)] -> (R-1)Nc (1x5)."""
    if hidden == 1:
        return [_c(rng, 8, nc, 2, 5, dtype=dtype), _c(rng, (R - 1) * nc, 8, 1, 5, dtype=dtype)]
    return [_c(rng, 8, nc, 2, 5, dtype=dtype), _c(rng, 6, 8, 1, 1, dtype=dtype), _c(rng, (R - 1) * nc, 6, 1, 5, dtype=dtype)]


_apply_network = jax.jit(apply_network, static_argnums=2)  # the k-space reference, compiled once per shape


def _relerr(x, ref):
    return float(jnp.linalg.norm(x - ref) / jnp.linalg.norm(ref))


# ---------------------------------------------------------------- masks


def test_masks_reproduce_clrelu_and_split():
    rng = np.random.default_rng(0)
    z = _c(rng, 5, 7, 9)
    z[0, 0, :3] = [0.0, 1j * 0.3, -0.4]  # z = 0, Re z = 0, Im z = 0
    z = jnp.asarray(z)
    for a in (0.0, 0.3, 1.0):
        from rakijax.image_space import masks_from_preactivations

        m = masks_from_preactivations([z], a)
        s = clrelu(z, a)
        # one complex division: m z == s to rounding (rel 1e-15 per entry)
        np.testing.assert_allclose(m.mask[0] * z, s, rtol=0, atol=1e-14)
        # the widely-linear split is exact (products with 0, 1/2, a)
        np.testing.assert_allclose(m.alpha[0] * z + m.beta[0] * jnp.conj(z), s, rtol=0, atol=1e-15)
        assert m.mask[0][0, 0, 0] == 1  # defined where z == 0


def test_split_jacobian_equals_jacfwd_of_clrelu():
    """ds = alpha dz + beta conj(dz) realified == jax.jacfwd of (Re, Im) clrelu."""
    rng = np.random.default_rng(1)
    a = 0.37
    zs = list(_c(rng, 12)) + [0.5 + 0.0j, 0.0 - 0.5j, -0.2 + 0.0j]
    for z in zs:
        f = lambda v: jnp.stack([jnp.real(clrelu(v[0] + 1j * v[1], a)), jnp.imag(clrelu(v[0] + 1j * v[1], a))])
        jac = jax.jacfwd(f)(jnp.array([np.real(z), np.imag(z)]))
        from rakijax.image_space import masks_from_preactivations

        m = masks_from_preactivations([jnp.asarray([z])], a)
        al, be = float(m.alpha[0][0]), float(m.beta[0][0])
        cols = []
        for dz in (1.0, 1j):  # realified columns of dz -> alpha dz + beta conj dz
            w = al * dz + be * np.conj(dz)
            cols.append([w.real, w.imag])
        np.testing.assert_allclose(jac, np.array(cols).T, atol=0)


def test_activation_masks_from_network_and_full_grid():
    rng = np.random.default_rng(2)
    nc, ny, nx, R = 4, 21, 10, 3
    s = make_sampling(ny, R, 8, offset=1)
    ks = _net(rng, nc, R, 2)
    _, u, _ = undersample(_c(rng, nc, ny, nx), s)
    u = jnp.asarray(u)
    m = activation_masks(ks, u, s, 0.5)
    zs = forward_hidden(ks, u, 0.5)
    assert m.num_hidden == 2 and m.mask[0].shape == (8, 7, nx) and m.mask[1].shape == (6, 7, nx)
    for l in range(2):
        np.testing.assert_allclose(m.mask[l] * zs[l], clrelu(zs[l], 0.5), atol=1e-13)
    full = full_grid_masks(m, s)
    assert full.mask[0].shape == (8, ny, nx)
    np.testing.assert_array_equal(full.mask[1][:, 1::3], m.mask[1])
    other = np.ones(ny, bool)
    other[1::3] = False
    assert np.all(np.asarray(full.mask[0])[:, other] == 1) and np.all(np.asarray(full.beta[0])[:, other] == 0)
    # jit + vmap over slope
    mm = jax.jit(jax.vmap(lambda a: activation_masks(ks, u, s, a).beta[0]))(jnp.array([0.0, 1.0]))
    assert mm.shape == (2, 8, 7, nx) and np.all(np.asarray(mm[1]) == 0)
    with pytest.raises(ValueError, match="rows"):
        activation_masks(ks, u[:, :5], s, 0.5)
    with pytest.raises(ValueError, match="coils"):
        activation_masks(ks, u[:3], s, 0.5)


def test_one_activation_pytree_for_image_space_and_gfactor():
    """activation_masks and gfactor.linearise return the same pytree type; a mode keeps only
    its coefficients (equal to the full computation), and consumers refuse missing ones."""
    from rakijax.gfactor.linearise import Linearisation, linearise

    rng = np.random.default_rng(12)
    nc, ny, nx, R = 4, 21, 10, 3
    s = make_sampling(ny, R, 8)
    ks = _net(rng, nc, R, 2)
    u = jnp.asarray(undersample(_c(rng, nc, ny, nx), s)[1])
    full = activation_masks(ks, u, s, 0.4)
    assert Linearisation is type(full) and full.grid == (7, nx) and full.num_hidden == 2
    for mode, fields in (("true", ("alpha", "beta")), ("frozen", ("mask",))):
        lin = linearise(ks, u, s, 0.4, mode=mode)
        assert type(lin) is type(full) and lin.mode == mode and lin.num_hidden == 2
        for f in ("mask", "alpha", "beta"):
            got = getattr(lin, f)
            if f in fields:  # the same computation in another compiled program: rounding at most
                for l in range(2):
                    np.testing.assert_allclose(got[l], getattr(full, f)[l], rtol=1e-14, atol=0)
            else:
                assert got == ()
        assert len(lin.coefficients(1)) == len(fields)
    with pytest.raises(ValueError, match="do not hold 'mask'"):
        mask_statistics(linearise(ks, u, s, 0.4, mode="true"))
    with pytest.raises(ValueError, match="do not hold 'alpha'"):
        from rakijax.image_space import true_derivative_operator

        true_derivative_operator(ks, u, s, 0.4, masks=linearise(ks, u, s, 0.4, mode="frozen"))


# ---------------------------------------------------------------- convolution helpers


@pytest.mark.parametrize("shape", [(6, 4), (5, 7)])
def test_circular_convolve_matches_direct_sum(shape):
    ny, nx = shape
    rng = np.random.default_rng(3)
    k, z = _c(rng, ny, nx), _c(rng, 2, ny, nx)
    cy, cx = ny // 2, nx // 2
    ref = np.zeros_like(z)
    for ry in range(ny):
        for rx in range(nx):
            for qy in range(ny):
                for qx in range(nx):
                    ref[:, ry, rx] += k[qy, qx] * z[:, (ry - qy + cy) % ny, (rx - qx + cx) % nx]
    np.testing.assert_allclose(circular_convolve(jnp.asarray(k), jnp.asarray(z)), ref, atol=1e-12)
    # unit impulse at the centre is the identity; kernel of an all-ones mask is that impulse
    d = mask_image_kernel(jnp.ones((ny, nx), complex))
    e = np.zeros((ny, nx))
    e[cy, cx] = 1
    np.testing.assert_allclose(d, e, atol=1e-15)
    # k-space product with a mask == image convolution with its kernel
    m = _c(rng, ny, nx)
    np.testing.assert_allclose(
        circular_convolve(mask_image_kernel(jnp.asarray(m)), jnp.asarray(z)), ifft2c(m * fft2c(z)), atol=1e-12
    )
    # the convolution is linear, and its adjoint is the convolution with J(K) (float64 rounding)
    K = jnp.asarray(k)
    conv_k = lambda v: circular_convolve(K, v)  # noqa: E731
    assert_linear(conv_k, z.shape, rng=rng, rtol=1e-12)
    assert_adjoint(conv_k, lambda v: circular_convolve(conj_reflect(K), v), z.shape, z.shape, rng=rng, rtol=1e-12)
    # conj in k-space == conj_reflect in image space (reference: numpy conj + FFT)
    np.testing.assert_allclose(conj_reflect(ifft2c(jnp.asarray(z))), ifft2c(np.conj(z)), atol=1e-14)


# ---------------------------------------------------------------- operator == k-space


def _grids(R):
    # one grid per R (Ny a multiple of R), covering odd/even Ny and Nx across R
    return {2: [(12, 11)], 3: [(21, 10)], 4: [(16, 9)], 5: [(25, 12)], 6: [(18, 7)]}[R]


# every R with two hidden layers, one hidden layer at R = 2 and 5 (XLA compiles dominate the run time)
@pytest.mark.parametrize("R,hidden", [(2, 2), (3, 2), (4, 2), (5, 2), (6, 2), (2, 1), (5, 1)])
def test_image_space_equals_kspace_float64(R, hidden):
    rng = np.random.default_rng(10 * R + hidden)
    nc = 4
    ks = _net(rng, nc, R, hidden)
    for ny, nx in _grids(R):
        s = make_sampling(ny, R, 2 * R + 2)
        zf, u, _ = undersample(_c(rng, nc, ny, nx), s)
        u = jnp.asarray(u)
        for slope in (0.0, 0.5, 1.0):
            ref = ifft2c(_apply_network(ks, u, s, slope))
            op = ImageSpaceRaki.from_kernels(ks, u, s, slope)
            x = op(ifft2c(zf))
            assert op.dtype == jnp.complex128
            assert _relerr(x, ref) <= 1e-12, (ny, nx, slope)  # float64: only FFT/einsum rounding
            if slope == 0.5:
                np.testing.assert_allclose(aliased_images(u, s), ifft2c(zf), atol=1e-14)
                assert_linear(op, (nc, ny, nx), rng=rng, rtol=1e-12)  # frozen masks: complex-linear


@pytest.mark.parametrize("R,ny,nx", [(4, 24, 11)])
def test_image_space_equals_kspace_float32(R, ny, nx):
    rng = np.random.default_rng(R)
    nc = 4
    ks = _net(rng, nc, R, 2, dtype=np.complex64)
    s = make_sampling(ny, R, 2 * R + 2)
    _, u, _ = undersample(_c(rng, nc, ny, nx, dtype=np.complex64), s)
    u = jnp.asarray(u)
    for slope in (0.0, 0.5, 1.0):
        ref = ifft2c(_apply_network(ks, u, s, slope))
        x = image_space_apply(ks, u, s, slope)
        assert x.dtype == jnp.complex64
        assert _relerr(x, ref) <= 1e-5  # float32 rounding of FFTs and short channel sums (~1e-7 eps)


def test_grappa_single_layer_and_batch():
    rng = np.random.default_rng(4)
    nc, ny, nx, R = 3, 20, 9, 4
    s = make_sampling(ny, R, 8)
    ks = [_c(rng, (R - 1) * nc, nc, 2, 5)]
    zf, u, _ = undersample(_c(rng, 2, nc, ny, nx), s)
    op = ImageSpaceRaki.from_kernels(ks, u[0], s, 0.5)
    assert op.num_hidden == 0
    x = op(ifft2c(zf))  # batched input: the single-layer operator does not depend on u
    ref = ifft2c(apply_network(ks, jnp.asarray(u), s, 1.0))
    assert _relerr(x, ref) <= 1e-12


def test_slope_one_collapses_to_linear_unmixing():
    rng = np.random.default_rng(5)
    nc, ny, nx, R = 4, 24, 13, 4
    s = make_sampling(ny, R, 10)
    ks = _net(rng, nc, R, 2)
    zf, u, _ = undersample(_c(rng, nc, ny, nx), s)
    m = activation_masks(ks, jnp.asarray(u), s, 1.0)
    for l in range(2):  # exactly 1, not approximately
        assert np.all(np.asarray(m.mask[l]) == 1) and np.all(np.asarray(m.alpha[l]) == 1)
        assert np.all(np.asarray(m.beta[l]) == 0)
    op = ImageSpaceRaki.from_kernels(ks, u, s, 1.0)
    e = np.zeros((ny, nx))
    e[ny // 2, nx // 2] = 1
    for k in op.act_kernels:  # every activation kernel is the unit impulse at the centre
        np.testing.assert_allclose(k, np.broadcast_to(e, k.shape), atol=1e-15)
    # per-pixel blocks I + sum_d P_d (W3 W2 W1)_d == linear_unmixing(compose_linear)
    w = [jnp.broadcast_to(wt, wt.shape[:2] + (ny, nx)) for wt in op.weights]
    prod = jnp.einsum("abyx,bcyx,cdyx->adyx", w[2], w[1], w[0])
    from rakijax.image_space import shift_phase

    g = jnp.broadcast_to(jnp.eye(nc)[:, :, None, None], (nc, nc, ny, nx)).astype(complex)
    for d in range(1, R):
        g = g + shift_phase(d, ny, prod.dtype)[None, None, :, None] * prod[(d - 1) * nc : d * nc]
    G = linear_unmixing(ks, s, nx)
    assert _relerr(g, G) <= 1e-13
    assert _relerr(op(ifft2c(zf)), jnp.einsum("oiyx,iyx->oyx", G, ifft2c(zf))) <= 1e-12


def test_refusals_and_no_recompile():
    rng = np.random.default_rng(6)
    nc = 4
    ks = _net(rng, nc, 3, 2)
    s_bad = make_sampling(20, 3, 8)  # 20 % 3 != 0
    _, u_bad, _ = undersample(_c(rng, nc, 20, 10), s_bad)
    with pytest.raises(ValueError, match="divisible by R"):
        ImageSpaceRaki.from_kernels(ks, u_bad, s_bad, 0.5)
    s = make_sampling(21, 3, 8)
    zf, u, _ = undersample(_c(rng, nc, 21, 10), s)
    with pytest.raises(ValueError, match=r"\(R-1\)\*Nc = \d+ expected"):
        ImageSpaceRaki.from_kernels(_net(rng, nc, 4, 2), u, s, 0.5)
    op = ImageSpaceRaki.from_kernels(ks, u, s, 0.5)
    with pytest.raises(ValueError, match="aliased images must be"):
        op(ifft2c(zf)[:, :, :9])
    op(ifft2c(zf))
    with no_recompile():  # new masks, same shapes: building and applying compile nothing
        for slope in (0.0, 0.2, 0.9):
            ImageSpaceRaki.from_kernels(ks, u, s, slope)(ifft2c(zf))


def test_inspection_figures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(7)
    nc, ny, nx, R = 4, 21, 10, 3
    s = make_sampling(ny, R, 8)
    ks = _net(rng, nc, R, 2)
    _, u, _ = undersample(_c(rng, nc, ny, nx), s)
    slopes = [0.0, 0.5, 1.0]
    stats = [mask_statistics(activation_masks(ks, jnp.asarray(u), s, a), s) for a in slopes]
    assert stats[2][0]["frac_mask_not_one"] == 0 and stats[2][1]["centre_energy"] == pytest.approx(1.0, abs=1e-12)
    # random z: Re and Im signs independent -> beta != 0 for about half the entries
    assert 0.3 < stats[0][0]["frac_beta_nonzero"] < 0.7
    # the image kernel has a strong centre peak (its value is the mean mask)
    assert stats[1][0]["centre_energy"] > 0.5
    fig = plot_activation_kernels(activation_masks(ks, jnp.asarray(u), s, 0.5), s, layer=1, channels=[0, 2])
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) >= 4
    fig2 = plot_mask_statistics(slopes, stats)
    assert isinstance(fig2, matplotlib.figure.Figure)
    plt.close("all")
    with pytest.raises(ValueError, match="hidden layers"):
        plot_activation_kernels(activation_masks(ks, jnp.asarray(u), s, 0.5), s, layer=2)
