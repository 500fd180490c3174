"""Checks at the public boundaries, shared by every module (a leaf: imports only numpy and Sampling).

Each check raises ``ValueError`` with a message that names the array, the problem and the
shapes involved; code behind a boundary may assume validated input (STYLE.md 7).

* :func:`as_complex`, :func:`check_finite` - numeric arrays;
* :func:`validate_psi` - a noise covariance (square, Hermitian, PSD, finite);
* :func:`check_kernels` - a GRAPPA/RAKI kernel chain ``(cout, cin, kh, kw)`` for a given R;
* :func:`check_reduced` - a reduced grid ``(Nc, Y, X)`` against the kernels and sampling.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .sampling import Sampling

__all__ = ["as_complex", "check_finite", "validate_psi", "check_kernels", "check_reduced", "check_sampling",
           "check_slope", "is_concrete"]


def is_concrete(x) -> bool:
    """False for a JAX tracer (inside ``jit``/``vmap``): value checks run on concrete input only."""
    return not type(x).__name__.endswith("Tracer")


def check_sampling(sampling) -> Sampling:
    """``sampling`` if it is a :class:`~rakijax.sampling.Sampling` (the one way R enters the API).

    Raises:
        TypeError: anything else (e.g. an int R), saying how to build one.
    """
    if not isinstance(sampling, Sampling):
        raise TypeError(
            f"sampling must be a rakijax.sampling.Sampling (R enters through it), got {type(sampling).__name__}: "
            "build one with rakijax.sampling.make_sampling(ny, R, acs)"
        )
    return sampling


def check_slope(slope) -> None:
    """Refuse a negative slope outside ``[0, 1]`` or not a scalar (concrete values only).

    Raises:
        ValueError: naming the value.
    """
    if is_concrete(slope):
        a = np.asarray(slope)
        if a.ndim != 0 or not np.isfinite(a) or not 0.0 <= float(a) <= 1.0:
            raise ValueError(f"slope must be a scalar in [0, 1] (1 = linear network), got {slope!r}")


def as_complex(x, name: str = "array") -> np.ndarray:
    """``x`` as a complex numpy array (real input is promoted, complex dtype kept).

    Raises:
        ValueError: non-numeric dtype.
    """
    x = np.asarray(x)
    if np.iscomplexobj(x):
        return x
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {x.dtype}")
    return x.astype(np.complex64 if x.dtype in (np.float16, np.float32) else np.complex128)


def check_finite(x, name: str = "k-space") -> None:
    """Raise ``ValueError`` naming how many entries of ``x`` are NaN/Inf and where.

    Args:
        x: any numeric array.
        name: what ``x`` is, for the message.

    Raises:
        ValueError: ``x`` holds NaN or Inf values.
    """
    x = np.asarray(x)
    bad = ~np.isfinite(x)
    if bad.any():
        idx = np.argwhere(bad)
        n = len(idx)
        first = ", ".join(str(tuple(int(i) for i in row)) for row in idx[:5])
        more = f" (and {n - 5} more)" if n > 5 else ""
        raise ValueError(
            f"{name} of shape {x.shape} contains {n} non-finite value(s) (NaN/Inf) at index {first}{more}"
        )


def validate_psi(psi, nc: int | None = None, *, rtol: float = 1e-6) -> np.ndarray:
    """Check a noise covariance: square (Nc, Nc), finite, Hermitian, PSD (within ``rtol``).

    Args:
        psi: candidate covariance.
        nc: expected number of coils (checked when given).
        rtol: tolerance relative to the largest eigenvalue / entry for symmetry and
            negative eigenvalues (round-off of an estimated covariance).

    Returns:
        ``psi`` as a complex numpy array.

    Raises:
        ValueError: not square, wrong size, NaN/Inf, not Hermitian, negative eigenvalue.
    """
    p = as_complex(psi, "psi")
    if p.ndim != 2 or p.shape[0] != p.shape[1]:
        raise ValueError(f"noise covariance psi must be a square (Nc, Nc) matrix, got shape {p.shape}")
    if nc is not None and p.shape[0] != nc:
        raise ValueError(f"noise covariance psi has shape {p.shape} but the data have Nc={nc} coils")
    check_finite(p, "psi")
    scale = max(np.abs(p).max(), np.finfo(float).tiny)
    asym = np.abs(p - p.conj().T).max()
    tol = max(rtol, 10 * np.finfo(p.real.dtype).eps)
    if asym > tol * scale:
        raise ValueError(f"noise covariance psi is not Hermitian: max |psi - psi^H| = {asym:.3g} (scale {scale:.3g})")
    ev = np.linalg.eigvalsh(0.5 * (p + p.conj().T))
    if ev[0] < -tol * max(ev[-1], 0):
        raise ValueError(f"noise covariance psi is not positive semi-definite: smallest eigenvalue {ev[0]:.3g}")
    return p


def _shapes(kernels) -> list[tuple[int, ...]]:
    return [tuple(int(n) for n in np.shape(w)) for w in kernels]


def check_kernels(kernels: Sequence, R: int | None = None) -> None:
    """Check a kernel chain: each ``(cout, cin, kh, kw)``, consecutive layers connect, and
    (with ``R``) the last layer predicts the ``(R - 1) * Nc`` missing lines of ``Nc`` coils.

    Raises:
        ValueError: empty list, wrong rank, a broken chain, or wrong output count; the
            message lists every kernel shape.
    """
    shapes = _shapes(kernels)
    if not shapes:
        raise ValueError("need at least one kernel, got an empty kernel list")
    if any(len(s) != 4 for s in shapes):
        raise ValueError(f"kernels must be (cout, cin, kh, kw), got shapes {shapes}")
    for l in range(1, len(shapes)):
        if shapes[l][1] != shapes[l - 1][0]:
            raise ValueError(
                f"kernel chain does not connect: kernel {l} {shapes[l]} does not take the "
                f"{shapes[l - 1][0]} outputs of kernel {l - 1} (shapes {shapes})"
            )
    if R is not None:
        nc = shapes[0][1]
        if shapes[-1][0] != (R - 1) * nc:
            raise ValueError(
                f"the last kernel {shapes[-1]} has {shapes[-1][0]} outputs; (R-1)*Nc = {(R - 1) * nc} expected "
                f"at R={R}, Nc={nc} (shapes {shapes})"
            )


def check_reduced(kernels: Sequence | None, reduced, sampling=None, *, batch: bool = False) -> None:
    """Check a reduced grid ``(Nc, Y, X)`` (the acquired lines only) against a kernel chain
    and, when given, a :class:`~rakijax.sampling.Sampling` (``Y`` = its acquired lines,
    and the last kernel predicts the ``(R - 1) * Nc`` missing lines).

    Args:
        kernels: the kernel chain ``[(cout, cin, kh, kw), ...]``, or ``None`` to check the
            grid against the sampling only (``R = 1``: nothing to predict).
        reduced: the reduced-grid k-space (only its shape is read, so tracers work).
        sampling: optional sampling pattern.
        batch: accept leading batch axes ``(..., Nc, Y, X)``.

    Raises:
        ValueError: wrong rank, coil count or row count, naming the shapes.
    """
    if kernels is not None:
        check_kernels(kernels, None if sampling is None else sampling.R)
    shape = tuple(np.shape(reduced))
    if len(shape) != 3 and not (batch and len(shape) > 3):
        want = "(..., Nc, Y, X)" if batch else "(Nc, Y, X)"
        raise ValueError(f"reduced k-space must be {want}, got shape {shape}")
    if sampling is not None and shape[-2] != sampling.num_reduced:
        raise ValueError(
            f"reduced k-space {shape} has {shape[-2]} rows but the sampling (Ny={sampling.ny}, R={sampling.R}, "
            f"offset={sampling.offset}) has {sampling.num_reduced} acquired lines"
        )
    if kernels is not None:
        cin = _shapes(kernels)[0][1]
        if shape[-3] != cin:
            raise ValueError(f"reduced k-space {shape} has {shape[-3]} coils but the first kernel expects {cin}")
