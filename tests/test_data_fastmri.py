"""fastMRI HDF5 with its ISMRMRD header (padding, matrices, field of view) and mask.

References: the stored layout is checked by hand against the fastMRI convention
(``(slices, coils, kx, ky)``, acquired columns ``[width//2 - center, ... + max + 1)``),
and what ``load`` returns against the arrays written.
"""

import h5py
import numpy as np
import pytest

from rakijax.data import acquired, brain_phantom, load, load_volume, num_slices, write_fastmri
from rakijax.exports import recon_crop
from rakijax.sampling import make_sampling

NY, NX, PAD = 32, 32, (3, 3)
FOV = (220.0, 440.0, 4.0)


@pytest.fixture(scope="module")
def vol():
    k = brain_phantom(NY, ncoils=4).kspace
    return np.stack([k, 2 * k]).astype(np.complex64)


def test_padding_mask_header_and_attributes(tmp_path, vol):
    s = make_sampling(NY, 4, 8)
    f = tmp_path / "file_brain_AXT2_0.h5"
    write_fastmri(f, vol * s.mask()[:, None], mask=s.mask(), padding=PAD, fov_mm=FOV,
                  attrs={"acceleration": 4, "num_low_frequency": 8})
    with h5py.File(f) as h:  # the stored layout, by the fastMRI convention
        stored = h["kspace"][()]
        assert stored.shape == (2, 4, NX, NY + 6)
        np.testing.assert_array_equal(stored[1, 2, 5, PAD[0] + 7], vol[1, 2, 7, 5] * s.mask()[7])
        assert not stored[..., : PAD[0]].any() and not stored[..., -PAD[1]:].any()
        assert h["mask"].shape == (NY + 6,)
    assert num_slices(f) == 2
    d = load(f, slice=1)
    assert d.accelerated and d.meta["ky_padding"] == PAD and d.meta["R_header"] == 4
    np.testing.assert_array_equal(d.sampled, s.mask())
    np.testing.assert_array_equal(d.kspace, vol[1] * s.mask()[:, None])
    assert d.voxel_size == pytest.approx((FOV[0] / NY, FOV[1] / NX, FOV[2]))
    assert d.meta["recon_matrix"][:2] == (NX // 2, NY)
    assert d.sampling() == s
    a = acquired(d)
    np.testing.assert_array_equal(a.reduced, vol[1][:, s.offset :: 4])
    assert [x.slice_index for x in load_volume(f)] == [0, 1]


def test_fully_sampled_with_padding_is_cropped_not_accelerated(tmp_path, vol):
    f = tmp_path / "full.h5"
    write_fastmri(f, vol, padding=(2, 2))
    d = load(f)
    assert not d.accelerated and d.shape == (4, NY, NX)
    np.testing.assert_array_equal(d.kspace, vol[0])


def test_mask_zeroes_lines_it_marks_missing(tmp_path, vol):
    s = make_sampling(NY, 2, 6)
    f = tmp_path / "masked.h5"
    write_fastmri(f, vol, mask=s.mask(), padding=PAD)  # full data, the mask selects
    d = load(f)
    np.testing.assert_array_equal(d.kspace, vol[0] * s.mask()[:, None])
    assert d.meta["mask"] == "file" and d.sampling() == s


def test_attribute_R_contradicting_the_mask(tmp_path, vol):
    s = make_sampling(NY, 4, 8)
    f = tmp_path / "badR.h5"
    write_fastmri(f, vol, mask=s.mask(), attrs={"acceleration": 8})
    with pytest.raises(ValueError, match=r"R=8 disagrees with the data.*acceleration attribute") as e:
        load(f)
    assert str(f) in str(e.value)


def test_bad_headers(tmp_path, vol):
    f = tmp_path / "badxml.h5"
    write_fastmri(f, vol)
    with h5py.File(f, "r+") as h:
        del h["ismrmrd_header"]
        h["ismrmrd_header"] = np.bytes_(b"<ismrmrdHeader><encoding>")
    with pytest.raises(ValueError, match="unreadable ISMRMRD header") as e:
        load(f)
    assert str(f) in str(e.value)
    g = tmp_path / "wrongwidth.h5"
    write_fastmri(g, vol)
    with h5py.File(g, "r+") as h:
        k = h["kspace"][()]
        del h["kspace"]
        h["kspace"] = k[..., :-2]
    with pytest.raises(ValueError, match="encoded matrix has 32 phase-encoding lines but the k-space has 30"):
        load(g)


def test_recon_crop():
    img = np.arange(10 * 12).reshape(10, 12)
    c = recon_crop(img, (6, 4, 1))  # (x, y, z)
    assert c.shape == (4, 6)
    assert c[4 // 2, 6 // 2] == img[10 // 2, 12 // 2]  # centre pixel kept
    assert recon_crop(img, (20, 20, 1)).shape == (10, 12)  # no padding
    assert recon_crop(img, None) is img
