"""The package's structure (issue 10): no import cycles, no lazy or private imports of its own modules."""

from _structure import cycles, imports, modules


def test_no_import_cycles():
    assert cycles(imports()) == []


def test_no_lazy_imports_of_own_modules():
    lazy = [f"{r['src']}:{r['line']} -> {r['dst']}" for r in imports() if r["lazy"]]
    assert lazy == []


def test_no_private_names_imported_across_modules():
    bad = [f"{r['src']}:{r['line']} imports {n} from {r['dst']}" for r in imports() for n in r["names"]
           if n.startswith("_") and not n.startswith("__")]
    assert bad == []


def test_every_module_is_seen():
    mods = modules()
    assert {"rakijax", "rakijax.cli", "rakijax.pipeline", "rakijax.sweep", "rakijax.methods"} <= set(mods)
