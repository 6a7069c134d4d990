"""Halide pipelines with parameterised schedule spaces: one module per pipeline.

Each module in this folder (except ``base``) defines ``PIPELINE = HalidePipeline(...)``: the
algorithm (``build``), a schedule space whose members are the pipeline's variants, how a
schedule is applied (written against a :class:`~annpred.halide.space.Recorder` so the same
calls print as Halide Python code), the inputs for a size, and a numpy reference. Adding a
pipeline is adding one such file; :data:`PIPELINES` finds it.

Layouts: numpy arrays are C-contiguous and handed to Halide with ``hl.Buffer(array)``, which
reverses the axes, so a numpy ``(H, W)`` image is a Halide ``(x=W, y=H)`` buffer.
"""
from __future__ import annotations

import importlib
import pkgutil

from ...errors import ParameterError
from .base import Built, HalidePipeline, tile_and_parallel

__all__ = ["Built", "HalidePipeline", "PIPELINES", "get", "tile_and_parallel"]


def _discover() -> dict[str, HalidePipeline]:
    found: dict[str, HalidePipeline] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name == "base" or info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        p = getattr(mod, "PIPELINE", None)
        if isinstance(p, HalidePipeline):
            found[p.name] = p
    return found


PIPELINES: dict[str, HalidePipeline] = _discover()


def get(name: str | HalidePipeline) -> HalidePipeline:
    if isinstance(name, HalidePipeline):
        return name
    try:
        return PIPELINES[name]
    except KeyError:
        raise ParameterError(f"unknown Halide pipeline {name!r}; known pipelines: "
                             f"{', '.join(sorted(PIPELINES))}") from None
