"""Issue 11: property-based tests (hypothesis, derandomized) and the fuzz harness
(experiments/fuzz.py, fixed seeds) over the expression parser, the CSV loader, the model
loader and the C exporter: nothing may escape but annpred's own errors. About a minute."""
import csv
import io
import json
import random
import sys
import warnings
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annpred.errors import AnnpredError
from annpred.runtime.export_c import header_text
from annpred.spec import expr

# appended, not prepended: experiments/halide.py must not shadow the halide package
sys.path.append(str(Path(__file__).resolve().parent.parent / "experiments"))
import fuzz  # noqa: E402

def SETTINGS(n):
    return settings(derandomize=True, deadline=None, database=None, max_examples=n,
                    suppress_health_check=list(HealthCheck))


def _only_annpred_errors(fn, *args):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args)
    except AnnpredError:
        return None


# -- expressions ------------------------------------------------------------------------

_leaf = st.sampled_from(["m", "n", "1", "0", "2.5", "1e300", "1e-300", "10**30", "-3",
                         "9007199254740881", "x", "nan", "1" + "0" * 40])
_expr = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(list("+-*/") + ["**", "//", "%"]), inner).map(
            lambda t: f"({t[0]}{t[1]}{t[2]})"),
        st.tuples(st.sampled_from(["log", "sqrt", "exp", "abs", "min", "max", "floor",
                                   "ceiling", "sopfr", "lpf", "log2", "eval"]),
                  st.lists(inner, min_size=0, max_size=20)).map(
            lambda t: f"{t[0]}({','.join(t[1])})"),
        inner.map(lambda s: "-" + s)),
    max_leaves=60)


@SETTINGS(400)
@given(_expr)
def test_expression_grammar_only_annpred_errors(text):
    """Any text either raises annpred's error or parses over the given symbols only and
    evaluates to finite numbers, one per row (what ``evaluate`` promises)."""
    def go():
        e = expr.parse(text, ["m", "n"])
        assert {str(s) for s in e.free_symbols} <= {"m", "n"}, text
        return expr.evaluate(text, {"m": np.array([3.0, 1e3]), "n": np.array([0.5, 7.0])})
    out = _only_annpred_errors(go)
    if out is not None:
        assert out.shape == (2,) and out.dtype == float, (text, out)
        assert np.all(np.isfinite(out)), (text, out)


@SETTINGS(300)
@given(st.lists(st.sampled_from(list("mn0123456789+-*/().,e \\") + ["**", "max(",
                                                                     "sopfr("]),
                max_size=300))
def test_expression_soup_only_annpred_errors(tokens):
    """Token soup either raises annpred's error or parses to an expression over m and n."""
    text = "".join(tokens)
    e = _only_annpred_errors(expr.parse, text, ["m", "n"])
    if e is not None:
        assert {str(s) for s in e.free_symbols} <= {"m", "n"}, text


# -- CSVs -------------------------------------------------------------------------------

_cell = st.one_of(st.sampled_from(["1", "2.5", "", "nan", "inf", "-1", "1e-320", "x", "toy",
                                   "v1", "cpu-x-t1", "9" * 400, " 3", "NA", "True"]),
                  st.text(max_size=8))


@SETTINGS(150)
@given(header=st.lists(st.one_of(st.sampled_from(["kernel", "variant", "hardware", "m", "n",
                                                  "runtime_s", "point", "seed", "pass",
                                                  "sampler"]), st.text(max_size=6)),
                       min_size=1, max_size=8),
       rows=st.lists(st.lists(_cell, min_size=0, max_size=9), min_size=0, max_size=12),
       bom=st.booleans())
def test_csv_loader_only_annpred_errors(tmp_path_factory, header, rows, bom):
    from annpred.data.profiles import load_profiles
    from annpred.model.trainer import duplicate_keys

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    p = tmp_path_factory.mktemp("csv") / "h.csv"
    p.write_text(("\ufeff" if bom else "") + buf.getvalue(), encoding="utf-8",
                 errors="surrogatepass")
    df = _only_annpred_errors(lambda: load_profiles([p]))
    if df is not None:  # what the loader promises of the rows it accepts
        y = df["runtime_s"].to_numpy(dtype=float)
        assert len(y) and np.all(np.isfinite(y)) and np.all(y > 0), (header, rows)
        for key in ("kernel", "variant", "hardware"):
            assert df[key].map(lambda v: isinstance(v, str) and v != "").all(), (key, rows)
        _only_annpred_errors(duplicate_keys, df)


# -- model files ------------------------------------------------------------------------

_json = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                               st.text(max_size=5)),
                     lambda inner: st.one_of(st.lists(inner, max_size=4),
                                             st.dictionaries(st.text(max_size=4), inner,
                                                             max_size=4)),
                     max_leaves=12)
_KEYS = ["kernel", "parameters", "features", "complexity", "scaler", "target_scaler", "layers",
         "skip", "train", "n_params", "activation", "input_transform", "steps", "machine"]


@SETTINGS(200)
@given(key=st.sampled_from(_KEYS), value=_json, seed=st.integers(0, 1000))
def test_model_loader_only_annpred_errors(tmp_path_factory, key, value, seed):
    from annpred.model.schema import load_model
    from annpred.runtime.predictor import LoadedModel

    d = fuzz.make_model(random.Random(seed), ["m", "n"], {"work": "m*n"})
    d[key] = value
    p = tmp_path_factory.mktemp("model") / "m.json"
    p.write_text(json.dumps(d, allow_nan=True))
    out = _only_annpred_errors(lambda: LoadedModel(load_model(p)).predict(
        {"m": np.array([2.0]), "n": np.array([3.0])}))
    if out is not None:  # a model that loads predicts one finite, positive runtime
        assert np.shape(out) == (1,) and np.isfinite(out[0]) and out[0] > 0, (key, value, out)


# -- C export ---------------------------------------------------------------------------

def _shape(text: str) -> tuple:
    return (text.count("/*"), text.count("*/"), text.count('"'), text.count("??"),
            text.count("\\\n"), text.count("\n"))


@SETTINGS(200)
@given(names=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=3, unique=True),
       cname=st.text(min_size=1, max_size=12))
def test_exporter_keeps_user_text_out_of_code(names, cname):
    """Any header built from hostile names has the comment, string and line structure of
    the same header built from plain names."""
    rng = random.Random(0)
    hostile = fuzz.make_model(rng, names, {cname: "2"})
    try:
        text = header_text(hostile, name="mdl")
    except AnnpredError:
        return
    plain = fuzz.make_model(random.Random(0), [f"p{i}" for i in range(len(names))],
                            {"c": "2"})
    assert _shape(text) == _shape(header_text(plain, name="mdl"))


# -- the harness ------------------------------------------------------------------------

def test_fuzz_harness_finds_no_crash(tmp_path):
    doors = {"expressions": fuzz.fuzz_expressions(400, 11),
             "csvs": fuzz.fuzz_csvs(200, 11, tmp_path),
             "models": fuzz.fuzz_models(200, 11, tmp_path),
             "export": fuzz.fuzz_export(80, 11, tmp_path, compile_every=20)}
    crashes = {k: (c.crashes, c.examples[:3]) for k, c in doors.items() if c.crashes}
    assert not crashes
    for c in doors.values():  # the harness reaches both sides of every door
        assert 0 < c.refusals < c.inputs
