"""annpred export --format c: the header compiles with the system C compiler and predicts
what the numpy path predicts (1e-9 relative)."""
import shutil
import subprocess

import numpy as np
import pytest

from annpred.runtime.export_c import header_text
from annpred.runtime.predictor import LoadedModel
from annpred.model.schema import load_model

from conftest import run_cli
from synthetic_models import log_points, train_save

CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler")

RANGES = {"n": (2, 16384, "int"), "b": (1, 64, "int"), "w": (1, 5, "int")}
MODELS = {
    # name: regressor options
    "tanh_skip": dict(complexity={"flops": "b*n*log(n, 2)", "memory": "b*n"}),
    "deep_noskip": dict(complexity={"work": "b*(floor((n - w)/2) + 1)**2*w**2",
                                    "big": "max(n, 100*b)"}, hidden=(3, 2), skip=False),
    "relu_identity": dict(complexity={"root": "sqrt(n)*b + exp(-w) + ceiling(n/3)"},
                          hidden=(4,), activation="relu", input_transform="identity"),
    "plain": dict(complexity=None, hidden=(2,)),
    "number_theory": dict(complexity={"factor_flops": "b*n*sopfr(n)", "big": "lpf(n + w)",
                                      "fft": "b*fftcost(n + w)", "radix2": "b*n*(1 + twos(n*w))",
                                      "padded": "b*fastlen(n + 7*w)"}),
}

MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "model.h"
int main(int argc, char **argv) {
    double p[NAME_N_PARAMS];
    int i, j;
    (void)argc;
    for (i = 0; i + NAME_N_PARAMS < argc; i += NAME_N_PARAMS) {
        for (j = 0; j < NAME_N_PARAMS; j++) p[j] = strtod(argv[1 + i + j], NULL);
        printf("%.17g %d\n", name_predict(p), name_in_range(p));
    }
    return 0;
}
"""


def _runtime(X):
    n, b, w = (X[c].to_numpy(dtype=float) for c in ("n", "b", "w"))
    return 1e-6 + 3e-10 * b * n * np.log2(n) * (1 + 0.1 * w)


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("export_models")
    X = log_points(RANGES, 60, 0)
    out = {}
    for name, kw in MODELS.items():
        _, path = train_save(root, "kern", name, "cpu-test-t1", X, _runtime(X), **kw)
        out[name] = path
    return out


def _points(seed=1, n=40):
    X = log_points(RANGES, n, seed)
    X.loc[len(X)] = [40000, 100, 9]  # outside the training range
    return X


@needs_cc
@pytest.mark.parametrize("name", sorted(MODELS))
def test_c_header_compiles_and_equals_numpy(model_files, tmp_path, name):
    model = load_model(model_files[name])
    (tmp_path / "model.h").write_text(header_text(model, name="name"))
    (tmp_path / "main.c").write_text(MAIN)
    exe = tmp_path / "main"
    r = subprocess.run([CC, "-std=c99", "-O2", "-Wall", "-Werror", "-o", str(exe),
                        str(tmp_path / "main.c"), "-lm"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    X = _points()
    lm = LoadedModel(model)
    # just outside the raw training range, inside the widened one that Python uses: C and
    # Python must agree here too (C used the raw range)
    X.loc[len(X)] = [lm.range[c][1] * 1.01 if c in lm.range else X[c].iloc[0] for c in X.columns]
    args = [repr(float(v)) for row in X.itertuples(index=False) for v in row]
    r = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = np.array([[float(t) for t in line.split()] for line in r.stdout.splitlines()])
    ref = lm.predict({c: X[c].to_numpy(dtype=float) for c in X.columns})
    np.testing.assert_allclose(got[:, 0], ref, rtol=1e-9, atol=0)
    in_range = [not lm.out_of_range(dict(zip(X.columns, row)))
                for row in X.itertuples(index=False)]
    assert got[:, 1].astype(bool).tolist() == in_range
    assert not in_range[-2] and in_range[-1]


@needs_cc
def test_cli_export_writes_a_header_that_two_models_can_share(model_files, tmp_path):
    h1, h2 = tmp_path / "a.h", tmp_path / "b.h"
    for path, name in ((h1, "number_theory"), (h2, "plain")):
        r = run_cli(["export", model_files[name], "--format", "c", "-o", path])
        assert r.returncode == 0, r.stderr
    r = run_cli(["export", model_files["number_theory"], "-o", tmp_path / "c.h", "--name",
                 "nt2"])
    assert r.returncode == 0, r.stderr
    text = h1.read_text()
    assert "annpred_kern_number_theory_predict" in text and "#include <math.h>" in text
    (tmp_path / "both.c").write_text(
        '#include "a.h"\n#include "b.h"\n#include "a.h"\n#include "c.h"\n#include <stdio.h>\n'
        "int main(void) { double p[3] = {1024, 4, 2};\n"
        '  printf("%.17g %.17g\\n", annpred_kern_number_theory_predict(p), '
        "annpred_kern_plain_predict(p)); return nt2_predict(p) > 0 ? 0 : 1; }\n")
    r = subprocess.run([CC, "-std=c99", "-Wall", "-Werror", "-o", str(tmp_path / "both"),
                        str(tmp_path / "both.c"), "-lm"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([str(tmp_path / "both")], capture_output=True, text=True).stdout
    a, b = map(float, out.split())
    for val, name in ((a, "number_theory"), (b, "plain")):
        lm = LoadedModel(load_model(model_files[name]))
        ref = lm.predict({"n": np.array([1024.0]), "b": np.array([4.0]), "w": np.array([2.0])})
        assert val == pytest.approx(ref[0], rel=1e-9)


def test_cli_export_rejects_unknown_format_and_bad_model(model_files, tmp_path):
    r = run_cli(["export", model_files["plain"], "--format", "rust", "-o", tmp_path / "x"])
    assert r.returncode == 2 and "unsupported export format" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    r = run_cli(["export", bad, "-o", tmp_path / "x.h"])
    assert r.returncode == 2 and "format" in r.stderr
    assert not (tmp_path / "x.h").exists()


@needs_cc
def test_c_header_exports_the_prediction_interval(model_files, tmp_path):
    """The interval stored in the model file (split conformal, log runtime) is in the header
    and gives the same bounds as Python."""
    from annpred.runtime.predictor import LoadedModel

    name = sorted(MODELS)[0]
    model = load_model(model_files[name])
    if not model.get("interval"):
        model = dict(model, interval={"nominal": 0.9, "lo": -0.1, "hi": 0.2})
    (tmp_path / "model.h").write_text(header_text(model, name="name"))
    X = _points(n=5)
    n_p = X.shape[1]
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include <stdlib.h>\n#include "model.h"\n'
        "int main(int argc, char **argv) {\n"
        f"    for (int i = 1; i + {n_p} <= argc; i += {n_p}) {{\n"
        f"        double p[{n_p}], lo, hi, s;\n"
        f"        for (int j = 0; j < {n_p}; j++) p[j] = atof(argv[i + j]);\n"
        "        s = name_predict_interval(p, &lo, &hi);\n"
        '        printf("%.17g %.17g %.17g\\n", s, lo, hi);\n    }\n    return 0;\n}\n')
    exe = tmp_path / "main"
    r = subprocess.run([CC, "-std=c99", "-O2", "-Wall", "-Werror", "-o", str(exe),
                        str(tmp_path / "main.c"), "-lm"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    args = [repr(float(v)) for row in X.itertuples(index=False) for v in row]
    out = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60)
    got = np.array([[float(t) for t in line.split()] for line in out.stdout.splitlines()])
    lm = LoadedModel(model)
    s = lm.predict({c: X[c].to_numpy(dtype=float) for c in X.columns})
    lo, hi = lm.interval_of(s)
    np.testing.assert_allclose(got[:, 0], s, rtol=1e-9)
    np.testing.assert_allclose(got[:, 1], lo, rtol=1e-9)
    np.testing.assert_allclose(got[:, 2], hi, rtol=1e-9)
