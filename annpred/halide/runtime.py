"""JIT compilation of a pipeline under a schedule, and running it on numpy arrays."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from .pipelines import HalidePipeline, get
from .space import key_of


def host_target():
    """The host JIT target (the same for every method of a comparison)."""
    import halide as hl

    return hl.get_jit_target_from_environment()


@dataclass
class Compiled:
    """A pipeline compiled for the host, ready to run at any size."""

    pipeline: HalidePipeline
    method: str  # "schedule", "default", or an autoscheduler name
    schedule: dict | None  # the knobs (None for default / autoscheduled)
    callable: Any = field(repr=False)
    compile_s: float = 0.0
    tuning_s: float = 0.0  # autoscheduling / selection time spent before compiling
    source: str = ""  # the schedule as code (Halide Python, or the autoscheduler's C++)
    info: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return key_of(self.schedule) if self.schedule is not None else self.method

    def __call__(self, *inputs: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Run on numpy inputs (shapes as :meth:`HalidePipeline.make_inputs`)."""
        import halide as hl

        if out is None:
            out = self.pipeline.make_output(self.sizes_of(inputs))
        self.callable(*[hl.Buffer(np.ascontiguousarray(a)) for a in inputs], hl.Buffer(out))
        return out

    def sizes_of(self, inputs) -> dict[str, int]:
        return self.pipeline.sizes_of(list(inputs))

    def bind(self, inputs: list[np.ndarray], out: np.ndarray) -> Callable[[], None]:
        """A zero-argument function running the pipeline on pre-wrapped buffers (for timing)."""
        import halide as hl

        bufs = [hl.Buffer(a) for a in inputs] + [hl.Buffer(out)]
        fn = self.callable

        def run():
            fn(*bufs)
        return run


def compile_schedule(pipeline: str | HalidePipeline, schedule: Mapping | None,
                     target=None) -> Compiled:
    """JIT-compile ``pipeline`` under ``schedule`` (``None``: Halide's default schedule)."""
    p = get(pipeline)
    target = target or host_target()
    b = p.build()
    rec = p.apply(b, schedule)
    t0 = time.perf_counter()
    fn = b.output.compile_to_callable(b.inputs, target)
    dt = time.perf_counter() - t0
    sched = None if schedule is None else p.space.check(schedule)
    code = "\n".join(rec.lines) if schedule is not None else "# Halide default schedule"
    return Compiled(p, "schedule" if schedule is not None else "default", sched, fn, dt,
                    0.0, code)
