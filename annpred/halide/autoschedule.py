"""Running Halide's autoscheduler plugins (Mullapudi2016, Adams2019, Li2018, Anderson2021).

The plugins ship with the halide wheel (``halide/lib64/libautoschedule_<name>.so``). Each run
builds the algorithm afresh, sets the estimates of every input and of the output to the size
being tuned for, applies the autoscheduler with the machine's parallelism, and JIT-compiles
the result. ``tuning_s`` is the time of ``apply_autoscheduler`` alone; ``compile_s`` the JIT.
"""
from __future__ import annotations

import functools
import os
import time
from typing import Mapping

from ..errors import AnnpredError, ParameterError
from .pipelines import HalidePipeline, get
from .runtime import Compiled, host_target

# method name (as in results) -> (plugin file stem, autoscheduler name)
AUTOSCHEDULERS = {
    "mullapudi2016": ("mullapudi2016", "Mullapudi2016"),
    "adams2019": ("adams2019", "Adams2019"),
    "li2018": ("li2018", "Li2018"),
    "anderson2021": ("anderson2021", "Anderson2021"),  # GPU only
}
CPU_AUTOSCHEDULERS = ("mullapudi2016", "adams2019", "li2018")


class AutoschedulerError(AnnpredError, RuntimeError):
    """An autoscheduler plugin is missing or failed on a pipeline."""


def plugin_dir() -> str:
    import halide as hl

    return os.path.join(os.path.dirname(hl.__file__), "lib64")


@functools.lru_cache(maxsize=None)
def load_plugin(method: str) -> str:
    """Load the plugin of ``method`` once per process; returns its autoscheduler name."""
    import halide as hl

    if method not in AUTOSCHEDULERS:
        raise ParameterError(f"unknown autoscheduler {method!r}; known: "
                             f"{', '.join(AUTOSCHEDULERS)}")
    stem, name = AUTOSCHEDULERS[method]
    path = os.path.join(plugin_dir(), f"libautoschedule_{stem}.so")
    if not os.path.exists(path):
        raise AutoschedulerError(f"autoscheduler plugin {path} not found (halide wheel "
                                 "without plugins?)")
    hl.load_plugin(path)
    return name


def autoschedule(pipeline: str | HalidePipeline, sizes: Mapping[str, int], method: str,
                 parallelism: int = 2, target=None, extra: Mapping[str, str] | None = None
                 ) -> Compiled:
    """Autoschedule ``pipeline`` for ``sizes`` with plugin ``method`` and JIT-compile it."""
    import halide as hl

    p = get(pipeline)
    name = load_plugin(method)
    target = target or host_target()
    b = p.build()
    p.set_estimates(b, sizes)
    params = {"parallelism": str(int(parallelism))}
    if method == "anderson2021":
        params = {}  # Anderson2021 reads the GPU's properties from the target
    params.update(extra or {})
    pl = hl.Pipeline(b.output)
    t0 = time.perf_counter()
    try:
        result = pl.apply_autoscheduler(target, hl.AutoschedulerParams(name, params))
    except Exception as exc:  # noqa: BLE001 - report which plugin failed on what
        raise AutoschedulerError(f"{name} failed on {p.name} at {p.size_label(sizes)}: "
                                 f"{exc}") from exc
    tuning = time.perf_counter() - t0
    t0 = time.perf_counter()
    fn = pl.compile_to_callable(b.inputs, target)
    compile_s = time.perf_counter() - t0
    source = getattr(result, "schedule_source", "") or ""
    return Compiled(p, method, None, fn, compile_s, tuning, source,
                    {"sizes": dict(sizes), "params": params})
