"""Every cache of the decision side, in one place, and how to clear them.

Loaded model directories (keyed by path, and by the environment for the default lookup), the
stacked candidate plans per predictor, memoised decisions per predictor, catalog kernels and
the input specs ``dispatch`` infers. :func:`clear` forgets all of them (after retraining);
configuration changes clear what depends on them.

Thread safety: reads take no lock (a memoised decision stays a dictionary lookup). Every
clear takes :data:`LOCK` and advances :data:`GENERATION`; a value computed from the state
before a clear is stored only through :func:`put` with the generation read *before* that
state was read, so a decision, plan or model directory computed while another thread
reloaded models, replaced a kernel or changed a default is returned to its caller but
never cached (else it would outlive the change). :data:`BUILD` serialises building model
directories and plans, so that concurrent first calls build each once. Both locks are new
in a child after ``os.fork`` (another thread of the parent may have held them).
"""
from __future__ import annotations

import os
import threading
import weakref

from annpred.spec import catalog

PREDICTORS_BY_ENV: dict = {}  # (ANNPRED_MODELS, ANNPRED_TRAINED, XDG_DATA_HOME) -> Predictor
PREDICTORS_BY_ROOTS: dict = {}  # tuple of resolved root paths -> Predictor
PLANS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # Predictor -> {key: plan}
MEMO: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # Predictor -> {key: Choice}
MEMO_SIZE = 65536
# the default path (no models=, no candidates=): (environment key, kernel) -> (Predictor,
# catalog Kernel, plan), one lookup instead of three
DEFAULT_PLANS: dict = {}
KERNELS: dict = {}  # kernel name -> catalog Kernel
INPUT_SPECS: dict = {}  # kernel name -> {input: (dtype, ndim)}
SIGNATURES: dict = {}  # kernel name -> inspect.Signature of its infer_params (dispatch)
LOCK = threading.Lock()  # held to clear, and to store a value of a known generation
BUILD = threading.RLock()  # held to build a model directory or a plan (built once)
GENERATION = 0  # advanced by every clear (under LOCK)


def put(mapping, key, value, generation: int):
    """``mapping[key] = value`` unless a cache was cleared since ``generation`` (read before
    ``value`` was computed); returns ``value`` either way."""
    with LOCK:
        if GENERATION == generation:
            mapping[key] = value
    return value


def per_predictor(table, pred, generation: int) -> dict:
    """``table[pred]`` (:data:`PLANS` or :data:`MEMO`), created if missing; a new dict not
    in the table when a cache was cleared since ``generation``."""
    d = table.get(pred)
    if d is None:
        with LOCK:
            d = table.get(pred)
            if d is None:
                d = {}
                if GENERATION == generation:
                    table[pred] = d
    return d


def _advance() -> None:
    global GENERATION
    GENERATION += 1


def _reinit_locks() -> None:  # in a forked child: the parent's threads are gone
    global LOCK, BUILD
    LOCK = threading.Lock()
    BUILD = threading.RLock()


def clear_decisions() -> None:
    """Forget memoised decisions (the policy or a default changed)."""
    with LOCK:
        _advance()
        MEMO.clear()


def clear_plans() -> None:
    """Forget stacked plans and decisions (the range margin changed)."""
    with LOCK:
        _advance()
        PLANS.clear()
        DEFAULT_PLANS.clear()
        MEMO.clear()


def forget_predictors() -> None:
    """Forget the model directories looked up by path or environment, and the plans and
    decisions built from them (``load_models(..., reload=True)`` read them again)."""
    with LOCK:
        _advance()
        PREDICTORS_BY_ENV.clear()
        PLANS.clear()
        DEFAULT_PLANS.clear()
        MEMO.clear()


def forget_kernels() -> None:
    """Forget everything built from catalog kernels (:func:`~annpred.spec.catalog.
    register_kernel` added or replaced one): kernel specs, input specs, plans, decisions."""
    with LOCK:
        _advance()
        KERNELS.clear()
        INPUT_SPECS.clear()
        SIGNATURES.clear()
        PLANS.clear()
        DEFAULT_PLANS.clear()
        MEMO.clear()


def clear() -> None:
    """Forget loaded model directories, plans, decisions and kernel specs (after retraining)."""
    from annpred.spec import hardware

    with LOCK:
        _advance()
        PREDICTORS_BY_ENV.clear()
        PREDICTORS_BY_ROOTS.clear()
        PLANS.clear()
        DEFAULT_PLANS.clear()
        MEMO.clear()
        KERNELS.clear()
        INPUT_SPECS.clear()
        SIGNATURES.clear()
    hardware.present.cache_clear()


catalog.on_change(forget_kernels)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_locks)
