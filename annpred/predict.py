"""Predicting from a model directory, in numpy only (no torch import)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from . import expr as _expr
from . import hardware as hw
from .errors import ModelFormatError, ParameterError, UnknownKernelError
from .network import compile_model, predict_seconds
from .store import load_model


def shipped_dir() -> Path:
    env = os.environ.get("ANNPRED_TRAINED")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "trained"


def user_dir() -> Path:
    env = os.environ.get("ANNPRED_MODELS")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                             "share")
    return Path(base) / "annpred" / "models"


RANGE_MARGIN = 0.05  # same default as annpred.select: random samples never reach a domain's ends


def widen_range(lo: float, hi: float, margin: float) -> tuple[float, float]:
    """Widen [lo, hi] by ``margin`` times its width (in log scale for positive ranges)."""
    if margin <= 0 or hi < lo:
        return lo, hi
    if lo > 0:
        d = (math.log(hi) - math.log(lo)) * margin
        return lo * math.exp(-d), hi * math.exp(d)
    d = (hi - lo) * margin
    return lo - d, hi + d


@dataclass
class Prediction:
    kernel: str
    variant: str
    hardware: str
    seconds: float
    in_range: bool
    out_of_range: dict  # parameter -> [value, [lo, hi]]

    def to_dict(self) -> dict:
        return {"kernel": self.kernel, "variant": self.variant, "hardware": self.hardware,
                "seconds": self.seconds, "in_range": self.in_range,
                "out_of_range": self.out_of_range}


class LoadedModel:
    """One model file, compiled for fast numpy prediction."""

    __slots__ = ("meta", "compiled", "params", "complexity_fns", "range", "path")

    def __init__(self, meta: dict, path: Path | None = None):
        self.meta = meta
        self.path = path
        self.compiled = compile_model(meta)
        self.params = list(meta.get("parameters", [f for f in meta["features"]
                                                   if f not in meta["complexity"]]))
        order = [f for f in meta["features"] if f not in meta["complexity"]]
        if order != self.params:
            raise ModelFormatError(f"{path}: features must list the parameters first")
        self.complexity_fns = [(_expr.compile(text, self.params))
                               for text in meta["complexity"].values()]
        self.range = {k: (float(v[0]), float(v[1]))
                      for k, v in meta["train"].get("range", {}).items()}

    @property
    def key(self) -> tuple[str, str, str]:
        return self.meta["kernel"], self.meta["variant"], self.meta["hardware"]

    def features(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        base = [np.asarray(cols[p], dtype=float) for p in self.params]
        extra = [np.broadcast_to(np.asarray(f(*base), dtype=float), base[0].shape)
                 for f in self.complexity_fns]
        return np.column_stack(base + extra)

    def predict(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        missing = [p for p in self.params if p not in cols]
        if missing:
            raise ParameterError(f"model {'/'.join(self.key)} needs parameter(s) "
                                 f"{', '.join(missing)}")
        return predict_seconds(self.features(cols), self.compiled)

    def out_of_range(self, point: Mapping[str, float], margin: float = RANGE_MARGIN) -> dict:
        """Parameters outside the training range widened by ``margin`` (value, [lo, hi])."""
        bad = {}
        for p, (lo, hi) in self.range.items():
            wlo, whi = widen_range(lo, hi, margin)
            if p in point and not (wlo <= float(point[p]) <= whi):
                bad[p] = [point[p], [lo, hi]]
        return bad


class Predictor:
    """All models of one or more directories; earlier directories take precedence."""

    def __init__(self, roots):
        self.roots = [Path(r) for r in roots]
        self.models: dict[tuple[str, str, str], LoadedModel] = {}
        for root in reversed(self.roots):
            if not root.is_dir():
                continue
            for p in sorted(root.glob("*/*/*.json")):
                m = LoadedModel(load_model(p), p)
                self.models[m.key] = m

    def __len__(self):
        return len(self.models)

    def kernels(self) -> list[str]:
        return sorted({k[0] for k in self.models})

    def combinations(self, kernel: str | None = None) -> list[tuple[str, str, str]]:
        return sorted(k for k in self.models if kernel is None or k[0] == kernel)

    def get(self, kernel: str, variant: str, hardware: str) -> LoadedModel:
        try:
            return self.models[(kernel, variant, hardware)]
        except KeyError:
            have = [f"{v}@{h}" for k, v, h in self.combinations(kernel)]
            raise UnknownKernelError(
                f"no model for {kernel}/{variant} on {hardware}; models for {kernel}: "
                + (", ".join(have) if have else "(none)")
                + f" (searched {', '.join(str(r) for r in self.roots)})") from None

    def hardware_for(self, kernel: str, variant: str) -> list[str]:
        return [h for k, v, h in self.combinations(kernel) if v == variant]

    def default_hardware(self, kernel: str, variant: str) -> str:
        """The present hardware with the most threads, else the only model's hardware."""
        hws = self.hardware_for(kernel, variant)
        if not hws:
            variants = sorted({v for _, v, _ in self.combinations(kernel)})
            raise UnknownKernelError(
                f"no model for {kernel}/{variant}; variants with models: "
                + (", ".join(variants) if variants else "(none)"))
        here = [h for h in hws if hw.present(h)]
        if here:
            return max(here, key=lambda h: hw.parse_id(h)["threads"] or 0)
        if len(hws) == 1:
            return hws[0]
        raise UnknownKernelError(f"{kernel}/{variant} has models for {', '.join(hws)}, none of "
                                 "them this machine; pick one with --hardware")

    def predict(self, kernel: str, variant: str, params: Mapping[str, float],
                hardware: str | None = None) -> Prediction:
        hw_id = hardware or self.default_hardware(kernel, variant)
        m = self.get(kernel, variant, hw_id)
        cols = {k: np.asarray([float(v)]) for k, v in params.items()}
        seconds = float(m.predict(cols)[0])
        bad = m.out_of_range(params)
        return Prediction(kernel, variant, hw_id, seconds, not bad, bad)


_CACHE: dict[tuple, Predictor] = {}


def load_models(path=None, reload: bool = False) -> Predictor:
    """Models of ``path`` (a directory or list of them); by default the user's calibrated
    models (``$ANNPRED_MODELS`` or ``~/.local/share/annpred/models``) over the shipped
    ``trained/``. Cached per directory list."""
    if path is None:
        roots = [user_dir(), shipped_dir()]
    elif isinstance(path, (list, tuple)):
        roots = [Path(p) for p in path]
    else:
        roots = [Path(path)]
        if not roots[0].exists():
            raise ModelFormatError(f"model directory {roots[0]} does not exist")
    key = tuple(str(r.resolve()) for r in roots)
    if reload or key not in _CACHE:
        _CACHE[key] = Predictor(roots)
    return _CACHE[key]
