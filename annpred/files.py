"""Atomic writes: every file annpred writes (models, reports, exports) goes through here.

A file is written to a temporary ``.<name>.<pid>.<random>.tmp`` beside it and renamed over
it, so a reader sees the old file or the new one, never half of one. The temporary file is
removed on any error; one left by a killed process (SIGKILL cannot be caught) is removed by
the next write to the same file once its process is gone. New files get the permissions of
the umask (like ``open``), a replaced regular file keeps its permission bits (not
setuid/setgid/sticky; a symlink at the path lends none). :func:`atomic_write_many` writes
several files all or none. Errors of the file system become :class:`annpred.errors.
AnnpredError` messages naming the file.
"""
from __future__ import annotations

import functools
import os
import re
import stat
import tempfile
import threading
from pathlib import Path
from typing import Mapping

from annpred.errors import AnnpredError


class WriteError(AnnpredError, OSError):
    """A file could not be written (the message names it); nothing was left behind."""


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask, read without setting it where the system reports it (Linux):
    setting it to read it changes it for every other thread meanwhile (a file another thread
    of a server creates then would get 022 instead of, say, 077)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _new_umask_lock() -> None:  # in a forked child: another thread may have held it
    global _UMASK_LOCK
    _UMASK_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_umask_lock)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(path: str | os.PathLike) -> int:
    """Remove temporary files of ``path`` left by killed writers; returns how many."""
    path = Path(path)
    pat = re.compile(r"^\." + re.escape(path.name) + r"\.(\d+)\.[^.]+\.tmp$")
    removed = 0
    try:
        names = os.listdir(path.parent)
    except OSError:
        return 0
    for name in names:
        m = pat.match(name)
        if m and not _alive(int(m.group(1))):
            try:
                os.unlink(path.parent / name)
                removed += 1
            except OSError:
                pass
    return removed


def _mode_for(path: Path) -> int:
    """The permissions of the new file: those of the regular file it replaces (``lstat``: a
    symlink planted at ``path`` lends nothing; setuid, setgid and sticky bits are never
    kept), else the umask's default for a new file."""
    try:
        st = os.lstat(path)
    except OSError:
        st = None
    if st is not None and stat.S_ISREG(st.st_mode):
        return st.st_mode & 0o777
    return 0o666 & ~_umask()


def _fail(path: Path, exc: OSError) -> WriteError:
    return WriteError(f"cannot write {path}: {exc.strerror or exc}")


def _write_temp(path: Path, data: bytes) -> str:
    """Write ``data`` into a new temporary file beside ``path``; returns its name."""
    if path.is_dir():
        raise WriteError(f"cannot write {path}: it is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fail(path, exc) from None
    remove_stale_temps(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                                   suffix=".tmp")
    except OSError as exc:
        raise _fail(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _mode_for(path))
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as exc:
        _unlink(tmp)
        if isinstance(exc, OSError):
            raise _fail(path, exc) from None
        raise
    return tmp


def _unlink(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    path = Path(path)
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException as exc:
        _unlink(tmp)
        if isinstance(exc, OSError):
            raise _fail(path, exc) from None
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_many(files: Mapping[str | os.PathLike, str | bytes]) -> list[Path]:
    """Write several files all or none: every temporary file is written first; only when
    all succeeded are they renamed into place (renames within a folder do not fail short of
    the path turning into a directory meanwhile)."""
    temps: list[tuple[str, Path]] = []
    new_dirs = []  # folders this call creates, removed again (when empty) on failure
    for path in files:
        d = Path(path).absolute().parent
        while not d.exists() and d != d.parent:
            new_dirs.append(d)
            d = d.parent
    done = False
    try:
        for path, data in files.items():
            if isinstance(data, str):
                data = data.encode("utf-8")
            temps.append((_write_temp(Path(path), data), Path(path)))
        for tmp, path in temps:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise _fail(path, exc) from None
        done = True
    finally:
        for tmp, _ in temps:
            if os.path.exists(tmp):
                _unlink(tmp)
        if not done:
            for d in sorted(set(new_dirs), key=lambda p: -len(p.parts)):
                try:
                    d.rmdir()
                except OSError:
                    pass
    return [p for _, p in temps]


def frame_key(df, *config) -> str:
    """A short hash of a job's input rows, its configuration, the catalog's complexity
    expressions of the kernels in the rows and annpred's code (:func:`code_revision`): a
    checkpoint made from anything different is not resumed (see :class:`JsonlCheckpoint`)."""
    import hashlib

    import pandas as pd

    h = hashlib.sha256(pd.util.hash_pandas_object(df, index=False).values.tobytes())
    h.update(repr((config, _catalog_text(df), code_revision())).encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def code_revision() -> str:
    """A short hash of annpred's own source (the package and its kernel catalog), read once
    per process: checkpoint keys include it, so that results computed by other code (an
    upgrade, an edit) are computed again instead of being resumed into a new report. The
    version string alone cannot tell (it changes only at releases)."""
    import hashlib

    import annpred

    roots = [Path(annpred.__file__).resolve().parent]
    try:
        import annpred.kernels as catalog

        roots += [Path(p).resolve() for p in catalog.__path__]
    except ImportError:  # pragma: no cover - the catalog ships with annpred
        pass
    h = hashlib.sha256()
    for root in dict.fromkeys(roots):
        for f in sorted(root.rglob("*.py")):
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def _catalog_text(df) -> list:
    from annpred.errors import UnknownKernelError
    from annpred.spec.catalog import get_kernel

    out = []
    if not {"kernel", "variant"} <= set(df.columns):
        return out
    for kernel, variant in sorted(set(zip(df["kernel"].astype(str), df["variant"].astype(str)))):
        try:
            comp = get_kernel(kernel).complexity_for(variant)
            out.append((kernel, variant, sorted(comp.items())))
        except UnknownKernelError:
            continue
    return out


MAX_CHECKPOINT_LINE = 64 << 20  # one record: a model file (kB) or a study's predictions


class JsonlCheckpoint:
    """Finished pieces of a long job, appended as JSON lines tagged with ``key`` (a hash of
    the job's data and configuration): a rerun reads back the records of the same key and
    skips that work, so an interrupted job resumes. A torn last line (a killed run), records
    of another key and lines that are not bounded JSON (nested more than
    :data:`annpred.model.schema.MAX_DEPTH` levels, integers of more digits than
    :func:`annpred.validate.json_int` allows, longer than :data:`MAX_CHECKPOINT_LINE`) are
    ignored; ``ignored`` counts the latter. The caller checks the records' fields. A symlink,
    or anything but a regular file, at the path is refused (:class:`WriteError`), on reading
    and on appending (``O_NOFOLLOW``). Appends are flushed per call: what was reported done
    is on disk."""

    def __init__(self, path: str | os.PathLike, key: str):
        self.path, self.key = Path(path), key
        self.ignored = 0

    def _open(self, flags: int) -> int:
        try:
            fd = os.open(self.path, flags | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0), 0o666)
        except OSError as exc:
            if os.path.islink(self.path):
                raise WriteError(f"checkpoint {self.path} is a symbolic link; refusing to use "
                                 "it (remove it to start afresh)") from None
            raise _fail(self.path, exc) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise WriteError(f"checkpoint {self.path} is not a regular file; refusing to use "
                             "it")
        return fd

    def load(self) -> list[dict]:
        import json

        from annpred.model.schema import MAX_DEPTH, depth_ok
        from annpred.validate import json_int

        out: list[dict] = []
        if not os.path.lexists(self.path):
            return out
        with os.fdopen(self._open(os.O_RDONLY), "rb") as f:
            while True:
                line = f.readline(MAX_CHECKPOINT_LINE + 1)
                if not line:
                    break
                if len(line) > MAX_CHECKPOINT_LINE:     # skip the rest of an overlong line
                    while line and not line.endswith(b"\n"):
                        line = f.readline(MAX_CHECKPOINT_LINE)
                    self.ignored += 1
                    continue
                try:
                    text = line.decode("utf-8")
                    deep = text.count("[") + text.count("{") > MAX_DEPTH and \
                        not depth_ok(text)       # (the count is cheap, the walk is not)
                    d = None if deep else json.loads(text, parse_int=json_int)
                except (ValueError, RecursionError, MemoryError):
                    d = None
                if not isinstance(d, dict):
                    self.ignored += line.endswith(b"\n")   # a torn last line is expected
                    continue
                if d.get("key") == self.key:
                    out.append(d)
        return out

    def append(self, records) -> None:
        import json

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = self._open(os.O_RDWR | os.O_APPEND | os.O_CREAT)
        try:
            with os.fdopen(fd, "ab") as f:
                end = os.fstat(fd).st_size   # a torn last line (a killed run) is ended first,
                if end > 0 and os.pread(fd, 1, end - 1) != b"\n":   # so that it costs only
                    f.write(b"\n")                                  # itself
                for r in records:
                    f.write((json.dumps({"key": self.key, **r}, default=float) + "\n")
                            .encode("utf-8"))
                f.flush()
        except OSError as exc:
            raise _fail(self.path, exc) from None


_KINDS = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "dict": (dict,),
          "list": (list,), "None": (type(None),)}


def fits_dataclass(d, cls, skip: tuple = ()) -> bool:
    """Whether ``d`` (a checkpoint record's object) can be given to dataclass ``cls``: only
    its fields, every field without a default, each value of its annotated type (``str``,
    ``int``, ``float``, ``bool``, ``dict``, ``list``, ``None`` and unions of them; a bool is no
    number), a dict's keys strings and its values strings or numbers. ``skip``: fields the
    caller sets itself (not checked)."""
    import dataclasses

    if not isinstance(d, dict):
        return False
    fs = {f.name: f for f in dataclasses.fields(cls)}
    need = {n for n, f in fs.items() if n not in skip and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING}
    if not need <= set(d) or not set(d) <= set(fs):
        return False
    for k, v in d.items():
        if k in skip:
            continue
        kinds = [_KINDS.get(t.strip()) for t in str(fs[k].type).split("|")]
        if None in kinds or (isinstance(v, bool) and (bool,) not in kinds) or not any(
                isinstance(v, t) for t in kinds):
            return False
        if isinstance(v, dict) and not all(isinstance(a, str) and isinstance(
                b, (str, int, float)) for a, b in v.items()):
            return False
    return True
