"""The decision API in a multi-threaded process: ``choose``, ``predict`` and ``dispatch``
called from many threads while others reload the models or change a default give the
single-threaded answer of the models and configuration of the moment, and nothing a clear
made stale outlives it in a cache (audit s37). Models here are written directly (no torch):
log-linear networks of the toy kernel whose fastest variant changes with ``n``."""
from __future__ import annotations

import concurrent.futures as cf
import random
import sys
import threading
import time

import pytest

from annpred import select
from annpred.files import atomic_write_text
from annpred.model.layout import model_path
from annpred.model.schema import save_model, to_json
from annpred.runtime import caches
from annpred.runtime import choice as _choice
from annpred.runtime import choose as _choose_mod
from annpred.runtime import predictor as _predictor
from annpred.runtime.predictor import Predictor, load_models
from annpred.select import choose
from annpred.spec import hardware as hw

from synthetic_models import load_toy_kernel

T1 = hw.cpu_id(1)
# (a, b): log seconds = a + b * log(n); version A: cumsum wins below n ~ 148, version B the
# other way round (accumulate's file differs, cumsum's is the same in both)
CUMSUM = (-14.0, 0.5)
ACCUMULATE = {"A": (-12.5, 0.2), "B": (-15.5, 0.8)}
POINTS = [16, 40, 100, 140, 160, 300, 1000, 4000, 9000, 20000]  # the last two: outside


def linear_model(variant: str, a: float, b: float) -> dict:
    return {"format": "annpred-model/1", "kernel": "toy", "variant": variant, "hardware": T1,
            "parameters": ["n"], "features": ["n", "work"], "complexity": {"work": "n"},
            "input_transform": ["log", "log"], "target_transform": "log",
            "scaler": {"mean": [0.0, 0.0], "std": [1.0, 1.0]},
            "target_scaler": {"mean": 0.0, "std": 1.0},
            "layers": [{"weight": [[0.0, 0.0]], "bias": [0.0]},
                       {"weight": [[0.0]], "bias": [a]}],
            "skip": {"weight": [[b, 0.0]]}, "activation": "tanh", "n_params": 7,
            "train": {"n_samples": 60, "val_mape": 0.05, "range": {"n": [16.0, 4096.0]}}}


def write_version(root, version: str) -> None:
    save_model(linear_model("cumsum", *CUMSUM), model_path(root, "toy", "cumsum", T1))
    atomic_write_text(model_path(root, "toy", "accumulate", T1),
                      to_json(linear_model("accumulate", *ACCUMULATE[version])))


@pytest.fixture
def versions(tmp_path):
    """Model directories A and B, and the single-threaded answer of each for every point:
    decisions per default (None: the built-in one, cumsum), accumulate's prediction."""
    load_toy_kernel("toy_kernel_for_concurrency")
    caches.clear()
    want = {}
    for v in "AB":
        write_version(tmp_path / v, v)
        pred = Predictor([tmp_path / v])
        for n in POINTS:
            want[v, "predict", n] = pred.predict("toy", "accumulate", {"n": n})
        for default in (None, "accumulate"):
            for n in POINTS:
                want[v, default, n] = choose("toy", {"n": n}, models=pred, memo=False,
                                             default=default)
    yield tmp_path, want
    _choice._DEFAULTS.clear()
    caches.clear()


def test_a_default_set_during_a_decision_is_not_memoised(versions, monkeypatch):
    """A decision computed with the old default while another thread calls set_default
    was memoised after set_default cleared the memo: the old default then held forever."""
    root, want = versions
    live = str(root / "A")
    decide = _choose_mod._decide
    calls = []

    def interleaved(*args, **kw):
        out = decide(*args, **kw)
        if not calls:  # another thread changes the default while this decision runs
            calls.append(1)
            select.set_default("toy", "accumulate")
        return out

    monkeypatch.setattr(_choose_mod, "_decide", interleaved)
    first = choose("toy", {"n": 20000}, models=live)
    assert first == want["A", None, 20000]  # decided before the change: the old default
    assert choose("toy", {"n": 20000}, models=live) == want["A", "accumulate", 20000]


def test_models_reloaded_during_a_first_decision_reach_later_ones(versions, monkeypatch):
    """The default path (no models=): a reload between finding the models and caching the
    plan left the old models in the one-lookup cache for good."""
    root, want = versions
    live = root / "live"
    write_version(live, "A")
    monkeypatch.setenv("ANNPRED_MODELS", str(live))
    (root / "no-shipped").mkdir()
    monkeypatch.setattr(_predictor, "shipped_root", lambda: root / "no-shipped")
    plan = _choose_mod._plan
    calls = []

    def interleaved(*args, **kw):
        out = plan(*args, **kw)
        if not calls:  # another thread retrains and reloads meanwhile
            calls.append(1)
            write_version(live, "B")
            load_models([live, root / "no-shipped"], reload=True)
        return out

    monkeypatch.setattr(_choose_mod, "_plan", interleaved)
    assert choose("toy", {"n": 1000}) == want["A", None, 1000]
    monkeypatch.setattr(_choose_mod, "_plan", plan)
    assert choose("toy", {"n": 1000}) == want["B", None, 1000]
    assert choose("toy", {"n": 300}) == want["B", None, 300]


def test_a_directory_read_before_a_reload_does_not_replace_the_reloaded_one(versions,
                                                                           monkeypatch):
    """load_models(path) reading the files while another thread reloads them stored its
    older Predictor over the reloaded one."""
    root, want = versions
    live = root / "live"
    write_version(live, "A")
    calls = []

    class Interleaved(Predictor):
        def __init__(self, roots):
            super().__init__(roots)
            if not calls:  # read version A; now another thread writes B and reloads
                calls.append(1)
                write_version(live, "B")
                load_models(live, reload=True)

    monkeypatch.setattr(_predictor, "Predictor", Interleaved)
    load_models(live)
    assert choose("toy", {"n": 1000}, models=load_models(live)) == want["B", None, 1000]


def test_choose_and_predict_from_many_threads_while_models_and_defaults_change(versions):
    """12 threads x 250 decisions and predictions; one thread swaps the models between A
    and B and reloads, another toggles the default. Every answer is one of the
    single-threaded answers; afterwards every cached answer is the current one."""
    root, want = versions
    live = root / "live"
    write_version(live, "A")
    def reloader():
        rng = random.Random(1)
        for i in range(40):
            write_version(live, "AB"[i % 2])
            load_models(live, reload=True)
            if rng.random() < 0.3:
                caches.clear()
        write_version(live, "B")
        load_models(live, reload=True)

    def toggler():
        for i in range(60):
            select.set_default("toy", "accumulate" if i % 2 == 0 else None)
        select.set_default("toy", "accumulate")

    def worker(seed: int) -> int:
        rng = random.Random(seed)
        n_ok = 0
        for _ in range(250):
            n = rng.choice(POINTS)
            if rng.random() < 0.8:
                c = choose("toy", {"n": n}, models=str(live))
                assert any(c == want[v, d, n] for v in "AB" for d in (None, "accumulate")), c
            else:
                p = load_models(live).predict("toy", "accumulate", {"n": n})
                assert (p.seconds, p.in_range) in [(want[v, "predict", n].seconds,
                                                    want[v, "predict", n].in_range)
                                                   for v in "AB"], p
            n_ok += 1
        return n_ok

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: interleavings a server meets
    try:
        with cf.ThreadPoolExecutor(14) as ex:
            side = [ex.submit(reloader), ex.submit(toggler)]
            futs = [ex.submit(worker, s) for s in range(12)]
            done = [f.result() for f in futs] + [f.result() for f in side]
    finally:
        sys.setswitchinterval(old)
    assert done[:12] == [250] * 12
    for n in POINTS:  # quiet again: the cached answers are the current configuration's
        assert choose("toy", {"n": n}, models=str(live)) == want["B", "accumulate", n]


def test_concurrent_first_calls_build_one_directory_and_one_plan(versions, monkeypatch):
    """Eight threads making their first decision at once read the model directory once and
    stack its networks once (each build also warns once per model from another machine)."""
    root, want = versions
    plans, dirs = [], []

    class CountingPlan(_choose_mod._Plan):
        def __init__(self, *args, **kw):
            plans.append(1)
            super().__init__(*args, **kw)

    class CountingPredictor(Predictor):
        def __init__(self, roots):
            dirs.append(1)
            for _ in range(200):  # reading many files: other threads run meanwhile
                threading.Event().wait(0)
            super().__init__(roots)

    monkeypatch.setattr(_choose_mod, "_Plan", CountingPlan)
    monkeypatch.setattr(_predictor, "Predictor", CountingPredictor)
    barrier = threading.Barrier(8)

    def first(i):
        barrier.wait()
        return choose("toy", {"n": POINTS[i]}, models=str(root / "A"))

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        with cf.ThreadPoolExecutor(8) as ex:
            got = list(ex.map(first, range(8)))
    finally:
        sys.setswitchinterval(old)
    assert got == [want["A", None, n] for n in POINTS[:8]]
    assert (len(dirs), len(plans)) == (1, 1)


def test_threads_that_ask_while_the_catalog_loads_see_it_whole(monkeypatch):
    """The catalog marked itself loaded before importing its kernels: a second thread's
    first call then found no kernel (UnknownKernelError for a shipped one) while the first
    thread was still importing them."""
    import annpred.spec.catalog as catalog

    started, results = threading.Event(), {}
    real = catalog._take

    def slow_take(module):  # the first thread is importing the kernels
        started.set()
        time.sleep(0.02)
        real(module)

    monkeypatch.setattr(catalog, "_REGISTRY", {})
    monkeypatch.setattr(catalog, "_LOADED", False)
    monkeypatch.setattr(catalog, "_take", slow_take)

    def first():
        results["first"] = sorted(catalog.kernels())

    def second():
        started.wait(5)
        try:
            results["second"] = catalog.get_kernel("matmul").name
        except Exception as exc:  # noqa: BLE001 - the failure is the finding
            results["second"] = repr(exc)

    ts = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert results["second"] == "matmul"
    assert set(results["first"]) >= {"blur", "conv2d", "fft", "matmul", "matvec", "maxpool"}
