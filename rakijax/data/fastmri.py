"""fastMRI multi-coil HDF5 files: read (honouring the ISMRMRD header and the mask) and write.

Layout (Zbontar et al., arXiv 1811.08839; ``fastmri/data/mri_data.py``):

* ``kspace``: ``(slices, coils, kx, ky)`` complex64, readout (``height``, e.g. 640 with
  2x oversampling) before phase encoding (``width``); a 3-D ``(coils, kx, ky)`` dataset
  is one slice;
* ``ismrmrd_header``: the ISMRMRD XML header (:mod:`rakijax.data.header`). The acquired
  phase-encoding lines occupy columns ``[pad_left, pad_left + max + 1)`` of ``width``
  with ``pad_left = encodedSpace.y // 2 - kspace_encoding_step_1.center`` (fastMRI's own
  padding rule); the zero columns outside are padding. They are cropped here and the
  k-space centre placed on ``Ny//2`` (a roll, recorded as ``meta['ky_roll']``, only for
  an asymmetric encoding), so the grid is the encoded k-space;
* ``mask`` (challenge/test files): ``(width,)`` acquired columns; it becomes
  ``sampled`` (cropped like the k-space) and the k-space is zeroed where it is 0;
  without a mask the zero columns give the pattern;
* attributes ``acceleration`` and ``num_low_frequency`` (when present) are checked
  against the pattern (``meta['R_header']``, ``meta['acs_flagged']``);
* ``reconstruction_rss`` is not read; ``meta['recon_matrix']`` is the header's
  ``reconSpace`` matrix (x, y, z) for cropping images to the scanner's output size.

``voxel_size`` = encoded field of view / grid size, ``(dy, dx, dz)`` mm.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..sampling import sampled_lines
from .header import MRDHeader, parse_header

__all__ = ["fastmri_geometry", "write_fastmri"]


def fastmri_geometry(p: str, f, width: int) -> tuple[MRDHeader | None, tuple[int, int], int]:
    """``(header, (lo, hi), roll)``: the parsed header, the ky columns kept, the roll to centre them.

    Args:
        p: file name (for messages).
        f: the open ``h5py.File``.
        width: number of ky columns of the stored k-space.
    """
    if "ismrmrd_header" not in f:
        return None, (0, width), 0
    raw = f["ismrmrd_header"][()]
    if isinstance(raw, np.ndarray):
        raw = raw.tobytes() if raw.dtype.kind in "SV" else raw.item()
    hdr = parse_header(raw, source=p)
    if hdr.encoded_matrix is None or hdr.ky_limits is None or None in hdr.ky_limits[1:]:
        return hdr, (0, width), 0
    enc_y = hdr.encoded_matrix[1]
    _, mx, centre = hdr.ky_limits
    if enc_y != width:
        raise ValueError(
            f"{p}: the ISMRMRD header's encoded matrix has {enc_y} phase-encoding lines but "
            f"the k-space has {width} columns"
        )
    lo = enc_y // 2 - centre
    hi = lo + mx + 1
    if lo < 0 or hi > width or hi - lo < 2:
        raise ValueError(
            f"{p}: the ISMRMRD header's encoding limits (center {centre}, maximum {mx}) put the "
            f"acquired lines at columns {lo}..{hi - 1}, outside the {width} columns"
        )
    ny = hi - lo
    return hdr, (lo, hi), ny // 2 - centre


def read_fastmri_slice(p: str, arr: np.ndarray, f, meta: dict[str, Any]):
    """Crop/roll the (coil, ky, kx) slice ``arr`` by the header and apply the mask.

    Returns:
        ``(kspace, sampled or None, voxel_size or None)``; fills ``meta``.
    """
    width = arr.shape[1]
    hdr, (lo, hi), roll = fastmri_geometry(p, f, width)
    k = np.roll(arr[:, lo:hi], roll, axis=1)
    meta.update(ky_padding=(lo, width - hi), ky_roll=roll)
    if hdr is not None:
        meta.update(encoded_matrix=hdr.encoded_matrix, recon_matrix=hdr.recon_matrix, recon_fov_mm=hdr.recon_fov)
    if "acceleration" in f.attrs:
        meta["R_header"] = int(f.attrs["acceleration"])
    if "num_low_frequency" in f.attrs:
        meta["acs_flagged"] = int(f.attrs["num_low_frequency"])
    if "mask" in f:
        mask = np.asarray(f["mask"][()]).reshape(-1)
        if mask.shape != (width,):
            raise ValueError(f"{p}: mask has shape {mask.shape}, expected ({width},) (one entry per ky column)")
        m = np.roll(mask[lo:hi] != 0, roll)
        k = k * m[None, :, None]
        meta["mask"] = "file"
    else:
        m = sampled_lines(k)
    voxel = hdr.voxel_size(k.shape[1], k.shape[2]) if hdr is not None else None
    return k, (None if m.all() else m), voxel


def write_fastmri(path, kspace, *, mask=None, padding=(0, 0), fov_mm=(220.0, 440.0, 5.0), recon_matrix=None, attrs=None) -> None:
    """Write a fastMRI-layout file (for tests and examples).

    Args:
        path: output ``.h5`` file (overwritten).
        kspace: (S, Nc, Ny, Nx) k-space in the rakijax layout; stored as
            ``(S, Nc, Nx, Ny + pad_left + pad_right)`` with zero padding columns.
        mask: (Ny,) acquired lines (padded with zeros like the k-space), or None.
        padding: ``(pad_left, pad_right)`` zero ky columns.
        fov_mm: encoded field of view ``(fy, fx, fz)`` in mm (zero padding of
            k-space leaves it unchanged).
        recon_matrix: ``(x, y)`` reconstruction matrix (default ``(Nx // 2, Ny)``).
        attrs: file attributes (e.g. ``acceleration``, ``num_low_frequency``).
    """
    import h5py

    k = np.asarray(kspace)
    ns, nc, ny, nx = k.shape
    pl, pr = (int(v) for v in padding)
    width = ny + pl + pr
    # encoding limits so that fastMRI's rule gives pad_left = width//2 - centre = pl
    centre = width // 2 - pl
    if centre != ny // 2:
        raise ValueError(f"padding {padding} does not keep the k-space centre line {ny // 2} on column width//2={width // 2}")
    stored = np.zeros((ns, nc, nx, width), np.complex64)
    stored[..., pl : pl + ny] = np.swapaxes(k, -1, -2)
    fy, fx, fz = fov_mm
    rx, ry = recon_matrix if recon_matrix is not None else (nx // 2, ny)
    # padding adds k-space lines at the same spacing: the field of view is unchanged
    xml = f"""<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">
 <encoding>
  <encodedSpace><matrixSize><x>{nx}</x><y>{width}</y><z>1</z></matrixSize>
   <fieldOfView_mm><x>{fx}</x><y>{fy}</y><z>{fz}</z></fieldOfView_mm></encodedSpace>
  <reconSpace><matrixSize><x>{rx}</x><y>{ry}</y><z>1</z></matrixSize>
   <fieldOfView_mm><x>{fx / 2}</x><y>{fy}</y><z>{fz}</z></fieldOfView_mm></reconSpace>
  <encodingLimits>
   <kspace_encoding_step_1><minimum>0</minimum><maximum>{ny - 1}</maximum><center>{centre}</center></kspace_encoding_step_1>
   <slice><minimum>0</minimum><maximum>{ns - 1}</maximum><center>0</center></slice>
  </encodingLimits>
  <trajectory>cartesian</trajectory>
 </encoding>
</ismrmrdHeader>"""
    p = os.fspath(path)
    with h5py.File(p, "w") as h:
        h["kspace"] = stored
        h["ismrmrd_header"] = np.bytes_(xml.encode())
        if mask is not None:
            mm = np.zeros(width, np.float32)
            mm[pl : pl + ny] = np.asarray(mask, bool)
            h["mask"] = mm
        for a, v in (attrs or {}).items():
            h.attrs[a] = v
