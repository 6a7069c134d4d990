"""Whole-layer evaluation: every fold (full) or until the state repeats (fast)."""
from __future__ import annotations

import time

from ..errors import ParameterError
from .description import Accelerator
from .engine import Result, State, _advance, fold, initial_state
from .layers import Layer
from .mapping import (Plan, Skew, buffer_halves, buffer_sets, layer_folds, layer_steps,
                      operand_shape, plan)
from .runs import _fold_span, _fold_words, _jump_across, _more_columns


def _finish(st: State, p: Plan, folds_evaluated: int) -> Result:
    steps = p.total_steps()
    # SCALE-Sim's total: the cycle of the last step plus its ofmap write stall
    return Result(cycles=st.last_c + st.last_so, steps=steps, evaluated=st.evaluated,
                  folds=folds_evaluated, stall_cycles=st.c - steps)


def full(p: Plan, progress=None) -> Result:
    """Every step of the dependency graph (the reference); ``progress(done, total)`` is
    called at each column fold."""
    st = initial_state(p)
    for fc in range(p.col_folds):
        if progress is not None:
            progress(fc, p.col_folds)
        for fr in range(p.row_folds):
            fold(st, p, fr, fc, fast=False)
    return _finish(st, p, p.folds)


def _key(st: State, p: Plan, fr: int, fc: int):
    parts = []
    for which, rs in st.reads.items():
        s = p.streams[which]
        if s.n_sets <= s.active:
            # the window holds the whole stream: it never moves and no read of it misses,
            # so nothing about this stream decides what follows
            parts.append(None)
            continue
        base, span = _fold_span(p, which, fr, fc)
        span = span or (base, base)
        regular = s.layout != "diag" or s.row0(fr, fc) >= s.width
        parts.append((base % s.per_set, (rs.ws - base // s.per_set) % s.n_sets,
                      span[0] - base, span[1] - base, True if regular else s.row0(fr, fc)))
    return (tuple(parts), _geometry_key(p, fr, fc), st.free, max(st.drain_end - st.c, 0),
            st.line_idx, tuple(tuple(r) for r in st.queue))


def _margin(g) -> int:
    return -(-g.R // g.stride) + 1


def _geometry_key(p: Plan, fr: int, fc: int):
    """Copies of ifmap words follow the image's geometry: folds are alike only if their
    pixels sit alike in the image (same column alignment, away from the top and bottom)."""
    g = p.geometry
    if g is None or p.mode == "calc":     # ideal bandwidth: reads are never modelled
        return None
    if g.dataflow == "os":
        R = p.acc.rows
        oy0, oy1 = (fr * R) // g.F, (fr * R + R - 1) // g.F
        regular = oy0 >= _margin(g) and oy1 <= g.E - 1 - _margin(g)
        return ((fr * R) % g.F, True) if regular else (fr, fc)
    if g.dataflow == "ws":
        return fr            # folds of window elements: no two alike
    return (fr, fc)


def _geometry_safe(p: Plan, loop: str, stop: int) -> int:
    g = p.geometry
    if g is None or p.mode == "calc" or (g.dataflow in ("os", "ws") and loop == "c"):
        return stop
    if g.dataflow == "os":
        R = p.acc.rows
        last_ok = ((g.E - _margin(g)) * g.F - R) // R   # last fold above the bottom margin
        return max(0, min(stop, last_ok))
    return 0


def _snapshot(st: State):
    return (st.c, {w: (r.ws, r.lead) for w, r in st.reads.items()}, st.influence)


def _last_safe(p: Plan, which_loop: str, start: int, stop: int, fr: int, fc: int) -> int:
    """Largest loop index < stop whose fold touches no stream's last (partial) set."""
    # a function of (loop, fc) for the inner loop (fr < rf - 1: the kind is fc's), of
    # nothing else for the outer one (fr = 0, fc < cf - 1); memoised per evaluation
    key = ("safe", which_loop, stop, fc if which_loop == "r" else (fr, fc < p.col_folds - 1))
    best = p.memo.get(key)
    if best is None:
        best = p.memo[key] = _last_safe_raw(p, which_loop, stop, fr, fc)
    return max(best, start)


def _last_safe_raw(p: Plan, which_loop: str, stop: int, fr: int, fc: int) -> int:
    best = stop
    kind = p.kind(fr, fc)
    for which, s in p.streams.items():
        d = getattr(kind, which)
        shift = (p.base(which, 1, 0, d) - p.base(which, 0, 0, d)) if which_loop == "r" \
            else (p.base(which, 0, 1, d) - p.base(which, 0, 0, d))
        if shift <= 0:
            continue
        limit = (s.n_sets - 1) * s.per_set
        if s.layout == "diag":   # diagonals near the partial last block are irregular
            limit = min(limit, s.count_lt(s.full_rows)) - 2 * s.width * (s.width + 1)
        # fold i covers [i*shift + offset, (i+1)*shift + offset)
        off = p.base(which, fr if which_loop == "c" else 0, fc if which_loop == "r" else 0, d)
        i_max = (limit - off - shift) // shift if limit - off - shift >= 0 else -1
        best = min(best, i_max + 1)
    return best


def _extrapolate(st: State, p: Plan, seen: dict, key, idx: int, stop: int, safe,
                 folds_per_iter: int) -> tuple[int, bool]:
    """If ``key`` was seen, add whole periods; returns (new index, extrapolated?).
    ``safe``: a function giving the last index periods may reach (computed only when the
    key was seen)."""
    snap = _snapshot(st)
    if key not in seen:
        seen[key] = (idx, snap)
        return idx, False
    i0, (c0, reads0, infl0) = seen[key]
    c1, reads1, infl1 = snap
    period = idx - i0
    leads_equal = all(reads0[w][1] == reads1[w][1] for w in reads1)
    drift_ok = infl1 == infl0 and all(reads1[w][1] <= reads0[w][1] for w in reads1)
    if not (leads_equal or drift_ok):
        seen[key] = (idx, snap)
        return idx, False
    q = (min(stop, safe()) - idx) // period
    if q <= 0:
        seen[key] = (idx, snap)
        return idx, False
    st.c += q * (c1 - c0)
    st.last_c += q * (c1 - c0)
    for w, rs in st.reads.items():
        n = p.streams[w].n_sets
        rs.ws = (rs.ws + q * (reads1[w][0] - reads0[w][0])) % n
        rs.lead += q * (reads1[w][1] - reads0[w][1])
    st.evaluated += 1        # the q periods are one closed-form update of the state
    seen.clear()
    return idx + q * period, True


def _nth(fr: int, fc: int, i: int, cols: bool) -> tuple[int, int]:
    """The fold i places after (fr, fc) along the inner (row) or, with one row fold, the
    outer (column) loop: consecutive folds in execution order either way."""
    return (fr, fc + i) if cols else (fr + i, fc)


def _quiet_folds(st: State, p: Plan, fr: int, fc: int, q: int, first: dict,
                 per_fold: int, cols: bool = False) -> bool:
    """True if the q folds from (fr, fc) (one kind, consecutive) provably have no event:
    every word they read sits in its buffer's current window (its own position suffices:
    copies only add hits), and their ofmap writes leave at least the active half free (no
    drain starts, no write waits). ``first``: fold fr's span per operand; ``per_fold``: its
    ofmap words. Folds of one kind are shifted copies in each stream (the shift is >= 0 and
    the same from fold to fold), so the q folds' words lie between the first fold's first
    and the last fold's last; both conditions only get harder as q grows, so the largest
    q is found by bisection."""
    if per_fold and st.free - q * per_fold < p.out_active:
        return False
    if p.mode == "user":
        lr, lc = _nth(fr, fc, q - 1, cols)
        for which, a in first.items():
            rs = st.reads[which]
            s = p.streams[which]
            b = a if q == 1 else _fold_span(p, which, lr, lc)[1]
            lo, hi = min(a[0], b[0]) // s.per_set, max(a[1], b[1]) // s.per_set
            if (lo - rs.ws) % s.n_sets + hi - lo >= s.active:
                return False
    return True


def _jump_folds(st: State, p: Plan, fr: int, fc: int, q: int) -> None:
    """q quiet folds at once: time and DMA leads move, the writes queue up (as _jump)."""
    kind = p.kind(fr, fc)
    _advance(st, p, q * _fold_words(p, fr == p.row_folds - 1, fc == p.col_folds - 1),
             q * kind.steps)


def _quiet_run(st: State, p: Plan, fr: int, fc: int, cols: bool = False) -> int:
    """The largest number of quiet folds from (fr, fc) of its kind, 0 if it is not quiet:
    along the row folds, or (``cols``, only with one row fold) along the column folds."""
    per_fold = _fold_words(p, fr == p.row_folds - 1, fc == p.col_folds - 1)
    first = {}
    if p.mode == "user":
        for which in st.reads:
            s = p.streams[which]
            if s.n_sets <= s.active:     # the window holds the whole stream: never a miss
                continue
            a = _fold_span(p, which, fr, fc)[1]
            if a is not None:
                first[which] = a
    if not _quiet_folds(st, p, fr, fc, 1, first, per_fold, cols):
        return 0
    left = (p.col_folds - 1 - fc) if cols else (p.row_folds - 1 - fr)   # same kind
    hi = left if left > 0 else 1
    if per_fold:        # the ofmap condition alone allows at most this many (closed form)
        hi = min(hi, (st.free - p.out_active) // per_fold)
    if not first:       # no stream to test: the ofmap condition decides
        return hi
    if hi == 1 or _quiet_folds(st, p, fr, fc, hi, first, per_fold, cols):
        return hi
    lo = 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _quiet_folds(st, p, fr, fc, mid, first, per_fold, cols):
            lo = mid
        else:
            hi = mid
    return lo


def _max_writes(o) -> int:
    """Most ofmap words one step of a fold writes (an anti-diagonal, or one row)."""
    return min(o.r1 - o.r0, o.cols) if isinstance(o, Skew) else o.width


def stall_free(p: Plan) -> bool:
    """True if provably no step of the layer stalls; its cycles are then the steps - 1.

    Reads: in user mode every read stream fits its buffer's first window (n_sets <= active),
    so no word ever misses (ideal bandwidth: reads are not modelled). Writes (see
    engine._write): a write waits only while a drain runs with the buffer full. A drain
    that starts frees (n-1) full lines plus at least one word and lasts n-1 cycles; if no
    step writes more than the drain width, the steps inside it cannot fill what it freed,
    so no write waits. Without drains (the layer writes at most the drain size) nothing
    waits either. Ideal bandwidth always satisfies the first (a step writes at most one
    word per column, the drain width is the columns)."""
    if p.mode == "user" and any(s.n_sets > s.active for s in p.streams.values()):
        return False
    if all(_max_writes(k.ofmap) <= p.out_width for k in p.kinds.values()):
        return True
    return _layer_writes(p) <= p.out_drain


def _layer_writes(p: Plan) -> int:
    """Ofmap words the whole layer writes (each kind's words times its folds)."""
    rf, cf = p.row_folds, p.col_folds
    n = 0
    for (last_r, last_c), k in p.kinds.items():
        cnt = (1 if last_r else rf - 1) * (1 if last_c else cf - 1)
        n += cnt * (k.ofmap.upto(k.steps) - k.ofmap.upto(0))
    return n


def fast(p: Plan, _certified: bool | None = None, progress=None) -> Result:
    """Evaluate until the state repeats; ``_certified``: the stall-free certificate if the
    caller has decided it already (``fast_layer``, from the operand shape);
    ``progress(done, total)`` is called at each column fold evaluated."""
    if stall_free(p) if _certified is None else _certified:
        steps = p.total_steps()
        return Result(cycles=steps - 1, steps=steps, evaluated=1, folds=0, stall_cycles=0)
    st = initial_state(p)
    p.memo = {}
    rf, cf = p.row_folds, p.col_folds
    outer_seen: dict = {}
    folds_done = 0
    fc = 0
    while fc < cf:
        if progress is not None:
            progress(fc, cf)
        if fc < cf - 1:
            def safe():
                return min(_last_safe(p, "c", fc, cf - 1, 0, fc), _geometry_safe(p, "c", cf - 1))
            fc2, jumped = _extrapolate(st, p, outer_seen, _key(st, p, 0, fc), fc, cf - 1, safe,
                                       rf)
            if jumped:
                fc = fc2
                continue
            if rf == 1:      # one fold per column fold: quiet runs along the column folds
                q = _quiet_run(st, p, 0, fc, cols=True)
                if q:
                    _jump_folds(st, p, 0, fc, q)
                    folds_done += 1
                    fc += q
                    continue
        inner_seen: dict = {}
        fr = 0
        while fr < rf:
            if fr < rf - 1:
                def safe():
                    return min(_last_safe(p, "r", fr, rf - 1, fr, fc),
                               _geometry_safe(p, "r", rf - 1))
                fr2, jumped = _extrapolate(st, p, inner_seen, _key(st, p, fr, fc), fr, rf - 1,
                                           safe, 1)
                if jumped:
                    fr = fr2
                    continue
            q = _quiet_run(st, p, fr, fc)
            if q:
                cols = _more_columns(st, p, fr, fc, q) if fr + q == rf - 1 else 0
                if cols:             # the run goes on to the column's end and beyond
                    _jump_across(st, p, fr, fc, q, cols)
                    folds_done += 1
                    fc += cols - 1   # lands at the start of column fold fc + cols
                    break
                _jump_folds(st, p, fr, fc, q)
                folds_done += 1
                fr += q
                continue
            fold(st, p, fr, fc, fast=True)
            folds_done += 1
            fr += 1
        fc += 1
    return _finish(st, p, folds_done)


def stall_free_shape(acc: Accelerator, layer: Layer, mode: str) -> bool:
    """``stall_free(plan(acc, layer, mode))`` from the operand shape alone (no plan): the
    streams' lengths (every valid word of the operand matrix the buffer streams), the most
    ofmap words a step writes and the layer's ofmap words, per dataflow. The property test
    holds the two equal."""
    if mode == "calc":
        return True
    Sr, T, Sc = operand_shape(acc, layer)
    R, C, df = acc.rows, acc.cols, acc.dataflow
    lengths = {"os": (T * Sr, T * Sc), "ws": (T * Sr, Sr * Sc), "is": (Sr * Sc, T * Sr)}.get(
        df, (T * Sr, T * Sc))
    for which, length in zip(("ifmap", "filter"), lengths):
        _, n_sets, max_active = buffer_sets(acc, which, length)
        if n_sets > max_active:              # the stream does not fit its first window
            return False
    vc = min(C, Sc)
    if df == "os":
        most, words = min(min(R, Sr), vc), Sr * Sc
    elif df in ("ws", "is"):
        most, words = min(T, vc), -(-Sr // R) * T * Sc
    else:
        most, words = vc, Sr * Sc
    if most <= acc.dram_bandwidth:
        return True
    return words <= buffer_halves(acc, "ofmap")[1]     # the drain size: nothing drains


def fast_layer(acc: Accelerator, layer: Layer, mode: str = "user", progress=None) -> Result:
    """``fast(plan(acc, layer, mode))`` for one group of ``layer``. A layer the stall-free
    certificate covers (every layer with ideal bandwidth, see ``stall_free``) takes its
    closed form ``steps - 1`` from the operand shape without building the plan (the same
    validation)."""
    steps = layer_steps(acc, layer, mode)
    if stall_free_shape(acc, layer, mode):
        return Result(cycles=steps - 1, steps=steps, evaluated=1, folds=0, stall_cycles=0)
    return fast(plan(acc, layer, mode), _certified=False, progress=progress)


# Bounds on the work of one evaluation (per group of a layer), checked before it starts: the
# evaluation's time grows with the folds and the steps (a 1x1 array with tiny buffers takes
# ~0.4 ms per fold, 100,000-step folds ~35 ms each), so without them a 150-byte description
# runs one ordinary layer for many minutes. The largest shipped cases stay far below: 12,544
# folds and 4.7 million steps (experiments/results/accel_cases.csv and the shipped networks on
# every shipped description); the catalog's matmul domain (up to 2048^3) reaches 65,536
# folds and 134 million steps on vector64. At the limits an evaluation takes about a minute.
MAX_FOLDS = 1 << 17            # row folds x column folds (fast evaluation)
MAX_STEPS = 1 << 28            # array steps (fast evaluation)
MAX_FULL_STEPS = 1 << 23       # --full evaluates every step (~50,000 steps/s)


def check_work(acc: Accelerator, layer: Layer, mode: str = "user", method: str = "fast") -> None:
    """Refuse (:class:`ParameterError` naming the layer, the accelerator and the limit) a layer
    whose evaluation would exceed :data:`MAX_FOLDS` / :data:`MAX_STEPS` (fast) or
    :data:`MAX_FULL_STEPS` (full); validates the layer like ``plan``. A layer the stall-free
    certificate covers takes a closed form in the fast evaluation and has no limit."""
    steps = layer_steps(acc, layer, mode)
    if method == "fast" and stall_free_shape(acc, layer, mode):
        return
    folds = layer_folds(acc, layer)
    if method == "fast":
        over = [(what, n, cap) for what, n, cap in (("folds (row folds x column folds)", folds,
                                                      MAX_FOLDS), ("array steps", steps,
                                                                   MAX_STEPS)) if n > cap]
    else:
        over = [("array steps", steps, MAX_FULL_STEPS)] if steps > MAX_FULL_STEPS else []
    if over:
        what, n, cap = over[0]
        raise ParameterError(
            f"layer {layer.name or layer.label()} on accelerator {acc.name} "
            f"({acc.rows}x{acc.cols} {acc.dataflow}): {n:,} {what}, more than the limit of "
            f"{cap:,} for {'a full' if method == 'full' else 'an'} evaluation (it bounds the "
            "time: about a minute at the limit); use a larger array or buffers, or split the "
            "layer")


def estimate(acc: Accelerator, layer: Layer, mode: str = "user", method: str = "fast",
             progress=None) -> dict:
    """Cycles (and seconds) of ``layer`` on ``acc``; depthwise layers run their channels one
    after another, each from an empty buffer (as SCALE-Sim runs them). ``progress(done,
    total)``: called at each column fold of the evaluation. A layer beyond the work limits
    (:func:`check_work`) is refused before any work."""
    check_work(acc, layer, mode, method)
    t0 = time.perf_counter()
    if method == "fast":
        r = fast_layer(acc, layer, mode, progress)
    else:
        r = full(plan(acc, layer, mode), progress)
    g = layer.groups
    elapsed = time.perf_counter() - t0
    return {"accel": acc.name, "layer": layer.name or layer.label(), "mode": mode,
            "method": method, "cycles": r.cycles * g, "seconds": r.cycles * g / (acc.clock_mhz * 1e6),
            "stall_cycles": r.stall_cycles * g, "iterations_total": r.steps * g,
            "iterations_evaluated": r.evaluated, "folds": layer_folds(acc, layer) * g,
            "macs": layer.macs(), "elapsed_s": elapsed}
