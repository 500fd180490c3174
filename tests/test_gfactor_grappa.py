"""Analytic GRAPPA g-factor (Breuer 2009) against independent references.

References: dense ``jax.jacfwd`` coil covariance of the k-space reconstruction
(rakijax.gfactor.reference.jacobian_cov), Monte Carlo pseudo-replicas with a
tolerance from the replica count, and the closed form R=1 -> g=1.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rakijax import grappa
from rakijax.fft import fft2c, ifft2c
from rakijax.gfactor.combine import combination_weights, gfactor_from_cov
from rakijax.gfactor.grappa import grappa_cov, grappa_gfactor
from rakijax.gfactor.reference import gfactor_from_variance, jacobian_cov, monte_carlo_variance
from rakijax.sampling import make_sampling, undersample


def smooth_maps(rng, nc, ny, nx, order=2):
    yy, xx = np.meshgrid(np.arange(ny) / ny, np.arange(nx) / nx, indexing="ij")
    m = np.zeros((nc, ny, nx), complex)
    for c in range(nc):
        for a in range(-order, order + 1):
            for b in range(-order, order + 1):
                amp = (rng.standard_normal() + 1j * rng.standard_normal()) / (1 + a * a + b * b)
                m[c] += amp * np.exp(2j * np.pi * (a * yy + b * xx))
    return m


def random_psi(rng, nc):
    a = rng.standard_normal((nc, nc)) + 1j * rng.standard_normal((nc, nc))
    return a @ a.conj().T / nc + 0.5 * np.eye(nc)


def case(R, ny=24, nx=20, nc=4, acs=12, seed=0):
    rng = np.random.default_rng(seed)
    maps = smooth_maps(rng, nc, ny, nx)
    yy, xx = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    img = (yy**2 + xx**2 < 0.8) * (1 + 0.3 * rng.standard_normal((ny, nx)))
    k = np.asarray(fft2c(maps * img))
    s = make_sampling(ny, R, acs)
    _, u, acs_block = undersample(k, s)
    W = grappa.calibrate(acs_block, R) if R > 1 else []
    recon = lambda v: ifft2c(grappa.apply(W, v, s))
    x = recon(jnp.asarray(u))
    p = combination_weights(x)
    return s, u, W, recon, p, rng


@pytest.mark.parametrize("R,identity_psi", [(3, True), (4, False)])
def test_cov_matches_jacfwd(R, identity_psi):
    # dense jacfwd is (2*Nc*Ny*Nx) x (2*Nc*Y*Nx): keep the grid small (12 x 10)
    shape = (12, 10)
    s, u, W, recon, p, rng = case(R, *shape, acs=8)
    psi = None if identity_psi else random_psi(rng, 4)
    cov_ref = jacobian_cov(recon, u, psi)
    cov = grappa_cov(W, s, shape, psi)
    # both exact linear responses in float64: rounding only
    assert float(jnp.linalg.norm(cov - cov_ref) / jnp.linalg.norm(cov_ref)) < 1e-8
    g = grappa_gfactor(W, s, shape, psi, p)
    psi_full = np.eye(4) if psi is None else psi
    g_ref = gfactor_from_cov(cov_ref, p, psi_full, R)
    np.testing.assert_allclose(g, g_ref, rtol=1e-8, atol=0)
    np.testing.assert_allclose(g, gfactor_from_cov(cov, p, psi_full, R), rtol=1e-12, atol=0)


def test_montecarlo_agrees_within_replica_error():
    R, M = 3, 600
    s, u, W, recon, p, rng = case(R, seed=1)
    psi = random_psi(rng, 4)
    g = np.asarray(grappa_gfactor(W, s, (24, 20), psi, p))
    var = monte_carlo_variance(recon, u, psi, p, key=jax.random.key(0), replicas=M, chunk=200)
    g_mc = np.asarray(gfactor_from_variance(var, p, psi, R))
    sup = g > 0
    # sample variance of a complex Gaussian from M replicas: relative std 1/sqrt(M); g is its
    # square root: relative std 1/(2 sqrt(M)) per pixel
    sigma = 1 / (2 * np.sqrt(M))
    z = (g_mc[sup] / g[sup] - 1) / sigma
    assert abs(np.mean(g_mc[sup] / g[sup] - 1)) < 4 * sigma  # bias: far below per-pixel noise
    assert 0.6 < np.mean(np.abs(z)) < 1.0  # E|z| = sqrt(2/pi) = 0.80 for a standard normal
    assert np.max(np.abs(z)) < 5.0  # ~480 pixels: a 5-sigma outlier has p ~ 3e-4


def test_r1_gives_unit_gfactor():
    s, u, W, recon, p, rng = case(1, 12, 10, acs=0)
    psi = random_psi(rng, 4)
    g = np.asarray(grappa_gfactor([], s, (12, 10), psi, p))
    sup = np.asarray(jnp.sum(jnp.abs(p) ** 2, axis=0)) > 0
    assert sup.sum() > 30
    np.testing.assert_allclose(g[sup], 1.0, rtol=1e-12)
    assert np.all(g[~sup] == 0)  # no signal, no weights: g defined as 0
    cov = grappa_cov([], s, (12, 10), psi)
    np.testing.assert_allclose(cov, np.broadcast_to(psi[:, :, None, None], cov.shape), rtol=1e-12)
    # jacfwd of the identity reconstruction u -> ifft2c(u) gives Psi as well
    cov_ref = jacobian_cov(recon, u, psi)
    np.testing.assert_allclose(cov_ref, cov, atol=1e-12)


def test_refuses_non_periodic_and_bad_shapes():
    rng = np.random.default_rng(2)
    acs = rng.standard_normal((4, 12, 20)) + 0j
    W = grappa.calibrate(acs, 3)
    with pytest.raises(ValueError, match="divisible by R"):
        grappa_cov(W, make_sampling(25, 3, 12), (25, 20))
    with pytest.raises(ValueError, match="Ny=24"):
        grappa_cov(W, make_sampling(24, 3, 12), (21, 20))
    with pytest.raises(ValueError, match="noise covariance"):
        grappa_cov(W, make_sampling(24, 3, 12), (24, 20), np.eye(3))
    with pytest.raises(ValueError, match="combination weights"):
        grappa_gfactor(W, make_sampling(24, 3, 12), (24, 20), None, np.ones((5, 24, 20)))
