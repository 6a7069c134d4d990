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
import threading
import time
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


_TAU = 60.0  # seconds: the time constant of the 1-minute load average
_OWN: list[tuple[float, float]] = []  # (monotonic s, own CPU s): import, checks, a parent's
_OWN_PID = [os.getpid()]
_OWN_BASE = [0.0]  # CPU seconds of the parent annpred run when it started this process
_OWN_LOCK = threading.Lock()
OWN_ENV = "ANNPRED_OWN_CPU"  # a parent annpred run's samples, handed to the child it starts


def _own_cpu() -> float:
    t = os.times()
    return _OWN_BASE[0] + t.user + t.system + t.children_user + t.children_system


def _sample():
    """Take a sample (under the lock); a forked child starts its own record."""
    if _OWN_PID[0] != os.getpid():  # a forked child: its CPU times start again at 0
        _OWN.clear()
        _OWN_BASE[0] = 0.0
        _OWN_PID[0] = os.getpid()
    now = time.monotonic()
    _OWN.append((now, _own_cpu()))
    while len(_OWN) > 2 and now - _OWN[1][0] > 10 * _TAU:  # weighs less than e^-10
        del _OWN[0]
    return now


def own_load() -> float:
    """About how much of the 1-minute load average is this run's own recent work: the CPU
    seconds of this process (threads and finished child processes included) and of the
    annpred process that started it (:func:`child_env`), between samples taken at import
    and at every call, each stretch weighted as the kernel weighs it (exponential decay,
    time constant 60 s). A stretch is assumed evenly busy, so work done in bursts is
    underestimated (the warning errs towards warning)."""
    import math

    with _OWN_LOCK:
        now = _sample()
        total = 0.0
        for (a, ca), (b, cb) in zip(_OWN, _OWN[1:]):
            if b > a and cb > ca:
                total += (cb - ca) / (b - a) * (math.exp((b - now) / _TAU)
                                                - math.exp((a - now) / _TAU))
    return total


def child_env(env: dict | None = None) -> dict:
    """``env`` (default: this process's environment) with this run's own-work samples, for
    an annpred process this one starts and waits for: the child's busy check then leaves
    out the work its parent (and earlier children) did, as :func:`own_load` does here."""
    with _OWN_LOCK:
        _sample()
        text = ",".join(f"{t!r}:{c!r}" for t, c in _OWN[-64:])
    return {**(os.environ if env is None else env), OWN_ENV: text}


def _inherit() -> None:
    """Take over the samples a parent annpred run handed over (:func:`child_env`); text
    that does not parse is ignored (it only lowers the estimate to this process's own)."""
    import math

    text = os.environ.get(OWN_ENV, "")
    try:
        pairs = [tuple(float(x) for x in item.split(":")) for item in text.split(",")[:64]]
        if not pairs or any(len(p) != 2 or not all(map(math.isfinite, p)) for p in pairs):
            return
    except ValueError:
        return
    if all(b[0] > a[0] and b[1] >= a[1] >= 0 for a, b in zip(pairs, pairs[1:])):
        _OWN[:] = pairs
        _OWN_BASE[0] = pairs[-1][1]  # this process's CPU seconds add to the parent's


def runnable_now(samples: int = 25, interval: float = 0.004) -> float | None:
    """How many tasks other than this one are runnable right now: the mean, over ``samples``
    readings ``interval`` seconds apart, of the running-task count of ``/proc/loadavg``
    (which counts the reader itself) less one. None where it cannot be read."""
    n = max(1, int(samples))
    counts = []
    for i in range(n):
        try:
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]))
        except (OSError, IndexError, ValueError):
            return None
        if i + 1 < n:
            time.sleep(interval)
    return max(sum(counts) / len(counts) - 1.0, 0.0)


def busy_warning(threads: int, load: float | None = None, cores: int | None = None,
                 own: float | None = None, now: float | None = None) -> str | None:
    """A warning when other work already occupies the cores a measurement needs, else None.

    Measurements taken while the machine is busy describe a contended machine: parallel
    variants slow down far more than serial ones, so models (and the decisions they drive)
    learn the wrong ranking. The 1-minute load average, less this process's own recent work
    (``own``; :func:`own_load` when the load is read here: a run measuring one thread count
    after another is not contention), is compared with the cores left free for others,
    ``cores - threads``, plus one core of slack. The load average lags by about a minute,
    so it still holds work that has ended, such as the previous command of a script that
    profiles one kernel after another: the warning also needs the tasks runnable right now
    besides this one (``now``; :func:`runnable_now` when the load is read here) above the
    same line.
    """
    read_here = load is None
    if read_here:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # pragma: no cover - not on this platform
            return None
        if own is None:
            own = own_load()
    own = min(max(own or 0.0, 0.0), load)
    cores = cpu_count() if cores is None else cores
    free = max(cores - int(threads), 0)
    if load - own <= free + 1.0:
        return None
    if now is None and read_here:  # read only when the load average says busy
        now = runnable_now()
    if now is not None and now <= free + 1.0:
        return None
    mine = f", about {own:.2f} of it this process's own work" if own >= 0.05 else ""
    running = "" if now is None else f", {now:.1f} other task(s) runnable now"
    return (f"this machine is busy (1-minute load average {load:.2f} on {cores} "
            f"cores{mine}{running}; measuring with {threads} thread(s)): the measurements "
            "will describe a contended machine. Measure when it is idle, or expect noisier "
            "models.")


def warn_if_busy(threads: int) -> None:
    """:func:`busy_warning` as an :class:`~annpred.errors.AnnpredWarning` (the CLI prints
    it as an ``annpred: warning:`` line; library callers can filter it)."""
    msg = busy_warning(threads)
    if msg:
        import warnings

        from annpred.errors import AnnpredWarning

        warnings.warn(msg, AnnpredWarning, stacklevel=3)


_inherit()
own_load()  # the first sample: this process's work from here on is its own
