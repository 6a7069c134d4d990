"""DNN layers (conv2d, depthwise conv, GEMM) and network layer tables.

Convolutions follow SCALE-Sim's convention: H and W are the input sizes *after* padding, the
output is ``ceil((H - R) / stride) + 1``. Network tables give the unpadded size and ``pad``.
Inputs are trimmed to the rows and columns the strided windows read, so SCALE-Sim's output
size equals the frameworks' ``floor((H + 2*pad - R) / stride) + 1``.
A GEMM ``M x K`` times ``K x N`` is SCALE-Sim's conv with H=M, W=K, R=1, S=K, C=1, M=N.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, ParameterError
from ..validate import shown

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


# a layer table is read whole: the shipped ones are under 5 KB; 16 MiB holds some 300,000 layers
MAX_NETWORK_BYTES = 16 << 20
COLUMNS = ("name", "kind", "H", "W", "R", "S", "C", "M", "stride", "pad", "K", "N")
CONV_KINDS = ("conv2d", "dwconv")
_INT = re.compile(r"[+-]?[0-9]{1,18}")   # larger never fits an operand's address space


def network_path(path) -> Path:
    """``path``, or the shipped table of that name (``resnet18``) where ``path`` is not a
    file."""
    p = Path(path)
    if not p.is_file() and re.fullmatch(r"[A-Za-z0-9_]+", str(path)) and \
            (NETWORKS / f"{path}.csv").is_file():
        p = NETWORKS / f"{path}.csv"
    return p


def read_network(path) -> list[Layer]:
    """A layer table: CSV with columns name, kind, then the kind's numbers (H, W, R, S, C, M,
    stride, pad for convolutions; M, K, N for GEMMs); empty cells where a kind has none."""
    return [layer for _, layer in read_network_lines(path)]


def read_network_lines(path) -> list[tuple[str, Layer]]:
    """The layers of a table, each with where it is (``FILE, line N``) for later messages.

    Checked as profiling CSVs are (:func:`annpred.data.rows.read_header`): a regular file of at
    most :data:`MAX_NETWORK_BYTES`, UTF-8 (a byte-order mark is ignored), a header of unique
    known column names (:data:`COLUMNS`), every row with as many fields as the header. A
    convolution needs H, W, R, S, C, M (not a dwconv's: its M is C), stride and pad (0 for
    none: there is no default), a GEMM M, K, N; the cells a kind does not use must be empty.
    Every error names the file and line (the header is line 1) and the column."""
    import io

    from ..data.rows import read_header
    from ..validate import column_name, read_limited

    p = network_path(path)
    data = read_limited(p, "network table", MAX_NETWORK_BYTES, DataError)
    header = read_header(p)   # named, printable, unique columns; a BOM ignored
    for h in header:
        if h not in COLUMNS:
            raise DataError(f"{p}: unknown column {h!r}; a layer table has the columns "
                            f"{', '.join(COLUMNS)}")
    missing = [c for c in ("name", "kind") if c not in header]
    if missing:
        raise DataError(f"{p}: missing column(s) {', '.join(missing)}; the header is "
                        f"{','.join(header)}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{p}: not a UTF-8 text CSV") from None
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    out = []
    try:
        next(reader)   # the header
        for rec in reader:
            if not rec:   # a blank line
                continue
            line = reader.line_num
            where = f"{p}, line {line}"
            if len(rec) != len(header):
                raise DataError(f"{where} has {len(rec)} fields; the header names "
                                f"{len(header)} columns")
            r = {h: c.strip() for h, c in zip(header, rec)}
            out.append((where, _row(r, where, header, column_name)))
    except csv.Error as exc:
        raise DataError(f"{p}, line {reader.line_num}: malformed CSV ({exc})") from None
    if not out:
        raise DataError(f"{p}: no layers")
    seen: dict[str, str] = {}
    for where, layer in out:  # a name says which row a result is; two rows, one name: ambiguous
        if layer.name and seen.setdefault(layer.name, where) != where:
            raise DataError(f"{where}: layer name {layer.name!r} is already used at "
                            f"{seen[layer.name].rsplit(', ', 1)[-1]}; names must be unique "
                            "(leave them empty to have the shapes label the layers)")
    return out


def _row(r: dict, where: str, header: list, column_name) -> Layer:
    kind = r["kind"]
    if kind not in KINDS:
        raise DataError(f"{where}: unknown kind {shown(kind)}; known: {', '.join(KINDS)}")
    need = KINDS[kind] + (("pad",) if kind in CONV_KINDS else ())
    vals = {}
    for n in need:
        if n not in header:
            raise DataError(f"{where}: a {kind} layer needs column {n!r}"
                            + (" (0 for no padding)" if n == "pad" else "")
                            + f"; the header is {','.join(header)}")
        cell = r[n]
        if not cell:
            raise DataError(f"{where}, column {n!r}: empty; a {kind} layer needs "
                            f"{', '.join(need)}" + (" (0 for no padding)" if n == "pad" else ""))
        if not _INT.fullmatch(cell):
            raise DataError(f"{where}, column {n!r}: {shown(cell)} is not an integer"
                            + (" (at most 18 digits)" if cell.lstrip("+-").isdigit() else ""))
        vals[n] = int(cell)
    for c in header:
        if c in ("name", "kind") or c in need or not r[c]:
            continue
        if kind == "dwconv" and c == "M" and _INT.fullmatch(r[c]) and int(r[c]) == vals["C"]:
            continue   # a depthwise layer's M is its C
        raise DataError(f"{where}, column {c!r}: a {kind} layer has no {c}"
                        + (f" (its M is C = {vals['C']})" if kind == "dwconv" and c == "M"
                           else "") + f"; leave the cell empty (got {shown(r[c])})")
    name = r["name"]
    if name:
        column_name(name, f"{where}: layer", DataError)
    pad = vals.pop("pad", 0)
    try:
        return make(kind, vals, name=name, pad=pad)
    except ParameterError as exc:
        raise DataError(f"{where}: {exc}") from None
