"""Static structure of the package: its import graph, lazy and private imports, sizes (ast only)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "rakijax"


def modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def _targets(mod: str, path: Path, node, mods) -> list[tuple[str, list[str]]]:
    """``[(module, imported names)]`` of an import node, resolved inside the package."""
    if isinstance(node, ast.Import):
        return [(a.name, []) for a in node.names if a.name in mods]
    pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    if node.level:
        pkg = pkg[: len(pkg) - node.level + 1]
        base = ".".join(pkg + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    out = []
    names = [a.name for a in node.names]
    plain = [n for n in names if f"{base}.{n}" not in mods]  # names defined in `base` itself
    if base in mods and plain:
        out.append((base, plain))
    out += [(f"{base}.{n}", []) for n in names if f"{base}.{n}" in mods]
    return out


def imports(mods=None) -> list[dict]:
    """Every package-internal import: ``{src, dst, names, lazy, line}``."""
    mods = mods or modules()
    rows = []
    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for dst, names in _targets(mod, path, node, mods):
                    if dst != mod:
                        rows.append({"src": mod, "dst": dst, "names": names, "lazy": id(node) not in top,
                                     "line": node.lineno})
    return rows


def cycles(rows) -> list[list[str]]:
    """Import cycles (lazy imports included), each as a closed path; a package's
    ``__init__`` importing its own submodules is not a cycle."""
    edges: dict[str, set[str]] = {}
    for r in rows:
        if not r["dst"].startswith(r["src"] + "."):  # package -> its submodule
            edges.setdefault(r["src"], set()).add(r["dst"])
    found, seen = [], set()

    def dfs(u, path):
        for v in sorted(edges.get(u, ())):
            if v in path:
                c = path[path.index(v):] + [v]
                if frozenset(c) not in seen:
                    seen.add(frozenset(c))
                    found.append(c)
            elif len(path) < 16:
                dfs(v, path + [v])

    for m in sorted(edges):
        dfs(m, [m])
    return found


def function_lengths(mods=None) -> list[tuple[str, str, int]]:
    """``(module, function, lines of code)`` for every function (docstring excluded)."""
    out = []
    for mod, path in (mods or modules()).items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                    body = body[1:]
                n = (body[-1].end_lineno - body[0].lineno + 1) if body else 0
                out.append((mod, node.name, n))
    return out
