"""``dispatch``: infer a call's parameters from its operands, choose, run the choice."""
from __future__ import annotations

import inspect
import time

import numpy as np

from annpred.errors import ParameterError, UnknownKernelError
from annpred.runtime import caches
from annpred.runtime.choice import as_candidates
from annpred.runtime.choose import _plan, choose
from annpred.runtime.feedback import Feedback
from annpred.runtime.predictor import resolve_models
from annpred.runtime.transfer import TRANSFER, calibrate_transfer
from annpred.spec import hardware as hw
from annpred.spec.catalog import get_kernel
from annpred.spec.kernel import Kernel
from annpred.threads import shared_limit_threads
from annpred.validate import shown


def _input_spec(kernel) -> dict[str, tuple[np.dtype, int]]:
    """Names, dtypes and ndims of the kernel's inputs, from ``make_inputs`` at a small point."""
    spec = caches.INPUT_SPECS.get(kernel.name)
    if spec is not None:
        return spec
    gen = caches.GENERATION
    point = {p.name: (p.choices[0] if p.sampling == "choice" else p.low) for p in kernel.params}
    point = {k: (int(v) if kernel.param(k).kind == "int" else float(v)) for k, v in point.items()}
    if not kernel.valid(point):
        point = kernel.sample_points(1, seed=0)[0]
    inputs = kernel.make_inputs(point, np.random.default_rng(0))
    spec = {k: (np.asarray(v).dtype, np.ndim(v)) for k, v in inputs.items()}
    return caches.put(caches.INPUT_SPECS, kernel.name, spec, gen)


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

    ``candidates``: as in :func:`choose`, but every one must be runnable here: a CPU id with
    at most this machine's core count of threads, or an installed GPU (a
    :class:`~annpred.errors.ParameterError` names the others). Without ``candidates``, only
    hardware present here is considered. The fallback (when no prediction is trusted) is
    ``default``, else :func:`set_default`'s, else the kernel's first CPU variant among the
    candidates on its candidate hardware with the most threads; when no candidate is a CPU
    variant, the kernel's first variant on all of this machine's cores, outside the list.
    A CPU choice never runs with more threads than this machine has.

    Returns the result as a numpy array, or ``(result, choice)`` with ``return_choice``.
    With ``feedback`` (a :class:`Feedback`), the run is timed and recorded.
    """
    gen = caches.GENERATION  # before any state is read: see caches.put
    k = kernel if not isinstance(kernel, str) else get_kernel(kernel)
    if not isinstance(k, Kernel):
        raise UnknownKernelError(f"dispatch: kernel must be a name or a Kernel, got "
                                 f"{shown(kernel)}")
    if k.infer_params is None:
        raise ParameterError(f"kernel {k.name} cannot infer its parameters from operands "
                             "(it defines no infer_params); use choose() with explicit params")
    sig = _signature(k)
    try:
        bound = sig.bind(*operands, **options)
    except TypeError as exc:
        raise ParameterError(f"dispatch({k.name!r}, ...): {exc}; expected operands "
                             f"{_expected(k, sig)}") from None
    spec = _input_spec(k)
    try:
        params = k.infer_params(*operands, **options)
    except (ValueError, TypeError, AttributeError, IndexError) as exc:
        given = ", ".join(f"{n} {_shape(v)}" for n, v in bound.arguments.items() if n in spec)
        raise ParameterError(f"dispatch({k.name!r}, ...): cannot infer parameters from "
                             f"{given or 'the operands'}: {exc}; expected operands "
                             f"{_expected(k, sig)}") from None
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
    if candidates is not None:
        candidates = as_candidates(candidates)  # read once, for the plan and choose
    plan = _plan(pred, k.name, k, candidates, gen)
    if candidates is not None:
        _runnable_here(k.name, plan)
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
    if not hw.present(choice.hardware):  # e.g. a default= naming another machine
        raise ParameterError(f"dispatch({k.name!r}, ...): the choice {choice.best} is not on "
                             f"this machine ({hw.cpu_id(hw.cpu_count())}); it cannot run here")
    threads = choice.threads if hw.parse_id(choice.hardware)["device"] == "cpu" else None
    with shared_limit_threads(threads):
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


def _signature(k) -> inspect.Signature:
    s = caches.SIGNATURES.get(k.name)
    if s is None or s[0] is not k.infer_params:
        s = caches.SIGNATURES[k.name] = (k.infer_params, inspect.signature(k.infer_params))
    return s[1]


def _expected(k, sig) -> str:
    """The operands ``infer_params`` expects, from its docstring (on one line)."""
    return " ".join((k.infer_params.__doc__ or str(sig)).split())


def _shape(value) -> str:
    shape = getattr(value, "shape", None)
    if shape is None:
        return f"(a {type(value).__name__}, no shape)"
    return str(tuple(shape))


def _runnable_here(kname: str, plan) -> None:
    """Refuse explicit candidates this machine cannot run (kept per plan: one check)."""
    absent = getattr(plan, "_absent", None)
    if absent is None:
        absent = plan._absent = tuple(c for c in plan.cands if not hw.present(c.hardware))
    if absent:
        n = hw.cpu_count()

        def why(c) -> str:
            t = hw.parse_id(c.hardware)["threads"]
            return (f"{c} ({t} threads; this machine has {n} cores)" if t is not None else
                    f"{c} ({c.hardware} is not installed here)")
        raise ParameterError(
            f"dispatch({kname!r}, ...): candidate(s) not on this machine: "
            f"{', '.join(map(why, absent))}; dispatch runs its choice here, so pass only "
            "this machine's hardware (choose() can plan for another machine)")
