"""Frozen configuration of a RAKI network and its training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RakiConfig"]

_DTYPES = (None, "complex64", "complex128")
_OPTIMIZERS = ("adam", "lbfgs")
_INITS = ("random", "lstsq")


@dataclass(frozen=True)
class RakiConfig:
    """Architecture and training settings of a complex RAKI network.

    The network is ``y = W_L * s_a(... s_a(W_1 * u))`` on the reduced grid
    (see :mod:`rakijax.kspace_net`), without biases, with ``len(widths)`` hidden
    layers: ``Nc -> widths[0] -> ... -> widths[-1] -> (R-1)*Nc``.

    The defaults are the architecture of the reference code of Akcakaya 2019 /
    Dawood 2024 (2x5, 1x1, 1x5 kernels; 128 and 64 hidden channels) and a
    training recipe chosen by measurement (``benchmarks/raki_speed.py``, results
    in ``benchmarks/results/raki_speed_cpu.md`` and ``raki_speed_notes.md``):
    full-batch Adam, 350 steps at 3e-3, from a data-dependent initialisation
    (``init="lstsq"``): the hidden layers get the random init below, then the
    last layer, in which the network is linear, is solved in closed form by
    ridge-regularised least squares on the ACS targets
    (:mod:`rakijax.raki.init`). It replaces 500 steps at 2e-3 from the random
    init alone (and, before that, 2000 steps at 1e-3 from complex He): 0.7x (0.18x)
    the steps at an image NMSE within about +-2% of the 500-step recipe (seed
    noise; better on average) and 2-7% below the 2000-step one.

    Why these values. The fit is under-fitted long after the ACS loss looks flat
    (a lower loss gave a lower image NMSE in every case measured), so what
    matters is how fast the loss goes down. The He scale starts the network far
    from the data and cost Adam ~4x more steps than the variance of the
    reference's PyTorch default init, which ``init_scale = 1/sqrt(3)`` reproduces;
    the data scale against Adam's ``eps`` made no difference. The least-squares
    last layer needs a *strong* ridge: the exact (unregularised) solution fits
    the ACS at once (loss ~100x lower than the random start) but generalises
    badly and Adam then moves slowly from it (image NMSE ~1.8x worse after 500
    steps); ``init_ridge`` 1-3 (``lam`` about the mean feature energy) gave the
    fastest descent afterwards, 1e-3..1e-1 were worse, 10-100 tend back towards
    the random start. Re-solving the last layer during training (variable
    projection) did not help.

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
        init: ``"lstsq"`` (hidden layers random as below, last layer the ridge
            least-squares fit to the ACS targets given their features, see
            :mod:`rakijax.raki.init`) or ``"random"`` (every layer random).
        init_ridge: relative ridge of the ``"lstsq"`` init, ``lam = init_ridge *
            trace(F F^H) / K`` (the mean energy of the ``K`` last-layer features
            ``F``); > 0.
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
    steps: int = 350
    learning_rate: float = 3e-3
    optimizer: str = "adam"
    lbfgs_memory: int = 10
    linesearch_steps: int = 20
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    init_scale: float = 3**-0.5
    init: str = "lstsq"
    init_ridge: float = 3.0
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
        if self.init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}, got {self.init!r}")
        if not (np.isfinite(self.init_ridge) and self.init_ridge > 0):
            raise ValueError(f"init_ridge must be positive and finite, got {self.init_ridge!r}")
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
