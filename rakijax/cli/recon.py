"""``rakijax recon``: one scan, one method, one run folder."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

from .. import plotting as pl
from ..config import ReconConfig, preset
from ..data import load
from ..pipeline import ReconResult, check_feasible, reconstruct
from ..results import check_run_dir, run_folder, write_run

__all__ = ["cmd_recon", "recon_config", "run_figures", "run_arrays"]

log = logging.getLogger("rakijax")

#: retrospective defaults when the flags are not given (README: ``--R 4 --acs 24``)
DEFAULT_R, DEFAULT_ACS = 4, 24


def recon_config(args) -> ReconConfig:
    """The :class:`ReconConfig` of ``rakijax recon`` flags (validated; flags that do not
    apply to the chosen g-factor are ignored, with a log line)."""
    name = "small" if args.small else (args.preset or "paper")
    raki = preset(name).raki
    if args.steps is not None:
        if args.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {args.steps}")
        raki = dataclasses.replace(raki, steps=int(args.steps))
    mc = args.gfactor == "montecarlo"
    if not mc and (args.replicas != 1000 or args.mc_noise_scale != 1.0):
        log.info("--replicas/--mc-noise-scale apply to --gfactor montecarlo only: ignored")
    return ReconConfig(
        method=args.method, R=DEFAULT_R if args.R is None else args.R, acs=DEFAULT_ACS if args.acs is None else args.acs,
        slope=args.slope, gfactor=args.gfactor, linearisation=args.linearisation,
        replicas=args.replicas if mc else 1000, mc_noise_scale=args.mc_noise_scale if mc else 1.0,
        seed=args.seed, raki=raki, grappa_lambda=args.lamda, prewhiten=not args.no_prewhiten, progress=args.progress,
    )


def _title(res: ReconResult) -> str:
    m, s = res.metrics, res.sampling
    t = f"{m['method'].upper()} R={s.R}, {s.acs} ACS"
    return t + (f", slope {m['slope']:g}" if "slope" in m else "")


def run_figures(res: ReconResult, label: str) -> dict:
    """The PNG figures of one run: reconstruction/error, g-factor, image vs k-space, loss."""
    figs = {}
    if res.reference is not None:
        figs["reconstruction.png"] = pl.reconstruction_figure(
            res.reference, {label: res.recon}, support=res.support, metrics={label: res.metrics})
    if res.gfactor is not None:
        kind = res.config.gfactor
        if kind == "analytic":
            kind = "analytic linear response" + (f", {res.config.linearisation} derivative"
                                                 if res.metrics.get("linearisation") else "")
        elif kind == "montecarlo":
            kind = f"Monte Carlo, {res.config.replicas} replicas"
        figs["gfactor.png"] = pl.gfactor_figure(res.gfactor, support=res.support, title=f"{_title(res)} g-factor ({kind})")
    if res.image_space_recon is not None:
        figs["image_vs_kspace.png"] = pl.image_kspace_figure(
            res.recon, res.image_space_recon, label=label, rel_error=res.metrics.get("image_space_rel_error"))
    if res.losses is not None:
        figs["training_loss.png"] = pl.loss_figure(res.losses)
    return figs


def run_arrays(res: ReconResult) -> dict:
    """The ``results.h5`` datasets of one run."""
    return {"reference": res.reference, "recon": res.recon, "recon_kspace": res.recon_kspace,
            "gfactor": res.gfactor, "mask": res.mask, "support": res.support}


def cmd_recon(args, argv) -> int:
    """Run ``rakijax recon``; returns the exit status."""
    t_start = time.perf_counter()
    check_run_dir(args.out, args.overwrite)  # refuse before any long work
    cfg = recon_config(args)
    if args.slice == "all":
        raise ValueError("--slice all needs a multi-slice reader; pass a slice index")
    if Path(args.input).is_dir():
        raise IsADirectoryError(f"input {args.input!r} is a folder, not a k-space file")
    data = load(args.input, slice=args.slice, key=args.key, axes=args.axes, noise_key=args.noise_key)
    check_feasible(data.kspace.shape, cfg)  # bad R / ACS / infeasible g-factor: refuse before any work
    log.info("[1/4] loaded %s (slice %d): k-space %s (coil, ky, kx), %s", args.input, args.slice,
             tuple(data.kspace.shape), data.kspace.dtype)
    log.info("[2/4] %s reconstruction, R=%d, %d ACS lines, g-factor: %s", cfg.method, cfg.R, cfg.acs, cfg.gfactor)
    res = reconstruct(data, cfg)
    m = res.metrics
    if "nmse" in m:
        log.info("      NMSE %.3e  PSNR %.2f dB  SSIM %.4f", m["nmse"], m["psnr"], m["ssim"])
    if res.gfactor is not None:
        log.info("      g-factor mean %.3f  p95 %.3f  max %.3f", m["gfactor_mean"], m["gfactor_p95"], m["gfactor_max"])
    figs = {}
    if not args.no_figures:
        log.info("[3/4] figures")
        figs = run_figures(res, cfg.method.upper())
    log.info("[4/4] writing %s", args.out)
    config = {
        "command": "recon", "input": os.path.abspath(args.input), "input_key": args.key, "input_axes": args.axes,
        "input_shape": list(data.kspace.shape), "input_meta": data.meta, "slice": args.slice, "seed": cfg.seed,
        "recon": cfg.to_dict(),
        "sampling": {"ny": res.sampling.ny, "R": res.sampling.R, "acs": res.sampling.acs,
                     "offset": res.sampling.offset, "R_eff": res.sampling.R_eff},
    }
    m = {**m, "timings": {**m["timings"], "total_s": time.perf_counter() - t_start}}
    with run_folder(args.out, args.overwrite) as stage:
        written = write_run(stage, arrays=run_arrays(res), metrics=m, config=config, figures=figs, argv=argv)
    log.info("done in %.1f s: %s", time.perf_counter() - t_start, ", ".join(written))
    return 0
