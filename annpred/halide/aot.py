"""Ahead-of-time output of a chosen schedule, for use from C or C++.

:func:`emit` compiles a pipeline under a schedule into a static library and a C header with
Halide's ahead-of-time compiler (host target, Halide runtime included), and writes the
schedule as readable code (a runnable Halide Python script: the algorithm, then the
schedule) and a short README with the function's signature and how to link it. Files are
written to a temporary folder first and moved into place, so an interrupted or failed
emit leaves nothing half-written.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Mapping

from ..errors import ParameterError
from .pipelines import HalidePipeline, get
from .space import key_of


def include_dir() -> Path:
    """The folder holding ``HalideRuntime.h`` (and ``HalideBuffer.h``) of the halide wheel."""
    import halide as hl

    return Path(os.path.dirname(hl.__file__)) / "include"


def emit(pipeline: str | HalidePipeline, schedule: Mapping, out_dir: str | Path, *,
         name: str | None = None, sizes: Mapping[str, int] | None = None,
         target=None) -> dict[str, Path]:
    """Write ``<name>.a``, ``<name>.h``, ``<name>_schedule.py`` and ``<name>_README.txt``
    (default name: ``<pipeline>_annpred``) into ``out_dir``; returns their paths by kind.

    The function ``int <name>(halide_buffer_t *input..., halide_buffer_t *output)`` takes the
    pipeline's inputs in :meth:`~HalidePipeline.make_inputs` order, then the output; it
    returns 0 on success. ``sizes`` (what the schedule was chosen for) is recorded only.
    """
    import halide as hl

    p = get(pipeline)
    sched = p.space.check(schedule)
    name = name or f"{p.name}_annpred"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ParameterError(f"emit name {name!r} is not a C identifier")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--emit {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    target = target or hl.get_host_target()
    b = p.build()
    p.apply(b, sched)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out))
    try:
        b.output.compile_to_static_library(str(tmp / name), b.inputs, name, target)
        (tmp / f"{name}_schedule.py").write_text(p.schedule_code(sched))
        args = ", ".join(f"halide_buffer_t *{i.name()}" for i in b.inputs)
        (tmp / f"{name}_README.txt").write_text(
            f"{name}: Halide pipeline {p.name!r} ({p.description})\n"
            f"schedule chosen by annpred: {key_of(sched)}\n"
            + (f"chosen for sizes: {json.dumps(dict(sizes))}\n" if sizes else "")
            + f"target: {target}\n\n"
            f"int {name}({args}, halide_buffer_t *output);  /* 0 on success */\n\n"
            f"Build (C or C++): cc main.c {name}.a -I<halide>/include -lpthread -ldl -lm\n"
            f"<halide>/include holds HalideRuntime.h (and HalideBuffer.h for C++), from the "
            f"halide Python package: python -c \"import halide, os; "
            f"print(os.path.dirname(halide.__file__) + '/include')\"\n"
            f"{name}_schedule.py is the same algorithm and schedule as a runnable Halide "
            f"Python script.\n")
        made = {}
        for f in sorted(tmp.iterdir()):
            os.replace(f, out / f.name)
            made[f.name] = out / f.name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    kinds = {"library": f"{name}.a", "header": f"{name}.h", "schedule": f"{name}_schedule.py",
             "readme": f"{name}_README.txt"}
    return {k: made[v] for k, v in kinds.items() if v in made}
