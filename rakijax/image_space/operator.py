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
reproduces ``ifft2c(apply_network(kernels, u, sampling, slope))`` to float precision
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
from ..kspace_net import forward_hidden
from .masks import ActivationMasks, _check_input, full_grid_masks, masks_from_preactivations, place_on_full_grid
from .weights import kernel_image_weights, shift_phase

__all__ = [
    "ImageSpaceRaki",
    "image_weights",
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


def image_weights(w, shape: tuple[int, int], R: int):
    """Per-pixel image weights of one kernel, with a size-1 axis where the kernel has one tap.

    Same values as :func:`kernel_image_weights` (broadcast to ``(cout, cin, Ny, Nx)``);
    a one-tap axis has a constant phase so the size-1 form is exact and saves memory.
    """
    ny, nx = shape
    kh, kw = w.shape[-2:]
    return kernel_image_weights(w, (1 if kh == 1 else ny, 1 if kw == 1 else nx), R)


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


def _output_phases(R: int, ny: int, dtype):
    """(R-1, Ny) phases placing output group d on line ``ky + d``."""
    return jnp.stack([shift_phase(d, ny, dtype) for d in range(1, R)]) if R > 1 else jnp.zeros((0, ny), dtype)


def _place_outputs(a, y, R: int, nc: int):
    """``x = a + sum_d phase_d * y_d``."""
    ny = a.shape[-2]
    ph = _output_phases(R, ny, y.dtype)
    x = a
    for d in range(1, R):
        x = x + ph[d - 1][:, None] * y[..., (d - 1) * nc : d * nc, :, :]
    return x


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
    def from_masks(cls, kernels: Sequence, masks: ActivationMasks, sampling: Sampling, nx: int, *, dtype=None):
        """Build from kernels and reduced-grid masks (:func:`activation_masks`).

        Args:
            kernels: list of ``(cout, cin, kh, kw)`` complex kernels.
            masks: reduced-grid :class:`ActivationMasks` (``L-1`` hidden layers).
            sampling: sampling pattern (``Ny % R == 0`` required).
            nx: readout size ``Nx``.
            dtype: complex dtype of the operator; default the kernels' and masks' result type.

        Raises:
            ValueError: ``Ny % R != 0``, mask/kernel count or channel mismatch, or a
                last layer without ``(R-1)*Nc`` outputs.
        """
        kernels = list(kernels)
        R, ny = sampling.R, sampling.ny
        sampling.require_periodic("the exact image-space form")
        _check_kernels(kernels, R)
        if masks.num_hidden != len(kernels) - 1:
            raise ValueError(f"{masks.num_hidden} hidden-layer masks for {len(kernels)} kernels (need {len(kernels) - 1})")
        for l, m in enumerate(masks.mask):
            if m.shape != (kernels[l].shape[0], sampling.num_reduced, nx):
                raise ValueError(
                    f"mask of hidden layer {l + 1} has shape {m.shape}; expected "
                    f"{(kernels[l].shape[0], sampling.num_reduced, nx)}"
                )
        if dtype is None:
            dtype = _default_dtype(*[jnp.asarray(k).dtype for k in kernels], *[m.dtype for m in masks.mask])
        weights, act = _build(
            [jnp.asarray(k) for k in kernels], masks, sampling=sampling, nx=int(nx), dtype=jnp.dtype(dtype)
        )
        return cls(weights=weights, act_kernels=act, R=R, shape=(ny, nx), num_coils=kernels[0].shape[1])

    @classmethod
    def from_kernels(cls, kernels: Sequence, u, slope, sampling: Sampling, *, dtype=None):
        """Build from kernels and the reduced k-space ``u`` (Nc, Y, X) whose inference fixes the masks.

        The masks come from one k-space pass (:func:`activation_masks`) at negative
        slope ``slope``; the operator then reproduces
        ``ifft2c(apply_network(kernels, u, sampling, slope))`` on ``aliased_images(u, sampling)``.
        """
        kernels = [jnp.asarray(k) for k in kernels]
        u = jnp.asarray(u)
        _check_input(kernels, u, sampling)
        R, ny = sampling.R, sampling.ny
        sampling.require_periodic("the exact image-space form")
        _check_kernels(kernels, R)
        if dtype is None:
            dtype = _default_dtype(u.dtype, *[k.dtype for k in kernels])
        weights, act = _build_from_u(kernels, u, slope, sampling=sampling, dtype=jnp.dtype(dtype))
        return cls(weights=weights, act_kernels=act, R=R, shape=(ny, u.shape[-1]), num_coils=kernels[0].shape[1])

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
        return _apply_jit(self, aliased.astype(self.dtype))


def _default_dtype(*dtypes):
    dtype = jnp.result_type(*dtypes)
    if not jnp.issubdtype(dtype, jnp.complexfloating):
        dtype = jnp.result_type(dtype, jnp.complex64)
    return jnp.dtype(dtype)


@functools.partial(jax.jit, static_argnames=("sampling", "nx", "dtype"))
def _build(kernels, masks, *, sampling, nx, dtype):
    """Per-pixel weights and activation kernels (one compiled program per shape set)."""
    full = full_grid_masks(masks, sampling)
    weights = [image_weights(k.astype(dtype), (sampling.ny, nx), sampling.R) for k in kernels]
    act = [mask_image_kernel(m.astype(dtype)) for m in full.mask]
    return weights, act


@functools.partial(jax.jit, static_argnames=("sampling", "dtype"))
def _build_from_u(kernels, u, slope, *, sampling, dtype):
    masks = masks_from_preactivations(forward_hidden(kernels, u, slope, padding="circular")[:-1], slope)
    return _build(kernels, masks, sampling=sampling, nx=u.shape[-1], dtype=dtype)


def _check_kernels(kernels, R):
    if not kernels:
        raise ValueError("need at least one kernel")
    for l in range(1, len(kernels)):
        if kernels[l].shape[1] != kernels[l - 1].shape[0]:
            raise ValueError(f"kernel {l} {kernels[l].shape} does not take the {kernels[l - 1].shape[0]} outputs of kernel {l - 1}")
    nc = kernels[0].shape[1]
    if kernels[-1].shape[0] != (R - 1) * nc:
        raise ValueError(f"last kernel {kernels[-1].shape} has {kernels[-1].shape[0]} outputs; expected (R-1)*Nc = {(R - 1) * nc}")


def _apply(op: ImageSpaceRaki, a):
    h = a
    for l, wt in enumerate(op.weights):
        h = per_pixel_apply(wt, h)
        if l < op.num_hidden:
            h = circular_convolve(op.act_kernels[l], h)
    return _place_outputs(a, h, op.R, op.num_coils)


_apply_jit = jax.jit(_apply)


def aliased_images(u, sampling: Sampling):
    """Aliased coil images ``ifft2c(zero_filled)`` from the reduced grid ``u`` (..., Nc, Y, X)."""
    return ifft2c(place_on_full_grid(jnp.asarray(u), sampling, 0))


def image_space_apply(kernels: Sequence, u, sampling: Sampling, slope=1.0, *, dtype=None):
    """Image-space counterpart of :func:`rakijax.kspace_net.apply_network`, in image space.

    Returns the reconstructed coil images (Nc, Ny, Nx) computed by
    :class:`ImageSpaceRaki` from the aliased images of ``u``; equal to
    ``ifft2c(apply_network(kernels, u, sampling, slope))`` to float precision.
    """
    op = ImageSpaceRaki.from_kernels(kernels, u, slope, sampling, dtype=dtype)
    return op(aliased_images(u, sampling))
