"""Sweeps over negative slope x R x ACS x seed x input, resumable and shardable.

A sweep is a grid declared by a frozen :class:`SweepSpec` (from a TOML/JSON file,
a dict or command-line flags). Its points are grouped by *shape*: points with the
same input, ``R`` and ACS width differ only in the traced numbers (slope, PRNG
seed), so one group trains all its networks at once with
``jax.vmap(rakijax.raki.train_kernels)`` (one compilation per group, none per
slope). Groups run one after another (:func:`run`) or as Dask tasks
(:func:`rakijax.sweep_dask.run_dask`).

Every point writes its own *shard* ``DIR/shards/<id>.json`` (metrics row, device,
versions) plus ``<id>.npz`` (g map, reconstruction, training losses), each
written to a temporary file and moved into place with :func:`os.replace`, so a
shard exists completely or not at all. ``<id>`` is a stable hash of everything
that determines the point's result (input, R, ACS, slope, seed, method
settings), so a rerun skips finished points: a crash or Ctrl-C loses nothing
that finished. A group with unfinished points is retrained *whole* (same vmap
batch, hence bit-identical kernels) and only its unfinished points are
evaluated, so an interrupted-and-resumed sweep gives the same table as an
uninterrupted one.

:func:`collect` merges the shards into ``table.csv`` (tidy: one row per point
and metric, columns ``point_id, input, R, acs, slope, seed, metric, value``),
``summary.md`` (one row per point) and ``sweep_slope.png`` (metrics vs slope
per R/ACS).

Metrics per point (in the object support when the input has one):
``nmse``, ``psnr``, ``ssim`` of the coil-combined reconstruction against the
RSS of the fully sampled input; ``gfactor_mean``, ``gfactor_p95``,
``gfactor_max`` of the analytic (linear-response) g-factor map; and the
high-frequency gain

    hf_gain = Re <k_ref, k_rec>_B / <k_ref, k_ref>_B ,   hf_loss = 1 - hf_gain,

the least-squares amplitude of the reference k-space inside the reconstructed
k-space over the band ``B`` of *interpolated lines outside the ACS block*
(all coils and readout points; the reference is the noise-free k-space when
the input has one). Noise and aliasing residuals are uncorrelated with the
reference and average out of the numerator, so ``hf_gain`` measures the
attenuation of high spatial frequencies only: 1 = no contrast loss, < 1 =
blurring (the Tikhonov-like side of a low negative slope; Dawood et al. 2024).

When ``R`` does not divide ``Ny`` (e.g. 256 lines at R = 5) and the analytic g-factor is
asked for (it needs ``Ny % R == 0``), the k-space is cropped in ky to the largest centred
window that ``R`` divides (:func:`ky_crop`: one edge line for 256 at R = 5).

References: Akcakaya 2019 (RAKI); Dawood 2024 (image-space formalism, slope trade-off).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

__all__ = [
    "InputSpec",
    "SweepSpec",
    "SweepPoint",
    "METRICS",
    "point_id",
    "load_spec",
    "run",
    "collect",
    "read_table",
    "finished_ids",
    "raki_group",
    "batched_trainer",
    "ky_crop",
    "write_shard",
    "environment",
    "wide",
    "summary_markdown",
    "plot_slope",
    "spec_from_args",
    "read_spec_file",
    "main",
]

log = logging.getLogger(__name__)

#: metrics written per point by :func:`raki_group` (``table.csv`` has one row for each).
METRICS = ("nmse", "psnr", "ssim", "gfactor_mean", "gfactor_p95", "gfactor_max", "hf_gain", "hf_loss")
#: columns of ``table.csv``.
TABLE_COLUMNS = ("point_id", "input", "R", "acs", "slope", "seed", "metric", "value")
_SHARD_VERSION = 1

GroupFn = Callable[["SweepSpec", Sequence["SweepPoint"], frozenset], Iterator[tuple["SweepPoint", dict, dict]]]


# ----------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class InputSpec:
    """One input of a sweep: the built-in phantom or a slice of a file.

    Attributes:
        kind: ``"phantom"`` (:func:`rakijax.data.synthetic.brain_phantom`) or ``"file"``
            (:func:`rakijax.data.load`).
        n: phantom matrix size (n x n).
        ncoils: phantom coils.
        seed: phantom seed (coil maps / noise draw).
        noise_level: phantom noise level (``None``: the phantom's default).
        path: file path (``kind="file"``).
        slice: slice index in the file.
        key: dataset key for HDF5/npz files.
    """

    kind: str = "phantom"
    n: int = 64
    ncoils: int = 8
    seed: int = 0
    noise_level: float | None = None
    path: str = ""
    slice: int = 0
    key: str = "kspace"

    def __post_init__(self):
        if self.kind not in ("phantom", "file"):
            raise ValueError(f"input kind must be 'phantom' or 'file', got {self.kind!r}")
        if self.kind == "file" and not self.path:
            raise ValueError("a file input needs a path")

    @property
    def label(self) -> str:
        """Short, stable name used in tables and figures."""
        if self.kind == "phantom":
            nl = "" if self.noise_level is None else f"-nl{self.noise_level:g}"
            return f"phantom{self.n}c{self.ncoils}s{self.seed}{nl}"
        return f"{Path(self.path).name}:{self.slice}"

    def identity(self) -> dict:
        """The fields that determine the data (hashed into point ids)."""
        if self.kind == "phantom":
            return {"kind": "phantom", "n": self.n, "ncoils": self.ncoils, "seed": self.seed, "noise_level": self.noise_level}
        return {"kind": "file", "path": self.path, "slice": self.slice, "key": self.key}

    def load(self):
        """Load the input as a :class:`rakijax.data.KSpaceData` (cached per process)."""
        return _load_input(self)


@functools.lru_cache(maxsize=8)
def _load_input(inp: InputSpec):
    if inp.kind == "phantom":
        from .data import synthetic

        kw = {} if inp.noise_level is None else {"noise_level": inp.noise_level}
        return synthetic.brain_phantom(inp.n, inp.ncoils, seed=inp.seed, **kw)
    from . import data

    return data.load(inp.path, slice=inp.slice, key=inp.key)


@dataclass(frozen=True)
class SweepPoint:
    """One point of the grid."""

    input: InputSpec
    R: int
    acs: int
    slope: float
    seed: int

    def params(self) -> dict:
        return {"input": self.input.label, "R": self.R, "acs": self.acs, "slope": self.slope, "seed": self.seed}


@dataclass(frozen=True)
class SweepSpec:
    """A sweep grid ``slopes x R x acs x seeds x inputs`` and the method settings.

    Attributes:
        slopes: negative slopes of the complex leaky ReLU (traced: vmapped in a group).
        R: acceleration factors (static: one group each).
        acs: ACS widths in lines (static: one group each).
        seeds: PRNG seeds of the network initialisation (traced: vmapped in a group).
        inputs: the data (one group each).
        preset: ``"small"`` (:meth:`RakiConfig.small`) or ``"default"`` (``RakiConfig()``).
        raki: overrides of the RakiConfig fields, as ``((name, value), ...)``
            (e.g. ``(("steps", 300),)``; lists become tuples).
        gfactor: ``"analytic"`` (linear-response map, :func:`rakijax.gfactor.raki_gfactor`)
            or ``"none"``.
        linearisation: ``"true"`` (default) or ``"frozen"``.
        save_arrays: write ``<id>.npz`` (g map, recon magnitude, losses) per point.
        name: a label for the run (not part of point ids).
    """

    slopes: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    R: tuple[int, ...] = (4,)
    acs: tuple[int, ...] = (24,)
    seeds: tuple[int, ...] = (0,)
    inputs: tuple[InputSpec, ...] = (InputSpec(),)
    preset: str = "small"
    raki: tuple[tuple[str, Any], ...] = ()
    gfactor: str = "analytic"
    linearisation: str = "true"
    save_arrays: bool = True
    name: str = "sweep"

    def __post_init__(self):
        for f in ("slopes", "R", "acs", "seeds", "inputs"):
            v = getattr(self, f)
            if not isinstance(v, tuple) or len(v) == 0:
                raise ValueError(f"SweepSpec.{f} must be a non-empty tuple, got {v!r}")
            if len(set(v)) != len(v):
                raise ValueError(f"SweepSpec.{f} has duplicates: {v!r}")
        if any(int(r) != r or r < 1 for r in self.R):
            raise ValueError(f"R must be integers >= 1, got {self.R}")
        if any(int(a) != a or a < 0 for a in self.acs):
            raise ValueError(f"acs must be non-negative integers, got {self.acs}")
        if self.preset not in ("small", "default"):
            raise ValueError(f"preset must be 'small' or 'default', got {self.preset!r}")
        if self.gfactor not in ("analytic", "none"):
            raise ValueError(f"gfactor must be 'analytic' or 'none', got {self.gfactor!r}")
        if self.linearisation not in ("true", "frozen"):
            raise ValueError(f"linearisation must be 'true' or 'frozen', got {self.linearisation!r}")

    # -- construction
    @classmethod
    def from_dict(cls, d: dict, *, base_dir: str | Path | None = None) -> "SweepSpec":
        """Spec from a plain dict (the TOML/JSON layout, see ``experiments/README.md``).

        Keys: ``slopes, R, acs, seeds`` (lists or scalars), ``inputs`` (list of tables
        ``{phantom = {n, ncoils, seed, noise_level}}`` or ``{file = PATH, slices = [..], key}``),
        ``preset``, ``raki`` (table of RakiConfig overrides), ``gfactor``,
        ``linearisation``, ``save_arrays``, ``name``. Relative file paths are taken
        relative to ``base_dir``.
        """
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown sweep keys {sorted(unknown)}; known: {sorted(known)}")
        kw: dict[str, Any] = {}
        for f, typ in (("slopes", float), ("R", int), ("acs", int), ("seeds", int)):
            if f in d:
                v = d[f]
                v = v if isinstance(v, (list, tuple)) else [v]
                kw[f] = tuple(typ(x) for x in v)
        if "inputs" in d:
            kw["inputs"] = tuple(i for item in d["inputs"] for i in _parse_input(item, base_dir))
        if "raki" in d:
            r = d["raki"]
            items = r.items() if isinstance(r, dict) else r
            kw["raki"] = tuple(sorted((str(k), _freeze(v)) for k, v in items))
        for f in ("preset", "gfactor", "linearisation", "name"):
            if f in d:
                kw[f] = str(d[f])
        if "save_arrays" in d:
            kw["save_arrays"] = bool(d["save_arrays"])
        return cls(**kw)

    def to_dict(self) -> dict:
        """Plain-dict form (JSON-serialisable; ``from_dict(to_dict())`` round-trips)."""
        return {
            "name": self.name,
            "slopes": list(self.slopes),
            "R": list(self.R),
            "acs": list(self.acs),
            "seeds": list(self.seeds),
            "inputs": [_input_to_dict(i) for i in self.inputs],
            "preset": self.preset,
            "raki": {k: _thaw(v) for k, v in self.raki},
            "gfactor": self.gfactor,
            "linearisation": self.linearisation,
            "save_arrays": self.save_arrays,
        }

    def method(self) -> dict:
        """Settings shared by all points (hashed into point ids)."""
        return {
            "preset": self.preset,
            "raki": {k: _thaw(v) for k, v in self.raki},
            "gfactor": self.gfactor,
            "linearisation": self.linearisation,
        }

    def raki_config(self):
        """The resolved :class:`rakijax.raki.RakiConfig`."""
        from .raki import RakiConfig

        base = RakiConfig.small() if self.preset == "small" else RakiConfig()
        return dataclasses.replace(base, **dict(self.raki)) if self.raki else base

    # -- grid
    def points(self) -> list[SweepPoint]:
        """All points, in group order (input, R, acs), then slope, then seed."""
        return [p for g in self.groups() for p in g]

    def groups(self) -> list[tuple[SweepPoint, ...]]:
        """Points sharing input, R and ACS (trained together with vmap)."""
        out = []
        for inp in self.inputs:
            for R in self.R:
                for acs in self.acs:
                    out.append(tuple(SweepPoint(inp, int(R), int(acs), float(s), int(seed))
                                     for s in self.slopes for seed in self.seeds))
        return out


def _freeze(v):
    return tuple(_freeze(x) for x in v) if isinstance(v, (list, tuple)) else v


def _thaw(v):
    return [_thaw(x) for x in v] if isinstance(v, tuple) else v


def _parse_input(item: dict, base_dir) -> list[InputSpec]:
    if not isinstance(item, dict) or len({"phantom", "file"} & set(item)) != 1:
        raise ValueError(f"each input needs exactly one of 'phantom' or 'file': {item!r}")
    if "phantom" in item:
        ph = dict(item["phantom"] or {})
        bad = set(ph) - {"n", "ncoils", "seed", "noise_level"}
        if bad:
            raise ValueError(f"unknown phantom keys {sorted(bad)}")
        nl = ph.get("noise_level")
        return [InputSpec("phantom", n=int(ph.get("n", 64)), ncoils=int(ph.get("ncoils", 8)),
                          seed=int(ph.get("seed", 0)), noise_level=None if nl is None else float(nl))]
    path = Path(item["file"])
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    slices = item.get("slices", item.get("slice", 0))
    slices = slices if isinstance(slices, (list, tuple)) else [slices]
    return [InputSpec("file", path=str(path), slice=int(s), key=str(item.get("key", "kspace"))) for s in slices]


def _input_to_dict(i: InputSpec) -> dict:
    if i.kind == "phantom":
        ph = {"n": i.n, "ncoils": i.ncoils, "seed": i.seed}
        if i.noise_level is not None:
            ph["noise_level"] = i.noise_level
        return {"phantom": ph}
    return {"file": i.path, "slices": [i.slice], "key": i.key}


def read_spec_file(path: str | Path) -> dict:
    """The plain dict of a ``.toml`` or ``.json`` sweep spec file."""
    path = Path(path)
    if path.suffix == ".toml":
        import tomllib

        return tomllib.loads(path.read_text())
    if path.suffix == ".json":
        return json.loads(path.read_text())
    raise ValueError(f"sweep spec must be .toml or .json, got {path}")


def load_spec(path: str | Path) -> SweepSpec:
    """Read a sweep spec from a ``.toml`` or ``.json`` file (relative paths from its folder)."""
    return SweepSpec.from_dict(read_spec_file(path), base_dir=Path(path).parent)


def point_id(spec: SweepSpec, point: SweepPoint) -> str:
    """Stable 16-hex-digit hash of everything that determines the point's result."""
    ident = {
        "v": _SHARD_VERSION,
        "input": point.input.identity(),
        "R": point.R,
        "acs": point.acs,
        "slope": repr(float(point.slope)),
        "seed": point.seed,
        "method": spec.method(),
    }
    s = json.dumps(ident, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(s.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- shards
def _atomic_write(path: Path, write: Callable[[Any], None], mode: str = "w"):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def environment() -> dict:
    """JAX backend, devices and package versions (recorded in every output)."""
    import jax

    import importlib.metadata as md

    versions = {}
    for pkg in ("rakijax", "jax", "jaxlib", "flax", "optax", "numpy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "x64": bool(jax.config.jax_enable_x64),
        "versions": versions,
    }


def write_shard(out: str | Path, spec: SweepSpec, point: SweepPoint, metrics: dict, arrays: dict | None,
                timings: dict | None = None, env: dict | None = None) -> str:
    """Write one point's shard atomically (arrays first, the JSON marks completion)."""
    pid = point_id(spec, point)
    d = Path(out) / "shards"
    if arrays and spec.save_arrays:
        arrs = {k: np.asarray(v) for k, v in arrays.items()}
        _atomic_write(d / f"{pid}.npz", lambda f: np.savez_compressed(f, **arrs), mode="wb")
    record = {
        "point_id": pid,
        "params": point.params(),
        "input": point.input.identity(),
        "method": spec.method(),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "timings": timings or {},
        "environment": env or {},
        "shard_version": _SHARD_VERSION,
    }
    _atomic_write(d / f"{pid}.json", lambda f: json.dump(record, f, indent=1, sort_keys=True))
    return pid


def finished_ids(out: str | Path) -> set[str]:
    """Point ids with a complete shard in ``out``."""
    d = Path(out) / "shards"
    return {p.stem for p in d.glob("*.json")} if d.is_dir() else set()


def _write_run_info(out: Path, spec: SweepSpec, runner: str):
    out.mkdir(parents=True, exist_ok=True)
    info = {"spec": spec.to_dict(), "runner": runner, "environment": environment(),
            "points": {point_id(spec, p): p.params() for p in spec.points()}}
    _atomic_write(out / "sweep.json", lambda f: json.dump(info, f, indent=1, sort_keys=True))


# ----------------------------------------------------------------------------- local runner
def run(spec: SweepSpec, out: str | Path, *, group_fn: GroupFn | None = None, max_points: int | None = None,
        progress: bool = False) -> list[str]:
    """Run a sweep group by group on this process, skipping finished points.

    Args:
        spec: the grid.
        out: output folder (created); shards go to ``out/shards``.
        group_fn: ``group_fn(spec, group_points, todo_ids)`` yields
            ``(point, metrics, arrays)`` for the points whose id is in ``todo_ids``;
            default :func:`raki_group`.
        max_points: stop after writing this many shards (a controlled interruption).
        progress: tqdm bar over points.

    Returns:
        The ids of the shards written by this call.
    """
    out = Path(out)
    group_fn = group_fn or raki_group
    _write_run_info(out, spec, "local")
    done = finished_ids(out)
    todo_total = sum(point_id(spec, p) not in done for p in spec.points())
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=todo_total, desc=f"sweep {spec.name}")
    env = environment()
    written: list[str] = []
    try:
        for group in spec.groups():
            todo = frozenset(point_id(spec, p) for p in group) - done
            if not todo:
                continue
            t0 = time.perf_counter()
            for point, metrics, arrays in group_fn(spec, group, todo):
                t = {"point_s": time.perf_counter() - t0}  # the first point of a group includes its training
                written.append(write_shard(out, spec, point, metrics, arrays, t, env))
                t0 = time.perf_counter()
                if bar is not None:
                    bar.update(1)
                if max_points is not None and len(written) >= max_points:
                    log.info("stopping after %d points (max_points)", len(written))
                    return written
    finally:
        if bar is not None:
            bar.close()
    return written


def ky_crop(ny: int, R: int) -> tuple[int, int]:
    """Rows ``lo:hi`` of the largest ky window with ``R | (hi - lo)`` that keeps line ``ny//2`` central.

    The exact (analytic) g-factor needs ``Ny % R == 0``; for e.g. ``Ny = 256, R = 5`` the sweep
    drops the outermost k-space line (``lo = 1, hi = 256``): the highest spatial frequency, a
    negligible part of the signal energy, and the centre line stays at ``(hi - lo)//2``.
    """
    e = ny % R
    lo = ny // 2 - (ny - e) // 2
    return lo, ny - (e - lo)


def _prepare(inp: InputSpec, R: int, acs: int, crop: bool = False):
    """Data in the prewhitened work basis, as :func:`rakijax.pipeline.reconstruct` does it.

    With ``crop`` the ky axis is cropped by :func:`ky_crop` when ``R`` does not divide ``Ny``.
    """
    import jax
    import jax.numpy as jnp

    from . import noise as nz
    from .fft import ifft2c
    from .pipeline import rss, support_mask
    from .sampling import make_sampling, undersample

    data = inp.load()
    dtype = jnp.complex128 if jax.config.jax_enable_x64 else jnp.complex64
    kspace, clean, support = data.kspace, data.clean, data.support
    lo, hi = ky_crop(kspace.shape[-2], R) if crop else (0, kspace.shape[-2])
    if (lo, hi) != (0, kspace.shape[-2]):
        log.info("%s: cropping ky %d -> %d lines (rows %d:%d) so that R=%d divides Ny", inp.label,
                 kspace.shape[-2], hi - lo, lo, hi, R)
        kspace = kspace[:, lo:hi]
        clean = None if clean is None else clean[:, lo:hi]
        support = None  # image-space support changes with the grid: re-derived from the reference
    k = jnp.asarray(kspace, dtype)
    nc, ny, nx = k.shape
    if data.psi is not None:
        psi = np.asarray(data.psi)
    elif data.noise is not None:
        psi = np.asarray(nz.estimate_psi(data.noise))
    else:
        psi = np.asarray(nz.estimate_psi_from_kspace(np.asarray(data.kspace)))
    Wm = np.asarray(nz.whitening_matrix(psi), np.complex128)
    Lm = np.linalg.inv(Wm)
    mix = lambda M, x: jnp.einsum("cd,d...->c...", jnp.asarray(M, x.dtype), x)  # noqa: E731
    s = make_sampling(ny, R, acs)
    _, u, acs_block = undersample(mix(Wm, k), s)
    reference = rss(ifft2c(k))
    support = np.asarray(support, bool) if support is not None else support_mask(reference)
    kref = jnp.asarray(clean, dtype) if clean is not None else k
    return dict(s=s, u=u, acs_block=acs_block, Lm=Lm, mix=mix, reference=reference, support=support, kref=kref,
                nc=nc, dtype=dtype)


@functools.lru_cache(maxsize=32)
def batched_trainer(R: int, config):
    """``f(acs_block, slopes (B,), keys (B,)) -> (kernels (B, ...), losses (B, steps))``.

    ``jax.jit(jax.vmap(rakijax.raki.train_kernels))`` over slope and key with the ACS
    block shared; cached per ``(R, config)`` so that groups of the same shapes reuse
    one compilation (a new batch size or ACS shape compiles once more).
    """
    import jax

    from . import raki

    def one(acs_block, slope, key):
        return raki.train_kernels(acs_block, R, config, slope, key)

    return jax.jit(jax.vmap(one, in_axes=(None, 0, 0)))


def _raki_gfactor():
    try:
        from .gfactor import raki_gfactor
    except ImportError:  # before the package re-exports it
        from .gfactor.maps import raki_gfactor
    return raki_gfactor


def raki_group(spec: SweepSpec, group: Sequence[SweepPoint], todo: frozenset) -> Iterator[tuple[SweepPoint, dict, dict]]:
    """Train a group's networks together (vmap over slope and seed) and evaluate its todo points.

    Each point is the computation of :func:`rakijax.pipeline.reconstruct` with
    ``ReconConfig(method="raki", R, acs, slope, seed=seed, raki=spec.raki_config(),
    gfactor=spec.gfactor, linearisation=spec.linearisation)`` (prewhitened work
    basis, ``jax.random.PRNGKey(seed)`` initialisation), except that the training
    of all points of the group is one ``vmap``-ed :func:`rakijax.raki.train_kernels`
    call. The whole group is always trained (the same batch whatever is left to
    do, so kernels are bit-identical on a resume); only points in ``todo`` are
    evaluated. Metrics: see the module docstring.
    """
    import jax
    import jax.numpy as jnp

    from . import metrics as M
    from . import raki
    from .fft import ifft2c
    from .gfactor.combine import combination_weights, combine
    from .raki.train import validate_acs

    inp, R, acs = group[0].input, group[0].R, group[0].acs
    if any((p.input, p.R, p.acs) != (inp, R, acs) for p in group):
        raise ValueError("a group must share input, R and ACS")
    cfg = spec.raki_config()
    d = _prepare(inp, R, acs, crop=spec.gfactor == "analytic")
    s, u, mix, Lm, support = d["s"], d["u"], d["mix"], d["Lm"], d["support"]
    validate_acs(d["acs_block"], R, cfg)
    real = jnp.real(u).dtype
    slopes = jnp.asarray([p.slope for p in group], real)
    keys = jnp.stack([jax.random.PRNGKey(p.seed) for p in group])
    kernels_b, losses_b = batched_trainer(R, cfg)(d["acs_block"], slopes, keys)

    band = ~s.mask(include_acs=True)  # interpolated lines outside the ACS block
    kref_b = d["kref"][:, band, :]
    ref_energy = jnp.sum(jnp.abs(kref_b) ** 2)
    for i, point in enumerate(group):
        if point_id(spec, point) not in todo:
            continue
        kernels = [w[i] for w in kernels_b]
        kw_rec = raki.apply(kernels, u, s, point.slope)
        recon_kspace = mix(Lm, kw_rec)
        x = ifft2c(recon_kspace)
        p = combination_weights(x)
        recon = jnp.real(combine(x, p))
        ref = d["reference"]
        gain = jnp.real(jnp.vdot(kref_b, recon_kspace[:, band, :])) / ref_energy
        m = {
            "nmse": M.nmse(ref, recon, support),
            "psnr": M.psnr(ref, recon, support),
            "ssim": M.ssim(ref, recon, support),
            "hf_gain": gain,
            "hf_loss": 1.0 - gain,
        }
        arrays = {"recon": np.asarray(recon, np.float32), "losses": np.asarray(losses_b[i])}
        if spec.gfactor == "analytic":
            p_w = mix(np.conj(Lm).T, p)
            g = _raki_gfactor()(kernels, u, point.slope, s, psi=np.eye(d["nc"]), p=p_w,
                                linearisation=spec.linearisation)
            g = np.asarray(getattr(g, "g", g))
            m.update(M.gfactor_summary(g, support))
            arrays["gfactor"] = g.astype(np.float32)
        yield point, {k: float(v) for k, v in m.items()}, arrays


# ----------------------------------------------------------------------------- collect
def _sort_key(row: dict):
    return (row["input"], int(row["R"]), int(row["acs"]), float(row["slope"]), int(row["seed"]), row["metric"])


def collect(out: str | Path, *, figures: bool = True) -> list[dict]:
    """Merge the shards of ``out`` into ``table.csv``, ``summary.md`` and figures.

    Returns:
        The tidy rows (dicts with the :data:`TABLE_COLUMNS`), sorted by
        input, R, acs, slope, seed, metric.
    """
    out = Path(out)
    records = []
    for f in sorted((out / "shards").glob("*.json")):
        records.append(json.loads(f.read_text()))
    rows = []
    for rec in records:
        for metric, value in rec["metrics"].items():
            rows.append({"point_id": rec["point_id"], **rec["params"], "metric": metric, "value": float(value)})
    rows.sort(key=_sort_key)

    def _write_csv(f):
        w = csv.writer(f, lineterminator="\n")
        w.writerow(TABLE_COLUMNS)
        for r in rows:
            w.writerow([r["point_id"], r["input"], r["R"], r["acs"], repr(float(r["slope"])), r["seed"], r["metric"],
                        repr(float(r["value"]))])

    _atomic_write(out / "table.csv", _write_csv)
    _atomic_write(out / "summary.md", lambda f: f.write(summary_markdown(rows)))
    timings = sorted(((r["params"]["input"], r["params"]["R"], r["params"]["acs"], r["params"]["slope"],
                       r["params"]["seed"], r["timings"].get("point_s", float("nan"))) for r in records))
    _atomic_write(out / "timings.csv", lambda f: f.write(
        "input,R,acs,slope,seed,point_s\n" + "".join(",".join(map(str, t)) + "\n" for t in timings)))
    if figures and rows:
        fig = plot_slope(rows)
        fig.savefig(out / "sweep_slope.png", dpi=100)
    return rows


def read_table(path: str | Path) -> list[dict]:
    """Read a ``table.csv`` written by :func:`collect` back into typed rows."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["R"], r["acs"], r["seed"] = int(r["R"]), int(r["acs"]), int(r["seed"])
        r["slope"], r["value"] = float(r["slope"]), float(r["value"])
    return rows


def wide(rows: Iterable[dict]) -> list[dict]:
    """One dict per point (params + every metric) from tidy rows."""
    pts: dict[str, dict] = {}
    for r in rows:
        d = pts.setdefault(r["point_id"], {k: r[k] for k in ("input", "R", "acs", "slope", "seed")})
        d[r["metric"]] = r["value"]
    return sorted(pts.values(), key=lambda d: (d["input"], d["R"], d["acs"], d["slope"], d["seed"]))


def summary_markdown(rows: Iterable[dict]) -> str:
    """Markdown table, one row per point."""
    w = wide(rows)
    if not w:
        return "(no finished points)\n"
    metrics = [m for m in METRICS if any(m in d for d in w)]
    metrics += sorted({k for d in w for k in d} - set(metrics) - {"input", "R", "acs", "slope", "seed"})
    head = ["input", "R", "acs", "slope", "seed"] + metrics
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in w:
        cells = [str(d[k]) for k in head[:5]] + [f"{d[m]:.4g}" if m in d else "" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_slope(rows: Iterable[dict], metrics: Sequence[str] = ("gfactor_mean", "gfactor_p95", "nmse", "hf_loss")):
    """Metrics vs slope, one line per (input, R, ACS), mean over seeds (+- std)."""
    from matplotlib.figure import Figure

    w = wide(rows)
    metrics = [m for m in metrics if any(m in d for d in w)] or sorted({k for d in w for k in d} - {"input", "R", "acs", "slope", "seed"})[:4]
    fig = Figure(figsize=(4 * len(metrics), 3.4), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    curves = sorted({(d["input"], d["R"], d["acs"]) for d in w})
    for ax, m in zip(axes, metrics):
        for c in curves:
            sl = sorted({d["slope"] for d in w if (d["input"], d["R"], d["acs"]) == c})
            vals = [[d[m] for d in w if (d["input"], d["R"], d["acs"]) == c and d["slope"] == s and m in d] for s in sl]
            mean = [np.mean(v) if v else np.nan for v in vals]
            std = [np.std(v) if v else np.nan for v in vals]
            lab = f"R={c[1]} ACS={c[2]}" + (f" {c[0]}" if len({x[0] for x in curves}) > 1 else "")
            ax.errorbar(sl, mean, yerr=std, marker="o", ms=3, capsize=2, label=lab)
        ax.set_xlabel("negative slope a")
        ax.set_title(m)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return fig


# ----------------------------------------------------------------------------- command line
def _floats(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x.strip()]


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def spec_from_args(args) -> SweepSpec:
    """Spec from a file (optional) with command-line overrides."""
    d: dict = {}
    base = None
    if args.spec:
        p = Path(args.spec)
        base = p.parent
        d = read_spec_file(p)
    if args.small:  # CI-sized defaults (the same setting as the experiments' --small)
        d.setdefault("inputs", [{"phantom": {"n": 24, "ncoils": 4, "seed": 3}}])
        d.setdefault("R", [2])
        d.setdefault("acs", [8])
        raki_over = d.setdefault("raki", {})
        raki_over.setdefault("steps", 40)
        raki_over.setdefault("widths", [8, 4])
    for name, conv in (("slopes", _floats), ("R", _ints), ("acs", _ints), ("seeds", _ints)):
        v = getattr(args, name)
        if v is not None:
            d[name] = conv(v)
    if args.phantom is not None:
        n, nc = (_ints(args.phantom) + [8])[:2]
        d["inputs"] = [{"phantom": {"n": n, "ncoils": nc, "seed": 0}}]
    if args.input:
        d["inputs"] = [{"file": f, "slices": _ints(args.slices)} for f in args.input]
    if args.preset:
        d["preset"] = args.preset
    if args.steps is not None:
        d.setdefault("raki", {})["steps"] = args.steps
    if args.gfactor:
        d["gfactor"] = args.gfactor
    if args.linearisation:
        d["linearisation"] = args.linearisation
    if args.name:
        d["name"] = args.name
    return SweepSpec.from_dict(d, base_dir=base)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rakijax sweep", description="Resumable sweeps over slope x R x ACS x seed x input.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run (or resume) a sweep; finished points are skipped")
    r.add_argument("spec", nargs="?", help="sweep spec (.toml or .json); flags below override it")
    r.add_argument("--out", "-o", required=True, help="output folder (shards, table.csv, figures)")
    r.add_argument("--slopes", help="comma-separated negative slopes, e.g. 0,0.25,0.5,1")
    r.add_argument("--R", help="comma-separated acceleration factors")
    r.add_argument("--acs", help="comma-separated ACS widths")
    r.add_argument("--seeds", help="comma-separated seeds")
    r.add_argument("--phantom", help="built-in phantom 'N,NCOILS' (e.g. 256,16)")
    r.add_argument("--input", "-i", action="append", help="fully sampled file (repeatable)")
    r.add_argument("--slices", default="0", help="comma-separated slices of --input files")
    r.add_argument("--preset", choices=("small", "default"))
    r.add_argument("--steps", type=int, help="RAKI training steps")
    r.add_argument("--gfactor", choices=("analytic", "none"))
    r.add_argument("--linearisation", choices=("true", "frozen"))
    r.add_argument("--name")
    r.add_argument("--small", action="store_true", help="CI-sized defaults (24x24 phantom, 4 coils, R=2, 8 ACS, widths 8,4, 40 steps)")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--workers", "-w", type=int, help="run on a dask LocalCluster with N worker processes")
    g.add_argument("--scheduler", "-s", help="run on an existing dask scheduler (address)")
    r.add_argument("--threads", type=int, default=1, help="threads per LocalCluster worker")
    r.add_argument("--max-points", type=int, help="stop after writing this many points")
    r.add_argument("--no-collect", action="store_true", help="do not write table/figures at the end")
    r.add_argument("--progress", action="store_true")
    c = sub.add_parser("collect", help="merge shards into table.csv, summary.md, sweep_slope.png")
    c.add_argument("out")
    c.add_argument("--no-figures", action="store_true")
    p = sub.add_parser("plan", help="list the points of a spec, their ids and whether they are done")
    p.add_argument("spec")
    p.add_argument("--out", "-o")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """``rakijax sweep {run,collect,plan}`` (see ``experiments/README.md``)."""
    args = build_parser().parse_args(argv)
    if args.cmd == "collect":
        rows = collect(args.out, figures=not args.no_figures)
        print(f"{len(rows)} rows from {len({r['point_id'] for r in rows})} points -> {Path(args.out) / 'table.csv'}")
        return 0
    if args.cmd == "plan":
        spec = load_spec(args.spec)
        done = finished_ids(args.out) if args.out else set()
        for i, grp in enumerate(spec.groups()):
            for pt in grp:
                pid = point_id(spec, pt)
                print(f"group {i}  {pid}  {'done' if pid in done else 'todo'}  {pt.params()}")
        return 0
    spec = spec_from_args(args)
    if args.workers or args.scheduler:
        from .sweep_dask import run_dask

        n = run_dask(spec, args.out, scheduler=args.scheduler, workers=args.workers or 2,
                     threads_per_worker=args.threads, max_points=args.max_points)
    else:
        n = run(spec, args.out, max_points=args.max_points, progress=args.progress)
    total = len(spec.points())
    done = len(finished_ids(args.out) & {point_id(spec, p) for p in spec.points()})
    print(f"wrote {len(n)} points; {done}/{total} of the sweep finished in {args.out}")
    if not args.no_collect:
        collect(args.out)
    return 0 if done == total or args.max_points else 1
