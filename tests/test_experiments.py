"""Every experiment's --small run writes its run folder (config, table, figures)."""

import importlib
import json
import sys
from pathlib import Path

import pytest

EXP_DIR = Path(__file__).resolve().parents[1] / "experiments"

EXPECTED = {
    "equivalence": ["equivalence.csv", "equivalence.md", "reconstructions.png", "image_vs_kspace_raki.png"],
    "gfactor_maps": ["gfactor.csv", "gfactor.md", "gfactor_maps.png", "scatter.png"],
    "slope_sweep": ["slope_table.csv", "slope_table.md", "tradeoff.png", "sweep/table.csv", "sweep/sweep_slope.png"],
    "activations": ["activations.csv", "activations.md", "mask_statistics.png", "errors.png"],
    "noise_level": ["noise_level.csv", "noise_level.md", "noise_level.png"],
}


def _rows(path):
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_equivalence(out):
    rows = _rows(out / "equivalence.csv")
    assert {r["method"] for r in rows} == {"grappa", "raki"}
    for r in rows:
        # circular edges make the two forms the same linear algebra: float64 round-off only
        assert float(r["image_vs_kspace_rel_error"]) < 1e-10
    by = {(r["method"], r["form"]): float(r["nmse"]) for r in rows}
    for m in ("grappa", "raki"):  # the same reconstruction in both forms scores the same
        assert by[(m, "k-space")] == pytest.approx(by[(m, "image space")], rel=1e-8)


def check_gfactor_maps(out):
    rows = {(r["method"], r["map"]): r for r in _rows(out / "gfactor.csv")}
    # the dense jacfwd map equals the analytic one (float64: ~1e-10); GRAPPA and RAKI
    for m in ("grappa", "raki"):
        assert float(rows[(m, "autodiff")]["max_abs_rel_diff_vs_analytic"]) < 1e-8
    # small-noise Monte Carlo of RAKI tracks the analytic map: M = 40 replicas give ~8% relative
    # std per pixel, so only the correlation and the mean (averaged over pixels) are tested
    mc = rows[("raki", "montecarlo (noise x0.01)")]
    assert float(mc["corr_vs_analytic"]) > 0.5 and abs(float(mc["mean_rel_diff_vs_analytic"])) < 0.1


def check_slope_sweep(out):
    rows = _rows(out / "sweep" / "table.csv")
    assert {r["metric"] for r in rows} >= {"nmse", "gfactor_mean", "gfactor_p95", "hf_loss"}
    assert len({r["point_id"] for r in rows}) == 2


CHECKS = {"equivalence": check_equivalence, "gfactor_maps": check_gfactor_maps, "slope_sweep": check_slope_sweep}


def _module(name):
    if str(EXP_DIR) not in sys.path:
        sys.path.insert(0, str(EXP_DIR))
    return importlib.import_module(name)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_small_run_writes_files(name, tmp_path):
    out = _module(name).main(["--small", "--out", str(tmp_path / name)])
    assert Path(out) == tmp_path / name
    for f in EXPECTED[name] + ["config.json"]:
        p = out / f
        assert p.is_file() and p.stat().st_size > 0, f
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["environment"]["jax_devices"]  # the device is recorded
    rows = (out / EXPECTED[name][0]).read_text().splitlines()
    assert len(rows) >= 2  # header + at least one row
    CHECKS.get(name, lambda out: None)(out)
    # refuses to overwrite silently
    with pytest.raises(SystemExit):
        _module(name).main(["--small", "--out", str(out)])


