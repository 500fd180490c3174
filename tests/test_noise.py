"""rakijax.noise against closed forms, numpy references and Monte Carlo with counted tolerances."""

import jax
import numpy as np
import pytest

from scipy.special import j1

from rakijax.data import brain_phantom
from rakijax.fft import fft2c
from rakijax.noise import (
    background_mask,
    complex_normal,
    estimate_psi,
    estimate_psi_from_kspace,
    prewhiten,
    whitening,
    whitening_matrix,
)
from rakijax.noise_trust import NoiseEstimate, estimate_noise, noise_statistics


_S = 20000  # noise samples per coil in the Monte Carlo checks (one compiled draw shape)
_IMG = (2, 4, 64, 64)  # (batch, coil, ky, kx) draws


def _psi(nc=4, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((nc, nc)) + 1j * rng.standard_normal((nc, nc))
    p = 0.3 * (a @ a.conj().T) / nc + np.diag(rng.uniform(0.5, 2.0, nc))
    return 0.5 * (p + p.conj().T)


def _mc_bound(psi, s, k=5.0):
    """k-sigma bound of a sample covariance entry: std(Psi_hat_ij) = sqrt(Psi_ii Psi_jj / S) at most."""
    d = np.real(np.diag(psi))
    return k * np.sqrt(np.outer(d, d) / s)


def test_estimate_psi_matches_numpy_cov():
    rng = np.random.default_rng(1)
    n = rng.standard_normal((5, 300)) + 1j * rng.standard_normal((5, 300)) + 0.3
    # np.cov: (x - mean)(x - mean)^H / (S - 1), the same unbiased estimator, independent code
    np.testing.assert_allclose(estimate_psi(n), np.cov(n), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(estimate_psi(n, demean=False), n @ n.conj().T / 300, rtol=1e-12)


def test_complex_normal_covariance_and_circularity():
    psi = _psi(4)
    s = _S
    n = np.asarray(complex_normal(jax.random.PRNGKey(0), (4, s), psi, axis=0))
    assert n.shape == (4, s) and n.dtype == np.complex128
    bound = _mc_bound(psi, s)
    assert np.all(np.abs(n @ n.conj().T / s - psi) < bound)
    assert np.all(np.abs(n @ n.T / s) < bound)  # circular: E[n n^T] = 0


def test_complex_normal_coil_axis_minus3():
    psi = _psi(4, seed=2)
    n = np.asarray(complex_normal(jax.random.PRNGKey(1), _IMG, psi))
    x = np.moveaxis(n, 1, 0).reshape(4, -1)
    assert np.all(np.abs(x @ x.conj().T / x.shape[1] - psi) < _mc_bound(psi, x.shape[1]))
    with pytest.raises(ValueError, match="coil axis"):
        complex_normal(jax.random.PRNGKey(0), (5, 8, 8), psi)


def test_whitening_closed_form_and_prewhitened_draws():
    psi = _psi(4, seed=3)
    W = np.asarray(whitening_matrix(psi))
    np.testing.assert_allclose(W @ psi @ W.conj().T, np.eye(4), atol=1e-12)  # exact identity
    np.testing.assert_allclose(np.triu(W, 1), 0, atol=0)  # inverse of a lower Cholesky factor
    np.testing.assert_allclose(np.linalg.inv(W) @ np.linalg.inv(W).conj().T, psi, atol=1e-12)
    s = _S
    n = complex_normal(jax.random.PRNGKey(2), (4, s), psi, axis=0)
    w = np.asarray(prewhiten(n, psi, axis=0))
    assert np.all(np.abs(w @ w.conj().T / s - np.eye(4)) < _mc_bound(np.eye(4), s))


def test_prewhiten_kspace_matches_loop():
    psi = _psi(3, seed=4)
    rng = np.random.default_rng(5)
    k = rng.standard_normal((2, 3, 4, 5)) + 1j * rng.standard_normal((2, 3, 4, 5))
    W = np.asarray(whitening_matrix(psi))
    ref = np.zeros_like(k)
    for b in range(2):
        for i in range(3):
            for j in range(3):
                ref[b, i] += W[i, j] * k[b, j]
    np.testing.assert_allclose(prewhiten(k, psi), ref, atol=1e-12)


def test_estimate_from_noise_scan_recovers_psi():
    psi = _psi(4, seed=6)
    s = _S
    n = complex_normal(jax.random.PRNGKey(3), (4, s), psi, axis=0)
    assert np.all(np.abs(np.asarray(estimate_psi(n)) - psi) < _mc_bound(psi, s))


def test_estimate_from_kspace_background():
    nc, ny, nx = 4, 64, 64
    psi = _psi(nc, seed=7)
    yy, xx = np.mgrid[:ny, :nx]
    obj = ((yy - ny / 2) ** 2 / 20**2 + (xx - nx / 2) ** 2 / 18**2 < 1).astype(float)  # inside the corners' gap
    rng = np.random.default_rng(8)
    sens = rng.standard_normal((nc, 1, 1)) + 1j * rng.standard_normal((nc, 1, 1))
    noise = np.asarray(complex_normal(jax.random.PRNGKey(4), _IMG, psi))[0]  # same compiled draw as above
    k = np.asarray(jax.jit(fft2c)(sens * obj)) + noise
    m = background_mask((ny, nx), 0.125)
    assert m.sum() == 4 * 8 * 8 and not (m & (obj > 0)).any()
    est = np.asarray(estimate_psi_from_kspace(k))
    # noise is white in image space too (unitary FFT): 256 background samples, 5 sigma
    assert np.all(np.abs(est - psi) < _mc_bound(psi, m.sum()))


def test_bad_inputs():
    with pytest.raises(ValueError, match="square"):
        whitening_matrix(np.ones((3, 2)))
    with pytest.raises(ValueError, match="Hermitian"):
        whitening_matrix(np.array([[1.0, 0.5], [0.1, 1.0]]))
    with pytest.raises(ValueError, match="positive"):
        whitening_matrix(np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="at least 2"):
        estimate_psi(np.ones((3, 1)))
    with pytest.raises(ValueError, match="non-finite"):
        estimate_psi(np.array([[1.0, np.nan, 2.0]]))
    with pytest.raises(ValueError, match=r"\(Nc, S\)"):
        estimate_psi(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="square"):
        complex_normal(jax.random.PRNGKey(0), (3, 4), np.ones((3, 2)), axis=0)


# ----------------------------------------------------------------------------- trust (issue 13)

# modified Shepp-Logan (Toft): intensity, semi-axes a, b, centre x0, y0, angle (deg), in [-1, 1] units
_SL = [(1.0, .69, .92, 0, 0, 0), (-.8, .6624, .874, 0, -.0184, 0), (-.2, .11, .31, .22, 0, -18),
       (-.2, .16, .41, -.22, 0, 18), (.1, .21, .25, 0, .35, 0), (.1, .046, .046, 0, .1, 0),
       (.1, .046, .046, 0, -.1, 0), (.1, .046, .023, -.08, -.605, 0), (.1, .023, .023, 0, -.606, 0),
       (.1, .023, .046, .06, -.605, 0)]


def _ellipses_ft(ky, kx):
    """Continuous Fourier transform of the Shepp-Logan ellipses (FOV 1, k in cycles/FOV)."""
    out = 0j
    for rho, a, b, x0, y0, th in _SL:
        a, b, x0, y0, t = a / 2, b / 2, x0 / 2, y0 / 2, np.deg2rad(th)
        q = np.hypot(a * (kx * np.cos(t) + ky * np.sin(t)), b * (-kx * np.sin(t) + ky * np.cos(t)))
        qs = np.where(q == 0, 1.0, q)
        amp = np.where(q == 0, np.pi * a * b, a * b * j1(2 * np.pi * qs) / qs)
        out = out + rho * amp * np.exp(-2j * np.pi * (kx * x0 + ky * y0))
    return out


def bart_like_phantom(n=64, nc=4):
    """Noise-free k-space as BART's ``phantom -k -s nc`` makes it: the analytic k-space of
    Shepp-Logan ellipses, coil sensitivities given by a few Fourier coefficients (a
    periodic Gaussian around each coil), sampled on the grid. Its image holds Gibbs
    ringing everywhere and no noise."""
    m = np.arange(n) - n // 2
    k = np.zeros((nc, n, n), complex)
    for c in range(nc):
        py, px = 0.45 * np.sin(2 * np.pi * c / nc), 0.45 * np.cos(2 * np.pi * c / nc)
        for fy in range(-2, 3):
            for fx in range(-2, 3):
                a = np.exp(-2j * np.pi * (fy * py + fx * px) - (0.3 * np.pi) ** 2 * (fy**2 + fx**2))
                k[c] += a * _ellipses_ft(m[:, None] - fy, m[None, :] - fx)
    return n * k


@pytest.fixture(scope="module")
def phantom():
    return brain_phantom(64, 4)


def test_estimate_noise_trusts_real_noise(phantom):
    e = estimate_noise(phantom.kspace)
    assert isinstance(e, NoiseEstimate)
    assert e.trusted and e.source == "k-space background", e.reason
    assert e.stats["failed"] == [] and e.samples > 1000
    # the phantom's noise is white in image space (unitary FFT): 5-sigma sample-covariance bound
    assert np.all(np.abs(e.psi - phantom.psi) < _mc_bound(phantom.psi, e.samples))
    assert np.isfinite(e.condition) and e.condition < 10


def test_estimate_noise_refuses_noise_free_phantom(phantom):
    e = estimate_noise(phantom.clean)  # background holds only round-off
    assert not e.trusted and e.source == "identity"
    np.testing.assert_array_equal(e.psi, np.eye(4))
    assert "noise-free" in e.reason and "round-off" in e.reason


def test_estimate_noise_refuses_bart_like_phantom():
    k = bart_like_phantom(64, 4)
    e = estimate_noise(k)  # background holds Gibbs ringing, far above round-off
    assert not e.trusted and e.source == "identity", e.reason
    assert "is not noise" in e.reason and "noise-free" in e.reason
    # ringing alternates in sign (correlated neighbours) and decays away from the object
    assert {"correlation", "near_far"} <= set(e.stats["failed"])
    assert e.stats["relative_rms"] > 1e-3  # not caught by the round-off test alone
    # the same data with noise well above the ringing are trusted again (n = 128: ringing/noise small)
    rng = np.random.default_rng(0)
    noisy = k + 0.05 * (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape))
    assert estimate_noise(noisy).trusted


def test_noise_statistics_false_alarm_rate():
    # pure circular white Gaussian noise must pass every test (5-sigma tolerances): 20 draws
    mask = np.zeros((48, 48), bool)
    mask[:, :16] = True  # a "background" band next to the "object" (the rest)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((3, 48, 48)) + 1j * rng.standard_normal((3, 48, 48))
        st = noise_statistics(z, mask, signal_power=1.0)
        assert st["failed"] == [], (seed, st)
        assert abs(st["kurtosis"] - 2) < 0.3  # E|z|^4/(E|z|^2)^2 = 2 for complex Gaussian


def test_noise_statistics_detect_non_noise():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((2, 4000))  # real-valued "noise": E z^2 = E|z|^2
    st = noise_statistics(z + 0j)
    assert "circularity" in st["failed"] and st["circularity"] > 0.9
    # a mixture of powers (signal leaking in): kurtosis 2 (1+v^2)/(1+v)^2 * 2 > 2
    z = rng.standard_normal((2, 4000)) + 1j * rng.standard_normal((2, 4000))
    z[:, :2000] *= 4
    st = noise_statistics(z)
    assert "kurtosis" in st["failed"] and abs(st["kurtosis"] - 2 * 2 * (1 + 256) / (1 + 16) ** 2) < 0.3


def test_estimate_noise_from_scan_and_refusals(phantom):
    e = estimate_noise(phantom.kspace, noise=phantom.noise)
    assert e.trusted and e.source == "noise scan" and e.samples == 2000
    assert np.all(np.abs(e.psi - phantom.psi) < _mc_bound(phantom.psi, 2000))
    zero = brain_phantom(32, 3, noise_level=0.0)  # its "noise scan" is all zero
    e = estimate_noise(zero.kspace, noise=zero.noise)
    assert not e.trusted and e.source == "identity" and "constant" in e.reason
    with pytest.raises(ValueError, match="all zero"):
        estimate_noise(np.zeros((3, 16, 16), complex))
    with pytest.raises(ValueError, match="needs kspace"):
        estimate_noise()


def test_estimate_noise_given_psi_conditioning():
    e = estimate_noise(psi=_psi(4))
    assert e.trusted and e.source == "given"
    bad = np.diag([1.0, 1.0, 1.0, 3e-7]).astype(complex)  # above the default trust limit 1e3
    e = estimate_noise(psi=bad)
    assert not e.trusted and "ill-conditioned" in e.reason
    np.testing.assert_allclose(e.condition, 1 / 3e-7, rtol=1e-9)
    assert e.to_dict()["trusted"] is False


def test_estimate_noise_zero_padded_and_accelerated(phantom):
    k = np.zeros((4, 96, 96), complex)
    k[:, 16:80, 16:80] = phantom.kspace  # scanner zero padding: cropped before the tests
    e = estimate_noise(k)
    assert e.trusted, e.reason
    assert np.all(np.abs(e.psi - phantom.psi) < _mc_bound(phantom.psi, e.samples))
    acc = phantom.kspace.copy()
    acc[:, 1::2] = 0  # R = 2: the FOV/2 image of the acquired lines is examined
    e = estimate_noise(acc)
    assert "accelerated" in e.reason


def test_whitening_guard_bounds_amplification():
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)) + 1j * rng.standard_normal((4, 4)))
    ev = np.array([1.0, 0.5, 0.2, 3e-7])  # condition 3.3e6, as the noise-free BART phantom's psi
    psi = (q * ev) @ q.conj().T
    w = whitening(psi, max_condition=1e4)
    assert w.floored == 1 and np.isclose(w.condition, 1 / 3e-7, rtol=1e-6)
    gains = np.linalg.norm(w.W @ q, axis=0)  # gain of W along each eigenvector of psi
    assert gains.max() / gains[0] <= np.sqrt(1e4) * (1 + 1e-9)  # at most 100x the strongest direction
    # unguarded Cholesky whitening would amplify the null direction sqrt(1/3e-7) = 1826x
    assert np.linalg.norm(np.linalg.inv(np.linalg.cholesky(psi)) @ q[:, 3]) > 1e3
    np.testing.assert_allclose(w.W @ w.W_inv, np.eye(4), atol=1e-9)
    assert "floored" in w.message()
    # whitening_matrix applies the same guard, also under jit (traced psi)
    np.testing.assert_allclose(whitening_matrix(psi, max_condition=1e4), w.W, atol=1e-9)
    jitted = jax.jit(whitening_matrix, static_argnames="max_condition")
    np.testing.assert_allclose(jitted(psi, max_condition=1e4), w.W, atol=1e-6)
    # the default guard: 1e3, at most sqrt(1e3) = 32x
    gains = np.linalg.norm(np.asarray(whitening_matrix(psi)) @ q, axis=0)
    assert gains.max() / gains[0] <= np.sqrt(1e3) * (1 + 1e-9)
    # a well-conditioned psi is whitened exactly, traced or not
    p = _psi(4, seed=9)
    assert whitening(p).floored == 0
    np.testing.assert_allclose(jax.jit(whitening_matrix)(p), whitening_matrix(p), atol=1e-12)
    # a dead coil (singular, PSD) no longer stops the whitening
    dead = np.diag([1.0, 2.0, 0.0]).astype(complex)
    assert np.all(np.isfinite(whitening_matrix(dead)))
    with pytest.raises(ValueError, match="zero"):
        whitening(np.zeros((2, 2)))


def test_estimate_noise_slices(phantom):
    noise = np.asarray(complex_normal(jax.random.PRNGKey(7), (4, 64, 64), phantom.psi))
    other = phantom.clean + noise  # the same slice with independent noise of the same psi
    e = estimate_noise(np.stack([phantom.kspace, other]))
    assert e.trusted, e.reason
    assert np.all(np.abs(e.psi - phantom.psi) < _mc_bound(phantom.psi, e.samples))
    e = estimate_noise(np.stack([phantom.kspace, phantom.clean]))
    assert not e.trusted and e.reason.startswith("slice 1 (1 of 2 slices refused)")
