"""Runs of quiet whole folds for the fast evaluation (evaluate.py): fold spans and ofmap
words memoised per evaluation (in ``Plan.memo``, which ``evaluate.fast`` empties at its
start), and quiet runs that go on across the last row fold and whole column folds."""
from __future__ import annotations

from .engine import State, _advance, _span
from .mapping import Plan


def _fold_span(p: Plan, which: str, fr: int, fc: int):
    """(base, span) of fold (fr, fc)'s words of ``which`` (span: first and last stream
    position, or None), memoised for the current evaluation (a pure function of the plan)."""
    key = (which, fr, fc)
    v = p.memo.get(key)
    if v is None:
        kind = p.kind(fr, fc)
        d = getattr(kind, which)
        base = p.base(which, fr, fc, d)
        v = p.memo[key] = (base, _span(d, p.streams[which], base, fr, fc, 0, kind.steps))
    return v


def _fold_words(p: Plan, last_r: bool, last_c: bool) -> int:
    """Ofmap words of a fold of that kind (memoised per evaluation)."""
    key = ("words", last_r, last_c)
    v = p.memo.get(key)
    if v is None:
        k = p.kinds[(last_r, last_c)]
        v = p.memo[key] = k.ofmap.upto(k.steps) - k.ofmap.upto(0)
    return v


def _column_words(p: Plan, fc: int, fr: int = 0) -> int:
    """Ofmap words of column fold fc's folds fr .. row_folds - 1 (memoised per evaluation)."""
    last_c = fc == p.col_folds - 1
    key = ("colwords", last_c, fr)
    v = p.memo.get(key)
    if v is None:
        v = p.memo[key] = (p.row_folds - 1 - fr) * _fold_words(p, False, last_c) + \
            _fold_words(p, True, last_c)
    return v


def _span_in_window(st: State, p: Plan, which: str, lo: int, hi: int) -> bool:
    """Every stream position in [lo, hi] sits in ``which``'s current window (a stream that
    fits its window entirely always does: the window then holds every set)."""
    s = p.streams[which]
    if s.n_sets <= s.active:
        return True
    a, b = lo // s.per_set, hi // s.per_set
    return (a - st.reads[which].ws) % s.n_sets + b - a < s.active


def _more_columns(st: State, p: Plan, fr: int, fc: int, q: int) -> int:
    """With folds fr .. fr+q-1 = row_folds - 2 of column fc proven quiet (``_quiet_run``):
    the number of column folds from fc whose remaining folds are quiet too (the column's
    last row fold, then whole column folds), so that the run ends at the start of column
    fold fc + that number; 0 if not even column fc's last row fold is. Quiet as in
    ``_quiet_folds``: every word read sits in the current window (each column's folds of
    one kind lie between the first one's first word and the last one's last, the last row
    fold is tested on its own), and all the run's ofmap writes leave the active half free."""
    rf, cf = p.row_folds, p.col_folds
    budget = st.free - p.out_active - (_column_words(p, fc, fr))
    if budget < 0:
        return 0
    # streams that fit their window entirely never miss: only the others are tested
    tight = [w for w in st.reads if p.streams[w].n_sets > p.streams[w].active]

    def quiet_fold(r, c):
        for which in tight:
            span = _fold_span(p, which, r, c)[1]
            if span is not None and not _span_in_window(st, p, which, span[0], span[1]):
                return False
        return True
    if not quiet_fold(rf - 1, fc):
        return 0
    cols = 1
    while fc + cols < cf:
        c = fc + cols
        budget -= _column_words(p, c)
        if budget < 0 or not quiet_fold(rf - 1, c):
            break
        if tight:
            ok = True
            for which in tight:
                a = _fold_span(p, which, 0, c)[1]
                b = _fold_span(p, which, rf - 2, c)[1]
                if a is not None and not _span_in_window(st, p, which, min(a[0], b[0]),
                                                         max(a[1], b[1])):
                    ok = False
                    break
            if not ok:
                break
        cols += 1
    return cols


def _jump_across(st: State, p: Plan, fr: int, fc: int, q: int, cols: int) -> None:
    """The quiet folds from (fr, fc) to the end of column fold fc + cols - 1 at once."""
    words = _column_words(p, fc, fr)
    if cols > 1:        # columns fc+1 .. fc+cols-1: the last one may be the last column
        words += (cols - 2) * _column_words(p, fc + 1) + _column_words(p, fc + cols - 1)
    folds = p.row_folds - fr + (cols - 1) * p.row_folds
    _advance(st, p, words, folds * p.kinds[(True, True)].steps)   # every fold: same steps
