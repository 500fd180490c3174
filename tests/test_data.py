"""KSpaceData validation and the file loaders (tiny files written here; reference = the arrays written)."""

import dataclasses
import os

import h5py
import numpy as np
import pytest
import scipy.io

from rakijax.data import KSpaceData, load, read_cfl, write_cfl
from rakijax.data.loaders import MissingKeyError


def _rand(shape, seed=0, dtype=np.complex64):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


# ------------------------------------------------------------------ container
def test_container_basics_and_rss():
    k = _rand((3, 6, 5), dtype=np.complex128)
    d = KSpaceData(k, meta={"a": 1})
    assert d.shape == (3, 6, 5) and d.ncoils == 3
    # reference RSS with numpy's FFT and the documented centring, independent of rakijax.fft
    x = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    np.testing.assert_allclose(d.rss(), np.sqrt((np.abs(x) ** 2).sum(0)), rtol=1e-12)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.kspace = k
    d2 = d.with_(support=np.ones((6, 5), bool))
    assert d2.support.dtype == bool and d.support is None
    r = KSpaceData(np.ones((2, 3, 4), np.float32))  # real input is promoted
    assert r.kspace.dtype == np.complex64


def test_container_validation_errors():
    k = _rand((2, 4, 4))
    with pytest.raises(ValueError, match=r"rank 3.*\(4, 4\)"):
        KSpaceData(k[0])
    bad = k.copy()
    bad[1, 2, 3] = np.nan
    bad[0, 0, 1] = np.inf
    with pytest.raises(ValueError, match=r"2 non-finite.*\(0, 0, 1\)"):
        KSpaceData(bad)
    with pytest.raises(ValueError, match="square"):
        KSpaceData(k, psi=np.eye(2)[:, :1])
    with pytest.raises(ValueError, match="Nc=2"):
        KSpaceData(k, psi=np.eye(3))
    with pytest.raises(ValueError, match="Hermitian"):
        KSpaceData(k, psi=np.array([[1, 0.5], [0, 1]]))
    with pytest.raises(ValueError, match="positive semi-definite"):
        KSpaceData(k, psi=np.array([[1, 2], [2, 1]]))
    with pytest.raises(ValueError, match="maps"):
        KSpaceData(k, maps=k[:, :3])
    with pytest.raises(ValueError, match="support"):
        KSpaceData(k, support=np.ones((4, 5), bool))
    with pytest.raises(ValueError, match="noise"):
        KSpaceData(k, noise=np.ones((3, 10)))


# ------------------------------------------------------------------ fastMRI HDF5
def test_fastmri_hdf5_4d_and_3d(tmp_path):
    arr = _rand((3, 2, 5, 4))  # (slices, coils, kx, ky) as fastMRI stores it
    f = tmp_path / "file_brain.h5"
    with h5py.File(f, "w") as h:
        h["kspace"] = arr
        h["ismrmrd_header"] = np.bytes_(b"<xml/>")
    d = load(f, slice=1)
    expected = np.empty((2, 4, 5), np.complex64)  # (coil, ky, kx), transposed by hand
    for c in range(2):
        for y in range(4):
            for x in range(5):
                expected[c, y, x] = arr[1, c, x, y]
    assert d.shape == (2, 4, 5)
    np.testing.assert_array_equal(d.kspace, expected)
    assert d.meta["format"] == "hdf5" and d.meta["slice"] == 1
    np.testing.assert_array_equal(load(f, slice=-1).kspace, arr[2].transpose(0, 2, 1))

    f3 = tmp_path / "single.h5"
    with h5py.File(f3, "w") as h:
        h["kspace"] = arr[0]
    np.testing.assert_array_equal(load(f3).kspace, arr[0].transpose(0, 2, 1))


def test_hdf5_errors(tmp_path):
    f = tmp_path / "a.h5"
    with h5py.File(f, "w") as h:
        h["data"] = _rand((2, 2, 5, 4))
        h["flat"] = np.ones((4, 4))
        h["bad"] = np.full((1, 2, 3, 3), np.nan)
    with pytest.raises(KeyError, match=r"'kspace'.*available: 'bad', 'data', 'flat'"):
        load(f)
    with pytest.raises(ValueError, match="slice index 2 out of range.*2 slices"):
        load(f, key="data", slice=2)
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        load(f, key="flat")
    with pytest.raises(ValueError, match="18 non-finite"):
        load(f, key="bad")
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        load(tmp_path / "missing.h5")
    bogus = tmp_path / "x.txt"
    bogus.write_text("hi")
    with pytest.raises(ValueError, match=r"unknown file format '\.txt'.*\.cfl.*\.npz.*\.mat"):
        load(bogus)
    assert issubclass(MissingKeyError, ValueError)


# ------------------------------------------------------------------ BART
def test_cfl_roundtrip_and_column_major(tmp_path):
    a = _rand((5, 4, 1, 3))
    base = str(tmp_path / "ks")
    write_cfl(base, a)
    assert open(base + ".hdr").read().splitlines()[1].split() == ["5", "4", "1", "3"]
    raw = np.fromfile(base + ".cfl", dtype="<c8")
    # column-major: dimension 0 runs fastest
    assert raw[0] == a[0, 0, 0, 0] and raw[1] == a[1, 0, 0, 0] and raw[5] == a[0, 1, 0, 0] and raw[20] == a[0, 0, 0, 1]
    b = read_cfl(base + ".cfl")
    np.testing.assert_array_equal(b, a)
    d = load(base + ".cfl")
    expected = np.empty((3, 4, 5), np.complex64)
    for c in range(3):
        for y in range(4):
            for x in range(5):
                expected[c, y, x] = a[x, y, 0, c]  # BART dims (0 kx, 1 ky, 3 coil)
    np.testing.assert_array_equal(d.kspace, expected)
    np.testing.assert_array_equal(load(base).kspace, expected)  # bare base name


def test_cfl_slice_dimension_and_errors(tmp_path):
    a = _rand((5, 4, 1, 2) + (1,) * 9 + (3,))  # dim 13 = slices
    base = str(tmp_path / "ms")
    write_cfl(base, a)
    np.testing.assert_array_equal(load(base + ".hdr", slice=2).kspace, a[..., 2].reshape(5, 4, 2).transpose(2, 1, 0))
    with pytest.raises(ValueError, match="out of range"):
        load(base + ".cfl", slice=3)
    with pytest.raises(FileNotFoundError, match="nothere.cfl"):
        load(tmp_path / "nothere.cfl")
    with open(base + ".hdr", "w") as f:
        f.write("# Dimensions\n5 4 1 3\n")
    with pytest.raises(ValueError, match="need 60"):
        read_cfl(base)


# ------------------------------------------------------------------ NumPy
def test_npy_npz_axes_and_noise(tmp_path):
    k = _rand((6, 4, 3), seed=1)  # stored as (ky, kx, coil): axes "yxc"
    np.save(tmp_path / "k.npy", k)
    d = load(tmp_path / "k.npy", axes="yxc")
    for c in range(3):
        np.testing.assert_array_equal(d.kspace[c], k[:, :, c])
    noise = _rand((3, 500), seed=2).astype(np.complex128)
    np.savez(tmp_path / "k.npz", raw=k.transpose(2, 0, 1), noise=noise)
    d = load(tmp_path / "k.npz", key="raw", noise_key="noise")
    np.testing.assert_array_equal(d.kspace, k.transpose(2, 0, 1))
    np.testing.assert_allclose(d.psi, np.cov(noise), rtol=1e-5)  # float32-level estimate vs numpy's
    with pytest.raises(KeyError, match=r"'kspace'.*'noise', 'raw'"):
        load(tmp_path / "k.npz")
    with pytest.raises(ValueError, match="rank 3"):
        load(tmp_path / "k.npy", axes="yx")
    with pytest.raises(ValueError, match="axes must name"):
        load(tmp_path / "k.npy", axes="yxz")
    np.save(tmp_path / "flat.npy", k[:, :, 0])
    with pytest.raises(ValueError, match="pass axes"):
        load(tmp_path / "flat.npy")
    single = load(tmp_path / "flat.npy", axes="yx")  # single coil
    assert single.shape == (1, 6, 4)


# ------------------------------------------------------------------ MATLAB
def test_mat_v5(tmp_path):
    k = _rand((5, 4, 3), seed=3)  # MATLAB size (kx, ky, coil)
    scipy.io.savemat(tmp_path / "k.mat", {"raw": k})
    d = load(tmp_path / "k.mat", key="raw", axes="xyc")
    for c in range(3):
        np.testing.assert_array_equal(d.kspace[c], k[:, :, c].T)
    with pytest.raises(KeyError, match=r"'kspace'.*available: 'raw'"):
        load(tmp_path / "k.mat", axes="xyc")


def _write_mat73(path, name, arr):
    """A MATLAB v7.3 file as MATLAB writes it: HDF5 with a 512-byte user block, column-major, compound complex."""
    ct = np.dtype([("real", "<f8"), ("imag", "<f8")])
    data = np.empty(arr.shape[::-1], ct)
    data["real"] = arr.real.T
    data["imag"] = arr.imag.T
    with h5py.File(path, "w", userblock_size=512) as h:
        h[name] = data
    head = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Fri Nov 27 00:00:00 2026 HDF5 schema 1.00 ."
    head = head.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as f:
        f.write(head)


def test_mat_v73(tmp_path):
    k = _rand((5, 4, 3), seed=4).astype(np.complex128)
    f = tmp_path / "k73.mat"
    _write_mat73(f, "kdata", k)
    d = load(f, key="kdata", axes="xyc")
    expected = np.empty((3, 4, 5), complex)
    for c in range(3):
        for y in range(4):
            for x in range(5):
                expected[c, y, x] = k[x, y, c]
    np.testing.assert_array_equal(d.kspace, expected)
    with pytest.raises(KeyError, match="'nope'.*'kdata'"):
        load(f, key="nope", axes="xyc")
