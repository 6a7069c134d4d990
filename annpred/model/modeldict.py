"""An :class:`~annpred.model.estimator.AugmentedNNRegressor` as a model dict (the content
of a model file, :mod:`annpred.model.schema`) and back. Numpy only: a model read back
predicts without torch."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from annpred.model import network
from annpred.model.hyper import LOSSES
from annpred.model.schema import FORMAT, versions


def core(att: Mapping, activation: str) -> dict:
    """The network part of a model file from learned attributes (``layers_``, ...)."""
    return {"input_transform": list(att["input_transform_"]), "target_transform": "log",
            "scaler": {"mean": [float(v) for v in att["scaler_mean_"]],
                       "std": [float(v) for v in att["scaler_std_"]]},
            "target_scaler": {"mean": att["y_mean_"], "std": att["y_std_"]},
            "layers": att["layers_"], "skip": att["skip_"], "activation": activation}


def to_dict(m, kernel: str, variant: str, hardware: str, extra_train: dict | None) -> dict:
    """See :meth:`AugmentedNNRegressor.to_dict`."""
    g = lambda name: getattr(m, name, None)  # noqa: E731 - learned attributes a fit may lack
    return {
        "format": FORMAT, "kernel": kernel, "variant": variant, "hardware": hardware,
        "parameters": list(m.parameters_), "features": list(m.features_),
        "complexity": dict(m.complexity_),
        **({"steps": dict(m.steps_)} if g("steps_") else {}),
        **core(vars(m), m.activation),
        **({"interval": dict(m.interval_)} if g("interval_") else {}),
        "n_params": int(m.n_params_),
        "train": {"n_samples": int(m.n_samples_), "val_mape": m.val_mape_,
                  **({"n_val": m.n_val_} if g("n_val_") is not None else {}),
                  "data_sha256": m.data_sha256_,
                  "seed": g("seed_") if g("seed_") is not None else m.seed,
                  "epochs": int(m.n_epochs_), "train_time_s": m.train_time_s_,
                  **({"loss": m.loss_} if g("loss_") else {}),
                  **({"refit_iter": m.refit_iter_} if g("refit_iter_") else {}),
                  **({"choice_rows": m.choice_rows_} if g("choice_rows_") else {}),
                  "range": m.train_range_,
                  **({"auto_complexity": m.auto_log_} if g("auto_log_") else {}),
                  **(extra_train or {})},
        "versions": versions()}


def from_dict(cls, d: dict):
    """See :meth:`AugmentedNNRegressor.from_dict`."""
    from annpred.model.schema import validate

    d = validate(d)
    tr, comp = d["train"], dict(d["complexity"])
    kw = {}
    if isinstance(tr.get("loss"), str) and tr["loss"] in LOSSES:
        kw["loss"] = tr["loss"]
    if d.get("interval"):
        kw["coverage"] = float(d["interval"]["nominal"])
    if isinstance(tr.get("refit_iter"), int) and not isinstance(tr["refit_iter"], bool) \
            and tr["refit_iter"] >= 0:
        kw["refit_iter"] = tr["refit_iter"]
    seed = tr.get("seed", 0)
    m = cls(complexity=(comp["complexity"] if list(comp) == ["complexity"] else comp or None),
            parameters=list(d.get("parameters", [f for f in d["features"] if f not in comp])),
            hidden=tuple(len(l["weight"]) for l in d["layers"][:-1]),
            seed=seed, activation=d["activation"], skip=d.get("skip") is not None, **kw)
    m.seed_ = seed
    m.parameters_ = list(m.parameters)
    m.n_features_in_ = len(m.parameters_)
    m.feature_names_in_ = np.asarray(m.parameters_, dtype=object)
    m.complexity_ = comp  # already step-rewritten; steps_ is a record
    m.steps_ = {k: int(v) for k, v in d.get("steps", {}).items()}
    m.features_ = list(d["features"])
    m.input_transform_ = list(d["input_transform"])
    m.scaler_mean_ = np.asarray(d["scaler"]["mean"], dtype=float)
    m.scaler_std_ = np.asarray(d["scaler"]["std"], dtype=float)
    m.y_mean_ = float(d["target_scaler"]["mean"])
    m.y_std_ = float(d["target_scaler"]["std"])
    m.layers_, m.skip_ = d["layers"], d.get("skip")
    m.hidden_ = m.hidden
    m.n_params_ = int(d["n_params"])
    m.n_epochs_ = int(tr.get("epochs", 0))
    m.train_range_ = {k: list(v) for k, v in tr.get("range", {}).items()}
    m.n_samples_ = int(tr.get("n_samples", 0))
    m.val_mape_, m.n_val_ = tr.get("val_mape"), tr.get("n_val")
    m.interval_ = dict(d["interval"]) if d.get("interval") else None
    m.data_sha256_ = tr.get("data_sha256", "")
    m.train_time_s_ = tr.get("train_time_s", 0.0)
    m.loss_ = kw.get("loss")
    m.refit_iter_ = kw.get("refit_iter")
    m.choice_rows_ = tr.get("choice_rows")
    m.auto_log_ = tr.get("auto_complexity")
    m._compiled = network.compile_model(d)
    return m
