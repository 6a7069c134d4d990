"""The runtime's Python API refuses bad input where it is given and sees what changed:
``Predictor.predict`` checks a point as ``choose`` does, reloaded model directories and
replaced kernels reach later decisions, ``set_default`` is checked when it is called,
candidates may be any iterable, ``dispatch`` runs only what this machine has, and a
memoised ``Choice`` cannot be changed through its mappings (audit s36, runtime findings)."""
from __future__ import annotations

import copy
import inspect
import json

import numpy as np
import pytest

import annpred
from annpred import select
from annpred.errors import ParameterError, UnknownKernelError
from annpred.model.layout import model_path, shipped_root
from annpred.runtime import caches
from annpred.runtime import choice as _choice
from annpred.runtime.predictor import Predictor, load_models
from annpred.select import Candidate, Feedback, choose, dispatch
from annpred.spec import hardware as hw
from annpred.spec.catalog import get_kernel, register_kernel
from annpred.spec.kernel import Kernel, Param, Variant

from synthetic_models import load_toy_kernel, make_toy_models

T1 = hw.cpu_id(1)
NOT_HERE = hw.cpu_id(hw.cpu_count() + 1)  # more threads than this machine has


def _load_toy():
    return load_toy_kernel("toy_kernel_for_api")


@pytest.fixture(scope="module")
def toy_models(tmp_path_factory):
    _load_toy()
    root = tmp_path_factory.mktemp("api_toy_models")
    make_toy_models(root, {T1: 1}, variants=("cumsum", "accumulate"))
    return root


@pytest.fixture(autouse=True)
def _clean_config():
    yield
    _choice._DEFAULTS.clear()
    select.set_policy("strict")


def _copy_model(src, dst, variant, kernel="toy", as_variant=None):
    """Copy the toy model of ``variant`` into ``dst`` as ``kernel``/``as_variant``."""
    meta = json.loads(model_path(src, "toy", variant, T1).read_text())
    meta["kernel"], meta["variant"] = kernel, as_variant or variant
    out = model_path(dst, kernel, meta["variant"], T1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(meta))
    return out


# -- 1: Predictor.predict checks the point as choose does ---------------------------------

def test_predict_checks_params_as_choose_does(toy_models):
    pred = load_models(toy_models)
    assert pred.predict("toy", "cumsum", {"n": 100}, T1).seconds > 0
    for bad, match in [({"n": 0}, "n=0 is invalid"), ({"n": 100.5}, "not an integer"),
                       ({"n": 100, "z": 1}, "unknown parameter"), ({}, "missing parameter"),
                       ([1, 2], "params must be a mapping")]:
        with pytest.raises(ParameterError, match=match):
            pred.predict("toy", "cumsum", bad, T1)
        with pytest.raises(ParameterError, match=match):  # the same words as choose
            choose("toy", bad, models=toy_models)


def test_predict_of_a_kernel_known_only_from_its_models(toy_models, tmp_path):
    _copy_model(toy_models, tmp_path, "cumsum", kernel="toyonly")
    pred = Predictor([tmp_path])
    assert pred.predict("toyonly", "cumsum", {"n": 100}, T1).seconds > 0
    with pytest.raises(ParameterError, match="unknown parameter.*z"):
        pred.predict("toyonly", "cumsum", {"n": 100, "z": 1}, T1)
    with pytest.raises(ParameterError, match="parameter n"):
        pred.predict("toyonly", "cumsum", {"n": "many"}, T1)
    with pytest.raises(UnknownKernelError, match="unknown kernel 'nokernel'.*known kernels"):
        pred.predict("nokernel", "cumsum", {"n": 100})


def test_predict_many_names_a_non_numeric_column(toy_models):
    pred = load_models(toy_models)
    with pytest.raises(ParameterError, match="column n"):
        pred.predict_many("toy", "cumsum", {"n": ["a", "b"]}, T1)
    with pytest.raises(ParameterError, match="columns must map"):
        pred.predict_many("toy", "cumsum", [1, 2], T1)


# -- 2: reloaded model directories reach choose ---------------------------------------------

def test_reload_makes_choose_see_models_added_later(toy_models, tmp_path):
    root = tmp_path / "models"
    _copy_model(toy_models, root, "cumsum")
    first = choose("toy", {"n": 100}, models=str(root))
    assert {c.variant for c in first.predicted} == {"cumsum"}
    _copy_model(toy_models, root, "accumulate")
    assert load_models(root, reload=True).combinations("toy") == [
        ("toy", "accumulate", T1), ("toy", "cumsum", T1)]
    again = choose("toy", {"n": 100}, models=str(root))
    assert {c.variant for c in again.predicted} == {"cumsum", "accumulate"}


def test_reload_of_the_default_roots_reaches_the_default_path(toy_models, tmp_path,
                                                             monkeypatch):
    user = tmp_path / "user"
    _copy_model(toy_models, user, "cumsum")
    monkeypatch.setenv("ANNPRED_MODELS", str(user))
    caches.clear()
    try:
        assert {c.variant for c in choose("toy", {"n": 100}).predicted} == {"cumsum"}
        _copy_model(toy_models, user, "accumulate")
        load_models(reload=True)
        assert {c.variant for c in choose("toy", {"n": 100}).predicted} == {
            "cumsum", "accumulate"}
    finally:
        caches.clear()


# -- 3: a replaced kernel reaches choose and dispatch ----------------------------------------

def _axpy(two_operands: bool, variants=("cumsum", "accumulate")) -> Kernel:
    if two_operands:
        def infer(x, y):
            """(x (n,), y (n,))"""
            return {"n": int(x.shape[0])}

        def make(p, rng):
            return {"x": rng.random(p["n"]), "y": rng.random(p["n"])}
        run = (lambda s: s["x"] + s["y"])
    else:
        def infer(x):
            """(x (n,))"""
            return {"n": int(x.shape[0])}

        def make(p, rng):
            return {"x": rng.random(p["n"])}
        run = (lambda s: 2 * s["x"])
    return Kernel(name="apitoy", params=[Param("n", "int", 16, 4096, "log")],
                  complexity={"work": "n"}, make_inputs=make, reference=lambda i, p: None,
                  variants=[Variant(v, run=run) for v in variants], infer_params=infer)


def test_a_replaced_kernel_is_used_by_later_decisions(toy_models, tmp_path):
    for v in ("cumsum", "accumulate"):
        _copy_model(toy_models, tmp_path, v, kernel="apitoy")
    register_kernel(_axpy(False), replace=True)
    x = np.ones(100)
    c = choose("apitoy", {"n": 100}, models=tmp_path)
    assert {c.variant for c in c.predicted} == {"cumsum", "accumulate"}
    np.testing.assert_allclose(dispatch("apitoy", x, models=tmp_path,
                                        candidates=[f"cumsum@{T1}"]), 2 * x)
    register_kernel(_axpy(True, variants=("cumsum",)), replace=True)
    c = choose("apitoy", {"n": 100}, models=tmp_path)
    assert {c.variant for c in c.predicted} == {"cumsum"}
    with pytest.raises(UnknownKernelError, match="no variant 'accumulate'"):
        choose("apitoy", {"n": 100}, models=tmp_path, candidates=[f"accumulate@{T1}"])
    # the new operands (signature and input specs are not the old kernel's)
    np.testing.assert_allclose(dispatch("apitoy", x, x, models=tmp_path,
                                        candidates=[f"cumsum@{T1}"]), 2 * x)
    select.clear_caches()  # still works, and forgets as before
    assert {c.variant for c in choose("apitoy", {"n": 100}, models=tmp_path).predicted} == {
        "cumsum"}


def test_register_kernel_refuses_bad_input_with_annpred_errors():
    with pytest.raises(ParameterError, match="kernel must be an annpred.Kernel"):
        register_kernel("axpy")
    k = _axpy(False)
    bad = Kernel(name="../evil", params=k.params, complexity=k.complexity,
                 make_inputs=k.make_inputs, reference=k.reference, variants=k.variants)
    with pytest.raises(ParameterError, match="cannot be used in a file name"):
        register_kernel(bad)
    with pytest.raises(ParameterError, match="already registered"):
        register_kernel(Kernel(name="matmul", params=k.params, complexity=k.complexity,
                               make_inputs=k.make_inputs, reference=k.reference,
                               variants=k.variants))
    assert "../evil" not in annpred.spec.catalog.kernels()


# -- 4: set_default is checked when it is called ----------------------------------------------

def test_set_default_refuses_unknown_names_at_once(toy_models):
    with pytest.raises(UnknownKernelError, match="set_default: unknown kernel 'toyy'"):
        select.set_default("toyy", "cumsum")
    with pytest.raises(UnknownKernelError, match="set_default: kernel toy has no variant 'cuda'"):
        select.set_default("toy", "cuda", T1)
    with pytest.raises(ParameterError, match="hardware name '../etc'"):
        select.set_default("toy", "cumsum", "../etc")
    with pytest.raises(ParameterError, match="variant name"):
        select.set_default("toy", 3)
    assert _choice._DEFAULTS == {}  # nothing was configured
    c = choose("toy", {"n": 100}, models=toy_models)  # decisions of toy still work
    assert not c.fallback
    select.set_default("toy", "accumulate")
    assert choose("toy", {"n": 100000}, models=toy_models).variant == "accumulate"
    select.set_default("toy", None)
    assert "toy" not in _choice._DEFAULTS


def test_a_configured_default_that_does_not_fit_names_set_default(toy_models):
    select.set_default("toy", "cumsum", NOT_HERE)  # a valid name, not usable here
    with pytest.raises(ParameterError, match=r"set_default\('toy', 'cumsum', .*neither a "
                                             "candidate's nor present"):
        choose("toy", {"n": 100}, models=toy_models)
    # among candidates on that hardware (planning for another machine) it is a fine fallback
    c = choose("toy", {"n": 100}, models=toy_models,
               candidates=[f"cumsum@{NOT_HERE}", f"accumulate@{NOT_HERE}"])
    assert c.fallback and c.best == ("cumsum", NOT_HERE)


# -- 6: any iterable of candidates ------------------------------------------------------------

def test_candidates_may_be_any_iterable(toy_models):
    want = choose("toy", {"n": 100}, models=toy_models,
                  candidates=[f"cumsum@{T1}", f"accumulate@{T1}"])
    for memo in (True, False):
        gen = (c for c in [f"cumsum@{T1}", f"accumulate@{T1}"])
        got = choose("toy", {"n": 100}, models=toy_models, candidates=gen, memo=memo)
        assert got == want
    got = choose("toy", {"n": 100}, models=toy_models,
                 candidates=iter([("cumsum", T1), Candidate("accumulate", T1)]))
    assert got.best == want.best
    with pytest.raises(ParameterError, match="candidates must be an iterable"):
        choose("toy", {"n": 100}, models=toy_models, candidates=42)
    with pytest.raises(ParameterError, match="candidates is empty"):
        choose("toy", {"n": 100}, models=toy_models, candidates=iter([]))


def test_dispatch_takes_a_generator_of_candidates():
    A = np.ones((8, 4), np.float32)
    B = np.ones((4, 3), np.float32)
    C, c = dispatch("matmul", A, B, models=str(shipped_root()),
                    candidates=(x for x in [f"numpy@{T1}"]), return_choice=True)
    np.testing.assert_allclose(C, A @ B)
    assert c.best == ("numpy", T1)


# -- 7: dispatch runs only what this machine has --------------------------------------------

def test_dispatch_refuses_candidates_this_machine_cannot_run(monkeypatch):
    import annpred.runtime.dispatch as D

    limits = []
    monkeypatch.setattr(D, "shared_limit_threads", lambda n: limits.append(n))
    A = np.ones((8, 4), np.float32)
    B = np.ones((4, 3), np.float32)
    for cands in ([f"numpy@{NOT_HERE}"], ["torch_cuda@cuda-no-such-gpu"],
                  [f"numpy@{T1}", f"torch@{NOT_HERE}"]):
        with pytest.raises(ParameterError, match="not on this machine"):
            dispatch("matmul", A, B, models=str(shipped_root()), candidates=cands)
    assert limits == []  # nothing ran
    # choose may still plan for another machine
    c = choose("matmul", {"m": 8, "n": 3, "k": 4, "da": 1, "db": 1},
               models=str(shipped_root()), candidates=[f"numpy@{NOT_HERE}"])
    assert c.fallback and c.hardware == NOT_HERE


# -- 12: bad runtime input names the argument -------------------------------------------------

def test_bad_runtime_arguments_raise_annpred_errors(toy_models):
    A = np.ones((8, 4), np.float32)
    B = np.ones((4, 3), np.float32)
    with pytest.raises(UnknownKernelError, match="kernel must be a name or a Kernel"):
        dispatch(None, A, B)
    with pytest.raises(ParameterError, match="models must be a model directory.*got 42"):
        choose("toy", {"n": 100}, models=42)
    with pytest.raises(ParameterError, match="models must be"):
        choose("toy", {"n": 100}, models=[toy_models, 7])
    with pytest.raises(ParameterError, match=r"B \(4,\).*expected operands \(A \(m x k\)"):
        dispatch("matmul", A, B[:, 0])
    with pytest.raises(ParameterError, match=r"x \(1, 3, 8, 8\).*expected operands \(x \(c, n"):
        dispatch("maxpool", np.ones((1, 3, 8, 8), np.float32), w=3)
    for bad in ("x", -1, float("nan"), None):
        with pytest.raises(ParameterError, match="threshold"):
            Feedback(threshold=bad)
    with pytest.raises(ParameterError, match="threshold"):
        Feedback().off(threshold="x")
    assert Feedback(threshold=0).threshold == 0


# -- 13: a memoised Choice is read-only -------------------------------------------------------

def test_a_memoised_choice_cannot_be_changed_through_its_mappings(toy_models):
    a = choose("toy", {"n": 321}, models=toy_models)
    assert choose("toy", {"n": 321}, models=toy_models) is a
    before = a.to_dict()
    for mapping in (a.params, a.predicted, a.in_range, a.machine_match, a.adapted,
                    a.transfer_s):
        with pytest.raises(TypeError):
            mapping["x"] = 1
        assert not hasattr(mapping, "clear")
    b = choose("toy", {"n": 321}, models=toy_models)
    assert b.to_dict() == before and dict(b.params) == {"n": 321}
    assert json.loads(json.dumps(b.to_dict())) == json.loads(json.dumps(before))
    assert b == choose("toy", {"n": 321}, models=toy_models, memo=False)
    assert "params={'n': 321}" in repr(b) and "mappingproxy" not in repr(b)
    assert copy.deepcopy(b) == b
    d = dict(b.params)
    d["n"] = 7  # a copy is the caller's to change
    assert b.params["n"] == 321


# -- 10: the runtime's public names are documented --------------------------------------------

def test_runtime_public_names_have_docstrings():
    for f in (Predictor.predict, Predictor.get, Predictor.kernels, Predictor.combinations,
              Predictor.hardware_for, register_kernel, get_kernel):
        assert (inspect.getdoc(f) or "").strip(), f.__qualname__
    assert not inspect.getdoc(Kernel).startswith("Kernel(")
    doc = inspect.getdoc(choose)
    assert "annpred.predict.Predictor" not in doc and "annpred.runtime.predictor.Predictor" in doc
    assert "runnable here" in inspect.getdoc(dispatch)
