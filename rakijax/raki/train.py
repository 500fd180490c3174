"""Scan-specific RAKI training on the ACS block (full-batch Adam or L-BFGS, jit-compiled).

Loss: mean squared error over the real and imaginary parts of the predicted
missing lines at the valid ACS positions,

    L(W) = 1/(2 N) sum_{o, q, x} |y_W[o, q, x] - t[o, q, x]|^2,

with ``y_W = forward(W, acs / s, a, padding="valid", dilation=R)`` at the rows of
:func:`rakijax.kspace_net.acs_pairs` and ``t`` the ACS lines the output channels
predict, ``N`` the number of complex targets. It is evaluated in the equivalent
stacked-real GEMM form of :mod:`rakijax.raki.acs_loss` (first-layer patches of
the ACS built once per fit). The fit returns the iterate with the lowest loss.

**Scaling.** The ACS is divided by ``s = max|acs|`` before training so that one
learning rate fits every scan. The network has no biases and the complex leaky
ReLU is positively homogeneous (``s_a(c z) = c s_a(z)`` for ``c > 0``), hence
``y_W(c u) = c y_W(u)``: kernels trained on ``acs / s`` are exactly the kernels
for the unscaled data, and are returned and applied unchanged (``s`` is kept in
:class:`TrainResult` for the record; the loss curve is on the scaled data).

**Complex gradients.** For a real loss of complex parameters ``w = u + i v``, JAX's
``grad`` returns ``dL/du - i dL/dv = 2 dL/dw`` (the conjugate of the steepest
ascent direction ``dL/du + i dL/dv = 2 dL/d(conj w)``). We conjugate it before
optax, so ``g = dL/du + i dL/dv`` is exactly the gradient of the equivalent real
problem in ``(u, v)``. optax's Adam then keeps the first moment
``m = b1 m + (1-b1) g`` (complex) and the second moment from ``|g|^2``
(``optax.tree_utils.tree_update_moment_per_elem_norm`` applies ``abs_sq`` to
complex leaves), so each complex weight
gets one shared step size for its real and imaginary part (rotation-invariant),
unlike Adam on a real ``(u, v)`` split, which would scale them separately.
L-BFGS (``optimizer="lbfgs"``) runs on the real split ``(u, v)`` directly (plain
real gradients, its line search needs a real inner product).

References: Akcakaya et al., MRM 2019 (RAKI); Dawood et al., MRM 2024;
Kingma & Ba 2015 (Adam); Liu & Nocedal 1989 (L-BFGS).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from .. import kspace_net
from ..sampling import Sampling
from ..validate import check_sampling, check_slope, is_concrete
from . import acs_loss
from .init import lstsq_last_layer
from .config import RakiConfig
from .model import Raki

__all__ = ["TrainResult", "train", "train_kernels", "param_dtype_for"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """Result of :func:`train`.

    Attributes:
        kernels: trained kernels ``[W_1, ..., W_L]`` (cout, cin, kh, kw), complex,
            valid for the *unscaled* data (see module docstring): the iterate with
            the lowest training loss (``argmin(losses)``).
        losses: (steps,) training loss before each step (on the scaled ACS).
        scale: ``max|acs|``, the factor the ACS was divided by during training.
        config: the :class:`RakiConfig` used.
        slope: negative slope of the activations.
        R: acceleration factor.
    """

    kernels: list
    losses: np.ndarray
    scale: float
    config: RakiConfig
    slope: float
    R: int


def param_dtype_for(acs_dtype, config: RakiConfig):
    """Kernel dtype: ``config.param_dtype`` or complex128 for 64-bit input, else complex64."""
    if config.param_dtype is not None:
        return jnp.dtype(config.param_dtype)
    wide = jnp.dtype(acs_dtype) in (jnp.dtype(np.float64), jnp.dtype(np.complex128))
    return jnp.dtype(jnp.complex128 if wide else jnp.complex64)


def _optimizer(config: RakiConfig, learning_rate):
    """optax Adam; the learning rate may be traced (lr sweeps do not recompile)."""
    return optax.adam(learning_rate, b1=config.b1, b2=config.b2, eps=config.eps)


def _lbfgs(config: RakiConfig):
    """optax L-BFGS with the zoom (strong Wolfe) line search; no learning rate."""
    return optax.lbfgs(memory_size=config.lbfgs_memory,
                       linesearch=optax.scale_by_zoom_linesearch(max_linesearch_steps=config.linesearch_steps,
                                                                 initial_guess_strategy="one"))


def _static(config: RakiConfig) -> RakiConfig:
    """The config with the fields that do not shape the compiled program canonicalised."""
    return dataclasses.replace(config, learning_rate=1.0, log_every=1)


def _realify(kernels):
    """Complex kernels -> list of ``(Re w, Im w)`` (the real parameters L-BFGS works on)."""
    return [(jnp.real(w), jnp.imag(w)) for w in kernels]


def _complexify(pairs):
    return [jax.lax.complex(a, b) for a, b in pairs]


def _setup(acs_block, R, config, key, slope):
    """Scaled ACS, constant training problem, initial kernels and optimizer state (traceable).

    ``slope`` is used by the least-squares initialisation (``config.init == "lstsq"``) only."""
    ncoils = acs_block.shape[-3]
    dtype = param_dtype_for(acs_block.dtype, config)
    acs = jnp.asarray(acs_block).astype(dtype)
    scale = jnp.max(jnp.abs(acs))
    x = acs / scale
    problem = acs_loss.prepare(x, config.kernel_shapes(ncoils, R), R)
    kernels = Raki(config, ncoils, R, rngs=nnx.Rngs(params=key), param_dtype=dtype).kernels()
    if config.init == "lstsq":
        shapes = config.kernel_shapes(ncoils, R)
        slope = jnp.asarray(slope, problem.targets.dtype)
        kernels = [*kernels[:-1], lstsq_last_layer(kernels, problem, slope, shapes, R, config.init_ridge)]
    if config.optimizer == "lbfgs":
        params = _realify(kernels)
        opt_state = _lbfgs(config).init(params)
    else:
        params = kernels
        opt_state = _optimizer(config, 1.0).init(params)  # Adam's state does not depend on lr
    return x, problem, scale, params, opt_state


def _loss(kernels, problem, slope, R, config):
    """Training loss of complex kernels (see the module docstring and :mod:`rakijax.raki.acs_loss`)."""
    shapes = [tuple(w.shape) for w in kernels]
    return acs_loss.loss(kernels, problem, slope, shapes, R)


def _real_loss(pairs, problem, slope, R, config):
    """:func:`_loss` as a function of the real parameters ``(Re w, Im w)`` (for L-BFGS)."""
    return _loss(_complexify(pairs), problem, slope, R, config)


def _step(params, opt_state, problem, slope, lr, R, config):
    """One optimiser step (traceable); returns the new params, state and the loss before the step."""
    if config.optimizer == "lbfgs":
        opt = _lbfgs(config)
        fn = functools.partial(_real_loss, problem=problem, slope=slope, R=R, config=config)
        loss, g = optax.value_and_grad_from_state(fn)(params, state=opt_state)
        updates, opt_state = opt.update(g, opt_state, params, value=loss, grad=g, value_fn=fn)
        return optax.apply_updates(params, updates), opt_state, loss
    loss, g = jax.value_and_grad(_loss)(params, problem, slope, R, config)
    g = jax.tree.map(jnp.conj, g)  # JAX gives dL/du - i dL/dv; descend along dL/du + i dL/dv
    updates, opt_state = _optimizer(config, lr).update(g, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def _keep_best(best, best_loss, params, loss):
    """The iterate with the lowest loss so far (``params`` has loss ``loss``; NaN never wins)."""
    better = loss < best_loss
    best = jax.tree.map(lambda b, p: jnp.where(better, p, b), best, params)
    return best, jnp.where(better, loss, best_loss)


def _kernels(params, config) -> list:
    return _complexify(params) if config.optimizer == "lbfgs" else list(params)


def train_kernels(acs_block, sampling: Sampling, config: RakiConfig, slope, key):
    """Train RAKI kernels on an ACS block: a pure, jit-compiled, vmap-able function.

    Initialises the network from ``key`` (see :class:`RakiConfig` ``init_scale``),
    scales the ACS by ``1/max|acs|`` and runs ``config.steps`` full-batch
    optimiser steps (L-BFGS iterations or Adam steps) in one ``lax.fori_loop``
    inside ``jax.jit``. ``slope``, ``key`` and the learning rate
    are traced (only the architecture, ``steps`` and the optimiser settings are static),
    so slope and learning-rate sweeps reuse one compilation and slopes/keys can be
    batched with ``jax.vmap``, e.g.
    ``vmap(lambda a: train_kernels(acs, sampling, cfg, a, key))(slopes)``.
    No validation: use :func:`train` at user boundaries (the same steps in loop chunks,
    with progress and divergence checks between them).

    Args:
        acs_block: (Nc, A, X) fully sampled ACS lines, complex.
        sampling: the :class:`rakijax.sampling.Sampling` (static; only ``sampling.R``
            shapes the program, so patterns that differ in ``ny`` share a compilation).
        config: :class:`RakiConfig` (static except ``learning_rate``).
        slope: negative slope ``a`` in [0, 1] (traced).
        key: PRNG key for the initialisation.

    Returns:
        ``(kernels, losses)``: list of complex kernels (cout, cin, kh, kw) for the
        unscaled data, and the (steps,) loss before each step. The kernels are the
        iterate with the lowest ACS loss among the ``steps`` evaluated ones (the
        ones before each step), so a late jump of Adam does not cost the fit.
    """
    cfg = dataclasses.replace(_static(config), steps=config.steps)
    return _train_kernels_jit(acs_block, slope, key, config.learning_rate, R=int(sampling.R), config=cfg)


@functools.partial(jax.jit, static_argnames=("R", "config"))
def _train_kernels_jit(acs_block, slope, key, lr, *, R, config):
    x, problem, _, params, opt_state = _setup(acs_block, R, config, key, slope)
    real = jnp.real(x).dtype
    losses = jnp.zeros(config.steps, real)

    def body(i, carry):
        params, opt_state, best, best_loss, losses = carry
        new, opt_state, loss = _step(params, opt_state, problem, slope, lr, R, config)
        best, best_loss = _keep_best(best, best_loss, params, loss)
        return new, opt_state, best, best_loss, losses.at[i].set(loss.astype(real))

    carry = (params, opt_state, params, jnp.asarray(jnp.inf, real), losses)
    _, _, best, _, losses = jax.lax.fori_loop(0, config.steps, body, carry)
    return _kernels(best, config), losses


@functools.partial(jax.jit, static_argnames=("R", "config"))
def _init_jit(acs_block, key, slope, *, R, config):
    x, problem, scale, params, opt_state = _setup(acs_block, R, config, key, slope)
    return problem, scale, params, opt_state


@functools.partial(jax.jit, static_argnames=("R", "config", "length"), donate_argnums=(0, 1, 2, 3))
def _chunk_jit(params, opt_state, best, best_loss, problem, slope, lr, n, *, R, config, length):
    """``n <= length`` optimiser steps in one loop (``n`` traced: one compilation for every chunk),
    keeping the best iterate; returns the state and the (length,) losses before each step (the
    first ``n`` are set)."""
    real = best_loss.dtype

    def body(i, carry):
        params, opt_state, best, best_loss, losses = carry
        new, opt_state, loss = _step(params, opt_state, problem, slope, lr, R, config)
        best, best_loss = _keep_best(best, best_loss, params, loss)
        return new, opt_state, best, best_loss, losses.at[i].set(loss.astype(real))

    carry = (params, opt_state, best, best_loss, jnp.zeros(length, real))
    return jax.lax.fori_loop(0, n, body, carry)


def validate_acs(acs_block, sampling: Sampling, config: RakiConfig):
    """Check an ACS block and its sampling for training (shape, size, finiteness). Raises ValueError."""
    check_sampling(sampling)
    R = sampling.R
    if R < 2:
        raise ValueError(f"RAKI needs an integer acceleration R >= 2, got R={R!r} ({sampling})")
    shape = getattr(acs_block, "shape", None)
    if shape is None or len(shape) != 3:
        raise ValueError(f"acs_block must have shape (coil, acs_lines, kx), got {shape}")
    nc, A, X = shape
    kshapes = config.kernel_shapes(nc, int(R))
    need = kspace_net.min_acs_lines(kshapes, int(R))
    if A < need:
        raise ValueError(f"too few ACS lines: {A} given, RAKI with kernels {config.kernels} at R={R} needs >= {need}")
    _, _, left, right = kspace_net.reach(kshapes)
    if X <= left + right:
        raise ValueError(f"ACS block has {X} readout points; the kernels need more than {left + right}")
    if A != sampling.acs:
        raise ValueError(f"acs_block {shape} has {A} ACS lines but {sampling} has acs={sampling.acs}")
    if is_concrete(acs_block):
        a = np.asarray(acs_block)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"acs_block {shape} contains NaN or Inf")
        if not np.any(a != 0):
            raise ValueError(f"acs_block {shape} is all zeros")


def train(acs_block, sampling: Sampling, config: RakiConfig | None = None, slope=0.5, *, key,
          progress: bool = False) -> TrainResult:
    """Train RAKI on an ACS block (validated, with progress and divergence checks).

    Runs the same computation as :func:`train_kernels` (same initialisation,
    scaling, loss, optimiser updates and best-iterate choice; equal results up to
    float rounding) in chunks of ``config.log_every`` steps, each chunk one
    compiled ``lax.fori_loop`` (one compilation for all chunks, slopes and learning
    rates). Between chunks the losses are checked, logged, and a tqdm bar advances
    when ``progress`` is true; Ctrl-C stops training at the end of the running chunk.
    On the 2-core CPU the loop ran a paper-size fit in 13.6 s against 22.3 s for
    the same steps driven one by one from Python (``benchmarks/results/slice_batch_cpu.md``).

    Args:
        acs_block: (Nc, A, X) fully sampled ACS lines (any scale; complex),
            ``A = sampling.acs``.
        sampling: the :class:`rakijax.sampling.Sampling` (``sampling.R >= 2``).
        config: :class:`RakiConfig` (default ``RakiConfig()``).
        slope: negative slope ``a`` of the complex leaky ReLU, ``0 <= a <= 1``.
        key: PRNG key (explicit) for the initialisation.
        progress: show a tqdm progress bar.

    Returns:
        :class:`TrainResult`.

    Raises:
        ValueError: bad shape, too few ACS lines (names the count needed), ACS
            width other than ``sampling.acs``, NaN/Inf or all-zero input, slope
            outside [0, 1].
        TypeError: ``sampling`` is not a :class:`rakijax.sampling.Sampling`.
        FloatingPointError: the loss became NaN/Inf (names the step and the
            learning rate); nothing is returned.
    """
    config = RakiConfig() if config is None else config
    if not isinstance(config, RakiConfig):
        raise ValueError(f"config must be a RakiConfig, got {type(config).__name__}")
    check_slope(slope)
    validate_acs(acs_block, sampling, config)
    R = int(sampling.R)
    acs = jnp.asarray(acs_block)
    static = dataclasses.replace(_static(config), steps=1)
    real = jnp.real(jnp.zeros((), param_dtype_for(acs.dtype, config))).dtype
    slope_arr = jnp.asarray(slope, real)
    problem, scale, params, opt_state = _init_jit(acs, key, slope_arr, R=R, config=static)
    lr = jnp.asarray(config.learning_rate, real)
    losses = np.zeros(config.steps, real)
    best, best_loss = jax.tree.map(jnp.copy, params), jnp.asarray(np.inf, real)  # own buffers (params are donated)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, desc=f"RAKI R={R} a={float(slope):g}", unit="step")
    chunk = max(1, min(config.log_every, config.steps))
    try:
        for start in range(0, config.steps, chunk):
            stop = min(start + chunk, config.steps)
            params, opt_state, best, best_loss, part = _chunk_jit(
                params, opt_state, best, best_loss, problem, slope_arr, lr, jnp.asarray(stop - start, jnp.int32),
                R=R, config=static, length=chunk)
            losses[start:stop] = np.asarray(part)[: stop - start]
            bad = np.flatnonzero(~np.isfinite(losses[start:stop]))
            if bad.size:
                step = start + int(bad[0])
                raise FloatingPointError(
                    f"RAKI training diverged: loss is {losses[step]} at step {step} of {config.steps} "
                    f"(learning_rate={config.learning_rate}, slope={float(slope):g}); lower the learning rate"
                )
            log.info("RAKI step %d/%d loss %.4e", stop, config.steps, float(losses[stop - 1]))
            if bar is not None:
                bar.update(stop - start)
                bar.set_postfix(loss=f"{float(losses[stop - 1]):.3e}")
    finally:
        if bar is not None:
            bar.close()
    kernels = _kernels(best, static)
    if not all(bool(jnp.all(jnp.isfinite(w))) for w in kernels):
        raise FloatingPointError(
            f"RAKI training produced non-finite kernels (learning_rate={config.learning_rate}); lower the learning rate"
        )
    return TrainResult(kernels=kernels, losses=losses, scale=float(scale), config=config,
                       slope=float(slope), R=R)
