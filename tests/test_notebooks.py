"""The tutorial notebooks (jupytext py:percent sources) execute top to bottom and show figures."""

import os
from pathlib import Path

import pytest

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.py"))


def test_notebooks_found():
    names = [p.stem for p in NOTEBOOKS]
    assert names == ["01_quickstart", "02_image_space", "03_gfactor_maps", "04_sweeps", "05_auto_slope"]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, tmp_path, monkeypatch, tmp_path_factory):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    nb = jupytext.read(path)
    # inline figures even when the test session runs with MPLBACKEND=Agg
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # the notebooks share their setup (48x48 phantom, 6 coils, R=3, one RAKI size), so a
    # persistent XLA cache shared by their kernels saves most compile time in CI
    cache = tmp_path_factory.getbasetemp() / "jax_cache"
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(cache))
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    client = nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    # every notebook shows at least one figure inline
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} shows no figure"
