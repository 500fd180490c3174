"""K-fold training of RAKI on the ACS rows: fold masks and the vmapped weighted trainer (see :mod:`rakijax.autoslope`)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ..raki import Raki as RakiNet
from ..raki import acs_loss
from ..raki.config import RakiConfig
from ..raki.init import lstsq_last_layer
from ..raki.train import param_dtype_for
from ..sampling import Sampling

__all__ = ["FOLD_KINDS", "fold_masks", "cv_train_kernels", "cv_trainer"]


#: how ACS training rows are split into folds
FOLD_KINDS = ("contiguous", "interleaved")


def fold_masks(n_rows: int, folds: int, kind: str = "contiguous") -> np.ndarray:
    """``(folds + 1, n_rows)`` float training weights: row ``k < folds`` leaves out fold ``k``
    of the ACS training rows, the last row trains on all rows. ``kind="contiguous"``: fold
    ``k`` is the k-th of ``folds`` contiguous blocks of rows; ``"interleaved"``: the rows
    ``q`` with ``q % folds == k``.

    Raises:
        ValueError: fewer than 2 folds, fewer rows than folds, an unknown kind.
    """
    if folds < 2 or n_rows < folds:
        raise ValueError(f"need 2 <= folds <= training rows, got folds={folds} for {n_rows} ACS training rows")
    if kind not in FOLD_KINDS:
        raise ValueError(f"fold kind must be one of {FOLD_KINDS}, got {kind!r}")
    w = np.ones((folds + 1, n_rows))
    if kind == "interleaved":
        for k in range(folds):
            w[k, k::folds] = 0.0
        return w
    edges = np.linspace(0, n_rows, folds + 1).round().astype(int)
    for k in range(folds):
        w[k, edges[k] : edges[k + 1]] = 0.0
    return w


def _weighted_loss(kernels, problem, slope, weights, shapes, R):
    """``sum_q w_q sum |y - t|^2 / (sum_q w_q * entries per row)`` (the mean of
    :func:`rakijax.raki.acs_loss.loss` when every ``w_q = 1``)."""
    y = acs_loss.forward_stacked(kernels, problem.patches, slope, shapes, R)[:, : problem.targets.shape[-2], :]
    r2 = jnp.sum((y - problem.targets) ** 2, axis=(0, 2))  # per row
    per_row = problem.targets.shape[0] * problem.targets.shape[2]
    return jnp.sum(weights * r2) / (jnp.sum(weights) * per_row)


def _noise_penalty(kernels, problem, slope, weights, shapes, R, key, sigma, probes, acs_shape):
    """Hutchinson estimate of the weighted mean ``|J n|^2`` (stacked real form, the normalisation
    of :func:`_weighted_loss`) of the linear response ``J`` at the ACS rows to input noise
    ``n ~ CN(0, sigma^2 I)`` on every ACS sample; ``probes`` noise draws per call."""
    Q = problem.targets.shape[-2]
    per_row = problem.targets.shape[0] * problem.targets.shape[2]
    f = lambda P: acs_loss.forward_stacked(kernels, P, slope, shapes, R)  # noqa: E731
    total = 0.0
    for k in jax.random.split(key, probes):
        a, b = jax.random.normal(k, (2,) + tuple(acs_shape), jnp.real(problem.patches).dtype)
        n = jax.lax.complex(a, b) * (sigma / jnp.sqrt(2.0))
        dP = acs_loss.prepare(n, shapes, R).patches
        dy = jax.jvp(f, (problem.patches,), (dP,))[1][:, :Q, :]
        total = total + jnp.sum(weights * jnp.sum(dy**2, axis=(0, 2))) / (jnp.sum(weights) * per_row)
    return total / probes


def _cv_init(acs_block, key, slope, weights, *, R, config):
    """Scaled ACS, the training problem, initial kernels and Adam state (traceable); the
    ``"lstsq"`` init solves the last layer on the kept rows only (``weights``), so a held-out
    fold never enters its own fit."""
    ncoils = acs_block.shape[-3]
    dtype = param_dtype_for(acs_block.dtype, config)
    acs = jnp.asarray(acs_block).astype(dtype)
    scale = jnp.max(jnp.abs(acs))
    shapes = config.kernel_shapes(ncoils, R)
    problem = acs_loss.prepare(acs / scale, shapes, R)
    kernels = RakiNet(config, ncoils, R, rngs=nnx.Rngs(params=key), param_dtype=dtype).kernels()
    if config.init == "lstsq":
        slope = jnp.asarray(slope, problem.targets.dtype)
        kernels = [*kernels[:-1], lstsq_last_layer(kernels, problem, slope, shapes, R, config.init_ridge, weights)]
    state = optax.adam(1.0, b1=config.b1, b2=config.b2, eps=config.eps).init(kernels)  # state does not depend on lr
    return problem, 1.0 / scale, kernels, state


def _cv_step(params, state, best, best_loss, problem, sigma, i, slope, weights, key, lr, noise_weight, *, R, config,
             probes, acs_shape):
    """One Adam step of the weighted (and optionally g-aware) loss, keeping the lowest-loss iterate;
    returns ``(params, state, best, best_loss, loss before the step)``."""
    shapes = [tuple(s) for s in config.kernel_shapes(acs_shape[0], R)]

    def total_loss(params):
        loss = _weighted_loss(params, problem, slope, weights, shapes, R)
        if probes:
            pk = jax.random.fold_in(jax.random.fold_in(key, 7919), i)
            loss = loss + noise_weight * _noise_penalty(params, problem, slope, weights, shapes, R, pk, sigma, probes,
                                                        acs_shape)
        return loss

    loss, g = jax.value_and_grad(total_loss)(params)
    g = jax.tree.map(jnp.conj, g)  # as rakijax.raki.train: descend along dL/du + i dL/dv
    updates, state = optax.adam(lr, b1=config.b1, b2=config.b2, eps=config.eps).update(g, state, params)
    better = loss < best_loss  # as rakijax.raki.train: keep the lowest-loss iterate (NaN never wins)
    best = jax.tree.map(lambda b, p: jnp.where(better, p, b), best, params)
    best_loss = jnp.where(better, loss, best_loss)
    return optax.apply_updates(params, updates), state, best, best_loss, loss


@functools.partial(jax.jit, static_argnames=("R", "config", "probes"))
def _cv_train_jit(acs_block, slope, weights, key, lr, noise_weight, *, R, config, probes=0):
    problem, sigma, kernels, state = _cv_init(acs_block, key, slope, weights, R=R, config=config)
    real = jnp.real(problem.targets).dtype
    losses = jnp.zeros(config.steps, real)
    step = functools.partial(_cv_step, R=R, config=config, probes=probes, acs_shape=tuple(acs_block.shape))

    def body(i, carry):
        params, state, best, best_loss, losses = carry
        params, state, best, best_loss, loss = step(params, state, best, best_loss, problem, sigma, i, slope, weights,
                                                    key, lr, noise_weight)
        return params, state, best, best_loss, losses.at[i].set(loss.astype(real))

    carry = (kernels, state, kernels, jnp.asarray(jnp.inf, real), losses)
    _, _, best, _, losses = jax.lax.fori_loop(0, config.steps, body, carry)
    return list(best), losses


def cv_train_kernels(acs_block, sampling: Sampling, config: RakiConfig, slope, weights, key, noise_weight=0.0,
                     probes: int = 0):
    """:func:`rakijax.raki.train_kernels` (Adam recipe: scaling, initialisation, conjugated
    gradients, the lowest-loss iterate) with a per-training-row weight on the loss and an
    optional noise term; pure and ``vmap``-able.

    Args:
        acs_block: (Nc, A, X) ACS lines.
        sampling: the sampling (static; only ``R``).
        config: :class:`RakiConfig` with ``optimizer="adam"``.
        slope: negative slope (traced).
        weights: (rows,) weights of the ACS training rows (0 leaves a row out).
        key: PRNG key of the initialisation.

        noise_weight: ``lambda`` of the g-aware loss (traced; used when ``probes > 0``):
            ``ACS loss + lambda * noise term``, the noise term the mean squared linear
            response of the predicted ACS points to unit (whitened) input noise, in the
            loss's units (a Hutchinson estimate with ``probes`` fresh noise draws per step
            through ``jax.jvp``; unbiased for the exact mean ``|J n|^2``).
        probes: noise draws per step (static); 0 = plain ACS loss.

    Returns:
        ``(kernels, losses)`` as :func:`~rakijax.raki.train_kernels`; with all weights 1 and
        ``probes=0`` the same numbers up to float rounding.
    """
    if config.optimizer != "adam":
        raise ValueError(f"cross-validated training supports optimizer='adam', got {config.optimizer!r}")
    static = dataclasses.replace(config, learning_rate=1.0, log_every=1)
    return _cv_train_jit(acs_block, slope, weights, key, config.learning_rate, noise_weight, R=int(sampling.R),
                         config=static, probes=int(probes))


@functools.lru_cache(maxsize=16)
def cv_trainer(sampling: Sampling, config: RakiConfig, probes: int = 0):
    """``f(acs_block, slopes (B,), weights (B, rows), keys (B,), noise_weights (B,)) -> (kernels (B, ...),
    losses (B, steps))``: ``jit(vmap(cv_train_kernels))``, one compilation per shape (as
    :func:`rakijax.sweep.batched_trainer`). On the 2-core CPU the vmapped loop program trained at
    the same cost per fit-step as fits one after another (``benchmarks/results/slice_batch_cpu.md``)."""

    def one(acs_block, slope, weights, key, noise_weight):
        return cv_train_kernels(acs_block, sampling, config, slope, weights, key, noise_weight, probes)

    return jax.jit(jax.vmap(one, in_axes=(None, 0, 0, 0, 0)))
