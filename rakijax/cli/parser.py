"""The one argparse tree of the ``rakijax`` command: demo, recon, apply, sweep run/collect/plan.

``-q/--quiet`` and ``--debug`` are accepted before or after the subcommand. Every parse
error is one line ``rakijax: error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse

from ..config import PRESETS

__all__ = ["build_parser"]


class Parser(argparse.ArgumentParser):
    """argparse with the one-line ``rakijax: error:`` format and exit status 2."""

    def error(self, message):
        self.exit(2, f"rakijax: error: {message}\n")


def _common(suppress: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    d = {"default": argparse.SUPPRESS} if suppress else {}
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only", **d)
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors", **d)
    return p


def _slice(s: str):
    if s == "all":
        return "all"
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--slice must be a slice index or 'all', got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"--slice must be >= 0, got {v}")
    return v


def _slope(s: str):
    if s == "auto":
        return "auto"
    try:
        return float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--slope must be a number in [0, 1] or 'auto', got {s!r}") from None


def _output(p, what: str = "output folder (created; must be new or empty unless --overwrite)"):
    p.add_argument("--out", "-o", required=True, metavar="DIR", help=what)
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out (only rakijax's own "
                   "files are replaced; the old run stays until the new one is complete)")


def _add_recon(sub, common):
    r = sub.add_parser(
        "recon", parents=[common], help="reconstruct a multi-coil scan (GRAPPA or RAKI) with its g-factor map",
        description=(
            "Reconstruct multi-coil k-space with GRAPPA or RAKI and write results.h5, metrics.json, config.json and "
            "PNG figures to --out. A fully sampled INPUT is undersampled here by --R with --acs central ACS lines "
            "(retrospective mode: image metrics against the fully sampled reference). INPUT: fastMRI HDF5, "
            "BART .cfl/.hdr, .npy/.npz (coil, ky, kx) or .mat (with --axes)."),
    )
    r.add_argument("input", metavar="INPUT", help="k-space file (.h5, .cfl/.hdr, .npy, .npz, .mat)")
    r.add_argument("--method", choices=("grappa", "raki"), default="grappa", help="reconstruction (default: %(default)s)")
    r.add_argument("--R", type=int, default=None, help="acceleration factor (needed for fully sampled input; default 4)")
    r.add_argument("--acs", type=int, default=None, help="central ACS lines (needed for fully sampled input; default 24)")
    r.add_argument("--slope", type=_slope, default=0.5,
                   help="RAKI negative slope of the complex leaky ReLU, 0..1 (1 = linear), or 'auto': chosen per slice "
                        "without a reference by ACS cross-validation and the exact g-map (default: %(default)s)")
    r.add_argument("--slice", type=_slice, default=None,
                   help="slice index, or 'all' (default: all slices of a multi-slice file, else slice 0)")
    r.add_argument("--gfactor", choices=("analytic", "montecarlo", "autodiff", "none"), default="analytic",
                   help="g-factor map: analytic (exact linear response), montecarlo (pseudo-replicas of the actual "
                        "reconstruction), autodiff (dense jax.jacfwd; small grids only) or none (default: %(default)s)")
    r.add_argument("--linearisation", choices=("true", "frozen"), default="true",
                   help="RAKI analytic map: the true (widely-linear) derivative or the paper's frozen activation masks "
                        "(default: %(default)s)")
    r.add_argument("--replicas", type=int, default=1000, help="Monte Carlo replicas (default: %(default)s)")
    r.add_argument("--mc-noise-scale", type=float, default=1.0,
                   help="Monte Carlo noise std relative to the data's noise covariance; small (0.01) approaches the "
                        "linear-response map (default: %(default)s)")
    r.add_argument("--seed", type=int, default=0, help="seed for RAKI initialisation and Monte Carlo (default: %(default)s)")
    _output(r)
    r.add_argument("--key", default="kspace", help="HDF5/.npz/.mat dataset name (default: %(default)s)")
    r.add_argument("--axes", default=None,
                   help="axis order of a .npy/.npz/.mat array as letters, e.g. 'cyx' (coil, ky, kx) or 'scxy'")
    r.add_argument("--noise-key", default=None, help="dataset/variable holding a noise-only scan (its covariance is "
                   "used for prewhitening and the g-factor; default: estimated from the k-space corners)")
    r.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help="RAKI network and training of a named preset (default: the paper's network)")
    r.add_argument("--small", action="store_true", help="the 'small' preset's RAKI network (same as --preset small)")
    r.add_argument("--steps", type=int, default=None, help="RAKI training steps (default: the preset's)")
    r.add_argument("--lambda", dest="lamda", type=float, default=None, help="GRAPPA Tikhonov regularisation "
                   "(default: the library's)")
    r.add_argument("--no-prewhiten", action="store_true", help="reconstruct in the scanner's coil basis")
    _add_acs_noise(r)
    r.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    r.add_argument("--progress", action="store_true", help="show progress bars")


def _add_acs_noise(p):
    g = p.add_mutually_exclusive_group()
    g.add_argument("--reinsert-acs", dest="reinsert_acs", action="store_true", default=None,
                   help="put the acquired ACS lines back into the output (default for accelerated input)")
    g.add_argument("--no-reinsert-acs", dest="reinsert_acs", action="store_false",
                   help="keep the network's estimate on the ACS lines (default for fully sampled input)")
    p.add_argument("--noise", default=None, metavar="FILE", help="a separate noise scan (ISMRMRD, .npy (coil, samples), "
                   ".h5/.npz/.mat 'noise', BART): its covariance prewhitens and gives SNR units")


def _add_apply(sub, common):
    a = sub.add_parser(
        "apply", parents=[common], help="re-apply a run's saved kernels to other data (no refit)",
        description=("Apply the kernels saved in RUN_DIR/kernels.npz (by 'rakijax recon') to INPUT of the same "
                     "geometry (another slice, repetition or file), in the run's prewhitened coil basis, and "
                     "recompute the g-factor map. Writes the same run folder as 'rakijax recon'."))
    a.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by 'rakijax recon'")
    a.add_argument("input", metavar="INPUT", help="k-space file of the same geometry")
    _output(a)
    a.add_argument("--slice", type=_slice, default=None, help="slice index, or 'all' (default: all slices)")
    a.add_argument("--gfactor", choices=("analytic", "montecarlo", "autodiff", "none"), default=None,
                   help="g-factor map (default: the run's)")
    a.add_argument("--key", default="kspace", help="HDF5/.npz/.mat dataset name (default: %(default)s)")
    a.add_argument("--axes", default=None, help="axis order of a .npy/.npz/.mat array as letters")
    a.add_argument("--noise-key", default=None, help="dataset/variable holding a noise-only scan")
    a.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    _add_acs_noise(a)


def _add_sweep(sub, common):
    sw = sub.add_parser("sweep", parents=[common], help="resumable sweeps over slope x R x ACS x seed x input",
                        description="Resumable sweeps over slope x R x ACS x seed x input (see experiments/README.md).")
    ss = sw.add_subparsers(dest="sweep_command", metavar="{run,collect,plan}", parser_class=Parser, required=True)
    r = ss.add_parser("run", parents=[common], help="run (or resume) a sweep; finished points are skipped")
    r.add_argument("spec", nargs="?", help="sweep spec (.toml or .json); flags below override it")
    r.add_argument("--out", "-o", required=True, help="output folder (shards, table.csv, figures)")
    r.add_argument("--slopes", help="comma-separated negative slopes, e.g. 0,0.25,0.5,1")
    r.add_argument("--R", help="comma-separated acceleration factors")
    r.add_argument("--acs", help="comma-separated ACS widths")
    r.add_argument("--seeds", help="comma-separated seeds")
    r.add_argument("--phantom", help="built-in phantom 'N,NCOILS' (e.g. 256,16)")
    r.add_argument("--input", "-i", action="append", help="fully sampled file (repeatable)")
    r.add_argument("--slices", default="0", help="comma-separated slices of --input files")
    r.add_argument("--preset", choices=(*PRESETS, "default"), help="RAKI network/training preset")
    r.add_argument("--steps", type=int, help="RAKI training steps")
    r.add_argument("--gfactor", choices=("analytic", "none"))
    r.add_argument("--linearisation", choices=("true", "frozen"))
    r.add_argument("--name")
    r.add_argument("--small", action="store_true", help="the 'ci' preset's phantom, sampling and network "
                   "(24x24, 4 coils, R=2, 8 ACS, widths 8,4, 40 steps)")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--workers", "-w", type=int, help="run on a dask LocalCluster with N worker processes")
    g.add_argument("--scheduler", "-s", help="run on an existing dask scheduler (address)")
    r.add_argument("--threads", type=int, default=1, help="threads per LocalCluster worker")
    r.add_argument("--max-points", type=int, help="stop after writing this many points")
    r.add_argument("--no-collect", action="store_true", help="do not write table/figures at the end")
    r.add_argument("--progress", action="store_true")
    c = ss.add_parser("collect", parents=[common], help="merge shards into table.csv, summary.md, sweep_slope.png")
    c.add_argument("out")
    c.add_argument("--no-figures", action="store_true")
    p = ss.add_parser("plan", parents=[common], help="list the points of a spec, their ids and whether they are done")
    p.add_argument("spec")
    p.add_argument("--out", "-o")


def build_parser() -> argparse.ArgumentParser:
    """The ``rakijax`` argument parser."""
    p = Parser(prog="rakijax", parents=[_common(False)],
               description="GRAPPA and complex RAKI reconstruction with exact image-space form and g-factor maps.")
    common = _common(True)
    sub = p.add_subparsers(dest="command", metavar="{demo,recon,apply,sweep}", parser_class=Parser)
    d = sub.add_parser(
        "demo", parents=[common], help="full pipeline on the built-in brain phantom",
        description=("Run GRAPPA and RAKI on the built-in synthetic brain phantom (the 'demo' preset: 160x160, 16 "
                     "coils, correlated noise, R=4 with 24 ACS lines, RAKI slope 0.5), with analytic g-factor maps of "
                     "both compared with Monte Carlo at the data's own noise level and the image-space RAKI "
                     "reconstruction beside the k-space one. Writes results.h5 (RAKI), results_grappa.h5, "
                     "metrics.json, config.json and PNG figures."),
    )
    d.add_argument("--out", "-o", default="rakijax_demo", metavar="DIR", help="output folder (default: %(default)s)")
    d.add_argument("--overwrite", action="store_true", help="replace an existing run in --out (only rakijax's own files)")
    d.add_argument("--preset", choices=tuple(PRESETS), default="demo", help="problem size (default: %(default)s)")
    d.add_argument("--small", action="store_true", help="the 'small' preset (64x64, 8 coils; for smoke tests)")
    _add_recon(sub, common)
    _add_apply(sub, common)
    _add_sweep(sub, common)
    return p
