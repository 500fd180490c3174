"""Run folders: ``results.h5``, ``metrics.json``, ``config.json`` and figures.

Layout of a run folder (DESIGN.md, binding names)::

    results.h5     reference (ky,kx) RSS of the fully sampled input
                   recon (ky,kx) coil-combined reconstruction (= RSS of the coil images)
                   recon_kspace (coil,ky,kx) reconstructed coil k-space
                   gfactor (ky,kx) when a g-factor was asked for
                   mask (ky,) sampled phase-encoding lines (regular lines and ACS)
                   attributes ``support_packbits``/``support_shape``: the (ky,kx) support
                   of the metrics, ``np.unpackbits(bits)[:ky*kx].reshape(ky, kx)``
    metrics.json   nmse, psnr, ssim, timings, gfactor_* ...
    config.json    resolved configuration, seed, package versions, JAX devices,
                   rakijax version, command line, and the list of files written
    *.png          figures

Every file is written atomically (a temporary file in the same folder, then
``os.replace``), so an interrupted run never leaves a half-written file behind.
Existing output is never silently overwritten: :func:`create_run_dir` refuses a
non-empty folder unless ``overwrite=True``, and then removes only files that a
previous rakijax run recorded as its own outputs (``config.json["outputs"]``)
plus the fixed result names; anything else in the folder is left alone.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = [
    "RESULT_FILES",
    "OutputExistsError",
    "check_run_dir",
    "create_run_dir",
    "atomic_path",
    "write_json",
    "write_results_h5",
    "save_figure",
    "environment",
    "write_run",
    "read_results_h5",
]

#: Files every run writes (always ours).
RESULT_FILES = ("results.h5", "metrics.json", "config.json")


class OutputExistsError(FileExistsError):
    """The output folder exists and is not empty (and ``overwrite`` was not given)."""


def check_run_dir(path, overwrite: bool = False) -> Path:
    """Validate an output folder without creating it (call before long work).

    Raises:
        OutputExistsError: ``path`` is a non-empty folder and ``overwrite`` is False.
        NotADirectoryError: ``path`` exists and is not a folder.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise NotADirectoryError(f"output path {str(p)!r} exists and is not a folder")
    if p.is_dir() and any(p.iterdir()) and not overwrite:
        raise OutputExistsError(
            f"output folder {str(p)!r} exists and is not empty; choose another --out or pass --overwrite"
        )
    return p


def _previous_outputs(p: Path) -> list[str]:
    try:
        cfg = json.loads((p / "config.json").read_text())
        names = cfg.get("outputs", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [n for n in names if isinstance(n, str) and n == os.path.basename(n) and n not in ("", ".", "..")]


def create_run_dir(path, overwrite: bool = False) -> Path:
    """Create (or, with ``overwrite``, reuse) an output folder.

    With ``overwrite=True`` on an existing folder, the files of a previous rakijax run
    (the fixed :data:`RESULT_FILES` and whatever its ``config.json`` lists under
    ``outputs``) are removed so that no stale result survives; no other file is touched.

    Raises:
        OutputExistsError: non-empty folder without ``overwrite``.
        NotADirectoryError: ``path`` is a file.
    """
    p = check_run_dir(path, overwrite)
    if p.is_dir() and overwrite:
        for name in set(_previous_outputs(p)) | set(RESULT_FILES):
            f = p / name
            if f.is_file() and not f.is_symlink():
                f.unlink()
    p.mkdir(parents=True, exist_ok=True)
    return p


@contextmanager
def atomic_path(target):
    """Yield a temporary path beside ``target``; on success move it onto ``target``."""
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix="." + target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path, obj: Mapping[str, Any]) -> Path:
    """Write ``obj`` as indented JSON atomically (NaN/Inf become ``null``)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_clean(obj), indent=2, sort_keys=False, allow_nan=False) + "\n")
    return Path(path)


def _clean(x):
    if isinstance(x, Mapping):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if np.isfinite(x) else None
    if x is None or isinstance(x, str):
        return x
    return str(x)


def write_results_h5(path, *, reference, recon, recon_kspace, mask, gfactor=None, support=None, attrs=None) -> Path:
    """Write ``results.h5`` with exactly the DESIGN.md datasets, atomically.

    Args:
        reference: (ky, kx) real RSS of the fully sampled input.
        recon: (ky, kx) coil-combined reconstruction (real, non-negative).
        recon_kspace: (coil, ky, kx) complex reconstructed k-space.
        mask: (ky,) bool sampled lines.
        gfactor: (ky, kx) g-factor map or ``None`` (then no ``gfactor`` dataset).
        support: optional (ky, kx) bool support of the metrics, stored bit-packed as the
            file attributes ``support_packbits`` and ``support_shape`` (the dataset
            list stays exactly DESIGN's).
        attrs: optional file attributes (strings/numbers).

    Raises:
        ValueError: inconsistent shapes.
    """
    import h5py

    reference, recon = np.asarray(reference), np.asarray(recon)
    recon_kspace, mask = np.asarray(recon_kspace), np.asarray(mask, dtype=bool)
    if reference.ndim != 2 or recon.shape != reference.shape:
        raise ValueError(f"reference {reference.shape} and recon {recon.shape} must be the same (ky, kx)")
    if recon_kspace.ndim != 3 or recon_kspace.shape[1:] != reference.shape:
        raise ValueError(f"recon_kspace {recon_kspace.shape} must be (coil, {reference.shape[0]}, {reference.shape[1]})")
    if mask.shape != (reference.shape[0],):
        raise ValueError(f"mask {mask.shape} must be ({reference.shape[0]},)")
    if gfactor is not None and np.shape(gfactor) != reference.shape:
        raise ValueError(f"gfactor {np.shape(gfactor)} must be {reference.shape}")
    if support is not None and np.shape(support) != reference.shape:
        raise ValueError(f"support {np.shape(support)} must be {reference.shape}")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("reference", data=np.real(reference))
            f.create_dataset("recon", data=np.real(recon))
            f.create_dataset("recon_kspace", data=recon_kspace)
            if gfactor is not None:
                f.create_dataset("gfactor", data=np.asarray(gfactor, dtype=np.float64))
            f.create_dataset("mask", data=mask)
            if support is not None:  # bit-packed: attributes must stay small (< 64 KiB)
                f.attrs["support_packbits"] = np.packbits(np.asarray(support, bool).ravel())
                f.attrs["support_shape"] = np.asarray(reference.shape, dtype=np.int64)
            for k, v in (attrs or {}).items():
                f.attrs[k] = v
    return Path(path)


def read_results_h5(path) -> dict:
    """Read every dataset of a ``results.h5`` into numpy arrays (plus ``support`` if stored)."""
    import h5py

    with h5py.File(path, "r") as f:
        out = {k: np.asarray(f[k]) for k in f.keys()}
        if "support_packbits" in f.attrs:
            shape = tuple(int(n) for n in f.attrs["support_shape"])
            bits = np.unpackbits(np.asarray(f.attrs["support_packbits"], np.uint8))[: int(np.prod(shape))]
            out["support"] = bits.reshape(shape).astype(bool)
    return out


def save_figure(fig, path, dpi: int = 120) -> Path:
    """Save a matplotlib Figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
    plt.close(fig)
    return path


def environment(argv: Iterable[str] | None = None) -> dict:
    """Package versions, JAX devices, Python, platform and the command line."""
    from importlib import metadata

    import rakijax

    versions = {}
    for pkg in ("jax", "jaxlib", "flax", "optax", "numpy", "h5py", "scipy", "matplotlib"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        import jax

        devices = [str(d) for d in jax.devices()]
        backend = jax.default_backend()
        x64 = bool(jax.config.jax_enable_x64)
    except Exception as e:  # pragma: no cover - environment without a working backend
        devices, backend, x64 = [f"unavailable: {e}"], None, None
    return {
        "rakijax_version": rakijax.__version__,
        "versions": versions,
        "jax_devices": devices,
        "jax_backend": backend,
        "jax_x64": x64,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "command_line": list(sys.argv if argv is None else argv),
    }


def write_run(out, *, arrays: Mapping[str, Any], metrics: Mapping, config: Mapping,
              figures: Mapping[str, Any] | None = None, argv=None,
              extra_outputs: Iterable[str] = ()) -> list[str]:
    """Write a complete run folder (the folder must already exist, see :func:`create_run_dir`).

    Args:
        out: the run folder.
        arrays: keyword arguments of :func:`write_results_h5`.
        metrics: written to ``metrics.json``.
        config: the resolved configuration (``seed`` included); the environment
            (:func:`environment`) and the list of files written are added.
        figures: ``{file name: matplotlib Figure}``, saved as PNG.
        argv: command line to record (default ``sys.argv``).
        extra_outputs: other files the caller wrote into ``out`` (recorded as ours).

    Returns:
        The file names written (relative to ``out``).
    """
    out = Path(out)
    written = []
    for name, fig in (figures or {}).items():
        save_figure(fig, out / name)
        written.append(name)
    write_results_h5(out / "results.h5", **arrays)
    write_json(out / "metrics.json", metrics)
    written = ["results.h5", "metrics.json"] + written + list(extra_outputs) + ["config.json"]
    cfg = dict(config)
    cfg.update(environment(argv))
    cfg["outputs"] = written
    write_json(out / "config.json", cfg)  # last: its presence marks a complete run
    return written
