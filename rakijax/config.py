"""Configuration of a reconstruction, and the one set of named presets.

:class:`ReconConfig` is everything that determines one reconstruction (method, sampling,
g-factor analysis, seed); it is a frozen dataclass validated on construction, recorded in
every run folder (:meth:`ReconConfig.to_dict`). :data:`PRESETS` are the named problem
sizes every door into rakijax uses (the CLI's ``--preset``/``--small``, the demo, sweeps,
experiments, notebooks and tests), so that "small" means one thing:

=========  =========  =====  =======  ============  ====================  ========
preset     phantom    coils  R / ACS  RAKI widths   RAKI training         replicas
=========  =========  =====  =======  ============  ====================  ========
``ci``     24 x 24    4      2 / 8    (8, 4)        40 steps, lr 1e-2     20
``small``  64 x 64    8      4 / 24   (32, 8)       500 steps, lr 1e-2    50
``demo``   160 x 160  16     4 / 24   (64, 32)      ``RakiConfig`` default 200
``paper``  256 x 256  16     4 / 24   (128, 64)     ``RakiConfig`` default 1000
=========  =========  =====  =======  ============  ====================  ========

``ci`` checks that code runs (seconds), not the science; ``paper`` is the network and
phantom of the paper (Akcakaya 2019; Dawood 2024). Every preset keeps the other
``RakiConfig`` defaults, the least-squares last-layer initialisation included (the
``ci``/``small`` step counts and learning rates were set before it; the auto-slope
experiment on ``small`` was re-run with it, ``benchmarks/results/auto_slope_cpu.md``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from .data.synthetic import brain_phantom
from .raki.config import RakiConfig

__all__ = ["ReconConfig", "Preset", "PRESETS", "preset", "jsonable"]

Method = Literal["grappa", "raki"]
GFactorMethod = Literal["analytic", "montecarlo", "autodiff", "none"]
LinearisationMode = Literal["true", "frozen"]

METHODS: tuple[str, ...] = get_args(Method)
GFACTOR_METHODS: tuple[str, ...] = get_args(GFactorMethod)
LINEARISATIONS: tuple[str, ...] = get_args(LinearisationMode)


def _is_int(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, np.integer))


@dataclass(frozen=True)
class ReconConfig:
    """Configuration of one reconstruction (validated on construction).

    Attributes:
        method: ``"grappa"`` or ``"raki"``.
        R: acceleration factor (integer >= 1). ``None``: taken from the data's sampling
            pattern (accelerated input).
        acs: contiguous ACS lines centred on ``Ny//2``; ``None``: from the data.
        slope: negative slope ``a`` of the complex leaky ReLU (RAKI), ``0 <= a <= 1``.
        gfactor: ``"analytic"`` (exact linear response), ``"montecarlo"`` (pseudo-replicas),
            ``"autodiff"`` (dense ``jax.jacfwd``, small grids) or ``"none"``.
        linearisation: RAKI analytic map: ``"true"`` (widely-linear derivative) or
            ``"frozen"`` (the paper's frozen activation masks).
        replicas: Monte Carlo pseudo-replicas (``>= 2``).
        mc_noise_scale: Monte Carlo noise standard deviation relative to ``Psi`` (``> 0``;
            small values probe the linear response).
        mc_chunk: replicas per batched call (memory bound).
        seed: seed of every PRNG key (RAKI initialisation, Monte Carlo noise).
        raki: RAKI architecture and training.
        grappa_kernel: GRAPPA kernel (acquired lines in ky, points in kx).
        grappa_lambda: GRAPPA Tikhonov regularisation; ``None`` = library default.
        offset: first acquired line; ``None`` = ``(Ny//2) % R`` (centre line acquired).
        prewhiten: reconstruct in the prewhitened coil basis.
        reinsert_acs: put the acquired ACS lines back into the output k-space; ``None``:
            on for accelerated input, off for retrospective studies (DESIGN.md).
        autodiff_max_gib: largest dense Jacobian (GiB) that ``gfactor="autodiff"`` builds.
        progress: show progress bars (training, Monte Carlo).
    """

    method: Method = "grappa"
    R: int | None = 4
    acs: int | None = 24
    slope: float = 0.5
    gfactor: GFactorMethod = "analytic"
    linearisation: LinearisationMode = "true"
    replicas: int = 1000
    mc_noise_scale: float = 1.0
    mc_chunk: int = 50
    seed: int = 0
    raki: RakiConfig = field(default_factory=RakiConfig)
    grappa_kernel: tuple[int, int] = (2, 5)
    grappa_lambda: float | None = None
    offset: int | None = None
    prewhiten: bool = True
    reinsert_acs: bool | None = None
    autodiff_max_gib: float = 2.0
    progress: bool = False

    def __post_init__(self):
        _choice("method", self.method, METHODS)
        _choice("gfactor", self.gfactor, GFACTOR_METHODS)
        _choice("linearisation", self.linearisation, LINEARISATIONS)
        if self.R is not None and (not _is_int(self.R) or self.R < 1):
            raise ValueError(f"acceleration R must be an integer >= 1, got R={self.R!r}")
        if self.acs is not None and (not _is_int(self.acs) or self.acs < 0):
            raise ValueError(f"ACS lines must be a non-negative integer, got acs={self.acs!r}")
        if not (0.0 <= float(self.slope) <= 1.0):
            raise ValueError(f"negative slope must lie in [0, 1], got slope={self.slope!r}")
        if not _is_int(self.replicas) or self.replicas < 2:
            raise ValueError(f"Monte Carlo needs at least 2 replicas, got replicas={self.replicas!r}")
        if not (np.isfinite(self.mc_noise_scale) and self.mc_noise_scale > 0):
            raise ValueError(f"mc_noise_scale must be a positive number, got {self.mc_noise_scale!r}")
        if not _is_int(self.mc_chunk) or self.mc_chunk < 1:
            raise ValueError(f"mc_chunk must be a positive integer, got {self.mc_chunk!r}")
        if not isinstance(self.raki, RakiConfig):
            raise ValueError(f"raki must be a RakiConfig, got {type(self.raki).__name__}")
        kern = tuple(int(k) for k in self.grappa_kernel)
        if len(kern) != 2 or min(kern) < 1:
            raise ValueError(f"grappa_kernel must be (lines in ky, points in kx) >= 1, got {self.grappa_kernel!r}")
        if self.grappa_lambda is not None and not float(self.grappa_lambda) >= 0:
            raise ValueError(f"grappa_lambda must be >= 0, got {self.grappa_lambda!r}")
        if not self.autodiff_max_gib > 0:
            raise ValueError(f"autodiff_max_gib must be positive, got {self.autodiff_max_gib}")
        object.__setattr__(self, "grappa_kernel", kern)
        object.__setattr__(self, "slope", float(self.slope))

    def replace(self, **changes) -> "ReconConfig":
        """A copy with ``changes`` (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-friendly dictionary of the resolved configuration."""
        return jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "ReconConfig":
        """The configuration :meth:`to_dict` wrote (unknown keys are an error).

        Raises:
            ValueError: unknown keys or invalid values.
        """
        d = dict(d)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown ReconConfig keys {sorted(unknown)}")
        if isinstance(d.get("raki"), dict):
            d["raki"] = RakiConfig(**d["raki"])
        if d.get("grappa_kernel") is not None:
            d["grappa_kernel"] = tuple(d["grappa_kernel"])
        return cls(**d)


def _choice(name: str, value, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def jsonable(x):
    """``x`` with tuples as lists, numpy scalars/arrays as Python numbers/lists, NaN/Inf as
    ``None`` and anything else unknown as its ``str`` (for JSON files)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if np.isfinite(x) else None
    if x is None or isinstance(x, str):
        return x
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return jsonable(dataclasses.asdict(x))
    return str(x)


@dataclass(frozen=True)
class Preset:
    """A named problem size: the phantom, the sampling, the RAKI network and Monte Carlo.

    Attributes:
        name: the preset's name (a key of :data:`PRESETS`).
        n, ncoils, phantom_seed: the built-in phantom (``brain_phantom(n, ncoils, seed=...)``).
        R, acs, slope: sampling and RAKI slope.
        raki: the RAKI network and its training.
        replicas: Monte Carlo pseudo-replicas.
    """

    name: str
    n: int
    ncoils: int
    phantom_seed: int
    R: int
    acs: int
    slope: float
    raki: RakiConfig
    replicas: int

    def recon_config(self, **changes) -> ReconConfig:
        """The :class:`ReconConfig` of this preset (``changes`` override its fields)."""
        base = dict(R=self.R, acs=self.acs, slope=self.slope, raki=self.raki, replicas=self.replicas)
        return ReconConfig(**{**base, **changes})

    def phantom(self, **kw):
        """The preset's phantom (:func:`rakijax.data.brain_phantom`); ``kw`` overrides."""
        return brain_phantom(self.n, self.ncoils, **{"seed": self.phantom_seed, **kw})


PRESETS: dict[str, Preset] = {
    "ci": Preset("ci", 24, 4, 3, 2, 8, 0.5, RakiConfig(widths=(8, 4), steps=40, learning_rate=1e-2), 20),
    "small": Preset("small", 64, 8, 0, 4, 24, 0.5, RakiConfig(widths=(32, 8), steps=500, learning_rate=1e-2), 50),
    "demo": Preset("demo", 160, 16, 0, 4, 24, 0.5, RakiConfig(widths=(64, 32)), 200),
    "paper": Preset("paper", 256, 16, 0, 4, 24, 0.5, RakiConfig(), 1000),
}


def preset(name: str) -> Preset:
    """The named preset (``ci``, ``small``, ``demo``, ``paper``).

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
