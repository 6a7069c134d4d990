"""PR sampling of schedule spaces and tile-step features (no measurements: synthetic)."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("halide")
pytest.importorskip("sklearn")

from annpred.halide.pipelines import get  # noqa: E402
from annpred.halide.sampling import SWEEP_POINTS, detect_tile_steps, pr_plan  # noqa: E402
from annpred.halide.space import key_of  # noqa: E402


def test_pr_plan_is_deterministic_within_budget_and_sweeps_widths():
    p = get("blur")
    a, b = pr_plan(p, 60, seed=1), pr_plan(p, 60, seed=1)
    assert [(s, key_of(k)) for s, k, _ in a] == [(s, key_of(k)) for s, k, _ in b]
    assert len(a) == 60
    for sizes, sched, _ in a:
        assert p.space.check(sched) == sched and p.in_range(sizes)
    # the sweep part: one schedule at SWEEP_POINTS widths, one height
    first = a[:SWEEP_POINTS]
    assert len({key_of(s) for _, s, _ in first}) == 1
    assert len({sz["H"] for sz, _, _ in first}) == 1
    assert len({sz["W"] for sz, _, _ in first}) == SWEEP_POINTS
    # representatives: mostly distinct schedules (space-filling)
    rest = a[len(a) - 40:]
    assert len({key_of(s) for _, s, _ in rest}) >= 35
    assert pr_plan(get("matmul"), 30, seed=0)  # no tile knobs on W: representatives only


def _sweep_frame(p, step: bool):
    rows = []
    for sched in [s for s in p.space.sample(300, seed=0) if s["tx"] in (32, 64)][:3]:
        for i in range(SWEEP_POINTS):
            W = 512 + 16 * i
            area = (math.ceil(W / sched["tx"]) * sched["tx"] if step else W) * 256
            t = 1e-9 * area + 2e-6
            rows.append({"variant": key_of(sched), "W": W, "H": 256, "runtime_s": t,
                         "runtime_cv": 0.002, "pass": 1})
    return pd.DataFrame(rows)


def test_tile_steps_are_detected_only_where_the_runtime_steps():
    p = get("blur")
    found = detect_tile_steps(p, _sweep_frame(p, step=True))
    assert found["steps"] and any(f["on_tile_lattice"] for f in found["fits"])
    assert not detect_tile_steps(p, _sweep_frame(p, step=False))["steps"]
    assert not detect_tile_steps(get("matmul"), pd.DataFrame())["steps"]


def test_step_aware_complexity_rounds_the_area_up_to_whole_tiles():
    from annpred.spec import expr

    p = get("blur")
    stepped = p.complexity_for(steps=True)
    assert p.complexity_for(steps=False) == dict(p.complexity)
    s = {"tx": 64, "ty": 32, "vec": 8, "blur_x_at": "tile", "par": "y"}
    f = p.features({"W": 520, "H": 100}, s)
    val = expr.evaluate(stepped["pixels"], {k: np.array([v]) for k, v in f.items()})[0]
    assert val == pytest.approx(576 * 128)
    f = p.features({"W": 520, "H": 100}, {**s, "tx": 0})  # whole rows: no step in W
    val = expr.evaluate(stepped["pixels"], {k: np.array([v]) for k, v in f.items()})[0]
    assert val == pytest.approx(520 * 128)


def test_step_model_round_trips_and_plain_model_refuses_stepped_file(tmp_path):
    from annpred.errors import ModelFormatError
    from annpred.halide.select import save_schedule_model, train_model
    from annpred.halide.store import load_schedule_model

    p = get("blur")
    df = _sweep_frame(p, step=True)
    extra = df.assign(W=df["W"] * 2)
    model = train_model(p, pd.concat([df, extra]), steps=True, max_epochs=50, n_init=1)
    save_schedule_model(model, p, tmp_path / "blur.json")
    back = load_schedule_model(p, tmp_path / "blur.json")
    assert back.tile_steps_ is True
    d = json.loads((tmp_path / "blur.json").read_text())
    d["train"]["tile_steps"] = False  # claims plain features but carries stepped ones
    (tmp_path / "bad.json").write_text(json.dumps(d))
    with pytest.raises(ModelFormatError, match="retrain"):
        load_schedule_model(p, tmp_path / "bad.json")


def test_ragged_terms_mark_sizes_that_are_not_whole_tiles():
    from annpred.spec import expr

    p = get("blur")
    comp = p.complexity_for(ragged=True)
    assert {"ragged_W", "ragged_H"} <= set(comp) and p.complexity_for() == dict(p.complexity)
    s = {"tx": 64, "ty": 32, "vec": 8, "blur_x_at": "tile", "par": "y"}

    def ragged(sizes, sched):
        f = {k: np.array([v]) for k, v in p.features(sizes, sched).items()}
        return [expr.evaluate(comp[n], f)[0] for n in ("ragged_W", "ragged_H")]
    assert ragged({"W": 520, "H": 96}, s) == [1, 0]  # 520 = 8.1 tiles of 64; 96 = 3 x 32
    assert ragged({"W": 512, "H": 100}, s) == [0, 1]
    assert ragged({"W": 520, "H": 100}, {**s, "tx": 0}) == [0, 1]  # whole rows: never ragged
    # matmul has no tile knobs: no ragged terms, whatever is asked
    assert get("matmul").complexity_for(ragged=True) == dict(get("matmul").complexity)


def _ragged_frame(p, n_schedules, cost):
    """A profile of ``n_schedules`` schedules at 4 sizes each; partial tiles cost ``cost``x."""
    rng = np.random.default_rng(3)
    rows = []
    for i, s in enumerate(p.space.sample(n_schedules, seed=4)):
        for sz in p.sample_sizes(4, seed=100 + i):
            tx = sz["W"] if s["tx"] == 0 else min(s["tx"], sz["W"])
            t = 1e-9 * sz["W"] * sz["H"] * (cost if sz["W"] % tx else 1.0)
            t *= 1 + 0.01 * rng.standard_normal()
            rows.append({"variant": key_of(s), **sz, "runtime_s": t, "runtime_min_s": t,
                         "pass": 1})
    return pd.DataFrame(rows)


def test_the_complexity_form_is_chosen_over_held_out_schedules(tmp_path):
    from annpred.halide.select import choose_form, train_pipeline
    from annpred.halide.store import load_schedule_model

    p = get("blur")
    fast = {"max_epochs": 150, "patience": 30, "n_init": 1}
    df = _ragged_frame(p, 32, cost=3.0)
    steps, ragged, table = choose_form(p, df, **fast)
    assert len(table) == 4 and ragged is True
    best = min(r["cv_mape_pct"] for r in table)
    plain = [r for r in table if not r["tile_steps"] and not r["ragged"]][0]
    assert best < 0.5 * plain["cv_mape_pct"]  # the 3x partial-tile cost is what plain misses
    # fixed choices are not searched; too few schedules: the plain form, no search
    assert choose_form(p, df, steps=False, ragged=True, **fast)[:2] == (False, True)
    assert choose_form(p, _ragged_frame(p, 10, cost=3.0), **fast) == (False, False, [])
    # train_pipeline records the choice, and the model file round-trips with it
    data = tmp_path / "blur.csv"
    df.to_csv(data, index=False)
    model, path = train_pipeline(p, data, tmp_path / "m.json", **fast)
    back = load_schedule_model(p, path)
    assert back.ragged_ is True and len(json.loads(path.read_text())["train"]["form_cv"]) == 4


class _VecModel:
    """A stand-in schedule model: wider vectors and bigger tiles predicted faster."""

    def predict(self, X):
        return np.exp(-X["log2_vec"].to_numpy() - 0.1 * X["log2_tx"].to_numpy()) * 1e-3


def test_refine_plan_measures_the_predicted_fastest_schedules_not_yet_profiled():
    from annpred.halide.sampling import REFINE_MAX_REPEATS, REFINE_PER_SIZE, refine_plan

    p = get("blur")
    m = _VecModel()
    a = refine_plan(p, m, 20, seed=3)
    assert [(s, key_of(k)) for s, k, _ in a] == [
        (s, key_of(k)) for s, k, _ in refine_plan(p, m, 20, seed=3)]
    assert len(a) == 20 and all(pass_no == 1 for *_, pass_no in a)
    for sizes, sched, _ in a:
        assert p.space.check(sched) == sched and p.in_range(sizes)
    # at each size, the stand-in's fastest: the widest vectors only
    assert {s["vec"] for _, s, _ in a} == {max(p.space.knob("vec").choices)}
    per_size: dict = {}
    for sz, s, _ in a:
        per_size.setdefault(tuple(sz.values()), []).append(key_of(s))
    assert max(len(v) for v in per_size.values()) <= REFINE_PER_SIZE
    assert all(len(set(v)) == len(v) for v in per_size.values())
    counts = pd.Series([key_of(s) for _, s, _ in a]).value_counts()
    assert counts.max() <= REFINE_MAX_REPEATS
    # points the profile already holds are not measured again
    first = a[0]
    held = pd.DataFrame([{"variant": key_of(first[1]), **first[0]}])
    b = refine_plan(p, m, 20, held, seed=3)
    assert (key_of(first[1]), tuple(first[0].values())) not in {
        (key_of(s), tuple(sz.values())) for sz, s, _ in b}


def test_refine_needs_an_existing_profile(tmp_path):
    from annpred.cli.app import main
    from annpred.errors import DataError, ParameterError
    from annpred.halide.sampling import refine_profile

    with pytest.raises(DataError, match="does not exist"):
        refine_profile("blur", tmp_path / "none.csv", 16)
    assert main(["halide", "profile", "blur", "--sampler", "refine", "--budget", "8",
                 "--out", str(tmp_path / "none.csv")]) == 2
    assert not (tmp_path / "none.csv").exists()
    with pytest.raises(ParameterError, match="budget >= 1"):
        refine_profile("blur", tmp_path / "none.csv", 0)
    assert main(["halide", "profile", "blur", "--sampler", "refine", "--budget", "0",
                 "--out", str(tmp_path / "none.csv")]) == 2


def test_halide_profile_reports_the_points_its_time_limit_left(tmp_path):
    pytest.importorskip("halide")
    from annpred.halide.profile import profile_pipeline

    out = tmp_path / "blur.csv"
    df = profile_pipeline("blur", n_schedules=3, sizes_per_schedule=2, threads=1, out=out,
                          progress=False, max_seconds=0)  # stops after the first size
    planned = df.attrs["planned"]  # 6 points and the plan's repeat passes
    assert planned >= 6 and 0 < df.attrs["left"] < planned
    assert len(df) + df.attrs["left"] == planned
    df = profile_pipeline("blur", n_schedules=3, sizes_per_schedule=2, threads=1, out=out,
                          progress=False)
    assert len(df) == planned and df.attrs["left"] == 0


def test_halide_profile_does_not_resume_a_csv_of_another_thread_count(tmp_path):
    """Its resume key left threads out: a 1-thread run on a 2-thread CSV skipped those points
    and appended 1-thread rows, a mixed file."""
    from annpred.errors import DataError
    from annpred.halide.profile import profile_pipeline

    out = tmp_path / "blur.csv"
    profile_pipeline("blur", n_schedules=1, sizes_per_schedule=1, threads=2, out=out,
                     progress=False, noise_fraction=0)
    before = out.read_text()
    with pytest.raises(DataError, match="measured with 2 thread.*this run uses 1"):
        profile_pipeline("blur", n_schedules=1, sizes_per_schedule=1, threads=1, out=out,
                         progress=False, noise_fraction=0)
    assert out.read_text() == before
