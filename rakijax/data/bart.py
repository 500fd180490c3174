"""BART ``.cfl``/``.hdr`` files (read and write).

Format (Uecker et al., BART toolbox): ``name.hdr`` is text, a comment line
``# Dimensions`` followed by one line of integer dimensions; ``name.cfl`` holds the
raw data as little-endian complex64 (interleaved float32 real, imag) in
**column-major** (Fortran) order, i.e. dimension 0 varies fastest.

BART's dimension meaning (``misc/mri.h``): 0 readout (kx), 1 phase encoding 1
(ky), 2 phase encoding 2 (kz), 3 coils, 4 sensitivity maps, 5 echo, ...,
13 slice. :func:`rakijax.data.load` maps ``(0, 1, 3)`` to the canonical
``(coil, ky, kx)`` layout.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["read_cfl", "write_cfl", "cfl_base"]


def cfl_base(path) -> str:
    """The base name of a BART file pair: ``'a/b.cfl'``, ``'a/b.hdr'`` or ``'a/b'`` -> ``'a/b'``."""
    p = os.fspath(path)
    root, ext = os.path.splitext(p)
    return root if ext.lower() in (".cfl", ".hdr") else p


def _read_dims(hdr: str) -> list[int]:
    with open(hdr) as f:
        lines = [ln.strip() for ln in f]
    for i, ln in enumerate(lines):
        if ln.startswith("# Dimensions"):
            for nxt in lines[i + 1 :]:
                if nxt and not nxt.startswith("#"):
                    try:
                        return [int(v) for v in nxt.split()]
                    except ValueError as e:
                        raise ValueError(f"malformed BART header {hdr!r}: dimensions line {nxt!r}") from e
    raise ValueError(f"malformed BART header {hdr!r}: no '# Dimensions' line")


def read_cfl(path, *, squeeze_trailing: bool = True) -> np.ndarray:
    """Read a BART ``.cfl``/``.hdr`` pair.

    Args:
        path: ``name``, ``name.cfl`` or ``name.hdr``.
        squeeze_trailing: drop trailing singleton dimensions (as BART's ``readcfl.py``).

    Returns:
        complex64 array with the BART dimension order (dimension 0 first).

    Raises:
        FileNotFoundError: the ``.hdr`` or ``.cfl`` file is missing.
        ValueError: malformed header or a data size that does not match it.
    """
    base = cfl_base(path)
    hdr, cfl = base + ".hdr", base + ".cfl"
    for f in (hdr, cfl):
        if not os.path.exists(f):
            raise FileNotFoundError(f"BART file not found: {f!r} (a BART array needs both {hdr!r} and {cfl!r})")
    dims = _read_dims(hdr)
    if not dims or min(dims) < 0:
        raise ValueError(f"malformed BART header {hdr!r}: dimensions {dims}")
    n = int(np.prod(dims))
    data = np.fromfile(cfl, dtype="<c8")
    if data.size != n:
        raise ValueError(
            f"BART data {cfl!r} holds {data.size} complex values but the header dimensions {dims} need {n}"
        )
    if squeeze_trailing:
        while len(dims) > 1 and dims[-1] == 1:
            dims = dims[:-1]
    return data.reshape(dims, order="F").astype(np.complex64, copy=False)


def write_cfl(path, array) -> None:
    """Write ``array`` as a BART ``.cfl``/``.hdr`` pair (complex64, column-major).

    Args:
        path: ``name``, ``name.cfl`` or ``name.hdr``; both files are written.
        array: any numeric array; its axis ``i`` becomes BART dimension ``i``
            (e.g. a (kx, ky, 1, coil) array for k-space).
    """
    base = cfl_base(path)
    a = np.asarray(array)
    if a.dtype.kind not in "biufc":
        raise ValueError(f"cannot write dtype {a.dtype} to a BART file")
    dims = list(a.shape) or [1]
    with open(base + ".hdr", "w") as f:
        f.write("# Dimensions\n")
        f.write(" ".join(str(d) for d in dims) + "\n")
    np.asarray(a, dtype="<c8").reshape(-1, order="F").tofile(base + ".cfl")
