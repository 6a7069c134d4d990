"""``--emit``: the chosen schedule as a static library + header, called from a C program
compiled with the system compiler; its output must equal the Python (JIT) result."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

hl = pytest.importorskip("halide")

from annpred.errors import ParameterError  # noqa: E402
from annpred.halide.aot import emit  # noqa: E402
from annpred.halide.pipelines import get  # noqa: E402
from annpred.halide.runtime import compile_schedule  # noqa: E402

CC = shutil.which("cc") or shutil.which("gcc")

C_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "blur_annpred.h"

/* usage: main W H in.f32 out.f32 -- input (H+2) x (W+2) floats, output H x W */
int main(int argc, char **argv) {
    int W = atoi(argv[1]), H = atoi(argv[2]);
    size_t nin = (size_t)(W + 2) * (H + 2), nout = (size_t)W * H;
    float *in = malloc(nin * sizeof(float)), *out = malloc(nout * sizeof(float));
    FILE *f = fopen(argv[3], "rb");
    if (!f || fread(in, sizeof(float), nin, f) != nin) return 3;
    fclose(f);
    halide_dimension_t din[2] = {{0, W + 2, 1, 0}, {0, H + 2, W + 2, 0}};
    halide_dimension_t dout[2] = {{0, W, 1, 0}, {0, H, W, 0}};
    halide_buffer_t bin = {0}, bout = {0};
    bin.host = (uint8_t *)in; bin.dimensions = 2; bin.dim = din;
    bin.type.code = halide_type_float; bin.type.bits = 32; bin.type.lanes = 1;
    bout.host = (uint8_t *)out; bout.dimensions = 2; bout.dim = dout;
    bout.type = bin.type;
    int rc = blur_annpred(&bin, &bout);
    if (rc != 0) return 4;
    f = fopen(argv[4], "wb");
    fwrite(out, sizeof(float), nout, f);
    fclose(f);
    return 0;
}
"""


@pytest.mark.skipif(CC is None, reason="no C compiler")
def test_emitted_library_runs_from_c_and_matches_python(tmp_path):
    p = get("blur")
    sched = {"tx": 64, "ty": 8, "vec": 8, "blur_x_at": "row", "par": "y"}
    files = emit(p, sched, tmp_path / "lib", sizes={"W": 512, "H": 160})
    assert set(files) == {"library", "header", "schedule", "readme"}
    code = files["schedule"].read_text()
    assert "blur_x.store_at(blur_y, xo)" in code and "compute_at(blur_y, yi)" in code
    assert "int blur_annpred(" in files["readme"].read_text()
    (tmp_path / "main.c").write_text(C_MAIN)
    exe = tmp_path / "main"
    subprocess.run([CC, "-O1", str(tmp_path / "main.c"), str(files["library"]),
                    f"-I{tmp_path / 'lib'}", "-o", str(exe), "-lpthread", "-ldl", "-lm"],
                   check=True, capture_output=True, timeout=120)
    W, H = 517, 131  # not a multiple of the tile: exercises the schedule's edge handling
    (inp,) = p.make_inputs({"W": W, "H": H}, seed=3)
    inp.tofile(tmp_path / "in.f32")
    subprocess.run([str(exe), str(W), str(H), str(tmp_path / "in.f32"),
                    str(tmp_path / "out.f32")], check=True, timeout=60)
    from_c = np.fromfile(tmp_path / "out.f32", np.float32).reshape(H, W)
    from_py = compile_schedule(p, sched)(inp)
    np.testing.assert_array_equal(from_c, from_py)
    np.testing.assert_allclose(from_c, p.reference([inp]), rtol=1e-5, atol=1e-6)


def test_emit_refuses_bad_names_and_schedules(tmp_path):
    sched = {"tx": 64, "ty": 8, "vec": 8, "blur_x_at": "row", "par": "y"}
    with pytest.raises(ParameterError, match="C identifier"):
        emit("blur", sched, tmp_path, name="no-dashes")
    with pytest.raises(ParameterError, match="knob"):
        emit("blur", {**sched, "tx": 3}, tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ParameterError, match="not a directory"):
        emit("blur", sched, tmp_path / "file")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["file"]  # nothing half-written
