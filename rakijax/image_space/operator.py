"""Exact image-space form of a reduced-grid k-space network (Dawood 2024, MATH.md section 2).

Zero-fill the acquired lines (``Ny % R == 0``) and let ``a = ifft2c(zero_filled)``
be the aliased coil images. On the full grid every reduced-grid layer of
:mod:`rakijax.kspace_net` is a ky-dilated cross-correlation that maps k-space
supported on the acquired lines to k-space supported on the acquired lines, so

* a convolution layer ``W_l`` is a per-pixel matrix product
  ``Z_l(r) = W~_l(r) H_{l-1}(r)`` with ``W~_l`` from
  :func:`rakijax.image_space.weights.kernel_image_weights`;
* the complex leaky ReLU is the pointwise k-space product with the activation mask
  ``m_l`` (:mod:`rakijax.image_space.masks`), i.e. in image space the centred
  circular convolution

      H_l(r) = (K_l (*) Z_l)(r) = sum_q K_l(q) Z_l((r - q + c) mod N),
      K_l = ifft2c(m_l) / sqrt(Ny Nx),   c = (Ny//2, Nx//2),

  with the *unitarily scaled* image-space activation kernel ``K_l`` (a unit
  impulse at the centre ``c`` when ``m_l = 1``; its centre value is the mean mask);
* output group ``d`` (coil ``c`` on line ``offset + R*j + d``) is a k-space shift,
  the per-pixel phase ``shift_phase(d, Ny)``; the acquired lines pass through:

      x(r) = a(r) + sum_{d=1}^{R-1} exp(2 pi i d (ry - cy)/Ny) Y_d(r).

With masks from the k-space inference on the same data, :class:`ImageSpaceRaki`
reproduces ``ifft2c(apply_network(kernels, reduced, sampling, slope))`` to float precision
(circular k-space edges make the two exactly equal). With the masks frozen the map
``a -> x`` is complex-linear (:mod:`rakijax.image_space.linear`).

Memory: a layer with a ``kh x kw`` kernel stores per-pixel weights of shape
``(cout, cin, Ny or 1, Nx or 1)`` (a size-1 axis where the kernel has one tap along
it, which is exact because the phase is then constant). For the paper's first layer
(128 x 16 channels, 2 x 5 taps) at 256 x 256 this is 1.1 GB in complex64 (2.1 GB in
complex128); the dtype follows the inputs (complex64 for float32 data).

Reference: Dawood et al., "Image space formalism of convolutional neural networks
for k-space interpolation", MRM 2024 (arXiv 2402.17410).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..fft import ifft2c
from ..sampling import Sampling
from ..validate import check_kernels
from .masks import ActivationMasks, activation_masks, full_grid_masks, place_on_full_grid
from .weights import kernel_image_weights, place_outputs

__all__ = [
    "ImageSpaceRaki",
    "image_parts",
    "complex_dtype",
    "frozen_apply",
    "circular_convolve",
    "conj_reflect",
    "mask_image_kernel",
    "per_pixel_apply",
    "aliased_images",
    "image_space_apply",
]

_HI = jax.lax.Precision.HIGHEST


def circular_convolve(kernel, image):
    """Centred circular convolution over the last two axes, computed with FFTs.

        (K (*) Z)(r) = sum_q K(q) Z((r - q + c) mod N),   c = (Ny//2, Nx//2)

    equal to ``sqrt(Ny Nx) * ifft2c(fft2c(K) * fft2c(Z))`` with the unitary centred FFT
    (computed as ``ifft2(fft2(ifftshift(K)) * fft2(Z))``).
    A unit impulse at ``c`` is the identity.

    Args:
        kernel: (..., Ny, Nx) complex, broadcast against ``image``.
        image: (..., Ny, Nx) complex.

    Returns:
        (..., Ny, Nx), the broadcast shape.
    """
    # == sqrt(N) ifft2c(fft2c(K) fft2c(Z)); moving the kernel centre to index 0 makes it
    # the plain (uncentred, unnormalised) DFT convolution theorem
    k0 = jnp.fft.ifftshift(kernel, axes=(-2, -1))
    return jnp.fft.ifft2(jnp.fft.fft2(k0) * jnp.fft.fft2(image))


def conj_reflect(x):
    """Image-space form of conjugating k-space: ``J(x)(r) = conj(x((2c - r) mod N))``.

    ``ifft2c(conj(k)) = J(ifft2c(k))`` with the centred unitary FFT; also the
    adjoint kernel: the adjoint of ``Z -> K (*) Z`` is ``Z -> J(K) (*) Z``.
    """
    ny, nx = x.shape[-2:]
    iy = (2 * (ny // 2) - np.arange(ny)) % ny
    ix = (2 * (nx // 2) - np.arange(nx)) % nx
    return jnp.conj(x[..., iy, :][..., ix])


def mask_image_kernel(mask_full):
    """Unitarily scaled image-space kernel ``K = ifft2c(m) / sqrt(Ny Nx)`` of a full-grid k-space mask."""
    n = mask_full.shape[-2] * mask_full.shape[-1]
    return ifft2c(mask_full) / float(np.sqrt(n))


def per_pixel_apply(weights, h):
    """``Z(r) = W~(r) H(r)``: weights (cout, cin, Ny|1, Nx|1), h (..., cin, Ny, Nx).

    Pixel-independent weights (one tap in both directions) are a plain matrix
    product; otherwise a fused multiply-and-sum over ``cin`` (a batched-over-pixels
    ``dot_general`` ran ~15x slower on CPU).
    """
    hy, hx = weights.shape[-2:]
    if hy == 1 and hx == 1:
        return jnp.einsum("oi,...iyx->...oyx", weights[:, :, 0, 0], h, precision=_HI)
    return jnp.sum(weights * h[..., None, :, :, :], axis=-3)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ImageSpaceRaki:
    """Image-space RAKI/GRAPPA operator: per-pixel weights + image-space activation kernels.

    ``x = op(a)`` maps aliased coil images ``a = ifft2c(zero_filled)`` (..., Nc, Ny, Nx)
    to reconstructed coil images using only per-pixel products and FFT-based
    circular convolutions (module docstring). A registered pytree: pass it to
    ``jax.jit``-ed functions as an argument (the arrays are leaves; ``R``, ``shape``
    and ``num_coils`` are static).

    Attributes:
        weights: list over layers of per-pixel weights ``(cout, cin, Ny|1, Nx|1)``.
        act_kernels: list over hidden layers of ``(C_l, Ny, Nx)`` image-space
            activation kernels ``ifft2c(m_l)/sqrt(Ny Nx)`` of the full-grid masks.
        R: acceleration factor.
        shape: full grid ``(Ny, Nx)``.
        num_coils: ``Nc``.
    """

    weights: list
    act_kernels: list
    R: int = dataclasses.field(metadata=dict(static=True))
    shape: tuple = dataclasses.field(metadata=dict(static=True))
    num_coils: int = dataclasses.field(metadata=dict(static=True))

    @classmethod
    def from_masks(cls, kernels: Sequence, masks: ActivationMasks, sampling: Sampling, *, dtype=None):
        """Build from kernels and reduced-grid masks (:func:`activation_masks`).

        Args:
            kernels: list of ``(cout, cin, kh, kw)`` complex kernels.
            masks: reduced-grid :class:`ActivationMasks` holding ``mask`` (``L-1`` hidden layers).
            sampling: sampling pattern (``Ny % R == 0`` required).
            dtype: complex dtype of the operator; default the kernels' and masks' result type.

        Raises:
            ValueError: ``Ny % R != 0``, mask/kernel count or channel mismatch, or a
                last layer without ``(R-1)*Nc`` outputs.
        """
        kernels = [jnp.asarray(k) for k in kernels]
        weights, kerns = image_parts(kernels, masks, sampling, fields=("mask",), dtype=dtype)
        return cls(weights=weights, act_kernels=kerns[0], R=sampling.R, shape=(sampling.ny, masks.grid[1]),
                   num_coils=kernels[0].shape[1])

    @classmethod
    def from_kernels(cls, kernels: Sequence, reduced, sampling: Sampling, slope, *, dtype=None):
        """Build from kernels and the reduced k-space ``reduced`` (Nc, Y, X) whose inference fixes the masks.

        The masks come from one k-space pass (:func:`activation_masks`) at negative
        slope ``slope``; the operator then reproduces
        ``ifft2c(apply_network(kernels, reduced, sampling, slope))`` on
        ``aliased_images(reduced, sampling)``.
        """
        sampling.require_periodic("the exact image-space form")
        masks = activation_masks(kernels, reduced, sampling, slope, mode="frozen")
        if dtype is None:
            dtype = complex_dtype(jnp.asarray(reduced).dtype, *[jnp.asarray(k).dtype for k in kernels])
        return cls.from_masks(kernels, masks, sampling, dtype=dtype)

    @property
    def dtype(self):
        return self.weights[0].dtype

    @property
    def num_hidden(self) -> int:
        return len(self.act_kernels)

    def check_input(self, a):
        if a.ndim < 3 or a.shape[-3:] != (self.num_coils,) + tuple(self.shape):
            raise ValueError(
                f"aliased images must be (..., {self.num_coils}, {self.shape[0]}, {self.shape[1]}); got {a.shape}"
            )

    def __call__(self, aliased):
        """Reconstructed coil images (..., Nc, Ny, Nx) from aliased coil images (..., Nc, Ny, Nx)."""
        aliased = jnp.asarray(aliased)
        self.check_input(aliased)
        return _frozen_apply_jit(self, aliased.astype(self.dtype))


def complex_dtype(*dtypes):
    """Result type of ``dtypes``, promoted to complex (complex64 for float32/int input)."""
    dtype = jnp.result_type(*dtypes)
    if not jnp.issubdtype(dtype, jnp.complexfloating):
        dtype = jnp.result_type(dtype, jnp.complex64)
    return jnp.dtype(dtype)


def image_parts(kernels: Sequence, masks: ActivationMasks, sampling: Sampling, *, fields: tuple, dtype=None):
    """Per-pixel weights of every kernel and the image kernels of the named mask fields.

    The one builder behind :class:`ImageSpaceRaki` (``fields=("mask",)``) and
    :class:`~rakijax.image_space.linear.ImageSpaceDerivative` (``("alpha", "beta")``).

    Args:
        kernels: list of ``(cout, cin, kh, kw)`` complex kernels.
        masks: reduced-grid :class:`ActivationMasks` holding ``fields``.
        sampling: sampling pattern (``Ny % R == 0``).
        fields: names of :class:`ActivationMasks` fields to turn into image kernels.
        dtype: complex dtype; default the kernels' and masks' result type.

    Returns:
        ``(weights, kernels_by_field)``: per layer ``(cout, cin, Ny|1, Nx|1)`` weights and,
        per field, a list over hidden layers of ``(C_l, Ny, Nx)`` kernels ``ifft2c(c)/sqrt(N)``.

    Raises:
        ValueError: ``Ny % R != 0``, mask/kernel count or shape mismatch, a broken chain.
    """
    kernels = [jnp.asarray(k) for k in kernels]
    sampling.require_periodic("the exact image-space form")
    check_kernels(kernels, sampling.R)
    masks.require(*fields)
    if masks.num_hidden != len(kernels) - 1:
        raise ValueError(f"{masks.num_hidden} hidden-layer masks for {len(kernels)} kernels (need {len(kernels) - 1})")
    expect = [(k.shape[0], sampling.num_reduced, masks.grid[1]) for k in kernels[:-1]]
    for f in fields:
        for l, m in enumerate(getattr(masks, f)):
            if m.shape != expect[l]:
                raise ValueError(f"{f} of hidden layer {l + 1} has shape {m.shape}; expected {expect[l]}")
    if dtype is None:
        dtype = complex_dtype(*[k.dtype for k in kernels], *[m.dtype for m in jax.tree_util.tree_leaves(masks)])
    return _image_parts(kernels, masks, sampling=sampling, fields=tuple(fields), dtype=jnp.dtype(dtype))


@functools.partial(jax.jit, static_argnames=("sampling", "fields", "dtype"))
def _image_parts(kernels, masks, *, sampling, fields, dtype):
    full = full_grid_masks(masks, sampling)
    weights = [kernel_image_weights(k.astype(dtype), full.grid, sampling.R) for k in kernels]
    kerns = [[mask_image_kernel(m.astype(dtype)) for m in getattr(full, f)] for f in fields]
    return weights, kerns


def frozen_apply(op: ImageSpaceRaki, a):
    """``L a``: the frozen-mask operator (complex-linear in ``a`` (..., Nc, Ny, Nx)); pure, jit-able."""
    h = a
    for l, wt in enumerate(op.weights):
        h = per_pixel_apply(wt, h)
        if l < op.num_hidden:
            h = circular_convolve(op.act_kernels[l], h)
    return place_outputs(a, h, op.R, op.num_coils)


_frozen_apply_jit = jax.jit(frozen_apply)


def aliased_images(reduced, sampling: Sampling):
    """Aliased coil images ``ifft2c(zero_filled)`` from the reduced grid (..., Nc, Y, X)."""
    return ifft2c(place_on_full_grid(jnp.asarray(reduced), sampling, 0))


def image_space_apply(kernels: Sequence, reduced, sampling: Sampling, slope=1.0, *, dtype=None):
    """Image-space counterpart of :func:`rakijax.kspace_net.apply_network`, in image space.

    Returns the reconstructed coil images (Nc, Ny, Nx) computed by
    :class:`ImageSpaceRaki` from the aliased images of ``reduced``; equal to
    ``ifft2c(apply_network(kernels, reduced, sampling, slope))`` to float precision.
    """
    op = ImageSpaceRaki.from_kernels(kernels, reduced, sampling, slope, dtype=dtype)
    return op(aliased_images(reduced, sampling))
