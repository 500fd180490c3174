"""Frozen configuration of a RAKI network and its training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RakiConfig"]

_DTYPES = (None, "complex64", "complex128")
_OPTIMIZERS = ("adam", "lbfgs")


@dataclass(frozen=True)
class RakiConfig:
    """Architecture and training settings of a complex RAKI network.

    The network is ``y = W_L * s_a(... s_a(W_1 * u))`` on the reduced grid
    (see :mod:`rakijax.kspace_net`), without biases, with ``len(widths)`` hidden
    layers: ``Nc -> widths[0] -> ... -> widths[-1] -> (R-1)*Nc``.

    The defaults are the architecture of the reference code of Akcakaya 2019 /
    Dawood 2024 (2x5, 1x1, 1x5 kernels; 128 and 64 hidden channels). The
    learning rate and step count were chosen on the built-in 256x256 16-coil
    phantom (``benchmarks/raki_grid.py``): see ``steps`` and ``learning_rate``.

    Attributes:
        widths: channels of the hidden layers (one entry per hidden layer).
        kernels: ``(kh, kw)`` of every layer, one more than ``widths`` (the last is
            the output layer); ``kh`` counts acquired lines (reduced-grid rows).
        steps: full-batch Adam steps (>= 1). Default 2000: RAKI keeps improving
            with training long after the ACS loss looks flat, and 500 steps
            under-fit (the reason RAKI lost to GRAPPA in early runs). Cost of the
            paper-size net on the 256x256 16-coil phantom: ~0.8 ms/step on an H100
            (2000 steps ~1.6 s + ~3 s compile), ~0.18 s/step on a 2-core CPU
            (~6 min); pass fewer steps for quick looks.
        learning_rate: Adam step size on the ACS scaled to ``max|acs| = 1``.
            Adam's steps are invariant to the loss scale, so the value carries
            over between scans. Chosen from the grid lr {1e-3, 3e-3} x steps
            {500 ... 4000} x slopes {0.1, 0.5, 1} at R=4 (24, 40 ACS) and R=5
            (24 ACS), paper-size net, on an H100
            (``benchmarks/results/h100/grid/grid.md``): at 1e-3 the NMSE of every
            slope < 1 falls monotonically with the steps, and from 2000 steps every
            slope < 1 beats GRAPPA in all three cases (R=4/24: 3.39e-3 and 3.27e-3 at slopes 0.1
            and 0.5 vs GRAPPA 3.70e-3; R=4/40: 2.48e-3, 2.96e-3 vs 3.61e-3; R=5/24:
            8.0e-3, 9.3e-3 vs 2.22e-2). 3e-3 gets there in fewer steps but Adam
            occasionally jumps late in training (slope 0.1 at R=4/24: 3.64e-3 at
            1000 steps, 4.27e-3 at 2000, 3.03e-3 at 4000). The small preset uses
            1e-2 (its 300-500 step runs under-fit at lower rates).
        optimizer: only ``"adam"`` (optax.adam) is supported.
        b1, b2, eps: Adam moment decays and denominator offset.
        init_scale: multiplies the complex He initialisation
            (``E|w|^2 = init_scale^2 * 2 / fan_in``).
        param_dtype: ``"complex64"``, ``"complex128"`` or ``None`` (follow the
            ACS dtype: complex128 for float64/complex128 input, else complex64).
        log_every: steps per jit-compiled chunk of :func:`rakijax.raki.train`
            (progress bar / log granularity; also when NaN losses are checked).
    """

    widths: tuple[int, ...] = (128, 64)
    kernels: tuple[tuple[int, int], ...] = ((2, 5), (1, 1), (1, 5))
    steps: int = 2000
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    lbfgs_memory: int = 10
    linesearch_steps: int = 20
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    init_scale: float = 1.0
    param_dtype: str | None = None
    log_every: int = 100

    def __post_init__(self):
        # normalise lists to tuples so the config stays hashable (jit static arg)
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "kernels", tuple(tuple(int(k) for k in ks) for ks in self.kernels))
        if len(self.widths) < 1 or any(w < 1 for w in self.widths):
            raise ValueError(f"widths must be one or more positive integers, got {self.widths}")
        if len(self.kernels) != len(self.widths) + 1:
            raise ValueError(
                f"need one kernel size per layer: {len(self.widths)} hidden widths need "
                f"{len(self.widths) + 1} kernels, got {len(self.kernels)} ({self.kernels})"
            )
        if any(len(k) != 2 or min(k) < 1 for k in self.kernels):
            raise ValueError(f"kernel sizes must be pairs (kh, kw) of positive integers, got {self.kernels}")
        if int(self.steps) != self.steps or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be positive and finite, got {self.learning_rate!r}")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        for name in ("lbfgs_memory", "linesearch_steps"):
            v = getattr(self, name)
            if int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
            object.__setattr__(self, name, int(v))
        if not (0 <= self.b1 < 1 and 0 <= self.b2 < 1 and self.eps >= 0):
            raise ValueError(f"bad Adam parameters b1={self.b1}, b2={self.b2}, eps={self.eps}")
        if not (np.isfinite(self.init_scale) and self.init_scale > 0):
            raise ValueError(f"init_scale must be positive, got {self.init_scale!r}")
        if self.param_dtype not in _DTYPES:
            raise ValueError(f"param_dtype must be one of {_DTYPES}, got {self.param_dtype!r}")
        if int(self.log_every) != self.log_every or self.log_every < 1:
            raise ValueError(f"log_every must be a positive integer, got {self.log_every!r}")
        object.__setattr__(self, "steps", int(self.steps))
        object.__setattr__(self, "log_every", int(self.log_every))

    @classmethod
    def small(cls, **overrides) -> "RakiConfig":
        """The small preset (hidden widths 32 and 8, learning rate 1e-2, 500 steps) for tests and quick runs."""
        return cls(**{"widths": (32, 8), "learning_rate": 1e-2, "steps": 500, **overrides})

    def kernel_shapes(self, ncoils: int, R: int) -> list[tuple[int, int, int, int]]:
        """Kernel shapes ``(cout, cin, kh, kw)`` for ``ncoils`` coils at acceleration ``R``."""
        chans = [ncoils, *self.widths, (R - 1) * ncoils]
        return [(chans[i + 1], chans[i], *self.kernels[i]) for i in range(len(self.kernels))]
