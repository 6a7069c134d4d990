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

from ...errors import ParameterError
from ..space import Knob, Recorder, Space, key_of


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
    _sizes_of: Callable[[list], dict] | None = field(default=None, repr=False)
    # False where Halide's default schedule (everything inlined) is impractical, e.g. a chain
    # of stencils whose inlined taps multiply (9**6 loads per pixel, minutes to compile)
    default_schedule_ok: bool = True
    # size name -> the knob whose value is the tile extent along it (tile steps; 0 = whole)
    tile_knobs: dict = field(default_factory=dict)

    @property
    def tile_steps(self) -> bool:
        return bool(self.tile_knobs)

    def complexity_for(self, steps: bool = False, ragged: bool = False) -> dict[str, str]:
        """The complexity expressions; with ``steps``, step-aware: the image area ``W*H``
        that each expression scales with becomes ``ceiling(W/TX)*TX*ceiling(H/TY)*TY`` for
        the schedule's tile extents (whole tiles are computed; the last one shifts inwards
        over pixels already done). With ``ragged``, one 0/1 term per tiled size,
        ``ragged_W = ceiling(W/TX) - floor(W/TX)``: 1 when the size is not a whole number of
        tiles, so the last tile is shifted inwards (Halide's ``ShiftInwards``) and its
        producers' regions no longer line up with the others'; the cost of that is not only
        the recomputed area that ``steps`` counts."""
        out = dict(self.complexity)
        if steps and self.tile_knobs:
            area = []
            for n in self.size_names:
                k = self.tile_knobs.get(n)
                area.append(n if k is None else f"ceiling({n}/{self._tile_extent(n)})*"
                            f"{self._tile_extent(n)}")
            prod = "*".join(self.size_names)
            for name, e in self.complexity.items():
                if prod not in e:
                    raise ParameterError(f"pipeline {self.name}: complexity {name!r} does "
                                         f"not scale with {prod}; no tile steps for it")
                out[name] = e.replace(prod, "(" + "*".join(area) + ")", 1)
        if ragged:
            for n in self.size_names:
                if n in self.tile_knobs:
                    t = self._tile_extent(n)
                    out[f"ragged_{n}"] = f"ceiling({n}/{t}) - floor({n}/{t})"
        return out

    def _tile_extent(self, size: str) -> str:
        """The tile extent along ``size`` as an expression (whole size for code 0/"all")."""
        return f"min(2**log2_{self.tile_knobs[size]}, {size})"

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

    def sizes_of(self, inputs: list[np.ndarray]) -> dict[str, int]:
        """The sizes of numpy inputs shaped as :meth:`make_inputs` makes them."""
        if self._sizes_of is None:
            raise ParameterError(f"pipeline {self.name} cannot infer its sizes from inputs; "
                                 "pass out=")
        return {k: int(v) for k, v in self._sizes_of(inputs).items()}

    def schedule_code(self, schedule: Mapping | None) -> str:
        """A self-contained Halide Python script: the algorithm, then the schedule."""
        if schedule is not None:
            schedule = self.space.check(schedule)
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


def padded_image_sizes(pad: int):
    """``sizes_of`` for an image pipeline whose first input is ``(..., H + pad, W + pad)``."""
    def sizes_of(inputs):
        h, w = inputs[0].shape[-2:]
        return {"W": w - pad, "H": h - pad}
    return sizes_of


LEVEL = {"root": 0, "tile": 1, "row": 2}  # loop depth of a placement inside the output's nest


def levels_valid(s: Mapping, edges: Sequence[tuple[str, str]], output: str) -> bool:
    """Every producer is computed no deeper than each of its consumers. ``s[f"{f}_at"]`` is
    one of root/tile/row/inline; an inline stage sits where its shallowest consumer is;
    ``output`` is the innermost level."""
    def level(name):
        if name == output:
            return 3
        where = s[f"{name}_at"]
        if where == "inline":
            return min(level(c) for p, c in edges if p == name)
        return LEVEL[where]
    return all(s[f"{p}_at"] == "inline" or level(p) <= level(c) for p, c in edges)


def place(rec: Recorder, f, out, at, yi, where: str, vec: int, par: str, x, y) -> None:
    """Compute producer ``f`` (wrapped) per output tile (``at``), per output row inside the
    tile (``row``: stored per tile, a sliding window), once at root, or inline."""
    if where == "tile":
        f.compute_at(out, at).vectorize(x, vec)
    elif where == "row":
        f.store_at(out, at).compute_at(out, yi).vectorize(x, vec)
    elif where == "root":
        f.compute_root().vectorize(x, vec)
        if par != "none":
            f.parallel(y)


# knobs and sizes that most image pipelines share (one definition, reused by their files)
VEC_KNOB = Knob("vec", (8, 16), description="vector width (floats)")
PAR_KNOB = Knob("par", ("y", "tiles", "none"), categorical=True,
                description="parallel loop: rows of tiles, all tiles fused, or serial")
IMAGE_SIZES = dict(compare_sizes=((512, 512), (1024, 1024), (1920, 1080), (2560, 2560)),
                   min_sizes={"W": 256, "H": 64}, tile_knobs={"W": "tx", "H": "ty"})


def strip_ty_knob(heights=(8, 16, 32, 64)) -> Knob:
    """The tile-height knob with column strips (``0``, encoded as 2**13 rows: all of them)."""
    return Knob("ty", tuple(heights) + (0,), codes=((0, 13),),
                description="output tile height (0: column strips of tx columns over all "
                            "rows, the structure Mullapudi2016 prints)")


def strips_valid(s: Mapping) -> bool:
    """Column strips (``ty == 0``) need a strip width, and their one parallel loop is the
    strip loop (``par`` ``y`` and ``tiles`` would be the same schedule: keep ``y``)."""
    return s["ty"] != 0 or (s["tx"] != 0 and s["par"] != "tiles")


def rows_canonical(s: Mapping) -> dict:
    """Whole-row tiles (``tx == 0``) have one tile per row band, so ``par="tiles"`` applies
    the same directives as ``par="y"`` (:func:`tile_and_parallel`): keep ``y``."""
    out = dict(s)
    if out.get("tx") == 0 and out.get("par") == "tiles":
        out["par"] = "y"
    return out


def tile_and_parallel(rec: Recorder, out, x, y, tx: int, ty: int, par: str):
    """Tile ``out`` by (tx, ty); return (loop var to compute producers at, inner xi, yi).

    ``ty == 0``: column strips ``tx`` wide, rows inside (``reorder(xi, y, xo)``), parallel
    over strips; a producer placed per ``tile`` is computed once per strip, per ``row`` it
    is a sliding window down the strip (stored per strip, computed per row: no recompute
    along y, only the halo along x)."""
    xo, yo, xi, yi = (rec.var(n) for n in ("xo", "yo", "xi", "yi"))
    if ty == 0:
        out.split(x, xo, xi, tx).reorder(xi, y, xo)
        if par != "none":
            out.parallel(xo)
        return xo, xi, y
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


