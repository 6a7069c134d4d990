"""The kernel catalog: the ``kernels`` package shipped with annpred, plus user kernels.

Users add kernels without editing annpred, either by calling :func:`register_kernel` or by
pointing ``ANNPRED_KERNELS`` at Python files or folders (``os.pathsep``-separated) whose
modules define ``KERNEL`` (a :class:`~annpred.spec.kernel.Kernel`) or ``KERNELS`` (a list).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
import threading
from pathlib import Path

from annpred.errors import ParameterError, UnknownKernelError
from annpred.spec.kernel import Kernel
from annpred.validate import safe_name, shown

_REGISTRY: dict[str, Kernel] = {}
_LOADED = False
_LOADING = threading.local()  # this thread is loading (a kernel file that registers)
_LOAD_LOCK = threading.RLock()  # other threads wait until the catalog is whole
_LISTENERS: list = []  # called after the registry changed (the runtime's caches forget it)


def on_change(listener) -> None:
    """Call ``listener()`` whenever :func:`register_kernel` adds or replaces a kernel."""
    if listener not in _LISTENERS:
        _LISTENERS.append(listener)


def register_kernel(kernel: Kernel, replace: bool = False) -> Kernel:
    """Add ``kernel`` (a :class:`~annpred.spec.kernel.Kernel`) to the catalog under its
    name, so that ``choose``, ``dispatch``, ``predict`` and the CLI know it; returns it.

    Its name and its variants' names become file names (``<hardware>/<kernel>/<variant>.
    json``), so they must be letters, digits, ``. _ + -``. A kernel of the same name is
    refused unless ``replace``; replacing one makes later decisions use the new kernel
    (the decision caches are cleared). Raises :class:`~annpred.errors.ParameterError`."""
    if not isinstance(kernel, Kernel):
        raise ParameterError(f"register_kernel: kernel must be an annpred.Kernel, got "
                             f"{shown(kernel)}")
    safe_name(kernel.name, "register_kernel: kernel", ParameterError)
    for v in kernel.variants:
        safe_name(v.name, f"register_kernel: kernel {kernel.name}: variant", ParameterError)
    _load()  # the catalog first: a user kernel must not be replaced by it silently later
    old = _REGISTRY.get(kernel.name)
    if old is kernel:
        return kernel
    if old is not None and not replace:
        raise ParameterError(f"register_kernel: kernel {kernel.name!r} is already "
                             "registered (pass replace=True to replace it)")
    _REGISTRY[kernel.name] = kernel
    for listener in _LISTENERS:
        listener()
    return kernel


def _take(module) -> None:
    found = []
    if isinstance(getattr(module, "KERNEL", None), Kernel):
        found.append(module.KERNEL)
    found.extend(k for k in getattr(module, "KERNELS", []) if isinstance(k, Kernel))
    for k in found:
        register_kernel(k, replace=True)


def _load_file(path: Path) -> None:
    name = "annpred_user_kernel_" + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UnknownKernelError(f"cannot import kernel file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _take(module)


def _load() -> None:
    if _LOADED:
        return
    with _LOAD_LOCK:
        if _LOADED or getattr(_LOADING, "on", False):
            return
        _LOADING.on = True
        try:
            _load_all()
        finally:  # loaded once, even when a file failed (its error was raised once)
            _LOADING.on = False
            _set_loaded()


def _set_loaded() -> None:
    global _LOADED
    _LOADED = True


def _new_load_lock() -> None:  # in a forked child: a thread of the parent may have held it
    global _LOAD_LOCK
    _LOAD_LOCK = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_load_lock)


def _load_all() -> None:
    try:
        import annpred.kernels as pkg
    except ImportError:  # pragma: no cover - the catalog ships with annpred
        pkg = None
    if pkg is not None:
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
            if info.name.startswith("_"):
                continue
            _take(importlib.import_module(f"annpred.kernels.{info.name}"))
    for entry in filter(None, os.environ.get("ANNPRED_KERNELS", "").split(os.pathsep)):
        p = Path(entry)
        files = sorted(p.glob("*.py")) if p.is_dir() else [p]
        for f in files:
            if not f.is_file():
                raise UnknownKernelError(f"ANNPRED_KERNELS names {f}, which is not a file")
            _load_file(f)


def kernels() -> dict[str, Kernel]:
    """Every known kernel (the shipped catalog, ``ANNPRED_KERNELS`` files and registered
    ones), by name, sorted."""
    _load()
    return dict(sorted(_REGISTRY.items()))


def get_kernel(name: str) -> Kernel:
    """The kernel named ``name`` (see :func:`kernels`); an
    :class:`~annpred.errors.UnknownKernelError` listing the known kernels otherwise."""
    _load()
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):  # TypeError: an unhashable "name"
        raise UnknownKernelError(
            f"unknown kernel {shown(name)}; known kernels: {', '.join(sorted(_REGISTRY)) or '(none)'}"
        ) from None
