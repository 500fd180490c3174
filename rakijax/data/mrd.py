"""ISMRMRD / MRD v1 HDF5 files (Cartesian 2-D, single or multi-slice): read and write.

Layout (ISMRMRD, Inati et al. MRM 2017): an HDF5 group (usually ``/dataset``) holding
``xml`` (the XML header, see :mod:`rakijax.data.header`) and ``data``, one record per
acquisition (one readout of all coils): a fixed header (``flags``, ``idx``
counters, ``number_of_samples``, ``active_channels``, ``center_sample``,
``discard_pre``/``discard_post``, ``sample_time_us``, ...) and the complex samples
``(channels, samples)``. Records are written through the ``ismrmrd`` package
(``ismrmrd.Dataset``, :func:`write_mrd`) and read in bulk with ``h5py`` (the same
layout, about 1000x faster than ``Dataset.read_acquisition``; reading needs no
``ismrmrd`` install); the header is parsed by :func:`parse_header`.

How acquisitions become :class:`KSpaceData` (one per slice, ``idx.slice``):

* ``ACQ_IS_NOISE_MEASUREMENT`` -> ``noise`` (Nc, S), all noise readouts side by side,
  scaled by ``sqrt(noise dwell / imaging dwell)`` so that their covariance is that of
  an imaging sample (``meta['noise_dwell_scale']``); its covariance becomes ``psi``;
* imaging readouts (no flag, or ``ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING``) are placed
  at ky = ``idx.kspace_encode_step_1 + Ny//2 - center`` on the encoded grid
  (``Ny`` = ``encodedSpace/matrixSize/y``, ``center`` from the encoding limits), so the
  k-space centre lands on ``Ny//2``; repeated readouts of one line (averages) are
  averaged; only repetition/contrast/phase/set 0 and encoding space 0 are read;
* ``ACQ_IS_PARALLEL_CALIBRATION`` only: with ``calibrationMode`` ``separate`` or
  ``external`` they form the separate ACS reference scan (``acs_ref``,
  ``acs_ref_lines``); otherwise (embedded, interleaved, unknown) they are acquired
  lines of the same scan and go onto the grid;
* the readout keeps ``discard_pre``/``discard_post`` out, is reversed for
  ``ACQ_IS_REVERSE``, and an asymmetric echo (``center_sample`` before the middle)
  is zero-padded at the start so the echo centre lands on ``Nx//2``;
* ``sampled`` = lines holding a readout; the pattern is checked against the header's
  acceleration factor (:func:`rakijax.sampling.detect_sampling`); ``meta['acs_flagged']``
  is the number of flagged calibration lines (the default ACS width);
* ``voxel_size`` = encoded field of view / grid size, ``(dy, dx, dz)`` mm.

Navigator, phase-correction, dummy-scan and feedback readouts are skipped.

Siemens TWIX (``.dat``) files are read by converting them to ISMRMRD first with
``siemens_to_ismrmrd -f meas.dat -o meas.h5`` (the converter sets the calibration and
noise flags this reader uses); rakijax has no TWIX reader of its own.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from typing import Any

import numpy as np

from ..noise import estimate_psi
from .container import KSpaceData
from .header import MRDHeader, parse_header

__all__ = ["is_mrd", "read_mrd", "read_mrd_volume", "mrd_num_slices", "write_mrd"]

log = logging.getLogger(__name__)

# ISMRMRD flag bit numbers (ismrmrd.constants); the mask is 1 << (bit - 1)
_NOISE, _CALIB, _CALIB_IMG, _REVERSE = 19, 20, 21, 22
_SKIP = (23, 24, 26, 27, 28, 29, 30, 31)  # navigation, phasecorr, feedback, dummy, coil correction, phase stabilisation


def _bit(flags: int, bit: int) -> bool:
    return bool(int(flags) & (1 << (bit - 1)))


def _group(path) -> str | None:
    """The HDF5 group holding an ISMRMRD dataset (``xml`` and ``data``), or None."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            names = ["dataset"] + sorted(k for k in f.keys() if k != "dataset")
            for g in names:
                if g in f and isinstance(f[g], h5py.Group) and "xml" in f[g] and "data" in f[g]:
                    return g
    except OSError:
        return None
    return None


def is_mrd(path) -> bool:
    """True when ``path`` is an HDF5 file with an ISMRMRD dataset group."""
    return _group(path) is not None


def scan(path):
    """Read all acquisitions: ``(header, noise_list, slices, info)``.

    The ``data`` table is read in one ``h5py`` call and decoded here (the MRD v1 record
    layout: ``head``, ``traj``, ``data`` = interleaved float32 re/im of
    ``(active_channels, number_of_samples)``); ``ismrmrd.Dataset.read_acquisition``
    reads each record twice, about 7 ms a readout (over a minute for a 10k-readout scan).
    """
    import h5py

    p = os.fspath(path)
    group = _group(p)
    if group is None:
        raise ValueError(f"{p}: not an ISMRMRD file (no HDF5 group with 'xml' and 'data')")
    with h5py.File(p, "r") as f:
        g = f[group]
        try:
            xml = g["xml"][0]
        except Exception as e:  # noqa: BLE001 - h5py raises various types
            raise ValueError(f"{p}: unreadable ISMRMRD header ({e})") from None
        try:
            recs = g["data"][()]
            head = recs["head"]
            flags, idx = head["flags"].astype(np.uint64), head["idx"]
        except (KeyError, ValueError, TypeError) as e:
            raise ValueError(f"{p}: the 'data' table is not in the ISMRMRD v1 acquisition layout ({e})") from None
    hdr = parse_header(xml, source=p)
    if hdr.encoded_matrix is None:
        raise ValueError(f"{p}: unreadable ISMRMRD header (no <encoding>/<encodedSpace>)")
    noise, slices = [], defaultdict(list)
    info: dict[str, Any] = {"skipped": 0, "other_index": 0, "acq_dwell_us": None, "noise_dwell_us": None}
    for i in range(recs.shape[0]):
        fl = int(flags[i])
        if any(_bit(fl, b) for b in _SKIP):
            info["skipped"] += 1
            continue
        h = head[i]
        nch, nsamp = int(h["active_channels"]), int(h["number_of_samples"])
        raw = np.asarray(recs["data"][i], np.float32)
        if raw.size != 2 * nch * nsamp:
            raise ValueError(
                f"{p}: acquisition {i} holds {raw.size // 2} complex samples, its header says "
                f"{nch} channels x {nsamp} samples"
            )
        data = raw.view(np.complex64).reshape(nch, nsamp)
        if _bit(fl, _NOISE):
            noise.append(data)
            info["noise_dwell_us"] = float(h["sample_time_us"]) or info["noise_dwell_us"]
            continue
        ix = idx[i]
        if int(h["encoding_space_ref"]) != 0 or any(int(ix[n]) for n in ("repetition", "contrast", "phase", "set")):
            info["other_index"] += 1
            continue
        if int(ix["kspace_encode_step_2"]) != 0:
            raise ValueError(
                f"{p}: acquisition {i} has kspace_encode_step_2={int(ix['kspace_encode_step_2'])}; "
                "only 2-D (single or multi-slice) Cartesian data are supported"
            )
        pre, post = int(h["discard_pre"]), int(h["discard_post"])
        data = data[:, pre : data.shape[1] - post]
        centre = int(h["center_sample"]) - pre
        if _bit(fl, _REVERSE):
            data = data[:, ::-1]
            centre = data.shape[1] - 1 - centre
        calib = _bit(fl, _CALIB) or _bit(fl, _CALIB_IMG)
        imaging = (not _bit(fl, _CALIB)) or _bit(fl, _CALIB_IMG)
        info["acq_dwell_us"] = float(h["sample_time_us"]) or info["acq_dwell_us"]
        slices[int(ix["slice"])].append((int(ix["kspace_encode_step_1"]), data, centre, calib, imaging))
    if not slices:
        raise ValueError(f"{p}: no imaging acquisitions (only {len(noise)} noise readouts)")
    return hdr, noise, slices, info


def _readout(data: np.ndarray, centre: int) -> np.ndarray:
    """Zero-pad an asymmetric echo at the start so the echo centre is at ``Nx//2``."""
    n = data.shape[1]
    if 0 < centre < n // 2:
        pad = n - 2 * centre
        return np.concatenate([np.zeros((data.shape[0], pad), data.dtype), data], axis=1)
    return data


def _slice_data(p, hdr: MRDHeader, noise, items, sl: int, info, require_acs: bool = True) -> KSpaceData:

    reads = [(ky, _readout(d, c), cal, img) for ky, d, c, cal, img in items]
    ncs = {d.shape[0] for _, d, _, _ in reads}
    nxs = {d.shape[1] for _, d, _, _ in reads}
    if len(ncs) != 1 or len(nxs) != 1:
        raise ValueError(f"{p}: slice {sl} mixes readouts of {sorted(ncs)} channels and {sorted(nxs)} samples")
    nc, nx = ncs.pop(), nxs.pop()
    ny = int(hdr.encoded_matrix[1] or 0)
    lims = hdr.ky_limits or (None, None, None)
    if not ny:
        ny = max(ky for ky, *_ in reads) + 1
    centre = lims[2] if lims[2] is not None else ny // 2
    shift = ny // 2 - int(centre)
    separate = hdr.calibration_mode in ("separate", "external")

    k = np.zeros((nc, ny, nx), np.complex64)
    cnt = np.zeros(ny, int)
    ref: dict[int, list] = defaultdict(list)
    calib_lines: set[int] = set()
    for ky, d, cal, img in reads:
        y = ky + shift
        if not 0 <= y < ny:
            raise ValueError(
                f"{p}: line kspace_encode_step_1={ky} lies outside the encoded matrix of {ny} lines "
                f"(k-space centre {centre})"
            )
        if img:
            k[:, y] += d
            cnt[y] += 1
            if cal:
                calib_lines.add(y)
        elif separate:
            ref[y].append(d)
        else:
            ref[y].append(d)  # embedded calibration-only line: onto the grid below
            calib_lines.add(y)
    if not separate:
        for y, ds in ref.items():
            if cnt[y] == 0:
                k[:, y] = np.mean(ds, axis=0)
                cnt[y] = 1
        ref = {}
    got = cnt > 0
    k[:, got] /= cnt[got][None, :, None]
    acs_ref = acs_ref_lines = None
    if ref:
        lines = np.array(sorted(ref))
        acs_ref = np.stack([np.mean(ref[y], axis=0) for y in lines], axis=1)
        acs_ref_lines = lines
    noise_arr = psi = None
    meta: dict[str, Any] = {
        "source": os.path.abspath(p), "format": "ismrmrd", "slice": sl,
        "encoded_matrix": hdr.encoded_matrix, "recon_matrix": hdr.recon_matrix,
        "recon_fov_mm": hdr.recon_fov, "R_header": hdr.R, "calibration_mode": hdr.calibration_mode,
        "acs_flagged": len(calib_lines) if not separate else (0 if acs_ref is None else len(acs_ref_lines)),
        "ky_shift": shift, "skipped_acquisitions": info["skipped"], "ignored_acquisitions": info["other_index"],
    }
    if noise:
        nn = {n.shape[0] for n in noise}
        if nn != {nc}:
            raise ValueError(
                f"{p}: the noise scan has {sorted(nn)} channel(s) but the imaging data have {nc}"
            )
        noise_arr = np.concatenate(noise, axis=1).astype(np.complex128)
        scale = 1.0
        if info["noise_dwell_us"] and info["acq_dwell_us"]:
            scale = float(np.sqrt(info["noise_dwell_us"] / info["acq_dwell_us"]))
            noise_arr = noise_arr * scale
        meta["noise_dwell_scale"] = scale
        meta["noise_bandwidth"] = hdr.noise_bandwidth
        psi = np.asarray(estimate_psi(noise_arr))
        meta["psi_source"] = "noise scan"  # derived from `noise`: the pipeline tests that scan
    sampled = None if got.all() else got
    try:
        data = KSpaceData(
            kspace=k, noise=noise_arr, psi=psi, meta=meta, sampled=sampled, acs_ref=acs_ref,
            acs_ref_lines=acs_ref_lines, slice_index=sl, voxel_size=hdr.voxel_size(ny, nx),
        )
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None
    if data.accelerated:  # fail here, naming the file, on a pattern no method can use
        acs = meta["acs_flagged"] or None
        try:
            data.sampling(R=hdr.R, acs=acs, require_acs=require_acs)
        except ValueError as e:
            if hdr.R is not None and "R=" in str(e) and "disagrees" in str(e):
                raise ValueError(f"{e} (R from the header's accelerationFactor)") from None
            raise
    return data


def mrd_num_slices(path) -> int:
    """Number of slices with imaging data in an ISMRMRD file."""
    return len(scan(path)[2])


def read_mrd_volume(path) -> list[KSpaceData]:
    """All slices of an ISMRMRD file, in ascending ``idx.slice`` order (see the module docstring)."""
    p = os.fspath(path)
    hdr, noise, slices, info = scan(p)
    return [_slice_data(p, hdr, noise, slices[s], s, info) for s in sorted(slices)]


def read_mrd(path, slice: int = 0, *, require_acs: bool = True) -> KSpaceData:
    """Slice number ``slice`` (position in ascending ``idx.slice`` order; negative counts from the end).

    ``require_acs=False`` accepts an accelerated slice without calibration lines (re-applying kernels)."""
    p = os.fspath(path)
    hdr, noise, slices, info = scan(p)
    order = sorted(slices)
    if not -len(order) <= slice < len(order):
        raise ValueError(f"slice index {slice} out of range: {p!r} has {len(order)} slice(s)")
    s = order[slice]
    return _slice_data(p, hdr, noise, slices[s], s, info, require_acs)


# ----------------------------------------------------------------------------- writer
def write_mrd(
    path,
    kspace,
    *,
    sampled=None,
    acs_lines=None,
    acs_ref=None,
    acs_ref_lines=None,
    noise=None,
    R: int | None = None,
    fov_mm=(220.0, 220.0, 5.0),
    dwell_us: float = 5.0,
    noise_dwell_us: float | None = None,
    noise_readouts: int = 4,
) -> None:
    """Write Cartesian k-space as an ISMRMRD/MRD v1 HDF5 file (the layout :func:`read_mrd` reads).

    Args:
        path: output file (overwritten).
        kspace: (S, Nc, Ny, Nx) or (Nc, Ny, Nx) k-space on the full grid.
        sampled: (Ny,) bool, the ky lines to write (default: all).
        acs_lines: ky lines flagged as calibration: those in ``sampled`` get
            ``ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING``, the others
            ``ACQ_IS_PARALLEL_CALIBRATION`` (embedded mode).
        acs_ref: (S, Nc, A, Nx) or (Nc, A, Nx) separate reference scan written as
            ``ACQ_IS_PARALLEL_CALIBRATION`` readouts at ``acs_ref_lines``, with
            ``calibrationMode`` ``separate``.
        acs_ref_lines: (A,) ky lines of ``acs_ref``.
        noise: (Nc', S) noise samples, written first as ``noise_readouts`` readouts
            flagged ``ACQ_IS_NOISE_MEASUREMENT``.
        R: header ``accelerationFactor`` (omitted when None).
        fov_mm: encoded field of view ``(fy, fx, fz)`` in mm.
        dwell_us: imaging ``sample_time_us``; ``noise_dwell_us`` that of the noise
            readouts (default the same).
    """
    import ismrmrd
    import ismrmrd.xsd as X

    k = np.asarray(kspace)
    if k.ndim == 3:
        k = k[None]
    if k.ndim != 4:
        raise ValueError(f"kspace must be (S, Nc, Ny, Nx) or (Nc, Ny, Nx), got shape {np.shape(kspace)}")
    ns, nc, ny, nx = k.shape
    m = np.ones(ny, bool) if sampled is None else np.asarray(sampled, bool)
    calib = set() if acs_lines is None else {int(v) for v in np.ravel(acs_lines)}
    ref = None
    if acs_ref is not None:
        ref = np.asarray(acs_ref)
        ref = ref[None] if ref.ndim == 3 else ref
        ref = np.broadcast_to(ref, (ns,) + ref.shape[1:])
    fy, fx, fz = (float(v) for v in fov_mm)

    def space(n):
        return X.encodingSpaceType(
            matrixSize=X.matrixSizeType(x=nx, y=n, z=1), fieldOfView_mm=X.fieldOfViewMm(x=fx, y=fy, z=fz)
        )

    lim = X.encodingLimitsType(
        kspace_encoding_step_0=X.limitType(minimum=0, maximum=nx - 1, center=nx // 2),
        kspace_encoding_step_1=X.limitType(minimum=0, maximum=ny - 1, center=ny // 2),
        kspace_encoding_step_2=X.limitType(minimum=0, maximum=0, center=0),
        slice=X.limitType(minimum=0, maximum=ns - 1, center=ns // 2),
    )
    pi = None
    if R is not None or calib or ref is not None:
        pi = X.parallelImagingType(
            accelerationFactor=X.accelerationFactorType(kspace_encoding_step_1=int(R or 1), kspace_encoding_step_2=1),
            calibrationMode=X.calibrationModeType.SEPARATE if ref is not None else X.calibrationModeType.EMBEDDED,
        )
    enc = X.encodingType(
        encodedSpace=space(ny), reconSpace=space(ny), encodingLimits=lim,
        trajectory=X.trajectoryType.CARTESIAN, parallelImaging=pi,
    )
    hdr = X.ismrmrdHeader(
        experimentalConditions=X.experimentalConditionsType(H1resonanceFrequency_Hz=63_500_000),
        encoding=[enc],
        acquisitionSystemInformation=X.acquisitionSystemInformationType(receiverChannels=nc),
    )
    p = os.fspath(path)
    if os.path.exists(p):
        os.remove(p)
    ds = ismrmrd.Dataset(p, "dataset", create_if_needed=True)
    try:
        ds.write_xml_header(X.ToXML(hdr))
        counter = 0

        def put(data, flags=(), ky=0, sl=0, dwell=dwell_us):
            nonlocal counter
            a = ismrmrd.Acquisition.from_array(np.ascontiguousarray(data, np.complex64))
            for fl in flags:
                a.set_flag(fl)
            a.idx.kspace_encode_step_1 = int(ky)
            a.idx.slice = int(sl)
            a.center_sample = data.shape[1] // 2
            a.sample_time_us = float(dwell)
            a.scan_counter = counter
            counter += 1
            ds.append_acquisition(a)

        if noise is not None:
            nz = np.asarray(noise)
            for chunk in np.array_split(nz, max(1, int(noise_readouts)), axis=1):
                put(chunk, [ismrmrd.ACQ_IS_NOISE_MEASUREMENT], dwell=noise_dwell_us or dwell_us)
        for s in range(ns):
            if ref is not None:
                for j, y in enumerate(np.asarray(acs_ref_lines)):
                    put(ref[s][:, j], [ismrmrd.ACQ_IS_PARALLEL_CALIBRATION], ky=y, sl=s)
            for y in range(ny):
                if m[y]:
                    fl = [ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING] if y in calib else []
                    put(k[s, :, y], fl, ky=y, sl=s)
                elif y in calib:
                    put(k[s, :, y], [ismrmrd.ACQ_IS_PARALLEL_CALIBRATION], ky=y, sl=s)
    finally:
        ds.close()
