"""Loaded model directories and single predictions, in numpy only (no torch import)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from annpred.spec import hardware as hw
from annpred.errors import ModelFormatError, ParameterError, UnknownKernelError
from annpred.model.features import feature_matrix
from annpred.model.layout import model_files, shipped_root, user_root
from annpred.model.network import compile_model, predict_seconds
from annpred.model.schema import load_model
from annpred.runtime import caches
from annpred.runtime.ranges import RANGE_MARGIN, widen_range


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

    __slots__ = ("meta", "compiled", "params", "range", "path")

    def __init__(self, meta: dict, path: Path | None = None):
        self.meta = meta
        self.path = path
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
            for p in model_files(root):
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


def load_models(path=None, reload: bool = False) -> Predictor:
    """Models of ``path`` (a directory or list of them); by default the user's calibrated
    models (``$ANNPRED_MODELS`` or ``~/.local/share/annpred/models``) over the shipped ones.
    Cached per directory list (:func:`annpred.runtime.caches.clear` forgets them)."""
    if path is None:
        roots = [user_root(), shipped_root()]
    elif isinstance(path, (list, tuple)):
        roots = [Path(p) for p in path]
    else:
        roots = [Path(path)]
        if not roots[0].exists():
            raise ModelFormatError(f"model directory {roots[0]} does not exist")
    key = tuple(str(r.resolve()) for r in roots)
    pred = None if reload else caches.PREDICTORS_BY_ROOTS.get(key)
    if pred is None:
        pred = caches.PREDICTORS_BY_ROOTS[key] = Predictor(roots)
    return pred


def resolve_models(models) -> Predictor:
    """A Predictor for ``models``: None (the default roots, looked up by the environment
    without touching the file system), a directory or a list of them, or a Predictor."""
    if models is None:
        key = (os.environ.get("ANNPRED_MODELS"), os.environ.get("ANNPRED_TRAINED"),
               os.environ.get("XDG_DATA_HOME"))
        p = caches.PREDICTORS_BY_ENV.get(key)
        if p is None:
            p = caches.PREDICTORS_BY_ENV[key] = load_models()
        return p
    if isinstance(models, Predictor):
        return models
    if isinstance(models, (str, os.PathLike)):
        key = ("path", os.fspath(models))
        p = caches.PREDICTORS_BY_ENV.get(key)
        if p is None:
            p = caches.PREDICTORS_BY_ENV[key] = load_models(models)
        return p
    return load_models(list(models))
