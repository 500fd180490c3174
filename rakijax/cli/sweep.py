"""``rakijax sweep {run,collect,plan}``: a sweep spec from a file and/or flags, run and tabulated."""

from __future__ import annotations

from pathlib import Path

from ..config import preset
from ..sweep import SweepSpec, collect, finished_ids, load_spec, point_id, read_spec_file, run, run_dask

__all__ = ["cmd_sweep", "spec_from_args"]


def _floats(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x.strip()]


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def spec_from_args(args) -> SweepSpec:
    """Spec from a file (optional) with command-line overrides."""
    d: dict = {}
    base = None
    if args.spec:
        p = Path(args.spec)
        base = p.parent
        d = read_spec_file(p)
    if args.small:  # the 'ci' preset: the same setting as the experiments' --small
        ci = preset("ci")
        d.setdefault("inputs", [{"phantom": {"n": ci.n, "ncoils": ci.ncoils, "seed": ci.phantom_seed}}])
        d.setdefault("R", [ci.R])
        d.setdefault("acs", [ci.acs])
        d.setdefault("preset", "ci")
    for name, conv in (("slopes", _floats), ("R", _ints), ("acs", _ints), ("seeds", _ints)):
        v = getattr(args, name)
        if v is not None:
            d[name] = conv(v)
    if args.phantom is not None:
        n, nc = (_ints(args.phantom) + [8])[:2]
        d["inputs"] = [{"phantom": {"n": n, "ncoils": nc, "seed": 0}}]
    if args.input:
        d["inputs"] = [{"file": f, "slices": _ints(args.slices)} for f in args.input]
    if args.preset:
        d["preset"] = args.preset
    if args.steps is not None:
        d.setdefault("raki", {})["steps"] = args.steps
    if args.gfactor:
        d["gfactor"] = args.gfactor
    if args.linearisation:
        d["linearisation"] = args.linearisation
    if args.name:
        d["name"] = args.name
    return SweepSpec.from_dict(d, base_dir=base)


def cmd_sweep(args, argv=None) -> int:
    """``rakijax sweep {run,collect,plan}`` (see ``experiments/README.md``); returns the exit status."""
    if args.sweep_command == "collect":
        rows = collect(args.out, figures=not args.no_figures)
        print(f"{len(rows)} rows from {len({r['point_id'] for r in rows})} points -> {Path(args.out) / 'table.csv'}")
        return 0
    if args.sweep_command == "plan":
        spec = load_spec(args.spec)
        done = finished_ids(args.out) if args.out else set()
        for i, grp in enumerate(spec.groups()):
            for pt in grp:
                pid = point_id(spec, pt)
                print(f"group {i}  {pid}  {'done' if pid in done else 'todo'}  {pt.params()}")
        return 0
    spec = spec_from_args(args)
    if args.workers or args.scheduler:
        n = run_dask(spec, args.out, scheduler=args.scheduler, workers=args.workers or 2,
                     threads_per_worker=args.threads, max_points=args.max_points)
    else:
        n = run(spec, args.out, max_points=args.max_points, progress=args.progress)
    total = len(spec.points())
    done = len(finished_ids(args.out) & {point_id(spec, p) for p in spec.points()})
    print(f"wrote {len(n)} points; {done}/{total} of the sweep finished in {args.out}")
    if not args.no_collect:
        collect(args.out)
    return 0 if done == total or args.max_points else 1
