"""The negative-slope trade-off (Dawood et al. 2024): g-factor vs blurring over slope x R x ACS.

Runs the sweep engine (:mod:`rakijax.sweep`) over slopes {0, 0.1, 0.25, 0.5, 0.75, 1} x
R {4, 5, 6} x ACS {24, 40} on the built-in phantom: per point NMSE/PSNR/SSIM, mean and
95th-percentile analytic g (true linearisation) and the high-frequency loss
``hf_loss = 1 - Re<k_ref, k_rec>_B / <k_ref, k_ref>_B`` over the interpolated lines outside
the ACS (0 = no contrast loss, larger = more blurring; see :mod:`rakijax.sweep`).
Points of one (R, ACS) are trained together with ``vmap``; the run resumes where it stopped.

Writes ``sweep/`` (shards, ``table.csv``, ``summary.md``, ``sweep_slope.png``),
``tradeoff.png`` (mean g vs hf_loss, one curve per R/ACS), ``slope_table.md`` (per R/ACS/slope,
mean over seeds), ``config.json``.

Usage: ``python experiments/slope_sweep.py [--small] [--R 4,5] [--acs 24,40] [--workers N | --scheduler ADDR]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

NAME = "slope_sweep"


def main(argv=None) -> Path:
    ap = C.parser(NAME, __doc__)
    ap.add_argument("--slopes", help="comma-separated slopes (default 0,0.1,0.25,0.5,0.75,1)")
    ap.add_argument("--R", help="comma-separated R (default 4,5,6)")
    ap.add_argument("--acs", help="comma-separated ACS widths (default 24,40)")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default: --seed)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, help="dask LocalCluster workers")
    g.add_argument("--scheduler", help="dask scheduler address")
    ap.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    args = ap.parse_args(argv)
    if args.resume:
        args.overwrite = True
    s = C.settings(args)
    fl = lambda v: [float(x) for x in v.split(",")]  # noqa: E731
    it = lambda v: [int(x) for x in v.split(",")]  # noqa: E731
    slopes = fl(args.slopes) if args.slopes else ([0.0, 0.5] if args.small else [0, 0.1, 0.25, 0.5, 0.75, 1])
    Rs = it(args.R) if args.R else ([s["R"]] if args.small else [4, 5, 6])
    acs = it(args.acs) if args.acs else ([s["acs"]] if args.small else [24, 40])
    seeds = it(args.seeds) if args.seeds else [args.seed]
    out = C.run_dir(args, NAME)

    from rakijax import sweep

    spec = sweep.SweepSpec.from_dict({
        "name": NAME, "slopes": slopes, "R": Rs, "acs": acs, "seeds": seeds,
        "inputs": [{"phantom": {"n": s["n"], "ncoils": s["ncoils"], "seed": s["phantom_seed"]}}],
        "preset": "ci" if args.small else "paper", "raki": {"widths": list(s["widths"]), "steps": s["steps"]},
    })
    C.write_config(out, NAME, args, s, spec=spec.to_dict())
    sd = out / "sweep"
    if args.workers or args.scheduler:
        sweep.run_dask(spec, sd, scheduler=args.scheduler, workers=args.workers or 2)
    else:
        sweep.run(spec, sd)
    rows = sweep.collect(sd)
    w = sweep.wide(rows)

    # mean over seeds per (R, ACS, slope)
    keys = sorted({(d["R"], d["acs"], d["slope"]) for d in w})
    mets = ("gfactor_mean", "gfactor_p95", "nmse", "ssim", "hf_loss")
    table = []
    for R, a, sl in keys:
        sel = [d for d in w if (d["R"], d["acs"], d["slope"]) == (R, a, sl)]
        table.append({"R": R, "acs": a, "slope": sl, **{m: float(np.mean([d[m] for d in sel])) for m in mets
                                                         if all(m in d for d in sel)}, "seeds": len(sel)})
    C.write_table(out, "slope_table", table)

    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.2), layout="constrained")
    ax = fig.subplots()
    for R, a in sorted({(t["R"], t["acs"]) for t in table}):
        pts = [t for t in table if (t["R"], t["acs"]) == (R, a)]
        if "gfactor_mean" not in pts[0]:
            continue
        x, y = [t["hf_loss"] for t in pts], [t["gfactor_mean"] for t in pts]
        ax.plot(x, y, "o-", label=f"R={R} ACS={a}")
        for t in pts:
            ax.annotate(f"{t['slope']:g}", (t["hf_loss"], t["gfactor_mean"]), fontsize=7)
    ax.set_xlabel("hf_loss (blurring / contrast loss)")
    ax.set_ylabel("mean g (analytic)")
    ax.set_title("slope trade-off (labels: negative slope)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    C.save(fig, out, "tradeoff")
    return out


if __name__ == "__main__":
    print(main())
