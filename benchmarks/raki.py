"""RAKI benchmark on the built-in 256x256 16-coil phantom (run by hand).

For each (R, ACS) case: GRAPPA (2x5, rakijax.grappa) and RAKI (paper-size 128/64
network, complex64) for several negative slopes; NMSE / PSNR / SSIM of the RSS
image inside the head support against the RSS of the fully sampled (noisy) input
(the DESIGN.md reference) and against the noise-free RSS; training, inference and
compile times. Writes benchmarks/results/raki.json and raki.md.

    python benchmarks/raki.py --cases 4:24,4:40,5:24   # RakiConfig defaults: 2000 steps, lr 1e-3

Compile times: the first training of a case includes compiling the init and the
Adam step; ``compile_s`` is that first run's time minus the mean time of the later
(already compiled) runs of the same case. Inference likewise (first minus second call).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import numpy as np

from rakijax import grappa, metrics, raki
from rakijax.data.synthetic import brain_phantom
from rakijax.fft import ifft2c
from rakijax.sampling import make_sampling, undersample


def rss(k):
    return np.sqrt((np.abs(np.asarray(ifft2c(k))) ** 2).sum(0))


def scores(ref, ref_clean, k, mask):
    x = rss(k)
    return {
        "nmse": float(metrics.nmse(ref, x, mask)),
        "psnr": float(metrics.psnr(ref, x, mask)),
        "ssim": float(metrics.ssim(ref, x, mask)),
        "nmse_vs_clean": float(metrics.nmse(ref_clean, x, mask)),
    }


def main(argv=None):
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--coils", type=int, default=16)
    ap.add_argument("--steps", type=int, default=raki.RakiConfig().steps)
    ap.add_argument("--lr", type=float, default=raki.RakiConfig().learning_rate)
    ap.add_argument("--widths", default="128,64")
    ap.add_argument("--cases", default="4:24,4:40,5:24", help="R:ACS,...")
    ap.add_argument("--slopes", default="0.1,0.5,1.0")
    ap.add_argument("--seed", type=int, default=0, help="phantom seed (and RAKI init seed unless --init-seeds)")
    ap.add_argument("--init-seeds", default=None, help="comma-separated RAKI initialisation seeds (default: --seed)")
    ap.add_argument("--grappa-kernels", default="2x9,4x5", help="extra GRAPPA kernels KHxKW,... ('' for none)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "raki"))
    args = ap.parse_args(argv)

    data = brain_phantom(args.n, args.coils, seed=args.seed)
    k = data.kspace.astype(np.complex64)
    ref, ref_clean, mask = rss(k), rss(data.clean), data.support
    cfg = raki.RakiConfig(widths=tuple(int(w) for w in args.widths.split(",")), steps=args.steps,
                          learning_rate=args.lr, log_every=max(1, args.steps // 10))
    slopes = [float(a) for a in args.slopes.split(",") if a]  # "" = GRAPPA only
    init_seeds = [int(v) for v in args.init_seeds.split(",")] if args.init_seeds else [args.seed]
    out = {
        "data": {"phantom": data.meta, "dtype": "complex64"},
        "config": {"widths": cfg.widths, "kernels": cfg.kernels, "steps": cfg.steps, "learning_rate": cfg.learning_rate},
        "env": {"jax": jax.__version__, "devices": [str(d) for d in jax.devices()], "cpus": os.cpu_count(),
                "machine": platform.machine(), "load_avg_start": os.getloadavg(), "git": _git()},
        "cases": [],
    }
    for case in args.cases.split(","):
        R, acs = (int(v) for v in case.split(":"))
        s = make_sampling(args.n, R, acs)
        _, red, acs_block = undersample(k, s)
        t = time.perf_counter()
        W = grappa.calibrate(acs_block, s)
        kg = np.asarray(grappa.apply(W, red, s))
        entry = {"R": R, "acs": acs, "R_eff": s.R_eff,
                 "grappa": {**scores(ref, ref_clean, kg, mask), "time_s": time.perf_counter() - t}, "raki": []}
        # other GRAPPA kernel sizes (2x9 = the receptive field of the default RAKI in kx)
        entry["grappa_kernels"] = {}
        for ker in args.grappa_kernels.split(",") if args.grappa_kernels else []:
            kh, kw = (int(v) for v in ker.split("x"))
            try:
                Wk = grappa.calibrate(acs_block, s, kernel=(kh, kw))
            except ValueError as e:  # e.g. too few ACS lines for a tall kernel
                print(f"R={R} acs={acs} GRAPPA {ker}: skipped ({e})", flush=True)
                continue
            entry["grappa_kernels"][ker] = scores(ref, ref_clean, np.asarray(grappa.apply(Wk, red, s)), mask)
            print(f"R={R} acs={acs} GRAPPA {ker}: NMSE {entry['grappa_kernels'][ker]['nmse']:.3e}", flush=True)
        train_times = []
        runs = [(a, seed) for seed in init_seeds for a in slopes]
        for i, (a, seed) in enumerate(runs):
            t = time.perf_counter()
            res = raki.train(acs_block, s, cfg, a, key=jax.random.key(seed))
            t_train = time.perf_counter() - t
            t = time.perf_counter()
            kr = np.asarray(raki.apply(res.kernels, red, s, a))
            t_first = time.perf_counter() - t
            t = time.perf_counter()
            kr = np.asarray(raki.apply(res.kernels, red, s, a))
            t_apply = time.perf_counter() - t
            train_times.append(t_train)
            r = {"slope": a, "init_seed": seed, **scores(ref, ref_clean, kr, mask), "train_s": t_train, "apply_s": t_apply,
                 "apply_first_s": t_first, "loss_first": float(res.losses[0]), "loss_last": float(res.losses[-1]),
                 "loss_min": float(np.min(res.losses))}
            entry["raki"].append(r)
            print(f"R={R} acs={acs} a={a} init seed {seed}: NMSE {r['nmse']:.3e} (GRAPPA {entry['grappa']['nmse']:.3e}) "
                  f"train {t_train:.1f}s loss {r['loss_first']:.2e}->{r['loss_last']:.2e}", flush=True)
        if len(train_times) > 1:
            entry["compile_train_s"] = train_times[0] - float(np.mean(train_times[1:]))
            entry["train_step_s"] = float(np.mean(train_times[1:])) / cfg.steps
        out["cases"].append(entry)
        _write(out, args.out)
    out["env"]["load_avg_end"] = os.getloadavg()
    _write(out, args.out)


def _git():
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True).stdout
        dirty = subprocess.run(["git", "status", "--porcelain", "rakijax"], cwd=root, capture_output=True, text=True).stdout
        return {"head": head.strip(), "dirty": dirty.split("\n")[:20]}
    except OSError:
        return None


def _write(out, stem):
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    with open(stem + ".json", "w") as f:
        json.dump(out, f, indent=1, default=lambda o: list(o) if isinstance(o, tuple) else str(o))
    lines = [f"# RAKI benchmark ({out['config']}, {out['env']['devices']}, load {out['env']['load_avg_start']})", "",
             "| R | ACS | method | slope | NMSE | PSNR | SSIM | NMSE vs clean | train s | apply s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in out["cases"]:
        g = c["grappa"]
        lines.append(f"| {c['R']} | {c['acs']} | GRAPPA | - | {g['nmse']:.3e} | {g['psnr']:.2f} | {g['ssim']:.4f} | "
                     f"{g['nmse_vs_clean']:.3e} | {g['time_s']:.2f} | - |")
        for ker, g2 in c.get("grappa_kernels", {}).items():
            lines.append(f"| {c['R']} | {c['acs']} | GRAPPA {ker} | - | {g2['nmse']:.3e} | {g2['psnr']:.2f} | "
                         f"{g2['ssim']:.4f} | {g2['nmse_vs_clean']:.3e} | - | - |")
        for r in c["raki"]:
            seed = f" (seed {r['init_seed']})" if r.get("init_seed", 0) else ""
            lines.append(f"| {c['R']} | {c['acs']} | RAKI{seed} | {r['slope']} | {r['nmse']:.3e} | {r['psnr']:.2f} | "
                         f"{r['ssim']:.4f} | {r['nmse_vs_clean']:.3e} | {r['train_s']:.1f} | {r['apply_s']:.3f} |")
        if "compile_train_s" in c:
            lines.append(f"\nR={c['R']} ACS={c['acs']}: train compile ~{c['compile_train_s']:.1f} s, "
                         f"{c['train_step_s']:.3f} s/step\n")
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
