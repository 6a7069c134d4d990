"""Kernel Tuner cache files (``.json`` or ``.json.gz``) as profiling data.

A cache file holds one kernel on one GPU: ``device_name``, ``kernel_name``,
``problem_size``, ``tune_params_keys``, ``tune_params`` and ``cache``, a map from a
configuration key to a record with every tuning parameter, ``time`` (milliseconds) and
``times`` (the repeats). Each configuration becomes one row: the tuning parameters are the
features, ``time`` / 1000 the runtime in seconds, the robust spread of ``times`` the
``runtime_cv``, a slug of ``device_name`` the hardware id and ``kernel_name`` plus the
problem size the kernel; a parameter with one value in the whole space is recorded as a
constant, not a feature. Failed configurations (a string such as ``"CompilationFailedConfig"``
in ``time``) are skipped and counted. A file that is not such a cache raises one
:class:`~annpred.errors.DataError` naming the file. pandas-free except :func:`load_frame`.

Kernel Tuner's other output, a T4 results file (the Open Autotuning Results schema that
``kernel_tuner.util.store_output_file`` writes and the FAIR Benchmark Hub publishes:
``metadata.timeunit`` and ``results``, each with ``configuration``, ``times.runtimes``,
``measurements`` and ``invalidity``), is read into the same form (:mod:`annpred.data.t4`). It
names neither kernel nor device: both come from the file name, with a warning
(``--kernel`` and ``--hardware`` name them); an ``invalidity`` other than ``correct``
is a failed configuration.
"""
from __future__ import annotations

import json
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from annpred.data import jsondoc as _json
from annpred.errors import AnnpredWarning, DataError
from annpred.spec.hardware import slug as _hw_slug

VARIANT = "default"
REQUIRED = ("device_name", "kernel_name", "tune_params_keys", "cache")


def is_cache_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a Kernel Tuner cache file (by its suffix)."""
    name = str(path).lower()
    return name.endswith(".json") or name.endswith(".json.gz")


def hardware_id(device_name: str) -> str:
    """``cuda-<model>`` for NVIDIA GPUs (as :func:`annpred.spec.hardware.cuda_id` names the
    local one), ``gpu-<slug>`` for any other device."""
    name = str(device_name)
    if "nvidia" in name.lower():
        return "cuda-" + _hw_slug(re.sub("nvidia", "", name, flags=re.I))
    return "gpu-" + _hw_slug(name)


class NameFromFileWarning(AnnpredWarning):
    """A cache file does not name its device (or, a T4 file, its kernel): the id comes from
    the file name. Not given where the user names it (``read_cache(kernel=, hardware=)``,
    ``--kernel``, ``--hardware``)."""


def _stem(p: Path) -> str:
    return re.sub(r"\.json(\.gz)?$", "", p.name, flags=re.I)


def _hardware(p: Path, device_name, why: str = "'device_name' is empty"
              ) -> tuple[str, str | None]:
    """The hardware id of a cache file: from ``device_name``, or, where a run left it empty
    (some published caches do; T4 files have none), from the file name, with the warning
    to give, so that two GPUs' files never merge into one ``gpu-unknown`` combination."""
    if str(device_name).strip():
        return hardware_id(device_name), None
    hw = "gpu-" + _hw_slug(_stem(p))
    return hw, (f"{p}: {why}; hardware id {hw!r} taken from the file name (--hardware "
                "names it)")


def _kernel_id(kernel_name, psize) -> str:
    kernel = _slug(kernel_name).replace("-", "_")
    if psize:
        kernel += "_" + format_problem_size(psize)
    return kernel


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return re.sub(r"-+", "-", s) or "unknown"


@dataclass
class TuningCache:
    """One cache file, read and checked."""

    path: str
    kernel: str  # kernel_name plus the problem size, e.g. convolution_kernel_4096x4096
    variant: str
    hardware: str  # see hardware_id
    device_name: str
    kernel_name: str
    problem_size: list
    params: list[str]  # tuning parameters that vary (the features)
    tune_params: dict
    rows: list[dict] = field(default_factory=list)  # params + runtime_s, runtime_cv, ...
    n_failed: int = 0
    failures: dict = field(default_factory=dict)  # failure string -> count
    failed_rows: list[dict] = field(default_factory=list)  # parameters of each failure
    constants: dict = field(default_factory=dict)  # parameters with one value everywhere

    @property
    def n_rows(self) -> int:
        return len(self.rows)


def _robust_cv(times: list[float]) -> float:
    v = sorted(times)
    n = len(v)
    if n < 2:
        return 0.0

    def q(p):
        x = p * (n - 1)
        lo = int(math.floor(x))
        hi = min(lo + 1, n - 1)
        return v[lo] + (v[hi] - v[lo]) * (x - lo)

    med = q(0.5)
    return float((q(0.75) - q(0.25)) / 1.349 / med) if med > 0 else 0.0


def _number(v) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    return None


def read_cache(path: str | os.PathLike, kernel: str | None = None,
               hardware: str | None = None, unique: bool = True) -> TuningCache:
    """Read and check one cache file; failed configurations are skipped and counted.
    ``kernel``/``hardware``: names the user gives (``--kernel``, ``--hardware``) in place of
    the file's; no guess from the file name is reported for a name given. ``unique``: refuse
    two records of one configuration (False: keep both; ``--transfer`` takes their median)."""
    p = Path(path)
    doc = _json.read_document(p)  # bounded: file type, sizes, gzip, nesting, counts
    if not isinstance(doc, dict):
        raise DataError(f"{p}: not a Kernel Tuner cache file (top level is not an object)")
    from annpred.data import t4 as _t4

    t4 = _t4.is_t4(doc)
    if t4:
        doc = _t4.as_cache(p, doc)
    missing = [k for k in REQUIRED if k not in doc]
    if missing:
        raise DataError(f"{p}: not a Kernel Tuner cache file (missing key(s): "
                        f"{', '.join(missing)}) nor a T4 results file (no 'results')")
    keys = doc["tune_params_keys"]
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise DataError(f"{p}: 'tune_params_keys' must be a non-empty list of names")
    named: set = set()  # checked before any work: no name of a column annpred adds
    for k in keys:
        named.add(_json.parameter_name(p, k, named))
    cache = doc["cache"]
    if not isinstance(cache, dict):
        raise DataError(f"{p}: 'cache' must be an object (configuration key -> record)")
    if not cache:
        raise DataError(f"{p}: the cache is empty (no configurations)")
    psize = doc.get("problem_size", [])
    psize = psize if isinstance(psize, list) else [psize]
    if psize and not _size_ok([None if isinstance(v, bool) else _number(v) for v in psize]):
        raise DataError(f"{p}: 'problem_size' {json.dumps(doc['problem_size'])[:60]} is not "
                        "one to three sizes of at least 1 (as --problem-size takes them)")
    guess_kernel = t4 and kernel is None
    kernel = kernel or _kernel_id(doc["kernel_name"], psize)
    tune = doc.get("tune_params") if isinstance(doc.get("tune_params"), dict) else {}
    guessed = None
    if hardware is None:
        hardware, guessed = _hardware(p, doc["device_name"], "a T4 results file names no "
                                      "device" if t4 else "'device_name' is empty")
    out = TuningCache(str(p), kernel, VARIANT, hardware,
                      str(doc["device_name"]), str(doc["kernel_name"]), psize, list(keys),
                      tune)
    seen: dict[tuple, tuple] = {}  # configuration -> (where it was, its time)
    for ckey in list(cache):
        rec, cache[ckey] = cache[ckey], None  # each record freed once it is a row
        where = ckey if t4 else f"configuration {ckey!r}"  # a T4 file's: "result <i>"
        if not isinstance(rec, dict) or "time" not in rec:
            raise DataError(f"{p}: {where}: record without a 'time'")
        t = rec["time"]
        if isinstance(t, str):
            out.n_failed += 1
            out.failures[t] = out.failures.get(t, 0) + 1
            vals = {k: _number(rec.get(k)) for k in keys}
            if None not in vals.values():
                out.failed_rows.append(vals)
            continue
        t = _number(t)
        if t is None or t <= 0:
            raise DataError(f"{p}: {where}: 'time' {rec['time']!r} is not a positive number")
        row = {}
        for k in keys:
            v = _number(rec.get(k))
            if v is None:
                raise DataError(f"{p}: {where}: tuning parameter {k!r} is "
                                + (f"{rec[k]!r}, not a number" if k in rec else "missing"))
            row[k] = v
        conf = tuple(row[k] for k in keys)
        if unique and conf in seen and not t4:  # a cache's keys are its configurations (a
            a, ta = seen[conf]  # T4 run may measure one twice, e.g. a search revisiting it)
            raise DataError(f"{p}: {where} and {a!r} are the same configuration"
                            " (" + ", ".join(f"{k}={row[k]:g}" for k in keys) + ") with times "
                            f"{ta!r} and {rec['time']!r}; remove one of them")
        if unique and not t4:
            seen[conf] = (ckey, rec["time"])
        times = [x for x in (rec.get("times") or []) if _number(x) is not None]
        row["runtime_s"] = t / 1000.0
        row["runtime_cv"] = _robust_cv(times) if times else float("nan")
        row["repeats"] = len(times) or 1
        row["runtime_min_s"] = (min(times) if times else t) / 1000.0
        out.rows.append(row)
    if not out.rows:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(out.failures.items()))
        raise DataError(f"{p}: every configuration failed ({kinds}); nothing to use")
    # names guessed from the file name are reported once the file has been read whole
    if guess_kernel:
        warnings.warn(f"{p}: a T4 results file names no kernel; kernel {kernel!r} taken from "
                      "the file name (--kernel names it). It records no problem size or "
                      "constant parameters either: the launch-structure features that need "
                      "them (blocks in the grid, stencil halo) are left out unless "
                      "--problem-size and --constants give them", NameFromFileWarning,
                      stacklevel=2)
    if guessed:
        warnings.warn(guessed, NameFromFileWarning, stacklevel=2)
    # a parameter with one value in the whole space is a constant of the kernel, not a
    # feature (as an input it would only take weights, and so hidden units, from the network)
    const = {k: out.rows[0][k] for k in keys if len({r[k] for r in out.rows}) == 1}
    if len(const) < len(keys):
        out.constants = const
        out.params = [k for k in keys if k not in const]
    return out


def _size_ok(dims: list) -> bool:  # one to three problem sizes, finite and at least 1
    return 1 <= len(dims) <= 3 and all(v is not None and math.isfinite(v) and v >= 1
                                       for v in dims)


MAX_PRODUCT = 2_000_000  # configurations of a tuning space enumerated at most


@dataclass
class ProductSpace:
    """The product of a cache's ``tune_params`` (over the parameters that vary among its
    measured configurations), minus the configurations that failed and those that break a
    restriction."""

    params: list[str]
    columns: dict  # parameter -> numpy array, one entry per configuration left
    n_product: int  # configurations in the product of the varying parameters' values
    n_restricted: int  # removed by a restriction
    n_failed: int  # removed because they failed in the cache
    held: dict = field(default_factory=dict)  # parameter -> (measured value, other values)

    @property
    def size(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


def product_space(cache: TuningCache, restrictions=(), limit: int = MAX_PRODUCT
                  ) -> ProductSpace:
    """Every configuration of ``cache``'s ``tune_params`` (Kernel Tuner's search space before
    its restrictions), minus failures and configurations that break one of
    ``restrictions`` (conditions in Kernel Tuner's Python syntax, parsed with a whitelist:
    :mod:`annpred.spec.condition`). A parameter with one value among the measured
    configurations stays at that value (a model cannot predict values it never saw); it is
    listed in ``held`` when ``tune_params`` has others."""
    import numpy as np

    from annpred.errors import ParameterError
    from annpred.spec.condition import evaluate_condition, parse_condition

    values = {}
    for k in cache.params + sorted(cache.constants):
        v = cache.tune_params.get(k)
        if not isinstance(v, list) or not v:
            raise DataError(f"{cache.path}: 'tune_params' has no list of values for {k!r}; "
                            "the product of the tuning space cannot be formed")
        nums = [_number(x) for x in v]
        if None in nums:
            raise DataError(f"{cache.path}: 'tune_params' {k!r} holds a value that is not a "
                            f"number ({v[nums.index(None)]!r})")
        values[k] = sorted(set(nums))
    names = cache.params + sorted(cache.constants)
    for text in restrictions:
        parse_condition(text, names)
    held = {k: (cache.constants[k], [x for x in values[k] if x != cache.constants[k]])
            for k in sorted(cache.constants) if len(values[k]) > 1}
    size = math.prod(len(values[k]) for k in cache.params)
    if size > limit:
        raise ParameterError(f"{cache.path}: the product of tune_params has {size:,} "
                             f"configurations, more than {limit:,}; restrict the space or "
                             "use the cache's own configurations")
    grids = np.meshgrid(*[np.asarray(values[k], dtype=float) for k in cache.params],
                        indexing="ij")
    cols = {k: g.ravel() for k, g in zip(cache.params, grids)}
    every = {**cols, **{k: np.full(size, float(v)) for k, v in cache.constants.items()}}
    keep = np.ones(size, dtype=bool)
    for text in restrictions:
        keep &= evaluate_condition(text, every)
    n_restricted = int((~keep).sum())
    failed = {tuple(r[k] for k in cache.params) for r in cache.failed_rows
              if all(r.get(k) == v for k, v in cache.constants.items())}
    n_failed = 0
    if failed:
        tuples = zip(*(cols[k] for k in cache.params))
        hit = np.fromiter((t in failed for t in tuples), dtype=bool, count=size)
        n_failed = int((hit & keep).sum())
        keep &= ~hit
    return ProductSpace(list(cache.params), {k: v[keep] for k, v in cols.items()}, size,
                        n_restricted, n_failed, held)


def load_frame(path: str | os.PathLike, kernel: str | None = None,
               hardware: str | None = None, unique: bool = True):
    """The cache as a frame in the form :func:`annpred.data.profiles.load_profiles` returns
    (key columns, parameters, ``runtime_s``, ``runtime_cv``, ``repeats``, ``_source``,
    ``_row``, ``_problem_size``); parameters with one value in the whole space are dropped
    as constants. The frame's ``attrs`` carry ``n_failed``, ``problem_size``, ``constants``.
    ``kernel``/``hardware``/``unique`` as in :func:`read_cache`."""
    return frame(read_cache(path, kernel, hardware, unique))


def frame(c: TuningCache):
    """:func:`load_frame` of a cache already read (no second parse of a large file)."""
    import numpy as np
    import pandas as pd

    df = pd.DataFrame(c.rows).drop(columns=list(c.constants))
    df.insert(0, "kernel", c.kernel)
    df.insert(1, "variant", c.variant)
    df.insert(2, "hardware", c.hardware)
    df["_source"] = c.path
    df["_row"] = np.arange(1, len(df) + 1)
    df["_problem_size"] = format_problem_size(c.problem_size)
    # the constant parameters (e.g. a convolution's filter size), for structure expressions
    df["_constants"] = format_constants(c.constants)
    df.attrs.update({"n_failed": c.n_failed, "problem_size": c.problem_size,
                     "constants": dict(c.constants)})
    return df


def format_constants(constants: dict) -> str:
    """``{"filter_width": 15.0}`` -> ``"filter_width=15"`` (the ``_constants`` column)."""
    return ";".join(f"{k}={int(v) if float(v).is_integer() else v}"
                    for k, v in sorted(constants.items()))


def parse_constants(text) -> dict[str, float]:
    """``"filter_height=15;filter_width=15"`` -> ``{"filter_height": 15.0, ...}``; entries
    that are not ``name=number`` are ignored."""
    out = {}
    for part in str(text or "").split(";"):
        name, _, value = part.partition("=")
        try:
            v = float(value)
        except ValueError:
            continue
        if re.fullmatch(r"[A-Za-z_]\w*", name.strip()) and math.isfinite(v):
            out[name.strip()] = v
    return out


def format_problem_size(psize) -> str:
    """``[4096, 4096]`` -> ``"4096x4096"`` (the ``_problem_size`` column, kernel ids)."""
    return "x".join(str(v) for v in psize)


def parse_problem_size(text) -> list[float]:
    """``"4096x4096"`` (the ``_problem_size`` column) -> ``[4096.0, 4096.0]``; [] if none."""
    out = []
    for part in str(text or "").split("x"):
        try:
            out.append(float(part))
        except ValueError:
            return []
    return out


def space_arguments(problem_size: str | None, constants: str | None
                    ) -> tuple[str | None, str | None]:
    """The user's ``--problem-size`` (``4096x4096``) and ``--constants``
    (``filter_width=15,filter_height=15``) checked and written as the ``_problem_size`` and
    ``_constants`` columns hold them; None where not given."""
    from annpred.errors import ParameterError

    size = None
    if problem_size is not None:
        dims = parse_problem_size(str(problem_size).strip().lower())
        if not _size_ok(dims):
            raise ParameterError(f"--problem-size {problem_size!r}: one to three sizes of at "
                                 "least 1 joined by 'x', e.g. 4096x4096")
        size = "x".join(str(int(v)) if v.is_integer() else repr(v) for v in dims)
    const = None
    if constants is not None:
        out = {}
        for part in re.split(r"[,;]", str(constants)):
            name, eq, value = (x.strip() for x in part.partition("="))
            try:
                v = float(value)
            except ValueError:
                v = float("nan")
            if not eq or not re.fullmatch(r"[A-Za-z_]\w{0,99}", name) or not math.isfinite(v):
                raise ParameterError(f"--constants: {part.strip()!r} is not name=number "
                                     "(e.g. filter_width=15,filter_height=15)")
            if name in out:
                raise ParameterError(f"--constants: {name!r} is given twice")
            out[name] = v
        const = format_constants(out)
    return size, const


def with_space(frame, problem_size: str | None = None, constants: str | None = None):
    """``frame`` with the user's ``--problem-size`` and ``--constants`` (checked by
    :func:`space_arguments`) in its ``_problem_size`` and ``_constants`` columns, in place of
    what its file recorded; unchanged where neither is given."""
    for col, value in zip(("_problem_size", "_constants"),
                          space_arguments(problem_size, constants)):
        if value is not None:
            frame[col] = value
    return frame


def space_problem_size(frame) -> list[float] | None:
    """The problem size of the GPU tuning space a frame's rows come from (the
    ``_problem_size`` column of Kernel Tuner cache rows), else None."""
    if "_problem_size" not in getattr(frame, "columns", ()):
        return None
    return parse_problem_size(frame["_problem_size"].iloc[0]) or None


def space_constants(frame) -> dict[str, float] | None:
    """The constant parameters of that space (the ``_constants`` column), else None."""
    if "_constants" not in getattr(frame, "columns", ()):
        return None
    return parse_constants(frame["_constants"].iloc[0]) or None
