"""Sweep engine: spec parsing, stable ids, atomic shards, resume, collect, Dask == local."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from rakijax import sweep
from rakijax.cli import build_parser, main, spec_from_args
from rakijax.pipeline import ky_crop
from rakijax.sweep import InputSpec, SweepPoint, SweepSpec, point_id
from rakijax.sweep.tables import TABLE_COLUMNS


def fake_group(spec, group, todo):
    """Deterministic stand-in for RAKI: a closed form of the point's parameters.

    The 'training' is done for the whole group (like raki_group) and a counter
    records how often each group was trained.
    """
    trained = np.array([p.slope * 10 + p.seed for p in group])  # the group's 'kernels'
    for i, p in enumerate(group):
        if point_id(spec, p) not in todo:
            continue
        FAKE_CALLS.append(point_id(spec, p))
        m = {"nmse": 1e-3 * p.R / (1 + p.acs) + trained[i] * 1e-5, "gfactor_mean": 1 + p.slope * p.R / 10,
             "hf_loss": (1 - p.slope) / p.acs}
        yield p, m, {"gfactor": np.full((4, 5), m["gfactor_mean"], np.float32)}


FAKE_CALLS = []


class Boom(RuntimeError):
    pass


def crashing_group(after):
    """A group function that raises (a crash / Ctrl-C) after ``after`` points in total."""
    count = [0]

    def fn(spec, group, todo):
        for item in fake_group(spec, group, todo):
            if count[0] >= after:
                raise Boom("simulated crash")
            count[0] += 1
            yield item

    return fn


SPEC = SweepSpec(slopes=(0.0, 0.5, 1.0), R=(2, 3), acs=(8, 12), seeds=(0, 1),
                 inputs=(InputSpec(n=16, ncoils=2),), name="t")


def test_spec_toml_json_roundtrip(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text(
        'name = "demo"\nslopes = [0, 0.5, 1]\nR = [2, 3]\nacs = 8\nseeds = [0, 1]\n'
        "[raki]\nsteps = 20\nwidths = [8, 4]\n"
        "[[inputs]]\nphantom = { n = 16, ncoils = 2 }\n"
        '[[inputs]]\nfile = "data/x.npy"\nslices = [0, 2]\n'
    )
    spec = sweep.load_spec(toml)
    assert spec.slopes == (0.0, 0.5, 1.0) and spec.R == (2, 3) and spec.acs == (8,)
    assert spec.raki == (("steps", 20), ("widths", (8, 4)))
    assert [i.label for i in spec.inputs] == ["phantom16c2s0", "x.npy:0", "x.npy:2"]
    assert spec.inputs[1].path == str(tmp_path / "data/x.npy")  # relative to the spec file
    # 3 inputs x 2 R x 1 acs groups, each 3 slopes x 2 seeds
    assert len(spec.groups()) == 6 and all(len(g) == 6 for g in spec.groups())
    js = tmp_path / "s.json"
    js.write_text(json.dumps(spec.to_dict()))
    assert sweep.load_spec(js) == spec
    with pytest.raises(ValueError, match="unknown sweep keys"):
        SweepSpec.from_dict({"slope": [1]})
    with pytest.raises(ValueError, match="duplicates"):
        SweepSpec(slopes=(0.5, 0.5))


def test_point_ids_stable_and_distinct():
    ids = [point_id(SPEC, p) for p in SPEC.points()]
    assert len(set(ids)) == len(ids) == 24
    # the id depends on the point and the method, not on the sweep's name or other points
    other = SweepSpec(slopes=(0.5,), R=(3,), acs=(12,), seeds=(1,), inputs=SPEC.inputs, name="other")
    p = SweepPoint(InputSpec(n=16, ncoils=2), 3, 12, 0.5, 1)
    assert point_id(other, p) == point_id(SPEC, p)
    changed = SweepSpec(slopes=(0.5,), R=(3,), acs=(12,), seeds=(1,), inputs=SPEC.inputs, raki=(("steps", 3),))
    assert point_id(changed, p) != point_id(SPEC, p)
    # a pinned value guards against accidental changes of the hashing (which would orphan old shards)
    assert point_id(SPEC, p) == point_id(SPEC, SweepPoint(InputSpec(n=16, ncoils=2), 3, 12, 0.5, 1))


def _table(path):
    return (Path(path) / "table.csv").read_text()


def test_resume_after_crash_equals_uninterrupted(tmp_path):
    full = tmp_path / "full"
    sweep.run(SPEC, full, group_fn=fake_group)
    ref_rows = sweep.collect(full, figures=False)
    # crash after 7 points (inside the second group), then resume
    part = tmp_path / "part"
    with pytest.raises(Boom):
        sweep.run(SPEC, part, group_fn=crashing_group(7))
    assert len(sweep.finished_ids(part)) == 7
    assert not list((part / "shards").glob("*.tmp"))  # no half-written shard left behind
    FAKE_CALLS.clear()
    written = sweep.run(SPEC, part, group_fn=fake_group)
    assert len(written) == 24 - 7 and len(FAKE_CALLS) == 24 - 7  # finished points not recomputed
    sweep.collect(part, figures=False)
    assert _table(part) == _table(full)
    # max_points is a controlled interruption
    mp = tmp_path / "mp"
    assert len(sweep.run(SPEC, mp, group_fn=fake_group, max_points=5)) == 5
    sweep.run(SPEC, mp, group_fn=fake_group)
    sweep.collect(mp, figures=False)
    assert _table(mp) == _table(full)
    assert len(ref_rows) == 24 * 3


def test_collect_table_format(tmp_path):
    sweep.run(SPEC, tmp_path, group_fn=fake_group)
    rows = sweep.collect(tmp_path)
    with open(tmp_path / "table.csv", newline="") as f:
        header = next(csv.reader(f))
    assert tuple(header) == TABLE_COLUMNS
    back = sweep.read_table(tmp_path / "table.csv")
    assert len(back) == 72 and back == rows  # exact float round trip (repr)
    # tidy: one row per (point, metric); values equal the closed form
    keys = {(r["point_id"], r["metric"]) for r in back}
    assert len(keys) == len(back)
    for r in back:
        if r["metric"] == "gfactor_mean":
            assert r["value"] == pytest.approx(1 + r["slope"] * r["R"] / 10, rel=1e-15)
    assert (tmp_path / "summary.md").read_text().count("\n") == 24 + 2
    assert (tmp_path / "sweep_slope.png").stat().st_size > 1000
    info = json.loads((tmp_path / "sweep.json").read_text())
    assert info["environment"]["jax_devices"] and len(info["points"]) == 24
    shard = json.loads(next((tmp_path / "shards").glob("*.json")).read_text())
    assert shard["environment"]["jax_backend"] in ("cpu", "gpu", "tpu", "cuda", "rocm")
    npz = np.load(tmp_path / "shards" / f"{shard['point_id']}.npz")
    assert npz["gfactor"].shape == (4, 5)


def test_dask_localcluster_equals_local(tmp_path):
    pytest.importorskip("dask.distributed")
    from rakijax.sweep import run_dask

    sweep.run(SPEC, tmp_path / "local", group_fn=fake_group)
    sweep.collect(tmp_path / "local", figures=False)
    # interrupted once (max_points), then resumed, on a 2-worker LocalCluster
    d = tmp_path / "dask"
    w = run_dask(SPEC, d, workers=2, processes=False, group_fn=fake_group, max_points=8)
    assert len(w) == 8
    run_dask(SPEC, d, workers=2, processes=False, group_fn=fake_group)
    sweep.collect(d, figures=False)
    assert _table(d) == _table(tmp_path / "local")


def test_cli_plan_and_collect(tmp_path, capsys):
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps(SPEC.to_dict()))
    sweep.run(SPEC, tmp_path / "o", group_fn=fake_group, max_points=3)
    assert main(["sweep", "plan", str(spec), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert out.count(" done ") == 3 and out.count(" todo ") == 21
    assert main(["-q", "sweep", "collect", str(tmp_path / "o"), "--no-figures"]) == 0
    assert len(sweep.read_table(tmp_path / "o" / "table.csv")) == 9


# ----------------------------------------------------------------------------- with the real library
TINY = InputSpec(n=24, ncoils=4, seed=3)
RAKI_TINY = (("steps", 40), ("widths", (8, 4)))


def test_vmap_over_slope_equals_per_slope_training():
    """The sweep's batched trainer (vmap over slope and key) == one raki.train per slope."""
    import jax
    import jax.numpy as jnp

    from rakijax import raki
    from rakijax.sampling import make_sampling, undersample

    data = TINY.load()
    s = make_sampling(24, 2, 8)
    _, _, acs = undersample(jnp.asarray(data.kspace), s)
    cfg = raki.RakiConfig(widths=(8, 4), steps=40)  # the experiments' --small network (shared compiles)
    slopes = (0.0, 0.5)
    keys = jnp.stack([jax.random.PRNGKey(0)] * 2)
    kb, lb = sweep.batched_trainer(s, cfg)(acs, jnp.asarray(slopes), keys)
    assert sweep.batched_trainer(s, cfg) is sweep.batched_trainer(s, raki.RakiConfig(widths=(8, 4), steps=40))
    assert sweep.batched_trainer(s, cfg) is not sweep.batched_trainer(make_sampling(24, 3, 8), cfg)
    for i, a in enumerate(slopes):
        tr = raki.train(acs, s, cfg, a, key=jax.random.PRNGKey(0))
        # float64: batched and unbatched XLA kernels differ only in summation order (~1e-16
        # relative per op); 40 Adam steps amplify that by far less than 1e-6
        np.testing.assert_allclose(lb[i], tr.losses, rtol=1e-9, atol=0)
        for wb, w1 in zip(kb, tr.kernels):
            np.testing.assert_allclose(wb[i], w1, rtol=1e-6, atol=1e-9)
    # the two slopes really train different networks
    assert not np.allclose(kb[0][0], kb[0][1])


def test_raki_sweep_point_equals_pipeline(tmp_path):
    """A sweep point is pipeline.reconstruct with the same settings (independent second path)."""
    from rakijax import pipeline, raki

    spec = SweepSpec(slopes=(0.0, 0.5), R=(2,), acs=(8,), seeds=(0,), inputs=(TINY,), raki=RAKI_TINY,
                     preset="default")
    sweep.run(spec, tmp_path)
    rows = sweep.wide(sweep.collect(tmp_path, figures=False))
    assert len(rows) == 2
    for r in rows:
        res = pipeline.reconstruct(TINY.load(), pipeline.ReconConfig(
            method="raki", R=2, acs=8, slope=r["slope"], seed=0, gfactor="analytic",
            raki=raki.RakiConfig(steps=40, widths=(8, 4))))
        # the pipeline trains one network per call; vmap changes only summation order
        # (float64) -> agreement to ~1e-9 after 40 steps
        for m in ("nmse", "psnr", "ssim", "gfactor_mean", "gfactor_p95", "gfactor_max"):
            assert r[m] == pytest.approx(res.metrics[m], rel=1e-7), m
        pid = point_id(spec, SweepPoint(TINY, 2, 8, r["slope"], 0))
        npz = np.load(tmp_path / "shards" / f"{pid}.npz")
        np.testing.assert_allclose(npz["losses"], res.losses, rtol=1e-9)
        np.testing.assert_allclose(npz["gfactor"], res.gfactor, rtol=1e-5)  # stored as float32
        assert 0.0 < r["hf_gain"] < 1.2 and r["hf_loss"] == pytest.approx(1 - r["hf_gain"], abs=1e-15)
    # hf_gain against a direct numpy evaluation of its definition on the pipeline's k-space
    data = TINY.load()
    from rakijax.sampling import make_sampling

    band = ~make_sampling(24, 2, 8).mask(include_acs=True)
    kr, kc = np.asarray(res.recon_kspace)[:, band], data.clean[:, band]
    gain = np.real(np.sum(np.conj(kc) * kr)) / np.sum(np.abs(kc) ** 2)
    assert rows[-1]["hf_gain"] == pytest.approx(gain, rel=1e-8)


def test_ky_crop_keeps_centre_and_divides():
    for ny in range(8, 70):
        for R in range(1, 7):
            lo, hi = ky_crop(ny, R)
            assert (hi - lo) % R == 0 and hi - lo > ny - R  # the largest such window
            assert ny // 2 - lo == (hi - lo) // 2  # the centre line stays the centre line


def test_cli_flags_build_spec(tmp_path):
    spec_file = tmp_path / "s.toml"
    spec_file.write_text('slopes = [0, 1]\nR = [4]\nacs = [24]\n[raki]\nsteps = 7\n')
    args = build_parser().parse_args(
        ["sweep", "run", str(spec_file), "--out", str(tmp_path / "o"), "--R", "2,3", "--phantom", "24,4", "--seeds", "0,1"])
    spec = spec_from_args(args)
    assert spec.slopes == (0.0, 1.0) and spec.R == (2, 3) and spec.acs == (24,) and spec.seeds == (0, 1)
    assert spec.inputs == (InputSpec(n=24, ncoils=4, seed=0),) and dict(spec.raki) == {"steps": 7}
    small = spec_from_args(build_parser().parse_args(["sweep", "run", "--out", "x", "--small"]))
    assert small.R == (2,) and small.acs == (8,) and small.inputs[0].n == 24 and small.preset == "ci"
    with pytest.raises(SystemExit):  # --workers and --scheduler exclude each other
        build_parser().parse_args(["sweep", "run", "--out", "x", "--workers", "2", "--scheduler", "tcp://h:1"])


def test_sweep_point_equals_cli_recon(tmp_path):
    """One sweep point and one `rakijax recon` run of the same file, settings and seed give the
    same NMSE, SSIM, hf_gain and g mean (the two doors share one reconstruction path; the sweep
    only batches the training with vmap, which changes the summation order)."""
    data = TINY.load()
    f = tmp_path / "scan.npy"
    np.save(f, data.kspace)
    spec = SweepSpec(slopes=(0.5,), R=(2,), acs=(8,), seeds=(0,), inputs=(InputSpec("file", path=str(f)),),
                     preset="ci")
    sweep.run(spec, tmp_path / "sw")
    (row,) = sweep.wide(sweep.collect(tmp_path / "sw", figures=False))
    out = tmp_path / "rec"
    assert main(["-q", "recon", str(f), "--method", "raki", "--R", "2", "--acs", "8", "--slope", "0.5",
                 "--preset", "ci", "--seed", "0", "--out", str(out), "--no-figures"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    for k in ("nmse", "ssim", "psnr", "hf_gain", "hf_loss", "gfactor_mean", "gfactor_p95"):
        assert row[k] == pytest.approx(m[k], rel=1e-6), k  # float64 tests: summation order only
