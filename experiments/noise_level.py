"""Where does the linear-response g-factor hold? Analytic (true, frozen) vs Monte Carlo vs noise level.

One RAKI network is trained on the phantom; its analytic g-factor maps (true derivative and
frozen masks: the small-noise limit) are compared with pseudo-replica Monte Carlo of the
*nonlinear* network (Robson 2008) as the added noise grows from far below to above the scan's
own noise level (``mc_noise_scale`` = noise std relative to the data's ``Psi``). At small
noise Monte Carlo must approach the true-derivative map; at realistic noise activations flip
and the nonlinear network's noise amplification departs from the linear response (MATH.md §3).
GRAPPA (linear) is the control: its Monte Carlo g does not depend on the noise level.

Writes ``noise_level.csv/.md``, ``noise_level.png`` (mean g vs noise scale), ``config.json``.

Usage: ``python experiments/noise_level.py [--small] [--scales 0.01,0.1,0.3,1,2,4] [--replicas 500] [--slope 0.25]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

NAME = "noise_level"


def main(argv=None) -> Path:
    ap = C.parser(NAME, __doc__)
    ap.add_argument("--slope", type=float, default=0.25, help="RAKI negative slope")
    ap.add_argument("--scales", help="Monte Carlo noise scales (default 0.01,0.1,0.3,1,2,4; --small 0.01,1)")
    ap.add_argument("--replicas", type=int, help="replicas per Monte Carlo map (default 500; --small 40)")
    args = ap.parse_args(argv)
    s = C.settings(args)
    scales = ([float(x) for x in args.scales.split(",")] if args.scales
              else ([0.01, 1.0] if args.small else [0.01, 0.1, 0.3, 1.0, 2.0, 4.0]))
    M = args.replicas or (40 if args.small else 500)
    out = C.run_dir(args, NAME)
    C.write_config(out, NAME, args, s, scales=scales, replicas=M)

    from matplotlib.figure import Figure

    from rakijax import metrics, pipeline

    data = C.phantom(s)
    rows, curves = [], {}
    for method in ("raki", "grappa"):
        cfg = pipeline.ReconConfig(method=method, R=s["R"], acs=s["acs"], slope=args.slope, gfactor="analytic",
                                   linearisation="true", seed=args.seed, raki=C.raki_config(s), replicas=M,
                                   mc_chunk=min(50, M))
        res = pipeline.reconstruct(data, cfg)
        sup = res.support
        base = {"analytic true": np.asarray(res.gfactor)}
        if method == "raki":
            base["analytic frozen"] = np.asarray(C.timed_gfactor(res, "analytic", linearisation="frozen")[0])
        for lab, g in base.items():
            rows.append({"method": method, "map": lab, "noise_scale": float("nan"),
                         **metrics.gfactor_summary(g, sup), "mean_rel_diff_vs_true": float(np.mean(g[sup] / base["analytic true"][sup] - 1))})
        mc = []
        for sc in scales:
            g, t = C.timed_gfactor(res, "montecarlo", mc_noise_scale=sc)
            g = np.asarray(g)
            summ = metrics.gfactor_summary(g, sup)
            rows.append({"method": method, "map": "montecarlo", "noise_scale": sc, **summ,
                         "mean_rel_diff_vs_true": float(np.mean(g[sup] / base["analytic true"][sup] - 1)),
                         "seconds": t})
            mc.append(summ["gfactor_mean"])
        curves[method] = (mc, {k: float(np.mean(v[sup])) for k, v in base.items()})

    C.write_table(out, NAME, rows)
    fig = Figure(figsize=(5.5, 4.0), layout="constrained")
    ax = fig.subplots()
    for i, (method, (mc, base)) in enumerate(curves.items()):
        col = f"C{i}"
        ax.plot(scales, mc, "o-", color=col, label=f"{method.upper()} Monte Carlo (M={M})")
        for j, (lab, v) in enumerate(base.items()):
            ax.axhline(v, color=col, ls=["--", ":"][j], lw=1, label=f"{method.upper()} {lab}")
    ax.set_xscale("log")
    ax.set_xlabel("Monte Carlo noise std / data noise std")
    ax.set_ylabel("mean g in the object")
    ax.set_title(f"linear response vs nonlinear noise (slope {args.slope:g})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    C.save(fig, out, "noise_level")
    return out


if __name__ == "__main__":
    print(main())
