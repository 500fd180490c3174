"""The ``rakijax`` command: ``demo``, ``recon`` and ``sweep``.

A thin layer over :mod:`rakijax.pipeline` and :mod:`rakijax.results`. Bad input
(missing file, unknown format, missing HDF5 key, wrong rank, NaN/Inf, bad R, slice
out of range, an existing output folder, ...) ends with one line
``rakijax: error: ...`` on stderr and exit status 2; an unexpected internal failure
ends with one line and status 1 (``--debug`` shows the traceback). Progress is
logged to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "build_parser", "DEMO_PRESET", "DEMO_SMALL"]

log = logging.getLogger("rakijax")

#: The demo's problem size (chosen so that the whole demo, both methods, analytic and
#: Monte Carlo g-factor maps for both, runs in ~3 minutes on an idle 2-core CPU).
DEMO_PRESET = {
    "n": 160,
    "ncoils": 16,
    "R": 4,
    "acs": 24,
    "slope": 0.5,
    "raki_widths": (64, 32),
    "raki_steps": 2000,  # the RakiConfig default; RAKI beats GRAPPA here (NMSE 3.7e-3 vs 3.9e-3)
    "replicas": 200,
    "mc_noise_scale": 1.0,
    "seed": 0,
}

#: ``rakijax demo --small``: a quick smoke-test preset.
DEMO_SMALL = {"n": 64, "ncoils": 8, "raki_widths": (32, 8), "raki_steps": 200, "replicas": 50}

_USER_ERRORS = (ValueError, KeyError, IndexError, FileNotFoundError, FileExistsError,
                NotADirectoryError, IsADirectoryError, PermissionError, FloatingPointError, OSError)


class _Parser(argparse.ArgumentParser):
    """argparse with the one-line ``rakijax: error:`` format and exit status 2."""

    def error(self, message):
        self.exit(2, f"rakijax: error: {message}\n")


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="rakijax",
        description="GRAPPA and complex RAKI reconstruction with exact image-space form and g-factor maps.",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="{demo,recon,sweep}", parser_class=_Parser)

    d = sub.add_parser(
        "demo",
        help="full pipeline on the built-in brain phantom",
        description=(
            "Run GRAPPA and RAKI on the built-in synthetic brain phantom "
            f"({DEMO_PRESET['n']}x{DEMO_PRESET['n']}, {DEMO_PRESET['ncoils']} coils, correlated noise) at "
            f"R={DEMO_PRESET['R']} with {DEMO_PRESET['acs']} ACS lines, RAKI slope {DEMO_PRESET['slope']} "
            f"(widths {DEMO_PRESET['raki_widths']}, {DEMO_PRESET['raki_steps']} Adam steps); analytic g-factor "
            f"maps of both compared with {DEMO_PRESET['replicas']}-replica Monte Carlo at the data's own noise "
            "level; the image-space RAKI reconstruction beside the k-space one. Writes results.h5 (RAKI), "
            "results_grappa.h5, metrics.json (RAKI at top level, plus 'grappa', 'raki', 'montecarlo'), "
            "config.json and PNG figures. About 3 minutes on a 2-core CPU."
        ),
    )
    d.add_argument("--out", default="rakijax_demo", metavar="DIR", help="output folder (default: %(default)s)")
    d.add_argument("--overwrite", action="store_true", help="write into an existing non-empty folder, "
                   "replacing only rakijax's own output files")
    d.add_argument("--small", action="store_true", help="tiny quick preset (64x64, 8 coils; for smoke tests)")

    r = sub.add_parser(
        "recon",
        help="reconstruct a retrospectively undersampled fully sampled scan",
        description=(
            "Undersample a fully sampled multi-coil slice by R (acquired lines ky = offset + m*R, ACS block "
            "centred on ky = Ny//2), reconstruct it with GRAPPA or RAKI and write results.h5 (reference, "
            "recon, recon_kspace, gfactor, mask), metrics.json, config.json and PNG figures to --out. "
            "INPUT: fastMRI multicoil HDF5 (dataset 'kspace' (slices, coils, kx, ky)), BART .cfl/.hdr, "
            ".npy/.npz (coil, ky, kx) or .mat (with --axes)."
        ),
    )
    r.add_argument("input", metavar="INPUT", help="fully sampled k-space file (.h5, .cfl/.hdr, .npy, .npz, .mat)")
    r.add_argument("--R", type=int, default=4, help="acceleration factor (default: %(default)s)")
    r.add_argument("--acs", type=int, default=24, help="number of central ACS lines (default: %(default)s)")
    r.add_argument("--method", choices=("grappa", "raki"), default="grappa", help="reconstruction (default: %(default)s)")
    r.add_argument("--slope", type=float, default=0.5,
                   help="RAKI negative slope of the complex leaky ReLU, 0..1 (1 = linear) (default: %(default)s)")
    r.add_argument("--slice", type=int, default=0, help="slice index in a multi-slice file (default: %(default)s)")
    r.add_argument("--gfactor", choices=("analytic", "montecarlo", "autodiff", "none"), default="analytic",
                   help="g-factor map: analytic (exact linear response), montecarlo (pseudo-replicas of the actual "
                        "reconstruction), autodiff (dense jax.jacfwd; small grids only) or none (default: %(default)s)")
    r.add_argument("--linearisation", choices=("true", "frozen"), default="true",
                   help="RAKI analytic map: true derivative (widely linear) or the paper's frozen activation masks "
                        "(default: %(default)s)")
    r.add_argument("--replicas", type=int, default=1000, help="Monte Carlo replicas (default: %(default)s)")
    r.add_argument("--mc-noise-scale", type=float, default=1.0,
                   help="Monte Carlo noise std relative to the data's noise covariance; small (0.01) approaches the "
                        "'true' linear map (default: %(default)s)")
    r.add_argument("--seed", type=int, default=0, help="seed for RAKI initialisation and Monte Carlo (default: %(default)s)")
    r.add_argument("--overwrite", action="store_true",
                   help="write into an existing non-empty --out, replacing only rakijax's own output files")
    r.add_argument("--out", required=True, metavar="DIR", help="output folder (created; must be new or empty)")
    r.add_argument("--key", default="kspace", help="HDF5/.npz/.mat dataset name (default: %(default)s)")
    r.add_argument("--axes", default=None,
                   help="axis order of a .npy/.npz/.mat array as letters, e.g. 'cyx' (coil, ky, kx) or 'scxy'")
    r.add_argument("--noise-key", default=None, help="dataset/variable holding a noise-only scan (its covariance is "
                   "used for prewhitening and the g-factor; default: estimated from the k-space corners)")
    r.add_argument("--small", action="store_true", help="small RAKI network (widths 32, 8) for quick runs")
    r.add_argument("--steps", type=int, default=None, help="RAKI training steps (default: the RakiConfig default)")
    r.add_argument("--lambda", dest="lamda", type=float, default=None, help="GRAPPA Tikhonov regularisation "
                   "(default: the library's)")
    r.add_argument("--no-prewhiten", action="store_true", help="reconstruct in the scanner's coil basis")
    r.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    r.add_argument("--progress", action="store_true", help="show progress bars")

    sub.add_parser("sweep", help="parameter sweeps (see 'rakijax sweep --help')", add_help=False)
    return p


# ----------------------------------------------------------------------------- helpers


def _raki_config(small: bool, steps: int | None, widths=None):
    from .raki import RakiConfig

    rc = RakiConfig.small() if small else RakiConfig()
    kw = {}
    if widths is not None:
        kw["widths"] = tuple(widths)
    if steps is not None:
        if steps < 1:
            raise ValueError(f"--steps must be >= 1, got {steps}")
        kw["steps"] = int(steps)
    if kw:
        import dataclasses

        rc = dataclasses.replace(rc, **kw)
    return rc


def _load(path: str, *, slice: int, key: str, axes, noise_key=None):
    from . import data as dmod

    if Path(path).is_dir():
        raise IsADirectoryError(f"input {path!r} is a folder, not a k-space file")
    kw = {"slice": slice, "key": key}
    if axes is not None:
        kw["axes"] = axes
    if noise_key is not None:
        kw["noise_key"] = noise_key
    return dmod.load(path, **kw)


def _one_line(e: BaseException) -> str:
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    msg = " ".join(str(msg).split())
    return msg or type(e).__name__


def _figures_for(res, label: str):
    from . import plotting as pl

    figs = {
        "reconstruction.png": pl.reconstruction_figure(
            res.reference, {label: res.recon}, support=res.support, metrics={label: res.metrics}
        )
    }
    if res.gfactor is not None:
        title = f"{label} g-factor ({res.config.gfactor}"
        title += f", {res.config.linearisation})" if res.metrics.get("linearisation") else ")"
        figs["gfactor.png"] = pl.gfactor_figure(res.gfactor, support=res.support, title=title)
    if res.image_space_recon is not None:
        figs["image_vs_kspace.png"] = pl.image_kspace_figure(
            res.recon, res.image_space_recon, label=label, rel_error=res.metrics.get("image_space_rel_error")
        )
    if res.losses is not None:
        figs["training_loss.png"] = pl.loss_figure(res.losses)
    return figs


def _arrays(res):
    return {
        "reference": res.reference,
        "recon": res.recon,
        "recon_kspace": res.recon_kspace,
        "gfactor": res.gfactor,
        "mask": res.mask,
        "support": res.support,
    }


# ----------------------------------------------------------------------------- commands


def cmd_recon(args, argv) -> int:
    from . import pipeline, results

    t_start = time.perf_counter()
    raki_cfg = None
    if args.method == "raki":
        raki_cfg = _raki_config(args.small, args.steps)
    cfg = pipeline.ReconConfig(
        method=args.method, R=args.R, acs=args.acs, slope=args.slope, gfactor=args.gfactor,
        linearisation=args.linearisation, replicas=args.replicas, mc_noise_scale=args.mc_noise_scale,
        seed=args.seed, raki=raki_cfg, grappa_lambda=args.lamda, prewhiten=not args.no_prewhiten,
        slice=args.slice, progress=args.progress,
    )
    results.check_run_dir(args.out, args.overwrite)  # refuse before any long work
    data = _load(args.input, slice=args.slice, key=args.key, axes=args.axes, noise_key=args.noise_key)
    k = data.kspace
    pipeline.check_feasible(k.shape, cfg)  # bad R / ACS / infeasible g-factor: refuse before any output
    log.info("[1/4] loaded %s (slice %d): k-space %s (coil, ky, kx), %s", args.input, args.slice,
             tuple(k.shape), k.dtype)
    log.info("[2/4] %s reconstruction, R=%d, %d ACS lines, g-factor: %s", args.method, args.R, args.acs, args.gfactor)
    res = pipeline.reconstruct(data, cfg)
    m = res.metrics
    log.info("      NMSE %.3e  PSNR %.2f dB  SSIM %.4f", m["nmse"], m["psnr"], m["ssim"])
    if res.gfactor is not None:
        log.info("      g-factor mean %.3f  p95 %.3f  max %.3f", m["gfactor_mean"], m["gfactor_p95"], m["gfactor_max"])
    figs = {}
    if not args.no_figures:
        log.info("[3/4] figures")
        figs = _figures_for(res, args.method.upper())
    log.info("[4/4] writing %s", args.out)
    out = results.create_run_dir(args.out, args.overwrite)
    config = {
        "command": "recon",
        "input": os.path.abspath(args.input),
        "input_key": args.key,
        "input_axes": args.axes,
        "input_shape": list(k.shape),
        "input_meta": getattr(data, "meta", {}) or {},
        "seed": args.seed,
        "recon": cfg.to_dict(),
        "sampling": {"ny": res.sampling.ny, "R": res.sampling.R, "acs": res.sampling.acs,
                     "offset": res.sampling.offset, "R_eff": res.sampling.R_eff},
    }
    m = dict(m)
    m["timings"] = dict(m["timings"], total_s=time.perf_counter() - t_start)
    written = results.write_run(out, arrays=_arrays(res), metrics=m, config=config, figures=figs, argv=argv)
    log.info("done in %.1f s: %s", time.perf_counter() - t_start, ", ".join(written))
    return 0


def cmd_demo(args, argv) -> int:
    from . import pipeline, plotting as pl, results
    from .data.synthetic import brain_phantom

    t_start = time.perf_counter()
    P = dict(DEMO_PRESET)
    if args.small:
        P.update(DEMO_SMALL)
    results.check_run_dir(args.out, args.overwrite)
    log.info("[1/6] built-in brain phantom %dx%d, %d coils", P["n"], P["n"], P["ncoils"])
    data = brain_phantom(n=P["n"], ncoils=P["ncoils"], seed=P["seed"])
    common = dict(R=P["R"], acs=P["acs"], gfactor="analytic", seed=P["seed"], replicas=P["replicas"],
                  mc_noise_scale=P["mc_noise_scale"])
    log.info("[2/6] GRAPPA R=%d, %d ACS, analytic g-factor", P["R"], P["acs"])
    g_res = pipeline.reconstruct(data, pipeline.ReconConfig(method="grappa", **common))
    log.info("      GRAPPA NMSE %.3e, g mean %.3f", g_res.metrics["nmse"], g_res.metrics["gfactor_mean"])
    log.info("[3/6] RAKI slope %.2f (widths %s, %d steps), analytic g-factor", P["slope"], P["raki_widths"], P["raki_steps"])
    rcfg = _raki_config(False, P["raki_steps"], widths=P["raki_widths"])
    r_res = pipeline.reconstruct(data, pipeline.ReconConfig(method="raki", slope=P["slope"], raki=rcfg, **common))
    log.info("      RAKI NMSE %.3e, g mean %.3f", r_res.metrics["nmse"], r_res.metrics["gfactor_mean"])
    log.info("[4/6] Monte Carlo g-factor (%d replicas, noise scale %g) for GRAPPA and RAKI", P["replicas"], P["mc_noise_scale"])
    mc = {}
    maps = {}
    for name, res in (("grappa", g_res), ("raki", r_res)):
        g_mc, t_mc = pipeline.gfactor_map(res, "montecarlo")
        s = res.support
        diff = g_mc[s] - res.gfactor[s]
        mc[name] = {
            "replicas": P["replicas"],
            "mc_noise_scale": P["mc_noise_scale"],
            "gfactor_mean": float(g_mc[s].mean()),
            "gfactor_max": float(g_mc[s].max()),
            "mean_rel_difference_vs_analytic": float(np.mean(diff / res.gfactor[s])),
            "rms_rel_difference_vs_analytic": float(np.sqrt(np.mean((diff / res.gfactor[s]) ** 2))),
            "expected_rel_std": float(1 / (2 * np.sqrt(P["replicas"]))),
            "time_s": t_mc,
        }
        maps[name.upper() if name == "grappa" else "RAKI"] = (res.gfactor, g_mc)
        log.info("      %s: MC g mean %.3f vs analytic %.3f (%.1f s)", name, mc[name]["gfactor_mean"],
                 res.metrics["gfactor_mean"], t_mc)
    log.info("[5/6] figures")
    labels = {"GRAPPA": g_res.metrics, "RAKI": r_res.metrics}
    figs = {
        "reconstruction.png": pl.reconstruction_figure(
            r_res.reference, {"GRAPPA": g_res.recon, "RAKI": r_res.recon}, support=r_res.support, metrics=labels),
        "gfactor.png": pl.gfactor_figure(r_res.gfactor, support=r_res.support,
                                         title=f"RAKI g-factor (analytic, {r_res.config.linearisation})"),
        "gfactor_grappa.png": pl.gfactor_figure(g_res.gfactor, support=g_res.support, title="GRAPPA g-factor (analytic)"),
        "gfactor_comparison.png": pl.gfactor_comparison_figure(
            maps, support=r_res.support, labels=("analytic", f"Monte Carlo ({P['replicas']})")),
        "training_loss.png": pl.loss_figure(r_res.losses),
    }
    if r_res.image_space_recon is not None:
        figs["image_vs_kspace.png"] = pl.image_kspace_figure(
            r_res.recon, r_res.image_space_recon, label="RAKI", rel_error=r_res.metrics["image_space_rel_error"])
    log.info("[6/6] writing %s", args.out)
    out = results.create_run_dir(args.out, args.overwrite)
    total = time.perf_counter() - t_start
    metrics = dict(r_res.metrics)
    metrics.update({"grappa": g_res.metrics, "raki": r_res.metrics, "montecarlo": mc,
                    "demo_total_s": total})
    config = {
        "command": "demo",
        "seed": P["seed"],
        "demo": {k: (list(v) if isinstance(v, tuple) else v) for k, v in P.items()},
        "phantom": {"n": P["n"], "ncoils": P["ncoils"], "meta": getattr(data, "meta", {}) or {}},
        "recon": r_res.config.to_dict(),
        "grappa": g_res.config.to_dict(),
        "files": {
            "results.h5": "RAKI run (reference, recon, recon_kspace, gfactor analytic, mask)",
            "results_grappa.h5": "GRAPPA run, same layout",
            "metrics.json": "RAKI metrics at top level; 'grappa', 'raki' per method; 'montecarlo' comparison",
        },
    }
    results.write_results_h5(out / "results_grappa.h5", **_arrays(g_res))
    results.write_run(out, arrays=_arrays(r_res), metrics=metrics, config=config, figures=figs, argv=argv,
                      extra_outputs=["results_grappa.h5"])
    log.info("demo done in %.1f s -> %s", time.perf_counter() - t_start, out)
    return 0


# ----------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rakijax`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    full_argv = ["rakijax"] + argv
    # `rakijax sweep ...` forwards everything after "sweep" to rakijax.sweep.main
    flags = [a for a in argv if a in ("-q", "--quiet", "--debug")]
    rest = [a for a in argv if a not in ("-q", "--quiet", "--debug")]
    if rest and rest[0] == "sweep":
        quiet, debug = bool({"-q", "--quiet"} & set(flags)), "--debug" in flags
        command = None
    else:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        quiet, debug, command = args.quiet, args.debug, args.command
    _setup_logging(quiet)
    try:
        if command is None:
            from . import sweep

            return int(sweep.main(rest[1:]) or 0)
        if command == "recon":
            return cmd_recon(args, full_argv)
        return cmd_demo(args, full_argv)
    except _USER_ERRORS as e:
        if debug:
            raise
        sys.stderr.write(f"rakijax: error: {_one_line(e)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("rakijax: interrupted\n")
        return 130
    except Exception as e:  # an internal failure: one line, not a JAX traceback
        if debug:
            raise
        sys.stderr.write(f"rakijax: internal error ({type(e).__name__}): {_one_line(e)} (rerun with --debug)\n")
        return 1


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _setup_logging(quiet: bool = False):
    root = logging.getLogger("rakijax")
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        h = _StderrHandler()
        h.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        root.addHandler(h)
    root.setLevel(logging.WARNING if quiet else logging.INFO)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
