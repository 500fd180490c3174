"""The package's structure, for the redesign's record: tree with line counts, the import graph
from ``rakijax.cli`` down, and functions over 60 lines of code (ast; no import of rakijax).

    python benchmarks/import_graph.py [--out benchmarks/results/structure.md]

The analysis is :mod:`tests/_structure.py` (the same code ``tests/test_structure.py`` asserts with).
"""

from __future__ import annotations

import argparse
import sys
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _structure import cycles, function_lengths, imports, modules  # noqa: E402


def report() -> str:
    mods = modules()
    rows = imports(mods)
    lines = ["# rakijax structure", "", "## Modules (lines)", "", "```"]
    root = next(iter(mods.values())).parent
    while root.name != "rakijax":
        root = root.parent
    for name, path in sorted(mods.items(), key=lambda kv: str(kv[1])):
        lines.append(f"{len(path.read_text().splitlines()):5d}  {path.relative_to(root.parent)}")
    lines += ["```", "", "## Import graph from rakijax.cli down (package-internal, top-level imports only)", "", "```"]
    edges: dict[str, set[str]] = {}
    for r in rows:
        edges.setdefault(r["src"], set()).add(r["dst"])
    seen, queue = {"rakijax.cli"}, deque(["rakijax.cli"])
    while queue:
        m = queue.popleft()
        deps = sorted(d for d in edges.get(m, ()) if not d.startswith(m + "."))
        subs = sorted(d for d in edges.get(m, ()) if d.startswith(m + "."))
        if deps or subs:
            lines.append(f"{m} -> {', '.join(subs + deps)}")
        for d in subs + deps:
            if d not in seen:
                seen.add(d)
                queue.append(d)
    lines += ["```", "", f"import cycles: {cycles(rows) or 'none'}",
              f"lazy imports of own modules: {[(r['src'], r['dst']) for r in rows if r['lazy']] or 'none'}", "",
              "## Functions over 60 lines of code", ""]
    long = [(m, f, n) for m, f, n in function_lengths(mods) if n > 60]
    lines += [f"- `{m}.{f}`: {n}" for m, f, n in sorted(long, key=lambda t: -t[2])] or ["none"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=None, help="write the report here (default: print)")
    args = ap.parse_args(argv)
    text = report()
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
