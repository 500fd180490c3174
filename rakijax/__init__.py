"""rakijax: GRAPPA and complex RAKI in JAX with exact image-space form and g-factor maps.

The verbs a user needs, one per line; everything else lives in its module
(``rakijax.pipeline``, ``rakijax.gfactor``, ``rakijax.image_space``, ...).
"""

__version__ = "0.1.0"

from .config import PRESETS
from .config import ReconConfig
from .config import preset
from .data import KSpaceData
from .data import brain_phantom
from .data import load
from .gfactor import grappa_gfactor
from .gfactor import raki_gfactor
from .image_space import ImageSpaceRaki
from .methods import Grappa
from .methods import Raki
from .pipeline import gfactor_map
from .pipeline import prepare
from .pipeline import reconstruct
from .raki import RakiConfig
from .sampling import make_sampling
from .sampling import undersample

__all__ = [
    "Grappa",
    "ImageSpaceRaki",
    "KSpaceData",
    "PRESETS",
    "Raki",
    "RakiConfig",
    "ReconConfig",
    "brain_phantom",
    "gfactor_map",
    "grappa_gfactor",
    "load",
    "make_sampling",
    "preset",
    "prepare",
    "raki_gfactor",
    "reconstruct",
    "undersample",
]
