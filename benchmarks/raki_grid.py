"""RAKI training budget: NMSE over learning rate x Adam steps (run by hand, meant for a GPU).

Runs ``benchmarks/raki.py`` once per ``lr:steps`` pair (all cases and slopes each time,
GRAPPA included) into ``OUT/lr<lr>_s<steps>.json`` and writes ``OUT/grid.md``: one
table per (R, ACS) with RAKI's NMSE per slope for every pair, next to GRAPPA's.
``--summarise`` only rebuilds ``grid.md`` from the JSON files already there
(any ``raki.py`` output in OUT counts, so earlier runs can be merged in).

    python benchmarks/raki_grid.py --out benchmarks/results/h100/grid --grid 3e-3:500,3e-3:1000,1e-3:4000
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def summarise(out: str) -> str:
    cases: dict = {}
    devices = set()
    for path in sorted(glob.glob(os.path.join(out, "*.json"))):
        with open(path) as f:
            d = json.load(f)
        if "cases" not in d:
            continue
        devices.update(d["env"]["devices"])
        cfg = (float(d["config"]["learning_rate"]), int(d["config"]["steps"]))
        for c in d["cases"]:
            e = cases.setdefault((c["R"], c["acs"]), {"grappa": c["grappa"]["nmse"], "raki": {}})
            for r in c["raki"]:
                e["raki"][(cfg, float(r["slope"]))] = r["nmse"]
    lines = [f"# RAKI NMSE vs learning rate and Adam steps (paper-size net; devices {sorted(devices)})", "",
             "NMSE of the RSS image in the head support against the fully sampled noisy reference;",
             "**bold**: better than GRAPPA of the same case.", ""]
    for (R, acs), e in sorted(cases.items()):
        slopes = sorted({a for _, a in e["raki"]})
        cfgs = sorted({c for c, _ in e["raki"]}, key=lambda c: (c[0], c[1]))
        lines += [f"## R={R}, {acs} ACS lines (GRAPPA {e['grappa']:.3e})", "",
                  "| lr | steps | " + " | ".join(f"slope {a:g}" for a in slopes) + " |",
                  "|---|---|" + "---|" * len(slopes)]
        for c in cfgs:
            cells = []
            for a in slopes:
                v = e["raki"].get((c, a))
                cells.append("-" if v is None else (f"**{v:.3e}**" if v < e["grappa"] else f"{v:.3e}"))
            lines.append(f"| {c[0]:g} | {c[1]} | " + " | ".join(cells) + " |")
        lines.append("")
    text = "\n".join(lines)
    with open(os.path.join(out, "grid.md"), "w") as f:
        f.write(text)
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--grid", default="3e-3:500,3e-3:1000,3e-3:2000,3e-3:4000,1e-3:1000,1e-3:2000,1e-3:4000",
                    help="lr:steps,...")
    ap.add_argument("--cases", default="4:24,4:40,5:24")
    ap.add_argument("--slopes", default="0.1,0.5,1.0")
    ap.add_argument("--summarise", action="store_true", help="only rebuild grid.md from OUT/*.json")
    args, rest = ap.parse_known_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if not args.summarise:
        import raki as bench  # benchmarks/raki.py

        for item in args.grid.split(","):
            lr, steps = item.split(":")
            bench.main(["--cases", args.cases, "--slopes", args.slopes, "--lr", lr, "--steps", steps,
                        "--out", os.path.join(args.out, f"lr{lr}_s{steps}"), *rest])
    print(summarise(args.out))


if __name__ == "__main__":
    main()
