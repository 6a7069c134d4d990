"""Kernel specifications: parameters, complexity expressions and variants.

A kernel module (the catalog in ``kernels/`` or a user's own file) builds a :class:`Kernel`
and exposes it as ``KERNEL``. Kernel modules must import only numpy at module level; torch,
scipy and halide are imported inside ``prepare``/``run`` so that choosing stays torch-free.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from annpred.spec import expr as _expr
from annpred.errors import ParameterError, UnknownKernelError

SAMPLINGS = ("log", "pow2", "uniform", "choice")


def finite_number(name: str, value: Any) -> float:
    """``value`` as a finite float, or a :class:`ParameterError` naming parameter ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"parameter {name}: {value!r} is not a number") from None
    except OverflowError:  # an integer beyond the float range
        size = f"a {value.bit_length()}-bit integer" if isinstance(value, int) else "a value"
        raise ParameterError(f"parameter {name}: {size} is too large (beyond the float "
                             "range)") from None
    if not math.isfinite(v):
        raise ParameterError(f"parameter {name}: {value!r} is not finite")
    return v


@dataclass(frozen=True)
class Param:
    """A typed kernel parameter: the domain the profiler samples (``low``..``high``, how to
    sample it) and the wider set of values a call may have (:attr:`valid`).

    The catalog domain bounds what is *measured*, not what can be *asked*: ``predict``,
    ``choose`` and ``dispatch`` accept any valid value (positive sizes, densities in (0, 1]),
    and whether a model was trained there is the training range's business."""

    name: str
    kind: str = "int"  # "int" or "float"
    low: float = 1
    high: float = 1
    sampling: str = "log"  # log-uniform, powers of two, uniform, or choice
    choices: tuple = ()
    description: str = ""
    valid: tuple | None = None  # (min, max) a call may use; default from low/high, see below

    def __post_init__(self):
        if self.kind not in ("int", "float"):
            raise ValueError(f"parameter {self.name}: kind must be 'int' or 'float'")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"parameter {self.name}: sampling must be one of {SAMPLINGS}")
        if self.sampling == "choice":
            if not self.choices:
                raise ValueError(f"parameter {self.name}: sampling 'choice' needs choices")
            object.__setattr__(self, "low", min(self.choices))
            object.__setattr__(self, "high", max(self.choices))
        if self.low > self.high:
            raise ValueError(f"parameter {self.name}: low > high")
        if self.sampling in ("log", "pow2") and self.low <= 0:
            raise ValueError(f"parameter {self.name}: {self.sampling} sampling needs low > 0")
        object.__setattr__(self, "_valid", self._valid_range())  # checked on every call

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.sampling == "choice":
            return rng.choice(np.asarray(self.choices), size=n)
        if self.sampling == "pow2":
            lo, hi = math.ceil(math.log2(self.low)), math.floor(math.log2(self.high))
            return (2.0 ** rng.integers(lo, hi + 1, size=n)).astype(self.dtype)
        if self.sampling == "log":
            v = np.exp(rng.uniform(math.log(self.low), math.log(self.high), size=n))
        else:
            v = rng.uniform(self.low, self.high, size=n)
        if self.kind == "int":
            v = np.clip(np.round(v), self.low, self.high).astype(np.int64)
        return v

    @property
    def dtype(self):
        return np.int64 if self.kind == "int" else np.float64

    @property
    def valid_range(self) -> tuple[float, float]:
        return self._valid

    def _valid_range(self) -> tuple[float, float]:
        """Values a call may use: ``valid`` if given; else integers from 1 (or ``low`` when
        it is below 1) upwards, positive floats (up to 1 for a fraction such as a density,
        whose profiling domain ends at 1), or ``[low, high]`` for a domain reaching 0."""
        if self.valid is not None:
            return float(self.valid[0]), float(self.valid[1])
        if self.kind == "int":
            return (1.0 if self.low >= 1 else float(self.low)), math.inf
        if self.low > 0:
            return math.ulp(0.0), (1.0 if self.high <= 1 else math.inf)
        return float(self.low), float(self.high)

    def invalid(self, v: np.ndarray) -> np.ndarray:
        """Vectorised: where values ``v`` are no valid call (not finite, outside the valid
        range, not an integer for an integer parameter); :meth:`check` says why."""
        lo, hi = self._valid
        bad = ~np.isfinite(v) | (v < lo) | (v > hi)
        if self.kind == "int":
            bad |= np.isfinite(v) & (v != np.round(v))
        return bad

    def check(self, value: Any, strict: bool = False) -> int | float:
        """Coerce and validate one value; raises :class:`ParameterError` naming the parameter.

        ``strict``: within the profiling domain (``low``..``high``, ``choices``) rather than
        the valid range."""
        if not strict:  # the common cases of a runtime call, without float round trips
            t = type(value)
            if t is int and self.kind == "int" and self._valid[0] <= value <= self._valid[1] \
                    and value < 2 ** 53:  # exact as a float
                return value
            if t is float and self.kind == "float" and self._valid[0] <= value <= \
                    self._valid[1] and value != math.inf:
                return value  # NaN fails the comparison and takes the checks below
        v = finite_number(self.name, value)
        if self.kind == "int":
            if v != round(v):
                raise ParameterError(f"parameter {self.name}: {value!r} is not an integer")
            v = int(round(v))
        if strict:
            if not (self.low <= v <= self.high):
                raise ParameterError(f"parameter {self.name}={value} is outside its profiling "
                                     f"domain [{self.low}, {self.high}]")
            if self.sampling == "choice" and v not in self.choices:
                raise ParameterError(f"parameter {self.name}={value} is not one of "
                                     f"{list(self.choices)}")
            return v
        lo, hi = self._valid
        if not (lo <= v <= hi):
            what = "a positive integer" if self.kind == "int" and lo == 1 and hi == math.inf \
                else f"in [{lo:g}, {hi:g}]" if lo > math.ulp(0.0) else f"in (0, {hi:g}]"
            raise ParameterError(f"parameter {self.name}={value} is invalid: it must be {what}")
        return v

    def to_dict(self) -> dict:
        d = {"name": self.name, "kind": self.kind, "range": [self.low, self.high],
             "sampling": self.sampling}
        if self.choices:
            d["choices"] = list(self.choices)
        if self.description:
            d["description"] = self.description
        return d


@dataclass
class Variant:
    """One implementation of a kernel.

    ``prepare(inputs, params)`` converts the kernel's numpy inputs into the variant's native
    form (not timed); ``run(state)`` performs the computation (timed) and returns the result;
    ``to_numpy(result)`` converts it back for checking.
    """

    name: str
    run: Callable[[Any], Any]
    prepare: Callable[[Mapping[str, Any], Mapping[str, Any]], Any] = lambda inputs, params: inputs
    to_numpy: Callable[[Any], np.ndarray] = np.asarray
    device: str = "cpu"  # "cpu" or "cuda"
    complexity: dict[str, str] | None = None  # overrides the kernel's complexity if given
    available: Callable[[], bool] = lambda: True
    supports: Callable[[Mapping[str, Any]], bool] | None = None  # extra domain restriction
    sync: Callable[[], None] | None = None  # called after run when timing (CUDA)
    description: str = ""
    # the parameters this variant's runtime depends on (its model's inputs); None: all of
    # the kernel's. A dense product ignores the operands' densities: its models should too.
    params: tuple[str, ...] | None = None

    def supports_point(self, params: Mapping[str, Any]) -> bool:
        return self.supports is None or bool(self.supports(params))


@dataclass
class Kernel:
    """A kernel: its typed parameters, complexity expressions and variants (implementations).

    ``name`` (a file-name-safe word) identifies it in model files and the catalog;
    ``params`` are :class:`Param` objects; ``complexity`` maps feature names to expressions
    over the parameters (``{"flops": "m*n*k"}``); ``make_inputs(params, rng)`` builds the
    operands, ``reference(inputs, params)`` the expected result; ``variants`` are
    :class:`Variant` objects. Optional: ``constraint`` (the joint domain),
    ``profile_constraint``, ``infer_params`` (operands -> parameters, for ``dispatch``; its
    docstring describes the operands), ``defaults`` (values ``dispatch`` cannot infer),
    ``fresh_inputs`` (profile on new data by default: its variants branch on the values).
    Register one with :func:`annpred.register_kernel`.
    """

    name: str
    params: list[Param]
    complexity: dict[str, str]
    make_inputs: Callable[[Mapping[str, Any], np.random.Generator], dict]
    reference: Callable[[Mapping[str, Any], Mapping[str, Any]], np.ndarray]
    variants: list[Variant]
    constraint: Callable[[Mapping[str, Any]], bool] | None = None  # joint domain, e.g. k <= n
    # points the profiler may sample (e.g. runs that stay under a second); calls may go beyond
    profile_constraint: Callable[[Mapping[str, Any]], bool] | None = None
    infer_params: Callable[..., dict] | None = None  # operands -> params (for dispatch)
    rtol: float = 1e-4
    atol: float = 1e-5
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)  # values for params dispatch can't infer
    # time each point on distinct input sets unless told otherwise (``annpred profile``):
    # for kernels whose variants branch on the data, which a repeated input lets the branch
    # predictor learn (see annpred.measure.protocol.input_sets)
    fresh_inputs: bool = False

    def __post_init__(self):
        names = self.param_names
        if len(set(names)) != len(names):
            raise ValueError(f"kernel {self.name}: duplicate parameter names")
        self._names = frozenset(names)  # for check_params, on a runtime's hot path
        for cname, text in self.all_complexities():
            _expr.parse(text, names)  # fail loudly at definition time
        vnames = [v.name for v in self.variants]
        if len(set(vnames)) != len(vnames):
            raise ValueError(f"kernel {self.name}: duplicate variant names")
        for v in self.variants:
            if v.params is not None:
                extra = [p for p in v.params if p not in names]
                if extra or not v.params:
                    raise ValueError(f"kernel {self.name}: variant {v.name} lists parameters "
                                     f"{list(v.params)}, not a non-empty subset of {names}")
                for cname, text in (v.complexity or {}).items():
                    if not set(_expr.free_symbols(text)) <= set(v.params):
                        raise ValueError(f"kernel {self.name}: variant {v.name}'s complexity "
                                         f"{cname}={text} uses parameters outside its "
                                         f"params {list(v.params)}")

    def model_params(self, variant: str | None) -> list[str]:
        """The parameters a model of ``variant`` takes as inputs (see :attr:`Variant.params`)."""
        names = self.param_names
        if variant is None:
            return names
        v = self.variant(variant)
        return names if v.params is None else [p for p in names if p in v.params]

    @property
    def param_names(self) -> list[str]:
        return [p.name for p in self.params]

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise ParameterError(f"kernel {self.name} has no parameter {name!r}; "
                             f"parameters: {', '.join(self.param_names)}")

    def all_complexities(self):
        yield from self.complexity.items()
        for v in self.variants:
            yield from (v.complexity or {}).items()

    def complexity_for(self, variant: str | None) -> dict[str, str]:
        if variant is not None:
            v = self.variant(variant)
            if v.complexity:
                return dict(v.complexity)
        return dict(self.complexity)

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise UnknownKernelError(
            f"kernel {self.name} has no variant {name!r}; variants: "
            + ", ".join(v.name for v in self.variants))

    def check_params(self, params: Mapping[str, Any], variant: str | None = None,
                     strict: bool = False) -> dict:
        """Validate a full parameter point; returns coerced values in spec order.

        Any valid value is accepted (:attr:`Param.valid_range`); ``strict`` keeps the point
        inside the profiling domain."""
        names = self._names
        unknown = () if params.keys() <= names else set(params) - names
        if unknown:
            raise ParameterError(f"kernel {self.name}: unknown parameter(s) "
                                 f"{', '.join(sorted(unknown))}; parameters: "
                                 f"{', '.join(self.param_names)}")
        out = {}
        for p in self.params:
            if p.name not in params:
                if p.name in self.defaults:
                    out[p.name] = p.check(self.defaults[p.name], strict)
                    continue
                raise ParameterError(f"kernel {self.name}: missing parameter {p.name!r} "
                                     f"(range [{p.low}, {p.high}])")
            out[p.name] = p.check(params[p.name], strict)
        if self.constraint is not None and not self.constraint(out):
            raise ParameterError(f"kernel {self.name}: parameters {out} violate the kernel's "
                                 f"constraint ({self.constraint.__doc__ or 'see the kernel spec'})")
        if variant is not None:
            v = self.variant(variant)
            if not v.supports_point(out):
                raise ParameterError(f"variant {self.name}/{variant} does not support {out} "
                                     f"({v.supports.__doc__ or 'see the kernel spec'})")
        return out

    def check_columns(self, columns: Mapping[str, Any],
                      first_line: int | None = None) -> dict[str, np.ndarray]:
        """Vectorised :meth:`check_params` for a batch: ``{param: 1-D array}`` -> float arrays;
        the first bad value is named by parameter and row: 0-based, or, with ``first_line``
        (the file line of row 0: 2 below a CSV header), its file line as CSV errors do."""
        def row(i: int) -> str:
            return f"row {i}" if first_line is None else f"row {i + first_line}"
        out = {}
        n = None
        for p in self.params:
            if p.name not in columns:
                if p.name in self.defaults:
                    continue
                raise ParameterError(f"kernel {self.name}: missing parameter column {p.name!r}")
            try:
                v = np.asarray(columns[p.name], dtype=float).ravel()
            except (TypeError, ValueError):
                raise ParameterError(f"parameter column {p.name}: not numeric") from None
            n = len(v) if n is None else n
            if len(v) != n:
                raise ParameterError(f"parameter columns differ in length ({p.name}: {len(v)})")
            bad = p.invalid(v)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                try:
                    p.check(v[i])
                except ParameterError as exc:
                    raise ParameterError(f"{row(i)}: {exc}") from None
                raise ParameterError(f"{row(i)}: parameter {p.name}: invalid value "
                                     f"{float(v[i])!r}")
            out[p.name] = v
        for name, value in self.defaults.items():
            if name not in out and n is not None:
                out[name] = np.full(n, float(self.param(name).check(value)))
        if self.constraint is not None and n:
            for i in range(n):
                if not self.constraint({k: out[k][i] for k in out}):
                    raise ParameterError(f"kernel {self.name}: {row(i)} violates the kernel's "
                                         f"constraint ({self.constraint.__doc__ or 'see the spec'})")
        return out

    def valid(self, params: Mapping[str, Any]) -> bool:
        return self.constraint is None or bool(self.constraint(params))

    def profilable(self, params: Mapping[str, Any]) -> bool:
        """Valid and inside the profiling budget (:attr:`profile_constraint`)."""
        return self.valid(params) and (self.profile_constraint is None
                                       or bool(self.profile_constraint(params)))

    def sample_points(self, n: int, seed: int = 0, variant: str | None = None,
                      max_tries: int = 200) -> list[dict]:
        """``n`` points drawn per parameter's sampling rule, respecting the kernel's (and the
        variant's) constraints, by rejection. Deterministic in ``seed``."""
        if n < 1:
            raise ParameterError(f"number of samples must be >= 1, got {n}")
        rng = np.random.default_rng(seed)
        v = self.variant(variant) if variant else None
        rows: list[dict] = []
        batch = max(2 * n, 64)
        for _ in range(max_tries):
            cols = {p.name: p.sample(rng, batch) for p in self.params}
            for i in range(batch):
                point = {k: (int(c[i]) if self.param(k).kind == "int" else float(c[i]))
                         for k, c in cols.items()}
                if self.profilable(point) and (v is None or v.supports_point(point)):
                    rows.append(point)
                    if len(rows) == n:
                        return rows
        raise ParameterError(f"kernel {self.name}: could not sample {n} valid points; "
                             "the constraint rejects almost everything")

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "parameters": [p.to_dict() for p in self.params],
            "complexity": dict(self.complexity),
            "fresh_inputs": self.fresh_inputs,
            "variants": [
                {"name": v.name, "device": v.device, "description": v.description,
                 **({"complexity": dict(v.complexity)} if v.complexity else {})}
                for v in self.variants
            ],
        }
