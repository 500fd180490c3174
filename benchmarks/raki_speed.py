"""RAKI fit speed: today's default vs new variants, side by side in one run (run by hand).

For each data set (the built-in phantom; ``--second`` adds 8 coils at half the SNR)
and each (R, ACS) case and phantom seed, trains the paper-size RAKI (128/64,
slope 0.5) with every variant and reports the steps, compile seconds (first call,
including the first step), seconds per step, total fit seconds and the NMSE of the
RSS image in the head support against the fully sampled reference (the DESIGN.md
reference; GRAPPA 2x5 for context). A second table times one loss+gradient
evaluation of the old per-tap complex form against the new stacked-real GEMM
form (same numbers). Results go to ``benchmarks/results/raki_speed_cpu.{md,json}``
after every fit (a run cut short keeps what it measured). Timings on a shared
machine are noisy: compare ratios within one run; the load average is recorded.

    python benchmarks/raki_speed.py                      # paper size, 3 cases, seeds 0,1, second data set
    python benchmarks/raki_speed.py --n 128 --coils 8    # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np

from rakijax import grappa, kspace_net, metrics, raki
from rakijax.data.synthetic import brain_phantom
from rakijax.fft import ifft2c
from rakijax.raki import acs_loss
from rakijax.sampling import make_sampling, undersample

#: the default before issue 14 (2000 Adam steps at 1e-3, complex He init), the first issue-14 default
#: (500 steps at 2e-3 from He/sqrt(3), random init), today's default and the variants tried
VARIANTS = {
    "old": dict(optimizer="adam", steps=2000, learning_rate=1e-3, init_scale=1.0, init="random"),
    "rand500": dict(optimizer="adam", steps=500, learning_rate=2e-3, init_scale=3**-0.5, init="random"),
    "new": dict(),  # RakiConfig() defaults
    "lstsq250": dict(init="lstsq", init_ridge=3.0, steps=250, learning_rate=3e-3),
    "lstsq300-2e-3": dict(init="lstsq", init_ridge=3.0, steps=300, learning_rate=2e-3),
    "adam300": dict(optimizer="adam", steps=300, learning_rate=3e-3, init_scale=3**-0.5, init="random"),
    "lbfgs200": dict(optimizer="lbfgs", steps=200, init_scale=3**-0.5, init="random"),
}
BASELINES = ("old", "rand500")


def rss(k):
    return np.sqrt((np.abs(np.asarray(ifft2c(k))) ** 2).sum(0))


def _git():
    if os.environ.get("RAKIJAX_BENCH_GIT"):  # when run from a copy of the tree
        return os.environ["RAKIJAX_BENCH_GIT"]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(__file__)).stdout.strip()
    except OSError:
        return None


def step_forms(acs_block, R, cfg, reps=10):
    """Seconds per loss+gradient: per-tap complex einsums (old) vs stacked-real im2col GEMMs (new)."""
    x = jnp.asarray(acs_block) / jnp.max(jnp.abs(acs_block))
    shapes = cfg.kernel_shapes(x.shape[0], R)
    rows, tg = kspace_net.acs_pairs(x, shapes, R)
    prob = acs_loss.prepare(x, shapes, R)
    ks = [w.astype(jnp.complex64) for w in raki.Raki(cfg, x.shape[0], R, rngs=__import__("flax").nnx.Rngs(0)).kernels()]

    def old(k):
        r = kspace_net.forward(k, x, 0.5, padding="valid", dilation=R)[..., rows, :] - tg
        return 0.5 * jnp.mean(jnp.real(r) ** 2 + jnp.imag(r) ** 2)

    out = {}
    for name, f in (("per-tap complex (old)", old), ("stacked-real GEMM (new)", lambda k: acs_loss.loss(k, prob, 0.5, shapes, R))):
        g = jax.jit(jax.value_and_grad(f))
        t = time.perf_counter()
        jax.block_until_ready(g(ks))
        tc = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(reps):
            r = g(ks)
        jax.block_until_ready(r)
        out[name] = {"compile_s": tc, "s_per_eval": (time.perf_counter() - t) / reps, "loss": float(r[0])}
    return out


def fit(acs_block, s, cfg, key):
    """(compile_s, fit_s, result): compile = first call (init + one step), then the full fit."""
    t = time.perf_counter()
    raki.train(acs_block, s, cfg.__class__(**{**cfg.__dict__, "steps": 1, "log_every": 1}), 0.5, key=key)
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    res = raki.train(acs_block, s, cfg, 0.5, key=key)
    return compile_s, time.perf_counter() - t, res


def summary(runs):
    """Per case: each variant against each baseline (NMSE ratio, fit-time ratio incl. compile, step ratio)."""
    groups = {}
    for r in runs:
        groups.setdefault((r["data"], r["R"], r["acs"], r["seed"]), {})[r["variant"]] = r
    L = ["", "Against a baseline in the same case (same process): NMSE variant/baseline (< 1 = better), "
         "total time baseline/variant (speed-up incl. compile), steps baseline/variant. `old` = 2000 Adam steps "
         "at 1e-3 from complex He (the default before issue 14) run on the new, faster step; `rand500` = 500 "
         "steps at 2e-3 from He/sqrt(3) (the first issue-14 default).", "",
         "| data | R | ACS | seed | variant | baseline | NMSE ratio | speed-up | steps ratio |", "|" + "---|" * 9]
    for (d, R, A, sd), vs in groups.items():
        for b in BASELINES:
            o = vs.get(b)
            if o is None:
                continue
            for v, r in vs.items():
                if v in BASELINES[: BASELINES.index(b) + 1]:
                    continue
                L.append(f"| {d} | {R} | {A} | {sd} | {v} | {b} | {r['nmse'] / o['nmse']:.3f} | "
                         f"{(o['compile_s'] + o['fit_s']) / (r['compile_s'] + r['fit_s']):.1f}x | "
                         f"{o['steps'] / r['steps']:.1f}x |")
    return L


def write(out, path):
    with open(path + ".json", "w") as f:
        json.dump(out, f, indent=1, default=str)
    L = [f"# RAKI fit speed ({out['env']['devices']}, git {out['env']['git']}, load avg at start "
         f"{out['env']['load_avg_start']}, at end {out['env'].get('load_avg_end')})", "",
         "Paper-size net 128/64, kernels (2,5)/(1,1)/(1,5), slope 0.5, complex64. `compile s` = first call "
         "(jit of init + one step, then that step); `fit s` = the full fit afterwards (compiled); "
         "`total s` = both (what a new process pays without a warm cache). NMSE of the RSS image in the head "
         "support against the fully sampled input. Timings share the 2 cores with other jobs (see load): "
         "compare within a row group.", "",
         "| data | R | ACS | seed | variant | optimizer | init | steps | lr | init scale | compile s | s/step | fit s | "
         "total s | NMSE | GRAPPA NMSE | loss | load |", "|" + "---|" * 18]
    for r in out["runs"]:
        init = r.get("init", "random")
        if init == "lstsq":
            init += f" {r.get('init_ridge', '')}"
        load = r.get("load_avg")
        load = "" if load is None else f"{load[0]:.1f}"
        L.append(f"| {r['data']} | {r['R']} | {r['acs']} | {r['seed']} | {r['variant']} | {r['optimizer']} | {init} | "
                 f"{r['steps']} | {r['lr']:g} | {r['init_scale']:.3g} | {r['compile_s']:.1f} | {r['s_per_step']:.3f} | "
                 f"{r['fit_s']:.1f} | {r['compile_s'] + r['fit_s']:.1f} | {r['nmse']:.4e} | {r['grappa_nmse']:.4e} | "
                 f"{r['loss_min']:.3e} | {load} |")
    L += summary(out["runs"])
    if out.get("step_forms"):
        L += ["", "One loss + gradient evaluation (same network and data, R=%d/%d):" % tuple(out["step_forms_case"]), "",
              "| form | compile s | s/eval | loss |", "|---|---|---|---|"]
        for k, v in out["step_forms"].items():
            L.append(f"| {k} | {v['compile_s']:.2f} | {v['s_per_eval']:.4f} | {v['loss']:.6e} |")
    with open(path + ".md", "w") as f:
        f.write("\n".join(L) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--coils", type=int, default=16)
    ap.add_argument("--cases", default="4:24,4:40,5:24", help="R:ACS,...")
    ap.add_argument("--seeds", default="0,1", help="phantom seeds (also the RAKI init seed)")
    ap.add_argument("--variants", default="old,rand500,new", help=f"comma list of {sorted(VARIANTS)}")
    ap.add_argument("--old-cases", default=None, help="R:ACS:seed,... where 'old' runs (default: all)")
    ap.add_argument("--second", action="store_true", help="also the phantom at 8 coils and half the SNR (R=4/24, seed 0)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "raki_speed_cpu"))
    ap.add_argument("--collect", nargs="+", default=None, metavar="JSON",
                    help="only merge the runs of these result files (first one's env) into --out")
    args = ap.parse_args(argv)
    if args.collect:
        parts = [json.load(open(f)) for f in args.collect]
        out = {**parts[0], "runs": [r for p in parts for r in p["runs"]], "parts": [p["env"] for p in parts]}
        write(out, args.out)
        return
    variants = args.variants.split(",")
    out = {"env": {"jax": jax.__version__, "devices": [str(d) for d in jax.devices()], "cpus": os.cpu_count(),
                   "machine": platform.machine(), "load_avg_start": os.getloadavg(), "git": _git()},
           "defaults": {k: v for k, v in raki.RakiConfig().__dict__.items()}, "variants": VARIANTS, "runs": []}
    jobs = [("phantom", args.coils, 0.01, int(R), int(A), int(sd)) for R, A in (c.split(":") for c in args.cases.split(","))
            for sd in args.seeds.split(",")]
    if args.second:
        jobs.append(("phantom 8 coils, half SNR", 8, 0.02, 4, 24, 0))
    old_only = None if args.old_cases is None else {tuple(int(v) for v in c.split(":")) for c in args.old_cases.split(",")}
    for name, nc, noise, R, A, seed in jobs:
        data = brain_phantom(args.n, nc, seed=seed, noise_level=noise)
        k = data.kspace.astype(np.complex64)
        ref, mask = rss(k), data.support
        s = make_sampling(args.n, R, A)
        _, red, acs_block = undersample(k, s)
        e_grappa = float(metrics.nmse(ref, rss(grappa.apply(grappa.calibrate(acs_block, s), red, s)), mask))
        if "step_forms" not in out:
            out["step_forms"] = step_forms(acs_block, R, raki.RakiConfig())
            out["step_forms_case"] = (R, A)
            print(out["step_forms"], flush=True)
        for v in variants:
            if v == "old" and old_only is not None and (R, A, seed) not in old_only and name == "phantom":
                continue
            cfg = raki.RakiConfig(**{**VARIANTS[v], "log_every": 10_000})
            compile_s, fit_s, res = fit(acs_block, s, cfg, jax.random.key(seed))
            e = float(metrics.nmse(ref, rss(raki.apply(res.kernels, red, s, 0.5)), mask))
            r = {"data": name, "coils": nc, "noise_level": noise, "R": R, "acs": A, "seed": seed, "variant": v,
                 "optimizer": cfg.optimizer, "init": cfg.init, "init_ridge": cfg.init_ridge, "steps": cfg.steps, "lr": cfg.learning_rate, "init_scale": cfg.init_scale,
                 "compile_s": compile_s, "fit_s": fit_s, "s_per_step": fit_s / cfg.steps, "nmse": e,
                 "grappa_nmse": e_grappa, "loss_last": float(res.losses[-1]),
                 "loss_min": float(np.min(res.losses)), "load_avg": os.getloadavg()}
            out["runs"].append(r)
            out["env"]["load_avg_end"] = os.getloadavg()
            print({kk: r[kk] for kk in ("data", "R", "acs", "seed", "variant", "compile_s", "fit_s", "nmse", "grappa_nmse")},
                  flush=True)
            write(out, args.out)


if __name__ == "__main__":
    main()
