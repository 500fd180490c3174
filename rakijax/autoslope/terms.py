"""The estimator's pieces: held-out error, exact-g noise terms, line energies (see :mod:`rakijax.autoslope`)."""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from .. import kspace_net
from ..gfactor import combined_variance, raki_gfactor
from ..sampling import Sampling

__all__ = ["heldout_error", "NoiseTerms", "noise_terms", "line_energies"]


def heldout_error(kernels, acs_block, sampling: Sampling, slope, rows_mask, L=None) -> tuple[float, float, int]:
    """Held-out prediction error of a fit on the ACS rows where ``rows_mask`` is true.

    ``L`` (Nc, Nc) maps the coils of predictions and targets before the energies are taken
    (the work basis back to the scanner's, :meth:`rakijax.pipeline.Prepared.to_scanner`).

    Returns:
        ``(mean_err, mean_target, n)``: mean over the held-out target points of the
        coil-summed ``|f(src) - t|^2`` and ``|t|^2`` (per k-space point), and the number of
        points. ``kernels`` act on the unscaled data (positively homogeneous network).
    """
    shapes = [tuple(w.shape) for w in kernels]
    rows, targets = kspace_net.acs_pairs(acs_block, shapes, sampling.R)
    y = kspace_net.forward(kernels, acs_block, slope, padding="valid", dilation=sampling.R)[:, rows, :]
    nc = acs_block.shape[-3]
    R = sampling.R
    sel = np.asarray(rows_mask, bool)
    # (R-1)*Nc channels -> (R-1, Nc, rows, X'), coils mixed by L, summed per point
    split = lambda a: a.reshape(R - 1, nc, *a.shape[1:])[:, :, sel, :]  # noqa: E731
    mix = (lambda a: a) if L is None else (lambda a: jnp.einsum("cd,edyx->ecyx", jnp.asarray(L, a.dtype), a))  # noqa: E731
    d, t = mix(split(y - targets)), mix(split(targets))
    err = jnp.sum(jnp.abs(d) ** 2, axis=1)
    tgt = jnp.sum(jnp.abs(t) ** 2, axis=1)
    return float(jnp.mean(err)), float(jnp.mean(tgt)), int(err.size)


@dataclass
class NoiseTerms:
    """Noise of a reconstruction from its exact g-map (:func:`noise_terms`).

    Attributes:
        g: (Ny, Nx) g-factor map.
        V: (Ny, Nx) noise variance of the combined image, ``sigma_full^2 g^2 R``.
        total: ``tr s(0) = sum_r tr Cov(r)``, the coil-summed noise energy of the whole
            reconstructed k-space (= image), in the basis ``L`` maps to.
        nu: mean coil-summed noise variance of one predicted k-space point,
            ``(total - n_acq tr Psi) / n_pred``.
    """

    g: np.ndarray
    V: np.ndarray
    total: float
    nu: float


def noise_terms(kernels, reduced, sampling: Sampling, slope, *, psi, p, L=None, linearisation: str = "true") -> NoiseTerms:
    """Exact noise terms of a fit (small-noise linear response; module docstring).

    Args:
        kernels, reduced, sampling, slope: the fit and the acquired reduced grid (work basis).
        psi: (Nc, Nc) input noise covariance in the work basis.
        p: (Nc, Ny, Nx) combination weights in the work basis (``p_w``).
        L: (Nc, Nc) work basis -> scanner basis for ``total``/``nu`` (default identity).
        linearisation: ``"true"`` or ``"frozen"``.
    """
    psi = jnp.asarray(psi)
    gr = raki_gfactor(kernels, reduced, sampling, slope, psi=psi, p=p, linearisation=linearisation)
    g = np.asarray(gr.g)
    V = np.asarray(combined_variance(psi, p)) * g**2 * sampling.R  # sigma_full^2 g^2 R
    Lm = np.eye(psi.shape[0]) if L is None else np.asarray(L)
    my, mx = gr.bands.extent
    total = float(np.real(np.trace(Lm @ np.asarray(gr.bands.s[:, :, my, mx]) @ Lm.conj().T)))
    nx = reduced.shape[-1]
    n_acq = sampling.num_reduced * nx
    n_pred = (sampling.ny - sampling.num_reduced) * nx
    tau = float(np.real(np.trace(Lm @ np.asarray(psi) @ Lm.conj().T)))
    return NoiseTerms(g, V, total, max((total - n_acq * tau) / n_pred, 0.0))


def line_energies(zero_filled, lines: np.ndarray, tau: float) -> np.ndarray:
    """(Ny,) signal energy per ky line: ``sum_{c,x} |k|^2 - X tau`` on the sampled ``lines``,
    interpolated log-linearly (in the line index) over the others and held constant beyond the first
    and last sampled line (floored at a tiny positive value)."""
    k = np.asarray(zero_filled)
    ny, nx = k.shape[-2:]
    e = np.sum(np.abs(k) ** 2, axis=(0, 2)) - nx * tau
    have = np.flatnonzero(lines)
    floor = max(1e-12 * float(np.max(np.abs(e[have]))), np.finfo(float).tiny)
    le = np.log(np.maximum(e[have], floor))
    return np.where(lines, np.maximum(e, floor), np.exp(np.interp(np.arange(ny), have, le)))
