"""Sweep specifications: the grid ``slopes x R x ACS x seeds x inputs`` and stable point ids.

A sweep is a grid declared by a frozen :class:`SweepSpec` (from a TOML/JSON file, a dict or
command-line flags). Its points are grouped by *shape*: points with the same input, ``R``
and ACS width differ only in the traced numbers (slope, PRNG seed) and are trained together
(:mod:`rakijax.sweep.group`). :func:`point_id` is a stable hash of everything that
determines a point's result, so finished points are recognised on a resume.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ReconConfig, preset
from ..data import brain_phantom, load
from ..raki.config import RakiConfig

__all__ = ["InputSpec", "SweepPoint", "SweepSpec", "point_id", "load_spec", "read_spec_file", "SHARD_VERSION"]

#: bumped when the meaning of a shard changes (part of every point id).
SHARD_VERSION = 1


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
        kw = {} if inp.noise_level is None else {"noise_level": inp.noise_level}
        return brain_phantom(inp.n, inp.ncoils, seed=inp.seed, **kw)
    return load(inp.path, slice=inp.slice, key=inp.key)


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
        preset: a named preset of :data:`rakijax.config.PRESETS` whose RAKI network and
            training the sweep uses (``"default"`` is read as ``"paper"``: ``RakiConfig()``).
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
        if self.preset == "default":
            object.__setattr__(self, "preset", "paper")
        preset(self.preset)  # raises on an unknown name
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

    def raki_config(self) -> RakiConfig:
        """The resolved :class:`rakijax.raki.RakiConfig` (the preset's, with the overrides)."""
        base = preset(self.preset).raki
        return dataclasses.replace(base, **dict(self.raki)) if self.raki else base

    def recon_config(self, point: "SweepPoint") -> ReconConfig:
        """The :class:`~rakijax.config.ReconConfig` of one point (what ``rakijax recon`` would run)."""
        return ReconConfig(method="raki", R=point.R, acs=point.acs, slope=point.slope, seed=point.seed,
                           raki=self.raki_config(), gfactor=self.gfactor, linearisation=self.linearisation)

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
        "v": SHARD_VERSION,
        "input": point.input.identity(),
        "R": point.R,
        "acs": point.acs,
        "slope": repr(float(point.slope)),
        "seed": point.seed,
        "method": spec.method(),
    }
    s = json.dumps(ident, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(s.encode()).hexdigest()[:16]
