"""Halide pipelines with parameterised schedule spaces.

Each :class:`HalidePipeline` defines the algorithm once (``build``), a schedule space whose
members are the pipeline's *variants* (``space``), how a schedule is applied (``schedule``,
written against a :class:`~annpred.halide.space.Recorder` so the same calls can be printed as
Halide Python code), the inputs for a size, and a numpy reference of the result.

Pipelines
- ``blur``: 3x3 separable box blur (the original study's pipeline), float32, sizes ``W,H``.
- ``matmul``: ``C = A @ B`` with an update definition over ``k``, sizes ``M,N,K``.
- ``unsharp``: unsharp mask on an RGB image (gray -> 7-tap blur_y -> blur_x -> ratio ->
  output), sizes ``W,H``; where the producers are computed decides the runtime.

Layouts: numpy arrays are C-contiguous and handed to Halide with ``hl.Buffer(array)``, which
reverses the axes, so a numpy ``(H, W)`` image is a Halide ``(x=W, y=H)`` buffer.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import ParameterError
from .space import Knob, Recorder, Space, key_of


@dataclass
class Built:
    """A freshly defined algorithm (new Funcs each time: schedules mutate Funcs)."""

    inputs: list  # hl.ImageParam, in call order
    output: Any  # hl.Func
    funcs: dict  # name -> hl.Func (the schedulable stages)
    vars: dict  # name -> hl.Var / hl.RVar used by the algorithm


@dataclass(frozen=True)
class HalidePipeline:
    name: str
    description: str
    size_names: tuple[str, ...]
    size_range: dict  # size name -> (low, high) for training
    size_multiple: int  # sampled sizes are rounded to a multiple of this
    complexity: dict  # name -> expression over size (and knob) columns
    space: Space
    algorithm_code: str  # Python source that defines the same algorithm (for printing)
    _build: Callable[[], Built] = field(repr=False)
    _schedule: Callable[[Built, Mapping, Recorder], None] = field(repr=False)
    _inputs: Callable[[Mapping[str, int], np.random.Generator], list] = field(repr=False)
    _output: Callable[[Mapping[str, int]], np.ndarray] = field(repr=False)
    _reference: Callable[[list], np.ndarray] = field(repr=False)
    _estimates: Callable[[Built, Mapping[str, int]], None] = field(repr=False)
    compare_sizes: tuple = ()  # sizes used by experiments/halide.py
    min_sizes: dict = field(default_factory=dict)  # smallest size every schedule handles

    # -- sizes ---------------------------------------------------------------------------
    def parse_size(self, text: str | Sequence[int] | Mapping[str, int]) -> dict[str, int]:
        """``"1024,768"`` / ``"1024x768"`` / ``[1024, 768]`` / ``{"W": 1024, ...}`` -> dict."""
        if isinstance(text, Mapping):
            vals = [text.get(n) for n in self.size_names]
            if any(v is None for v in vals) or set(text) - set(self.size_names):
                raise ParameterError(f"pipeline {self.name} takes sizes "
                                     f"{','.join(self.size_names)}, got {dict(text)}")
        else:
            if isinstance(text, str):
                parts = [p for p in text.replace("x", ",").replace("X", ",").split(",")
                         if p.strip()]
            else:
                parts = list(text)
            if len(parts) == 1 and len(self.size_names) > 1:
                parts = parts * len(self.size_names)  # "512" -> square / cube
            if len(parts) != len(self.size_names):
                raise ParameterError(f"pipeline {self.name} takes sizes "
                                     f"{','.join(self.size_names)} (e.g. --size "
                                     f"{','.join(str(v) for v in self.example_size())}), "
                                     f"got {text!r}")
            vals = parts
        out = {}
        for n, v in zip(self.size_names, vals):
            try:
                iv = int(str(v).strip())
            except ValueError:
                raise ParameterError(f"size {n}={v!r} of pipeline {self.name} is not an "
                                     "integer") from None
            if iv < self.min_size(n):
                raise ParameterError(f"size {n}={iv} of pipeline {self.name} is below the "
                                     f"smallest supported size {self.min_size(n)}")
            out[n] = iv
        return out

    def min_size(self, name: str) -> int:
        """Tiles shift inwards at the edges, so an output must be at least one tile big."""
        return int(self.min_sizes.get(name, 1))

    def example_size(self) -> list[int]:
        return [int(v) for v in self.compare_sizes[0]] if self.compare_sizes else \
            [int(self.size_range[n][0]) for n in self.size_names]

    def size_label(self, sizes: Mapping[str, int]) -> str:
        return "x".join(str(int(sizes[n])) for n in self.size_names)

    def in_range(self, sizes: Mapping[str, int]) -> bool:
        return all(self.size_range[n][0] <= sizes[n] <= self.size_range[n][1]
                   for n in self.size_names)

    def sample_sizes(self, n: int, seed: int = 0) -> list[dict[str, int]]:
        """Log-uniform sizes in the training range, rounded to ``size_multiple``."""
        rng = np.random.default_rng(seed)
        out = []
        m = self.size_multiple
        for _ in range(n):
            s = {}
            for name in self.size_names:
                lo, hi = self.size_range[name]
                v = math.exp(rng.uniform(math.log(lo), math.log(hi)))
                s[name] = int(min(max(round(v / m) * m, lo), hi))
            out.append(s)
        return out

    # -- algorithm -----------------------------------------------------------------------
    def build(self) -> Built:
        return self._build()

    def apply(self, built: Built, schedule: Mapping | None, rec: Recorder | None = None
              ) -> Recorder:
        """Apply a schedule (``None``: Halide's default schedule) to freshly built Funcs."""
        rec = rec or Recorder()
        if schedule is not None:
            self._schedule(built, self.space.check(schedule), rec)
        return rec

    def set_estimates(self, built: Built, sizes: Mapping[str, int]) -> None:
        self._estimates(built, sizes)

    def make_inputs(self, sizes: Mapping[str, int], seed: int = 0) -> list[np.ndarray]:
        return self._inputs(sizes, np.random.default_rng(seed))

    def make_output(self, sizes: Mapping[str, int]) -> np.ndarray:
        return self._output(sizes)

    def reference(self, inputs: list[np.ndarray]) -> np.ndarray:
        return self._reference(inputs)

    def schedule_code(self, schedule: Mapping | None) -> str:
        """A self-contained Halide Python script: the algorithm, then the schedule."""
        built = self.build()
        rec = self.apply(built, schedule)
        head = (f"# annpred.halide pipeline {self.name!r}: {self.description}\n"
                f"# schedule knobs: {key_of(schedule) if schedule is not None else 'default'}\n"
                "import halide as hl\n\n" + textwrap.dedent(self.algorithm_code).strip()
                + "\n\n# --- schedule ---")
        return rec.code(head)

    def features(self, sizes: Mapping[str, int], schedule: Mapping) -> dict[str, float]:
        f = {n: float(sizes[n]) for n in self.size_names}
        f.update(self.space.features(schedule))
        return f

    def feature_names(self) -> list[str]:
        return list(self.size_names) + self.space.feature_names()


# ============================================================================================
# blur: out(x, y) = mean of the 3x3 box around input(x+1, y+1); input is (W+2) x (H+2).

def _blur_build() -> Built:
    import halide as hl

    inp = hl.ImageParam(hl.Float(32), 2, "input")
    x, y = hl.Var("x"), hl.Var("y")
    blur_x, blur_y = hl.Func("blur_x"), hl.Func("blur_y")
    blur_x[x, y] = (inp[x, y] + inp[x + 1, y] + inp[x + 2, y]) / 3.0
    blur_y[x, y] = (blur_x[x, y] + blur_x[x, y + 1] + blur_x[x, y + 2]) / 3.0
    return Built([inp], blur_y, {"blur_x": blur_x, "blur_y": blur_y}, {"x": x, "y": y})


_BLUR_CODE = """
input = hl.ImageParam(hl.Float(32), 2, "input")
x, y = hl.Var("x"), hl.Var("y")
blur_x, blur_y = hl.Func("blur_x"), hl.Func("blur_y")
blur_x[x, y] = (input[x, y] + input[x + 1, y] + input[x + 2, y]) / 3.0
blur_y[x, y] = (blur_x[x, y] + blur_x[x, y + 1] + blur_x[x, y + 2]) / 3.0
pipeline = hl.Pipeline(blur_y)  # inputs: [input]; output blur_y is W x H, input (W+2) x (H+2)
"""


def _tile_and_parallel(rec: Recorder, out, x, y, tx: int, ty: int, par: str):
    """Tile ``out`` by (tx, ty); return (loop var to compute producers at, inner xi, yi)."""
    xo, yo, xi, yi = (rec.var(n) for n in ("xo", "yo", "xi", "yi"))
    if tx == 0:  # full-width strips of ty rows: x is not split
        out.split(y, yo, yi, ty)
        if par != "none":
            out.parallel(yo)
        return yo, x, yi
    out.tile(x, y, xo, yo, xi, yi, tx, ty)
    at = xo
    if par == "y":
        out.parallel(yo)
    elif par == "tiles":
        t = rec.var("tile")
        out.fuse(xo, yo, t).parallel(t)
        at = t
    return at, xi, yi


def _blur_schedule(b: Built, s: Mapping, rec: Recorder) -> None:
    x, y = b.vars["x"], b.vars["y"]
    bx, by = rec.func(b.funcs["blur_x"]), rec.func(b.funcs["blur_y"])
    at, xi, yi = _tile_and_parallel(rec, by, x, y, s["tx"], s["ty"], s["par"])
    by.vectorize(xi, s["vec"])
    where = s["blur_x_at"]
    if where == "tile":
        bx.compute_at(by, at).vectorize(x, s["vec"])
    elif where == "row":  # sliding window: one new row of blur_x per output row
        bx.store_at(by, at).compute_at(by, yi).vectorize(x, s["vec"])
    elif where == "root":
        bx.compute_root().vectorize(x, s["vec"])
        if s["par"] != "none":
            bx.parallel(y)
    # "inline": nothing (blur_x is recomputed three times per output)


def _blur_inputs(sz, rng):
    return [rng.random((sz["H"] + 2, sz["W"] + 2), dtype=np.float32)]


def _blur_output(sz):
    return np.empty((sz["H"], sz["W"]), np.float32)


def _blur_reference(inputs):
    a = inputs[0].astype(np.float64)
    bx = (a[:, :-2] + a[:, 1:-1] + a[:, 2:]) / 3.0
    return ((bx[:-2] + bx[1:-1] + bx[2:]) / 3.0).astype(np.float32)


def _blur_estimates(b: Built, sz):
    b.inputs[0].set_estimates([(0, sz["W"] + 2), (0, sz["H"] + 2)])
    b.output.set_estimates([(0, sz["W"]), (0, sz["H"])])


BLUR = HalidePipeline(
    name="blur",
    description="3x3 separable box blur, float32 (blur_x -> blur_y)",
    size_names=("W", "H"),
    size_range={"W": (512, 4096), "H": (256, 4096)},
    size_multiple=16,
    complexity={"pixels": "W*H"},
    space=Space((
        Knob("tx", (16, 32, 64, 128, 256, 512, 0), codes=((0, 13),),
             description="output tile width (0: whole rows)"),
        Knob("ty", (4, 8, 16, 32, 64, 128), description="output tile height"),
        Knob("vec", (8, 16), description="vector width (floats)"),
        Knob("blur_x_at", ("tile", "inline", "root", "row"), categorical=True,
             description="where blur_x is computed"),
        Knob("par", ("y", "tiles", "none"), categorical=True,
             description="parallel loop: rows of tiles, all tiles fused, or serial"),
    ), valid=lambda s: s["tx"] == 0 or s["vec"] <= s["tx"]),
    algorithm_code=_BLUR_CODE,
    _build=_blur_build, _schedule=_blur_schedule, _inputs=_blur_inputs,
    _output=_blur_output, _reference=_blur_reference, _estimates=_blur_estimates,
    compare_sizes=((512, 512), (1024, 1024), (2048, 2048), (4096, 4096), (4096, 512)),
    min_sizes={"W": 512, "H": 128},
)


# ============================================================================================
# matmul: C(M x N) = A(M x K) @ B(K x N); Halide out(x=j, y=i), A(k, i), B(j, k).

def _mm_build() -> Built:
    import halide as hl

    A = hl.ImageParam(hl.Float(32), 2, "A")
    B = hl.ImageParam(hl.Float(32), 2, "B")
    x, y = hl.Var("x"), hl.Var("y")
    k = hl.RDom([(0, A.dim(0).extent())], "k")
    prod, out = hl.Func("prod"), hl.Func("out")
    prod[x, y] = 0.0
    prod[x, y] += A[k.x, y] * B[x, k.x]
    out[x, y] = prod[x, y]
    return Built([A, B], out, {"prod": prod, "out": out}, {"x": x, "y": y, "k": k.x})


_MM_CODE = """
A = hl.ImageParam(hl.Float(32), 2, "A")  # A(k, i): numpy (M, K)
B = hl.ImageParam(hl.Float(32), 2, "B")  # B(j, k): numpy (K, N)
x, y = hl.Var("x"), hl.Var("y")
k = hl.RDom([(0, A.dim(0).extent())], "k")
prod, out = hl.Func("prod"), hl.Func("out")
prod[x, y] = 0.0
prod[x, y] += A[k.x, y] * B[x, k.x]
out[x, y] = prod[x, y]
pipeline = hl.Pipeline(out)  # inputs: [A, B]; out(j, i): numpy (M, N)
"""


def _mm_schedule(b: Built, s: Mapping, rec: Recorder) -> None:
    x, y, k = b.vars["x"], b.vars["y"], b.vars["k"]
    prod, out = rec.func(b.funcs["prod"]), rec.func(b.funcs["out"])
    vec, bi = s["vec"], s["bi"]
    bw = s["bj"] * vec
    at, xi, yi = _tile_and_parallel(rec, out, x, y, bw * s["nbx"], s["ty"], s["par"])
    yii = rec.var("yii")
    out.split(yi, yi, yii, bi)
    block = yi
    if s["nbx"] > 1:
        xio, xii = rec.var("xio"), rec.var("xii")
        out.split(xi, xio, xii, bw).reorder(xii, yii, xio, yi, at)
        xi, block = xii, xio
    out.vectorize(xi, vec)
    where = s["prod_at"]
    upd = prod.update(0)
    if s["pack_b"]:
        bp = rec.func(b.inputs[1].in_(), "B.in_()")
        bp.compute_at(out, at).vectorize(rec.var("_0"), vec)  # the wrapper's vars: _0, _1
    if where == "block":  # register block: bw x bi accumulators, k loop outside them
        prod.compute_at(out, block).vectorize(x, vec).unroll(y)
        upd.reorder(x, y, k).vectorize(x, vec).unroll(x).unroll(y)
        if s["unroll_k"] > 1:
            upd.unroll(k, s["unroll_k"])
    elif where == "tile":  # accumulate the whole bw x ty tile in memory, k outermost
        prod.compute_at(out, at).vectorize(x, vec)
        yb = rec.var("yb")
        upd.split(y, y, yb, bi).reorder(x, yb, y, k).vectorize(x, vec).unroll(yb)
        if s["unroll_k"] > 1:
            upd.unroll(k, s["unroll_k"])
    else:  # root: the i-k-j loop over the whole matrix (row of C += A(k, i) * row k of B)
        prod.compute_root().vectorize(x, vec)
        upd.reorder(x, k, y).vectorize(x, vec)
        if s["unroll_k"] > 1:
            upd.unroll(k, s["unroll_k"])
        if s["par"] != "none":
            prod.parallel(y)
            upd.parallel(y)


def _mm_inputs(sz, rng):
    return [rng.random((sz["M"], sz["K"]), dtype=np.float32) - 0.5,
            rng.random((sz["K"], sz["N"]), dtype=np.float32) - 0.5]


def _mm_output(sz):
    return np.empty((sz["M"], sz["N"]), np.float32)


def _mm_reference(inputs):
    return (inputs[0].astype(np.float64) @ inputs[1].astype(np.float64)).astype(np.float32)


def _mm_estimates(b: Built, sz):
    b.inputs[0].set_estimates([(0, sz["K"]), (0, sz["M"])])
    b.inputs[1].set_estimates([(0, sz["N"]), (0, sz["K"])])
    b.output.set_estimates([(0, sz["N"]), (0, sz["M"])])


def _mm_valid(s):
    # a packed panel of B lives in the tile, so prod must be computed inside the tile too
    return (s["ty"] >= s["bi"] and s["ty"] % s["bi"] == 0
            and not (s["pack_b"] and s["prod_at"] == "root"))


MATMUL = HalidePipeline(
    name="matmul",
    description="matrix multiply C = A @ B, float32 (prod with an update over k -> out)",
    size_names=("M", "N", "K"),
    size_range={"M": (128, 1024), "N": (256, 1024), "K": (128, 1024)},
    size_multiple=32,
    complexity={"flops": "M*N*K"},
    space=Space((
        Knob("vec", (8, 16), description="vector width (floats)"),
        Knob("bj", (1, 2, 3, 4), description="register block width in vectors"),
        Knob("nbx", (1, 2, 4), description="register blocks per tile row (tile width = "
             "nbx * bj * vec; blocks sweep a band of bi rows across the tile)"),
        Knob("bi", (1, 2, 4, 8), description="register block height (rows)"),
        Knob("ty", (8, 16, 32, 64, 128), description="output tile height (rows)"),
        Knob("prod_at", ("block", "tile", "root"), categorical=True,
             description="where the accumulator prod is computed"),
        Knob("par", ("y", "tiles", "none"), categorical=True,
             description="parallel loop: rows of tiles, all tiles fused, or serial"),
        Knob("unroll_k", (1, 2, 4), description="unroll factor of the k loop"),
        Knob("pack_b", (0, 1), categorical=True, description="copy the tile's panel of B into a contiguous "
             "buffer (avoids cache-set conflicts at power-of-two strides)"),
    ), valid=_mm_valid),
    algorithm_code=_MM_CODE,
    _build=_mm_build, _schedule=_mm_schedule, _inputs=_mm_inputs,
    _output=_mm_output, _reference=_mm_reference, _estimates=_mm_estimates,
    compare_sizes=((256, 256, 256), (512, 512, 512), (768, 768, 768), (1024, 1024, 1024),
                   (1024, 256, 512)),
    min_sizes={"M": 128, "N": 256, "K": 1},
)


# ============================================================================================
# unsharp: RGB unsharp mask; input (W+6) x (H+6) x 3 planar, output W x H x 3.

_GAUSS = np.exp(-0.5 * ((np.arange(7) - 3) / 1.5) ** 2)
_GAUSS = (_GAUSS / _GAUSS.sum()).astype(np.float32)


def _us_build() -> Built:
    import halide as hl

    inp = hl.ImageParam(hl.Float(32), 3, "input")
    x, y, c = hl.Var("x"), hl.Var("y"), hl.Var("c")
    w = [float(v) for v in _GAUSS]
    gray, blur_y, ratio, out = (hl.Func(n) for n in ("gray", "blur_y", "ratio", "output"))
    cr, cg, cb = (float(np.float32(v)) for v in (0.299, 0.587, 0.114))
    gray[x, y] = cr * inp[x, y, 0] + cg * inp[x, y, 1] + cb * inp[x, y, 2]
    blur_y[x, y] = sum(w[i] * gray[x, y + i] for i in range(7))
    blur_x = sum(w[i] * blur_y[x + i, y] for i in range(7))
    sharpen = 2.0 * gray[x + 3, y + 3] - blur_x
    ratio[x, y] = sharpen / gray[x + 3, y + 3]
    out[x, y, c] = ratio[x, y] * inp[x + 3, y + 3, c]
    return Built([inp], out, {"gray": gray, "blur_y": blur_y, "ratio": ratio, "output": out},
                 {"x": x, "y": y, "c": c})


_US_CODE = """
input = hl.ImageParam(hl.Float(32), 3, "input")  # (W+6) x (H+6) x 3, planar
x, y, c = hl.Var("x"), hl.Var("y"), hl.Var("c")
w = %s  # 7-tap Gaussian, sigma 1.5
gray, blur_y, ratio, output = (hl.Func(n) for n in ("gray", "blur_y", "ratio", "output"))
gray[x, y] = (hl.f32(0.299) * input[x, y, 0] + hl.f32(0.587) * input[x, y, 1]
              + hl.f32(0.114) * input[x, y, 2])
blur_y[x, y] = sum(w[i] * gray[x, y + i] for i in range(7))
blur_x = sum(w[i] * blur_y[x + i, y] for i in range(7))
sharpen = 2.0 * gray[x + 3, y + 3] - blur_x
ratio[x, y] = sharpen / gray[x + 3, y + 3]
output[x, y, c] = ratio[x, y] * input[x + 3, y + 3, c]
pipeline = hl.Pipeline(output)  # inputs: [input]; output W x H x 3
""" % repr([float(v) for v in _GAUSS])


_US_LEVEL = {"root": 0, "tile": 1, "row": 2}
_US_EDGES = (("gray", "blur_y"), ("gray", "ratio"), ("blur_y", "ratio"), ("ratio", "output"))


def _us_valid(s) -> bool:
    """A producer must be computed no deeper than every consumer (inline: where its consumer
    is); ``row`` is inside the tile's row loop, ``tile`` at the tile, ``root`` outside;
    ``in_ratio`` is inside ratio's loop over x-chunks of ``ratio_chunk`` pixels."""
    if s["ratio_chunk"] and not (s["tx"] == 0 or s["ratio_chunk"] <= s["tx"]):
        return False  # a chunk must fit in the tile
    if s["ratio_at"] == "inline" and s["ratio_chunk"]:
        return False  # nothing to split

    def level(name):
        if name == "output":
            return 3.0
        where = s[f"{name}_at"]
        if where == "inline":
            return min(level(c) for p, c in _US_EDGES if p == name)
        if where == "in_ratio":
            return level("ratio") + 0.5
        return float(_US_LEVEL[where])
    for prod, cons in _US_EDGES:
        where = s[f"{prod}_at"]
        if where == "inline":
            continue
        if where == "in_ratio":
            if s["ratio_at"] == "inline" or not s["ratio_chunk"]:
                return False
            if cons != "ratio" and s[f"{cons}_at"] not in ("in_ratio", "inline"):
                return False
        elif level(prod) > level(cons):
            return False
    return True


def _us_schedule(b: Built, s: Mapping, rec: Recorder) -> None:
    x, y, c = b.vars["x"], b.vars["y"], b.vars["c"]
    out = rec.func(b.funcs["output"])
    at, xi, yi = _tile_and_parallel(rec, out, x, y, s["tx"], s["ty"], s["par"])
    # rows of the tile outermost inside it, then the three channels, then x (vectorised)
    if s["tx"] == 0 or s["par"] == "tiles":
        out.reorder(xi, c, yi, at)
    else:
        out.reorder(xi, c, yi, at, rec.var("yo"))
    out.vectorize(xi, s["vec"])
    for name in ("ratio", "blur_y", "gray"):  # consumers before producers
        where = s[f"{name}_at"]
        f = rec.func(b.funcs[name])
        vx = x
        if name == "ratio" and s["ratio_chunk"]:  # split x into chunks before vectorising
            vx = rec.var("rxi")
            f.split(x, rec.var("rxo"), vx, s["ratio_chunk"])
        if where == "tile":
            f.compute_at(out, at).vectorize(vx, s["vec"])
        elif where == "row":  # sliding window: computed row by row, stored per tile
            f.store_at(out, at).compute_at(out, yi).vectorize(vx, s["vec"])
        elif where == "root":
            f.compute_root().vectorize(vx, s["vec"])
            if s["par"] != "none":
                f.parallel(y)
        elif where == "in_ratio":  # inside ratio's loop over x-chunks
            f.compute_at(rec.func(b.funcs["ratio"]), rec.var("rxo")).vectorize(x, s["vec"])


def _us_inputs(sz, rng):
    return [0.1 + 0.9 * rng.random((3, sz["H"] + 6, sz["W"] + 6), dtype=np.float32)]


def _us_output(sz):
    return np.empty((3, sz["H"], sz["W"]), np.float32)


def _us_reference(inputs):
    a = inputs[0].astype(np.float64)
    w = _GAUSS.astype(np.float64)
    cr, cg, cb = (float(np.float32(v)) for v in (0.299, 0.587, 0.114))
    gray = cr * a[0] + cg * a[1] + cb * a[2]
    H, W = gray.shape[0] - 6, gray.shape[1] - 6
    by = sum(w[i] * gray[i:i + H, :] for i in range(7))  # (H, W+6)
    bx = sum(w[i] * by[:, i:i + W] for i in range(7))  # (H, W)
    g = gray[3:3 + H, 3:3 + W]
    ratio = (2.0 * g - bx) / g
    return (ratio[None] * a[:, 3:3 + H, 3:3 + W]).astype(np.float32)


def _us_estimates(b: Built, sz):
    b.inputs[0].set_estimates([(0, sz["W"] + 6), (0, sz["H"] + 6), (0, 3)])
    b.output.set_estimates([(0, sz["W"]), (0, sz["H"]), (0, 3)])


def _us_complexity() -> dict[str, str]:
    """Schedule-aware complexity of unsharp, as sympy text over the model's input columns.

    ``work``: arithmetic per output pixel times pixels, counting what a schedule recomputes:
    a stage computed ``inline`` is re-evaluated at every use (ratio once per channel, blur_y
    per x-tap of blur_x, gray per y-tap of blur_y and for ratio), one computed per ``tile``
    or ``row`` covers its consumer's tile plus the stencil halo, ``in_ratio`` covers one
    x-chunk of ratio (plus halo) per row, ``root`` covers the image once. Per evaluation:
    gray 5 flops, blur_y 13, blur_x + sharpen + ratio 16, output 3 (one per channel).
    ``traffic``: bytes per pixel through memory: input and output (24) plus a write and a
    read of every stage stored at ``root`` (8 each).
    Tile extents use the knobs' log2 codes (tx = 0, whole rows, is coded as 2**13, capped at
    W), so the features follow the schedule exactly, with no extra input columns.
    """
    tx, ty = "min(2**log2_tx, W)", "min(2**log2_ty, H)"
    chunk = f"min(2**log2_ratio_chunk, {tx})"  # ratio_chunk = 0 (no split) is coded as 2**12
    r = "(1 + 2*ratio_at_inline)"  # ratio evaluations per output pixel
    gray_tile = "(1 - gray_at_inline - gray_at_root - gray_at_row - gray_at_in_ratio)"
    by_tile = "(1 - blur_y_at_inline - blur_y_at_root - blur_y_at_row - blur_y_at_in_ratio)"
    b = (f"(blur_y_at_inline*7*{r} + ({by_tile} + blur_y_at_row)*({tx} + 6)/{tx}"
         f" + blur_y_at_root + blur_y_at_in_ratio*({chunk} + 6)/{chunk})")
    g = (f"(gray_at_inline*(7*{b} + {r}) + ({gray_tile} + gray_at_row)*({tx} + 6)*({ty} + 6)"
         f"/({tx}*{ty}) + gray_at_root + gray_at_in_ratio*7*({chunk} + 6)/{chunk})")
    return {"work": f"W*H*(5*{g} + 13*{b} + 16*{r} + 3)",
            "traffic": "W*H*(24 + 8*(gray_at_root + blur_y_at_root))",
            "pixels": "W*H"}


UNSHARP = HalidePipeline(
    name="unsharp",
    description="RGB unsharp mask, float32 (gray -> blur_y -> blur_x/ratio -> output)",
    size_names=("W", "H"),
    size_range={"W": (512, 3072), "H": (256, 3072)},
    size_multiple=16,
    complexity=_us_complexity(),
    space=Space((
        Knob("tx", (32, 64, 128, 256, 512, 0), codes=((0, 13),),
             description="output tile width (0: whole rows)"),
        Knob("ty", (4, 8, 16, 32, 64), description="output tile height"),
        Knob("vec", (8, 16), description="vector width (floats)"),
        Knob("gray_at", ("tile", "inline", "root", "row", "in_ratio"), categorical=True,
             description="where gray is computed (row: sliding window in the tile; "
                         "in_ratio: per x-chunk of ratio)"),
        Knob("blur_y_at", ("tile", "inline", "root", "row", "in_ratio"), categorical=True,
             description="where blur_y is computed"),
        Knob("ratio_at", ("tile", "inline", "row"), categorical=True,
             description="where ratio (blur_x, sharpen) is computed"),
        Knob("ratio_chunk", (0, 64, 256), codes=((0, 12),),
             description="split ratio's x into chunks (0: no split)"),
        Knob("par", ("y", "tiles", "none"), categorical=True,
             description="parallel loop: rows of tiles, all tiles fused, or serial"),
    ), valid=_us_valid),
    algorithm_code=_US_CODE,
    _build=_us_build, _schedule=_us_schedule, _inputs=_us_inputs,
    _output=_us_output, _reference=_us_reference, _estimates=_us_estimates,
    compare_sizes=((512, 512), (1024, 1024), (2048, 1536), (3072, 3072), (3072, 512)),
    min_sizes={"W": 512, "H": 64},
)


PIPELINES: dict[str, HalidePipeline] = {p.name: p for p in (BLUR, MATMUL, UNSHARP)}


def get(name: str | HalidePipeline) -> HalidePipeline:
    if isinstance(name, HalidePipeline):
        return name
    try:
        return PIPELINES[name]
    except KeyError:
        raise ParameterError(f"unknown Halide pipeline {name!r}; known pipelines: "
                             f"{', '.join(sorted(PIPELINES))}") from None
