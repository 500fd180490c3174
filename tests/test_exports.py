"""NIfTI/BART exports, kernel files and ACS reinsertion.

References: nibabel reading the file back (shape, zooms, orientation codes, voxel ->
world by the documented affine written out by hand); rakijax's BART reader and
BART's column-major layout; exact equality for the kernel round trip; ACS lines by
the DESIGN.md convention.
"""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

nib = pytest.importorskip("nibabel")

from rakijax.data import load, read_cfl  # noqa: E402
from rakijax.exports import load_kernels, nifti_affine, reinsert_acs, save_kernels, write_bart, write_nifti  # noqa: E402
from rakijax.sampling import make_sampling  # noqa: E402


def _rand(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


# ------------------------------------------------------------------ NIfTI
def test_nifti_volume_shape_orientation_and_values(tmp_path):
    img = _rand((3, 6, 5))  # (slice, ky rows, kx columns), complex
    p = write_nifti(tmp_path / "recon", img, voxel_size=(2.0, 1.5, 4.0))
    assert p.endswith("recon.nii.gz")
    n = nib.load(p)
    assert n.shape == (5, 6, 3)
    assert nib.aff2axcodes(n.affine) == ("R", "P", "S")
    np.testing.assert_allclose(n.header.get_zooms(), (1.5, 2.0, 4.0))
    data = n.get_fdata()
    for s in range(3):
        np.testing.assert_allclose(data[:, :, s].T, np.abs(img[s]), rtol=1e-6)
    # voxel (i=col, j=row, k=slice) -> world: x = 1.5*(i - 2), y = -2*(j - 3), z = 4*(k - 1)
    i, j, k = 4, 0, 2
    np.testing.assert_allclose(n.affine @ [i, j, k, 1], [1.5 * (i - 2), -2.0 * (j - 3), 4.0 * (k - 1), 1])
    assert int(n.header["sform_code"]) == 2 and n.header.get_xyzt_units()[0] == "mm"


def test_nifti_single_slice_default_voxel(tmp_path):
    img = np.arange(12.0).reshape(3, 4)
    n = nib.load(write_nifti(tmp_path / "g.nii", img))
    assert n.shape == (4, 3, 1)
    np.testing.assert_allclose(n.header.get_zooms(), (1.0, 1.0, 1.0))
    np.testing.assert_allclose(n.get_fdata()[..., 0].T, img)
    np.testing.assert_allclose(nifti_affine((4, 3, 1), (2.0, 3.0)), [[3, 0, 0, -6], [0, -2, 0, 2], [0, 0, 1, 0], [0, 0, 0, 1]])
    with pytest.raises(ValueError, match="image must be"):
        write_nifti(tmp_path / "bad", np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="voxel_size"):
        write_nifti(tmp_path / "bad", img, voxel_size=(0.0, 1.0))


# ------------------------------------------------------------------ BART
def test_bart_image_and_kspace(tmp_path):
    img = _rand((6, 5))
    write_bart(tmp_path / "recon", img)
    raw = read_cfl(tmp_path / "recon")
    assert raw.shape == (5, 6)  # BART dims 0 = readout (kx), 1 = phase encoding (ky)
    np.testing.assert_allclose(raw, img.T.astype(np.complex64))
    vol = _rand((2, 3, 6, 5), seed=1)  # (slice, coil, ky, kx)
    write_bart(tmp_path / "k", vol, kind="kspace")
    assert read_cfl(tmp_path / "k").shape == (5, 6, 1, 3) + (1,) * 9 + (2,)
    np.testing.assert_allclose(load(tmp_path / "k", slice=1).kspace, vol[1].astype(np.complex64))
    with pytest.raises(ValueError, match="kind"):
        write_bart(tmp_path / "x", img, kind="map")


# ------------------------------------------------------------------ kernels
@dataclasses.dataclass(frozen=True)
class _Cfg:
    widths: tuple = (8, 4)
    lr: float = 1e-3
    kernel: tuple = ((2, 5), (1, 1))


def test_kernels_round_trip_exactly(tmp_path):
    kernels = [_rand((4, 4, 2, 5)).astype(np.complex64), jnp.asarray(_rand((8, 4, 1, 1), seed=2))]
    per_slice = [kernels, (np.ones((2, 2)), {"bias": np.arange(3)})]
    s = make_sampling(32, 4, 8, 1)
    W = _rand((4, 4), seed=3)
    meta = {"method": "raki", "slope": 0.5, "R": 4, "offset": 1, "acs": 8, "sampling": s, "shape": (4, 32, 32),
            "whitening": W, "config": _Cfg(), "seed": np.int64(3), "reinsert_acs": True, "note": None}
    p = save_kernels(tmp_path / "kernels", per_slice, meta)
    assert p.endswith("kernels.npz")
    got, m = load_kernels(p)
    assert isinstance(got, list) and isinstance(got[1], tuple) and isinstance(got[1][1], dict)
    np.testing.assert_array_equal(got[0][0], kernels[0])
    assert got[0][0].dtype == np.complex64
    np.testing.assert_array_equal(got[0][1], np.asarray(kernels[1]))
    np.testing.assert_array_equal(got[1][1]["bias"], np.arange(3))
    assert m["sampling"] == s and m["slope"] == 0.5 and m["method"] == "raki" and m["note"] is None
    np.testing.assert_array_equal(m["whitening"], W)
    assert m["config"] == {"widths": [8, 4], "lr": 1e-3, "kernel": [[2, 5], [1, 1]]}
    assert m["seed"] == 3 and m["shape"] == [4, 32, 32]


def test_kernels_bad_files(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.ones(2))
    with pytest.raises(ValueError, match="not a rakijax kernels file"):
        load_kernels(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a rakijax kernels file"):
        load_kernels(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError):
        load_kernels(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="cannot be stored"):
        save_kernels(tmp_path / "k", [np.ones(2)], {"f": object()})


# ------------------------------------------------------------------ ACS reinsertion
def test_reinsert_acs_numpy_and_jax():
    s = make_sampling(16, 4, 6)  # ACS lines 5..10
    recon = _rand((3, 16, 4))
    acq = np.zeros_like(recon)
    m = s.mask()
    acq[:, m] = _rand((3, int(m.sum()), 4), seed=5)
    out = reinsert_acs(recon, acq, s)
    acs = np.zeros(16, bool)
    acs[5:11] = True
    np.testing.assert_array_equal(out[:, acs], acq[:, acs])
    np.testing.assert_array_equal(out[:, ~acs], recon[:, ~acs])
    out_j = reinsert_acs(jnp.asarray(recon), jnp.asarray(acq), s)
    np.testing.assert_array_equal(np.asarray(out_j), out)
    # a separate reference scan: the ACS lines are not in the acquired k-space, nothing is reinserted
    imaging = s.mask(include_acs=False)
    acq2 = acq * imaging[:, None]
    out2 = reinsert_acs(recon, acq2, s, lines=imaging)
    np.testing.assert_array_equal(out2[:, ~imaging], recon[:, ~imaging])
    np.testing.assert_array_equal(out2[:, acs & imaging], acq2[:, acs & imaging])
    np.testing.assert_array_equal(reinsert_acs(recon, acq2, s), out2)  # default: the non-zero lines
    with pytest.raises(ValueError, match="share"):
        reinsert_acs(recon, acq[:, :8], s)


def test_check_kernels_fit_and_apply_without_acs():
    from rakijax.data import KSpaceData, acquired
    from rakijax.exports import check_kernels_fit

    s = make_sampling(32, 4, 8, 1)
    meta = {"sampling": s, "shape": (4, 32, 24)}
    k = np.zeros((4, 32, 24), complex)
    k[:, 1::4] = _rand((4, 8, 24))  # another repetition: regular lines only, no ACS
    d = KSpaceData(k, sampled=np.any(k != 0, axis=(0, 2)))
    with pytest.raises(ValueError, match="no contiguous ACS block"):
        acquired(d)
    a = acquired(d, require_acs=False)
    assert (a.sampling.R, a.sampling.offset, a.sampling.acs, a.acs_block.shape) == (4, 1, 0, (4, 0, 24))
    check_kernels_fit(meta, a.sampling, d.shape)
    with pytest.raises(ValueError, match=r"do not fit new\.h5: R 4 vs 2, offset 1 vs 0, coils 4 vs 3"):
        check_kernels_fit(meta, make_sampling(32, 2, 8, 0), (3, 32, 24), source="new.h5")
