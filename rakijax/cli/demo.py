"""``rakijax demo``: GRAPPA and RAKI on the built-in phantom, analytic vs Monte Carlo g-factor."""

from __future__ import annotations

import logging
import time

from .. import plotting as pl
from ..config import preset
from ..metrics import gfactor_comparison
from ..pipeline import gfactor_map, reconstruct
from ..results import write_results_h5, write_run
from ..runfolder import check_run_dir, run_folder
from .recon import gfactor_figure, run_arrays

__all__ = ["cmd_demo"]

log = logging.getLogger("rakijax")


def cmd_demo(args, argv) -> int:
    """Run ``rakijax demo``; returns the exit status."""
    t_start = time.perf_counter()
    P = preset("small" if args.small else args.preset)
    check_run_dir(args.out, args.overwrite)
    log.info("[1/6] built-in brain phantom %dx%d, %d coils (preset %r)", P.n, P.n, P.ncoils, P.name)
    data = P.phantom()
    results = {}
    for step, method in ((2, "grappa"), (3, "raki")):
        cfg = P.recon_config(method=method, gfactor="analytic")
        log.info("[%d/6] %s R=%d, %d ACS, analytic g-factor", step, method.upper(), P.R, P.acs)
        results[method] = res = reconstruct(data, cfg)
        log.info("      %s NMSE %.3e, g mean %.3f (%.1f s)", method.upper(), res.metrics["nmse"],
                 res.metrics["gfactor_mean"], sum(res.timings.values()))
    log.info("[4/6] Monte Carlo g-factor (%d replicas, the data's noise level) for GRAPPA and RAKI", P.replicas)
    mc, maps = {}, {}
    for name, res in results.items():
        t0 = time.perf_counter()
        g_mc = gfactor_map(res, "montecarlo").g
        mc[name] = {**gfactor_comparison(res.gfactor, g_mc, res.support, replicas=P.replicas),
                    "mc_noise_scale": res.config.mc_noise_scale, "time_s": time.perf_counter() - t0}
        maps[name.upper()] = (res.gfactor, g_mc)
        log.info("      %s: MC g mean %.3f vs analytic %.3f (%.1f s)", name, mc[name]["gfactor_mean"],
                 res.metrics["gfactor_mean"], mc[name]["time_s"])
    log.info("[5/6] figures")
    g_res, r_res = results["grappa"], results["raki"]
    raki_label = f"RAKI (slope {P.slope:g})"
    scale = pl.gfactor_scale(maps, r_res.support)  # one g scale for every map of the run
    figs = {
        "reconstruction.png": pl.reconstruction_figure(
            r_res.reference, {"GRAPPA": g_res.recon, raki_label: r_res.recon}, support=r_res.support,
            metrics={"GRAPPA": g_res.metrics, raki_label: r_res.metrics}, R=P.R, acs=P.acs),
        "gfactor.png": gfactor_figure(r_res, "RAKI", scale=scale),
        "gfactor_grappa.png": gfactor_figure(g_res, "GRAPPA", scale=scale),
        "gfactor_comparison.png": pl.gfactor_comparison_figure(
            maps, support=r_res.support, labels=("analytic linear response", f"Monte Carlo ({P.replicas} replicas)"),
            scale=scale, R=P.R, acs=P.acs, replicas=P.replicas),
        "training_loss.png": pl.loss_figure(r_res.losses),
    }
    if r_res.image_space_recon is not None:
        figs["image_vs_kspace.png"] = pl.image_kspace_figure(
            r_res.recon, r_res.image_space_recon, label="RAKI", rel_error=r_res.metrics["image_space_rel_error"])
    log.info("[6/6] writing %s", args.out)
    metrics = {**r_res.metrics, "grappa": g_res.metrics, "raki": r_res.metrics, "montecarlo": mc,
               "demo_total_s": time.perf_counter() - t_start}
    config = {
        "command": "demo", "seed": r_res.config.seed, "preset": P.name,
        "phantom": {"n": P.n, "ncoils": P.ncoils, "seed": P.phantom_seed, "meta": data.meta},
        "recon": r_res.config.to_dict(), "grappa": g_res.config.to_dict(),
        "files": {
            "results.h5": "RAKI run (reference, recon, recon_kspace, gfactor analytic, mask)",
            "results_grappa.h5": "GRAPPA run, same layout",
            "metrics.json": "RAKI metrics at top level; 'grappa', 'raki' per method; 'montecarlo' comparison",
        },
    }
    with run_folder(args.out, args.overwrite) as stage:
        write_results_h5(stage / "results_grappa.h5", **run_arrays(g_res))
        write_run(stage, arrays=run_arrays(r_res), metrics=metrics, config=config, figures=figs, argv=argv,
                  extra_outputs=["results_grappa.h5"])
    log.info("demo done in %.1f s -> %s", time.perf_counter() - t_start, args.out)
    return 0
