"""What a decision returns (:class:`Choice`, :class:`Candidate`) and the process-wide
decision configuration (policy, range margin, fallback defaults).

Guardrails: a candidate is *trusted* when it has a model and the point lies inside that
model's training range, widened by a margin of 5% of its width in log scale
(:func:`set_margin`; random sampling never reaches a domain's ends, so without it a dense
operand, density 1, would count as an extrapolation). By default (``policy="strict"``) a
decision is taken from the predictions only when every candidate is trusted; otherwise the
choice falls back to a configured default (:func:`set_default`, or ``default=``; without
configuration the kernel's first catalog variant on the most threads). ``policy="trusted"``
picks the best trusted candidate instead, ``policy="extrapolate"`` trusts every model.
"""
from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple

from annpred.errors import ParameterError, UnknownKernelError
from annpred.runtime import caches
from annpred.runtime.ranges import RANGE_MARGIN
from annpred.spec import hardware as hw

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


def as_candidates(candidates) -> tuple:
    """``candidates`` of ``choose``/``dispatch`` read once into a tuple (so that a generator
    works); a single :class:`Candidate` or ``"variant@hardware"`` is a list of one."""
    if type(candidates) is tuple:
        return candidates
    if isinstance(candidates, (str, Candidate)):
        return (candidates,)
    try:
        return tuple(candidates)
    except TypeError:
        raise ParameterError("candidates must be an iterable of 'variant@hardware' strings or "
                             f"(variant, hardware) pairs, got {type(candidates).__name__}"
                             ) from None


class NoCandidatesError(UnknownKernelError):
    """No model of the kernel exists for any hardware present on this machine."""


class Choice:
    """The outcome of :func:`choose`.

    ``predicted`` maps every candidate to its predicted seconds (``None`` without a model;
    CUDA candidates include the host-device transfer when :func:`dispatch` knew the bytes),
    ``in_range`` to whether the point lies inside that model's training range (widened by
    the margin of :func:`set_margin`).
    ``fallback`` is true when the choice is the configured default rather than the
    prediction's best; ``reason`` then says why.

    A decision stays cheap because what only a reader needs is built on first access:
    ``predicted`` and ``in_range`` may be given as lists in the plan's candidate order and
    ``reason`` as a function returning the text. A Choice is read-only: ``choose`` returns
    the same object for a call shape seen before, so its mappings (``params``,
    ``predicted``, ``in_range``, ``transfer_s``, ``machine_match``, ``adapted``) are
    read-only views (``dict(choice.params)`` is a copy to change), and its attributes must
    not be reassigned.
    """

    __slots__ = ("kernel", "params", "variant", "hardware", "_predicted", "_in_range",
                 "fallback", "_reason", "predicted_best", "unsupported", "transfer_s",
                 "policy", "unsure", "_plan", "machine_match", "adapted")
    _FIELDS = ("kernel", "params", "variant", "hardware", "predicted", "in_range", "fallback",
               "reason", "predicted_best", "unsupported", "transfer_s", "policy", "unsure",
               "machine_match", "adapted")
    __hash__ = None  # type: ignore[assignment]  # compared by value, like a dataclass

    def __init__(self, kernel: str, params: dict, variant: str, hardware: str,
                 predicted, in_range, fallback: bool = False, reason="",
                 predicted_best: Candidate | None = None, unsupported: tuple = (),
                 transfer_s: dict | None = None, policy: str = "strict",
                 unsure: bool = False, _plan: Any = None, machine_match: dict | None = None,
                 adapted: dict | None = None):
        self.kernel, self.variant, self.hardware = kernel, variant, hardware
        self.params = params if type(params) is MappingProxyType else MappingProxyType(params)
        self._predicted, self._in_range = predicted, in_range
        self.fallback, self._reason = fallback, reason
        self.predicted_best = predicted_best  # argmin of the predictions, trusted or not
        self.unsupported = unsupported  # candidates whose variant does not support the point
        self.transfer_s = _read_only(transfer_s)  # CUDA candidates: transfer seconds
        self.policy = policy
        self.unsure = unsure  # the best two candidates' prediction intervals overlap too much
        self._plan = _plan
        # per candidate: measured on this machine (None: no model); adapted by a calibration
        self.machine_match = _read_only(machine_match)
        self.adapted = _read_only(adapted)

    @property
    def predicted(self) -> Mapping:
        p = self._predicted
        if type(p) is not MappingProxyType:
            if not isinstance(p, Mapping):
                p = {c: (s if s == s and s != math.inf else None)
                     for c, s in zip(self._plan.cands, p)}
            p = self._predicted = MappingProxyType(dict(p))
        return p

    @property
    def in_range(self) -> Mapping:
        r = self._in_range
        if type(r) is not MappingProxyType:
            r = self._in_range = MappingProxyType(
                dict(r) if isinstance(r, Mapping) else dict(zip(self._plan.cands, r)))
        return r

    def __deepcopy__(self, memo) -> "Choice":
        return self  # read-only (a deep copy of its read-only views is not possible)

    @property
    def reason(self) -> str:
        r = self._reason
        if not isinstance(r, str):
            r = self._reason = r()
        return r

    def __eq__(self, other) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._FIELDS)

    def __repr__(self) -> str:
        def shown(v):  # a read-only view as the dict it shows
            return dict(v) if type(v) is MappingProxyType else v
        return "Choice(" + ", ".join(f"{f}={shown(getattr(self, f))!r}"
                                     for f in self._FIELDS) + ")"

    @property
    def intervals(self) -> dict:
        """Candidate -> (low, high) seconds at each model's nominal coverage (None without
        one)."""
        plan = self._plan
        out = {}
        for i, (c, s) in enumerate(self.predicted.items()):
            iv = None if plan is None or s is None else plan.iv[i]
            out[c] = None if iv is None else (s * math.exp(iv[0]), s * math.exp(iv[1]))
        return out

    @property
    def provenance(self) -> dict:
        """Candidate -> where its model comes from (file, user/shipped/custom, when and under
        what load its data was measured); None without a model."""
        plan = self._plan
        out = {c: None for c in self.predicted}
        if plan is not None:
            for j, m in zip(plan.model_list, plan.models):
                out[plan.cands[j]] = m.provenance()
        return out

    @property
    def sources(self) -> dict:
        """Hardware id -> the one model source its candidates came from."""
        return {c.hardware: p["source"] for c, p in self.provenance.items() if p}

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
            "unsure": self.unsure,
            "intervals": {str(c): None if iv is None else list(iv)
                          for c, iv in self.intervals.items()},
            "sources": self.sources,
            "provenance": {str(c): p for c, p in self.provenance.items()},
            "machine_match": {str(c): v for c, v in self.machine_match.items()},
            "adapted": {str(c): bool(v) for c, v in self.adapted.items()},
        }

    def __str__(self) -> str:
        s = f"{self.kernel}: {self.variant} on {self.hardware}"
        if self.fallback:
            s += f" (fallback: {self.reason})"
        return s


_EMPTY = MappingProxyType({})


def _read_only(d) -> Mapping:
    if not d:
        return _EMPTY
    return d if type(d) is MappingProxyType else MappingProxyType(d)


# -- configuration ------------------------------------------------------------------------
_DEFAULTS: dict[str, tuple[str, str | None]] = {}
_CONFIG = {"policy": "strict", "margin": RANGE_MARGIN, "unsure_overlap": 0.5,
           "on_unsure": "choose"}
ON_UNSURE = ("choose", "fallback")
DEFAULT_MARGIN = 0.05


def set_default(kernel: str, variant: str | None, hardware: str | None = None) -> None:
    """Configure the fallback of ``kernel`` (``variant`` None removes it). ``hardware`` None
    means: that variant's candidate with the most threads.

    The kernel must be known (the catalog, ``ANNPRED_KERNELS`` or :func:`~annpred.
    register_kernel`), the variant one of its variants, and ``hardware`` a hardware id
    (letters, digits, ``. _ + -``); otherwise an :class:`~annpred.errors.AnnpredError`
    names the problem here, not in every later decision. Whether ``hardware`` can serve
    as a fallback depends on the candidates of a decision (a candidate's hardware, or one
    present here) and is checked there, naming this call."""
    from annpred.spec.catalog import get_kernel
    from annpred.validate import safe_name, shown

    kname = kernel if isinstance(kernel, str) else getattr(kernel, "name", None)
    if not isinstance(kname, str):
        raise UnknownKernelError(f"set_default: kernel must be a name or a Kernel, got "
                                 f"{shown(kernel)}")
    if variant is None:
        if hardware is not None:
            raise ParameterError(f"set_default({kname!r}, None, {hardware!r}): a hardware "
                                 "without a variant (None removes the default)")
        _DEFAULTS.pop(kname, None)
        caches.clear_decisions()
        return
    try:
        spec = get_kernel(kname)
    except UnknownKernelError as exc:
        raise UnknownKernelError(f"set_default: {exc} (a kernel known only from its models "
                                 "takes default= per call)") from None
    safe_name(variant, f"set_default({kname!r}, ...): variant", ParameterError)
    try:
        spec.variant(variant)
    except UnknownKernelError as exc:
        raise UnknownKernelError(f"set_default: {exc}") from None
    if hardware is not None:
        safe_name(hardware, f"set_default({kname!r}, {variant!r}, ...): hardware",
                  ParameterError)
    _DEFAULTS[kname] = (variant, hardware)
    caches.clear_decisions()


def set_policy(policy: str) -> None:
    """The process-wide default policy: ``strict``, ``trusted`` or ``extrapolate``."""
    if policy not in POLICIES:
        raise ParameterError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    _CONFIG["policy"] = policy
    caches.clear_decisions()


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
    caches.clear_plans()


def set_unsure(overlap: float | None = None, action: str | None = None) -> None:
    """When is a decision *unsure*, and what then. The best two candidates' prediction
    intervals (log scale) overlapping by more than ``overlap`` of the narrower one's width
    makes the choice ``unsure``; ``action="choose"`` (default) still takes the best and says
    so, ``"fallback"`` falls back to the default as for an untrusted candidate."""
    if overlap is not None:
        overlap = float(overlap)
        if not 0 <= overlap <= 1:
            raise ParameterError(f"overlap must be in [0, 1], got {overlap}")
        _CONFIG["unsure_overlap"] = overlap
    if action is not None:
        if action not in ON_UNSURE:
            raise ParameterError(f"action must be one of {', '.join(ON_UNSURE)}, got {action!r}")
        _CONFIG["on_unsure"] = action
    caches.clear_decisions()
