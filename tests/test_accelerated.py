"""Accelerated (prospectively undersampled) input: pattern detection, the container, the loaders.

References: the patterns are built by hand from the DESIGN.md convention (lines
``offset + m*R``, a block of ``acs`` lines starting at ``Ny//2 - acs//2``), not from
``Sampling.mask``; the arrays the loaders return are compared with the arrays written.
"""

import numpy as np
import pytest
import scipy.io

from rakijax.data import KSpaceData, acquired, brain_phantom, load, load_volume, num_slices, write_cfl
from rakijax.sampling import Sampling, detect_sampling, make_sampling, sampled_lines, undersample


def _pattern(ny, R, acs, offset):
    m = np.zeros(ny, bool)
    m[offset::R] = True
    s = ny // 2 - acs // 2
    m[s : s + acs] = True
    return m


@pytest.fixture(scope="module")
def phantom():
    return brain_phantom(32, ncoils=4)


# ------------------------------------------------------------------ detect_sampling
@pytest.mark.parametrize("ny,R,acs,offset", [(32, 4, 6, 0), (32, 4, 7, 2), (33, 3, 7, 1), (31, 2, 6, 1),
                                             (48, 4, 10, 1), (40, 5, 12, 3), (64, 3, 5, 0), (32, 4, 8, 0),
                                             (224, 4, 24, 0), (320, 8, 32, 0), (35, 2, 10, 1)])
def test_detect_recovers_R_offset_and_the_sampled_lines(ny, R, acs, offset):
    m = _pattern(ny, R, acs, offset)
    s = detect_sampling(m)
    assert (s.ny, s.R, s.offset, s.acs_shift) == (ny, R, offset, 0)
    # regular lines next to the block make the width ambiguous by one line; the detected
    # block is the even width (exact for the usual even ACS), and covers every acquired line
    assert s.acs == acs if acs % 2 == 0 else abs(s.acs - acs) <= 1
    np.testing.assert_array_equal(s.mask(include_acs=True), m)
    # with the user's acs the detected block is exactly the user's
    s2 = detect_sampling(m, R=R, acs=acs)
    assert s2 == make_sampling(ny, R, acs, offset)
    assert list(s2.acs_lines) == list(range(ny // 2 - acs // 2, ny // 2 - acs // 2 + acs))


def test_detect_accepts_a_smaller_centred_acs_and_the_default_offset_is_unchanged():
    m = _pattern(32, 4, 12, 0)
    assert detect_sampling(m, acs=6).acs == 6
    s = make_sampling(32, 4, 8)  # today's default: centred block, acs_shift 0
    assert s.acs_shift == 0 and s.acs_start == 12 and s == Sampling(32, 4, 8, 0)


def test_detect_off_centre_block_keeps_its_place():
    m = np.zeros(64, bool)
    m[0::4] = True
    m[6:11] = True  # off-centre ACS: lines 6..10 (5 and 11 are not acquired)
    s = detect_sampling(m)
    assert s.acs == 5 and list(s.acs_lines) == list(range(6, 11)) and s.acs_shift == 6 - (32 - 2)
    np.testing.assert_array_equal(s.mask(), m)
    assert detect_sampling(m, acs=5) == s  # the whole block, given by the user, is accepted


def test_detect_separate_reference_lines():
    m = np.zeros(32, bool)
    m[1::4] = True  # offset 1, no embedded block
    s = detect_sampling(m, acs_lines=np.arange(12, 20))
    assert (s.R, s.offset, s.acs, s.acs_shift) == (4, 1, 8, 0)
    with pytest.raises(ValueError, match="not contiguous"):
        detect_sampling(m, acs_lines=[12, 13, 15])


def test_detect_fully_sampled_is_retrospective():
    m = np.ones(24, bool)
    assert detect_sampling(m, R=2, acs=8) == make_sampling(24, 2, 8)
    with pytest.raises(ValueError, match="fully sampled.*R and acs"):
        detect_sampling(m)


@pytest.mark.parametrize("kind,match", [
    ("nonuniform", "not uniform"),
    ("missing", r"not uniform.*lines 8 "),
    ("noacs", "no contiguous ACS block"),
    ("twoblocks", "more than one contiguous block"),
    ("R", "R=2 disagrees with the data.*R=4"),
    ("acs", "acs=14 disagrees with the data"),
])
def test_detect_errors(kind, match):
    m = _pattern(32, 4, 8, 0)
    kw = {}
    if kind == "nonuniform":
        m[[1, 2]] = True
        m[[0]] = False
    elif kind == "missing":
        m[8] = False
    elif kind == "noacs":
        m = np.zeros(32, bool)
        m[::4] = True
    elif kind == "twoblocks":
        m = np.zeros(32, bool)
        m[::4] = True
        m[1:4] = True
        m[17:20] = True
    elif kind == "R":
        kw = {"R": 2}
    elif kind == "acs":
        kw = {"acs": 14}
    with pytest.raises(ValueError, match=match):
        detect_sampling(m, **kw)


def test_sampled_lines():
    k = np.zeros((2, 5, 3), complex)
    k[1, 1, 2] = 1e-30
    k[0, 3, 0] = 1j
    np.testing.assert_array_equal(sampled_lines(k), [False, True, False, True, False])
    np.testing.assert_array_equal(sampled_lines(np.stack([k, k[:, ::-1]])), [False, True, False, True, False])


# ------------------------------------------------------------------ container and acquired()
def test_container_accelerated_fields(phantom):
    s = make_sampling(32, 4, 8)
    zf = phantom.kspace * s.mask()[:, None]
    d = KSpaceData(zf, sampled=s.mask(), slice_index=3, voxel_size=[2, 1.5, 4])
    assert d.accelerated and d.slice_index == 3 and d.voxel_size == (2.0, 1.5, 4.0)
    assert d.sampling() == s  # grid line 20 joins the block 12..19: run of 9, even width 8
    assert d.sampling(acs=9) == make_sampling(32, 4, 9)
    assert not KSpaceData(phantom.kspace, sampled=np.ones(32, bool)).accelerated
    with pytest.raises(ValueError, match="non-zero on 18 ky line"):
        KSpaceData(phantom.kspace, sampled=s.mask())
    with pytest.raises(ValueError, match=r"sampled must be a \(Ny=32,\)"):
        KSpaceData(zf, sampled=s.mask()[:-1])
    with pytest.raises(ValueError, match="give both"):
        KSpaceData(zf, acs_ref=zf[:, 12:20])
    with pytest.raises(ValueError, match=r"acs_ref must have shape \(Nc=4, A, Nx=32\)"):
        KSpaceData(zf, acs_ref=zf[:2, 12:20], acs_ref_lines=np.arange(12, 20))
    with pytest.raises(ValueError, match="contiguous"):
        KSpaceData(zf, acs_ref=zf[:, 12:15], acs_ref_lines=np.array([12, 13, 15]))
    with pytest.raises(ValueError, match="voxel_size"):
        KSpaceData(zf, voxel_size=(1.0, -2.0))


@pytest.mark.parametrize("R,acs,offset", [(4, 8, 0), (3, 7, 1), (2, 10, 1)])
def test_acquired_accelerated_equals_retrospective_on_the_same_samples(phantom, R, acs, offset):
    full = phantom.kspace
    s = make_sampling(32, R, acs, offset)
    retro = acquired(phantom, R=R, acs=acs, offset=offset)
    zf, red, blk = undersample(full, s)  # the retrospective reference, by the documented convention
    np.testing.assert_array_equal(retro.reduced, red)
    np.testing.assert_array_equal(retro.acs_block, blk)
    acc_data = KSpaceData(full * s.mask()[:, None], sampled=s.mask())
    acc = acquired(acc_data, acs=acs)
    assert acc.mode == "accelerated" and retro.mode == "retrospective" and acc.reference is None
    assert acc.sampling == retro.sampling
    np.testing.assert_array_equal(acc.reduced, retro.reduced)
    np.testing.assert_array_equal(acc.acs_block, retro.acs_block)
    np.testing.assert_array_equal(acc.kspace, retro.kspace)
    np.testing.assert_array_equal(acc.acquired_lines, retro.acquired_lines)
    with pytest.raises(ValueError, match="offset=.* disagrees"):
        acquired(acc_data, offset=(offset + 1) % R)
    with pytest.raises(ValueError, match="retrospective mode needs R and acs"):
        acquired(phantom)


def test_acquired_separate_reference(phantom):
    s = make_sampling(32, 4, 8, 1)
    imaging = s.mask(include_acs=False)
    ref_lines = s.acs_lines
    d = KSpaceData(phantom.kspace * imaging[:, None], sampled=imaging,
                   acs_ref=2.0 * phantom.kspace[:, ref_lines], acs_ref_lines=ref_lines)
    a = acquired(d)
    assert a.sampling == s
    np.testing.assert_array_equal(a.acs_block, 2.0 * phantom.kspace[:, 12:20])
    np.testing.assert_array_equal(a.acquired_lines, imaging)  # the reference is never reinserted
    a6 = acquired(d, acs=6)
    np.testing.assert_array_equal(a6.acs_block, 2.0 * phantom.kspace[:, 13:19])


# ------------------------------------------------------------------ loaders of zero-filled files
def _zero_filled(phantom, R=4, acs=8):
    s = make_sampling(32, R, acs)
    return s, (phantom.kspace * s.mask()[:, None]).astype(np.complex64)


def test_npy_npz_mat_cfl_zero_lines_become_sampled(tmp_path, phantom):
    s, k = _zero_filled(phantom)
    np.save(tmp_path / "acc.npy", k)
    np.savez(tmp_path / "acc.npz", kspace=k)
    scipy.io.savemat(tmp_path / "acc.mat", {"kspace": k})
    write_cfl(tmp_path / "acc", np.transpose(k, (2, 1, 0))[:, :, None, :])  # BART (kx, ky, 1, coil)
    for name in ("acc.npy", "acc.npz", "acc.mat", "acc.cfl"):
        d = load(tmp_path / name)
        np.testing.assert_array_equal(d.sampled, s.mask(), err_msg=name)
        np.testing.assert_array_equal(d.kspace, k, err_msg=name)
        assert d.accelerated and d.sampling(R=4, acs=8) == s


def test_multislice_npy_volume(tmp_path, phantom):
    s, k = _zero_filled(phantom)
    vol = np.stack([k, 2 * k, 3 * k])
    np.save(tmp_path / "vol.npy", vol)
    assert num_slices(tmp_path / "vol.npy") == 3
    ds = load_volume(tmp_path / "vol.npy")
    assert [d.slice_index for d in ds] == [0, 1, 2]
    for i, d in enumerate(ds):
        np.testing.assert_array_equal(d.kspace, vol[i])
    assert [d.slice_index for d in load(tmp_path / "vol.npy", slice="all")] == [0, 1, 2]
    with pytest.raises(ValueError, match="integer or 'all'"):
        load(tmp_path / "vol.npy", slice="some")


def test_zero_padding_at_the_edges_stays_fully_sampled(tmp_path, phantom):
    k = phantom.kspace.copy()
    k[:, :3] = 0
    k[:, -2:] = 0
    np.save(tmp_path / "pad.npy", k)
    d = load(tmp_path / "pad.npy")
    assert not d.accelerated and d.meta["ky_zero_edges"] == (3, 2)


@pytest.mark.parametrize("kind,match", [
    ("nonuniform", "not uniform"),
    ("noacs", "no contiguous ACS block"),
])
def test_bad_zero_filled_files_name_the_file(tmp_path, phantom, kind, match):
    s, k = _zero_filled(phantom)
    if kind == "nonuniform":
        k[:, 4] = 0
        k[:, 5] = phantom.kspace[:, 5]
    else:
        k = k * make_sampling(32, 4, 0).mask()[:, None]
    f = tmp_path / f"{kind}.npy"
    np.save(f, k)
    with pytest.raises(ValueError, match=match) as e:
        load(f)
    assert str(f) in str(e.value)


def test_grappa_on_zero_filled_files_equals_the_retrospective_path(tmp_path, phantom):
    from rakijax import grappa

    s, k = _zero_filled(phantom, R=4, acs=10)
    np.save(tmp_path / "acc.npy", k)
    write_cfl(tmp_path / "acc", np.transpose(k, (2, 1, 0))[:, :, None, :])
    retro = acquired(KSpaceData(phantom.kspace.astype(np.complex64)), R=4, acs=10)  # fully sampled
    ref = np.asarray(grappa.apply(grappa.calibrate(retro.acs_block, retro.sampling), retro.reduced, retro.sampling))
    for name in ("acc.npy", "acc.cfl"):
        a = acquired(load(tmp_path / name), R=4, acs=10)
        out = np.asarray(grappa.apply(grappa.calibrate(a.acs_block, a.sampling), a.reduced, a.sampling))
        np.testing.assert_array_equal(out, ref, err_msg=name)


def test_montecarlo_with_reinserted_acs_compiles_once_and_equals_a_closure(phantom):
    """The reinsertion pseudo-replicas trace the kernels and rows: a second slice (new kernels,
    same shapes) reuses the compiled program, and the variance equals the same replicas of a
    plain closure over the output as written (an independent construction)."""
    import jax
    import jax.numpy as jnp

    from rakijax.fft import ifft2c
    from rakijax.gfactor import reference as ref_mod
    from rakijax.pipeline import ReconConfig, apply, gfactor, prepare
    from rakijax.methods import method_for

    s = make_sampling(32, 4, 8, 0)
    data = KSpaceData(phantom.kspace * s.mask()[:, None], sampled=s.mask(), psi=phantom.psi)
    cfg = ReconConfig(method="grappa", R=4, acs=8, gfactor="montecarlo", replicas=40, mc_chunk=20, seed=0)
    prep = prepare(data, cfg)
    method = method_for(cfg)
    k1 = method.calibrate(prep.acs_block, prep.sampling, key=jax.random.PRNGKey(0)).kernels
    k2 = [w * (1 + 0.1j) for w in k1]
    rec1, rec2 = (apply(prep, method, k, reinsert_acs=True) for k in (k1, k2))
    assert rec1.reinserted_acs
    g1 = gfactor(prep, method, k1, rec1, cfg)
    n = ref_mod._moments._cache_size()
    g2 = gfactor(prep, method, k2, rec2, cfg)
    assert ref_mod._moments._cache_size() == n  # same shapes: no new compilation
    assert not np.allclose(np.asarray(g1.g), np.asarray(g2.g))
    # reference: a closure over the second kernels (its own compilation), same key and noise
    rows = np.flatnonzero(np.isin(np.arange(32), s.acs_lines) & np.asarray(prep.acquired_lines, bool)
                          & ~s.mask(include_acs=False))
    Y = prep.reduced.shape[1]

    def output(v):
        k = method.apply(k2, v[:, :Y], s)
        return ifft2c(k.at[:, rows, :].set(v[:, Y:]))

    v0 = jnp.concatenate([prep.reduced, prep.zero_filled[:, rows]], axis=1)
    psi_w = jnp.asarray(prep.psi_work, prep.reduced.dtype)
    var = ref_mod.pseudo_replica_variance(output, v0, psi=psi_w, p=rec2.p_work, key=jax.random.PRNGKey(cfg.seed + 1),
                                          replicas=40, chunk=20)
    from rakijax.gfactor import gfactor_from_variance

    np.testing.assert_allclose(np.asarray(g2.g), np.asarray(gfactor_from_variance(var, rec2.p_work, psi_w, s.R)),
                               rtol=1e-5, atol=1e-6)
