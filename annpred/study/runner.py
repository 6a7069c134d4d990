"""The accuracy study: every model, the same splits, honest metrics.

For each (kernel, variant, hardware) combination in profiling CSVs:

* **Test set.** When the CSV holds a second measurement pass (``pass`` = 1) over some points,
  those points form the test set: their pass-0 runtimes are the truth the models are judged
  against, and the MAPE between the two passes over exactly those points is the combination's
  *noise floor* (how well a repeat measurement "predicts" the first one). Without a second
  pass, a fixed random held-out set is used and the floor is estimated from ``runtime_cv``
  when present (labelled: it only sees the jitter inside one measurement, not drift between
  passes, so it is a lower bound), else reported as not available.
* **Training pool.** Every other pass-0 point. Seed ``s`` draws a fixed random permutation of
  the pool; a model trained on ``n`` points uses its first ``n`` (so learning curves are
  nested). Validation data for early stopping / model selection is carved out of those ``n``
  points by each model; the test points are never seen in training, and every scaler is
  fitted on training rows only.
* **Models** (all fitted on log runtime): ``Cons`` (linear in log of the main complexity
  feature), ``LR+C`` (linear in log parameters and log complexities), ``RF+C`` (random
  forest, 200 trees), ``GBT+C`` (gradient-boosted trees, number of trees chosen by early
  stopping on a validation split), ``NN`` (our network without complexity), ``NN+C`` (ours,
  < 75 parameters) and ``NN+C-L`` (a 32x32 network trained on the whole pool).
* **Metrics**: MAPE over all test points (headline), the papers' filtered MAPE (smallest 30%
  of measured runtimes dropped), the share of predictions within +-10%, Spearman's rho.

:func:`evaluate` computes everything; :func:`write_outputs` writes CSV, Markdown and PNGs.
Nothing here imports torch at module level (the network models import it when fitted).
"""
from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from annpred.errors import DataError, FewRowsWarning, ParameterError
from annpred.files import JsonlCheckpoint, frame_key
from annpred.threads import pool_limits
from annpred.study.cost import cost_benchmark, cost_combination
from annpred.study.metrics import score
from annpred.study.combos import Combination, prepare
from annpred.study.zoo import DEFAULT_MODELS, MODELS, REQUIRES_COMPLEXITY, make_model

DEFAULT_CURVE_SIZES = (25, 50, 100, 250, 500, 1000)


@dataclass(frozen=True)
class Fit:
    combo: int
    model: str
    n: int
    seed: int


@dataclass
class Config:
    n_train: int = 250
    n_test: int = 250
    seeds: int = 5
    models: tuple[str, ...] = DEFAULT_MODELS
    curve_sizes: tuple[int, ...] = DEFAULT_CURVE_SIZES
    curve_seeds: int = 2
    jobs: int = 1
    nn_options: dict = field(default_factory=dict)


@dataclass
class Result:
    combos: list[Combination]
    config: Config
    runs: pd.DataFrame  # one row per (combination, model, n, seed)
    summary: pd.DataFrame  # one row per (combination, model) at the study's sizes
    curves: pd.DataFrame  # one row per (combination, model, n): mean over curve seeds
    predictions: dict  # (combo index, model) -> test predictions of seed 0
    cost: pd.DataFrame | None = None
    timings: dict = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _study_n(c: Combination, model: str, cfg: Config) -> int:
    return len(c.pool) if model == "NN+C-L" else min(cfg.n_train, len(c.pool))


def _available(c: Combination, model: str) -> bool:
    return bool(c.complexity) or model not in REQUIRES_COMPLEXITY


def plan(combos: list[Combination], cfg: Config) -> list[Fit]:
    fits: dict[Fit, None] = {}
    for i, c in enumerate(combos):
        for m in cfg.models:
            if not _available(c, m):
                continue
            for s in range(cfg.seeds):
                fits[Fit(i, m, _study_n(c, m, cfg), s)] = None
            for n in cfg.curve_sizes:
                if n > len(c.pool):
                    continue
                for s in range(cfg.curve_seeds):
                    fits[Fit(i, m, n, s)] = None
    return list(fits)


_WORK: dict = {}


def _init_worker(combos, nn_options):
    _WORK["combos"], _WORK["nn"] = combos, nn_options
    _WORK["limits"] = pool_limits(1)


def _run_group(group: list[Fit]) -> list[tuple[Fit, dict, np.ndarray | None]]:
    """Fit and score the models of one (combination, n, seed) group."""
    out = []
    for f in group:
        c = _WORK["combos"][f.combo]
        rows = c.train_rows(f.seed, f.n)
        model = make_model(f.model, _WORK["nn"])
        t0 = time.perf_counter()
        with warnings.catch_warnings():  # small fits are the study's point (learning
            warnings.simplefilter("ignore", FewRowsWarning)  # curves); noted once instead
            model.fit(c, rows, f.seed)
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = model.predict(c, c.test)
        t_pred = time.perf_counter() - t0
        rec = score(c.y[c.test], pred)
        rec.update(n_params=model.n_params, train_time_s=t_fit, predict_time_s=t_pred)
        out.append((f, rec, pred if f.seed == 0 else None))
    return out


def _groups(fits: list[Fit]) -> list[list[Fit]]:
    by: dict = {}
    for f in fits:
        by.setdefault((f.combo, f.n, f.seed), []).append(f)
    # big groups first: better load balance across workers
    return sorted(by.values(), key=lambda g: -sum(max(f.n, 50) for f in g))


class _Checkpoint:
    """Finished fits of one study (:class:`annpred.files.JsonlCheckpoint`), keyed by data
    and config."""

    def __init__(self, path, df, cfg, features, complexity):
        self.key = frame_key(df, cfg, features, complexity)
        self._file = JsonlCheckpoint(path, self.key)

    def load(self) -> list:
        """The finished fits read back; a record of another shape (hand-edited, or from
        another version) is skipped: that fit runs again."""
        out = []
        for d in self._file.load():
            try:
                fit = d["fit"]
                if not (isinstance(d["rec"], dict) and isinstance(fit, list) and len(fit) == 4
                        and isinstance(fit[1], str) and all(
                            isinstance(v, int) and not isinstance(v, bool)
                            for v in (fit[0], fit[2], fit[3]))):
                    continue
                pred = None if d["pred"] is None else np.asarray(d["pred"], dtype=float)
            except (KeyError, TypeError, ValueError):
                continue
            out.append((Fit(*fit), d["rec"], pred))
        return out

    def append(self, res) -> None:
        self._file.append({"fit": [fit.combo, fit.model, fit.n, fit.seed], "rec": rec,
                           "pred": None if pred is None else pred.tolist()}
                          for fit, rec, pred in res)


def evaluate(df: pd.DataFrame, config: Config | None = None, *,
             features: Sequence[str] | None = None, complexity: dict | None = None,
             progress: bool = True, cost: bool = True,
             log: Callable[[str], None] | None = None,
             checkpoint: str | os.PathLike | None = None) -> Result:
    """Run the study on a frame from :func:`annpred.data.load_profiles`.

    ``checkpoint``: a JSON-lines file to which every finished group of fits is appended; a
    rerun with the same data and configuration skips the fits recorded there (an interrupted
    study resumes). A failing cost benchmark is reported and skipped, never fatal."""
    cfg = config or Config()
    for m in cfg.models:
        if m not in MODELS:
            raise ParameterError(f"unknown model {m!r}; models: {', '.join(MODELS)}")
    if cfg.n_train < 8:
        raise ParameterError(f"--n-train must be at least 8, got {cfg.n_train}")
    if cfg.seeds < 1 or cfg.curve_seeds < 0:
        raise ParameterError("--seeds must be >= 1 and --curve-seeds >= 0")
    if cfg.jobs < 1:
        raise ParameterError(f"--jobs must be >= 1, got {cfg.jobs}")
    say = log or (lambda s: print(s, file=sys.stderr))
    t_start = time.perf_counter()
    combos = prepare(df, features=features, complexity=complexity, n_test=cfg.n_test)
    if not combos:
        raise DataError("no combinations to evaluate")
    skipped = []
    for c in combos:
        if not c.complexity:
            missing = [m for m in cfg.models if m in REQUIRES_COMPLEXITY]
            skipped.append(f"{c.name}: no complexity expression (catalog or --complexity); "
                           f"skipped {', '.join(missing)}")
        if len(c.pool) < cfg.n_train:
            say(f"note: {c.name}: training pool has {len(c.pool)} points (< {cfg.n_train}); "
                "training on all of them")
        if len(c.test) < cfg.n_test:
            say(f"note: {c.name}: {len(c.test)} test points (< {cfg.n_test})")
    for s in skipped:
        say("note: " + s)
    fits = plan(combos, cfg)
    ckpt = _Checkpoint(checkpoint, df, cfg, features, complexity) if checkpoint else None
    results: list = ckpt.load() if ckpt else []
    done = {f for f, _, _ in results}
    if done:
        say(f"note: resuming: {len(done)} of {len(fits)} fits read from {checkpoint}")
    groups = _groups([f for f in fits if f not in done])
    from tqdm import tqdm

    bar = tqdm(total=len(fits), initial=len(done), disable=not progress, unit="fit",
               desc="evaluate", file=sys.stderr, dynamic_ncols=True)
    try:
        if cfg.jobs == 1:
            _init_worker(combos, cfg.nn_options)
            try:
                for g in groups:
                    res = _run_group(g)
                    results.extend(res)
                    if ckpt:
                        ckpt.append(res)
                    bar.update(len(res))
            finally:
                limits = _WORK.get("limits")
                if limits is not None:
                    limits.restore_original_limits()
                _WORK.clear()
        else:
            import multiprocessing as mp

            ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods()
                                 else "spawn")
            with ctx.Pool(cfg.jobs, initializer=_init_worker,
                          initargs=(combos, cfg.nn_options)) as pool:
                for res in pool.imap_unordered(_run_group, groups):
                    results.extend(res)
                    if ckpt:
                        ckpt.append(res)
                    bar.update(len(res))
    finally:
        bar.close()
    t_fit = time.perf_counter() - t_start

    rows, preds = [], {}
    for f, rec, pred in results:
        c = combos[f.combo]
        rows.append({"kernel": c.kernel, "variant": c.variant, "hardware": c.hardware,
                     "combo": f.combo, "model": f.model, "n_train": f.n, "seed": f.seed,
                     **rec})
        if pred is not None and f.n == _study_n(c, f.model, cfg):
            preds[(f.combo, f.model)] = pred
    runs = pd.DataFrame(rows)
    runs["model"] = pd.Categorical(runs["model"], categories=list(MODELS), ordered=True)
    runs = runs.sort_values(["combo", "model", "n_train", "seed"]).reset_index(drop=True)
    summary = _summarise(runs, combos, cfg)
    few = summary[summary.model.astype(str).str.startswith("NN")
                  & (summary.n_train < 2 * summary.n_params)]
    if not few.empty:
        say(f"note: {len(few)} network model(s) of the study (model and combination) had "
            f"fewer than 2 training rows per trainable parameter (e.g. {few.model.iloc[0]} on "
            f"{few.kernel.iloc[0]}/{few.variant.iloc[0]}/{few.hardware.iloc[0]}: "
            f"{few.n_train.iloc[0]} rows, {few.n_params.iloc[0]} parameters); they can "
            "memorise them")
    curves = _curves(runs, combos, cfg)
    res = Result(combos, cfg, runs, summary, curves, preds, skipped=skipped)
    res.timings["fits_s"] = t_fit
    res.timings["n_fits"] = len(fits)
    res.timings["n_resumed"] = len(done)  # read back from the checkpoint, not fitted here
    if cost:
        t0 = time.perf_counter()
        try:
            res.cost = cost_benchmark(cost_combination(combos), n_train=cfg.n_train,
                                      nn_options=cfg.nn_options)
        except Exception as exc:  # the accuracy results stand without the cost table
            say(f"warning: the cost benchmark failed ({type(exc).__name__}: {exc}); "
                "written without cost.csv")
        res.timings["cost_s"] = time.perf_counter() - t0
    res.timings["total_s"] = time.perf_counter() - t_start
    return res


def _summarise(runs: pd.DataFrame, combos, cfg: Config) -> pd.DataFrame:
    out = []
    for i, c in enumerate(combos):
        for m in cfg.models:
            n = _study_n(c, m, cfg)
            r = runs[(runs.combo == i) & (runs.model == m) & (runs.n_train == n)
                     & (runs.seed < cfg.seeds)]
            if r.empty:
                continue
            row = {"kernel": c.kernel, "variant": c.variant, "hardware": c.hardware,
                   "model": m, "n_train": n, "n_test": len(c.test), "seeds": len(r)}
            for k in ("mape", "filtered_mape", "within10", "spearman", "mdape"):
                row[f"{k}_mean"] = float(r[k].mean())
                row[f"{k}_std"] = float(r[k].std(ddof=1)) if len(r) > 1 else 0.0
            row["noise_floor"] = c.floor
            row["noise_floor_source"] = c.floor_source
            row["noise_floor_median"] = c.floor_median
            row["n_params"] = int(r["n_params"].median())
            row["train_time_mean_s"] = float(r["train_time_s"].mean())
            out.append(row)
    return pd.DataFrame(out)


def _curves(runs: pd.DataFrame, combos, cfg: Config) -> pd.DataFrame:
    if not cfg.curve_sizes or cfg.curve_seeds == 0:
        return pd.DataFrame()
    r = runs[runs.n_train.isin(cfg.curve_sizes) & (runs.seed < cfg.curve_seeds)]
    g = r.groupby(["combo", "kernel", "variant", "hardware", "model", "n_train"],
                  observed=True)
    cur = g.agg(mape_mean=("mape", "mean"), mape_std=("mape", "std"), seeds=("mape", "size"),
                train_time_mean_s=("train_time_s", "mean")).reset_index()
    return cur.drop(columns="combo")
