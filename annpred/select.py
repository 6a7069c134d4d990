"""Runtime choice: pick the fastest (variant, hardware) for one kernel call, and run it.

:func:`choose` predicts every candidate of a call in **one vectorised numpy pass**: all
candidate networks are stacked into zero-padded batched weight arrays (padding hidden units
and unused inputs with zeros is exact), the union of their input features (parameters and
complexity expressions) is computed once, and the input scalers are folded into the first
layer. The stacked arrays, the compiled complexity functions and the default candidate set
are cached per (model directory, kernel, candidate set), so a decision costs tens of
microseconds and never imports torch.

:func:`dispatch` infers the parameters of a call from its operands, chooses, runs the chosen
implementation with the chosen thread count and returns its result as a numpy array.

Guardrails: a candidate is *trusted* when it has a model and the point lies inside that
model's training range, widened by a margin of 5% of its width in log scale
(:func:`set_margin`; random sampling never reaches a domain's ends, so without it a dense
operand, density 1, would count as an extrapolation). By default (``policy="strict"``) a decision is taken from the
predictions only when every candidate is trusted; otherwise :func:`choose` says why and falls
back to a configured default (:func:`set_default`, or ``default=``; without configuration the
kernel's first catalog variant on the most threads). ``policy="trusted"`` picks the best
trusted candidate instead, ``policy="extrapolate"`` trusts every model.
"""
from __future__ import annotations

import csv
import functools
import inspect
import math
import os
import sys
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from . import hardware as hw
from .errors import ParameterError, UnknownKernelError
from .predict import RANGE_MARGIN
from .predict import widen_range as _widen

POLICIES = ("strict", "trusted", "extrapolate")


class Candidate(NamedTuple):
    """One implementation on one piece of hardware, e.g. ``("numpy", "cpu-xeon-t2")``."""

    variant: str
    hardware: str

    def __str__(self) -> str:
        return f"{self.variant}@{self.hardware}"

    @classmethod
    def parse(cls, value) -> "Candidate":
        """``Candidate``, ``(variant, hardware)`` or ``"variant@hardware"``."""
        if isinstance(value, Candidate):
            return value
        if isinstance(value, str):
            if "@" not in value:
                raise ParameterError(f"candidate {value!r}: expected variant@hardware")
            v, h = value.split("@", 1)
            return cls(v, h)
        try:
            v, h = value
        except (TypeError, ValueError):
            raise ParameterError(f"candidate {value!r}: expected (variant, hardware) or "
                                 "'variant@hardware'") from None
        return cls(str(v), str(h))


class NoCandidatesError(UnknownKernelError):
    """No model of the kernel exists for any hardware present on this machine."""


@dataclass
class Choice:
    """The outcome of :func:`choose`.

    ``predicted`` maps every candidate to its predicted seconds (``None`` without a model;
    CUDA candidates include the host-device transfer when :func:`dispatch` knew the bytes),
    ``in_range`` to whether the point lies inside that model's training range (widened by
    the margin of :func:`set_margin`).
    ``fallback`` is true when the choice is the configured default rather than the
    prediction's best; ``reason`` then says why.
    """

    kernel: str
    params: dict
    variant: str
    hardware: str
    predicted: dict
    in_range: dict
    fallback: bool = False
    reason: str = ""
    predicted_best: Candidate | None = None  # argmin of the predictions, trusted or not
    unsupported: tuple = ()  # candidates whose variant does not support this point
    transfer_s: dict = field(default_factory=dict)  # CUDA candidates: transfer seconds added
    policy: str = "strict"
    _plan: Any = field(default=None, repr=False, compare=False)

    @property
    def best(self) -> Candidate:
        return Candidate(self.variant, self.hardware)

    @property
    def seconds(self) -> float | None:
        """Predicted seconds of the chosen candidate (``None`` if it has no model)."""
        return self.predicted.get(self.best)

    @property
    def threads(self) -> int | None:
        return hw.parse_id(self.hardware)["threads"]

    @property
    def trusted(self) -> bool:
        return not self.fallback

    @property
    def all_in_range(self) -> bool:
        return all(self.in_range.values())

    def out_of_range(self) -> dict:
        """Per untrusted candidate: ``{param: [value, [lo, hi]]}`` against the (widened)
        training range, or ``"no model"``."""
        plan = self._plan
        out = {}
        for i, (c, ok) in enumerate(self.in_range.items()):
            if ok:
                continue
            if plan is None or i in plan.missing:
                out[c] = "no model"
            else:
                out[c] = plan.out_of_range(plan.model_list.index(i), self.params)
        return out

    def ranking(self) -> list[tuple[Candidate, float | None, bool]]:
        """Candidates from fastest to slowest predicted (those without a model last)."""
        items = list(self.predicted.items())
        items.sort(key=lambda kv: (kv[1] is None, kv[1] if kv[1] is not None else 0.0))
        return [(c, s, self.in_range.get(c, False)) for c, s in items]

    def to_dict(self) -> dict:
        return {
            "kernel": self.kernel, "params": dict(self.params),
            "variant": self.variant, "hardware": self.hardware,
            "seconds": self.seconds, "threads": self.threads,
            "predicted": {str(c): s for c, s in self.predicted.items()},
            "in_range": {str(c): bool(v) for c, v in self.in_range.items()},
            "fallback": self.fallback, "reason": self.reason, "policy": self.policy,
            "margin": None if self._plan is None else self._plan.margin,
            "predicted_best": None if self.predicted_best is None else str(self.predicted_best),
            "unsupported": [str(c) for c in self.unsupported],
            "transfer_s": {str(c): s for c, s in self.transfer_s.items()},
        }

    def __str__(self) -> str:
        s = f"{self.kernel}: {self.variant} on {self.hardware}"
        if self.fallback:
            s += f" (fallback: {self.reason})"
        return s


# -- configuration ------------------------------------------------------------------------
_DEFAULTS: dict[str, tuple[str, str | None]] = {}
_CONFIG = {"policy": "strict", "margin": RANGE_MARGIN}
DEFAULT_MARGIN = 0.05


def set_default(kernel: str, variant: str | None, hardware: str | None = None) -> None:
    """Configure the fallback of ``kernel`` (``variant`` None removes it). ``hardware`` None
    means: that variant's candidate with the most threads."""
    if variant is None:
        _DEFAULTS.pop(kernel, None)
    else:
        _DEFAULTS[kernel] = (variant, hardware)
    _MEMO.clear()


def set_policy(policy: str) -> None:
    """The process-wide default policy: ``strict``, ``trusted`` or ``extrapolate``."""
    if policy not in POLICIES:
        raise ParameterError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    _CONFIG["policy"] = policy
    _MEMO.clear()


def set_margin(margin: float) -> None:
    """Widen every training range by ``margin`` times its width (in log scale for positive
    ranges) before judging whether a point is inside it; 0 is the strict training box.

    The default 0.05 exists because random sampling never reaches a domain's ends exactly:
    a density range sampled on [0.001, 1] trains on about [0.00105, 0.998], and a dense
    operand (density 1) must not count as an extrapolation."""
    margin = float(margin)
    if not (0 <= margin < 1):
        raise ParameterError(f"margin must be in [0, 1), got {margin}")
    _CONFIG["margin"] = margin
    _PLANS.clear()
    _MEMO.clear()


# -- CUDA transfer model --------------------------------------------------------------------
@dataclass
class TransferModel:
    """Seconds to move ``b`` bytes between host and device: ``latency_s + b / bytes_per_s``.

    The defaults are conservative PCIe figures; :func:`calibrate_transfer` measures them."""

    latency_s: float = 15e-6
    bytes_per_s: float = 10e9
    calibrated: bool = False

    def seconds(self, nbytes: float) -> float:
        return self.latency_s + float(nbytes) / self.bytes_per_s


TRANSFER = TransferModel()


def calibrate_transfer(sizes=(1 << 12, 1 << 20, 1 << 24), repeats: int = 5) -> TransferModel:
    """Measure host->device copies with torch (only on a machine with a CUDA GPU) and fit
    latency and bandwidth; updates and returns the module's :data:`TRANSFER`."""
    if not hw.cuda_available():
        return TRANSFER
    import torch

    xs, ts = [], []
    for n in sizes:
        a = torch.empty(n, dtype=torch.uint8)  # pageable memory, like numpy operands
        a.to("cuda")
        torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            a.to("cuda")
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        xs.append(float(n))
        ts.append(float(np.median(times)))
    slope, icpt = np.polyfit(np.asarray(xs), np.asarray(ts), 1)
    TRANSFER.latency_s = max(float(icpt), 1e-6)
    TRANSFER.bytes_per_s = 1.0 / max(float(slope), 1e-13)
    TRANSFER.calibrated = True
    return TRANSFER


# -- model directories ----------------------------------------------------------------------
_PRED_BY_ENV: dict[tuple, Any] = {}
_PRED_BY_PATH: dict[str, Any] = {}


def _predictor(models):
    """A Predictor for ``models`` (None, a directory or list of them, or a Predictor)."""
    from .predict import Predictor, load_models

    if models is None:
        key = (os.environ.get("ANNPRED_MODELS"), os.environ.get("ANNPRED_TRAINED"),
               os.environ.get("XDG_DATA_HOME"))
        p = _PRED_BY_ENV.get(key)
        if p is None:
            p = _PRED_BY_ENV[key] = load_models()
        return p
    if isinstance(models, Predictor):
        return models
    if isinstance(models, (str, os.PathLike)):
        k = os.fspath(models)
        p = _PRED_BY_PATH.get(k)
        if p is None:
            p = _PRED_BY_PATH[k] = load_models(models)
        return p
    return load_models(list(models))


def clear_caches() -> None:
    """Forget loaded model directories and compiled candidate plans (after retraining)."""
    _PRED_BY_ENV.clear()
    _PRED_BY_PATH.clear()
    _PLANS.clear()
    _MEMO.clear()
    _KERNELS.clear()
    _present.cache_clear()
    _INPUT_SPECS.clear()


# -- hardware presence without importing torch ----------------------------------------------
def _proc_gpu_models() -> list[str]:
    base = Path("/proc/driver/nvidia/gpus")
    names = []
    try:
        for d in sorted(base.iterdir()):
            for line in (d / "information").read_text().splitlines():
                if line.lower().startswith("model:"):
                    names.append(line.split(":", 1)[1].strip())
    except OSError:
        pass
    return names



@functools.lru_cache(maxsize=256)
def _present(hw_id: str) -> bool:
    """:func:`annpred.hardware.present` that imports torch only when a GPU may exist."""
    info = hw.parse_id(hw_id)
    if info["device"] != "cuda":
        return hw.present(hw_id)
    if os.environ.get("ANNPRED_NO_CUDA"):
        return False
    if "torch" not in sys.modules:
        if not any(Path("/dev").glob("nvidia[0-9]*")):
            return False
        names = _proc_gpu_models()
        if names:
            if not any("cuda-" + hw.slug(n.replace("NVIDIA", "")) == hw_id for n in names):
                return False
    return hw.present(hw_id)


# -- kernels --------------------------------------------------------------------------------
_KERNELS: dict[str, Any] = {}


def _kernel_spec(name: str, pred) -> Any:
    """The catalog Kernel, or None for a kernel known only from its models."""
    k = _KERNELS.get(name)
    if k is not None:
        return k
    from .catalog import get_kernel

    try:
        k = get_kernel(name)
    except UnknownKernelError:
        if pred.combinations(name):
            return None
        raise
    _KERNELS[name] = k
    return k


# -- the stacked networks -------------------------------------------------------------------
def _custom_functions() -> dict:
    """Numpy implementations of annpred.expr's own functions (e.g. ``sopfr``, ``lpf``):
    ``annpred.expr._np_<name>``; they accept scalars as well as arrays."""
    from . import expr as _expr

    return {name[4:]: fn for name, fn in vars(_expr).items()
            if name.startswith("_np_") and callable(fn)}


def _math_lambdify(exprs, names):
    import sympy as sp

    syms = [sp.Symbol(n, positive=True) for n in names]
    mods = [{"Min": min, "Max": max, "ceiling": math.ceil, "floor": math.floor, "Abs": abs,
             **_custom_functions()}, "math"]
    # lambdify prints whitelisted sympy trees (annpred.expr.parse) as code; no user text
    # reaches exec.
    return sp.lambdify(syms, list(exprs), modules=mods)


def _numpy_lambdify(exprs, names):
    import sympy as sp

    syms = [sp.Symbol(n, positive=True) for n in names]
    return sp.lambdify(syms, list(exprs), modules=[
        {"Min": np.minimum, "Max": np.maximum, **_custom_functions()}, "numpy"])


_ACT = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0), "identity": lambda a: a}


class _Group:
    """Models of equal depth, activation and target transform, stacked and zero-padded.

    ``col_maps[i]`` maps model i's feature names to columns of the raw feature vector."""

    def __init__(self, idx, ms, col_maps, n_raw: int):
        self.idx = np.asarray(idx, dtype=np.intp)
        c0 = ms[0].compiled
        self.act = _ACT[c0["activation"]]
        self.log_target = c0["target_transform"] == "log"
        M = len(ms)
        F = max(len(m.meta["features"]) for m in ms)
        depth = len(c0["layers"])
        # gather indices into U = [raw (n_raw), log(raw) (n_raw), 0.0]; padding reads the 0
        G = np.full((M, F), 2 * n_raw, dtype=np.intp)
        widths = [max(m.compiled["layers"][l][0].shape[0] for m in ms) for l in range(depth)]
        W = [np.zeros((M, widths[0], F))]
        for l in range(1, depth):
            W.append(np.zeros((M, widths[l], widths[l - 1])))
        B = [np.zeros((M, widths[l])) for l in range(depth)]
        skip = np.zeros((M, F))
        y_std = np.ones(M)
        y_mean = np.zeros(M)
        for i, (m, cm) in enumerate(zip(ms, col_maps)):
            c = m.compiled
            feats = m.meta["features"]
            f = len(feats)
            for j, (name, t) in enumerate(zip(feats, c["input_transform"])):
                G[i, j] = cm[name] + (n_raw if t == "log" else 0)
            mean, std = c["mean"], c["std"]
            for l, (w, b) in enumerate(c["layers"]):
                if l == 0:  # fold the scaler (x - mean) / std into the first layer
                    W[0][i, :w.shape[0], :f] = w / std
                    B[0][i, :w.shape[0]] = b - w @ (mean / std)
                else:
                    W[l][i, :w.shape[0], :w.shape[1]] = w
                    B[l][i, :w.shape[0]] = b
            if c["skip"] is not None:  # the linear skip path, folded the same way
                s = c["skip"][0]
                skip[i, :f] = s / std
                B[-1][i, 0] -= float(s @ (mean / std))
            y_std[i], y_mean[i] = c["y_std"], c["y_mean"]
        self.G = G
        self.W1, self.B1 = W[0], B[0]
        self.hidden = list(zip(W[1:-1], B[1:-1]))
        self.single = depth == 1
        # the output layer and the skip path as one weight vector over [h, x]
        if depth == 1:
            self.Wout = W[0][:, 0, :] + skip
            self.bout = B[0][:, 0]
        else:
            self.Wout = np.concatenate([W[-1][:, 0, :], skip], axis=1)
            self.bout = B[-1][:, 0]
        # fold the target scaler into the output layer: y = out * y_std + y_mean
        self.Wout = self.Wout * y_std[:, None]
        self.bout = self.bout * y_std + y_mean

    def __call__(self, U: np.ndarray) -> np.ndarray:
        X = U[self.G]  # (M, F)
        if self.single:
            y = np.einsum("mf,mf->m", self.Wout, X) + self.bout
        else:
            h = self.act(np.einsum("mhf,mf->mh", self.W1, X) + self.B1)
            for W, b in self.hidden:
                h = self.act(np.einsum("mhf,mf->mh", W, h) + b)
            y = np.einsum("mf,mf->m", self.Wout, np.concatenate((h, X), axis=1)) + self.bout
        return np.exp(y) if self.log_target else y




class _Plan:
    """Everything about one (models, kernel, candidate set) that does not depend on the
    point: the stacked networks, compiled features, ranges and the default fallback."""

    def __init__(self, pred, kname: str, spec, cands: tuple[Candidate, ...]):
        from . import expr as _expr

        self.kernel = kname
        self.spec = spec
        self.cands = cands
        self.models = []
        self.model_pos = []  # candidate index of each model
        missing = []
        for i, c in enumerate(cands):
            m = pred.models.get((kname, c.variant, c.hardware))
            if m is None:
                missing.append(i)
            else:
                self.models.append(m)
                self.model_pos.append(i)
        self.missing = tuple(missing)
        self.model_pos = np.asarray(self.model_pos, dtype=np.intp)
        # union of parameters (spec order first) and of complexity expressions
        names: list[str] = list(spec.param_names) if spec is not None else []
        for m in self.models:
            for p in m.params:
                if p not in names:
                    names.append(p)
        used = {p for m in self.models for p in m.params}
        self.params = [p for p in names if p in used]
        self.col_of: dict[str, int] = {p: i for i, p in enumerate(self.params)}
        # distinct complexity texts, each computed once; per model: feature name -> column
        exprs: dict[str, Any] = {}
        col_maps: list[dict] = []
        for m in self.models:
            cm = dict(self.col_of)
            for name, text in m.meta["complexity"].items():
                if text not in exprs:
                    exprs[text] = _expr.parse(text, self.params)
                cm[name] = len(self.params) + list(exprs).index(text)
            col_maps.append(cm)
        self.exprs = list(exprs.values())
        self.n_raw = len(self.params) + len(self.exprs)
        self._f_math = _math_lambdify(self.exprs, self.params) if self.exprs else None
        self._f_np = _numpy_lambdify(self.exprs, self.params) if self.exprs else None
        # stacked networks, grouped by (depth, activation, target transform)
        groups: dict[tuple, list[int]] = {}
        for i, m in enumerate(self.models):
            c = m.compiled
            groups.setdefault((len(c["layers"]), c["activation"], c["target_transform"]),
                              []).append(i)
        self.groups = [_Group(idx, [self.models[i] for i in idx], [col_maps[i] for i in idx],
                              self.n_raw) for idx in groups.values()]
        # training ranges (M, P); -inf/inf where a model has no range for a parameter
        M, P = len(self.models), len(self.params)
        self.margin = _CONFIG["margin"]
        self.lo = np.full((M, P), -np.inf)
        self.hi = np.full((M, P), np.inf)
        for i, m in enumerate(self.models):
            for p, (lo, hi) in m.range.items():
                if p in self.col_of:
                    self.lo[i, self.col_of[p]], self.hi[i, self.col_of[p]] = _widen(
                        lo, hi, self.margin)
        rows = {}
        self.range_of = [rows.setdefault((tuple(lo), tuple(hi)), len(rows))
                         for lo, hi in zip(self.lo.tolist(), self.hi.tolist())]
        self.ranges = list(rows)
        self.model_list = self.model_pos.tolist()
        self.full = len(self.models) == len(cands)
        # variants with a point-dependent domain restriction, devices
        self.supports = []
        self.cuda_idx = []
        for i, c in enumerate(cands):
            v = None
            if spec is not None:
                try:
                    v = spec.variant(c.variant)
                except UnknownKernelError:
                    v = None
            if v is not None and v.supports is not None:
                self.supports.append((i, v))
            if hw.parse_id(c.hardware)["device"] == "cuda":
                self.cuda_idx.append(i)
        self.default = self._default()
        self._resolved: dict = {}

    def fallback(self, value=None) -> Candidate:
        """The fallback candidate: ``value`` (``default=``), else the configured default
        (:func:`set_default`), else the built-in one."""
        if value is None:
            value = _DEFAULTS.get(self.kernel)
            if value is None:
                return self.default
        if isinstance(value, list):
            value = tuple(value)
        c = self._resolved.get(value)
        if c is None:
            c = self._resolved[value] = self.resolve_default(value)
        return c

    def _default(self) -> Candidate:
        if self.spec is not None:
            for v in self.spec.variants:
                if v.device != "cpu":
                    continue
                c = self._best_hw(v.name)
                if c is not None:
                    return c
            v = self.spec.variants[0]
            return Candidate(v.name, hw.cpu_id(hw.cpu_count()))
        return self.cands[0] if self.cands else Candidate("?", "?")

    def _best_hw(self, variant: str) -> Candidate | None:
        hws = [c.hardware for c in self.cands if c.variant == variant]
        if not hws:
            return None
        return Candidate(variant, max(hws, key=lambda h: hw.parse_id(h)["threads"] or 0))

    def resolve_default(self, value) -> Candidate:
        if isinstance(value, str):
            if "@" in value:
                return Candidate.parse(value)
            value = (value, None)
        v, h = value
        if self.spec is not None:
            self.spec.variant(v)  # raises, listing the variants
        if h is None:
            c = self._best_hw(v)
            if c is not None:
                return c
            return Candidate(v, hw.cpu_id(hw.cpu_count()))
        return Candidate(v, h)

    def features(self, x: list[float]) -> np.ndarray:
        """U = [raw (params, complexities), log(raw), 0]."""
        vals = list(x)
        if self._f_math is not None:
            try:
                vals.extend(self._f_math(*x))
            except (ValueError, ZeroDivisionError, OverflowError, TypeError, NameError):
                with np.errstate(all="ignore"):
                    vals.extend(float(v) for v in self._f_np(*[np.float64(v) for v in x]))
        n = self.n_raw
        U = np.empty(2 * n + 1)
        U[:n] = vals
        with np.errstate(all="ignore"):
            np.log(U[:n], out=U[n:2 * n])
        U[2 * n] = 0.0
        return U

    def predict(self, x: list[float]) -> np.ndarray:
        """Seconds of every model (model order) at one point."""
        U = self.features(x)
        if len(self.groups) == 1:
            return self.groups[0](U)
        out = np.empty(len(self.models))
        for g in self.groups:
            out[g.idx] = g(U)
        return out

    def out_of_range(self, j: int, point: Mapping[str, Any]) -> dict:
        """Model ``j``'s parameters outside its (widened) range: ``{p: [v, [lo, hi]]}``."""
        bad = {}
        for p, c in self.col_of.items():
            lo, hi = float(self.lo[j, c]), float(self.hi[j, c])
            v = float(point[p])
            if not (lo <= v <= hi):
                bad[p] = [point[p], [lo, hi]]
        return bad

    def in_range(self, x: list[float]) -> list[bool]:
        """Per model: whether ``x`` lies inside its training range (models of one kernel
        mostly share their ranges, so each distinct range is checked once)."""
        res = [all(lo <= v <= hi for v, lo, hi in zip(x, los, his))
               for los, his in self.ranges]
        return [res[r] for r in self.range_of]


_PLANS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _default_candidates(pred, kname: str, spec) -> tuple[Candidate, ...]:
    out = []
    for k, v, h in pred.combinations(kname):
        if not _present(h):
            continue
        if spec is not None:
            try:
                var = spec.variant(v)
            except UnknownKernelError:
                continue  # a model for a variant the catalog no longer has
            if var.device != hw.parse_id(h)["device"]:
                continue  # e.g. a CPU variant's model filed under a GPU id
        out.append(Candidate(v, h))
    return tuple(out)


def _plan(pred, kname: str, spec, candidates) -> _Plan:
    per = _PLANS.get(pred)
    if per is None:
        with _LOCK:
            per = _PLANS.setdefault(pred, {})
    if candidates is None:
        key = (kname, None)
        plan = per.get(key)
        if plan is None:
            cands = _default_candidates(pred, kname, spec)
            if not cands:
                have = sorted({h for _, _, h in pred.combinations(kname)})
                raise NoCandidatesError(
                    f"no model of kernel {kname!r} for hardware present on this machine "
                    f"({hw.cpu_id(hw.cpu_count())}); models exist for: "
                    + (", ".join(have) if have else "(none)")
                    + f" (searched {', '.join(str(r) for r in pred.roots)}); profile and "
                    "train here (annpred quickstart) or pass candidates explicitly")
            plan = per[key] = _Plan(pred, kname, spec, cands)
        return plan
    if isinstance(candidates, (str, Candidate)):
        candidates = [candidates]
    cands = tuple(Candidate.parse(c) for c in candidates)
    if not cands:
        raise ParameterError("candidates is empty")
    key = (kname, cands)
    plan = per.get(key)
    if plan is None:
        if spec is not None:
            for c in cands:
                if not c.hardware.startswith("sim-"):   # modelled accelerators: variant sim
                    spec.variant(c.variant)  # unknown variant: clear error listing the variants
        if len(set(cands)) != len(cands):
            raise ParameterError("candidates hold duplicates")
        plan = per[key] = _Plan(pred, kname, spec, cands)
    return plan


def _point(spec, kname: str, params: Mapping[str, Any], plan: _Plan | None) -> dict:
    if not isinstance(params, Mapping):
        raise ParameterError(f"params must be a mapping name -> value, got "
                             f"{type(params).__name__}")
    if spec is not None:
        return spec.check_params(params)
    out = {}
    for k, v in params.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ParameterError(f"parameter {k}: {v!r} is not a number") from None
        if not math.isfinite(f):
            raise ParameterError(f"parameter {k}: {v!r} is not finite")
        out[k] = f
    return out


def choose(kernel, params: Mapping[str, Any], candidates=None, models=None, *,
           default=None, policy: str | None = None,
           transfer_bytes: float | None = None, memo: bool = True) -> Choice:
    """Choose the fastest candidate for one call of ``kernel`` with ``params``.

    ``candidates``: ``(variant, hardware)`` pairs or ``"variant@hardware"`` strings; default:
    every variant with a model for hardware present on this machine (CPU thread counts are
    separate hardware ids, so 1 vs 2 threads is part of the decision). ``models``: a model
    directory, a list of them, or a :class:`~annpred.predict.Predictor` (default: the user's
    calibrated models over the shipped ones). ``default``: fallback variant or
    ``"variant@hardware"`` (default: :func:`set_default`'s, else the kernel's first catalog
    variant). ``policy``: ``strict`` | ``trusted`` | ``extrapolate`` (see the module doc).
    ``transfer_bytes``: bytes a CUDA candidate must move between host and device; adds
    :data:`TRANSFER` seconds to CUDA candidates' predictions.
    ``memo``: remember the decision per (models, kernel, params, options), so that a call
    shape seen before is decided by one dictionary lookup (runtimes call the same shapes
    again and again); the same :class:`Choice` object is returned, treat it as read-only.
    """
    kname = kernel if isinstance(kernel, str) else getattr(kernel, "name", None)
    if not isinstance(kname, str):
        raise UnknownKernelError(f"kernel must be a name or a Kernel, got {kernel!r}")
    pred = _predictor(models)
    key = None
    if memo:
        try:
            key = (kname, tuple(params.items()),
                   None if candidates is None else tuple(candidates),
                   default, policy, transfer_bytes)
            hit = _MEMO.get(pred, _NO_MEMO).get(key)
        except (TypeError, AttributeError):  # unhashable: decide without the memo
            key = hit = None
        if hit is not None:
            return hit
    spec = _kernel_spec(kname, pred)
    point = _point(spec, kname, params, None)
    plan = _plan(pred, kname, spec, candidates)
    choice = _decide(plan, point, default, policy, transfer_bytes)
    if key is not None:
        memo_d = _MEMO.get(pred)
        if memo_d is None:
            memo_d = _MEMO[pred] = {}
        if len(memo_d) >= MEMO_SIZE:
            memo_d.clear()
        memo_d[key] = choice
    return choice


MEMO_SIZE = 65536
_MEMO: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_NO_MEMO: dict = {}


def _decide(plan: _Plan, point: dict, default, policy, transfer_bytes) -> Choice:
    """The decision at one validated point (small lists: plain Python beats numpy here)."""
    policy = policy or _CONFIG["policy"]
    if policy not in POLICIES:
        raise ParameterError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    try:
        x = [float(point[p]) for p in plan.params]
    except KeyError as exc:
        raise ParameterError(f"kernel {plan.kernel}: the models need parameter "
                             f"{exc.args[0]!r}") from None
    cands = plan.cands
    n = len(cands)
    if plan.models:
        pm = plan.predict(x).tolist()
        im = plan.in_range(x)
    else:
        pm, im = [], []
    if plan.full:
        secs, inr = pm, im
    else:
        secs, inr = [math.nan] * n, [False] * n
        for j, i in enumerate(plan.model_list):
            secs[i], inr[i] = pm[j], im[j]
    transfer = {}
    if transfer_bytes is not None and plan.cuda_idx:
        t = TRANSFER.seconds(transfer_bytes)
        for i in plan.cuda_idx:
            secs[i] += t
            transfer[cands[i]] = t
    ok = [s == s and s != math.inf for s in secs]
    eligible = [True] * n
    unsupported = []
    for i, v in plan.supports:
        if not v.supports_point(point):
            eligible[i] = False
            unsupported.append(cands[i])
    best_any, best_trusted, all_trusted = -1, -1, True
    for i in range(n):
        if not (eligible[i] and ok[i]):
            all_trusted = all_trusted and not eligible[i]
            continue
        s = secs[i]
        if best_any < 0 or s < secs[best_any]:
            best_any = i
        if inr[i]:
            if best_trusted < 0 or s < secs[best_trusted]:
                best_trusted = i
        else:
            all_trusted = False
    if policy == "strict":
        pick = best_trusted if all_trusted else -1
    elif policy == "trusted":
        pick = best_trusted
    else:
        pick = best_any
    predicted = {c: (s if o else None) for c, s, o in zip(cands, secs, ok)}
    in_range = dict(zip(cands, inr))
    predicted_best = cands[best_any] if best_any >= 0 else None
    if pick >= 0:
        best = cands[pick]
        reason = ""
        if not all_trusted:
            reason = "untrusted: " + _untrusted(plan, point, eligible, ok, inr)
        return Choice(plan.kernel, point, best.variant, best.hardware, predicted, in_range,
                      False, reason, predicted_best, tuple(unsupported), transfer, policy,
                      plan)
    if not any(eligible):
        why = "no candidate supports this point"
    else:
        why = _untrusted(plan, point, eligible, ok, inr)
    fb = plan.fallback(default)
    return Choice(plan.kernel, point, fb.variant, fb.hardware, predicted, in_range, True,
                  why, predicted_best, tuple(unsupported), transfer, policy, plan)


def _untrusted(plan: _Plan, point, eligible, ok, inr) -> str:
    parts = []
    oor: dict[str, list] = {}
    for i, c in enumerate(plan.cands):
        if not eligible[i]:
            continue
        if i in plan.missing:
            parts.append(f"no model for {c}")
        elif not ok[i]:
            parts.append(f"the model of {c} predicts a non-finite runtime here")
        elif not inr[i]:
            for p, (v, (lo, hi)) in plan.out_of_range(plan.model_list.index(i), point).items():
                oor.setdefault(f"{p}={v:g} outside [{lo:g}, {hi:g}]", []).append(str(c))
    for what, cs in oor.items():
        parts.append(f"{what} (training range of {len(cs)} candidate(s))")
    return "; ".join(parts) or "no trusted candidate"


# -- dispatch -------------------------------------------------------------------------------
_INPUT_SPECS: dict[str, dict] = {}


def _input_spec(kernel) -> dict[str, tuple[np.dtype, int]]:
    """Names, dtypes and ndims of the kernel's inputs, from ``make_inputs`` at a small point."""
    spec = _INPUT_SPECS.get(kernel.name)
    if spec is not None:
        return spec
    point = {p.name: (p.choices[0] if p.sampling == "choice" else p.low) for p in kernel.params}
    point = {k: (int(v) if kernel.param(k).kind == "int" else float(v)) for k, v in point.items()}
    if not kernel.valid(point):
        from .sampling import random_points

        point = random_points(kernel, 1, seed=0).iloc[0].to_dict()
    inputs = kernel.make_inputs(point, np.random.default_rng(0))
    spec = {k: (np.asarray(v).dtype, np.ndim(v)) for k, v in inputs.items()}
    _INPUT_SPECS[kernel.name] = spec
    return spec


def _is_sparse(a) -> bool:
    return type(a).__module__.startswith("scipy.sparse")


def _is_torch(a) -> bool:
    return type(a).__module__.startswith("torch")


def _nbytes(a) -> int:
    if _is_sparse(a):
        return int(np.prod(a.shape)) * a.dtype.itemsize  # densified for the GPU
    return int(getattr(a, "nbytes", np.asarray(a).nbytes))


_CONTROLLER = {"ctl": None, "nmods": -1}


@contextmanager
def _threads(n: int | None):
    """Limit BLAS/OpenMP (threadpoolctl) and torch to ``n`` threads for the call."""
    if n is None:
        yield
        return
    ctl = _CONTROLLER["ctl"]
    if ctl is None or _CONTROLLER["nmods"] != len(sys.modules):
        from threadpoolctl import ThreadpoolController

        ctl = _CONTROLLER["ctl"] = ThreadpoolController()
        _CONTROLLER["nmods"] = len(sys.modules)
    torch = sys.modules.get("torch")
    old_torch = torch.get_num_threads() if torch is not None else None
    if torch is not None and old_torch != n:
        torch.set_num_threads(n)
    try:
        if all(info.get("num_threads") == n for info in ctl.info()):
            yield
        else:
            with ctl.limit(limits=n):
                yield
    finally:
        if torch is not None and old_torch != n:
            torch.set_num_threads(old_torch)


@dataclass
class FeedbackRecord:
    kernel: str
    params: dict
    variant: str
    hardware: str
    predicted_s: float | None
    measured_s: float
    in_range: bool
    fallback: bool

    @property
    def ratio(self) -> float | None:
        """measured / predicted."""
        if not self.predicted_s:
            return None
        return self.measured_s / self.predicted_s


class Feedback:
    """Records the measured runtime of dispatched calls beside their prediction.

    One dispatched call is one measurement (no repeats; the first call of a variant includes
    warm-up), so judge the error on many calls: :meth:`off` lists the calls whose prediction
    was off by more than ``threshold`` (relative), :meth:`report` summarises them, and
    :meth:`to_csv` writes a profiling CSV that ``annpred train`` accepts, so models can be
    refitted from real calls (:meth:`refit`)."""

    def __init__(self, threshold: float = 0.5):
        self.threshold = float(threshold)
        self.records: list[FeedbackRecord] = []

    def record(self, choice: Choice, measured_s: float) -> FeedbackRecord:
        r = FeedbackRecord(choice.kernel, dict(choice.params), choice.variant, choice.hardware,
                           choice.seconds, float(measured_s),
                           bool(choice.in_range.get(choice.best, False)), choice.fallback)
        self.records.append(r)
        return r

    def off(self, threshold: float | None = None) -> list[FeedbackRecord]:
        t = self.threshold if threshold is None else float(threshold)
        return [r for r in self.records
                if r.ratio is None or abs(r.ratio - 1.0) > t]

    def report(self, threshold: float | None = None) -> dict:
        t = self.threshold if threshold is None else float(threshold)
        ratios = [r.ratio for r in self.records if r.ratio is not None]
        errs = [abs(q - 1) for q in ratios]
        bad = self.off(t)
        per: dict[str, int] = {}
        for r in bad:
            key = f"{r.kernel}/{r.variant}@{r.hardware}"
            per[key] = per.get(key, 0) + 1
        return {"calls": len(self.records), "threshold": t, "off": len(bad),
                "mape": float(np.mean(errs) * 100) if errs else None,
                "median_ratio": float(np.median(ratios)) if ratios else None,
                "off_by_combination": per}

    def to_csv(self, path, only_off: bool = False, threshold: float | None = None) -> Path:
        """A profiling CSV (one file per kernel if several: ``path`` must then be a
        directory) with the measured calls; train on it with ``annpred train``."""
        from .catalog import get_kernel
        from .profile import columns_for

        rows = self.off(threshold) if only_off else self.records
        kernels = sorted({r.kernel for r in rows})
        path = Path(path)
        if len(kernels) > 1 or path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            for k in kernels:
                self._write(path / f"{k}.csv", [r for r in rows if r.kernel == k],
                            columns_for(get_kernel(k)))
            return path
        if kernels:
            self._write(path, rows, columns_for(get_kernel(kernels[0])))
        return path

    @staticmethod
    def _write(path: Path, rows, cols) -> None:
        from .regressor import _version

        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(cols)
            for i, r in enumerate(rows):
                threads = hw.parse_id(r.hardware)["threads"] or ""
                vals = {"kernel": r.kernel, "variant": r.variant, "hardware": r.hardware,
                        **r.params, "runtime_s": repr(r.measured_s), "runtime_cv": "",
                        "repeats": 1, "runtime_min_s": repr(r.measured_s),
                        "threads": threads, "sampler": "dispatch", "seed": 0, "point": i,
                        "pass": 0, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
                        "annpred_version": _version()}
                w.writerow([vals.get(c, "") for c in cols])

    def refit(self, out, base_csvs: Sequence = (), **train_kw):
        """Retrain the combinations seen in the feedback from ``base_csvs`` (the original
        profiling data, optional) plus the recorded calls, into model directory ``out``.
        Combinations with fewer than 8 rows in all are skipped. Returns the train reports."""
        import tempfile

        from . import data as _data
        from .errors import DataError
        from .trainer import train_frame

        seen = {(r.kernel, r.variant, r.hardware) for r in self.records}
        if not seen:
            raise DataError("no dispatched calls recorded; nothing to refit")
        with tempfile.TemporaryDirectory() as tmp:
            fb = self.to_csv(Path(tmp) / "feedback")
            paths = ([str(p) for p in sorted(Path(fb).glob("*.csv"))] if Path(fb).is_dir()
                     else [str(fb)])
            df = _data.load_profiles([*map(str, base_csvs), *paths])
            key = list(zip(df["kernel"], df["variant"], df["hardware"]))
            df = df[[k in seen for k in key]]
            counts = df.groupby(["kernel", "variant", "hardware"]).size()
            keep = {k for k, n in counts.items() if n >= _data.MIN_ROWS}
            df = df[[k in keep for k in zip(df["kernel"], df["variant"], df["hardware"])]]
            if df.empty:
                raise DataError(f"every combination has fewer than {_data.MIN_ROWS} rows; "
                                "record more calls or pass the original data as base_csvs")
            reports = train_frame(df, out, **train_kw)
        clear_caches()
        return reports


_OWN_OPTIONS = ("candidates", "models", "default", "policy", "feedback", "return_choice")


def dispatch(kernel, *operands, candidates=None, models=None, default=None,
             policy: str | None = None, feedback: Feedback | None = None,
             return_choice: bool = False, **options):
    """Run ``kernel`` on ``operands`` with the implementation :func:`choose` picks.

    The parameters come from the kernel's ``infer_params(*operands, **options)`` (shapes,
    density of sparse or dense operands); parameters it cannot infer come from ``options``
    or the kernel's defaults (e.g. ``dispatch("maxpool", x, w=3, s=2)``). Operands are
    converted to the dtype the kernel's variants were profiled with (float32 for the
    catalog); scipy sparse operands stay sparse for variants named ``sparse*`` and are
    densified for the others. On a machine with a CUDA GPU, CUDA candidates' predictions
    include the host-device transfer of the operands and of a result of the same size as
    the largest operand (:data:`TRANSFER`). The chosen CPU variant runs with the thread
    count of its hardware id (threadpoolctl for BLAS/OpenMP, and torch); Halide's thread
    pool size is fixed per process by ``HL_NUM_THREADS`` and is not changed per call.

    Returns the result as a numpy array, or ``(result, choice)`` with ``return_choice``.
    With ``feedback`` (a :class:`Feedback`), the run is timed and recorded.
    """
    from .catalog import get_kernel

    k = kernel if not isinstance(kernel, str) else get_kernel(kernel)
    if k.infer_params is None:
        raise ParameterError(f"kernel {k.name} cannot infer its parameters from operands "
                             "(it defines no infer_params); use choose() with explicit params")
    sig = _signature(k)
    try:
        bound = sig.bind(*operands, **options)
    except TypeError as exc:
        raise ParameterError(f"dispatch({k.name!r}, ...): {exc}; expected operands "
                             f"{k.infer_params.__doc__ or str(sig)}") from None
    spec = _input_spec(k)
    try:
        params = k.infer_params(*operands, **options)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ParameterError(f"dispatch({k.name!r}, ...): cannot infer parameters: "
                             f"{exc}") from None
    extra = {n: v for n, v in bound.arguments.items()
             if n not in spec and n in k.param_names and n not in params}
    params = k.check_params({**params, **extra})
    inputs = {}
    for name, value in bound.arguments.items():
        if name in spec:
            inputs[name] = value
    missing = [n for n in spec if n not in inputs]
    if missing:
        raise ParameterError(f"dispatch({k.name!r}, ...): missing operand(s) "
                             f"{', '.join(missing)}")
    pred = _predictor(models)
    plan = _plan(pred, k.name, k, candidates)
    nbytes = None
    if plan.cuda_idx:
        if not TRANSFER.calibrated:
            calibrate_transfer()
        sizes = [_nbytes(v) for v in inputs.values()]
        nbytes = sum(sizes) + max(sizes)
    choice = choose(k.name, params, candidates, pred, default=default, policy=policy,
                    transfer_bytes=nbytes)
    v = k.variant(choice.variant)
    native = {}
    for name, value in inputs.items():
        dtype, ndim = spec[name]
        if _is_torch(value):
            value = value.detach().cpu().numpy()
        if _is_sparse(value):
            if not v.name.startswith("sparse"):
                value = value.toarray()
            if value.dtype != dtype:
                value = value.astype(dtype)
        else:
            value = np.asarray(value)
            if value.dtype != dtype:
                value = value.astype(dtype)
        native[name] = value
    threads = choice.threads if hw.parse_id(choice.hardware)["device"] == "cpu" else None
    with _threads(threads):
        state = v.prepare(native, params)
        t0 = time.perf_counter()
        result = v.run(state)
        if v.sync is not None:
            v.sync()
        elapsed = time.perf_counter() - t0
    out = v.to_numpy(result)
    if feedback is not None:
        feedback.record(choice, elapsed)
    return (out, choice) if return_choice else out


_SIGS: dict[str, inspect.Signature] = {}


def _signature(k) -> inspect.Signature:
    s = _SIGS.get(k.name)
    if s is None:
        s = _SIGS[k.name] = inspect.signature(k.infer_params)
    return s
