"""Analytic RAKI g-factor maps (banded covariance) against independent references.

References: dense ``jax.jacfwd`` of the reconstruction (rakijax.gfactor.reference),
the per-pixel GRAPPA formula ``G Psi G^H / R`` (Breuer 2009) for slope 1, the closed
form ``g = 1`` at R = 1. All float64 (conftest).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rakijax.fft import ifft2c
from rakijax.gfactor import bands as bands_mod
from rakijax.gfactor.bands import band_extent, noise_bands
from rakijax.gfactor.combine import combination_weights, gfactor_from_cov
from rakijax.gfactor.linearise import linearise
from rakijax.gfactor.maps import coil_covariance_maps, raki_gfactor
from rakijax.gfactor.reference import jacobian_cov
from rakijax.image_space.weights import linear_unmixing
from rakijax.kspace_net import apply_network
from rakijax.sampling import make_sampling

from _props import no_recompile
from _refs import frozen_recon

NC = 6
# exactness: both sides are float64 sums of O(1e3) terms -> ~1e-15; 1e-10 leaves margin
TOL = 1e-10


def _c(rng, *shape, scale=1.0):
    return scale * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))


def _net(rng, arch, R, nc=NC):
    """Random complex kernels: 'one' (1 hidden), 'two' (2 hidden, default RAKI sizes),
    'deep' (3 hidden, ky extent > 1 in later layers)."""
    out = (R - 1) * nc
    shapes = {
        "one": [(12, nc, 2, 5), (out, 12, 1, 5)],
        "two": [(16, nc, 2, 5), (8, 16, 1, 1), (out, 8, 1, 5)],
        "deep": [(8, nc, 2, 3), (6, 8, 2, 3), (5, 6, 1, 1), (out, 5, 2, 3)],
        # two hidden layers with a 2x3 second kernel (the tap-by-tap path gathers several layer-1 taps)
        "two23": [(8, nc, 2, 3), (6, 8, 2, 3), (out, 6, 1, 3)],
    }[arch]
    return [jnp.asarray(_c(rng, *s, scale=1 / np.sqrt(np.prod(s[1:])))) for s in shapes]


def _psi(rng, nc=NC):
    a = _c(rng, nc, nc)
    return jnp.asarray(a @ a.conj().T / nc + np.eye(nc))


def _setup(ny, nx, R, arch, seed=0):
    rng = np.random.default_rng(seed)
    s = make_sampling(ny, R, 8)
    ks = _net(rng, arch, R)
    u = jnp.asarray(_c(rng, NC, s.num_reduced, nx))
    return rng, s, ks, u


# (ny, nx, R, arch, mode, method, psi): covers R = 2, 3, 4, 6, one/two/three hidden
# layers, odd and even sizes, both linearisations and both reducers, identity and not.
CASES = [
    (16, 12, 2, "two", "true", "spectral", True),
    (18, 10, 3, "two", "frozen", "gram", False),
    (15, 11, 3, "one", "true", "gram", True),
    (24, 20, 4, "one", "frozen", "spectral", True),
    (24, 15, 6, "two", "true", "spectral", False),
    (21, 16, 3, "deep", "true", "spectral", True),
    (16, 9, 4, "deep", "frozen", "gram", False),
    (15, 10, 3, "two23", "true", "spectral", True),
    (12, 11, 2, "two23", "frozen", "spectral", False),
]


@pytest.mark.parametrize("ny,nx,R,arch,mode,method,use_psi", CASES)
def test_analytic_cov_equals_dense_jacfwd(ny, nx, R, arch, mode, method, use_psi):
    rng, s, ks, u = _setup(ny, nx, R, arch)
    psi = _psi(rng) if use_psi else None
    slope = 0.3
    lin = linearise(ks, u, s, slope, mode=mode)
    b = noise_bands(ks, lin, s, psi, chunk=2, method=method)
    cov = coil_covariance_maps(b)
    f = (lambda v: ifft2c(apply_network(ks, v, s, slope))) if mode == "true" else frozen_recon(ks, u, slope, s)
    ref = jax.jit(lambda v: jacobian_cov(f, v, psi))(u)
    err = float(jnp.linalg.norm(cov - ref) / jnp.linalg.norm(ref))
    assert err < TOL, err
    # and the g-factor map through the public entry point
    res = raki_gfactor(ks, u, s, slope, psi=psi, linearisation=mode, method=method, chunk=2)
    p = combination_weights(ifft2c(apply_network(ks, u, s, slope)))
    psi_ = jnp.eye(NC) if psi is None else psi
    g_ref = gfactor_from_cov(ref, p, psi_, R)
    np.testing.assert_allclose(res.g, g_ref, rtol=TOL, atol=0)
    assert res.linearisation == mode and res.cov is None


def test_band_measured_against_jacfwd():
    """Outside the derived band the dense covariance's coefficients vanish (MATH.md 4)."""
    ny, nx, R = 16, 20, 2
    rng, s, ks, u = _setup(ny, nx, R, "two", seed=1)
    assert band_extent([w.shape for w in ks], 4) == (6, 8)  # (4R-3) x 17 for 2x5, 1x1, 1x5
    my, mx = band_extent([w.shape for w in ks], R)
    ref = jax.jit(lambda v: jacobian_cov(lambda w: ifft2c(apply_network(ks, w, s, 0.3)), v))(u)
    # s(D) at D mod N from the dense maps: invert Cov = fftshift(fft2(A)) / N
    A = np.fft.ifft2(np.fft.ifftshift(np.asarray(ref), axes=(-2, -1)), axes=(-2, -1)) * ny * nx
    dy = (np.arange(ny) + ny // 2) % ny - ny // 2
    dx = (np.arange(nx) + nx // 2) % nx - nx // 2
    inside = (np.abs(dy)[:, None] <= my) & (np.abs(dx)[None, :] <= mx)
    scale = np.abs(A).max()
    assert np.abs(A[..., ~inside]).max() < 1e-12 * scale
    # the band is tight: the outermost rows and columns are not all zero
    assert np.abs(A[..., np.abs(dy) == my, :]).max() > 1e-6 * scale
    assert np.abs(A[..., :, np.abs(dx) == mx]).max() > 1e-6 * scale


@pytest.mark.parametrize("R,arch", [(3, "two"), (4, "one")])
def test_slope_one_equals_grappa_per_pixel_formula(R, arch):
    ny, nx = 24, 20
    rng, s, ks, u = _setup(ny, nx, R, arch, seed=2)
    psi = _psi(rng)
    G = linear_unmixing(ks, s, nx)  # composed linear network, image space
    ref = jnp.einsum("abyx,bc,dcyx->adyx", G, psi, jnp.conj(G)) / R  # Breuer 2009
    for mode in ("true", "frozen"):
        res = raki_gfactor(ks, u, s, 1.0, psi=psi, linearisation=mode, return_cov=True)
        err = float(jnp.linalg.norm(res.cov - ref) / jnp.linalg.norm(ref))
        assert err < TOL, (mode, err)
    # a one-layer network (GRAPPA kernel) is handled by the same code
    w = ks[0] if arch == "one" else None
    if w is not None:
        gk = [jnp.asarray(_c(rng, (R - 1) * NC, NC, 2, 5))]
        G1 = linear_unmixing(gk, s, nx)
        ref1 = jnp.einsum("abyx,bc,dcyx->adyx", G1, psi, jnp.conj(G1)) / R
        res1 = raki_gfactor(gk, u, s, 0.5, psi=psi, return_cov=True)
        assert float(jnp.linalg.norm(res1.cov - ref1) / jnp.linalg.norm(ref1)) < TOL


def test_r1_gives_unit_gfactor():
    rng = np.random.default_rng(3)
    s = make_sampling(16, 1, 0)
    u = jnp.asarray(_c(rng, NC, 16, 12))
    psi = _psi(rng)
    res = raki_gfactor([], u, s, 0.5, psi=psi, return_cov=True)
    np.testing.assert_allclose(res.g, 1.0, atol=1e-12)  # fully sampled: Cov = Psi, g = 1
    np.testing.assert_allclose(res.cov, jnp.broadcast_to(psi[:, :, None, None], res.cov.shape), atol=1e-12)


def test_chunking_is_exact_and_memory_bounded():
    ny, nx, R = 16, 12, 2
    rng, s, ks, u = _setup(ny, nx, R, "two", seed=4)
    lin = linearise(ks, u, s, 0.3)
    Y = s.num_reduced
    one = noise_bands(ks, lin, s, chunk=Y).s
    for chunk in (1, 3):  # 3 does not divide Y = 8: masked last chunk
        np.testing.assert_allclose(noise_bands(ks, lin, s, chunk=chunk).s, one, rtol=0, atol=1e-12 * float(jnp.abs(one).max()))
    np.testing.assert_allclose(
        noise_bands(ks, lin, s, chunk=3, method="gram").s, one, rtol=0, atol=1e-12 * float(jnp.abs(one).max())
    )

    def max_intermediate(chunk, shape_ny=48, shape_nx=40):
        s2 = make_sampling(shape_ny, R, 8)
        u2 = jnp.zeros((NC, s2.num_reduced, shape_nx), jnp.complex128) + 1
        lin2 = linearise(ks, u2, s2, 0.3)
        jaxpr = jax.make_jaxpr(
            lambda k, l: bands_mod._bands(k, l, jnp.eye(NC, dtype=jnp.complex128), R=R, chunk=chunk, method="spectral",
                                          extent=band_extent([w.shape for w in ks], R))
        )(tuple(ks), lin2)
        sizes = []

        def walk(jx):
            for eqn in jx.eqns:
                sizes.extend(int(np.prod(v.aval.shape)) for v in eqn.outvars)
                for p in eqn.params.values():
                    if hasattr(getattr(p, "jaxpr", None), "eqns"):  # ClosedJaxpr (scan body)
                        walk(p.jaxpr)
                    elif hasattr(p, "eqns"):  # Jaxpr
                        walk(p)

        walk(jaxpr.jaxpr)
        return max(sizes), shape_ny * shape_nx

    big, n = max_intermediate(8)  # a third of the 24 reduced rows
    small, _ = max_intermediate(1)
    assert big < n * n  # nothing of size N^2 (the dense Jacobian/covariance is (Nc N)^2)
    # the largest array is a chunk of V: it scales with the chunk rows, not with the grid
    assert small <= big / 4
    # by construction: a few copies of one chunk of H, (chunk + Ty - 1) rows x Nx x cin x |RF| x C1
    bound = 4 * (1 + 1) * 40 * (2 * NC) * 10 * 16
    assert small <= bound, (small, bound)


def test_validation_errors():
    rng, s, ks, u = _setup(24, 20, 3, "one")
    s_bad = make_sampling(25, 3, 8)
    u_bad = jnp.asarray(_c(rng, NC, s_bad.num_reduced, 20))
    with pytest.raises(ValueError, match="divisible by R"):
        raki_gfactor(ks, u_bad, s_bad, 0.3)
    with pytest.raises(ValueError, match="linearisation"):
        raki_gfactor(ks, u, s, 0.3, linearisation="exact")
    with pytest.raises(ValueError, match="noise covariance"):
        raki_gfactor(ks, u, s, 0.3, psi=jnp.eye(NC + 1))
    s2 = make_sampling(24, 2, 8)
    u2 = jnp.asarray(_c(rng, NC, s2.num_reduced, 20))
    with pytest.raises(ValueError, match="outputs"):  # kernels built for R=3 used at R=2
        linearise(ks, u2, s2, 0.3)
    lin3 = linearise(ks, u2, make_sampling(36, 3, 8), 0.3)  # a 12-row grid at R=3
    with pytest.raises(ValueError, match="outputs"):  # ... and at the bands' own boundary
        noise_bands(ks, lin3, s2)


def test_beta_fraction_and_frozen_vs_true_differ():
    rng, s, ks, u = _setup(24, 20, 3, "two", seed=5)
    lin = linearise(ks, u, s, 0.3, mode="true")
    f = lin.beta_fraction
    assert 0.2 < f < 0.8  # random pre-activations: Re and Im signs differ half the time
    gt = raki_gfactor(ks, u, s, 0.3, linearisation="true").g
    gf = raki_gfactor(ks, u, s, 0.3, linearisation="frozen").g
    assert float(jnp.abs(gt - gf).max()) > 1e-3  # the two linearisations are different maps
    # kernels, data and slope are traced: another network of the same shapes compiles nothing
    ks2, u2 = _net(rng, "two", 3), jnp.asarray(_c(rng, NC, s.num_reduced, 20))
    with no_recompile():
        for mode in ("true", "frozen"):
            g2 = raki_gfactor(ks2, u2, s, 0.6, linearisation=mode).g
    assert float(jnp.abs(g2 - gf).max()) > 1e-3
