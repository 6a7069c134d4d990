"""What this machine is: a description of the CPU (and GPUs) that determines performance.

:func:`this_cpu` reads ``/proc/cpuinfo`` and ``/sys/devices/system/cpu`` (no third-party
library): vendor, family/model/stepping, model name, the ISA extensions kernels use, the
nominal frequency, L2/L3 cache sizes, logical CPUs available to this process and threads per
core. The description is a plain dict (the ``machine`` object of profiling CSVs and model
files) with a short ``fingerprint``: the first 12 hex digits of the SHA-256 of its identity
fields (:data:`IDENTITY`), and a readable ``slug`` such as
``amd-epyc-zen3-avx2-2.4ghz`` or ``intel-xeon-f6m143-avx512-amx-2.6ghz``.

The core count is recorded but is not part of the fingerprint: the same processor behind a
2-core and a 4-core allocation runs one thread alike, and the thread count of a model is in
its hardware id (``-t1``, ``-t2``). GPUs are described by name, compute capability and memory
(:func:`gpus`); torch is imported only when an NVIDIA device node exists.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import sys
from pathlib import Path

FORMAT = "annpred-machine/1"
# fields whose values identify a CPU for performance purposes (the fingerprint covers them)
IDENTITY = ("device", "arch", "vendor", "model_name", "family", "model", "stepping", "isa",
            "ghz", "l2_kb", "l3_kb", "threads_per_core")
# ISA extensions that change what kernels compile to, in the order the slug names the widest
ISA = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
       "amx_tile", "amx_bf16", "amx_int8", "neon", "asimd", "sve", "sve2", "sme")

# microarchitecture names where family/model identify them unambiguously (else fFmM)
_AMD = {23: [(0x00, 0x2f, "zen"), (0x30, 0xff, "zen2")],
        25: [(0x00, 0x0f, "zen3"), (0x10, 0x1f, "zen4"), (0x20, 0x5f, "zen3"),
             (0x60, 0xaf, "zen4")],
        26: [(0x00, 0xff, "zen5")]}
_INTEL6 = {85: "skylake-sp", 106: "icelake-sp", 108: "icelake-d", 143: "sapphirerapids",
           207: "emeraldrapids", 173: "graniterapids", 175: "sierraforest"}


def _cpuinfo() -> dict[str, str]:
    """The first processor's block of /proc/cpuinfo (lower-case keys)."""
    out: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    if out:
                        break
                    continue
                if ":" in line:
                    k, v = line.split(":", 1)
                    out.setdefault(k.strip().lower(), v.strip())
    except OSError:
        pass
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _size_kb(text: str | None) -> int | None:
    if not text:
        return None
    m = re.fullmatch(r"(\d+)\s*([KMG]?)B?", text.strip(), re.I)
    if not m:
        return None
    return int(m.group(1)) * {"": 1, "K": 1, "M": 1024, "G": 1024 ** 2}[m.group(2).upper()]


def _caches(cpu: int = 0) -> dict[str, int]:
    """Per-core L2 and shared L3 sizes in KiB from /sys (unified/data caches only)."""
    out = {}
    base = Path(f"/sys/devices/system/cpu/cpu{cpu}/cache")
    try:
        dirs = sorted(base.glob("index*"))
    except OSError:
        dirs = []
    for d in dirs:
        level, kind = _read(d / "level"), _read(d / "type")
        size = _size_kb(_read(d / "size"))
        if level in ("2", "3") and kind in ("Unified", "Data") and size:
            out[f"l{level}_kb"] = size
    return out


def _ghz(info: dict[str, str]) -> float | None:
    """Nominal frequency: cpufreq's maximum, else the model name's "@ x.xxGHz", else the
    reported MHz (constant in a VM). Rounded to 0.1 GHz so that the id is stable."""
    mhz = None
    raw = _read(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"))
    if raw and raw.isdigit():
        mhz = int(raw) / 1000
    if mhz is None:
        m = re.search(r"@\s*([\d.]+)\s*GHz", info.get("model name", ""), re.I)
        if m:
            mhz = float(m.group(1)) * 1000
    if mhz is None:
        try:
            mhz = float(info.get("cpu mhz", ""))
        except ValueError:
            mhz = None
    return None if not mhz else round(mhz / 1000, 1)


def _int(text: str | None) -> int | None:
    try:
        return int(text, 0) if text else None
    except ValueError:
        return None


def _isa(info: dict[str, str]) -> list[str]:
    """The ISA extensions of :data:`ISA` among a /proc/cpuinfo block's flags."""
    flags = set((info.get("flags") or info.get("features") or "").split())
    return [f for f in ISA if f in flags]


def describe_cpu(info: dict[str, str], caches: dict[str, int], ghz: float | None,
                 cores: int, arch: str) -> dict:
    """A machine object from raw readings (pure: tests feed it other machines)."""
    vendor_raw = info.get("vendor_id", info.get("cpu implementer", ""))
    vendor = {"GenuineIntel": "intel", "AuthenticAMD": "amd", "0x41": "arm",
              "0x61": "apple"}.get(vendor_raw, vendor_raw.lower() or "unknown")
    isa = _isa(info)
    siblings, per_socket = _int(info.get("siblings")), _int(info.get("cpu cores"))
    tpc = siblings // per_socket if siblings and per_socket else 1
    d = {"format": FORMAT, "device": "cpu", "arch": arch, "vendor": vendor,
         "model_name": info.get("model name") or info.get("cpu part") or arch,
         "family": _int(info.get("cpu family")), "model": _int(info.get("model")),
         "stepping": _int(info.get("stepping")), "isa": isa, "ghz": ghz,
         "l2_kb": caches.get("l2_kb"), "l3_kb": caches.get("l3_kb"),
         "threads_per_core": tpc, "cores": int(cores)}
    d["slug"] = cpu_slug_of(d)
    d["fingerprint"] = fingerprint(d)
    return d


def fingerprint(d: dict) -> str:
    """12 hex digits identifying the performance-relevant fields of a machine object."""
    ident = {k: d.get(k) for k in IDENTITY}
    text = json.dumps(ident, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _name_slug(text: str) -> str:
    s = re.sub(r"\(r\)|\(tm\)|cpu @.*$|@.*$|processor|\d+-core", "", text.lower())
    s = re.sub(r"\b(intel|amd|genuine|authentic)\b", "", s)
    s = re.sub(r"[^a-z0-9]+", "-", s).strip("-")
    return re.sub(r"-+", "-", s)


def uarch(d: dict) -> str | None:
    fam, mod = d.get("family"), d.get("model")
    if fam is None or mod is None:
        return None
    if d.get("vendor") == "amd":
        for lo, hi, name in _AMD.get(fam, []):
            if lo <= mod <= hi:
                return name
    if d.get("vendor") == "intel" and fam == 6 and mod in _INTEL6:
        return _INTEL6[mod]
    return f"f{fam}m{mod}"


def cpu_slug_of(d: dict) -> str:
    """``<vendor>-<name>-<uarch>-<widest isa>-<ghz>ghz``, e.g. ``amd-epyc-zen3-avx2-2.4ghz``."""
    parts = [d.get("vendor") or "unknown"]
    name = _name_slug(d.get("model_name") or "")
    if name and name != parts[0]:
        parts.append(name)
    u = uarch(d)
    if u:
        parts.append(u)
    isa = set(d.get("isa") or ())
    if "avx512f" in isa:
        parts.append("avx512")
    elif "avx2" in isa:
        parts.append("avx2")
    elif "sve" in isa:
        parts.append("sve")
    elif "asimd" in isa or "neon" in isa:
        parts.append("neon")
    if "amx_tile" in isa:
        parts.append("amx")
    if d.get("ghz"):
        parts.append(f"{d['ghz']:.1f}ghz")
    s = "-".join(p for p in parts if p)
    return re.sub(r"[^a-z0-9.]+", "-", s.lower()).strip("-")[:80]


def vector_registers(d: dict | None = None) -> int:
    """Architectural vector registers of a CPU description (default: this one): 32 with
    AVX-512 (zmm0-31) and on AArch64 (v0-31), else 16 (x86 SSE/AVX ymm0-15). Register
    blocking that holds more accumulators than this spills."""
    d = this_cpu() if d is None else d
    isa = set(d.get("isa") or ())
    if "avx512f" in isa or str(d.get("arch", "")).lower() in ("aarch64", "arm64") or \
            {"asimd", "neon", "sve"} & isa:
        return 32
    return 16


def vector_lanes(d: dict | None = None) -> int:
    """float32 lanes of a CPU description's widest vector: 16 with AVX-512, 8 with AVX or
    AVX2, else 4 (SSE, NEON). It is the natural vector size that Halide's host target uses
    for float32 (the test suite checks the two agree), so the catalog's Halide variants can
    state how far their schedules pad a row, without importing Halide. The default is the
    host's own flags, read from /proc/cpuinfo alone: Halide compiles for the host whatever
    ``ANNPRED_MACHINE`` describes, and the catalog's import stays independent of it."""
    isa = set(d.get("isa") or ()) if d is not None else set(_isa(_cpuinfo()))
    if "avx512f" in isa:
        return 16
    if {"avx", "avx2"} & isa:
        return 8
    return 4


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def this_cpu() -> dict:
    """This machine's CPU description (cached for the process; ``ANNPRED_MACHINE`` may name a
    JSON file holding another description, for tests and for emulating a machine)."""
    env = os.environ.get("ANNPRED_MACHINE")
    if env:
        d = json.loads(Path(env).read_text(encoding="utf-8"))
        d = dict(d, slug=d.get("slug") or cpu_slug_of(d))
        d["fingerprint"] = fingerprint(d)
        return d
    return describe_cpu(_cpuinfo(), _caches(), _ghz(_cpuinfo()), cpu_count(),
                        platform.machine() or "unknown")


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


def gpu_may_exist() -> bool:
    return not os.environ.get("ANNPRED_NO_CUDA") and any(Path("/dev").glob("nvidia[0-9]*"))


@functools.lru_cache(maxsize=1)
def gpus() -> tuple[dict, ...]:
    """CUDA GPUs: name, compute capability, memory; imports torch only when a device node
    exists (or torch is already loaded)."""
    if not gpu_may_exist() and "torch" not in sys.modules:
        return ()
    try:
        import torch

        if not torch.cuda.is_available():
            return ()
        out = []
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            d = {"format": FORMAT, "device": "cuda", "name": p.name,
                 "compute_capability": f"{p.major}.{p.minor}",
                 "memory_gb": round(p.total_memory / 2 ** 30), "index": i}
            d["slug"] = _name_slug(p.name.replace("NVIDIA", ""))
            d["fingerprint"] = hashlib.sha256(json.dumps(
                [d["name"], d["compute_capability"], d["memory_gb"]]).encode()).hexdigest()[:12]
            out.append(d)
        return tuple(out)
    except Exception:  # pragma: no cover - a broken driver is "no GPU"
        return ()
