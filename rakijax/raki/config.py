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
    Dawood 2024 (2x5, 1x1, 1x5 kernels; 128 and 64 hidden channels) and a
    training recipe chosen by measurement (``benchmarks/raki_speed.py``, results
    in ``benchmarks/results/raki_speed_cpu.md``): full-batch Adam from a smaller
    initialisation than complex He (500 steps at 2e-3 from ``init_scale =
    1/sqrt(3)``, in place of 2000 steps at 1e-3 from ``init_scale = 1``). The fit
    is under-fitted long after the ACS loss looks flat (a lower loss gave a lower
    image NMSE in every case measured), so what matters is how fast the loss goes
    down. The He scale starts the network far from the data and cost Adam ~4x
    more steps than the variance of the reference's PyTorch default init, which
    ``init_scale = 1/sqrt(3)`` reproduces; the data scale against Adam's ``eps``
    made no difference (scaling the ACS by 100 changed the NMSE by < 0.1%).

    Attributes:
        widths: channels of the hidden layers (one entry per hidden layer).
        kernels: ``(kh, kw)`` of every layer, one more than ``widths`` (the last is
            the output layer); ``kh`` counts acquired lines (reduced-grid rows).
        steps: full-batch optimiser steps (Adam steps, or L-BFGS iterations), >= 1.
            More steps keep lowering the ACS loss and the image NMSE; pass more
            for the last few percent, fewer for quick looks.
        learning_rate: Adam step size on the ACS scaled to ``max|acs| = 1``
            (unused by L-BFGS, which line-searches). Adam's steps are invariant to
            the loss scale, so the value carries over between scans.
        optimizer: ``"adam"`` (optax.adam on the complex kernels, one step size per
            complex weight) or ``"lbfgs"`` (optax.lbfgs with a zoom line search on
            the real and imaginary parts).
        lbfgs_memory, linesearch_steps: L-BFGS history length and the most
            function evaluations of one line search.
        b1, b2, eps: Adam moment decays and denominator offset.
        init_scale: multiplies the complex He initialisation
            (``E|w|^2 = init_scale^2 * 2 / fan_in``); ``1/sqrt(3)`` gives the
            variance of PyTorch's default conv init on separate real and
            imaginary filters (Kaiming-uniform, ``a = sqrt(5)``).
        param_dtype: ``"complex64"``, ``"complex128"`` or ``None`` (follow the
            ACS dtype: complex128 for float64/complex128 input, else complex64).
        log_every: steps between loss checks / log lines / progress-bar updates
            of :func:`rakijax.raki.train`.
    """

    widths: tuple[int, ...] = (128, 64)
    kernels: tuple[tuple[int, int], ...] = ((2, 5), (1, 1), (1, 5))
    steps: int = 500
    learning_rate: float = 2e-3
    optimizer: str = "adam"
    lbfgs_memory: int = 10
    linesearch_steps: int = 20
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    init_scale: float = 3**-0.5
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

    def kernel_shapes(self, ncoils: int, R: int) -> list[tuple[int, int, int, int]]:
        """Kernel shapes ``(cout, cin, kh, kw)`` for ``ncoils`` coils at acceleration ``R``."""
        chans = [ncoils, *self.widths, (R - 1) * ncoils]
        return [(chans[i + 1], chans[i], *self.kernels[i]) for i in range(len(self.kernels))]
