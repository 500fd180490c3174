"""Step 2 of the pipeline: calibrate a method on the ACS and reconstruct the slice.

:func:`calibrate` fits the kernels (:meth:`rakijax.methods.Method.calibrate`, in the work
basis); :func:`apply` applies them to the reduced grid and forms, in the scanner's coil
basis, the coil k-space, the coil images ``x`` and the combined image
``rho = sum_c conj(p_c) x_c`` with ``p = x / RSS(x)`` (so ``rho = RSS``; DESIGN.md). It also
keeps the work-basis weights ``p_w = L^H p`` that every g-factor of this reconstruction uses
(:mod:`rakijax.pipeline.prepare`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..fft import ifft2c
from ..gfactor import combination_weights, combine
from ..exports import reinsert_acs as put_back_acs
from ..methods import Fit, Method
from .prepare import Prepared, mix

__all__ = ["Reconstruction", "calibrate", "apply"]


@dataclass
class Reconstruction:
    """A reconstructed slice.

    Attributes:
        kspace_work: (Nc, Ny, Nx) reconstructed coil k-space in the work basis.
        kspace: (Nc, Ny, Nx) the same in the scanner's coil basis.
        coil_images: (Nc, Ny, Nx) ``ifft2c(kspace)``.
        p: (Nc, Ny, Nx) combination weights (scanner basis); ``p_work = L^H p``.
        image: (Ny, Nx) real combined image ``rho`` (= RSS of the coil images).
        apply_s: seconds to apply the kernels.
        reinserted_acs: whether the acquired ACS lines replace their estimates.
    """

    kspace_work: jax.Array
    kspace: jax.Array
    coil_images: jax.Array
    p: jax.Array
    p_work: jax.Array
    image: np.ndarray
    apply_s: float
    reinserted_acs: bool = False


def calibrate(prep: Prepared, method: Method, *, seed: int = 0, progress: bool = False) -> Fit:
    """Fit ``method`` on the ACS block of ``prep`` (PRNG key ``jax.random.PRNGKey(seed)``)."""
    return method.calibrate(prep.acs_block, prep.sampling, key=jax.random.PRNGKey(seed), progress=progress)


def apply(prep: Prepared, method: Method, kernels, *, reinsert_acs: bool = False) -> Reconstruction:
    """Reconstruct the slice of ``prep`` with ``kernels`` and combine the coils.

    With ``reinsert_acs`` the acquired ACS lines replace their estimates in the output
    (:func:`rakijax.exports.reinsert_acs`; a separate ACS reference scan is never reinserted).
    """
    t0 = time.perf_counter()
    k_work = method.apply(kernels, prep.reduced, prep.sampling)
    if reinsert_acs:
        k_work = put_back_acs(k_work, prep.zero_filled, prep.sampling, lines=prep.acquired_lines)
    k_work = jax.block_until_ready(k_work)
    apply_s = time.perf_counter() - t0
    k = prep.to_scanner(k_work)
    x = ifft2c(k)
    p = combination_weights(x)
    p_work = mix(np.conj(prep.L).T, p)
    image = np.real(np.asarray(combine(x, p)))
    return Reconstruction(k_work, k, x, p, jnp.asarray(p_work), image, apply_s, bool(reinsert_acs))
