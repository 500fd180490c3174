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
from rakijax.gfactor.combine import combination_weights, gfactor_from_cov, gfactor_from_variance
from rakijax.gfactor.grappa import grappa_cov, grappa_gfactor
from rakijax.gfactor.reference import jacobian_cov, monte_carlo_variance
from rakijax.gfactor.result import GFactorResult
from rakijax.sampling import make_sampling, undersample
from test_grappa import smooth_maps

from _props import no_recompile


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
    W = grappa.calibrate(acs_block, s) if R > 1 else []
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
    cov = grappa_cov(W, s, shape[1], psi=psi)
    # both exact linear responses in float64: rounding only
    assert float(jnp.linalg.norm(cov - cov_ref) / jnp.linalg.norm(cov_ref)) < 1e-8
    res = grappa_gfactor(W, u, s, psi=psi, p=p, return_cov=True)
    assert isinstance(res, GFactorResult) and res.bands is None and res.linearisation is None
    np.testing.assert_allclose(res.cov, cov, rtol=0, atol=1e-14 * float(jnp.abs(cov).max()))
    g = res.g
    psi_full = np.eye(4) if psi is None else psi
    g_ref = gfactor_from_cov(cov_ref, p, psi_full, R)
    np.testing.assert_allclose(g, g_ref, rtol=1e-8, atol=0)
    np.testing.assert_allclose(g, gfactor_from_cov(cov, p, psi_full, R), rtol=1e-12, atol=0)


def test_gfactor_fast_path_matches_cov_for_composed_linear_network():
    """grappa_gfactor never forms G; compare with gfactor_from_cov on grappa_cov (which uses
    linear_unmixing) for a 3-layer linear network (composed kernel) and non-identity psi."""
    rng = np.random.default_rng(7)
    c = lambda *sh: rng.standard_normal(sh) + 1j * rng.standard_normal(sh)
    R, nc, shape = 3, 4, (12, 10)
    ks = [c(6, nc, 2, 5), c(5, 6, 1, 1), c((R - 1) * nc, 5, 1, 5)]
    s = make_sampling(12, R, 8)
    psi = random_psi(rng, nc)
    p = combination_weights(c(nc, *shape))
    u = np.zeros((nc, s.num_reduced, shape[1]), complex)  # only its shape is read when p is given
    g = grappa_gfactor(ks, u, s, psi=psi, p=p).g
    g_ref = gfactor_from_cov(grappa_cov(ks, s, shape[1], psi=psi), p, psi, R)
    np.testing.assert_allclose(g, g_ref, rtol=1e-12)  # two exact evaluations, float64
    ks2 = [c(*w.shape) for w in ks]  # new kernels, psi and weights of the same shapes: no recompilation
    psi2, p2 = random_psi(rng, nc), combination_weights(c(nc, *shape))
    with no_recompile():
        g2 = grappa_gfactor(ks2, u, s, psi=psi2, p=p2).g
    assert float(jnp.abs(g2 - g).max()) > 1e-3


def test_r1_gives_unit_gfactor():
    s, u, W, recon, p, rng = case(1, 12, 10, acs=0)
    psi = random_psi(rng, 4)
    g = np.asarray(grappa_gfactor([], u, s, psi=psi, p=p).g)
    sup = np.asarray(jnp.sum(jnp.abs(p) ** 2, axis=0)) > 0
    assert sup.sum() > 30
    np.testing.assert_allclose(g[sup], 1.0, rtol=1e-12)
    assert np.all(g[~sup] == 0)  # no signal, no weights: g defined as 0
    cov = grappa_cov([], s, 10, psi=psi)
    np.testing.assert_allclose(cov, np.broadcast_to(psi[:, :, None, None], cov.shape), rtol=1e-12)
    # jacfwd of the identity reconstruction u -> ifft2c(u) gives Psi as well
    cov_ref = jacobian_cov(recon, u, psi)
    np.testing.assert_allclose(cov_ref, cov, atol=1e-12)


def test_refuses_non_periodic_and_bad_shapes():
    rng = np.random.default_rng(2)
    acs = rng.standard_normal((4, 12, 20)) + 0j
    s = make_sampling(24, 3, 12)
    W = grappa.calibrate(acs, s)
    u = np.zeros((4, 8, 20), complex)
    with pytest.raises(ValueError, match="divisible by R"):
        grappa_cov(W, make_sampling(25, 3, 12), 20)
    with pytest.raises(ValueError, match="divisible by R"):
        grappa_gfactor(W, np.zeros((4, 9, 20), complex), make_sampling(25, 3, 12))
    with pytest.raises(ValueError, match="rows"):
        grappa_gfactor(W, u[:, :7], s)
    with pytest.raises(ValueError, match="noise covariance"):
        grappa_cov(W, s, 20, psi=np.eye(3))
    with pytest.raises(ValueError, match="combination weights"):
        grappa_gfactor(W, u, s, p=np.ones((4, 21, 20)))
    with pytest.raises(ValueError, match="coils"):
        grappa_gfactor(W, np.zeros((5, 8, 20), complex), s)


def test_done_when_fastmri_12coil_R3(tmp_path):
    """Issue 2 "Done when": a fully sampled 12-coil scan in the fastMRI HDF5 layout, R=3,
    24 ACS lines. (a) our GRAPPA's NMSE against the fully sampled RSS is no worse than a
    straightforward least-squares GRAPPA with the same 2x5 kernel (numpy loops, lstsq);
    (b) the analytic g-factor agrees with a 1000-replica Monte Carlo within its
    statistical error."""
    import h5py

    from rakijax.data import brain_phantom, load
    from rakijax.metrics import nmse
    from test_grappa import loop_grappa_apply

    ny, nx, R, M = 72, 64, 3, 1000
    ph = brain_phantom(shape=(ny, nx), ncoils=12, seed=3)
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as f:  # fastMRI multicoil: (slices, coils, kx, ky)
        f["kspace"] = np.transpose(ph.kspace, (0, 2, 1))[None].astype(np.complex64)
    data = load(path)
    k = data.kspace.astype(np.complex128)
    assert k.shape == (12, ny, nx)
    s = make_sampling(ny, R, 24)
    zf, u, acs = undersample(k, s)
    ref = np.sqrt(np.sum(np.abs(np.asarray(ifft2c(k))) ** 2, axis=0))
    sup = ph.support

    W = grappa.calibrate(acs, s)
    x = ifft2c(grappa.apply(W, u, s))
    ours = float(nmse(ref, jnp.sqrt(jnp.sum(jnp.abs(x) ** 2, axis=0)), sup))

    # straightforward LS GRAPPA: explicit source/target rows, np.linalg.lstsq, no regulariser
    nc, A, _ = acs.shape
    src, tgt = [], []
    for a in range(A - R):
        for c in range(2, nx - 2):
            src.append(np.concatenate([acs[:, a + R * ty, c - 2 : c + 3].ravel() for ty in range(2)]))
            tgt.append(np.concatenate([acs[:, a + d, c] for d in range(1, R)]))
    S, T = np.array(src), np.array(tgt)
    w = np.linalg.lstsq(S, T, rcond=None)[0]  # columns ordered (ty, coil, tx)
    W_ls = w.T.reshape(-1, 2, nc, 5).transpose(0, 2, 1, 3)
    x_ls = np.asarray(ifft2c(loop_grappa_apply(W_ls, np.asarray(zf), R, s.offset)))
    straightforward = float(nmse(ref, np.sqrt(np.sum(np.abs(x_ls) ** 2, axis=0)), sup))
    assert ours <= straightforward * (1 + 1e-3), (ours, straightforward)

    # The replicas run in complex64 (4x cheaper; f32 rounding ~1e-7 is far below the MC error
    # 1/(2 sqrt(M)) = 1.6e-2); the analytic map uses the same (complex64-rounded) kernel.
    W32 = [w.astype(jnp.complex64) for w in W]
    p = combination_weights(x).astype(jnp.complex64)
    g = np.asarray(grappa_gfactor([w.astype(jnp.complex128) for w in W32], u, s, psi=ph.psi, p=p.astype(jnp.complex128)).g)
    # the k-space network at slope 1 is this GRAPPA reconstruction
    var = monte_carlo_variance(W32, u.astype(np.complex64), s, 1.0, psi=ph.psi, p=p, key=jax.random.key(1), replicas=M, chunk=250)
    g_mc = np.asarray(gfactor_from_variance(var, p, ph.psi.astype(np.complex64), R))
    sigma = 1 / (2 * np.sqrt(M))  # per-pixel relative std of the MC g estimate
    z = (g_mc[sup] / g[sup] - 1) / sigma
    assert abs(np.mean(g_mc[sup] / g[sup] - 1)) < 4 * sigma
    assert 0.6 < np.mean(np.abs(z)) < 1.0  # E|z| = 0.80 for a standard normal
    assert np.max(np.abs(z)) < 5.5  # ~3000 support pixels: a 5.5-sigma outlier has p ~ 1e-4


@pytest.mark.slow
def test_realistic_phantom_gfactor_range():
    """Issue 2 item 3: on the built-in 16-coil phantom, GRAPPA (2x5 kernel, 24 ACS) mean g
    in the brain is 1.2-1.5 at R=3 and 1.5-2.5 at R=4, as for a real head array.
    240 = 3*80 = 4*60 lines so that both R divide Ny."""
    from rakijax.data import brain_phantom
    from rakijax.data.synthetic import brain_mask

    n = 240
    ph = brain_phantom(n, ncoils=16)
    means = {}
    for R in (3, 4):
        s = make_sampling(n, R, 24)
        _, u, acs = undersample(ph.kspace, s)
        W = grappa.calibrate(acs, s)
        g = np.asarray(grappa_gfactor(W, u, s, psi=ph.psi).g)  # default p: x/RSS of the GRAPPA recon
        means[R] = float(g[brain_mask((n, n))].mean())
    assert 1.2 <= means[3] <= 1.5 and 1.5 <= means[4] <= 2.5, f"phantom GRAPPA mean g in the brain: {means}"
