import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from annpred.data.profiles import load_profiles
from annpred.errors import DataError


def write(tmp_path, text, name="p.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD = "kernel,variant,hardware,n,runtime_s\n" + "".join(
    f"toy,a,hw,{n},{n * 1e-6}\n" for n in range(1, 21))


def test_loads_valid_csv(tmp_path):
    df = load_profiles([write(tmp_path, GOOD)])
    assert len(df) == 20 and df["runtime_s"].dtype == float and df["n"].dtype == float


@pytest.mark.parametrize("text,fragment", [
    ("", "empty"),
    ("kernel,variant,hardware,n,runtime_s\n", "no data rows"),
    ("kernel,variant,hardware,n,n,runtime_s\ntoy,a,hw,1,1,1\n", "duplicate column 'n'"),
    ("kernel,variant,hardware,n\ntoy,a,hw,1\n", "missing column 'runtime_s'"),
    ("kernel,variant,hardware,n,runtime_s\ntoy,a,hw,1,abc\n", "row 2, column 'runtime_s'"),
    ("kernel,variant,hardware,n,runtime_s\ntoy,a,hw,1,1e-3\ntoy,a,hw,x,1e-3\n",
     "row 3, column 'n'"),
    ("kernel,variant,hardware,n,runtime_s\ntoy,a,hw,1,nan\n", "not a finite number"),
    ("kernel,variant,hardware,n,runtime_s\ntoy,a,hw,1,inf\n", "not a finite number"),
    ("kernel,variant,hardware,n,runtime_s\ntoy,a,hw,1,0\n", "not positive"),
    ("kernel,variant,hardware,n,runtime_s\ntoy,a,hw,1,-1e-3\n", "not positive"),
    ("kernel,variant,hardware,n,runtime_s\ntoy,a,hw,,1e-3\n", "empty"),
    ("kernel,variant,hardware,n,runtime_s\n,a,hw,1,1e-3\n", "column 'kernel' is empty"),
])
def test_bad_csv_names_the_problem(tmp_path, text, fragment):
    p = write(tmp_path, text)
    with pytest.raises(DataError) as e:
        load_profiles([p])
    assert fragment in str(e.value) and str(p) in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_profiles([tmp_path / "nope.csv"])


def test_external_csv_needs_key_columns_or_options(tmp_path):
    p = write(tmp_path, "m,time\n1,2\n")
    with pytest.raises(DataError, match="--kernel"):
        load_profiles([p], target="time")
    df = load_profiles([p], target="time", features=["m"], kernel="k", variant="v",
                       hardware="h")
    assert df["runtime_s"].tolist() == [2.0]


def test_missing_feature_column(tmp_path):
    p = write(tmp_path, "m,time\n1,2\n")
    with pytest.raises(DataError, match="missing feature column 'k'"):
        load_profiles([p], target="time", features=["m", "k"], kernel="k", variant="v",
                      hardware="h")


cell = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                 st.text(alphabet="0123456789.-eE xn", max_size=6))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(cell, cell), min_size=1, max_size=8))
def test_loader_accepts_exactly_finite_positive_runtimes(tmp_path_factory, rows):
    d = tmp_path_factory.mktemp("csv")
    lines = ["kernel,variant,hardware,n,runtime_s"]
    lines += [f"k,v,h,{a.replace(',', '')},{b.replace(',', '')}" for a, b in rows]
    p = d / "x.csv"
    p.write_text("\n".join(lines) + "\n")
    try:
        df = load_profiles([p])
    except DataError as e:
        assert str(p) in str(e)
        return
    assert np.all(np.isfinite(df["runtime_s"])) and np.all(df["runtime_s"] > 0)
    assert np.all(np.isfinite(df["n"]))
    assert len(df) == len(rows)


def test_variant_option_selects_rows_of_a_multi_variant_csv_and_renames_a_single_one(tmp_path):
    from annpred.data.profiles import load_profiles

    rows = [{"kernel": "k", "variant": v, "hardware": "h", "n": n, "runtime_s": 1e-3 * n,
             "sampler": "random", "seed": 0, "point": n, "pass": 0}
            for n in range(1, 6) for v in ("a", "b")]
    path = tmp_path / "p.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    df = load_profiles([path], variant="b")
    assert set(df["variant"]) == {"b"} and len(df) == 5
    assert list(df["_row"]) == [3, 5, 7, 9, 11]  # the file's own row numbers
    with pytest.raises(DataError, match=r"no rows with variant 'c'.*holds a, b"):
        load_profiles([path], variant="c")
    one = tmp_path / "one.csv"
    pd.DataFrame([r for r in rows if r["variant"] == "a"]).to_csv(one, index=False)
    assert set(load_profiles([one], variant="renamed")["variant"]) == {"renamed"}
