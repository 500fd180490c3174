"""Benchmark: exact RAKI g-factor maps at full resolution vs Monte Carlo and dense jacfwd.

Run by hand (complex64, x64 off):

    python benchmarks/gfactor.py [--n 256] [--coils 16] [--R 4] [--replicas 100] [--train]

Writes benchmarks/results/gfactor.json and gfactor.md. Networks: paper size (128/64)
and small (32/8), kernels 2x5, 1x1, 1x5; random complex kernels (He scale) unless
``--train`` (rakijax.raki.train on the phantom's ACS). Both linearisations. Times are
wall-clock seconds after compilation (the first, compiling call is reported too).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from rakijax.data.synthetic import brain_phantom
from rakijax.fft import ifft2c
from rakijax.gfactor.bands import noise_bands
from rakijax.gfactor.combine import combination_weights, combined_variance, gfactor_from_variance
from rakijax.gfactor.linearise import linearise
from rakijax.gfactor.maps import raki_gfactor
from rakijax.gfactor.reference import dense_jacobian_bytes, monte_carlo_variance
from rakijax.kspace_net import apply_network, assemble, conv
from rakijax.sampling import make_sampling, undersample


def _git():
    import subprocess

    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                              cwd=os.path.dirname(__file__)).stdout.strip()
    except OSError:
        return "?"


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(f, *a, reps=1, **k):
    t0 = time.perf_counter()
    out = jax.block_until_ready(f(*a, **k))
    first = time.perf_counter() - t0
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = jax.block_until_ready(f(*a, **k))
        ts.append(time.perf_counter() - t0)
    return out, first, min(ts) if ts else first


def random_kernels(key, nc, widths, R, dtype=jnp.complex64):
    shapes = [(widths[0], nc, 2, 5)] + [(widths[1], widths[0], 1, 1)] + [((R - 1) * nc, widths[1], 1, 5)]
    ks = []
    for i, s in enumerate(shapes):
        kr, ki, key = jax.random.split(key, 3)
        fan = s[1] * s[2] * s[3]
        ks.append(((jax.random.normal(kr, s) + 1j * jax.random.normal(ki, s)) / np.sqrt(2 * fan)).astype(dtype))
    return ks


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--coils", type=int, default=16)
    ap.add_argument("--R", type=int, default=4)
    ap.add_argument("--acs", type=int, default=24)
    ap.add_argument("--slope", type=float, default=0.5)
    ap.add_argument("--replicas", type=int, default=100, help="timed MC replicas (extrapolated to 1000)")
    ap.add_argument("--chunk", type=int, default=4)
    ap.add_argument("--train", action="store_true", help="train the kernels with rakijax.raki.train")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--nets", default="paper,small")
    ap.add_argument("--name", default="gfactor", help="result file stem in --out")
    ap.add_argument("--no-extras", action="store_true", help="analytic maps only (no Monte Carlo, no jacfwd extrapolation)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = ap.parse_args(argv)

    data = brain_phantom(n=args.n, ncoils=args.coils, seed=0)
    k = jnp.asarray(data.kspace, jnp.complex64)
    psi = jnp.asarray(data.psi, jnp.complex64)
    s = make_sampling(args.n, args.R, args.acs)
    _, u, acs = undersample(k, s)
    support = np.asarray(data.support)
    nets = {"paper": (128, 64), "small": (32, 8)}
    rows = []
    load0 = os.getloadavg()[0]
    for name in args.nets.split(","):
        widths = nets[name]
        if args.train:
            from rakijax.raki import RakiConfig, train

            cfg = RakiConfig(widths=widths, steps=args.steps)
            t0 = time.perf_counter()
            ks = [jnp.asarray(w, jnp.complex64) for w in train(acs, s, cfg, args.slope, key=jax.random.PRNGKey(0)).kernels]
            train_s = time.perf_counter() - t0
        else:
            ks, train_s = random_kernels(jax.random.PRNGKey(1), args.coils, widths, args.R), None
        recon = jax.jit(lambda v: ifft2c(apply_network(ks, v, s, args.slope)))
        x = recon(u)
        p = combination_weights(x)
        res = {}
        for mode in ("frozen", "true"):
            for method in ("spectral", "gram") if mode == "frozen" else ("spectral",):
                run = lambda: raki_gfactor(ks, u, s, args.slope, psi=psi, p=p, linearisation=mode, chunk=args.chunk, method=method).g
                t0 = time.perf_counter()
                r = jax.block_until_ready(run())
                first = time.perf_counter() - t0  # includes compilation
                lin, _, t_lin = timed(lambda: linearise(ks, u, s, args.slope, mode=mode), reps=0)
                t0 = time.perf_counter()
                jax.block_until_ready(noise_bands(ks, lin, s, psi, chunk=args.chunk, method=method).s)
                t_b = time.perf_counter() - t0
                t0 = time.perf_counter()
                r = jax.block_until_ready(run())
                best = time.perf_counter() - t0
                g = np.asarray(r)
                res[(mode, method)] = g
                rows.append(dict(net=name, widths=widths, mode=mode, method=method, analytic_s=best, analytic_first_call_s=first,
                                 linearise_s=t_lin, bands_s=t_b, maps_and_g_s=max(best - t_lin - t_b, 0.0),
                                 g_mean=float(g[support].mean()), g_p95=float(np.percentile(g[support], 95)),
                                 g_max=float(g[support].max()), peak_rss_mb=peak_mb(),
                                 beta_fraction=float(linearise(ks, u, s, args.slope, mode="true").beta_fraction) if mode == "true" else None))
                print(rows[-1], flush=True)
        gt, gf = res[("true", "spectral")], res[("frozen", "spectral")]
        extra = dict(net=name, frozen_vs_true_mean_g=float(gf[support].mean() / gt[support].mean() - 1),
                     gram_vs_spectral_max_rel=float(np.abs(res[("frozen", "gram")] - gf).max() / gf.max()))
        if args.no_extras:
            rows.append(extra)
            continue

        # Monte Carlo of the nonlinear network: small noise (-> true map) and the data's own noise
        for label, scale in (("mc_small_noise", 1e-2), ("mc_realistic", 1.0)):
            key = jax.random.PRNGKey(2)
            m1, m2 = args.replicas // 2, args.replicas
            mc = lambda m: monte_carlo_variance(ks, u, s, args.slope, psi=psi, p=p, key=key, replicas=m, noise_scale=scale, chunk=m1)
            timed(mc, m1, reps=0)  # compiles the chunk (m2 runs the same chunk twice: no recompilation)
            var, t2, _ = timed(mc, m2, reps=0)
            gmc = np.asarray(gfactor_from_variance(var, p, psi, args.R))
            extra[label + "_s_per_1000"] = t2 * 1000 / m2
            extra[label + "_vs_true_mean_g"] = float(gmc[support].mean() / gt[support].mean() - 1)
            extra[label + "_replicas"] = args.replicas
        # frozen-operator MC (linear): time only
        # dense jacfwd: time a batch of JVP columns and extrapolate
        ncols = 2 * u.size
        lin_f = jax.jit(lambda t: jax.jvp(lambda v: recon(v), (u,), (t,))[1])
        batch = 8
        tangents = jnp.zeros((batch,) + u.shape, u.dtype).at[jnp.arange(batch), 0, 0, jnp.arange(batch)].set(1)
        vj = jax.jit(jax.vmap(lin_f))
        _, _, tj = timed(vj, tangents, reps=2)
        extra["jacfwd_extrapolated_s"] = tj / batch * ncols
        extra["jacfwd_dense_bytes"] = dense_jacobian_bytes(u.shape, x.shape, 4)
        extra["peak_rss_mb"] = peak_mb()
        extra["train_s"] = train_s
        print(extra, flush=True)
        rows.append(extra)

    meta = dict(n=args.n, coils=args.coils, R=args.R, slope=args.slope, chunk=args.chunk, trained=args.train,
                devices=str(jax.devices()), jax=jax.__version__, loadavg_start=load0, loadavg_end=os.getloadavg()[0],
                dtype="complex64")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, args.name + ".json"), "w") as f:
        json.dump(dict(meta=meta, rows=rows), f, indent=1, default=str)
    with open(os.path.join(args.out, args.name + ".md"), "w") as f:
        f.write(f"# RAKI g-factor benchmark\n\n{json.dumps(meta)}\n\n")
        f.write(f"git {_git()}; `analytic s` = a repeated call of raki_gfactor (linearise + bands + maps), "
                "`first call s` = the first call in this process (compiles).\n\n")
        f.write("| net | linearisation | method | analytic s | first call s | linearise s | bands s | maps+g s | mean g | p95 g | beta!=0 | peak RSS MB |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
        for r in rows:
            if "mode" in r:
                f.write(f"| {r['net']} | {r['mode']} | {r['method']} | {r['analytic_s']:.2f} | {r['analytic_first_call_s']:.2f} | "
                        f"{r['linearise_s']:.2f} | {r['bands_s']:.2f} | {r['maps_and_g_s']:.2f} | {r['g_mean']:.4f} | {r['g_p95']:.4f} | "
                        f"{r['beta_fraction'] if r['beta_fraction'] is not None else '-'} | {r['peak_rss_mb']:.0f} |\n")
        f.write("\n")
        for r in rows:
            if "mode" not in r:
                f.write("- " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()) + "\n")


if __name__ == "__main__":
    main()
