"""pipeline.reconstruct: images, prewhitening, g-factor routes, validation (tiny phantoms)."""

from dataclasses import replace
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rakijax.config import preset
from rakijax import pipeline
from rakijax.data.container import KSpaceData
from rakijax.data.synthetic import brain_phantom
from rakijax.fft import ifft2c
from rakijax.gfactor.combine import combination_weights, gfactor_from_cov
from rakijax.gfactor.reference import jacobian_cov
from rakijax.kspace_net import apply_network


@pytest.fixture(scope="module")
def tiny():
    # 24 x 20, 4 coils: small enough for a dense jacfwd (~60 MB) in a test
    return brain_phantom(shape=(24, 20), ncoils=4, seed=3)


def _rss(x):
    return np.sqrt(np.sum(np.abs(x) ** 2, axis=0))


def test_config_validation():
    with pytest.raises(ValueError, match="method"):
        pipeline.ReconConfig(method="sense")
    with pytest.raises(ValueError, match="slope"):
        pipeline.ReconConfig(slope=1.5)
    with pytest.raises(ValueError, match="R must be an integer"):
        pipeline.ReconConfig(R=0)
    with pytest.raises(ValueError, match="gfactor"):
        pipeline.ReconConfig(gfactor="exact")
    with pytest.raises(ValueError, match="replicas"):
        pipeline.ReconConfig(replicas=1)
    with pytest.raises(ValueError, match="mc_noise_scale"):
        pipeline.ReconConfig(mc_noise_scale=0.0)
    d = pipeline.ReconConfig(method="raki", raki=replace(preset("small").raki, steps=7)).to_dict()
    assert d["raki"]["widths"] == [32, 8] and d["raki"]["steps"] == 7 and d["R"] == 4


def test_grappa_images_and_scanner_basis_gfactor(tiny):
    """The g map (computed in the whitened basis) equals a dense jacfwd of the whole scanner-basis map.

    Independent route: x_scanner(u) = L ifft2c(GRAPPA(W u)) with input noise of covariance Psi
    (the phantom's, not the identity), Jacobian by jax.jacfwd, p from the scanner-basis images.
    """
    cfg = pipeline.ReconConfig(method="grappa", R=2, acs=8, gfactor="analytic")
    res = pipeline.reconstruct(tiny, cfg)
    k = tiny.kspace
    np.testing.assert_allclose(res.reference, _rss(np.asarray(ifft2c(k))), rtol=1e-12)
    np.testing.assert_allclose(res.recon, _rss(res.coil_images), rtol=1e-10)  # rho = RSS for p = x/RSS
    lines = res.sampling.acquired_lines
    np.testing.assert_allclose(res.recon_kspace[:, lines], k[:, lines], rtol=1e-10, atol=1e-12 * np.abs(k).max())
    assert res.mask.shape == (24,) and res.mask[lines].all() and res.mask[res.sampling.acs_lines].all()
    assert res.metrics["image_space_rel_error"] < 1e-12  # float64: image space == k-space
    # independent g: scanner basis, Psi non-identity
    g_ref = _scanner_basis_gfactor(tiny, res, 1.0)
    np.testing.assert_allclose(res.gfactor, g_ref, rtol=1e-9, atol=1e-12)


def test_r1_is_identity(tiny):
    res = pipeline.reconstruct(tiny, pipeline.ReconConfig(method="grappa", R=1, acs=0))
    np.testing.assert_allclose(res.gfactor, 1.0, rtol=1e-12)  # closed form: g = 1 at R = 1
    assert res.metrics["nmse"] < 1e-20


def test_support_and_noise_sources(tiny):
    # without data.support the support is the thresholded, hole-filled reference
    yy, xx = np.mgrid[:40, :40]
    r = np.hypot(yy - 20, xx - 20)
    img = np.where(r < 12, 1.0, 0.0) * np.where(r < 4, 0.05, 1.0)  # a disk with a dark centre
    m = pipeline.support_mask(img)
    np.testing.assert_array_equal(m, r < 12)
    bare = KSpaceData(kspace=tiny.kspace, noise=tiny.noise)
    res = pipeline.reconstruct(bare, pipeline.ReconConfig(method="grappa", R=2, acs=8, gfactor="none"))
    assert res.metrics["noise_covariance"] == "noise scan" and res.gfactor is None
    np.testing.assert_array_equal(res.support, pipeline.support_mask(res.reference))
    res2 = pipeline.reconstruct(KSpaceData(kspace=tiny.kspace),
                                pipeline.ReconConfig(method="grappa", R=2, acs=8, gfactor="none", prewhiten=False))
    assert res2.metrics["noise_covariance"] == "k-space background" and not res2.metrics["prewhitened"]


def test_autodiff_refuses_large_grids(tiny):
    res = pipeline.reconstruct(tiny, pipeline.ReconConfig(method="grappa", R=2, acs=8, gfactor="none"))
    need = pipeline.autodiff_bytes(4, 24, 20, 2, itemsize=8)
    with pytest.raises(ValueError, match=r"autodiff refused.*GiB"):
        pipeline.gfactor_map(res, "autodiff", autodiff_max_gib=need / 2**30 / 2)
    # 256 x 256 x 16 coils at R = 4 is terabytes
    assert pipeline.autodiff_bytes(16, 256, 256, 4, itemsize=4) > 1e12


def test_bad_data():
    k = np.ones((2, 16, 12), complex)
    with pytest.raises(ValueError, match="leaves only"):
        pipeline.reconstruct(KSpaceData(kspace=k), pipeline.ReconConfig(R=9, acs=4, gfactor="none"))
    with pytest.raises(ValueError, match="ACS"):
        pipeline.reconstruct(KSpaceData(kspace=k), pipeline.ReconConfig(R=2, acs=0, gfactor="none"))
    # refused up front, before any calibration
    with pytest.raises(ValueError, match="divisible by R"):
        pipeline.check_feasible((4, 30, 20), pipeline.ReconConfig(R=4, acs=12, gfactor="analytic"))
    with pytest.raises(ValueError, match=r"needs about \d+\.\d GiB"):
        pipeline.check_feasible((16, 256, 256), pipeline.ReconConfig(R=4, gfactor="autodiff"))


def _scanner_basis_gfactor(data, res, slope):
    """Independent g: dense jacfwd of u -> L ifft2c(net(W u)) with input noise covariance Psi (scanner basis)."""
    psi = np.asarray(data.psi)
    L = np.linalg.cholesky(psi)
    W = np.linalg.inv(L)
    s = res.sampling
    ker = [jnp.asarray(w) for w in res.kernels]

    def x_scanner(u):
        kw = apply_network(ker, jnp.einsum("cd,dyx->cyx", W, u), s, slope)
        return ifft2c(jnp.einsum("cd,dyx->cyx", L, kw))

    u = jnp.asarray(data.kspace[:, s.offset :: s.R])
    cov = jacobian_cov(x_scanner, u, psi=psi)
    p = combination_weights(x_scanner(u))
    return np.asarray(gfactor_from_cov(cov, p, psi, s.R))


def test_raki_pipeline_image_space_and_gfactor(tiny):
    """RAKI: image-space form exact in float64; analytic 'true' map == dense jacfwd in the scanner basis."""
    cfg = pipeline.ReconConfig(method="raki", R=2, acs=10, slope=0.5, gfactor="analytic",
                               raki=replace(preset("small").raki, steps=40, log_every=20))
    res = pipeline.reconstruct(tiny, cfg)
    assert res.losses.shape == (40,) and res.losses[-1] < res.losses[0]
    assert res.metrics["image_space_rel_error"] < 1e-10
    assert res.metrics["linearisation"] == "true"
    assert "train_s" in res.timings and "gfactor_s" in res.timings
    # the nonlinear network's exact linear response, through prewhitening and back (1e-8: float64)
    np.testing.assert_allclose(res.gfactor, _scanner_basis_gfactor(tiny, res, 0.5), rtol=1e-8, atol=1e-12)
