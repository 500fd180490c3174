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

The files are written into the staging folder of :func:`rakijax.runfolder.run_folder`
(nothing a user saved is lost; see there). :func:`environment` is the one record of
versions and devices.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import h5py
import jax
import matplotlib.pyplot as plt
import numpy as np

from .exports import save_kernels, write_bart, write_nifti
from .pipeline import ReconResult
from .runfolder import atomic_write, write_json

__all__ = [
    "write_results_h5",
    "read_results_h5",
    "save_figure",
    "environment",
    "write_run",
    "stack_slices",
    "write_exports",
    "write_kernels",
]

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
            "shape": list(r0.recon_kspace.shape), "sampling": s, "config": r0.config.to_dict(), "slices": list(slices),
            "version": metadata.version("rakijax")}
    save_kernels(Path(out) / "kernels.npz", tree, meta)
    return "kernels.npz"
