"""Complexity expressions for finite DRAM bandwidth, built from a description.

With ideal bandwidth a layer's cycles are the fold expression (``mapping.cycles_expression``).
With finite bandwidth SCALE-Sim's read buffers stall when an operand's prefetch stream is
longer than the buffer's active half (``A`` sets of 1 % of the buffer): after the first
window, every prefetch moves the circular window by ``advance`` sets and takes ``fetch``
cycles (half the buffer at the DRAM bandwidth, whatever the advance). These expressions
encode that memory bound with the description's constants, as sympy text over three
sub-expressions (output pixels, window size, filters), for NN+C. They are features, not the
model: the exact cycles come from the dependency-graph evaluation.

What decides the cycles (compared with the exact fast model over the NN study's domain):

- The prefetch chain runs on a fixed schedule (prefetch k completes at k * fetch, whenever
  it was asked for), so a layer takes at least the chain's time plus the compute after its
  last advance, and, where the chain is behind, about that (a stall counts twice, but the
  next one is shortened by as much: the time follows the chain). ``user`` is the largest of
  the compute and these per-operand chain bounds.
- Wrap-arounds. Where the advance equals the window (streams of at least 2A sets), a window
  boundary that falls inside a preloaded tile (the weight-stationary filter, the
  input-stationary ifmap: R x C words read last row first) makes the tile's lower rows fall
  behind the new window, and the buffer prefetches its way around the whole stream:
  ceiling(n/A) prefetches that move the window by only r = A*ceiling(n/A) - n sets. Every
  boundary but one at a tile start does this (probability 1 - 1/(R*C)), so a stream of n
  sets costs about (n - A)/r * ceiling(n/A) prefetches instead of (n - A)/A: on gemmini
  (16x16 tiles, 1311-word sets) 20-50x the array steps for 3x3x256+ filters. Where A
  divides n the wrap-around brings the window back where it was and a boundary inside a
  tile row is stepped over twice: about twice the prefetches, window moving by A.
- Streamed operands (the ifmap of weight stationary, read along anti-diagonals) also step
  back where consecutive folds' diagonals interleave, but their words have copies where
  convolution windows overlap (k > stride) and a copy in the window is a hit, which makes
  those wrap-arounds irregular (the expected count did not describe them: no term). The
  copies also keep later passes over a stream of fewer than 2A sets from missing
  (``overlap``): only the sets beyond the first window are fetched again per pass.
- One late prefetch (tpu-v1's large buffers): its stall counts twice, 2 * (fetch - the
  compute before demand reaches it); for a preloaded operand that demand point is the fold
  whose tile holds the advance's first word (tiles of fewer columns in the last column
  fold), which makes it exact for one prefetch.

``prefetch`` is 1 + the DRAM cycles of all prefetches; ``first_order`` the earlier estimate
(compute + twice the excess of each operand's prefetches without wrap-arounds over its
demand), kept for comparison. The texts stay within the parser's bounds (``spec.expr``):
where a description's constants make them longer, the tails go first.
"""
from __future__ import annotations

import math

from .description import Accelerator
from ..spec.expr import within_bounds
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


def _straddle(acc: Accelerator, which: str, P: str, T: str, M: str) -> str:
    """Probability that a window boundary makes the operand's demand step back behind the
    new window (module docstring): preloaded tiles (R x C words, rows read last row first)
    do at every boundary not at a tile start; streamed operands get no term (copies of
    ifmap words make their step-backs irregular; output stationary's filter blocks, which
    every row fold re-reads, are not modelled either: the expected count overestimated them
    by up to 300x on systolic32/eyeriss)."""
    if _preloaded(acc, which):
        return f"{1 - 1 / (acc.rows * acc.cols)!r}"
    return "0"


def _prefetch_count(acc: Accelerator, which: str, words: str, passes: str, q: str,
                    overlap: str, whole: bool = True) -> str:
    """Expected prefetches of one operand's stream over the layer (sympy text)."""
    b = _buffer(acc, which)
    A, mp, ps = b["max_active"], b["max_prefetch"], b["per_set"]
    n = f"floor({words}/{ps} + 1)"
    beyond = f"max({n} - {A}, 0)"
    if mp >= A and q != "0":   # the advance can equal the window: steps back wrap around
        wrap = f"min(max({n} - {2 * A - 1}, 0), 1)"
        # net move of a wrap-around in sets, A*ceiling(n/A) - n, or A where that is 0
        r = f"({A}*floor({n}/{A} + 1) - {n})"
        keep = f"{(1 - float(q)) * A!r}" if _numeric(q) else f"(1 - {q})*{A}"
        move = f"({wrap}*({keep} + {q}*{r}) + (1 - {wrap})*max({n} - {A}, 1))"
        # (n + r)/A prefetches per step back; where A divides n, the window comes back
        # where it was and the step back repeats within the tile (a boundary inside a row
        # is read on both sides): twice as many
        twice = f"*(2 - min({n} - {A}*floor({n}/{A}), 1))" if whole else ""
        per_event = f"(1 + {wrap}*{q}*floor({n}/{A}){twice})"
    else:
        wrap, move, per_event = "0", f"max(min({mp}, {n} - {A}), 1)", "1"
    events = beyond
    if passes != "1":
        again = n if overlap == "0" else f"({n} - {overlap}*{A})" if wrap == "0" else \
            f"({n} - {overlap}*(1 - {wrap})*{A})"
        events = f"({beyond} + ({passes} - 1)*{again}*min({beyond}, 1))"
    return f"{events}*{per_event}/{move}"


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _first_order(acc: Accelerator, P: str, T: str, M: str, cc: str) -> str:
    """The first-order stall estimate: compute + 2 * the DRAM time by which each operand's
    prefetches (no wrap-arounds) outlast the time its demand reaches the stream's last
    advance (a stall counts twice; prefetch k completes at k * fetch - 1, the first step's
    cycle being 0). Demand reaches a stream position uniformly over the compute time for
    streamed operands, and at the start of the fold that holds it for preloaded ones
    (their stream runs in fold order, one tile per fold). Exact for one late prefetch."""
    folds = fold_count_expression(acc, P, T, M)
    excess = []
    for which, (words, passes) in _streams(acc, P, T, M).items():
        b = _buffer(acc, which)
        busy = f"{_prefetches(b, words, passes)}*{b['fetch']}"
        n_sets = f"(floor({words}/{b['per_set']}) + 1)"
        # the last prefetch is needed when demand reaches the stream's last advance
        adv = f"min({b['max_prefetch']}, max({n_sets} - {b['max_active']}, 0))"
        if _preloaded(acc, which):
            pos = f"({n_sets} - {adv})*{b['per_set']}"
            need = f"floor({pos}*{folds}/({words}))*{cc}/({folds})"
        else:
            need = f"{cc}*(1 - {adv}/{n_sets})"
        excess.append(f"2*max({busy} - 2 - {need}, 0)")
    return f"{cc} + {' + '.join(excess)}"


def stall_expressions(acc: Accelerator, pixels: str, window: str, filters: str,
                      compute: str, overlap: str = "0") -> dict:
    """``prefetch``: 1 + DRAM cycles of every prefetch (both read operands, wrap-arounds
    included; positive, so a log transform is safe); ``user``: the cycles, as the largest of
    the compute and, per operand, the time its prefetch chain needs (the chain runs on a
    fixed schedule: prefetch k completes at k * fetch) plus the compute that follows its
    last advance (the last advance's share of the last pass); ``first_order``: the earlier
    estimate (``_first_order``), exact for one late prefetch but blind to wrap-arounds.
    ``overlap``: sympy text that is 1 where an ifmap word sits at several stream positions
    (convolution windows overlap, k > stride) and 0 elsewhere."""
    P, T, M = f"({pixels})", f"({window})", f"({filters})"
    cc = f"({compute})"
    folds = fold_count_expression(acc, P, T, M)
    for tails, whole in (((0, 1), True), ((1,), True), ((), True), ((), False)):
        dram, bounds = [], [cc]
        for which, (words, passes) in _streams(acc, P, T, M).items():
            b = _buffer(acc, which)
            A, ps, fetch = b["max_active"], b["per_set"], b["fetch"]
            q = _straddle(acc, which, P, T, M)
            ov = overlap if which == "ifmap" else "0"
            busy = f"({_prefetch_count(acc, which, words, passes, q, ov, whole)})*{fetch}"
            dram.append(busy)
            n = f"floor({words}/{ps} + 1)"
            adv = f"min({b['max_prefetch']}, {n} - {A})"    # the last advance (if n > A)
            # the chain's bound, plus the compute after its last advance
            tail = f" + {cc}*{adv}/({n}*{passes})" if len(dram) - 1 in tails else ""
            bounds.append(busy + tail)
            # one late prefetch: its stall counts twice; demand reaches the last advance
            # after this share of the compute: streamed words evenly over the last pass; a
            # preloaded tile (R rows of C words, fewer columns in the last column fold) at
            # the start of its fold
            before = f"(1 - {adv}/({n}*{passes}))"
            if _preloaded(acc, which):
                rows, cols = (T, M) if acc.dataflow == "ws" else (T, P)
                x = f"({n} - {adv})*{ps}"
                x1 = f"{rows}*{acc.cols}*(ceiling({cols}/{acc.cols}) - 1)"   # full col. folds
                vc = f"({cols} - {acc.cols}*(ceiling({cols}/{acc.cols}) - 1))"
                before = (f"floor(min({x}, {x1})/{acc.rows * acc.cols} + max({x} - {x1}, 0)"
                          f"/({acc.rows}*{vc}))/({folds})")
            bounds.append(f"{cc} + 2*({fetch}*min({n} - {A}, 1) - 2 - {cc}*{before})")
        # without spaces; what does not fit the parser's bounds (spec.expr) goes: first the
        # tails, then the doubled step-backs of whole-window streams
        user = f"max({', '.join(bounds)})".replace(" ", "")
        if within_bounds(user):
            break
    return {"prefetch": f"1+{'+'.join(dram)}".replace(" ", ""), "user": user,
            "first_order": _first_order(acc, P, T, M, cc)}
