"""Decision latency: annpred.choose among N candidates versus the same decision made with
the torch forward pass and with the scikit-learn random-forest baseline, in one run.

    python experiments/choice_latency.py [--models trained] [--kernel matmul]
    python experiments/choice_latency.py --user-models DIR   # the default configuration

With ``--user-models DIR`` the decisions run in annpred's default configuration: DIR is the
user's calibrated models (``ANNPRED_MODELS``) over the shipped ones and ``choose`` gets no
``models=`` argument (the path a runtime uses); ``choose_default`` and
``choose_default_memoised`` are those rows. ``c_header_loop`` is the same decision in C: the
exported headers (``annpred export``) of every candidate, called one after another and the
argmin taken, compiled with ``cc -O2`` -- how far the Python path is from a C implementation.

Every method predicts all candidates of one call and takes the argmin. Timing protocol:
warm up, then many repeats of one decision each timed with perf_counter_ns, report the
median (and p90). Single thread everywhere (BLAS, torch, sklearn n_jobs=1).
Methods:
  choose            annpred.choose(kernel, params, memo=False): a new shape -- validation,
                    one stacked numpy pass, training-range check, the Choice object
  choose_memoised   annpred.choose of a shape decided before (the default memo)
  stacked_core      only the stacked numpy pass (features + batched networks)
  numpy_loop        one LoadedModel.predict per candidate (unbatched numpy)
  torch_loop        one torch forward (AugmentedMLP, float64, no_grad) per candidate
  torch_stacked     the stacked networks as one batched torch pass
  rf_loop           one RandomForestRegressor(200 trees, params+complexity) per candidate
  dispatch          annpred.dispatch on the operands (infer, choose, run), beside
  direct_run_of_choice  prepare + run of the chosen implementation without annpred
Writes experiments/results/choice_latency.csv and .md (or --out).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))


def bench(fn, repeats: int, warmup: int = 50) -> dict:
    for _ in range(warmup):
        fn()
    ts = np.empty(repeats)
    clock = time.perf_counter_ns
    for i in range(repeats):
        t0 = clock()
        fn()
        ts[i] = clock() - t0
    return {"median_us": float(np.median(ts) / 1e3), "p90_us": float(np.percentile(ts, 90) / 1e3),
            "repeats": repeats}


def cold_start(models: str, kernel: str, params: dict) -> dict:
    """Wall time of a fresh process that imports annpred and makes one decision, and of one
    that only imports torch (median of 3)."""
    code = ("import time; t=time.perf_counter(); import annpred; "
            f"c=annpred.choose({kernel!r}, {params!r}, models={models!r}); "
            "import sys; print(time.perf_counter()-t, 'torch' in sys.modules)")
    code_t = "import time; t=time.perf_counter(); import torch; print(time.perf_counter()-t)"
    a, b = [], []
    torch_loaded = None
    for _ in range(3):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, cwd=ROOT)
        s, flag = r.stdout.split()
        a.append(float(s))
        torch_loaded = flag == "True"
        r = subprocess.run([sys.executable, "-c", code_t], capture_output=True, text=True,
                           check=True)
        b.append(float(r.stdout))
    return {"import_and_first_choose_s": float(np.median(a)), "import_torch_s":
            float(np.median(b)), "torch_imported_by_choose": torch_loaded}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=str(ROOT / "trained"))
    ap.add_argument("--kernel", default="matmul")
    ap.add_argument("--params", default=None, help="JSON point (default: the domain's "
                    "geometric middle)")
    ap.add_argument("--repeats", type=int, default=20000)
    ap.add_argument("--rf-repeats", type=int, default=200)
    ap.add_argument("--min-candidates", type=int, default=8,
                    help="if the kernel has fewer candidates here, add copies of its models "
                         "under the other thread count's hardware id (stand-ins: latency "
                         "depends on the number and size of the models, not their weights)")
    ap.add_argument("--out", default=str(ROOT / "experiments" / "results"))
    ap.add_argument("--user-models", default=None,
                    help="calibrated models of this machine (e.g. from `annpred quickstart "
                         "--out DIR`): benchmark the default configuration with them")
    a = ap.parse_args(argv)
    if a.user_models:
        os.environ["ANNPRED_MODELS"] = str(Path(a.user_models).resolve())

    import annpred
    from annpred.runtime import choose as select
    from annpred.spec.catalog import get_kernel
    from annpred.runtime.predictor import load_models

    k = get_kernel(a.kernel)
    if a.params:
        params = json.loads(a.params)
    else:
        params = {p.name: (int(round(np.sqrt(p.low * p.high))) if p.kind == "int"
                           else float(np.sqrt(p.low * p.high))) for p in k.params}
        if not k.valid(params):
            from annpred.measure.sampling import random_points
            params = random_points(k, 1, seed=1).iloc[0].to_dict()
    params = k.check_params(params)
    pred = load_models() if a.user_models else load_models(a.models)
    choice = annpred.choose(a.kernel, params, models=pred)
    cands = list(choice.predicted)
    stand_ins = []
    if len(cands) < a.min_candidates:
        import tempfile

        from annpred.spec import hardware as hw
        from annpred.model.schema import save_model

        tmp = Path(tempfile.mkdtemp(prefix="choice_latency_"))
        spare = [hw.cpu_id(t) for t in (1, 2) if hw.present(hw.cpu_id(t))]
        for c in cands:  # the real models
            m = pred.get(a.kernel, c.variant, c.hardware)
            save_model(m.meta, tmp / c.hardware / a.kernel / f"{c.variant}.json")
        for h in spare:
            for c in list(cands):
                if len(cands) + len(stand_ins) >= a.min_candidates:
                    break
                if h == c.hardware or (c.variant, h) in [tuple(x) for x in cands]:
                    continue
                d = dict(pred.get(a.kernel, c.variant, c.hardware).meta, hardware=h)
                save_model(d, tmp / h / a.kernel / f"{c.variant}.json")
                stand_ins.append(f"{c.variant}@{h}")
        pred = load_models(tmp)
        choice = annpred.choose(a.kernel, params, models=pred)
        cands = list(choice.predicted)
    models = [pred.get(a.kernel, c.variant, c.hardware) for c in cands]
    print(f"{a.kernel} {params}: {len(cands)} candidates -> {choice.best}", flush=True)
    results = {}
    assert "torch" not in sys.modules
    if a.user_models:  # no models= argument: the path a runtime takes
        results["choose_default"] = bench(lambda: annpred.choose(a.kernel, params, memo=False),
                                          a.repeats)
        results["choose_default_memoised"] = bench(lambda: annpred.choose(a.kernel, params),
                                                   a.repeats)

    results["choose"] = bench(lambda: annpred.choose(a.kernel, params, models=pred,
                                                     memo=False), a.repeats)
    results["choose_memoised"] = bench(lambda: annpred.choose(a.kernel, params, models=pred),
                                       a.repeats)
    plan = select._plan(pred, a.kernel, k, None)
    x = [float(params[p]) for p in plan.params]
    results["stacked_core"] = bench(lambda: plan.predict(x), a.repeats)
    cols = {p: np.asarray([float(v)]) for p, v in params.items()}

    def numpy_loop():
        s = [m.predict(cols)[0] for m in models]
        return cands[int(np.argmin(s))]

    results["numpy_loop"] = bench(numpy_loop, a.repeats // 4)

    # torch: the same networks, float64
    import torch

    from annpred.model.network import transform_inputs
    from annpred.model.fit import AugmentedMLP

    torch.set_num_threads(1)
    tms = []
    for m in models:
        d = m.meta
        net = AugmentedMLP.from_weights(d["layers"], d.get("skip"), d["activation"]).eval()
        tms.append((m, net, np.asarray(d["scaler"]["mean"]), np.asarray(d["scaler"]["std"]),
                    d["target_scaler"]["mean"], d["target_scaler"]["std"]))

    def torch_loop():
        s = []
        with torch.no_grad():
            for m, net, mean, std, ym, ys in tms:
                X = m.features(cols)
                Z = (transform_inputs(X, m.compiled["input_transform"]) - mean) / std
                y = net(torch.from_numpy(Z)).item() * ys + ym
                s.append(np.exp(y))
        return cands[int(np.argmin(s))]

    results["torch_loop"] = bench(torch_loop, a.repeats // 4)
    g = plan.groups[0]
    tW1, tB1 = torch.from_numpy(g.W1), torch.from_numpy(g.B1)
    tWout, tbout = torch.from_numpy(g.Wout), torch.from_numpy(g.bout)
    tG = torch.from_numpy(g.G)

    def torch_stacked():
        with torch.no_grad():
            U = torch.from_numpy(plan.features(x))
            X = U[tG]
            h = torch.tanh(torch.bmm(tW1, X.unsqueeze(2)).squeeze(2) + tB1)
            out = (tWout * torch.cat((h, X), 1)).sum(1) + tbout
            y = torch.exp(out)  # the target scaler is folded into Wout, bout
            return cands[int(torch.argmin(y))]

    if len(plan.groups) == 1 and not g.single and not g.hidden:
        ref = plan.predict(x)
        assert cands[int(np.argmin(ref))] == torch_stacked()
        results["torch_stacked"] = bench(torch_stacked, a.repeats // 4)
    # check: the torch loop agrees with the numpy decision
    assert torch_loop() == numpy_loop() == cands[int(np.argmin(plan.predict(x)))]

    # scikit-learn random forest baseline (RF+C), one forest per candidate
    from sklearn.ensemble import RandomForestRegressor

    forests = []
    for c, m in zip(cands, models):
        paths = sorted(Path(a.models).glob(f"{c.hardware}/data/{a.kernel}.csv"))
        stand_in = not paths  # a stand-in: train its forest on the real model's data
        paths = paths or sorted(Path(a.models).glob(f"*/data/{a.kernel}.csv"))
        if not paths:
            break
        df = pd.read_csv(paths[0])
        df = df[(df["variant"] == c.variant)
                & ((df["hardware"] == c.hardware) | stand_in)]
        if "pass" in df:
            df = df[df["pass"] == 0]
        df = df.head(250)
        Xd = {p: df[p].to_numpy(dtype=float) for p in m.params}
        X = m.features(Xd)
        rf = RandomForestRegressor(n_estimators=200, n_jobs=1, random_state=0)
        rf.fit(X, np.log(df["runtime_s"].to_numpy()))
        forests.append((m, rf))
    if len(forests) == len(cands):
        def rf_loop():
            s = [rf.predict(m.features(cols))[0] for m, rf in forests]
            return cands[int(np.argmin(s))]

        results["rf_loop"] = bench(rf_loop, a.rf_repeats, warmup=5)
    # dispatch: infer parameters, choose, convert, run -- against running the chosen
    # implementation directly (prepare + run, the same work without the decision)
    inputs = k.make_inputs(params, np.random.default_rng(0))
    operands = list(inputs.values())
    v = k.variant(choice.variant)
    results["direct_run_of_choice"] = bench(lambda: v.run(v.prepare(inputs, params)),
                                            a.repeats // 4)
    results["dispatch"] = bench(lambda: annpred.dispatch(a.kernel, *operands, models=pred),
                                a.repeats // 4)
    # choose again, with torch and sklearn loaded in the process
    results["choose_after_torch_import"] = bench(
        lambda: annpred.choose(a.kernel, params, models=pred, memo=False), a.repeats)

    c_us = c_header_loop(models, params)
    if c_us is not None:
        results["c_header_loop"] = c_us
    base = results["choose"]["median_us"]
    rows = [{"method": name, **r, "ratio_to_choose": r["median_us"] / base}
            for name, r in results.items()]
    cs = cold_start(None if a.user_models else a.models, a.kernel, dict(params))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out / "choice_latency.csv", index=False)
    lines = [f"Decision among {len(cands)} candidates ({a.kernel}, {params}); median of "
             f"{a.repeats} single decisions ({a.rf_repeats} for rf_loop) on {_cpu()}, "
             "1 thread." + (f" Stand-ins (copies of real models under another thread "
                            f"count, for the count of 8): {', '.join(stand_ins)}."
                            if stand_ins else ""), "",
             "| method | median (us) | p90 (us) | x choose |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['median_us']:.1f} | {r['p90_us']:.1f} | "
                     f"{r['ratio_to_choose']:.1f} |")
    ov = results["dispatch"]["median_us"] - results["direct_run_of_choice"]["median_us"]
    lines += ["", f"dispatch overhead over running the chosen implementation directly: "
              f"{ov:.1f} us (includes inferring the density of the operands)."]
    lines += ["", f"Cold start (fresh process: import annpred + first choose): "
              f"{cs['import_and_first_choose_s']:.2f} s; `import torch` alone: "
              f"{cs['import_torch_s']:.2f} s; torch imported by choose: "
              f"{cs['torch_imported_by_choose']}."]
    (out / "choice_latency.md").write_text("\n".join(lines) + "\n")
    (out / "choice_latency.json").write_text(json.dumps(
        {"kernel": a.kernel, "params": params, "candidates": [str(c) for c in cands],
         "stand_ins": stand_ins,
         "results": results, "cold_start": cs, "machine": _cpu(),
         "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1) + "\n")
    print("\n".join(lines))
    return 0


def c_header_loop(models, params: dict) -> dict | None:
    """Median microseconds of one decision in C: every candidate's exported header called in
    turn, argmin taken (None without a C compiler)."""
    import shutil
    import tempfile

    from annpred.runtime.export_c import header_text

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    tmp = Path(tempfile.mkdtemp(prefix="choice_latency_c_"))
    names = []
    for i, m in enumerate(models):
        name = f"cand{i}"
        (tmp / f"{name}.h").write_text(header_text(m.meta, name=name))
        names.append((name, m.params))
    order = list(models[0].params)
    inc = "".join(f'#include "{n}.h"\n' for n, _ in names)
    calls = []
    for i, (n, ps) in enumerate(names):
        args = ", ".join(f"p[{order.index(q)}]" for q in ps)
        calls.append(f"    {{ double q[] = {{{args}}}; double s = {n}_predict(q); "
                     f"if (s < best) {{ best = s; arg = {i}; }} }}")
    vals = ", ".join(repr(float(params[q])) for q in order)
    src = (f"#define _POSIX_C_SOURCE 199309L\n#include <stdio.h>\n#include <time.h>\n{inc}"
           f"static volatile double in[] = {{{vals}}};\n"
           "static int decide(void) {\n"
           f"    double p[{len(order)}]; for (int j = 0; j < {len(order)}; j++) p[j] = in[j];\n"
           "    double best = 1e300; int arg = -1;\n" + "\n".join(calls) + "\n    return arg;\n}\n"
           "int main(void) {\n    struct timespec a, b; long n = 200000; int s = 0;\n"
           "    for (int i = 0; i < 1000; i++) s += decide();\n"
           "    double t[7];\n    for (int r = 0; r < 7; r++) {\n"
           "        clock_gettime(CLOCK_MONOTONIC, &a);\n"
           "        for (long i = 0; i < n; i++) s += decide();\n"
           "        clock_gettime(CLOCK_MONOTONIC, &b);\n"
           "        t[r] = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n;\n    }\n"
           "    for (int i = 1; i < 7; i++) for (int j = i; j > 0 && t[j] < t[j-1]; j--)"
           " { double x = t[j]; t[j] = t[j-1]; t[j-1] = x; }\n"
           "    printf(\"%f %f %d\\n\", t[3], t[5], s);\n    return 0;\n}\n")
    (tmp / "main.c").write_text(src)
    exe = tmp / "main"
    r = subprocess.run([cc, "-O2", "-std=c99", "-o", str(exe), str(tmp / "main.c"), "-lm"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print("C benchmark did not compile:", r.stderr[-500:], file=sys.stderr)
        return None
    med, p90, _ = subprocess.run([str(exe)], capture_output=True, text=True,
                                 check=True).stdout.split()
    return {"median_us": float(med) / 1e3, "p90_us": float(p90) / 1e3, "repeats": 7}


def _cpu() -> str:
    from annpred.spec import hardware as hw

    return hw.cpu_model()


if __name__ == "__main__":
    sys.exit(main())
