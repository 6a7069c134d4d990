"""The accuracy study: every model on the same splits, honest metrics, reports and plots.

``evaluate(df, Config(...))`` runs it (:mod:`annpred.study.runner`); ``write_outputs`` writes
CSV, Markdown and PNGs (:mod:`annpred.study.report`, :mod:`annpred.study.plots`).
"""
from annpred.study.combos import Combination, prepare, prepare_combination
from annpred.study.metrics import (FILTER_DROP, filtered_mape, mape, mdape, noise_floor,
                                   noise_floor_from_cv, relative_errors, score, spearman, within)
from annpred.study.report import (floor_summary, headline, headline_markdown, verdicts,
                                  write_outputs)
from annpred.study.runner import DEFAULT_CURVE_SIZES, Config, Result, evaluate
from annpred.study.zoo import BASELINES, DEFAULT_MODELS, DESCRIPTIONS, MODELS, make_model

__all__ = ["BASELINES", "Combination", "Config", "DEFAULT_CURVE_SIZES", "DEFAULT_MODELS",
           "DESCRIPTIONS", "FILTER_DROP", "MODELS", "Result", "evaluate", "filtered_mape",
           "floor_summary", "headline",
           "headline_markdown", "make_model",
           "mape", "mdape", "noise_floor", "noise_floor_from_cv", "prepare", "prepare_combination",
           "relative_errors", "score", "spearman", "verdicts", "within", "write_outputs"]
