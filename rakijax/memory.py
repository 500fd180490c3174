"""Peak memory of a run from the shapes alone, checked before the work.

:func:`memory_breakdown` models each stage (runtime, input, the method's calibration,
the g-factor) on the high side; :func:`check_memory` refuses a run whose estimate exceeds
the memory available (one line naming the largest stage and the fix) and warns above 80%,
so that a command line can refuse before loading or training.
"""

from __future__ import annotations

import os
from typing import Sequence

__all__ = ["memory_breakdown", "estimate_memory_bytes", "available_memory_bytes", "check_memory", "check_input_size"]


_RAKI_WIDTHS = (128, 64)
_RUNTIME = 512 * 2**20
_RAKI_KERNELS = ((2, 5), (1, 1), (1, 5))


def memory_breakdown(shape: Sequence[int], method: str = "grappa", R: int = 4, gfactor: str = "analytic", *,
                     acs: int = 24, slices: int = 1, itemsize: int = 8, widths: Sequence[int] = _RAKI_WIDTHS,
                     kernels: Sequence[Sequence[int]] = _RAKI_KERNELS, grappa_kernel: Sequence[int] = (2, 5),
                     mc_chunk: int = 50, band_chunk: int = 8, input_itemsize: int = 16) -> dict:
    """Peak memory (bytes) per stage of one reconstruction, from the shapes alone.

    A model, not a measurement: every term counts the arrays of that stage with a
    factor 2-4 for temporaries, meant to err on the high side. Checked once: GRAPPA with
    the analytic g-factor at 16 x 256 x 256 grew the process by 219 MiB where the model
    says 432 MiB (plus the ``runtime`` term; the process peaked at 640 MiB, model 960 MiB).

    * ``runtime``: Python, JAX and XLA themselves (512 MiB);
    * ``input``: all slices as loaded (complex128, ``input_itemsize``) plus 6 work copies
      of one slice (whitened, zero-filled, reduced, reconstructed k-space, coil images, image-space recon);
    * ``method``: GRAPPA: the ACS source matrix ``(acs-kh+1)Nx x Nc kh kw`` and its targets (x3);
      RAKI: parameters with Adam moments (x4), the training activations on the ACS
      (``sum(widths) acs Nx``, x4 for the backward pass) and the inference activations on
      the reduced grid (``max(widths) Y Nx``, x2);
    * ``gfactor``: ``analytic``: the per-pixel coil covariance ``Nc^2 Ny Nx`` (x3; for RAKI
      plus the band chunk ``band_chunk Nx cin kh kw max(widths)``); ``montecarlo``: one chunk
      of replicas through the method (``mc_chunk`` times the inference activations plus
      ``Nc Ny Nx``, x2); ``autodiff``: the dense real Jacobian ``(2 Nc Ny Nx) x (2 Nc Y Nx)`` (x2);
      ``none``: 0.

    Args:
        shape: ``(Nc, Ny, Nx)`` of one slice.
        method: ``"grappa"`` or ``"raki"``.
        R: acceleration.
        gfactor: ``"analytic"``, ``"montecarlo"``, ``"autodiff"`` or ``"none"``.
        acs: ACS lines.
        slices: slices held in memory (the input).
        itemsize: bytes per complex work element (8 complex64, 16 complex128).
        widths, kernels: RAKI hidden widths and kernel sizes.
        grappa_kernel: GRAPPA kernel ``(kh, kw)`` in acquired lines x readout.
        mc_chunk: replicas per Monte Carlo chunk.
        band_chunk: reduced rows per chunk of the analytic RAKI bands.
        input_itemsize: bytes per complex input element as loaded.

    Returns:
        ``{"runtime": .., "input": .., "method": .., "gfactor": .., "peak": ..}`` in bytes;
        ``peak = runtime + input + max(method, gfactor)`` (the stages run one after the other).

    Raises:
        ValueError: unknown method or g-factor, bad shape.
    """
    if len(shape) != 3 or min(int(s) for s in shape) < 1:
        raise ValueError(f"shape must be (Nc, Ny, Nx) with positive sizes, got {tuple(shape)}")
    nc, ny, nx = (int(s) for s in shape)
    if method not in ("grappa", "raki"):
        raise ValueError(f"method must be 'grappa' or 'raki', got {method!r}")
    if gfactor not in ("analytic", "montecarlo", "autodiff", "none"):
        raise ValueError(f"gfactor must be analytic, montecarlo, autodiff or none, got {gfactor!r}")
    R = max(int(R), 1)
    Y = -(-ny // R)
    pix = nc * ny * nx
    out = {"runtime": _RUNTIME, "input": int(slices) * pix * input_itemsize + 6 * pix * itemsize}
    if method == "grappa" or R == 1:
        kh, kw = grappa_kernel
        rows = max(acs - (kh - 1) * R, 1) * nx
        out["method"] = 3 * rows * nc * (kh * kw + (R - 1)) * itemsize
        act = nc * Y * nx
    else:
        chans = [nc, *widths, (R - 1) * nc]
        params = sum(ci * co * kh * kw for ci, co, (kh, kw) in zip(chans[:-1], chans[1:], kernels))
        train = 4 * sum(chans[1:]) * acs * nx
        act = max(chans[1:]) * Y * nx
        out["method"] = (4 * params + train + 2 * act) * itemsize
    if gfactor == "none":
        out["gfactor"] = 0
    elif gfactor == "analytic":
        g = 3 * nc * nc * ny * nx
        if method == "raki" and R > 1:
            kh, kw = kernels[0]
            g += band_chunk * nx * nc * kh * kw * max(widths)
        out["gfactor"] = g * itemsize
    elif gfactor == "montecarlo":
        out["gfactor"] = 2 * mc_chunk * (act + pix) * itemsize
    else:
        out["gfactor"] = 2 * (2 * pix) * (2 * nc * Y * nx) * (itemsize // 2)
    out["peak"] = out["runtime"] + out["input"] + max(out["method"], out["gfactor"])
    return out


def estimate_memory_bytes(shape: Sequence[int], method: str = "grappa", R: int = 4, gfactor: str = "analytic",
                          **kw) -> int:
    """Peak memory estimate (bytes) of a run; see :func:`memory_breakdown` for the model and arguments."""
    return int(memory_breakdown(shape, method, R, gfactor, **kw)["peak"])


def available_memory_bytes() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` (Linux), else ``None`` (unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory(shape: Sequence[int], method: str = "grappa", R: int = 4, gfactor: str = "analytic", *,
                 available: int | None = None, name: str = "the run", **kw) -> list[str]:
    """Refuse a run whose estimated peak memory exceeds what is available; warn above 80%.

    Args:
        shape, method, R, gfactor, **kw: as :func:`memory_breakdown`.
        available: bytes available (default :func:`available_memory_bytes`; unknown: no check).
        name: what to call the run in the message (e.g. the input file).

    Returns:
        One-line warnings.

    Raises:
        ValueError: estimate above ``available``, naming the largest stage and the fix.
    """
    b = memory_breakdown(shape, method, R, gfactor, **kw)
    if available is None:
        available = available_memory_bytes()
    if not available:
        return []
    gib = 2.0**30
    stage = max(("input", "method", "gfactor"), key=lambda k: b[k])
    fix = {"input": "use fewer slices (--slice N) or a smaller input",
           "method": "use GRAPPA or a smaller RAKI (fewer hidden channels)",
           "gfactor": "use --gfactor none, analytic (banded) or fewer Monte Carlo replicas per chunk"}[stage]
    msg = (f"{name} ({'x'.join(map(str, shape))}, {method}, R={R}, g-factor {gfactor}) needs about "
           f"{b['peak'] / gib:.1f} GiB (largest: {stage} {b[stage] / gib:.1f} GiB) but {available / gib:.1f} GiB "
           f"are available: {fix}")
    if b["peak"] > available:
        raise ValueError(msg)
    if b["peak"] > 0.8 * available:
        return [msg.replace(" but ", " of the ") + " (over 80%)"]
    return []


def check_input_size(path, *, available: int | None = None) -> None:
    """Refuse, before reading it, an input file larger than the memory available.

    A reader holds at least the file's samples (as complex64/128); a file bigger than the
    available memory cannot be loaded. BART's data file is ``.cfl`` beside the named ``.hdr``.

    Raises:
        ValueError: naming the file, its size and the memory available.
    """
    p = str(path)
    cands = [p, p + ".cfl", p[:-4] + ".cfl" if p.endswith(".hdr") else p]
    size = max((os.path.getsize(c) for c in cands if os.path.isfile(c)), default=0)
    available = available_memory_bytes() if available is None else available
    if available and size > available:
        gib = 2.0**30
        raise ValueError(f"{p}: the file holds {size / gib:.1f} GiB but only {available / gib:.1f} GiB of memory "
                         "are available: reconstruct it on a larger machine or split it (e.g. per slice)")
