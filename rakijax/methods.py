"""GRAPPA and RAKI as method objects with one interface.

A method turns the ACS block into kernels (:meth:`calibrate`) and those kernels into the
reconstruction and its analysis, all on the reduced grid (the regularly acquired lines,
``(Nc, Y, Nx)``) in one argument order ``(kernels, reduced, sampling)``:

* :meth:`Method.calibrate` ``(acs_block, sampling, key) -> Fit`` (kernels, loss curve);
* :meth:`Method.apply` ``(kernels, reduced, sampling) -> (Nc, Ny, Nx)`` coil k-space with
  circular k-space edges (Griswold 2002; Akcakaya 2019);
* :meth:`Method.image_space` ``(kernels, reduced, sampling) -> (Nc, Ny, Nx)`` coil images
  computed in image space from the aliased images (Dawood 2024; equals
  ``ifft2c(apply(...))`` to float precision);
* :meth:`Method.analytic_gfactor` the exact linear-response g-factor map
  (:class:`~rakijax.gfactor.GFactorResult`; Breuer 2009 for GRAPPA, the banded exact
  map for RAKI).

Both methods are the same reduced-grid network (:mod:`rakijax.kspace_net`): GRAPPA is one
linear layer (:attr:`slope` 1), RAKI a complex CNN with leaky-ReLU slope ``a``; the
Monte Carlo and autodiff references therefore take ``(kernels, method.slope)`` alike.
At ``R = 1`` there is nothing to calibrate: the kernels are empty and the acquired k-space
is the reconstruction. :func:`method_for` picks the method of a
:class:`~rakijax.config.ReconConfig`, so no caller dispatches on the method's name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import grappa, raki
from .config import ReconConfig
from .fft import ifft2c
from .gfactor import GFactorResult, grappa_gfactor, raki_gfactor
from .image_space import image_space_apply
from .raki.config import RakiConfig
from .sampling import Sampling

__all__ = ["Fit", "Method", "Grappa", "Raki", "method_for"]


@dataclass
class Fit:
    """Calibrated kernels of one scan.

    Attributes:
        kernels: ``[(cout, cin, kh, kw), ...]`` acting on the work coil basis (empty at R = 1).
        losses: RAKI training loss per step, or ``None``.
        seconds: wall time of the calibration / training.
    """

    kernels: list
    losses: np.ndarray | None
    seconds: float


class Method(Protocol):
    """What the pipeline needs of a reconstruction method."""

    name: str
    timing_key: str

    @property
    def slope(self) -> float: ...

    def calibrate(self, acs_block, sampling: Sampling, *, key, progress: bool = False) -> Fit: ...

    def apply(self, kernels: Sequence, reduced, sampling: Sampling): ...

    def image_space(self, kernels: Sequence, reduced, sampling: Sampling): ...

    def analytic_gfactor(self, kernels: Sequence, reduced, sampling: Sampling, *, psi, p,
                         linearisation: str = "true") -> GFactorResult: ...

    def describe(self) -> dict: ...


class _Network:
    """The shared part: R = 1 handling, timing, k-space application."""

    name = "network"
    timing_key = "calibration_s"

    @property
    def slope(self) -> float:
        return 1.0

    def calibrate(self, acs_block, sampling: Sampling, *, key, progress: bool = False) -> Fit:
        """Kernels from the ACS block (blocks until they are computed, for the timing)."""
        t0 = time.perf_counter()
        if sampling.R == 1:
            return Fit([], None, 0.0)
        kernels, losses = self._calibrate(acs_block, sampling, key, progress)
        kernels = [jax.block_until_ready(jnp.asarray(w)) for w in kernels]
        return Fit(kernels, losses, time.perf_counter() - t0)

    def _calibrate(self, acs_block, sampling, key, progress):  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, kernels: Sequence, reduced, sampling: Sampling):
        """Full coil k-space ``(Nc, Ny, Nx)`` from the reduced grid."""
        if sampling.R == 1:
            return jnp.asarray(reduced)
        return self._apply(kernels, reduced, sampling)

    def _apply(self, kernels, reduced, sampling):  # pragma: no cover - abstract
        raise NotImplementedError

    def image_space(self, kernels: Sequence, reduced, sampling: Sampling):
        """Coil images computed in image space from the aliased images (needs ``Ny % R == 0``)."""
        if sampling.R == 1:
            return ifft2c(jnp.asarray(reduced))
        return image_space_apply(list(kernels), reduced, sampling, self.slope)

    def analytic_gfactor(self, kernels: Sequence, reduced, sampling: Sampling, *, psi, p,
                         linearisation: str = "true") -> GFactorResult:
        """Exact linear-response g-factor map (at R = 1 the closed form ``g = 1``)."""
        if sampling.R == 1:
            return grappa_gfactor([], reduced, sampling, psi=psi, p=p)
        return self._analytic_gfactor(kernels, reduced, sampling, psi=psi, p=p, linearisation=linearisation)


@dataclass(frozen=True)
class Grappa(_Network):
    """GRAPPA (Griswold 2002) with Tikhonov-regularised calibration.

    Attributes:
        kernel: (acquired lines in ky, points in kx).
        lamda: Tikhonov regularisation; ``None`` = the library default.
    """

    kernel: tuple[int, int] = (2, 5)
    lamda: float | None = None
    name = "grappa"
    timing_key = "calibration_s"

    def _calibrate(self, acs_block, sampling, key, progress):
        kw = {"kernel": tuple(self.kernel)}
        if self.lamda is not None:
            kw["lamda"] = self.lamda
        return grappa.calibrate(acs_block, sampling, **kw), None

    def _apply(self, kernels, reduced, sampling):
        return grappa.apply(kernels, reduced, sampling)

    def _analytic_gfactor(self, kernels, reduced, sampling, *, psi, p, linearisation):
        """Breuer's per-pixel GRAPPA g-factor (linear: ``linearisation`` is ignored)."""
        return grappa_gfactor(kernels, reduced, sampling, psi=psi, p=p)

    def describe(self) -> dict:
        return {"method": self.name, "grappa_kernel": list(self.kernel), "grappa_lambda": self.lamda}


@dataclass(frozen=True)
class Raki(_Network):
    """Complex RAKI (Akcakaya 2019; Dawood 2024) trained on the ACS.

    Attributes:
        config: architecture and training.
        negative_slope: slope ``a`` of the complex leaky ReLU.
    """

    config: RakiConfig = RakiConfig()
    negative_slope: float = 0.5
    name = "raki"
    timing_key = "train_s"

    @property
    def slope(self) -> float:
        return float(self.negative_slope)

    def _calibrate(self, acs_block, sampling, key, progress):
        tr = raki.train(acs_block, sampling, self.config, self.slope, key=key, progress=progress)
        return tr.kernels, np.asarray(tr.losses)

    def _apply(self, kernels, reduced, sampling):
        return raki.apply(kernels, reduced, sampling, self.slope)

    def _analytic_gfactor(self, kernels, reduced, sampling, *, psi, p, linearisation):
        """The exact banded linear-response map (``"true"`` or ``"frozen"`` linearisation)."""
        return raki_gfactor(kernels, reduced, sampling, self.slope, psi=psi, p=p, linearisation=linearisation)

    def describe(self) -> dict:
        return {"method": self.name, "slope": self.slope}


def method_for(cfg: ReconConfig) -> Method:
    """The method object of a configuration."""
    if cfg.method == "raki":
        return Raki(cfg.raki, cfg.slope)
    return Grappa(cfg.grappa_kernel, cfg.grappa_lambda)
