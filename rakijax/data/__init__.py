"""Multi-coil k-space data: the container, file loaders and the built-in phantom.

Everything is returned as :class:`KSpaceData` in the canonical ``(coil, ky, kx)``
layout (``ky`` = phase encoding, axis -2).
"""

from .bart import read_cfl, write_cfl
from .container import KSpaceData
from .loaders import load
from .synthetic import brain_phantom

__all__ = [
    "KSpaceData",
    "load",
    "read_cfl",
    "write_cfl",
    "brain_phantom",
]
