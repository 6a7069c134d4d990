"""One validation layer for what users hand to annpred: names, numbers and paths.

Every entry point (the CLI commands and the Python API) checks its inputs here, so a bad
value is refused with one :mod:`annpred.errors` message naming it, before any work is done
and before anything is written. Expressions are checked by :mod:`annpred.spec.expr` (which
bounds their cost). This module imports nothing of annpred but :mod:`annpred.errors`.
"""
from __future__ import annotations

import errno
import math
import os
import re
import stat
from pathlib import Path
from typing import Iterable, Sequence

from annpred.errors import DataError, ParameterError

MAX_NAME = 100  # kernel, variant, hardware, column and feature names
MAX_SEED = 2**32 - 1
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def shown(v) -> str:
    """A value for an error message, bounded: a YAML alias can make a list of millions of
    elements out of a few lines, and a string may be a megabyte long."""
    if v is None or isinstance(v, (bool, int, float, str)):
        r = repr(v) if not isinstance(v, int) or abs(v) < 10 ** 30 else \
            f"an integer of {len(str(abs(v)))} digits"
        return r if len(r) <= 60 else r[:50] + "..." + r[-6:]
    return f"a {type(v).__name__}"


def safe_name(name, what: str, error=DataError) -> str:
    """A name that becomes a path component (kernel, variant, hardware): letters, digits,
    ``. _ + -``, not starting with a punctuation character, at most 100 characters."""
    if not isinstance(name, str) or not _SAFE.fullmatch(name) or len(name) > MAX_NAME \
            or name in (".", "..") or name != name.strip():
        raise error(f"{what} name {shown(name)} cannot be used in a file name (letters, "
                    f"digits, '.', '_', '+', '-'; at most {MAX_NAME} characters)")
    return name


def column_name(name, what: str = "column", error=DataError) -> str:
    """A CSV column or feature name: printable text without control characters, at most
    100 characters (it may reach error messages, JSON and C comments, never code)."""
    if not isinstance(name, str) or not name.strip():
        raise error(f"{what} name {shown(name)} is empty or not text")
    if len(name) > MAX_NAME:
        raise error(f"{what} name {shown(name)} is longer than {MAX_NAME} characters")
    if any(not c.isprintable() for c in name):
        raise error(f"{what} name {shown(name)} holds control or invisible characters")
    return name


def feature_list(features: Sequence[str] | None, target: str | None = None,
                 error=ParameterError) -> list[str] | None:
    """Feature column names: valid, unique, and not the target column."""
    if features is None:
        return None
    if isinstance(features, str):
        features = [features]
    feats = [column_name(f, "feature", error) for f in features]
    if not feats:
        raise error("--features is empty")
    seen = set()
    for f in feats:
        if f in seen:
            raise error(f"feature {f!r} is listed twice")
        seen.add(f)
    if target is not None and target in seen:
        raise error(f"the target column {target!r} cannot also be a feature")
    return feats


def integer(value, what: str, lo: int | None = None, hi: int | None = None,
            error=ParameterError) -> int:
    """An integer within [lo, hi] (bools and non-integral floats refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and (not math.isfinite(value) or value != int(value))):
        raise error(f"{what} must be an integer, got {shown(value)}")
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = (f"between {lo} and {hi}" if lo is not None and hi is not None
               else f">= {lo}" if lo is not None else f"<= {hi}")
        raise error(f"{what} must be {rng}, got {value}")
    return value


def seed(value, what: str = "--seed") -> int:
    return integer(value, what, 0, MAX_SEED)


def number(value, what: str, *, positive: bool = False, max_abs: float = 1e300,
           error=ParameterError) -> float:
    """A finite number (optionally > 0) of magnitude at most ``max_abs``."""
    if isinstance(value, bool):
        raise error(f"{what} must be a number, got {shown(value)}")
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise error(f"{what} must be a number, got {shown(value)}") from None
    if not math.isfinite(v) or abs(v) > max_abs:
        raise error(f"{what} must be a finite number, got {shown(value)}")
    if positive and v <= 0:
        raise error(f"{what} must be positive, got {v:g}")
    return v


MAX_JSON_INT_DIGITS = 20  # JSON files annpred reads: models, descriptions, caches


def json_int(text: str) -> int:
    """``parse_int`` for :func:`json.loads`: an integer of at most ``MAX_JSON_INT_DIGITS``
    digits (Python refuses more than 4300 with a traceback; we refuse far fewer, early)."""
    if len(text.lstrip("-")) > MAX_JSON_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits (at most "
                         f"{MAX_JSON_INT_DIGITS})")
    return int(text)


def not_empty(value, what: str, error=ParameterError):
    """An option's text, refused when given but empty or blank (``--hardware ''`` was taken
    for "not given" and silently fell back to the default); None (not given) passes."""
    if value is not None and not str(value).strip():
        raise error(f"{what}: empty value (leave the option out for its default)")
    return value


def unique(items: Iterable[str], what: str, error=ParameterError) -> list[str]:
    out, seen = [], set()
    for x in items:
        if x in seen:
            raise error(f"{what} {x!r} is given twice")
        seen.add(x)
        out.append(x)
    return out


# -- paths ----------------------------------------------------------------------------

def _first_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def output_dir(path, what: str = "--out") -> Path:
    """A directory annpred may create files in: existing and writable, or creatable (its
    nearest existing ancestor is a writable directory, not a file or a pseudo file system).
    Checked before any work so that nothing is written when it is unusable."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise ParameterError(f"{what}: no directory given")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ParameterError(f"{what} {p} exists and is not a directory")
    base = _first_existing(p.absolute())
    if not base.is_dir():
        raise ParameterError(f"{what} {p}: {base} is a file, not a directory")
    if str(base.resolve()).split(os.sep)[1:2] in (["proc"], ["sys"]):
        raise ParameterError(f"{what} {p} is on a pseudo file system ({base})")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ParameterError(f"{what} {p}: {base} is not writable")
    return p


def output_file(path, what: str = "--output") -> Path:
    """A file annpred may (atomically) write: not a directory, in a usable directory."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise ParameterError(f"{what}: no file given")
    if str(path) == "-":  # the usual "standard output": a file named - would surprise
        raise ParameterError(f"{what} -: standard output is not an output here; give a file "
                             "name (use --json to print results)")
    p = Path(path)
    try:
        os.stat(p)
    except OSError as exc:  # a symlink loop: exists() says False, every open fails later
        if exc.errno == errno.ELOOP:
            raise ParameterError(f"{what} {p}: {exc.strerror}") from None
    if p.is_dir():
        raise ParameterError(f"{what} {p} is a directory; give a file name")
    if p.exists() and not p.is_file():
        raise ParameterError(f"{what} {p} exists and is not a regular file")
    output_dir(p.parent if str(p.parent) else Path("."), what)
    return p


def regular_file(path, what: str, max_bytes: int, error=DataError) -> int:
    """Check that ``path`` is a regular file (symlinks followed) of at most ``max_bytes``,
    without opening it (a FIFO or device would block or never end); returns its size."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise error(f"{what} {path}: cannot read ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{what} {path} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {path} is not a regular file (a device, FIFO or socket)")
    if st.st_size > max_bytes:
        raise error(f"{what} {path} is {st.st_size:,} bytes; the limit is {max_bytes:,}")
    return st.st_size


def read_limited(path, what: str, max_bytes: int, error=DataError) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (checked before and while
    reading, so a file growing meanwhile is refused too)."""
    regular_file(path, what, max_bytes, error)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise error(f"{what} {path}: cannot read ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped between stat and open
            raise error(f"{what} {path} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{what} {path}: cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise error(f"{what} {path} is larger than {max_bytes:,} bytes")
    return data
