"""Noise analysis: analytic g-factor maps (GRAPPA, RAKI), dense autodiff and Monte Carlo references.

* :mod:`.combine` - coil combination weights and ``g`` from per-pixel coil covariance.
* :mod:`.grappa` - Breuer's per-pixel GRAPPA formula ``Cov = G Psi G^H / R``.
* :mod:`.linearise` - RAKI linearisations at the data: ``"true"`` derivative / ``"frozen"`` masks.
* :mod:`.bands` - exact band coefficients of the reconstructed k-space noise covariance.
* :mod:`.maps` - full-resolution coil covariance and g-factor maps (``raki_gfactor``).
* :mod:`.reference` - dense ``jax.jacfwd`` covariance and Monte Carlo pseudo-replicas.
"""

from .bands import Bands
from .bands import band_extent
from .bands import noise_bands
from .combine import combination_weights
from .combine import combine
from .combine import combined_variance
from .combine import gfactor_from_cov
from .linearise import Linearisation
from .linearise import linearise
from .maps import GFactorResult
from .maps import coil_covariance_maps
from .maps import raki_gfactor
from .reference import gfactor_from_variance
from .reference import jacobian_cov
from .reference import monte_carlo_variance

__all__ = [
    "Bands",
    "GFactorResult",
    "Linearisation",
    "band_extent",
    "coil_covariance_maps",
    "combination_weights",
    "combine",
    "combined_variance",
    "gfactor_from_cov",
    "gfactor_from_variance",
    "jacobian_cov",
    "linearise",
    "monte_carlo_variance",
    "noise_bands",
    "raki_gfactor",
]

try:  # helper-owned module; present on main from the GRAPPA issue
    from .grappa import grappa_cov  # noqa: F401
    from .grappa import grappa_gfactor  # noqa: F401

    __all__ += ["grappa_cov", "grappa_gfactor"]
except ImportError:  # pragma: no cover
    pass
