"""Mutation-found gaps in the decision's configuration and its Choice (annpred.runtime.choice,
annpred.runtime.choose): bounds of the settings, the ranking and interval order, checked
on values written here."""
import math
from types import SimpleNamespace

import pytest

from annpred.errors import ParameterError
from annpred.runtime import choice as _choice
from annpred.runtime.choice import Candidate, Choice
from annpred.select import set_margin, set_unsure


@pytest.fixture
def restore_config():
    saved = dict(_choice._CONFIG)
    yield
    set_margin(saved["margin"])
    set_unsure(overlap=saved["unsure_overlap"], action=saved["on_unsure"])


@pytest.mark.parametrize("margin", [1.0, 1.5, -0.01, float("nan")])
def test_margin_outside_zero_to_one_is_refused(restore_config, margin):
    before = _choice._CONFIG["margin"]
    with pytest.raises(ParameterError, match=r"margin must be in \[0, 1\)"):
        set_margin(margin)
    assert _choice._CONFIG["margin"] == before


@pytest.mark.parametrize("margin", [0.0, 0.5, 0.999])
def test_margin_inside_zero_to_one_is_taken(restore_config, margin):
    set_margin(margin)
    assert _choice._CONFIG["margin"] == margin


@pytest.mark.parametrize("overlap", [1.01, -0.5, float("nan")])
def test_unsure_overlap_outside_zero_to_one_is_refused(restore_config, overlap):
    before = _choice._CONFIG["unsure_overlap"]
    with pytest.raises(ParameterError, match=r"overlap must be in \[0, 1\]"):
        set_unsure(overlap=overlap)
    assert _choice._CONFIG["unsure_overlap"] == before


@pytest.mark.parametrize("overlap", [0.0, 1.0])
def test_unsure_overlap_bounds_are_taken(restore_config, overlap):
    set_unsure(overlap=overlap)
    assert _choice._CONFIG["unsure_overlap"] == overlap


A, B, C, D = (Candidate(v, "cpu-x-t1") for v in "abcd")


def _choice_of(predicted, plan=None):
    return Choice("k", {"n": 1}, "b", "cpu-x-t1", predicted, {c: True for c in predicted},
                  _plan=plan)


def test_ranking_is_fastest_first_and_candidates_without_a_model_last():
    ch = _choice_of({A: None, B: 2e-3, C: None, D: 1e-3})
    ranked = ch.ranking()
    assert [c for c, _, _ in ranked][:2] == [D, B]
    assert {c for c, _, _ in ranked[2:]} == {A, C}
    assert [s for _, s, _ in ranked] == [1e-3, 2e-3, None, None]


def test_intervals_are_low_then_high_seconds_from_the_log_bounds():
    plan = SimpleNamespace(iv=[(-0.5, 0.25), None], model_list=[], models=[], cands=[A, B])
    ch = _choice_of({A: 2.0, B: 3.0}, plan)
    lo, hi = ch.intervals[A]
    assert lo == pytest.approx(2.0 * math.exp(-0.5)) and hi == pytest.approx(2.0 * math.exp(0.25))
    assert lo < 2.0 < hi
    assert ch.intervals[B] is None


# -- decisions on tiny toy models ---------------------------------------------------------

@pytest.fixture(scope="module")
def toy_models(tmp_path_factory):
    from annpred.spec import hardware as hw
    from synthetic_models import load_toy_kernel, make_toy_models

    load_toy_kernel("toy_kernel_for_strength")
    root = tmp_path_factory.mktemp("strength_toy")
    make_toy_models(root, {hw.cpu_id(1): 1}, n=40)
    return root


@pytest.mark.parametrize("n,policy", [(64, "strict"), (3000, "strict"), (10**6, "strict"),
                                      (10**6, "extrapolate")])
def test_predicted_best_is_the_fastest_prediction_trusted_or_not(toy_models, n, policy):
    from annpred.select import choose

    c = choose("toy", {"n": n}, models=toy_models, policy=policy, memo=False)
    usable = {k: s for k, s in c.predicted.items() if s is not None}
    assert len(usable) == 3
    assert c.predicted_best == min(usable, key=usable.get)
    assert c.predicted_best != max(usable, key=usable.get)
    if n == 10**6 and policy == "strict":  # beyond the training range: the fallback
        assert c.fallback and not c.all_in_range
    else:
        assert not c.fallback and c.best == c.predicted_best


def test_duplicate_candidates_are_refused(toy_models):
    from annpred.select import choose
    from annpred.spec import hardware as hw

    c = f"cumsum@{hw.cpu_id(1)}"
    with pytest.raises(ParameterError, match="candidates hold duplicates"):
        choose("toy", {"n": 64}, candidates=[c, c], models=toy_models, memo=False)


def test_overlap_one_is_never_unsure_even_for_nested_intervals(restore_config):
    """The share of overlap is at most 1: overlap=1 switches 'unsure' off."""
    from annpred.runtime.choose import _unsure

    plan = SimpleNamespace(iv=[(-1.0, 1.0), (-0.5, 0.5)], cands=[A, B])
    set_unsure(overlap=1.0)
    assert _unsure(plan, [1.0, 1.0], 0, 1)[0] is False
    set_unsure(overlap=0.99)
    assert _unsure(plan, [1.0, 1.0], 0, 1)[0] is True


def _variant_copy(src_root, dst_root, variant, edit):
    """The toy ``cumsum`` model saved under ``dst_root`` as ``variant``, changed by ``edit``."""
    import json

    from annpred.model.layout import model_path
    from annpred.spec import hardware as hw

    t1 = hw.cpu_id(1)
    d = json.loads(model_path(src_root, "toy", "cumsum", t1).read_text())
    d["variant"] = variant
    d["interval"] = {"nominal": 0.9, "lo": -0.2, "hi": 0.2, "n": 40, "method": "test"}
    edit(d)
    out = model_path(dst_root, "toy", variant, t1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(d))
    return f"{variant}@{t1}"


def test_a_model_predicting_exactly_zero_seconds_is_never_chosen(toy_models, tmp_path):
    """0 s is no runtime (an identity-target network can predict it): the candidate is
    passed over like a negative or non-finite one, not taken as the fastest."""
    from annpred.select import choose

    def zero(d):  # identity target, zero output layer and skip: exactly 0.0 s everywhere
        d["target_transform"] = "identity"
        d["target_scaler"] = {"mean": 0.0, "std": 1.0}
        last = d["layers"][-1]
        last["weight"] = [[0.0] * len(last["weight"][0])]
        last["bias"] = [0.0]
        if d.get("skip"):
            d["skip"]["weight"] = [[0.0] * len(d["skip"]["weight"][0])]

    good = _variant_copy(toy_models, tmp_path, "cumsum", lambda d: None)
    nil = _variant_copy(toy_models, tmp_path, "sleepy", zero)
    for policy in ("trusted", "extrapolate"):
        c = choose("toy", {"n": 500}, models=tmp_path, candidates=[nil, good], policy=policy,
                   memo=False)
        assert str(c.best) == good and not c.fallback
        assert str(c.predicted_best) == good
    s = choose("toy", {"n": 500}, models=tmp_path, candidates=[nil, good], memo=False)
    assert s.fallback and "predicts no usable runtime" in s.reason  # strict: all or nothing


def test_an_out_of_range_runner_up_does_not_make_a_trusted_choice_unsure(toy_models,
                                                                        tmp_path):
    """Only candidates the policy could take are weighed against the pick: a runner-up
    beyond its training range (policy 'trusted') does not make the choice unsure, even with
    an identical prediction and interval; with 'extrapolate' it does."""
    from annpred.select import choose

    def far(d):
        d["train"]["range"] = {"n": [1e6, 2e6]}

    good = _variant_copy(toy_models, tmp_path, "cumsum", lambda d: None)
    other = _variant_copy(toy_models, tmp_path, "accumulate", far)
    c = choose("toy", {"n": 500}, models=tmp_path, candidates=[good, other], policy="trusted",
               memo=False)
    assert str(c.best) == good and not c.fallback and not c.unsure
    e = choose("toy", {"n": 500}, models=tmp_path, candidates=[good, other],
               policy="extrapolate", memo=False)
    assert e.unsure and str(e.best) == good
