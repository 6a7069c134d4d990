"""Accelerator descriptions: a concise YAML or JSON format (one schema), validated with one
clear error per problem, naming the file and the field.

A description names the processing-element array (rows, columns, dataflow), the on-chip
buffers (ifmap, filter, ofmap: size in KiB, banks, double buffering), the DRAM interface
(bandwidth in words per cycle, latency in cycles), the clock, the word size and per-unit
latencies. Shipped descriptions live in ``annpred/accel/descriptions/*.yaml``; a user's file
may be YAML (``.yaml``/``.yml``) or JSON (``.json``).

Every field name is checked: an unknown (misspelt) one is an error naming it and the allowed
ones, at every level. ``latency.mac`` is modelled by the ``vector`` dataflow only (the
systolic ``os``/``ws``/``is`` arrays take one step per MAC, as SCALE-Sim does) and
``latency.sram`` by none (a buffer hit is one step); a value other than 1 where it has no
effect gives a warning. Files are read only if regular (not a FIFO or device) and at most
:data:`MAX_BYTES`; JSON is parsed with bounded nesting and integer length. Every integer field
has an upper bound (:data:`MAXIMA`: e.g. DRAM latency at most 1,000,000 cycles, arrays at most
4096x4096).
"""
from __future__ import annotations

import difflib
import json
import math
import os
import warnings
from dataclasses import dataclass, asdict
from pathlib import Path

from ..errors import AnnpredWarning, ParameterError
from ..validate import shown

SHIPPED = Path(__file__).resolve().parent / "descriptions"
DATAFLOWS = ("os", "ws", "is", "vector")
FORMAT = "annpred-accel/1"

# the field names of each level of a description (anything else is refused: a misspelt
# optional field would otherwise silently give the default)
FIELDS = ("format", "name", "description", "array", "buffers", "dram", "clock_mhz",
          "word_bytes", "latency", "address_space_words")
ARRAY_FIELDS = ("rows", "cols", "dataflow")
BUFFERS = ("ifmap", "filter", "ofmap")
BUFFER_FIELDS = ("kb", "banks", "double_buffered")
DRAM_FIELDS = ("bandwidth", "latency")
LATENCY_FIELDS = ("mac", "sram")
# the flat form written by Accelerator.to_dict() and `annpred accel show --json` (whose
# "complexity" is output only and ignored on reading)
FLAT_FIELDS = ("format", "name", "description", "rows", "cols", "dataflow", "ifmap",
               "filter", "ofmap", "dram_bandwidth", "dram_latency", "clock_mhz", "word_bytes",
               "mac_latency", "sram_latency", "address_space_words", "complexity")


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


def _check_fields(d: dict, allowed: tuple, where: str) -> None:
    """Refuse a field name not in ``allowed``, naming it (and the nearest allowed one)."""
    for key in d:
        if key in allowed:
            continue
        near = difflib.get_close_matches(key, allowed, n=1) if isinstance(key, str) else []
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ParameterError(f"{where}: unknown field {shown(key)}{hint}; allowed: "
                             f"{', '.join(allowed)}")


# upper bounds of the integer fields (far above any real design: the largest shipped array is
# 256x256, buffers 12 MiB, DRAM latency 1 cycle); they keep the evaluation's arithmetic and
# time sane (a DRAM latency of 1e18 cycles made one layer run for many minutes)
MAXIMA = {"rows": 4096, "cols": 4096, "kb": 1 << 22, "banks": 1024, "bandwidth": 1 << 16,
          "latency": 1_000_000, "word_bytes": 64, "mac": 1000, "sram": 1000,
          "address_space_words": 1 << 40}


def _pos_int(d: dict, key: str, where: str, minimum: int = 1) -> int:
    if key not in d:
        raise ParameterError(f"{where}: missing field {key!r}")
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (
            isinstance(v, float) and (not math.isfinite(v) or v != int(v))):
        raise ParameterError(f"{where}: {key} must be an integer, got {shown(v)}")
    if v < minimum:
        raise ParameterError(f"{where}: {key} must be >= {minimum}, got {shown(v)}")
    if v > MAXIMA.get(key, v):
        raise ParameterError(f"{where}: {key} must be at most {MAXIMA[key]:,}, got {shown(v)}")
    return int(v)


def _buffer(d: dict, key: str, where: str) -> Buffer:
    b = d.get("buffers", {}).get(key) if isinstance(d.get("buffers"), dict) else None
    if not isinstance(b, dict):
        raise ParameterError(f"{where}: missing buffer 'buffers.{key}' (an object with kb)")
    w = f"{where}: buffers.{key}"
    _check_fields(b, BUFFER_FIELDS, w)
    db = b.get("double_buffered", True)
    if not isinstance(db, bool):
        raise ParameterError(f"{w}: double_buffered must be true or false, got {shown(db)}")
    return Buffer(kb=_pos_int(b, "kb", w), banks=_pos_int(b, "banks", w) if "banks" in b else 1,
                  double_buffered=db)


def _nested(d: dict, source: str) -> dict:
    """The nested form of a flat description (:meth:`Accelerator.to_dict`'s, which
    ``annpred accel show --json`` prints), its field names checked."""
    _check_fields(d, FLAT_FIELDS, source)
    out = {k: d[k] for k in ("format", "name", "description", "clock_mhz", "word_bytes",
                             "address_space_words") if k in d}
    out["array"] = {k: d[k] for k in ARRAY_FIELDS if k in d}
    out["buffers"] = {k: d[k] for k in BUFFERS if k in d}
    out["dram"] = {new: d[old] for old, new in (("dram_bandwidth", "bandwidth"),
                                                ("dram_latency", "latency")) if old in d}
    out["latency"] = {new: d[old] for old, new in (("mac_latency", "mac"),
                                                   ("sram_latency", "sram")) if old in d}
    return out


def from_dict(d: dict, source: str = "description") -> Accelerator:
    """Validate a description (as parsed JSON) and build an :class:`Accelerator`."""
    if not isinstance(d, dict):
        raise ParameterError(f"{source}: expected a mapping of fields (a YAML mapping or JSON "
                             f"object), got {type(d).__name__}")
    if "buffers" not in d and "array" not in d and any(
            k in d for k in FLAT_FIELDS if k not in FIELDS and k != "complexity"):
        d = _nested(d, source)   # the flat form written by to_dict()
    else:
        _check_fields(d, FIELDS, source)
    fmt = d.get("format", FORMAT)
    if fmt != FORMAT:
        raise ParameterError(f"{source}: unknown format {shown(fmt)} (expected {FORMAT!r})")
    name = d.get("name")
    if not isinstance(name, str) or not name or len(name) > 100 or \
            not all(c.isalnum() or c in "-_" for c in name):
        raise ParameterError(f"{source}: name must be a non-empty string of letters, digits, "
                             f"'-' and '_' (at most 100), got {shown(name)}")
    where = f"{source} ({name})"
    arr = d.get("array")
    if not isinstance(arr, dict):
        raise ParameterError(f"{where}: missing 'array' (rows, cols, dataflow)")
    _check_fields(arr, ARRAY_FIELDS, f"{where}: array")
    rows = _pos_int(arr, "rows", f"{where}: array")
    cols = _pos_int(arr, "cols", f"{where}: array")
    df = arr.get("dataflow")
    if df not in DATAFLOWS:
        raise ParameterError(f"{where}: array.dataflow must be one of {', '.join(DATAFLOWS)}, "
                             f"got {shown(df)}")
    if df == "vector" and rows != 1:
        raise ParameterError(f"{where}: a vector unit has array.rows = 1, got {rows}")
    dram = d.get("dram")
    if not isinstance(dram, dict):
        raise ParameterError(f"{where}: missing 'dram' (bandwidth, latency)")
    _check_fields(dram, DRAM_FIELDS, f"{where}: dram")
    bw = _pos_int(dram, "bandwidth", f"{where}: dram")
    lat = _pos_int(dram, "latency", f"{where}: dram", minimum=0) if "latency" in dram else 1
    clock = d.get("clock_mhz")
    if isinstance(clock, bool) or not isinstance(clock, (int, float)) or \
            not 0 < clock <= 1e9:   # NaN and infinity fail too
        raise ParameterError(f"{where}: clock_mhz must be a positive number (finite, at "
                             f"most 1e9 MHz), got {shown(clock)}")
    word = _pos_int(d, "word_bytes", where) if "word_bytes" in d else 1
    latd = d.get("latency", {}) or {}
    if not isinstance(latd, dict):
        raise ParameterError(f"{where}: latency must be an object (mac, sram)")
    _check_fields(latd, LATENCY_FIELDS, f"{where}: latency")
    mac = _pos_int(latd, "mac", f"{where}: latency") if "mac" in latd else 1
    sram = _pos_int(latd, "sram", f"{where}: latency") if "sram" in latd else 1
    space = _pos_int(d, "address_space_words", where) if "address_space_words" in d \
        else 10_000_000
    text = d.get("description")
    if text is not None and not isinstance(text, str):
        raise ParameterError(f"{where}: description must be text, got {shown(text)}")
    if mac != 1 and df != "vector":
        warnings.warn(f"{where}: latency.mac = {mac} has no effect with array.dataflow {df} "
                      f"(only the vector dataflow models a MAC latency; the systolic arrays take "
                      f"one step per MAC, as in SCALE-Sim)", AnnpredWarning, stacklevel=2)
    if sram != 1:
        warnings.warn(f"{where}: latency.sram = {sram} has no effect (the model takes one "
                      f"step per buffer hit, as SCALE-Sim does)", AnnpredWarning, stacklevel=2)
    if isinstance(d.get("buffers"), dict):
        _check_fields(d["buffers"], BUFFERS, f"{where}: buffers")
    acc = Accelerator(name=name, description=text or "", rows=rows,
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
# a description is a few hundred bytes; 1 MiB is generous and bounds the parser's work
MAX_BYTES = 1 << 20


class _Twice(ValueError):
    pass


def _no_twice(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise _Twice(f"field {shown(k)} given twice")
        out[k] = v
    return out


def _json(text: str, p: Path):
    """Parse JSON with the model files' bounds (:mod:`annpred.model.schema`): nesting at most
    ``MAX_DEPTH`` levels, integers of at most ``MAX_JSON_INT_DIGITS`` digits. NaN and Infinity
    are parsed so that :func:`from_dict` refuses them naming the field."""
    from ..model.schema import MAX_DEPTH, depth_ok
    from ..validate import json_int

    if not depth_ok(text):
        raise ParameterError(f"{p}: not valid JSON (nested more than {MAX_DEPTH} levels deep)")
    try:
        return json.loads(text, parse_int=json_int, object_pairs_hook=_no_twice)
    except json.JSONDecodeError as exc:
        raise ParameterError(f"{p}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except _Twice as exc:
        raise ParameterError(f"{p}: {exc}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ParameterError(f"{p}: not valid JSON ({str(exc)[:100]})") from None


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
            try:
                again = key in keys
            except TypeError:   # a list or mapping as a key
                raise ParameterError(f"{p}: line {k.start_mark.line + 1}: a field name must "
                                     f"be text, got a {type(key).__name__}") from None
            if again:
                raise ParameterError(f"{p}: line {k.start_mark.line + 1}: field "
                                     f"{shown(key)} given twice")
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
    except ParameterError:   # a field given twice (a ValueError too)
        raise
    except RecursionError:
        raise ParameterError(f"{p}: not valid YAML (nested too deeply)") from None
    except (ValueError, OverflowError, MemoryError) as exc:
        what = "an integer of more than 4300 digits" if "digits" in str(exc) else str(exc)
        raise ParameterError(f"{p}: not valid YAML ({what[:100]})") from None


def load(path) -> Accelerator:
    """Read and validate a description file: YAML (``.yaml``, ``.yml``) or JSON (``.json``;
    any other name is read as YAML, of which JSON is a subset). Only a regular file of at
    most :data:`MAX_BYTES` is read (a FIFO would block, a device never end)."""
    from ..validate import read_limited

    p = Path(path)
    data = read_limited(p, "accelerator description", MAX_BYTES, ParameterError)
    try:
        text = data.decode("utf-8-sig")   # a byte-order mark is ignored
    except UnicodeDecodeError:
        raise ParameterError(f"{p}: accelerator description is not UTF-8 text") from None
    d = _json(text, p) if p.suffix.lower() == ".json" else _yaml(text, p)
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
    # a file name, or anything that exists (load names a directory, FIFO or missing file)
    if name_or_path.lower().endswith(SUFFIXES) or os.path.lexists(name_or_path) or \
            "/" in name_or_path or os.sep in name_or_path:
        return load(name_or_path)
    raise ParameterError(f"unknown accelerator {name_or_path!r}; known: {', '.join(known)} "
                         f"(or give a description file NAME.yaml or NAME.json)")
