"""Several slices fitted in one vmapped program vs one after another: RAKI training throughput (run by hand).

Issue 14, "batch work the hardware can share". ``B`` slices of a volume (here: the
built-in phantom at ``B`` seeds, same shapes) are trained either sequentially (``B``
runs of the top-level jitted step of :func:`rakijax.raki.train`) or together
(``jax.vmap`` of the same step over the slices' parameters, optimiser states and
training problems), each either driven step by step from Python ("step") or with the
steps in one ``lax.fori_loop`` program ("loop": what :func:`rakijax.raki.train` runs per
chunk of ``log_every`` steps, and, vmapped, the sweeps' :func:`rakijax.raki.train_kernels`).
Initialisation is excluded; "first step s" is the compiling call. Reports seconds per step (wall and
process CPU time: the machine is shared, CPU seconds are the steadier measure) and
slices per minute at the default step count. Writes
``benchmarks/results/slice_batch_<platform>.{md,json}``.

    python benchmarks/slice_batch.py                 # paper size, B = 1, 2, 4, 20 timed steps
    python benchmarks/slice_batch.py --n 128 --coils 8
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from rakijax.data.synthetic import brain_phantom
from rakijax.raki import RakiConfig
from rakijax.sampling import make_sampling, undersample

T = importlib.import_module("rakijax.raki.train")  # the private step functions: timed directly here


def _acs(n, coils, R, acs, seed):
    data = brain_phantom(n=n, ncoils=coils, seed=seed)
    s = make_sampling(n, R, acs)
    _, _, a = undersample(jnp.asarray(data.kspace, jnp.complex64), s)
    return s, a


def _clock():
    return time.perf_counter(), time.process_time()


def _since(t):
    w, c = _clock()
    return w - t[0], c - t[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--coils", type=int, default=16)
    ap.add_argument("--R", type=int, default=4)
    ap.add_argument("--acs", type=int, default=24)
    ap.add_argument("--batches", default="1,2,4")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per run (after one compiling step)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = ap.parse_args(argv)
    cfg = RakiConfig()
    static = dataclasses.replace(T._static(cfg), steps=1)
    R = args.R
    slope = jnp.asarray(0.5, jnp.float32)
    lr = jnp.asarray(cfg.learning_rate, jnp.float32)
    Bs = [int(b) for b in args.batches.split(",")]
    acs = [_acs(args.n, args.coils, R, args.acs, seed)[1] for seed in range(max(Bs))]
    init = lambda a, i: T._init_jit(a, jax.random.PRNGKey(i), slope, R=R, config=static)
    def _one(p, o, b, bl, pr, a, l):  # one step at top level, keeping the best iterate (train() before issue 14)
        new, o, loss = T._step(p, o, pr, a, l, R, static)
        b, bl = T._keep_best(b, bl, p, loss)
        return new, o, b, bl, loss

    step = jax.jit(_one, donate_argnums=(0, 1, 2, 3))
    vstep = jax.jit(jax.vmap(lambda p, o, b, bl, pr: _one(p, o, b, bl, pr, slope, lr), in_axes=0))

    def seq_run(B):
        states = []
        for i in range(B):
            problem, _, params, opt = init(acs[i], i)
            states.append([params, opt, jax.tree.map(jnp.copy, params), jnp.asarray(np.inf, jnp.float32), problem])
        t = _clock()
        for st in states:  # first (compiling) step
            *st[:4], _ = step(st[0], st[1], st[2], st[3], st[4], slope, lr)
        jax.block_until_ready(states[-1][0])
        first = _since(t)
        t = _clock()
        for st in states:  # slices one after another, as rakijax recon --slice all does
            for _ in range(args.steps):
                *st[:4], loss = step(st[0], st[1], st[2], st[3], st[4], slope, lr)
            jax.block_until_ready(loss)
        return first, _since(t)

    def batch_run(B):
        parts = [init(acs[i], i) for i in range(B)]
        stack = lambda xs: jax.tree.map(lambda *a: jnp.stack(a), *xs)
        problem, params, opt = stack([p[0] for p in parts]), stack([p[2] for p in parts]), stack([p[3] for p in parts])
        best, bl = jax.tree.map(jnp.copy, params), jnp.full((B,), np.inf, jnp.float32)
        t = _clock()
        params, opt, best, bl, loss = vstep(params, opt, best, bl, problem)
        jax.block_until_ready(params)
        first = _since(t)
        t = _clock()
        for _ in range(args.steps):
            params, opt, best, bl, loss = vstep(params, opt, best, bl, problem)
        jax.block_until_ready(loss)
        return first, _since(t)

    def looped(p, o, b, bl, pr, n):  # n steps in one lax.fori_loop (what train() runs per chunk since issue 14)
        def body(i, c):
            return _one(*c, pr, slope, lr)[:4]

        return jax.lax.fori_loop(0, n, body, (p, o, b, bl))

    loop1 = jax.jit(looped, static_argnums=5)
    loopv = jax.jit(jax.vmap(looped, in_axes=(0, 0, 0, 0, 0, None)), static_argnums=5)

    def states(B):
        parts = [init(acs[i], i) for i in range(B)]
        return [(p[2], p[3], jax.tree.map(jnp.copy, p[2]), jnp.asarray(np.inf, jnp.float32), p[0]) for p in parts]

    def seq_loop_run(B):
        sts = states(B)
        t = _clock()
        jax.block_until_ready(loop1(*sts[0], 1))
        jax.block_until_ready(loop1(*sts[0], args.steps))  # compile (n is static here)
        first = _since(t)
        t = _clock()
        for st in sts:
            out = loop1(*st, args.steps)
        jax.block_until_ready(out)
        return first, _since(t)

    def batch_loop_run(B):
        sts = states(B)
        stacked = jax.tree.map(lambda *a: jnp.stack(a), *sts)
        t = _clock()
        jax.block_until_ready(loopv(*stacked, args.steps))  # compile + one run
        first = _since(t)
        t = _clock()
        jax.block_until_ready(loopv(*stacked, args.steps))
        return first, _since(t)

    rows = []
    for B in Bs:
        for mode, fn in (("sequential step", seq_run), ("sequential loop", seq_loop_run), ("vmapped step", batch_run),
                         ("vmapped loop", batch_loop_run)):
            load = os.getloadavg()[0]
            (fw, fc), (w, c) = fn(B)
            steps = B * args.steps
            row = dict(B=B, mode=mode, first_step_s=fw, wall_s_per_slice_step=w / steps, cpu_s_per_slice_step=c / steps,
                       slices_per_min_wall=60.0 / (w / steps * cfg.steps), load=load)
            rows.append(row)
            print(row, flush=True)
    plat = jax.devices()[0].platform
    meta = dict(n=args.n, coils=args.coils, R=R, acs=args.acs, steps_timed=args.steps, default_steps=cfg.steps,
                widths=cfg.widths, devices=str(jax.devices()), jax=jax.__version__)
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, f"slice_batch_{plat}")
    with open(base + ".json", "w") as f:
        json.dump(dict(meta=meta, rows=rows), f, indent=1, default=str)
    L = [f"# Slices per program: sequential vs vmapped RAKI training ({plat})", "", json.dumps(meta), "",
         f"Seconds per slice-step (a step of one slice's fit) over {args.steps} timed steps after one compiling step; "
         f"slices/min extrapolates to the default {cfg.steps} steps (training only). CPU = process CPU seconds "
         "(all threads).", "",
         "| B | mode | first step s | wall s/slice-step | CPU s/slice-step | slices/min | load |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        L.append(f"| {r['B']} | {r['mode']} | {r['first_step_s']:.2f} | {r['wall_s_per_slice_step']:.4f} | "
                 f"{r['cpu_s_per_slice_step']:.4f} | {r['slices_per_min_wall']:.2f} | {r['load']:.1f} |")
    with open(base + ".md", "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
