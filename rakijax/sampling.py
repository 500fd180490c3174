"""Uniform undersampling by ``R`` with a centred ACS block.

Conventions (binding, see DESIGN.md):

* acquired (regular) lines are ``ky = offset + m*R``, ``m = 0, 1, ...``; by default
  ``offset = (Ny//2) % R`` so that the k-space centre line is acquired;
* the ACS block is ``acs`` contiguous lines centred on ``Ny//2``:
  ``ky = Ny//2 - acs//2, ..., Ny//2 - acs//2 + acs - 1``;
* the network / kernel input is the regularly undersampled k-space only; the ACS
  lines are used for calibration (reinserting them is an option, off by default).
* the *reduced grid* is the grid of regular lines, ``Y = len(range(offset, Ny, R))``
  rows; it is periodic (circular) only when ``Ny % R == 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Sampling",
    "default_offset",
    "make_sampling",
    "undersample",
    "reduced_grid",
]


def default_offset(ny: int, R: int) -> int:
    """Offset that puts the centre line ``Ny//2`` on the acquired grid."""
    return (ny // 2) % R


@dataclass(frozen=True)
class Sampling:
    """A uniform undersampling pattern with a centred ACS block.

    Attributes:
        ny: number of phase-encoding lines of the full grid.
        R: acceleration factor (integer >= 1).
        acs: number of contiguous ACS lines centred on ``ny//2`` (0 allowed for R=1).
        offset: first acquired line, ``0 <= offset < R``.
    """

    ny: int
    R: int
    acs: int
    offset: int

    @property
    def acquired_lines(self) -> np.ndarray:
        """Regularly acquired lines ``offset + m*R`` (the network input)."""
        return np.arange(self.offset, self.ny, self.R)

    @property
    def num_reduced(self) -> int:
        """Rows ``Y`` of the reduced grid."""
        return len(self.acquired_lines)

    @property
    def acs_start(self) -> int:
        return self.ny // 2 - self.acs // 2

    @property
    def acs_lines(self) -> np.ndarray:
        return np.arange(self.acs_start, self.acs_start + self.acs)

    @property
    def periodic(self) -> bool:
        """True when the reduced grid wraps exactly (``Ny % R == 0``)."""
        return self.ny % self.R == 0

    def require_periodic(self, what: str, hint: str = "crop or zero-pad ky to a multiple of R") -> None:
        """Raise ``ValueError`` naming ``what`` unless ``Ny % R == 0`` (:attr:`periodic`)."""
        if not self.periodic:
            raise ValueError(f"{what} needs Ny divisible by R (Ny={self.ny}, R={self.R}); {hint}")

    def mask(self, include_acs: bool = True) -> np.ndarray:
        """Boolean mask over ``ky`` of all sampled lines (regular, and ACS if asked)."""
        m = np.zeros(self.ny, dtype=bool)
        m[self.acquired_lines] = True
        if include_acs and self.acs:
            m[self.acs_lines] = True
        return m

    @property
    def R_eff(self) -> float:
        """Effective acceleration ``Ny / (number of sampled lines incl. ACS)``."""
        return self.ny / float(self.mask(include_acs=True).sum())


def make_sampling(ny: int, R: int, acs: int, offset: int | None = None, *, min_acs: int | None = None) -> Sampling:
    """Validated :class:`Sampling`.

    Args:
        ny: phase-encoding lines of the full grid.
        R: acceleration factor.
        acs: ACS lines (centred block).
        offset: first acquired line; default ``(ny//2) % R``.
        min_acs: the kernel reach in ky (full-grid lines) that the ACS must cover;
            checked when given.

    Raises:
        ValueError: R not an integer >= 1, R leaving fewer than 2 acquired lines,
            ACS wider than the data or narrower than ``min_acs``, bad offset.
    """
    if isinstance(R, bool) or int(R) != R or R < 1:
        raise ValueError(f"acceleration R must be an integer >= 1, got R={R!r}")
    R = int(R)
    if ny < 2:
        raise ValueError(f"need at least 2 phase-encoding lines, got Ny={ny}")
    if offset is None:
        offset = default_offset(ny, R)
    if not 0 <= offset < R:
        raise ValueError(f"offset must satisfy 0 <= offset < R={R}, got {offset}")
    n_acq = len(range(offset, ny, R))
    if n_acq < 2:
        raise ValueError(f"R={R} leaves only {n_acq} acquired line(s) of Ny={ny}; need at least 2")
    if acs < 0 or int(acs) != acs:
        raise ValueError(f"ACS lines must be a non-negative integer, got {acs!r}")
    if acs > ny:
        raise ValueError(f"ACS block of {acs} lines is wider than the data (Ny={ny})")
    if min_acs is not None and R > 1 and acs < min_acs:
        raise ValueError(
            f"too few ACS lines: {acs} < {min_acs} needed to cover the kernel reach at R={R}"
        )
    return Sampling(ny=int(ny), R=R, acs=int(acs), offset=int(offset))


def reduced_grid(kspace, sampling: Sampling):
    """Regularly acquired lines of ``kspace`` (..., coil, ky, kx) -> (..., coil, Y, kx)."""
    return kspace[..., sampling.offset :: sampling.R, :]


def undersample(kspace, sampling: Sampling):
    """Retrospective undersampling.

    Returns:
        ``(zero_filled, reduced, acs_block)``: the zero-filled k-space with the
        regular lines only (..., coil, Ny, kx); the reduced grid (..., coil, Y, kx);
        the ACS block (..., coil, acs, kx).
    """
    if kspace.shape[-2] != sampling.ny:
        raise ValueError(f"k-space has {kspace.shape[-2]} ky lines but the sampling expects {sampling.ny}")
    m = sampling.mask(include_acs=False)
    xp = np if isinstance(kspace, np.ndarray) else __import__("jax.numpy", fromlist=["x"])
    zero_filled = kspace * xp.asarray(m)[:, None].astype(kspace.real.dtype)
    red = reduced_grid(kspace, sampling)
    acs_block = kspace[..., sampling.acs_start : sampling.acs_start + sampling.acs, :]
    return zero_filled, red, acs_block
