"""``annpred tune-space --json``: the report as one JSON object (built from the same results
the human report prints; :func:`annpred.cli.common.print_json` writes it).

Every configuration is ``{"rank", "params", "reference_s", "predicted_s", "low_s", "high_s",
"expected_s", "expected_low_s", "expected_high_s", "measured_s"}`` (seconds; null where the
run has no such value), plus ``predicted_speedup`` with ``--space product``."""
from __future__ import annotations


def _params(row, params) -> tuple[dict, float | None]:
    """A configuration's tuning parameters, and (with --transfer) the reference's runtime."""
    from annpred.data.transfer import COLUMN

    ref = float(row[COLUMN]) if COLUMN in params else None
    return {p: _number(row[p]) for p in params if p != COLUMN}, ref


def _number(v):
    """A parameter value: an int where it is whole (as Kernel Tuner writes it), else float."""
    v = float(v)
    return int(v) if v.is_integer() else v


def _config(row, params, *, rank=None, predicted=None, low=None, high=None, expected=None,
            measured=None) -> dict:
    """One configuration; ``expected`` the ``(expected, low, high)`` seconds of the picks'
    calibration, or None."""
    p, ref = _params(row, params)
    e = (None, None, None) if expected is None else tuple(float(v) for v in expected)
    return {"rank": rank, "params": p, "reference_s": ref,
            "predicted_s": None if predicted is None else float(predicted),
            "low_s": None if low is None else float(low),
            "high_s": None if high is None else float(high),
            "expected_s": e[0], "expected_low_s": e[1], "expected_high_s": e[2],
            "measured_s": None if measured is None else float(measured)}


def _picks(picks) -> dict | None:
    """The picks' calibration: how many, the median measured / predicted, the coverage."""
    if picks is None:
        return None
    import math

    return {"n": int(picks["n"]), "median_ratio": math.exp(picks["median"]),
            "nominal": float(picks["nominal"])}


def cache_report(args, c, r, *, budget: int, strategy: str, complexity: dict,
                 notes: list, written: int | None) -> dict:
    """``--space cache``: the pick among the file's configurations, judged on them."""
    import numpy as np

    from annpred.study.picks import judge_picks

    def config(row, rank=None):
        e = r.expected([row])
        return _config(c.X.iloc[row], c.params, rank=rank, predicted=r.predicted[row],
                       low=None if r.low is None else r.low[row],
                       high=None if r.high is None else r.high[row],
                       expected=None if e is None else [v[0] for v in e],
                       measured=c.y[row])

    top = [config(row, i) for i, row in enumerate(r.top_rows, 1)]
    fastest = int(r.measured[c.y[r.measured].argmin()])
    judged = judge_picks(r, c.y)
    rest = r.unmeasured
    judged["net_covered_unmeasured"] = (
        None if r.low is None else
        float(np.mean((c.y[rest] >= r.low[rest]) & (c.y[rest] <= r.high[rest]))))
    return {"space": "cache", "kernel": c.kernel, "variant": c.variant, "hardware": c.hardware,
            "n_configurations": len(c.y), "model": args.model, "budget": budget,
            "strategy": strategy, "seed": args.seed, "complexity": dict(complexity),
            "best": config(r.best_row, 1), "top": top,
            "n_unmeasured": len(c.y) - budget,
            "best_measured": _config(c.X.iloc[fastest], c.params, measured=c.y[fastest]),
            "mape_pct": r.mape, "regret": r.regret, "random_regret": r.random_regret,
            "judged": judged, "picks": _picks(r.picks), "notes": notes,
            "out": None if args.out is None else str(args.out), "n_written": written}


def product_report(args, c, sp, cand, space, *, n_failed: int, best_row: int, top,
                   expected: dict, complexity: dict, previous: dict | None, nxt,
                   written: int | None) -> dict:
    """``--space product``: the ranked predictions of the unmeasured configurations.
    ``expected``: candidate row -> ``(expected, low, high)`` from ``--previous``."""
    best_s = float(c.y[best_row])

    def config(j, rank):
        d = _config(cand.iloc[j], c.params, rank=rank, predicted=sp.predicted[j],
                    low=None if sp.low is None else sp.low[j],
                    high=None if sp.high is None else sp.high[j], expected=expected.get(j))
        d["predicted_speedup"] = best_s / float(sp.predicted[j])
        return d

    ranked = [config(j, i) for i, j in enumerate(top, 1)]
    return {"space": "product", "kernel": c.kernel, "variant": c.variant,
            "hardware": c.hardware, "n_measured": len(c.y), "n_failed": n_failed,
            "product": {"n_product": space.n_product, "n_restricted": space.n_restricted,
                        "n_failed": space.n_failed, "n_measured": space.size - len(cand),
                        "n_candidates": len(cand)},
            "held": {k: {"value": float(v), "others": [float(o) for o in others]}
                     for k, (v, others) in space.held.items()},
            "model": args.model, "n_fit": len(sp.fitted), "seed": args.seed,
            "complexity": dict(complexity),
            "best_measured": _config(c.X.iloc[best_row], c.params, measured=best_s),
            "best": ranked[0], "top": ranked, "interval_coverage": sp.coverage,
            "previous": previous,
            "next": [_config(cand.iloc[j], c.params, rank=i, predicted=sp.predicted[j])
                     for i, j in enumerate(nxt, 1)],
            "n_outside": int(sp.outside),
            "out": None if args.out is None else str(args.out), "n_written": written}


def previous_report(path, n_since: int | None, picks) -> dict | None:
    """``--previous FILE``: how many of its configurations are measured now, and the picks'
    calibration from them (null: fewer than a 90% interval needs)."""
    if path is None:
        return None
    return {"file": str(path), "n_measured_since": int(n_since), "picks": _picks(picks)}
