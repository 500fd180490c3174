"""Outputs other tools read: NIfTI and BART images, reusable kernels, ACS reinsertion.

* :func:`write_nifti` -- magnitude images as NIfTI-1 (``nibabel``), with the voxel
  size from the file header when known;
* :func:`write_bart` -- complex images or coil k-space as a BART ``.cfl``/``.hdr`` pair;
* :func:`save_kernels` / :func:`load_kernels` -- trained GRAPPA/RAKI kernels and the
  configuration needed to re-apply them (``rakijax apply``), as ``.npz`` with a JSON
  ``meta`` (no pickle);
* :func:`reinsert_acs` -- put the acquired ACS lines back into a reconstructed k-space,
  as scanners do (DESIGN.md: on by default for accelerated input);
* :func:`recon_crop` -- centre-crop an image to the scanner's reconstruction matrix
  (e.g. fastMRI's 320x320 from a 640-sample oversampled readout).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

from .data.bart import write_cfl
from .sampling import Sampling
from .sampling import sampled_lines

__all__ = [
    "nifti_affine",
    "write_nifti",
    "write_bart",
    "save_kernels",
    "load_kernels",
    "check_kernels_fit",
    "reinsert_acs",
    "recon_crop",
    "KERNELS_FORMAT",
]

KERNELS_FORMAT = "rakijax-kernels/1"


# ----------------------------------------------------------------------------- NIfTI
def nifti_affine(shape_xyz, voxel_size=None) -> np.ndarray:
    """The affine :func:`write_nifti` uses for a NIfTI array of shape ``(Nx, Ny, Nz)``.

    Voxel ``(i, j, k)`` = (readout column, phase-encoding row, slice). World axes:
    ``i`` -> +x, ``j`` -> -y (row 0 of the image is the top row in a viewer that
    shows +y up, as in rakijax's PNG figures), ``k`` -> +z; orientation codes
    ``('R', 'P', 'S')``. The grid centre voxel ``(Nx//2, Ny//2, Nz//2)`` is at the
    world origin. This is an image frame, not the patient frame: the scanner's
    position and direction vectors are not used.

    Args:
        shape_xyz: ``(Nx, Ny, Nz)``.
        voxel_size: ``(dy, dx)`` or ``(dy, dx, dz)`` mm; default 1 mm.
    """
    dy, dx, dz = _voxel(voxel_size)
    nx, ny, nz = (int(n) for n in shape_xyz)
    A = np.diag([dx, -dy, dz, 1.0])
    A[:3, 3] = -A[:3, :3] @ np.array([nx // 2, ny // 2, nz // 2], float)
    return A


def _voxel(voxel_size) -> tuple[float, float, float]:
    if voxel_size is None:
        return 1.0, 1.0, 1.0
    v = [float(x) for x in np.ravel(voxel_size)]
    if len(v) not in (2, 3) or not all(np.isfinite(x) and x > 0 for x in v):
        raise ValueError(f"voxel_size must be 2 or 3 positive sizes in mm (dy, dx[, dz]), got {voxel_size!r}")
    return (v[0], v[1], v[2] if len(v) == 3 else 1.0)


def write_nifti(path, image, voxel_size=None) -> str:
    """Write the magnitude of ``image`` as NIfTI-1 (``.nii`` or ``.nii.gz``).

    Args:
        path: output file; ``.nii.gz`` is appended when it has no NIfTI extension.
        image: (Ny, Nx) or (S, Ny, Nx) image (``ky``/row axis -2, readout/column
            axis -1, slices first); complex values are written as ``|image|``.
        voxel_size: ``(dy, dx)`` or ``(dy, dx, dz)`` in mm (``KSpaceData.voxel_size``),
            default 1 mm; ``dz`` is the slice spacing.

    Returns:
        The file name written. The NIfTI array is ``(Nx, Ny, S)`` float32,
        ``data[i, j, s] = |image[s, j, i]|``, with :func:`nifti_affine` as sform and
        qform (code 2, aligned) and ``xyzt_units`` mm.

    Raises:
        ValueError: ``image`` not 2-D or 3-D, bad voxel size.
    """
    import nibabel as nib

    a = np.abs(np.asarray(image))
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"image must be (Ny, Nx) or (slices, Ny, Nx), got shape {np.shape(image)}")
    data = np.ascontiguousarray(np.transpose(a, (2, 1, 0)), dtype=np.float32)
    affine = nifti_affine(data.shape, voxel_size)
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code=2)
    img.set_qform(affine, code=2)
    img.header.set_xyzt_units("mm")
    p = os.fspath(path)
    if not (p.endswith(".nii") or p.endswith(".nii.gz")):
        p += ".nii.gz"
    nib.save(img, p)
    return p


# ----------------------------------------------------------------------------- BART
def write_bart(path, array, *, kind: str = "image") -> None:
    """Write an image or coil k-space in BART's dimension order (:func:`rakijax.data.write_cfl`).

    Args:
        path: BART base name (``.cfl``/``.hdr`` written).
        array: ``kind="image"``: (Ny, Nx) or (S, Ny, Nx); ``kind="kspace"``:
            (Nc, Ny, Nx) or (S, Nc, Ny, Nx).
        kind: ``"image"`` or ``"kspace"``.

    BART dimensions: 0 = readout (Nx), 1 = phase encoding (Ny), 3 = coils,
    13 = slices, as :func:`rakijax.data.load` reads them back.
    """
    a = np.asarray(array)
    if kind == "image":
        if a.ndim not in (2, 3):
            raise ValueError(f"a BART image must be (Ny, Nx) or (S, Ny, Nx), got shape {a.shape}")
        a = a[None] if a.ndim == 2 else a
        a = a[:, None]  # (S, 1 coil, Ny, Nx)
    elif kind == "kspace":
        if a.ndim not in (3, 4):
            raise ValueError(f"BART k-space must be (Nc, Ny, Nx) or (S, Nc, Ny, Nx), got shape {a.shape}")
        a = a[None] if a.ndim == 3 else a
    else:
        raise ValueError(f"kind must be 'image' or 'kspace', got {kind!r}")
    ns, nc, ny, nx = a.shape
    t = np.transpose(a, (3, 2, 1, 0))  # (Nx, Ny, Nc, S)
    dims = (nx, ny, 1, nc) + ((1,) * 9 + (ns,) if ns > 1 else ())
    write_cfl(path, t.reshape(dims))


# ----------------------------------------------------------------------------- kernels
def _jsonable(v, arrays: dict, name: str):
    """JSON form of ``v``; arrays go to ``arrays`` under ``name`` and are referenced."""
    if isinstance(v, Sampling):
        return {"__sampling__": dataclasses.asdict(v)}
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _jsonable(getattr(v, f.name), arrays, f"{name}.{f.name}") for f in dataclasses.fields(v)}
    if isinstance(v, dict):
        return {str(k): _jsonable(x, arrays, f"{name}.{k}") for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x, arrays, f"{name}.{i}") for i, x in enumerate(v)]
    if isinstance(v, (np.generic,)) and v.ndim == 0 and not np.iscomplexobj(v):
        return v.item()
    if hasattr(v, "shape") and hasattr(v, "dtype"):  # numpy / jax array
        arrays[f"meta/{name}"] = np.asarray(v)
        return {"__array__": f"meta/{name}"}
    if isinstance(v, complex):
        return {"__complex__": [v.real, v.imag]}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise ValueError(f"save_kernels: meta entry {name!r} of type {type(v).__name__} cannot be stored")


def _from_json(v, arrays):
    if isinstance(v, dict):
        if set(v) == {"__array__"}:
            return arrays[v["__array__"]]
        if set(v) == {"__sampling__"}:
            return Sampling(**v["__sampling__"])
        if set(v) == {"__complex__"}:
            return complex(*v["__complex__"])
        return {k: _from_json(x, arrays) for k, x in v.items()}
    if isinstance(v, list):
        return [_from_json(x, arrays) for x in v]
    return v


def _tree(obj, arrays: dict, path: str):
    """Structure of a nest of lists/tuples/dicts of arrays; leaves go to ``arrays``."""
    if isinstance(obj, (list, tuple)):
        return {"seq": "tuple" if isinstance(obj, tuple) else "list",
                "items": [_tree(x, arrays, f"{path}/{i}") for i, x in enumerate(obj)]}
    if isinstance(obj, dict):
        return {"dict": {str(k): _tree(x, arrays, f"{path}/{k}") for k, x in obj.items()}}
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        arrays[f"kernels{path}"] = np.asarray(obj)
        return {"leaf": f"kernels{path}"}
    raise ValueError(f"save_kernels: kernels{path} is a {type(obj).__name__}, not an array, list, tuple or dict")


def _untree(node, arrays):
    if "leaf" in node:
        return arrays[node["leaf"]]
    if "dict" in node:
        return {k: _untree(x, arrays) for k, x in node["dict"].items()}
    items = [_untree(x, arrays) for x in node["items"]]
    return tuple(items) if node["seq"] == "tuple" else items


def save_kernels(path, kernels, meta: dict[str, Any] | None = None) -> str:
    """Save trained kernels and what is needed to re-apply them (``rakijax apply``).

    Args:
        path: output file (``.npz`` appended when missing).
        kernels: an array, or a nest of lists/tuples/dicts of arrays (GRAPPA kernels,
            RAKI's per-layer complex kernels, or one such set per slice); stored
            exactly (dtype and values).
        meta: JSON-able description; by convention ``method``, ``slope``, ``R``,
            ``offset``, ``acs``, ``sampling`` (a :class:`~rakijax.sampling.Sampling`,
            restored as one), ``shape`` (Nc, Ny, Nx), ``whitening`` (the prewhitening
            matrix; arrays are stored beside the JSON), ``config`` (a dataclass is
            stored as its fields), ``version``.

    Returns:
        The file name written.

    Raises:
        ValueError: a leaf or meta entry that cannot be stored without pickle.
    """
    arrays: dict[str, np.ndarray] = {}
    structure = _tree(kernels, arrays, "")
    m = _jsonable(dict(meta or {}), arrays, "meta")
    doc = {"format": KERNELS_FORMAT, "structure": structure, "meta": m}
    p = os.fspath(path)
    if not p.endswith(".npz"):
        p += ".npz"
    np.savez(p, __json__=np.array(json.dumps(doc)), **arrays)
    return p


def load_kernels(path) -> tuple[Any, dict[str, Any]]:
    """Read what :func:`save_kernels` wrote: ``(kernels, meta)`` with the same structure and values.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a rakijax kernels file (names the file and what is missing).
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"no such kernels file: {p!r}")
    try:
        with np.load(p, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (ValueError, OSError) as e:
        raise ValueError(f"{p}: not a rakijax kernels file ({e})") from None
    if "__json__" not in arrays:
        raise ValueError(f"{p}: not a rakijax kernels file (no '__json__' entry)")
    doc = json.loads(str(arrays.pop("__json__")))
    if doc.get("format") != KERNELS_FORMAT:
        raise ValueError(f"{p}: kernels format {doc.get('format')!r}, this rakijax reads {KERNELS_FORMAT!r}")
    return _untree(doc["structure"], arrays), _from_json(doc["meta"], arrays)


def check_kernels_fit(meta: dict[str, Any], sampling: Sampling, shape, source: str = "input") -> None:
    """Check that saved kernels fit new data (``rakijax apply``) before applying them.

    The kernels act on the reduced grid, so the new data need the same coil count,
    readout length, ``Ny``, ``R`` and offset of the regular lines; the ACS width may
    differ (no calibration happens).

    Args:
        meta: the meta of :func:`load_kernels` (``sampling`` and ``shape`` entries).
        sampling: the new data's :class:`~rakijax.sampling.Sampling`
            (:func:`rakijax.data.acquired` with ``require_acs=False``).
        shape: the new data's ``(Nc, Ny, Nx)``.
        source: name of the new data for the message.

    Raises:
        ValueError: naming each quantity that differs, saved vs new.
    """
    saved = meta.get("sampling")
    if not isinstance(saved, Sampling):
        raise ValueError("the kernels file records no sampling; it cannot be checked against new data")
    bad = []
    for name, a, b in (("Ny", saved.ny, sampling.ny), ("R", saved.R, sampling.R), ("offset", saved.offset, sampling.offset)):
        if a != b:
            bad.append(f"{name} {a} vs {b}")
    old = meta.get("shape")
    if old is not None:
        for name, a, b in zip(("coils", "Ny", "Nx"), tuple(old), tuple(shape)):
            if int(a) != int(b) and name != "Ny":
                bad.append(f"{name} {a} vs {b}")
    if bad:
        raise ValueError(f"the saved kernels do not fit {source}: " + ", ".join(bad) + " (saved vs new)")


# ----------------------------------------------------------------------------- ACS / crop
def reinsert_acs(recon_kspace, acquired_kspace, sampling: Sampling, lines=None):
    """Put the acquired ACS lines back into a reconstructed k-space.

    ``out[..., y, :] = acquired[..., y, :]`` for ``y`` in ``sampling.acs_lines`` that
    were acquired, ``recon`` elsewhere (Griswold 2002: the measured calibration lines
    replace their estimates in the output, as scanners do).

    Args:
        recon_kspace: (..., Nc, Ny, Nx) reconstructed k-space (numpy or JAX).
        acquired_kspace: (..., Nc, Ny, Nx) acquired k-space on the same grid and in
            the same coil basis (zeros where not acquired).
        sampling: the :class:`~rakijax.sampling.Sampling`.
        lines: (Ny,) bool lines present in ``acquired_kspace``
            (:attr:`rakijax.data.Acquired.acquired_lines`); default: the lines not
            identically zero. A separate ACS reference scan is never reinserted.

    Returns:
        The k-space with the ACS lines replaced (same type as ``recon_kspace``).
    """
    r_shape, a_shape = tuple(np.shape(recon_kspace)), tuple(np.shape(acquired_kspace))
    if r_shape[-2:] != a_shape[-2:] or r_shape[-2] != sampling.ny:
        raise ValueError(
            f"reinsert_acs: recon {r_shape} and acquired {a_shape} k-space must share (Ny={sampling.ny}, Nx)"
        )
    have = sampled_lines(acquired_kspace) if lines is None else np.asarray(lines, bool)
    keep = np.zeros(sampling.ny, bool)
    if sampling.acs:
        keep[sampling.acs_lines] = True
    keep &= have
    if isinstance(recon_kspace, np.ndarray):
        return np.where(keep[:, None], acquired_kspace, recon_kspace)
    import jax.numpy as jnp

    return jnp.where(jnp.asarray(keep)[:, None], jnp.asarray(acquired_kspace), recon_kspace)


def recon_crop(image, recon_matrix):
    """Centre-crop (..., Ny, Nx) images to the reconstruction matrix ``(x, y[, z])`` of a header.

    Axes the matrix does not shrink are kept (no padding); the crop keeps the centre
    pixel ``N//2`` at ``M//2`` (the fastMRI ``center_crop`` convention).
    """
    if recon_matrix is None:
        return image
    rx, ry = int(recon_matrix[0]), int(recon_matrix[1])
    ny, nx = np.shape(image)[-2:]
    my, mx = min(ny, ry or ny), min(nx, rx or nx)
    y0, x0 = ny // 2 - my // 2, nx // 2 - mx // 2
    return image[..., y0 : y0 + my, x0 : x0 + mx]
