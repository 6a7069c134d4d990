"""DNN layers (conv2d, depthwise conv, GEMM) and network layer tables.

Convolutions follow SCALE-Sim's convention: H and W are the input sizes *after* padding, the
output is ``ceil((H - R) / stride) + 1``. Network tables give the unpadded size and ``pad``.
Inputs are trimmed to the rows and columns the strided windows read, so SCALE-Sim's output
size equals the frameworks' ``floor((H + 2*pad - R) / stride) + 1``.
A GEMM ``M x K`` times ``K x N`` is SCALE-Sim's conv with H=M, W=K, R=1, S=K, C=1, M=N.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, ParameterError

KINDS = {"conv2d": ("H", "W", "R", "S", "C", "M", "stride"),
         "dwconv": ("H", "W", "R", "S", "C", "stride"),
         "gemm": ("M", "K", "N")}
NETWORKS = Path(__file__).resolve().parent / "networks"


@dataclass(frozen=True)
class Layer:
    kind: str
    H: int
    W: int
    R: int
    S: int
    C: int
    M: int
    stride: int = 1
    name: str = ""

    @property
    def E(self) -> int:   # SCALE-Sim: ceil((H - R + stride) / stride)
        return -(-(self.H - self.R) // self.stride) + 1

    @property
    def F(self) -> int:
        return -(-(self.W - self.S) // self.stride) + 1

    def gemm_dims(self) -> tuple[int, int, int]:
        """(pixels, window, filters) of one group: the operand matrices' sizes."""
        c = 1 if self.kind == "dwconv" else self.C
        m = 1 if self.kind == "dwconv" else self.M
        return self.E * self.F, self.R * self.S * c, m

    @property
    def groups(self) -> int:
        return self.C if self.kind == "dwconv" else 1

    def macs(self) -> int:
        p, w, m = self.gemm_dims()
        return p * w * m * self.groups

    def words(self) -> dict[str, int]:
        """Distinct words per operand (one group; SCALE-Sim's address spaces)."""
        c = 1 if self.kind == "dwconv" else self.C
        p, w, m = self.gemm_dims()
        return {"ifmap": self.H * self.W * c, "filter": w * m, "ofmap": p * m}

    def label(self) -> str:
        if self.kind == "gemm":
            return f"gemm:{self.H},{self.W},{self.M}"
        if self.kind == "dwconv":
            return f"dwconv:{self.H},{self.W},{self.R},{self.S},{self.C},{self.stride}"
        return f"conv2d:{self.H},{self.W},{self.R},{self.S},{self.C},{self.M},{self.stride}"


def make(kind: str, values: dict, name: str = "", pad: int = 0) -> Layer:
    if kind not in KINDS:
        raise ParameterError(f"unknown layer kind {kind!r}; known: {', '.join(KINDS)}")
    for k, v in values.items():
        if isinstance(v, bool) or int(v) != v:
            raise ParameterError(f"layer {name or kind}: {k} must be an integer, got {v!r}")
        if v <= 0:
            raise ParameterError(f"layer {name or kind}: {k} must be positive, got {v!r}")
    if pad < 0:
        raise ParameterError(f"layer {name or kind}: pad must be >= 0, got {pad}")
    v = {k: int(x) for k, x in values.items()}
    if kind == "gemm":
        return Layer("gemm", H=v["M"], W=v["K"], R=1, S=v["K"], C=1, M=v["N"], stride=1,
                     name=name)
    H, W = v["H"] + 2 * pad, v["W"] + 2 * pad
    if v["R"] > H or v["S"] > W:
        raise ParameterError(f"layer {name or kind}: filter {v['R']}x{v['S']} larger than the "
                             f"(padded) input {H}x{W}")
    # the rows and columns the strided windows read: SCALE-Sim's ceil((H - R) / stride) + 1
    # output size then equals the frameworks' floor((H + 2 pad - R) / stride) + 1
    s = v["stride"]
    H = ((H - v["R"]) // s) * s + v["R"]
    W = ((W - v["S"]) // s) * s + v["S"]
    M = v["C"] if kind == "dwconv" else v["M"]
    return Layer(kind, H=H, W=W, R=v["R"], S=v["S"], C=v["C"], M=M, stride=v["stride"],
                 name=name)


def parse(spec: str) -> Layer:
    """``conv2d:H,W,R,S,C,M,stride``, ``dwconv:H,W,R,S,C,stride`` or ``gemm:M,K,N``."""
    if ":" not in spec:
        raise ParameterError(f"layer {spec!r}: expected KIND:N,N,... (kinds: {', '.join(KINDS)})")
    kind, rest = spec.split(":", 1)
    kind = kind.strip()
    if kind not in KINDS:
        raise ParameterError(f"layer {spec!r}: unknown kind {kind!r}; known: {', '.join(KINDS)}")
    names = KINDS[kind]
    parts = [p.strip() for p in rest.split(",")]
    if len(parts) != len(names):
        raise ParameterError(f"layer {spec!r}: {kind} takes {len(names)} numbers "
                             f"({','.join(names)}), got {len(parts)}")
    vals = {}
    for n, p in zip(names, parts):
        try:
            vals[n] = int(p)
        except ValueError:
            raise ParameterError(f"layer {spec!r}: {n}={p!r} is not an integer") from None
    return make(kind, vals)


def read_network(path) -> list[Layer]:
    """A layer table: CSV with columns name, kind, then the kind's numbers (H, W, R, S, C, M,
    stride, pad for convolutions; M, K, N for GEMMs); empty cells where a kind has none."""
    p = Path(path)
    if not p.is_file() and (NETWORKS / f"{path}.csv").is_file():
        p = NETWORKS / f"{path}.csv"
    try:
        rows = list(csv.DictReader(p.open(newline="")))
    except OSError as exc:
        raise DataError(f"{p}: cannot read network table ({exc.strerror})") from None
    if not rows:
        raise DataError(f"{p}: no layers")
    missing = {"name", "kind"} - set(rows[0])
    if missing:
        raise DataError(f"{p}: missing column(s) {', '.join(sorted(missing))}")
    out = []
    for i, r in enumerate(rows, start=2):
        kind = (r.get("kind") or "").strip()
        if kind not in KINDS:
            raise DataError(f"{p}, row {i}: unknown kind {kind!r}; known: {', '.join(KINDS)}")
        vals = {}
        for n in KINDS[kind]:
            cell = (r.get(n) or "").strip()
            try:
                vals[n] = int(cell)
            except ValueError:
                raise DataError(f"{p}, row {i}, column {n}: {cell!r} is not an integer") \
                    from None
        pad = int((r.get("pad") or "0").strip() or 0)
        try:
            out.append(make(kind, vals, name=r["name"].strip(), pad=pad))
        except ParameterError as exc:
            raise DataError(f"{p}, row {i}: {exc}") from None
    return out
