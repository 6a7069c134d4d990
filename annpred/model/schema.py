"""Model files: JSON (never pickle), written atomically, validated on load."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from annpred.errors import ModelFormatError
from annpred.files import atomic_write_text
from annpred.model.network import ACTIVATIONS, MAX_PARAMS, TRANSFORMS, count_params

FORMAT = "annpred-model/1"


def save_model(model: dict, path: str | os.PathLike) -> Path:
    validate(model, str(path))
    atomic_write_text(path, json.dumps(model, indent=1, sort_keys=False) + "\n")
    return Path(path)


def load_model(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelFormatError(f"model file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"model file {path}: cannot read ({exc})") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"model file {path}: malformed JSON at line {exc.lineno} "
                               f"column {exc.colno}: {exc.msg}") from None
    return validate(d, str(path))


def _matrix(x: Any, rows: int, cols: int, what: str, where: str) -> None:
    if (not isinstance(x, list) or len(x) != rows
            or any(not isinstance(r, list) or len(r) != cols for r in x)):
        raise ModelFormatError(f"{where}: {what} must be a {rows}x{cols} matrix")
    for r in x:
        _vector(r, cols, what, where)


def _vector(x: Any, n: int, what: str, where: str) -> None:
    if not isinstance(x, list) or len(x) != n:
        raise ModelFormatError(f"{where}: {what} must be a list of {n} numbers")
    for v in x:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ModelFormatError(f"{where}: {what} holds a non-finite or non-numeric value")


def validate(d: Any, where: str = "model") -> dict:
    """Check a model dict against the schema; returns it or raises ModelFormatError."""
    if not isinstance(d, dict):
        raise ModelFormatError(f"{where}: a model file must hold a JSON object")
    fmt = d.get("format")
    if fmt != FORMAT:
        raise ModelFormatError(f"{where}: unsupported format {fmt!r} (expected {FORMAT!r})")
    for key in ("kernel", "variant", "hardware", "features", "complexity", "input_transform",
                "target_transform", "scaler", "target_scaler", "layers", "activation",
                "n_params", "train"):
        if key not in d:
            raise ModelFormatError(f"{where}: missing field {key!r}")
    for key in ("kernel", "variant", "hardware"):
        if not isinstance(d[key], str) or not d[key]:
            raise ModelFormatError(f"{where}: {key} must be a non-empty string")
    feats = d["features"]
    if not isinstance(feats, list) or not feats or not all(isinstance(f, str) for f in feats):
        raise ModelFormatError(f"{where}: features must be a non-empty list of names")
    n = len(feats)
    if not isinstance(d["complexity"], dict):
        raise ModelFormatError(f"{where}: complexity must be an object name -> expression")
    from annpred.spec import expr as _expr
    params = d.get("parameters", [f for f in feats if f not in d["complexity"]])
    for name, text in d["complexity"].items():
        if name not in feats:
            raise ModelFormatError(f"{where}: complexity {name!r} is not among the features")
        try:
            _expr.parse(text, params)
        except Exception as exc:
            raise ModelFormatError(f"{where}: complexity {name!r}: {exc}") from None
    steps = d.get("steps")
    if steps is not None:  # optional: detected step periods {param: period}
        if not isinstance(steps, dict):
            raise ModelFormatError(f"{where}: steps must be an object parameter -> period")
        for name, s in steps.items():
            if name not in params:
                raise ModelFormatError(f"{where}: steps name {name!r}, which is not a parameter")
            if isinstance(s, bool) or not isinstance(s, int) or s < 2:
                raise ModelFormatError(f"{where}: steps[{name!r}] must be an integer >= 2")
    it = d["input_transform"]
    if isinstance(it, str):
        it = d["input_transform"] = [it] * n
    if (not isinstance(it, list) or len(it) != n or any(t not in TRANSFORMS for t in it)):
        raise ModelFormatError(f"{where}: input_transform must be {n} of {TRANSFORMS}")
    if d["target_transform"] not in ("log", "identity"):
        raise ModelFormatError(f"{where}: target_transform must be 'log' or 'identity'")
    if d["activation"] not in ACTIVATIONS:
        raise ModelFormatError(f"{where}: activation must be one of {sorted(ACTIVATIONS)}")
    sc = d["scaler"]
    if not isinstance(sc, dict):
        raise ModelFormatError(f"{where}: scaler must be an object with mean and std")
    _vector(sc.get("mean"), n, "scaler.mean", where)
    _vector(sc.get("std"), n, "scaler.std", where)
    if any(s <= 0 for s in sc["std"]):
        raise ModelFormatError(f"{where}: scaler.std must be positive")
    ts = d["target_scaler"]
    if (not isinstance(ts, dict) or not all(isinstance(ts.get(k), (int, float))
                                             for k in ("mean", "std")) or ts["std"] <= 0):
        raise ModelFormatError(f"{where}: target_scaler must hold numbers mean and std > 0")
    layers = d["layers"]
    if not isinstance(layers, list) or not layers:
        raise ModelFormatError(f"{where}: layers must be a non-empty list")
    fan_in = n
    hidden = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise ModelFormatError(f"{where}: layers[{i}] must be an object")
        w, b = layer.get("weight"), layer.get("bias")
        rows = len(w) if isinstance(w, list) else -1
        if rows < 1:
            raise ModelFormatError(f"{where}: layers[{i}].weight must be a non-empty matrix")
        _matrix(w, rows, fan_in, f"layers[{i}].weight", where)
        _vector(b, rows, f"layers[{i}].bias", where)
        fan_in = rows
        hidden.append(rows)
    if hidden[-1] != 1:
        raise ModelFormatError(f"{where}: the last layer must have one output")
    skip = d.get("skip")
    if skip is not None:
        if not isinstance(skip, dict):
            raise ModelFormatError(f"{where}: skip must be an object with weight")
        _matrix(skip.get("weight"), 1, n, "skip.weight", where)
    expected = count_params(n, tuple(hidden[:-1]), skip=skip is not None)
    if d["n_params"] != expected:
        raise ModelFormatError(f"{where}: n_params is {d['n_params']!r} but the weights hold "
                               f"{expected}")
    if expected >= MAX_PARAMS:
        raise ModelFormatError(f"{where}: {expected} trainable parameters; the limit is "
                               f"fewer than {MAX_PARAMS}")
    tr = d["train"]
    if not isinstance(tr, dict):
        raise ModelFormatError(f"{where}: train must be an object")
    rng = tr.get("range", {})
    if not isinstance(rng, dict) or any(
            not isinstance(v, list) or len(v) != 2 for v in rng.values()):
        raise ModelFormatError(f"{where}: train.range must map names to [min, max]")
    return d
