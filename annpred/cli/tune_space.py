"""``annpred tune-space``: measure a few configurations of a tuning space, predict the rest,
and name the best candidates."""
from __future__ import annotations

from annpred.cli.common import (add_key_options, add_space_options, add_transfer_option,
                                fmt_seconds, print_json)
from annpred.errors import ParameterError


def cmd_tune_space(args) -> int:
    from annpred.data import profiles as _data
    from annpred.study import tunespace as T
    from annpred.study.zoo import make_model, MODELS

    from annpred import validate

    validate.seed(args.seed)
    if args.budget is not None and args.budget < 8:
        raise ParameterError(f"--budget must be >= 8, got {args.budget}")
    if args.top < 1:
        raise ParameterError(f"--top must be >= 1, got {args.top}")
    if args.strategy is not None and args.strategy not in T.STRATEGIES:
        raise ParameterError(f"--strategy: unknown strategy {args.strategy!r}; strategies: "
                             f"{', '.join(T.STRATEGIES)}")
    if args.model not in MODELS:
        raise ParameterError(f"--model: unknown model {args.model!r}; models: "
                             f"{', '.join(MODELS)}")
    if args.out is not None:  # before minutes of fitting; never over an input file
        from annpred.cli.common import output_file

        output_file(args.out, "--out", [f for f in (args.space_file, args.transfer) if f])
    if args.space == "product":
        return _product(args)
    if args.next is not None or args.previous is not None:
        raise ParameterError(f"{'--next' if args.next is not None else '--previous'} applies "
                             "to --space product (a partial tuning run)")
    if args.restrict:
        raise ParameterError("--restrict applies to --space product (the cache's own "
                             "configurations already obey the tuning run's restrictions)")
    import numpy as np

    budget, strategy = args.budget or 250, args.strategy or "guided"
    say, human, notes = _progress(args), _printer(args), []

    def note(text: str) -> None:
        notes.append(text)
        human(f"note: {text}")
    df = _data.load_profiles([args.space_file], kernel=args.kernel, variant=args.variant,
                             hardware=args.hardware, problem_size=args.problem_size,
                             constants=args.constants, transfer=args.transfer)
    c = T.space_combination(df)
    r = T.select_on_space(c, make_model(args.model), budget=budget, top=args.top,
                          seed=args.seed, name=args.model, strategy=strategy, progress=say)
    human(f"{c.name}: {len(c.y)} configurations; {args.model} fitted on {budget} "
          f"measured ({strategy}, seed {args.seed}); complexity: "
          + _chosen(r, c))
    best = T.predicted_table(c, [r.best_row], r.predicted)[0]
    human("predicted best: " + _fmt(best, c.params, r.expected([r.best_row])))
    human(f"top {args.top} predicted (of the {len(c.y) - budget} not measured)"
          + (":" if r.picks is None else
             f"; expected = the slower of the last two fits' predictions x "
             f"{np.exp(r.picks['median']):.2f}, how the {r.picks['n']} configurations the "
             f"search picked ran against it, with their {r.picks['nominal']:.0%} interval:"))
    for i, row in enumerate(T.predicted_table(c, r.top_rows, r.predicted), 1):
        human(f" {i:3d}. " + _fmt(row, c.params, r.expected([r.top_rows[i - 1]])))
    if strategy == "guided" and r.picks is None:
        note("the search's rounds picked too few configurations (a 90% interval needs 19) "
             "for the picks' expected runtime; a larger --budget gives it")
    fastest = int(r.measured[c.y[r.measured].argmin()])
    row = T.predicted_table(c, [fastest], r.predicted)[0]
    human(f"best measured of the {budget}: {_params(row, c.params)}  "
          f"{fmt_seconds(row['measured_s'])}")
    human(f"the file holds every measurement, so the pick can be judged: MAPE {r.mape:.2f}% "
          f"over the {len(c.y) - budget} unmeasured configurations; regret (best of "
          f"{budget} measured + top {args.top}) / optimum = {r.regret:.3f}; random "
          f"sampling of as many ({budget} + {args.top}): {r.random_regret:.3f}")
    if r.low is not None or r.picks is not None:
        _judge_interval(c, r, human)
    if r.low is None and args.model.startswith("NN"):
        note("no network interval: a 90% interval needs 19 validation rows, a fifth of the "
             "rows the network is fitted on (a --budget of about 95 or more)")
    written = None
    if args.out:
        rest = r.unmeasured
        rest = rest[np.argsort(r.predicted[rest], kind="stable")]
        written = _write(args.out, c.X.iloc[rest], c.params, r.predicted[rest],
                         measured=c.y[rest], human=human)
    if args.json:
        from annpred.cli.tune_space_json import cache_report

        print_json(cache_report(args, c, r, budget=budget, strategy=strategy,
                                complexity=_complexity(r, c), notes=notes, written=written))
    return 0


def _judge_interval(c, r, human=print) -> None:
    """How the network's interval did on the unmeasured configurations, and each interval
    on the picks."""
    from annpred.study.picks import judge_picks

    j = judge_picks(r, c.y)
    k = j["top"]
    if r.low is not None:
        rest = r.unmeasured
        inside = (c.y[rest] >= r.low[rest]) & (c.y[rest] <= r.high[rest])
        human(f"the network's interval covers {inside.mean():.0%} of the unmeasured "
              f"configurations and {j['net_covered']} of the top {k}; the top {k} run a "
              f"median {j['over_predicted']:.2f}x their prediction (the picks are where a "
              "model errs low)")
    if r.picks is not None:
        human(f"the picks' interval covers {j['picks_covered']} of the top {k}; they run a "
              f"median {j['over_expected']:.2f}x the expected runtime")


def _product(args) -> int:
    """--space product: fit on every measured configuration of a (partial) cache and
    predict the rest of the product of its tune_params."""
    import numpy as np

    from annpred.data import kerneltuner as kt
    from annpred.data import transfer as tr
    from annpred.study import picks as P
    from annpred.study import tunespace as T
    from annpred.study.zoo import make_model

    if not kt.is_cache_file(args.space_file):
        raise ParameterError(f"{args.space_file}: --space product needs a Kernel Tuner cache "
                             "file (.json or .json.gz): its tune_params define the space")
    if args.next is not None and args.next < 1:
        raise ParameterError(f"--next must be >= 1, got {args.next}")
    if args.strategy is not None:
        raise ParameterError("--strategy applies to --space cache; with --space product the "
                             "model is fitted on the configurations the cache has measured")
    cache = kt.read_cache(args.space_file, kernel=args.kernel, hardware=args.hardware)
    if args.variant is not None:
        cache.variant = args.variant
    space = kt.product_space(cache, args.restrict)  # checks the restrictions first
    # the rows load_profiles would give
    frame = kt.with_space(kt.frame(cache), args.problem_size, args.constants)
    table = None if args.transfer is None else tr.read_table(args.transfer, args.kernel,
                                                               args.variant)
    c = T.space_combination(tr.with_transfer(frame, table))
    cand = tr.with_transfer(T.unmeasured(c, space.columns), table)
    if not len(cand):
        raise ParameterError(f"{args.space_file}: every configuration of the space is "
                             "measured or failed; nothing to predict (use --space cache to "
                             "judge a model on it)")
    previous = None if args.previous is None else _read_previous(args.previous, c.params)
    _progress(args)(f"fitting {args.model} on {args.budget or len(c.y)} measured "
                    f"configurations; predicting {len(cand):,}")
    sp = T.predict_unmeasured(c, make_model(args.model), cand, seed=args.seed,
                              budget=args.budget, name=args.model)
    n_fit, human = len(sp.fitted), _printer(args)
    human(f"{c.name}: {len(c.y)} measured configurations"
          + (f" ({cache.n_failed} failed)" if cache.n_failed else "")
          + f"; the product of its tune_params has {space.n_product:,}: "
          f"{space.n_restricted:,} break a restriction, {space.n_failed:,} failed, "
          f"{space.size - len(cand):,} measured, {len(cand):,} to predict")
    for k, (v, others) in space.held.items():
        human(f"note: {k} has one measured value ({v:g}); its other values "
              f"({', '.join(f'{o:g}' for o in others)}) are not predicted")
    human(f"{args.model} fitted on {n_fit} measured"
          + (" (all)" if n_fit == len(c.y) else f" (drawn at random, seed {args.seed})")
          + "; complexity: " + _chosen(sp, c))
    best_row = int(np.argmin(c.y))  # of every measured configuration, fitted on or not
    best_s = float(c.y[best_row])
    human(f"best measured: {_params(c.X.iloc[best_row], c.params)}  {fmt_seconds(best_s)}")
    top = sp.order[:args.top]
    picks, since = ((None, None) if previous is None else
                    _previous_picks(c, previous, args.previous, sp.coverage, human))
    expected = {}  # candidate row -> (expected, low, high) seconds, from --previous
    if picks is not None:  # cautious: the slower of this prediction and the earlier one
        cautious = P.cautious(sp.predicted, P.previous_predictions(cand, c.params, previous))
    interval = "" if sp.low is None else f"; the network's {sp.coverage:.0%} interval"
    human(f"top {len(top)} predicted (of the {len(cand):,} not measured; predicted speed-up "
          f"over the best measured{interval}"
          + ("" if picks is None else
             f"; expected = the slower of this and the earlier prediction x "
             f"{np.exp(picks['median']):.2f}, with the picks' {picks['nominal']:.0%} interval")
          + "):")
    for i, j in enumerate(top, 1):
        iv = (f"  [{fmt_seconds(sp.low[j])} - {fmt_seconds(sp.high[j])}]"
              if sp.low is not None else "")
        if picks is not None:
            e, lo, hi = expected[j] = tuple(float(v) for v in P.apply_picks(picks, cautious[j]))
            iv += f"  expected {fmt_seconds(e)} [{fmt_seconds(lo)} - {fmt_seconds(hi)}]"
        human(f" {i:3d}. {_params(cand.iloc[j], c.params)}  predicted "
              f"{fmt_seconds(sp.predicted[j])}{iv}  {best_s / sp.predicted[j]:.2f}x")
    nxt = T.suggest_next(c, sp, args.next) if args.next else []
    if args.next:
        human(f"next {len(nxt)} to measure (one guided round: the best predicted one-parameter "
              "neighbours of the fastest measured, then the fastest predicted); add their "
              "results to the cache and run this again:")
        for i, j in enumerate(nxt, 1):
            human(f" {i:3d}. {_params(cand.iloc[j], c.params)}  predicted "
                  f"{fmt_seconds(sp.predicted[j])}")
    if sp.outside:
        human(f"note: {sp.outside:,} of the candidates have a parameter outside the measured "
              "range (extrapolation)")
    human(f"not judged: these configurations are unmeasured, and the fastest predictions are "
          f"where a model errs low most often; measure the top {len(top)} before believing a "
          "speed-up" + ("" if args.out else " (--out FILE.csv writes every prediction)"))
    written = None
    if args.out:
        o = sp.order
        written = _write(args.out, cand.iloc[o], c.params, sp.predicted[o],
                         low=None if sp.low is None else sp.low[o],
                         high=None if sp.high is None else sp.high[o], human=human)
    if args.json:
        from annpred.cli.tune_space_json import previous_report, product_report

        print_json(product_report(args, c, sp, cand, space, n_failed=cache.n_failed,
                                  best_row=best_row, top=top, expected=expected,
                                  complexity=_complexity(sp, c),
                                  previous=previous_report(args.previous, since, picks),
                                  nxt=nxt, written=written))
    return 0


def _printer(args):
    """``print`` for the human report; with --json nothing (stdout holds the JSON)."""
    return (lambda *a, **k: None) if args.json else print


def _progress(args):
    """Stage lines on stderr (a fit takes seconds to a minute), unless --quiet."""
    import sys

    def say(msg: str) -> None:
        if not args.quiet:
            print(f"annpred: {msg}", file=sys.stderr, flush=True)
    return say


def _write(path, X, params, predicted, *, measured=None, low=None, high=None,
           human=print) -> int:
    """Every unmeasured configuration, fastest predicted first, as a CSV (atomic); returns
    how many rows it wrote."""
    import csv
    import io

    from annpred.files import atomic_write_text

    cols = ["rank", *params, "predicted_s"] + (["low_s", "high_s"] if low is not None else []) \
        + (["measured_s"] if measured is not None else [])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    vals = X[list(params)].to_numpy(dtype=float)
    for i in range(len(vals)):
        row = [i + 1, *(f"{v:g}" for v in vals[i]), f"{predicted[i]:.6g}"]
        if low is not None:
            row += [f"{low[i]:.6g}", f"{high[i]:.6g}"]
        if measured is not None:
            row.append(f"{measured[i]:.6g}")
        w.writerow(row)
    atomic_write_text(path, buf.getvalue())
    human(f"wrote {len(vals):,} predicted configurations to {path}")
    return len(vals)


def _read_previous(path, params):
    """An earlier ``--out`` file: the parameters and ``predicted_s`` of each row."""
    import pandas as pd

    from annpred.data.transfer import COLUMN
    from annpred.errors import DataError

    from annpred.data.rows import MAX_CSV_BYTES
    from annpred.validate import regular_file

    regular_file(path, "--previous", MAX_CSV_BYTES)  # a FIFO would block pandas for ever
    try:
        prev = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise DataError(f"{path}: cannot read it as a CSV ({e})") from None
    need = [p for p in params if p != COLUMN] + ["predicted_s"]
    missing = [p for p in need if p not in prev.columns]
    if missing:
        raise DataError(f"{path}: no column {', '.join(missing)} (--previous takes a file "
                        "that tune-space --out wrote for this tuning space)")
    for col in need:
        v = pd.to_numeric(prev[col], errors="coerce")
        bad = v.isna() | (v <= 0 if col == "predicted_s" else False)
        if bad.any():
            raise DataError(f"{path}: row {int(bad.idxmax()) + 2}, column {col}: "
                            f"{prev[col].iloc[int(bad.idxmax())]!r} is not "
                            + ("a positive number" if col == "predicted_s" else "a number"))
    return prev


def _previous_picks(c, previous, path, coverage, human=print) -> tuple[dict | None, int]:
    """The picks' calibration from the configurations measured since ``previous`` was
    predicted, or None (with a note) when too few of them are; and how many are."""
    import numpy as np

    from annpred.study import picks as P

    ratios = P.picks_since(c, previous)
    picks = P.pick_interval(ratios, coverage or P.PICK_COVERAGE)
    if picks is None:
        human(f"note: {len(ratios)} configurations of {path} are measured now; the picks' "
              "interval needs at least 19 (measure more of the suggestions)")
    else:
        human(f"the {picks['n']} configurations of {path} measured since ran a median "
              f"{np.exp(picks['median']):.2f}x their prediction there")
    return picks, len(ratios)


def _complexity(r, c) -> dict:
    """The expressions the fitted model uses (the space's own where it chose none)."""
    return dict(c.complexity if r.complexity is None else r.complexity)


def _chosen(r, c) -> str:
    """:func:`_complexity` as text."""
    return ", ".join(f"{k} = {v}" for k, v in _complexity(r, c).items()) or "none"


def _params(row, params) -> str:
    """A configuration's tuning parameters; with --transfer, the reference's runtime of it."""
    from annpred.data.transfer import COLUMN

    text = " ".join(f"{p}={float(row[p]):g}" for p in params if p != COLUMN)
    return text + (f" (reference {fmt_seconds(float(row[COLUMN]))})" if COLUMN in params
                   else "")


def _fmt(row: dict, params, expected=None) -> str:
    """A configuration, its prediction (with ``expected``, the ``(expected, low, high)`` of
    :meth:`annpred.study.tunespace.SpaceResult.expected` for it) and its measurement."""
    text = f"{_params(row, params)}  predicted {fmt_seconds(row['predicted_s'])}"
    if expected is not None:
        e, lo, hi = (float(v[0]) for v in expected)
        text += f", expected {fmt_seconds(e)} [{fmt_seconds(lo)} - {fmt_seconds(hi)}]"
    return text + f"  (measured {fmt_seconds(row['measured_s'])})"


def register(sub) -> None:
    s = sub.add_parser("tune-space", help="fit on a few measured configurations of a tuning "
                       "space and predict the best",
                       description="Fit a model on --budget configurations of a tuning "
                       "space (a Kernel Tuner cache file, or a profiling CSV with one kernel "
                       "on one device), measured as --strategy says, predict every "
                       "configuration, and "
                       "print the predicted best and the top k. The file holds every "
                       "measurement, so the pick is judged: MAPE, and the regret of the best "
                       "of (budget measured + top k predicted) beside random sampling with "
                       "the same number of measurements. With --space product the file is a "
                       "partial tuning run instead: the model is fitted on what it measured "
                       "and predicts the rest of the product of its tune_params (minus "
                       "failures and --restrict conditions), ranked, with intervals.")
    s.add_argument("space_file", metavar="FILE",
                   help="Kernel Tuner cache file or T4 results file (.json/.json.gz), or "
                   "profiling CSV")
    s.add_argument("--space", choices=("cache", "product"), default="cache",
                   help="cache (default): the file's configurations, all measured, so the "
                        "pick is judged; product: the product of the cache's tune_params "
                        "minus failures and --restrict, fitted on every measured "
                        "configuration (a partial tuning run) and predicted, not judged")
    s.add_argument("--restrict", action="append", default=[], metavar="CONDITION",
                   help="with --space product: a condition every configuration must meet, "
                        "in Kernel Tuner's syntax, e.g. 'block_size_x*block_size_y<=1024' "
                        "(repeatable; parsed with a whitelist, never run as Python)")
    s.add_argument("--next", type=int, default=None, metavar="N",
                   help="with --space product: also suggest N configurations to measure "
                        "next, as one round of the guided strategy")
    s.add_argument("--previous", metavar="FILE.csv", default=None,
                   help="with --space product: a file an earlier run wrote with --out; the "
                        "configurations measured since then calibrate the expected runtime "
                        "and interval of the top picks (a model errs low on what it ranks "
                        "fastest)")
    s.add_argument("--budget", type=int, default=None, help="measured configurations to fit "
                   "on (default: 250 with --space cache; every measured one with --space "
                   "product)")
    s.add_argument("--out", metavar="FILE.csv", help="write every unmeasured configuration "
                   "with its prediction, fastest first (atomic)")
    s.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    s.add_argument("--json", action="store_true",
                   help="print the report as one JSON object instead: the predicted best, "
                   "the top k (parameters, predicted_s, interval and expected bounds, "
                   "measured_s), mape_pct and regret with --space cache; --out still writes "
                   "the CSV")
    s.add_argument("--top", type=int, default=10, help="predicted candidates (default 10)")
    s.add_argument("--model", default="NN+C-auto", help="model from the study's zoo "
                   "(default NN+C-auto)")
    s.add_argument("--strategy", default=None,
                   help="how the budget is measured: guided (default: half at random, then "
                        "rounds of the best predicted neighbours of the fastest measured "
                        "and the fastest predicted) or random (all at random, one fit)")
    s.add_argument("--seed", type=int, default=0,
                   help="seed of the draw of measured configurations and of the fit (default 0)")
    add_key_options(s, "use")
    add_space_options(s)
    add_transfer_option(s)
    s.set_defaults(func=cmd_tune_space)
