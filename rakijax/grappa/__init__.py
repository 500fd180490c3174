"""GRAPPA: Tikhonov calibration on the ACS, circular k-space application, image-space weights.

References: Griswold 2002 (GRAPPA); Breuer 2009 (image-space weights, g-factor).
"""

from .apply import apply
from .apply import image_weights
from .apply import reconstruct
from .calibrate import calibrate
from .calibrate import source_matrix

__all__ = [
    "apply",
    "calibrate",
    "image_weights",
    "reconstruct",
    "source_matrix",
]
