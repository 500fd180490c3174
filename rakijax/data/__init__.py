"""Multi-coil k-space data: the container, file loaders and the built-in phantom.

Everything is returned as :class:`KSpaceData` in the canonical ``(coil, ky, kx)``
layout (``ky`` = phase encoding, axis -2), fully sampled (retrospective mode) or
prospectively undersampled (``sampled`` set; accelerated mode). :func:`acquired`
splits either into the sampling, the reduced grid and the ACS block.
"""

from .acquired import Acquired, acquired, stack_acquired
from .bart import read_cfl, write_cfl
from .container import KSpaceData
from .fastmri import write_fastmri
from .loaders import load, load_noise, load_volume, num_slices
from .mrd import write_mrd
from .synthetic import brain_phantom

__all__ = [
    "KSpaceData",
    "Acquired",
    "acquired",
    "stack_acquired",
    "load",
    "load_volume",
    "load_noise",
    "num_slices",
    "read_cfl",
    "write_cfl",
    "write_mrd",
    "write_fastmri",
    "brain_phantom",
]
