"""Training the augmented networks with torch (the only module that imports torch).

Full-batch training on the standardised log runtime (what MAPE measures is relative error,
and log error is relative error to first order). The default loss is a Huber loss whose
corner sits at a fixed *relative* error (``huber_delta`` in log units, 0.1 = about 10%):
squared below it, absolute above it, so the few measurements a busy machine spoils do not
drag the fit (squared error chases them). The default optimiser is full-batch L-BFGS with a
strong-Wolfe line search, validated every 10 iterations: on these tiny problems it reaches
lower validation error than Adam in a fraction of the time. Adam (the original optimiser) is
kept as ``optimizer="adam"``. The linear skip path starts at the ridge least-squares fit, so
training begins from a power law and the hidden units learn what it misses. The stopping
point is chosen on the validation split, which is carved out of the training data; several
initialisations keep the best by validation loss.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from annpred.errors import ParameterError
from annpred.model.hyper import LOSSES, OPTIMIZERS
from annpred.model.network import ACTIVATIONS, count_params

_TORCH_ACT = {"tanh": torch.tanh, "relu": torch.relu, "identity": lambda a: a}


class AugmentedMLP(torch.nn.Module):
    """MLP with a linear skip path; the same function as :func:`annpred.network.forward`."""

    def __init__(self, n_inputs: int, hidden: tuple[int, ...], activation: str = "tanh",
                 skip: bool = True):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ParameterError(f"activation must be one of {sorted(ACTIVATIONS)}, got "
                                 f"{activation!r}")
        sizes = [n_inputs, *hidden, 1]
        self.linears = torch.nn.ModuleList(
            torch.nn.Linear(a, b, dtype=torch.float64) for a, b in zip(sizes[:-1], sizes[1:]))
        self.skip = (torch.nn.Linear(n_inputs, 1, bias=False, dtype=torch.float64)
                     if skip and hidden else None)
        self.activation = activation

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        act = _TORCH_ACT[self.activation]
        h = z
        for lin in self.linears[:-1]:
            h = act(lin(h))
        out = self.linears[-1](h)
        if self.skip is not None:
            out = out + self.skip(z)
        return out[:, 0]

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def export(self) -> tuple[list[dict], dict | None]:
        layers = [{"weight": l.weight.detach().tolist(), "bias": l.bias.detach().tolist()}
                  for l in self.linears]
        skip = None if self.skip is None else {"weight": self.skip.weight.detach().tolist()}
        return layers, skip

    @classmethod
    def from_weights(cls, layers, skip, activation="tanh") -> "AugmentedMLP":
        n_inputs = len(layers[0]["weight"][0])
        hidden = tuple(len(l["weight"]) for l in layers[:-1])
        m = cls(n_inputs, hidden, activation, skip=skip is not None)
        with torch.no_grad():
            for lin, l in zip(m.linears, layers):
                lin.weight.copy_(torch.tensor(l["weight"], dtype=torch.float64))
                lin.bias.copy_(torch.tensor(l["bias"], dtype=torch.float64))
            if skip is not None:
                m.skip.weight.copy_(torch.tensor(skip["weight"], dtype=torch.float64))
        return m


def _ridge_init(model: AugmentedMLP, Z: np.ndarray, t: np.ndarray, alpha: float = 1e-3):
    A = np.hstack([Z, np.ones((len(Z), 1))])
    reg = alpha * np.eye(A.shape[1])
    reg[-1, -1] = 0.0
    coef = np.linalg.solve(A.T @ A + reg, A.T @ t)
    with torch.no_grad():
        last = model.linears[-1]
        if model.skip is not None:
            model.skip.weight.copy_(torch.tensor(coef[None, :-1]))
            last.bias.fill_(float(coef[-1]))
            last.weight.mul_(0.1)
        elif len(model.linears) == 1:
            last.weight.copy_(torch.tensor(coef[None, :-1]))
            last.bias.fill_(float(coef[-1]))


DEFAULT_EPOCHS = {"adam": (3000, 300), "lbfgs": (500, 50)}  # (max_epochs, patience)
_LBFGS_ROUND = 10  # L-BFGS iterations between validations


def _loss_fn(loss: str, delta: float | None, scale: float = 1.0):
    if loss == "mape":
        # the relative error of the runtime itself, |exp(log-error) - 1|: the metric the
        # models are judged by (over-predictions cost without bound, under-predictions at
        # most 1); ``scale`` turns the standardised target back into log units
        k = float(scale)
        return lambda a, b: torch.mean(torch.abs(torch.expm1((a - b) * k)))
    if loss == "mse":
        return lambda a, b: torch.mean((a - b) ** 2)
    if loss == "l1":
        return lambda a, b: torch.mean(torch.abs(a - b))
    if loss == "huber":
        d = float(delta if delta else 0.1)
        # divided by delta: the absolute part has unit slope whatever the corner
        return lambda a, b: torch.nn.functional.huber_loss(a, b, delta=d) / d
    raise ParameterError(f"loss must be one of {LOSSES}, got {loss!r}")


def fit_network(Z_tr: np.ndarray, t_tr: np.ndarray, Z_val: np.ndarray | None,
                t_val: np.ndarray | None, *, hidden: tuple[int, ...], activation: str,
                skip: bool, seed: int, max_epochs: int | None, patience: int | None,
                lr: float, weight_decay: float, n_init: int, max_params: int,
                optimizer: str = "adam", loss: str = "mse", huber_delta: float | None = None,
                target_scale: float = 1.0, starts: dict | None = None):
    """Train and return ``(model, best_val_loss, epochs_run)``.

    ``huber_delta`` is in the units of the (standardised) target; ``target_scale`` is the
    target's standard deviation in log units (the ``mape`` loss needs log errors; with
    ``lbfgs`` it starts from an ``mse`` fit of the same start). For ``lbfgs`` an epoch is
    one L-BFGS iteration and ``lr``/``weight_decay`` are not used (``weight_decay`` adds an
    L2 penalty on the hidden weights instead).

    ``starts`` (``lbfgs`` only): a dict the caller keeps for one set of rows and inputs
    (and the same other arguments), filled with every fitted start as ``(loss, i) ->
    (state, val_loss, epochs)``. A start already in it is taken from it instead of being
    fitted again, and a ``mape`` start continues from the ``mse`` start of the same index:
    each start is seeded on its own (``seed * 1000 + i``), so the result is the same as
    without the dict, bit for bit, only cheaper when fits repeat (the complexity search
    fits start 0 of the sets that the final fit fits again; ``loss="auto"`` fits ``mse``
    and then ``mape``, which starts from it)."""
    if optimizer not in OPTIMIZERS:
        raise ParameterError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    lossf = _loss_fn(loss, huber_delta, target_scale)
    d_epochs, d_patience = DEFAULT_EPOCHS[optimizer]
    max_epochs = d_epochs if max_epochs is None else int(max_epochs)
    patience = d_patience if patience is None else int(patience)
    n_inputs = Z_tr.shape[1]
    n_params = count_params(n_inputs, hidden, skip)
    if n_params >= max_params:
        raise ParameterError(f"a network with {n_inputs} inputs and hidden layers {hidden} "
                             f"has {n_params} trainable parameters; the limit is fewer than "
                             f"{max_params} (max_params)")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny full-batch problems are fastest on one thread
    try:
        zt = torch.tensor(Z_tr, dtype=torch.float64)
        tt = torch.tensor(t_tr, dtype=torch.float64)
        if Z_val is not None and len(Z_val):
            zv = torch.tensor(Z_val, dtype=torch.float64)
            tv = torch.tensor(t_val, dtype=torch.float64)
        else:
            zv, tv = zt, tt
        best = (np.inf, None, 0)
        shape = (n_inputs, hidden, activation, skip)

        def new(i):
            return _new_model(seed * 1000 + i, Z_tr, t_tr, *shape, n_params)

        def lbfgs(lf):
            return lambda m: _fit_lbfgs(m, zt, tt, zv, tv, lf, max_epochs, patience,
                                        weight_decay)

        def first(i):  # what start i's fit begins from
            if loss != "mape":
                return new(i)
            # from the squared-error fit: MAPE alone stalls early
            return _start(starts, ("mse", i), lbfgs(_loss_fn("mse", None)),
                          lambda: new(i), *shape)[0]

        for i in range(max(1, n_init)):
            if optimizer == "lbfgs":
                model, best_i, epochs = _start(starts, (loss, i), lbfgs(lossf),
                                               lambda i=i: first(i), *shape)
                if best_i < best[0]:
                    best = (best_i, model, epochs)
                continue
            model = new(i)
            opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, factor=0.5, patience=max(patience // 4, 10))
            best_i, state_i, since, epochs = np.inf, copy.deepcopy(model.state_dict()), 0, 0
            for epoch in range(max_epochs):
                opt.zero_grad(set_to_none=True)
                train_loss = lossf(model(zt), tt)
                train_loss.backward()
                opt.step()
                with torch.no_grad():
                    val = float(lossf(model(zv), tv))
                sched.step(val)
                epochs = epoch + 1
                if val < best_i - 1e-9:
                    best_i, since = val, 0
                    state_i = copy.deepcopy(model.state_dict())
                else:
                    since += 1
                    if since >= patience:
                        break
            model.load_state_dict(state_i)
            if best_i < best[0]:
                best = (best_i, model, epochs)
        return best[1], best[0], best[2]
    finally:
        torch.set_num_threads(threads)


def _new_model(seed: int, Z_tr, t_tr, n_inputs, hidden, activation, skip, n_params):
    """A start: weights drawn from ``seed``, the skip path at the ridge fit."""
    torch.manual_seed(seed)
    model = AugmentedMLP(n_inputs, hidden, activation, skip)
    if model.n_params() != n_params:  # pragma: no cover - guards count_params
        raise AssertionError("parameter count mismatch")
    _ridge_init(model, Z_tr, t_tr)
    return model


def _start(starts, key, fit, make, n_inputs, hidden, activation, skip):
    """``(model, val_loss, epochs)`` of start ``key``: ``fit`` applied to ``make()``, or the
    state stored in ``starts`` under ``key`` (a fit is stored there when ``starts`` is a
    dict)."""
    if starts is not None and key in starts:
        state, val, epochs = starts[key]
        model = AugmentedMLP(n_inputs, hidden, activation, skip)
        model.load_state_dict(state)
        return model, val, epochs
    model, val, epochs = fit(make())
    if starts is not None:
        starts[key] = (copy.deepcopy(model.state_dict()), val, epochs)
    return model, val, epochs


def _lbfgs_rounds(model, zt, tt, lossf, l2):
    """A function that runs one round (``_LBFGS_ROUND`` iterations) of full-batch L-BFGS on
    ``lossf`` (+ ``l2`` times the squared hidden weights) and keeps its history between
    calls."""
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=_LBFGS_ROUND, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9,
                            tolerance_change=1e-12)
    hidden_w = [lin.weight for lin in model.linears[:-1]]

    def closure():
        opt.zero_grad(set_to_none=True)
        value = lossf(model(zt), tt)
        if l2:
            value = value + l2 * sum((w ** 2).sum() for w in hidden_w)
        value.backward()
        return value

    return lambda: opt.step(closure)


def _fit_lbfgs(model, zt, tt, zv, tv, lossf, max_epochs, patience, l2):
    """Full-batch L-BFGS; validation every ``_LBFGS_ROUND`` iterations, best state kept."""
    step = _lbfgs_rounds(model, zt, tt, lossf, l2)
    with torch.no_grad():
        best = float(lossf(model(zv), tv))
    state, since, epochs = copy.deepcopy(model.state_dict()), 0, 0
    rounds = max(1, -(-max_epochs // _LBFGS_ROUND))
    wait = max(1, -(-patience // _LBFGS_ROUND))
    for r in range(rounds):
        step()
        epochs = (r + 1) * _LBFGS_ROUND
        with torch.no_grad():
            val = float(lossf(model(zv), tv))
        if not np.isfinite(val):
            break
        if val < best - 1e-9:
            best, since, state = val, 0, copy.deepcopy(model.state_dict())
        else:
            since += 1
            if since >= wait:
                break
    model.load_state_dict(state)
    return model, best, epochs


def continue_network(layers, skip, activation: str, Z: np.ndarray, t: np.ndarray, *,
                     n_iter: int, loss: str, huber_delta: float | None = None,
                     target_scale: float = 1.0, weight_decay: float = 0.0):
    """``(layers, skip)`` after ``n_iter`` more L-BFGS iterations from the given weights on
    rows ``Z``, ``t`` (the final pass over all training rows, validation rows included,
    once the choices are made; nothing is validated here, the length is fixed in advance).
    A round that makes the loss non-finite is undone and ends the pass."""
    model = AugmentedMLP.from_weights(layers, skip, activation)
    lossf = _loss_fn(loss, huber_delta, target_scale)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        zt = torch.tensor(Z, dtype=torch.float64)
        tt = torch.tensor(t, dtype=torch.float64)
        step = _lbfgs_rounds(model, zt, tt, lossf, weight_decay)
        for _ in range(max(0, -(-int(n_iter) // _LBFGS_ROUND))):
            state = copy.deepcopy(model.state_dict())
            step()
            with torch.no_grad():
                if not np.isfinite(float(lossf(model(zt), tt))):
                    model.load_state_dict(state)
                    break
        return model.export()
    finally:
        torch.set_num_threads(threads)


def resume_network(layers, skip, activation: str, Z_tr: np.ndarray, t_tr: np.ndarray,
                   Z_val: np.ndarray, t_val: np.ndarray, *, loss: str,
                   max_epochs: int | None = None, patience: int | None = None,
                   huber_delta: float | None = None, target_scale: float = 1.0,
                   weight_decay: float = 0.0):
    """``(layers, skip, epochs)``: the network ``(layers, skip)`` fitted further on rows
    ``Z_tr``, ``t_tr`` with L-BFGS as a start of :func:`fit_network` is (validated on
    ``Z_val``, ``t_val`` every round, the best state kept; the weights given count as the
    best until a round improves on them)."""
    d_epochs, d_patience = DEFAULT_EPOCHS["lbfgs"]
    model = AugmentedMLP.from_weights(layers, skip, activation)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, _, epochs = _fit_lbfgs(
            model, *(torch.tensor(a, dtype=torch.float64) for a in (Z_tr, t_tr, Z_val, t_val)),
            _loss_fn(loss, huber_delta, target_scale),
            d_epochs if max_epochs is None else int(max_epochs),
            d_patience if patience is None else int(patience), weight_decay)
        return (*model.export(), epochs)
    finally:
        torch.set_num_threads(threads)


def torch_predictor(model_dict: dict):
    """``f(X) -> seconds``: the torch forward pass of a saved model, built once (for tests
    and the cost benchmark; the product predicts with :mod:`annpred.model.network`)."""
    from annpred.model.network import transform_inputs

    m = AugmentedMLP.from_weights(model_dict["layers"], model_dict.get("skip"),
                                  model_dict["activation"])
    m.eval()
    mean = np.asarray(model_dict["scaler"]["mean"])
    std = np.asarray(model_dict["scaler"]["std"])
    tm, ts = model_dict["target_scaler"]["mean"], model_dict["target_scaler"]["std"]
    log_target = model_dict["target_transform"] == "log"

    def predict(X: np.ndarray) -> np.ndarray:
        Z = (transform_inputs(X, model_dict["input_transform"]) - mean) / std
        with torch.no_grad():
            y = m(torch.tensor(Z, dtype=torch.float64)).numpy() * ts + tm
        return np.exp(y) if log_target else y

    return predict


def torch_predict_seconds(model_dict: dict, X: np.ndarray) -> np.ndarray:
    """The torch forward pass of a saved model (for tests)."""
    return torch_predictor(model_dict)(X)
