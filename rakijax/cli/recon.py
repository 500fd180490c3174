"""``rakijax recon`` and ``rakijax apply``: reconstruct a scan (every slice) into one run folder.

Two modes, chosen from the data (DESIGN.md): a fully sampled input is undersampled here by
``--R``/``--acs`` (retrospective: image metrics against the reference); an accelerated input
(zero lines, a fastMRI ``mask``, ISMRMRD line indices) brings its own pattern, and
``--R``/``--acs``, if given, must agree with it. A multi-slice file is reconstructed whole by
default (``--slice all``), one scan-specific fit per slice; compiled programs are reused
across slices of one shape. ``rakijax apply RUN_DIR INPUT`` re-applies a run's saved kernels
(``kernels.npz``) on the same path without refitting, and recomputes the g-factor map.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

from .. import plotting as pl
from ..config import ReconConfig, preset
from ..data import load, load_noise, num_slices
from ..autoslope import choose_slope, estimate_figure
from ..exports import check_kernels_fit, load_kernels
from ..memory import check_input_size, check_memory
from ..methods import Fit, method_for
from ..pipeline import ReconResult, check_feasible, reconstruct
from ..results import stack_slices, write_exports, write_kernels, write_run
from ..runfolder import check_run_dir, run_folder
from ..sampling import make_sampling
from ..sanity import check_kspace

__all__ = ["cmd_recon", "cmd_apply", "recon_config", "run_figures", "gfactor_figure", "run_arrays"]

log = logging.getLogger("rakijax")

#: retrospective defaults when the flags are not given (README: ``--R 4 --acs 24``)
DEFAULT_R, DEFAULT_ACS = 4, 24


def recon_config(args, accelerated: bool) -> ReconConfig:
    """The :class:`ReconConfig` of ``rakijax recon`` flags (validated; flags that do not
    apply to the chosen g-factor are ignored, with a log line)."""
    raki = preset("small" if args.small else (args.preset or "paper")).raki
    if args.steps is not None:
        if args.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {args.steps}")
        raki = dataclasses.replace(raki, steps=int(args.steps))
    mc = args.gfactor == "montecarlo"
    if not mc and (args.replicas != 1000 or args.mc_noise_scale != 1.0):
        log.info("--replicas/--mc-noise-scale apply to --gfactor montecarlo only: ignored")
    R, acs = args.R, args.acs
    if args.slope == "auto" and args.method != "raki":
        raise ValueError("--slope auto chooses RAKI's slope: use it with --method raki")
    if not accelerated:
        R, acs = DEFAULT_R if R is None else R, DEFAULT_ACS if acs is None else acs
    return ReconConfig(
        method=args.method, R=R, acs=acs, slope=0.5 if args.slope == "auto" else args.slope, gfactor=args.gfactor, linearisation=args.linearisation,
        replicas=args.replicas if mc else 1000, mc_noise_scale=args.mc_noise_scale if mc else 1.0, seed=args.seed,
        raki=raki, grappa_lambda=args.lamda, prewhiten=not args.no_prewhiten, reinsert_acs=args.reinsert_acs,
        progress=args.progress,
    )


def _warning(res: ReconResult) -> str | None:
    w = res.metrics.get("warnings") or []
    return f"warning: {w[0]}" + (f" (+{len(w) - 1} more in metrics.json)" if len(w) > 1 else "") if w else None


def _where(res: ReconResult) -> dict:
    s = res.sampling
    return dict(R=s.R, acs=s.acs, slope=res.config.slope if res.config.method == "raki" else None,
                warning=_warning(res))


def gfactor_figure(res: ReconResult, label: str, *, scale=None):
    """The g-factor figure of one slice, its method spelled out, on the run's ``scale``."""
    cfg = res.config
    return pl.gfactor_figure(
        res.gfactor, support=res.support, title="g-factor", scale=scale, method=label, gfactor=cfg.gfactor,
        linearisation=cfg.linearisation if cfg.method == "raki" and cfg.gfactor == "analytic" else None,
        replicas=cfg.replicas if cfg.gfactor == "montecarlo" else None, **_where(res))


def run_figures(res: ReconResult, label: str, *, scale=None) -> dict:
    """The PNG figures of one slice: reconstruction/error, g-factor, image vs k-space, loss.

    Titles carry the method, R, ACS, slope and the g-factor method spelled out; a warning of
    the run (untrusted noise estimate, implausible reconstruction) is drawn in red; ``scale``
    is the g colour scale shared by all g figures of a run (default: this map's)."""
    figs = {}
    if res.reference is not None:
        figs["reconstruction.png"] = pl.reconstruction_figure(
            res.reference, {label: res.recon}, support=res.support, metrics={label: res.metrics}, **_where(res))
    if res.gfactor is not None:
        figs["gfactor.png"] = gfactor_figure(res, label, scale=scale)
    if res.image_space_recon is not None:
        figs["image_vs_kspace.png"] = pl.image_kspace_figure(
            res.recon, res.image_space_recon, label=label, rel_error=res.metrics.get("image_space_rel_error"))
    if res.losses is not None:
        figs["training_loss.png"] = pl.loss_figure(res.losses)
    return figs


def run_arrays(res: ReconResult) -> dict:
    """The ``results.h5`` datasets of one slice."""
    return stack_slices([res])[0]


@contextmanager
def _naming(path):
    """Re-raise a reader's error so that its one line names the file and the command-line flag."""
    try:
        yield
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError) as e:
        msg = " ".join(str(e.args[0] if isinstance(e, KeyError) and e.args else e).split())
        msg = msg.replace("pass axes=", "pass --axes (e.g. --axes cyx)").replace("axes= in rakijax.data.load", "--axes")
        if os.path.basename(str(path)) not in msg:
            msg = f"{path}: {msg}"
        raise ValueError(msg) from None


def _slices(args) -> list[int]:
    if Path(args.input).is_dir():
        raise IsADirectoryError(f"input {args.input!r} is a folder, not a k-space file")
    check_input_size(args.input)  # before reading: a file larger than the memory cannot be loaded
    with _naming(args.input):
        n = num_slices(args.input, key=args.key, axes=args.axes)
    if args.slice == "all" or (args.slice is None and n > 1):
        return list(range(n))
    i = args.slice or 0
    if i >= n:
        raise IndexError(f"{args.input}: slice index {i} out of range (the file has {n} slice(s))")
    return [i]


def _load(args, i: int, noise, calibrate: bool = True):
    with _naming(args.input):
        data = load(args.input, slice=i, key=args.key, axes=args.axes, noise_key=args.noise_key,
                    require_acs=calibrate)
    if noise is not None:
        if noise.shape[0] != data.kspace.shape[0]:
            raise ValueError(f"noise scan {args.noise!r} has {noise.shape[0]} coils but the k-space has "
                             f"{data.kspace.shape[0]}")
        data = data.with_(noise=noise, psi=None)
    return data


def _reconstruct_all(args, slices, cfg_for, run=None, *, calibrate: bool = True) -> tuple[list, list]:
    """Reconstruct every slice on the one path (``run(j, data, cfg)``, default
    :func:`rakijax.pipeline.reconstruct`); checks the first slice before any work."""
    noise = None
    if args.noise:
        with _naming(args.noise):
            noise = load_noise(args.noise)
    first = _load(args, slices[0], noise, calibrate)
    cfg = cfg_for(first)
    sampling = check_feasible(
        first.kspace.shape, cfg, calibrate=calibrate,
        sampling=first.sampling(R=cfg.R, acs=cfg.acs, require_acs=calibrate) if first.accelerated else None)
    check_kspace(first.kspace, sampling.R, name=str(args.input))  # refusals before any work (warnings: later)
    for w in check_memory(first.kspace.shape, cfg.method, sampling.R, cfg.gfactor, acs=sampling.acs,
                          slices=len(slices), widths=cfg.raki.widths, kernels=cfg.raki.kernels,
                          grappa_kernel=cfg.grappa_kernel, mc_chunk=cfg.mc_chunk, name=str(args.input)):
        log.warning(w)
    results, datas = [], []
    for j, i in enumerate(slices):
        data = first if j == 0 else _load(args, i, noise, calibrate)
        log.info("slice %d (%d/%d): k-space %s (coil, ky, kx), %s mode", i, j + 1, len(slices), tuple(data.kspace.shape),
                 "accelerated" if data.accelerated else "retrospective")
        c = cfg_for(data)
        res = run(j, data, c) if run is not None else reconstruct(data, c)
        m = res.metrics
        if "nmse" in m:
            log.info("      NMSE %.3e  PSNR %.2f dB  SSIM %.4f", m["nmse"], m["psnr"], m["ssim"])
        if res.gfactor is not None:
            log.info("      g-factor mean %.3f  p95 %.3f  max %.3f", m["gfactor_mean"], m["gfactor_p95"], m["gfactor_max"])
        results.append(res)
        datas.append(data)
    return results, datas


def _write(args, argv, results, datas, slices, config: dict, t_start: float, figs_extra=None) -> None:
    figs = {} if args.no_figures else {**run_figures(results[len(results) // 2], results[0].config.method.upper()),
                                       **(figs_extra or {})}
    arrays, metrics = stack_slices(results)
    metrics["timings"] = {**(metrics["timings"] if isinstance(metrics["timings"], dict) else
                             {"per_slice": metrics["timings"]}), "total_s": time.perf_counter() - t_start}
    config = {**config, "slices": slices, "input_shape": list(datas[0].kspace.shape), "input_meta": datas[0].meta,
              "recon": results[0].config.to_dict(),
              "sampling": {"ny": results[0].sampling.ny, "R": results[0].sampling.R, "acs": results[0].sampling.acs,
                           "offset": results[0].sampling.offset, "R_eff": results[0].sampling.R_eff}}
    log.info("writing %s", args.out)
    with run_folder(args.out, args.overwrite) as stage:
        extra = write_exports(stage, arrays, datas[0].voxel_size) + [write_kernels(stage, results, slices)]
        written = write_run(stage, arrays=arrays, metrics=metrics, config=config, figures=figs, argv=argv,
                            extra_outputs=extra)
    log.info("done in %.1f s: %s", time.perf_counter() - t_start, ", ".join(written))


def cmd_recon(args, argv) -> int:
    """Run ``rakijax recon``; returns the exit status."""
    t_start = time.perf_counter()
    check_run_dir(args.out, args.overwrite)  # refuse before any long work
    slices = _slices(args)
    chosen = {}

    def auto_slope(j, data, cfg):  # --slope auto: per slice, then the same path with the chosen fit
        a = choose_slope(data, cfg, reinsert_acs=cfg.reinsert_acs)
        log.info("      slope %g chosen from %s (estimated NMSE %.3e +- %.1e over %d folds)", a.slope,
                 ", ".join(f"{x:g}" for x in a.slopes), a.estimate[a.index], a.spread[a.index], a.folds)
        c = cfg.replace(slope=a.slope)
        res = reconstruct(data, c, method=method_for(c), fit=a.fit(), whitener=(a.prepared.W, a.prepared.L))
        res.metrics["auto_slope"] = a.to_dict()
        chosen[j] = a
        return res

    results, datas = _reconstruct_all(args, slices, lambda d: recon_config(args, d.accelerated),
                                      auto_slope if args.slope == "auto" else None)
    figs = {"auto_slope.png": estimate_figure(chosen[len(slices) // 2])} if chosen else None
    config = {"command": "recon", "input": os.path.abspath(args.input), "input_key": args.key,
              "input_axes": args.axes, "slice": slices[0] if len(slices) == 1 else "all", "seed": args.seed,
              "slope_choice": "auto" if chosen else "given"}
    _write(args, argv, results, datas, slices, config, t_start, figs)
    return 0


def _apply_config(cfg: ReconConfig, meta: dict, data, source) -> ReconConfig:
    """The run's configuration for ``data``, after checking that the saved kernels fit it
    (:func:`rakijax.exports.check_kernels_fit`: coils, Nx, Ny, R, offset). Accelerated input
    keeps its own ACS lines, if any (a repetition may have none)."""
    if data.accelerated:
        s = data.sampling(R=cfg.R, require_acs=False)
    else:
        s = make_sampling(data.kspace.shape[1], cfg.R, cfg.acs, cfg.offset)
    check_kernels_fit(meta, s, data.kspace.shape, source=str(source))
    return cfg.replace(acs=None) if data.accelerated else cfg


def cmd_apply(args, argv) -> int:
    """Run ``rakijax apply RUN_DIR INPUT``: the run's kernels on new data, no refit."""
    t_start = time.perf_counter()
    check_run_dir(args.out, args.overwrite)
    tree, meta = load_kernels(Path(args.run_dir) / "kernels.npz")
    saved = tree["slices"]
    cfg = ReconConfig.from_dict(meta["config"])
    cfg = cfg.replace(R=meta["R"], acs=meta["acs"], gfactor=args.gfactor or cfg.gfactor,
                      reinsert_acs=args.reinsert_acs if args.reinsert_acs is not None else cfg.reinsert_acs)
    slices = _slices(args)
    if len(saved) not in (1, len(slices)):
        raise ValueError(f"{args.run_dir} holds kernels of {len(saved)} slices; the input has {len(slices)} "
                         "to reconstruct (pass --slice N, or a run with one slice)")
    pick = (lambda j: saved[0]) if len(saved) == 1 else (lambda j: saved[j])  # noqa: E731
    results, datas = _reconstruct_all(
        args, slices,
        lambda d: _apply_config(cfg, meta, d, args.input),
        lambda j, d, c: reconstruct(d, c, method=method_for(c), fit=Fit(list(pick(j)["kernels"]), None, 0.0),
                                    whitener=(pick(j)["W"], pick(j)["L"])),
        calibrate=False)
    config = {"command": "apply", "run_dir": os.path.abspath(args.run_dir), "input": os.path.abspath(args.input),
              "input_key": args.key, "input_axes": args.axes, "slice": slices[0] if len(slices) == 1 else "all",
              "seed": cfg.seed}
    _write(args, argv, results, datas, slices, config, t_start)
    return 0
