"""Noise analysis: analytic g-factor maps (GRAPPA, RAKI), dense autodiff and Monte Carlo references.

* :mod:`.combine` - coil combination weights, the one ``g`` formula, psi checks.
* :mod:`.result` - :class:`GFactorResult`, returned by GRAPPA and RAKI alike.
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
from .combine import gfactor_from_variance
from .combine import noise_covariance
from .grappa import grappa_cov
from .grappa import grappa_gfactor
from .linearise import Linearisation
from .linearise import linearise
from .maps import coil_covariance_maps
from .maps import raki_gfactor
from .reference import jacobian_cov
from .reference import monte_carlo_variance
from .reference import pseudo_replica_variance
from .result import GFactorResult

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
    "grappa_cov",
    "grappa_gfactor",
    "jacobian_cov",
    "linearise",
    "monte_carlo_variance",
    "noise_bands",
    "noise_covariance",
    "pseudo_replica_variance",
    "raki_gfactor",
]
