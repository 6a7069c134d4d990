"""Automatic complexity: candidate expressions from the input columns and known structure,
kept only when they lower the error on a validation split carved from the training data.

Candidates (sympy text over the parameter names, see :func:`candidates`):

* the catalog expression(s) when there are any (the ``base``);
* GPU launch structure from Kernel Tuner naming (``block_size_x/y/z``, ``tile_size_x/y/z``)
  and the problem size: threads per block, work per thread, blocks in the grid
  (``ceiling(N/(block*tile))`` per dimension), the fraction of launched work that is padding,
  warp/wavefront occupancy of a block (``ceiling(threads/32)``, ``/64``), whether a
  dimension ends in a partial block, and the distance of block and tile extents from a
  power of two (``2**ceiling(log2(e))/e`` and a 0/1 indicator);
* products, ratios and ``ceiling(a/b)`` of pairs of size-like (positive, varying) columns,
  and the padding ``ceiling(a/b)*b/a`` where ``b`` is named like a tile or block;
* edge passes of integer sizes, ``(floor(a/4) + a mod 4)/a``: kernels that run a dimension
  in groups of 4 and the remainder one by one (matrix-vector edges), and blocks of 8 or 16
  with the remainder in halving chunks (GEMM edges; the catalog's ``column_passes`` of
  matmul are ``binary_passes`` times the other sizes).

Selection (:func:`select`) screens every candidate with a cheap model (least squares of the
log runtime on the log inputs plus the candidate, scored on the validation rows) and then
grows the set greedily with short network fits, keeping a candidate only when it lowers the
validation MAPE by a relative margin. Nothing here looks at test data.
"""
from __future__ import annotations

import itertools
import re
import time
from typing import Callable, Mapping, Sequence

import numpy as np

from annpred.model.features import feature_matrix
from annpred.spec.expr import binary_passes, group_passes

WARP_SIZES = (32, 64)  # NVIDIA warps, AMD wavefronts (RDNA runs 32 or 64, CDNA 64)
_DIMS = ("x", "y", "z")
_BLOCKISH = re.compile(r"(block|tile|bs|tb|step|chunk|unroll|vec|width|stride|nb|mb|kb)",
                       re.I)


def _prod(terms: Sequence[str]) -> str:
    return "*".join(f"({t})" if not re.fullmatch(r"\w+", t) else t for t in terms)


# stencil halo: a filter extent along each dimension, by Kernel Tuner's naming
_FILTER = {"x": ("filter_width", "filter_size_x"), "y": ("filter_height", "filter_size_y"),
           "z": ("filter_depth", "filter_size_z")}


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _filter_extent(d: str, params, constants) -> str | None:
    """The filter extent along dimension ``d``: a parameter name, a constant's value, or
    None when the space names no filter."""
    for name in _FILTER[d]:
        if name in params:
            return name
        if name in constants and constants[name] >= 1:
            return _num(constants[name])
    return None


def structure_candidates(params: Sequence[str], problem_size: Sequence[float] = (),
                         constants: Mapping[str, float] | None = None) -> dict:
    """GPU launch-structure expressions from Kernel Tuner parameter names (and constant
    parameters such as a convolution's ``filter_width``, given in ``constants``)."""
    ps = set(params)
    constants = dict(constants or {})
    out: dict[str, str] = {}
    blocks = {d: f"block_size_{d}" for d in _DIMS if f"block_size_{d}" in ps}
    tiles = {d: f"tile_size_{d}" for d in _DIMS if f"tile_size_{d}" in ps}
    if blocks:
        threads = _prod(list(blocks.values()))
        if len(blocks) > 1:
            out["threads"] = threads
        for w in WARP_SIZES:
            out[f"warps{w}"] = f"ceiling({threads}/{w})"
            out[f"warp_eff{w}"] = f"({threads})/({w}*ceiling({threads}/{w}))"
    if len(tiles) > 1:
        out["work_per_thread"] = _prod(list(tiles.values()))
    # memory accesses and vector loads favour power-of-two extents: 2^ceil(log2 e)/e is 1 for
    # a power of two and up to 2 otherwise
    for d in _DIMS:
        ext = [t for t in (blocks.get(d), tiles.get(d)) if t]
        for t in ext + ([_prod(ext)] if len(ext) > 1 else []):
            # (the 1e-9 keeps exact powers of two exact under log(x)/log(2) rounding)
            out[f"pow2pad_{t}"] = f"2**ceiling(log2({t})-1e-9)/({t})"
            out[f"notpow2_{t}"] = f"ceiling(log2({t})-1e-9)-floor(log2({t})+1e-9)"
    grid, pad = [], []
    for i, d in enumerate(_DIMS):
        ext = [t for t in (blocks.get(d), tiles.get(d)) if t]
        if not ext or i >= len(problem_size) or not problem_size[i] or problem_size[i] <= 1:
            continue
        n = int(problem_size[i]) if float(problem_size[i]).is_integer() else problem_size[i]
        e = _prod(ext)
        grid.append(f"ceiling({n}/({e}))")
        pad.append(f"ceiling({n}/({e}))*({e})/{n}")
        out[f"ragged_{d}"] = f"ceiling({n}/({e}))-floor({n}/({e}))"  # 1: a partial block
    if grid:
        out["grid_blocks"] = _prod(grid)
        out["padding"] = _prod(pad)
        if blocks:
            out["grid_threads"] = _prod([out["grid_blocks"], _prod(list(blocks.values()))])
    ragged = [out[f"ragged_{d}"] for d in _DIMS if f"ragged_{d}" in out]
    if ragged:
        # a partial block in ANY dimension: GPU kernels compile their bounds checks only then
        # (``#if N % (block*tile) != 0``), a different code path for the whole launch
        out["ragged"] = ragged[0] if len(ragged) == 1 else f"max({', '.join(ragged)})"
        if len(tiles) >= 1:
            # the work per thread that runs under those checks: tile products when ragged, 1
            # otherwise (guarded unrolled tile loops are what compilers handle worst)
            out["guarded_work"] = f"({out['ragged']})*({_prod(list(tiles.values()))}-1)+1"
    if "x" in blocks:
        for w in WARP_SIZES:  # coalescing: the fraction of each warp's lanes along x in use
            out[f"warp_eff_x{w}"] = f"{blocks['x']}/({w}*ceiling({blocks['x']}/{w}))"
    # stencils: the input tile a block reads is its output tile plus the filter halo
    # ((block*tile + filter - 1) per dimension); its size (4-byte words, the shared-memory
    # footprint when it is staged there) and its ratio to the output tile (redundant loads)
    halo_in, halo_out = [], []
    for d in _DIMS:
        ext = [t for t in (blocks.get(d), tiles.get(d)) if t]
        f = _filter_extent(d, ps, constants)
        if ext and f is not None:
            e = _prod(ext)
            halo_in.append(f"({e}+{f}-1)")
            halo_out.append(f"({e})")
    if halo_in:
        out["halo_words"] = _prod(halo_in)
        out["halo_ratio"] = f"{_prod(halo_in)}/({_prod(halo_out)})"
    return out


DEFAULT_STRUCTURE = ("ragged", "guarded_work", "grid_blocks", "halo_ratio")


def default_structure(params: Sequence[str], problem_size: Sequence[float] = (),
                      constants: Mapping[str, float] | None = None,
                      columns: Mapping[str, np.ndarray] | None = None) -> dict:
    """The fixed complexity of a GPU tuning space without a catalog entry (the ``C`` of
    NN+C on Kernel Tuner caches): whether any dimension ends in a partial block (the
    bounds-checked code path) and the tile work run under those checks, blocks in the grid,
    the stencil halo ratio when the space names a filter, and threads per block. The first
    is the main one (``select_complexity`` may keep it alone). With ``columns`` (the data),
    expressions that do not vary over it are left out."""
    s = structure_candidates(params, problem_size, constants)
    out = {k: s[k] for k in DEFAULT_STRUCTURE if k in s}
    thr = [f"block_size_{d}" for d in _DIMS if f"block_size_{d}" in params]
    if thr:
        out["threads"] = _prod(thr)
    if columns is not None:
        out = {k: text for k, text in out.items()
               if _column_if_varies(columns, params, text) is not None}
    return out


def _column_if_varies(columns, params, text) -> np.ndarray | None:
    """The values of expression ``text`` on the data, or None where it cannot be evaluated
    there, is not finite everywhere or does not vary (no use as a feature)."""
    try:
        col = feature_matrix(columns, params, [text])[:, -1]
    except Exception:  # an expression this data cannot evaluate
        return None
    if not np.all(np.isfinite(col)) or np.ptp(col) <= 1e-12 * max(1.0, np.abs(col).max()):
        return None
    return col


def _sizelike(name: str, values: np.ndarray) -> bool:
    v = values[np.isfinite(values)]
    return len(np.unique(v)) >= 2 and bool(np.all(v > 0))


def pair_candidates(columns: Mapping[str, np.ndarray], params: Sequence[str],
                    max_columns: int = 8) -> dict:
    """Products, ratios and ``ceiling(a/b)`` of pairs of size-like columns."""
    size = [p for p in params if _sizelike(p, np.asarray(columns[p], float))][:max_columns]
    out = {}
    for a, b in itertools.combinations(size, 2):
        out[f"{a}*{b}"] = f"{a}*{b}"
        out[f"{a}/{b}"] = f"{a}/{b}"
        for num, den in ((a, b), (b, a)):
            out[f"ceil({num}/{den})"] = f"ceiling({num}/{den})"
            if _BLOCKISH.search(den) and not _BLOCKISH.search(num):
                out[f"pad({num},{den})"] = f"ceiling({num}/{den})*{den}/{num}"
    if len(size) >= 3:
        out["prod(" + ",".join(size) + ")"] = _prod(size)
    return out


EDGE_GROUP = 4  # SIMD/BLAS kernels run a dimension in groups, the remainder one by one
EDGE_SMALL = 4 * EDGE_GROUP  # edge candidates need data down to this size (see below)
BINARY_BLOCKS = (8, 16)  # GEMM edges of MKL and OpenBLAS: blocks, then 8, 4, 2, 1 columns


def edge_candidates(columns: Mapping[str, np.ndarray], params: Sequence[str]) -> dict:
    """For each integer size column ``a``: the passes a kernel makes over it per element,
    ``(floor(a/4) + a mod 4)/a`` (groups of 4, then the remainder one by one, as matrix-vector
    kernels and batched FFTs do) and ``binary_passes(a, b)/a`` for blocks of 8 and 16 (then
    the remainder in halving chunks, as MKL's and OpenBLAS's GEMM edges do; stop 43's sweeps,
    kernels/matmul.py); each only where the data are not always a multiple of its block, the
    binary ones only for problem extents (not for a column named like a block or tile: on a
    tuning space they only fitted validation noise, e.g. ``bin8(block_size_y)``). With log
    inputs the network multiplies it into the work.

    Only for columns whose data reach small sizes (at most ``EDGE_SMALL``): the ratio is
    1/4 + O(1/a), so on sizes from 53 up it spans 0.25-0.29 and the slope fitted there
    extrapolates wildly to a size of 5 (ratio 0.4: a test point of the paper protocol's
    matvec/sparse, predicted 1,157x too slow)."""
    out = {}
    for a in params:
        v = np.asarray(columns[a], float)
        v = v[np.isfinite(v)]
        if not _sizelike(a, v) or not np.allclose(v, np.round(v)) or v.min() > EDGE_SMALL:
            continue
        binary = [] if _BLOCKISH.search(a) else \
            [(f"bin{b}", b, binary_passes(a, b)) for b in BINARY_BLOCKS]
        for name, block, text in [(f"edge{EDGE_GROUP}", EDGE_GROUP,
                                   group_passes(a, EDGE_GROUP))] + binary:
            if not np.all(v % block == 0):
                out[f"{name}({a})"] = f"({text})/{a}"
    return out


def candidates(columns: Mapping[str, np.ndarray], params: Sequence[str],
               problem_size: Sequence[float] = (), base: Mapping[str, str] | None = None,
               constants: Mapping[str, float] | None = None) -> dict[str, str]:
    """Every candidate expression (name -> sympy text) whose values are finite and vary."""
    raw = {**{f"catalog:{k}": v for k, v in (base or {}).items()},
           **structure_candidates(params, problem_size, constants),
           **pair_candidates(columns, params),
           **edge_candidates(columns, params)}
    out, seen = {}, []
    for name, text in raw.items():
        col = _column_if_varies(columns, params, text)
        if col is None:
            continue
        if any(np.allclose(col, s) for s in seen):  # duplicates (e.g. one-dimension grids)
            continue
        seen.append(col)
        out[_safe_name(name, params, out)] = text
    return out


def _safe_name(name: str, params: Sequence[str], taken) -> str:
    s = name.replace("*", "_x_").replace("/", "_over_")
    s = re.sub(r"\W+", "_", s).strip("_") or "c"
    s = "c_" + s if s in params or s[0].isdigit() else s
    base, i = s, 2
    while s in taken:
        s, i = f"{base}_{i}", i + 1
    return s


def _log_or_id(col: np.ndarray) -> np.ndarray:
    return np.log(col) if np.all(col > 0) else col


def screen(columns, params, y, tr, val, cands: Mapping[str, str], keep: int = 6) -> list[str]:
    """Names of the ``keep`` candidates that most lower the validation error of a least-squares
    fit of log runtime on the (log) inputs plus the candidate and its square."""
    X0 = np.column_stack([_log_or_id(np.asarray(columns[p], float)) for p in params])
    t = np.log(y)

    def err(X):
        Xs = (X - X[tr].mean(0)) / np.where(X[tr].std(0) > 0, X[tr].std(0), 1)
        A = np.column_stack([np.ones(len(t)), Xs])
        coef, *_ = np.linalg.lstsq(A[tr], t[tr], rcond=None)
        return float(np.mean(np.abs(np.expm1(A[val] @ coef - t[val]))))

    base = err(X0)
    scores = {}
    for name, text in cands.items():
        c = _log_or_id(feature_matrix(columns, params, [text])[:, -1])
        scores[name] = err(np.column_stack([X0, c, c * c]))
    ranked = sorted((s, n) for n, s in scores.items() if s < base)
    return [n for _, n in ranked[:keep]]


def select(columns, params, y, tr, val, cands: Mapping[str, str],
           fit_score: Callable[[dict], float], *, base: Mapping[str, str] | None = None,
           shortlist: int = 5, max_features: int = 3, margin: float = 0.02,
           budget_s: float = 6.0) -> tuple[dict, list[dict]]:
    """Greedy forward selection of complexity expressions.

    ``fit_score(complexity) -> validation MAPE`` fits a (short) network on the training rows
    with that complexity and scores it on the validation rows. Starting from ``base`` (the
    catalog expressions; empty without catalog), each screened candidate is tried in turn
    and kept when it lowers the validation MAPE by more than ``margin`` (relative). Returns
    the chosen ``{name: expression}`` and a log of every try."""
    chosen = dict(base or {})
    t0 = time.perf_counter()
    best = fit_score(chosen)
    log = [{"tried": "(start)", "complexity": dict(chosen), "val_mape": best, "kept": True}]
    pool = {k: v for k, v in cands.items() if v not in chosen.values()}
    for name in screen(columns, params, y, tr, val, pool, keep=shortlist):
        if len(chosen) - len(base or {}) >= max_features or \
                time.perf_counter() - t0 > budget_s:
            break
        trial = {**chosen, name: pool[name]}
        score = fit_score(trial)
        kept = score < best * (1 - margin)
        log.append({"tried": name, "expression": pool[name], "val_mape": score, "kept": kept})
        if kept:
            chosen, best = trial, score
    return chosen, log
