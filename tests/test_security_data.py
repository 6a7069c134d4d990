"""Security findings on the data readers (audit #3, #4, #6, #12), each with the hostile file
built here: a gzip T4/cache file of millions of tiny configurations (work bounded while the
JSON is parsed), the ``<csv>.machine.json`` sidecar (bounded read, bounded parse, checked
structure; for training it is optional information, so a bad one is a warning and the
machine is known by its fingerprint alone), and tuning-parameter names that collide with
the columns annpred adds to every row or are not column names (refused when the file is
read, before any work)."""
from __future__ import annotations

import gzip
import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest

from annpred.data import jsondoc, t4 as t4mod
from annpred.data import kerneltuner as kt
from annpred.data.profiles import machine_of
from annpred.data.rows import MACHINES_FORMAT, read_machines, write_machines
from annpred.errors import AnnpredWarning, DataError

FP = "0123456789ab"


def _cache(tmp_path, keys, n=12, name="c.json", gz=False):
    cache = {}
    for i in range(n):
        rec = {k: (i if j == 0 else i % 3) for j, k in enumerate(keys)}
        rec["time"] = 1.0 + i
        rec["times"] = [1.0 + i] * 3
        cache[",".join(str(rec[k]) for k in keys)] = rec
    doc = {"device_name": "NVIDIA A100", "kernel_name": "k", "problem_size": [1024],
           "tune_params_keys": list(keys),
           "tune_params": {k: sorted({r[k] for r in cache.values()}) for k in keys},
           "cache": cache}
    p = tmp_path / name
    text = json.dumps(doc)
    p.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return p


def _t4(tmp_path, confs, name="r.json", gz=False):
    results = [{"configuration": c, "times": {"runtimes": [1.0, 1.1]},
                "invalidity": "correct"} for c in confs]
    text = json.dumps({"schema_version": "1.0.0", "metadata": {"timeunit": "ms"},
                       "results": results})
    p = tmp_path / name
    p.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return p


# -- #3: the number of configurations is bounded while the file is parsed --------------

def _bomb(tmp_path, n, name="bomb.json.gz"):
    r = '{"configuration":{"a":1,"b":2},"times":{"runtimes":[1,1,1]},"invalidity":"correct"}'
    text = ('{"schema_version":"1.0.0","metadata":{"timeunit":"ms"},"results":['
            + ",".join([r] * n) + "]}")
    p = tmp_path / name
    p.write_bytes(gzip.compress(text.encode(), 9))
    return p


def test_limits_are_generous_for_real_files():
    # the largest real caches have about 18,000 configurations
    assert jsondoc.MAX_CONFIGURATIONS == 1_000_000
    assert jsondoc.MAX_OBJECTS >= 3 * jsondoc.MAX_CONFIGURATIONS


def test_too_many_t4_results_stop_the_parse(tmp_path, monkeypatch):
    monkeypatch.setattr(jsondoc, "MAX_CONFIGURATIONS", 100)
    p = _bomb(tmp_path, 101)

    def never(*a, **k):  # the parse itself stops: no result is ever converted
        raise AssertionError("converted a file over the limit")

    monkeypatch.setattr(t4mod, "as_cache", never)
    with pytest.raises(DataError, match=r"more than 100 configurations") as e:
        kt.read_cache(p)
    assert str(p) in str(e.value)


def test_too_many_cache_records_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(jsondoc, "MAX_CONFIGURATIONS", 50)
    p = _cache(tmp_path, ["a", "b"], n=51, gz=True, name="c.json.gz")
    with pytest.raises(DataError, match=r"more than 50 configurations") as e:
        kt.read_cache(p)
    assert str(p) in str(e.value)
    monkeypatch.setattr(jsondoc, "MAX_CONFIGURATIONS", 51)
    assert kt.read_cache(p).n_rows == 51  # at the limit: read


def test_too_many_objects_of_any_kind_are_refused(tmp_path, monkeypatch):
    """Objects that are not configurations (``results: [{}, {}, ...]``) count too."""
    monkeypatch.setattr(jsondoc, "MAX_OBJECTS", 1000)
    p = tmp_path / "empty.json.gz"
    p.write_bytes(gzip.compress(('{"results":[' + ",".join(["{}"] * 1001) + "]}").encode()))
    with pytest.raises(DataError, match=r"more than 1,000 JSON objects") as e:
        kt.read_cache(p)
    assert str(p) in str(e.value)


@pytest.mark.slow
def test_the_reported_bomb_is_refused_at_the_real_limit(tmp_path):
    """The audit's file (3.1 million identical results in 870 KB) stops at 1,000,000;
    a smaller stand-in with the limit just passed keeps the test quick."""
    p = _bomb(tmp_path, jsondoc.MAX_CONFIGURATIONS + 1)
    assert p.stat().st_size < 2_000_000
    with pytest.raises(DataError, match=r"more than 1,000,000 configurations"):
        kt.read_cache(p)


def test_truncated_cache_is_still_mended(tmp_path):
    p = _cache(tmp_path, ["a", "b"])
    text = p.read_text()
    assert text.endswith("]}}}")
    p.write_text(text[:-2] + ",")  # a run that did not finish: no closing braces
    assert kt.read_cache(p).n_rows == 12


# -- #4: the machine sidecar ------------------------------------------------------------

def _csv(tmp_path, name="x.csv"):
    p = tmp_path / name
    p.write_text("kernel,variant,hardware,m,runtime_s,machine\nk,v,h,1,0.1," + FP + "\n")
    return p


def _frame(csv):
    return pd.DataFrame({"kernel": ["k"], "variant": ["v"], "hardware": ["h"],
                         "machine": [FP], "_source": [str(csv)]})


def _no_hang(seconds=20):
    def boom(*_):
        raise TimeoutError("hung reading the sidecar")
    signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)


HOSTILE = {
    "list": lambda s: s.write_text("[]"),
    "deep": lambda s: s.write_text("[" * 200_000 + "]" * 200_000),
    "bigint": lambda s: s.write_text('{"format": "x", "n": ' + "9" * 5000 + "}"),
    "huge": lambda s: s.write_bytes(b" " * (5 << 20) + b"{}"),
    "devzero": lambda s: s.symlink_to("/dev/zero"),
    "fifo": lambda s: os.mkfifo(s),
    "dir": lambda s: s.mkdir(),
    "binary": lambda s: s.write_bytes(b"\xff\xfe\x00"),
    "not_json": lambda s: s.write_text("{"),
    "machines_list": lambda s: s.write_text(json.dumps(
        {"format": MACHINES_FORMAT, "machines": []})),
    "wrong_fp": lambda s: s.write_text(json.dumps(
        {"format": MACHINES_FORMAT, "machines": {FP: {"fingerprint": "ffffffffffff"}}})),
    "bad_key": lambda s: s.write_text(json.dumps(
        {"format": MACHINES_FORMAT, "machines": {"../x": {"fingerprint": "../x"}}})),
    "bad_field": lambda s: s.write_text(json.dumps(
        {"format": MACHINES_FORMAT, "machines": {FP: {"fingerprint": FP, "x": {"a": 1}}}})),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_sidecar_is_one_data_error(tmp_path, kind):
    csv = _csv(tmp_path)
    side = Path(str(csv) + ".machine.json")
    HOSTILE[kind](side)
    _no_hang()
    try:
        with pytest.raises(DataError) as e:
            read_machines(csv)
        with pytest.raises(DataError):  # the writer never overwrites what it cannot read
            write_machines(csv, {"fedcba987654": {"fingerprint": "fedcba987654"}})
    finally:
        signal.alarm(0)
    assert str(side) in str(e.value)


@pytest.mark.parametrize("kind", ["list", "deep", "bigint", "devzero", "fifo", "bad_field"])
def test_training_warns_and_keeps_the_fingerprint(tmp_path, kind):
    """The description is optional (a CSV without a sidecar trains; a model is matched to a
    machine by its fingerprint): a bad sidecar is a warning, not a lost training run."""
    csv = _csv(tmp_path)
    HOSTILE[kind](Path(str(csv) + ".machine.json"))
    _no_hang()
    try:
        with pytest.warns(AnnpredWarning, match=r"machine\.json.*fingerprint " + FP):
            m = machine_of(_frame(csv))
    finally:
        signal.alarm(0)
    assert m == {"fingerprint": FP}


def test_good_sidecar_still_reads(tmp_path):
    csv = _csv(tmp_path)
    mach = {"fingerprint": FP, "slug": "cpu-x", "isa": ["avx2"], "ghz": 2.4, "l3_kb": None}
    write_machines(csv, {FP: mach})
    assert read_machines(csv) == {FP: mach}
    assert machine_of(_frame(csv)) == mach


# -- #6, #12: tuning-parameter names ---------------------------------------------------

RESERVED = ["kernel", "variant", "hardware", "runtime_s", "runtime_cv", "repeats",
            "runtime_min_s", "machine", "timestamp", "_source", "_row", "_problem_size",
            "_x", "time", "times"]
NOT_NAMES = ['a"*/\n#include <x>', "x" * 101, " ", "tab\there"]


@pytest.mark.parametrize("name", RESERVED + NOT_NAMES)
def test_cache_parameter_names_are_checked_when_read(tmp_path, name):
    if name in ("time", "times"):  # a record holds its time beside the parameters
        p = tmp_path / "c.json"
        p.write_text(json.dumps({"device_name": "d", "kernel_name": "k",
                                 "tune_params_keys": [name, "b"],
                                 "cache": {"1": {name: 1, "b": 2, "time": 1.0}}}))
    else:
        p = _cache(tmp_path, [name, "b"])
    with pytest.raises(DataError, match="tuning parameter") as e:
        kt.read_cache(p)
    assert str(p) in str(e.value)
    assert repr(name)[:40] in str(e.value) or "name" in str(e.value)


@pytest.mark.parametrize("name", RESERVED + NOT_NAMES)
def test_t4_parameter_names_are_checked_when_first_seen(tmp_path, name):
    confs = [{"a": i, "b": i % 3} for i in range(10)]
    confs[3] = {"a": 3, "b": 0, name: 1}
    p = _t4(tmp_path, confs)
    with pytest.raises(DataError, match="tuning parameter") as e:
        kt.read_cache(p)
    assert str(p) in str(e.value)


def test_parameter_listed_twice_is_refused(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"device_name": "d", "kernel_name": "k",
                             "tune_params_keys": ["a", "a"],
                             "cache": {"1": {"a": 1, "time": 1.0}}}))
    with pytest.raises(DataError, match=r"tuning parameter 'a' is listed twice"):
        kt.read_cache(p)


def test_ordinary_names_still_load(tmp_path):
    c = kt.read_cache(_cache(tmp_path, ["block_size_x", "tile size"]))
    assert c.n_rows == 12 and c.params == ["block_size_x", "tile size"]
    with pytest.warns(kt.NameFromFileWarning):
        r = kt.read_cache(_t4(tmp_path, [{"a": i, "b": i % 3} for i in range(10)]))
    assert r.n_rows == 10


# the shared data folder lies beside the checkout (as CI places it)
REAL = sorted((Path(__file__).resolve().parents[2] / "shared" / "data" / "kernel_tuner").glob(
    "*.json.gz")) + sorted(
    p for d in ("foreign_hub", "foreign_kernels")
    for p in (Path(__file__).resolve().parent.parent / "experiments" / "results" / d).glob(
        "*.json.gz"))


@pytest.mark.skipif(not REAL, reason="no real Kernel Tuner caches here")
@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_caches_still_load(path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kt.NameFromFileWarning)
        c = kt.read_cache(path)
    assert c.n_rows > 1000 and c.params
    assert len(kt.frame(c)) == c.n_rows
