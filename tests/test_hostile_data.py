"""Bad training data that used to train silently or end in a traceback: catalog kernels'
missing or out-of-domain parameter columns, bad bookkeeping cells, hostile Kernel Tuner
cache files (corrupt gzip, deep nesting, huge integers, FIFOs, devices, gzip bombs, bad
metadata, duplicated configurations), CSVs split by another delimiter, --n-train beyond the
rows. Each is one DataError/ParameterError naming file, row and column (exit 2 in the CLI)."""
import gzip
import json
import os
from pathlib import Path
import random
import threading
import warnings

import pytest

from annpred.data import kerneltuner as kt
from annpred.data.profiles import load_profiles
from annpred.errors import AnnpredWarning, DataError, ParameterError
from annpred.model.trainer import train_frame
from conftest import run_cli

MM = ("kernel,variant,hardware,m,n,k,da,db,runtime_s,runtime_cv,repeats,runtime_min_s,"
      "threads,sampler,seed,point,pass,timestamp,annpred_version")


def _mm_rows(n=12, variant="numpy"):
    rng = random.Random(0)
    out = []
    for i in range(n):
        m, nn, k = (rng.randint(1, 300) for _ in range(3))
        t = 1e-9 * m * nn * k + 1e-6
        out.append({"kernel": "matmul", "variant": variant, "hardware": "cpu-x-t1", "m": m,
                    "n": nn, "k": k, "da": 0.5, "db": 0.5, "runtime_s": repr(t),
                    "runtime_cv": 0.01, "repeats": 5, "runtime_min_s": repr(t), "threads": 1,
                    "sampler": "random", "seed": 0, "point": i, "pass": 0,
                    "timestamp": "2026-11-29T00:00:00", "annpred_version": "0.1.0"})
    return out


def _write(tmp_path, rows, cols=MM, name="mm.csv"):
    cols = cols.split(",")
    p = tmp_path / name
    p.write_text("\n".join([",".join(cols)] + [",".join(str(r[c]) for c in cols)
                                               for r in rows]) + "\n")
    return p


def test_good_matmul_rows_load(tmp_path):
    df = load_profiles([_write(tmp_path, _mm_rows())])
    assert len(df) == 12 and {"m", "n", "k"} <= set(df.columns)


# -- 1: a catalog kernel's parameter columns must all be there -------------------------

def test_missing_catalog_parameter_column_is_refused(tmp_path):
    p = _write(tmp_path, _mm_rows(), MM.replace(",m,", ","))
    with pytest.raises(DataError, match=r"missing parameter column\(s\) 'm' of catalog "
                                        r"kernel matmul/numpy") as e:
        load_profiles([p])
    assert str(p) in str(e.value)
    # --features names the inputs: the user said which columns to use
    assert list(load_profiles([p], features=["n", "k"])[["n", "k"]].columns) == ["n", "k"]


def test_another_catalog_kernel_named_on_matmul_rows_is_refused(tmp_path):
    p = _write(tmp_path, _mm_rows())
    with pytest.raises(DataError, match=r"'c', 'f' of catalog kernel conv2d.*kernel column "
                                        r"holds 'matmul'"):
        load_profiles([p], kernel="conv2d")


def test_cli_train_missing_column_exit_2_nothing_written(tmp_path):
    p = _write(tmp_path, _mm_rows(), MM.replace(",m,", ","))
    out = tmp_path / "out"
    r = run_cli(["train", p, "--out", out])
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("annpred: error:") and "'m'" in r.stderr and str(p) in r.stderr
    assert not out.exists()


# -- 2: values outside the catalog domain, bad bookkeeping cells -------------------------

@pytest.mark.parametrize("col, value, match", [
    ("m", "1e300", "too large"), ("m", "-5", "positive integer"),
    ("m", "0", "positive integer"), ("m", "12.5", "not an integer"),
    ("da", "1.5", r"in \(0, 1\]"),
])
def test_out_of_domain_parameters_are_refused_naming_row_and_column(tmp_path, col, value,
                                                                    match):
    rows = _mm_rows()
    rows[5][col] = value
    p = _write(tmp_path, rows)
    with pytest.raises(DataError, match=match) as e:
        load_profiles([p])
    assert f"{p}: row 7, column {col!r}" in str(e.value)


def test_a_kernels_constraint_is_checked(tmp_path):
    head = ("kernel,variant,hardware,n,k,c,f,runtime_s,seed,point,pass")
    rows = [{"kernel": "conv2d", "variant": "numpy", "hardware": "h", "n": 64, "k": 3,
             "c": 2, "f": 2, "runtime_s": 1e-3 * (i + 1), "seed": 0, "point": i, "pass": 0}
            for i in range(10)]
    rows[3]["k"] = 99
    with pytest.raises(DataError, match=r"row 5: parameters .*k=99.* violate the constraint "
                                        r"of kernel conv2d \(k <= n\)"):
        load_profiles([_write(tmp_path, rows, head)])


@pytest.mark.parametrize("col, value, match", [
    ("seed", "-1", "negative"), ("seed", "abc", "not a finite number"),
    ("pass", "-1", "negative"), ("pass", "1.5", "not an integer"),
    ("threads", "two", "not a finite number"), ("threads", "0", "below 1"),
    ("runtime_cv", "abc", "not a finite number"), ("repeats", "2.5", "not an integer"),
    ("point", "-3", "negative"),
])
def test_bad_bookkeeping_cells_are_refused(tmp_path, col, value, match):
    rows = _mm_rows()
    rows[2][col] = value
    p = _write(tmp_path, rows)
    with pytest.raises(DataError, match=match) as e:
        load_profiles([p])
    assert f"{p}: row 4, column {col!r}: {value!r}" in str(e.value)


def test_empty_bookkeeping_cells_still_load(tmp_path):
    rows = _mm_rows()
    for r in rows:
        r["seed"] = r["threads"] = r["runtime_cv"] = ""
    df = load_profiles([_write(tmp_path, rows)])
    assert df["seed"].isna().all()


# -- 3: Kernel Tuner caches read with bounded cost --------------------------------------

def _cache_doc(n=12):
    cache = {}
    for i in range(n):
        cache[f"{i},1"] = {"bx": i + 1, "by": 1, "time": 1.0 + i, "times": [1.0 + i] * 3}
    return {"device_name": "NVIDIA Test GPU", "kernel_name": "k", "problem_size": [64, 64],
            "tune_params_keys": ["bx", "by"], "tune_params": {"bx": list(range(1, n + 1)),
                                                             "by": [1]}, "cache": cache}


def test_corrupt_gzip_body_is_a_data_error(tmp_path):
    data = bytearray(gzip.compress(json.dumps(_cache_doc(400)).encode()))
    data[10] = 0xFF  # the first deflate block's header: zlib.error, a traceback before
    p = tmp_path / "corrupt.json.gz"
    p.write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupt.json.gz: corrupt gzip data"):
        kt.read_cache(p)
    t = tmp_path / "trunc.json.gz"
    t.write_bytes(bytes(data[:len(data) // 3]))
    with pytest.raises(DataError, match="trunc.json.gz: .*(truncated|corrupt)"):
        kt.read_cache(t)


@pytest.mark.parametrize("text, match", [
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
    ('{"a": 1' + "0" * 5000 + "}", "integer of 5001 digits"),
])
def test_hostile_json_is_a_data_error(tmp_path, text, match):
    p = tmp_path / "h.json"
    p.write_text(text)
    with pytest.raises(DataError, match=match):
        kt.read_cache(p)


def test_fifo_and_device_are_refused_unread(tmp_path):
    fifo = tmp_path / "f.json.gz"
    os.mkfifo(fifo)
    # a writer that lets a reader of the FIFO see its end (the old code read it; without
    # the writer it blocked forever)
    writer = threading.Thread(target=lambda: open(fifo, "wb").close(), daemon=True)
    writer.start()
    try:
        with pytest.raises(DataError, match="not a regular file"):
            kt.read_cache(fifo)
    finally:  # release the writer if nothing opened the FIFO for reading
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(5)
    # a device (``/dev/zero`` is read until memory runs out; /dev/null, an empty file, here)
    z = tmp_path / "z.json"
    z.symlink_to("/dev/null")
    with pytest.raises(DataError, match="not a regular file"):
        load_profiles([z])


def test_gzip_bomb_stops_at_the_limit(tmp_path, monkeypatch):
    from annpred.data import jsondoc

    monkeypatch.setattr(jsondoc, "MAX_BYTES", 1 << 20)
    p = tmp_path / "bomb.json.gz"
    p.write_bytes(gzip.compress(b" " * (8 << 20)))
    with pytest.raises(DataError, match="decompresses to more than 1,048,576 bytes"):
        kt.read_cache(p)


def test_the_limit_leaves_room_for_real_caches():
    from annpred.data import jsondoc

    # the shared data folder beside the repository, where a checkout has it
    real = (Path(__file__).resolve().parents[2] / "shared" / "data" / "kernel_tuner"
            / "dedispersion_A4000.json.gz")
    assert jsondoc.MAX_BYTES >= 20 * 12_236_636  # its decompressed size
    if os.path.exists(real):
        assert kt.read_cache(real).n_rows > 10_000


@pytest.mark.parametrize("size", ["huge", [0, -5], [True, 4], [1, 2, 3, 4]])
def test_bad_problem_size_in_a_cache_is_refused(tmp_path, size):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({**_cache_doc(), "problem_size": size}))
    with pytest.raises(DataError, match="c.json: 'problem_size' .* is not one to three sizes"):
        kt.read_cache(p)


def test_duplicated_configuration_in_a_cache_is_refused(tmp_path):
    doc = _cache_doc()
    doc["cache"]["again"] = {**doc["cache"]["3,1"], "time": 99.0}
    p = tmp_path / "c.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"configuration 'again' and '3,1' are the same "
                                        r"configuration \(bx=4, by=1\) with times 4.0 and 99.0"):
        kt.read_cache(p)


def test_a_transfer_reference_takes_the_median_of_a_configuration_recorded_twice(tmp_path):
    from annpred.data.transfer import read_table

    doc = _cache_doc()
    doc["cache"]["again"] = {**doc["cache"]["3,1"], "time": 8.0}
    p = tmp_path / "ref.json"
    p.write_text(json.dumps(doc))
    assert read_table(p).runtimes[(4.0,)] == pytest.approx((4.0 + 8.0) / 2 / 1000)


def test_constants_given_twice_are_refused():
    with pytest.raises(ParameterError, match="--constants: 'a' is given twice"):
        kt.space_arguments(None, "a=1,a=2")


# -- 5: another delimiter ----------------------------------------------------------------

@pytest.mark.parametrize("sep, name", [(";", "';'"), ("\t", "a tab")])
def test_other_delimiter_gets_a_hint(tmp_path, sep, name):
    p = tmp_path / "x.csv"
    p.write_text(MM.replace(",", sep) + "\n" + sep.join(["matmul", "numpy", "h"] + ["1"] * 16)
                 + "\n")
    with pytest.raises(DataError, match=f"seems to use {name} as the delimiter.*must be "
                                        "comma-separated"):
        load_profiles([p])


# -- 4: --n-train beyond the rows --------------------------------------------------------

def test_n_train_beyond_the_rows_warns_that_nothing_is_held_out(tmp_path):
    df = load_profiles([_write(tmp_path, _mm_rows())])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reports = train_frame(df, None, n_train=1000, max_epochs=5, n_init=1)
    assert reports[0].n_holdout == 0
    msgs = [str(w.message) for w in caught if issubclass(w.category, AnnpredWarning)]
    assert any("--n-train 1000 is not below its 12 rows" in m and "none is held out" in m
               for m in msgs), msgs


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.update(measurements=5), "'measurements' must be a list, got int"),
    (lambda r: r["times"].update(runtimes=5), "'times.runtimes' must be a list, got int"),
])
def test_t4_lists_that_are_not_lists_are_refused(tmp_path, edit, message):
    results = [{"configuration": {"bx": i + 1}, "invalidity": "correct",
                "times": {"runtimes": [1.0 + i]}} for i in range(10)]
    edit(results[0])
    p = tmp_path / "run_T4.json"
    p.write_text(json.dumps({"schema_version": "1.0.0", "metadata": {"timeunit": "ms"},
                             "results": results}))
    with pytest.raises(DataError, match=f"run_T4.json: result 0: {message}"):
        kt.read_cache(p, kernel="k", hardware="h")
