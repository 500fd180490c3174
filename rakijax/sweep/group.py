"""One sweep group: the pipeline's steps with the training of many points batched.

Points with the same input, ``R`` and ACS width share their prepared data and differ only
in traced numbers (slope, PRNG seed), so :func:`raki_group` trains them in one
``jax.vmap``-ed :func:`rakijax.raki.train_kernels` call (:func:`batched_trainer`, one
compilation per shape, none per slope) and evaluates each point with the pipeline's own
:func:`~rakijax.pipeline.apply`, :func:`~rakijax.pipeline.image_metrics` and
:func:`~rakijax.pipeline.gfactor` (so a point is what ``rakijax recon`` computes for its
:meth:`~rakijax.sweep.SweepSpec.recon_config`, up to the summation order of the batched
training). The whole group is always trained (the same batch whatever is left to do, so
kernels are bit-identical on a resume); only points in ``todo`` are evaluated.

When ``R`` does not divide ``Ny`` (e.g. 256 lines at R = 5) and the analytic g-factor is
asked for, the k-space is cropped in ky to the largest centred window that ``R`` divides
(:func:`rakijax.pipeline.ky_crop`).
"""

from __future__ import annotations

import functools
from typing import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import metrics as mt
from ..methods import Raki
from ..pipeline import apply, gfactor, image_metrics, prepare
from ..raki import train_kernels
from ..raki.config import RakiConfig
from ..raki.train import validate_acs
from ..sampling import Sampling
from .spec import SweepPoint, SweepSpec, point_id

__all__ = ["METRICS", "GroupFn", "batched_trainer", "raki_group"]

#: metrics written per point (``table.csv`` has one row for each).
METRICS = ("nmse", "psnr", "ssim", "gfactor_mean", "gfactor_p95", "gfactor_max", "hf_gain", "hf_loss")

#: ``group_fn(spec, group_points, todo_ids)`` yields ``(point, metrics, arrays)`` for the todo points.
GroupFn = Callable[[SweepSpec, Sequence[SweepPoint], frozenset], Iterator[tuple[SweepPoint, dict, dict]]]


@functools.lru_cache(maxsize=32)
def batched_trainer(sampling: Sampling, config: RakiConfig):
    """``f(acs_block, slopes (B,), keys (B,)) -> (kernels (B, ...), losses (B, steps))``.

    ``jax.jit(jax.vmap(rakijax.raki.train_kernels))`` over slope and key with the ACS block
    shared; cached per ``(sampling, config)`` so that groups of the same shapes reuse one
    compilation (a new batch size or ACS shape compiles once more).
    """

    def one(acs_block, slope, key):
        return train_kernels(acs_block, sampling, config, slope, key)

    return jax.jit(jax.vmap(one, in_axes=(None, 0, 0)))


def raki_group(spec: SweepSpec, group: Sequence[SweepPoint], todo: frozenset) -> Iterator[tuple[SweepPoint, dict, dict]]:
    """Train a group's networks together (vmap over slope and seed) and evaluate its todo points.

    Yields:
        ``(point, metrics, arrays)``: :data:`METRICS` (in the object support) and the arrays
        ``recon`` (float32 magnitude), ``losses`` and ``gfactor`` (when computed).
    """
    inp, R, acs = group[0].input, group[0].R, group[0].acs
    if any((p.input, p.R, p.acs) != (inp, R, acs) for p in group):
        raise ValueError("a group must share input, R and ACS")
    cfg0 = spec.recon_config(group[0])
    prep = prepare(inp.load(), cfg0, crop_ky=spec.gfactor == "analytic")
    validate_acs(prep.acs_block, prep.sampling, cfg0.raki)
    real = jnp.real(prep.reduced).dtype
    slopes = jnp.asarray([p.slope for p in group], real)
    keys = jnp.stack([jax.random.PRNGKey(p.seed) for p in group])
    kernels_b, losses_b = batched_trainer(prep.sampling, cfg0.raki)(prep.acs_block, slopes, keys)
    for i, point in enumerate(group):
        if point_id(spec, point) not in todo:
            continue
        cfg = spec.recon_config(point)
        method = Raki(cfg.raki, point.slope)
        kernels = [w[i] for w in kernels_b]
        rec = apply(prep, method, kernels)
        m = image_metrics(prep, rec)
        m = {k: m[k] for k in METRICS if k in m}
        arrays = {"recon": np.asarray(rec.image, np.float32), "losses": np.asarray(losses_b[i])}
        if spec.gfactor == "analytic":
            g = np.asarray(gfactor(prep, method, kernels, rec, cfg).g)
            m.update(mt.gfactor_summary(g, prep.support))
            arrays["gfactor"] = g.astype(np.float32)
        yield point, {k: float(v) for k, v in m.items()}, arrays
