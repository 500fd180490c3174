"""The ground-truth tools themselves, against the per-pixel closed form of a linear network."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rakijax.fft import ifft2c
from rakijax.gfactor.combine import combination_weights, gfactor_from_cov, gfactor_from_variance
from rakijax.gfactor.reference import jacobian_cov, monte_carlo_variance, pseudo_replica_variance
from rakijax.image_space.weights import linear_unmixing
from rakijax.kspace_net import apply_network
from rakijax.sampling import make_sampling, undersample

from _props import count_compiles, no_recompile


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
    g = linear_unmixing(w, s, u.shape[-1])
    ref = jnp.einsum("abyx,bc,dcyx->adyx", g, psi, jnp.conj(g)) / R  # Breuer 2009: G Psi G^H / R
    # float64 dense Jacobian vs closed form: rounding only
    np.testing.assert_allclose(cov, ref, rtol=0, atol=1e-12 * float(jnp.abs(ref).max()))


def test_monte_carlo_matches_closed_form_within_replica_error():
    R, M = 2, 2000
    s, u, w, psi = _case(R, seed=1)
    recon = lambda v: ifft2c(apply_network(w, v, s))
    x = recon(u)
    p = combination_weights(x)
    g = linear_unmixing(w, s, u.shape[-1])
    cov = jnp.einsum("abyx,bc,dcyx->adyx", g, psi, jnp.conj(g)) / R
    g_ref = gfactor_from_cov(cov, p, psi, R)
    var = monte_carlo_variance(w, u, s, 1.0, psi=psi, p=p, key=jax.random.PRNGKey(0), replicas=M, noise_scale=0.5, chunk=300)
    g_mc = gfactor_from_variance(var, p, psi, R)
    rel = np.asarray(g_mc / g_ref - 1)
    # each pixel: relative std of g ~ 1/(2 sqrt(M)) = 1.1%; the mean over 120 pixels is ~10x tighter
    assert abs(rel.mean()) < 3 / (2 * np.sqrt(M))
    assert np.abs(rel).max() < 5 / (2 * np.sqrt(M))
    assert 0.5 < rel.std() * 2 * np.sqrt(M) < 1.6  # the scatter itself matches the predicted 1/(2 sqrt(M))


def test_monte_carlo_compiles_once_per_shape():
    """Kernels, slope, psi, p and the noise scale are traced: a second call with new numbers
    of the same shapes compiles nothing (counted with jax.monitoring / jax.log_compiles),
    a short last chunk is padded rather than recompiled, and the replica stream does not
    depend on the chunk size (replica i always uses split(key, M)[i])."""
    R, nc = 3, 3
    s, u, _, psi = _case(R, seed=3)
    rng = np.random.default_rng(4)
    c = lambda *sh: jnp.asarray(rng.standard_normal(sh) + 1j * rng.standard_normal(sh))
    nets = [[c(5, nc, 2, 5), c((R - 1) * nc, 5, 1, 3)] for _ in range(2)]
    p = combination_weights(ifft2c(apply_network(nets[0], u, s, 0.3)))
    p2 = combination_weights(ifft2c(apply_network(nets[1], u, s, 0.7)))
    kw = dict(key=jax.random.PRNGKey(0), replicas=10, chunk=4)  # chunks 4 + 4 + 2 (padded)
    with count_compiles() as first:
        v1 = monte_carlo_variance(nets[0], u, s, 0.3, psi=psi, p=p, **kw)
    assert len(first) >= 1  # the counter sees compilations
    with no_recompile():
        v2 = monte_carlo_variance(nets[1], u, s, 0.7, psi=2 * psi, p=p2, noise_scale=0.01, **kw)
    assert float(jnp.max(jnp.abs(v1 - v2))) > 0
    v3 = monte_carlo_variance(nets[1], u, s, 0.7, psi=2 * psi, p=p2, noise_scale=0.01, key=kw["key"], replicas=10, chunk=10)
    np.testing.assert_allclose(v3, v2, rtol=1e-10)  # same replicas, other chunking: rounding only
    # the generic estimator on the same network function gives the same numbers
    recon = lambda v: ifft2c(apply_network(nets[1], v, s, 0.7))
    v4 = pseudo_replica_variance(recon, u, psi=2 * psi, p=p2, noise_scale=0.01, **kw)
    np.testing.assert_allclose(v4, v2, rtol=1e-10)
