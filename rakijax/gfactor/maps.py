"""Full-resolution coil covariance and g-factor maps of RAKI (and any reduced-grid network).

From the band coefficients ``s_cc'(D)`` of the reconstructed k-space covariance
(:mod:`.bands`), the per-pixel image-space coil covariance of the centred unitary
inverse FFT is the trigonometric polynomial

    Cov(r) = (1/N) sum_D exp(-2 pi i D.(r - N//2)/N) s(D)        (N = Ny*Nx),

evaluated by placing ``s(D)`` at ``D mod (Ny, Nx)`` (wrapped entries add up) and one
FFT: ``Cov = fftshift(fft2(A)) / N``. With combination weights ``p`` (default
``x/RSS(x)`` of the reconstructed coil images)

    g(r) = sqrt(p^H Cov(r) p) / ( sqrt(p^H Psi p) * sqrt(R) ).

These are the small-noise (linear-response) g-factors of the linearised network
(``"true"`` derivative or ``"frozen"`` masks, :mod:`.linearise`). At realistic noise the
nonlinear network's Monte Carlo g is lower (activations flip under noise; MATH.md 3).

References: Breuer et al. 2009; Robson et al. 2008; Dawood et al. 2024.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp

from ..fft import ifft2c
from ..image_space.masks import check_mode
from ..kspace_net import apply_network
from ..sampling import Sampling
from ..validate import check_reduced
from .bands import Bands, noise_bands
from .combine import combination_weights, gfactor_from_cov, noise_covariance
from .linearise import linearise
from .result import GFactorResult

__all__ = ["coil_covariance_maps", "raki_gfactor"]


def coil_covariance_maps(bands: Bands, shape: tuple[int, int] | None = None):
    """Per-pixel coil covariance ``Cov(r)`` (Nc, Nc, Ny, Nx) from band coefficients.

    Args:
        bands: :class:`Bands` from :func:`~rakijax.gfactor.bands.noise_bands`.
        shape: full grid ``(Ny, Nx)``; default ``bands.shape``.

    Returns:
        Complex (Nc, Nc, Ny, Nx), Hermitian per pixel, per unit input noise.
    """
    shape = tuple(bands.shape if shape is None else shape)
    if len(shape) != 2:
        raise ValueError(f"shape must be (Ny, Nx), got {shape}")
    if shape != tuple(bands.shape):
        raise ValueError(f"bands were computed for the grid {bands.shape}, not {shape}")
    return _cov_maps(bands.s, bands.extent, shape)


@partial(jax.jit, static_argnames=("extent", "shape"))
def _cov_maps(s, extent, shape):
    ny, nx = shape
    my, mx = extent
    iy = jnp.arange(-my, my + 1) % ny
    ix = jnp.arange(-mx, mx + 1) % nx
    A = jnp.zeros(s.shape[:2] + (ny, nx), s.dtype).at[:, :, iy[:, None], ix[None, :]].add(s)
    F = jnp.fft.fft2(A, axes=(-2, -1))
    return jnp.fft.fftshift(F, axes=(-2, -1)) / (ny * nx)


def raki_gfactor(
    kernels: Sequence,
    reduced,
    sampling: Sampling,
    slope,
    *,
    psi=None,
    p=None,
    linearisation: str = "true",
    return_cov: bool = False,
    chunk: int = 8,
    method: str = "spectral",
) -> GFactorResult:
    """Exact analytic g-factor map of a RAKI (or GRAPPA, or any) reduced-grid network.

    Linearises the network at the acquired data ``reduced`` (:func:`linearise`), computes
    the band coefficients of the reconstructed k-space noise covariance exactly
    (:func:`noise_bands`), the per-pixel coil covariance by one FFT
    (:func:`coil_covariance_maps`), and ``g = sqrt(p^H Cov p) / (sqrt(p^H Psi p) sqrt(R))``.

    Args:
        kernels: list of complex kernels ``(cout, cin, kh, kw)``; the last predicts
            ``(R-1)*Nc`` channels (ignored at ``R = 1``).
        reduced: acquired reduced-grid k-space (Nc, Y, X).
        sampling: the sampling (``Ny % R == 0`` required; ``Y = sampling.num_reduced``).
        slope: negative slope of the complex leaky ReLU (1 makes the network linear).
        psi: (Nc, Nc) input noise covariance (default identity); folded in by prewhitening.
        p: (Nc, Ny, Nx) combination weights; default ``x/RSS(x)`` of the reconstructed
            coil images ``x = ifft2c(apply_network(kernels, reduced, sampling, slope))``.
        linearisation: ``"true"`` (default, exact derivative) or ``"frozen"`` (masks).
        return_cov: also return the (Nc, Nc, Ny, Nx) covariance maps.
        chunk: reduced rows per chunk of the band computation (memory bound).
        method: ``"spectral"`` or ``"gram"`` (see :func:`noise_bands`).

    Returns:
        :class:`~rakijax.gfactor.result.GFactorResult`.

    Raises:
        ValueError: bad shapes, ``Ny % R != 0``, unknown linearisation, a bad ``psi``.
    """
    check_mode(linearisation)
    reduced = jnp.asarray(reduced)
    kernels = [jnp.asarray(w) for w in kernels] if sampling.R > 1 else None
    check_reduced(kernels, reduced, sampling)
    nc, Y, X = reduced.shape
    sampling.require_periodic("exact g-factor maps")
    shape = (sampling.ny, X)
    cdt = jnp.result_type(reduced.dtype, jnp.complex64)
    psi_a = noise_covariance(psi, nc, cdt)
    beta_fraction = float("nan")
    if sampling.R == 1:  # nothing to reconstruct: the acquired samples pass through, Cov = Psi
        s = jnp.zeros((nc, nc, 1, 1), cdt).at[:, :, 0, 0].set(Y * X * psi_a)
        bands = Bands(s=s, extent=(0, 0), shape=shape, R=1, mode=linearisation)
        x = ifft2c(reduced)
    else:
        lin = linearise(kernels, reduced, sampling, slope, mode=linearisation)
        if linearisation == "true":
            beta_fraction = lin.beta_fraction
        bands = noise_bands(kernels, lin, sampling, psi_a, chunk=chunk, method=method)
        x = ifft2c(apply_network(kernels, reduced, sampling, slope)) if p is None else None
    p = combination_weights(x) if p is None else jnp.asarray(p)
    if p.shape != (nc,) + shape:
        raise ValueError(f"combination weights must be {(nc,) + shape}, got {p.shape}")
    cov = coil_covariance_maps(bands, shape)
    g = gfactor_from_cov(cov, p, psi_a, sampling.R)
    return GFactorResult(
        g=g, cov=cov if return_cov else None, linearisation=linearisation, p=p, bands=bands, beta_fraction=beta_fraction
    )
