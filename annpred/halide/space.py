"""Schedule spaces: named knobs with finite choices, deterministic sampling, numeric encoding,
and a recorder that applies a schedule to Halide Funcs while writing it as Halide Python code.

A *schedule* is a plain ``dict`` knob name -> value (ints or short strings), so it can be stored
in a CSV row, a JSON file or a command line. Ordinal knobs (tile sizes, vector widths) are
encoded as ``log2`` of their value; categorical knobs (where a producer is computed, which loop
is parallel) are one-hot encoded, so that the network sees every choice as a number.
"""
from __future__ import annotations

import functools
import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import ParameterError

# The revision of how a schedule becomes the network's inputs (its canonical encoding and
# ``features``). A schedule model records it (``train.encoding_revision``) and is refused
# where it differs: the same schedule would reach it as other numbers. 2 since ca01638
# (whole-row tiles run in parallel are encoded as par=y, not par=tiles). Bump it whenever a
# change of encoding changes the inputs; files without the record load as the current one.
ENCODING_REVISION = 2


@dataclass(frozen=True)
class Knob:
    name: str
    choices: tuple
    categorical: bool = False
    description: str = ""
    codes: tuple = ()  # (value, number) pairs overriding log2(value), e.g. (0, 13) for "all"

    def features(self, value) -> dict[str, float]:
        if value not in self.choices:
            raise ParameterError(f"schedule knob {self.name}={value!r} is not one of "
                                 f"{list(self.choices)}")
        if self.categorical:
            # drop the first level (it is the all-zeros row) to keep the network small
            return {f"{self.name}_{c}": float(value == c) for c in self.choices[1:]}
        special = dict(self.codes)
        code = special[value] if value in special else math.log2(float(value))
        return {f"log2_{self.name}": float(code)}

    def feature_names(self) -> list[str]:
        if self.categorical:
            return [f"{self.name}_{c}" for c in self.choices[1:]]
        return [f"log2_{self.name}"]


@dataclass(frozen=True)
class Space:
    knobs: tuple[Knob, ...]
    valid: Callable[[Mapping[str, Any]], bool] = field(default=lambda s: True)
    # maps a schedule to the one representative of the schedules that apply the same Halide
    # directives (e.g. whole-row tiles: "parallel over tiles" is "parallel over rows"), so
    # that one schedule has one encoding: the network never sees the same program under two
    # feature vectors, and sampling does not spend candidates on duplicates
    canonical: Callable[[Mapping[str, Any]], dict] | None = None

    @property
    def names(self) -> list[str]:
        return [k.name for k in self.knobs]

    def knob(self, name: str) -> Knob:
        for k in self.knobs:
            if k.name == name:
                return k
        raise ParameterError(f"unknown schedule knob {name!r}; knobs: {', '.join(self.names)}")

    def size(self) -> int:
        """The number of knob combinations (valid or not, duplicates included); see
        :meth:`count` for the number of distinct schedules."""
        return math.prod(len(k.choices) for k in self.knobs)

    def count(self) -> int:
        """The number of distinct valid schedules (after :meth:`canonicalize`): the most
        :meth:`sample` can return. Enumerated once per space (under 0.2 s for the largest
        shipped space); a space of more than ``MAX_ENUMERATE`` combinations is not
        enumerated and its :meth:`size` is returned (an upper bound)."""
        return _count(self)

    def check(self, schedule: Mapping[str, Any]) -> dict:
        """Validate a schedule (all knobs present, values among the choices, constraints)."""
        missing = [n for n in self.names if n not in schedule]
        extra = [n for n in schedule if n not in self.names]
        if missing or extra:
            raise ParameterError(f"schedule has missing knobs {missing} / unknown knobs {extra}; "
                                 f"knobs: {', '.join(self.names)}")
        out = {}
        for k in self.knobs:
            v = schedule[k.name]
            if isinstance(v, (np.integer,)):
                v = int(v)
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if v not in k.choices:
                raise ParameterError(f"schedule knob {k.name}={v!r} is not one of "
                                     f"{list(k.choices)}")
            out[k.name] = v
        if not self.valid(out):
            raise ParameterError(f"schedule {out} violates the space's constraints")
        return self.canonicalize(out)

    def canonicalize(self, schedule: Mapping[str, Any]) -> dict:
        """The representative of ``schedule``'s equivalence class (itself by default)."""
        return dict(schedule) if self.canonical is None else self.canonical(schedule)

    def sample(self, n: int, seed: int = 0) -> list[dict]:
        """``n`` distinct valid schedules, deterministic in ``seed`` (fewer if the space is
        smaller than ``n``)."""
        rng = np.random.default_rng(seed)
        if n > 64:
            # never ask for more than the space holds: the loop below would otherwise try
            # 200 * n draws after it has found every schedule (minutes for n = 10**6); the
            # result is the same list, found sooner
            n = min(n, self.count())
        seen: set[str] = set()
        out: list[dict] = []
        tries = 0
        while len(out) < n and tries < 200 * max(n, 1):
            tries += 1
            s = {k.name: _py(k.choices[rng.integers(len(k.choices))]) for k in self.knobs}
            if not self.valid(s):
                continue
            s = self.canonicalize(s)
            key = key_of(s)
            if key in seen:
                continue
            seen.add(key)
            out.append(s)
        return out

    def features(self, schedule: Mapping[str, Any]) -> dict[str, float]:
        f: dict[str, float] = {}
        if self.canonical is not None:
            schedule = self.canonical(schedule)
        for k in self.knobs:
            f.update(k.features(schedule[k.name]))
        return f

    def feature_names(self) -> list[str]:
        return [n for k in self.knobs for n in k.feature_names()]


MAX_ENUMERATE = 2_000_000  # knob combinations :meth:`Space.count` enumerates at most


@functools.lru_cache(maxsize=64)
def _count(space: Space) -> int:
    if space.size() > MAX_ENUMERATE:
        return space.size()
    seen = set()
    for combo in itertools.product(*(k.choices for k in space.knobs)):
        s = {k.name: _py(v) for k, v in zip(space.knobs, combo)}
        if space.valid(s):
            seen.add(key_of(space.canonicalize(s)))
    return len(seen)


def _py(v):
    return v.item() if isinstance(v, np.generic) else v


def key_of(schedule: Mapping[str, Any]) -> str:
    """A stable text key of a schedule (sorted JSON), used in CSVs and for de-duplication."""
    return json.dumps({k: _py(v) for k, v in sorted(schedule.items())}, separators=(",", ":"))


def from_key(key: str) -> dict:
    return json.loads(key)


# --------------------------------------------------------------------------------------------
# Recorder: apply schedule directives to real Funcs and write the same calls as Python code.

class Recorder:
    """Collects Halide scheduling calls as code while applying them.

    ``rec.func(f)`` wraps a ``hl.Func``; calling scheduling methods on the wrapper applies them
    to ``f`` and appends the equivalent Python line. Arguments may be ``hl.Var``, ``hl.RVar``,
    wrapped Funcs, ints, lists of those, or ``hl.TailStrategy`` members.
    """

    def __init__(self):
        self.lines: list[str] = []
        self.vars: dict[str, str] = {}  # name -> declaration

    def func(self, f, name: str | None = None) -> "_FuncRec":
        return _FuncRec(self, f, name or f.name().split("$")[0])

    def var(self, name: str):
        import halide as hl

        self.vars.setdefault(name, f'{name} = hl.Var("{name}")')
        return hl.Var(name)

    def code(self, header: str = "") -> str:
        decl = [self.vars[k] for k in sorted(self.vars)]
        parts = ([header] if header else []) + decl + self.lines
        return "\n".join(parts) + "\n"


class _FuncRec:
    def __init__(self, rec: Recorder, target, text: str):
        self._rec, self._target, self._text = rec, target, text
        self._line: list[str] | None = None

    @property
    def raw(self):
        return self._target

    def update(self, i: int = 0):
        return _FuncRec(self._rec, self._target.update(i), f"{self._text}.update({i})")

    def __getattr__(self, meth: str):
        real = getattr(self._target, meth)

        def call(*args):
            real(*[_unwrap(a) for a in args])
            self._rec.lines.append(f"{self._text}.{meth}({', '.join(_code(a) for a in args)})")
            return self
        return call


def _unwrap(a):
    if isinstance(a, _FuncRec):
        return a.raw
    if isinstance(a, (list, tuple)):
        return [_unwrap(x) for x in a]
    return a


def _code(a) -> str:
    import halide as hl

    if isinstance(a, _FuncRec):
        return a._text
    if isinstance(a, (list, tuple)):
        return "[" + ", ".join(_code(x) for x in a) + "]"
    if isinstance(a, (hl.Var, hl.RVar)):
        return a.name().replace("$", ".")  # RVar "k$x" is k.x of the RDom k
    if isinstance(a, hl.TailStrategy):
        return f"hl.TailStrategy.{a.name}"
    if isinstance(a, (bool, int, float, str)):
        return repr(a)
    return repr(a)
