"""The built-in brain phantom: determinism, shapes, consistency, noise statistics, coil maps."""

import jax
import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from rakijax.data import KSpaceData, brain_phantom
from rakijax.data.synthetic import CoilArray, brain_image, loop_coil_maps
from rakijax.fft import fft2c, ifft2c

_fft2c = jax.jit(fft2c)
_ifft2c = jax.jit(ifft2c)


@pytest.fixture(scope="module")
def small():
    return brain_phantom(shape=(48, 40), ncoils=8, seed=3)


def _bound(psi, s, k=5.0):
    """k-sigma bound of a sample covariance entry with s samples: std <= sqrt(Psi_ii Psi_jj / s)."""
    d = np.real(np.diag(psi))
    return k * np.sqrt(np.outer(d, d) / s)


def test_deterministic_from_seed(small):
    again = brain_phantom(shape=(48, 40), ncoils=8, seed=3)
    for name in ("kspace", "clean", "noise", "psi", "maps", "support"):
        np.testing.assert_array_equal(getattr(again, name), getattr(small, name))
    other = brain_phantom(shape=(48, 40), ncoils=8, seed=4)
    assert not np.allclose(other.kspace, small.kspace)


@pytest.mark.parametrize("shape,nc", [((63, 50), 8), ((24, 20), 4), ((33, 33), 12)])
def test_shapes_odd_and_nonsquare(shape, nc):
    d = brain_phantom(shape=shape, ncoils=nc, noise_samples=100)
    assert isinstance(d, KSpaceData)
    assert d.kspace.shape == d.clean.shape == d.maps.shape == (nc,) + shape
    assert d.support.shape == shape and d.support.dtype == bool
    assert d.psi.shape == (nc, nc) and d.noise.shape == (nc, 100)
    assert d.kspace.dtype == np.complex128
    # the head is inside the field of view: no signal on the border rows/columns (only the
    # exponential tail of the ~1-pixel soft edge, < 1e-3 even on a 20-pixel grid)
    img = np.abs(np.asarray(_ifft2c(d.clean))).sum(0)
    assert img[0].max() < 1e-3 * img.max() and img[:, 0].max() < 1e-3 * img.max()


def test_coil_images_share_one_object(small):
    """clean = fft2c(S_c m): every coil image divided by its sensitivity gives the same image m."""
    x = np.asarray(_ifft2c(small.clean))
    s = small.maps
    m = np.sum(np.conj(s) * x, 0) / np.sum(np.abs(s) ** 2, 0)  # least-squares common image
    np.testing.assert_allclose(x, s * m[None], atol=1e-10 * np.abs(x).max())
    # the object lies in the support
    assert np.abs(m[~small.support]).max() < 0.05 * np.abs(m).max()
    # brain-like contrast: white matter near 1, dark CSF/bone present, a few hundred distinct grey levels
    mag = np.abs(m[small.support])
    assert 0.9 < np.percentile(mag, 90) < 1.4 and np.percentile(mag, 5) < 0.3


def test_noise_scan_and_kspace_noise_have_covariance_psi():
    d = brain_phantom(shape=(64, 64), ncoils=6, seed=1, noise_samples=4000)
    n = d.noise
    emp = n @ n.conj().T / n.shape[1]  # zero-mean noise: unbiased without demeaning
    assert np.all(np.abs(emp - d.psi) < _bound(d.psi, n.shape[1]))
    r = (d.kspace - d.clean).reshape(6, -1)
    emp = r @ r.conj().T / r.shape[1]
    assert np.all(np.abs(emp - d.psi) < _bound(d.psi, r.shape[1]))
    assert np.all(np.abs(r @ r.T / r.shape[1]) < _bound(d.psi, r.shape[1]))  # circular


def test_psi_structure(small):
    psi = small.psi
    np.testing.assert_allclose(psi, psi.conj().T, atol=0)
    assert np.linalg.eigvalsh(psi)[0] > 0
    sd = np.sqrt(np.real(np.diag(psi)))
    # noise_level is the RMS per-coil noise std (definition in the module docstring)
    np.testing.assert_allclose(np.sqrt(np.mean(sd**2)), 0.01, rtol=1e-12)
    assert sd.max() / sd.min() > 1.1  # unequal coil noise levels
    corr = np.abs(psi) / np.outer(sd, sd)
    off = corr[~np.eye(len(psi), dtype=bool)]
    assert 0.1 <= off.max() <= 0.35  # realistic receiver noise correlation
    assert off.max() > 1.5 * off.min()  # neighbours (overlapping fields) correlate more than distant coils


def test_maps_normalised_smooth_complex(small):
    rss = np.sqrt((np.abs(small.maps) ** 2).sum(0))
    np.testing.assert_allclose(np.median(rss[small.support]), 1.0, rtol=1e-12)  # the defined normalisation
    # complex: the phase varies across the head
    ph = np.angle(small.maps[:, small.support])
    assert np.all(np.std(np.exp(1j * ph), axis=1) > 0.2)


def test_maps_smooth():
    """Second differences inside the head shrink like h^2 (a C^2 field) as the pixel size h halves."""

    def curvature(n):
        _, sup = brain_image((n, n))
        S = loop_coil_maps((n, n), CoilArray(8), support=sup)
        inner = binary_erosion(sup, iterations=2)[1:-1, 1:-1]  # away from the clipped exterior
        d2y = np.abs(S[:, 2:, 1:-1] - 2 * S[:, 1:-1, 1:-1] + S[:, :-2, 1:-1])[:, inner]
        d2x = np.abs(S[:, 1:-1, 2:] - 2 * S[:, 1:-1, 1:-1] + S[:, 1:-1, :-2])[:, inner]
        return max(d2y.max(), d2x.max()) / np.abs(S[:, sup]).max()

    c128, c256 = curvature(128), curvature(256)
    assert c128 < 0.03  # a few per cent of the map scale per pixel at 1.9 mm pixels
    assert 3.0 < c128 / c256 < 6.0  # ~4 = 2^2 for a smooth field (higher-order terms aside)


def test_noise_free_and_bad_arguments():
    d = brain_phantom(shape=(24, 20), ncoils=4, noise_level=0.0, noise_samples=10)
    np.testing.assert_array_equal(d.kspace, d.clean)
    with pytest.raises(ValueError, match="ncoils"):
        brain_phantom(shape=(24, 20), ncoils=0)
    with pytest.raises(ValueError, match="shape"):
        brain_phantom(shape=(2, 20))
    with pytest.raises(ValueError, match="noise_level"):
        brain_phantom(shape=(24, 20), noise_level=-1.0)


def test_nifti_reader_roundtrip(tmp_path):
    """A NIfTI-1 file written by nibabel with scl_slope/scl_inter reads back scaled, x fastest."""
    import nibabel as nib

    from rakijax.data.template import read_nifti

    vol = np.arange(4 * 3 * 2, dtype=np.int16).reshape(4, 3, 2)
    img = nib.Nifti1Image(vol, np.eye(4))
    img.header.set_slope_inter(2.0, 1.0)
    f = tmp_path / "v.nii.gz"
    nib.save(img, f)
    np.testing.assert_array_equal(read_nifti(f), 2.0 * vol + 1.0)


def test_colin27_anatomy():
    import os

    from rakijax.data.synthetic import COLIN27

    if not os.path.exists(COLIN27):
        pytest.skip(f"Colin27 template not installed ({COLIN27}, Debian package mricron-data)")
    d = brain_phantom(shape=(64, 56), ncoils=8, anatomy="colin27", noise_samples=10)
    img = np.abs(np.sum(np.conj(d.maps) * np.asarray(_ifft2c(d.clean)), 0) / np.sum(np.abs(d.maps) ** 2, 0))
    assert d.support.mean() > 0.3 and 0.8 < np.percentile(img[d.support], 90) < 1.2


def test_template_anatomy_code_path(tmp_path):
    """anatomy='colin27' with a stand-in template (a uint8 ellipsoid volume) fills the head ellipse."""
    import nibabel as nib

    z, y, x = np.meshgrid(np.linspace(-1, 1, 20), np.linspace(-1, 1, 24), np.linspace(-1, 1, 18), indexing="ij")
    vol = (100 * ((x / 0.7) ** 2 + (y / 0.8) ** 2 + (z / 0.9) ** 2 < 1)).astype(np.uint8).transpose(2, 1, 0)  # (x, y, z)
    f = tmp_path / "t.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.eye(4)), f)
    d = brain_phantom(shape=(40, 36), ncoils=4, anatomy="colin27", template=str(f), noise_samples=10)
    img = np.abs(np.sum(np.conj(d.maps) * np.asarray(_ifft2c(d.clean)), 0) / np.sum(np.abs(d.maps) ** 2, 0))
    np.testing.assert_allclose(np.percentile(img[d.support], 90), 1.0, rtol=0.05)  # scaled to "white matter" 1
    assert 0.3 < d.support.mean() < 0.6  # the head ellipse covers ~ pi*0.66*0.82/4 = 43 % of the field of view
    with pytest.raises(FileNotFoundError, match="mricron-data"):
        brain_phantom(shape=(24, 20), ncoils=2, anatomy="colin27", template=str(tmp_path / "none.nii.gz"))
