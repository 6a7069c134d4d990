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

- SCALE-Sim's total is the cycle of the last step: steps - 1 plus the stalls, so ``user`` is
  ``compute - 1 + max(0, ...)`` (a stall-free layer is exact; the earlier ``compute + ...``
  was 1/compute high, 0.13 % on the smallest layers).
- The prefetch chain runs on a fixed schedule (prefetch k completes at k * fetch, whenever
  it was asked for), so a layer takes at least the chain's time plus the compute after its
  last event, and, where the chain is behind, about that (a stall counts twice, but the
  next one is shortened by as much: the time follows the chain). ``user`` is the largest of
  the compute and these per-operand chain bounds.
- Wrap-arounds. Where the advance equals the window (streams of at least 2A sets), a window
  boundary that falls inside a preloaded tile (the weight-stationary filter, the
  input-stationary ifmap: R x C words read last row first) makes the tile's lower rows fall
  behind the new window, and the buffer prefetches its way around the whole stream:
  ceiling(n/A) prefetches that move the window by only r = A*ceiling(n/A) - n sets. Every
  boundary but one at a tile start does this (probability 1 - 1/(R*C), taken as 1 where
  A/(R*C) < 0.001, tpu-v1), so a stream of n sets has ceiling((n - A)/r) whole events of
  1 + floor(n/A) prefetches (a stream of fewer than 2A - 1 sets one advance), instead of
  (n - A)/A: on gemmini (16x16 tiles, 1311-word sets) 20-50x the array steps for 3x3x256+
  filters; on tpu-v1 (streams of 100-150 filter sets) 2-3 events of 3 prefetches, where
  the expected count (n - A)/r * 3 gave 3.8-6.1 and the tail of the last advance's share
  (A/n of the compute) stood for the compute after the last event, whose demand point is
  A + (events - 1)*r sets into the stream. Where A divides n the wrap-around brings the
  window back where it was and a boundary inside a tile row is stepped over twice: about
  twice the prefetches, window moving by A.
- Streamed operands (the ifmap of weight stationary, read along anti-diagonals) also step
  back where consecutive folds' diagonals interleave, but their words have copies where
  convolution windows overlap (k > stride) and a copy in the window is a hit, which makes
  those wrap-arounds irregular (the expected count did not describe them: no term). The
  copies also keep later passes over a stream of fewer than 2A sets from missing
  (``overlap``): only the sets beyond the first window are fetched again per pass.
- One late prefetch (tpu-v1's large buffers): its stall counts twice, 2 * (fetch - the
  compute before demand reaches the first advance's first word, x = A sets into the
  stream). For a preloaded operand that demand point is the start of the fold whose tile
  holds x: column fold j = floor(x/(rows*C)) of ceiling(rows/R) folds, then tiles of R rows
  of C (in the last column fold fewer) columns; exact for one prefetch. A streamed operand
  (the weight-stationary ifmap) is stored along the anti-diagonals of its stacked blocks
  (P pixel rows by R window rows each): x lies on diagonal D = x/R + (R - 1)/2, which the
  block holding row D - (R - 1) (column R - 1) reaches first, at step R + D - its first row
  of that block's fold (sometimes the block before x's own; the word-share estimate,
  x/stream of the compute, put the stall up to 9 % off on tpu-v1). With copies
  (k > stride) a block whose rows all lie at or after ``copy_rows`` (s*k*c: every word has
  a copy s filter rows up, in an earlier block) misses only in its last output row: demand
  at the block's end.

``prefetch`` is 1 + the DRAM cycles of all prefetches; ``first_order`` the earlier estimate
(compute + twice the excess of each operand's prefetches without wrap-arounds over its
demand), kept for comparison. The texts are written without redundant parentheses and stay
within the parser's bounds (``spec.expr``: 2,000 characters, 1,500 syntax-tree nodes);
where a description's constants make them longer, parts go in the order of ``_ALL`` (the
ifmap's tail goes on tpu-v1 and gemmini).
"""
from __future__ import annotations

import ast
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
        miss = 1 / (acc.rows * acc.cols)
        # a boundary at a tile start is negligible against a window of A sets: 1
        return "1" if miss * _buffer(acc, which)["max_active"] < 1e-3 else f"{1 - miss!r}"
    return "0"


def _prefetch_count(acc: Accelerator, which: str, words: str, passes: str, q: str,
                    overlap: str, whole: bool = True) -> tuple[str, str]:
    """Prefetches of one operand's stream over the layer, and the sets of the stream before
    the last event's demand on a pass (sympy text)."""
    b = _buffer(acc, which)
    A, mp, ps = b["max_active"], b["max_prefetch"], b["per_set"]
    n = f"floor({words}/{ps} + 1)"
    beyond = f"max({n} - {A}, 0)"
    if mp >= A and q != "0":   # the advance can equal the window: steps back wrap around
        wrap = f"min(max({n} - {2 * A - 1}, 0), 1)"
        # net move of a wrap-around in sets, A*ceiling(n/A) - n, or A where that is 0
        r = f"({A}*floor({n}/{A} + 1) - {n})"
        keep = f"{(1 - float(q)) * A!r} + " if _numeric(q) else f"(1 - {q})*{A} + "
        step = f"{r}" if q == "1" else f"({keep}{q}*{r})"
        move = f"({wrap}*{step} + (1 - {wrap})*max({n} - {A}, 1))"
        # (n + r)/A prefetches per step back; where A divides n, the window comes back
        # where it was and the step back repeats within the tile (a boundary inside a row
        # is read on both sides): twice as many
        twice = f"*(2 - min({n} - {A}*floor({n}/{A}), 1))" if whole else ""
        per_event = f"(1 + {wrap}*{'' if q == '1' else q + '*'}floor({n}/{A}){twice})"
        if passes == "1":   # (preloaded streams are read once)
            # whole events: a stream of fewer than 2A - 1 sets has at most one (one advance,
            # no step back); a longer one needs ceiling(beyond/move) events of `step`
            # sets, the last one demanded where the stream reaches the window's end after
            # the others, A + (events - 1)*step sets into the stream
            more = f"{wrap}*(ceiling({beyond}/{step}) - 1)"     # events after the first
            return f"(min({beyond}, 1) + {more})*{per_event}", f"({A} + {more}*{step})"
    else:
        wrap, move, per_event = "0", f"max(min({mp}, {n} - {A}), 1)", "1"
    events = beyond
    if passes != "1":
        again = n if overlap == "0" else f"({n} - {overlap}*{A})" if wrap == "0" else \
            f"({n} - {overlap}*(1 - {wrap})*{A})"
        events = f"({beyond} + ({passes} - 1)*{again}*min({beyond}, 1))"
    # whole events: each moves the window by `move` sets; the last one is demanded where
    # the stream reaches the window's end after the others
    count = f"ceiling({events}/{move})" + ("" if per_event == "1" else f"*{per_event}")
    before = f"({A} + (ceiling({beyond}/{move}) - 1)*{move})"
    return count, before


def _per_fold(acc: Accelerator, P: str, T: str, M: str) -> str:
    """Steps of every fold of a weight- or input-stationary array (mapping.steps_per_fold)."""
    return f"({P if acc.dataflow == 'ws' else M} + {2 * acc.rows + acc.cols - 2})"


def _compact(text: str) -> str:
    """The same syntax tree written without redundant parentheses or spaces."""
    return ast.unparse(ast.parse(text, mode="eval")).replace(" ", "")


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
                      compute: str, overlap: str = "0", copy_rows: str = "0") -> dict:
    """``prefetch``: 1 + DRAM cycles of every prefetch (both read operands, wrap-arounds
    included; positive, so a log transform is safe); ``user``: the cycles, as the largest of
    the compute and, per operand, the time its prefetch chain needs (the chain runs on a
    fixed schedule: prefetch k completes at k * fetch) plus the compute that follows its
    last event (its share of the last pass), and the stall of one late prefetch, less one
    (SCALE-Sim's total is the last step's cycle); ``first_order``: the earlier estimate
    (``_first_order``), exact for one late prefetch but blind to wrap-arounds.
    ``overlap``: sympy text that is 1 where an ifmap word sits at several stream positions
    (convolution windows overlap, k > stride) and 0 elsewhere; ``copy_rows``: sympy text,
    the first window row from which every ifmap word has a copy earlier in the stream (a
    convolution's s*k*c), or "0" (no such rows)."""
    P, T, M = f"({pixels})", f"({window})", f"({filters})"
    cc = f"({compute})"
    for opts in _FALLBACKS:
        dram, extra = [], ["0"]
        for i, (which, (words, passes)) in enumerate(_streams(acc, P, T, M).items()):
            b = _buffer(acc, which)
            A, ps, fetch = b["max_active"], b["per_set"], b["fetch"]
            q = _straddle(acc, which, P, T, M)
            ov = overlap if which == "ifmap" else "0"
            count, before = _prefetch_count(acc, which, words, passes, q, ov, "twice" in opts)
            busy = f"{count}*{fetch}"
            dram.append(busy)
            n = f"floor({words}/{ps} + 1)"
            # the chain's bound, plus the compute after its last event (the share of the
            # last pass that follows it), both less the compute
            if f"tail{i}" in opts:
                share = f"{before}/{n}" if passes == "1" else \
                    f"(1 - ({n} - {before})/({n}*{passes}))"
                extra.append(f"{busy} - {cc}*{share}")
            else:
                extra.append(f"{busy} - {cc}")
            # one late prefetch: its stall counts twice; D is the compute before demand
            # reaches the first advance's first word
            D = _demand(acc, which, P, T, M, cc, n, b, passes, copy_rows, opts)
            extra.append(f"2*({fetch}*min({n} - {A}, 1) - 2 - ({D}))")
        # without spaces; what does not fit the parser's bounds (spec.expr) goes, in the
        # order of _FALLBACKS
        user = _compact(f"{cc} - 1 + max({', '.join(extra)})")
        if within_bounds(user):
            break
    return {"prefetch": _compact(f"1+{'+'.join(dram)}"), "user": user,
            "first_order": _first_order(acc, P, T, M, cc)}


# Parts of ``user`` in the order they are given up where the text would not fit the parser's
# bounds: the chain tails (ifmap, filter), the block rule of copied ifmap words, the column
# folds of a preloaded tile's demand, the streamed operand's diagonal demand point, the
# doubled step-backs of whole-window streams.
_ALL = ("tail0", "tail1", "copies", "colfolds", "blocks", "twice")
_FALLBACKS = tuple(tuple(o for o in _ALL if o not in _ALL[:i]) for i in range(len(_ALL) + 1))


def _demand(acc: Accelerator, which: str, P: str, T: str, M: str, cc: str, n: str, b: dict,
            passes: str, copy_rows: str, opts) -> str:
    """Compute (array steps) before demand reaches the first word of the stream's first
    advance, x = A sets in, on the last pass (sympy text); the late-prefetch bound of one
    prefetch (where there are more, the chain bound is the larger)."""
    A, mp, ps = b["max_active"], b["max_prefetch"], b["per_set"]
    R, C = acc.rows, acc.cols
    x = f"{A * ps}"
    if _preloaded(acc, which):
        # a preloaded tile (R rows of C words, fewer columns in the last column fold) is
        # needed at the start of its fold; column folds of ceiling(rows/R) folds each
        rows, cols = (T, M) if acc.dataflow == "ws" else (T, P)
        if "colfolds" in opts:
            # column fold j of x (x < the stream's rows*cols words), tiles of fewer columns
            # in the last one
            j = f"floor({x}/({rows}*{C}))"
            fold = (f"({j}*ceiling({rows}/{R}) + floor(({x} - {j}*{rows}*{C})"
                    f"/({R}*min({C}, {cols} - {j}*{C}))))")
        else:
            x1 = f"{rows}*{C}*(ceiling({cols}/{C}) - 1)"   # words of the full column folds
            vc = f"({cols} - {C}*(ceiling({cols}/{C}) - 1))"
            tail = f"max({x} - {x1}, 0)/({R}*{vc})"
            fold = f"floor(min({x}, {x1})/{R * C} + {tail})"
        # (where the stream fits its window, x lies beyond it: the bound is off anyway,
        # the max keeps it negative)
        return f"max({fold}, 0)*{_per_fold(acc, P, T, M)}"
    if "blocks" not in opts or acc.dataflow not in ("ws", "is"):
        return f"{cc}*(1 - min({mp}, {n} - {A})/({n}*{passes}))"
    # a streamed operand (ws ifmap, is filter): blocks of Bk rows of R words (the last block
    # ``T - R*(ceiling(T/R) - 1)`` words wide), block b read diagonally in fold b of each
    # pass, from step R on, Bk steps long
    Bk = P if acc.dataflow == "ws" else M
    spf = _per_fold(acc, P, T, M)
    # the stream runs along the anti-diagonals of the stacked blocks (R wide): word x is on
    # diagonal x/R + (R - 1)/2, first read by the block holding its row in column R - 1,
    # on the block's step R + (diagonal - the block's first row)
    diag = A * ps / R + (R - 1) / 2
    blk = f"floor({diag - (R - 1)!r}/{Bk})"
    into = f"{diag!r} - {blk}*{Bk}"
    if "copies" in opts and copy_rows != "0":
        # where every row of the block has a copy earlier in the stream (rows from
        # copy_rows on), the first miss is in the block's last output row: its end
        into = f"max({into}, {Bk}*min(max({blk}*{R} - {copy_rows} + 1, 0), 1))"
    return f"(({passes} - 1)*ceiling({T}/{R}) + {blk})*{spf} + {R} + {into}"
