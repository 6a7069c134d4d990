"""Where Halide schedule models and their profiles live, and saving/loading them.

Halide schedule models are not kernel models: they sit under their own root, apart from the
kernel-model scanner's ``trained/<hardware>/<kernel>/`` folders::

    <root>/halide/<hardware>/<pipeline>.json         the schedule model
    <root>/halide/<hardware>/data/<pipeline>.csv     the profile it was trained on

``<root>`` is the shipped model root (``trained/``) or a user's model directory. Every path
lookup of :mod:`annpred.halide` goes through :func:`halide_root`, :func:`model_path` and
:func:`data_path`.

A model file also records the machine it was profiled on (:func:`machine`): the hardware id
names the CPU model, which hypervisors blur (two different "AMD EPYC" processors share one
id), so loading a model profiled on another machine warns once per process.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..spec import hardware as hw
from ..errors import ModelFormatError
from ..model.layout import shipped_root, user_root
from .pipelines import HalidePipeline, get
from .space import ENCODING_REVISION


def halide_root(root: str | Path | None = None) -> Path:
    """``<root>/halide`` (default: the shipped root, :func:`annpred.model.layout.shipped_root`)."""
    return (Path(root) if root is not None else shipped_root()) / "halide"


def model_path(pipeline: str, models: str | Path | None = None, threads: int = 2) -> Path:
    """The schedule model of ``pipeline`` for this machine at ``threads`` threads.

    ``models`` is a model root (``<models>/halide/<hardware>/<pipeline>.json``), a hardware
    folder (``<models>/<pipeline>.json``) or a ``.json`` file. Without it, the user's root
    is searched first, then the shipped one. Where no root has a model for this machine's
    hardware id, one profiled on another CPU at the same thread count is taken
    (:func:`_other_machine`; loading it warns), so that a shipped model serves a new machine
    until it is re-profiled.
    """
    hw_id = hw.cpu_id(threads)
    if models is not None:
        base = Path(models)
        if base.suffix == ".json":
            return base
        for cand in (halide_root(base) / hw_id / f"{pipeline}.json",
                     base / hw_id / f"{pipeline}.json", base / f"{pipeline}.json"):
            if cand.exists():
                return cand
        return (_other_machine(halide_root(base), pipeline, threads)
                or _other_machine(base, pipeline, threads)
                or halide_root(base) / hw_id / f"{pipeline}.json")
    roots = (halide_root(user_root()), halide_root())
    for root in roots:
        if (root / hw_id / f"{pipeline}.json").exists():
            return root / hw_id / f"{pipeline}.json"
    for root in roots:
        found = _other_machine(root, pipeline, threads)
        if found is not None:
            return found
    return halide_root() / hw_id / f"{pipeline}.json"


def _other_machine(root: Path, pipeline: str, threads: int) -> Path | None:
    """A model of ``pipeline`` profiled on another CPU at ``threads`` threads under
    ``root``, where this machine has none: the one of this CPU's legacy id (vendor and model
    name, e.g. ``cpu-amd-epyc-t2``) first, else the first by name. Loading it warns that it
    comes from another machine (:func:`check_machine`)."""
    suffix = f"-t{int(threads)}"
    legacy = f"cpu-{hw.legacy_cpu_slug()}{suffix}"
    found = sorted(root.glob(f"cpu-*{suffix}/{pipeline}.json"),
                   key=lambda p: (p.parent.name != legacy, p.parent.name))
    return found[0] if found else None


def data_path(pipeline: str, root: str | Path | None = None, threads: int = 2) -> Path:
    """``<root>/halide/<hardware>/data/<pipeline>.csv`` (default root: the shipped one)."""
    return halide_root(root) / hw.cpu_id(threads) / "data" / f"{pipeline}.csv"


def data_beside(model: str | Path, pipeline: str) -> Path:
    """The profile stored beside a model file: ``<model's folder>/data/<pipeline>.csv``."""
    return Path(model).parent / "data" / f"{pipeline}.csv"


def machine() -> dict:
    """This machine's description (:func:`annpred.spec.hardware.machine`, one definition)."""
    return hw.machine()


def check_machine(model_dict: Mapping, path: Path, threads: int = 2) -> bool:
    """True when the model was profiled on this machine; else one warning per source machine
    (:func:`annpred.runtime.correction.check_model`). Files written before schedule models
    carried a machine object keep theirs under ``train.machine`` (CPU name, family, model):
    those are compared by these fields."""
    from ..runtime.correction import check_model

    d = dict(model_dict)
    rec = (d.get("train") or {}).get("machine")
    if not d.get("machine") and isinstance(rec, Mapping):
        here = hw.machine()
        if (rec.get("cpu_model") == hw.cpu_model()
                and str(rec.get("family")) == str(here.get("family"))
                and str(rec.get("model")) == str(here.get("model"))):
            return True
    return check_model(d, f"may rank schedules wrongly here ({path}): re-profile with "
                          "`annpred halide tune ... --reprofile` or `annpred halide profile`")


def save_schedule_model(model, pipeline: str | HalidePipeline, path: str | Path,
                        threads: int = 2, extra: Mapping | None = None) -> Path:
    from ..model.schema import save_model

    p = get(pipeline)
    d = model.to_dict(kernel=f"halide_{p.name}", variant="schedule-space",
                      hardware=hw.cpu_id(threads),
                      extra_train={"space": {k.name: list(k.choices) for k in p.space.knobs},
                                   "tile_steps": bool(getattr(model, "tile_steps_", False)),
                                   "ragged": bool(getattr(model, "ragged_", False)),
                                   "median_over_min": float(getattr(model, "protocol_factor_",
                                                                    1.0)),
                                   "encoding_revision": ENCODING_REVISION,
                                   **(extra or {})})
    d["machine"] = hw.machine()  # profiled here
    return save_model(d, path)


MAX_PROTOCOL_FACTOR = 100.0  # median / min of a profile's repeats (shipped: 1.02 to 1.06)


def train_fields(d: Mapping, path) -> tuple[bool, bool, float]:
    """``train.tile_steps``, ``train.ragged`` (booleans, default false) and
    ``train.median_over_min`` (a finite number from 1 to :data:`MAX_PROTOCOL_FACTOR`,
    default 1) of a schedule model dict; ModelFormatError naming ``path`` otherwise."""
    tr = d.get("train") or {}
    out = []
    for key in ("tile_steps", "ragged"):
        v = tr.get(key, False)
        if not isinstance(v, bool):
            raise ModelFormatError(f"model {path}: train.{key} must be true or false, got "
                                   f"{str(v)[:40]!r}")
        out.append(v)
    rev = tr.get("encoding_revision", ENCODING_REVISION)  # absent: written before the record
    if rev != ENCODING_REVISION or isinstance(rev, bool):
        raise ModelFormatError(f"model {path} was trained on schedules encoded as in revision "
                               f"{str(rev)[:20]}, and this annpred encodes them as in revision "
                               f"{ENCODING_REVISION}: its rankings would differ; retrain it "
                               "with `annpred halide train PIPELINE`")
    f = tr.get("median_over_min", 1.0)
    if isinstance(f, bool) or not isinstance(f, (int, float)) or not (
            1.0 <= f <= MAX_PROTOCOL_FACTOR):  # NaN fails too
        raise ModelFormatError(f"model {path}: train.median_over_min must be a number from 1 "
                               f"to {MAX_PROTOCOL_FACTOR:g} (the median over the minimum "
                               f"runtime of the profile's repeats), got {str(f)[:40]!r}")
    return out[0], out[1], float(f)


def load_schedule_model(pipeline: str | HalidePipeline, models: str | Path | None = None,
                        threads: int = 2):
    """The fitted regressor of ``pipeline``; ``.machine_match_`` says whether it was profiled
    on this machine (a warning is printed when not)."""
    from ..model.estimator import AugmentedNNRegressor
    from ..model.schema import load_model

    p = get(pipeline)
    path = model_path(p.name, models, threads)
    if not path.exists():
        raise ModelFormatError(
            f"no schedule model for Halide pipeline {p.name!r} on {hw.cpu_id(threads)} at "
            f"{path}; profile this machine with `annpred halide profile {p.name}` and train "
            f"with `annpred halide train {p.name}`")
    d = load_model(path)
    model = AugmentedNNRegressor.from_dict(d)
    missing = [f for f in p.feature_names() if f not in model.parameters_]
    if missing:
        raise ModelFormatError(f"model {path} does not match pipeline {p.name!r}'s schedule "
                               f"space (missing features {missing}); retrain it with "
                               f"`annpred halide train {p.name}`")
    # the model may keep a subset of the pipeline's complexity (select_complexity), never
    # another expression: a changed pipeline definition needs a retrained model
    steps, ragged, factor = train_fields(d, path)
    defined = p.complexity_for(steps, ragged)
    foreign = [n for n, e in model.complexity_.items() if defined.get(n) != e]
    if foreign:
        raise ModelFormatError(f"model {path} was trained with complexity {foreign} that "
                               f"pipeline {p.name!r} no longer defines; retrain it with "
                               f"`annpred halide train {p.name}`")
    model.machine_match_ = check_machine(d, path, threads)
    model.tile_steps_ = steps
    model.ragged_ = ragged
    model.protocol_factor_ = factor
    model.path_ = str(path)
    return model
