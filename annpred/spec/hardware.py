"""Hardware ids and whether a model's machine is this machine.

A hardware id is ``cpu-<machine slug>-t<threads>`` (e.g.
``cpu-amd-epyc-zen3-avx2-2.4ghz-t1``; the slug comes from :mod:`annpred.spec.machine`) or
``cuda-<gpu>``. Ids written before annpred described machines (``cpu-amd-epyc-t1``, the
*legacy* form: vendor and model name only) still parse and load.

Two questions are kept apart:

- :func:`present`: can a model of this id run here? A CPU id with at most as many threads as
  this process may use, whichever processor it names (legacy and new ids alike); a CUDA id
  whose GPU is installed.
- :func:`machine_match`: was the model measured on *this* machine? True when the model's
  ``machine`` object has this machine's fingerprint, or, for a model without one, when its
  id is this machine's current id. A legacy id without a ``machine`` object is an unknown
  machine: not a match (the name alone cannot tell two processors apart that a hypervisor
  names alike).
"""
from __future__ import annotations

import functools
import os
import re
import sys
from pathlib import Path

from annpred.spec import machine as _machine
from annpred.spec.machine import _proc_gpu_models, cpu_count  # noqa: F401 (re-exported)


def slug(text: str) -> str:
    s = re.sub(r"\(r\)|\(tm\)|cpu @.*$|processor", "", text.lower())
    s = re.sub(r"[^a-z0-9]+", "-", s).strip("-")
    return re.sub(r"-+", "-", s) or "unknown"


def cpu_model() -> str:
    return _machine.this_cpu().get("model_name") or "unknown"


def cpu_slug() -> str:
    """This CPU's slug (``amd-epyc-zen3-avx2-2.4ghz``)."""
    return _machine.this_cpu()["slug"]


def legacy_cpu_slug() -> str:
    """The slug ids had before machines were described (``amd-epyc``)."""
    return slug(cpu_model())


def cpu_id(threads: int) -> str:
    return f"cpu-{cpu_slug()}-t{int(threads)}"


def machine(hw: str | None = None) -> dict:
    """This machine's description for hardware id ``hw`` (the CPU's unless a CUDA id)."""
    if hw is not None and parse_id(hw)["device"] == "cuda":
        for g in _machine.gpus():
            if "cuda-" + g["slug"] == hw:
                return dict(g)
    return dict(_machine.this_cpu())


def cuda_id(index: int = 0) -> str:
    import torch

    return "cuda-" + slug(torch.cuda.get_device_name(index).replace("NVIDIA", ""))


def _no_gpu_device() -> bool:
    """True when this machine has certainly no NVIDIA GPU (no device node): then nothing
    needs to import torch to find out."""
    return "torch" not in sys.modules and not any(Path("/dev").glob("nvidia[0-9]*"))


def cuda_available() -> bool:
    """True when torch sees a CUDA GPU; imports torch only when a GPU device node exists."""
    if os.environ.get("ANNPRED_NO_CUDA") or _no_gpu_device():
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def parse_id(hw: str) -> dict:
    """Split a hardware id into ``{"device", "model", "threads"}`` (threads may be None)."""
    m = re.fullmatch(r"cpu-(.+)-t(\d+)", hw)
    if m:
        return {"device": "cpu", "model": m.group(1), "threads": int(m.group(2))}
    if hw.startswith("cuda-"):
        return {"device": "cuda", "model": hw[5:], "threads": None}
    return {"device": hw.split("-", 1)[0], "model": hw, "threads": None}


@functools.lru_cache(maxsize=256)
def present(hw: str) -> bool:
    """Whether a model of hardware ``hw`` can run here: a CPU id with at most this process's
    core count of threads (any processor name: whether it was measured on *this* processor
    is :func:`machine_match`'s question), or an installed CUDA GPU.

    Imports torch only when a GPU may exist and torch is not loaded yet: without an NVIDIA
    device node, or when the driver's GPU names do not match, the answer is False at once."""
    info = parse_id(hw)
    if info["device"] == "cpu":
        return (info["threads"] or 1) <= cpu_count()
    if info["device"] != "cuda" or os.environ.get("ANNPRED_NO_CUDA"):
        return False
    if _no_gpu_device():
        return False
    if "torch" not in sys.modules:
        names = _proc_gpu_models()
        if names and not any("cuda-" + slug(n.replace("NVIDIA", "")) == hw for n in names):
            return False
    return cuda_available() and hw == cuda_id()


def machine_match(hw: str, machine_obj: dict | None) -> bool:
    """Whether a model of id ``hw`` with description ``machine_obj`` (None: the file has
    none) was measured on this machine. See the module doc."""
    info = parse_id(hw)
    if machine_obj is not None and machine_obj.get("fingerprint"):
        if info["device"] == "cuda":
            return any(g["fingerprint"] == machine_obj["fingerprint"] for g in _machine.gpus())
        return machine_obj["fingerprint"] == _machine.this_cpu()["fingerprint"]
    if info["device"] == "cpu":
        return info["threads"] is not None and hw == cpu_id(info["threads"])
    if info["device"] == "cuda":  # GPU names identify the model: the GPU is installed here
        return present(hw)
    return False


def describe(hw: str, machine_obj: dict | None) -> str:
    """A machine for messages: ``slug (fingerprint)`` or ``an unknown machine (id ...)``."""
    if machine_obj is not None and machine_obj.get("fingerprint"):
        name = machine_obj.get("slug") or machine_obj.get("model_name") or hw
        return f"{name} (fingerprint {machine_obj['fingerprint']})"
    return f"an unknown machine (hardware id {hw}, no machine description)"


def describe_here(hw: str | None = None) -> str:
    m = machine(hw)
    return f"this machine, {m.get('slug')} (fingerprint {m.get('fingerprint')})"


def busy_warning(threads: int, load: float | None = None, cores: int | None = None) -> str | None:
    """A warning when other work already occupies the cores a measurement needs, else None.

    Measurements taken while the machine is busy describe a contended machine: parallel
    variants slow down far more than serial ones, so models (and the decisions they drive)
    learn the wrong ranking. The 1-minute load average is compared with the cores left free
    for others, ``cores - threads``, plus one core of slack.
    """
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # pragma: no cover - not on this platform
            return None
    cores = cpu_count() if cores is None else cores
    free = max(cores - int(threads), 0)
    if load <= free + 1.0:
        return None
    return (f"this machine is busy (1-minute load average {load:.2f} on {cores} "
            f"cores; measuring with {threads} thread(s)): the measurements will describe a "
            "contended machine. Measure when it is idle, or expect noisier models.")


def warn_if_busy(threads: int) -> None:
    """:func:`busy_warning` as an :class:`~annpred.errors.AnnpredWarning` (the CLI prints
    it as an ``annpred: warning:`` line; library callers can filter it)."""
    msg = busy_warning(threads)
    if msg:
        import warnings

        from annpred.errors import AnnpredWarning

        warnings.warn(msg, AnnpredWarning, stacklevel=3)
