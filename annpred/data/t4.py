"""T4 results files (the Open Autotuning Results schema, ``schema_version`` 1.0.0) read into
the document form of a Kernel Tuner cache, so that :func:`annpred.data.kerneltuner.read_cache`
checks and uses them like any cache.

Kernel Tuner writes them with ``kernel_tuner.util.store_output_file``, and the FAIR Benchmark
Hub publishes every search space in this form: ``metadata.timeunit`` and a list ``results``,
each with ``configuration`` (the tuning parameters), ``times.runtimes`` (the repeats),
``measurements`` (a ``time`` entry with ``value`` and ``unit``) and ``invalidity``
(``correct``, or why the configuration failed: ``compile``, ``runtime``, ``timeout``,
``correctness``, ``constraints``). Such a file names neither kernel nor device and records no
problem size or constant parameters.
"""
from __future__ import annotations

from pathlib import Path

from annpred.data.jsondoc import parameter_name
from annpred.data.kerneltuner import _number, _stem
from annpred.errors import DataError

# T4 ``metadata.timeunit`` -> milliseconds (Kernel Tuner's unit; "miliseconds" is how
# Kernel Tuner spells it)
_UNITS = {"s": 1e3, "sec": 1e3, "second": 1e3, "seconds": 1e3, "ms": 1.0,
             "millisecond": 1.0, "milliseconds": 1.0, "miliseconds": 1.0, "us": 1e-3,
             "microsecond": 1e-3, "microseconds": 1e-3, "ns": 1e-6, "nanosecond": 1e-6,
             "nanoseconds": 1e-6}


def is_t4(doc) -> bool:
    """Whether a parsed JSON document is a T4 results file (not a Kernel Tuner cache)."""
    return isinstance(doc, dict) and "results" in doc and "cache" not in doc


def _unit(p: Path, text, where: str) -> float:
    f = _UNITS.get(str(text).strip().lower())
    if f is None:
        raise DataError(f"{p}: {where} {text!r} is not a time unit (one of "
                        f"{', '.join(sorted(_UNITS))})")
    return f


def _list(p: Path, i: int, d: dict, key: str, what: str) -> list:
    """``d[key]`` of result ``i``: a list (none when absent or null)."""
    v = d.get(key)
    if v is None:
        return []
    if not isinstance(v, list):
        raise DataError(f"{p}: result {i}: {what!r} must be a list, got {type(v).__name__}")
    return v


def as_cache(p: Path, doc: dict) -> dict:
    """A T4 results document as the cache document that
    :func:`~annpred.data.kerneltuner.read_cache` reads: runtimes in milliseconds, ``time``
    from the ``time`` measurement (else the mean of the runtimes), an ``invalidity`` other
    than ``correct`` as the failure string ``invalid: <kind>``, ``kernel_name`` from the
    file name and ``device_name`` empty (``read_cache`` warns about both once the file has
    been read)."""
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    unit = _unit(p, meta.get("timeunit", "milliseconds"), "'metadata.timeunit'")
    results = doc["results"]
    if not isinstance(results, list):
        raise DataError(f"{p}: 'results' must be a list of configurations")
    if not results:
        raise DataError(f"{p}: the results are empty (no configurations)")
    keys: dict[str, None] = {}
    cache = {}
    for i, r in enumerate(results):
        conf = r.get("configuration") if isinstance(r, dict) else None
        if not isinstance(conf, dict) or not conf:
            raise DataError(f"{p}: result {i}: no 'configuration' object")
        for k in conf:
            if k not in keys:  # checked as first seen, before the rest is converted
                keys[parameter_name(p, k)] = None
        rec = dict(conf)
        bad = r.get("invalidity")
        times = r.get("times") if isinstance(r.get("times"), dict) else {}
        runs = [_number(x) * unit for x in _list(p, i, times, "runtimes", "times.runtimes")
                if _number(x) is not None]
        if bad not in (None, "", "correct"):
            rec["time"] = f"invalid: {bad}"
        else:
            t = None
            for m in _list(p, i, r, "measurements", "measurements"):
                if isinstance(m, dict) and m.get("name") == "time":
                    u = unit if not str(m.get("unit") or "").strip() else _unit(
                        p, m["unit"], f"result {i}: the 'time' measurement's unit")
                    v = _number(m.get("value"))
                    if v is None:
                        raise DataError(f"{p}: result {i}: the 'time' measurement "
                                        f"{m.get('value')!r} is not a number")
                    t = v * u
            if t is None and runs:
                t = sum(runs) / len(runs)
            if t is None:
                raise DataError(f"{p}: result {i}: neither a 'time' measurement nor "
                                "'times.runtimes'")
            rec["time"], rec["times"] = t, runs
        cache[f"result {i}"] = rec
        results[i] = None  # each parsed result freed once converted (memory: see jsondoc)
    # the values each parameter takes (numbers; read_cache names any other value's row)
    tune = {k: list(dict.fromkeys(_number(rec.get(k)) for rec in cache.values()))
            for k in keys}
    return {"device_name": "", "kernel_name": _stem(p), "problem_size": [],
            "tune_params_keys": list(keys), "tune_params": tune, "cache": cache}
