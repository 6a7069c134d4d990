"""The CUDA side: GPU schedule spaces for the same pipelines, Halide's CUDA target, and the
comparison against the GPU autoscheduler (Anderson2021).

Everything here lowers and compiles without a GPU (Halide generates PTX through LLVM), so the
schedule spaces are checked on every machine; *running* needs a CUDA GPU and a CUDA driver,
and :func:`compare_size` / ``experiments/halide.py --gpu`` skip cleanly without one.

The GPU selection mirrors the CPU one: profile sampled GPU schedules over sizes, fit an
augmented network per pipeline, predict every candidate and compile the predicted best.
"""
from __future__ import annotations

import time
from typing import Mapping

import numpy as np

from ..spec import hardware as hw
from ..errors import AnnpredError, ParameterError
from .pipelines import Built, HalidePipeline, get
from .runtime import Compiled
from .space import Knob, Recorder, Space, key_of


class NoCudaError(AnnpredError, RuntimeError):
    """No CUDA GPU (or no CUDA driver) on this machine."""


def cuda_target(capability: int | None = None):
    """The host target plus CUDA (with the GPU's compute capability when torch sees one)."""
    import halide as hl

    if capability is None:
        capability = 70
        if hw.cuda_available():
            import torch

            major, minor = torch.cuda.get_device_capability(0)
            capability = major * 10 + minor
    caps = {30: "CUDACapability30", 32: "CUDACapability32", 35: "CUDACapability35",
            50: "CUDACapability50", 61: "CUDACapability61", 70: "CUDACapability70",
            75: "CUDACapability75", 80: "CUDACapability80", 86: "CUDACapability86"}
    best = max((c for c in caps if c <= capability), default=70)
    t = hl.get_host_target().with_feature(hl.TargetFeature.CUDA)
    return t.with_feature(getattr(hl.TargetFeature, caps[best]))


# -- GPU schedule spaces -----------------------------------------------------------------------

def _gpu_tile(rec: Recorder, out, x, y, tx, ty):
    xo, yo, xi, yi = (rec.var(n) for n in ("xo", "yo", "xi", "yi"))
    out.gpu_tile(x, y, xo, yo, xi, yi, tx, ty)
    return xo, xi, yi


def _blur_gpu(b: Built, s: Mapping, rec: Recorder):
    x, y = b.vars["x"], b.vars["y"]
    bx, by = rec.func(b.funcs["blur_x"]), rec.func(b.funcs["blur_y"])
    xo, xi, yi = _gpu_tile(rec, by, x, y, s["tx"], s["ty"])
    if s["blur_x_at"] == "block":  # in shared memory, one tile per thread block
        bx.compute_at(by, xo).gpu_threads(x, y)
    elif s["blur_x_at"] == "root":
        bx.compute_root().gpu_tile(x, y, rec.var("bxo"), rec.var("byo"), rec.var("bxi"),
                                   rec.var("byi"), s["tx"], s["ty"])


def _mm_gpu(b: Built, s: Mapping, rec: Recorder):
    x, y, k = b.vars["x"], b.vars["y"], b.vars["k"]
    prod, out = rec.func(b.funcs["prod"]), rec.func(b.funcs["out"])
    ry = s["ry"]
    xo, xi, yi = _gpu_tile(rec, out, x, y, s["tx"], s["ty"] * ry)
    if ry > 1:  # each thread computes ry rows (register blocking)
        yii = rec.var("yii")
        out.split(yi, yi, yii, ry).unroll(yii)
    prod.compute_at(out, yi if ry > 1 else xi).unroll(y)
    upd = prod.update(0)
    upd.reorder(x, y, k).unroll(y)
    if s["unroll_k"] > 1:
        upd.unroll(k, s["unroll_k"])


def _us_gpu(b: Built, s: Mapping, rec: Recorder):
    x, y = b.vars["x"], b.vars["y"]
    out = rec.func(b.funcs["output"])
    xo, xi, yi = _gpu_tile(rec, out, x, y, s["tx"], s["ty"])
    for name in ("ratio", "blur_y", "gray"):
        where = s[f"{name}_at"]
        f = rec.func(b.funcs[name])
        if where == "block":
            f.compute_at(out, xo).gpu_threads(x, y)
        elif where == "root":
            f.compute_root().gpu_tile(x, y, rec.var(f"{name}_xo"), rec.var(f"{name}_yo"),
                                      rec.var(f"{name}_xi"), rec.var(f"{name}_yi"), 32, 8)


_THREADS = (8, 16, 32, 64)
_THREADS_Y = (1, 2, 4, 8, 16)

GPU_SPACES: dict[str, tuple[Space, object]] = {
    "blur": (Space((
        Knob("tx", _THREADS), Knob("ty", _THREADS_Y),
        Knob("blur_x_at", ("block", "inline", "root"), categorical=True),
    ), valid=lambda s: 32 <= s["tx"] * s["ty"] <= 1024), _blur_gpu),
    "matmul": (Space((
        Knob("tx", (16, 32, 64)), Knob("ty", (1, 2, 4, 8, 16)), Knob("ry", (1, 2, 4, 8)),
        Knob("unroll_k", (1, 2, 4, 8)),
    ), valid=lambda s: 32 <= s["tx"] * s["ty"] <= 1024), _mm_gpu),
    "unsharp": (Space((
        Knob("tx", _THREADS), Knob("ty", _THREADS_Y),
        Knob("gray_at", ("block", "inline", "root"), categorical=True),
        Knob("blur_y_at", ("block", "inline", "root"), categorical=True),
        Knob("ratio_at", ("block", "inline"), categorical=True),
    ), valid=lambda s: (32 <= s["tx"] * s["ty"] <= 1024
                        and not (s["gray_at"] == "block" and s["blur_y_at"] == "root"))),
        _us_gpu),
}


def gpu_space(pipeline: str | HalidePipeline) -> Space:
    name = get(pipeline).name
    if name not in GPU_SPACES:
        raise ParameterError(f"pipeline {name!r} has no GPU schedule space; GPU spaces: "
                             f"{', '.join(sorted(GPU_SPACES))}")
    return GPU_SPACES[name][0]


def apply_gpu(pipeline, built: Built, schedule: Mapping, rec: Recorder | None = None
              ) -> Recorder:
    p = get(pipeline)
    gpu_space(p)
    space, fn = GPU_SPACES[p.name]
    rec = rec or Recorder()
    fn(built, space.check(schedule), rec)
    return rec


def gpu_features(pipeline, sizes: Mapping[str, int], schedule: Mapping) -> dict[str, float]:
    p = get(pipeline)
    f = {n: float(sizes[n]) for n in p.size_names}
    f.update(gpu_space(p).features(schedule))
    return f


def lower_gpu(pipeline, schedule: Mapping | None, path: str, target=None) -> None:
    """Lower (and generate PTX for) a GPU schedule without running it; works without a GPU."""
    import halide as hl

    p = get(pipeline)
    b = p.build()
    if schedule is not None:
        apply_gpu(p, b, schedule)
    hl.Pipeline(b.output).compile_to_lowered_stmt(path, b.inputs, hl.StmtOutputFormat.Text,
                                                  target or cuda_target())


def compile_gpu(pipeline, schedule: Mapping | None, target=None) -> Compiled:
    p = get(pipeline)
    target = target or cuda_target()
    b = p.build()
    rec = apply_gpu(p, b, schedule) if schedule is not None else Recorder()
    t0 = time.perf_counter()
    fn = b.output.compile_to_callable(b.inputs, target)
    c = Compiled(p, "gpu-schedule" if schedule else "default", dict(schedule or {}) or None,
                 fn, time.perf_counter() - t0, 0.0, "\n".join(rec.lines))
    return c


def autoschedule_gpu(pipeline, sizes: Mapping[str, int], target=None) -> Compiled:
    """Anderson2021 on the CUDA target (its GPU properties come from the target)."""
    import halide as hl

    from .autoschedule import load_plugin

    p = get(pipeline)
    name = load_plugin("anderson2021")
    target = target or cuda_target()
    b = p.build()
    p.set_estimates(b, sizes)
    pl = hl.Pipeline(b.output)
    t0 = time.perf_counter()
    res = pl.apply_autoscheduler(target, hl.AutoschedulerParams(name, {}))
    tuning = time.perf_counter() - t0
    t0 = time.perf_counter()
    fn = pl.compile_to_callable(b.inputs, target)
    return Compiled(p, "anderson2021", None, fn, time.perf_counter() - t0, tuning,
                    getattr(res, "schedule_source", ""), {"sizes": dict(sizes)})


def _timer(c: Compiled, inputs, out):
    """A timed GPU run: inputs stay on the device after the first call; sync after each."""
    import halide as hl

    bufs = [hl.Buffer(a) for a in inputs]
    ob = hl.Buffer(out)

    def run():
        c.callable(*bufs, ob)

    def sync():
        ob.device_sync()
    return run, sync, ob


def time_gpu(c: Compiled, inputs, out, **measure_kw) -> float:
    from ..measure.protocol import measure

    run, sync, ob = _timer(c, inputs, out)
    t = measure(run, sync=sync, **measure_kw)
    ob.copy_to_host()
    return t.median_s


def _require_cuda():
    if not hw.cuda_available():
        raise NoCudaError("no CUDA GPU here (torch.cuda.is_available() is False); the GPU "
                          "comparison needs one")


def profile_gpu(pipeline, n_schedules=120, sizes_per_schedule=4, seed=0, progress=True):
    """GPU profiling rows (features + median runtime), like the CPU profile."""
    import pandas as pd
    from tqdm import tqdm

    from .profile import MEASURE, size_pool

    _require_cuda()
    p = get(pipeline)
    rng = np.random.default_rng(seed)
    scheds = gpu_space(p).sample(n_schedules, seed=seed)
    pool = size_pool(p, 12, seed)
    rows = []
    for s in tqdm(scheds, desc=f"gpu profile {p.name}", disable=not progress, leave=False):
        c = compile_gpu(p, s)
        for zi in rng.choice(len(pool), size=sizes_per_schedule, replace=False):
            sz = pool[int(zi)]
            inputs, out = p.make_inputs(sz, seed=int(zi)), p.make_output(sz)
            t = time_gpu(c, inputs, out, **MEASURE)
            rows.append({"kernel": f"halide_{p.name}", "variant": key_of(s),
                         "hardware": hw.cuda_id(), **sz, "runtime_s": t, "pass": 1})
    return pd.DataFrame(rows)


def train_gpu(pipeline, df):
    import pandas as pd

    from ..model.estimator import AugmentedNNRegressor
    from .space import from_key

    p = get(pipeline)
    X = pd.DataFrame([gpu_features(p, {n: r[n] for n in p.size_names}, from_key(r["variant"]))
                      for r in df.to_dict("records")])
    return AugmentedNNRegressor(complexity=dict(p.complexity)).fit(X, df["runtime_s"])


def compare_size(pipeline, sizes: Mapping[str, int], candidates: int = 64, rounds: int = 3,
                 model=None, train_df=None, seed: int = 2024) -> list[dict]:
    """annpred (predicted best GPU candidate) vs Anderson2021 vs the empirical best, on CUDA.

    Without ``model``, a small model is profiled and trained first (``train_df`` may be
    given instead). Raises :class:`NoCudaError` without a GPU.
    """
    import pandas as pd

    _require_cuda()
    p = get(pipeline)
    sizes = p.parse_size(sizes)
    if model is None:
        df = train_df if train_df is not None else profile_gpu(p, n_schedules=24,
                                                               sizes_per_schedule=3)
        model = train_gpu(p, df)
    cands = gpu_space(p).sample(candidates, seed=seed)
    t0 = time.perf_counter()
    X = pd.DataFrame([gpu_features(p, sizes, s) for s in cands])
    pred = model.predict(X)
    pick = int(np.argmin(pred))
    tuning = time.perf_counter() - t0
    inputs, out = p.make_inputs(sizes), p.make_output(sizes)
    t0 = time.perf_counter()
    compiled = [compile_gpu(p, s) for s in cands]
    sweep = np.array([time_gpu(c, inputs, out) for c in compiled])
    emp_tuning = time.perf_counter() - t0
    methods = {"annpred": (compiled[pick], tuning), "empirical_best":
               (compiled[int(np.argmin(sweep))], emp_tuning)}
    auto = autoschedule_gpu(p, sizes)
    methods["anderson2021"] = (auto, auto.tuning_s)
    times = {m: [] for m in methods}
    for _ in range(rounds):
        for m, (c, _) in methods.items():
            times[m].append(time_gpu(c, inputs, out))
    return [{"pipeline": p.name, "size": p.size_label(sizes), "method": m,
             "runtime_s": float(np.median(times[m])), "tuning_s": tun,
             "hardware": hw.cuda_id()} for m, (c, tun) in methods.items()]
