"""Vectorised hit test for ifmap words that several convolution windows read.

SCALE-Sim's buffer holds sets of stream positions; an ifmap word hits if *any* of its copies
(the positions of every (pixel, window element) pair that reads the same input word) lies in
the active window. Checking word by word in Python is slow on big arrays, so this module
tests whole runs of steps at once with numpy: ``quiet_steps`` returns how many steps from a
given one hit entirely under the current window (those steps change nothing), word by word.
For output and weight stationary ``intervals.quiet_steps_split`` answers the same without
visiting the words (the interval form), and ``intervals.step_sets`` gives an event step's
words' copy sets; the engine uses those and keeps ``quiet_steps`` for input stationary.
"""
from __future__ import annotations

import numpy as np


def _tri(x, h):
    x = np.asarray(x, dtype=np.int64)
    return np.where(x <= 0, 0, np.where(x <= h, x * (x + 1) // 2,
                                        h * (h + 1) // 2 + (x - h) * h))


def _rect_lt(r0, r1, c0, c1, d):
    if r1 <= r0:
        return np.zeros_like(np.asarray(d, dtype=np.int64))
    c1 = np.asarray(c1, dtype=np.int64)
    h = r1 - r0
    out = _tri(d - r0 - c0, h) - _tri(d - r0 - c1, h)
    return np.where(c1 <= c0, 0, out)


def positions(g, s, P, Wd):
    """Stream positions of (pixel, window index) arrays."""
    R, C = g.arr_rows, g.arr_cols
    if g.dataflow == "is":
        blk = P // C
        width = np.minimum(C, g.E * g.F - blk * C)
        return blk * g.Sr * C + Wd * width + P % C
    if g.dataflow == "os":
        row, col = (P // R) * g.T + Wd, P % R
    else:
        row, col = (Wd // R) * g.T + P, Wd % R
    D = row + col
    W = s.width
    full = (D >= W - 1) & (D < s.full_rows)       # full diagonals: closed form
    out = W * D - W * (W - 1) // 2 + col
    if full.all():
        return out
    rest = ~full
    out[rest] = _general(s, D[rest], col[rest])
    return out


def _general(s, D, col):
    """Stream.pos for arrays: the valid words on diagonals < D, plus those on diagonal D in
    columns < col (an interval of columns in the full rows, one in the last block's)."""
    fr, tr = s.full_rows, s.total_rows
    cnt = _rect_lt(0, fr, 0, s.width, D) + _rect_lt(fr, tr, 0, s.v_last, D)
    # columns c < col with 0 <= D - c < full_rows (c < width), full_rows <= D - c < total_rows
    # (c < v_last)
    a = np.minimum(np.minimum(col, s.width), D + 1) - np.maximum(D - fr + 1, 0)
    b = np.minimum(np.minimum(col, s.v_last), D - fr + 1) - np.maximum(D - tr + 1, 0)
    return cnt + np.maximum(a, 0) + np.maximum(b, 0)


def _elements(g, d, fr, fc, l0, l1):
    """(step, pixel, window index) arrays of the ifmap words served by steps [l0, l1)."""
    R, C = g.arr_rows, g.arr_cols
    ls = np.arange(l0, l1, dtype=np.int64)
    if g.dataflow in ("os", "ws"):
        k = (ls - d.g)[:, None]
        j = np.arange(d.cols, dtype=np.int64)[None, :]
        t = k - j
        ok = (t >= 0) & (t < d.r1)
        L = np.broadcast_to(ls[:, None], ok.shape)[ok]
        t, j = t[ok] if t.shape == ok.shape else np.broadcast_to(t, ok.shape)[ok], \
            np.broadcast_to(j, ok.shape)[ok]
        if g.dataflow == "os":
            return L, fr * R + j, t
        return L, t, fr * R + j
    kk = ls - d.g
    rr = np.where(d.reverse, d.n - 1 - kk, kk)
    okl = (kk >= 0) & (kk < d.n) & (rr < d.valid)
    ls, rr = ls[okl], rr[okl]
    c = np.arange(d.width, dtype=np.int64)
    L = np.repeat(ls, d.width)
    return L, fc * C + np.tile(c, len(ls)), fr * R + np.repeat(rr, d.width)


def line_elements(g, d, fr: int, fc: int, l: int):
    """(pixel, window index) arrays of the ifmap words of step l, in serving order."""
    _, P, Wd = _elements(g, d, fr, fc, l, l + 1)
    return P, Wd


def _copy_sets(g, s, y, x, ch):
    """(valid, sets): for each word (input row y, column x, channel ch), the buffer sets of
    every (pixel, window index) pair that reads it, and which of the R*S pairs exist."""
    kr2 = np.repeat(np.arange(g.R), g.S)[None, :]
    ks2 = np.tile(np.arange(g.S), g.R)[None, :]
    dy = y[:, None] - kr2
    dx = x[:, None] - ks2
    ok = (dy >= 0) & (dy % g.stride == 0) & (dy // g.stride < g.E) & \
        (dx >= 0) & (dx % g.stride == 0) & (dx // g.stride < g.F)
    p2 = (dy // g.stride) * g.F + dx // g.stride
    w2 = (kr2 * g.S + ks2) * g.C + ch[:, None]
    return ok, positions(g, s, p2[ok], w2[ok]) // s.per_set


def _input_word(g, P, Wd):
    oy, ox = P // g.F, P % g.F
    kr, rem = Wd // (g.S * g.C), Wd % (g.S * g.C)
    ks, ch = rem // g.C, rem % g.C
    return oy * g.stride + kr, ox * g.stride + ks, ch


def hits(g, s, ws: int, P, Wd):
    """Whether each word has a copy in the active window starting at set ``ws``."""
    own = positions(g, s, P, Wd) // s.per_set
    hit = ((own - ws) % s.n_sets) < s.active
    if hit.all():
        return hit
    rest = np.flatnonzero(~hit)
    y, x, ch = _input_word(g, P[rest], Wd[rest])
    ok, sets = _copy_sets(g, s, y, x, ch)
    inw = np.zeros(ok.shape, dtype=bool)
    inw[ok] = ((sets - ws) % s.n_sets) < s.active
    hit[rest] = inw.any(axis=1)
    return hit


def word_sets(g, s, p: int, w: int) -> list[int]:
    """The buffer sets holding a copy of the word read by (pixel p, window index w): the
    word hits when any of them is in the active window."""
    y, x, ch = _input_word(g, np.array([p]), np.array([w]))
    _, sets = _copy_sets(g, s, y, x, ch)
    return [int(v) for v in sets]


def quiet_steps(p, st, kind, fr: int, fc: int, l: int, n: int) -> int:
    """Number of steps from l (at most n) whose ifmap words all hit the current window."""
    g, s = p.geometry, p.streams["ifmap"]
    ws = st.reads["ifmap"].ws
    done, chunk = 0, 16
    while done < n:
        k = min(chunk, n - done)
        L, P, Wd = _elements(g, kind.ifmap, fr, fc, l + done, l + done + k)
        if len(L):
            h = hits(g, s, ws, P, Wd)
            if not h.all():
                return done + int(L[np.argmin(h)] - (l + done))
        done += k
        chunk *= 2
    return n
