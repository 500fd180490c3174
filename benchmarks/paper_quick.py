"""Paper-size timings in one process: the default RAKI fit (incl. compile) and the exact
true-derivative g-map (first and repeated call), on the built-in 256x256 16-coil phantom, R=4/24.

    RAKIJAX_NO_CACHE=1 python benchmarks/paper_quick.py [--out benchmarks/results/paper_quick_cpu.md]
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

from rakijax import brain_phantom, make_sampling, raki, raki_gfactor, undersample


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    d = brain_phantom(256, 16, seed=0)
    s = make_sampling(256, R=4, acs=24)
    _, u, acs = undersample(np.asarray(d.kspace, np.complex64), s)
    t = time.perf_counter()
    tr = raki.train(acs, s, raki.RakiConfig(), 0.5, key=jax.random.PRNGKey(0))
    jax.block_until_ready(tr.kernels)
    fit = time.perf_counter() - t
    times = []
    for _ in range(2):
        t = time.perf_counter()
        jax.block_until_ready(raki_gfactor(tr.kernels, u, s, 0.5, psi=np.eye(16)).g)
        times.append(time.perf_counter() - t)
    load = os.getloadavg()
    text = (f"# Paper-size timings ({jax.devices()[0]}, load average {load[0]:.2f} at the end)\n\n"
            f"| RAKI fit, defaults, incl. compile | g-map first call | g-map repeat |\n|---|---|---|\n"
            f"| {fit:.1f} s | {times[0]:.1f} s | {times[1]:.1f} s |\n")
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
