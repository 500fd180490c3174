"""Shared plumbing of the experiment scripts: arguments, run folder, tables, figures.

Every experiment writes one run folder ``--out DIR`` holding ``config.json``
(arguments, resolved settings, package versions, JAX backend and devices),
its tables (``*.csv`` and ``*.md``) and PNG figures. ``--small`` selects the
``ci`` preset of :data:`rakijax.config.PRESETS` (a 24x24 4-coil phantom, R=2, 8 ACS lines, an
(8, 4)-channel RAKI trained for 40 steps): it checks that the script runs, not the science;
without it the ``paper`` preset (256x256, 16 coils, the paper's network) is used.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from rakijax import pipeline
from rakijax.config import preset
from rakijax.data import brain_phantom
from rakijax.jit_cache import enable_persistent_cache
from rakijax.raki import RakiConfig
from rakijax.results import environment, save_figure
from rakijax.runfolder import atomic_write, write_json



def parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=f"experiments/{name}.py", description=(doc or "").split("\n\n")[0])
    ap.add_argument("--out", "-o", default=None, help=f"run folder (default runs/{name})")
    ap.add_argument("--small", action="store_true", help="CI-sized run (seconds, not science)")
    ap.add_argument("--seed", type=int, default=0, help="PRNG seed (network init, Monte Carlo)")
    ap.add_argument("--n", type=int, help="phantom size n x n")
    ap.add_argument("--ncoils", type=int, help="phantom coils")
    ap.add_argument("--steps", type=int, help="RAKI training steps")
    if name != "slope_sweep":  # the sweep takes lists of R and ACS itself
        ap.add_argument("--R", type=int, help="acceleration factor")
        ap.add_argument("--acs", type=int, help="ACS lines")
    ap.add_argument("--widths", help="RAKI hidden widths, e.g. 128,64 or 32,8")
    ap.add_argument("--overwrite", action="store_true", help="reuse a non-empty run folder")
    return ap


def settings(args) -> dict:
    """The size settings of the ``ci`` (``--small``) or ``paper`` preset with command-line overrides."""
    P = preset("ci" if args.small else "paper")
    s = dict(n=P.n, ncoils=P.ncoils, phantom_seed=P.phantom_seed, R=P.R, acs=P.acs, widths=P.raki.widths,
             steps=P.raki.steps, raki=P.raki)
    for k in ("n", "ncoils", "steps", "R", "acs"):
        if isinstance(getattr(args, k, None), int):  # (slope_sweep's --R/--acs are lists: its own)
            s[k] = getattr(args, k)
    if getattr(args, "widths", None):
        s["widths"] = tuple(int(w) for w in args.widths.split(","))
    return s


def raki_config(s: dict) -> RakiConfig:
    """The preset's RAKI configuration with the ``--widths``/``--steps`` overrides."""
    return dataclasses.replace(s["raki"], widths=tuple(s["widths"]), steps=int(s["steps"]))


def phantom(s: dict, **kw):
    return brain_phantom(s["n"], s["ncoils"], seed=s["phantom_seed"], **kw)


def timed_gfactor(res, kind: str, **overrides) -> tuple[np.ndarray, float]:
    """``(g map, seconds)`` of :func:`rakijax.pipeline.gfactor_map`."""
    t0 = time.perf_counter()
    g = np.asarray(pipeline.gfactor_map(res, kind, **overrides).g)
    return g, time.perf_counter() - t0


def run_dir(args, name: str) -> Path:
    """Create the run folder; refuse to mix with earlier output unless ``--overwrite``.
    Also turns on the persistent compilation cache (compile once per machine)."""
    enable_persistent_cache()
    out = Path(args.out or Path("runs") / name)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise SystemExit(f"{out} exists and is not empty; pass --overwrite or another --out")
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_config(out: Path, name: str, args, settings: dict, **extra) -> dict:
    cfg = {
        "experiment": name,
        "argv": sys.argv[1:] if args is None else vars(args),
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
        "environment": environment(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }
    write_json(out / "config.json", cfg)
    return cfg


def _fmt(v):
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


def write_table(out: Path, name: str, rows: list[dict]) -> None:
    """``name.csv`` (full precision) and ``name.md`` (4 significant digits)."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    def write_csv(f):
        w = csv.writer(f, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([repr(float(r[c])) if isinstance(r.get(c), (float, np.floating)) else r.get(c, "") for c in cols])

    atomic_write(out / f"{name}.csv", write_csv)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    atomic_write(out / f"{name}.md", lambda f: f.write("\n".join(lines) + "\n"))


def save(fig, out: Path, name: str) -> Path:
    return save_figure(fig, out / f"{name}.png", dpi=100)


def centre_disk(shape, frac: float = 1 / 16) -> np.ndarray:
    """Disk of radius ``frac * min(shape)`` (at least 1.5 px) around the image centre ``(Ny//2, Nx//2)``."""
    ny, nx = shape
    y, x = np.mgrid[:ny, :nx]
    r = max(frac * min(shape), 1.5)
    return (y - ny // 2) ** 2 + (x - nx // 2) ** 2 <= r * r
