"""ISMRMRD/MRD v1 files: written here with the ``ismrmrd`` package, read with rakijax.

References: the arrays written (the phantom's k-space, the noise samples); the
sampling pattern built by the DESIGN.md convention; ``np.cov``-style sample covariance
for ``psi``; the retrospective split of the same samples.
"""

import h5py
import numpy as np
import pytest

ismrmrd = pytest.importorskip("ismrmrd")

from rakijax import grappa  # noqa: E402
from rakijax.data import KSpaceData, acquired, brain_phantom, load, load_noise, load_volume, num_slices, write_mrd  # noqa: E402
from rakijax.sampling import make_sampling  # noqa: E402

R, ACS, NY = 4, 8, 32
FOV = (220.0, 200.0, 5.0)  # (fy, fx, fz) mm


@pytest.fixture(scope="module")
def volume():
    """Three slices (coil, ky, kx) complex64 from the phantom, different per slice."""
    k = brain_phantom(NY, ncoils=4).kspace
    return np.stack([k, 0.5 * k * np.exp(1j * 0.3), np.roll(k, 1, axis=-1)]).astype(np.complex64)


@pytest.fixture(scope="module")
def noise():
    rng = np.random.default_rng(7)
    mix = np.eye(4) + 0.3 * rng.standard_normal((4, 4))
    w = rng.standard_normal((4, 600)) + 1j * rng.standard_normal((4, 600))
    return (mix @ w).astype(np.complex64)


@pytest.fixture(scope="module")
def mrd_file(tmp_path_factory, volume, noise):
    s = make_sampling(NY, R, ACS)
    f = tmp_path_factory.mktemp("mrd") / "r4.h5"
    write_mrd(f, volume, sampled=s.mask(), acs_lines=s.acs_lines, noise=noise, R=R, fov_mm=FOV)
    return f


def test_multislice_r4_file_with_noise_and_embedded_acs(mrd_file, volume, noise):
    s = make_sampling(NY, R, ACS)
    assert num_slices(mrd_file) == 3
    vol = load_volume(mrd_file)
    assert len(vol) == 3 and [d.slice_index for d in vol] == [0, 1, 2]
    cov = (noise - noise.mean(1, keepdims=True)) @ (noise - noise.mean(1, keepdims=True)).conj().T / (noise.shape[1] - 1)
    for i, d in enumerate(vol):
        assert d.accelerated and d.meta["format"] == "ismrmrd" and d.meta["R_header"] == R
        np.testing.assert_array_equal(d.sampled, s.mask())
        np.testing.assert_array_equal(d.kspace, volume[i] * s.mask()[:, None])
        np.testing.assert_array_equal(d.noise, noise)
        np.testing.assert_allclose(d.psi, cov, rtol=1e-5, atol=1e-6)
        assert d.voxel_size == pytest.approx((FOV[0] / NY, FOV[1] / NY, FOV[2]))
        assert d.meta["acs_flagged"] == ACS
        assert d.sampling() == s  # the flagged width
        # same arrays as the retrospective split of the same samples
        retro = acquired(KSpaceData(volume[i]), R=R, acs=ACS)
        acc = acquired(d)
        assert acc.mode == "accelerated" and acc.sampling == retro.sampling
        np.testing.assert_array_equal(acc.reduced, retro.reduced)
        np.testing.assert_array_equal(acc.acs_block, retro.acs_block)
    np.testing.assert_array_equal(load(mrd_file, slice=2).kspace, vol[2].kspace)
    assert [d.slice_index for d in load(mrd_file, slice="all")] == [0, 1, 2]
    with pytest.raises(ValueError, match="out of range"):
        load(mrd_file, slice=3)


def test_grappa_on_the_file_equals_the_retrospective_path(mrd_file, volume):
    d = load(mrd_file, slice=1)
    acc = acquired(d)
    retro = acquired(KSpaceData(volume[1]), R=R, acs=ACS)
    out = []
    for a in (acc, retro):
        kern = grappa.calibrate(a.acs_block, a.sampling)
        out.append(np.asarray(grappa.apply(kern, a.reduced, a.sampling)))
    np.testing.assert_array_equal(out[0], out[1])


def test_separate_reference_scan(tmp_path, volume):
    s = make_sampling(NY, R, ACS, 1)
    ref = (1.5 * volume[:, :, s.acs_lines]).astype(np.complex64)  # a different "contrast"
    f = tmp_path / "sep.h5"
    write_mrd(f, volume, sampled=s.mask(include_acs=False), acs_ref=ref, acs_ref_lines=s.acs_lines, R=R)
    d = load(f, slice=0)
    assert d.meta["calibration_mode"] == "separate"
    np.testing.assert_array_equal(d.acs_ref_lines, s.acs_lines)
    np.testing.assert_array_equal(d.acs_ref, ref[0])
    np.testing.assert_array_equal(d.sampled, s.mask(include_acs=False))
    a = acquired(d)
    assert a.sampling == s
    np.testing.assert_array_equal(a.acs_block, ref[0])
    assert not a.acquired_lines[s.acs_lines].all()  # the reference is not reinserted


def _acq(data, *, ky=0, flags=(), pre=0, post=0, centre=None, **idx):
    a = ismrmrd.Acquisition.from_array(np.ascontiguousarray(data, np.complex64))
    for fl in flags:
        a.set_flag(fl)
    a.idx.kspace_encode_step_1 = ky
    for k, v in idx.items():
        setattr(a.idx, k, v)
    a.discard_pre, a.discard_post = pre, post
    a.center_sample = data.shape[1] // 2 if centre is None else centre
    a.sample_time_us = 5.0
    return a


def _header(ny, nx, nc, R=None):
    import ismrmrd.xsd as X

    sp = X.encodingSpaceType(matrixSize=X.matrixSizeType(x=nx, y=ny, z=1), fieldOfView_mm=X.fieldOfViewMm(x=200, y=200, z=3))
    lim = X.encodingLimitsType(kspace_encoding_step_1=X.limitType(minimum=0, maximum=ny - 1, center=ny // 2))
    pi = None if R is None else X.parallelImagingType(accelerationFactor=X.accelerationFactorType(kspace_encoding_step_1=R, kspace_encoding_step_2=1))
    enc = X.encodingType(encodedSpace=sp, reconSpace=sp, encodingLimits=lim, trajectory=X.trajectoryType.CARTESIAN, parallelImaging=pi)
    h = X.ismrmrdHeader(experimentalConditions=X.experimentalConditionsType(H1resonanceFrequency_Hz=1), encoding=[enc],
                        acquisitionSystemInformation=X.acquisitionSystemInformationType(receiverChannels=nc))
    return X.ToXML(h)


def test_readout_reverse_discard_average_and_skipped_readouts(tmp_path, volume):
    k = volume[0][:, :16, :16]  # fully sampled, 16 lines
    f = tmp_path / "ro.h5"
    ds = ismrmrd.Dataset(str(f), "dataset", create_if_needed=True)
    ds.write_xml_header(_header(16, 16, 4))
    rng = np.random.default_rng(0)
    for y in range(16):
        line = k[:, y]
        if y % 2:  # reversed readout, with 2 + 3 samples to discard
            junk = rng.standard_normal((4, 5)).astype(np.complex64)
            stored = np.concatenate([junk[:, :2], line[:, ::-1], junk[:, 2:]], axis=1)
            ds.append_acquisition(_acq(stored, ky=y, flags=[ismrmrd.ACQ_IS_REVERSE], pre=2, post=3, centre=2 + 7))
        elif y == 4:  # two averages of one line
            ds.append_acquisition(_acq(line + 1, ky=y, average=0))
            ds.append_acquisition(_acq(line - 1, ky=y, average=1))
        else:
            ds.append_acquisition(_acq(line, ky=y))
    ds.append_acquisition(_acq(np.ones((4, 16)), ky=3, flags=[ismrmrd.ACQ_IS_NAVIGATION_DATA]))
    ds.append_acquisition(_acq(np.ones((4, 16)), ky=3, repetition=1))
    ds.close()
    d = load(f)
    assert not d.accelerated
    np.testing.assert_allclose(d.kspace, k, atol=1e-6)
    assert d.meta["skipped_acquisitions"] == 1 and d.meta["ignored_acquisitions"] == 1


def test_asymmetric_echo_is_zero_padded(tmp_path, volume):
    k = volume[0][:, :8, :16]
    f = tmp_path / "echo.h5"
    ds = ismrmrd.Dataset(str(f), "dataset", create_if_needed=True)
    ds.write_xml_header(_header(8, 16, 4))
    for y in range(8):
        ds.append_acquisition(_acq(k[:, y, 4:], ky=y, centre=4))  # first 4 samples not acquired
    ds.close()
    d = load(f)
    expected = k.copy()
    expected[..., :4] = 0
    np.testing.assert_array_equal(d.kspace, expected)


# ------------------------------------------------------------------ bad files: one clear ValueError naming the file
def test_noise_with_another_coil_count(tmp_path, volume):
    s = make_sampling(NY, R, ACS)
    f = tmp_path / "noise3.h5"
    write_mrd(f, volume[:1], sampled=s.mask(), acs_lines=s.acs_lines, noise=np.ones((3, 40), np.complex64), R=R)
    with pytest.raises(ValueError, match=r"noise scan has \[3\] channel\(s\) but the imaging data have 4") as e:
        load(f)
    assert str(f) in str(e.value)


@pytest.mark.parametrize("case,match", [
    ("R", r"R=2 disagrees with the data.*R=4.*accelerationFactor"),
    ("nonuniform", "not uniform"),
    ("noacs", "no contiguous ACS block"),
])
def test_bad_patterns(tmp_path, volume, case, match):
    s = make_sampling(NY, R, ACS)
    m, acs_lines, hdr_R = s.mask(), s.acs_lines, R
    if case == "R":
        hdr_R = 2
    elif case == "nonuniform":
        m = m.copy()
        m[[4, 5]] = [False, True]
    else:
        m, acs_lines = s.mask(include_acs=False), None
    f = tmp_path / f"{case}.h5"
    write_mrd(f, volume[:1], sampled=m, acs_lines=acs_lines, R=hdr_R)
    with pytest.raises(ValueError, match=match) as e:
        load(f)
    assert str(f) in str(e.value)


def test_unreadable_header_and_not_mrd(tmp_path, mrd_file, volume):
    f = tmp_path / "badxml.h5"
    write_mrd(f, volume[:1])
    with h5py.File(f, "r+") as h:
        del h["dataset/xml"]
        h["dataset/xml"] = np.array([b"<ismrmrdHeader><encoding>"], dtype=object)
    with pytest.raises(ValueError, match="unreadable ISMRMRD header") as e:
        load(f)
    assert str(f) in str(e.value)
    with h5py.File(f, "r+") as h:
        del h["dataset/xml"]
        h["dataset/xml"] = np.array([b"<ismrmrdHeader/>"], dtype=object)
    with pytest.raises(ValueError, match="unreadable ISMRMRD header.*no <encoding>"):
        load(f)


def test_load_noise(tmp_path, mrd_file, noise):
    np.testing.assert_array_equal(load_noise(mrd_file, 4), noise)
    np.save(tmp_path / "n.npy", noise.T)
    np.testing.assert_array_equal(load_noise(tmp_path / "n.npy", 4), noise)
    with pytest.raises(ValueError, match="no axis of length Nc=8"):
        load_noise(tmp_path / "n.npy", 8)


def test_stack_the_volume(mrd_file, volume):
    from rakijax.data import stack_acquired

    vol = stack_acquired([acquired(d) for d in load_volume(mrd_file)])
    s = make_sampling(NY, R, ACS)
    assert vol.sampling == s and vol.reduced.shape == (3, 4, NY // R, NY) and vol.acs_block.shape == (3, 4, ACS, NY)
    np.testing.assert_array_equal(vol.reduced, volume[:, :, s.offset :: R])
    retro = acquired(KSpaceData(volume[0]), R=R, acs=6)
    with pytest.raises(ValueError, match="slice 1 has"):
        stack_acquired([retro, acquired(load(mrd_file, slice=1))])


def test_noise_dwell_time_scaling(tmp_path, volume, noise):
    # noise variance per sample is proportional to the bandwidth 1/dwell: noise sampled with
    # twice the imaging dwell time has half the variance of imaging noise, so it is scaled by sqrt(2)
    f = tmp_path / "dwell.h5"
    write_mrd(f, volume[:1], noise=noise, dwell_us=5.0, noise_dwell_us=10.0)
    d = load(f)
    assert d.meta["noise_dwell_scale"] == pytest.approx(np.sqrt(2.0))
    np.testing.assert_allclose(d.noise, np.sqrt(2.0) * noise, rtol=1e-6)
