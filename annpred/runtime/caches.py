"""Every cache of the decision side, in one place, and how to clear them.

Loaded model directories (keyed by path, and by the environment for the default lookup), the
stacked candidate plans per predictor, memoised decisions per predictor, catalog kernels and
the input specs ``dispatch`` infers. :func:`clear` forgets all of them (after retraining);
configuration changes clear what depends on them.
"""
from __future__ import annotations

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
LOCK = threading.Lock()


def clear_decisions() -> None:
    """Forget memoised decisions (the policy or a default changed)."""
    MEMO.clear()


def clear_plans() -> None:
    """Forget stacked plans and decisions (the range margin changed)."""
    PLANS.clear()
    DEFAULT_PLANS.clear()
    MEMO.clear()


def forget_predictors() -> None:
    """Forget the model directories looked up by path or environment, and the plans and
    decisions built from them (``load_models(..., reload=True)`` read them again)."""
    PREDICTORS_BY_ENV.clear()
    clear_plans()


def forget_kernels() -> None:
    """Forget everything built from catalog kernels (:func:`~annpred.spec.catalog.
    register_kernel` added or replaced one): kernel specs, input specs, plans, decisions."""
    KERNELS.clear()
    INPUT_SPECS.clear()
    SIGNATURES.clear()
    clear_plans()


def clear() -> None:
    """Forget loaded model directories, plans, decisions and kernel specs (after retraining)."""
    from annpred.spec import hardware

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
