"""Evaluate the per-step dependency graph of a mapped layer: the full reference and the
fast evaluation that stops once the state repeats and extrapolates exactly.

Each step (array cycle) depends on the previous step (the PE array), on the prefetches of
its ifmap and filter words (a DMA chain per operand: a prefetch starts when the previous one
ends, and overwrites the oldest sets of the double buffer's active window) and on the
drain of the ofmap buffer (a write waits for a drain when the buffer is full; a drain starts
when half of the buffer is used). The stall rules are SCALE-Sim 3.0.0's (read_buffer,
write_buffer, double_buffered_scratchpad), including that a read stall is counted twice and
that a prefetch which finished in the past shortens a later stall of the same step.

Full evaluation steps through every step of every fold. Fast evaluation (evaluate.py):
- a layer that provably never stalls (every read stream fits its first window, or ideal
  bandwidth; no step writes more ofmap words than the drain width, or no drain at all) is
  one closed-form evaluation: steps - 1 cycles;
- a run of whole folds in which every read word sits in its current window and the ofmap
  writes leave the active half free is one jump (the longest such run, by bisection);
- inside a fold, jumps over runs of steps that provably have no event (every word hits the
  active window; no drain starts, no write waits), found by bisection on closed forms;
- across folds of the same kind, keeps the state at each fold start, normalised (window
  positions relative to the fold's stream position, drain time relative to now); when a
  normalised state repeats, the folds in between form a period and whole periods are
  added at once (time, window position, DMA lead), then evaluation goes on. A DMA that runs
  ahead of the array (its lead only shrinks) may drift instead of repeat: that is
  extrapolated too, when no step of the period depended on it.
Both use the same step function, so they agree to the cycle (tests hold them equal).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .mapping import Plan, Skew


@dataclass
class ReadState:
    ws: int = 0          # first set of the active window
    lead: int = -1       # completion cycle of the last prefetch, minus the current cycle


@dataclass
class State:
    c: int = 0                               # cycle of the next step (steps done + stalls)
    reads: dict = field(default_factory=dict)
    free: int = 0                            # ofmap words free
    drain_end: int = 0
    line_idx: int = 0                        # words in the current (partial) drain line
    queue: list = field(default_factory=list)  # undrained lines: [fill, count] runs
    last_so: int = 0                         # ofmap stall of the last step
    last_c: int = -1                         # cycle of the last step
    influence: int = 0                       # steps whose stall depended on a DMA lead
    evaluated: int = 0                       # evaluation steps (single steps and jumps)


@dataclass
class Result:
    cycles: int
    steps: int
    evaluated: int
    folds: int
    stall_cycles: int


# -- ofmap write buffer -------------------------------------------------------------------------
def _store(st: State, k: int, width: int) -> None:
    st.free -= k
    tot = st.line_idx + k
    full, st.line_idx = divmod(tot, width)
    if full:
        q = st.queue
        if q and q[-1][0] == width:
            q[-1][1] += full
        else:
            q.append([width, full])


def _drain(st: State, p: Plan, cur: int) -> None:
    width = p.out_width
    if st.line_idx:
        st.queue.append([st.line_idx, 1])
        st.line_idx = 0
    want = -(-p.out_drain // width)
    n, last_fill = 0, 0
    q = st.queue
    while q and n < want:
        fill, cnt = q[0]
        take = min(cnt, want - n)
        n += take
        last_fill = fill
        if take == cnt:
            q.pop(0)
        else:
            q[0][1] -= take
    if n == 0:
        return
    st.free += (n - 1) * width + last_fill
    st.drain_end = cur + n - 1


def _write(st: State, p: Plan, w: int, c: int) -> int:
    """Serve ``w`` ofmap writes of one step at cycle c; returns the step's write stall."""
    cur = c
    width = p.out_width
    while w > 0:
        if cur < st.drain_end:
            k = max(st.free, 1)
            if k > w:
                _store(st, w, width)
                break
            _store(st, k, width)
            cur = st.drain_end
        else:
            k = max(st.free - p.out_active + 1, 1)
            if k > w:
                _store(st, w, width)
                break
            _store(st, k, width)
            _drain(st, p, cur)
        w -= k
    return cur - c


# -- reads ----------------------------------------------------------------------------------
def _span(d, s, base: int, fr: int, fc: int, l0: int, l1: int):
    """Stream positions (first, last) of the words served by steps [l0, l1), or None."""
    if isinstance(d, Skew):
        if s.layout != "diag":
            a, b = d.upto(l0), d.upto(l1)
            return (base + a, base + b - 1) if b > a else None
        first_l, last_l = d.first_last()      # every step in between serves a word
        la, lb = max(l0, first_l), min(l1 - 1, last_l)
        if la > lb:
            return None
        row0 = s.row0(fr, fc)
        da, db = la - d.g, lb - d.g                 # anti-diagonals of the block
        ra = max(0, da - (d.r1 - 1))                # first column served on diagonal da
        rb = min(db - d.r0, d.cols - 1)             # last column served on diagonal db
        return s.pos(row0 + da - ra, ra), s.pos(row0 + db - rb, rb)
    lo_k, hi_k = max(l0 - d.g, 0), min(l1 - d.g, d.n)
    if hi_k <= lo_k:
        return None
    if d.reverse:
        r_lo, r_hi = d.n - hi_k, d.n - 1 - lo_k
    else:
        r_lo, r_hi = lo_k, hi_k - 1
    r_hi = min(r_hi, d.valid - 1)
    if r_hi < r_lo:
        return None
    if s.layout == "diag":
        row0 = s.row0(fr, fc)
        return s.pos(row0 + r_lo, 0), s.pos(row0 + r_hi, d.width - 1)
    return base + r_lo * d.width, base + r_hi * d.width + d.width - 1


def _in_window(rs: ReadState, s, set_: int) -> bool:
    return (set_ - rs.ws) % s.n_sets < s.active


def _read(st: State, p: Plan, which: str, span, c: int, kind=None, fr=0, fc=0,
          l=0) -> tuple[int, bool]:
    """SCALE-Sim's read_buffer.service_reads for one step: (stall, lead-dependent?)."""
    s = p.streams[which]
    rs = st.reads[which]
    off = 1
    first = True
    dep = False
    if which == "ifmap" and p.geometry is not None:
        a = (span[0] // s.per_set - rs.ws) % s.n_sets
        b = (span[1] // s.per_set - rs.ws) % s.n_sets
        if not (a < s.active and b < s.active and a <= b):
            from .copies import hits, line_elements, word_sets
            from .intervals import step_sets

            n, act = s.n_sets, s.active
            ss = step_sets(p, kind, fr, l)
            if ss is not None:       # the same test from the interval form's cells
                S, E = ss
                i = 0
                while i < len(S):
                    h = (((S[i:] - rs.ws) % n < act) & E[i:]).any(axis=1)
                    if h.all():
                        break
                    j = i + int(h.argmin())
                    off, first, dep = _fetch_into_window(rs, s, S[j][E[j]].tolist(), off,
                                                         first, dep)
                    i = j + 1
                return off - 1, dep
            g = p.geometry
            P, Wd = line_elements(g, kind.ifmap, fr, fc, l)
            i = 0
            while i < len(P):
                h = hits(g, s, rs.ws, P[i:], Wd[i:])
                if h.all():
                    break
                j = i + int(h.argmin())
                sets = word_sets(g, s, int(P[j]), int(Wd[j]))
                off, first, dep = _fetch_into_window(rs, s, sets, off, first, dep)
                i = j + 1
            return off - 1, dep
    for pos in span:
        set_ = pos // s.per_set
        if not _in_window(rs, s, set_):
            off, first, dep = _fetch_into_window(rs, s, (set_,), off, first, dep)
    return off - 1, dep


def _fetch_into_window(rs: ReadState, s, sets, off: int, first: bool, dep: bool
                       ) -> tuple[int, bool, bool]:
    """Prefetch (advance the read window one set, one fetch each) until one of ``sets``, the
    buffer sets of a word's copies, is in the window; SCALE-Sim's stall accounting of each
    fetch (the potential stall counts twice; the first one marks the read lead-dependent).
    Returns the updated ``(off, first, dep)``."""
    n, act = s.n_sets, s.active
    while not any((x - rs.ws) % n < act for x in sets):
        rs.ws = (rs.ws + s.advance) % s.n_sets
        rs.lead += s.fetch_cycles
        pot = rs.lead - off
        if first and pot > 0:
            dep = True
        first = False
        off += pot
        if pot > 0:
            off += pot
    return off, first, dep


def step(st: State, p: Plan, kind, fr: int, fc: int, l: int) -> None:
    """One array step (line) with every rule: the reference semantics."""
    c = st.c
    stalls = []
    deps = []
    if p.mode == "user":
        for which in ("ifmap", "filter"):
            d = getattr(kind, which)
            span = _span(d, p.streams[which], p.base(which, fr, fc, d), fr, fc, l, l + 1)
            if span is None:
                stalls.append(0)
                deps.append(False)
                continue
            s_, dep = _read(st, p, which, span, c, kind, fr, fc, l)
            stalls.append(s_)
            deps.append(dep)
    o = kind.ofmap
    w = o.upto(l + 1) - o.upto(l)
    so = _write(st, p, w, c) if w else 0
    m = max(stalls + [so])
    for i, s_ in enumerate(stalls):
        others = [so] + [x for j, x in enumerate(stalls) if j != i]
        if deps[i] or s_ > max(others):
            st.influence += 1
            break
    st.last_so = so
    st.last_c = c
    m = int(m)
    for rs in st.reads.values():
        rs.lead -= 1 + m
    st.c = c + 1 + m
    st.evaluated += 1


def _quiet_pred(st: State, p: Plan, kind, fr, fc, l: int, skip_ifmap=False):
    """A predicate of k: True if steps [l, l+k) of the fold provably have no event (every
    word read sits in the current window by its own position, skipping the ifmap with
    ``skip_ifmap``; no drain starts, no write waits). What does not depend on k is worked
    out once: the bisections call it many times and the state does not change in between.
    A stream that fits its window entirely is not tested (the window holds every set)."""
    tests = []
    if p.mode == "user":
        for which in (("filter",) if skip_ifmap else ("ifmap", "filter")):
            s = p.streams[which]
            if s.n_sets <= s.active:
                continue
            d = getattr(kind, which)
            tests.append((d, s, p.base(which, fr, fc, d), st.reads[which].ws))
    o = kind.ofmap
    w0 = o.upto(l)
    dm = max(st.drain_end - st.c, 0)
    free, active = st.free, p.out_active

    def pred(k: int) -> bool:
        for d, s, base, ws in tests:
            span = _span(d, s, base, fr, fc, l, l + k)
            if span is None:
                continue
            n = s.n_sets
            a = (span[0] // s.per_set - ws) % n
            b = (span[1] // s.per_set - ws) % n
            if a >= s.active or b >= s.active or b < a:
                return False
        wk = o.upto(l + k) - w0
        if wk == 0:
            return True
        m = dm if dm < k else k
        wm = o.upto(l + m) - w0
        if wm and free - wm < 1:
            return False
        if wk > wm and free - wk < active:
            return False
        return True
    return pred


def _jump(st: State, p: Plan, kind, l: int, k: int) -> None:
    o = kind.ofmap
    _advance(st, p, o.upto(l + k) - o.upto(l), k)


def _advance(st: State, p: Plan, w: int, k: int) -> None:
    """``k`` quiet steps in one evaluation: ``w`` output words queue up, time and the DMA
    leads move."""
    if w:
        _store(st, w, p.out_width)
    st.last_so = 0
    for rs in st.reads.values():
        rs.lead -= k
    st.last_c = st.c + k - 1
    st.c += k
    st.evaluated += 1


def fold(st: State, p: Plan, fr: int, fc: int, fast: bool) -> None:
    kind = p.kind(fr, fc)
    n = kind.steps
    l = 0
    if not fast:
        while l < n:
            step(st, p, kind, fr, fc, l)
            l += 1
        return
    copies = p.mode == "user" and p.geometry is not None
    while l < n:
        k, event_next = _quiet_len(st, p, kind, fr, fc, l, n - l, copies)
        if k:
            _jump(st, p, kind, l, k)
            l += k
        if l < n and (not k or event_next):
            step(st, p, kind, fr, fc, l)
            l += 1


def _longest(pred, lo: int, hi: int) -> int:
    """Largest k in [lo, hi] with pred(k), given pred(lo) and pred monotone (true up to a
    point)."""
    if pred(hi):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pred(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _quiet_len(st: State, p: Plan, kind, fr, fc, l: int, rem: int,
               copies: bool) -> tuple[int, bool]:
    """The longest run of steps from l (at most rem) that provably has no event: first by
    the words' own stream positions, then (copied ifmap words) extended by the steps whose
    ifmap words hit through a copy, so that the whole run is one jump. Also says whether
    the copy test already found that the step after the run misses (then it is an event)."""
    own = 0
    pred = _quiet_pred(st, p, kind, fr, fc, l)
    if pred(1):
        own = _longest(pred, 1, rem)
    if not copies or own == rem:
        return own, False
    pred_f = _quiet_pred(st, p, kind, fr, fc, l, skip_ifmap=True)
    if not pred_f(own + 1):
        return own, False
    from .copies import quiet_steps
    from .intervals import quiet_steps_split

    extra = quiet_steps_split(p, st, kind, fr, fc, l + own, rem - own)
    if extra is None:
        extra = quiet_steps(p, st, kind, fr, fc, l + own, rem - own)
    if extra == 0:
        return own, True
    return _longest(pred_f, own + 1, own + extra), False


def initial_state(p: Plan) -> State:
    st = State(free=p.out_total)
    if p.mode == "user":
        st.reads = {w: ReadState() for w in ("ifmap", "filter")}
    return st
