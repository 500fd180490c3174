"""Automatic slope choice (issue 11): reference-free estimate vs the oracle slope on the phantom.

For each (R, ACS) case, :func:`rakijax.autoslope.choose_slope` fits every slope of the grid
with ``K``-fold ACS cross-validation in one vmap, estimates the image error of each slope
from the ACS, the undersampled data and the noise covariance only (interpolation part from
the held-out ACS lines, noise part from the exact g-map), and picks the smallest. The
fully sampled reference is then read -- only here, to score the choice: per slope the NMSE
(in the support, vs the noisy fully sampled RSS, as the sweeps), the NMSE vs the noise-free
image over the whole FOV (what the estimate estimates), mean g and ``hf_loss``; per case the
oracle slope (smallest NMSE), the auto slope, their NMSE, whether the auto NMSE is within
10% of the oracle's, and the Spearman rank correlation of the estimate with the NMSE over
the slope grid.

Writes ``auto_slope.csv/.md`` (one row per case), ``curves.csv/.md`` (one row per case and
slope), ``estimate_R{R}_acs{A}.png`` (estimate curve with the true NMSE) and ``config.json``.

Usage: ``python experiments/auto_slope.py [--small] [--n 120] [--R 4,5,6] [--acs 24,40]
[--folds 4] [--steps 500] [--widths 32,8]``. ``--small``: the ``ci`` preset (24x24, R=2,
8 ACS; checks that it runs); otherwise the ``small`` preset's network and coils on an
``n x n`` phantom (default 120, which R = 4, 5, 6 divide).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from rakijax import metrics as mt  # noqa: E402
from rakijax import pipeline  # noqa: E402
from rakijax.autoslope import DEFAULT_SLOPES, choose_slope, estimate_figure, g_aware_fits, noise_terms  # noqa: E402
from rakijax.config import preset  # noqa: E402
from rakijax.data import brain_phantom  # noqa: E402
from rakijax.fft import ifft2c  # noqa: E402
from rakijax.methods import Raki  # noqa: E402

NAME = "auto_slope"


def main(argv=None) -> Path:
    ap = C.parser(NAME, __doc__)
    ap.set_defaults(R=None, acs=None)
    for a in ap._actions:  # R/ACS take lists here
        if a.dest in ("R", "acs"):
            a.type = str
    ap.add_argument("--slopes", help="comma-separated slopes (default 0,0.1,0.25,0.5,0.75,1)")
    ap.add_argument("--folds", type=int, default=None, help="cross-validation folds (default 4; 2 with --small)")
    ap.add_argument("--noise-level", type=float, default=None, help="phantom noise level (default: the phantom's)")
    ap.add_argument("--gaware", help="g-aware study instead: comma-separated lambdas (0 is added), e.g. 3,10,30")
    ap.add_argument("--gaware-slopes", default="0.5,1", help="slopes of the g-aware study (default 0.5,1)")
    args = ap.parse_args(argv)
    P = preset("ci" if args.small else "small")
    n = args.n or (P.n if args.small else 120)
    ncoils = args.ncoils or P.ncoils
    raki = P.raki
    if args.widths:
        raki = dataclasses.replace(raki, widths=tuple(int(w) for w in args.widths.split(",")))
    if args.steps:
        raki = dataclasses.replace(raki, steps=int(args.steps))
    it = lambda v: [int(x) for x in v.split(",")]  # noqa: E731
    Rs = it(args.R) if args.R else ([P.R] if args.small else [4, 5, 6])
    acss = it(args.acs) if args.acs else ([P.acs] if args.small else [24, 40])
    slopes = [float(x) for x in args.slopes.split(",")] if args.slopes else list(DEFAULT_SLOPES)
    folds = args.folds or (2 if args.small else 4)
    out = C.run_dir(args, NAME)
    settings = dict(n=n, ncoils=ncoils, phantom_seed=P.phantom_seed, R=Rs, acs=acss, slopes=slopes, folds=folds,
                    widths=raki.widths, steps=raki.steps, learning_rate=raki.learning_rate,
                    noise_level=args.noise_level)
    C.write_config(out, NAME, args, settings)
    kw = {} if args.noise_level is None else {"noise_level": args.noise_level}
    data = brain_phantom(n, ncoils, seed=P.phantom_seed, **kw)

    if args.gaware:
        return gaware_study(args, out, P, data, raki, Rs, acss)
    cases, curves = [], []
    for R in Rs:
        for acs in acss:
            cfg = P.recon_config(method="raki", R=R, acs=acs, raki=raki, seed=args.seed, gfactor="analytic")
            t0 = time.perf_counter()
            res = choose_slope(data, cfg, slopes, folds)  # never reads the reference
            t_auto = time.perf_counter() - t0
            prep = res.prepared
            clean = None
            if prep.kspace_ref is not None and data.clean is not None:
                clean = pipeline.rss(ifft2c(prep.kspace_ref))
            nmse, nmse_clean, hf = [], [], []
            for i, a in enumerate(res.slopes):
                rec = pipeline.apply(prep, Raki(cfg.raki, float(a)), res.fit(i).kernels)
                m = pipeline.image_metrics(prep, rec)
                nmse.append(m["nmse"])
                hf.append(m.get("hf_loss", np.nan))
                nmse_clean.append(float(mt.nmse(clean, rec.image)) if clean is not None else np.nan)
                curves.append({"R": R, "acs": acs, "slope": float(a), "estimate": float(res.estimate[i]),
                               "spread": float(res.spread[i]), "interp": float(res.interp[i]),
                               "noise": float(res.noise[i]), "image_estimate": float(res.image_estimate[i]),
                               "nmse": nmse[-1], "nmse_clean_fov": nmse_clean[-1], "g_mean": float(res.g_mean[i]),
                               "hf_loss": hf[-1]})
            nmse = np.asarray(nmse)
            o, u = int(np.argmin(nmse)), res.index
            rho = spearmanr(res.coil_estimate, nmse).statistic if len(slopes) > 2 else np.nan
            rho_i = spearmanr(res.image_estimate, nmse).statistic if len(slopes) > 2 else np.nan
            ui = int(np.argmin(res.image_estimate))
            cases.append({
                "R": R, "acs": acs, "oracle_slope": float(res.slopes[o]), "oracle_nmse": float(nmse[o]),
                "auto_slope": res.slope, "auto_nmse": float(nmse[u]), "auto/oracle": float(nmse[u] / nmse[o]),
                "within_10pct": bool(nmse[u] <= 1.1 * nmse[o]),
                "oracle_g_mean": float(res.g_mean[o]), "auto_g_mean": float(res.g_mean[u]),
                "oracle_hf_loss": float(hf[o]), "auto_hf_loss": float(hf[u]),
                "spearman": float(rho), "image_auto_slope": float(res.slopes[ui]),
                "image_auto/oracle": float(nmse[ui] / nmse[o]), "spearman_image": float(rho_i), "auto_s": t_auto,
            })
            print(cases[-1], flush=True)
            fig = estimate_figure(res, true_nmse=nmse, title=f"R={R}, {acs} ACS: auto {res.slope:g}, "
                                  f"oracle {res.slopes[o]:g} (NMSE x{nmse[u] / nmse[o]:.3f})")
            C.save(fig, out, f"estimate_R{R}_acs{acs}")
            C.write_table(out, NAME, cases)
            C.write_table(out, "curves", curves)
    return out


def gaware_study(args, out, P, data, raki, Rs, acss) -> Path:
    """g-aware training (``ACS loss + lambda * noise term``) vs the plain fit at the same slope:
    ``gaware.csv/.md`` (R, ACS, slope, lambda, NMSE, mean g, hf_loss) and ``gaware.png``."""
    lams = [0.0] + [float(x) for x in args.gaware.split(",") if float(x) != 0]
    gslopes = [float(x) for x in args.gaware_slopes.split(",")]
    rows = []
    for R in Rs:
        for acs in acss:
            cfg = P.recon_config(method="raki", R=R, acs=acs, raki=raki, seed=args.seed, gfactor="analytic")
            fits = g_aware_fits(data, cfg, gslopes, lams)
            prep = fits.prepared
            for b, (a, lam) in enumerate(zip(fits.slopes, fits.noise_weights)):
                rec = pipeline.apply(prep, Raki(cfg.raki, float(a)), fits.kernels[b])
                m = pipeline.image_metrics(prep, rec)
                nt = noise_terms(fits.kernels[b], prep.reduced, prep.sampling, float(a),
                                 psi=np.asarray(prep.psi_work), p=rec.p_work)
                rows.append({"R": R, "acs": acs, "slope": float(a), "lambda": float(lam), "nmse": m["nmse"],
                             "g_mean": float(np.mean(nt.g[prep.support])), "hf_loss": m.get("hf_loss", np.nan),
                             "train_s": fits.seconds})
                print(rows[-1], flush=True)
            C.write_table(out, "gaware", rows)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4))
    ax = fig.add_subplot(111)
    for R in Rs:
        for acs in acss:
            for a in gslopes:
                sel = [r for r in rows if (r["R"], r["acs"], r["slope"]) == (R, acs, a)]
                lam_txt = ", ".join(f"{r['lambda']:g}" for r in sel)
                ax.plot([r["g_mean"] for r in sel], [r["nmse"] for r in sel], marker="o",
                        label=f"R={R}, {acs} ACS, slope {a:g} (lambda {lam_txt})")
    ax.set_xlabel("mean g (support)")
    ax.set_ylabel("NMSE")
    ax.set_yscale("log")
    ax.legend(fontsize=6)
    ax.set_title("g-aware training: first point of each line lambda = 0 (plain fit)", fontsize=9)
    fig.tight_layout()
    C.save(fig, out, "gaware")
    return out


if __name__ == "__main__":
    print(main())
