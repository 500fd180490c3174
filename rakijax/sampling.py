"""Uniform undersampling by ``R`` with a centred ACS block.

Conventions (binding, see DESIGN.md):

* acquired (regular) lines are ``ky = offset + m*R``, ``m = 0, 1, ...``; by default
  ``offset = (Ny//2) % R`` so that the k-space centre line is acquired;
* the ACS block is ``acs`` contiguous lines centred on ``Ny//2``:
  ``ky = Ny//2 - acs//2, ..., Ny//2 - acs//2 + acs - 1``; a measured pattern whose
  block sits elsewhere keeps its place through ``acs_shift`` (default 0, the centred
  block), ``acs_start = Ny//2 - acs//2 + acs_shift``;
* the network / kernel input is the regularly undersampled k-space only; the ACS
  lines are used for calibration (reinserting them, :func:`rakijax.exports.reinsert_acs`,
  is on by default for accelerated input and off for retrospective studies).

A measured pattern (``sampled``, the acquired lines of a prospectively undersampled
scan) is read back into a :class:`Sampling` by :func:`detect_sampling`; zero lines of
k-space stored on the full grid give the pattern (:func:`sampled_lines`).
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
    "detect_sampling",
    "sampled_lines",
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
        acs_shift: displacement of the ACS block from its centred place (0, the
            default, is the DESIGN.md convention); only a measured pattern with an
            off-centre block (:func:`detect_sampling`) sets it.
    """

    ny: int
    R: int
    acs: int
    offset: int
    acs_shift: int = 0

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
        """First ACS line, ``ny//2 - acs//2 + acs_shift``."""
        return self.ny // 2 - self.acs // 2 + self.acs_shift

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


def make_sampling(
    ny: int, R: int, acs: int, offset: int | None = None, *, min_acs: int | None = None, acs_shift: int = 0
) -> Sampling:
    """Validated :class:`Sampling`.

    Args:
        ny: phase-encoding lines of the full grid.
        R: acceleration factor.
        acs: ACS lines (centred block).
        offset: first acquired line; default ``(ny//2) % R``.
        min_acs: the kernel reach in ky (full-grid lines) that the ACS must cover;
            checked when given.
        acs_shift: ACS block displacement from the centred place (see :class:`Sampling`).

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
    start = ny // 2 - int(acs) // 2 + int(acs_shift)
    if acs and not (0 <= start and start + acs <= ny):
        raise ValueError(f"ACS block lines {start}..{start + acs - 1} (acs={acs}, acs_shift={acs_shift}) leave the grid 0..{ny - 1}")
    return Sampling(ny=int(ny), R=R, acs=int(acs), offset=int(offset), acs_shift=int(acs_shift))


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


# ------------------------------------------------------------------ measured patterns
def sampled_lines(kspace) -> np.ndarray:
    """Acquired ky lines of k-space stored on the full grid: lines not identically zero.

    Args:
        kspace: (..., coil, ky, kx) array; a line counts as acquired when any coil,
            readout sample or leading index holds a non-zero value.

    Returns:
        (Ny,) bool.
    """
    k = np.asarray(kspace)
    if k.ndim < 2:
        raise ValueError(f"k-space must have at least the (ky, kx) axes, got shape {k.shape}")
    nz = k != 0
    axes = tuple(i for i in range(k.ndim) if i != k.ndim - 2)
    return np.any(nz, axis=axes)


def _runs(lines: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs ``(first, last)`` of consecutive integers in the sorted ``lines``."""
    if lines.size == 0:
        return []
    cut = np.flatnonzero(np.diff(lines) != 1)
    starts = np.r_[lines[0], lines[cut + 1]]
    ends = np.r_[lines[cut], lines[-1]]
    return [(int(a), int(b)) for a, b in zip(starts, ends)]


def _fmt(lines, n: int = 8) -> str:
    lines = [int(v) for v in lines]
    return ", ".join(map(str, lines[:n])) + (", ..." if len(lines) > n else "")


def _place_acs(ny: int, block: tuple[int, int], acs: int | None, grid: np.ndarray, where: str) -> tuple[int, int]:
    """``(acs, acs_shift)`` of an ACS block inside the fully sampled run ``block``.

    Regular lines next to the ACS block extend the run of acquired lines, so the run
    does not fix the width: the centred blocks (``acs_shift=0``) inside the run that
    hold every non-regular line of it are all consistent with the data. The widest
    even one is taken (ACS widths are even in practice: 24 lines at R=4 make a run of
    25 when line ``Ny//2 + 12`` is regular), else the widest; a run that no centred
    block explains is taken whole with its ``acs_shift``.
    """
    a, b = block
    n = b - a + 1

    def centred_fits(m: int) -> bool:
        s = ny // 2 - m // 2
        return a <= s and s + m - 1 <= b

    if acs is not None:
        if acs == 0:
            return 0, 0
        if centred_fits(acs):
            return acs, 0
        if acs == n:
            return acs, a - (ny // 2 - n // 2)
        s = ny // 2 - acs // 2
        raise ValueError(
            f"acs={acs} disagrees with the data: the centred ACS block (lines {s}..{s + acs - 1}, "
            f"centred on Ny//2={ny // 2}) is not fully sampled; {where} lines {a}..{b} ({n} lines)"
        )
    def covers(m: int) -> bool:
        s = ny // 2 - m // 2
        return all(v in grid for v in range(a, b + 1) if not s <= v < s + m)

    cands = [m for m in range(n, 1, -1) if centred_fits(m) and covers(m)]
    if cands:
        even = [m for m in cands if m % 2 == 0]
        return (even[0] if even else cands[0]), 0
    return n, a - (ny // 2 - n // 2)


def detect_sampling(
    sampled, *, R: int | None = None, acs: int | None = None, acs_lines=None, require_acs: bool = True
) -> Sampling:
    """R, offset and ACS block of a measured (prospective) sampling pattern.

    The pattern must be uniform with a contiguous ACS block: every line
    ``offset + m*R`` of the full grid is acquired, and the only other acquired lines
    form one contiguous block (the embedded ACS). ``R`` is the greatest common divisor
    of the spacings of the acquired lines outside that block; the ACS is the widest
    even-width block centred on ``Ny//2`` (DESIGN.md) that holds every non-regular
    line of the contiguous run (regular lines next to the block make the width
    ambiguous by one; pass ``acs`` to fix it), else the widest such block, or, for an
    off-centre run, the whole run with ``acs_shift``. A separate ACS reference scan is
    described by ``acs_lines`` (its ky positions on the full grid) instead.

    A fully sampled pattern (every line acquired) is the retrospective case: ``R`` and
    ``acs`` must then be given and the result is ``make_sampling(Ny, R, acs)``.

    Args:
        sampled: (Ny,) bool, the acquired ky lines (regular and embedded ACS).
        R: acceleration the user expects, checked against the pattern.
        acs: ACS lines the user expects, checked against the pattern (the centred
            block of ``acs`` lines must be acquired).
        acs_lines: (A,) int ky positions of a separate ACS reference scan, contiguous.
        require_acs: when False (re-applying saved kernels, no calibration), a pattern
            of regular lines only is accepted and gives ``acs=0``.

    Returns:
        The :class:`Sampling`; ``mask(include_acs=True)`` equals ``sampled`` (embedded
        ACS) unless ``acs`` asked for a smaller block.

    Raises:
        ValueError: the pattern is not uniform, has no (or more than one) contiguous
            ACS block, R or acs disagree with it, or a fully sampled pattern lacks R/acs.
    """
    m = np.asarray(sampled)
    if m.ndim != 1 or m.size < 2:
        raise ValueError(f"sampled must be a (Ny,) bool mask over ky with Ny >= 2, got shape {m.shape}")
    m = m.astype(bool)
    ny = m.size
    lines = np.flatnonzero(m)
    if lines.size == 0:
        raise ValueError(f"no acquired ky line: the sampling pattern of Ny={ny} lines is empty")
    ref = None
    if acs_lines is not None:
        ref = np.unique(np.asarray(acs_lines, dtype=int))
        if ref.size and (ref[0] < 0 or ref[-1] >= ny):
            raise ValueError(f"ACS reference lines {ref[0]}..{ref[-1]} lie outside the grid 0..{ny - 1}")
        if len(_runs(ref)) > 1:
            raise ValueError(f"the ACS reference lines are not contiguous: {_fmt(ref, 12)}")

    if lines.size == ny:  # fully sampled: retrospective mode
        if ref is not None and ref.size:
            raise ValueError("a separate ACS reference scan comes with fully sampled data; pass R and acs instead")
        if R is None or acs is None:
            raise ValueError(
                f"the data are fully sampled (all {ny} ky lines acquired): retrospective mode needs R and acs"
            )
        return make_sampling(ny, R, acs)

    runs = _runs(lines)
    long = [r for r in runs if r[1] > r[0]]
    if ref is not None and ref.size:
        block = (int(ref[0]), int(ref[-1]))
        where = "the separate ACS reference covers"
        inner = lines
        if long:  # an embedded block as well: use the lines outside it for R only
            big = max(long, key=lambda r: r[1] - r[0])
            inner = lines[(lines < big[0]) | (lines > big[1])]
    else:
        if not long and not require_acs and not acs:
            block, where = None, ""
            inner = lines
        elif not long:
            raise ValueError(
                f"no contiguous ACS block: the {lines.size} acquired lines of Ny={ny} are all isolated "
                f"({_fmt(lines)}); the data need embedded ACS lines or a separate reference scan"
            )
        else:
            width = max(r[1] - r[0] for r in long)
            biggest = [r for r in long if r[1] - r[0] == width]
            if len(biggest) > 1:
                raise ValueError(
                    f"more than one contiguous block of {width + 1} acquired lines ({biggest}): "
                    "cannot tell which is the ACS; the pattern is not uniform with one ACS block"
                )
            block = biggest[0]
            where = "the contiguous block of acquired lines is"
            inner = lines[(lines < block[0]) | (lines > block[1])]

    if inner.size >= 2:
        R_det = int(np.gcd.reduce(np.diff(inner)))
        off = int(inner[0] % R_det)
    elif inner.size == 1 and R is not None:
        R_det, off = int(R), int(inner[0] % R)
    else:
        raise ValueError(
            f"cannot tell R: only {inner.size} acquired line(s) outside the ACS block "
            f"{'' if block is None else f'{block[0]}..{block[1]} '}of Ny={ny}"
        )
    grid = np.arange(off, ny, R_det)
    missing = grid[~m[grid]]
    if R_det == 1 or missing.size:
        gaps = sorted({int(d) for d in np.diff(inner)})
        raise ValueError(
            f"the sampling pattern is not uniform: acquired lines outside the ACS block are spaced by {gaps}"
            + (f"; lines {_fmt(missing)} of the grid offset {off} + m*{R_det} are missing" if R_det > 1 else "")
            + " (partial Fourier and variable-density patterns are not supported)"
        )
    if R is not None and int(R) != R_det:
        raise ValueError(f"R={R} disagrees with the data: the acquired lines are spaced by R={R_det} (offset {off})")
    if block is None:
        return make_sampling(ny, R_det, 0, off)
    acs_n, shift = _place_acs(ny, block, acs, set(grid.tolist()), where)
    if ref is not None and ref.size and acs is None:
        acs_n, shift = int(ref.size), int(ref[0]) - (ny // 2 - int(ref.size) // 2)
    return make_sampling(ny, R_det, acs_n, off, acs_shift=shift)
