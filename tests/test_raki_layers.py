"""RAKI layers, config and model against independent references (x64 via conftest)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rakijax.config import preset
from rakijax import kspace_net
from rakijax.raki import ComplexConv, Raki, RakiConfig, complex_leaky_relu
from rakijax.raki.layers import complex_he_normal


def _crandn(rng, *shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def _numpy_loop_conv(u, w, dilation, padding):
    """Direct loop: y[o,j,x] = sum W[o,i,ty,tx] u[i, j + d*(ty-ay), x + tx - ax] (wrap or valid)."""
    cout, cin, kh, kw = w.shape
    _, H, W = u.shape
    ay, ax = (kh - 1) // 2, (kw - 1) // 2
    if padding == "circular":
        rows, cols = range(H), range(W)
    else:  # valid: output row q is anchored at input row q + d*ay
        rows = range(ay * dilation, H - dilation * (kh - 1 - ay))
        cols = range(ax, W - (kw - 1 - ax))
    y = np.zeros((cout, len(rows), len(cols)), complex)
    for o in range(cout):
        for a, j in enumerate(rows):
            for b, x in enumerate(cols):
                acc = 0j
                for i in range(cin):
                    for ty in range(kh):
                        for tx in range(kw):
                            acc += w[o, i, ty, tx] * u[i, (j + dilation * (ty - ay)) % H, (x + tx - ax) % W]
                y[o, a, b] = acc
    return y


def _four_real_convs(u, w, dilation, padding):
    """Re/Im split: (Wr + iWi)*(ur + iui) = (Wr*ur - Wi*ui) + i(Wr*ui + Wi*ur), real lax convs."""
    cout, cin, kh, kw = w.shape
    ay, ax = (kh - 1) // 2, (kw - 1) // 2
    if padding == "circular":
        u = np.pad(u, ((0, 0), (dilation * ay, dilation * (kh - 1 - ay)), (ax, kw - 1 - ax)), mode="wrap")

    def c(x, k):
        return jax.lax.conv_general_dilated(
            jnp.asarray(x)[None], jnp.asarray(k), (1, 1), "VALID", rhs_dilation=(dilation, 1),
            dimension_numbers=("NCHW", "OIHW", "NCHW"), precision=jax.lax.Precision.HIGHEST)[0]

    ur, ui, wr, wi = u.real, u.imag, w.real, w.imag
    return np.asarray(c(ur, wr) - c(ui, wi)) + 1j * np.asarray(c(ui, wr) + c(ur, wi))


@pytest.mark.parametrize("padding,dilation", [("circular", 1), ("valid", 3), ("circular", 2)])
def test_complex_conv_matches_real_convs_and_loop(padding, dilation):
    rng = np.random.default_rng(0)
    layer = ComplexConv(3, 2, (2, 3), param_dtype=jnp.complex128, noise=_crandn(rng, 2, 3, 2, 3))
    w = np.asarray(layer.kernel[...])
    u = _crandn(rng, 3, 9, 7)
    y = np.asarray(layer(jnp.asarray(u), padding=padding, dilation=dilation))
    # float64 throughout: agreement to rounding of O(30)-term sums
    np.testing.assert_allclose(y, _four_real_convs(u, w, dilation, padding), rtol=0, atol=1e-12)
    np.testing.assert_allclose(y, _numpy_loop_conv(u, w, dilation, padding), rtol=0, atol=1e-12)


def test_complex_conv_params_are_complex():
    noise = _crandn(np.random.default_rng(0), 3, 2, 1, 5)
    assert ComplexConv(2, 3, (1, 5), noise=noise).kernel[...].dtype == jnp.complex64  # the default
    # same shape/dtype as test_he_init_variance: one PRNG compilation for both
    layer = ComplexConv(20, 40, (2, 5), param_dtype=jnp.complex128, rngs=nnx.Rngs(params=1))
    assert layer.kernel[...].dtype == jnp.complex128 and layer.kernel[...].shape == (40, 20, 2, 5)
    with pytest.raises(ValueError, match="complex"):
        complex_he_normal(jax.random.key(0), (1, 1, 1, 1), jnp.float32)


def test_he_init_variance():
    # E|w|^2 = 2/fan_in, E[w^2] = 0 (circular); with n samples the relative std of the
    # mean of |w|^2 (exponential) is 1/sqrt(n): n = 40*20*2*5 = 8000 -> 5 sigma = 0.056
    w = np.asarray(complex_he_normal(jax.random.key(1), (40, 20, 2, 5), jnp.complex128))
    fan_in = 20 * 2 * 5
    assert abs(np.mean(np.abs(w) ** 2) * fan_in / 2 - 1) < 0.056
    assert abs(np.mean(w**2)) * fan_in / 2 < 0.056


def test_complex_leaky_relu_numpy():
    rng = np.random.default_rng(1)
    z = _crandn(rng, 50)
    a = 0.3
    ref = np.where(z.real >= 0, z.real, a * z.real) + 1j * np.where(z.imag >= 0, z.imag, a * z.imag)
    np.testing.assert_allclose(np.asarray(complex_leaky_relu(jnp.asarray(z), a)), ref, rtol=0, atol=0)
    # positive homogeneity (the reason data scaling is exact): s(c z) = c s(z) for c > 0
    np.testing.assert_allclose(np.asarray(complex_leaky_relu(jnp.asarray(7.5 * z), a)), 7.5 * ref, rtol=1e-15)


def test_model_shapes_and_forward():
    cfg = RakiConfig(widths=(6, 5, 4), kernels=((2, 3), (1, 1), (1, 1), (1, 3)))
    m = Raki(cfg, ncoils=3, R=3, rngs=nnx.Rngs(params=0), param_dtype=jnp.complex128)
    ks = m.kernels()
    assert [k.shape for k in ks] == [(6, 3, 2, 3), (5, 6, 1, 1), (4, 5, 1, 1), (6, 4, 1, 3)]
    assert all(k.dtype == jnp.complex128 for k in ks)
    u = jnp.asarray(_crandn(np.random.default_rng(2), 3, 8, 10))
    # reference: layer-by-layer numpy loop convolutions and the numpy activation
    x = np.asarray(u)
    for l, w in enumerate(ks):
        x = _numpy_loop_conv(x, np.asarray(w), 1, "circular")
        if l < len(ks) - 1:
            x = np.where(x.real >= 0, x.real, 0.2 * x.real) + 1j * np.where(x.imag >= 0, x.imag, 0.2 * x.imag)
    y = jax.jit(lambda v: m(v, 0.2))(u)  # one compilation instead of many eager ops
    np.testing.assert_allclose(np.asarray(y), x, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="R >= 2"):
        Raki(cfg, 3, 1, rngs=nnx.Rngs(params=0))


def test_config_validation_and_presets():
    assert RakiConfig().widths == (128, 64) and RakiConfig().kernels == ((2, 5), (1, 1), (1, 5))
    assert preset("small").raki.widths == (32, 8)
    assert preset("small").raki.kernel_shapes(4, 3) == [(32, 4, 2, 5), (8, 32, 1, 1), (8, 8, 1, 5)]
    assert hash(RakiConfig(widths=[4, 2])) == hash(RakiConfig(widths=(4, 2)))  # lists normalised
    with pytest.raises(ValueError, match="one kernel size per layer"):
        RakiConfig(widths=(8,))
    for bad in ({"steps": 0}, {"learning_rate": -1.0}, {"optimizer": "sgd"}, {"param_dtype": "float32"},
                {"widths": (0, 4)}, {"log_every": 0}):
        with pytest.raises(ValueError):
            RakiConfig(**bad)
