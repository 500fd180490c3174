"""The ground-truth tools themselves, against the per-pixel closed form of a linear network."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rakijax.fft import ifft2c
from rakijax.gfactor.combine import combination_weights, gfactor_from_cov
from rakijax.gfactor.reference import gfactor_from_variance, jacobian_cov, monte_carlo_variance
from rakijax.image_space.weights import linear_unmixing
from rakijax.kspace_net import apply_network
from rakijax.sampling import make_sampling, undersample


def _case(R, ny=12, nx=10, nc=3, seed=0):
    rng = np.random.default_rng(seed)
    c = lambda *s: rng.standard_normal(s) + 1j * rng.standard_normal(s)
    k = c(nc, ny, nx)
    s = make_sampling(ny, R, 6)
    zf, u, _ = undersample(k, s)
    w = [0.3 * c((R - 1) * nc, nc, 2, 3)]
    a = c(nc, nc)
    psi = a @ a.conj().T / nc + np.eye(nc)
    return s, jnp.asarray(u), w, psi


@pytest.mark.parametrize("R", [2, 3])
def test_jacobian_cov_equals_per_pixel_formula(R):
    s, u, w, psi = _case(R)
    recon = lambda v: ifft2c(apply_network(w, v, s))
    cov = jacobian_cov(recon, u, psi)
    g = linear_unmixing(w, (s.ny, u.shape[-1]), R)
    ref = jnp.einsum("abyx,bc,dcyx->adyx", g, psi, jnp.conj(g)) / R  # Breuer 2009: G Psi G^H / R
    # float64 dense Jacobian vs closed form: rounding only
    np.testing.assert_allclose(cov, ref, rtol=0, atol=1e-12 * float(jnp.abs(ref).max()))


def test_monte_carlo_matches_closed_form_within_replica_error():
    R, M = 2, 2000
    s, u, w, psi = _case(R, seed=1)
    recon = lambda v: ifft2c(apply_network(w, v, s))
    x = recon(u)
    p = combination_weights(x)
    g = linear_unmixing(w, (s.ny, u.shape[-1]), R)
    cov = jnp.einsum("abyx,bc,dcyx->adyx", g, psi, jnp.conj(g)) / R
    g_ref = gfactor_from_cov(cov, p, psi, R)
    var = monte_carlo_variance(recon, u, psi, p, key=jax.random.PRNGKey(0), replicas=M, noise_scale=0.5, chunk=300)
    g_mc = gfactor_from_variance(var, p, psi, R)
    rel = np.asarray(g_mc / g_ref - 1)
    # each pixel: relative std of g ~ 1/(2 sqrt(M)) = 1.1%; the mean over 120 pixels is ~10x tighter
    assert abs(rel.mean()) < 3 / (2 * np.sqrt(M))
    assert np.abs(rel).max() < 5 / (2 * np.sqrt(M))
    assert 0.5 < rel.std() * 2 * np.sqrt(M) < 1.6  # the scatter itself matches the predicted 1/(2 sqrt(M))
