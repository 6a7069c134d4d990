"""``dispatch``: infer a call's parameters from its operands, choose, run the choice."""
from __future__ import annotations

import inspect
import time

import numpy as np

from annpred.errors import ParameterError
from annpred.runtime import caches
from annpred.runtime.choose import _plan, choose
from annpred.runtime.feedback import Feedback
from annpred.runtime.predictor import resolve_models
from annpred.runtime.transfer import TRANSFER, calibrate_transfer
from annpred.spec import hardware as hw
from annpred.spec.catalog import get_kernel
from annpred.threads import limit_threads


def _input_spec(kernel) -> dict[str, tuple[np.dtype, int]]:
    """Names, dtypes and ndims of the kernel's inputs, from ``make_inputs`` at a small point."""
    spec = caches.INPUT_SPECS.get(kernel.name)
    if spec is not None:
        return spec
    point = {p.name: (p.choices[0] if p.sampling == "choice" else p.low) for p in kernel.params}
    point = {k: (int(v) if kernel.param(k).kind == "int" else float(v)) for k, v in point.items()}
    if not kernel.valid(point):
        point = kernel.sample_points(1, seed=0)[0]
    inputs = kernel.make_inputs(point, np.random.default_rng(0))
    spec = {k: (np.asarray(v).dtype, np.ndim(v)) for k, v in inputs.items()}
    caches.INPUT_SPECS[kernel.name] = spec
    return spec


def _is_sparse(a) -> bool:
    return type(a).__module__.startswith("scipy.sparse")


def _is_torch(a) -> bool:
    return type(a).__module__.startswith("torch")


def _nbytes(a) -> int:
    if _is_sparse(a):
        return int(np.prod(a.shape)) * a.dtype.itemsize  # densified for the GPU
    return int(getattr(a, "nbytes", np.asarray(a).nbytes))


_OWN_OPTIONS = ("candidates", "models", "default", "policy", "feedback", "return_choice",
                "trust_machine")


def dispatch(kernel, *operands, candidates=None, models=None, default=None,
             policy: str | None = None, feedback: Feedback | None = None,
             return_choice: bool = False, trust_machine: bool = False, **options):
    """Run ``kernel`` on ``operands`` with the implementation :func:`choose` picks.

    The parameters come from the kernel's ``infer_params(*operands, **options)`` (shapes,
    density of sparse or dense operands); parameters it cannot infer come from ``options``
    or the kernel's defaults (e.g. ``dispatch("maxpool", x, w=3, s=2)``). Operands are
    converted to the dtype the kernel's variants were profiled with (float32 for the
    catalog); scipy sparse operands stay sparse for variants named ``sparse*`` and are
    densified for the others. On a machine with a CUDA GPU, CUDA candidates' predictions
    include the host-device transfer of the operands and of a result of the same size as
    the largest operand (:data:`TRANSFER`). The chosen CPU variant runs with the thread
    count of its hardware id (threadpoolctl for BLAS/OpenMP, and torch); Halide's thread
    pool size is fixed per process by ``HL_NUM_THREADS`` and is not changed per call.

    ``trust_machine``: as in :func:`choose` (models from another machine are untrusted
    unless adapted by ``annpred calibrate``).

    Returns the result as a numpy array, or ``(result, choice)`` with ``return_choice``.
    With ``feedback`` (a :class:`Feedback`), the run is timed and recorded.
    """
    k = kernel if not isinstance(kernel, str) else get_kernel(kernel)
    if k.infer_params is None:
        raise ParameterError(f"kernel {k.name} cannot infer its parameters from operands "
                             "(it defines no infer_params); use choose() with explicit params")
    sig = _signature(k)
    try:
        bound = sig.bind(*operands, **options)
    except TypeError as exc:
        raise ParameterError(f"dispatch({k.name!r}, ...): {exc}; expected operands "
                             f"{k.infer_params.__doc__ or str(sig)}") from None
    spec = _input_spec(k)
    try:
        params = k.infer_params(*operands, **options)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ParameterError(f"dispatch({k.name!r}, ...): cannot infer parameters: "
                             f"{exc}") from None
    extra = {n: v for n, v in bound.arguments.items()
             if n not in spec and n in k.param_names and n not in params}
    params = k.check_params({**params, **extra})
    inputs = {}
    for name, value in bound.arguments.items():
        if name in spec:
            inputs[name] = value
    missing = [n for n in spec if n not in inputs]
    if missing:
        raise ParameterError(f"dispatch({k.name!r}, ...): missing operand(s) "
                             f"{', '.join(missing)}")
    pred = resolve_models(models)
    plan = _plan(pred, k.name, k, candidates)
    nbytes = None
    if plan.cuda_idx:
        if not TRANSFER.calibrated:
            calibrate_transfer()
        sizes = [_nbytes(v) for v in inputs.values()]
        nbytes = sum(sizes) + max(sizes)
    choice = choose(k.name, params, candidates, pred, default=default, policy=policy,
                    transfer_bytes=nbytes, trust_machine=trust_machine)
    v = k.variant(choice.variant)
    native = {}
    for name, value in inputs.items():
        dtype, ndim = spec[name]
        if _is_torch(value):
            value = value.detach().cpu().numpy()
        if _is_sparse(value):
            if not v.name.startswith("sparse"):
                value = value.toarray()
            if value.dtype != dtype:
                value = value.astype(dtype)
        else:
            value = np.asarray(value)
            if value.dtype != dtype:
                value = value.astype(dtype)
        native[name] = value
    threads = choice.threads if hw.parse_id(choice.hardware)["device"] == "cpu" else None
    with limit_threads(threads):
        state = v.prepare(native, params)
        t0 = time.perf_counter()
        result = v.run(state)
        if v.sync is not None:
            v.sync()
        elapsed = time.perf_counter() - t0
    out = v.to_numpy(result)
    if feedback is not None:
        feedback.record(choice, elapsed)
    return (out, choice) if return_choice else out


_SIGS: dict[str, inspect.Signature] = {}


def _signature(k) -> inspect.Signature:
    s = _SIGS.get(k.name)
    if s is None:
        s = _SIGS[k.name] = inspect.signature(k.infer_params)
    return s
