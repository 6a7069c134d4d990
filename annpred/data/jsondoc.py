"""A JSON data file (a Kernel Tuner cache or T4 results file, plain or gzipped) read with
bounded cost: a regular file only (a FIFO or ``/dev/zero`` is refused without being read),
at most :data:`MAX_BYTES` on disk and, decompressed in chunks, at most :data:`MAX_BYTES` of
JSON text (a gzip bomb stops there); a corrupt gzip stream, JSON nested too deeply or an
integer of more than 20 digits is one :class:`~annpred.errors.DataError` naming the file.
NaN and Infinity are read (Kernel Tuner writes them; the cache reader refuses them where a
number is needed).

The largest published caches we use are 12 MB of JSON (``shared/data/kernel_tuner``,
dedispersion on an A4000, about 11,000 configurations); the limit is 20 times that.

Parsed JSON takes up to about 16 times its text in Python objects, so the bytes alone do not
bound the memory: 256 MiB of tiny T4 results (3 million) took 4 GB. The configurations
(objects with a ``time``, a cache record, or a ``configuration``, a T4 result) are counted
while the text is parsed, and the parse stops at :data:`MAX_CONFIGURATIONS`; so do JSON
objects of any kind at :data:`MAX_OBJECTS`. The largest real files have about 18,000
configurations (CLBlast GEMM on the FAIR Benchmark Hub); the limit is 55 times that, and a
file at it takes about 1 GB to read.

Tuning-parameter names are checked as the file is read (:func:`parameter_name`): printable,
at most 100 characters (:func:`annpred.validate.column_name`), and none of the columns annpred
adds to each row (:data:`annpred.data.rows.META_COLUMNS`, ``time``/``times`` of a record,
anything starting with ``_``), which a parameter would overwrite or lose.
"""
from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

from annpred.errors import DataError
from annpred.validate import column_name, json_int, read_limited

MAX_BYTES = 256 << 20  # 256 MiB of JSON text, on disk and decompressed
MAX_CONFIGURATIONS = 1_000_000  # cache records or T4 results in one file
MAX_OBJECTS = 4 * MAX_CONFIGURATIONS  # JSON objects of any kind (a T4 result has 3 or 4)
_CHUNK = 1 << 20


def read_text(path: str | os.PathLike, what: str = "Kernel Tuner cache file") -> str:
    """The JSON text of ``path`` (gunzipped where it starts with the gzip magic)."""
    p = Path(path)
    raw = read_limited(p, what, MAX_BYTES, DataError)
    if raw[:2] == b"\x1f\x8b":
        raw = gunzip(raw, p, MAX_BYTES)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{p}: not a UTF-8 JSON {what}") from None


def gunzip(data: bytes, p, limit: int = MAX_BYTES) -> bytearray:
    """Decompress every gzip member of ``data`` in chunks, refusing more than ``limit``
    bytes of output (returned without a copy: a bytearray)."""
    out = bytearray()
    rest = data
    try:
        while rest.strip(b"\0"):  # members, then possibly zero padding
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            buf = rest
            while True:
                chunk = d.decompress(buf, _CHUNK)
                out += chunk
                if len(out) > limit:
                    raise DataError(f"{p}: decompresses to more than {limit:,} bytes (the "
                                    "limit for a JSON data file)")
                buf = d.unconsumed_tail
                if d.eof or (not buf and not chunk):
                    break
            if not d.eof:
                raise DataError(f"{p}: the gzip data end early (a truncated file)")
            rest = d.unused_data
    except zlib.error as exc:
        raise DataError(f"{p}: corrupt gzip data ({exc})") from None
    return out


class _TooMany(Exception):
    """Raised inside the parse (by the object hook) once a count passes its limit."""


def _counter(limit: int, objects: int):
    n = [0, 0]  # configurations, objects

    def hook(d: dict) -> dict:
        n[1] += 1
        if "time" in d or "configuration" in d:
            n[0] += 1
            if n[0] > limit:
                raise _TooMany(f"more than {limit:,} configurations")
        if n[1] > objects:
            raise _TooMany(f"more than {objects:,} JSON objects")
        return d
    return hook


def loads(text: str, p, limit: int | None = None, objects: int | None = None):
    """Parse JSON text, stopping at ``limit`` configurations or ``objects`` JSON objects
    (default :data:`MAX_CONFIGURATIONS`, :data:`MAX_OBJECTS`);
    :class:`json.JSONDecodeError` is left to the caller (a cache file that did not finish
    is mended there), anything else unusable is a DataError."""
    hook = _counter(MAX_CONFIGURATIONS if limit is None else limit,
                    MAX_OBJECTS if objects is None else objects)
    try:
        return json.loads(text, parse_int=json_int, object_hook=hook)
    except json.JSONDecodeError:
        raise
    except _TooMany as exc:
        raise DataError(f"{p}: {exc} (the limit for a Kernel Tuner cache or T4 file; the "
                        "largest real ones have about 18,000 configurations)") from None
    except RecursionError:
        raise DataError(f"{p}: JSON nested too deeply") from None
    except (ValueError, MemoryError) as exc:
        raise DataError(f"{p}: unusable JSON ({str(exc)[:100]})") from None


def read_document(p: Path):
    """The parsed JSON document of a cache or T4 file (bounded as the module doc says); a
    cache file written by a run that did not finish lacks its closing braces, and is
    mended."""
    text = read_text(p)  # not stripped: a copy of up to MAX_BYTES
    if not text or text.isspace():
        raise DataError(f"{p}: file is empty")
    try:
        return loads(text, p)
    except json.JSONDecodeError as exc:
        try:
            return loads(text.rstrip().rstrip(",") + "}}", p)
        except json.JSONDecodeError:
            raise DataError(f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                            f"{exc.msg})") from None


# what each row of a cache holds besides its parameters (a record's own fields, too)
RECORD_FIELDS = ("time", "times")


def parameter_name(p, name, seen=()) -> str:
    """A tuning parameter's name, checked when the file is read: a column name
    (:func:`annpred.validate.column_name`), given once, and not a column annpred adds to
    the rows nor a record field: a parameter ``kernel`` would replace the kernel id, one
    ``runtime_s`` the runtime, one starting with ``_`` would be dropped."""
    from annpred.data.rows import META_COLUMNS, SPACE_COLUMNS

    column_name(name, f"{p}: tuning parameter", DataError)
    if name in META_COLUMNS or name in SPACE_COLUMNS or name in RECORD_FIELDS \
            or name.startswith("_"):
        raise DataError(f"{p}: tuning parameter {name!r} has the name of a column annpred "
                        "adds to every row (kernel, variant, hardware, runtime_s, ..., time, "
                        "times, or a name starting with '_'); rename it in the file")
    if name in seen:
        raise DataError(f"{p}: tuning parameter {name!r} is listed twice")
    return name
