"""Map a layer onto an accelerator's loop kernels: folds (tiles of the operand matrices on
the PE array) and, for every array step (one "line": one cycle without stalls), what each
operand buffer serves.

The structure follows SCALE-Sim 3.0.0's compute models exactly (systolic_compute_{os,ws,is}):

- output stationary: ifmap rows = output pixels (Sr), window T = R*S*C is streamed,
  filters (Sc) over the columns; a fold takes T + rows + cols - 2 steps.
- weight stationary: the filter tile is preloaded (rows steps), the ifmap streams over the
  output pixels T; 2*rows + cols + T - 2 steps per fold.
- input stationary: the ifmap tile is preloaded, the filters stream; same step count.
- vector (not systolic): one output pixel at a time on ``cols`` lanes, window streamed one
  element per step with a broadcast input, no skew; T + mac_latency steps per fold.

Folds run column fold outer, row fold inner, as in SCALE-Sim. An operand's demand in a fold
is either a *skewed block* (rows x valid columns, starting at a step offset: step l serves
the anti-diagonal l - offset) or *rows* (one block row of ``valid`` words per step, possibly
in reverse order). Positions in the operand's prefetch stream index the on-chip buffer's
sets (see engine.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ParameterError
from .description import Accelerator
from .layers import Layer


def tri(x: int, h: int) -> int:
    """sum_{v=1..x} min(v, h) (0 for x <= 0)."""
    if x <= 0:
        return 0
    if x <= h:
        return x * (x + 1) // 2
    return h * (h + 1) // 2 + (x - h) * h


def rect_lt(r0: int, r1: int, c0: int, c1: int, d: int) -> int:
    """Number of (r, c) in [r0, r1) x [c0, c1) with r + c < d."""
    if r1 <= r0 or c1 <= c0:
        return 0
    h = r1 - r0
    return tri(d - r0 - c0, h) - tri(d - r0 - c1, h)


@dataclass(frozen=True)
class Skew:
    """Rectangle [r0, r1) x [0, cols) of a block, skewed: step l serves anti-diagonal l - g."""
    r0: int
    r1: int
    cols: int
    g: int

    def upto(self, l: int) -> int:          # words served by steps < l (within the fold)
        return rect_lt(self.r0, self.r1, 0, self.cols, l - self.g)

    def first_last(self) -> tuple[int, int]:  # steps that serve something
        return self.g + self.r0, self.g + self.r1 - 1 + self.cols - 1


@dataclass(frozen=True)
class Rows:
    """``n`` block rows of ``width`` words, one row per step from step g; ``reverse``: the
    last row first; only rows < ``valid`` hold data."""
    n: int
    valid: int
    width: int
    g: int
    reverse: bool = False

    def row(self, l: int) -> int:            # block row served at step l, or -1
        k = l - self.g
        if k < 0 or k >= self.n:
            return -1
        r = self.n - 1 - k if self.reverse else k
        return r if r < self.valid else -1

    def upto(self, l: int) -> int:
        k = min(max(l - self.g, 0), self.n)
        if self.reverse:   # rows n-1 .. n-k served; valid ones are those < valid
            lo = self.n - k
            return max(0, self.valid - lo) * self.width if lo < self.valid else 0
        return min(k, self.valid) * self.width

    def first_last(self) -> tuple[int, int]:
        if self.reverse:
            return self.g + self.n - self.valid, self.g + self.n - 1
        return self.g, self.g + self.valid - 1


@dataclass(frozen=True)
class FoldKind:
    """Everything about a fold except where its operands sit in the streams."""
    steps: int
    ifmap: object      # Skew | Rows
    filter: object
    ofmap: object      # Skew | Rows (words written per step)


@dataclass
class Stream:
    """An operand's prefetch stream in its double-buffered on-chip buffer (SCALE-Sim's
    read_buffer): ``length`` words, grouped in sets of ``per_set`` words; ``n_sets`` sets in
    all; the active window holds ``active`` sets and moves by ``advance`` sets per prefetch,
    which takes ``fetch_cycles`` cycles."""
    length: int
    per_set: int
    n_sets: int
    active: int
    advance: int
    fetch_cycles: int
    block: int          # stream words per fold step of the inner loop (base shift)
    outer_block: int    # stream words per outer-loop step
    rowmajor: bool = False   # Rows demand: position = base + row * width
    diag_rows: int = 0       # Rows demand from a diagonal-order stream of diag_rows rows


@dataclass
class Plan:
    acc: Accelerator
    layer: Layer
    mode: str
    row_folds: int
    col_folds: int
    kinds: dict = field(default_factory=dict)   # (last_row, last_col) -> FoldKind
    streams: dict = field(default_factory=dict)  # "ifmap"/"filter" -> Stream
    out_width: int = 1        # ofmap drain words per cycle
    out_total: int = 1        # ofmap buffer words
    out_active: int = 1
    out_drain: int = 1

    @property
    def folds(self) -> int:
        return self.row_folds * self.col_folds

    def kind(self, fr: int, fc: int) -> FoldKind:
        return self.kinds[(fr == self.row_folds - 1, fc == self.col_folds - 1)]

    def base(self, which: str, fr: int, fc: int, demand) -> int:
        """Stream position of the fold's first word of ``which``."""
        s = self.streams[which]
        if isinstance(demand, Rows) and s.block:   # tiles of rows of width `width`
            return fc * s.outer_block + fr * demand.n * demand.width
        return fr * s.block + fc * s.outer_block

    def total_steps(self) -> int:
        rf, cf = self.row_folds, self.col_folds
        n = 0
        for last_r, cnt_r in ((False, rf - 1), (True, 1)):
            for last_c, cnt_c in ((False, cf - 1), (True, 1)):
                if cnt_r and cnt_c:
                    n += cnt_r * cnt_c * self.kinds[(last_r, last_c)].steps
        return n


def rows_span(s: "Stream", d: Rows, base_outer: int, fr: int, r_lo: int, r_hi: int):
    """Stream positions of block rows [r_lo, r_hi] of fold row fr."""
    if s.diag_rows:   # rows of a (diag_rows x width) matrix stored along anti-diagonals
        g_lo, g_hi = fr * d.n + r_lo, fr * d.n + r_hi
        return (base_outer + rect_lt(0, s.diag_rows, 0, d.width, g_lo),
                base_outer + rect_lt(0, s.diag_rows, 0, d.width, g_hi + d.width) - 1)
    b = base_outer + fr * d.n * d.width if s.block else base_outer
    return b + r_lo * d.width, b + r_hi * d.width + d.width - 1


def _stream(acc: Accelerator, which: str, length: int, block: int, outer: int,
            rowmajor: bool = False) -> Stream:
    total = acc.buffer_words(which)
    active_words = math.ceil(total * 0.5)            # SCALE-Sim: active_buf_frac 0.5
    prefetch_words = total - active_words
    per_set = math.ceil(total / 100)
    n_sets = length // per_set + 1                   # SCALE-Sim keeps a last (partial) set
    max_active = math.ceil(active_words / per_set)
    max_prefetch = math.ceil(prefetch_words / per_set)
    active = min(max_active, n_sets)
    advance = min(max_prefetch, n_sets - active)
    fetch = math.ceil(prefetch_words / acc.dram_bandwidth) + acc.dram_latency
    return Stream(length, per_set, n_sets, active, advance, fetch, block, outer, rowmajor)


def plan(acc: Accelerator, layer: Layer, mode: str = "user") -> Plan:
    """The folds and per-step demands of one group of ``layer`` on ``acc``."""
    if mode not in ("user", "calc"):
        raise ParameterError(f"mode must be 'user' (finite DRAM bandwidth) or 'calc' "
                             f"(ideal bandwidth), got {mode!r}")
    words = layer.words()
    for which, n in words.items():
        if n > acc.address_space_words:
            raise ParameterError(f"layer {layer.name or layer.label()}: {which} needs {n} "
                                 f"words, more than {acc.name} addresses per operand "
                                 f"({acc.address_space_words})")
    P, T_win, M = layer.gemm_dims()
    R, C = acc.rows, acc.cols
    df = acc.dataflow
    if df == "os":
        Sr, T, Sc = P, T_win, M
    elif df == "ws":
        Sr, T, Sc = T_win, P, M
    elif df == "is":
        Sr, T, Sc = T_win, M, P
    else:  # vector: one pixel per fold (rows = 1), filters over the lanes
        Sr, T, Sc = P, T_win, M
    rf, cf = math.ceil(Sr / R), math.ceil(Sc / C)
    vr_last, vc_last = Sr - (rf - 1) * R, Sc - (cf - 1) * C
    kinds = {}
    for last_r in (False, True):
        for last_c in (False, True):
            vr = vr_last if last_r else R
            vc = vc_last if last_c else C
            if df == "os":
                k = FoldKind(T + R + C - 2, Skew(0, T, vr, 0), Skew(0, T, vc, 0),
                             Skew(R - vr, R, vc, T - 1))
            elif df == "ws":
                k = FoldKind(2 * R + C + T - 2, Skew(0, T, vr, R),
                             Rows(R, vr, vc, 0, reverse=True), Skew(0, T, vc, 2 * R - 1))
            elif df == "is":
                k = FoldKind(2 * R + C + T - 2, Rows(R, vr, vc, 0, reverse=True),
                             Skew(0, T, vr, R), Skew(0, T, vc, 2 * R - 1))
            else:
                lat = acc.mac_latency
                k = FoldKind(T + lat, Skew(0, T, 1, 0), Rows(T, T, vc, 0),
                             Rows(1, 1, vc, T + lat - 1))
            kinds[(last_r, last_c)] = k
    p = Plan(acc, layer, mode, rf, cf, kinds)
    if df == "os":
        p.streams["ifmap"] = _stream(acc, "ifmap", T * Sr, T * R, 0)
        p.streams["filter"] = _stream(acc, "filter", T * Sc, 0, T * C)
    elif df == "ws":
        p.streams["ifmap"] = _stream(acc, "ifmap", T * Sr, T * R, 0)
        p.streams["filter"] = _stream(acc, "filter", Sr * Sc, R * C, Sr * C, rowmajor=True)
    elif df == "is":
        p.streams["ifmap"] = _stream(acc, "ifmap", Sr * Sc, R * C, Sr * C)
        p.streams["ifmap"].diag_rows = Sr
        p.streams["filter"] = _stream(acc, "filter", T * Sr, T * R, 0)
    else:
        p.streams["ifmap"] = _stream(acc, "ifmap", T * Sr, T, 0)
        p.streams["filter"] = _stream(acc, "filter", T * Sc, 0, T * C, rowmajor=True)
    out_words = acc.buffer_words("ofmap")
    p.out_width = C if mode == "calc" else acc.dram_bandwidth
    p.out_total = out_words
    p.out_active = math.ceil(out_words * 0.5)
    p.out_drain = out_words - p.out_active
    return p
