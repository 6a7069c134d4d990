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
