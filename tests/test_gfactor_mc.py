"""Analytic RAKI noise maps against Monte Carlo pseudo-replicas (Robson 2008).

The sample variance of M replicas of a Gaussian (complex, possibly improper) combined
pixel has relative standard deviation between 1/sqrt(M) (circular) and sqrt(2/M)
(real-valued extreme); tolerances below are multiples of sqrt(2/M).
"""

import jax
import jax.numpy as jnp
import numpy as np

from rakijax.gfactor.combine import combined_variance
from rakijax.gfactor.maps import raki_gfactor
from rakijax.gfactor.reference import monte_carlo_variance, pseudo_replica_variance
from rakijax.sampling import make_sampling

from _refs import frozen_recon

NC = 6
M = 600
SIG = np.sqrt(2.0 / M)  # worst-case relative std of one pixel's variance estimate


def _setup(seed=0, ny=24, nx=20, R=3):
    rng = np.random.default_rng(seed)
    c = lambda *s: rng.standard_normal(s) + 1j * rng.standard_normal(s)
    s = make_sampling(ny, R, 8)
    shapes = [(16, NC, 2, 5), (8, 16, 1, 1), ((R - 1) * NC, 8, 1, 5)]
    ks = [jnp.asarray(c(*sh) / np.sqrt(np.prod(sh[1:]))) for sh in shapes]
    u = jnp.asarray(c(NC, s.num_reduced, nx))
    a = c(NC, NC)
    psi = jnp.asarray(a @ a.conj().T / NC + np.eye(NC))
    return s, ks, u, psi


def _check(var_mc, var_an, mask=None):
    ratio = np.asarray(var_mc / var_an)
    if mask is not None:
        ratio = ratio[mask]
    rel = ratio - 1
    # per pixel: 6 sigma of the worst-case distribution (deterministic seed, ~500 pixels)
    assert np.abs(rel).max() < 6 * SIG, np.abs(rel).max()
    # over pixels the RMS concentrates at <= sqrt(2/M); 1.5x margin
    assert np.sqrt(np.mean(rel**2)) < 1.5 * SIG, np.sqrt(np.mean(rel**2))
    # no bias: even fully correlated pixels keep the mean within 4 sigma
    assert abs(np.mean(rel)) < 4 * SIG


def test_frozen_operator_monte_carlo():
    s, ks, u, psi = _setup(0)
    slope = 0.3
    frozen = frozen_recon(ks, u, slope, s)  # the paper's frozen-mask linear operator

    res = raki_gfactor(ks, u, s, slope, psi=psi, linearisation="frozen", return_cov=True)
    var_an = combined_variance(res.cov, res.p)
    var_mc = pseudo_replica_variance(frozen, u, psi=psi, p=res.p, key=jax.random.PRNGKey(0), replicas=M, chunk=200)
    _check(var_mc, var_an)


def test_small_noise_nonlinear_monte_carlo_matches_true_derivative():
    s, ks, u, psi = _setup(1)
    slope = 0.3
    res = raki_gfactor(ks, u, s, slope, psi=psi, linearisation="true", return_cov=True)
    var_an = combined_variance(res.cov, res.p)
    # noise 1e-4 of the data's scale: activation flips are rare; float64 keeps the
    # difference of reconstructions accurate to ~1e-12 relative
    scale = 1e-4 * float(jnp.sqrt(jnp.mean(jnp.abs(u) ** 2)))
    var_mc = monte_carlo_variance(
        ks, u, s, slope, psi=psi, p=res.p, key=jax.random.PRNGKey(1), replicas=M, noise_scale=scale, chunk=200
    )  # the nonlinear network itself
    _check(var_mc, var_an)
    # the frozen map is a different linearisation (6% off on average for this seed); the
    # pixel-averaged MC error is well below SIG/2 (the RMS check above bounds it per pixel)
    resf = raki_gfactor(ks, u, s, slope, psi=psi, linearisation="frozen", return_cov=True)
    var_f = combined_variance(resf.cov, resf.p)
    assert abs(float(jnp.mean(var_f / var_mc)) - 1) > SIG / 2
