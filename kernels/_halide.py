"""Halide helpers for the kernel catalog: JIT compilation cache and numpy <-> hl.Buffer.

Pipelines are compiled once per process and variant (``compile_cached``) with ImageParams and
Params, so sizes stay dynamic. ``hl.Buffer(ndarray)`` reverses the axes: Halide dimension 0 is
the numpy *last* axis. The Halide runtime reads ``HL_NUM_THREADS`` when its thread pool
starts; :func:`annpred.threads.fix_threads` sets it, so nothing here touches it.

Schedules here split the innermost (vectorised) dimension with Halide's default tail strategy
(ShiftInwards), which needs every output extent to be at least the split factor. ``prepare``
therefore allocates outputs padded up to the tile size (and pads inputs with zeros where the
padded output would read past them); ``run`` returns a view of the valid region.

The catalog's complexity expressions for these variants count the work the schedule does,
padding included, with ``LANES`` for the vector width: this machine's float32 lanes read
from its ISA (:func:`annpred.spec.machine.vector_lanes`, no Halide import), which the tests
hold equal to :func:`lanes`, Halide's own. Data measured on a machine of another vector
width gets expressions with this machine's, a feature that is still monotone in the work.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from annpred.spec.machine import vector_lanes

LANES = vector_lanes()
_CACHE: dict[str, object] = {}


def hl():
    import halide

    return halide


def compile_cached(key: str, build: Callable) -> object:
    """``build(hl) -> (output Func, [ImageParam/Param, ...])``; returns a compiled callable
    taking the arguments in that order followed by the output buffer(s)."""
    fn = _CACHE.get(key)
    if fn is None:
        h = hl()
        out, args = build(h)
        fn = h.Pipeline(out).compile_to_callable(args, h.get_jit_target_from_environment())
        _CACHE[key] = fn
    return fn


def lanes() -> int:
    """Natural float32 vector width of the JIT target (16 with AVX-512, 8 with AVX2)."""
    h = hl()
    try:
        return max(4, int(h.get_jit_target_from_environment().natural_vector_size(h.Float(32))))
    except Exception:  # pragma: no cover - older bindings
        return 8


def buffer(a: np.ndarray):
    """Wrap a C-contiguous array as an hl.Buffer sharing its memory (axes reversed)."""
    if not a.flags.c_contiguous:
        raise ValueError("Halide buffers need C-contiguous arrays")
    return hl().Buffer(a)


def round_up(v: int, m: int) -> int:
    return -(-int(v) // m) * m


def padded(a: np.ndarray, shape, dtype=np.float32) -> np.ndarray:
    """A zero array of ``shape`` (>= a.shape per axis) with ``a`` copied into its corner."""
    shape = tuple(max(int(s), d) for s, d in zip(shape, a.shape))
    out = np.zeros(shape, dtype=dtype)
    out[tuple(slice(0, d) for d in a.shape)] = a
    return out
