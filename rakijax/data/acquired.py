"""What a reconstruction gets from a scan: the sampling, the reduced grid and the ACS block.

One entry point for both modes of DESIGN.md:

* **retrospective** (``data.accelerated`` is False): the fully sampled k-space is
  undersampled here with the user's ``R``/``acs`` (:func:`rakijax.sampling.undersample`);
  the fully sampled k-space is kept as the ``reference``;
* **accelerated**: the pattern is read from ``data.sampled`` (and a separate ACS
  reference scan, if any) by :func:`rakijax.sampling.detect_sampling`, checked against
  ``R``/``acs`` when they are given; there is no reference.

Both return the same :class:`Acquired`, so everything after it (calibration,
application, g-factor, ACS reinsertion) runs one code path; for the same samples the
two modes give the same arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..sampling import Sampling, make_sampling, undersample
from .container import KSpaceData

__all__ = ["Acquired", "acquired", "stack_acquired"]


@dataclass(frozen=True)
class Acquired:
    """The acquired samples of one slice, split for calibration and application.

    Attributes:
        mode: ``"retrospective"`` or ``"accelerated"``.
        sampling: the :class:`~rakijax.sampling.Sampling` (R, offset, ACS block).
        reduced: (Nc, Y, Nx) regularly acquired lines (the network/kernel input).
        acs_block: (Nc, acs, Nx) calibration lines (embedded, or from the separate
            reference scan).
        kspace: (Nc, Ny, Nx) the acquired k-space on the full grid, zero where not
            acquired (regular lines plus embedded ACS lines; what ACS reinsertion reads).
        acquired_lines: (Ny,) bool, the lines present in ``kspace``; a separate ACS
            reference is not among them (it is never reinserted).
        reference: (Nc, Ny, Nx) fully sampled k-space (retrospective only), else None.
    """

    mode: str
    sampling: Sampling
    reduced: np.ndarray
    acs_block: np.ndarray
    kspace: np.ndarray
    acquired_lines: np.ndarray
    reference: np.ndarray | None = None

    @property
    def accelerated(self) -> bool:
        return self.mode == "accelerated"


def acquired(
    data: KSpaceData, *, R: int | None = None, acs: int | None = None, offset: int | None = None,
    require_acs: bool = True,
) -> Acquired:
    """Split ``data`` into sampling, reduced grid and ACS block (either mode).

    Args:
        data: one slice.
        R: acceleration; required for fully sampled data, checked otherwise.
        acs: ACS lines; required for fully sampled data, checked otherwise (a smaller
            centred block than the data hold is allowed: it calibrates on fewer lines).
        offset: first regular line: chosen in retrospective mode (default
            ``(Ny//2) % R``), checked in accelerated mode.
        require_acs: False when no calibration follows (``rakijax apply`` on another
            repetition): accelerated data with regular lines only are accepted
            (``acs=0``, empty ``acs_block``).

    Returns:
        :class:`Acquired`.

    Raises:
        ValueError: fully sampled data without R/acs; an accelerated pattern that is not
            uniform, has no contiguous ACS block or disagrees with R/acs; an ``offset``
            for accelerated data that disagrees with the measured one.
    """
    k = np.asarray(data.kspace)
    ny = k.shape[1]
    if not data.accelerated:
        if R is None or acs is None:
            src = data.meta.get("source")
            raise ValueError(
                (f"{src}: " if src else "")
                + f"the data are fully sampled (all {ny} ky lines): retrospective mode needs R and acs"
            )
        s = make_sampling(ny, R, acs, offset)
        _, reduced, acs_block = undersample(k, s)
        m = s.mask(include_acs=True)
        return Acquired("retrospective", s, reduced, acs_block, k * m[:, None], m, reference=k)

    s = data.sampling(R=R, acs=acs, require_acs=require_acs)
    if offset is not None and int(offset) != s.offset:
        raise ValueError(f"offset={offset} disagrees with the data: the acquired lines start at offset {s.offset} (R={s.R})")
    lines = np.asarray(data.sampled, bool)
    reduced = k[:, s.offset :: s.R]
    if data.acs_ref is not None and s.acs:
        rows = s.acs_lines - int(data.acs_ref_lines[0])
        acs_block = np.asarray(data.acs_ref)[:, rows]
    else:
        acs_block = k[:, s.acs_start : s.acs_start + s.acs]
    return Acquired("accelerated", s, reduced, acs_block, k, lines, reference=None)


def stack_acquired(slices: list[Acquired]) -> Acquired:
    """Stack per-slice :class:`Acquired` along a new leading slice axis (one batched fit per volume).

    All slices must share the mode and the :class:`~rakijax.sampling.Sampling` (so one
    compiled calibration/application serves the whole volume under ``jax.vmap``) and
    the array shapes.

    Returns:
        :class:`Acquired` with ``reduced`` (S, Nc, Y, Nx), ``acs_block`` (S, Nc, acs, Nx),
        ``kspace`` and ``reference`` (S, Nc, Ny, Nx), ``acquired_lines`` (S, Ny).

    Raises:
        ValueError: no slices, or slices whose mode, sampling or shapes differ (naming
            the first differing slice).
    """
    if not slices:
        raise ValueError("stack_acquired needs at least one slice")
    first = slices[0]
    for i, a in enumerate(slices[1:], start=1):
        if a.mode != first.mode or a.sampling != first.sampling:
            raise ValueError(
                f"slice {i} has {a.mode} {a.sampling}, slice 0 {first.mode} {first.sampling}: "
                "a volume is reconstructed with one sampling; pass acs= to use a common ACS width"
            )
        if a.kspace.shape != first.kspace.shape or a.acs_block.shape != first.acs_block.shape:
            raise ValueError(
                f"slice {i} has k-space {a.kspace.shape} / ACS {a.acs_block.shape}, slice 0 "
                f"{first.kspace.shape} / {first.acs_block.shape}"
            )
    ref = None if first.reference is None else np.stack([a.reference for a in slices])
    return Acquired(
        first.mode, first.sampling, np.stack([a.reduced for a in slices]), np.stack([a.acs_block for a in slices]),
        np.stack([a.kspace for a in slices]), np.stack([a.acquired_lines for a in slices]), reference=ref,
    )
