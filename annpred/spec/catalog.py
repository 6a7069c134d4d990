"""The kernel catalog: the ``kernels`` package shipped with annpred, plus user kernels.

Users add kernels without editing annpred, either by calling :func:`register_kernel` or by
pointing ``ANNPRED_KERNELS`` at Python files or folders (``os.pathsep``-separated) whose
modules define ``KERNEL`` (a :class:`~annpred.kernel.Kernel`) or ``KERNELS`` (a list).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from pathlib import Path

from annpred.errors import UnknownKernelError
from annpred.spec.kernel import Kernel

_REGISTRY: dict[str, Kernel] = {}
_LOADED = False


def register_kernel(kernel: Kernel, replace: bool = False) -> Kernel:
    if not isinstance(kernel, Kernel):
        raise TypeError("register_kernel expects an annpred.kernel.Kernel")
    if kernel.name in _REGISTRY and not replace and _REGISTRY[kernel.name] is not kernel:
        raise ValueError(f"kernel {kernel.name!r} is already registered")
    _REGISTRY[kernel.name] = kernel
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
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
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
    _load()
    return dict(sorted(_REGISTRY.items()))


def get_kernel(name: str) -> Kernel:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownKernelError(
            f"unknown kernel {name!r}; known kernels: {', '.join(sorted(_REGISTRY)) or '(none)'}"
        ) from None
