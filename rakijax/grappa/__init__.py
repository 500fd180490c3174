"""GRAPPA: Tikhonov calibration on the ACS, circular k-space application, image-space weights.

References: Griswold 2002 (GRAPPA); Breuer 2009 (image-space weights:
:func:`rakijax.image_space.weights.linear_unmixing`; g-factor: :mod:`rakijax.gfactor.grappa`).
"""

from .apply import apply
from .apply import reconstruct
from .calibrate import calibrate
from .calibrate import source_matrix

__all__ = [
    "apply",
    "calibrate",
    "reconstruct",
    "source_matrix",
]
