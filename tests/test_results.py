"""Run folder (results.py) and figures (plotting.py): layout, atomic writes, no data loss."""

import json
import os
import stat

import h5py
import numpy as np
import pytest
from matplotlib.figure import Figure

from rakijax import plotting, results, runfolder


def _arrays(ny=12, nx=10, nc=3, g=True):
    rng = np.random.default_rng(0)
    k = rng.standard_normal((nc, ny, nx)) + 1j * rng.standard_normal((nc, ny, nx))
    ref = np.abs(rng.standard_normal((ny, nx)))
    return {
        "reference": ref,
        "recon": ref + 0.1,
        "recon_kspace": k,
        "mask": np.arange(ny) % 2 == 0,
        "gfactor": 1 + np.abs(rng.standard_normal((ny, nx))) if g else None,
        "support": ref > 0.5,
    }


def _write(out, overwrite=False, figures=None, metrics=None):
    with runfolder.run_folder(out, overwrite) as stage:
        return results.write_run(stage, arrays=_arrays(), metrics=metrics or {"nmse": 0.1}, config={"seed": 0},
                                 figures=figures or {})


def test_check_run_dir_refusals(tmp_path):
    out = tmp_path / "new" / "run"
    assert runfolder.check_run_dir(out) == out  # not created by the check
    assert not out.exists()
    out.mkdir(parents=True)
    runfolder.check_run_dir(out)  # existing but empty: fine
    (out / "x.txt").write_text("user")
    with pytest.raises(runfolder.OutputExistsError, match="not empty.*--overwrite"):
        runfolder.check_run_dir(out)
    runfolder.check_run_dir(out, overwrite=True)
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        runfolder.check_run_dir(f, overwrite=True)
    with pytest.raises(NotADirectoryError, match="not a folder"):
        runfolder.check_run_dir(f / "sub")  # --out a_file/sub: refused before any work
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(PermissionError, match="not writable"):
            runfolder.check_run_dir(ro / "run")


def test_run_folder_new_and_umask(tmp_path):
    old = os.umask(0o022)
    try:
        written = _write(tmp_path / "a" / "run")
    finally:
        os.umask(old)
    out = tmp_path / "a" / "run"
    assert set(written) == {p.name for p in out.iterdir()} == {"results.h5", "metrics.json", "config.json"}
    assert stat.S_IMODE(out.stat().st_mode) == 0o755  # the umask, not tempfile's 0700/0600
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in out.iterdir())
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["run"]  # no staging folder left


def test_failed_run_leaves_old_run_intact(tmp_path):
    out = tmp_path / "run"
    _write(out, metrics={"nmse": 0.1})
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(RuntimeError):
        with runfolder.run_folder(out, overwrite=True) as stage:
            (stage / "metrics.json").write_text("partial")
            raise RuntimeError("boom")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_overwrite_replaces_only_our_files(tmp_path):
    out = tmp_path / "run"
    fig = plotting.loss_figure(np.geomspace(1, 1e-3, 20))
    written = _write(out, figures={"old_figure.png": fig})
    assert set(written) == {"results.h5", "metrics.json", "config.json", "old_figure.png"}
    (out / "notes.txt").write_text("keep me")
    (out / "sub").mkdir()
    (out / "sub" / "data.txt").write_text("mine")
    _write(out, overwrite=True, metrics={"nmse": 0.2})
    # a previous run's outputs are gone (no stale figure), the user's files stay
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.json", "notes.txt", "results.h5", "sub"]
    assert (out / "notes.txt").read_text() == "keep me" and (out / "sub" / "data.txt").read_text() == "mine"
    assert json.loads((out / "metrics.json").read_text()) == {"nmse": 0.2}


def test_results_h5_exact_layout(tmp_path):
    a = _arrays()
    results.write_results_h5(tmp_path / "results.h5", **a)
    with h5py.File(tmp_path / "results.h5", "r") as f:
        assert sorted(f.keys()) == ["gfactor", "mask", "recon", "recon_kspace", "reference"]
        assert f["reference"].shape == (12, 10) and f["recon"].shape == (12, 10)
        assert f["recon_kspace"].shape == (3, 12, 10) and np.iscomplexobj(f["recon_kspace"][()])
        assert f["mask"].shape == (12,) and f["mask"].dtype == bool
        np.testing.assert_array_equal(f["recon_kspace"][()], a["recon_kspace"])
    back = results.read_results_h5(tmp_path / "results.h5")
    np.testing.assert_array_equal(back["support"], a["support"])  # bit-packed attribute round trip
    b = _arrays(g=False)
    results.write_results_h5(tmp_path / "r2.h5", **b)
    with h5py.File(tmp_path / "r2.h5", "r") as f:
        assert "gfactor" not in f
    b["mask"] = np.ones(5, bool)
    with pytest.raises(ValueError, match="mask"):
        results.write_results_h5(tmp_path / "r3.h5", **b)


def test_atomic_write_leaves_nothing_half(tmp_path):
    target = tmp_path / "metrics.json"
    runfolder.write_json(target, {"a": 1})
    def boom(f):
        f.write("partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        runfolder.atomic_write(target, boom)
    assert json.loads(target.read_text()) == {"a": 1}  # old content intact
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left


def test_json_and_environment(tmp_path):
    runfolder.write_json(tmp_path / "m.json", {"x": np.float32(1.5), "nan": float("nan"), "arr": np.arange(3),
                                             "nested": {"b": np.bool_(True)}})
    m = json.loads((tmp_path / "m.json").read_text())
    assert m == {"x": 1.5, "nan": None, "arr": [0, 1, 2], "nested": {"b": True}}
    env = results.environment(["rakijax", "demo"])
    for k in ("jax", "jaxlib", "flax", "optax", "numpy", "h5py"):
        assert env["versions"][k]
    assert env["jax_devices"] and env["rakijax_version"] and env["command_line"] == ["rakijax", "demo"]


def test_figures_render(tmp_path):
    rng = np.random.default_rng(1)
    ref = np.abs(rng.standard_normal((16, 14)))
    sup = ref > 0.3
    g = 1 + rng.random((16, 14))
    figs = {
        "rec.png": plotting.reconstruction_figure(ref, {"GRAPPA": ref * 1.01, "RAKI": ref * 0.99}, support=sup,
                                                  metrics={"GRAPPA": {"nmse": 1e-3, "psnr": 30.0}}),
        "g.png": plotting.gfactor_figure(g, support=sup),
        "cmp.png": plotting.gfactor_comparison_figure({"GRAPPA": (g, g * 1.01), "RAKI": (g, g * 0.98)}, support=sup),
        "iks.png": plotting.image_kspace_figure(ref, ref + 1e-7, rel_error=1e-7),
        "loss.png": plotting.loss_figure({"a=0.5": np.geomspace(1, 1e-4, 50)}),
    }
    for name, fig in figs.items():
        assert isinstance(fig, Figure)
        results.save_figure(fig, tmp_path / name)
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the comparison figure shares one colour scale between analytic and Monte Carlo maps
    fig = plotting.gfactor_comparison_figure({"A": (g, g + 0.5)})
    ims = [ax.get_images()[0] for ax in fig.axes if ax.get_images()]
    assert ims[0].get_clim() == ims[1].get_clim()


_CHILD = r"""
import sys, time
from pathlib import Path
import numpy as np
from rakijax import results, runfolder
out, pause = Path(sys.argv[1]), float(sys.argv[2])
rng = np.random.default_rng(0)
ref = np.abs(rng.standard_normal((12, 10)))
arrays = dict(reference=ref, recon=ref, recon_kspace=np.ones((3, 12, 10), complex), mask=np.ones(12, bool))
print("ready", flush=True)
with runfolder.run_folder(out, overwrite=True) as stage:
    runfolder.write_json(stage / "metrics.json", {"nmse": 0.2})
    print("writing", flush=True)
    time.sleep(pause)
    results.write_run(stage, arrays=arrays, metrics={"nmse": 0.2}, config={"seed": 1})
print("done", flush=True)
"""


@pytest.mark.parametrize("when", ["ready", "writing", "done"])
def test_sigint_during_overwrite_keeps_old_or_complete_new_run(tmp_path, when):
    """SIGINT to a real process at several points of an --overwrite write: the folder holds the
    old run or the complete new one, never a mix, never nothing, and no staging folder is left."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "run"
    _write(out, metrics={"nmse": 0.1})
    (out / "notes.txt").write_text("keep me")
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(out), "2"], stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.strip() == when:
            break
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    names = {p.name for p in out.iterdir()}
    assert names == {"results.h5", "metrics.json", "config.json", "notes.txt"}
    nmse = json.loads((out / "metrics.json").read_text())["nmse"]
    cfg = json.loads((out / "config.json").read_text())
    assert (nmse, cfg["seed"]) in ((0.1, 0), (0.2, 1))  # old or new, consistently
    assert nmse == (0.2 if when == "done" else 0.1)
    assert (out / "notes.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
