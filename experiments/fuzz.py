"""Fuzz annpred's four doors for user text: the expression parser, the CSV loader, the model
loader and the C exporter. Each input must be accepted or refused with one of annpred's
own errors (:class:`annpred.errors.AnnpredError`); anything else is a crash. Accepted C
headers are (a sample of them) compiled, and an injected symbol in the object file counts
as a crash too.

    python experiments/fuzz.py --seconds 600 --seed 1      # a longer run; prints counts

The test suite runs the same harness for a few seconds per door with fixed seeds
(tests/test_hostile_fuzz.py).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annpred.errors import AnnpredError  # noqa: E402

CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
PAYLOADS = ["*/ int pwned_a = 1; /*", "*\\\n/ int pwned_b = 1; /*", "??/\nint pwned_c = 1;",
            "\"; int pwned_d = 1; //", "\\", "??/", "*/", "/*", "\n", "\r", "\x00", "\u2028",
            "\ufeff", "'", "\"", "%s", "${x}", "..", "/", "\t", "\x1b[2J", "é", "\U0001f600"]


@dataclass
class Counts:
    inputs: int = 0
    refusals: int = 0
    crashes: int = 0
    examples: list = field(default_factory=list)

    def add(self, other: "Counts") -> None:
        self.inputs += other.inputs
        self.refusals += other.refusals
        self.crashes += other.crashes
        self.examples += other.examples


def _try(counts: Counts, what: str, fn, arg) -> object:
    counts.inputs += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(arg)
    except AnnpredError:
        counts.refusals += 1
    except Exception as exc:  # noqa: BLE001 - a crash is what we count
        counts.crashes += 1
        if len(counts.examples) < 20:
            counts.examples.append((what, repr(arg)[:300], "".join(
                traceback.format_exception_only(type(exc), exc)).strip()[:300]))
    return None


# -- expressions ------------------------------------------------------------------------

_ATOMS = ["m", "n", "k", "x", "1", "2", "0", "-1", "0.5", "1e308", "1e-320", "10**20",
          "9007199254740881", "3.0", "1" + "0" * 50, "nan", "inf", "True", "None", "'s'"]
_FUNCS = ["log", "log2", "log10", "sqrt", "exp", "abs", "min", "max", "ceiling", "ceil",
          "floor", "sopfr", "lpf", "eval", "__import__", "print", "getattr"]
_OPS = ["+", "-", "*", "/", "**", "//", "%", "@", "<<", "&", "|", "==", " if 1 else "]


def random_expression(rng: random.Random, depth: int = 0) -> str:
    r = rng.random()
    if depth > rng.choice([3, 6, 12]) or r < 0.3:
        return rng.choice(_ATOMS)
    if r < 0.55:
        return (random_expression(rng, depth + 1) + rng.choice(_OPS)
                + random_expression(rng, depth + 1))
    if r < 0.75:
        nargs = rng.choice([0, 1, 1, 2, 3, 20, 40])
        return (rng.choice(_FUNCS) + "(" + ",".join(random_expression(rng, depth + 1)
                                                    for _ in range(nargs)) + ")")
    if r < 0.85:
        return "(" + random_expression(rng, depth + 1) + ")"
    if r < 0.92:  # a long chain or tower
        op = rng.choice(["**", "*", "+", "-"])
        return op.join(rng.choice(["m", "n", "2"]) for _ in range(rng.choice([10, 60, 300])))
    return "-" * rng.choice([1, 50, 400]) + random_expression(rng, depth + 1)


def _mutate_text(rng: random.Random, text: str) -> str:
    s = list(text)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        pos = rng.randint(0, len(s))
        if op < 0.4:
            s[pos:pos] = list(rng.choice(PAYLOADS + ["(", ")", ",", "**", "e400", "[", "]"]))
        elif op < 0.7 and s:
            del s[min(pos, len(s) - 1)]
        elif s:
            s[min(pos, len(s) - 1)] = chr(rng.randint(0, 0x7f if rng.random() < .9 else 0x2fff))
    return "".join(s)


def fuzz_expressions(n: int, seed: int) -> Counts:
    from annpred.spec import expr

    rng = random.Random(seed)
    counts = Counts()
    import numpy as np

    vals = {"m": np.array([1.0, 7.0, 1e6]), "n": np.array([2.0, 3.0, 0.5]),
            "k": np.array([5.0, 1.0, 64.0])}
    for i in range(n):
        text = random_expression(rng)
        if rng.random() < 0.4:
            text = _mutate_text(rng, text)
        syms = None if rng.random() < 0.3 else ["m", "n", "k"]

        def go(t, syms=syms):
            e = expr.parse(t, syms)
            if syms is not None:
                expr.evaluate(t, vals)
                expr.ccode(e)
            return e
        _try(counts, "expression", go, text)
    return counts


# -- CSVs -------------------------------------------------------------------------------

def _valid_csv(rng: random.Random, rows: int = 12) -> str:
    head = ["kernel", "variant", "hardware", "m", "n", "runtime_s", "runtime_cv", "repeats",
            "runtime_min_s", "threads", "sampler", "seed", "point", "pass", "timestamp",
            "annpred_version"]
    lines = [",".join(head)]
    for i in range(rows):
        m, n = rng.randint(1, 500), rng.randint(1, 500)
        t = 1e-6 * m * n * (1 + rng.random() * 0.05)
        lines.append(f"toy,v1,cpu-fuzz-t1,{m},{n},{t!r},0.01,5,{t!r},1,random,0,{i},0,"
                     "2026-11-29T00:00:00,0.1.0")
    return "\n".join(lines) + "\n"


def _mutate_csv(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        i = rng.randrange(len(lines))
        if op < 0.15:
            lines[0] = "\ufeff" + lines[0]
        elif op < 0.3:  # a cell replaced
            cells = lines[i].split(",")
            j = rng.randrange(len(cells))
            cells[j] = rng.choice(["", "nan", "inf", "-1", "1e-320", "1e400", "x", "\"a,b\"",
                                   " \"n,x\"", "0", "1" * 400, "True", "NA", "\"", "a\nb",
                                   rng.choice(PAYLOADS), "9" * 30, "-0", "1_000"])
            lines[i] = ",".join(cells)
        elif op < 0.45:  # a row made short or long
            cells = lines[i].split(",")
            lines[i] = ",".join(cells[:rng.randrange(len(cells) + 1)] if rng.random() < .5
                                else cells + ["1"] * rng.randint(1, 3))
        elif op < 0.55:
            lines.insert(i, lines[i])  # a duplicated line (duplicate measurement key)
        elif op < 0.65:
            lines[i] = ""
        elif op < 0.75:  # a header name replaced
            cells = lines[0].split(",")
            j = rng.randrange(len(cells))
            cells[j] = rng.choice(["m", "", " ", "n", "runtime_s", "a\"b", "x" * 200,
                                   rng.choice(PAYLOADS), "\"q,r\""])
            lines[0] = ",".join(cells)
        else:
            lines[i] = _mutate_text(rng, lines[i])
    return "\n".join(lines)


def fuzz_csvs(n: int, seed: int, tmp: Path) -> Counts:
    from annpred.data.profiles import load_profiles
    from annpred.model.trainer import check_options, duplicate_keys

    rng = random.Random(seed)
    counts = Counts()
    path = tmp / "fuzz.csv"
    for i in range(n):
        text = _valid_csv(rng)
        for _ in range(rng.choice([1, 1, 2, 3])):
            text = _mutate_csv(rng, text)
        data = text.encode("utf-8", "surrogatepass") if rng.random() < .95 else os.urandom(200)
        path.write_bytes(data)
        feats = rng.choice([None, None, ["m", "n"], ["m", "m"], ["m", "runtime_s"], ["zz"]])

        def go(p, feats=feats):
            check_options(features=feats)
            df = load_profiles([p], features=feats)
            duplicate_keys(df)
            return df
        _try(counts, "csv", go, path)
    return counts


# -- model files ------------------------------------------------------------------------

def make_model(rng: random.Random, params: list[str], complexity: dict, kernel="kern",
               variant="v1", hardware="cpu-fuzz-t1") -> dict:
    """A valid (untrained) model dict: one hidden layer of 3 units and a skip path."""
    from annpred.model.network import count_params
    from annpred.model.schema import FORMAT

    feats = list(params) + list(complexity)
    n, h = len(feats), 3

    def vec(k):
        return [round(rng.uniform(-1, 1), 6) for _ in range(k)]
    return {"format": FORMAT, "kernel": kernel, "variant": variant, "hardware": hardware,
            "parameters": list(params), "features": feats, "complexity": dict(complexity),
            "input_transform": ["log"] * n, "target_transform": "log",
            "scaler": {"mean": vec(n), "std": [1.0 + abs(v) for v in vec(n)]},
            "target_scaler": {"mean": -10.0, "std": 2.0},
            "layers": [{"weight": [vec(n) for _ in range(h)], "bias": vec(h)},
                       {"weight": [vec(h)], "bias": vec(1)}],
            "skip": {"weight": [vec(n)]}, "activation": "tanh",
            "n_params": count_params(n, (h,), True),
            "train": {"n_samples": 10, "range": {p: [1.0, 100.0] for p in params}}}


_LEAVES = [None, True, False, 0, -1, 1e308, -1e308, 5e-324, 1e-308, "NaN", "x", [], {},
           [1, 2], {"a": 1}, 10**30, "m*n", "*/", 2**63, -2**63, 0.0]


def _mutate_json(rng: random.Random, d):
    """Replace, delete or add one node somewhere in a JSON-like structure."""
    path = []
    node = d
    while isinstance(node, (dict, list)) and node and rng.random() < 0.75:
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append((node, key))
        node = node[key]
    if not path:
        return d
    parent, key = path[-1]
    r = rng.random()
    if r < 0.6:
        parent[key] = copy.deepcopy(rng.choice(_LEAVES))  # shared leaves would form cycles
    elif r < 0.75 and isinstance(parent, dict):
        del parent[key]
    elif r < 0.9 and isinstance(parent, dict):
        parent[rng.choice(["extra", "machine", "uncertainty", "steps", "skip"])] = \
            copy.deepcopy(rng.choice(_LEAVES))
    else:
        parent[key] = rng.choice(PAYLOADS) if isinstance(parent[key], str) else parent[key]
    return d


def fuzz_models(n: int, seed: int, tmp: Path) -> Counts:
    import numpy as np

    from annpred.model.schema import load_model
    from annpred.runtime.predictor import LoadedModel

    rng = random.Random(seed)
    counts = Counts()
    path = tmp / "model.json"
    for i in range(n):
        d = make_model(rng, ["m", "n"], {"work": rng.choice(["m*n", "m*n*log(m)",
                                                             "max(m, n)", "sopfr(m)"])})
        for _ in range(rng.choice([1, 1, 2, 4])):
            d = _mutate_json(rng, d)
        kind = rng.random()
        if kind < 0.7:
            text = json.dumps(d, allow_nan=True)
        elif kind < 0.8:
            text = _mutate_text(rng, json.dumps(d))
        elif kind < 0.87:
            text = "[" * rng.choice([40, 1000, 200_000]) + "]" * rng.choice([0, 40])
        elif kind < 0.94:
            text = json.dumps(d).replace("-10.0", "1" + "0" * rng.choice([30, 400, 5000]))
        else:
            text = json.dumps(d).replace("2.0", rng.choice(["NaN", "Infinity", "-Infinity"]))
        path.write_text(text, encoding="utf-8", errors="surrogatepass")

        def go(p):
            m = LoadedModel(load_model(p), p)
            m.predict({"m": np.array([3.0, 50.0]), "n": np.array([4.0, 5.0])})
            return m
        _try(counts, "model", go, path)
    return counts


# -- C export ---------------------------------------------------------------------------

_PRINTABLE_PAYLOADS = [p for p in PAYLOADS if p.isprintable() and p.strip()] + [
    "*/ int pwned_e = 1; /*", "*/int pwned_f=1;/*", "??/ int pwned_g;", "q */ int pwned_h; /*"]


def _hostile_name(rng: random.Random, i: int) -> str:
    base = rng.choice(["p", "q", "m", "feature", "x"]) + str(i)
    payload = rng.choice(PAYLOADS if rng.random() < 0.2 else _PRINTABLE_PAYLOADS)
    return rng.choice([base, base + payload, payload + base, base + payload + payload,
                       payload.replace("pwned", f"pwned{i}")])


def _compile_ok(header: str, tmp: Path, name: str) -> str | None:
    """Compile a program using the header; returns a problem or None."""
    (tmp / "h.h").write_text(header, encoding="utf-8")
    (tmp / "main.c").write_text(
        '#include <stdio.h>\n#include "h.h"\nint main(void) {\n'
        f"    double p[{name.upper()}_N_PARAMS] = {{0}};\n    int i;\n"
        f"    for (i = 0; i < {name.upper()}_N_PARAMS; i++) p[i] = 2.0 + i;\n"
        f'    printf("%g %s\\n", {name}_predict(p), {name}_param_names[0]);\n'
        "    return 0;\n}\n", encoding="utf-8")
    r = subprocess.run([CC, "-std=c99", "-Wall", "-Wno-unused-function", "-Wno-comment",
                        "-Wno-trigraphs", "-c", "-o", str(tmp / "main.o"), str(tmp / "main.c")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return "does not compile: " + r.stderr[-300:]
    nm = subprocess.run(["nm", str(tmp / "main.o")], capture_output=True, text=True).stdout
    if "pwned" in nm:
        return "injected symbol: " + nm
    return None


def fuzz_export(n: int, seed: int, tmp: Path, compile_every: int = 10) -> Counts:
    from annpred.runtime.export_c import header_text

    rng = random.Random(seed)
    counts = Counts()
    for i in range(n):
        params = [_hostile_name(rng, j) for j in range(rng.randint(1, 3))]
        comp = {_hostile_name(rng, 9): "*".join(p for p in params if p.isidentifier()) or "2"}
        names = [rng.choice(["kern", "ok-1", "a.b", "x+y"] * 6 + ["matmul*", "k\n", "a/b",
                                                                "x??/"]) for _ in range(3)]
        d = make_model(rng, params, comp, *names)
        cname = rng.choice([None, None, None, "mdl", "mdl", "bad name", "1x", "a" * 80])

        def go(d, cname=cname):
            text = header_text(d, name=cname)
            return text
        counts.inputs += 0
        text = _try(counts, "export", go, d)
        if text is not None and CC and i % compile_every == 0:
            name = cname or [ln for ln in text.splitlines() if ln.startswith("#define ")
                             and ln.endswith("_N_PARAMS " + str(len(params)))][0].split()[1][
                                 :-len("_N_PARAMS")].lower()
            problem = _compile_ok(text, tmp, name)
            if problem:
                counts.crashes += 1
                counts.examples.append(("export-compile", repr(d)[:300], problem))
    return counts


def run(n_per_door: int = 100, seed: int = 0, seconds: float | None = None) -> dict:
    """Fuzz every door; ``seconds`` (if given) repeats rounds until it is spent."""
    t0 = time.monotonic()
    doors = {"expressions": Counts(), "csvs": Counts(), "models": Counts(),
             "export": Counts()}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        rnd = 0
        while True:
            s = seed * 1000 + rnd
            doors["expressions"].add(fuzz_expressions(n_per_door, s))
            doors["csvs"].add(fuzz_csvs(n_per_door, s, tmp))
            doors["models"].add(fuzz_models(n_per_door, s, tmp))
            doors["export"].add(fuzz_export(max(1, n_per_door // 2), s, tmp))
            rnd += 1
            if seconds is None or time.monotonic() - t0 > seconds:
                break
    return doors


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--n", type=int, default=200, help="inputs per door per round")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    t0 = time.monotonic()
    doors = run(a.n, a.seed, a.seconds)
    total = Counts()
    print(f"{'door':<12} {'inputs':>8} {'refusals':>9} {'crashes':>8}")
    for name, c in doors.items():
        print(f"{name:<12} {c.inputs:>8} {c.refusals:>9} {c.crashes:>8}")
        total.add(c)
    print(f"{'total':<12} {total.inputs:>8} {total.refusals:>9} {total.crashes:>8}  "
          f"({time.monotonic() - t0:.0f} s, seed {a.seed}, load {os.getloadavg()[0]:.2f})")
    for ex in total.examples[:10]:
        print("crash:", *ex, sep="\n  ")
    return 1 if total.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
