"""One candidate network of an :class:`~annpred.model.estimator.AugmentedNNRegressor` fit:
the parameters plus a set of complexity features, fitted on some training rows with one
loss, and scored on the validation rows (:func:`fit_candidate`). :class:`Candidates` keeps
the random starts of one ``fit`` so that a start fitted twice (the complexity search's
short fits, then the final fits of the same sets) is fitted once."""
from __future__ import annotations

import numpy as np

from annpred.errors import DataError
from annpred.model import hyper, network
from annpred.model.features import feature_matrix, finite_features
from annpred.model.interval import conformal_interval
from annpred.model.modeldict import core as _core


class Candidates:
    """The candidate fits of one ``fit`` of ``est`` on columns ``df`` and runtimes ``y``,
    validated on rows ``val_idx``; fitted starts are kept per feature set and training rows
    (see :func:`annpred.model.fit.fit_network`'s ``starts``: the results are the same as
    fitting every start again)."""

    def __init__(self, est, df, y, params, val_idx):
        self.est, self.df, self.y, self.params, self.val_idx = est, df, y, params, val_idx
        self._starts: dict = {}

    def fit(self, complexity: dict, tr_idx: np.ndarray, *, n_init=None, loss=None) -> dict:
        key = (tuple(complexity.items()), np.asarray(tr_idx).tobytes())
        return fit_candidate(self.est, self.df, self.y, self.params, complexity, tr_idx,
                             self.val_idx, n_init=n_init, loss=loss,
                             starts=self._starts.setdefault(key, {}))


def fit_candidate(est, df, y, params, complexity, tr_idx, val_idx, *, n_init=None, loss=None,
                  starts: dict | None = None) -> dict:
    """Fit one network of ``est``'s settings on ``params`` + ``complexity`` at rows
    ``tr_idx`` (scalers from those rows), validated on ``val_idx``; its learned attributes
    (``layers_``, ``val_mape_``, ``interval_``, ...)."""
    from annpred.model import fit as _train  # torch is imported here, never by predict

    Xf = finite_features(df, params, complexity)
    if est.input_transform == "auto":
        transforms = ["log" if np.all(Xf[:, j] > 0) else "identity"
                      for j in range(Xf.shape[1])]
    else:
        transforms = ([est.input_transform] * Xf.shape[1]
                      if isinstance(est.input_transform, str) else list(est.input_transform))
    # a feature constant on the training rows teaches nothing: it is ignored (identity,
    # zero weights below), so another value (a 0 where training saw 1s) breaks no log
    const = np.ptp(Xf[tr_idx], axis=0) == 0
    transforms = ["identity" if c else t for t, c in zip(transforms, const)]
    for j, t in enumerate(transforms):
        if t == "log" and np.any(Xf[:, j] <= 0):
            raise DataError(f"feature {(params + list(complexity))[j]!r} has values <= 0; "
                            "a log input transform needs positive values")
    T = network.transform_inputs(Xf, transforms)
    target = np.log(y)
    n_val = len(val_idx)
    mean = T[tr_idx].mean(axis=0)
    std = T[tr_idx].std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    y_mean, y_std = float(target[tr_idx].mean()), float(target[tr_idx].std())
    y_std = y_std if y_std > 1e-12 else 1.0
    Z = (T - mean) / std
    t = (target - y_mean) / y_std
    hidden = hyper.hidden_tuple(est.hidden)
    hidden = hidden if hidden is not None else network.default_hidden(Z.shape[1],
                                                                       est.max_params)
    loss = loss or est._loss0()
    model, val_loss, epochs = _train.fit_network(
        Z[tr_idx], t[tr_idx], Z[val_idx] if n_val else None, t[val_idx] if n_val else None,
        hidden=hidden, activation=est.activation, skip=est.skip, seed=est.seed_,
        max_epochs=est.max_epochs, patience=est.patience, lr=est.lr,
        weight_decay=est.weight_decay, n_init=n_init or est.n_init,
        max_params=est.max_params, optimizer=est.optimizer, loss=loss,
        huber_delta=(est.huber_delta / y_std) if est.huber_delta else None,
        target_scale=y_std, starts=starts)
    layers, skip = model.export()
    for row in layers[0]["weight"] + (skip["weight"] if skip else []):
        row[:] = [0.0 if c else w for w, c in zip(row, const)]
    out = {"complexity_": complexity, "features_": params + list(complexity),
           "input_transform_": transforms, "scaler_mean_": mean, "scaler_std_": std,
           "y_mean_": y_mean, "y_std_": y_std, "layers_": layers, "skip_": skip,
           "hidden_": hidden, "n_params_": network.count_params(Z.shape[1], hidden, est.skip),
           "n_epochs_": epochs, "loss_": loss}
    return _scored(out, est, Xf, y, val_idx)


def _scored(out: dict, est, Xf, y, val_idx) -> dict:
    """``out`` with its compiled network, validation MAPE (on the training rows without a
    validation split) and interval."""
    compiled = network.compile_model(_core(out, est.activation))
    rows = val_idx if len(val_idx) else np.arange(len(y))
    pred = network.predict_seconds(Xf[rows], compiled)
    out["_compiled"] = compiled
    out["val_mape_"] = float(np.mean(np.abs(pred - y[rows]) / y[rows]) * 100)
    out["interval_"] = (conformal_interval(np.log(y[val_idx]) - np.log(pred), est.coverage)
                        if len(val_idx) else None)
    return out


def _standardised(att: dict, df, y, params):
    """The inputs and target of every row, scaled as the fitted candidate ``att`` scales
    them, and its raw input matrix."""
    Xf = feature_matrix(df, params, att["complexity_"])
    T = network.transform_inputs(Xf, att["input_transform_"])
    Z = (T - att["scaler_mean_"]) / att["scaler_std_"]
    return Z, (np.log(y) - att["y_mean_"]) / att["y_std_"], Xf


def _delta(est, att: dict):
    return (est.huber_delta / att["y_std_"]) if est.huber_delta else None


def resume_candidate(est, df, y, params, att: dict, tr_idx, val_idx) -> dict:
    """The candidate ``att`` (chosen on a subset of the training rows) fitted further on
    rows ``tr_idx``, validated on ``val_idx`` (same features, scalers and loss)."""
    from annpred.model import fit as _train

    Z, t, Xf = _standardised(att, df, y, params)
    layers, skip, epochs = _train.resume_network(
        att["layers_"], att["skip_"], est.activation, Z[tr_idx], t[tr_idx], Z[val_idx],
        t[val_idx], loss=att["loss_"], max_epochs=est.max_epochs, patience=est.patience,
        huber_delta=_delta(est, att), target_scale=att["y_std_"],
        weight_decay=est.weight_decay)
    out = {**att, "layers_": layers, "skip_": skip, "n_epochs_": att["n_epochs_"] + epochs}
    return _scored(out, est, Xf, y, val_idx)


def refit_all(est, df, y, params, best: dict) -> dict:
    """The chosen network after ``est.refit_iter`` more iterations on every row (same
    scalers, features and loss; validation MAPE and interval kept from before)."""
    from annpred.model import fit as _train

    Z, t, _ = _standardised(best, df, y, params)
    layers, skip = _train.continue_network(
        best["layers_"], best["skip_"], est.activation, Z, t, n_iter=est.refit_iter,
        loss=best["loss_"], target_scale=best["y_std_"], weight_decay=est.weight_decay,
        huber_delta=_delta(est, best))
    out = {**best, "layers_": layers, "skip_": skip, "refit_iter_": int(est.refit_iter)}
    return {**out, "_compiled": network.compile_model(_core(out, est.activation))}
