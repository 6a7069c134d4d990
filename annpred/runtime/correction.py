"""Applying machine corrections and flagging models from another machine (decision side).

Every loaded model gets ``machine_match`` (:func:`annpred.spec.hardware.machine_match`) and,
when a calibration file of *this* machine holds a correction for exactly that model file
(same kernel, variant, hardware id and content digest), that ``correction``. Calibration
files are looked up in ``<root>/calibration/<fingerprint>.json`` of every model root and of
the user's model directory (where ``annpred calibrate`` writes). A calibration file that
cannot be read or validated, or a correction that does not fit its model (another number of
inputs), is skipped with one :class:`~annpred.errors.AnnpredWarning`: the models are then
used as without it.

A model that neither matches nor is adapted is *untrusted* by ``choose`` (unless
``trust_machine=True`` or ``policy="extrapolate"``) and raises one
:class:`~annpred.errors.MachineMismatchWarning` per process and source machine, naming both
machines, the first time it is used.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterable

from annpred.errors import AnnpredWarning, MachineMismatchWarning, ModelFormatError
from annpred.model import correction as _corr
from annpred.model.layout import user_root
from annpred.spec import hardware as hw
from annpred.spec import machine as _machine

_WARNED: set = set()
_SKIPPED: set = set()  # messages about unusable calibration files already warned


def corrections_for(roots: Iterable[Path]) -> dict:
    """``(kernel, variant, hardware, digest) -> correction`` of this machine's calibration
    files under ``roots`` and the user's model directory (earlier roots take precedence);
    each correction names its file under ``source``."""
    fp = _machine.this_cpu()["fingerprint"]
    dirs = []
    for r in [*map(Path, roots), user_root()]:
        if r not in dirs:
            dirs.append(r)
    out: dict = {}
    for r in reversed(dirs):
        path = _corr.path_for(r, fp)
        if os.path.lexists(path):
            try:
                cs = _corr.load(path)["corrections"]
            except ModelFormatError as exc:  # a broken file must not make the models unusable
                _skip(f"{exc}; its corrections are not used")
                continue
            for c in cs:
                out[(c["kernel"], c["variant"], c["hardware"], c["model_digest"])] = {
                    **c, "source": str(path)}
    return out


def _skip(msg: str) -> None:
    """Warn once per process about an unusable calibration file or correction."""
    if msg not in _SKIPPED:
        _SKIPPED.add(msg)
        warnings.warn(msg, AnnpredWarning, stacklevel=4)


def _fitting(c: dict | None, meta: dict) -> dict | None:
    """``c`` if it fits the model ``meta`` (:func:`annpred.model.correction.check_fits`),
    else None with a warning: the model is then used uncorrected, as without a calibration."""
    if c is None:
        return None
    try:
        return _corr.check_fits(c, meta, f"calibration file {c.get('source', '?')}")
    except ModelFormatError as exc:
        _skip(f"{exc}; the model is used without it (run `annpred calibrate` again)")
        return None


def attach(models: dict, roots) -> None:
    """Set ``machine_match`` and ``correction`` on every loaded model of a Predictor."""
    table = corrections_for(roots)
    for key, m in models.items():
        m.machine_match = hw.machine_match(key[2], m.meta.get("machine"))
        m.correction = None
        if table and not m.machine_match:
            m.correction = _fitting(table.get((*key, _corr.model_digest(m.meta))), m.meta)


def correction_of(meta: dict, path: Path | None = None) -> dict | None:
    """This machine's correction of one model dict (from the calibration files of the
    model's root, ``<root>/<hardware>/<kernel>/<variant>.json``, and the user's), if any;
    with the machine's slug added under ``machine`` (for the C header's comment)."""
    if hw.machine_match(meta["hardware"], meta.get("machine")):
        return None
    roots = [path.resolve().parents[2]] if path is not None and len(path.resolve().parents) > 2 \
        else []
    c = _fitting(corrections_for(roots).get((meta["kernel"], meta["variant"], meta["hardware"],
                                             _corr.model_digest(meta))), meta)
    return None if c is None else {**c, "machine": _machine.this_cpu()["slug"]}


def source_description(m) -> str:
    return hw.describe(m.meta["hardware"], m.meta.get("machine"))


ADVICE = ("choose() does not trust them. Run `annpred calibrate --quick` (annpred.measure."
          "calibrate.calibrate()) to adapt them in seconds, or opt in with trust_machine=True "
          "/ --trust-machine")


def warn_mismatch(m, advice: str = ADVICE) -> None:
    """One warning per process and source machine for a model from another machine."""
    if m.machine_match or m.correction is not None:
        return
    mach = m.meta.get("machine") or {}
    hw_id = m.meta["hardware"]
    info = hw.parse_id(hw_id)
    src = mach.get("fingerprint") or (info["device"], info["model"])
    if src in _WARNED:
        return
    _WARNED.add(src)
    if info["device"] != "cpu" and not hw.present(hw_id):  # a device this machine lacks
        tail = (f"{hw_id} is not installed here, so they predict its runtimes as measured "
                "there; choose() leaves them out by default, and calibrating them needs a "
                "machine with that device")
    else:
        tail = "their predictions may be off by a large factor and " + advice
    warnings.warn(f"models of {hw_id} were measured on {source_description(m)}, not on "
                  f"{hw.describe_here(hw_id)}; " + tail, MachineMismatchWarning, stacklevel=3)


def check_model(meta: dict, advice: str = ADVICE) -> bool:
    """Whether a model dict (e.g. a Halide schedule model) was measured on this machine;
    warns once per source machine when not."""
    class _M:  # the attributes warn_mismatch reads
        pass

    m = _M()
    m.meta, m.correction = meta, None
    m.machine_match = hw.machine_match(meta["hardware"], meta.get("machine"))
    warn_mismatch(m, advice)
    return m.machine_match


def reset_warnings() -> None:
    """Forget which machines and calibration files were warned about (tests)."""
    _WARNED.clear()
    _SKIPPED.clear()
