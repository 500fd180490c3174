"""g-factor maps of GRAPPA and RAKI: analytic vs Monte Carlo vs autodiff (on a crop).

For each method the analytic map (GRAPPA: Breuer 2009; RAKI: the exact banded
linear-response map, true derivative) is compared with pseudo-replica Monte Carlo
(Robson 2008) of the actual reconstruction at the data's noise level (``mc_noise_scale=1``)
and, for RAKI, at a small noise scale (0.01, the linear-response limit), and with the
dense ``jax.jacfwd`` g-factor ("autodiff") on a central k-space crop (a low-resolution
copy of the scan, retrained; the dense Jacobian is infeasible at full size).
The per-pixel scatter analytic vs Monte Carlo gives Pearson's correlation and the mean
relative difference; Monte Carlo's own relative standard error is ``1/(2 sqrt(M))``.

Writes ``gfactor.csv/.md``, ``gfactor_maps.png``, ``scatter.png``, ``config.json``.

Usage: ``python experiments/gfactor_maps.py [--small] [--replicas 1000] [--crop 24] [--slope 0.5]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

NAME = "gfactor_maps"


def compare(ga, gb, support) -> dict:
    a, b = np.asarray(ga)[support], np.asarray(gb)[support]
    return {"corr_vs_analytic": float(np.corrcoef(a, b)[0, 1]),
            "mean_rel_diff_vs_analytic": float(np.mean(b / a - 1)),
            "max_abs_rel_diff_vs_analytic": float(np.max(np.abs(b / a - 1)))}


def main(argv=None) -> Path:
    ap = C.parser(NAME, __doc__)
    ap.add_argument("--slope", type=float, default=0.5, help="RAKI negative slope")
    ap.add_argument("--replicas", type=int, help="Monte Carlo replicas (default 1000; --small 40)")
    ap.add_argument("--crop", type=int, help="central k-space crop for autodiff (default 24; --small: whole grid)")
    args = ap.parse_args(argv)
    s = C.settings(args)
    M = args.replicas or (40 if args.small else 1000)
    out = C.run_dir(args, NAME)
    C.write_config(out, NAME, args, s, replicas=M)

    from matplotlib.figure import Figure

    from rakijax import metrics, pipeline, plotting
    try:
        from rakijax.data import KSpaceData
    except ImportError:  # older layout
        from rakijax.data.container import KSpaceData

    data = C.phantom(s)
    rows, pairs, scatter = [], {}, []
    for method in ("grappa", "raki"):
        cfg = pipeline.ReconConfig(method=method, R=s["R"], acs=s["acs"], slope=args.slope, gfactor="analytic",
                                   seed=args.seed, raki=C.raki_config(s), replicas=M,
                                   mc_chunk=min(50, M))
        res = pipeline.reconstruct(data, cfg)
        sup = res.support
        ga = np.asarray(res.gfactor)
        maps = {"analytic": (ga, res.timings.get("gfactor_s"))}
        maps["montecarlo (noise x1)"] = C.timed_gfactor(res, "montecarlo", mc_noise_scale=1.0)
        if method == "raki":
            maps["montecarlo (noise x0.01)"] = C.timed_gfactor(res, "montecarlo", mc_noise_scale=0.01)
            maps["analytic frozen"] = C.timed_gfactor(res, "analytic", linearisation="frozen")
        if args.small and args.crop is None:
            maps["autodiff"] = C.timed_gfactor(res, "autodiff")
        for label, (g, t) in maps.items():
            g = np.asarray(g)
            row = {"method": method, "map": label, **metrics.gfactor_summary(g, sup), "seconds": t}
            if label != "analytic":
                row.update(compare(ga, g, sup))
            rows.append(row)
        pairs[method.upper()] = (ga, np.asarray(maps["montecarlo (noise x1)"][0]))
        scatter.append((method.upper(), ga[sup], np.asarray(maps["montecarlo (noise x1)"][0])[sup]))
        if method == "raki":
            scatter.append(("RAKI (MC noise x0.01)", ga[sup], np.asarray(maps["montecarlo (noise x0.01)"][0])[sup]))

        if not (args.small and args.crop is None):  # autodiff on a central crop (retrained there)
            c = args.crop or 24
            ny, nx = data.kspace.shape[-2:]
            sl = (slice(None), slice(ny // 2 - c // 2, ny // 2 - c // 2 + c), slice(nx // 2 - c // 2, nx // 2 - c // 2 + c))
            crop = KSpaceData(kspace=data.kspace[sl], psi=data.psi)
            ccfg = pipeline.ReconConfig(method=method, R=s["R"], acs=min(s["acs"], c // 2), slope=args.slope,
                                        gfactor="analytic", seed=args.seed, raki=C.raki_config(s))
            cres = pipeline.reconstruct(crop, ccfg)
            gad, t = C.timed_gfactor(cres, "autodiff")
            row = {"method": method, "map": f"autodiff (crop {c}x{c})",
                   **metrics.gfactor_summary(gad, cres.support), "seconds": t,
                   **compare(cres.gfactor, gad, cres.support)}
            row["map"] += " vs analytic on the crop"
            rows.append(row)

    C.write_table(out, "gfactor", rows)
    C.save(plotting.gfactor_comparison_figure(pairs, support=sup, labels=("analytic", "Monte Carlo")), out,
           "gfactor_maps")
    fig = Figure(figsize=(4 * len(scatter), 3.8), layout="constrained")
    for ax, (lab, a, b) in zip(fig.subplots(1, len(scatter), squeeze=False)[0], scatter):
        ax.plot(a, b, ".", ms=1.5, alpha=0.4)
        lo, hi = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel("analytic g")
        ax.set_ylabel("Monte Carlo g")
        ax.set_title(f"{lab}: r = {np.corrcoef(a, b)[0, 1]:.3f}, M = {M}", fontsize=9)
    C.save(fig, out, "scatter")
    return out


if __name__ == "__main__":
    print(main())
