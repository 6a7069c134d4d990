"""Issue 11, finding 1: no name reaches C as code. Headers are built from hostile names,
compiled with the system C compiler (trigraphs on: -std=c99), and the object file must hold
no injected symbol; string literals must give back the exact bytes of the names."""
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from annpred.errors import ModelFormatError
from annpred.runtime.export_c import _c_string, _comment, header_text

# appended, not prepended: experiments/halide.py must not shadow the halide package
sys.path.append(str(Path(__file__).resolve().parent.parent / "experiments"))
from fuzz import make_model  # noqa: E402

CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
NM = shutil.which("nm")
needs_cc = pytest.mark.skipif(CC is None or NM is None, reason="no C compiler or nm")

HOSTILE = [
    "*/ int pwned_a = 1; /*",
    "*\\\n/ int pwned_b = 1; /*",          # backslash-newline splices '*' and '/'
    "x ??/\nint pwned_c = 1;",             # trigraph ??/ is a backslash under -std=c99
    "\"; int pwned_d = 1; static const char *z = \"",
    "q *\\\n/ int pwned_from_csv = 1; /*",
    "matmul*", "a/b", "é€\U0001f600", "\\", "??=??(??)", "\r\n", "\x00x",
]


def _compile(tmp_path, source: str) -> str:
    c = tmp_path / "t.c"
    c.write_text(source, encoding="utf-8")
    r = subprocess.run([CC, "-std=c99", "-Wall", "-Wno-unused-function", "-Wno-comment",
                        "-Wno-trigraphs", "-o", str(tmp_path / "t"), str(c), "-lm"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return subprocess.run([NM, str(tmp_path / "t")], capture_output=True, text=True).stdout


@needs_cc
def test_comments_and_strings_never_carry_code(tmp_path):
    lines = ["#include <stdio.h>"]
    for i, s in enumerate(HOSTILE):
        lines.append(f"/* name {i}: {_comment(s)} */")
        lines.append(f"static const char *const s{i} = {_c_string(s)};")
    lines.append("int main(void) {")
    for i in range(len(HOSTILE)):
        lines.append(f'    fputs(s{i}, stdout); fputs("\\n--\\n", stdout);')
    lines.append("    return 0;\n}")
    symbols = _compile(tmp_path, "\n".join(lines))
    assert "pwned" not in symbols
    out = subprocess.run([str(tmp_path / "t")], capture_output=True).stdout
    got = out.split(b"\n--\n")[:-1]
    # C strings stop at NUL; everything else comes back byte for byte
    assert got == [s.encode("utf-8").split(b"\0")[0] for s in HOSTILE]


def test_comment_text_is_limited_to_a_safe_set():
    for s in HOSTILE:
        c = _comment(s)
        assert "*/" not in c and "/*" not in c and "\\" not in c and "?" not in c
        assert "\n" not in c and "\r" not in c


def test_hostile_kernel_variant_hardware_names_are_refused():
    rng = random.Random(0)
    for key, bad in (("kernel", "matmul*"), ("variant", "v*\\\n/x"), ("hardware", "a/b"),
                     ("kernel", "mm\n"), ("variant", "x??/")):
        d = make_model(rng, ["m"], {"work": "m"})
        d[key] = bad
        with pytest.raises(ModelFormatError, match=key):
            header_text(d)


def test_name_option_must_be_an_identifier():
    d = make_model(random.Random(0), ["m"], {"work": "m"})
    for bad in ("a b", "1x", "x*/", "a" * 65):
        with pytest.raises(ModelFormatError, match="identifier"):
            header_text(d, name=bad)


@needs_cc
def test_header_from_hostile_parameter_and_feature_names_compiles_clean(tmp_path):
    rng = random.Random(1)
    params = ["*/ int pwned_p = 1; /*", "x ??/ int pwned_q;", "\"pwned_r\\"]
    d = make_model(rng, params, {"*/ int pwned_f = 1; /*": "2"})
    text = header_text(d, name="mdl")
    (tmp_path / "mdl.h").write_text(text)
    symbols = _compile(tmp_path, '#include <stdio.h>\n#include "mdl.h"\nint main(void) {\n'
                       "    double p[MDL_N_PARAMS] = {2.0, 3.0, 4.0};\n"
                       '    printf("%.17g\\n", mdl_predict(p));\n'
                       '    puts(mdl_param_names[0]); puts(mdl_param_names[1]);\n'
                       "    puts(mdl_param_names[2]);\n    return 0;\n}\n")
    assert "pwned" not in symbols
    out = subprocess.run([str(tmp_path / "t")], capture_output=True, text=True).stdout
    assert out.splitlines()[1:] == params


@needs_cc
def test_csv_column_carrying_code_through_train_and_export(tmp_path, cli):
    col = "q */ int pwned_from_csv = 1; /*"
    lines = ["kernel,variant,hardware,m," + json.dumps(col) + ",runtime_s"]
    rng = random.Random(0)
    for _ in range(30):
        m, q = rng.randint(1, 100), rng.randint(1, 100)
        lines.append(f"ext,v1,cpu-x-t1,{m},{q},{1e-6 * m * q * (1 + rng.random() / 20)!r}")
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    r = cli(["train", tmp_path / "d.csv", "--out", tmp_path / "models", "--steps", "none"])
    assert r.returncode == 0, r.stderr
    model = tmp_path / "models" / "cpu-x-t1" / "ext" / "v1.json"
    r = cli(["export", model, "-o", tmp_path / "ext.h", "--name", "ext"])
    assert r.returncode == 0, r.stderr
    symbols = _compile(tmp_path, '#include "ext.h"\nint main(void) {\n'
                       "    double p[EXT_N_PARAMS] = {3.0, 4.0};\n"
                       "    return ext_predict(p) > 0 ? 0 : 1;\n}\n")
    assert "pwned" not in symbols
    assert subprocess.run([str(tmp_path / "t")]).returncode == 0

    # the same column with a backslash-newline inside is refused by train, one line, exit 2
    bad = "q *\\\n/ int pwned_from_csv = 1; /*"
    (tmp_path / "e.csv").write_text("\n".join(
        ["kernel,variant,hardware,m,\"" + bad + "\",runtime_s"] + lines[1:]) + "\n")
    r = cli(["train", tmp_path / "e.csv", "--out", tmp_path / "models2"])
    assert r.returncode == 2 and r.stderr.startswith("annpred: error:")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "models2").exists()


def test_export_refuses_hand_edited_hostile_model(tmp_path, cli):
    d = make_model(random.Random(2), ["m"], {"work": "m"})
    d["kernel"] = "matmul*"
    d["variant"] = "/ int pwned = 1; /*"
    p = tmp_path / "m.json"
    p.write_text(json.dumps(d))
    r = cli(["export", p, "-o", tmp_path / "m.h"])
    assert r.returncode == 2 and "kernel" in r.stderr
    assert not (tmp_path / "m.h").exists()


def test_export_to_a_directory_is_one_line_and_writes_nothing(tmp_path, cli):
    d = make_model(random.Random(3), ["m"], {"work": "m"})
    p = tmp_path / "m.json"
    p.write_text(json.dumps(d))
    (tmp_path / "out.h").mkdir()
    r = cli(["export", p, "-o", tmp_path / "out.h"])
    assert r.returncode == 2 and r.stderr.startswith("annpred: error:")
    assert "directory" in r.stderr and "Traceback" not in r.stderr
    assert list((tmp_path / "out.h").iterdir()) == []
