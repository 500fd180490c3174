"""Compile once per machine: first call in a new process, cold vs warm persistent cache (run by hand).

Runs the same child process three times against one fresh cache folder
(:func:`rakijax.jit_cache.enable_persistent_cache`): ``cold`` (empty cache),
``warm`` (the cache the cold run wrote) and ``off`` (``RAKIJAX_NO_CACHE=1``). Each
child times, on the built-in phantom, the first and a repeated call of

* a RAKI fit of ``--steps`` steps (paper-size net, R=4/24; the first call compiles
  the init and the training step),
* the exact true-derivative RAKI g-map (:func:`rakijax.gfactor.raki_gfactor`).

The target (issue 14) is a first call with a warm cache <= 2x a repeated call.
Writes ``benchmarks/results/compile_cache_cpu.{md,json}``.

    python benchmarks/compile_cache.py --n 256 --coils 16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time
n, nc, steps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
t0 = time.perf_counter()
from rakijax.jit_cache import enable_persistent_cache
path = enable_persistent_cache(sys.argv[4])
import jax, jax.numpy as jnp, numpy as np
from rakijax import raki
from rakijax.data.synthetic import brain_phantom
from rakijax.gfactor import raki_gfactor
from rakijax.sampling import make_sampling, undersample
data = brain_phantom(n, nc, seed=0)
k = data.kspace.astype(np.complex64)
s = make_sampling(n, 4, 24)
_, red, acs = undersample(k, s)
out = {"cache": None if path is None else str(path), "import_s": time.perf_counter() - t0}
cfg = raki.RakiConfig(steps=steps, log_every=steps)
for i in range(2):
    t = time.perf_counter()
    res = raki.train(acs, s, cfg, 0.5, key=jax.random.key(0))
    out[f"train_call{i + 1}_s"] = time.perf_counter() - t
ks = res.kernels
for i in range(2):
    t = time.perf_counter()
    jax.block_until_ready(raki_gfactor(ks, jnp.asarray(red), s, 0.5, psi=data.psi, linearisation="true").g)
    out[f"gmap_call{i + 1}_s"] = time.perf_counter() - t
print(json.dumps(out))
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--coils", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20, help="training steps per call (the compile is what is timed)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "compile_cache_cpu"))
    args = ap.parse_args(argv)
    rows = {}
    with tempfile.TemporaryDirectory() as cache:
        for label, env in (("cold", {}), ("warm", {}), ("off", {"RAKIJAX_NO_CACHE": "1"})):
            env = {**os.environ, "RAKIJAX_NO_CACHE": "0", **env}
            r = subprocess.run([sys.executable, "-c", CHILD, str(args.n), str(args.coils), str(args.steps), cache],
                               capture_output=True, text=True, env=env, check=True)
            rows[label] = {**json.loads(r.stdout.strip().splitlines()[-1]), "load_avg": os.getloadavg()}
            print(label, rows[label], flush=True)
    out = {"n": args.n, "coils": args.coils, "steps": args.steps, "runs": rows}
    with open(args.out + ".json", "w") as f:
        json.dump(out, f, indent=1)
    L = [f"# First call in a new process: persistent compilation cache ({args.n}x{args.n}, {args.coils} coils, "
         f"paper-size RAKI, R=4/24, 2-core CPU shared with other jobs)", "",
         f"RAKI fit of {args.steps} steps (first call compiles init + step) and the exact true-derivative g-map; "
         "seconds. `ratio` = first / repeated call.", "",
         "| cache | fit 1st | fit 2nd | ratio | g-map 1st | g-map 2nd | ratio | load |", "|---|---|---|---|---|---|---|---|"]
    for label, r in rows.items():
        L.append(f"| {label} | {r['train_call1_s']:.1f} | {r['train_call2_s']:.1f} | "
                 f"{r['train_call1_s'] / r['train_call2_s']:.2f} | {r['gmap_call1_s']:.1f} | {r['gmap_call2_s']:.1f} | "
                 f"{r['gmap_call1_s'] / r['gmap_call2_s']:.2f} | {r['load_avg'][0]:.1f} |")
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
