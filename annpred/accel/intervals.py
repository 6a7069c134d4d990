"""The hit test of copied ifmap words (see copies.py) in interval form, for output and
weight stationary: a run of steps is tested without visiting its words."""
from __future__ import annotations

import numpy as np

from .copies import _general


# On a "diag" ifmap stream (os, ws) step l of fold fr serves, on lane j, the word at stream
# row fr*T + t, column j, with t = l - g - j: all its words lie on anti-diagonal fr*T + l - g.
# A copy of the word (input row/column shift (a, b), see copies._copy_sets) moves the lane
# by a fixed amount and t by a fixed amount, so where a position is linear in the diagonal
# (the full diagonals: width*D - width*(width-1)/2 + column; inside a partial last block:
# slope its valid columns) the copy's position is slope*(l + K) + c with K, c fixed per lane
# and copy: it lies in the window [A, B) for an interval of steps l, computed with two
# integer divisions. Whether the copy exists (inside the filter and the image) depends on
# the lane and on which piece of t the step is in (os: the filter row, with the filter
# column condition an interval of the piece; ws: the image row, with the image column
# condition likewise). So for every (lane, piece) cell the steps whose word hits form a
# union of intervals, and the first step that misses is the first point of the cell not
# covered, found for all cells at once. Where a copy reaches a diagonal on which positions
# are not linear, the steps are tested word by word from the same cells.


def _cells_base(p, d):
    """The fold-row-independent part of ``_cells`` for the fold's ifmap demand ``d``: over
    (lane, piece, copy slot), the copy's K relative to the fold's (K - fr*T), c0, and the
    steps [v0, v1) in which it exists as far as the piece decides; the copy index of each
    slot (only copies that exist in the piece, padded), and the cells' step ranges."""
    g = p.geometry
    Ra, T, st = g.arr_rows, g.T, g.stride
    na, nb = (g.R - 1) // st, (g.S - 1) // st
    a = np.repeat(np.arange(-na, na + 1), 2 * nb + 1)[None, :]
    b = np.tile(np.arange(-nb, nb + 1), 2 * na + 1)[None, :]
    dp = a * g.F + b                              # pixel shift of the copy (p2 = p - dp)
    dw = st * (a * g.S + b) * g.C                 # window-index shift (w2 = w + dw)
    if g.dataflow == "os":                        # pieces of t: filter rows kr
        PL, npieces = g.S * g.C, g.R
        e = np.arange(npieces)[:, None]
        okp = (e + st * a >= 0) & (e + st * a < g.R)
        t0 = e * PL + np.maximum(-st * b, 0) * g.C     # window columns ks with
        t1 = e * PL + np.minimum(g.S, g.S - st * b) * g.C   # 0 <= ks + stride*b < S
        lam, tau = -dp, dw
    else:                                         # ws: pieces of t are image rows oy
        PL, npieces = g.F, g.E
        e = np.arange(npieces)[:, None]
        okp = (e - a >= 0) & (e - a < g.E)
        t0 = e * PL + np.maximum(b, 0)            # columns ox with 0 <= ox - b < F
        t1 = e * PL + PL + np.minimum(b, 0)
        lam, tau = dw, -dp
    if npieces * PL != T:
        return None
    okp = okp & (t1 > t0)                         # (piece, copy)
    t0, t1 = np.broadcast_to(t0, okp.shape), np.broadcast_to(t1, okp.shape)
    m = max(int(okp.sum(axis=1).max()), 1)
    idx = np.argsort(~okp, axis=1, kind="stable")[:, :m]          # (piece, slot)
    okc = np.take_along_axis(okp, idx, axis=1)
    j = np.arange(d.cols)[:, None]                # lanes (valid rows of the fold)
    lane2 = j + lam                               # (lane, copy)
    j2 = lane2 % Ra
    gl = d.g + j                                  # l = g + j + t
    Krel = (lane2 // Ra) * T - gl + tau + j2      # D2 = l + K, K = fr*T + Krel
    c0 = j2 - Ra * (Ra - 1) // 2                  # position = Ra * D2 + c0
    gl3 = gl[:, :, None]
    v0 = gl3 + np.take_along_axis(t0, idx, axis=1)[None]
    v1 = gl3 + np.take_along_axis(t1, idx, axis=1)[None]
    c_lo = gl + (np.arange(npieces) * PL)[None, :]               # (lane, piece)
    return dict(a=a[0], b=b[0], idx=idx, okc=okc, Krel=Krel[:, idx], c0=c0[:, idx],
                v0=v0, v1=v1, c_lo=c_lo.reshape(-1), c_hi=c_lo.reshape(-1) + PL,
                m=m, lanes=np.arange(d.cols), npieces=npieces, PL=PL)


def _cells_memo(p, kind, fr):
    """``_cells`` of fold row ``fr``, computed once per evaluation (``Plan.memo``); None for
    dataflows other than os and ws, and where the cells do not apply."""
    if p.geometry.dataflow not in ("os", "ws"):
        return None
    key = ("cells", fr, kind.ifmap)
    cells = p.memo.get(key, False)
    if cells is False:
        cells = p.memo[key] = _cells(p, kind, fr)
    return cells


def _cells(p, kind, fr):
    """Per fold row: arrays over (cell = (lane, piece), copy slot) of the steps [v0, v1) in
    which the copy exists, and K, c0 of its position; None where the interval form does
    not apply. The lane decides the rest of the copy's existence (os: the pixel's place in
    the image; ws: the window element's place in the filter)."""
    key = ("cellbase", kind.ifmap)
    base = p.memo.get(key, False)
    if base is False:
        base = p.memo[key] = _cells_base(p, kind.ifmap)
    if base is None:
        return None
    g = p.geometry
    Ra, st = g.arr_rows, g.stride
    a, b, j = base["a"][None, :], base["b"][None, :], base["lanes"][:, None]
    if g.dataflow == "os":
        pix = fr * Ra + j
        oy, ox = pix // g.F, pix % g.F
        lv = (oy - a >= 0) & (oy - a < g.E) & (ox - b >= 0) & (ox - b < g.F)
    else:
        w = (fr * Ra + j) // g.C
        kr, ks = w // g.S, w % g.S
        lv = (kr + st * a >= 0) & (kr + st * a < g.R) & (ks + st * b >= 0) & (ks + st * b < g.S)
    mask = (base["okc"][None] & lv[:, base["idx"]]).reshape(-1, base["m"])
    big = np.iinfo(np.int64).max // 4
    K = (base["Krel"] + fr * g.T).reshape(-1, base["m"])
    v0 = np.where(mask, base["v0"].reshape(-1, base["m"]), big)
    v1 = np.where(mask, base["v1"].reshape(-1, base["m"]), -big)
    return K, base["c0"].reshape(-1, base["m"]), v0, v1, base["c_lo"], base["c_hi"], \
        p.streams["ifmap"]


def _regions(s, K, c0, lo, hi):
    """The stretches of diagonals where a position is linear in the diagonal D (slope *
    D + c): the full diagonals (slope: the stream width) and, with a partial last block,
    the diagonals inside it (slope: its valid columns), as (slope, c, first D, end D); None
    if a copy that exists within the queried steps [lo, hi) reaches another diagonal (the
    stream's first width - 1 ones, or where the last block starts)."""
    W, fr_, tr, v = s.width, s.full_rows, s.total_rows, s.v_last
    d3 = fr_ + W - 1 if v < W else tr         # first diagonal inside the partial block
    ex = lo < hi
    if ex.any():
        Kx = K[ex]
        d_lo, d_hi = lo[ex] + Kx, hi[ex] - 1 + Kx
        if d_lo.min() < W - 1 or d_hi.max() >= tr or ((d_hi >= fr_) & (d_lo < d3)).any():
            return None
    out = [(W, c0, W - 1, fr_)]
    if d3 < tr:
        out.append((v, c0 + W * (W - 1) // 2 + s.count_lt(d3) - v * d3, d3, tr))
    return out


def _clean_from(p, kind, fr: int, l: int, n: int):
    """The first step from which every existing copy of the words of steps up to l + n stays
    on diagonals where ``_regions`` applies (bad diagonals: the stream's first width - 1,
    the start of a partial last block), or None if there is none before l + n."""
    cells = _cells_memo(p, kind, fr)
    if cells is None:
        return None
    K, _, v0, v1, _, _, s = cells
    W, fr_, tr, v = s.width, s.full_rows, s.total_rows, s.v_last
    L1 = l + n
    lo, hi = np.maximum(v0, l), np.minimum(v1, L1)
    ex = lo < hi
    if not ex.any():
        return None
    K, lo, hi = K[ex], lo[ex], hi[ex]
    if (hi - 1 + K).max() >= tr:
        return None
    ends = [np.where(lo + K < W - 1, np.minimum(hi, W - 1 - K), l)]
    if v < W:                    # steps with fr_ <= l + K < fr_ + W - 1
        a, b = np.maximum(lo, fr_ - K), np.minimum(hi, fr_ + W - 1 - K)
        ends.append(np.where(a < b, b, l))
    split = int(max(e.max() for e in ends))
    return split if l < split < L1 else None


def quiet_steps_split(p, st, kind, fr: int, fc: int, l: int, n: int):
    """``quiet_steps`` for os and ws ifmap streams: the interval form where it applies,
    else the cells word by word up to the step from which it applies and the interval form
    from there; None for other dataflows (then ``quiet_steps``)."""
    r = quiet_steps_fast(p, st, kind, fr, fc, l, n)
    if r is not None or p.geometry.dataflow not in ("os", "ws"):
        return r
    split = _clean_from(p, kind, fr, l, n)
    if split is not None:
        a = quiet_steps_cells(p, st, kind, fr, l, split - l)
        if a is not None:
            if a < split - l:
                return a
            b = quiet_steps_fast(p, st, kind, fr, fc, split, l + n - split)
            if b is not None:
                return split - l + b
            b = quiet_steps_cells(p, st, kind, fr, split, l + n - split)
            if b is not None:
                return split - l + b
    return quiet_steps_cells(p, st, kind, fr, l, n)


def quiet_steps_fast(p, st, kind, fr: int, fc: int, l: int, n: int):
    """``quiet_steps`` by the interval form (os and ws ifmap streams), or None where it does
    not apply (the copies or the words reach a diagonal that is not full: the stream's
    first or last block), and the caller falls back to ``quiet_steps``."""
    cells = _cells_memo(p, kind, fr)
    if cells is None:
        return None
    K, c0, v0, v1, c_lo, c_hi, s = cells
    L1 = l + n
    x0 = np.maximum(c_lo, l)
    xe = np.minimum(c_hi, L1)
    live = x0 < xe
    if not live.any():
        return n
    lo = np.maximum(v0, l)
    hi = np.minimum(v1, L1)
    regions = _regions(s, K, c0, lo, hi)
    if regions is None:
        return None
    ps, ns, act = s.per_set, s.n_sets, s.active
    ws = st.reads["ifmap"].ws
    wins = [(ws * ps, (ws + act) * ps)] if ws + act <= ns else \
        [(ws * ps, ns * ps), (0, (ws + act - ns) * ps)]
    x0 = x0[live]
    xe = xe[live]
    K, lo, hi = K[live], lo[live], hi[live]
    los, his = [], []
    for slope, c, d_lo, d_hi in regions:
        c = c[live]
        r_lo = np.maximum(lo, d_lo - K)
        r_hi = np.minimum(hi, d_hi - K)
        for A, B in wins:        # steps with A <= slope * (l + K) + c < B
            los.append(np.maximum(-((c - A) // slope) - K, r_lo))
            his.append(np.minimum(-((c - B) // slope) - K, r_hi))
    if len(los) == 1:
        ilo, ihi = los[0], his[0]
    else:
        ilo, ihi = np.concatenate(los, axis=1), np.concatenate(his, axis=1)
    x = x0
    while True:              # the first point from x0 that no interval covers
        cov = (ilo <= x[:, None]) & (x[:, None] < ihi)
        if not cov.any():
            break
        x = np.maximum(x, np.where(cov, ihi, x[:, None]).max(axis=1))
    miss = x < xe
    if not miss.any():
        return n
    return int(x[miss].min()) - l


def _range_sets(p, kind, fr: int, l0: int, l1: int):
    """The words steps [l0, l1) of fold row fr serve (os and ws ifmap streams), in serving
    order: (step, sets, exists); sets and exists are (words, copy slots): the buffer set of
    every copy and whether the copy exists (a word hits if any existing copy's set is in the
    window; the same copies as ``word_sets``). None for other dataflows or where the cells
    do not apply."""
    cells = _cells_memo(p, kind, fr)
    if cells is None:
        return None
    g = p.geometry
    K, c0, v0, v1, _, _, s = cells
    base = p.memo[("cellbase", kind.ifmap)]
    d = kind.ifmap
    j = base["lanes"][None, :]
    ls = np.arange(l0, l1)[:, None]
    t = ls - d.g - j
    ok = (t >= 0) & (t < g.T)
    rows = (j * base["npieces"] + t // base["PL"])[ok]
    L = np.broadcast_to(ls, ok.shape)[ok]
    K, c0 = K[rows], c0[rows]
    Lc = L[:, None]
    exists = (v0[rows] <= Lc) & (Lc < v1[rows])
    return L, _sets(s, Lc + K, c0, exists), exists


def _sets(s, D, c0, exists):
    """Buffer sets of the copies on diagonals D (column c0 + width*(width-1)/2): linear on
    the full diagonals and inside a partial last block, as positions() elsewhere."""
    W, fr_, tr, v = s.width, s.full_rows, s.total_rows, s.v_last
    pos = W * D + c0
    if v < W:
        d3 = fr_ + W - 1
        if d3 < tr:
            inner = D >= d3
            if inner.any():
                pos = np.where(inner, v * D + (c0 + W * (W - 1) // 2 + s.count_lt(d3) - v * d3),
                               pos)
        other = exists & ((D < W - 1) | ((D >= fr_) & (D < d3)) | (D >= tr))
    else:
        other = exists & ((D < W - 1) | (D >= fr_))
    if other.any():
        pos[other] = _general(s, D[other], c0[other] + W * (W - 1) // 2)
    return pos // s.per_set


def step_sets(p, kind, fr: int, l: int):
    """(sets, exists) of the words step l serves, in serving order (``_range_sets``)."""
    r = _range_sets(p, kind, fr, l, l + 1)
    return None if r is None else r[1:]


def quiet_steps_cells(p, st, kind, fr: int, l: int, n: int):
    """``quiet_steps`` word by word from the cells (where the interval form does not apply);
    None where the cells do not apply either."""
    s = p.streams["ifmap"]
    ws, ns, act = st.reads["ifmap"].ws, s.n_sets, s.active
    done, chunk = 0, 16
    while done < n:
        k = min(chunk, n - done)
        r = _range_sets(p, kind, fr, l + done, l + done + k)
        if r is None:
            return None
        L, S, E = r
        if len(L):
            h = (((S - ws) % ns < act) & E).any(axis=1)
            if not h.all():
                return int(L[np.argmin(h)]) - l
        done += k
        chunk *= 2
    return n
