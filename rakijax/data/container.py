"""The one multi-coil k-space container every loader returns.

``KSpaceData`` holds multi-coil k-space in the canonical layout ``(coil, ky, kx)``
(``ky`` = phase encoding, the axis that is undersampled; ``kx`` = readout) together
with what is known about its noise and, for synthetic data, the ground truth. It is
either fully sampled (``sampled is None``: the retrospective mode, which undersamples
it) or a prospectively undersampled scan (``sampled`` marks the acquired ky lines, the
others are zero; the accelerated mode), optionally with a separate ACS reference scan. It is a frozen dataclass validated at construction, so code
downstream may assume well-formed input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..fft import ifft2c
from ..sampling import detect_sampling
from ..validate import as_complex, check_finite, validate_psi

__all__ = ["KSpaceData"]


@dataclass(frozen=True)
class KSpaceData:
    """Multi-coil k-space (fully sampled or accelerated) with its noise model and headers.

    Attributes:
        kspace: (Nc, Ny, Nx) complex k-space, ``fft2c`` of the coil images
            (``ky`` = phase encoding, axis -2; ``kx`` = readout, axis -1); for an
            accelerated scan the lines not acquired are zero.
        noise: (Nc, S) complex noise-only samples (a noise scan), or None.
        psi: (Nc, Nc) Hermitian positive semi-definite noise covariance
            ``Psi = E[n n^H]`` per k-space sample, or None.
        maps: (Nc, Ny, Nx) complex coil sensitivities, or None.
        support: (Ny, Nx) bool object mask, or None.
        clean: (Nc, Ny, Nx) noise-free k-space (synthetic data only), or None.
        meta: free-form provenance (source file, slice, generator settings, header
            values such as ``R_header``, ``recon_matrix``).
        sampled: (Ny,) bool, the acquired ky lines (regular and embedded ACS) of a
            prospectively undersampled scan; None (or all True) = fully sampled.
        acs_ref: (Nc, A, Nx) complex separate ACS reference scan, or None.
        acs_ref_lines: (A,) int ky positions of ``acs_ref`` on the full grid
            (contiguous); required with ``acs_ref``.
        slice_index: slice of the source file, or None.
        voxel_size: voxel size in mm of this grid, ``(dy, dx)`` or ``(dy, dx, dz)``
            (``dz`` = slice thickness), or None when unknown.

    Raises:
        ValueError: wrong rank, inconsistent shapes, NaN/Inf, psi not square,
            not Hermitian or with negative eigenvalues, non-zero k-space on lines
            that ``sampled`` marks as missing, bad ACS reference or voxel size.
    """

    kspace: np.ndarray
    noise: np.ndarray | None = None
    psi: np.ndarray | None = None
    maps: np.ndarray | None = None
    support: np.ndarray | None = None
    clean: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    sampled: np.ndarray | None = None
    acs_ref: np.ndarray | None = None
    acs_ref_lines: np.ndarray | None = None
    slice_index: int | None = None
    voxel_size: tuple[float, ...] | None = None

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
        self._validate_acquisition(set_, k)

    def _validate_acquisition(self, set_, k):
        nc, ny, nx = k.shape
        if self.sampled is not None:
            m = np.asarray(self.sampled)
            if m.shape != (ny,) or m.dtype.kind not in "biu":
                raise ValueError(f"sampled must be a (Ny={ny},) bool mask over ky, got shape {m.shape} dtype {m.dtype}")
            m = m.astype(bool)
            if not m.any():
                raise ValueError("sampled marks no ky line as acquired")
            stray = np.flatnonzero(~m & np.any(k != 0, axis=(0, 2)))
            if stray.size:
                raise ValueError(
                    f"k-space is non-zero on {stray.size} ky line(s) that sampled marks as not acquired "
                    f"(first: {stray[:5].tolist()}); zero them or mark them acquired"
                )
            m.setflags(write=False)
            set_("sampled", m)
        if (self.acs_ref is None) != (self.acs_ref_lines is None):
            raise ValueError("acs_ref and acs_ref_lines go together: give both or neither")
        if self.acs_ref is not None:
            a = as_complex(self.acs_ref, "acs_ref")
            lines = np.asarray(self.acs_ref_lines)
            if a.ndim != 3 or a.shape[0] != nc or a.shape[2] != nx:
                raise ValueError(f"acs_ref must have shape (Nc={nc}, A, Nx={nx}), got {a.shape}")
            if lines.shape != (a.shape[1],) or lines.dtype.kind not in "iu":
                raise ValueError(f"acs_ref_lines must be ({a.shape[1]},) integers, got shape {lines.shape} dtype {lines.dtype}")
            if lines.size and (lines.min() < 0 or lines.max() >= ny or np.any(np.diff(lines) != 1)):
                raise ValueError(f"acs_ref_lines must be contiguous ascending ky lines in 0..{ny - 1}, got {lines.tolist()}")
            check_finite(a, "acs_ref")
            set_("acs_ref", a)
            set_("acs_ref_lines", lines.astype(np.int64))
        if self.slice_index is not None:
            set_("slice_index", int(self.slice_index))
        if self.voxel_size is not None:
            v = tuple(float(x) for x in np.ravel(self.voxel_size))
            if len(v) not in (2, 3) or not all(np.isfinite(x) and x > 0 for x in v):
                raise ValueError(f"voxel_size must be 2 or 3 positive sizes in mm (dy, dx[, dz]), got {self.voxel_size!r}")
            set_("voxel_size", v)

    # ------------------------------------------------------------------ views
    @property
    def shape(self) -> tuple[int, int, int]:
        """``(Nc, Ny, Nx)``."""
        return tuple(self.kspace.shape)

    @property
    def ncoils(self) -> int:
        """Number of receive coils ``Nc``."""
        return self.kspace.shape[0]

    @property
    def accelerated(self) -> bool:
        """True for a prospectively undersampled scan (some ky line not acquired)."""
        return self.sampled is not None and not bool(np.all(self.sampled))

    def sampling(self, R: int | None = None, acs: int | None = None, *, require_acs: bool = True):
        """The :class:`~rakijax.sampling.Sampling` of an accelerated scan, checked against ``R``/``acs``.

        For fully sampled data ``R`` and ``acs`` are required (retrospective mode).
        Without ``acs`` the width of the file's flagged calibration lines
        (``meta['acs_flagged']``, ISMRMRD) is used when it fits, else the largest block
        the pattern holds. ``require_acs=False`` accepts regular lines only (``acs=0``;
        re-applying saved kernels). See :func:`rakijax.sampling.detect_sampling`.

        Raises:
            ValueError: non-uniform pattern, no contiguous ACS block, R/acs disagreeing
                with the data (the message names the source file when known).
        """
        m = np.ones(self.shape[1], bool) if self.sampled is None else self.sampled
        flagged = self.meta.get("acs_flagged") if self.accelerated else None
        try:
            if acs is None and flagged:  # the file's calibration flags give the width
                try:
                    return detect_sampling(m, R=R, acs=int(flagged), acs_lines=self.acs_ref_lines)
                except ValueError:
                    pass
            return detect_sampling(m, R=R, acs=acs, acs_lines=self.acs_ref_lines, require_acs=require_acs)
        except ValueError as e:
            src = self.meta.get("source")
            raise ValueError(f"{src}: {e}" if src else str(e)) from None

    def coil_images(self) -> np.ndarray:
        """Coil images ``ifft2c(kspace)`` (Nc, Ny, Nx)."""
        return np.asarray(ifft2c(self.kspace))

    def rss(self) -> np.ndarray:
        """Root-sum-of-squares image ``sqrt(sum_c |ifft2c(k)_c|^2)`` (Ny, Nx), real."""
        return np.sqrt(np.sum(np.abs(self.coil_images()) ** 2, axis=0))

    def with_(self, **changes) -> "KSpaceData":
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:  # arrays are large: summarise
        parts = [f"kspace={self.shape} {self.kspace.dtype}"]
        for name in ("noise", "psi", "maps", "support", "clean", "acs_ref"):
            v = getattr(self, name)
            if v is not None:
                parts.append(f"{name}={tuple(v.shape)}")
        if self.accelerated:
            parts.append(f"sampled={int(np.sum(self.sampled))}/{self.shape[1]} lines")
        if self.slice_index is not None:
            parts.append(f"slice_index={self.slice_index}")
        if self.voxel_size is not None:
            parts.append(f"voxel_size={self.voxel_size}")
        return f"KSpaceData({', '.join(parts)}, meta={sorted(self.meta)})"
