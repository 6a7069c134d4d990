"""Loaded model directories and single predictions, in numpy only (no torch import)."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from annpred.spec import hardware as hw
from annpred.errors import (AnnpredError, AnnpredWarning, ModelFormatError, ParameterError,
                            UnknownKernelError)
from annpred.model.features import feature_matrix
from annpred.model.layout import model_files, shipped_root, user_root
from annpred.model.network import compile_model, predict_seconds, transform_inputs
from annpred.model.schema import load_model
from annpred.model.correction import apply_log
from annpred.runtime import caches
from annpred.runtime import correction as _correction
from annpred.runtime.ranges import RANGE_MARGIN, widen_range
from annpred.spec.catalog import get_kernel, kernels
from annpred.spec.kernel import Kernel, finite_number
from annpred.validate import shown


@dataclass
class Prediction:
    kernel: str
    variant: str
    hardware: str
    seconds: float
    in_range: bool
    out_of_range: dict  # parameter -> [value, [lo, hi]]
    interval: tuple | None = None  # (low, high) seconds at the model's nominal coverage
    provenance: dict | None = None  # model file, source (user/shipped/custom), measured
    machine_match: bool = True  # the model was measured on this machine
    adapted: bool = False  # a calibration of this machine corrects the model (applied)
    machine: str = ""  # the machine the model was measured on, for people

    def to_dict(self) -> dict:
        return {"kernel": self.kernel, "variant": self.variant, "hardware": self.hardware,
                "seconds": self.seconds, "in_range": self.in_range,
                "out_of_range": self.out_of_range,
                "interval": None if self.interval is None else list(self.interval),
                "provenance": self.provenance, "machine_match": self.machine_match,
                "adapted": self.adapted, "machine": self.machine}


class LoadedModel:
    """One model file, compiled for fast numpy prediction."""

    __slots__ = ("meta", "compiled", "params", "range", "path", "source", "interval",
                 "machine_match", "correction")

    def __init__(self, meta: dict, path: Path | None = None, source: str = "custom"):
        self.meta = meta
        self.path = path
        self.source = source  # "user" (calibrated here), "shipped" or "custom" (a directory)
        iv = meta.get("interval")
        self.interval = (float(iv["lo"]), float(iv["hi"]), float(iv["nominal"])) if iv else None
        self.machine_match = hw.machine_match(meta["hardware"], meta.get("machine"))
        self.correction = None  # set by annpred.runtime.correction.attach
        self.compiled = compile_model(meta)
        self.params = list(meta.get("parameters", [f for f in meta["features"]
                                                   if f not in meta["complexity"]]))
        order = [f for f in meta["features"] if f not in meta["complexity"]]
        if order != self.params:
            raise ModelFormatError(f"{path}: features must list the parameters first")
        self.range = {k: (float(v[0]), float(v[1]))
                      for k, v in meta["train"].get("range", {}).items()}

    @property
    def key(self) -> tuple[str, str, str]:
        return self.meta["kernel"], self.meta["variant"], self.meta["hardware"]

    def features(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        return feature_matrix(cols, self.params, self.meta["complexity"])

    def predict(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        missing = [p for p in self.params if p not in cols]
        if missing:
            raise ParameterError(f"model {'/'.join(self.key)} needs parameter(s) "
                                 f"{', '.join(missing)}")
        for p in self.params:
            if not np.all(np.isfinite(np.asarray(cols[p], dtype=float))):
                raise ParameterError(f"parameter {p} must be a finite number")
        with np.errstate(all="ignore"):
            F = self.features(cols)
            out = predict_seconds(F, self.compiled)
            if self.correction is not None:
                x = transform_inputs(F, self.compiled["input_transform"])
                out = np.exp(apply_log(np.log(out), self.correction, x))
        if np.any(out <= 0):  # an identity-target network is not bounded below
            raise ParameterError(f"model {'/'.join(self.key)} "
                                 + (f"({self.path}) " if self.path is not None else "")
                                 + "predicts a runtime <= 0 for these parameters ("
                                 + ", ".join(f"{p}={np.ravel(cols[p])[0]:g}"
                                             for p in self.params) + "); it cannot be used "
                                 "here")
        if not np.all(np.isfinite(out)):
            raise ParameterError(f"model {'/'.join(self.key)} gives no finite prediction for "
                                 "these parameters (outside what it can represent: "
                                 + ", ".join(f"{p}={np.ravel(cols[p])[0]:g}"
                                             for p in self.params) + ")")
        return out

    @property
    def trusted_machine(self) -> bool:
        """Measured on this machine, or adapted to it by a calibration."""
        return self.machine_match or self.correction is not None

    def provenance(self) -> dict:
        """Where this model comes from: file, source, hardware, when and under what load its
        data was measured (as recorded at training), how many rows it was trained on."""
        t = self.meta.get("train", {})
        c = self.correction
        return {"model_file": None if self.path is None else str(self.path),
                "source": self.source, "hardware": self.meta["hardware"],
                "measured": t.get("measured"), "n_samples": t.get("n_samples"),
                "interval_coverage": None if self.interval is None else self.interval[2],
                "calibration": None if c is None else {  # the one adapting it here, if any
                    "file": c.get("source"), "created": c.get("created"),
                    "probes": c.get("n_probes"), "input_sets_median": c.get("input_sets_median")}}

    def interval_of(self, seconds):
        """(low, high) seconds around predicted ``seconds``, or None without an interval; a
        bound past float's range is inf (0 below it), without a warning."""
        if self.interval is None:
            return None
        with np.errstate(over="ignore", under="ignore"):
            return seconds * np.exp(self.interval[0]), seconds * np.exp(self.interval[1])

    def out_of_range(self, point: Mapping[str, float], margin: float = RANGE_MARGIN) -> dict:
        """Parameters outside the training range widened by ``margin`` (value, [lo, hi])."""
        bad = {}
        for p, (lo, hi) in self.range.items():
            wlo, whi = widen_range(lo, hi, margin)
            if p in point and not (wlo <= float(point[p]) <= whi):
                bad[p] = [point[p], [lo, hi]]
        return bad


def catalog_kernel(name) -> Kernel | None:
    """The catalog :class:`~annpred.spec.kernel.Kernel` named ``name`` (cached), or None for
    a kernel known only from its models."""
    k = caches.KERNELS.get(name) if isinstance(name, str) else None
    if k is not None:
        return k
    if not isinstance(name, str):
        raise UnknownKernelError(f"kernel must be a kernel name, got {shown(name)}")
    gen = caches.GENERATION
    try:
        k = get_kernel(name)
    except UnknownKernelError:
        return None
    return caches.put(caches.KERNELS, name, k, gen)


def check_point(spec: Kernel | None, params: Mapping[str, Any]) -> dict:
    """One call's parameters, validated (the check ``choose``, ``dispatch`` and
    :meth:`Predictor.predict` share): a catalog kernel's :meth:`~annpred.spec.kernel.Kernel.
    check_params`, else every value a finite number."""
    if type(params) is not dict and not isinstance(params, Mapping):  # ABC check: slow
        raise ParameterError(f"params must be a mapping name -> value, got "
                             f"{type(params).__name__}")
    if spec is not None:
        return spec.check_params(params)
    return {k: finite_number(k, v) for k, v in params.items()}


def _unknown_kernel(kernel: str, pred: "Predictor") -> UnknownKernelError:
    known = ", ".join(sorted(kernels())) or "(none)"
    have = ", ".join(pred.kernels()) or "(none)"
    return UnknownKernelError(
        f"unknown kernel {kernel!r}: not in the catalog (known kernels: {known}) and no "
        f"model of it in {', '.join(str(r) for r in pred.roots)} (kernels with models: "
        f"{have})")


def source_of(root: Path) -> str:
    """``user`` for the calibrated-models root, ``shipped`` for the shipped one, else
    ``custom``."""
    r = Path(root).resolve()
    if r == user_root().resolve():
        return "user"
    if r == shipped_root().resolve():
        return "shipped"
    return "custom"


class Predictor:
    """All models of one or more directories; earlier directories take precedence.

    Sources are never mixed within one (kernel, hardware): the models of a kernel on one
    hardware id all come from the first directory that has any model for that pair (a user's
    calibration of matmul on ``cpu-x-t1`` hides every shipped matmul model on ``cpu-x-t1``,
    not only the variants it re-measured)."""

    def __init__(self, roots):
        self.roots = [Path(r) for r in roots]
        self.models: dict[tuple[str, str, str], LoadedModel] = {}
        self.skipped: dict[tuple[str, str, str], str] = {}  # key from the path -> why
        owner: dict[tuple[str, str], int] = {}  # (kernel, hardware) -> index of its root
        for i, root in enumerate(self.roots):
            if not root.is_dir():
                continue
            source = source_of(root)
            for p in model_files(root):
                # a broken (or hostile) file costs only its own combination (it still
                # claims its (kernel, hardware) for its root, as a good file would)
                path_key = (p.parent.name, p.stem, p.parent.parent.name)
                try:
                    m = LoadedModel(load_model(p), p, source)
                except AnnpredError as exc:
                    if owner.setdefault((path_key[0], path_key[2]), i) == i:
                        self.skipped.setdefault(path_key, str(exc))
                    warnings.warn(f"skipping model file {p}: {exc}", AnnpredWarning,
                                  stacklevel=2)
                    continue
                if m.key != path_key:  # a copied or edited file: it would be used as
                    # what its contents say, under a path that says otherwise
                    warnings.warn(f"skipping model file {p}: it holds "
                                  f"{'/'.join(m.key)}, its path says "
                                  f"{'/'.join(path_key)}", AnnpredWarning, stacklevel=2)
                    continue
                kh = (m.key[0], m.key[2])
                if owner.setdefault(kh, i) == i and m.key not in self.models:
                    self.models[m.key] = m
        _correction.attach(self.models, self.roots)

    def mismatched(self) -> list[tuple[str, str, str]]:
        """Combinations whose model was measured on another machine and is not adapted."""
        return sorted(k for k, m in self.models.items() if not m.trusted_machine)

    def __len__(self):
        return len(self.models)

    def kernels(self) -> list[str]:
        """The kernels with at least one model here, sorted."""
        return sorted({k[0] for k in self.models})

    def combinations(self, kernel: str | None = None) -> list[tuple[str, str, str]]:
        """The ``(kernel, variant, hardware)`` triples with a model, sorted; only those of
        ``kernel`` when given."""
        return sorted(k for k in self.models if kernel is None or k[0] == kernel)

    def get(self, kernel: str, variant: str, hardware: str) -> LoadedModel:
        """The loaded model of ``kernel``/``variant`` on ``hardware``; an
        :class:`~annpred.errors.UnknownKernelError` listing the kernel's models (or saying
        why its file was skipped) when there is none."""
        try:
            return self.models[(kernel, variant, hardware)]
        except KeyError:
            why = self.skipped.get((kernel, variant, hardware))
            if why:
                raise UnknownKernelError(f"the model for {kernel}/{variant} on {hardware} "
                                         f"was skipped: {why}") from None
            have = [f"{v}@{h}" for k, v, h in self.combinations(kernel)]
            raise UnknownKernelError(
                f"no model for {kernel}/{variant} on {hardware}; models for {kernel}: "
                + (", ".join(have) if have else "(none)")
                + f" (searched {', '.join(str(r) for r in self.roots)})") from None

    def hardware_for(self, kernel: str, variant: str) -> list[str]:
        """The hardware ids with a model of ``kernel``/``variant``, sorted."""
        return [h for k, v, h in self.combinations(kernel) if v == variant]

    def default_hardware(self, kernel: str, variant: str) -> str:
        """The present hardware with the most threads (models measured on or adapted to this
        machine first), else the only model's hardware."""
        hws = self.hardware_for(kernel, variant)
        if not hws:
            variants = sorted({v for _, v, _ in self.combinations(kernel)})
            raise UnknownKernelError(
                f"no model for {kernel}/{variant}; variants with models: "
                + (", ".join(variants) if variants else "(none)")
                + ("" if self.models or self.skipped else
                   f" (no model files <hardware>/<kernel>/<variant>.json in "
                   f"{', '.join(map(str, self.roots))})"))
        here = [h for h in hws if hw.present(h)]
        if here:  # calibrated here, this machine's or adapted models first, most threads
            def rank(h):
                m = self.models[(kernel, variant, h)]
                return (m.source == "user", m.trusted_machine, hw.parse_id(h)["threads"] or 0,
                        m.machine_match)
            return max(here, key=rank)
        if len(hws) == 1:
            return hws[0]
        raise UnknownKernelError(f"{kernel}/{variant} has models for {', '.join(hws)}, none of "
                                 "them this machine; pick one with --hardware")

    def _spec(self, kernel) -> Kernel | None:
        """The catalog entry of ``kernel``; None for a kernel known only from its models
        here; else an :class:`~annpred.errors.UnknownKernelError` listing both."""
        spec = catalog_kernel(kernel)
        if spec is None and not any(k[0] == kernel for k in self.models):
            raise _unknown_kernel(kernel, self)
        return spec

    def predict(self, kernel: str, variant: str, params: Mapping[str, float],
                hardware: str | None = None) -> Prediction:
        """The predicted runtime of one call of ``kernel``/``variant`` with ``params`` (a
        mapping parameter -> value), as a :class:`Prediction`: seconds, whether the point
        lies in the model's training range (and which parameters do not), the prediction
        interval, the model's provenance and whether it was measured on this machine.

        ``hardware``: a hardware id with a model (default: this machine's, most threads;
        see :meth:`default_hardware`). ``params`` are checked as :func:`~annpred.runtime.
        choose.choose` checks them: for a catalog kernel every parameter must be given (or
        have a default), be known and valid (``m=0`` or ``da=1.5`` is refused naming the
        parameter); for a kernel known only from its models, every value must be a finite
        number and a parameter of the model. Raises :class:`~annpred.errors.ParameterError`
        or :class:`~annpred.errors.UnknownKernelError`."""
        spec = self._spec(kernel)
        point = check_point(spec, params)
        hw_id = hardware or self.default_hardware(kernel, variant)
        m = self.get(kernel, variant, hw_id)
        if spec is None:
            unknown = sorted(set(point) - set(m.params))
            if unknown:
                raise ParameterError(f"model {'/'.join(m.key)}: unknown parameter(s) "
                                     f"{', '.join(unknown)}; parameters: "
                                     f"{', '.join(m.params) or '(none)'}")
        cols = {k: np.asarray([float(v)]) for k, v in point.items()}
        seconds = float(m.predict(cols)[0])
        bad = m.out_of_range(point)
        _correction.warn_mismatch(m)
        return Prediction(kernel, variant, hw_id, seconds, not bad, bad, m.interval_of(seconds),
                          m.provenance(), m.machine_match, m.correction is not None,
                          _correction.source_description(m))

    def predict_many(self, kernel: str, variant: str, columns: Mapping[str, object],
                     hardware: str | None = None,
                     first_line: int | None = None) -> dict[str, np.ndarray]:
        """Batch prediction: ``columns`` maps each parameter to a 1-D array (a pandas
        DataFrame works); returns ``{"seconds", "low", "high", "in_range"}`` arrays (wrap them
        in a DataFrame for a table). Catalog kernels' values are validated per row (errors
        name the row, or the file line with ``first_line``, the line of row 0)."""
        spec = self._spec(kernel)
        if not isinstance(columns, Mapping) and not hasattr(columns, "columns"):
            raise ParameterError("columns must map each parameter to a 1-D array (a dict or "
                                 f"a DataFrame), got {type(columns).__name__}")
        hw_id = hardware or self.default_hardware(kernel, variant)
        m = self.get(kernel, variant, hw_id)
        cols = {}
        for p in m.params:
            if p in columns:
                try:
                    cols[p] = np.asarray(columns[p], dtype=float)
                except (TypeError, ValueError):
                    raise ParameterError(f"parameter column {p}: not numeric") from None
        if spec is not None:
            cols = spec.check_columns({**{k: columns[k] for k in spec.param_names
                                          if k in columns}, **cols}, first_line)
        n = len(next(iter(cols.values()))) if cols else 0
        seconds = m.predict(cols)
        iv = m.interval_of(seconds)
        low, high = iv if iv is not None else (np.full(n, np.nan), np.full(n, np.nan))
        ok = np.ones(n, dtype=bool)
        for p, (lo, hi) in m.range.items():
            if p in cols:
                wlo, whi = widen_range(lo, hi, RANGE_MARGIN)
                ok &= (cols[p] >= wlo) & (cols[p] <= whi)
        return {"seconds": seconds, "low": low, "high": high, "in_range": ok}


def load_models(path=None, reload: bool = False) -> Predictor:
    """Models of ``path`` (a directory or list of them); by default the user's calibrated
    models (``$ANNPRED_MODELS`` or ``~/.local/share/annpred/models``) over the shipped ones.
    Cached per directory list: ``reload=True`` reads the files again (after models were
    added or retrained) and makes later ``choose``/``dispatch`` calls use them, as
    :func:`annpred.select.clear_caches` (which forgets every cache) does."""
    if path is None:
        roots = [user_root(), shipped_root()]
    else:
        roots = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
        for r in roots:
            if not r.exists():
                raise ModelFormatError(f"model directory {r} does not exist")
            if not r.is_dir():
                raise ModelFormatError(f"model directory {r} is a file, not a directory")
    key = tuple(str(r.resolve()) for r in roots)
    if reload:  # choose/dispatch must see the new models: forget the lookups (by path or
        with caches.BUILD:  # environment) and plans that hold the old ones, in one step
            pred = Predictor(roots)  # with storing the new directory (see caches.put)
            with caches.LOCK:
                caches.PREDICTORS_BY_ROOTS[key] = pred
            caches.forget_predictors()
        return pred
    pred = caches.PREDICTORS_BY_ROOTS.get(key)
    if pred is None:
        with caches.BUILD:  # built once, however many threads ask at the same time
            gen = caches.GENERATION
            pred = caches.PREDICTORS_BY_ROOTS.get(key)
            if pred is None:
                pred = caches.put(caches.PREDICTORS_BY_ROOTS, key, Predictor(roots), gen)
    return pred


_ENV_DATA = getattr(os.environ, "_data", None)  # CPython's raw mapping behind os.environ
_ENV_NAMES = ("ANNPRED_MODELS", "ANNPRED_TRAINED", "XDG_DATA_HOME")
_ENV_BYTES = tuple(n.encode() for n in _ENV_NAMES)


def _env_key() -> tuple:
    """The environment that decides the default model roots, read cheaply: this is on the
    path of every default ``choose`` (a memoised decision costs about a microsecond, three
    ``os.environ.get`` calls would double it)."""
    data = _ENV_DATA
    if data is not None and os.name == "posix":
        try:
            get = data.get
            b0, b1, b2 = _ENV_BYTES
            return get(b0), get(b1), get(b2)
        except TypeError:  # pragma: no cover - keys are not bytes on this platform
            pass
    return tuple(os.environ.get(n) for n in _ENV_NAMES)  # pragma: no cover


def resolve_models(models) -> Predictor:
    """A Predictor for ``models``: None (the default roots, looked up by the environment
    without touching the file system), a directory or a list of them, or a Predictor."""
    if models is None:
        key = _env_key()
        p = caches.PREDICTORS_BY_ENV.get(key)
        if p is None:
            gen = caches.GENERATION
            p = caches.put(caches.PREDICTORS_BY_ENV, key, load_models(), gen)
        return p
    if isinstance(models, Predictor):
        return models
    if isinstance(models, (str, os.PathLike)):
        key = ("path", os.fspath(models))
        p = caches.PREDICTORS_BY_ENV.get(key)
        if p is None:
            gen = caches.GENERATION
            p = caches.put(caches.PREDICTORS_BY_ENV, key, load_models(models), gen)
        return p
    try:
        roots = list(models)
    except TypeError:
        roots = None
    bad = [m for m in roots if not isinstance(m, (str, os.PathLike))] if roots else []
    if roots is None or bad:
        raise ParameterError("models must be a model directory, a list of them or a "
                             f"Predictor, got {shown(models if roots is None else bad[0])}"
                             + ("" if roots is None else " in the list"))
    return load_models(roots)
