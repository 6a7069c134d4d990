"""All candidate networks of one decision, stacked into zero-padded batched weight arrays.

Padding hidden units and unused inputs with zeros is exact; the input scalers are folded into
the first layer and the target scaler into the output layer, and the union of the candidates'
input features (parameters and complexity expressions) is computed once per point.
"""
from __future__ import annotations

import math
import operator
from typing import Any, Mapping

import numpy as np

from annpred.errors import AnnpredError, UnknownKernelError
from annpred.model.network import ACTIVATIONS
from annpred.runtime.choice import _CONFIG, _DEFAULTS, Candidate
from annpred.runtime.ranges import widen_range
from annpred.spec import expr as _expr
from annpred.spec import hardware as hw


class _Group:
    """Models of equal depth, activation and target transform, stacked and zero-padded.

    ``col_maps[i]`` maps model i's feature names to columns of the raw feature vector."""

    def __init__(self, idx, ms, col_maps, n_raw: int):
        self.idx = np.asarray(idx, dtype=np.intp)
        c0 = ms[0].compiled
        self.act = ACTIVATIONS[c0["activation"]]
        self.log_target = c0["target_transform"] == "log"
        M = len(ms)
        F = max(len(m.meta["features"]) for m in ms)
        depth = len(c0["layers"])
        # gather indices into U = [raw (n_raw), log(raw) (n_raw), 0.0, 1.0]; padding reads 0
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
        # machine corrections (annpred.model.correction), zero where a model has none
        corr = [m.correction for m in ms]
        self.corrected = any(c is not None for c in corr)
        if self.corrected:
            get = lambda k, dflt: np.array([dflt if c is None else c[k] for c in corr])  # noqa
            self.c_off, self.c_slope, self.c_ref = get("offset", 0.0), get("slope", 0.0), \
                get("ref", 0.0)
            self.c_lo, self.c_hi = get("lo", 0.0), get("hi", 0.0)
            # features corrections: weights over each model's inputs, zero-padded to F
            self.c_w = np.zeros((M, F))
            self.c_center = np.zeros((M, F))
            self.c_xlo = np.full((M, F), -np.inf)
            self.c_xhi = np.full((M, F), np.inf)
            for i, c in enumerate(corr):
                if c is not None and c.get("weights"):
                    f = len(c["weights"])
                    self.c_w[i, :f], self.c_center[i, :f] = c["weights"], c["center"]
                    self.c_xlo[i, :f], self.c_xhi[i, :f] = c["x_lo"], c["x_hi"]
            self.c_feat = bool(self.c_w.any())
        self.dense = None
        if depth == 2:  # one hidden layer (the default): fold the gather into dense weights
            self._build_dense(M, widths[0], F, 2 * n_raw + 2)

    def _build_dense(self, M: int, H: int, F: int, n_u: int) -> None:
        """Block weights that read U directly: ``Z = A @ U``, ``h = act(Z[:M*H])``,
        ``y = C @ h + Z[M*H:]``. The last entry of U is the constant 1, so A's last column
        carries the hidden biases (first M*H rows) and the output biases (last M rows, beside
        the skip weights D); three small products instead of gathers and batched einsums.
        Used when every entry of U is finite (a non-finite log would poison the padding)."""
        A = np.zeros((M * H + M, n_u))
        C = np.zeros((M, M * H))
        for i in range(M):
            for j in range(F):
                col = self.G[i, j]
                A[i * H:(i + 1) * H, col] += self.W1[i, :, j]
                A[M * H + i, col] += self.Wout[i, H + j]
            C[i, i * H:(i + 1) * H] = self.Wout[i, :H]
        A[:M * H, n_u - 1] = self.B1.reshape(-1)
        A[M * H:, n_u - 1] = self.bout
        # [C | I]: the output reads the activated hidden rows and the linear rows of Z as
        # they are, so y = C2 @ Z once act is applied in place to Z[:M*H] (two calls fewer)
        C2 = np.concatenate([C, np.eye(M)], axis=1)
        self.dense = (A, C, M * H, C2)

    def __call__(self, U: np.ndarray, finite: bool | None = None) -> np.ndarray:
        if finite is None:
            finite = bool(np.isfinite(U).all())
        if self.dense is not None and not self.corrected and finite:
            A, C, mh, _ = self.dense
            Z = A @ U
            y = C @ self.act(Z[:mh])
            y += Z[mh:]
            return np.exp(y) if self.log_target else y
        X = U[self.G]  # (M, F)
        if self.single:
            y = np.einsum("mf,mf->m", self.Wout, X) + self.bout
        else:
            h = self.act(np.einsum("mhf,mf->mh", self.W1, X) + self.B1)
            for W, b in self.hidden:
                h = self.act(np.einsum("mhf,mf->mh", W, h) + b)
            y = np.einsum("mf,mf->m", self.Wout, np.concatenate((h, X), axis=1)) + self.bout
        if self.corrected:
            ly = y if self.log_target else np.log(y)
            ly = ly + self.c_off + self.c_slope * (np.clip(ly, self.c_lo, self.c_hi) - self.c_ref)
            if self.c_feat:
                xc = np.clip(X, self.c_xlo, self.c_xhi) - self.c_center
                ly = ly + np.einsum("mf,mf->m", self.c_w, np.where(self.c_w != 0, xc, 0.0))
            return np.exp(ly)
        return np.exp(y) if self.log_target else y




class _Plan:
    """Everything about one (models, kernel, candidate set) that does not depend on the
    point: the stacked networks, compiled features, ranges and the default fallback."""

    def __init__(self, pred, kname: str, spec, cands: tuple[Candidate, ...]):
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
        # per model: measured on this machine; adapted to it (annpred.runtime.correction)
        self.machine_match = [m.machine_match for m in self.models]
        self.machine_ok = [m.trusted_machine for m in self.models]
        # union of parameters (spec order first) and of complexity expressions
        names: list[str] = list(spec.param_names) if spec is not None else []
        for m in self.models:
            for p in m.params:
                if p not in names:
                    names.append(p)
        used = {p for m in self.models for p in m.params}
        self.params = [p for p in names if p in used]
        self.col_of: dict[str, int] = {p: i for i, p in enumerate(self.params)}
        # a point's values in this order, as a tuple, in one C-level call
        if len(self.params) == 1:
            one = operator.itemgetter(self.params[0])
            self.take = lambda point: (one(point),)
        elif self.params:
            self.take = operator.itemgetter(*self.params)
        else:
            self.take = lambda point: ()
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
        self._f_math = self._f_np = None
        if self.exprs:
            self._f_math = _expr.lambdify(self.exprs, self.params, scalar=True)
            self._f_np = _expr.lambdify(self.exprs, self.params)
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
                    self.lo[i, self.col_of[p]], self.hi[i, self.col_of[p]] = widen_range(
                        lo, hi, self.margin)
        rows = {}
        self.range_of = [rows.setdefault((tuple(lo), tuple(hi)), len(rows))
                         for lo, hi in zip(self.lo.tolist(), self.hi.tolist())]
        self.ranges = list(rows)
        # the box inside every model's range: a point in it is in range for all (one test)
        if M and P:
            ilo, ihi = self.lo.max(axis=0), self.hi.min(axis=0)
            self.inner = (tuple(ilo.tolist()), tuple(ihi.tolist())) \
                if bool((ilo <= ihi).all()) else None
        else:
            self.inner = None
        self.model_list = self.model_pos.tolist()
        self.full = len(self.models) == len(cands)
        # variants with a point-dependent domain restriction, devices
        self.supports = []
        self.everyone = (True,) * len(cands)  # eligibility when no variant restricts it
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
        # prediction intervals (log offsets; NaN for a model without one), per candidate
        self.iv = [None] * len(cands)
        for j, m in zip(self.model_pos.tolist(), self.models):
            if m.interval is not None:
                self.iv[j] = (m.interval[0], m.interval[1])
        self.default = self._default()
        # seconds(): the common case takes the shortest path (see there)
        g = self.groups[0] if len(self.groups) == 1 else None
        self._fast = (g is not None and g.dense is not None and g.log_target
                      and not g.corrected and g.act is np.tanh)
        self._why: dict = {}  # untrusted-reason texts by flag pattern (annpred.runtime.choose)
        self._resolved: dict = {}

    def fallback(self, value=None) -> Candidate:
        """The fallback candidate: ``value`` (``default=``), else the configured default
        (:func:`set_default`), else the built-in one."""
        configured = value is None
        if configured:
            value = _DEFAULTS.get(self.kernel)
            if value is None:
                return self.default
        if isinstance(value, list):
            value = tuple(value)
        c = self._resolved.get(value)
        if c is None:
            if not configured:
                c = self.resolve_default(value)
            else:  # say where a default that no longer fits (or never did) was set
                try:
                    c = self.resolve_default(value)
                except AnnpredError as exc:
                    raise type(exc)(f"the default set by set_default({self.kernel!r}, "
                                    f"{value[0]!r}, {value[1]!r}): {exc}") from None
            self._resolved[value] = c
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
        from annpred.errors import ParameterError
        from annpred.validate import safe_name

        if isinstance(value, str):
            value = tuple(Candidate.parse(value)) if "@" in value else (value, None)
        v, h = value
        safe_name(v, f"default {v}@{h}: variant", ParameterError)
        if self.spec is not None:
            self.spec.variant(v)  # raises, listing the variants
        if h is None:
            c = self._best_hw(v)
            if c is not None:
                return c
            return Candidate(v, hw.cpu_id(hw.cpu_count()))
        safe_name(h, f"default {v}@{h}: hardware", ParameterError)
        known = sorted({c.hardware for c in self.cands})
        if h not in known and not hw.present(h):
            # a fallback must be something to run: a candidate's hardware or one present here
            raise ParameterError(
                f"default {v}@{h}: hardware {h!r} is neither a candidate's nor present on "
                f"this machine (candidates' hardware: {', '.join(known) or 'none'}; this "
                f"machine: {hw.cpu_id(hw.cpu_count())})")
        return Candidate(v, h)

    def features(self, x: list[float]) -> np.ndarray:
        """U = [raw (params, complexities), log(raw), 0, 1] (0 pads, 1 carries biases)."""
        return self._features(x)[0]

    def _features(self, x: list[float]) -> tuple[np.ndarray, bool]:
        """U and whether every entry is finite (all raw values positive and finite)."""
        vals = tuple(x)
        if self._f_math is not None:
            try:
                vals += tuple(self._f_math(*x))
            except (ValueError, ZeroDivisionError, OverflowError, TypeError, NameError):
                with np.errstate(all="ignore"):
                    vals += tuple(float(v) for v in self._f_np(*[np.float64(v) for v in x]))
        # a handful of values: plain Python logs are cheaper than numpy's error state
        try:
            logs = tuple(map(math.log, vals))
        except ValueError:  # a value <= 0
            logs = tuple(math.log(v) if v > 0 else (-math.inf if v == 0 else math.nan)
                         for v in vals)
        # every log finite (every value positive and finite) iff their sum is: a log is at
        # most ~710 in size, so the sum cannot overflow, and inf or nan carry through it
        finite = math.isfinite(sum(logs))
        return np.array(vals + logs + (0.0, 1.0)), finite

    def seconds(self, x: list[float]) -> list[float]:
        """:meth:`predict` as a list, for a decision. The common case (one stacked group of
        one-hidden-layer, log-target networks) takes the fewest numpy calls: at a handful of
        values each call's overhead, not arithmetic, is the cost."""
        U, finite = self._features(x)
        if self._fast and finite:
            A, _, mh, C2 = self.groups[0].dense
            Z = A.dot(U)  # ndarray.dot: the cheapest call into BLAS for a vector
            np.tanh(Z[:mh], out=Z[:mh])
            y = C2.dot(Z)
            exp = math.exp
            try:
                return [exp(v) for v in y.tolist()]
            except OverflowError:
                return np.exp(y).tolist()
        return self.predict(x).tolist()

    def predict(self, x: list[float]) -> np.ndarray:
        """Seconds of every model (model order) at one point."""
        U, finite = self._features(x)
        if len(self.groups) == 1:
            return self.groups[0](U, finite)
        out = np.empty(len(self.models))
        for g in self.groups:
            out[g.idx] = g(U, finite)
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
        le = operator.le
        inner = self.inner
        if inner is not None and all(map(le, inner[0], x)) and all(map(le, x, inner[1])):
            return [True] * len(self.range_of)
        res = [all(map(le, los, x)) and all(map(le, x, his)) for los, his in self.ranges]
        if len(res) == 1:
            return [res[0]] * len(self.range_of)
        return [res[r] for r in self.range_of]
