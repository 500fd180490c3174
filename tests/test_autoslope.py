"""rakijax.autoslope: each piece of the reference-free error estimate against an independent reference.

* the weighted (cross-validation) trainer: all weights 1 == rakijax.raki.train_kernels; its
  loss == a direct ``kspace_net.forward`` reference on the kept rows only;
* the held-out error minus ``tau = tr(L L^H)``: unbiased for the error against the
  noise-free targets (Monte Carlo over target/source noise, fixed kernels);
* the noise terms (``V = sigma_full^2 g^2 R``, ``nu``, ``tr s(0)``) against Monte Carlo
  pseudo-replicas of the network at small noise (linear response);
* the CV estimate against the true held-out error on a noisy phantom (clean k-space known);
* line energies: exact on sampled lines, log-linear interpolation exact on a geometric profile;
* the experiment's ``--small`` run.
"""

import dataclasses
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rakijax import autoslope as A
from rakijax import kspace_net, pipeline
from rakijax.config import preset
from rakijax.data import brain_phantom
from rakijax.fft import ifft2c
from rakijax.gfactor import combination_weights
from rakijax.raki import Raki as RakiNet
from rakijax.raki import train_kernels
from rakijax.raki.config import RakiConfig
from rakijax.sampling import make_sampling

CFG = RakiConfig(widths=(8, 4), steps=30, learning_rate=1e-2)


@pytest.fixture(scope="module")
def ci():
    P = preset("ci")
    cfg = P.recon_config(method="raki", raki=CFG)
    data = P.phantom()
    return data, cfg, pipeline.prepare(data, cfg, crop_ky=True)


def _rows(prep, cfg):
    shapes = cfg.raki.kernel_shapes(prep.acs_block.shape[0], prep.sampling.R)
    return shapes, kspace_net.acs_pairs(prep.acs_block, shapes, prep.sampling.R)[0]


def test_fold_masks():
    for kind in ("contiguous", "interleaved"):
        w = A.fold_masks(10, 3, kind)
        assert w.shape == (4, 10) and (w[-1] == 1).all()
        assert (w[:-1] == 0).sum(axis=0).tolist() == [1] * 10  # every row held out exactly once
    w = A.fold_masks(10, 3, "contiguous")
    for k in range(3):
        assert (np.diff(np.flatnonzero(w[k] == 0)) == 1).all()
    assert np.flatnonzero(A.fold_masks(10, 3, "interleaved")[1] == 0).tolist() == [1, 4, 7]
    with pytest.raises(ValueError):
        A.fold_masks(2, 3)
    with pytest.raises(ValueError):
        A.fold_masks(10, 3, "random")


def test_all_ones_weights_is_train_kernels(ci):
    _, cfg, prep = ci
    shapes, rows = _rows(prep, cfg)
    key = jax.random.PRNGKey(3)
    k1, l1 = A.cv_train_kernels(prep.acs_block, prep.sampling, cfg.raki, 0.3, jnp.ones(len(rows)), key)
    k2, l2 = train_kernels(prep.acs_block, prep.sampling, cfg.raki, 0.3, key)
    for a, b in zip(k1, k2):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(l1), np.asarray(l2), rtol=1e-9)


def test_lstsq_init_uses_only_the_kept_rows(ci):
    """The CV init's last layer solves the ridge normal equations on the kept rows only:
    (W F_k - T_k) F_k^H + lam W = 0 (numpy, from the features), and differs from the all-rows fit."""
    from rakijax.raki import acs_loss
    from rakijax.raki.init import last_layer_features, lstsq_last_layer

    _, cfg, prep = ci
    shapes, rows = _rows(prep, cfg)
    acs = prep.acs_block / jnp.max(jnp.abs(prep.acs_block))
    problem = acs_loss.prepare(acs, shapes, prep.sampling.R)
    kern = RakiNet(CFG, acs.shape[0], prep.sampling.R, rngs=nnx.Rngs(params=jax.random.PRNGKey(0)),
                   param_dtype=acs.dtype).kernels()
    w = np.ones(len(rows))
    w[2:5] = 0
    WL = lstsq_last_layer(kern, problem, 0.4, shapes, prep.sampling.R, 2.0, jnp.asarray(w))
    W0 = lstsq_last_layer(kern, problem, 0.4, shapes, prep.sampling.R, 2.0)
    F, T = (np.asarray(a) for a in last_layer_features(kern, problem, 0.4, shapes, prep.sampling.R))
    keep = np.repeat(w > 0, F.shape[1] // len(rows))
    Fk, Tk = F[:, keep], T[:, keep]
    lam = 2.0 * np.real(np.trace(Fk @ Fk.conj().T)) / F.shape[0]
    co, ci_, kh, kw = WL.shape
    Wm = np.asarray(WL).transpose(0, 2, 3, 1).reshape(co, kh * kw * ci_)
    resid = (Wm @ Fk - Tk) @ Fk.conj().T + lam * Wm
    assert np.abs(resid).max() < 1e-8 * np.abs(Tk @ Fk.conj().T).max()
    assert not np.allclose(np.asarray(WL), np.asarray(W0))


def test_weighted_loss_is_the_kept_rows_mean(ci):
    """Loss at step 0 == 1/(2N) sum |y - t|^2 over the kept rows, from kspace_net.forward."""
    _, cfg, prep = ci
    shapes, rows = _rows(prep, cfg)
    one = dataclasses.replace(CFG, steps=1, init="random")  # the reference below builds the random init
    key = jax.random.PRNGKey(0)
    w = np.ones(len(rows))
    w[1:3] = 0
    _, loss = A.cv_train_kernels(prep.acs_block, prep.sampling, one, 0.4, jnp.asarray(w), key)
    acs = prep.acs_block / jnp.max(jnp.abs(prep.acs_block))
    kern = RakiNet(one, acs.shape[0], prep.sampling.R, rngs=nnx.Rngs(params=key), param_dtype=acs.dtype).kernels()
    y = kspace_net.forward(kern, acs, 0.4, padding="valid", dilation=prep.sampling.R)[:, rows, :]
    _, t = kspace_net.acs_pairs(acs, shapes, prep.sampling.R)
    keep = w > 0
    ref = np.sum(np.abs(np.asarray(y - t))[:, keep] ** 2) / (2 * np.asarray(t)[:, keep].size)
    assert float(loss[0]) == pytest.approx(ref, rel=1e-9)


def test_heldout_error_minus_tau_is_unbiased():
    """E[err(noisy targets)] - tr(L L^H) == E[err(clean targets)] for fixed kernels (closed form)."""
    rng = np.random.default_rng(0)
    nc, R, A_, X = 3, 2, 12, 16
    s = make_sampling(32, R, A_)
    kern = [jnp.asarray(rng.normal(size=sh) + 1j * rng.normal(size=sh)) * 0.3
            for sh in RakiConfig(widths=(4,), kernels=((2, 3), (1, 3))).kernel_shapes(nc, R)]
    clean = rng.normal(size=(nc, A_, X)) + 1j * rng.normal(size=(nc, A_, X))
    L = np.eye(nc) + 0.3 * (rng.normal(size=(nc, nc)) + 1j * rng.normal(size=(nc, nc)))
    tau = float(np.real(np.trace(L @ L.conj().T)))
    shapes = [tuple(w.shape) for w in kern]
    rows, _ = kspace_net.acs_pairs(clean, shapes, R)
    held = np.zeros(len(rows), bool)
    held[2:6] = True
    d_noisy, d_clean = [], []
    for _ in range(300):
        n = (rng.normal(size=clean.shape) + 1j * rng.normal(size=clean.shape)) / np.sqrt(2)
        noisy = clean + n
        e_noisy, _, _ = A.heldout_error(kern, jnp.asarray(noisy), s, 0.2, held, L=L)
        # reference: same predictions against the clean targets, mixed by L
        y = kspace_net.forward(kern, jnp.asarray(noisy), 0.2, padding="valid", dilation=R)[:, rows, :]
        _, t = kspace_net.acs_pairs(jnp.asarray(clean), shapes, R)
        dd = np.asarray(y - t).reshape(R - 1, nc, len(rows), -1)[:, :, held]
        d_clean.append(np.mean(np.sum(np.abs(np.einsum("cd,edyx->ecyx", L, dd)) ** 2, axis=1)))
        d_noisy.append(e_noisy - tau)
    diff = np.asarray(d_noisy) - np.asarray(d_clean)
    se = diff.std(ddof=1) / np.sqrt(diff.size)
    assert abs(diff.mean()) < 4 * se
    assert se < 0.05 * np.mean(d_clean)  # the check has power


def test_noise_terms_match_monte_carlo(ci):
    """V(r) = sigma_full^2 g^2 R, tr s(0) and nu against pseudo-replicas at small noise."""
    _, cfg, prep = ci
    s, u = prep.sampling, prep.reduced
    slope = 0.5
    kern, _ = train_kernels(prep.acs_block, s, cfg.raki, slope, jax.random.PRNGKey(0))
    f = lambda v: kspace_net.apply_network(kern, v, s, slope)  # noqa: E731
    k0 = f(u)
    p = combination_weights(ifft2c(k0))
    nt = A.noise_terms(kern, u, s, slope, psi=jnp.eye(u.shape[0]), p=p)
    eps, M = 1e-4, 400
    keys = jax.random.split(jax.random.PRNGKey(1), M)

    def rep(key):
        a, b = jax.random.normal(key, (2,) + u.shape)
        dk = (f(u + eps * (a + 1j * b) / np.sqrt(2)) - k0) / eps
        return dk, jnp.sum(jnp.conj(p) * ifft2c(dk), axis=0)

    dk, drho = jax.lax.map(rep, keys, batch_size=50)
    V_mc = np.mean(np.abs(np.asarray(drho)) ** 2, axis=0)
    var_k = np.sum(np.mean(np.abs(np.asarray(dk)) ** 2, axis=0), axis=0)  # (Ny, Nx), coil-summed
    # totals: relative MC error ~ 1/sqrt(M * effective pixels), well under 5%
    assert V_mc.sum() == pytest.approx(nt.V.sum(), rel=0.05)
    assert var_k.sum() == pytest.approx(nt.total, rel=0.05)
    pred = ~s.mask(include_acs=False)
    assert var_k[pred].mean() == pytest.approx(nt.nu, rel=0.05)
    # per pixel: the map's shape (correlation) over the image
    assert np.corrcoef(V_mc.ravel(), nt.V.ravel())[0, 1] > 0.9


@pytest.mark.parametrize("kind", ["contiguous", "interleaved"])
def test_cv_estimate_matches_true_heldout_error_on_phantom(kind):
    """eps_k = held-out error - tau vs the true error against the phantom's noise-free ACS
    (the target noise, tau = 4 per point, is a sizeable part of the raw held-out error here)."""
    P = preset("ci")
    data = brain_phantom(48, 4, seed=3, noise_level=0.05)
    cfg = P.recon_config(method="raki", R=2, acs=20, raki=RakiConfig(widths=(8, 4), steps=60, learning_rate=1e-2))
    prep = pipeline.prepare(data, cfg)
    s = prep.sampling
    shapes, rows = _rows(prep, cfg)
    w = A.fold_masks(len(rows), 3, kind)
    lo = s.acs_start
    clean_acs = jnp.asarray(np.einsum("cd,dyx->cyx", prep.W, np.asarray(data.clean)[:, lo : lo + s.acs]))
    tau_w = float(np.real(np.trace(prep.psi_work)))
    est, true = [], []
    for k in range(3):
        kern, _ = A.cv_train_kernels(prep.acs_block, s, cfg.raki, 0.25, jnp.asarray(w[k]), jax.random.PRNGKey(0))
        err, _, n = A.heldout_error(kern, prep.acs_block, s, 0.25, w[k] == 0)
        y = kspace_net.forward(kern, prep.acs_block, 0.25, padding="valid", dilation=s.R)[:, rows, :]
        _, t = kspace_net.acs_pairs(clean_acs, shapes, s.R)
        d = np.abs(np.asarray(y - t)) ** 2
        true.append(np.sum(d[:, w[k] == 0]) / (d[:, w[k] == 0].size / prep.acs_block.shape[0]))
        est.append(err - tau_w)
    est, true = np.asarray(est), np.asarray(true)
    np.testing.assert_allclose(est, true, rtol=0.25)


def test_line_energies_interpolate_geometric_profile():
    ny, nx, nc = 32, 4, 2
    lines = np.arange(ny)
    prof = np.exp(-np.abs(lines - ny // 2) / 3.0)
    k = np.sqrt(prof / (nc * nx))[None, :, None] * np.ones((nc, ny, nx))
    sampled = (lines % 4 == 0) | (np.abs(lines - ny // 2) < 3)
    e = A.line_energies(k * sampled[None, :, None], sampled, 0.0)
    last = np.flatnonzero(sampled)[-1]
    np.testing.assert_allclose(e[: last + 1], prof[: last + 1], rtol=1e-10)
    np.testing.assert_allclose(e[last:], prof[last], rtol=1e-10)  # held constant beyond the last sampled line
    # noise energy removed on sampled lines
    e2 = A.line_energies(k * sampled[None, :, None], sampled, 1e-3)
    np.testing.assert_allclose(e2[sampled], prof[sampled] - nx * 1e-3, rtol=1e-10)


def test_choose_slope_small(ci):
    data, cfg, prep = ci
    res = A.choose_slope(prep, cfg, slopes=(0.0, 0.5, 1.0), folds=2)
    assert res.slope in (0.0, 0.5, 1.0) and res.slope == res.slopes[np.argmin(res.estimate)]
    assert res.estimate_folds.shape == (3, 2) and np.all(np.isfinite(res.estimate))
    np.testing.assert_allclose(res.estimate, res.interp + res.noise, rtol=1e-9)
    np.testing.assert_allclose(res.estimate, res.coil_estimate)  # default criterion
    img = A.choose_slope(prep, cfg, slopes=(0.0, 0.5, 1.0), folds=2, criterion="image")
    np.testing.assert_allclose(img.estimate, img.interp + img.noise, rtol=1e-9)
    np.testing.assert_allclose(img.coil_estimate, res.coil_estimate, rtol=1e-6)
    assert img.slope == img.slopes[np.argmin(img.image_estimate)]
    assert len(res.fit().kernels) == 3 and res.to_dict()["slope"] == res.slope
    fig = A.estimate_figure(res, true_nmse=[1.0, 2.0, 3.0])
    assert len(fig.axes) == 2
    with pytest.raises(ValueError):
        A.choose_slope(prep, cfg, slopes=(1.5,))


def test_experiment_small_run(tmp_path):
    exp = Path(__file__).resolve().parents[1] / "experiments"
    if str(exp) not in sys.path:
        sys.path.insert(0, str(exp))
    import auto_slope

    out = auto_slope.main(["--small", "--out", str(tmp_path / "a"), "--slopes", "0,0.5,1"])
    for f in ("auto_slope.csv", "auto_slope.md", "curves.csv", "estimate_R2_acs8.png", "config.json"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    rows = (out / "curves.csv").read_text().splitlines()
    assert len(rows) == 1 + 3


def test_gaware_noise_term_is_hutchinson_of_the_exact_jacobian(ci):
    """loss(lambda=1) - loss(lambda=0) at step 0 == (sigma^2/2) ||J||_F^2 / entries, J = jacfwd of the
    stacked valid forward pass w.r.t. the (real, imaginary) ACS samples (dense reference)."""
    _, cfg, prep = ci
    shapes, rows = _rows(prep, cfg)
    one = dataclasses.replace(CFG, steps=1, init="random")  # the reference below builds the random init
    key, s = jax.random.PRNGKey(0), prep.sampling
    w = jnp.ones(len(rows))
    _, l0 = A.cv_train_kernels(prep.acs_block, s, one, 0.4, w, key, 0.0, 0)
    _, l1 = A.cv_train_kernels(prep.acs_block, s, one, 0.4, w, key, 1.0, 8)
    m = jnp.max(jnp.abs(prep.acs_block))
    acs = prep.acs_block / m
    kern = RakiNet(one, acs.shape[0], s.R, rngs=nnx.Rngs(params=key), param_dtype=acs.dtype).kernels()

    def f(re, im):
        y = kspace_net.forward(kern, jax.lax.complex(re, im), 0.4, padding="valid", dilation=s.R)[:, rows, :]
        return jnp.concatenate([jnp.real(y), jnp.imag(y)])

    Jr, Ji = jax.jacfwd(f, argnums=(0, 1))(jnp.real(acs), jnp.imag(acs))
    n_out = Jr.shape[0] * Jr.shape[1] * Jr.shape[2]
    exact = float((jnp.sum(Jr**2) + jnp.sum(Ji**2)) / (2 * m**2) / n_out)
    assert float(l1[0] - l0[0]) == pytest.approx(exact, rel=0.1)
