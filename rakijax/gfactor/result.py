"""The one g-factor result type of rakijax, for GRAPPA and RAKI alike."""

from __future__ import annotations

import dataclasses

import jax

from .bands import Bands

__all__ = ["GFactorResult"]


@dataclasses.dataclass(frozen=True)
class GFactorResult:
    """Analytic g-factor map of a reduced-grid network (GRAPPA or RAKI).

    Attributes:
        g: (Ny, Nx) g-factor map (for RAKI the linear response, per the linearisation).
        cov: (Nc, Nc, Ny, Nx) coil covariance per unit input noise, or ``None``
            (``return_cov=False``).
        linearisation: ``"true"`` or ``"frozen"`` for RAKI; ``None`` for GRAPPA (linear,
            nothing to linearise).
        p: (Nc, Ny, Nx) combination weights used.
        bands: the :class:`~rakijax.gfactor.bands.Bands` (band coefficients) of the RAKI
            route; ``None`` for GRAPPA (Breuer's per-pixel formula needs none).
        beta_fraction: fraction of hidden activations with ``beta != 0`` (true
            linearisation); NaN otherwise.
    """

    g: jax.Array
    cov: jax.Array | None
    linearisation: str | None
    p: jax.Array
    bands: Bands | None
    beta_fraction: float = float("nan")
