"""The one multi-coil k-space container every loader returns.

``KSpaceData`` holds fully sampled multi-coil k-space in the canonical layout
``(coil, ky, kx)`` (``ky`` = phase encoding, the axis that is undersampled; ``kx`` =
readout) together with what is known about its noise and, for synthetic data, the
ground truth. It is a frozen dataclass validated at construction, so code
downstream may assume well-formed input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["KSpaceData", "check_finite", "as_complex", "validate_psi"]


def as_complex(x: np.ndarray, name: str = "array") -> np.ndarray:
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


def check_finite(x: np.ndarray, name: str = "k-space") -> None:
    """Raise ``ValueError`` naming how many entries of ``x`` are NaN/Inf and where.

    Args:
        x: any numeric array.
        name: what ``x`` is, for the message.

    Raises:
        ValueError: ``x`` holds NaN or Inf values.
    """
    bad = ~np.isfinite(x)
    if bad.any():
        idx = np.argwhere(bad)
        n = len(idx)
        first = ", ".join(str(tuple(int(i) for i in row)) for row in idx[:5])
        more = f" (and {n - 5} more)" if n > 5 else ""
        raise ValueError(
            f"{name} of shape {x.shape} contains {n} non-finite value(s) (NaN/Inf) at index {first}{more}"
        )


@dataclass(frozen=True)
class KSpaceData:
    """Fully sampled multi-coil k-space with its noise model and (synthetic) ground truth.

    Attributes:
        kspace: (Nc, Ny, Nx) complex k-space, ``fft2c`` of the coil images
            (``ky`` = phase encoding, axis -2; ``kx`` = readout, axis -1).
        noise: (Nc, S) complex noise-only samples (a noise scan), or None.
        psi: (Nc, Nc) Hermitian positive semi-definite noise covariance
            ``Psi = E[n n^H]`` per k-space sample, or None.
        maps: (Nc, Ny, Nx) complex coil sensitivities, or None.
        support: (Ny, Nx) bool object mask, or None.
        clean: (Nc, Ny, Nx) noise-free k-space (synthetic data only), or None.
        meta: free-form provenance (source file, slice, generator settings).

    Raises:
        ValueError: wrong rank, inconsistent shapes, NaN/Inf, psi not square,
            not Hermitian or with negative eigenvalues.
    """

    kspace: np.ndarray
    noise: np.ndarray | None = None
    psi: np.ndarray | None = None
    maps: np.ndarray | None = None
    support: np.ndarray | None = None
    clean: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        k = as_complex(self.kspace, "k-space")
        if k.ndim != 3:
            raise ValueError(
                f"k-space must have rank 3 (coil, ky, kx), got shape {k.shape} (rank {k.ndim})"
            )
        if min(k.shape) < 1:
            raise ValueError(f"k-space has an empty axis: shape {k.shape}")
        check_finite(k, "k-space")
        set_("kspace", k)
        nc, ny, nx = k.shape

        if self.noise is not None:
            n = as_complex(self.noise, "noise")
            if n.ndim != 2 or n.shape[0] != nc:
                raise ValueError(f"noise must have shape (Nc={nc}, S), got {n.shape}")
            check_finite(n, "noise")
            set_("noise", n)

        if self.psi is not None:
            set_("psi", validate_psi(self.psi, nc))

        for name in ("maps", "clean"):
            v = getattr(self, name)
            if v is not None:
                v = as_complex(v, name)
                if v.shape != k.shape:
                    raise ValueError(f"{name} must have the k-space shape {k.shape}, got {v.shape}")
                check_finite(v, name)
                set_(name, v)

        if self.support is not None:
            s = np.asarray(self.support)
            if s.shape != (ny, nx):
                raise ValueError(f"support must have shape (Ny, Nx) = {(ny, nx)}, got {s.shape}")
            set_("support", s.astype(bool))

        set_("meta", dict(self.meta))

    # ------------------------------------------------------------------ views
    @property
    def shape(self) -> tuple[int, int, int]:
        """``(Nc, Ny, Nx)``."""
        return tuple(self.kspace.shape)

    @property
    def ncoils(self) -> int:
        """Number of receive coils ``Nc``."""
        return self.kspace.shape[0]

    def coil_images(self) -> np.ndarray:
        """Coil images ``ifft2c(kspace)`` (Nc, Ny, Nx)."""
        from ..fft import ifft2c

        return np.asarray(ifft2c(self.kspace))

    def rss(self) -> np.ndarray:
        """Root-sum-of-squares image ``sqrt(sum_c |ifft2c(k)_c|^2)`` (Ny, Nx), real."""
        return np.sqrt(np.sum(np.abs(self.coil_images()) ** 2, axis=0))

    def with_(self, **changes) -> "KSpaceData":
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:  # arrays are large: summarise
        parts = [f"kspace={self.shape} {self.kspace.dtype}"]
        for name in ("noise", "psi", "maps", "support", "clean"):
            v = getattr(self, name)
            if v is not None:
                parts.append(f"{name}={tuple(v.shape)}")
        return f"KSpaceData({', '.join(parts)}, meta={sorted(self.meta)})"


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
