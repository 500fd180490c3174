"""File loaders: every format ends as one :class:`KSpaceData` in the ``(coil, ky, kx)`` layout.

Supported formats (chosen by the file extension) and their layouts:

* **ISMRMRD/MRD v1 HDF5** (``.h5``, ``.hdf5``, ``.mrd`` with an ISMRMRD dataset group):
  acquisitions with flags and line indices, noise readouts, embedded or separate ACS;
  see :mod:`rakijax.data.mrd`.
* **fastMRI multicoil HDF5** (``.h5``, ``.hdf5``): dataset ``kspace`` of shape
  ``(slices, coils, kx, ky)`` complex64, i.e. readout (frequency encoding, the
  oversampled ``height`` of 640 for brain data) *before* phase encoding (``width``).
  Slice ``slice`` is taken and transposed to ``(coils, ky, kx)``. A 3-D dataset
  ``(coils, kx, ky)`` is read as a single slice. The ``ismrmrd_header`` (padding
  columns, encoded and recon matrix, field of view) and ``mask`` are honoured, see
  :mod:`rakijax.data.fastmri`; ``reconstruction_rss`` is ignored. Default axes
  ``"scxy"`` (4-D) / ``"cxy"`` (3-D).
* **BART** (``.cfl``/``.hdr`` or the bare base name): dimensions 0 (readout, kx),
  1 (phase encoding, ky) and 3 (coils) become ``(coil, ky, kx)``; one further
  non-singleton dimension (e.g. 13, slices) may be indexed with ``slice``. See
  :mod:`rakijax.data.bart`.
* **NumPy** (``.npy``; ``.npz`` with array ``key``): default axes ``"cyx"`` (3-D) or
  ``"scyx"`` (4-D).
* **MATLAB** (``.mat``): v5 through ``scipy.io.loadmat``, v7.3 (HDF5) through
  ``h5py``; variable ``key``; complex v7.3 data are compound ``(real, imag)``.
  ``axes`` refers to the MATLAB dimension order (``size(k)``) for both versions
  (v7.3 arrays, stored column-major, are transposed back). Default ``"cyx"``.

**Accelerated data** (every format): k-space lines that are identically zero on the
full grid are lines not acquired; they fill ``KSpaceData.sampled`` and the pattern is
checked at load time (uniform with a contiguous ACS block, see
:func:`rakijax.sampling.detect_sampling`), so a bad file fails here with its name.
Zero lines only at the two ky edges (zero padding of a fully sampled scan) are not a
pattern: such data stay fully sampled (``meta['ky_zero_edges']``).

``axes`` is a string with one letter per array dimension: ``c`` coil, ``y`` phase
encoding (``ky``, the undersampled axis), ``x`` readout (``kx``), ``s`` slice
(indexed by ``slice``). ``c`` may be omitted for single-coil data.

A noise scan may be read from ``noise_key`` (HDF5/npz/mat dataset, or a second BART
file for ``.cfl``): any array with one axis of length ``Nc`` (the coil axis, the
first such axis); the other axes are samples. Its sample covariance becomes
``psi``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..noise import estimate_psi
from ..sampling import sampled_lines
from ..validate import as_complex
from .bart import read_cfl
from .container import KSpaceData
from .fastmri import read_fastmri_slice
from .mrd import is_mrd
from .mrd import mrd_num_slices
from .mrd import read_mrd
from .mrd import read_mrd_volume
from .mrd import scan

__all__ = ["load", "load_volume", "num_slices", "load_noise", "SUPPORTED_EXTENSIONS", "MissingKeyError", "apply_axes"]

SUPPORTED_EXTENSIONS = (".h5", ".hdf5", ".mrd", ".cfl", ".hdr", ".npy", ".npz", ".mat")


class MissingKeyError(KeyError, ValueError):
    """A dataset/variable is not in the file (a ``KeyError`` and a ``ValueError``)."""

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0]) if self.args else ""


def _missing(key, path, available) -> MissingKeyError:
    avail = ", ".join(repr(a) for a in sorted(available)) or "none"
    return MissingKeyError(f"no dataset/variable {key!r} in {os.fspath(path)!r}; available: {avail}")


def apply_axes(arr: np.ndarray, axes: str, *, slice: int = 0, what: str = "array") -> np.ndarray:
    """Reorder ``arr`` described by ``axes`` to ``(coil, ky, kx)``.

    Args:
        arr: the array as stored.
        axes: one letter per dimension of ``arr`` from ``c`` (coil), ``y`` (ky),
            ``x`` (kx), ``s`` (slice); ``y`` and ``x`` required, ``c`` and ``s`` optional,
            no letter twice.
        slice: index along ``s``.
        what: name of the array for messages.

    Returns:
        (Nc, Ny, Nx) array.

    Raises:
        ValueError: bad axes string, rank mismatch, slice out of range.
    """
    axes = str(axes).lower()
    bad = set(axes) - set("cyxs")
    if bad or len(set(axes)) != len(axes) or not {"y", "x"} <= set(axes):
        raise ValueError(
            f"axes must name each dimension once with letters c (coil), y (ky, phase encoding), x (kx, readout), "
            f"s (slice), including y and x; got {axes!r}"
        )
    if arr.ndim != len(axes):
        raise ValueError(
            f"{what} has shape {arr.shape} (rank {arr.ndim}) but axes {axes!r} describe rank {len(axes)}"
        )
    if "s" in axes:
        i = axes.index("s")
        ns = arr.shape[i]
        if not -ns <= slice < ns:
            raise ValueError(f"slice index {slice} out of range: {what} has {ns} slices (shape {arr.shape}, axes {axes!r})")
        arr = np.take(arr, slice, axis=i)
        axes = axes.replace("s", "")
    elif slice not in (0, -1):
        raise ValueError(f"slice index {slice} out of range: {what} of shape {arr.shape} (axes {axes!r}) has a single slice")
    if "c" not in axes:
        arr = arr[None]
        axes = "c" + axes
    return np.transpose(arr, [axes.index(a) for a in "cyx"])


def _noise_to_cs(noise: np.ndarray, nc: int, what: str) -> np.ndarray:
    noise = as_complex(np.asarray(noise), what)
    hits = [i for i, n in enumerate(noise.shape) if n == nc]
    if not hits:
        raise ValueError(f"noise scan {what} of shape {noise.shape} has no axis of length Nc={nc}")
    return np.moveaxis(noise, hits[0], 0).reshape(nc, -1)


# ---------------------------------------------------------------- readers
def _read_hdf5(path, key):
    import h5py

    with h5py.File(path, "r") as f:
        if key not in f:
            raise _missing(key, path, [k for k in f.keys() if isinstance(f[k], h5py.Dataset)])
        return f[key][()]


def _read_npz(path, key):
    with np.load(path, allow_pickle=False) as f:
        if key not in f.files:
            raise _missing(key, path, f.files)
        return f[key]


def _read_mat(path, key):
    """MATLAB variable ``key`` in MATLAB dimension order (v5 or v7.3)."""
    import scipy.io

    try:
        vars_ = scipy.io.loadmat(path)
    except NotImplementedError:  # v7.3 = HDF5
        import h5py

        with h5py.File(path, "r") as f:
            if key not in f:
                raise _missing(key, path, [k for k in f.keys() if not k.startswith("#")]) from None
            a = f[key][()]
        if a.dtype.names and {"real", "imag"} <= set(a.dtype.names):
            a = a["real"] + 1j * a["imag"]
        return np.transpose(a)  # HDF5 sees the column-major array with reversed dimensions
    except ValueError as e:
        raise ValueError(f"cannot read {os.fspath(path)!r} as a MATLAB file: {e}") from e
    names = [k for k in vars_ if not k.startswith("__")]
    if key not in names:
        raise _missing(key, path, names)
    return vars_[key]


def _bart_kspace(arr: np.ndarray, slice: int, path) -> np.ndarray:
    """BART dims (0 kx, 1 ky, 3 coil, one optional extra dim indexed by ``slice``) -> (c, y, x)."""
    dims = list(arr.shape) + [1] * max(0, 4 - arr.ndim)
    arr = arr.reshape(dims, order="A")
    extra = [i for i, n in enumerate(dims) if i not in (0, 1, 3) and n > 1]
    if len(extra) > 1:
        raise ValueError(
            f"BART file {os.fspath(path)!r} has dimensions {dims}: besides 0 (kx), 1 (ky) and 3 (coils) "
            f"only one further non-singleton dimension can be indexed by `slice`, found {extra}"
        )
    axes = ["x", "y"] + ["-"] * (len(dims) - 2)
    axes[3] = "c"
    if extra:
        axes[extra[0]] = "s"
    keep = [i for i, a in enumerate(axes) if a != "-"]
    arr = arr.reshape([dims[i] for i in keep])
    return apply_axes(arr, "".join(axes[i] for i in keep), slice=slice, what=f"BART array {dims}")


def _resolve(path) -> tuple[str, str]:
    """``(path, ext)`` with the format's extension; raises for a missing file or unknown format."""
    p = os.fspath(path)
    ext = os.path.splitext(p)[1].lower()
    if ext not in SUPPORTED_EXTENSIONS and not os.path.exists(p) and os.path.exists(p + ".cfl"):
        ext = ".cfl"  # BART base name
    if ext not in (".cfl", ".hdr") and not os.path.exists(p):
        raise FileNotFoundError(f"no such file: {p!r}")
    if ext not in SUPPORTED_EXTENSIONS:
        raise ValueError(
            f"unknown file format {ext or '(no extension)'!r} for {p!r}; supported: ISMRMRD/MRD and "
            f"fastMRI HDF5 (.h5, .hdf5, .mrd), BART (.cfl/.hdr), NumPy (.npy, .npz), MATLAB (.mat)"
        )
    if ext in (".h5", ".hdf5", ".mrd"):

        ext = ".mrd" if is_mrd(p) else ".h5"
    return p, ext


def _raw(p: str, ext: str, key: str, axes: str | None):
    """``(array, axes, fmt)`` as stored, with the format's default axes."""
    if ext == ".h5":
        arr = _read_hdf5(p, key)
        if axes is None:
            if arr.ndim not in (3, 4):
                raise ValueError(
                    f"fastMRI k-space {key!r} in {p!r} must be (slices, coils, kx, ky) or (coils, kx, ky), got shape {arr.shape}"
                )
            axes = "scxy" if arr.ndim == 4 else "cxy"
        return arr, axes, "hdf5"
    if ext in (".cfl", ".hdr"):
        return read_cfl(p), axes, "bart"
    if ext in (".npy", ".npz"):
        arr = np.load(p, allow_pickle=False) if ext == ".npy" else _read_npz(p, key)
        if axes is None:
            if arr.ndim not in (3, 4):
                raise ValueError(f"k-space in {p!r} must be (coil, ky, kx) or (slice, coil, ky, kx), got shape {arr.shape}; pass axes=")
            axes = "cyx" if arr.ndim == 3 else "scyx"
        return arr, axes, ext[1:]
    arr = np.asarray(_read_mat(p, key))
    if axes is None:
        if arr.ndim != 3:
            raise ValueError(f"variable {key!r} in {p!r} has shape {arr.shape}; pass axes= (e.g. 'xyc') for MATLAB data")
        axes = "cyx"
    return arr, axes, "mat"


def _bart_slices(arr: np.ndarray) -> int:
    dims = list(arr.shape) + [1] * max(0, 4 - arr.ndim)
    extra = [n for i, n in enumerate(dims) if i not in (0, 1, 3) and n > 1]
    return extra[0] if len(extra) == 1 else 1


def num_slices(path, *, key: str = "kspace", axes: str | None = None) -> int:
    """Number of slices :func:`load` can index in ``path`` (1 for single-slice data).

    Raises:
        FileNotFoundError, ValueError: as :func:`load`.
    """
    p, ext = _resolve(path)
    if ext == ".mrd":

        return mrd_num_slices(p)
    arr, axes, _ = _raw(p, ext, key, axes)
    if axes is None:  # BART default layout
        return _bart_slices(arr)
    axes = str(axes).lower()
    return int(arr.shape[axes.index("s")]) if "s" in axes and len(axes) == arr.ndim else 1


def load_volume(path, **kwargs) -> list[KSpaceData]:
    """All slices of ``path`` as a list of :class:`KSpaceData` (one per slice, ``slice_index`` set).

    Args:
        path: file name; ``kwargs`` as :func:`load` (``key``, ``axes``, ``noise_key``).
    """
    kwargs.pop("slice", None)
    p, ext = _resolve(path)
    if ext == ".mrd":

        return read_mrd_volume(p)
    return [load(p, slice=i, **kwargs) for i in range(num_slices(p, key=kwargs.get("key", "kspace"), axes=kwargs.get("axes")))]


def _pattern(k: np.ndarray, meta: dict) -> np.ndarray | None:
    """``sampled`` from the zero lines of ``k``; None when fully sampled (or only edge padding)."""
    m = sampled_lines(k)
    if m.all():
        return None
    lines = np.flatnonzero(m)
    if lines.size and np.all(m[lines[0] : lines[-1] + 1]):  # zero lines only at the two edges
        meta["ky_zero_edges"] = (int(lines[0]), int(m.size - 1 - lines[-1]))
        return None
    return m


def load(path, *, slice: int | str = 0, key: str = "kspace", axes: str | None = None, noise_key: str | None = None,
         require_acs: bool = True):
    """Load multi-coil k-space from a file as :class:`KSpaceData` ``(coil, ky, kx)``.

    The format is chosen by the extension and, for HDF5, the content (see the module
    docstring for the layouts): ``.h5``/``.hdf5``/``.mrd`` (ISMRMRD/MRD or fastMRI),
    ``.cfl``/``.hdr`` (BART), ``.npy``/``.npz``, ``.mat``. Fully sampled data load
    with ``sampled=None``; accelerated data (zero lines, a fastMRI ``mask``, ISMRMRD
    line indices) with ``sampled`` set and the pattern checked.

    Args:
        path: file name (a BART pair may be named without extension).
        slice: slice index for multi-slice data, or ``"all"`` for the list of every
            slice (:func:`load_volume`).
        key: dataset (HDF5), array (``.npz``) or variable (``.mat``) name (not ISMRMRD).
        axes: layout of the stored array, letters ``c y x s`` (see module docstring);
            default per format (not ISMRMRD).
        noise_key: optional dataset/variable (or BART file) with a noise-only scan; its
            sample covariance becomes ``psi`` (ISMRMRD files carry their own noise
            readouts).
        require_acs: False accepts an accelerated pattern without calibration lines
            (re-applying saved kernels to another repetition or time frame).

    Returns:
        :class:`KSpaceData` (a list of them for ``slice="all"``) with ``meta`` = source,
        format, key, slice, axes and header values.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unknown extension, wrong rank/axes, slice out of range, NaN/Inf,
            unreadable header, a noise scan with another coil count, an accelerated
            pattern that is not uniform, has no contiguous ACS block or contradicts the
            file's acceleration factor; the message names the file.
        MissingKeyError: (a ``KeyError`` and ``ValueError``) ``key`` not in the file,
            listing the available names.
    """
    if isinstance(slice, str):
        if slice.lower() != "all":
            raise ValueError(f"slice must be an integer or 'all', got {slice!r}")
        return load_volume(path, key=key, axes=axes, noise_key=noise_key)
    p, ext = _resolve(path)
    if ext == ".mrd":

        return read_mrd(p, slice=slice, require_acs=require_acs)
    meta: dict[str, Any] = {"source": os.path.abspath(p), "slice": int(slice)}
    arr, axes, fmt = _raw(p, ext, key, axes)
    noise = None
    sampled = voxel = None
    if fmt == "bart" and axes is None:
        k = _bart_kspace(arr, slice, p)
        axes = "bart"
    else:
        k = apply_axes(arr, axes, slice=slice, what=f"{'dataset' if fmt == 'hdf5' else 'array'} {key!r} of {p!r}")
    k = as_complex(np.ascontiguousarray(k), "k-space")
    if fmt == "hdf5":
        import h5py

        with h5py.File(p, "r") as f:
            k, sampled, voxel = read_fastmri_slice(p, k, f, meta)
        if noise_key is not None:
            noise = _read_hdf5(p, noise_key)
    else:
        sampled = _pattern(k, meta)
        if noise_key is not None:
            if fmt == "bart":
                nk = noise_key if os.path.isabs(noise_key) else os.path.join(os.path.dirname(p), noise_key)
                noise = read_cfl(nk)
            elif fmt == "npy":
                raise ValueError("noise_key needs a file with several arrays (.npz, .h5, .mat), not .npy")
            elif fmt == "npz":
                noise = _read_npz(p, noise_key)
            else:
                noise = _read_mat(p, noise_key)
    meta.update(format=fmt, key=key, axes=axes)
    psi = None
    if noise is not None:

        noise = _noise_to_cs(noise, k.shape[0], f"{noise_key!r} of {p!r}")
        psi = np.asarray(estimate_psi(noise))
        meta["noise_key"] = noise_key
        meta["psi_source"] = "noise scan"  # derived from `noise`: the pipeline tests that scan
    try:
        data = KSpaceData(
            kspace=k, noise=noise, psi=psi, meta=meta, sampled=sampled, slice_index=int(slice), voxel_size=voxel
        )
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None
    if data.accelerated:  # the pattern must be usable: fail here, naming the file
        R = meta.get("R_header")
        try:
            data.sampling(R=R, require_acs=require_acs)
        except ValueError as e:
            if R is not None and "disagrees" in str(e) and "R=" in str(e):
                raise ValueError(f"{e} (R from the file's acceleration attribute)") from None
            raise
    return data


def load_noise(path, ncoils: int | None = None, *, key: str = "noise") -> np.ndarray:
    """A separate noise scan as ``(Nc, S)`` samples (the CLI's ``--noise FILE``).

    ISMRMRD files give their ``ACQ_IS_NOISE_MEASUREMENT`` readouts; other formats the
    array ``key`` (``.npz``/``.h5``/``.mat``), the whole array (``.npy``) or the BART
    array, any layout with one axis of length ``ncoils`` (the first such axis; without
    ``ncoils`` the first axis is the coil axis).

    Raises:
        ValueError: no noise in the file, or no axis of length ``ncoils`` (naming both).
    """
    p, ext = _resolve(path)
    if ext == ".mrd":

        noise = scan(p)[1]
        if not noise:
            raise ValueError(f"{p}: no noise readouts (ACQ_IS_NOISE_MEASUREMENT) in the ISMRMRD file")
        nn = {n.shape[0] for n in noise}
        if len(nn) != 1:
            raise ValueError(f"{p}: noise readouts with different channel counts {sorted(nn)}")
        arr = np.concatenate(noise, axis=1)
    elif ext == ".h5":
        arr = _read_hdf5(p, key)
    elif ext in (".cfl", ".hdr"):
        arr = read_cfl(p)
    elif ext == ".npy":
        arr = np.load(p, allow_pickle=False)
    elif ext == ".npz":
        arr = _read_npz(p, key)
    else:
        arr = _read_mat(p, key)
    arr = np.asarray(arr)
    nc = int(ncoils) if ncoils is not None else int(arr.shape[0])
    try:
        return _noise_to_cs(arr, nc, repr(p))
    except ValueError as e:
        raise ValueError(f"{p}: {e} (the k-space has {nc} coils)") from None
