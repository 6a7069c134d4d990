"""Complexity expressions for finite DRAM bandwidth, built from a description.

With ideal bandwidth a layer's cycles are the fold expression (``mapping.cycles_expression``).
With finite bandwidth SCALE-Sim's read buffers stall when an operand's prefetch stream is
longer than the buffer's active half: after the first window, every prefetch moves the
window by ``advance`` sets and takes ``fetch`` cycles (half the buffer at the DRAM
bandwidth, whatever the advance), and a stall counts twice. These expressions encode that
memory bound with the description's constants, as sympy text over three sub-expressions
(output pixels, window size, filters), for NN+C: the number of prefetches after the first
window, the DRAM cycles they take, and a first-order stall estimate (assuming demand spread
evenly over the compute time). They are features, not the model: the exact cycles come from
the dependency-graph evaluation.
"""
from __future__ import annotations

import math

from .description import Accelerator
from .mapping import fold_count_expression


def _buffer(acc: Accelerator, which: str) -> dict:
    """SCALE-Sim's read-buffer constants of one operand (as ``mapping._stream``)."""
    total = acc.buffer_words(which)
    active = math.ceil(total * 0.5)
    per_set = math.ceil(total / 100)
    return {"per_set": per_set, "max_active": math.ceil(active / per_set),
            "max_prefetch": math.ceil((total - active) / per_set),
            "fetch": math.ceil((total - active) / acc.dram_bandwidth) + acc.dram_latency}


def _streams(acc: Accelerator, P: str, T: str, M: str) -> dict:
    """Per operand: (stream words, passes over the stream)."""
    C = acc.cols
    if acc.dataflow == "is":
        return {"ifmap": (f"{T}*{P}", "1"), "filter": (f"{T}*{M}", f"ceiling({P}/{C})")}
    return {"ifmap": (f"{P}*{T}", f"ceiling({M}/{C})"), "filter": (f"{T}*{M}", "1")}


def _prefetches(b: dict, words: str, passes: str) -> str:
    """Prefetches after the first window: (sets beyond the window) / advance on the first
    pass; a stream that does not fit is fetched around again on every later pass."""
    n_sets = f"(floor({words}/{b['per_set']}) + 1)"
    active = f"min({b['max_active']}, {n_sets})"
    advance = f"max(min({b['max_prefetch']}, {n_sets} - {active}), 1)"
    beyond = f"max({n_sets} - {b['max_active']}, 0)"
    first = f"ceiling({beyond}/{advance})"
    later = f"({passes} - 1)*ceiling({n_sets}/{advance})*min({beyond}, 1)"
    return f"({first} + {later})"


def _preloaded(acc: Accelerator, which: str) -> bool:
    """Operands whose fold tile is preloaded at the fold's start (one block row per step
    before compute: the weight-stationary filter, the input-stationary ifmap); the others
    stream over the whole fold."""
    return (acc.dataflow, which) in (("ws", "filter"), ("is", "ifmap"))


def stall_expressions(acc: Accelerator, pixels: str, window: str, filters: str,
                      compute: str) -> dict:
    """``prefetch``: 1 + DRAM cycles of the prefetches after the first windows (both read
    operands; positive, so a log transform is safe); ``user``: compute + 2 * the DRAM time
    by which each operand's prefetches outlast the time its demand reaches the stream's
    last advance (a stall counts twice; prefetch k completes at k * fetch - 1, the first
    step's cycle being 0). Demand reaches a stream position uniformly over the compute time
    for streamed operands, and at the start of the fold that holds it for preloaded ones
    (their stream runs in fold order, one tile per fold)."""
    P, T, M = f"({pixels})", f"({window})", f"({filters})"
    cc = f"({compute})"
    folds = fold_count_expression(acc, P, T, M)
    dram, excess = [], []
    for which, (words, passes) in _streams(acc, P, T, M).items():
        b = _buffer(acc, which)
        n_pf = _prefetches(b, words, passes)
        busy = f"{n_pf}*{b['fetch']}"
        dram.append(busy)
        n_sets = f"(floor({words}/{b['per_set']}) + 1)"
        # the last prefetch is needed when demand reaches the stream's last advance
        adv = f"min({b['max_prefetch']}, max({n_sets} - {b['max_active']}, 0))"
        if _preloaded(acc, which):
            pos = f"({n_sets} - {adv})*{b['per_set']}"
            need = f"floor({pos}*{folds}/({words}))*{cc}/({folds})"
        else:
            need = f"{cc}*(1 - {adv}/{n_sets})"
        excess.append(f"2*max({busy} - 2 - {need}, 0)")
    return {"prefetch": f"1 + {' + '.join(dram)}", "user": f"{cc} + {' + '.join(excess)}"}
