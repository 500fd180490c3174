"""Shared plumbing of the experiment scripts: arguments, run folder, tables, figures.

Every experiment writes one run folder ``--out DIR`` holding ``config.json``
(arguments, resolved settings, package versions, JAX backend and devices),
its tables (``*.csv`` and ``*.md``) and PNG figures. ``--small`` selects the
CI-sized setting (a 24x24 4-coil phantom, R=2, 8 ACS lines, a (8, 4)-channel
RAKI trained for 40 steps): it checks that the script runs, not the science.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

# the CI-sized setting shared by every --small run (so that compiled functions are reused)
SMALL = dict(n=24, ncoils=4, phantom_seed=3, R=2, acs=8, widths=(8, 4), steps=40)
# the paper-sized setting
FULL = dict(n=256, ncoils=16, phantom_seed=0, R=4, acs=24, widths=(128, 64), steps=2000)


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
    """The size settings: ``SMALL`` or ``FULL`` with command-line overrides."""
    s = dict(SMALL if args.small else FULL)
    for k in ("n", "ncoils", "steps", "R", "acs"):
        if isinstance(getattr(args, k, None), int):  # (slope_sweep's --R/--acs are lists: its own)
            s[k] = getattr(args, k)
    if getattr(args, "widths", None):
        s["widths"] = tuple(int(w) for w in args.widths.split(","))
    return s


def raki_config(s: dict):
    from rakijax.raki import RakiConfig

    return RakiConfig(widths=tuple(s["widths"]), steps=int(s["steps"]))


def phantom(s: dict, **kw):
    from rakijax.data.synthetic import brain_phantom

    return brain_phantom(s["n"], s["ncoils"], seed=s["phantom_seed"], **kw)


def run_dir(args, name: str) -> Path:
    """Create the run folder; refuse to mix with earlier output unless ``--overwrite``."""
    out = Path(args.out or Path("runs") / name)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise SystemExit(f"{out} exists and is not empty; pass --overwrite or another --out")
    out.mkdir(parents=True, exist_ok=True)
    return out


def environment() -> dict:
    from rakijax.sweep import environment as env

    return env()


def write_config(out: Path, name: str, args, settings: dict, **extra) -> dict:
    cfg = {
        "experiment": name,
        "argv": sys.argv[1:] if args is None else vars(args),
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
        "environment": environment(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }
    (out / "config.json").write_text(json.dumps(cfg, indent=1, default=str))
    return cfg


def _fmt(v):
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


def write_table(out: Path, name: str, rows: list[dict]) -> None:
    """``name.csv`` (full precision) and ``name.md`` (4 significant digits)."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / f"{name}.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([repr(float(r[c])) if isinstance(r.get(c), (float, np.floating)) else r.get(c, "") for c in cols])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")


def save(fig, out: Path, name: str) -> Path:
    p = out / f"{name}.png"
    fig.savefig(p, dpi=100)
    try:  # pyplot figures must be closed to free memory
        import matplotlib.pyplot as plt

        plt.close(fig)
    except Exception:  # noqa: BLE001  (a bare Figure is not registered with pyplot)
        pass
    return p


def centre_disk(shape, frac: float = 1 / 16) -> np.ndarray:
    """Disk of radius ``frac * min(shape)`` (at least 1.5 px) around the image centre ``(Ny//2, Nx//2)``."""
    ny, nx = shape
    y, x = np.mgrid[:ny, :nx]
    r = max(frac * min(shape), 1.5)
    return (y - ny // 2) ** 2 + (x - nx // 2) ** 2 <= r * r
