"""Run folders: ``results.h5``, ``metrics.json``, ``config.json``, figures, atomically.

Layout of a run folder (DESIGN.md, binding names)::

    results.h5     reference (ky,kx) RSS of the fully sampled input (retrospective only)
                   recon (ky,kx) coil-combined reconstruction (= RSS of the coil images)
                   recon_kspace (coil,ky,kx) reconstructed coil k-space
                   gfactor (ky,kx) when a g-factor was asked for; snr (ky,kx) when known
                   mask (ky,) sampled phase-encoding lines (regular lines and ACS)
                   attributes ``support_packbits``/``support_shape``: the (ky,kx) support
                   of the metrics, ``np.unpackbits(bits)[:ky*kx].reshape(ky, kx)``
    metrics.json   nmse, psnr, ssim, timings, gfactor_* ...
    config.json    resolved configuration, seed, package versions, JAX devices,
                   rakijax version, command line, and the list of files written
    *.png          figures

**Nothing a user saved is lost.** :func:`check_run_dir` refuses, before any work, a
non-empty folder without ``overwrite``, a path that is a file, and a place that cannot be
written. :func:`run_folder` stages the whole run in a temporary sibling folder and only
then puts it in place: a new folder is one ``rename``; an existing one (``overwrite``) is
swapped in with one atomic exchange (Linux ``renameat2(RENAME_EXCHANGE)``, else two
renames) after hard-linking the user's own files (anything a previous rakijax run did not
record as its output) into the staged folder. SIGINT is deferred while the run is put in
place, so an interrupt leaves either the old folder or the complete new one. Files and
folders get the user's umask (not the 0600/0700 of temporary files).

:func:`atomic_write` is the one atomic single-file writer (sweep shards and experiment
tables use it too); :func:`environment` the one record of versions and devices.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import threading
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import h5py
import jax
import matplotlib.pyplot as plt
import numpy as np

from .config import jsonable
from .exports import save_kernels, write_bart, write_nifti
from .pipeline import ReconResult

__all__ = [
    "RESULT_FILES",
    "OutputExistsError",
    "check_run_dir",
    "run_folder",
    "atomic_write",
    "write_json",
    "write_results_h5",
    "read_results_h5",
    "save_figure",
    "environment",
    "write_run",
    "stack_slices",
    "write_exports",
    "write_kernels",
]

#: Files every run writes (always ours).
RESULT_FILES = ("results.h5", "metrics.json", "config.json")


class OutputExistsError(FileExistsError):
    """The output folder exists and is not empty (and ``overwrite`` was not given)."""


# ----------------------------------------------------------------------------- permissions
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fix_mode(path: Path, directory: bool = False) -> None:
    """Give a file made by ``tempfile`` (0600/0700) the mode the user's umask asks for."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


# ----------------------------------------------------------------------------- single files
def atomic_write(path, write: Callable[[Any], None], mode: str = "w") -> Path:
    """Write ``path`` atomically: ``write(f)`` into a temporary file beside it, then ``os.replace``.

    The file exists completely or not at all, with the user's umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _fix_mode(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_json(path, obj: Mapping[str, Any]) -> Path:
    """Write ``obj`` as indented JSON atomically (NaN/Inf become ``null``)."""
    text = json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda f: f.write(text))


def write_results_h5(path, *, recon, recon_kspace, mask, reference=None, gfactor=None, snr=None, support=None,
                     attrs=None) -> Path:
    """Write ``results.h5`` with the DESIGN.md datasets, atomically.

    One slice: ``recon`` (ky, kx), ``recon_kspace`` (coil, ky, kx), ``mask`` (ky,); a
    multi-slice run adds a leading slice axis to every dataset.

    Args:
        recon: real coil-combined reconstruction.
        recon_kspace: complex reconstructed k-space.
        mask: bool sampled lines.
        reference: RSS of the fully sampled input, or ``None`` (accelerated input).
        gfactor, snr: maps like ``recon``, or ``None`` (then not written).
        support: optional bool support of the metrics, stored bit-packed as the file
            attributes ``support_packbits`` and ``support_shape``.
        attrs: optional file attributes (strings/numbers).

    Raises:
        ValueError: inconsistent shapes.
    """
    recon, recon_kspace, mask = np.asarray(recon), np.asarray(recon_kspace), np.asarray(mask, dtype=bool)
    img = recon.shape
    if recon.ndim not in (2, 3) or recon_kspace.shape[:-3] + recon_kspace.shape[-2:] != img:
        raise ValueError(f"recon {img} and recon_kspace {recon_kspace.shape} must be (ky, kx) and (coil, ky, kx)")
    if mask.shape != img[:-1]:
        raise ValueError(f"mask {mask.shape} must be {img[:-1]}")
    maps = {"reference": reference, "gfactor": gfactor, "snr": snr, "support": support}
    for name, v in maps.items():
        if v is not None and np.shape(v) != img:
            raise ValueError(f"{name} {np.shape(v)} must be {img}")

    def write(f):
        with h5py.File(f, "w") as h:
            if reference is not None:
                h.create_dataset("reference", data=np.real(np.asarray(reference)))
            h.create_dataset("recon", data=np.real(recon))
            h.create_dataset("recon_kspace", data=recon_kspace)
            for name in ("gfactor", "snr"):
                if maps[name] is not None:
                    h.create_dataset(name, data=np.asarray(maps[name], dtype=np.float64))
            h.create_dataset("mask", data=mask)
            if support is not None:  # bit-packed: attributes must stay small (< 64 KiB)
                h.attrs["support_packbits"] = np.packbits(np.asarray(support, bool).ravel())
                h.attrs["support_shape"] = np.asarray(img, dtype=np.int64)
            for k, v in (attrs or {}).items():
                h.attrs[k] = v

    return atomic_write(path, write, mode="wb")


def read_results_h5(path) -> dict:
    """Read every dataset of a ``results.h5`` into numpy arrays (plus ``support`` if stored)."""
    with h5py.File(path, "r") as f:
        out = {k: np.asarray(f[k]) for k in f.keys()}
        if "support_packbits" in f.attrs:
            shape = tuple(int(n) for n in f.attrs["support_shape"])
            bits = np.unpackbits(np.asarray(f.attrs["support_packbits"], np.uint8))[: int(np.prod(shape))]
            out["support"] = bits.reshape(shape).astype(bool)
    return out


def save_figure(fig, path, dpi: int = 120) -> Path:
    """Save a matplotlib Figure as PNG atomically and close it."""
    atomic_write(path, lambda f: fig.savefig(f, dpi=dpi, format="png", bbox_inches="tight"), mode="wb")
    plt.close(fig)
    return Path(path)


def environment(argv: Iterable[str] | None = None) -> dict:
    """Package versions, JAX backend/devices, Python, platform and the command line."""
    versions = {}
    for pkg in ("rakijax", "jax", "jaxlib", "flax", "optax", "numpy", "h5py", "scipy", "matplotlib", "nibabel"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "rakijax_version": versions["rakijax"],
        "versions": versions,
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "jax_x64": bool(jax.config.jax_enable_x64),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "command_line": list(sys.argv if argv is None else argv),
    }


# ----------------------------------------------------------------------------- run folders
def _nearest_existing(p: Path) -> Path:
    p = p.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_run_dir(path, overwrite: bool = False) -> Path:
    """Check, before any long work, that a run can be written to ``path``.

    Raises:
        OutputExistsError: ``path`` is a non-empty folder and ``overwrite`` is False.
        NotADirectoryError: ``path`` (or a parent) exists and is not a folder.
        PermissionError: the folder or the nearest existing parent cannot be written.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise NotADirectoryError(f"output path {str(p)!r} exists and is not a folder")
    if p.is_dir() and any(p.iterdir()) and not overwrite:
        raise OutputExistsError(f"output folder {str(p)!r} exists and is not empty; choose another --out or pass --overwrite")
    base = _nearest_existing(p.parent)
    if not base.is_dir():
        raise NotADirectoryError(f"cannot create output folder {str(p)!r}: {str(base)!r} is not a folder")
    try:  # the staging folder is a sibling of the run folder: test exactly that
        tempfile.TemporaryDirectory(dir=base, prefix=".rakijax-check-").cleanup()
    except OSError as e:
        raise PermissionError(f"cannot write the output folder {str(p)!r}: {str(base)!r} is not writable ({e.strerror})") from None
    return p


def _previous_outputs(p: Path) -> set[str]:
    try:
        names = json.loads((p / "config.json").read_text()).get("outputs", [])
    except (OSError, ValueError, AttributeError):
        names = []
    ok = {n for n in names if isinstance(n, str) and n == os.path.basename(n) and n not in ("", ".", "..")}
    return ok | set(RESULT_FILES)


def _link_user_files(old: Path, new: Path) -> None:
    """Hard-link (copy where linking fails) what is not a rakijax output from ``old`` into ``new``."""
    ours = _previous_outputs(old)
    for item in old.iterdir():
        if item.name in ours or (new / item.name).exists():
            continue
        if item.is_dir() and not item.is_symlink():
            shutil.copytree(item, new / item.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(item, new / item.name, follow_symlinks=False)


def _link_or_copy(src, dst, *, follow_symlinks: bool = True):
    if Path(src).is_symlink():
        os.symlink(os.readlink(src), dst)
        return dst
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=follow_symlinks)
    return dst


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0


@contextmanager
def _sigint_deferred():
    """Hold a SIGINT until the block is done (main thread only), then raise it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got = []
    old = signal.signal(signal.SIGINT, lambda *a: got.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if got:
            raise KeyboardInterrupt


def _put_in_place(stage: Path, target: Path) -> None:
    with _sigint_deferred():
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(stage, target)
            return
        _link_user_files(target, stage)
        if _exchange(stage, target):
            shutil.rmtree(stage, ignore_errors=True)  # now holds the old run
            return
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, old)
        os.rename(stage, target)
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def run_folder(path, overwrite: bool = False):
    """Stage a run folder and put it in place atomically when the block succeeds.

    Yields the staging folder (write every file of the run into it). On an exception or
    interrupt the staging folder is removed and ``path`` is left as it was; on success
    the staged run replaces ``path`` (see the module docstring).
    """
    target = check_run_dir(path, overwrite).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    _fix_mode(stage, directory=True)
    try:
        yield stage
        _put_in_place(stage, target)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def write_run(out, *, arrays: Mapping[str, Any], metrics: Mapping, config: Mapping,
              figures: Mapping[str, Any] | None = None, argv=None, extra_outputs: Iterable[str] = ()) -> list[str]:
    """Write the files of a run into ``out`` (normally the folder of :func:`run_folder`).

    Args:
        out: the (staging) run folder.
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
    names = []
    for name, fig in (figures or {}).items():
        save_figure(fig, out / name)
        names.append(name)
    write_results_h5(out / "results.h5", **arrays)
    write_json(out / "metrics.json", metrics)
    written = ["results.h5", "metrics.json", *names, *extra_outputs, "config.json"]
    write_json(out / "config.json", {**config, **environment(argv), "outputs": written})
    return written


# ----------------------------------------------------------------------------- reconstruction runs
#: metrics that describe the whole run, not one slice (kept scalar in a multi-slice metrics.json)
RUN_KEYS = ("mode", "method", "R", "acs", "R_eff", "reinsert_acs", "slope", "gfactor_method", "linearisation",
            "noise_covariance", "prewhitened", "replicas", "mc_noise_scale")


def stack_slices(results: Sequence[ReconResult]) -> tuple[dict, dict]:
    """``(arrays, metrics)`` of a run: one slice as it is; several with a leading slice axis
    on every array and per-slice lists in ``metrics`` (the run-wide keys stay scalars)."""
    arrays = [{"reference": r.reference, "recon": r.recon, "recon_kspace": r.recon_kspace, "gfactor": r.gfactor,
               "snr": r.snr, "mask": r.mask, "support": r.support} for r in results]
    if len(results) == 1:
        return arrays[0], dict(results[0].metrics)
    stacked = {k: None if any(a[k] is None for a in arrays) else np.stack([a[k] for a in arrays]) for k in arrays[0]}
    first = results[0].metrics
    metrics = {k: first[k] for k in RUN_KEYS if k in first}
    for k in first:
        if k not in metrics:
            metrics[k] = [r.metrics.get(k) for r in results]
    return stacked, metrics


def write_exports(out, arrays: Mapping[str, Any], voxel_size=None) -> list[str]:
    """``recon.nii.gz``, ``gfactor.nii.gz``, ``snr.nii.gz`` (magnitude, NIfTI) and
    ``recon.cfl/.hdr`` (BART) of a run's arrays; returns the names written."""
    names = []
    for name in ("recon", "gfactor", "snr"):
        if arrays.get(name) is not None:
            write_nifti(Path(out) / f"{name}.nii.gz", arrays[name], voxel_size)
            names.append(f"{name}.nii.gz")
    write_bart(Path(out) / "recon", arrays["recon"], kind="image")
    return names + ["recon.cfl", "recon.hdr"]


def write_kernels(out, results: Sequence[ReconResult], slices: Sequence[int]) -> str:
    """``kernels.npz``: every slice's kernels with the work basis they act on, and the
    configuration (what ``rakijax apply`` reads); returns the name written."""
    r0 = results[0]
    tree = {"slices": [{"kernels": [np.asarray(w) for w in r.kernels], "W": r.prepared.W, "L": r.prepared.L}
                       for r in results]}
    s = r0.sampling
    meta = {"method": r0.config.method, "slope": r0.config.slope, "R": s.R, "offset": s.offset, "acs": s.acs,
            "shape": list(r0.recon_kspace.shape), "config": r0.config.to_dict(), "slices": list(slices),
            "version": metadata.version("rakijax")}
    save_kernels(Path(out) / "kernels.npz", tree, meta)
    return "kernels.npz"
