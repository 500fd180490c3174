"""Exact image-space form of GRAPPA/RAKI networks (Dawood 2024).

Per-pixel weights of k-space kernels, activation masks, the image-space operator,
its frozen-mask linear form with adjoint, the true (widely-linear) derivative, and
inspection figures.
"""

from .weights import kernel_image_weights
from .weights import kernel_phases
from .weights import linear_unmixing
from .weights import output_phases
from .weights import place_outputs
from .weights import shift_phase

from .masks import MODES
from .masks import ActivationMasks
from .masks import activation_masks
from .masks import check_mode
from .masks import full_grid_masks
from .masks import masks_from_preactivations
from .masks import place_on_full_grid
from .masks import split_activation

from .operator import ImageSpaceRaki
from .operator import aliased_images
from .operator import circular_convolve
from .operator import complex_dtype
from .operator import conj_reflect
from .operator import frozen_apply
from .operator import image_parts
from .operator import image_space_apply
from .operator import mask_image_kernel
from .operator import per_pixel_apply

from .linear import ImageSpaceDerivative
from .linear import adjoint_operator
from .linear import frozen_adjoint
from .linear import frozen_operator
from .linear import true_derivative_operator

from .inspect import centre_energy_fraction
from .inspect import mask_statistics
from .inspect import plot_activation_kernels
from .inspect import plot_mask_statistics

__all__ = [
    "activation_masks",
    "ActivationMasks",
    "adjoint_operator",
    "aliased_images",
    "centre_energy_fraction",
    "check_mode",
    "circular_convolve",
    "complex_dtype",
    "conj_reflect",
    "frozen_adjoint",
    "frozen_apply",
    "frozen_operator",
    "full_grid_masks",
    "image_parts",
    "image_space_apply",
    "ImageSpaceDerivative",
    "ImageSpaceRaki",
    "kernel_image_weights",
    "kernel_phases",
    "linear_unmixing",
    "mask_image_kernel",
    "mask_statistics",
    "masks_from_preactivations",
    "MODES",
    "output_phases",
    "per_pixel_apply",
    "place_on_full_grid",
    "place_outputs",
    "plot_activation_kernels",
    "plot_mask_statistics",
    "shift_phase",
    "split_activation",
    "true_derivative_operator",
]
