"""The least-squares last-layer initialisation (rakijax.raki.init) against independent references
(x64 via conftest): optimality via jax.grad, an independent numpy lstsq on the features built with
kspace_net's per-tap convolution, and the jit / vmap / complex64 paths."""

from dataclasses import replace
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rakijax import kspace_net
from rakijax.raki import RakiConfig, train, train_kernels
from rakijax.sampling import make_sampling, undersample

T = importlib.import_module("rakijax.raki.train")
INIT = importlib.import_module("rakijax.raki.init")

NC, NY, NX = 3, 28, 20
KEY = jax.random.key(1)


def _acs(R, acs, seed=0, ny=NY, nx=NX, nc=NC):
    """A random smooth multi-coil k-space (low-pass noise), its sampling and ACS block."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(ny) - ny // 2, np.arange(nx) - nx // 2, indexing="ij")
    env = np.exp(-(yy**2 + xx**2) / 40.0)
    k = env * (rng.standard_normal((nc, ny, nx)) + 1j * rng.standard_normal((nc, ny, nx)))
    s = make_sampling(ny, R, acs)
    _, red, block = undersample(k, s)
    return k, s, red, jnp.asarray(block)


# architectures: the paper's shape (2 hidden, last kernel 1x5) and a 3-hidden net whose last kernel
# spans two acquired lines (kh > 1, dilated rows in the features)
ARCHS = {
    "two": RakiConfig(widths=(6, 4), kernels=((2, 3), (1, 1), (1, 3))),
    "three": RakiConfig(widths=(5, 4, 3), kernels=((2, 3), (1, 1), (1, 3), (2, 3))),
}


def _problem(cfg, R, acs_block, slope):
    """Random kernels (init="random") and the training problem of the fit."""
    cfg = T._static(replace(cfg, init="random"))
    x, prob, _, kernels, _ = T._setup(acs_block, R, cfg, KEY, slope)
    return x, prob, kernels, cfg.kernel_shapes(NC, R)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_lstsq_last_layer_zeroes_the_gradient(arch):
    """At the least-squares last layer the loss gradient w.r.t. that layer vanishes (tiny ridge), and with a
    ridge the gradient of loss + ridge term vanishes; both relative to the gradient at the random last layer."""
    R, slope = 3, 0.4
    _, _, _, acs_block = _acs(R, 20)
    cfg = ARCHS[arch]
    _, prob, kernels, shapes = _problem(cfg, R, acs_block, slope)
    n = prob.targets.size  # stacked real targets: L = sum(...)/n

    def grad_last(W, lam):
        def obj(w):  # n L(W) + lam |W|^2 / 2 ... in the normalisation of ||W F - T||^2 + lam ||W||^2 (x 1/2)
            return 0.5 * n * T._loss([*kernels[:-1], w], prob, slope, R, cfg) + 0.5 * lam * jnp.sum(jnp.abs(w) ** 2)

        return np.abs(np.asarray(jax.grad(obj)(W))).max()

    g_random = grad_last(kernels[-1], 0.0)
    W = INIT.lstsq_last_layer(kernels, prob, slope, shapes, R, 1e-10)
    assert grad_last(W, 0.0) < 1e-6 * g_random
    F, _ = INIT.last_layer_features(kernels, prob, slope, shapes, R)
    ridge = 0.5
    lam = ridge * float(jnp.sum(jnp.abs(F) ** 2)) / F.shape[0]
    W = INIT.lstsq_last_layer(kernels, prob, slope, shapes, R, ridge)
    assert grad_last(W, lam) < 1e-9 * g_random
    assert grad_last(W, 0.0) > 1e-3 * g_random  # the ridge does change the solution (the check above can fail)


def _features_reference(kernels, x, slope, kshapes, R):
    """Last-layer features F (K, P) and targets (cout, P) from kspace_net's per-tap convolution, explicit taps."""
    hidden = kspace_net.clrelu(kspace_net.forward(kernels[:-1], x, slope, padding="valid", dilation=R), slope)
    hidden = np.asarray(hidden)  # (C, H, W): valid output of the hidden layers
    rows, tg = kspace_net.acs_pairs(x, kshapes, R)
    co, ci, kh, kw = kshapes[-1]
    Q, Xo = len(rows), tg.shape[-1]
    feats = np.zeros((kh, kw, ci, Q, Xo), complex)
    for ty in range(kh):
        for tx in range(kw):
            feats[ty, tx] = hidden[:, R * ty + rows][:, :, tx : tx + Xo]
    return feats.reshape(kh * kw * ci, Q * Xo), np.asarray(tg).reshape(co, Q * Xo)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_lstsq_last_layer_equals_numpy_lstsq(arch):
    """Same kernel as numpy.linalg.lstsq of the augmented system [F^T; sqrt(lam) I] W^T = [T^T; 0]."""
    R, slope, ridge = 3, 0.3, 1e-3
    _, _, _, acs_block = _acs(R, 20, seed=2)
    cfg = ARCHS[arch]
    x, prob, kernels, shapes = _problem(cfg, R, acs_block, slope)
    F, Tg = _features_reference(kernels, x, slope, shapes, R)
    K = F.shape[0]
    lam = ridge * np.sum(np.abs(F) ** 2) / K
    A = np.concatenate([F.T, np.sqrt(lam) * np.eye(K)])
    b = np.concatenate([Tg.T, np.zeros((K, Tg.shape[0]))])
    Wt = np.linalg.lstsq(A, b, rcond=None)[0]  # (K, cout)
    co, ci, kh, kw = shapes[-1]
    ref = Wt.T.reshape(co, kh, kw, ci).transpose(0, 3, 1, 2)
    W = np.asarray(INIT.lstsq_last_layer(kernels, prob, slope, shapes, R, ridge))
    np.testing.assert_allclose(W, ref, rtol=0, atol=1e-8 * np.abs(ref).max())
    # and the features themselves, in the loss's (stacked, im2col) path
    Ff, Tf = INIT.last_layer_features(kernels, prob, slope, shapes, R)
    np.testing.assert_allclose(np.asarray(Ff), F, rtol=0, atol=1e-12 * np.abs(F).max())
    np.testing.assert_allclose(np.asarray(Tf), Tg, rtol=0, atol=0)


def test_lstsq_init_in_training_complex64_jit_vmap():
    """complex64 under jit and vmap: the lstsq start has a lower loss than the random start (first loss), the
    batched trainer equals separate runs, and the training path (train) equals train_kernels."""
    R = 3
    _, s, _, acs_block = _acs(R, 20, seed=3)
    base = replace(ARCHS["two"], steps=5, learning_rate=1e-2, param_dtype="complex64", log_every=5, init_ridge=1e-3)
    first = {}
    for init in ("random", "lstsq"):
        ks, losses = train_kernels(acs_block, s, replace(base, init=init), 0.5, KEY)
        assert ks[-1].dtype == jnp.complex64 and np.all(np.isfinite(np.asarray(losses)))
        first[init] = float(losses[0])
    assert first["lstsq"] < 0.95 * first["random"], first  # smooth noise data: little to predict
    cfg = replace(base, init="lstsq")
    slopes = jnp.asarray([0.2, 0.7], jnp.float32)
    keys = jax.random.split(KEY, 2)
    kb, lb = jax.jit(jax.vmap(lambda a, k: train_kernels(acs_block, s, cfg, a, k)))(slopes, keys)
    for i in range(2):
        k1, l1 = train_kernels(acs_block, s, cfg, slopes[i], keys[i])
        np.testing.assert_allclose(np.asarray(lb[i]), np.asarray(l1), rtol=2e-4)
        np.testing.assert_allclose(np.asarray(kb[-1][i]), np.asarray(k1[-1]), rtol=0,
                                   atol=2e-4 * float(jnp.abs(k1[-1]).max()))
    res = train(acs_block, s, cfg, 0.7, key=keys[1])
    np.testing.assert_allclose(res.losses, np.asarray(lb[1]), rtol=2e-4)


def test_config_validation():
    with pytest.raises(ValueError, match="init must be"):
        RakiConfig(init="zeros")
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="init_ridge"):
            RakiConfig(init_ridge=bad)
