"""Adapt existing models to this machine in seconds: measure a few probe points per kernel
variant and fit a correction of each model's predictions (:mod:`annpred.model.correction`).

Probe set (fixed: the same for the same model and budget): :data:`POOL` random points of
the kernel's domain (seed :data:`PROBE_SEED`) inside the model's training range; the model
predicts each; points whose predicted cost would not fit the variant's share of the budget
are dropped; of the rest, up to :data:`MAX_PROBES` points evenly spaced in predicted
log-runtime are measured, extremes first and then ever finer midpoints, so a run stopped by
the budget still spans the range, except that building a large input can take 100x its
run, and its cost is known only from the inputs built so far: probes climb from the cheap
end in steps of at most :data:`LADDER` times the predicted runtime of the largest built
(or to the next planned one), and one whose building and runs would not fit what is left
of the share is skipped for now. Each probe uses the measurement protocol (warm-up, at
least 5 runs, median) with a short minimum time. The budget (default 10 s in all) is split
evenly across the variants; time one variant leaves unused passes to the next.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from annpred import threads as _threads
from annpred.errors import DataError, ParameterError, UnknownKernelError
from annpred.measure import protocol
from annpred.measure.profiler import input_sets_for
from annpred.model import correction as _corr
from annpred.model.layout import user_root
from annpred.model.network import predict_seconds, transform_inputs
from annpred.runtime import caches
from annpred.runtime.predictor import load_models
from annpred.spec import hardware as hw
from annpred.spec.catalog import get_kernel

PROBE_SEED = 31337
POOL = 200
MAX_PROBES = 48
MIN_PROBES = 4  # fewer cannot show (leave-one-out) that a correction helps
MIN_TIME = 0.004  # seconds of repeats per probe (the protocol's default is 0.02)
COST_SLACK = 3.0  # a probe may run this many times slower than predicted
LADDER = 2.0  # a probe predicted at most this many times the largest built one so far


@dataclass
class Target:
    kernel: str
    variant: str
    hardware: str
    threads: int
    probes: list = field(default_factory=list)  # (point, predicted_s, measured_s)
    seconds: float = 0.0  # measuring the probes (the budget counts this)
    setup_s: float = 0.0  # one untimed first run (imports, JIT compiles; not in the budget)
    correction: dict | None = None
    note: str = ""


@dataclass
class CalibrationResult:
    path: Path | None
    targets: list
    seconds: float
    machine: dict


def targets_for(pred, kernels: Sequence[str] | None, threads: int, variants=None,
                force: bool = False) -> list[Target]:
    """The models to adapt: per catalog kernel and CPU variant, the model the default
    decision would use at ``threads`` threads, if it was not measured on this machine."""
    names = list(kernels) if kernels else pred.kernels()
    if variants:  # a misspelt variant must not read as "nothing to adapt"
        known = set()
        for name in names:
            try:
                known |= {v.name for v in get_kernel(name).variants if v.device == "cpu"}
            except UnknownKernelError:
                if kernels:
                    raise
        unknown = [v for v in variants if v not in known]
        if unknown:
            raise ParameterError(f"--variant {unknown[0]!r} is not a CPU variant of "
                                 f"{', '.join(names)}; variants: {', '.join(sorted(known))}")
    out = []
    for name in names:
        try:
            k = get_kernel(name)
        except UnknownKernelError:
            if kernels:
                raise
            continue  # a model without a catalog kernel cannot be probed
        for v in k.variants:
            if v.device != "cpu" or (variants and v.name not in variants):
                continue
            ms = [pred.models[key] for key in pred.combinations(name)
                  if key[1] == v.name and hw.parse_id(key[2])["threads"] == threads]
            if not ms:
                continue
            if any(m.machine_match for m in ms) and not force:
                continue  # this machine's own model: nothing to adapt
            m = max(ms, key=lambda m: (m.machine_match, m.meta["hardware"]))
            out.append(Target(name, v.name, m.meta["hardware"], threads))
    return out


def probe_points(kernel, variant, model, share_s: float) -> list[tuple[dict, float]]:
    """The fixed probe set of one model: (point, predicted seconds), measuring order."""
    pts = [p for p in kernel.sample_points(POOL, PROBE_SEED, variant.name)
           if variant.supports_point(p) and not model.out_of_range(p)]
    if not pts:
        return []
    cols = {n: np.asarray([float(p[n]) for p in pts]) for n in model.params}
    raw = predict_seconds(model.features(cols), model.compiled)
    runs = protocol.DEFAULT_MIN_RUNS + protocol.DEFAULT_WARMUP
    cost = np.maximum(raw * runs, MIN_TIME) * COST_SLACK
    keep = [i for i in np.argsort(raw) if np.isfinite(raw[i]) and cost[i] <= share_s / 3]
    if not keep:
        return []
    n = min(MAX_PROBES, len(keep))
    pos = np.unique(np.round(np.linspace(0, len(keep) - 1, n)).astype(int))
    order = _coarse_to_fine(len(pos))
    return [(pts[keep[pos[j]]], float(raw[keep[pos[j]]])) for j in order]


def _coarse_to_fine(n: int) -> list[int]:
    """0, n-1, then midpoints of ever finer halvings: any prefix spans the range."""
    if n <= 2:
        return list(range(n))
    out, seen = [0, n - 1], {0, n - 1}
    step = n - 1
    while len(out) < n and step > 0:
        for j in np.arange(step / 2, n - 1, step):
            j = int(round(j))
            if j not in seen:
                seen.add(j)
                out.append(j)
        step /= 2
        if step < 0.5:
            break
    out += [j for j in range(n) if j not in seen]
    return out


def calibrate(kernels: Sequence[str] | None = None, *, models=None, out=None,
              budget: float = 10.0, threads: int = 1, variants: Sequence[str] | None = None,
              force: bool = False, progress: bool = True, save: bool = True,
              on_target=None) -> CalibrationResult:
    """Measure probe points of every model that was not measured on this machine and store
    a correction per model in ``<out>/calibration/<fingerprint>.json`` (``out``: the user's
    model directory). ``budget``: seconds of measuring in all (including building inputs;
    not each variant's first, untimed run, :attr:`Target.setup_s`, so the wall time is the
    budget plus those).
    ``on_target(target)`` is called after each model (the CLI prints a line).
    ``threads``: the models of this thread count are adapted, measured with it."""
    from annpred import validate as _v

    budget = _v.number(budget, "budget", positive=True, max_abs=1e7)
    if threads < 1 or threads > hw.cpu_count():
        raise ParameterError(f"threads must be between 1 and {hw.cpu_count()}, got {threads}")
    if save:  # before any measuring: an unusable --out would waste the whole budget
        _v.output_dir(out if out is not None else user_root(), "--out")
    pred = load_models(models, reload=True)
    if not pred.combinations():
        where = models if models is not None else "the model directories"
        raise DataError(f"no model files in {where} to adapt")
    todo = targets_for(pred, kernels, threads, variants, force)
    _threads.fix_threads(threads)
    bar = _bar(budget, progress)
    t_all = time.perf_counter()
    done = []
    try:
        for i, t in enumerate(todo):
            # the budget is measuring time: a variant's first, untimed run (imports, JIT
            # compiles) does not take it from the variants after it
            spent = sum(d.seconds for d in done)
            share = (budget - spent) / (len(todo) - i)
            if share <= 0:
                t.note = "budget spent"
            else:
                _probe(t, pred.models[(t.kernel, t.variant, t.hardware)], share)
                bar.set_postfix_str(f"{t.kernel}/{t.variant}: {len(t.probes)} probes",
                                    refresh=False)
                bar.update(max(0.0, min(spent + t.seconds, budget) - bar.n))
            done.append(t)
            if on_target is not None:
                on_target(t)
    finally:
        bar.close()
    machine = hw.machine()
    corrections = [t.correction for t in done if t.correction is not None]
    path = None
    if save and corrections:
        path = _corr.save(Path(out) if out is not None else user_root(), machine, corrections)
        caches.clear()
    return CalibrationResult(path, done, time.perf_counter() - t_all, machine)


def _probe(t: Target, model, share: float) -> None:
    kernel = get_kernel(t.kernel)
    v = kernel.variant(t.variant)
    t0 = time.perf_counter()
    plan = probe_points(kernel, v, model, share)
    if plan:  # first use of a variant imports its library or JIT-compiles: not measuring
        point = plan[0][0]
        v.run(v.prepare(kernel.make_inputs(point, np.random.default_rng(PROBE_SEED)), point))
        t.setup_s = time.perf_counter() - t0
        t0 = time.perf_counter()
    runs = protocol.DEFAULT_MIN_RUNS + protocol.DEFAULT_WARMUP
    pending = list(enumerate(plan))
    sets = []  # input sets each probe's runs rotated through (1: one repeated input)
    built = []  # (predicted s, seconds of building its inputs)
    ratio = largest = 0.0  # building s per predicted s near the largest built (the worst)
    while pending:
        left = share - (time.perf_counter() - t0)
        # the first probe in plan order whose inputs and runs fit what is left: building a
        # large input can take 100x its run (matvec: 4.5 s for a 19 ms run), and the cost
        # of building is known only from inputs built, so probes climb in steps of at most
        # LADDER x the largest built (or to the next planned one up, where the plan has a
        # wider gap); one that does not fit now may fit later
        rung = max(LADDER * largest,
                   min((p for _, (_, p) in pending if p > largest), default=0.0))
        fits = [i for i, (j, (_, p_s)) in enumerate(pending)
                if (not t.probes or p_s <= rung)
                and ratio * p_s + max(p_s * runs, MIN_TIME) * COST_SLACK <= left]
        if not fits:
            break
        j, (point, p_s) = pending.pop(fits[0])
        tb = time.perf_counter()
        # as the profiler measures: on new data for a kernel that branches on it
        # (Kernel.fresh_inputs), the runs rotating through distinct input sets
        states = [v.prepare(inputs, point) for inputs in
                  input_sets_for(kernel, point, PROBE_SEED, j, kernel.fresh_inputs)]
        sets.append(len(states))
        built.append((p_s, time.perf_counter() - tb))
        largest = max(largest, p_s)
        ratio = max(b / p for p, b in built if p >= largest / LADDER)
        if "torch" in sys.modules:
            _threads.ensure_torch_threads()
        timing = protocol.measure([lambda st=st: v.run(st) for st in states], sync=v.sync,
                                  min_time=MIN_TIME, max_time=max(share / 3, MIN_TIME))
        t.probes.append((point, p_s, timing.median_s))
    t.seconds = time.perf_counter() - t0
    if len(t.probes) < MIN_PROBES:
        t.note = (f"{len(t.probes)} probe(s) fit the budget share of {share:.2f} s; "
                  "not adapted (raise --budget)")
        return
    cols = {n: np.asarray([float(pt[n]) for pt, _, _ in t.probes]) for n in model.params}
    x = transform_inputs(model.features(cols), model.compiled["input_transform"])
    fit = _corr.fit_correction([p for _, p, _ in t.probes], [m for _, _, m in t.probes], x)
    best_loo = fit["loo_mape"].get(fit["form"])
    if best_loo is None or best_loo >= fit["probe_mape_before"]:
        t.note = (f"{len(t.probes)} probes: no correction beats the model as it is "
                  f"(leave-one-out {best_loo:.1f}% vs {fit['probe_mape_before']:.1f}%); "
                  "not adapted")
        return
    t.correction = {"kernel": t.kernel, "variant": t.variant, "hardware": t.hardware,
                    "model_digest": _corr.model_digest(model.meta), **fit,
                    "threads": t.threads, "seconds": round(t.seconds, 3),
                    # how the probes were measured, as a model file records its rows
                    # (train.measured.input_sets_median): 1 = one repeated input per probe
                    "input_sets_median": int(np.median(sets)),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _bar(budget: float, progress: bool):
    from tqdm import tqdm

    return tqdm(total=max(1, round(budget)), disable=not progress, unit="s", desc="calibrate",
                file=sys.stderr, dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total} s{postfix}")
