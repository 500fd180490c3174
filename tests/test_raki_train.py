"""RAKI training and inference against independent references (x64 via conftest).

One data shape and one network config are shared by all tests so that the
jit-compiled training step compiles once (slope and learning rate are traced).
"""

from dataclasses import replace
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rakijax.config import preset
from rakijax import grappa, kspace_net
from rakijax.fft import fft2c, ifft2c
from rakijax.raki import TrainResult, apply, reconstruct, train, train_kernels
from rakijax.sampling import make_sampling, undersample

T = importlib.import_module("rakijax.raki.train")
I = importlib.import_module("rakijax.raki.infer")

NC, NY, NX, R, ACS = 4, 32, 28, 2, 20
# small net, lr 1e-2: the best of {3e-3, 1e-2, 3e-2} for 300 steps on these data
CFG = replace(preset("small").raki, steps=300, log_every=100, learning_rate=1e-2)
KEY = jax.random.key(0)


def _phantom(ny=NY, nx=NX, nc=NC):
    """Noise-free smooth coil images: an ellipse with texture times smooth complex maps.

    The maps are Gaussians of width ~1 (in units of the half field of view) with
    a linear phase, so the coil k-spaces are the object's k-space blurred by a few
    samples: the GRAPPA model (missing lines = local linear combination of the
    acquired ones across coils) holds up to a small residual.
    """
    yy, xx = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    img = ((yy**2 / 0.8 + xx**2 / 0.6) < 0.8) * (1 + 0.3 * np.sin(3 * xx) + 0.2 * yy)
    t = np.linspace(0, 2 * np.pi, nc, endpoint=False)
    maps = np.stack([np.exp(-((yy - np.cos(a)) ** 2 + (xx - np.sin(a)) ** 2)) * np.exp(1j * (a + 0.5 * xx)) for a in t])
    return np.asarray(fft2c(maps * img))


def _nmse(ref, x):
    return float(np.sum(np.abs(ref - x) ** 2) / np.sum(np.abs(ref) ** 2))


@pytest.fixture(scope="module")
def data():
    k = _phantom()
    s = make_sampling(NY, R, ACS)
    _, red, acs = undersample(k, s)
    return k, s, red, acs


@pytest.fixture(scope="module")
def trained(data):
    k, s, red, acs = data
    return train(acs, s, CFG, 0.5, key=KEY)


@pytest.fixture(scope="module")
def trained_linear(data):
    k, s, red, acs = data
    return train(acs, s, CFG, 1.0, key=KEY)


def test_training_reduces_loss(trained):
    assert isinstance(trained, TrainResult) and trained.losses.shape == (CFG.steps,)
    assert all(w.dtype == jnp.complex128 for w in trained.kernels)  # follows the float64 input
    # noise-free data: 300 Adam steps take the ACS loss down by > 2 orders of magnitude
    assert trained.losses[-1] < 1e-2 * trained.losses[0]
    assert trained.scale == pytest.approx(float(np.max(np.abs(undersample(_phantom(), make_sampling(NY, R, ACS))[2]))))


def test_train_equals_pure_train_kernels(data, trained):
    # same init, scaling, loss and updates; the compiled programs differ (loop vs step),
    # so allow float64 rounding accumulated over 300 steps
    kernels, losses = train_kernels(data[3], data[1], CFG, 0.5, KEY)
    np.testing.assert_allclose(np.asarray(losses), trained.losses, rtol=1e-8)
    for a, b in zip(kernels, trained.kernels):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-8 * float(jnp.max(jnp.abs(b))))


def test_vmap_over_slopes_equals_separate_runs(data):
    s, acs = data[1], data[3]
    cfg = CFG  # shares the compilation of test_train_equals_pure_train_kernels
    slopes = jnp.array([0.2, 0.7])
    kv, lv = jax.vmap(lambda a: train_kernels(acs, s, cfg, a, KEY))(slopes)
    for i, a in enumerate([0.2, 0.7]):
        k1, l1 = train_kernels(acs, s, cfg, a, KEY)
        # batched and unbatched convolutions may sum in another order: float64 rounding
        np.testing.assert_allclose(np.asarray(lv[i]), np.asarray(l1), rtol=1e-10)
        for w, w1 in zip(kv, k1):
            np.testing.assert_allclose(np.asarray(w[i]), np.asarray(w1), rtol=0, atol=1e-10)


def test_slope_one_is_the_composed_linear_kernel(trained_linear):
    ks = trained_linear.kernels
    u = jnp.asarray(np.random.default_rng(3).standard_normal((NC, 9, 11)) * (1 + 1j))
    u = u + 1j * jnp.asarray(np.random.default_rng(4).standard_normal((NC, 9, 11)))
    w = kspace_net.compose_linear(ks)
    assert w.shape[2:] == (2, 9)  # 2 x (5 + 1 + 5 - 2): the GRAPPA-like kernel of MATH.md
    # float64; the composed kernel sums the same products in another order
    scale = float(jnp.max(jnp.abs(u))) * sum(float(jnp.sum(jnp.abs(k))) for k in ks)
    np.testing.assert_allclose(np.asarray(kspace_net.forward(ks, u, 1.0)),
                               np.asarray(kspace_net.conv(u, w)), rtol=0, atol=1e-12 * scale)


def test_raki_matches_grappa_on_grappa_model_data(data, trained, trained_linear):
    k, s, red, acs = data
    # reference: GRAPPA 2x5 least squares (rakijax.grappa, an independent implementation)
    e_grappa = _nmse(k, np.asarray(kspace_net.apply_network(grappa.calibrate(acs, s), red, s)))
    e_zero = _nmse(k, np.asarray(undersample(k, s)[0]))
    e_lin = _nmse(k, np.asarray(apply(trained_linear.kernels, red, s, 1.0)))
    e_half = _nmse(k, np.asarray(apply(trained.kernels, red, s, 0.5)))
    assert e_grappa < 1e-4  # the data follow the GRAPPA model closely (measured 3.3e-5)
    assert e_zero > 0.3  # half the k-space is missing before interpolation
    # RAKI after 300 steps (small net, 360 ACS samples for ~1700 complex weights) interpolates
    # to < 1e-3 NMSE: measured 9.4e-4 (a=1) and 2.5e-3 (a=0.5) at lr 1e-2 vs GRAPPA 3.3e-5; the
    # over-parameterised net approaches GRAPPA only slowly (2e-4 / 7e-4 after 1000 steps)
    assert e_lin < 40 * e_grappa, (e_lin, e_grappa)
    assert e_half < 100 * e_grappa, (e_half, e_grappa)


def _fd_check(L, params, leaf, idx, grad_at_idx, units):
    """Central differences of L along ``unit`` at ``leaf[idx]`` equal ``part(grad_at_idx)``."""
    for unit, part in units:
        h = 1e-6
        plus = jax.tree.map(lambda a: a.at[idx].add(unit * h) if a is leaf else a, params)
        minus = jax.tree.map(lambda a: a.at[idx].add(-unit * h) if a is leaf else a, params)
        fd = (L(plus) - L(minus)) / (2 * h)  # central difference: O(h^2) error, rounding ~1e-10
        assert part(grad_at_idx) == pytest.approx(fd, rel=1e-5, abs=1e-10)


def test_gradient_convention_and_step(data):
    """Adam path: conj(jax.grad) is dL/du + i dL/dv (finite differences), and a small step along it lowers L."""
    s, acs = data[1], data[3]
    cfg = T._static(CFG)
    _, prob, _, params, _ = T._setup(jnp.asarray(acs), R, cfg, KEY, 0.5)
    loss = jax.jit(lambda p: T._loss(p, prob, 0.5, R, cfg))
    L = lambda p: float(loss(p))
    g = jax.jit(jax.grad(lambda p: T._loss(p, prob, 0.5, R, cfg)))(params)
    leaf = params[0]
    _fd_check(L, params, leaf, (1, 2, 0, 3), np.conj(np.asarray(g[0]))[1, 2, 0, 3], ((1.0, np.real), (1j, np.imag)))
    step = jax.tree.map(lambda p, q: p - 1e-2 * jnp.conj(q), params, g)
    assert L(step) < L(params)


def test_fast_loss_equals_the_reference_forward(data):
    """The stacked-real im2col loss (acs_loss) == 1/(2N) sum |forward(valid, dilation R) - t|^2, value and gradient."""
    acs = jnp.asarray(data[3])
    cfg = T._static(CFG)
    x, prob, _, kernels, _ = T._setup(acs, R, cfg, KEY, 0.3)
    rows, tg = kspace_net.acs_pairs(x, cfg.kernel_shapes(NC, R), R)

    def ref(ks):  # independent reference: kspace_net's per-tap complex convolution
        r = kspace_net.forward(ks, x, 0.3, padding="valid", dilation=R)[..., rows, :] - tg
        return 0.5 * jnp.mean(jnp.real(r) ** 2 + jnp.imag(r) ** 2)

    fast = lambda ks: T._loss(ks, prob, 0.3, R, cfg)
    assert float(fast(kernels)) == pytest.approx(float(ref(kernels)), rel=1e-12)  # float64, other summation order
    for a, b in zip(jax.grad(fast)(kernels), jax.grad(ref)(kernels)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-12 * float(jnp.max(jnp.abs(b))))


def test_lbfgs_gradient_and_descent(data):
    """L-BFGS path: the real gradient it uses matches finite differences in Re and Im, and its
    (strong Wolfe) line search never raises the loss."""
    s, acs = data[1], data[3]
    cfg = T._static(replace(preset("small").raki, optimizer="lbfgs", steps=15))
    _, prob, _, params, state = T._setup(jnp.asarray(acs), R, cfg, KEY, 0.5)
    assert isinstance(params[0], tuple) and not jnp.iscomplexobj(params[0][0])
    fn = jax.jit(lambda p: T._real_loss(p, prob, 0.5, R, cfg))
    g = jax.grad(lambda p: T._real_loss(p, prob, 0.5, R, cfg))(params)
    idx = (1, 2, 0, 3)
    _fd_check(lambda p: float(fn(p)), params, params[0][0], idx, np.asarray(g[0][0])[idx], ((1.0, float),))
    _fd_check(lambda p: float(fn(p)), params, params[0][1], idx, np.asarray(g[0][1])[idx], ((1.0, float),))
    # and it is the Adam path's convention: conj(jax.grad wrt w) = dL/dRe + i dL/dIm
    gc = jax.grad(lambda k: T._loss(k, prob, 0.5, R, cfg))(T._complexify(params))
    np.testing.assert_allclose(np.conj(np.asarray(gc[0])), np.asarray(g[0][0]) + 1j * np.asarray(g[0][1]), rtol=1e-12)
    step = jax.jit(lambda p, st: T._step(p, st, prob, 0.5, 1.0, R, cfg))
    losses = []
    for _ in range(cfg.steps):
        params, state, loss = step(params, state)
        losses.append(float(loss))
    assert all(b <= a * (1 + 1e-12) for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.05 * losses[0]


def test_no_recompilation_for_new_slopes(data, trained):
    k, s, red, acs = data
    n_step = T._chunk_jit._cache_size()
    train(acs, s, CFG.__class__(**{**CFG.__dict__, "learning_rate": 1e-3}), 0.25, key=jax.random.key(5))
    assert T._chunk_jit._cache_size() == n_step  # new slope, lr and key: same executable
    train(acs, make_sampling(NY + 4, R, ACS), CFG, 0.5, key=KEY)
    assert T._chunk_jit._cache_size() == n_step  # another Ny with the same R and ACS block: same executable
    n_tk = T._train_kernels_jit._cache_size()
    train_kernels(acs, s, CFG, 0.9, KEY)
    train_kernels(acs, s, CFG, 0.1, jax.random.key(2))
    assert T._train_kernels_jit._cache_size() <= n_tk + 1  # at most the first compilation
    apply(trained.kernels, red, s, 0.5)
    n_apply = I._apply_jit._cache_size()
    apply(trained.kernels, red, s, 0.3)
    apply(trained.kernels, red, s, 1)
    assert I._apply_jit._cache_size() == n_apply


@pytest.mark.parametrize("ny", [25, 23])
def test_apply_any_ny_keeps_acquired_lines(trained, ny):
    k = _phantom(ny=ny)
    s = make_sampling(ny, R, ACS)
    _, red, _ = undersample(k, s)
    out = np.asarray(apply(trained.kernels, red, s, 0.5))
    assert out.shape == k.shape
    np.testing.assert_array_equal(out[:, s.acquired_lines], k[:, s.acquired_lines])  # kept as measured
    assert _nmse(k, out) < 0.05  # interior lines are interpolated (edge of the partial period approximate)


def test_reconstruct_convenience(data):
    k, s, red, acs = data
    out, res = reconstruct(k, s, CFG, 0.5, key=KEY)
    ref = np.asarray(apply(res.kernels, red, s, 0.5))
    np.testing.assert_array_equal(np.asarray(out), ref)
    assert isinstance(res, TrainResult) and res.R == R and res.slope == 0.5


def test_bad_input(data):
    k, s, red, acs = data
    huge = CFG.__class__(**{**CFG.__dict__, "learning_rate": 1e150})
    with pytest.raises(FloatingPointError, match=r"step \d+ .*learning_rate=1e\+150"):
        train(acs, s, huge, 0.5, key=KEY)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="slope"):
            train(acs, s, CFG, bad, key=KEY)
    with pytest.raises(ValueError, match=r"too few ACS lines: 2 given.*needs >= 3"):
        train(acs[:, :2], s, CFG, 0.5, key=KEY)
    bad_acs = np.array(acs)
    bad_acs[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        train(bad_acs, s, CFG, 0.5, key=KEY)
    with pytest.raises(ValueError, match="R >= 2"):
        train(acs, make_sampling(NY, 1, ACS), CFG, 0.5, key=KEY)
    with pytest.raises(TypeError, match="Sampling"):
        train(acs, R, CFG, 0.5, key=KEY)  # an int R is no longer accepted
    with pytest.raises(ValueError, match="acs=20"):
        train(acs[:, :18], s, CFG, 0.5, key=KEY)  # the ACS block must match the sampling
    with pytest.raises(ValueError, match="slope"):
        apply([jnp.zeros((NC, NC, 2, 5))], red, s, 2.0)
    with pytest.raises(ValueError, match="outputs"):
        apply([jnp.zeros((NC, NC, 2, 5), complex)] * 0 + [jnp.zeros((2 * NC, NC, 2, 5), complex)], red, s, 0.5)


def test_returns_the_best_iterate(data):
    """A learning rate high enough for Adam to jump: the kernels are the lowest-loss iterate, not the last."""
    s, acs = data[1], data[3]
    cfg = CFG.__class__(**{**CFG.__dict__, "learning_rate": 0.3, "steps": 60, "log_every": 60})
    res = train(acs, s, cfg, 0.5, key=KEY)
    i = int(np.argmin(res.losses))
    assert i < cfg.steps - 1 and res.losses[-1] > res.losses[i]  # the run did jump (else the test is moot)
    _, prob, _, _, _ = T._setup(jnp.asarray(acs), R, T._static(cfg), KEY, 0.5)
    L = float(T._loss(res.kernels, prob, 0.5, R, T._static(cfg)))  # kernels are scale-free (homogeneous net)
    assert L == pytest.approx(float(res.losses[i]), rel=1e-9)  # the loss of the returned kernels is the minimum
