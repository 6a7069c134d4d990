"""The network as a pure function of its weights, in numpy (no torch).

Architecture (the same in :mod:`annpred.train`): inputs are transformed (``log`` or
``identity`` per feature) and standardised; hidden layers use ``tanh``; a linear skip path
from the standardised inputs is added to the output layer, so a network starts as (and
extrapolates like) a power law in its inputs, and the hidden units learn the deviations.
The output is a standardised log runtime.
"""
from __future__ import annotations

import numpy as np

from annpred.errors import ParameterError

ACTIVATIONS = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0),
               "identity": lambda a: a}
TRANSFORMS = ("log", "identity")
MAX_PARAMS = 75  # trainable parameters must stay strictly below this


def count_params(n_inputs: int, hidden: tuple[int, ...], skip: bool = True) -> int:
    sizes = [n_inputs, *hidden, 1]
    n = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    return n + (n_inputs if skip and hidden else 0)


def default_hidden(n_inputs: int, limit: int = MAX_PARAMS) -> tuple[int, ...]:
    """The widest single hidden layer that keeps the network under ``limit`` parameters."""
    h = 1
    while count_params(n_inputs, (h + 1,)) < limit:
        h += 1
    if count_params(n_inputs, (h,)) >= limit:
        raise ParameterError(f"{n_inputs} inputs leave no room for a hidden layer under "
                         f"{limit} parameters; use fewer features")
    return (h,)


def transform_inputs(X: np.ndarray, transforms) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    out = X.copy()
    for j, t in enumerate(transforms):
        if t == "log":
            out[..., j] = np.log(X[..., j])
    return out


def forward(Z: np.ndarray, layers, skip, activation: str = "tanh") -> np.ndarray:
    """Standardised inputs -> standardised output (1-D)."""
    act = ACTIVATIONS[activation]
    h = Z
    for W, b in layers[:-1]:
        h = act(h @ W.T + b)
    W, b = layers[-1]
    out = h @ W.T + b
    if skip is not None:
        out = out + Z @ skip.T
    return out[..., 0]


def predict_seconds(X: np.ndarray, model: dict) -> np.ndarray:
    """Seconds for raw feature rows ``X`` (columns in ``model['features']`` order).

    ``model`` is the compiled dict of :func:`compile_model` (numpy arrays)."""
    Z = (transform_inputs(X, model["input_transform"]) - model["mean"]) / model["std"]
    y = forward(Z, model["layers"], model["skip"], model["activation"])
    y = y * model["y_std"] + model["y_mean"]
    return np.exp(y) if model["target_transform"] == "log" else y


def compile_model(d: dict) -> dict:
    """Numpy arrays from a validated model dict (see :mod:`annpred.store`)."""
    return {
        "input_transform": list(d["input_transform"]),
        "mean": np.asarray(d["scaler"]["mean"], dtype=float),
        "std": np.asarray(d["scaler"]["std"], dtype=float),
        "y_mean": float(d["target_scaler"]["mean"]),
        "y_std": float(d["target_scaler"]["std"]),
        "layers": [(np.asarray(l["weight"], dtype=float), np.asarray(l["bias"], dtype=float))
                   for l in d["layers"]],
        "skip": None if d.get("skip") is None else np.asarray(d["skip"]["weight"], dtype=float),
        "activation": d["activation"],
        "target_transform": d["target_transform"],
    }
