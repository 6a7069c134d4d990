"""Stable, readable hardware ids: ``cpu-<cpu-model-slug>-t<threads>``, ``cuda-<gpu-slug>``."""
from __future__ import annotations

import functools
import os
import platform
import re
import sys
from pathlib import Path


def slug(text: str) -> str:
    s = re.sub(r"\(r\)|\(tm\)|cpu @.*$|processor", "", text.lower())
    s = re.sub(r"[^a-z0-9]+", "-", s).strip("-")
    return re.sub(r"-+", "-", s) or "unknown"


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_slug() -> str:
    return slug(cpu_model())


def cpu_id(threads: int) -> str:
    return f"cpu-{cpu_slug()}-t{int(threads)}"


def cuda_id(index: int = 0) -> str:
    import torch

    return "cuda-" + slug(torch.cuda.get_device_name(index).replace("NVIDIA", ""))


def cuda_available() -> bool:
    """True when torch sees a CUDA GPU; never imports torch unless it is installed."""
    if os.environ.get("ANNPRED_NO_CUDA"):
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


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def _proc_gpu_models() -> list[str]:
    """GPU model names the NVIDIA driver lists in /proc (no torch needed)."""
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
def present(hw: str) -> bool:
    """Whether hardware ``hw`` exists on this machine (same CPU model, enough cores; a GPU).

    Imports torch only when a GPU may exist and torch is not loaded yet: without an NVIDIA
    device node, or when the driver's GPU names do not match, the answer is False at once."""
    info = parse_id(hw)
    if info["device"] == "cpu":
        return info["model"] == cpu_slug() and (info["threads"] or 1) <= cpu_count()
    if info["device"] != "cuda" or os.environ.get("ANNPRED_NO_CUDA"):
        return False
    if "torch" not in sys.modules:
        if not any(Path("/dev").glob("nvidia[0-9]*")):
            return False
        names = _proc_gpu_models()
        if names and not any("cuda-" + slug(n.replace("NVIDIA", "")) == hw for n in names):
            return False
    return cuda_available() and hw == cuda_id()


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
    return (f"warning: this machine is busy (1-minute load average {load:.2f} on {cores} "
            f"cores; measuring with {threads} thread(s)): the measurements will describe a "
            "contended machine. Measure when it is idle, or expect noisier models.")
