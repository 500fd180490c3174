"""rakijax.sanity: each refusal and warning of issue 13, on tiny arrays and the built-in phantom."""

import numpy as np
import pytest

from rakijax import grappa, metrics
from rakijax.data import brain_phantom
from rakijax.fft import ifft2c
from rakijax.gfactor.grappa import grappa_cov
from rakijax.noise_trust import estimate_noise
from rakijax.sampling import make_sampling, undersample
from rakijax.memory import check_input_size, check_memory, estimate_memory_bytes, memory_breakdown
from rakijax.sanity import check_kspace, check_noise, check_reconstruction


@pytest.fixture(scope="module")
def ph():
    return brain_phantom(64, 8)


def _rand(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


@pytest.mark.parametrize("bad, match", [
    (np.ones((4, 16, 16), np.int16), "integer dtype int16"),
    (np.random.default_rng(0).standard_normal((4, 16, 16)), "real-valued"),
    (np.random.default_rng(0).standard_normal((4, 16, 16)) + 0j, "every imaginary part is zero"),
    (np.zeros((4, 16, 16), complex), "all zero"),
    (np.full((4, 16, 16), 2 + 1j), "constant"),
    (np.ones((16, 16)) + 1j, r"need \(coil, ky, kx\)"),
])
def test_check_kspace_refusals(bad, match):
    with pytest.raises(ValueError, match=match):
        check_kspace(bad, R=2)


def test_check_kspace_nan_layout_and_single_coil(ph):
    k = ph.kspace.copy()
    k[0, 3, 4] = np.nan
    with pytest.raises(ValueError, match="1 NaN/Inf"):
        check_kspace(k)
    # MATLAB (kx, ky, coil) = (64, 64, 8) read as (coil, ky, kx): 64 "coils" of 64 x 8
    matlab = np.transpose(ph.kspace, (2, 1, 0))
    with pytest.raises(ValueError, match=r"64 coils but only 64 ky and 8 kx.*--axes"):
        check_kspace(matlab, R=4)
    one = ph.kspace[:1]
    with pytest.raises(ValueError, match="one coil but R=4"):
        check_kspace(one, R=4)
    assert check_kspace(one, R=1) == []
    assert check_kspace(ph.kspace, R=4) == []
    assert check_kspace(np.stack([ph.kspace] * 2), R=4) == []  # leading slice axis


def test_check_kspace_warnings(ph):
    (w,) = check_kspace(ph.kspace[:2], R=4)
    assert "only 2 coils at R=4" in w
    k = ph.kspace.copy()
    k[3] = 0
    (w,) = check_kspace(k, R=4)
    assert "coil(s) 3 of 8 are all zero" in w
    (w,) = check_kspace(np.fft.ifftshift(ph.kspace, axes=(-2, -1)), R=4)
    assert "uncentred" in w
    imgs = np.asarray(ifft2c(ph.kspace))  # images given as k-space
    (w,) = check_kspace(imgs, R=4)
    assert "images rather than k-space" in w


def test_check_noise(ph):
    assert check_noise(estimate_noise(ph.kspace)) == []
    (w,) = check_noise(estimate_noise(ph.clean))
    assert w.startswith("noise covariance not trusted") and "noise-free" in w
    psi = np.diag([1.0, 1.0, 2e-3]).astype(complex)  # trusted (<= 1e3) but poorly conditioned
    (w,) = check_noise(estimate_noise(psi=psi))
    assert "condition number 500" in w
    (w,) = check_noise(estimate_noise(psi=np.diag([1.0, 1e-4]).astype(complex)))
    assert "not trusted" in w and "ill-conditioned" in w
    n = _rand((2, 40))
    (w,) = check_noise(estimate_noise(noise=n))
    assert "only 40 samples" in w


@pytest.fixture(scope="module")
def rec(ph):
    s = make_sampling(64, 4, 16)
    zf, _, acs = undersample(ph.kspace, s)
    g = np.asarray(grappa.reconstruct(ph.kspace, s)[0])
    return s, zf, acs, g


def test_check_reconstruction_sound(ph, rec):
    s, zf, acs, g = rec
    assert check_reconstruction(zf, ph.kspace, s, acs_block=acs, reference=ph.kspace) == []
    assert check_reconstruction(zf, g, s, acs_block=acs, reference=ph.kspace) == []


def test_check_reconstruction_noise_is_not_aliasing():
    # very noisy data (noise 10x the default): the noise outside the object must not count as aliasing
    d = brain_phantom(64, 8, noise_level=0.1)
    s = make_sampling(64, 4, 16)
    zf, _, acs = undersample(d.kspace, s)
    g = np.asarray(grappa.reconstruct(d.kspace, s)[0])
    assert check_reconstruction(zf, d.kspace, s, acs_block=acs) == []
    assert check_reconstruction(zf, g, s, acs_block=acs) == []
    acq = s.mask(include_acs=False)[:, None]
    w = check_reconstruction(zf, np.where(acq, d.kspace, 0.3 * d.kspace), s, acs_block=acs)
    assert any("ghosts" in m for m in w), w  # 70% of the ghosts' amplitude left: found through the noise


def test_check_reconstruction_collapse(ph, rec):
    s, zf, acs, g = rec
    acq = s.mask(include_acs=False)[:, None]
    # an under-fitted network: interpolated lines at 10% of their value, heavy aliasing
    shrunk = np.where(acq, ph.kspace, 0.1 * ph.kspace)
    rss = lambda k: np.sqrt(np.sum(np.abs(np.asarray(ifft2c(k))) ** 2, axis=0))
    assert metrics.nmse(rss(ph.kspace), rss(shrunk), ph.support) > 0.1  # independent: a failed recon
    w = check_reconstruction(zf, shrunk, s, acs_block=acs, name="RAKI")
    assert any("aliasing ghosts (amplitude) remain" in m for m in w), w
    assert any("too little" in m for m in w)
    assert all(m.startswith("RAKI: ") for m in w)
    # amplified garbage in the interpolated lines
    garbage = np.where(acq, ph.kspace, 30 * ph.kspace)
    w = check_reconstruction(zf, garbage, s, acs_block=acs)
    assert any("too much" in m for m in w)
    # against a reference (here GRAPPA's reconstruction of the same data)
    w = check_reconstruction(zf, shrunk, s, reference=g, reference_label="GRAPPA")
    assert any("against GRAPPA" in m for m in w)
    # acquired lines changed; NaN
    moved = g.copy()
    moved[:, s.offset] *= 2
    assert any("acquired lines changed" in m for m in check_reconstruction(zf, moved, s))
    assert "diverged" in check_reconstruction(zf, np.full_like(g, np.nan), s)[0]


def test_memory_estimate_closed_forms():
    nc, ny, nx = 16, 256, 256
    b = memory_breakdown((nc, ny, nx), "grappa", 4, "analytic", itemsize=8)
    assert b["gfactor"] == 3 * nc * nc * ny * nx * 8
    assert b["input"] == nc * ny * nx * 16 + 6 * nc * ny * nx * 8
    assert b["peak"] == b["runtime"] + b["input"] + max(b["method"], b["gfactor"]) == estimate_memory_bytes((nc, ny, nx))
    ad = memory_breakdown((nc, ny, nx), "grappa", 4, "autodiff", itemsize=8)["gfactor"]
    assert ad == 2 * (2 * nc * ny * nx) * (2 * nc * 64 * nx) * 4  # dense real Jacobian, float32, x2
    assert memory_breakdown((nc, ny, nx), "raki", 4, "none")["gfactor"] == 0
    assert estimate_memory_bytes((nc, ny, nx), "raki", 4, "montecarlo") > estimate_memory_bytes((nc, 64, 64), "raki", 4, "montecarlo")
    with pytest.raises(ValueError, match="method"):
        estimate_memory_bytes((4, 8, 8), "sense")
    with pytest.raises(ValueError, match="shape"):
        estimate_memory_bytes((8, 8))


def test_memory_estimate_bounds_the_real_covariance(ph, rec):
    s, zf, acs, g = rec
    kernels = grappa.calibrate(acs, s)
    cov = grappa_cov(kernels, s, 64, psi=np.eye(8))  # the largest array of the analytic GRAPPA g-factor
    itemsize = np.dtype(cov.dtype).itemsize
    assert memory_breakdown((8, 64, 64), "grappa", 4, "analytic", itemsize=itemsize)["gfactor"] >= cov.nbytes


def test_check_memory_refuses_before_work():
    # 32 GiB of input (issue 13, item 6): 256 slices of 32 x 512 x 512 complex128
    with pytest.raises(ValueError, match=r"needs about .* GiB \(largest: input .* are available: use fewer slices"):
        check_memory((32, 512, 512), slices=256, available=16 * 2**30, name="big.h5")
    with pytest.raises(ValueError, match="largest: gfactor"):
        check_memory((16, 256, 256), "grappa", 4, "autodiff", available=64 * 2**30)
    assert check_memory((8, 64, 64), available=64 * 2**30) == []
    need = estimate_memory_bytes((8, 64, 64))
    (w,) = check_memory((8, 64, 64), available=int(need / 0.9))
    assert "over 80%" in w


def test_input_larger_than_memory_refused_before_reading(tmp_path):
    """A (sparse) 32 GiB .npy is refused from its size alone, naming the file: nothing is read."""
    f = tmp_path / "huge.npy"
    with open(f, "wb") as h:
        h.truncate(32 * 2**30)
    with pytest.raises(ValueError, match=r"huge.npy: the file holds 32.0 GiB but only 16.0 GiB"):
        check_input_size(f, available=16 * 2**30)
    check_input_size(f, available=64 * 2**30)  # fits: no error
