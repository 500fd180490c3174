"""rakijax.noise against closed forms, numpy references and Monte Carlo with counted tolerances."""

import jax
import numpy as np
import pytest

from rakijax.fft import fft2c
from rakijax.noise import (
    background_mask,
    complex_normal,
    estimate_psi,
    estimate_psi_from_kspace,
    prewhiten,
    whitening_matrix,
)


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
