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
    x = d - r0 - c0              # tri(x, h) - tri(y, h), inlined (a hot path)
    if x <= 0:
        return 0
    a = x * (x + 1) // 2 if x <= h else h * (h + 1) // 2 + (x - h) * h
    y = x - c1 + c0
    if y <= 0:
        return a
    return a - (y * (y + 1) // 2 if y <= h else h * (h + 1) // 2 + (y - h) * h)


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
    layout: str = "diag"     # "diag": blocks of rows stacked, read along anti-diagonals;
                             # "rowmajor": tiles of rows stacked, read row by row
    width: int = 1           # diag: matrix columns (array rows or columns)
    full_rows: int = 0       # diag: rows with `width` valid columns
    total_rows: int = 0      # diag: all rows (the last block has `v_last` valid columns)
    v_last: int = 0
    inner_rows: int = 0      # diag: block rows per inner-loop step (fr)
    outer_rows: int = 0      # diag: block rows per outer-loop step (fc)

    def count_lt(self, D: int) -> int:
        """Valid words on anti-diagonals < D."""
        return rect_lt(0, self.full_rows, 0, self.width, D) + \
            rect_lt(self.full_rows, self.total_rows, 0, self.v_last, D)

    def pos(self, row: int, col: int) -> int:
        """Stream position of the word at (row, col) of a diag stream."""
        D = row + col
        W = self.width
        fr = self.full_rows
        if W - 1 <= D < fr:    # a full diagonal inside the full blocks
            return W * D - W * (W - 1) // 2 + col
        # the valid words on diagonals < D, plus those on diagonal D in columns < col: an
        # interval of columns in the full rows, one in the last block's (copies._general)
        tr = self.total_rows
        a = min(col, W, D + 1) - max(D - fr + 1, 0)
        b = min(col, self.v_last, D - fr + 1) - max(D - tr + 1, 0)
        return self.count_lt(D) + (a if a > 0 else 0) + (b if b > 0 else 0)

    def row0(self, fr: int, fc: int) -> int:
        return fr * self.inner_rows + fc * self.outer_rows


@dataclass(frozen=True)
class Geometry:
    """Where an ifmap word sits: convolution windows overlap, so one input word appears at
    several places of the ifmap stream; a buffer hit needs only one of them in the window."""
    dataflow: str
    W: int
    C: int
    R: int
    S: int
    stride: int
    E: int
    F: int
    T: int          # stream block rows
    Sr: int         # window size (is)
    arr_rows: int
    arr_cols: int

    def line(self, d, fr: int, fc: int, l: int):
        """(pixel, window index) of the ifmap words served at step l, in serving order."""
        R, C = self.arr_rows, self.arr_cols
        if self.dataflow == "os":
            k = l - d.g
            return [(fr * R + r, k - r) for r in range(max(0, k - d.r1 + 1), min(k, d.cols - 1) + 1)]
        if self.dataflow == "ws":
            k = l - d.g
            return [(k - j, fr * R + j) for j in range(max(0, k - d.r1 + 1), min(k, d.cols - 1) + 1)]
        rr = d.row(l)
        if rr < 0:
            return []
        return [(fc * C + c, fr * R + rr) for c in range(d.width)]

    def position(self, s: "Stream", p: int, w: int) -> int:
        """Position of (pixel, window index) in the ifmap stream."""
        R, C = self.arr_rows, self.arr_cols
        if self.dataflow == "os":
            return s.pos((p // R) * self.T + w, p % R)
        if self.dataflow == "ws":
            return s.pos((w // R) * self.T + p, w % R)
        blk = p // C        # is: row-major tiles of Sr rows, C (last: fewer) columns
        pixels = self.E * self.F
        width = min(C, pixels - blk * C)
        return blk * self.Sr * C + w * width + p % C

    def occurrences(self, p: int, w: int):
        """Every (pixel, window index) that reads the same input word."""
        oy, ox = divmod(p, self.F)
        kr, rem = divmod(w, self.S * self.C)
        ks, ch = divmod(rem, self.C)
        y, x = oy * self.stride + kr, ox * self.stride + ks
        s = self.stride
        out = []
        for kr2 in reversed(range(y % s, min(self.R, y + 1), s)):   # earliest copies first
            oy2 = (y - kr2) // s
            if oy2 >= self.E:
                continue
            for ks2 in reversed(range(x % s, min(self.S, x + 1), s)):
                ox2 = (x - ks2) // s
                if ox2 >= self.F:
                    continue
                out.append((oy2 * self.F + ox2, (kr2 * self.S + ks2) * self.C + ch))
        return out


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
    geometry: Geometry | None = None   # ifmap words read by several windows
    # pure functions of this plan's folds, memoised by one fast evaluation (evaluate.fast
    # empties it at its start, so nothing is carried from one evaluation to the next)
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def folds(self) -> int:
        return self.row_folds * self.col_folds

    def kind(self, fr: int, fc: int) -> FoldKind:
        return self.kinds[(fr == self.row_folds - 1, fc == self.col_folds - 1)]

    def base(self, which: str, fr: int, fc: int, demand) -> int:
        """Where the fold's words of ``which`` start in the stream (a shift: folds of one
        kind differ by multiples of it)."""
        s = self.streams[which]
        if s.layout == "diag":
            return s.row0(fr, fc) * s.width
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


def _diag(acc, which, block_rows, n_blocks, width, v_last, inner_rows, outer_rows) -> Stream:
    total = block_rows * n_blocks
    full = block_rows * (n_blocks - 1) if v_last < width else total
    length = full * width + (total - full) * v_last
    s = _stream(acc, which, length, inner_rows * width, outer_rows * width)
    s.width, s.full_rows, s.total_rows, s.v_last = width, full, total, v_last
    s.inner_rows, s.outer_rows = inner_rows, outer_rows
    return s


def buffer_halves(acc: Accelerator, which: str) -> tuple[int, int]:
    """(active, prefetch or drain) words of ``which``'s double buffer (SCALE-Sim:
    active_buf_frac 0.5)."""
    total = acc.buffer_words(which)
    active = -(-total // 2)
    return active, total - active


def buffer_sets(acc: Accelerator, which: str, length: int) -> tuple[int, int, int]:
    """(words per set, sets, most sets in the active window) of a ``length``-word stream in
    ``which``'s buffer: SCALE-Sim moves a read buffer in sets of 1/100 of its size and keeps
    a last (partial) set."""
    per_set = -(-acc.buffer_words(which) // 100)
    return per_set, length // per_set + 1, -(-buffer_halves(acc, which)[0] // per_set)


def _stream(acc: Accelerator, which: str, length: int, block: int, outer: int,
            rowmajor: bool = False) -> Stream:
    prefetch_words = buffer_halves(acc, which)[1]
    per_set, n_sets, max_active = buffer_sets(acc, which, length)
    max_prefetch = math.ceil(prefetch_words / per_set)
    active = min(max_active, n_sets)
    advance = min(max_prefetch, n_sets - active)
    fetch = math.ceil(prefetch_words / acc.dram_bandwidth) + acc.dram_latency
    return Stream(length, per_set, n_sets, active, advance, fetch, block, outer,
                  "rowmajor" if rowmajor else "diag")


def _check(acc: Accelerator, layer: Layer, mode: str) -> None:
    if mode not in ("user", "calc"):
        raise ParameterError(f"mode must be 'user' (finite DRAM bandwidth) or 'calc' "
                             f"(ideal bandwidth), got {mode!r}")
    words = layer.words()
    for which, n in words.items():
        if n > acc.address_space_words:
            raise ParameterError(f"layer {layer.name or layer.label()}: {which} needs {n} "
                                 f"words, more than {acc.name} addresses per operand "
                                 f"({acc.address_space_words})")


def operand_shape(acc: Accelerator, layer: Layer) -> tuple[int, int, int]:
    """(Sr, T, Sc): the rows folded over the array's rows, the streamed length, the columns
    folded over the array's columns (SCALE-Sim's operand matrices for the dataflow)."""
    P, T_win, M = layer.gemm_dims()
    df = acc.dataflow
    if df == "ws":
        return T_win, P, M
    if df == "is":
        return T_win, M, P
    return P, T_win, M       # os; vector: one pixel per fold (rows = 1), filters on lanes


def steps_per_fold(acc: Accelerator, T: int) -> int:
    """Array steps of every fold (the same for edge folds: SCALE-Sim pads them)."""
    R, C = acc.rows, acc.cols
    if acc.dataflow == "os":
        return T + R + C - 2
    if acc.dataflow in ("ws", "is"):
        return 2 * R + C + T - 2
    return T + acc.mac_latency


def layer_folds(acc: Accelerator, layer: Layer) -> int:
    """Folds of one group of ``layer`` (row folds times column folds)."""
    Sr, _, Sc = operand_shape(acc, layer)
    return -(-Sr // acc.rows) * -(-Sc // acc.cols)


def layer_steps(acc: Accelerator, layer: Layer, mode: str = "calc") -> int:
    """Array steps of one group of ``layer`` (folds times steps per fold) without building
    the plan; validates like ``plan``."""
    _check(acc, layer, mode)
    Sr, T, Sc = operand_shape(acc, layer)
    return -(-Sr // acc.rows) * -(-Sc // acc.cols) * steps_per_fold(acc, T)


def plan(acc: Accelerator, layer: Layer, mode: str = "user") -> Plan:
    """The folds and per-step demands of one group of ``layer`` on ``acc``."""
    _check(acc, layer, mode)
    R, C = acc.rows, acc.cols
    df = acc.dataflow
    Sr, T, Sc = operand_shape(acc, layer)
    rf, cf = math.ceil(Sr / R), math.ceil(Sc / C)
    vr_last, vc_last = Sr - (rf - 1) * R, Sc - (cf - 1) * C
    kinds = {}
    for last_r in ((False, True) if rf > 1 else (True,)):    # only the kinds that occur
        for last_c in ((False, True) if cf > 1 else (True,)):
            vr = vr_last if last_r else R
            vc = vc_last if last_c else C
            if df == "os":
                k = FoldKind(steps_per_fold(acc, T), Skew(0, T, vr, 0), Skew(0, T, vc, 0),
                             Skew(R - vr, R, vc, T - 1))
            elif df == "ws":
                k = FoldKind(steps_per_fold(acc, T), Skew(0, T, vr, R),
                             Rows(R, vr, vc, 0, reverse=True), Skew(0, T, vc, 2 * R - 1))
            elif df == "is":
                k = FoldKind(steps_per_fold(acc, T), Rows(R, vr, vc, 0, reverse=True),
                             Skew(0, T, vr, R), Skew(0, T, vc, 2 * R - 1))
            else:
                lat = acc.mac_latency
                k = FoldKind(steps_per_fold(acc, T), Skew(0, T, 1, 0), Rows(T, T, vc, 0),
                             Rows(1, 1, vc, T + lat - 1))
            kinds[(last_r, last_c)] = k
    p = Plan(acc, layer, mode, rf, cf, kinds)
    if df == "os":
        p.streams["ifmap"] = _diag(acc, "ifmap", T, rf, R, vr_last, T, 0)
        p.streams["filter"] = _diag(acc, "filter", T, cf, C, vc_last, 0, T)
    elif df == "ws":
        p.streams["ifmap"] = _diag(acc, "ifmap", T, rf, R, vr_last, T, 0)
        p.streams["filter"] = _stream(acc, "filter", Sr * Sc, R * C, Sr * C, rowmajor=True)
    elif df == "is":
        p.streams["ifmap"] = _stream(acc, "ifmap", Sr * Sc, R * C, Sr * C, rowmajor=True)
        p.streams["filter"] = _diag(acc, "filter", T, rf, R, vr_last, T, 0)
    else:
        p.streams["ifmap"] = _stream(acc, "ifmap", T * Sr, T, 0, rowmajor=True)
        p.streams["filter"] = _stream(acc, "filter", T * Sc, 0, T * C, rowmajor=True)
    lay = layer
    if df in ("os", "ws", "is") and lay.kind != "gemm" and (lay.R > lay.stride
                                                            or lay.S > lay.stride):
        p.geometry = Geometry(df, lay.W, 1 if lay.kind == "dwconv" else lay.C, lay.R, lay.S,
                              lay.stride, lay.E, lay.F, T, Sr, R, C)
    p.out_width = C if mode == "calc" else acc.dram_bandwidth
    p.out_total = acc.buffer_words("ofmap")
    p.out_active, p.out_drain = buffer_halves(acc, "ofmap")
    return p


def fold_count_expression(acc: Accelerator, P: str, T: str, M: str) -> str:
    """The number of folds of a layer on ``acc`` (sympy text; ``P`` pixels, ``T`` window,
    ``M`` filters, each parenthesised)."""
    R, C = acc.rows, acc.cols
    if acc.dataflow == "os":
        return f"ceiling({P}/{R})*ceiling({M}/{C})"
    if acc.dataflow == "ws":
        return f"ceiling({T}/{R})*ceiling({M}/{C})"
    if acc.dataflow == "is":
        return f"ceiling({T}/{R})*ceiling({P}/{C})"
    return f"{P}*ceiling({M}/{C})"


def cycles_expression(acc: Accelerator, pixels: str, window: str, filters: str) -> str:
    """The ideal-bandwidth cycle count of a layer on ``acc`` as a complexity expression
    (sympy text over the given sub-expressions): folds times steps per fold. Its steps are
    the folds' ``ceiling(.../rows)``; with finite bandwidth, stalls come on top."""
    R, C = acc.rows, acc.cols
    P, T, M = f"({pixels})", f"({window})", f"({filters})"
    per_fold = {"os": f"{T} + {R + C - 2}", "ws": f"{P} + {2 * R + C - 2}",
                "is": f"{M} + {2 * R + C - 2}"}.get(acc.dataflow, f"{T} + {acc.mac_latency}")
    return f"{fold_count_expression(acc, P, T, M)}*({per_fold})"


def dma_expression(acc: Accelerator, pixels: str, window: str, filters: str) -> str:
    """Cycles the DRAM needs for the operand streams SCALE-Sim's buffers fetch (the im2col
    ifmap stream once per column fold, the filter stream once), at the description's
    bandwidth: with finite bandwidth, a layer takes at least about this long."""
    C = acc.cols
    P, T, M = f"({pixels})", f"({window})", f"({filters})"
    bw = acc.dram_bandwidth
    if acc.dataflow in ("os", "ws"):
        return f"(ceiling({M}/{C})*{T}*{P} + {T}*{M})/{bw}"
    if acc.dataflow == "is":
        return f"({T}*{P} + ceiling({P}/{C})*{T}*{M})/{bw}"
    return f"(ceiling({M}/{C})*{T}*{P} + {T}*{M})/{bw}"
