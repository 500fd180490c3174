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

from ..validate import as_complex, check_finite, validate_psi

__all__ = ["KSpaceData"]


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
