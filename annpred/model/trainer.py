"""Train one model per (kernel, variant, hardware) found in profiling CSVs into a model
directory laid out as ``<out>/<hardware>/<kernel>/<variant>.json``."""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from annpred.data import profiles as _data
from annpred.data.kerneltuner import space_constants, space_problem_size
from annpred.data.rows import CsvLock
from annpred.spec import expr as _expr
from annpred import validate as _v
from annpred.errors import AnnpredWarning, DataError, ParameterError, UnknownKernelError
from annpred.files import JsonlCheckpoint, atomic_write_many, fits_dataclass, frame_key
from annpred.model.estimator import AugmentedNNRegressor
from annpred.model.layout import model_path
from annpred.model.schema import parse_json, to_json, validate

@dataclass
class TrainReport:
    kernel: str
    variant: str
    hardware: str
    n_train: int
    n_holdout: int
    val_mape: float
    holdout_mape: float | None
    n_params: int
    train_time_s: float
    path: Path | None
    steps: dict | None = None  # detected step periods {param: period} (step-aware features)
    n_fit: int | None = None  # rows the network was fitted on (a subsample of n_train)
    complexity: dict | None = None  # the expressions the model uses
    auto: bool = False  # chosen by complexity="auto"
    n_val: int | None = None  # validation rows; 0: none, val_mape is the training error
    constant_mape: float | None = None  # held-out MAPE of the training rows' median runtime
    written: bool = True  # False: dropped by keep_only_better (worse than that constant)
    n_choice: int | None = None  # training rows the choices were made on (None: all of them)

    @property
    def error_label(self) -> str:
        """What ``val_mape`` is: the validation split's error, or the training rows' where
        there were too few rows for a split."""
        return "train MAPE (no validation split)" if self.n_val == 0 else "val MAPE"


MAX_FIT_ROWS = 20_000  # a network of < 75 weights learns nothing more from more rows
PROGRESS_ROWS = 50_000  # combinations at least this large report their stages
MEASUREMENT_KEY = ("kernel", "variant", "hardware", "sampler", "seed", "point", "pass")


def duplicate_keys(df: pd.DataFrame) -> None:
    """Refuse rows that repeat a measurement key (two profilers writing one CSV, or one CSV
    given twice): the message names both rows."""
    if not all(c in df.columns for c in MEASUREMENT_KEY):
        return
    keyed = df[df["point"].notna()]
    dup = keyed.duplicated(subset=list(MEASUREMENT_KEY), keep=False)
    if not dup.any():
        return
    rows = keyed[dup]
    text = pd.Series([tuple(map(str, t)) for t in  # as text, so that NaN equals NaN
                      rows[list(MEASUREMENT_KEY)].itertuples(index=False)], index=rows.index)
    b = rows[text.duplicated(keep="first").to_numpy()].iloc[0]
    a = rows[(text == text.loc[b.name]).to_numpy()].iloc[0]
    raise DataError(
        f"{b['_source']}: row {b['_row']} repeats the measurement key (variant, hardware, "
        f"sampler, seed, point, pass) of {a['_source']} row {a['_row']} "
        f"({int(dup.sum())} rows share a key with another; was the CSV written by two "
        "profilers at once, or given twice?); remove the duplicates and train again")


def check_options(*, features=None, target: str = "runtime_s", n_train=None, seed: int = 0,
                  steps="auto", kernel=None, variant=None, hardware=None, out=None):
    """Validate training options before any data is read or anything is written."""
    feats = _v.feature_list(features, target)
    _v.seed(seed)
    if n_train is not None and n_train != "auto":
        _v.integer(n_train, "--n-train", _data.MIN_ROWS)
    for what, name in (("kernel", kernel), ("variant", variant), ("hardware", hardware)):
        if name is not None:
            _v.safe_name(name, what, ParameterError)
    if isinstance(steps, dict):
        for k, v in steps.items():
            if not isinstance(k, str) or not k.strip():
                raise ParameterError(f"--steps: a period needs a parameter name, got {k!r}")
            if feats is not None and k not in feats:
                raise ParameterError(f"--steps names {k!r}, which is not a feature "
                                     f"({', '.join(feats)})")
            _v.integer(v, f"--steps period of {k!r}", 2, 10**9)
    elif steps not in ("auto", None):
        raise ParameterError(f"steps must be 'auto', None or a dict, got {steps!r}")
    if out is not None:
        _v.output_dir(out)
    return feats


def split_rows(n: int, n_train, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out row indices; ``n_train="auto"`` trains on 75%."""
    order = np.random.default_rng([seed, 4242]).permutation(n)
    if n_train == "auto":
        n_train = max(8, int(round(0.75 * n)))
    if n_train is None or n_train >= n:
        return np.sort(order), np.array([], dtype=int)
    return np.sort(order[:n_train]), np.sort(order[n_train:])


def _catalog_complexity(kernel: str, variant: str, params: list[str]) -> dict[str, str] | None:
    from annpred.spec.catalog import get_kernel

    try:
        k = get_kernel(kernel)
    except UnknownKernelError:
        return None
    try:
        comp = k.complexity_for(variant)
    except UnknownKernelError:
        comp = k.complexity
    usable = {}
    for name, text in comp.items():
        if set(_expr.free_symbols(text)) <= set(params):
            usable[name] = text
    return usable


def _features_of(kernel: str, variant: str, g: pd.DataFrame,
                 features: Sequence[str] | None) -> list[str]:
    """A combination's model inputs: ``features`` where given, else its feature columns
    (only the catalog variant's parameters where the kernel is in the catalog)."""
    feats = list(features) if features else _catalog_params(
        kernel, variant, _data.feature_columns(g))
    return [c for c in feats if c not in ("pass",)]


def _catalog_params(kernel: str, variant: str, feats: list[str]) -> list[str]:
    """The columns a model of a catalog variant takes: those of its parameters
    (:attr:`~annpred.spec.kernel.Variant.params`; a dense product ignores densities)."""
    from annpred.spec.catalog import get_kernel

    try:
        keep = get_kernel(kernel).model_params(variant)
    except UnknownKernelError:
        return feats
    kept = [c for c in feats if c in keep]
    return kept or feats


# training options for GPU tuning spaces (rows with a problem size: Kernel Tuner caches),
# unless the caller sets them: their runtimes jump several times between neighbouring
# configurations (bounds-checked code paths, shared memory on or off), jumps a robust loss
# treats as outliers, so the loss is chosen on the validation split (huber, mse or mape)
# (their 4 random starts per fit, chosen here first, are the estimator's default now)
SPACE_OPTIONS = {"loss": "auto"}


def _structure(g: pd.DataFrame, feats: list[str]) -> dict:
    """Without a catalog entry, a GPU tuning space's launch structure is its complexity."""
    psize = space_problem_size(g)
    if psize is None:
        return {}
    from annpred.model.autocomplexity import default_structure

    return default_structure(feats, psize, space_constants(g), columns=g)


def _measured(g: pd.DataFrame) -> dict:
    """When and how the training rows were measured (provenance), where the CSV says so:
    first and last timestamp, median 1-minute load average, and the median number of input
    sets a point's runs rotated through (1: every run on one input; absent: not recorded)."""
    out = {}
    if "timestamp" in g.columns:
        ts = sorted(t for t in map(str, g["timestamp"].dropna().unique()) if t[:4].isdigit())
        if ts:
            out["from"], out["to"] = ts[0], ts[-1]
    if "load_avg" in g.columns:
        la = pd.to_numeric(g["load_avg"], errors="coerce").dropna()
        if len(la):
            out["load_avg_median"] = round(float(la.median()), 2)
    if "input_sets" in g.columns:
        sets = pd.to_numeric(g["input_sets"], errors="coerce").fillna(1)
        out["input_sets_median"] = int(sets.median()) if len(sets) else 1
    return out


def train_frame(df: pd.DataFrame, out: str | os.PathLike | None, *,
                complexity: str | dict | None = None, features: Sequence[str] | None = None,
                seed: int = 0, n_train: int | None = None, hidden=None,
                on_done: Callable[[TrainReport], None] | None = None,
                steps: str | dict | None = "auto",
                progress: Callable[[str], None] | None = None,
                max_fit_rows: int = MAX_FIT_ROWS, keep_only_better: bool = False,
                **regressor_kw) -> list[TrainReport]:
    """Train every combination in a loaded frame (see :func:`annpred.data.load_profiles`).

    ``steps``: ``"auto"`` detects step periods from 1-D sweeps in the data (PR sampling
    writes them; random samples have none, so nothing changes for them) and trains on
    step-aware complexity features; a dict ``{param: period}`` forces periods; ``None``
    disables steps.

    Every model is trained before any model file is written, and the files are written all
    or none. Meanwhile each finished combination is appended to ``<out>/
    .train_checkpoint.jsonl``: a rerun with the same rows and options reads those back
    instead of fitting them again (an interrupted run resumes); the checkpoint is removed
    once the models are written. With more than ``max_fit_rows`` training rows a combination is fitted on a random
    subsample of that many (the held-out error is still computed on every held-out row).
    ``progress(message)`` receives a line per stage. ``keep_only_better``: a model whose
    held-out MAPE is worse than predicting the training rows' median runtime for every
    point (``TrainReport.constant_mape``) is not written (``written`` False)."""
    def say(msg: str) -> None:  # progress lines only where the work takes noticeable time
        if progress is not None and big:
            progress(msg)
    features = check_options(features=features, n_train=n_train, seed=seed, steps=steps,
                             out=out)
    _v.integer(max_fit_rows, "max_fit_rows", _data.MIN_ROWS)
    if "pass" in df.columns:
        first = df["pass"].fillna(0) == 0
        df = df[first]
    duplicate_keys(df)
    combos = list(_data.combinations(df))
    if not combos:
        raise DataError("no rows to train on")
    for (kernel, variant, hw_id), g in combos:  # validate everything before any fit
        model_path(".", kernel, variant, hw_id)
        if complexity is not None and complexity != "auto":
            _expr.check_all(complexity.values() if isinstance(complexity, dict) else
                            [complexity], _features_of(kernel, variant, g, features),
                            f"{kernel}/{variant}/{hw_id}")
        if len(g) < _data.MIN_ROWS:
            src = g["_source"].iloc[0]
            raise DataError(f"{src}: combination {kernel}/{variant}/{hw_id} has {len(g)} rows; "
                            f"at least {_data.MIN_ROWS} are needed to train a model")
        if n_train is not None and n_train != "auto" and n_train >= len(g):
            warnings.warn(f"{kernel}/{variant}/{hw_id}: --n-train {n_train} is not below its "
                          f"{len(g)} rows: every row trains and none is held out (no holdout "
                          "error)", AnnpredWarning, stacklevel=2)
    reports, files = [], {}
    ckpt, done = _checkpoint(out, df, complexity, features, seed, n_train, hidden, steps,
                             max_fit_rows, regressor_kw)
    if done and progress is not None:
        progress(f"resuming: {len(done)} of {len(combos)} combination(s) read from "
                 f"{ckpt.path}")
    with _dropped_unless_interrupted(ckpt, out):
        for ci, ((kernel, variant, hw_id), g) in enumerate(combos):
            if (kernel, variant, hw_id) in done:
                rep_d, text = done[(kernel, variant, hw_id)]   # checked by _checkpoint
                path = model_path(out, kernel, variant, hw_id)
                rep = TrainReport(**{**rep_d, "path": path if text is not None else None})
                if text is not None:
                    files[path] = text
                reports.append(rep)
                if on_done:
                    on_done(rep)
                continue
            feats = _features_of(kernel, variant, g, features)
            if isinstance(steps, dict):
                unknown = [k for k in steps if k not in feats]
                if unknown:
                    raise ParameterError(f"--steps names {unknown[0]!r}, which is not a feature "
                                         f"of {kernel}/{variant}/{hw_id} ({', '.join(feats)})")
            auto = isinstance(complexity, str) and complexity == "auto"
            if auto:  # start from the catalog's expressions when the kernel is in the catalog
                comp = _catalog_complexity(kernel, variant, feats) or {}
            elif complexity is not None:
                comp = complexity if isinstance(complexity, dict) else {"complexity": complexity}
            else:
                comp = _catalog_complexity(kernel, variant, feats) or _structure(g, feats)
            tr, ho = split_rows(len(g), n_train, seed)
            big = len(g) > PROGRESS_ROWS
            fit_rows = tr
            if len(tr) > max_fit_rows:
                pick = np.random.default_rng([seed, 5151]).choice(len(tr), max_fit_rows,
                                                                  replace=False)
                fit_rows = tr[np.sort(pick)]
            say(f"{kernel}/{variant}/{hw_id} ({ci + 1}/{len(combos)}): fitting on "
                f"{len(fit_rows):,} of {len(g):,} rows"
                + (f" (a random subsample of the {len(tr):,} training rows)"
                   if len(fit_rows) < len(tr) else ""))
            X = g[feats].reset_index(drop=True)
            y = g["runtime_s"].to_numpy(dtype=float)
            found, fits = {}, []
            if isinstance(steps, dict):
                found = {k: int(v) for k, v in steps.items() if k in feats}
            elif steps == "auto" and comp:
                from annpred.model.steps import detect_steps

                found, fits = detect_steps(g.iloc[fit_rows].reset_index(drop=True), feats, comp)
            kw_g = regressor_kw
            if space_problem_size(g) is not None:
                kw_g = {**SPACE_OPTIONS, **regressor_kw}
            if auto:
                kw_g = {**kw_g, "base_complexity": comp or None,
                        "problem_size": space_problem_size(g), "constants": space_constants(g)}
            model = AugmentedNNRegressor(complexity="auto" if auto else (comp or None),
                                         parameters=feats, hidden=hidden,
                                         seed=seed, steps=(found if comp else None) or None,
                                         **kw_g)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UserWarning)
                model.fit(X.iloc[fit_rows], y[fit_rows])
            for w in caught:  # name the combination in every training warning
                warnings.warn(f"{kernel}/{variant}/{hw_id}: {w.message}", w.category, stacklevel=2)
            if len(fit_rows) < len(tr):  # the range of every training row, not of the subsample
                Xt = X.iloc[tr]
                model.train_range_ = {c: [float(Xt[c].min()), float(Xt[c].max())] for c in feats}
            holdout = None
            if len(ho):
                say(f"{kernel}/{variant}/{hw_id}: held-out error on {len(ho):,} rows")
                pred = model.predict(X.iloc[ho])
                holdout = float(np.mean(np.abs(pred - y[ho]) / y[ho]) * 100)
                const = float(np.mean(np.abs(np.median(y[tr]) - y[ho]) / y[ho]) * 100)
            if not np.isfinite(model.val_mape_) or (holdout is not None and not np.isfinite(holdout)):
                raise DataError(f"{kernel}/{variant}/{hw_id}: the fitted model's error is not "
                                "finite (runtimes too small or too spread to represent); "
                                "nothing was written")
            extra = {"n_holdout": int(len(ho)), "holdout_mape": holdout,
                     "n_train_rows": int(len(tr)), "n_fit": int(len(fit_rows)),
                     "sources": sorted({Path(s).name for s in g["_source"]})}
            if fits:
                extra["step_detection"] = [f.to_dict() for f in fits]
            if "runtime_cv" in g.columns and g["runtime_cv"].notna().any():
                extra["median_runtime_cv"] = float(g["runtime_cv"].median())
            measured = _measured(g.iloc[tr])
            if measured:
                extra["measured"] = measured
            path = None
            if out is not None:
                path = model_path(out, kernel, variant, hw_id)
                d = model.to_dict(kernel, variant, hw_id, extra_train=extra)
                machine = _data.machine_of(g)
                if machine is not None:
                    d["machine"] = machine
                validate(d, str(path))
                files[path] = to_json(d)
            rep = TrainReport(kernel, variant, hw_id, len(tr), len(ho), model.val_mape_,
                              holdout, model.n_params_, model.train_time_s_, path,
                              dict(model.steps_) if model.steps_ else None, n_fit=len(fit_rows),
                              complexity=dict(model.complexity_), auto=auto,
                              n_val=model.n_val_, constant_mape=const if len(ho) else None,
                              n_choice=getattr(model, "choice_rows_", None))
            if keep_only_better and len(ho) and holdout > const and path is not None:
                files[path], rep.path, rep.written = None, None, False
            reports.append(rep)
            if ckpt is not None:
                ckpt.append([{"combo": [kernel, variant, hw_id], "model": files[path],
                              "report": {**asdict(rep), "path": None}}])
            if on_done:
                on_done(rep)
        files = {k: v for k, v in files.items() if v is not None}
        if files:
            atomic_write_many(files)
        if ckpt is not None:
            ckpt.path.unlink(missing_ok=True)
    return reports


CHECKPOINT = ".train_checkpoint.jsonl"
TRAIN_LOCK = ".train"  # its lock file: .train.lock in the model directory


@contextmanager
def _dropped_unless_interrupted(ckpt, out):
    """Hold ``out``'s training lock (a second ``train`` into the same directory fails at
    once: it would mix its models with these and drop this run's checkpoint). Keep the
    checkpoint for a rerun after Ctrl-C; after an error (bad data, a failed fit) remove it,
    and ``out`` if the checkpoint created it, so that nothing is left behind."""
    created = out is not None and not Path(out).exists()
    lock = CsvLock(Path(out) / TRAIN_LOCK) if out is not None else None
    if lock is not None:
        lock.acquire()  # before the try: a refused run removes nothing of the other's
    try:
        yield
    except KeyboardInterrupt:
        raise
    except BaseException:
        if ckpt is not None:
            ckpt.path.unlink(missing_ok=True)
            if created:
                lock.release(drop=True)
                try:
                    Path(out).rmdir()
                except OSError:
                    pass
        raise
    finally:
        if lock is not None:
            lock.release()


def _checkpoint(out, df, *options) -> tuple[JsonlCheckpoint | None, dict]:
    """The checkpoint of this training job in ``out`` and the combinations finished there."""
    if out is None:
        return None, {}
    from annpred import __version__

    ckpt = JsonlCheckpoint(Path(out) / CHECKPOINT, frame_key(df, __version__, *options))
    done = {}   # combo -> (report fields, model text or None); a record this code did not
    for rec in ckpt.load():   # write (unknown or mistyped fields, an invalid model) is ignored
        try:
            combo, rep, text = tuple(rec["combo"]), rec["report"], rec["model"]
            if not fits_dataclass(rep, TrainReport, skip=("path",)) or combo != (
                    rep["kernel"], rep["variant"], rep["hardware"]):
                continue
            if rep.get("written", True):
                m = validate(parse_json(text, str(ckpt.path)), str(ckpt.path))
                if (m["kernel"], m["variant"], m["hardware"]) != combo:
                    continue
            done[combo] = (rep, text if rep.get("written", True) else None)
        except (KeyError, TypeError, ValueError, RecursionError):  # ModelFormatError too
            continue
    return ckpt, done


def train_csvs(paths: Sequence[str | os.PathLike], out: str | os.PathLike | None, *,
               target: str = "runtime_s", features: Sequence[str] | None = None,
               complexity: str | None = None, kernel: str | None = None,
               variant: str | None = None, hardware: str | None = None, seed: int = 0,
               n_train: int | None = None, on_done=None, drift_correct: bool = False,
               problem_size: str | None = None, constants: str | None = None,
               transfer: str | None = None,
               **kw) -> list[TrainReport]:
    features = check_options(features=features, target=target, n_train=n_train, seed=seed,
                             steps=kw.get("steps", "auto"), kernel=kernel, variant=variant,
                             hardware=hardware, out=out)
    if complexity is not None and complexity != "auto" and features is not None:
        _expr.parse(complexity, features)  # without --features: per combination, below
    size = sum(os.path.getsize(p) for p in paths if os.path.isfile(p))
    if kw.get("progress") and size > 10 << 20:  # only large inputs take noticeable time
        kw["progress"](f"reading {size / 1e6:,.0f} MB from {', '.join(map(str, paths))}")
    df = _data.load_profiles(paths, target=target, features=features, kernel=kernel,
                             variant=variant, hardware=hardware, drift_correct=drift_correct,
                             problem_size=problem_size, constants=constants,
                             transfer=transfer)
    return train_frame(df, out, complexity=complexity, features=features, seed=seed,
                       n_train=n_train, on_done=on_done, **kw)
