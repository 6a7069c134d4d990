"""A JSON data file (a Kernel Tuner cache or T4 results file, plain or gzipped) read with
bounded cost: a regular file only (a FIFO or ``/dev/zero`` is refused without being read),
at most :data:`MAX_BYTES` on disk and, decompressed in chunks, at most :data:`MAX_BYTES` of
JSON text (a gzip bomb stops there); a corrupt gzip stream, JSON nested too deeply or an
integer of more than 20 digits is one :class:`~annpred.errors.DataError` naming the file.
NaN and Infinity are read (Kernel Tuner writes them; the cache reader refuses them where a
number is needed).

The largest published caches we use are 12 MB of JSON (``shared/data/kernel_tuner``,
dedispersion on an A4000, about 11,000 configurations); the limit is 20 times that.
"""
from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

from annpred.errors import DataError
from annpred.validate import json_int, read_limited

MAX_BYTES = 256 << 20  # 256 MiB of JSON text, on disk and decompressed
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


def gunzip(data: bytes, p, limit: int = MAX_BYTES) -> bytes:
    """Decompress every gzip member of ``data`` in chunks, refusing more than ``limit``
    bytes of output."""
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
    return bytes(out)


def loads(text: str, p):
    """Parse JSON text; :class:`json.JSONDecodeError` is left to the caller (a cache file
    that did not finish is mended there), anything else unusable is a DataError."""
    try:
        return json.loads(text, parse_int=json_int)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise DataError(f"{p}: JSON nested too deeply") from None
    except (ValueError, MemoryError) as exc:
        raise DataError(f"{p}: unusable JSON ({str(exc)[:100]})") from None
