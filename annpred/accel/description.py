"""Accelerator descriptions: a concise YAML or JSON format (one schema), validated with one
clear error per problem, naming the file and the field.

A description names the processing-element array (rows, columns, dataflow), the on-chip
buffers (ifmap, filter, ofmap: size in KiB, banks, double buffering), the DRAM interface
(bandwidth in words per cycle, latency in cycles), the clock, the word size and per-unit
latencies. Shipped descriptions live in ``annpred/accel/descriptions/*.yaml``; a user's file
may be YAML (``.yaml``/``.yml``) or JSON (``.json``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, asdict
from pathlib import Path

from ..errors import ParameterError

SHIPPED = Path(__file__).resolve().parent / "descriptions"
DATAFLOWS = ("os", "ws", "is", "vector")
FORMAT = "annpred-accel/1"


@dataclass(frozen=True)
class Buffer:
    kb: int                  # capacity in KiB (1 word = word_bytes bytes)
    banks: int = 1
    double_buffered: bool = True


@dataclass(frozen=True)
class Accelerator:
    name: str
    description: str
    rows: int                # PE array rows (a vector unit: 1)
    cols: int                # PE array columns (vector lanes)
    dataflow: str            # os | ws | is (systolic), vector (SIMD lanes, no skew)
    ifmap: Buffer
    filter: Buffer
    ofmap: Buffer
    dram_bandwidth: int      # words per cycle, per operand port
    dram_latency: int        # cycles from request to data
    clock_mhz: float
    word_bytes: int = 1
    mac_latency: int = 1     # cycles per MAC stage
    sram_latency: int = 1    # cycles for an on-chip buffer hit
    address_space_words: int = 10_000_000   # per operand (SCALE-Sim's operand offsets)

    def buffer_words(self, which: str) -> int:
        return getattr(self, which).kb * 1024 // self.word_bytes

    def hardware_id(self) -> str:
        return f"sim-{self.name}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["format"] = FORMAT
        return d

    def with_(self, **changes) -> "Accelerator":
        d = self.to_dict()
        d.update(changes)
        return from_dict(d, source="override")


def _pos_int(d: dict, key: str, where: str, minimum: int = 1) -> int:
    if key not in d:
        raise ParameterError(f"{where}: missing field {key!r}")
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v):
        raise ParameterError(f"{where}: {key} must be an integer, got {v!r}")
    if v < minimum:
        raise ParameterError(f"{where}: {key} must be >= {minimum}, got {v!r}")
    return int(v)


def _buffer(d: dict, key: str, where: str) -> Buffer:
    b = d.get("buffers", {}).get(key) if isinstance(d.get("buffers"), dict) else None
    if not isinstance(b, dict):
        raise ParameterError(f"{where}: missing buffer 'buffers.{key}' (an object with kb)")
    w = f"{where}: buffers.{key}"
    db = b.get("double_buffered", True)
    if not isinstance(db, bool):
        raise ParameterError(f"{w}: double_buffered must be true or false, got {db!r}")
    return Buffer(kb=_pos_int(b, "kb", w), banks=_pos_int(b, "banks", w) if "banks" in b else 1,
                  double_buffered=db)


def from_dict(d: dict, source: str = "description") -> Accelerator:
    """Validate a description (as parsed JSON) and build an :class:`Accelerator`."""
    if not isinstance(d, dict):
        raise ParameterError(f"{source}: expected a mapping of fields (a YAML mapping or JSON "
                             f"object), got {type(d).__name__}")
    if "buffers" not in d and "ifmap" in d:   # the flat form written by to_dict()
        d = dict(d, buffers={k: d[k] for k in ("ifmap", "filter", "ofmap")},
                 array={"rows": d["rows"], "cols": d["cols"], "dataflow": d["dataflow"]},
                 dram={"bandwidth": d["dram_bandwidth"], "latency": d["dram_latency"]},
                 latency={"mac": d.get("mac_latency", 1), "sram": d.get("sram_latency", 1)})
    fmt = d.get("format", FORMAT)
    if fmt != FORMAT:
        raise ParameterError(f"{source}: unknown format {fmt!r} (expected {FORMAT!r})")
    name = d.get("name")
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ParameterError(f"{source}: name must be a non-empty string of letters, digits, "
                             f"'-' and '_', got {name!r}")
    where = f"{source} ({name})"
    arr = d.get("array")
    if not isinstance(arr, dict):
        raise ParameterError(f"{where}: missing 'array' (rows, cols, dataflow)")
    rows = _pos_int(arr, "rows", f"{where}: array")
    cols = _pos_int(arr, "cols", f"{where}: array")
    df = arr.get("dataflow")
    if df not in DATAFLOWS:
        raise ParameterError(f"{where}: array.dataflow must be one of {', '.join(DATAFLOWS)}, "
                             f"got {df!r}")
    if df == "vector" and rows != 1:
        raise ParameterError(f"{where}: a vector unit has array.rows = 1, got {rows}")
    dram = d.get("dram")
    if not isinstance(dram, dict):
        raise ParameterError(f"{where}: missing 'dram' (bandwidth, latency)")
    bw = _pos_int(dram, "bandwidth", f"{where}: dram")
    lat = _pos_int(dram, "latency", f"{where}: dram", minimum=0) if "latency" in dram else 1
    clock = d.get("clock_mhz")
    if isinstance(clock, bool) or not isinstance(clock, (int, float)) or not clock > 0:
        raise ParameterError(f"{where}: clock_mhz must be a positive number, got {clock!r}")
    word = _pos_int(d, "word_bytes", where) if "word_bytes" in d else 1
    latd = d.get("latency", {}) or {}
    if not isinstance(latd, dict):
        raise ParameterError(f"{where}: latency must be an object (mac, sram)")
    mac = _pos_int(latd, "mac", f"{where}: latency") if "mac" in latd else 1
    sram = _pos_int(latd, "sram", f"{where}: latency") if "sram" in latd else 1
    space = _pos_int(d, "address_space_words", where) if "address_space_words" in d \
        else 10_000_000
    acc = Accelerator(name=name, description=str(d.get("description", "")), rows=rows,
                      cols=cols, dataflow=df, ifmap=_buffer(d, "ifmap", where),
                      filter=_buffer(d, "filter", where), ofmap=_buffer(d, "ofmap", where),
                      dram_bandwidth=bw, dram_latency=lat, clock_mhz=float(clock),
                      word_bytes=word, mac_latency=mac, sram_latency=sram,
                      address_space_words=space)
    for which in ("ifmap", "filter", "ofmap"):
        words = acc.buffer_words(which)
        tile = 2 * max(rows, cols, 100)   # one line per half, and SCALE-Sim's 100 sets
        if words < tile:
            raise ParameterError(f"{where}: buffers.{which} holds {words} words, too small for "
                                 f"one tile ({tile} words: a {rows}x{cols} array needs one "
                                 f"line in each half of the double buffer, at least 100 sets)")
    if acc.dram_bandwidth % acc.ifmap.banks or acc.dram_bandwidth % acc.filter.banks:
        raise ParameterError(f"{where}: dram.bandwidth {bw} must be divisible by the number of "
                             f"banks of the ifmap and filter buffers")
    return acc


YAML_SUFFIXES = (".yaml", ".yml")
SUFFIXES = YAML_SUFFIXES + (".json",)
MAX_BYTES = 1 << 20


def _yaml(text: str, p: Path):
    """Parse YAML safely (no tags, no objects); a key given twice is an error, not a silent
    overwrite."""
    try:
        import yaml
    except ImportError:   # a declared dependency; only a broken install lacks it
        raise ParameterError(f"{p}: reading YAML needs PyYAML (pip install pyyaml), or give "
                             f"the description as JSON") from None

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        keys = set()
        for k, _ in node.value:
            key = loader.construct_object(k, deep=deep)
            if key in keys:
                raise ParameterError(f"{p}: line {k.start_mark.line + 1}: field {key!r} given "
                                     f"twice")
            keys.add(key)
        return loader.construct_mapping(node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        return yaml.load(text, Loader=Loader)   # SafeLoader subclass: safe
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ParameterError(f"{p}: not valid YAML ({where}{what})") from None


def load(path) -> Accelerator:
    """Read and validate a description file: YAML (``.yaml``, ``.yml``) or JSON (``.json``;
    any other name is read as YAML, of which JSON is a subset)."""
    p = Path(path)
    try:
        if p.is_file() and p.stat().st_size > MAX_BYTES:
            raise ParameterError(f"{p}: accelerator description larger than {MAX_BYTES} bytes")
        text = p.read_text()
    except OSError as exc:
        raise ParameterError(f"{p}: cannot read accelerator description ({exc.strerror})") \
            from None
    except UnicodeDecodeError:
        raise ParameterError(f"{p}: accelerator description is not UTF-8 text") from None
    if p.suffix.lower() == ".json":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParameterError(f"{p}: not valid JSON (line {exc.lineno}: {exc.msg})") \
                from None
    else:
        d = _yaml(text, p)
    return from_dict(d, source=str(p))


def shipped() -> dict[str, Accelerator]:
    """The shipped accelerators, by name."""
    out = {}
    for p in sorted(SHIPPED.glob("*.yaml")):
        acc = load(p)
        out[acc.name] = acc
    return out


def get(name_or_path: str) -> Accelerator:
    """A shipped accelerator by name (``sim-`` prefix allowed), or a description file."""
    name = name_or_path[4:] if name_or_path.startswith("sim-") else name_or_path
    known = shipped()
    if name in known:
        return known[name]
    if name_or_path.lower().endswith(SUFFIXES) or Path(name_or_path).is_file():
        return load(name_or_path)
    raise ParameterError(f"unknown accelerator {name_or_path!r}; known: {', '.join(known)} "
                         f"(or give a description file NAME.yaml or NAME.json)")
